// The container service: Docker's container lifecycle on top of the runtime layer.
//
//   create ... record ('creating' -> 'created'), writable snapshot over the image's layers;
//              then, for containers that allow it, the runtime's task ahead (#createAhead)
//   start .... mount rootfs, network/volumes, spec, conmon + runc create (unless made ahead),
//              pending attaches, runc start -> 'running'
//   exit ..... conmon writes <execRoot>/exits/<id>; an inotify watch (plus a slow poll) picks it
//              up: OOM check, runc delete, cgroups, unmount, network teardown -> 'exited';
//              then --rm or the restart policy
//   remove ... kill if forced, runtime state, cgroups, mounts, snapshot, files -> gone
//
// Every state change is written atomically before it is acted on or reported. At daemon start,
// `restore()` reattaches to running containers (conmon outlives berthd), records exits that
// happened while it was down, finishes or undoes half-done creates/removes, and applies restart
// policies.
//
// Known limit: exec sessions live in berthd's memory (a non-TTY exec is berthd's `runc exec`
// child, a TTY one has its own conmon). After a daemon restart their records are gone (404 on
// /exec/<id>/json) and a running session's output has nobody to read it; the processes are
// not tracked. Docker keeps exec state in memory too, but its shim keeps the session attached.
import { randomBytes } from 'node:crypto';
import { mkdir, rm, writeFile, readFile, stat, readdir, unlink } from 'node:fs/promises';
import { watch, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, type FSWatcher } from 'node:fs';
import { spawn } from 'node:child_process';
import { join, posix } from 'node:path';
import { hostname as osHostname } from 'node:os';
import type { Readable } from 'node:stream';
import { notFound, invalidArgument, failedPrecondition, internal, errorMessage, isKind, BerthError } from '../core/errors.ts';
import type { ImageService, ResolvedImage } from '../core/images.ts';
import type { ContainerConfig } from '../core/oci.ts';
import type { Mount, Snapshotter } from '../core/snapshots.ts';
import type { NetworkService, Sandbox } from '../core/networks.ts';
import type { VolumeService, MountPoint } from '../core/volumes.ts';
import type { Host } from '../host/host.ts';
import type { Logger } from '../pkg/log.ts';
import type { DaemonConfig } from '../daemon/config.ts';
import { planMounts } from '../volume/mount-spec.ts';
import { buildSpec, specToJson, hostsFile, resolvConf, processArgs, type OciSpec, type OciDevice } from '../runtime/spec.ts';
import type { CreateBody, DockerConfig, HostConfig } from '../runtime/create-config.ts';
import { strSlice } from '../runtime/create-config.ts';
import { hostRlimits } from '../runtime/rlimits.ts';
import { hostBoundingCaps } from '../runtime/capabilities.ts';
import { readUserDatabases, resolveUser, resolveUserFrom, resolveUserInLayers, type ResolvedUser } from '../runtime/user.ts';
import { Cgroups } from '../runtime/cgroups.ts';
import { Mounter } from '../runtime/mounter.ts';
import { Spawner } from '../runtime/spawner.ts';
import { OciRuntime, resolveBinary } from '../runtime/oci-runtime.ts';
import { attachConmon, procStartTime, readExitFile, readPidFile, sameProcess, resizeTty, reopenLog, spawnConmon, type AttachStream, type WaitingConmon } from '../runtime/conmon.ts';
import { ContainerStore, emptyState, type ContainerRecord, type ContainerStatus } from './container-store.ts';
import { ContainerPaths } from './paths.ts';
import { EventBus } from './event-bus.ts';
import { RestartManager, validateRestartPolicy } from './restart-manager.ts';
import { parseSize, rotateLogs, followLog } from './container-logs.ts';
import { randomName } from './names.ts';
import { HealthMonitor } from './health-monitor.ts';
import { DetachScanner } from '../pkg/detach-keys.ts';
import { KeyedQueue } from '../pkg/keyed-queue.ts';

export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface ExecConfig {
  Cmd: string[];
  Env?: string[];
  User?: string;
  WorkingDir?: string;
  Tty?: boolean;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Privileged?: boolean;
  DetachKeys?: string;
  ConsoleSize?: [number, number] | null;
}

export interface ExecRecord {
  id: string;
  containerId: string;
  config: ExecConfig;
  running: boolean;
  exitCode: number | null;
  pid: number;
  /** conmon's directory for TTY sessions (resize goes to its ctl fifo). */
  dir?: string;
  done: Promise<number>;
}

/** Where attach/exec output goes and stdin comes from. */
export interface StreamSink {
  write(stream: 1 | 2, data: Buffer): void;
  stdin?: Readable;
  /** Detach sequence on stdin: the attach ends there, the container (or exec) keeps running. */
  detachKeys?: Buffer;
}

/**
 * Forward an attached client's stdin to `to`. The detach sequence (if any) ends the forwarding
 * without closing the process's stdin and calls `onDetach`; EOF from the client ends it.
 */
function pipeStdin(sink: StreamSink, to: { write(b: Buffer): unknown; end(): unknown }, onDetach: () => void): void {
  const stdin = sink.stdin!;
  const scan = sink.detachKeys?.length ? new DetachScanner(sink.detachKeys) : undefined;
  let detached = false;
  const onData = (b: Buffer) => {
    if (detached) return;
    const r = scan ? scan.push(b) : { data: b, detach: false };
    if (r.data.length) to.write(r.data);
    if (r.detach) {
      detached = true;
      stdin.off('data', onData);
      stdin.pause();
      onDetach();
    }
  };
  stdin.on('data', onData);
  stdin.on('end', () => { if (!detached) to.end(); });
  stdin.on('error', () => { if (!detached) to.end(); });
  stdin.resume();
}

/** A container created in its runtime (#createTask): init waits on the exec fifo. */
interface CreatedTask {
  pid: number;
  conmonPid: number;
  pidStart: string | undefined;
  conmonStart: string | undefined;
  mountPoints?: MountPoint[];
  /** Whether the network service set up a sandbox for it (undone with the task). */
  networked: boolean;
}

/** A task created ahead of its start (see #createAhead). */
interface AheadTask {
  done: Promise<CreatedTask | undefined>;
  timer: NodeJS.Timeout;
}

/** How long a task created ahead of its start waits for the start before it is undone (default). */
const AHEAD_TTL_MS = 10_000;
/** At most this many tasks created ahead at once (each holds a conmon and a waiting runc init). */
const AHEAD_MAX = 8;

export interface ServiceDeps {
  config: DaemonConfig;
  log: Logger;
  host: Host;
  images: () => ImageService | undefined;
  snapshotter: () => Snapshotter | undefined;
  networks: () => NetworkService | undefined;
  volumes: () => VolumeService | undefined;
  events: EventBus;
  cgroupParent?: string;
}

const DEFAULT_LOG_MAX_SIZE = 20 * 1024 * 1024;
const DEFAULT_LOG_MAX_FILES = 5;
const INIT_CANDIDATES = ['/usr/bin/catatonit', '/usr/libexec/podman/catatonit', '/usr/bin/tini-static', '/usr/bin/docker-init'];

const SIGNALS: Record<string, number> = {
  HUP: 1, INT: 2, QUIT: 3, ILL: 4, TRAP: 5, ABRT: 6, BUS: 7, FPE: 8, KILL: 9, USR1: 10, SEGV: 11, USR2: 12, PIPE: 13,
  ALRM: 14, TERM: 15, STKFLT: 16, CHLD: 17, CONT: 18, STOP: 19, TSTP: 20, TTIN: 21, TTOU: 22, URG: 23, XCPU: 24,
  XFSZ: 25, VTALRM: 26, PROF: 27, WINCH: 28, IO: 29, PWR: 30, SYS: 31,
};

/** "SIGTERM", "TERM", "15", "SIGRTMIN+3" -> signal number. */
export function parseSignal(s: string | number): number {
  if (typeof s === 'number') return s;
  const t = s.trim().toUpperCase().replace(/^SIG/, '');
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n < 1 || n > 64) throw invalidArgument(`Invalid signal: ${s}`);
    return n;
  }
  const rt = /^RTMIN(?:\+(\d+))?$|^RTMAX(?:-(\d+))?$/.exec(t);
  if (rt) return rt[0].startsWith('RTMIN') ? 34 + Number(rt[1] ?? 0) : 64 - Number(rt[2] ?? 0);
  const n = SIGNALS[t];
  if (!n) throw invalidArgument(`Invalid signal: ${s}`);
  return n;
}

/** Docker's exit code for a process runc could not start: 127 not found, 126 cannot invoke. */
export function startFailureCode(msg: string): number {
  return /executable file not found|no such file or directory/i.test(msg) ? 127 : 126;
}

function nowIso(): string {
  return new Date().toISOString();
}

export class ContainerService {
  readonly store: ContainerStore;
  readonly paths: ContainerPaths;
  readonly events: EventBus;
  readonly cgroups: Cgroups;
  #d: ServiceDeps;
  #runtimes = new Map<string, OciRuntime>();
  #restart = new Map<string, RestartManager>();
  readonly #locks = new KeyedQueue();
  #waiters = new Map<string, Array<{ cond: WaitCondition; resolve: (r: { code: number; error?: string }) => void }>>();
  #exitSignals = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  #pendingAttach = new Map<string, Array<(bundle: string) => Promise<void>>>();
  /** Ends pending attaches when the start they wait for fails. */
  #pendingFail = new Map<string, Array<() => void>>();
  #execs = new Map<string, ExecRecord>();
  #health: HealthMonitor;
  #watcher: FSWatcher | undefined;
  #poll: NodeJS.Timeout | undefined;
  #closed = false;
  #handlingExit = new Set<string>();
  /** --rm containers whose init this daemon saw exit: their removal releases the cgroup and the
   *  runtime state without spawning the runtime. */
  #initGone = new Set<string>();
  /** /etc/passwd and /etc/group of images (by top chain ID) as fresh containers saw them. */
  #imageEtc = new Map<string, { passwd: string; group: string }>();
  /** Containers whose restore (at daemon start) has not finished yet. */
  #restoring = new Map<string, Promise<void>>();
  /** Containers whose runtime task was created ahead of their start (see #createAhead). */
  #ahead = new Map<string, AheadTask>();
  #mounter: Mounter;
  #spawner = new Spawner();
  readonly initBinary: string | undefined;

