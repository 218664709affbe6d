// conmon, the per-container monitor Podman and CRI-O use, driven as Podman drives it. conmon
// double-forks away from berthd (so containers survive a daemon restart or crash), runs
// `<runtime> create`, holds the container's stdio (a pty for -t), writes the k8s-file log, and
// writes the exit code to `<exit-dir>/<id>` when the container exits.
//
// Files conmon makes in the bundle directory: `attach` (SOCK_SEQPACKET attach socket), `ctl`
// (fifo: "1 <h> <w>\n" resizes the tty, "2 0 0\n" reopens the log), `winsz`.
//
// Attach: Node cannot open SOCK_SEQPACKET sockets, so a tiny Perl bridge (perl-base is
// Essential in Debian, its Socket module knows SEQPACKET) connects to the attach socket and
// relays: socket packets ([stream byte][data], 2 = stdout, 3 = stderr) become frames
// [stream u8][length u32be][data] on the bridge's stdout; the bridge's stdin goes to the socket
// (the container's stdin when conmon runs with -i); EOF on its stdin shuts the socket's write side
// (conmon then closes the container's stdin). The bridge writes an empty frame of stream 0 once
// connected, so callers can start the container only after attaching (no output lost).
import { spawn, type ChildProcess } from 'node:child_process';
import { open, readFile, mkdir } from 'node:fs/promises';
import { constants, openSync, closeSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { internal, errorMessage } from '../core/errors.ts';
import type { Spawner } from './spawner.ts';

export interface ConmonOptions {
  conmonPath?: string;
  /** Container ID (conmon -c and -u). */
  id: string;
  /** Name for conmon's syslog lines. */
  name: string;
  runtimePath: string;
  /** Extra runtime args before the subcommand, e.g. --root=<dir>. */
  runtimeArgs: string[];
  bundle: string;
  pidFile: string;
  conmonPidFile: string;
  exitDir: string;
  logPath: string;
  /** Bytes; conmon truncates the log past this (rotation is berth's, this is the hard cap). */
  logSizeMax?: number;
  socketDir: string;
  terminal: boolean;
  stdin: boolean;
  /** Keep stdin open after the first attached client detaches (Docker's StdinOnce=false). */
  leaveStdinOpen?: boolean;
  /** conmon's own stderr goes here (debugging a failed create). */
  conmonLog: string;
  /** For exec sessions: run `<runtime> exec` with this process.json. */
  exec?: { processSpec: string; attach: boolean };
  env?: NodeJS.ProcessEnv;
  /** spawnConmonEarly forks conmon from this helper instead of from berthd. */
  spawner?: Spawner;
}

export interface ConmonStarted {
  /** The container's init PID (or the exec process's). */
  pid: number;
  conmonPid: number;
}

/** Read conmon's JSON messages (`{"data": N, "message": "..."}`) from its sync pipe. */
function readSyncMessages(stream: Readable, onMessage: (m: { data: number; message?: string }) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (s: string) => {
    buf += s;
    // conmon writes one JSON object per write, without separators.
    for (;;) {
      const end = buf.indexOf('}');
      if (end < 0) break;
      const obj = buf.slice(0, end + 1);
      buf = buf.slice(end + 1);
      try {
        onMessage(JSON.parse(obj.slice(obj.indexOf('{'))));
      } catch {
        /* partial or garbage; ignore */
      }
    }
  });
  stream.on('error', () => {});
}

export interface ConmonProcess extends ConmonStarted {
  /** For exec sessions with attach: resolves when conmon made its attach socket. */
  attachReady?: Promise<void>;
  /** Exec sessions with attach: runc's error once the exec failed to start (after start()). */
  startError?: () => string | undefined;
  /** Exec sessions: write to conmon's start pipe to let the exec run. */
  start?: () => void;
  /** Exec sessions: the exit code (conmon's second sync message). */
  exitCode?: Promise<number>;
}

