// Spawning monitors without forking berthd. Node's spawn() forks the whole daemon: the kernel
// copies its page tables (berthd's RSS is 100+ MB), which costs several milliseconds of CPU per
// spawn and blocks the event loop meanwhile (measured 5 ms at 67 MB RSS, 14 ms at 164 MB, 37 ms
// at 365 MB). One small long-lived Perl helper (perl-base is Essential in Debian) forks instead;
// a fork of a 5 MB process costs a fraction of a millisecond. It is used where it pays: conmon,
// once per container start.
//
// The spawned program runs in a new session, with stdin and stdout on /dev/null, stderr appended
// to a file, and a pipe on fd 3 whose bytes the helper relays (conmon's sync pipe). It is not the
// helper's to supervise: the helper only reaps it (conmon double-forks and its first process
// exits at once), and it outlives the helper and berthd.
//
// With `startPipe`, the program also gets the read end of a second pipe on fd 4, which the
// helper holds until told to write to it: conmon (with _OCI_STARTPIPE=4) starts, opens its log
// and waits there, so it can be spawned before the bundle is ready and let go the moment it is.
// Programs still waiting when berthd lets go of fd 3 or the helper's stdin closes (berthd gone)
// are killed, never let go: conmon takes a closed start pipe for a start.
//
// Protocol (lines; every variable field hex-encoded, so any byte is allowed):
//   berthd -> helper   "<req> <cwd> <stderr-path> <env NUL-joined> <argv NUL-joined> <flags>"
//                                            flags: "s" for a start pipe on fd 4
//                      "S <req>"             write one byte to the start pipe and close it
//                      "C <req>"             close the fd-3 pipe (berthd read all it wanted: conmon
//                                            keeps its end open for its whole life)
//   helper -> berthd   "P <req> <pid>"       spawned (fork succeeded; exec failure shows as EOF)
//                      "F <req> <message>"   could not spawn
//                      "D <req> <bytes>"     data read from the fd-3 pipe
//                      "E <req>"             fd-3 pipe closed
import { spawn, type ChildProcess } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import { internal } from '../core/errors.ts';

