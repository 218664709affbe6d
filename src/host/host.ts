// Every host side effect that Node cannot do itself (spawning runc/conmon/CNI/ip/iptables,
// mount, mknod, setxattr) goes through Host, so unit tests can record calls with FakeHost and
// integration tests (as root) use RealHost.
import { spawn } from 'node:child_process';
import { BerthError } from '../core/errors.ts';

export interface RunOptions {
  input?: string | Uint8Array;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  /** Do not throw on a non-zero exit; return it. */
  allowFailure?: boolean;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface Host {
  /** Run a program to completion and collect its output. Throws Internal on non-zero exit. */
  run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult>;
  mount(source: string, target: string, fstype: string, options: readonly string[]): Promise<void>;
  unmount(target: string, opts?: { lazy?: boolean }): Promise<void>;
  /** Character device (overlay whiteouts are c 0:0) or block device. */
  mknod(path: string, type: 'c' | 'b' | 'p', major: number, minor: number, mode: number): Promise<void>;
  /** Set extended attributes, one name/value on many paths (no dereference). */
  setxattr(paths: readonly string[], name: string, value: string | Uint8Array): Promise<void>;
}

export class RealHost implements Host {
  run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn(file, args, {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        signal: opts.signal,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', (e) => reject(new BerthError('Internal', `${file}: ${e.message}`, { cause: e })));
      child.on('close', (code, sig) => {
        const res = { code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
        if (res.code !== 0 && !opts.allowFailure) {
          const why = sig ? `killed by ${sig}` : `exit ${res.code}`;
          reject(new BerthError('Internal', `${file} ${args.join(' ')}: ${why}: ${res.stderr.trim() || res.stdout.trim()}`));
        } else resolve(res);
      });
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input ?? '');
    });
  }

  async mount(source: string, target: string, fstype: string, options: readonly string[]): Promise<void> {
    const args = ['-t', fstype];
    if (options.length) args.push('-o', options.join(','));
    await this.run('mount', [...args, source, target]);
  }

  async unmount(target: string, opts: { lazy?: boolean } = {}): Promise<void> {
    await this.run('umount', opts.lazy ? ['-l', target] : [target]);
  }

  async mknod(path: string, type: 'c' | 'b' | 'p', major: number, minor: number, mode: number): Promise<void> {
    const args = ['-m', (mode & 0o7777).toString(8), path, type];
    if (type !== 'p') args.push(String(major), String(minor));
    await this.run('mknod', args);
  }

  async setxattr(paths: readonly string[], name: string, value: string | Uint8Array): Promise<void> {
    if (paths.length === 0) return;
    const v = typeof value === 'string' ? value : '0x' + Buffer.from(value).toString('hex');
    await this.run('setfattr', ['-h', '-n', name, '-v', v, '--', ...paths]);
  }
}

export interface HostCall {
  op: string;
  args: unknown[];
}

/** Records calls; `run` answers from `responses` (by program name) or with exit 0 and no output. */
export class FakeHost implements Host {
  readonly calls: HostCall[] = [];
  responses = new Map<string, (args: readonly string[]) => RunResult>();

  async run(file: string, args: readonly string[], _opts?: RunOptions): Promise<RunResult> {
    this.calls.push({ op: 'run', args: [file, ...args] });
    const r = this.responses.get(file);
    return r ? r(args) : { code: 0, stdout: '', stderr: '' };
  }
  async mount(source: string, target: string, fstype: string, options: readonly string[]): Promise<void> {
    this.calls.push({ op: 'mount', args: [source, target, fstype, [...options]] });
  }
  async unmount(target: string, opts?: { lazy?: boolean }): Promise<void> {
    this.calls.push({ op: 'unmount', args: [target, opts ?? {}] });
  }
  async mknod(path: string, type: 'c' | 'b' | 'p', major: number, minor: number, mode: number): Promise<void> {
    this.calls.push({ op: 'mknod', args: [path, type, major, minor, mode] });
  }
  async setxattr(paths: readonly string[], name: string, value: string | Uint8Array): Promise<void> {
    this.calls.push({ op: 'setxattr', args: [[...paths], name, value] });
  }
}