/** conmon's command line for a container create or an exec session. */
function conmonArgs(o: ConmonOptions): string[] {
  const args = [
    '--api-version', '1',
    '-c', o.id, '-u', o.id,
    '-r', o.runtimePath,
    '-b', o.bundle,
    '-p', o.pidFile,
    '-n', o.name,
    '--exit-dir', o.exitDir,
    '-l', `k8s-file:${o.logPath}`,
    '--socket-dir-path', o.socketDir,
    '-P', o.conmonPidFile,
    '--log-level', 'warning',
    // The log is fsynced by nobody else either; syncing at exit costs the `run --rm` path.
    '--no-sync-log',
  ];
  if (o.logSizeMax && o.logSizeMax > 0) args.push('--log-size-max', String(Math.max(8192, o.logSizeMax)));
  for (const a of o.runtimeArgs) args.push('--runtime-arg', a);
  if (o.terminal) args.push('-t');
  if (o.stdin) args.push('-i');
  if (o.leaveStdinOpen) args.push('--leave-stdin-open');
  if (o.exec) {
    args.push('-e', '--exec-process-spec', o.exec.processSpec);
    if (o.exec.attach) args.push('--exec-attach');
  }
  return args;
}

/** A conmon spawned ahead of its bundle, waiting on its start pipe (see spawnConmonEarly). */
export interface WaitingConmon {
  /** Let it run the runtime's create: resolves as spawnConmon does. */
  go(): Promise<ConmonProcess>;
  /** Not needed after all (the start failed first): it is killed, never let go. */
  abort(): void;
}

/**
 * Spawn a container's conmon before its bundle is complete: it starts (exec, libraries, options,
 * log file) and waits on its start pipe while berthd mounts the rootfs and writes config.json;
 * go() then lets it run `<runtime> create`. The log's directory and the bundle directory must
 * exist. undefined without the spawn helper (callers then use spawnConmon when ready).
 */
export async function spawnConmonEarly(o: ConmonOptions): Promise<WaitingConmon | undefined> {
  if (o.exec || !o.spawner?.available) return undefined;
  mkdirSync(o.socketDir, { recursive: true, mode: 0o700 });
  const env = conmonEnv(o, { _OCI_STARTPIPE: '4' });
  // cwd: see spawnConmon.
  const s = await o.spawner.spawn({ file: o.conmonPath ?? 'conmon', args: conmonArgs(o), cwd: o.bundle, env, stderrPath: o.conmonLog, startPipe: true }).catch(() => undefined);
  if (!s?.start) return undefined;
  let state: 'waiting' | 'started' | 'aborted' = 'waiting';
  return {
    go: () => {
      if (state !== 'waiting') return Promise.reject(internal('conmon: already started or aborted'));
      state = 'started';
      s.start!();
      return finishCreate(o, s.fd3, s.pid);
    },
    abort: () => {
      if (state !== 'waiting') return;
      state = 'aborted';
      // The helper kills it when it lets go of the pipes (conmon takes a closed start pipe for
      // a start).
      s.fd3.destroy();
    },
  };
}

/** conmon's environment: its sync pipe on fd 3, plus `extra`. */
function conmonEnv(o: ConmonOptions, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', _OCI_SYNCPIPE: '3', ...extra, ...o.env };
}

/**
 * Spawn conmon from berthd (exec sessions, and containers when the spawn helper cannot be used:
 * see spawnConmonEarly). Resolves once the runtime created the container (or, for an exec with
 * attach, once the attach socket exists: then `start()` runs it). Rejects with the runtime's error.
 */
