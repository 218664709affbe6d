// Container rootfs mounts without a process per mount: Node has no mount(2), and spawning
// mount/umount costs tens of milliseconds on a busy host, twice per `run --rm`. One long-lived
// Perl helper (perl-base is Essential in Debian; its `syscall` builtin reaches any system call)
// takes requests on stdin and answers with the errno. Anything unexpected (another architecture,
// no perl, a failure) falls back to the Host's mount/umount commands.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Host } from '../host/host.ts';
import { internal } from '../core/errors.ts';

/** mount(2) and umount2(2) numbers per architecture. */
const SYSCALLS: Record<string, { mount: number; umount2: number }> = {
  x64: { mount: 165, umount2: 166 },
  arm64: { mount: 40, umount2: 39 },
  riscv64: { mount: 40, umount2: 39 },
  s390x: { mount: 21, umount2: 52 },
  ppc64: { mount: 21, umount2: 52 },
};

const MS_BIND = 4096;
const MS_REC = 16384;
const MNT_DETACH = 2;

// Requests: "M\t<src>\t<target>\t<fstype>\t<flags>\t<data>\n" or "U\t<target>\t<flags>\n".
// Reply: errno ("0" on success) and a newline, one per request, in order.
const HELPER = String.raw`
use strict; use warnings;
my ($sys_mount, $sys_umount) = @ARGV;
$| = 1;
while (my $line = <STDIN>) {
  chomp $line;
  my @f = split /\t/, $line, -1;
  my $r;
  if ($f[0] eq 'M') {
    my ($src, $tgt, $type, $flags, $data) = @f[1..5];
    $r = syscall($sys_mount, $src, $tgt, $type, $flags + 0, $data);
  } elsif ($f[0] eq 'U') {
    $r = syscall($sys_umount, $f[1], $f[2] + 0);
  } else { print "22\n"; next; }
  print(($r == 0 ? 0 : ($! + 0)) . "\n");
}
`;

export class Mounter {
  #host: Host;
  #child: ChildProcess | undefined;
  #queue: Array<(errno: number) => void> = [];
  #buf = '';
  #broken = false;

  constructor(host: Host) {
    this.#host = host;
  }

  #helper(): ChildProcess | undefined {
    if (this.#broken) return undefined;
    const nums = SYSCALLS[process.arch];
    if (!nums) {
      this.#broken = true;
      return undefined;
    }
    if (this.#child && this.#child.exitCode === null) return this.#child;
    const child = spawn('perl', ['-e', HELPER, String(nums.mount), String(nums.umount2)], { stdio: ['pipe', 'pipe', 'ignore'] });
    child.on('error', () => {
      this.#broken = true;
      this.#failAll();
    });
    child.on('exit', () => {
      this.#child = undefined;
      this.#failAll();
    });
    child.stdin!.on('error', () => {});
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (s: string) => {
      this.#buf += s;
      let i;
      while ((i = this.#buf.indexOf('\n')) >= 0) {
        const n = Number(this.#buf.slice(0, i));
        this.#buf = this.#buf.slice(i + 1);
        this.#queue.shift()?.(Number.isFinite(n) ? n : 5);
      }
    });
    // The helper must not keep berthd alive, nor die with a signal meant for berthd's group.
    child.unref();
    (child.stdin as unknown as { unref?: () => void }).unref?.();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    this.#child = child;
    return child;
  }

  #failAll(): void {
    const q = this.#queue;
    this.#queue = [];
    for (const f of q) f(-1);
  }

  #call(line: string): Promise<number> {
    const child = this.#helper();
    if (!child || line.includes('\n')) return Promise.resolve(-1);
    return new Promise((resolve) => {
      this.#queue.push(resolve);
      child.stdin!.write(line + '\n');
    });
  }

  /** mount; `type` 'bind' binds (recursively with 'rbind' in options). */
  async mount(source: string, target: string, type: string, options: readonly string[]): Promise<void> {
    const bind = type === 'bind' || options.includes('bind') || options.includes('rbind');
    const flags = bind ? MS_BIND | (options.includes('rbind') ? MS_REC : 0) : 0;
    const data = bind ? '' : options.join(',');
    const fields = [source, target, bind ? 'none' : type, String(flags), data];
    if (fields.some((f) => f.includes('\t'))) return this.#host.mount(source, target, bind ? 'none' : type, options);
    const errno = await this.#call(['M', ...fields].join('\t'));
    if (errno === 0) return;
    if (errno > 0) throw internal(`mount ${type} on ${target}: errno ${errno}`);
    await this.#host.mount(source, target, bind ? 'none' : type, bind ? ['bind', ...options.filter((o) => o !== 'bind' && o !== 'rbind')] : options);
  }

  async unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
    if (target.includes('\t')) return this.#host.unmount(target, opts);
    const errno = await this.#call(['U', target, String(opts.lazy ? MNT_DETACH : 0)].join('\t'));
    if (errno === 0) return;
    if (errno > 0) throw internal(`umount ${target}: errno ${errno}`);
    await this.#host.unmount(target, opts);
  }

  close(): void {
    this.#child?.stdin?.end();
    this.#child = undefined;
  }
}
