// Container records: one atomic JSON file per container, all held in memory (berthd is the single
// writer), with the name index and ID-prefix lookup Docker clients rely on.
import { readdir, readFile, rm, mkdir, writeFile, rename } from 'node:fs/promises';
import { dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { writeFileAtomic } from '../pkg/atomic-file.ts';
import { KeyedQueue } from '../pkg/keyed-queue.ts';
import { notFound, invalidArgument, failedPrecondition } from '../core/errors.ts';
import type { DockerConfig, HostConfig } from '../runtime/create-config.ts';
import type { ContainerPaths } from './paths.ts';

export type ContainerStatus = 'creating' | 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';

export interface HealthLogEntry { Start: string; End: string; ExitCode: number; Output: string }
export interface HealthState { Status: 'starting' | 'healthy' | 'unhealthy' | 'none'; FailingStreak: number; Log: HealthLogEntry[] }

export interface ContainerState {
  status: ContainerStatus;
  pid: number;
  /** /proc/<pid>/stat start time of the init process: a reused PID is never signalled. */
  pidStart?: string;
  conmonPid: number;
  conmonStart?: string;
  exitCode: number;
  error: string;
  oomKilled: boolean;
  startedAt: string;
  finishedAt: string;
  health?: HealthState;
}

export interface ContainerRecord {
  id: string;
  /** With the leading '/', as Docker reports it. */
  name: string;
  created: string;
  /** Image ID (config digest) and the reference the user gave. */
  image: string;
  imageRef: string;
  /** The image's chain ID top (rootfs parent), for the snapshot. */
  imageTopChainId?: string;
  /** Merged Config (image defaults + create body), as inspect shows it. */
  config: DockerConfig;
  hostConfig: HostConfig;
  /** The create body's NetworkingConfig, handed to the network service at start. */
  networkingConfig?: unknown;
  path: string;
  args: string[];
  runtime: string;
  /** The cgroup parent the container was last started under (the daemon's may change). */
  cgroupParent?: string;
  state: ContainerState;
  restartCount: number;
  /** Stopped by the user (stop/kill via API): unless-stopped and the restart policy respect it. */
  manuallyStopped: boolean;
  logPath: string;
  /** Log rotation: bytes per file and number of files. */
  logMaxSize: number;
  logMaxFiles: number;
}

export const NAME_RE = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

export function emptyState(): ContainerState {
  return { status: 'created', pid: 0, conmonPid: 0, exitCode: 0, error: '', oomKilled: false, startedAt: '0001-01-01T00:00:00Z', finishedAt: '0001-01-01T00:00:00Z' };
}

export class ContainerStore {
  readonly paths: ContainerPaths;
  #byId = new Map<string, ContainerRecord>();
  #byName = new Map<string, string>();
  /** Each record's writes, in order (see save). */
  readonly #writes = new KeyedQueue();

  constructor(paths: ContainerPaths) {
    this.paths = paths;
  }

  /** Load every readable record; unreadable ones are reported (the caller cleans them up). */
  async load(): Promise<{ broken: string[] }> {
    const broken: string[] = [];
    let ids: string[] = [];
    try {
      ids = await readdir(this.paths.containersDir);
    } catch {
      return { broken };
    }
    for (const id of ids) {
      if (!/^[0-9a-f]{64}$/.test(id)) continue;
      try {
        const rec = JSON.parse(await readFile(this.paths.record(id), 'utf8')) as ContainerRecord;
        if (rec.id !== id) throw new Error('id mismatch');
        this.#byId.set(id, rec);
        this.#byName.set(rec.name, id);
      } catch {
        broken.push(id);
      }
    }
    return { broken };
  }

  all(): ContainerRecord[] {
    return [...this.#byId.values()];
  }

  /** Docker's lookup order: full ID, exact name, unique ID prefix. */
  find(ref: string): ContainerRecord | undefined {
    if (!ref) return undefined;
    const full = this.#byId.get(ref);
    if (full) return full;
    const byName = this.#byName.get(ref.startsWith('/') ? ref : `/${ref}`);
    if (byName) return this.#byId.get(byName);
    if (!/^[0-9a-f]+$/.test(ref)) return undefined;
    let found: ContainerRecord | undefined;
    for (const [id, rec] of this.#byId) {
      if (!id.startsWith(ref)) continue;
      if (found) throw invalidArgument(`multiple IDs found with provided prefix: ${ref}`);
      found = rec;
    }
    return found;
  }

  get(ref: string): ContainerRecord {
    const r = this.find(ref);
    if (!r) throw notFound(`No such container: ${ref}`);
    return r;
  }

  /** Reserve a name (Docker's 409 wording). */
  reserveName(name: string, id: string): void {
    const n = name.startsWith('/') ? name : `/${name}`;
    if (!NAME_RE.test(n)) throw invalidArgument(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const owner = this.#byName.get(n);
    if (owner && owner !== id) {
      throw failedPrecondition(`Conflict. The container name "${n}" is already in use by container "${owner}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    this.#byName.set(n, id);
  }

  releaseName(name: string, id: string): void {
    if (this.#byName.get(name) === id) this.#byName.delete(name);
  }

  hasName(name: string): boolean {
    return this.#byName.has(name.startsWith('/') ? name : `/${name}`);
  }

  /**
   * Atomic write (tmp + rename); fsynced unless `sync: false` (crash markers); not before
   * `after` settles. The record is
   * serialised now; the writes of one record land in the order they were asked for, so a caller
   * may leave a write in flight (the start path answers before its 'running' record is on disk)
   * without an earlier state overwriting a later one. deleteFiles waits for them.
   */
  save(rec: ContainerRecord, opts: { sync?: boolean; after?: Promise<unknown> } = {}): Promise<void> {
    this.#byId.set(rec.id, rec);
    this.#byName.set(rec.name, rec.id);
    const json = JSON.stringify(rec, null, 2) + '\n';
    const p = this.paths.record(rec.id);
    const write = async (): Promise<void> => {
      // `after`: what must be on disk before the record may be (the container's snapshot).
      await opts.after?.catch(() => {});
      if (opts.sync !== false) return writeFileAtomic(p, json);
      await mkdir(dirname(p), { recursive: true, mode: 0o700 });
      const tmp = `${p}.${randomBytes(4).toString('hex')}.tmp`;
      await writeFile(tmp, json, { mode: 0o600 });
      await rename(tmp, p);
    };
    return this.#writes.run(rec.id, write);
  }

  async delete(rec: ContainerRecord): Promise<void> {
    this.forget(rec);
    await this.deleteFiles(rec.id);
  }

  /** Drop from memory only (the API no longer sees it); deleteFiles removes it from disk. */
  forget(rec: ContainerRecord): void {
    this.#byId.delete(rec.id);
    this.releaseName(rec.name, rec.id);
  }

  /** Wait for every record write in flight (daemon shutdown). */
  async flush(): Promise<void> {
    await this.#writes.idleAll();
  }

  async deleteFiles(id: string): Promise<void> {
    // A write still in flight would otherwise bring the record back after the rm.
    await this.#writes.idle(id);
    await rm(this.paths.dir(id), { recursive: true, force: true });
  }
}