export async function spawnConmon(o: ConmonOptions): Promise<ConmonProcess> {
  const args = conmonArgs(o);
  await mkdir(o.socketDir, { recursive: true, mode: 0o700 });
  const env = conmonEnv(o);
  // cwd: conmon writes an `oom` marker file into its working directory when the container is
  // OOM-killed; the bundle is removed with the container, berthd's cwd is not ours to litter.
  const errFd = openSync(o.conmonLog, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
  let child: ChildProcess;
  // fd 3: sync pipe (create result; for exec also the exit code); fd 4: start pipe (exec only);
  // fd 5: attach pipe (exec with attach: conmon writes once its attach socket is listening).
  const stdio: Array<'ignore' | 'pipe' | number> = ['ignore', 'ignore', errFd, 'pipe'];
  if (o.exec) {
    stdio.push('pipe');
    env._OCI_STARTPIPE = '4';
    if (o.exec.attach) {
      stdio.push('pipe');
      env._OCI_ATTACHPIPE = '5';
    }
  }
  try {
    child = spawn(o.conmonPath ?? 'conmon', args, { stdio, env, detached: true, cwd: o.bundle });
  } finally {
    closeSync(errFd);
  }
  const sync = child.stdio[3] as Readable;
  if (!o.exec) {
    child.on('error', () => {});
    child.unref();
    return finishCreate(o, sync, child.pid ?? -1);
  }
  // Exec sessions from here on.
  const startPipe = child.stdio[4] as unknown as NodeJS.WritableStream & { destroy(): void };
  const attachPipe = o.exec?.attach ? ((child.stdio as unknown[])[5] as Readable) : undefined;
  child.on('error', () => {});
  let exitResolve!: (n: number) => void;
  const exitCode = new Promise<number>((r) => (exitResolve = r));
  let startError: string | undefined;
  const result = await new Promise<ConmonProcess>((resolve, reject) => {
    let got = 0;
    let pid = -1;
    readSyncMessages(sync, (m) => {
      got++;
      if (got === 1) {
        if (m.data < 0) {
          startError = cleanRuntimeError(m.message ?? 'conmon: container create failed');
          // An exec with attach resolved already: its failure shows as exit code -1.
          if (attachPipe) exitResolve(-1);
          reject(internal(startError));
          return;
        }
        pid = m.data;
        resolve({ pid, conmonPid: -1 });
      } else {
        exitResolve(m.data);
      }
    });
    sync.on('end', () => {
      if (got === 0) {
        void readFile(o.conmonLog, 'utf8').catch(() => '').then((log) => reject(internal(`conmon exited before reporting: ${cleanRuntimeError(log.trim().split('\n').pop() ?? '')}`)));
      }
      exitResolve(-1);
    });
    // Exec: conmon first waits for a start message (Podman moves it into a cgroup then).
    startPipe.write('0');
    if (attachPipe) {
      // Exec with attach: conmon then makes its attach socket, reports on the attach pipe and
      // waits for a second start message before it runs the runtime: the PID comes after start().
      readSyncMessages(attachPipe, () => resolve({ pid: -1, conmonPid: -1 }));
    }
  });
  result.exitCode = exitCode;
  result.startError = () => startError;
  result.start = () => {
    try {
      startPipe.write('0');
    } catch {
      /* conmon gone */
    }
  };
  result.conmonPid = await readPidFile(o.conmonPidFile).catch(() => child.pid ?? -1);
  child.unref();
  return result;
}

/** A container create: conmon's first sync message is the init PID, or the runtime's error. */
async function finishCreate(o: ConmonOptions, sync: Readable, spawnedPid: number): Promise<ConmonProcess> {
  const pid = await new Promise<number>((resolve, reject) => {
    let got = false;
    readSyncMessages(sync, (m) => {
      if (got) return;
      got = true;
      if (m.data < 0) reject(internal(cleanRuntimeError(m.message ?? 'conmon: container create failed')));
      else resolve(m.data);
    });
    sync.on('end', () => {
      if (got) return;
      void readFile(o.conmonLog, 'utf8').catch(() => '').then((log) => reject(internal(`conmon exited before reporting: ${cleanRuntimeError(log.trim().split('\n').pop() ?? '')}`)));
    });
  });
  sync.destroy();
  const conmonPid = await readPidFile(o.conmonPidFile).catch(() => spawnedPid);
  return { pid, conmonPid };
}

/** runc errors arrive JSON-ish and wrapped; keep the useful part. */
export function cleanRuntimeError(msg: string): string {
  const m = /msg="((?:[^"\\]|\\.)*)"/.exec(msg);
  return (m ? m[1]! : msg).replace(/\\"/g, '"').replace(/\\\\/g, '\\').trim();
}

// The pid and exit files are a few bytes conmon has just written, /proc/<pid>/stat is generated
// from kernel memory: they are read synchronously (microseconds, against a thread-pool round
// trip each on the start and exit paths).
export async function readPidFile(p: string): Promise<number> {
  const n = Number(readFileSync(p, 'utf8').trim());
  if (!Number.isInteger(n) || n <= 0) throw internal(`bad pid file ${p}`);
  return n;
}