  constructor(deps: ServiceDeps) {
    this.#d = deps;
    this.paths = new ContainerPaths(deps.config.dataRoot, deps.config.execRoot);
    this.store = new ContainerStore(this.paths);
    this.events = deps.events;
    this.cgroups = new Cgroups({ parent: deps.cgroupParent ?? 'berth' });
    this.initBinary = INIT_CANDIDATES.find((p) => existsSync(p));
    this.#mounter = new Mounter(deps.host);
    this.#health = new HealthMonitor({
      exec: (id, cmd, timeoutMs) => this.execCapture(id, cmd, timeoutMs),
      onChange: (rec, status) => {
        void this.#save(rec).catch(() => {});
        this.events.emit('container', `health_status: ${status}`, rec.id, this.#attrs(rec));
      },
    });
  }

  // ------------------------------------------------------------------------------------------
  // plumbing

  runtime(name: string): OciRuntime {
    let r = this.#runtimes.get(name);
    if (!r) {
      const path = this.#d.config.runtimes[name];
      if (!path) throw invalidArgument(`unknown or invalid runtime name: ${name}`);
      const resolved = resolveBinary(path);
      if (!resolved.startsWith('/')) throw invalidArgument(`unknown or invalid runtime name: ${name} (${path} not found)`);
      r = new OciRuntime({ name, path: resolved, root: this.paths.runtimeRoot(name), spawner: this.#spawner });
      this.#runtimes.set(name, r);
    }
    return r;
  }

  /**
   * Serialise operations on one container. A task created ahead of the start is undone first
   * (it was made from the container as it was), except for the start itself (`keepAhead`).
   */
  #locked<T>(id: string, fn: () => Promise<T>, opts: { keepAhead?: boolean } = {}): Promise<T> {
    return this.#locks.run(id, async () => {
      if (!opts.keepAhead && this.#ahead.has(id)) await this.#dropAhead(id);
      return fn();
    });
  }


  #save(rec: ContainerRecord): Promise<void> {
    return this.store.save(rec);
  }

  #attrs(rec: ContainerRecord, extra: Record<string, string> = {}): Record<string, string> {
    return { ...(rec.config.Labels ?? {}), image: rec.imageRef, name: rec.name.slice(1), ...extra };
  }

  #rm(id: string): RestartManager {
    let m = this.#restart.get(id);
    if (!m) this.#restart.set(id, (m = new RestartManager()));
    return m;
  }

  #exitSignal(id: string): { promise: Promise<void>; resolve: () => void } {
    let s = this.#exitSignals.get(id);
    if (!s) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      s = { promise, resolve };
      this.#exitSignals.set(id, s);
    }
    return s;
  }

  /** Resolves when the container's current run ends (for log followers). */
  stopped(id: string): Promise<void> {
    const rec = this.store.find(id);
    if (!rec || !['running', 'paused', 'restarting'].includes(rec.state.status)) return Promise.resolve();
    return this.#exitSignal(id).promise;
  }

  #notify(id: string, kind: 'exit' | 'removed', code: number, error?: string): void {
    const list = this.#waiters.get(id);
    if (!list) return;
    const keep = list.filter((w) => {
      if (kind === 'removed' || w.cond !== 'removed') {
        w.resolve({ code, error });
        return false;
      }
      return true;
    });
    if (keep.length) this.#waiters.set(id, keep);
    else this.#waiters.delete(id);
  }

  // ------------------------------------------------------------------------------------------
  // startup / shutdown

  async init(): Promise<void> {
    await mkdir(this.paths.containersDir, { recursive: true, mode: 0o700 });
    await mkdir(this.paths.bundlesDir, { recursive: true, mode: 0o700 });
    await mkdir(this.paths.exitDir, { recursive: true, mode: 0o700 });
    await mkdir(this.paths.execDir, { recursive: true, mode: 0o700 });
    await mkdir(this.paths.socketDir, { recursive: true, mode: 0o700 });
    this.#watcher = watch(this.paths.exitDir, (_ev, file) => {
      if (file && /^[0-9a-f]{64}$/.test(file)) void this.#onExitFile(file);
    });
    this.#watcher.on('error', (err) => this.#d.log.warn({ err: errorMessage(err) }, 'exit watcher failed'));
    // inotify can drop events under pressure: a slow poll catches what it missed, and rotates logs.
    this.#poll = setInterval(() => void this.#sweep(), 2000);
    this.#poll.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    // Tasks created ahead of a start that never came are undone (a created container has no
    // process in Docker; restore would undo them at the next start anyway).
    await Promise.all([...this.#ahead.keys()].map((id) => this.#locked(id, async () => {})));
    this.#watcher?.close();
    if (this.#poll) clearInterval(this.#poll);
    this.#health.stopAll();
    for (const m of this.#restart.values()) m.cancelPending();
    this.#mounter.close();
    this.#spawner.close();
    await this.store.flush();
    // The cgroup parent goes when no container is left under it (rmdir fails otherwise).
    if (!this.store.all().some((r) => ['running', 'paused', 'restarting'].includes(r.state.status))) await this.cgroups.removeParent().catch(() => {});
  }

  async #sweep(): Promise<void> {
    for (const rec of this.store.all()) {
      if (rec.state.status !== 'running' && rec.state.status !== 'paused') continue;
      if ((await readExitFile(this.paths.exitDir, rec.id)) !== undefined) void this.#onExitFile(rec.id);
      else await this.#maybeRotate(rec).catch(() => {});
    }
  }

  async #maybeRotate(rec: ContainerRecord): Promise<void> {
    if (rec.logMaxFiles <= 1) return;
    const st = await stat(rec.logPath).catch(() => undefined);
    if (!st || st.size < rec.logMaxSize) return;
    await rotateLogs(rec.logPath, rec.logMaxFiles);
    await reopenLog(this.paths.bundle(rec.id));
  }

  #loaded: Promise<{ broken: string[] }> | undefined;
  #load(): Promise<{ broken: string[] }> {
    this.#loaded ??= this.store.load();
    return this.#loaded;
  }

  /**
   * Remove what a crash during create left: active snapshots named like a container ID with no
   * record. Runs before the API serves (a create in flight would look the same).
   */
  async sweepOrphans(): Promise<void> {
    const snap = this.#d.snapshotter();
    if (!snap) return;
    await this.#load();
    for (const s of await snap.list().catch(() => [])) {
      if (s.kind !== 'active' || !/^[0-9a-f]{64}$/.test(s.name) || this.store.find(s.name)) continue;
      this.#d.log.info({ container: s.name }, 'removing the snapshot of a create that a crash interrupted');
      await this.#unmountRootfs(s.name).catch(() => {});
      await snap.remove(s.name).catch((err: unknown) => this.#d.log.warn({ container: s.name, err: errorMessage(err) }, 'orphan snapshot remove failed'));
    }
  }

  /**
   * Live restore (see the header). Never throws for one bad container. It runs while berthd
   * serves: a start of a container waits for that container's restore (which may be undoing
   * what a crash left of an earlier start in the same directories).
   */
  async restore(): Promise<void> {
    const { broken } = await this.#load();
    for (const id of broken) {
      this.#d.log.warn({ container: id }, 'unreadable container record: removing');
      await this.#teardownFiles(id, 'runc').catch(() => {});
      await rm(this.paths.dir(id), { recursive: true, force: true });
    }
    const recs = this.store.all().map((rec) => {
      const gate = Promise.withResolvers<void>();
      this.#restoring.set(rec.id, gate.promise);
      return { rec, done: gate.resolve };
    });
    for (const { rec, done } of recs) {
      try {
        await this.#restoreOne(rec);
      } catch (err) {
        this.#d.log.error({ container: rec.id, err: errorMessage(err) }, 'restore failed');
      } finally {
        this.#restoring.delete(rec.id);
        done();
      }
    }
  }

  async #restoreOne(rec: ContainerRecord): Promise<void> {
    const s = rec.state.status;
    if (s === 'creating') {
      this.#d.log.info({ container: rec.id }, 'removing a container whose create was interrupted');
      await this.#teardownFiles(rec.id, rec.runtime, rec.cgroupParent);
      await this.#d.snapshotter()?.remove(rec.id).catch(() => {});
      await this.store.delete(rec);
      return;
    }
    if (s === 'removing') {
      await this.#finishRemove(rec, false);
      return;
    }
    if (s === 'running' || s === 'paused') {
      const code = await readExitFile(this.paths.exitDir, rec.id);
      if (code !== undefined) {
        await this.#onExitFile(rec.id, true);
        return;
      }
      if (await sameProcess(rec.state.conmonPid, rec.state.conmonStart)) {
        this.#d.log.info({ container: rec.id }, 'reattached to running container');
        this.#health.start(rec);
        return;
      }
      // The monitor is gone without writing an exit code: the container cannot be supervised.
      if (await sameProcess(rec.state.pid, rec.state.pidStart)) {
        await this.runtime(rec.runtime).kill(rec.id, 'KILL', true).catch(() => {});
      }
      await writeFile(join(this.paths.exitDir, rec.id), '137').catch(() => {});
      rec.state.error = 'container monitor exited unexpectedly';
      await this.#onExitFile(rec.id, true);
      return;
    }
    // A start that a crash interrupted (after the runtime created the container, before the
    // record said 'running'): the runtime's container, its monitor, cgroup and mounts are
    // undone, so the container is 'created' (or 'exited') as recorded and can start again.
    if (existsSync(join(this.paths.runtimeRoot(rec.runtime), rec.id))) {
      this.#d.log.info({ container: rec.id }, 'undoing a start that a crash interrupted');
      const conmonPid = await readPidFile(join(this.paths.bundle(rec.id), 'conmon.pid')).catch(() => 0);
      const conmonStart = conmonPid ? await procStartTime(conmonPid) : undefined;
      await this.#teardownFiles(rec.id, rec.runtime, rec.cgroupParent);
      await this.#d.networks()?.tearDown(rec.id).catch(() => {});
      // Its conmon writes an exit file when the killed init goes: wait for it (as #dropTask).
      await this.#conmonGone(rec.id, conmonPid, conmonStart);
    }
    if (s === 'restarting') {
      rec.state.status = 'exited';
      await this.#save(rec);
    }
    // Exited containers: the restart policy as Docker applies it at daemon start.
    const name = rec.hostConfig.RestartPolicy?.Name ?? '';
    const started = rec.state.startedAt !== '0001-01-01T00:00:00Z';
    if (!started || (rec.state.status !== 'exited' && s !== 'restarting')) return;
    const max = rec.hostConfig.RestartPolicy?.MaximumRetryCount ?? 0;
    const restart =
      name === 'always' ||
      (name === 'unless-stopped' && !rec.manuallyStopped) ||
      (name === 'on-failure' && rec.state.exitCode !== 0 && !rec.manuallyStopped && (max === 0 || rec.restartCount < max));
    if (restart) {
      await this.#locked(rec.id, () => this.#startContainer(rec)).catch((err: unknown) => this.#d.log.warn({ container: rec.id, err: errorMessage(err) }, 'restart at daemon start failed'));
    }
  }

  // ------------------------------------------------------------------------------------------
  // create

  async create(body: CreateBody, name?: string): Promise<{ Id: string; Warnings: string[] }> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidArgument('invalid JSON: config must be an object');
    if (!body.Image || typeof body.Image !== 'string') throw invalidArgument('Config.Image must be set');
    const hc: HostConfig = body.HostConfig ?? {};
    if (typeof hc !== 'object' || hc === null) throw invalidArgument('invalid HostConfig');
    validateRestartPolicy(hc.RestartPolicy, hc.AutoRemove === true);
    const runtimeName = hc.Runtime || this.#d.config.defaultRuntime;
    this.runtime(runtimeName);
    const nm = hc.NetworkMode ?? '';
    if (!this.#d.networks() && !['', 'default', 'bridge', 'none', 'host'].includes(nm)) {
      throw notFound(`network ${nm} not found`);
    }
    const images = this.#d.images();
    if (!images) throw internal('no image service');
    const tr = tracer('create', this.#d.log);
    const img: ResolvedImage = await images.resolve(body.Image);
    tr('resolve');
    const ic = img.config.config ?? {};
    const id = randomBytes(32).toString('hex');

    // Docker stores the merged config: image defaults under the create body.
    const env = new Map<string, string>();
    for (const e of [...(ic.Env ?? []), ...(body.Env ?? [])]) {
      const i = e.indexOf('=');
      if (i < 0) env.delete(e);
      else env.set(e.slice(0, i), e.slice(i + 1));
    }
    const entrypoint = strSlice(body.Entrypoint);
    const cmd = strSlice(body.Cmd);
    const config: DockerConfig = {
      ...body,
      Hostname: body.Hostname || (nm === 'host' ? osHostname() : id.slice(0, 12)),
      Domainname: body.Domainname ?? '',
      User: body.User ?? ic.User ?? '',
      AttachStdin: body.AttachStdin ?? false,
      AttachStdout: body.AttachStdout ?? false,
      AttachStderr: body.AttachStderr ?? false,
      Tty: body.Tty ?? false,
      OpenStdin: body.OpenStdin ?? false,
      StdinOnce: body.StdinOnce ?? false,
      Env: [...env].map(([k, v]) => `${k}=${v}`),
      Cmd: cmd && cmd.length ? cmd : (entrypoint && entrypoint.length ? null : ic.Cmd ?? null),
      Image: body.Image,
      Volumes: body.Volumes ?? ic.Volumes ?? null,
      WorkingDir: body.WorkingDir || ic.WorkingDir || '',
      Entrypoint: entrypoint && entrypoint.length ? (entrypoint.length === 1 && entrypoint[0] === '' ? null : entrypoint) : (entrypoint === undefined || entrypoint === null ? ic.Entrypoint ?? null : null),
      Labels: { ...(ic.Labels ?? {}), ...(body.Labels ?? {}) },
      StopSignal: body.StopSignal ?? ic.StopSignal,
      Healthcheck: body.Healthcheck ?? ic.Healthcheck,
      ExposedPorts: { ...(ic.ExposedPorts ?? {}), ...(body.ExposedPorts ?? {}) },
    };
    delete (config as Record<string, unknown>).HostConfig;
    delete (config as Record<string, unknown>).NetworkingConfig;
    if (config.StopSignal) parseSignal(config.StopSignal);
    const args = processArgs(ic, body);
    // Validate every flag now (Docker rejects bad flags at create with 400), with stand-in
    // host facts; start builds the real spec. With a volume service, binds, mounts and tmpfs are
    // its to validate (a named volume is not a path), and the spec sees none of them, as at start.
    let validateBody = body;
    if (this.#d.volumes()) {
      planMounts({ binds: hc.Binds, mounts: hc.Mounts as never, tmpfs: hc.Tmpfs });
      validateBody = { ...body, HostConfig: { ...hc, Binds: null, Mounts: null, Tmpfs: null } };
    }
    buildSpec({
      id, rootfs: '/', image: ic, create: validateBody, user: { uid: 0, gid: 0, additionalGids: [], home: '/' },
      files: { hostname: '/h', hosts: '/h', resolvConf: '/r' }, cgroupsPath: '/', cgroupVersion: this.cgroups.version,
      hostRlimits: hostRlimits(), hostCaps: hostBoundingCaps(), initBinary: this.initBinary ?? '/init',
      devices: (hc.Devices ?? []).map((d) => ({ path: d.PathInContainer || d.PathOnHost, type: 'c' as const, major: 0, minor: 0, access: 'rwm' })),
    });
    if (hc.Init && !this.initBinary) throw invalidArgument('--init: no init binary (catatonit or tini) found on this host');
    for (const d of hc.Devices ?? []) await resolveDevice(d.PathOnHost, d.PathInContainer, d.CgroupPermissions);
    const logOpts = hc.LogConfig?.Config ?? {};
    const logType = hc.LogConfig?.Type ?? '';
    if (logType && !['json-file', 'local', 'k8s-file', 'default'].includes(logType)) throw invalidArgument(`logging driver ${logType} is not supported`);
    const logMaxSize = logOpts['max-size'] !== undefined ? parseSize(logOpts['max-size']) : DEFAULT_LOG_MAX_SIZE;
    if (logMaxSize === undefined || logMaxSize < 0) throw invalidArgument(`invalid max-size: ${logOpts['max-size']}`);
    const logMaxFiles = logOpts['max-file'] !== undefined ? Number(logOpts['max-file']) : DEFAULT_LOG_MAX_FILES;
    if (!Number.isInteger(logMaxFiles) || logMaxFiles < 1) throw invalidArgument(`invalid value for max-file: ${logOpts['max-file']}`);

    const fullName = name ? (name.startsWith('/') ? name : `/${name}`) : `/${this.#freeName()}`;
    this.store.reserveName(fullName, id);
    const rec: ContainerRecord = {
      id,
      name: fullName,
      created: nowIso(),
      image: img.record.id,
      imageRef: body.Image,
      imageTopChainId: img.chainIds[img.chainIds.length - 1],
      config,
      hostConfig: { ...hc, NetworkMode: nm || 'bridge', Runtime: runtimeName, RestartPolicy: hc.RestartPolicy ?? { Name: 'no', MaximumRetryCount: 0 }, // Reported as json-file: clients (docker-py's run) only read logs back from json-file/journald,
      // and berth's k8s-file logs honour json-file's max-size/max-file options.
      LogConfig: { Type: 'json-file', Config: logOpts } },
      networkingConfig: body.NetworkingConfig,
      path: args[0]!,
      args: args.slice(1),
      runtime: runtimeName,
      state: { ...emptyState(), status: 'creating' },
      restartCount: 0,
      manuallyStopped: false,
      logPath: this.paths.log(id),
      logMaxSize: logMaxSize === 0 ? 0 : Math.max(logMaxSize, 8192),
      logMaxFiles,
    };
    try {
      // The snapshot first, then the record: a crash in between leaves an active snapshot named
      // like a container ID with no record, which sweepOrphans() removes at the next start.
      const snap = this.#d.snapshotter();
      if (!snap) throw internal('no snapshotter');
      // The snapshot's fsyncs go on in the background, and the record is written once they are
      // done: the create answers without waiting for either.
      await snap.prepare(id, rec.imageTopChainId as never, { syncLater: true });
      tr('snapshot');
      rec.state.status = 'created';
      // Written behind the answer, after the snapshot is on disk and in order with the record's
      // later writes: a crash before it lands leaves a snapshot without a record (removed by
      // sweepOrphans() at the next start) or none.
      this.store.save(rec, { after: snap.durable?.(id) }).catch((err: unknown) => this.#d.log.warn({ container: id, err: errorMessage(err) }, 'saving the created container failed'));
      tr('done');
    } catch (err) {
      await this.#d.snapshotter()?.remove(id).catch(() => {});
      await this.store.delete(rec).catch(() => {});
      throw err;
    }
    this.events.emit('container', 'create', id, this.#attrs(rec));
    this.#createAhead(rec, ic);
    return { Id: id, Warnings: [] };
  }

  #freeName(): string {
    for (let i = 0; i < 100; i++) {
      const n = randomName(i > 10);
      if (!this.store.hasName(n)) return n;
    }
    return `berth_${randomBytes(4).toString('hex')}`;
  }

  // ------------------------------------------------------------------------------------------
  // start

  /** Start; returns false if it was already running (Docker answers 304). */
  async start(ref: string): Promise<boolean> {
    const rec = this.store.get(ref);
    await this.#restoring.get(rec.id);
    return this.#locked(rec.id, async () => {
      const s = rec.state.status;
      // A task made ahead serves only a created container whose init and conmon still wait.
      let ahead = await this.#detachAhead(rec.id);
      if (ahead && !(s === 'created' && (await sameProcess(ahead.pid, ahead.pidStart)) && (await sameProcess(ahead.conmonPid, ahead.conmonStart)))) {
        await this.#dropTask(rec, ahead);
        ahead = undefined;
      }
      if (s === 'running') return false;
      if (s === 'paused') throw failedPrecondition('cannot start a paused container, try unpause instead');
      if (s === 'removing' || s === 'dead' || s === 'creating') throw failedPrecondition(`container ${rec.id} is marked for removal and cannot be started`);
      rec.manuallyStopped = false;
      this.#rm(rec.id).reset();
      await this.#startContainer(rec, ahead);
      return true;
    }, { keepAhead: true });
  }

  /**
   * Create the runtime's task of a just-created container right away, in the background, so
   * its start (which `docker run` sends a few milliseconds later) only has to let the init exec
   * the user's process: the OCI runtime's create, most of a start's time, overlaps the client's
   * attach and wait requests. This is the OCI 'created' state, as CRI-O's CreateContainer and
   * `podman init` use it: no user code runs before the start, and the record stays 'created'
   * (State.Pid 0). The task is undone when the start does not come within AHEAD_TTL_MS, and
   * before any other operation on the container (#locked), at shutdown, and by restore after a
   * crash. Only for containers whose start depends on nothing that can change meanwhile: no
   * network service (`--network none` or `host`), volumes or devices.
   */
  #createAhead(rec: ContainerRecord, imageConfig: ContainerConfig): void {
    const hc = rec.hostConfig;
    const eligible =
      this.#d.config.prepareAhead !== false && !this.#closed && this.#ahead.size < AHEAD_MAX &&
      (hc.NetworkMode === 'none' || hc.NetworkMode === 'host') &&
      !hc.Binds?.length && !hc.Mounts?.length && !(hc as { VolumesFrom?: string[] | null }).VolumesFrom?.length &&
      Object.keys(rec.config.Volumes ?? {}).length === 0 && !hc.Devices?.length && hc.Privileged !== true;
    if (!eligible) return;
    const entry = {} as AheadTask;
    this.#ahead.set(rec.id, entry);
    entry.done = this.#locked(rec.id, async () => {
      if (this.#ahead.get(rec.id) !== entry || rec.state.status !== 'created' || this.#closed) return undefined;
      try {
        const tr = tracer(`create ahead ${rec.id.slice(0, 12)}`, this.#d.log);
        // Right after the create, nothing has changed the container's rootfs yet: it is fresh.
        const task = await this.#createTask(rec, tr, { fresh: true, imageConfig });
        tr('done');
        return task;
      } catch (err) {
        // The start will try again and report what fails then.
        this.#d.log.debug({ container: rec.id, err: errorMessage(err) }, 'creating the task ahead of the start failed');
        await this.#undoTask(rec, false);
        return undefined;
      }
    }, { keepAhead: true });
    entry.timer = setTimeout(() => void this.#locked(rec.id, async () => {}).catch(() => {}), this.#d.config.prepareAheadTtlMs ?? AHEAD_TTL_MS);
    entry.timer.unref();
  }

  /** Take the task created ahead for this container out of #ahead, once it is made (or failed). */
  #detachAhead(id: string): Promise<CreatedTask | undefined> {
    const entry = this.#ahead.get(id);
    if (!entry) return Promise.resolve(undefined);
    this.#ahead.delete(id);
    clearTimeout(entry.timer);
    return entry.done;
  }

  /** Undo the task created ahead of a start (under the container's lock). */
  async #dropAhead(id: string): Promise<void> {
    const task = await this.#detachAhead(id);
    const rec = this.store.find(id);
    if (task && rec) await this.#dropTask(rec, task);
  }

  async #dropTask(rec: ContainerRecord, task: CreatedTask): Promise<void> {
    await this.#undoTask(rec, task.networked);
    await this.#conmonGone(rec.id, task.conmonPid, task.conmonStart);
  }

  /**
   * Wait (up to 2 s) for the conmon of a task that was undone to exit, then remove the exit file
   * it wrote when the killed init went: that file must not land after a later start cleared
   * the way and be taken for that run's exit.
   */
  async #conmonGone(id: string, conmonPid: number, conmonStart: string | undefined): Promise<void> {
    for (let i = 0; i < 200 && (await sameProcess(conmonPid, conmonStart)); i++) await new Promise((r) => setTimeout(r, 10));
    await unlink(join(this.paths.exitDir, id)).catch(() => {});
  }

  /** Mount the container's snapshot at bundle/rootfs (`known`: its mounts, when the caller has them). */
  async #mountRootfs(rec: ContainerRecord, known?: Mount[]): Promise<string> {
    const target = this.paths.rootfs(rec.id);
    mkdirSync(target, { recursive: true, mode: 0o755 });
    if (isMountPoint(target)) return target;
    const snap = this.#d.snapshotter();
    if (!snap) throw internal('no snapshotter');
    const mounts = known ?? (await snap.mounts(rec.id));
    for (const m of mounts) {
      if (m.type === 'bind') await this.#mounter.mount(m.source, target, 'bind', m.options);
      else await this.#mounter.mount(m.source, target, m.type, m.options);
    }
    return target;
  }

  async #unmountRootfs(id: string): Promise<void> {
    const target = this.paths.rootfs(id);
    for (let i = 0; i < 8 && isMountPoint(target); i++) {
      // Detached: the container is dead, nothing holds the mount; a synchronous umount of an
      // overlay waits for the kernel to tear it down, which nobody needs to wait for.
      await this.#mounter.unmount(target, { lazy: true }).catch(async () => this.#mounter.unmount(target));
    }
  }

  async #startContainer(rec: ContainerRecord, ahead?: CreatedTask): Promise<void> {
    const id = rec.id;
    const rt = this.runtime(rec.runtime);
    const tr = tracer(`start ${id.slice(0, 12)}`, this.#d.log);
    let task: CreatedTask | undefined;
    try {
      task = ahead ?? (await this.#createTask(rec, tr));
      if (ahead) tr('created ahead');
      rec.state.pid = task.pid;
      rec.state.conmonPid = task.conmonPid;
      rec.state.pidStart = task.pidStart;
      rec.state.conmonStart = task.conmonStart;
      // A fresh exit signal for this run, before attachers take it.
      this.#exitSignals.delete(id);
      const pending = this.#pendingAttach.get(id) ?? [];
      this.#pendingAttach.delete(id);
      this.#pendingFail.delete(id);
      await Promise.all(pending.map((p) => p(this.paths.bundle(id)).catch(() => {})));
      tr('attach');
      await rt.start(id);
      tr('runc start');
      Object.assign(rec.state, { status: 'running' as ContainerStatus, startedAt: nowIso(), finishedAt: '0001-01-01T00:00:00Z', exitCode: 0, error: '', oomKilled: false });
      if (task.mountPoints) (rec as ContainerRecord & { mountPoints?: MountPoint[] }).mountPoints = task.mountPoints;
      // Written behind the answer (the store keeps this record's writes in order, and shutdown
      // and removal wait for it): a crash before it lands is a start the record never saw, which
      // restore undoes, as Docker's restore does with a task its checkpoint does not know.
      this.#save(rec).catch((err: unknown) => this.#d.log.warn({ container: id, err: errorMessage(err) }, 'saving the running state failed'));
      tr('save');
      this.events.emit('container', 'start', id, this.#attrs(rec));
      this.#health.start(rec);
    } catch (err) {
      await this.#undoTask(rec, task?.networked ?? false);
      const msg = errorMessage(err);
      rec.state = { ...rec.state, status: rec.state.startedAt === '0001-01-01T00:00:00Z' ? 'created' : 'exited', pid: 0, conmonPid: 0, error: msg, exitCode: /not found|no such file/i.test(msg) ? 127 : /permission denied|not permitted/i.test(msg) ? 126 : 128 };
      await this.#save(rec).catch(() => {});
      // Attaches waiting for this start end now (the CLI waits for them before it exits).
      this.#pendingAttach.delete(id);
      for (const f of this.#pendingFail.get(id) ?? []) f();
      this.#pendingFail.delete(id);
      // Waiters get the exit code only: the start error is the start request's answer (Docker
      // does not answer them with it; the CLI would log "Error waiting for container").
      this.#notify(id, 'exit', rec.state.exitCode);
      if (rec.hostConfig.AutoRemove) void this.#autoRemove(rec);
      // The CLI maps these to 127/126 from the message; Docker answers them with 400.
      if (/executable file not found|no such file or directory|permission denied|not a directory/i.test(msg)) throw invalidArgument(`failed to create task for container: ${msg}`);
      throw err instanceof BerthError ? err : internal(msg);
    }
  }

  /** What #createTask leaves behind, undone: the runtime's container, cgroup, network, rootfs mount. */
  async #undoTask(rec: ContainerRecord, networked: boolean): Promise<void> {
    await this.runtime(rec.runtime).delete(rec.id, true).catch(() => {});
    await this.cgroups.remove(rec.id, rec.cgroupParent).catch(() => {});
    if (networked) await this.#d.networks()?.tearDown(rec.id).catch(() => {});
    await this.#unmountRootfs(rec.id).catch(() => {});
  }

  /**
   * The first half of a start: rootfs, network, volumes, spec, and conmon running
   * `<runtime> create`. Returns with the container in the runtime's 'created' state: its init
   * waits on the exec fifo, no user code has run. Changes nothing in the record's state. On
   * failure, a set-up still in flight is waited for and what it made is undone before the error
   * is thrown (the runtime's container, cgroup and mount are the caller's: #undoTask).
   */
  async #createTask(rec: ContainerRecord, tr: (step: string) => void, opts: { fresh?: boolean; imageConfig?: ContainerConfig } = {}): Promise<CreatedTask> {
    const id = rec.id;
    const bundle = this.paths.bundle(id);
    const hc = rec.hostConfig;
    const rt = this.runtime(rec.runtime);
    let sandbox: Sandbox | undefined;
    // --network none and host need no network service: runc makes a netns with only lo (none)
    // or joins none (host) itself, which costs nothing on the `run --rm` critical path.
    const net = hc.NetworkMode === 'none' || hc.NetworkMode === 'host' ? undefined : this.#d.networks();
    const vols = this.#d.volumes();
    // The network (namespace, CNI plugins, /etc files) is set up while the rootfs is mounted and
    // the user resolved: the two do not depend on each other, and the plugins are the slower.
    let netSetUp: Promise<Sandbox> | undefined;
    // conmon is spawned first and waits on its start pipe (its start-up, ~3 ms, overlaps the
    // mount and the spec); it is let go once config.json is written.
    let early: Promise<WaitingConmon | undefined> | undefined;
    let mounted: Promise<string> | undefined;
    const conmonOpts = {
      id, name: rec.name.slice(1), bundle, pidFile: join(bundle, 'pid'), conmonPidFile: join(bundle, 'conmon.pid'),
      exitDir: this.paths.exitDir, logPath: rec.logPath, logSizeMax: rec.logMaxSize > 0 ? rec.logMaxSize * (rec.logMaxFiles > 1 ? 2 : 1) : undefined,
      socketDir: this.paths.socketDir, terminal: rec.config.Tty === true, stdin: rec.config.OpenStdin === true,
      leaveStdinOpen: rec.config.OpenStdin === true && rec.config.StdinOnce !== true, conmonLog: join(bundle, 'conmon.log'),
    };
    try {
      const snap = this.#d.snapshotter();
      if (!snap) throw internal('no snapshotter');
      const snapMounts = await snap.mounts(id);
      // Directory operations on this path are synchronous (tens of microseconds each, against a
      // thread-pool round trip each while the client and the runtime compete for the CPU).
      mkdirSync(bundle, { recursive: true, mode: 0o700 });
      const rootfs = this.paths.rootfs(id);
      mkdirSync(rootfs, { recursive: true, mode: 0o755 });
      // The rootfs is mounted on the host (bundle/rootfs), as Docker and Podman do: `docker cp`
      // into a running container then writes through a real path with the confined tar apply.
      // (runc can mount the overlay over "/" inside the container itself, which saves the mount
      // and umount spawns, but /proc/<pid>/root is no safe write path for cp: a path resolver
      // that calls realpath() on it lands on the host's root. BERTH_ROOTFS_IN_RUNTIME=1 enables
      // that mode for containers that need no cp into them.) The mount, the slowest step here,
      // goes first; conmon's start-up, the network and the /etc files overlap it.
      const hasVolumes = vols !== undefined && ((hc.Binds?.length ?? 0) > 0 || (hc.Mounts?.length ?? 0) > 0 || Object.keys(rec.config.Volumes ?? {}).length > 0);
      const needHostRootfs = process.env.BERTH_ROOTFS_IN_RUNTIME !== '1' || hasVolumes;
      mounted = needHostRootfs ? this.#mountRootfs(rec, snapMounts) : undefined;
      mounted?.catch(() => {}); // awaited below
      // A config.json of an earlier run must not be what a conmon let go by accident runs; the
      // log's directory must exist before conmon opens the log.
      rmSync(join(bundle, 'config.json'), { force: true });
      rmSync(join(this.paths.exitDir, id), { force: true });
      mkdirSync(this.paths.dir(id), { recursive: true });
      early = rt.createEarly(conmonOpts);
      early.catch(() => {}); // awaited below (or in the catch block)
      if (net) {
        netSetUp = net.setUp({
          containerId: id, name: rec.name.slice(1), hostname: rec.config.Hostname ?? id.slice(0, 12), domainname: rec.config.Domainname,
          networkMode: hc.NetworkMode ?? 'bridge', endpointsConfig: (rec.networkingConfig as { EndpointsConfig?: never } | undefined)?.EndpointsConfig,
          portBindings: hc.PortBindings as never, publishAllPorts: hc.PublishAllPorts as boolean | undefined,
          exposedPorts: Object.keys(rec.config.ExposedPorts ?? {}), dns: hc.Dns, dnsSearch: hc.DnsSearch, dnsOptions: hc.DnsOptions,
          extraHosts: hc.ExtraHosts, filesDir: this.paths.dir(id),
        });
        netSetUp.catch(() => {}); // awaited below (or in the catch block when the mount fails first)
      }
      // --network none/host: berth writes the three /etc files itself, while the rootfs mounts.
      let files = { hostname: this.paths.etcFile(id, 'hostname'), hosts: this.paths.etcFile(id, 'hosts'), resolvConf: this.paths.etcFile(id, 'resolv.conf') };
      if (!netSetUp) this.#writeEtcFiles(rec, files);
      let rootMount: OciSpec['mounts'][number] | undefined;
      let rootPath = rootfs;
      let layers: string[];
      const m0 = snapMounts[0]!;
      if (m0.type === 'overlay') {
        const opt = (k: string) => m0.options.find((o) => o.startsWith(k + '='))?.slice(k.length + 1);
        layers = [opt('upperdir')!, ...(opt('lowerdir') ?? '').split(':').filter(Boolean)];
        if (!needHostRootfs) rootMount = { destination: '/', type: 'overlay', source: 'overlay', options: m0.options };
      } else {
        layers = [m0.source];
        if (!needHostRootfs) rootPath = m0.source;
      }
      // A fresh container's /etc is its image's: the user databases read for an earlier fresh
      // container of the same image serve, and the spec is then made while the rootfs mounts.
      const etcKey = opts.fresh && needHostRootfs && rec.imageTopChainId ? rec.imageTopChainId : undefined;
      const etc = etcKey ? this.#imageEtc.get(etcKey) : undefined;
      // (Volumes copy the image's content up from the mounted rootfs.)
      if (!etc || hasVolumes) {
        await mounted;
        tr('mount');
      }
      const images = this.#d.images();
      const ic = opts.imageConfig ?? (images ? (await images.resolve(rec.image).catch(() => undefined))?.config.config ?? {} : {});
      tr('image');
      let user: ResolvedUser;
      if (etc) {
        user = resolveUserFrom(rec.config.User ?? '', etc.passwd, etc.group, hc.GroupAdd ?? []);
      } else if (needHostRootfs) {
        const dbs = await readUserDatabases(rootfs);
        if (etcKey) {
          if (this.#imageEtc.size >= 64) this.#imageEtc.delete(this.#imageEtc.keys().next().value!);
          this.#imageEtc.set(etcKey, dbs);
        }
        user = resolveUserFrom(rec.config.User ?? '', dbs.passwd, dbs.group, hc.GroupAdd ?? []);
      } else {
        user = await resolveUserInLayers(layers, rec.config.User ?? '', hc.GroupAdd ?? []);
      }
      tr('user');
      if (netSetUp) {
        sandbox = await netSetUp;
        files = { hostname: sandbox.hostnamePath, hosts: sandbox.hostsPath, resolvConf: sandbox.resolvConfPath };
      }
      // Entrypoint and Cmd were merged with the image's at create: the spec runs exactly those.
      tr('net');
      let createBody: CreateBody = { ...rec.config, Entrypoint: [rec.path], Cmd: rec.args, HostConfig: hc };
      let extraMounts: OciSpec['mounts'] = [];
      let mountPoints: MountPoint[] | undefined;
      if (vols) {
        // --volumes-from name[:ro|rw]: the other container's mount points as it last started.
        const volumesFrom = ((hc as { VolumesFrom?: string[] | null }).VolumesFrom ?? []).map((spec) => {
          const i = spec.lastIndexOf(':');
          const [ref, mode] = i > 0 ? [spec.slice(0, i), spec.slice(i + 1)] : [spec, ''];
          const src = this.store.get(ref) as ContainerRecord & { mountPoints?: MountPoint[] };
          return { mounts: src.mountPoints ?? [], mode };
        });
        const r = await vols.mountsFor({ containerId: id, binds: hc.Binds, mounts: hc.Mounts as never, tmpfs: hc.Tmpfs, imageVolumes: Object.keys(rec.config.Volumes ?? {}), volumesFrom, rootfs: needHostRootfs ? rootfs : undefined });
        extraMounts = r.oci;
        mountPoints = r.mountPoints;
        createBody = { ...createBody, HostConfig: { ...hc, Binds: null, Mounts: null, Tmpfs: null } };
      }
      const devices: Array<OciDevice & { access: string }> = [];
      for (const d of hc.Devices ?? []) devices.push(await resolveDevice(d.PathOnHost, d.PathInContainer, d.CgroupPermissions));
      if (hc.Privileged) devices.push(...(await hostDevices(devices.map((x) => x.path))));
      rec.cgroupParent = this.cgroups.parent;
      const spec = buildSpec({
        id, rootfs: rootPath, image: ic, create: createBody, user, files,
        cgroupsPath: this.cgroups.pathFor(id), cgroupVersion: this.cgroups.version,
        hostRlimits: hostRlimits(), hostCaps: hostBoundingCaps(), devices, initBinary: this.initBinary,
      });
      if (rootMount) spec.mounts.unshift(rootMount);
      if (sandbox?.netnsPath) {
        const ns = spec.linux.namespaces.find((n) => n.type === 'network');
        if (ns) ns.path = sandbox.netnsPath;
      }
      // Later mounts win in runc; keep berth's /etc files after the volumes.
      const etcIdx = spec.mounts.findIndex((m) => m.destination === '/etc/resolv.conf');
      spec.mounts.splice(etcIdx >= 0 ? etcIdx : spec.mounts.length, 0, ...extraMounts);
      tr('vols+spec');
      // config.json (~9 KB, no fsync: a crash makes the start void anyway) written synchronously.
      writeFileSync(join(bundle, 'config.json'), specToJson(spec));
      const [waiting] = await Promise.all([early.catch(() => undefined), mounted]);
      tr('mounted');
      const started = waiting ? await waiting.go() : await rt.create(conmonOpts);
      tr('conmon');
      const [pidStart, conmonStart] = await Promise.all([procStartTime(started.pid), procStartTime(started.conmonPid)]);
      tr('pids');
      return { pid: started.pid, conmonPid: started.conmonPid, pidStart, conmonStart, mountPoints, networked: sandbox !== undefined };
    } catch (err) {
      // A mount still in flight lands before the caller undoes the task.
      await mounted?.catch(() => {});
      // A conmon still waiting (the start failed before it was let go) is killed.
      (await early?.catch(() => undefined))?.abort();
      // A set-up still in flight (the mount failed first) is waited for, then undone.
      if (!sandbox && netSetUp) sandbox = await netSetUp.catch(() => undefined);
      if (sandbox && net) await net.tearDown(id).catch(() => {});
      throw err;
    }
  }

  /**
   * /etc/hostname, hosts and resolv.conf of a --network none or host container. Synchronous:
   * three small files on the start path, which the thread pool would queue behind fsyncs.
   */
  #writeEtcFiles(rec: ContainerRecord, files: { hostname: string; hosts: string; resolvConf: string }): void {
    const hc = rec.hostConfig;
    const hostNet = hc.NetworkMode === 'host';
    const readHost = (p: string): string | undefined => {
      try {
        return readFileSync(p, 'utf8');
      } catch {
        return undefined;
      }
    };
    mkdirSync(this.paths.dir(rec.id), { recursive: true });
    writeFileSync(files.hostname, (hostNet ? osHostname() : rec.config.Hostname ?? rec.id.slice(0, 12)) + '\n');
    writeFileSync(files.hosts, hostNet ? readHost('/etc/hosts') ?? hostsFile('localhost') : hostsFile(rec.config.Hostname ?? '', hc.ExtraHosts ?? []));
    writeFileSync(files.resolvConf, resolvConf(readHost('/etc/resolv.conf') ?? '', hc.Dns ?? [], hc.DnsSearch ?? [], hc.DnsOptions ?? [], hostNet));
  }

  // ------------------------------------------------------------------------------------------
  // exit

  async #onExitFile(id: string, restoring = false): Promise<void> {
    if (this.#handlingExit.has(id)) return;
    const rec = this.store.find(id);
    if (!rec) return;
    this.#handlingExit.add(id);
    try {
      await this.#locked(id, () => this.#handleExit(rec, restoring));
    } catch (err) {
      this.#d.log.error({ container: id, err: errorMessage(err) }, 'exit handling failed');
    } finally {
      this.#handlingExit.delete(id);
    }
  }

  async #handleExit(rec: ContainerRecord, restoring: boolean): Promise<void> {
    const id = rec.id;
    const code = await readExitFile(this.paths.exitDir, id);
    if (code === undefined) return;
    if (!['running', 'paused', 'restarting', 'removing'].includes(rec.state.status)) {
      await unlink(join(this.paths.exitDir, id)).catch(() => {});
      return;
    }
    this.#health.stop(id);
    const tr = tracer(`exit ${id.slice(0, 12)}`, this.#d.log);
    const oom = await this.cgroups.oomKilled(id, rec.cgroupParent).catch(() => false);
    tr('oom');
    // --rm: the removal right after releases the runtime state and cgroup, after `run --rm` got
    // its answer.
    const initGone = !(await sameProcess(rec.state.pid, rec.state.pidStart));
    if (!rec.hostConfig.AutoRemove) await this.#releaseRuntime(id, rec.runtime, rec.cgroupParent, initGone);
    else if (initGone) this.#initGone.add(id);
    tr('runc delete');
    const net = rec.hostConfig.NetworkMode === 'none' || rec.hostConfig.NetworkMode === 'host' ? undefined : this.#d.networks();
    if (net) void net.tearDown(id).catch(() => {});
    // --rm: the removal unmounts, after `run --rm` got its answer.
    if (!rec.hostConfig.AutoRemove) {
      await this.#unmountRootfs(id).catch((err: unknown) => this.#d.log.warn({ container: id, err: errorMessage(err) }, 'unmount failed'));
      await unlink(join(this.paths.exitDir, id)).catch(() => {});
    }
    const ranMs = Date.now() - Date.parse(rec.state.startedAt);
    const removing = rec.state.status === 'removing';
    rec.state = { ...rec.state, status: removing ? 'removing' : 'exited', pid: 0, pidStart: undefined, conmonPid: 0, conmonStart: undefined, exitCode: code, oomKilled: oom, finishedAt: nowIso() };
    tr('unmount');
    // --rm: the removal right after writes 'removing' anyway; a crash in between finds the
    // record 'running' with no monitor and redoes this exit (the exit file is kept until then).
    if (!rec.hostConfig.AutoRemove) await this.#save(rec);
    tr('done');
    if (oom) this.events.emit('container', 'oom', id, this.#attrs(rec));
    this.events.emit('container', 'die', id, this.#attrs(rec, { exitCode: String(code) }));
    this.#exitSignals.get(id)?.resolve();
    this.#exitSignals.delete(id);
    this.#notify(id, 'exit', code, rec.state.error || undefined);
    if (removing) return;
    if (rec.hostConfig.AutoRemove) {
      void this.#autoRemove(rec);
      return;
    }
    const mgr = this.#rm(id);
    const d = mgr.shouldRestart(rec.hostConfig.RestartPolicy, code, rec.manuallyStopped || this.#closed, rec.restartCount, restoring ? 0 : ranMs);
    if (!d.restart) return;
    rec.state.status = 'restarting';
    await this.#save(rec);
    mgr.schedule(d.delayMs, () => {
      void this.#locked(id, async () => {
        if (rec.state.status !== 'restarting' || !this.store.find(id)) return;
        rec.restartCount++;
        try {
          await this.#startContainer(rec);
          this.events.emit('container', 'restart', id, this.#attrs(rec));
        } catch (err) {
          this.#d.log.warn({ container: id, err: errorMessage(err) }, 'restart failed');
          rec.state.status = 'exited';
          await this.#save(rec).catch(() => {});
        }
      });
    });
  }

  async #autoRemove(rec: ContainerRecord): Promise<void> {
    try {
      await this.remove(rec.id, { force: true, volumes: true });
    } catch (err) {
      this.#d.log.warn({ container: rec.id, err: errorMessage(err) }, 'auto-remove failed');
    }
  }

  // ------------------------------------------------------------------------------------------
  // stop / kill / pause / restart / remove

  #running(rec: ContainerRecord): void {
    if (rec.state.status !== 'running' && rec.state.status !== 'paused') throw failedPrecondition(`Container ${rec.id} is not running`);
  }

  /** Send a signal; the PID is checked against its start time first. */
  async #signal(rec: ContainerRecord, sig: number): Promise<void> {
    if (!(await sameProcess(rec.state.pid, rec.state.pidStart))) {
      // Already gone: the exit file will tell.
      return;
    }
    // `runc kill` checks the same start time and then kill(2)s the init: doing it here saves
    // spawning the runtime (a fork of berthd) on the stop/rm path.
    try {
      process.kill(rec.state.pid, sig);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return;
    }
    await this.runtime(rec.runtime).kill(rec.id, String(sig)).catch((err: unknown) => {
      if (!isKind(err, 'NotFound') && !isKind(err, 'FailedPrecondition')) throw err;
    });
  }

  async #waitExit(rec: ContainerRecord, timeoutMs: number): Promise<boolean> {
    if (rec.state.status !== 'running' && rec.state.status !== 'paused' && rec.state.status !== 'removing') return true;
    if (!rec.state.pid) return true;
    const sig = this.#exitSignal(rec.id);
    const check = setInterval(() => void readExitFile(this.paths.exitDir, rec.id).then((c) => { if (c !== undefined) void this.#onExitFile(rec.id); }), 200);
    try {
      if (timeoutMs < 0) {
        await sig.promise;
        return true;
      }
      let t: NodeJS.Timeout | undefined;
      const r = await Promise.race([sig.promise.then(() => true), new Promise<boolean>((res) => (t = setTimeout(() => res(false), timeoutMs)))]);
      clearTimeout(t);
      return r;
    } finally {
      clearInterval(check);
    }
  }

  /** Returns false if it was not running (304). */
  async stop(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<boolean> {
    const rec = this.store.get(ref);
    const mgr = this.#rm(rec.id);
    if (rec.state.status === 'restarting') {
      mgr.cancelPending();
      rec.manuallyStopped = true;
      rec.state.status = 'exited';
      await this.#save(rec);
      return true;
    }
    if (rec.state.status !== 'running' && rec.state.status !== 'paused') return false;
    rec.manuallyStopped = true;
    mgr.cancelPending();
    await this.#save(rec);
    this.#health.stop(rec.id);
    if (rec.state.status === 'paused') await this.runtime(rec.runtime).resume(rec.id).catch(() => {});
    const sig = parseSignal(opts.signal || rec.config.StopSignal || 'SIGTERM');
    const timeout = opts.timeout ?? (typeof rec.config.StopTimeout === 'number' ? rec.config.StopTimeout : 10);
    await this.#signal(rec, sig);
    if (!(await this.#waitExit(rec, timeout < 0 ? -1 : timeout * 1000))) {
      await this.#signal(rec, 9);
      if (!(await this.#waitExit(rec, 30_000))) {
        // runc checks the init's start time itself before it signals: safe against PID reuse.
        await this.runtime(rec.runtime).kill(rec.id, 'KILL', true).catch(() => {});
        if (!(await this.#waitExit(rec, 10_000))) throw internal(`container ${rec.id} did not stop`);
      }
    }
    this.events.emit('container', 'stop', rec.id, this.#attrs(rec));
    return true;
  }

  async kill(ref: string, signal = 'SIGKILL'): Promise<void> {
    const rec = this.store.get(ref);
    const sig = parseSignal(signal || 'SIGKILL');
    this.#running(rec);
    if (rec.state.status === 'paused' && sig !== 9) throw failedPrecondition(`Container ${rec.id} is paused. Unpause the container before stopping or killing`);
    if (sig === 9 || sig === parseSignal(rec.config.StopSignal || 'SIGTERM')) {
      rec.manuallyStopped = true;
      this.#rm(rec.id).cancelPending();
      await this.#save(rec);
    }
    await this.#signal(rec, sig);
    this.events.emit('container', 'kill', rec.id, this.#attrs(rec, { signal: String(sig) }));
    if (sig === 9) await this.#waitExit(rec, 10_000);
  }

  async pause(ref: string): Promise<void> {
    const rec = this.store.get(ref);
    await this.#locked(rec.id, async () => {
      if (rec.state.status === 'paused') throw failedPrecondition(`Container ${rec.id} is already paused`);
      this.#running(rec);
      await this.runtime(rec.runtime).pause(rec.id);
      rec.state.status = 'paused';
      await this.#save(rec);
    });
    this.events.emit('container', 'pause', rec.id, this.#attrs(rec));
  }

  async unpause(ref: string): Promise<void> {
    const rec = this.store.get(ref);
    await this.#locked(rec.id, async () => {
      if (rec.state.status !== 'paused') throw failedPrecondition(`Container ${rec.id} is not paused`);
      await this.runtime(rec.runtime).resume(rec.id);
      rec.state.status = 'running';
      await this.#save(rec);
    });
    this.events.emit('container', 'unpause', rec.id, this.#attrs(rec));
  }

  async restart(ref: string, opts: { timeout?: number; signal?: string } = {}): Promise<void> {
    const rec = this.store.get(ref);
    await this.stop(rec.id, opts);
    await this.#locked(rec.id, async () => {
      rec.manuallyStopped = false;
      this.#rm(rec.id).reset();
      if (rec.state.status !== 'running') await this.#startContainer(rec);
    });
    this.events.emit('container', 'restart', rec.id, this.#attrs(rec));
  }

  async wait(ref: string, cond: WaitCondition): Promise<{ code: number; error?: string }> {
    const rec = this.store.get(ref);
    const s = rec.state.status;
    const live = s === 'running' || s === 'paused' || s === 'restarting';
    if (cond === 'not-running' && !live) return { code: rec.state.exitCode, error: rec.state.error || undefined };
    return new Promise((resolve) => {
      const list = this.#waiters.get(rec.id) ?? [];
      list.push({ cond, resolve });
      this.#waiters.set(rec.id, list);
    });
  }

  async remove(ref: string, opts: { force?: boolean; volumes?: boolean } = {}): Promise<void> {
    const rec = this.store.get(ref);
    const s = rec.state.status;
    if ((s === 'running' || s === 'paused' || s === 'restarting') && !opts.force) {
      if (s === 'restarting') throw failedPrecondition(`You cannot remove a restarting container ${rec.id}. Stop the container before attempting removal or force remove`);
      throw failedPrecondition(`You cannot remove a ${s} container ${rec.id}. Stop the container before attempting removal or force remove`);
    }
    if (s === 'removing' && !this.#handlingExit.has(rec.id) && !opts.force) throw failedPrecondition(`removal of container ${rec.id} is already in progress`);
    this.#rm(rec.id).cancel();
    this.#health.stop(rec.id);
    const wasLive = s === 'running' || s === 'paused';
    if (wasLive) {
      rec.state.status = 'removing';
      await this.#save(rec);
      if (s === 'paused') await this.runtime(rec.runtime).resume(rec.id).catch(() => {});
      await this.#signal(rec, 9);
      await this.#waitExit(rec, 10_000);
    }
    await this.#locked(rec.id, () => this.#finishRemove(rec, opts.volumes === true));
  }

  async #finishRemove(rec: ContainerRecord, volumes: boolean): Promise<void> {
    if (!this.store.find(rec.id)) return;
    if (rec.state.status !== 'removing') {
      rec.state.status = 'removing';
      // --rm right after an exit: a crash before the record is gone redoes the exit and the
      // removal at restart (every step is idempotent), so skip the synced write on that path.
      if (!rec.hostConfig.AutoRemove) await this.#save(rec);
    }
    // `run --rm` (AutoRemove) answers `removed` once the network's fast half is done; an explicit
    // rm returns with the namespace, rules and leases gone.
    await this.#d.networks()?.forget(rec.id, { background: rec.hostConfig.AutoRemove === true }).catch(() => {});
    await this.#d.volumes()?.release(rec.id, { removeAnonymous: volumes || rec.hostConfig.AutoRemove === true }).catch(() => {});
    // Gone for the API from here on (name free, 'removed' waiters answered: `run --rm` returns);
    // its mounts, runtime files, snapshot and record go right after (the process is dead, its
    // runtime state and cgroup were removed at exit). A crash in between leaves a record and
    // files that restore removes again.
    this.store.forget(rec);
    this.#restart.delete(rec.id);
    this.events.emit('container', 'destroy', rec.id, this.#attrs(rec));
    // Docker's SetRemoved clears the error: a removed-waiter gets the exit code only (a failed
    // start under --rm would otherwise make the CLI log "Error waiting for container").
    this.#notify(rec.id, 'removed', rec.state.exitCode);
    this.#exitSignals.get(rec.id)?.resolve();
    this.#exitSignals.delete(rec.id);
    await this.#teardownFiles(rec.id, rec.runtime, rec.cgroupParent);
    await this.#d.snapshotter()?.remove(rec.id).catch((err: unknown) => {
      if (!isKind(err, 'NotFound')) this.#d.log.warn({ container: rec.id, err: errorMessage(err) }, 'snapshot remove failed');
    });
    await this.store.deleteFiles(rec.id);
  }

  /**
   * The runtime's state and the cgroup of a container whose init has exited (or is to be
   * killed). Fast path: init is gone (so is every process of its PID namespace), so removing
   * the cgroup and the runtime's state is all `runc delete` would do; an EBUSY cgroup
   * (stragglers) falls back to `runc delete --force`.
   */
  async #releaseRuntime(id: string, runtimeName: string, cgroupParent: string | undefined, initGone: boolean): Promise<void> {
    let rt: OciRuntime | undefined;
    try {
      rt = this.runtime(runtimeName);
    } catch {
      // an unknown runtime: nothing of its to delete
    }
    // After a recorded exit the runtime state is already gone: nothing to spawn.
    if (rt && existsSync(join(rt.root, id))) {
      const fast = initGone && (await this.cgroups.remove(id, cgroupParent).then(() => rt.forgetStopped(id)).catch(() => false));
      if (fast) return;
      await rt.delete(id, true).catch((err: unknown) => this.#d.log.warn({ container: id, err: errorMessage(err) }, 'runtime delete failed'));
    }
    await this.cgroups.remove(id, cgroupParent).catch(() => {});
  }

  /** Runtime state, cgroups, mounts and runtime files of a container (not its record or snapshot). */
  async #teardownFiles(id: string, runtimeName: string, cgroupParent?: string): Promise<void> {
    // Only an exit this daemon saw proves the init gone; otherwise `runc delete --force` kills
    // whatever is left (a start a crash interrupted leaves runc init waiting on its fifo).
    const initGone = this.#initGone.delete(id);
    await this.#releaseRuntime(id, runtimeName, cgroupParent, initGone);
    await this.#unmountRootfs(id);
    await rm(this.paths.bundle(id), { recursive: true, force: true });
    await unlink(join(this.paths.exitDir, id)).catch(() => {});
    await unlink(join(this.paths.socketDir, id)).catch(() => {});
  }

  async rename(ref: string, newName: string): Promise<void> {
    const rec = this.store.get(ref);
    if (!newName) throw invalidArgument('Neither old nor new names may be empty');
    const n = newName.startsWith('/') ? newName : `/${newName}`;
    if (n === rec.name) throw invalidArgument(`Renaming a container with the same name as its current name`);
    const old = rec.name;
    this.store.reserveName(n, rec.id);
    rec.name = n;
    try {
      await this.#save(rec);
    } catch (err) {
      rec.name = old;
      this.store.releaseName(n, rec.id);
      throw err;
    }
    this.store.releaseName(old, rec.id);
    this.events.emit('container', 'rename', rec.id, this.#attrs(rec, { oldName: old }));
  }

  /** POST /containers/{id}/update: resources and the restart policy. */
  async update(ref: string, body: HostConfig): Promise<string[]> {
    if (typeof body !== 'object' || body === null) throw invalidArgument('invalid update body');
    const rec = this.store.get(ref);
    return this.#locked(rec.id, async () => {
      const keys = ['Memory', 'MemorySwap', 'MemoryReservation', 'NanoCpus', 'CpuShares', 'CpuPeriod', 'CpuQuota', 'CpusetCpus', 'CpusetMems', 'PidsLimit', 'BlkioWeight', 'RestartPolicy'] as const;
      const next: HostConfig = { ...rec.hostConfig };
      for (const k of keys) if (body[k] !== undefined && body[k] !== null && !(k !== 'RestartPolicy' && body[k] === 0 && k !== 'PidsLimit')) (next as Record<string, unknown>)[k] = body[k];
      if (body.RestartPolicy) validateRestartPolicy(body.RestartPolicy, rec.hostConfig.AutoRemove === true);
      if (next.Memory && next.MemorySwap === undefined) next.MemorySwap = 0;
      const spec = buildSpec({
        id: rec.id, rootfs: '/', image: {}, create: { ...rec.config, Cmd: ['x'], HostConfig: next }, user: { uid: 0, gid: 0, additionalGids: [], home: '/' },
        files: { hostname: '/h', hosts: '/h', resolvConf: '/r' }, cgroupsPath: '/', cgroupVersion: this.cgroups.version,
        hostRlimits: hostRlimits(), hostCaps: hostBoundingCaps(), initBinary: '/init',
      });
      if (rec.state.status === 'running' || rec.state.status === 'paused') {
        const { devices: _d, ...resources } = spec.linux.resources;
        await this.runtime(rec.runtime).update(rec.id, resources);
      }
      rec.hostConfig = next;
      await this.#save(rec);
      this.events.emit('container', 'update', rec.id, this.#attrs(rec));
      return [];
    });
  }

  async prune(until?: number, labels: string[] = []): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    const deleted: string[] = [];
    for (const rec of this.store.all()) {
      if (!['exited', 'created', 'dead'].includes(rec.state.status)) continue;
      if (until !== undefined && Date.parse(rec.created) >= until) continue;
      if (!labelsMatch(rec.config.Labels ?? {}, labels)) continue;
      try {
        await this.remove(rec.id, { volumes: false });
        deleted.push(rec.id);
      } catch {
        /* raced with a start */
      }
    }
    if (deleted.length) this.events.emit('container', 'prune', '', { reclaimed: '0' });
    return { ContainersDeleted: deleted, SpaceReclaimed: 0 };
  }

  // ------------------------------------------------------------------------------------------
  // attach

  /**
   * Attach to a container's streams. For a created container the attach is connected when it
   * starts (after runc create, before runc start: nothing is missed). Resolves when the streams
   * end (the container exited) or `signal` aborts.
   */
  async attach(ref: string, sink: StreamSink, signal: AbortSignal): Promise<void> {
    const rec = this.store.get(ref);
    const s = rec.state.status;
    const live = s === 'running' || s === 'paused';
    if (!live && s !== 'created' && s !== 'exited' && s !== 'restarting') return;
    if (!(sink.stdin && rec.config.OpenStdin)) {
      // Output only: follow conmon's log file from where it is now (no bridge process to spawn).
      const offset = (await stat(rec.logPath).catch(() => undefined))?.size ?? 0;
      const tty = rec.config.Tty === true;
      const onEntry = (e: { stream: 1 | 2; data: Buffer }) => sink.write(tty ? 1 : e.stream, e.data);
      if (live) {
        await followLog(rec.logPath, offset, onEntry, this.#exitSignal(rec.id).promise, signal);
        return;
      }
      // (Wrapped: resolving with a bare promise would wait for it.)
      const run = await new Promise<{ stopped: Promise<void> } | undefined>((resolve) => {
        const fn = async () => resolve({ stopped: this.#exitSignal(rec.id).promise });
        this.#addPending(rec.id, fn, signal, () => resolve(undefined));
      });
      if (run) await followLog(rec.logPath, offset, onEntry, run.stopped, signal);
      return;
    }
    const connect = async (bundle: string): Promise<AttachStream> => {
      const a = attachConmon(bundle);
      // With a TTY the container has no stderr: stream 3 carries only conmon's own messages.
      a.onData((st, d) => {
        if (rec.config.Tty && st === 2) return;
        sink.write(st, d);
      });
      await a.ready;
      if (sink.stdin && rec.config.OpenStdin) {
        pipeStdin(sink, a.stdin, () => {
          this.events.emit('container', 'detach', rec.id, this.#attrs(rec));
          a.close();
        });
      }
      return a;
    };
    let att: AttachStream | undefined;
    if (live) {
      att = await connect(this.paths.bundle(rec.id));
    } else {
      att = await new Promise<AttachStream | undefined>((resolve) => {
        const fn = async (bundle: string) => {
          try {
            resolve(await connect(bundle));
          } catch {
            resolve(undefined);
          }
        };
        this.#addPending(rec.id, fn, signal, () => resolve(undefined));
      });
    }
    if (!att) return;
    const a = att;
    signal.addEventListener('abort', () => a.close(), { once: true });
    await a.closed;
  }

  /** Run `fn` at the container's next start, between runc create and runc start. */
  #addPending(id: string, fn: (bundle: string) => Promise<void>, signal: AbortSignal, onAbort: () => void): void {
    const list = this.#pendingAttach.get(id) ?? [];
    list.push(fn);
    this.#pendingAttach.set(id, list);
    const fails = this.#pendingFail.get(id) ?? [];
    fails.push(onAbort);
    this.#pendingFail.set(id, fails);
    signal.addEventListener('abort', () => {
      const l = this.#pendingAttach.get(id);
      if (l) this.#pendingAttach.set(id, l.filter((x) => x !== fn));
      onAbort();
    }, { once: true });
  }

  async resize(ref: string, h: number, w: number): Promise<void> {
    const rec = this.store.get(ref);
    this.#running(rec);
    if (!rec.config.Tty) return;
    await resizeTty(this.paths.bundle(rec.id), h, w).catch(() => {});
  }

  // ------------------------------------------------------------------------------------------
  // exec

  execCreate(ref: string, cfg: ExecConfig): string {
    const rec = this.store.get(ref);
    if (rec.state.status === 'paused') throw failedPrecondition(`Container ${rec.id} is paused, unpause the container before exec`);
    this.#running(rec);
    if (!Array.isArray(cfg.Cmd) || cfg.Cmd.length === 0) throw invalidArgument('No exec command specified');
    const id = randomBytes(32).toString('hex');
    let resolveDone!: (n: number) => void;
    const done = new Promise<number>((r) => (resolveDone = r));
    const ex: ExecRecord & { resolveDone: (n: number) => void } = { id, containerId: rec.id, config: cfg, running: false, exitCode: null, pid: 0, done, resolveDone };
    this.#execs.set(id, ex);
    this.events.emit('container', `exec_create: ${cfg.Cmd.join(' ')}`, rec.id, this.#attrs(rec, { execID: id }));
    return id;
  }

  exec(id: string): ExecRecord {
    const e = this.#execs.get(id);
    if (!e) throw notFound(`No such exec instance: ${id}`);
    return e;
  }

  async #execProcess(rec: ContainerRecord, cfg: ExecConfig): Promise<object> {
    const spec = JSON.parse(await readFile(join(this.paths.bundle(rec.id), 'config.json'), 'utf8')) as OciSpec;
    const p = spec.process;
    const user = await resolveUser(this.#rootView(rec), cfg.User || rec.config.User || '', rec.hostConfig.GroupAdd ?? []);
    const env = new Map<string, string>();
    for (const e of [...p.env, ...(cfg.Env ?? [])]) {
      const i = e.indexOf('=');
      if (i > 0) env.set(e.slice(0, i), e.slice(i + 1));
    }
    if (cfg.Tty && !env.has('TERM')) env.set('TERM', 'xterm');
    const caps = cfg.Privileged ? hostBoundingCaps() : p.capabilities.bounding;
    return {
      ...p,
      terminal: cfg.Tty === true,
      ...(cfg.Tty && cfg.ConsoleSize && cfg.ConsoleSize[0] > 0 ? { consoleSize: { height: cfg.ConsoleSize[0], width: cfg.ConsoleSize[1] } } : { consoleSize: undefined }),
      args: cfg.Cmd,
      env: [...env].map(([k, v]) => `${k}=${v}`),
      cwd: cfg.WorkingDir ? posix.normalize(cfg.WorkingDir) : p.cwd,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length ? { additionalGids: user.additionalGids } : {}) },
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
    };
  }

  /**
   * Run an exec session. Without a TTY `runc exec` runs as berthd's child with plain pipes; with
   * one, conmon holds the pty (Node cannot receive the console fd) and the attach bridge relays.
   */
  async execStart(id: string, opts: { detach: boolean; tty?: boolean; consoleSize?: [number, number] }, sink: StreamSink | undefined, signal: AbortSignal): Promise<number> {
    const ex = this.exec(id) as ExecRecord & { resolveDone: (n: number) => void };
    if (ex.running || ex.exitCode !== null) throw failedPrecondition(`Error: Exec command ${id} is already running`);
    const rec = this.store.get(ex.containerId);
    this.#running(rec);
    const cfg = { ...ex.config, Tty: opts.tty ?? ex.config.Tty, ConsoleSize: opts.consoleSize ?? ex.config.ConsoleSize };
    const dir = this.paths.exec(id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const procFile = join(dir, 'process.json');
    await writeFile(procFile, specToJson((await this.#execProcess(rec, cfg)) as OciSpec));
    const rt = this.runtime(rec.runtime);
    ex.running = true;
    this.events.emit('container', `exec_start: ${cfg.Cmd.join(' ')}`, rec.id, this.#attrs(rec, { execID: id }));
    const finish = async (code: number) => {
      ex.running = false;
      ex.exitCode = code;
      ex.resolveDone(code);
      this.events.emit('container', 'exec_die', rec.id, this.#attrs(rec, { execID: id, exitCode: String(code) }));
      await rm(dir, { recursive: true, force: true }).catch(() => {});
      // Docker keeps finished exec records a while for inspect; drop ours after 5 minutes.
      setTimeout(() => this.#execs.delete(id), 300_000).unref();
    };
    if (!cfg.Tty) {
      const child = spawn(rt.path, [`--root=${rt.root}`, 'exec', '--process', procFile, rec.id], {
        stdio: [sink?.stdin && cfg.AttachStdin ? 'pipe' : 'ignore', opts.detach ? 'ignore' : 'pipe', opts.detach ? 'ignore' : 'pipe'],
        detached: opts.detach,
      });
      ex.pid = child.pid ?? 0;
      let errText = '';
      child.stdout?.on('data', (b: Buffer) => sink?.write(1, b));
      child.stderr?.on('data', (b: Buffer) => {
        if (errText.length < 4096) errText += b.toString();
        sink?.write(2, b);
      });
      let detach!: () => void;
      const detached = new Promise<'detached'>((r) => (detach = () => r('detached')));
      if (child.stdin && sink?.stdin) {
        child.stdin.on('error', () => {});
        pipeStdin(sink, child.stdin, detach);
      }
      const onAbort = () => child.kill('SIGKILL');
      signal.addEventListener('abort', onAbort, { once: true });
      const exited = new Promise<number>((resolve) => {
        child.on('error', () => resolve(126));
        child.on('close', (c, s) => resolve(c ?? (s ? 128 + (SIGNALS[s.replace(/^SIG/, '')] ?? 9) : 128)));
      }).then((code) => (code === 255 && /unable to start container process/.test(errText) ? startFailureCode(errText) : code));
      if (opts.detach) {
        // Docker answers a detached start at once; the exit is recorded when it comes.
        signal.removeEventListener('abort', onAbort);
        void exited.then((c) => finish(c));
        return 0;
      }
      const first = await Promise.race([exited, detached]);
      signal.removeEventListener('abort', onAbort);
      if (first === 'detached') {
        // The session keeps running without its client: output is dropped from here on (runc
        // exec is berthd's child, so its pipes must still be drained), the exit is recorded.
        child.stdout?.removeAllListeners('data');
        child.stderr?.removeAllListeners('data');
        child.stdout?.resume();
        child.stderr?.resume();
        void exited.then((c) => finish(c));
        return 0;
      }
      await finish(first);
      return first;
    }
    // TTY: conmon with --exec-attach.
    ex.dir = dir;
    const proc = await spawnConmon({
      id: rec.id, name: id.slice(0, 12), runtimePath: rt.path, runtimeArgs: [`--root=${rt.root}`], bundle: dir,
      pidFile: join(dir, 'pid'), conmonPidFile: join(dir, 'conmon.pid'), exitDir: dir, logPath: join(dir, 'exec.log'),
      socketDir: this.paths.socketDir, terminal: true, stdin: cfg.AttachStdin === true, conmonLog: join(dir, 'conmon.log'),
      exec: { processSpec: procFile, attach: !opts.detach },
    }).catch(async (err: unknown) => {
      await finish(126);
      throw err;
    });
    let att: AttachStream | undefined;
    let detach!: () => void;
    const detached = new Promise<'detached'>((r) => (detach = () => r('detached')));
    if (!opts.detach && sink) {
      att = attachConmon(dir);
      att.onData((st, d) => {
        if (st === 1) sink.write(1, d);
      });
      await att.ready.catch(() => {});
      if (sink.stdin && cfg.AttachStdin) {
        const a = att;
        pipeStdin(sink, a.stdin, () => {
          a.close();
          detach();
        });
      }
      signal.addEventListener('abort', () => att?.close(), { once: true });
    }
    proc.start?.();
    const exited = (async () => {
      let code = await (proc.exitCode ?? Promise.resolve(-1));
      if (code < 0) {
        // runc could not start the process: its error (from conmon's sync pipe) goes to the
        // client, and the exit code says which failure it was (as Docker: 127 or 126).
        const msg = proc.startError?.();
        if (msg && sink && !opts.detach) sink.write(1, Buffer.from(`OCI runtime exec failed: ${msg}\r\n`));
        code = msg ? startFailureCode(msg) : 126;
      }
      return code;
    })();
    const first = opts.detach ? 'detached' : await Promise.race([exited, detached]);
    if (first === 'detached') {
      // conmon keeps the session; its exit is recorded when it comes.
      void exited.then((c) => finish(c));
      return 0;
    }
    if (att) await Promise.race([att.closed, new Promise((r) => setTimeout(r, 2000))]);
    att?.close();
    await finish(first);
    return first;
  }

  async execResize(id: string, h: number, w: number): Promise<void> {
    const ex = this.exec(id);
    if (ex.dir && ex.config.Tty) await resizeTty(ex.dir, h, w).catch(() => {});
  }

  /** Run a command in the container and capture its output (health checks). */
  async execCapture(ref: string, cmd: string[], timeoutMs: number): Promise<{ code: number; output: string }> {
    const id = this.execCreate(ref, { Cmd: cmd, AttachStdout: true, AttachStderr: true });
    let output = '';
    const ac = new AbortController();
    const t = setTimeout(() => ac.abort(), timeoutMs);
    try {
      const code = await this.execStart(id, { detach: false }, { write: (_s, d) => { if (output.length < 4096) output += d.toString(); } }, ac.signal);
      return { code: ac.signal.aborted ? -1 : code, output: output.slice(0, 4096) };
    } finally {
      clearTimeout(t);
      this.#execs.delete(id);
    }
  }

  // ------------------------------------------------------------------------------------------
  // filesystem access for export/archive

  /** The running container's root filesystem on the host (read-only uses: user lookup, cp out). */
  #rootView(rec: ContainerRecord): string {
    return existsSync(join(this.paths.rootfs(rec.id), 'proc')) ? this.paths.rootfs(rec.id) : `/proc/${rec.state.pid}/root`;
  }

  /**
   * Run `fn` with the container's root filesystem (mounted on the host if it is stopped).
   * `freeze`: a running container is paused meanwhile (as `podman cp` does), so its processes
   * cannot swap a checked directory for a symlink while `fn` reads or writes through it (the
   * path checks and the copy are then race-free); it is resumed after, and a container the
   * user paused stays paused.
   */
  async withRootfs<T>(ref: string, fn: (rootfs: string) => Promise<T>, opts: { freeze?: boolean } = {}): Promise<T> {
    const rec = this.store.get(ref);
    const running = rec.state.status === 'running' || rec.state.status === 'paused';
    // Running: its host mount (never /proc/<pid>/root, see #startContainer). Stopped: mount it.
    // Never a second overlay instance over the upper dir of a running container.
    if (running && !isMountPoint(this.paths.rootfs(rec.id))) throw failedPrecondition(`container ${rec.id} runs with its rootfs mounted by the runtime: stop it first`);
    if (running && opts.freeze) {
      // Under the container's lock: no user pause/unpause/stop interleaves with the freeze.
      return this.#locked(rec.id, async () => {
        const thaw = rec.state.status === 'running';
        if (thaw) await this.runtime(rec.runtime).pause(rec.id);
        try {
          return await fn(this.paths.rootfs(rec.id));
        } finally {
          if (thaw) await this.runtime(rec.runtime).resume(rec.id).catch((err: unknown) => this.#d.log.error({ container: rec.id, err: errorMessage(err) }, 'resume after copy failed'));
        }
      });
    }
    const rootfs = await this.#locked(rec.id, () => this.#mountRootfs(rec));
    try {
      return await fn(rootfs);
    } finally {
      if (!running) {
        await this.#locked(rec.id, async () => {
          if (rec.state.status !== 'running' && rec.state.status !== 'paused') await this.#unmountRootfs(rec.id);
        }).catch(() => {});
      }
    }
  }

  /** PIDs of the container's processes (host view). */
  async pids(ref: string): Promise<number[]> {
    const rec = this.store.get(ref);
    this.#running(rec);
    return this.runtime(rec.runtime).pids(rec.id);
  }

  /** The image ID a reference resolves to now, or undefined. */
  async imageId(ref: string): Promise<string | undefined> {
    return (await this.#d.images()?.resolve(ref).catch(() => undefined))?.record.id;
  }

  /**
   * Docker's SizeRw (apparent size of the files in the container's writable layer, hardlinks
   * once) and SizeRootFs (that plus its image's layers), for `?size=1` on list and inspect.
   */
  async sizes(ids: string[]): Promise<Map<string, { rw: number; rootFs: number }>> {
    const out = new Map<string, { rw: number; rootFs: number }>();
    if (ids.length === 0) return out;
    const snaps = (await this.#d.snapshotter()?.list().catch(() => undefined)) ?? [];
    const rw = new Map(snaps.filter((s) => s.kind === 'active').map((s) => [s.name, s.size]));
    const images = this.#d.images();
    const imageSize = new Map<string, number>();
    for (const id of ids) {
      const rec = this.store.find(id);
      if (!rec) continue;
      if (!imageSize.has(rec.image)) imageSize.set(rec.image, (await images?.resolve(rec.image).catch(() => undefined))?.record.size ?? 0);
      const r = rw.get(rec.id) ?? 0;
      out.set(rec.id, { rw: r, rootFs: r + imageSize.get(rec.image)! });
    }
    return out;
  }

  health(): HealthMonitor {
    return this.#health;
  }

  execs(): ExecRecord[] {
    return [...this.#execs.values()];
  }

  async listExecDirs(): Promise<string[]> {
    return readdir(this.paths.execDir).catch(() => []);
  }
}

/** BERTH_TRACE=1: log the time each step of an operation took (performance work). */
function tracer(what: string, log: Logger): (step: string) => void {
  if (process.env.BERTH_TRACE !== '1') return () => {};
  const at = performance.now();
  let last = at;
  const steps: string[] = [];
  return (step: string) => {
    const now = performance.now();
    steps.push(`${step}=${(now - last).toFixed(1)}`);
    last = now;
    if (step === 'save' || step === 'done') log.info({ at: at.toFixed(1), steps: steps.join(' ') }, what);
  };
}

function labelsMatch(labels: Record<string, string>, filters: string[]): boolean {
  return filters.every((f) => {
    const neg = f.startsWith('!');
    const [k, v] = (neg ? f.slice(1) : f).split('=', 2) as [string, string?];
    const has = v === undefined ? k in labels : labels[k] === v;
    return neg ? !has : has;
  });
}

/** Whether `path` is a mount point (synchronous: the kernel's table is read from memory). */
function isMountPoint(path: string): boolean {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
  const esc = path.replace(/\\/g, '\\134').replace(/ /g, '\\040');
  return mounts.split('\n').some((l) => l.split(' ')[4] === esc);
}

/**
 * The host's device nodes for --privileged (Docker gives them all): /dev and its
 * subdirectories, minus what runc sets up itself (pts, the console, the default nodes).
 */
async function hostDevices(skip: string[]): Promise<Array<OciDevice & { access: string }>> {
  const out: Array<OciDevice & { access: string }> = [];
  const runcOwn = new Set(['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/dev/console', '/dev/ptmx']);
  const walk = async (dir: string, depth: number): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const p = join(dir, e.name);
      if (e.isDirectory()) {
        if (depth < 2 && !['pts', 'shm', 'mqueue', 'fd'].includes(e.name)) await walk(p, depth + 1);
      } else if ((e.isCharacterDevice() || e.isBlockDevice()) && !runcOwn.has(p) && !skip.includes(p)) {
        out.push(await resolveDevice(p, p, 'rwm').catch(() => undefined) as OciDevice & { access: string });
      }
    }
  };
  await walk('/dev', 0);
  return out.filter(Boolean);
}

async function resolveDevice(pathOnHost: string, inContainer: string | undefined, perms: string | undefined): Promise<OciDevice & { access: string }> {
  if (!pathOnHost || !pathOnHost.startsWith('/')) throw invalidArgument(`invalid device path: ${pathOnHost}`);
  const access = perms || 'rwm';
  if (!/^[rwm]{1,3}$/.test(access)) throw invalidArgument(`invalid device cgroup permissions: ${perms}`);
  let st;
  try {
    st = await stat(pathOnHost);
  } catch {
    throw invalidArgument(`error gathering device information while adding custom device "${pathOnHost}": no such file or directory`);
  }
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (!type) throw invalidArgument(`error gathering device information while adding custom device "${pathOnHost}": not a device node`);
  const rdev = st.rdev;
  const major = ((rdev >> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return { path: inContainer || pathOnHost, type, major, minor, fileMode: st.mode & 0o7777, uid: 0, gid: 0, access };
}
