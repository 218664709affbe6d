// The OCI runtime driver: runc (or any runc-compatible CLI selected by name with --runtime), always
// with its own state root under berth's exec root (never the default /run/runc, so berth, Podman
// and tests never see each other's containers). Containers are created through conmon (see
// conmon.ts); the other operations call the runtime directly.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { accessSync, closeSync, constants, fstatSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { internal, notFound, failedPrecondition, invalidArgument } from '../core/errors.ts';
import { spawnConmon, spawnConmonEarly, cleanRuntimeError, type ConmonOptions, type ConmonProcess, type WaitingConmon } from './conmon.ts';
import type { Spawner } from './spawner.ts';

export interface RuntimeState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'paused' | 'stopped';
  bundle: string;
}

interface Out { code: number; stdout: string; stderr: string }

function exec(file: string, args: string[], input?: string): Promise<Out> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', (e) => reject(internal(`${file}: ${e.message}`)));
    child.on('close', (code) => resolve({ code: code ?? 128, stdout, stderr }));
    if (input !== undefined) child.stdin!.end(input);
  });
}

export class OciRuntime {
  readonly name: string;
  readonly path: string;
  /** The runtime's state directory (--root). */
  readonly root: string;
  readonly conmonPath: string;
  #spawner: Spawner | undefined;

  constructor(opts: { name: string; path: string; root: string; conmonPath?: string; spawner?: Spawner }) {
    this.name = opts.name;
    this.path = resolveBinary(opts.path);
    this.root = opts.root;
    this.conmonPath = opts.conmonPath ?? 'conmon';
    this.#spawner = opts.spawner;
  }

  #args(...rest: string[]): string[] {
    return [`--root=${this.root}`, ...rest];
  }

  async #run(args: string[], what: string, input?: string): Promise<Out> {
    const r = await exec(this.path, this.#args(...args), input);
    if (r.code !== 0) {
      const msg = cleanRuntimeError(r.stderr.trim() || r.stdout.trim());
      if (/does not exist|not found/i.test(msg)) throw notFound(`${what}: ${msg}`);
      if (/not running|is paused|is not paused|cannot .* (created|stopped)/i.test(msg)) throw failedPrecondition(`${what}: ${msg}`);
      throw internal(`${what}: ${msg}`);
    }
    return r;
  }

  /** Create (not start) the container under a new conmon. */
  create(o: Omit<ConmonOptions, 'runtimePath' | 'runtimeArgs' | 'conmonPath'>): Promise<ConmonProcess> {
    return spawnConmon({ ...o, conmonPath: this.conmonPath, runtimePath: this.path, runtimeArgs: [`--root=${this.root}`] });
  }

  /** conmon for a create, spawned now and let go later (spawnConmonEarly); undefined if it cannot be. */
  createEarly(o: Omit<ConmonOptions, 'runtimePath' | 'runtimeArgs' | 'conmonPath'>): Promise<WaitingConmon | undefined> {
    return spawnConmonEarly({ ...o, conmonPath: this.conmonPath, runtimePath: this.path, runtimeArgs: [`--root=${this.root}`], spawner: this.#spawner });
  }

  async start(id: string): Promise<void> {
    if (await this.#startViaFifo(id)) return;
    await this.#run(['start', id], 'start');
  }

  /**
   * runc's `start` of a created container is: read the byte runc init writes into
   * `<root>/<id>/exec.fifo` (it then execs the user process) and remove the fifo. Doing that
   * here saves spawning the runtime on the `run` critical path. The fifo is opened O_RDWR (never
   * blocks: berthd is a writer too, so it never sees EOF either) and read through the event loop
   * (a libuv pipe handle), so a dead init cannot wedge a thread and the byte is seen the moment
   * it is written. runc only; false when the fast path does not apply (then `runc start` runs).
   */
  async #startViaFifo(id: string): Promise<boolean> {
    if (!/(^|\/)runc$/.test(this.path)) return false;
    const fifo = join(this.root, id, 'exec.fifo');
    let fd: number;
    try {
      // Synchronous: O_RDWR|O_NONBLOCK never blocks on a fifo, and a thread-pool open would
      // queue behind whatever fsyncs the pool is busy with.
      fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK);
    } catch {
      return false;
    }
    if (!fstatSync(fd).isFIFO()) {
      closeSync(fd);
      return false;
    }
    const pipe = new Socket({ fd, readable: true, writable: false });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(internal('start: container init did not report through its exec fifo')), 30_000);
        pipe.once('data', () => {
          clearTimeout(timer);
          resolve();
        });
        pipe.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      });
    } finally {
      pipe.destroy();
    }
    await rm(fifo, { force: true });
    return true;
  }

  async state(id: string): Promise<RuntimeState | undefined> {
    const r = await exec(this.path, this.#args('state', id));
    if (r.code !== 0) return undefined;
    try {
      return JSON.parse(r.stdout) as RuntimeState;
    } catch {
      return undefined;
    }
  }

  async kill(id: string, signal: string | number, all = false): Promise<void> {
    const sig = String(signal);
    if (!/^(SIG)?[A-Z0-9+-]+$|^\d+$/.test(sig)) throw invalidArgument(`invalid signal: ${signal}`);
    await this.#run(all ? ['kill', '--all', id, sig] : ['kill', id, sig], 'kill');
  }

  async pause(id: string): Promise<void> {
    await this.#run(['pause', id], 'pause');
  }

  async resume(id: string): Promise<void> {
    await this.#run(['resume', id], 'resume');
  }

  /** Change resources of a running container (`runc update -r -`). */
  async update(id: string, resources: object): Promise<void> {
    await this.#run(['update', '-r', '-', id], 'update', JSON.stringify(resources));
  }

  /** Delete the runtime's state; force kills a running container first. Idempotent. */
  async delete(id: string, force = false): Promise<void> {
    const r = await exec(this.path, this.#args('delete', ...(force ? ['--force'] : []), id));
    if (r.code !== 0) {
      const msg = cleanRuntimeError(r.stderr.trim());
      if (/does not exist|not found/i.test(msg)) {
        await rm(join(this.root, id), { recursive: true, force: true });
        return;
      }
      throw internal(`delete: ${msg}`);
    }
  }

  /**
   * Forget a container whose processes are all gone, without spawning the runtime: its state
   * directory is all that is left once the caller removed the cgroup (runc's `delete` of a
   * stopped container does exactly these two things, and no hooks run here). runc only.
   */
  async forgetStopped(id: string): Promise<boolean> {
    if (!/(^|\/)runc$/.test(this.path)) return false;
    await rm(join(this.root, id), { recursive: true, force: true });
    return true;
  }

  /** `ps` inside the container: PIDs of its processes (host namespace). */
  async pids(id: string): Promise<number[]> {
    const r = await this.#run(['ps', '--format', 'json', id], 'ps');
    return JSON.parse(r.stdout || '[]') as number[];
  }
}

/** An absolute path for a program name (conmon wants one), searching PATH; the name if not found. */
export function resolveBinary(name: string): string {
  if (name.includes('/')) return name;
  for (const d of (process.env.PATH ?? '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = join(d || '.', name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return name;
}
