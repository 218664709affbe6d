// berth's VolumeService: Docker's `local` volume driver. See src/core/volumes.ts for the
// contract and volume-paths.ts for the layout.
//
// - Plain volumes are directories under <dataRoot>/volumes/<name>/_data.
// - `--opt type=tmpfs|<fs> --opt device=... --opt o=...` volumes are mounted on _data when a
//   container first needs them (through the Host interface) and unmounted on removal.
// - `--opt o=bind --opt device=/path` volumes hand the device path to the container directly.
// - Copy-up: an empty volume mounted where the image has content gets that content first
//   (`cp -a`: symlinks are copied as symlinks, never followed), the image path resolved inside
//   the rootfs by secureJoin so a symlinked mount point cannot point the copy at the host.
import { readdir, readFile, rm, mkdir, lstat, realpath, stat, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type {
  MountPoint, MountRequest, OciMount, ResolvedMounts, VolumeCreateRequest, VolumeResource, VolumeService,
} from '../core/volumes.ts';
import { failedPrecondition, invalidArgument, notFound, errorMessage } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import type { Logger } from '../pkg/log.ts';
import { writeJsonAtomic } from '../pkg/atomic-file.ts';
import { secureJoin } from '../layer/secure-join.ts';
import { tmpfsOptions } from '../runtime/spec.ts';
import { VolumePaths, validateVolumeName } from './volume-paths.ts';
import { planMounts } from './mount-spec.ts';

interface VolumeRecord {
  name: string;
  driver: 'local';
  options: Record<string, string>;
  labels: Record<string, string>;
  createdAt: string;
  anonymous: boolean;
}

/** Which volumes a container uses: destination -> volume name (anonymous ones are reused on restart). */
interface ContainerRefs {
  volumes: Record<string, string>;
  anonymous: string[];
}

const LOCAL_OPTS = new Set(['type', 'device', 'o', 'size']);

export class LocalVolumeService implements VolumeService {
  readonly paths: VolumePaths;
  #host: Host;
  #log: Logger;
  #volumes = new Map<string, VolumeRecord>();
  #refs = new Map<string, ContainerRefs>();
  #mounted = new Set<string>();
  #queue: Promise<unknown> = Promise.resolve();

  constructor(opts: { host: Host; dataRoot: string; log: Logger }) {
    this.paths = new VolumePaths(opts.dataRoot);
    this.#host = opts.host;
    this.#log = opts.log;
  }

  async start(): Promise<void> {
    await mkdir(this.paths.refsDir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(this.paths.root)) {
      if (name.startsWith('.')) continue;
      try {
        this.#volumes.set(name, JSON.parse(await readFile(this.paths.meta(name), 'utf8')) as VolumeRecord);
      } catch (err) {
        this.#log.warn({ volume: name, err: errorMessage(err) }, 'ignoring volume without a readable record');
      }
    }
    for (const f of await readdir(this.paths.refsDir)) {
      if (!f.endsWith('.json')) continue;
      this.#refs.set(f.slice(0, -5), JSON.parse(await readFile(join(this.paths.refsDir, f), 'utf8')) as ContainerRefs);
    }
    const mi = await readFile('/proc/self/mountinfo', 'utf8');
    for (const v of this.#volumes.keys()) if (mi.includes(` ${this.paths.data(v)} `)) this.#mounted.add(v);
  }

  /** One state change at a time: create/remove/mount decisions never interleave. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#queue.then(fn, fn);
    this.#queue = p.catch(() => {});
    return p;
  }

  #users(name: string): string[] {
    const out: string[] = [];
    for (const [cid, r] of this.#refs) if (Object.values(r.volumes).includes(name)) out.push(cid);
    return out;
  }

  #resource(v: VolumeRecord, withUsage = false): VolumeResource {
    const r: VolumeResource = {
      Name: v.name, Driver: v.driver, Mountpoint: this.paths.data(v.name), CreatedAt: v.createdAt.replace(/\.\d+Z$/, 'Z'),
      Labels: { ...v.labels, ...(v.anonymous ? { 'com.docker.volume.anonymous': '' } : {}) }, Scope: 'local', Options: { ...v.options },
    };
    if (withUsage) r.UsageData = { Size: -1, RefCount: this.#users(v.name).length };
    return r;
  }

  create(req: VolumeCreateRequest): Promise<VolumeResource> {
    return this.#serial(() => this.#create(req, false));
  }

  async #create(req: VolumeCreateRequest, anonymous: boolean): Promise<VolumeResource> {
    const name = req.Name || randomBytes(32).toString('hex');
    validateVolumeName(name);
    const driver = req.Driver || 'local';
    const existing = this.#volumes.get(name);
    if (existing) {
      if (driver !== existing.driver) throw failedPrecondition(`create ${name}: volume name ${name} already in use with driver ${existing.driver}`);
      return this.#resource(existing);
    }
    if (driver !== 'local') throw notFound(`create ${name}: error looking up volume plugin ${driver}: plugin "${driver}" not found`);
    const options = { ...(req.DriverOpts ?? {}) };
    for (const k of Object.keys(options)) if (!LOCAL_OPTS.has(k)) throw invalidArgument(`create ${name}: invalid option key: "${k}"`);
    if (isBindVolume(options)) {
      const dev = options.device ?? '';
      if (!dev.startsWith('/')) throw invalidArgument(`create ${name}: bind volume device must be an absolute path`);
      try {
        if (!(await stat(dev)).isDirectory()) throw invalidArgument(`create ${name}: bind device ${dev} is not a directory`);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw invalidArgument(`create ${name}: failed to mount local volume: mount ${dev}:${this.paths.data(name)}: no such file or directory`);
        throw err;
      }
    } else if ((options.type || options.device) && !(options.type && options.device)) {
      throw invalidArgument(`create ${name}: missing required option: "${options.type ? 'device' : 'type'}"`);
    }
    const rec: VolumeRecord = { name, driver: 'local', options, labels: { ...(req.Labels ?? {}) }, createdAt: new Date().toISOString(), anonymous };
    await mkdir(this.paths.data(name), { recursive: true, mode: 0o755 });
    await writeJsonAtomic(this.paths.meta(name), rec);
    this.#volumes.set(name, rec);
    return this.#resource(rec);
  }

  async list(filters: Map<string, string[]> = new Map()): Promise<VolumeResource[]> {
    return [...this.#volumes.values()].filter((v) => this.#matches(v, filters)).map((v) => this.#resource(v));
  }

  #matches(v: VolumeRecord, f: Map<string, string[]>): boolean {
    for (const [k, vals] of f) {
      if (!vals.length) continue;
      const label = (s: string) => {
        const i = s.indexOf('=');
        return i < 0 ? s in v.labels : v.labels[s.slice(0, i)] === s.slice(i + 1);
      };
      switch (k) {
        case 'name': if (!vals.some((s) => v.name.includes(s))) return false; break;
        case 'driver': if (!vals.includes(v.driver)) return false; break;
        case 'label': if (!vals.every(label)) return false; break;
        case 'label!': if (vals.some(label)) return false; break;
        case 'dangling': {
          const want = vals[0] === 'true' || vals[0] === '1';
          if ((this.#users(v.name).length === 0) !== want) return false;
          break;
        }
        case 'all': break;
        default: throw invalidArgument(`invalid filter '${k}'`);
      }
    }
    return true;
  }

  async inspect(name: string): Promise<VolumeResource> {
    const v = this.#volumes.get(name);
    if (!v) throw notFound(`get ${name}: no such volume`);
    return this.#resource(v);
  }

  remove(name: string, force = false): Promise<void> {
    return this.#serial(() => this.#remove(name, force));
  }

  async #remove(name: string, force: boolean): Promise<void> {
    const v = this.#volumes.get(name);
    if (!v) {
      if (force) return;
      throw notFound(`get ${name}: no such volume`);
    }
    const users = this.#users(name);
    if (users.length) throw failedPrecondition(`remove ${name}: volume is in use - [${users.join(', ')}]`);
    if (this.#mounted.has(name)) {
      await this.#host.unmount(this.paths.data(name)).catch(() => this.#host.unmount(this.paths.data(name), { lazy: true }));
      this.#mounted.delete(name);
    }
    this.#volumes.delete(name);
    // The record goes first: a crash mid-removal leaves an ignored directory, never a volume
    // whose data is half gone.
    await rm(this.paths.meta(name), { force: true });
    await rm(this.paths.dir(name), { recursive: true, force: true });
  }

  prune(filters: Map<string, string[]> = new Map()): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    return this.#serial(async () => {
      const all = (filters.get('all') ?? []).some((s) => s === 'true' || s === '1');
      const deleted: string[] = [];
      let space = 0;
      const f = new Map(filters);
      f.delete('all');
      for (const v of [...this.#volumes.values()]) {
        if (!all && !v.anonymous) continue;
        if (this.#users(v.name).length || !this.#matches(v, f)) continue;
        space += await du(this.paths.data(v.name)).catch(() => 0);
        await this.#remove(v.name, false);
        deleted.push(v.name);
      }
      return { VolumesDeleted: deleted, SpaceReclaimed: space };
    });
  }

  mountsFor(req: MountRequest): Promise<ResolvedMounts> {
    return this.#serial(() => this.#mountsFor(req));
  }

  async #mountsFor(req: MountRequest): Promise<ResolvedMounts> {
    const plan = planMounts(req);
    const prev = this.#refs.get(req.containerId);
    const refs: ContainerRefs = { volumes: {}, anonymous: [...(prev?.anonymous ?? [])] };
    const oci: OciMount[] = [];
    const points: MountPoint[] = [];
    const created: string[] = [];
    try {
      for (const m of plan) {
        if (m.kind === 'tmpfs') {
          oci.push({ destination: m.destination, type: 'tmpfs', source: 'tmpfs', options: tmpfsOptions(m.options) });
          points.push({ Type: 'tmpfs', Source: '', Destination: m.destination, Mode: m.options, RW: !m.options.split(',').includes('ro'), Propagation: '' });
          continue;
        }
        if (m.kind === 'bind') {
          const source = await this.#bindSource(m.source, m.createSource);
          oci.push({ destination: m.destination, type: 'bind', source, options: ['rbind', m.propagation, m.readOnly ? 'ro' : 'rw'] });
          points.push({ Type: 'bind', Source: m.source, Destination: m.destination, Mode: m.mode, RW: !m.readOnly, Propagation: m.propagation });
          continue;
        }
        let name = m.name;
        const anonymous = !name;
        if (!name) {
          // An anonymous volume of this container survives its restarts: reuse it by destination.
          const reuse = prev?.volumes[m.destination];
          name = reuse && prev!.anonymous.includes(reuse) && this.#volumes.has(reuse) ? reuse : randomBytes(32).toString('hex');
        }
        if (!this.#volumes.has(name)) {
          await this.#create({ Name: name, DriverOpts: m.driverOpts, Labels: m.labels }, anonymous);
          created.push(name);
        }
        if (anonymous && !refs.anonymous.includes(name)) refs.anonymous.push(name);
        const v = this.#volumes.get(name)!;
        let source = await this.#ensureMounted(v);
        if (!m.noCopy && req.rootfs && !isBindVolume(v.options)) await this.#copyUp(req.rootfs, m.destination, source);
        if (m.subpath) {
          source = await secureJoin(source, m.subpath);
          await stat(source).catch(() => {
            throw invalidArgument(`cannot access path ${m.subpath}: no such file or directory in volume ${name}`);
          });
        }
        refs.volumes[m.destination] = name;
        oci.push({ destination: m.destination, type: 'bind', source, options: ['rbind', 'rprivate', m.readOnly ? 'ro' : 'rw'] });
        points.push({ Type: 'volume', Name: name, Source: this.paths.data(name), Destination: m.destination, Driver: 'local', Mode: m.mode || 'z', RW: !m.readOnly, Propagation: '' });
      }
    } catch (err) {
      for (const n of created) if (!this.#users(n).length) await this.#remove(n, true).catch(() => {});
      throw err;
    }
    if (Object.keys(refs.volumes).length === 0 && refs.anonymous.length === 0) {
      // Nothing to record (most containers): no file, as release() and load() expect.
      if (prev) {
        this.#refs.delete(req.containerId);
        await rm(this.paths.refs(req.containerId), { force: true });
      }
      return { oci, mountPoints: points };
    }
    this.#refs.set(req.containerId, refs);
    await writeJsonAtomic(this.paths.refs(req.containerId), refs);
    return { oci, mountPoints: points };
  }

  async #bindSource(source: string, create: boolean): Promise<string> {
    try {
      await lstat(source);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // `-v /host:/ctr` creates a missing host directory (Docker's legacy behaviour); --mount does not.
      if (!create) throw invalidArgument(`invalid mount config for type "bind": bind source path does not exist: ${source}`);
      await mkdir(source, { recursive: true, mode: 0o755 });
    }
    // runc gets the final path: a symlinked source is resolved now, on the host, as Docker does.
    return realpath(source);
  }

  async #ensureMounted(v: VolumeRecord): Promise<string> {
    const data = this.paths.data(v.name);
    if (isBindVolume(v.options)) return v.options.device!;
    if (!v.options.type || this.#mounted.has(v.name)) return data;
    const o = (v.options.o ?? '').split(',').filter(Boolean);
    if (v.options.size) o.push(`size=${v.options.size}`);
    await this.#host.mount(v.options.device!, data, v.options.type, o);
    this.#mounted.add(v.name);
    return data;
  }

  async #copyUp(rootfs: string, destination: string, data: string): Promise<void> {
    if ((await readdir(data)).length > 0) return;
    const src = await secureJoin(rootfs, destination);
    let st;
    try {
      st = await lstat(src);
    } catch {
      return;
    }
    if (!st.isDirectory()) return;
    if ((await readdir(src)).length === 0) return;
    // `cp -a` preserves owners, modes, times and xattrs and copies symlinks as symlinks.
    await this.#host.run('cp', ['-a', '--', `${src}/.`, `${data}/`]);
  }

  release(containerId: string, opts: { removeAnonymous?: boolean } = {}): Promise<void> {
    return this.#serial(async () => {
      const r = this.#refs.get(containerId);
      if (!r) return;
      this.#refs.delete(containerId);
      await rm(this.paths.refs(containerId), { force: true });
      if (!opts.removeAnonymous) return;
      for (const name of r.anonymous) {
        if (!this.#volumes.has(name) || this.#users(name).length) continue;
        await this.#remove(name, true).catch((err: unknown) => this.#log.warn({ volume: name, err: errorMessage(err) }, 'cannot remove anonymous volume'));
      }
    });
  }

  /** Unmount device volumes (tests; berthd leaves them mounted for running containers). */
  async close(): Promise<void> {
    await this.#queue;
  }

  async unmountAll(): Promise<void> {
    for (const name of this.#mounted) await this.#host.unmount(this.paths.data(name), { lazy: true }).catch(() => {});
    this.#mounted.clear();
    await rmdir(this.paths.refsDir).catch(() => {});
  }
}

function isBindVolume(o: Record<string, string>): boolean {
  return (o.o ?? '').split(',').includes('bind');
}

async function du(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += await du(p);
    else total += (await lstat(p)).size;
  }
  return total;
}