const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl; use IO::Select;
$| = 1;
my $sel = IO::Select->new(\*STDIN);
my %pipes;
my %starts;
my $in = '';
sub hx { unpack('H*', $_[0]) }
sub spawn_one {
  my @f = split / /, $_[0], -1;
  my ($req, $cwd, $err, $env, $argv, $flags) = map { pack('H*', $_ // '') } @f;
  pipe(my $r, my $w) or do { print "F ", hx($req), " ", hx("pipe: $!"), "\n"; return };
  my ($sr, $sw);
  if ($flags eq 's') { pipe($sr, $sw) or do { print "F ", hx($req), " ", hx("pipe: $!"), "\n"; close $r; close $w; return } }
  my $pid = fork;
  if (!defined $pid) { print "F ", hx($req), " ", hx("fork: $!"), "\n"; close $r; close $w; return }
  if ($pid == 0) {
    POSIX::setsid();
    chdir $cwd or POSIX::_exit(126);
    open(STDIN, '<', '/dev/null'); open(STDOUT, '>', '/dev/null');
    open(STDERR, '>>', $err) or open(STDERR, '>', '/dev/null');
    my $sfd = $sr ? POSIX::dup(fileno($sr)) : undef;
    POSIX::dup2(fileno($w), 3) if fileno($w) != 3;
    open(my $fd3, '+<&=', 3) or POSIX::_exit(126);
    fcntl($fd3, F_SETFD, 0);
    if (defined $sfd) {
      POSIX::dup2($sfd, 4) if $sfd != 4;
      open(my $fd4, '<&=', 4) or POSIX::_exit(126);
      fcntl($fd4, F_SETFD, 0);
    }
    %ENV = ();
    for my $kv (split /\0/, $env) { my ($k, $v) = split /=/, $kv, 2; $ENV{$k} = $v if defined $v }
    my @a = split /\0/, $argv;
    exec { $a[0] } @a;
    POSIX::_exit(127);
  }
  close $w;
  if ($sr) { close $sr; $starts{hx($req)} = [$sw, $pid] }
  $pipes{fileno $r} = [hx($req), $r];
  $sel->add($r);
  print "P ", hx($req), " $pid\n";
}
while (1) {
  my @ready = $sel->can_read(1);
  1 while waitpid(-1, POSIX::WNOHANG()) > 0;
  for my $fh (@ready) {
    if (fileno($fh) == 0) {
      my $n = sysread(STDIN, my $buf, 65536);
      if (!defined $n) { next if $!{EINTR} || $!{EAGAIN}; kill 'KILL', map { $_->[1] } values %starts; exit 0 }
      if ($n == 0) { kill 'KILL', map { $_->[1] } values %starts; exit 0 }
      $in .= $buf;
      while ($in =~ s/^([^\n]*)\n//) {
        my $line = $1;
        if ($line =~ /^S (\S+)$/) {
          my $st = delete $starts{$1};
          if ($st) { syswrite($st->[0], '0'); close $st->[0] }
        } elsif ($line =~ /^C (\S+)$/) {
          my $k = $1;
          # Never let go: conmon would take the closed pipe for a start.
          my $st = delete $starts{$k};
          if ($st) { kill 'KILL', $st->[1]; close $st->[0] }
          for my $fd (keys %pipes) {
            next unless $pipes{$fd}[0] eq $k;
            $sel->remove($pipes{$fd}[1]); close $pipes{$fd}[1]; delete $pipes{$fd};
          }
        } else { spawn_one($line) }
      }
    } else {
      my $p = $pipes{fileno $fh};
      my $n = sysread($fh, my $buf, 65536);
      next if !defined $n && ($!{EINTR} || $!{EAGAIN});
      if ($n) { print "D $p->[0] ", hx($buf), "\n" }
      else { print "E $p->[0]\n"; $sel->remove($fh); delete $pipes{fileno $fh}; close $fh }
    }
  }
}
`;

export interface SpawnRequest {
  file: string;
  args: readonly string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** The program's stderr is appended here. */
  stderrPath: string;
  /** A start pipe on fd 4 (see the header): written by Spawned.start(). */
  startPipe?: boolean;
}

export interface Spawned {
  pid: number;
  /** What the program writes to fd 3; ends when every holder of the pipe closed it. */
  fd3: Readable;
  /** With a start pipe: write its byte (once). Destroying fd3 before that kills the program. */
  start?: () => void;
}

interface Pending {
  resolve: (s: Spawned) => void;
  reject: (e: Error) => void;
  fd3: PassThrough;
  spawned: boolean;
}

export class Spawner {
  #child: ChildProcess | undefined;
  #broken = false;
  #buf = '';
  #seq = 0;
  #pending = new Map<string, Pending>();

  /** Whether the helper can be used (perl present and not failed). */
  get available(): boolean {
    return !this.#broken;
  }

  #helper(): ChildProcess | undefined {
    if (this.#broken) return undefined;
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return this.#child;
    const child = spawn('perl', ['-e', HELPER], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.on('error', () => {
      this.#broken = true;
      this.#failAll('spawn helper: perl not available');
    });
    child.on('exit', () => {
      if (this.#child === child) this.#child = undefined;
      this.#failAll('spawn helper exited');
    });
    child.stdin!.on('error', () => {});
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => this.#onData(s));
    // The helper must not keep berthd alive; it exits when berthd closes its stdin (or dies).
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    this.#child = child;
    return child;
  }

  #onData(s: string): void {
    this.#buf += s;
    let i;
    while ((i = this.#buf.indexOf('\n')) >= 0) {
      const line = this.#buf.slice(0, i);
      this.#buf = this.#buf.slice(i + 1);
      const [kind, req, arg] = line.split(' ');
      const p = this.#pending.get(req ?? '');
      if (!p) continue;
      if (kind === 'P') {
        p.spawned = true;
        p.resolve({ pid: Number(arg), fd3: p.fd3 });
      } else if (kind === 'F') {
        this.#pending.delete(req!);
        p.reject(internal(Buffer.from(arg ?? '', 'hex').toString()));
      } else if (kind === 'D') {
        if (!p.fd3.destroyed) p.fd3.write(Buffer.from(arg ?? '', 'hex'));
      } else if (kind === 'E') {
        this.#pending.delete(req!);
        p.fd3.end();
      }
    }
  }

  #failAll(msg: string): void {
    const all = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of all) {
      if (p.spawned) p.fd3.end();
      else p.reject(internal(msg));
    }
  }

  /** Spawn through the helper; rejects if it cannot (callers then spawn directly). */
  spawn(r: SpawnRequest): Promise<Spawned> {
    const child = this.#helper();
    if (!child) return Promise.reject(internal('spawn helper not available'));
    const req = (++this.#seq).toString(16);
    const hex = (s: string) => Buffer.from(s).toString('hex');
    const env = Object.entries(r.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
    if ([r.file, ...r.args, ...env].some((a) => a.includes('\0'))) return Promise.reject(internal('spawn: NUL in argument'));
    const line = [hex(req), hex(r.cwd), hex(r.stderrPath), hex(env.join('\0')), hex([r.file, ...r.args].join('\0')), hex(r.startPipe ? 's' : '')].join(' ');
    const key = hex(req);
    const fd3 = new PassThrough();
    // Once the caller is done with fd 3 (destroyed it), the helper closes its end too.
    fd3.on('close', () => {
      if (!this.#pending.delete(key)) return;
      if (this.#child === child) child.stdin!.write(`C ${key}\n`);
    });
    const start = r.startPipe
      ? () => {
          if (this.#child === child && !fd3.destroyed) child.stdin!.write(`S ${key}\n`);
        }
      : undefined;
    return new Promise<Spawned>((resolve, reject) => {
      this.#pending.set(key, { resolve: (s) => resolve(start ? { ...s, start } : s), reject, fd3, spawned: false });
      child.stdin!.write(line + '\n');
    });
  }

  close(): void {
    this.#child?.stdin?.end();
    this.#child = undefined;
  }
}