/** Field 22 of /proc/<pid>/stat: start time in clock ticks since boot. undefined if gone. */
export async function procStartTime(pid: number): Promise<string | undefined> {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may hold spaces and parentheses: split after the last ')'.
    const rest = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

/** Whether `pid` is still the process that had `startTime` (guards against PID reuse). */
export async function sameProcess(pid: number, startTime: string | undefined): Promise<boolean> {
  if (!pid || pid <= 0 || !startTime) return false;
  return (await procStartTime(pid)) === startTime;
}

/** Exit code conmon wrote for a container, or undefined while it runs. */
export async function readExitFile(exitDir: string, id: string): Promise<number | undefined> {
  try {
    const t = readFileSync(join(exitDir, id), 'utf8').trim();
    if (t === '') return undefined;
    const n = Number(t);
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Resize the container's tty through conmon's ctl fifo. */
export async function resizeTty(bundle: string, height: number, width: number): Promise<void> {
  await writeCtl(bundle, `1 ${Math.trunc(height)} ${Math.trunc(width)}\n`);
}

/** Tell conmon to reopen its log file (after berth rotated it). */
export async function reopenLog(bundle: string): Promise<void> {
  await writeCtl(bundle, '2 0 0\n');
}

async function writeCtl(bundle: string, line: string): Promise<void> {
  let fh;
  try {
    fh = await open(join(bundle, 'ctl'), constants.O_WRONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw internal(`conmon control fifo: ${errorMessage(err)}`);
  }
  try {
    await fh.write(line);
  } finally {
    await fh.close();
  }
}

const BRIDGE = String.raw`
use strict; use warnings; use Socket; use IO::Select;
$SIG{PIPE} = 'IGNORE';
my ($dir) = @ARGV;
chdir($dir) or die "chdir $dir: $!\n";
socket(my $s, AF_UNIX, SOCK_SEQPACKET, 0) or die "socket: $!\n";
connect($s, pack_sockaddr_un('attach')) or die "connect: $!\n";
binmode STDOUT; binmode STDIN;
sub out { my $d = shift; my $o = 0; while ($o < length $d) { my $n = syswrite(STDOUT, $d, length($d) - $o, $o); defined $n or exit 0; $o += $n; } }
out(pack('CN', 0, 0));
my $sel = IO::Select->new($s, \*STDIN);
while (1) {
  for my $fh ($sel->can_read) {
    if ($fh == $s) {
      my $buf = '';
      defined(recv($s, $buf, 65536, 0)) or exit 0;
      exit 0 if $buf eq '';
      out(pack('CN', ord(substr($buf, 0, 1)), length($buf) - 1) . substr($buf, 1));
    } else {
      my $buf = '';
      my $n = sysread(STDIN, $buf, 4096);
      if (!$n) { shutdown($s, 1); $sel->remove(\*STDIN); next; }
      defined(send($s, $buf, 0)) or exit 0;
    }
  }
}
`;

export interface AttachStream {
  /** Resolves once connected to conmon's attach socket. */
  ready: Promise<void>;
  /** Writes go to the container's stdin (if conmon holds it open); end() closes it. */
  stdin: NodeJS.WritableStream;
  /** Called per chunk: 1 = stdout, 2 = stderr (Docker's numbering), with a TTY all is stdout. */
  onData(cb: (stream: 1 | 2, data: Buffer) => void): void;
  /** Resolves when the container's streams closed (exit) or the attach was closed. */
  closed: Promise<void>;
  close(): void;
}

/** Attach to conmon's socket in `dir` (the bundle, or an exec session's directory). */
export function attachConmon(dir: string): AttachStream {
  const child = spawn('perl', ['-e', BRIDGE, dir], { stdio: ['pipe', 'pipe', 'pipe'] });
  let cb: (stream: 1 | 2, data: Buffer) => void = () => {};
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const ready = new Promise<void>((res, rej) => ((readyResolve = res), (readyReject = rej)));
  ready.catch(() => {});
  let err = '';
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  let pending: Buffer = Buffer.alloc(0);
  child.stdout.on('data', (b: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, b]) : b;
    while (pending.length >= 5) {
      const len = pending.readUInt32BE(1);
      if (pending.length < 5 + len) break;
      const type = pending[0]!;
      const data = pending.subarray(5, 5 + len);
      pending = pending.subarray(5 + len);
      if (type === 0) readyResolve();
      else if (len > 0) cb(type === 3 ? 2 : 1, Buffer.from(data));
    }
  });
  const closed = new Promise<void>((res) => {
    child.on('close', () => {
      readyReject(internal(`attach: ${err.trim() || 'bridge exited'}`));
      res();
    });
    child.on('error', (e) => {
      readyReject(internal(`attach: ${e.message}`));
      res();
    });
  });
  child.stdin.on('error', () => {});
  return {
    ready,
    stdin: child.stdin,
    onData(f) {
      cb = f;
    },
    closed,
    close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}
