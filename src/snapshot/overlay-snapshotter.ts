// Overlayfs snapshotter (containerd's overlayfs snapshotter, with Docker overlay2's short-link
// trick). Committed snapshots are image layers keyed by chain ID, each in its own diff dir;
// active snapshots are writable roots: an overlay of upper/work dirs over the parent's chain.
//
// Visibility is atomic: a layer is applied into tmp/, checked by the caller's beforeCommit(),
// given its metadata, then renamed into committed/. A failed or interrupted unpack leaves only
// tmp/ debris, removed by init(). The daemon is the single writer; concurrency inside it is
// handled with an in-process table of unpacks in flight and per-name locks.
import { randomBytes } from 'node:crypto';
import { chmodSync, lchownSync, mkdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { lstat, mkdir, readdir, readFile, readlink, rename, rm, symlink, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { digestHex, isDigest, parseDigest, type Digest } from '../core/digest.ts';
import { alreadyExists, failedPrecondition, notFound } from '../core/errors.ts';
import type { Mount, SnapshotInfo, Snapshotter, UnpackOptions } from '../core/snapshots.ts';
import type { Host } from '../host/host.ts';
import { applyLayerInWorker, prewarmApplyWorkers } from '../layer/worker-apply.ts';
import { fsyncDir, writeJsonAtomic } from '../pkg/atomic-file.ts';
import { KeyedQueue } from '../pkg/keyed-queue.ts';
import { isValidKey, SnapshotPaths, validateKey } from './paths.ts';

interface CommittedMeta {
  chainId: Digest;
  parent?: Digest;
  /** Name of the l/<short> link to this snapshot's fs dir. */
  short: string;
  size: number;
  created: string;
}

interface ActiveMeta {
  key: string;
  parent?: Digest;
  created: string;
}

/** The kernel copies mount data into one page; the string must stay below it. */
const MOUNT_DATA_MAX = 4095;
const SHORT_ALPHABET = 'abcdefghijklmnopqrstuvwxyz234567';
/** Overlayfs accepts at most 500 lower layers. */
const MAX_DEPTH = 500;

export class OverlaySnapshotter implements Snapshotter {
  readonly #paths: SnapshotPaths;
  readonly #host: Host;
  readonly #committed = new Map<Digest, CommittedMeta>();
  readonly #active = new Map<string, ActiveMeta>();
  readonly #unpacking = new Map<Digest, Promise<SnapshotInfo>>();
  /** Parent of each unpack in flight (a parent in use cannot be removed). */
  readonly #unpackParents = new Map<Digest, Digest | undefined>();
  readonly #locks = new KeyedQueue();
  /** Overlay options the running kernel supports and berth wants (see init). */
  #extraOptions: string[] = [];

  constructor(root: string, host: Host) {
    this.#paths = new SnapshotPaths(root);
    this.#host = host;
  }

  /** Create the layout, remove crash debris, and load the metadata of every snapshot. */
  async init(): Promise<void> {
    const p = this.#paths;
    await mkdir(p.root, { recursive: true, mode: 0o700 });
    for (const d of [p.links, p.committedDir, p.activeDir, p.tmp]) await mkdir(d, { recursive: true, mode: 0o700 });
    for (const name of await readdir(p.tmp)) await rm(join(p.tmp, name), { recursive: true, force: true });
    // Each unpack is an unrelated tree: mark tmp/ as a "top of directory hierarchies" (ext4's T
    // attribute), so the Orlov allocator spreads the unpack dirs over the block groups instead
    // of packing every layer next to the last one. On ext4 without a journal, inode allocation
    // scans past every inode freed in the last 30 s of its group (recently_deleted): a layer
    // unpacked where another tree was just removed paid that per file (1.5-7 s of kernel CPU
    // for a 6800-entry layer on the benchmark VM, against 0.4-0.8 s once spread). Other
    // filesystems refuse or ignore the flag; that is fine.
    await this.#host.run('chattr', ['+T', p.tmp], { allowFailure: true }).catch(() => {});

    // As Docker's overlay2: index=off so shared lower dirs never trip the inode index, and
    // redirect_dir=off so a renamed lower directory is copied up in full (and metacopy=off,
    // which needs redirects); the upper dir then always diffs into a plain OCI layer.
    this.#extraOptions = [];
    const wanted = [['index', 'index=off'], ['redirect_dir', 'redirect_dir=off'], ['metacopy', 'metacopy=off']] as const;
    for (const [param, option] of wanted) {
      if (await exists(`/sys/module/overlay/parameters/${param}`)) this.#extraOptions.push(option);
    }

    this.#committed.clear();
    this.#active.clear();
    for (const hex of await readdir(p.committedDir)) {
      const dir = join(p.committedDir, hex);
      const meta = await readMeta<CommittedMeta>(dir);
      // Metadata is validated on read too: a digest becomes a path only after it passed isDigest.
      const valid =
        meta && isDigest(meta.chainId) && digestHex(meta.chainId) === hex && validShort(meta.short) &&
        (meta.parent === undefined || isDigest(meta.parent)) && Number.isSafeInteger(meta.size);
      if (!valid) {
        await this.#discard(dir);
        continue;
      }
      this.#committed.set(meta.chainId, meta);
    }
    for (const key of await readdir(p.activeDir)) {
      const dir = join(p.activeDir, key);
      const meta = await readMeta<ActiveMeta>(dir);
      const complete = meta && meta.key === key && isValidKey(key) && (meta.parent === undefined || isDigest(meta.parent)) && (await exists(SnapshotPaths.fs(dir))) && (await exists(SnapshotPaths.work(dir)));
      if (!meta || !complete) {
        await this.#discard(dir);
        continue;
      }
      this.#active.set(key, meta);
    }
    // Links: recreate missing ones, drop those no snapshot owns (debris of a crash or a remove).
    const owned = new Map([...this.#committed.values()].map((m) => [m.short, m] as const));
    for (const name of await readdir(p.links)) {
      if (!owned.has(name)) await unlink(p.link(name)).catch(() => {});
    }
    for (const m of owned.values()) {
      const want = p.linkTarget(m.chainId);
      const have = await readlink(p.link(m.short)).catch(() => undefined);
      if (have === want) continue;
      if (have !== undefined) await unlink(p.link(m.short));
      await symlink(want, p.link(m.short));
    }
    // Parents must exist: a snapshot whose parent vanished cannot be mounted; drop it (and
    // anything on top) rather than fail later with an obscure mount error.
    let changed = true;
    while (changed) {
      changed = false;
      for (const m of this.#committed.values()) {
        if (m.parent && !this.#committed.has(m.parent)) {
          await this.#dropCommitted(m);
          changed = true;
        }
      }
    }
  }

  async stat(chainId: Digest): Promise<SnapshotInfo | undefined> {
    const m = this.#committed.get(chainId);
    return m ? committedInfo(m) : undefined;
  }

  /** Layers apply on worker threads (src/layer/worker-apply.ts). Each costs ~150 ms of CPU and
   *  ~45 MB to start, so they start when a pull begins (while its manifest is fetched), not with
   *  every daemon; an unpack without the hint starts its worker itself. */
  expectUnpacks(n: number): void {
    prewarmApplyWorkers(Math.min(n, 2));
  }

  async unpack(chainId: Digest, parent: Digest | undefined, tar: Readable, opts: UnpackOptions = {}): Promise<SnapshotInfo> {
    // The source may fail while we wait below; its error is read back by applyLayer (or ignored
    // when the layer turns out to exist), never left unhandled.
    tar.on('error', () => {});
    parseDigest(chainId);
    if (parent !== undefined) parseDigest(parent);
    for (;;) {
      const done = this.#committed.get(chainId);
      if (done) {
        await drain(tar);
        return committedInfo(done);
      }
      const running = this.#unpacking.get(chainId);
      if (!running) break;
      // Someone else is unpacking the same layer: wait for them; if they fail, try ourselves.
      await running.catch(() => {});
    }
    const job = this.#unpack(chainId, parent, tar, opts);
    job.catch(() => {}); // awaited below; this only keeps a waiter's rejection from going unhandled
    this.#unpacking.set(chainId, job);
    this.#unpackParents.set(chainId, parent);
    try {
      return await job;
    } finally {
      this.#unpacking.delete(chainId);
      this.#unpackParents.delete(chainId);
    }
  }

  async #unpack(chainId: Digest, parent: Digest | undefined, tar: Readable, opts: UnpackOptions): Promise<SnapshotInfo> {
    if (parent !== undefined && !this.#committed.has(parent) && !this.#unpacking.has(parent) && !opts.parentCommitted) {
      tar.destroy();
      throw notFound(`parent snapshot ${parent} not found`);
    }
    // The lower dirs, once the parent is committed. The applier asks for them only in rare cases
    // (a hardlink to a lower file, attributes of a directory the tar implies but does not list),
    // so layers apply concurrently and wait for their parents only to be published.
    let lowersJob: Promise<string[]> | undefined;
    const lowers = (): Promise<string[]> => (lowersJob ??= this.#lowers(parent, opts.parentCommitted));
    if (parent === undefined || this.#committed.has(parent)) {
      await lowers().catch((err: unknown) => {
        tar.destroy();
        throw err;
      });
    }
    const tmp = await this.#tmpDir('unpack');
    try {
      const fs = SnapshotPaths.fs(tmp);
      await mkdir(fs, { mode: 0o755 });
      const applied = await applyLayerInWorker(fs, tar, {
        mode: 'overlay',
        host: this.#host,
        lowers,
        ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (opts.beforeCommit) await opts.beforeCommit();
      // Parent first: a child is never visible without its parent.
      await lowers();
      // Size: the file bytes the layer wrote (a hardlink adds none), known without a walk.
      return await this.#publish(tmp, chainId, parent, applied.bytes);
    } catch (err) {
      tar.destroy();
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  }

  /** Wait until `parent` is committed (its unpack in flight, or the caller's promise); its chain's fs dirs, top first. */
  async #lowers(parent: Digest | undefined, committed: Promise<unknown> | undefined): Promise<string[]> {
    if (parent === undefined) return [];
    if (!this.#committed.has(parent)) {
      const running = this.#unpacking.get(parent);
      if (running) await running.catch(() => {});
      if (!this.#committed.has(parent) && committed) await committed.catch(() => {});
      if (!this.#committed.has(parent)) throw notFound(`parent snapshot ${parent} not found`);
    }
    const lowers = this.#chain(parent).map((m) => SnapshotPaths.fs(this.#paths.committed(m.chainId)));
    if (lowers.length >= MAX_DEPTH) throw failedPrecondition(`too many layers: overlay supports at most ${MAX_DEPTH}`);
    return lowers;
  }

  /** Give tmp/<x>/fs metadata and a short link, then rename it into committed/. */
  /**
   * Make `tmp` the committed snapshot `chainId`. Publications of one chain ID queue; when another
   * got there first (two builds making the same layer side by side, a build step and a pull),
   * `tmp` is discarded and theirs returned: the content is the same by construction.
   */
  #publish(tmp: string, chainId: Digest, parent: Digest | undefined, size?: number): Promise<SnapshotInfo> {
    return this.#locked(`publish:${chainId}`, async () => {
      const done = this.#committed.get(chainId);
      if (done) {
        await rm(tmp, { recursive: true, force: true });
        return committedInfo(done);
      }
      return this.#publishNew(tmp, chainId, parent, size);
    });
  }

  async #publishNew(tmp: string, chainId: Digest, parent: Digest | undefined, size?: number): Promise<SnapshotInfo> {
    const p = this.#paths;
    const meta: CommittedMeta = {
      chainId,
      ...(parent ? { parent } : {}),
      short: '',
      size: size ?? (await diskUsage(SnapshotPaths.fs(tmp))),
      created: new Date().toISOString(),
    };
    for (;;) {
      meta.short = shortName();
      try {
        await symlink(p.linkTarget(chainId), p.link(meta.short));
        break;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    try {
      await writeJsonAtomic(SnapshotPaths.meta(tmp), meta);
      await rename(tmp, p.committed(chainId));
      await fsyncDir(p.committedDir);
    } catch (err) {
      await unlink(p.link(meta.short)).catch(() => {});
      throw err;
    }
    this.#committed.set(chainId, meta);
    return committedInfo(meta);
  }

  /** Active snapshots prepared with `syncLater` whose fsyncs are still in flight. */
  #syncing = new Map<string, Promise<void>>();

  durable(key: string): Promise<void> {
    return this.#syncing.get(key) ?? Promise.resolve();
  }

  async prepare(key: string, parent: Digest | undefined, opts: { syncLater?: boolean } = {}): Promise<Mount[]> {
    validateKey(key);
    if (parent !== undefined) parseDigest(parent);
    return this.#locked(key, async () => {
      if (this.#active.has(key)) throw alreadyExists(`snapshot ${key} already exists`);
      if (parent !== undefined && !this.#committed.has(parent)) throw notFound(`parent snapshot ${parent} not found`);
      // Every container create waits for this: the directory operations are made synchronously
      // (tens of microseconds each, against a thread-pool round trip each), only the fsyncs go
      // to the pool. The directory is published by one rename; until the fsyncs of meta.json, the
      // directory and its parent are done a crash may leave it with a torn meta.json, which
      // load() discards (nothing refers to it before prepare, or durable(), resolved).
      const tmp = join(this.#paths.tmp, `active-${randomBytes(8).toString('hex')}`);
      try {
        const fs = SnapshotPaths.fs(tmp);
        const meta: ActiveMeta = { key, ...(parent ? { parent } : {}), created: new Date().toISOString() };
        mkdirSync(tmp, { mode: 0o700 });
        mkdirSync(fs, { mode: 0o755 });
        mkdirSync(SnapshotPaths.work(tmp), { mode: 0o700 });
        // The merged root takes the upper root's attributes: start from the image's.
        if (parent) copyRootAttrsSync(SnapshotPaths.fs(this.#paths.committed(parent)), fs);
        writeFileSync(SnapshotPaths.meta(tmp), JSON.stringify(meta, null, 2) + '\n', { flag: 'wx', mode: 0o600 });
        const active = this.#paths.active(key);
        renameSync(tmp, active);
        const synced = Promise.all([fsyncDir(SnapshotPaths.meta(active)), fsyncDir(active), fsyncDir(this.#paths.activeDir)]).then(() => {});
        if (opts.syncLater) {
          const tracked = synced.finally(() => {
            if (this.#syncing.get(key) === tracked) this.#syncing.delete(key);
          });
          tracked.catch(() => {});
          this.#syncing.set(key, tracked);
        } else {
          await synced;
        }
        this.#active.set(key, meta);
      } catch (err) {
        await rm(tmp, { recursive: true, force: true });
        throw err;
      }
      return this.mounts(key);
    });
  }

  async mounts(key: string): Promise<Mount[]> {
    const meta = this.#active.get(key);
    if (!meta) throw notFound(`snapshot ${key} not found`);
    const dir = this.#paths.active(key);
    const upper = SnapshotPaths.fs(dir);
    if (!meta.parent) return [{ type: 'bind', source: upper, options: ['rbind', 'rw'] }];
    const lowers = this.#chain(meta.parent).map((m) => this.#paths.link(m.short));
    const options = [`lowerdir=${lowers.join(':')}`, `upperdir=${upper}`, `workdir=${SnapshotPaths.work(dir)}`, ...this.#extraOptions];
    const data = options.join(',');
    if (Buffer.byteLength(data) > MOUNT_DATA_MAX) {
      throw failedPrecondition(
        `overlay mount options for ${lowers.length} layers take ${Buffer.byteLength(data)} bytes, more than the kernel's ${MOUNT_DATA_MAX}: use a shorter data root`,
      );
    }
    return [{ type: 'overlay', source: 'overlay', options }];
  }

  upperDir(key: string): string {
    return SnapshotPaths.fs(this.#paths.active(key));
  }

  async commit(key: string, chainId: Digest): Promise<SnapshotInfo> {
    validateKey(key);
    parseDigest(chainId);
    return this.#locked(key, async () => {
      const meta = this.#active.get(key);
      if (!meta) throw notFound(`snapshot ${key} not found`);
      await this.durable(key).catch(() => {});
      const dir = this.#paths.active(key);
      if (await isMountedUpper(SnapshotPaths.fs(dir))) throw failedPrecondition(`snapshot ${key} is mounted`);
      const existing = this.#committed.get(chainId);
      let info: SnapshotInfo;
      if (existing) {
        info = committedInfo(existing);
      } else {
        const tmp = await this.#tmpDir('commit');
        try {
          await rename(SnapshotPaths.fs(dir), SnapshotPaths.fs(tmp));
          info = await this.#publish(tmp, chainId, meta.parent);
        } catch (err) {
          // Put the upper dir back so the active snapshot stays usable.
          await rename(SnapshotPaths.fs(tmp), SnapshotPaths.fs(dir)).catch(() => {});
          await rm(tmp, { recursive: true, force: true });
          throw err;
        }
      }
      this.#active.delete(key);
      await this.#discard(dir);
      return info;
    });
  }

  async remove(nameOrChainId: string): Promise<void> {
    return this.#locked(nameOrChainId, async () => {
      if (isDigest(nameOrChainId) && this.#committed.has(nameOrChainId)) {
        const m = this.#committed.get(nameOrChainId) as CommittedMeta;
        const dependent =
          [...this.#committed.values()].some((c) => c.parent === m.chainId) ||
          [...this.#active.values()].some((a) => a.parent === m.chainId) ||
          [...this.#unpackParents.values()].includes(m.chainId);
        if (dependent) throw failedPrecondition(`snapshot ${m.chainId} has dependent snapshots`);
        await this.#dropCommitted(m);
        return;
      }
      const meta = this.#active.get(nameOrChainId);
      if (!meta) throw notFound(`snapshot ${nameOrChainId} not found`);
      await this.durable(nameOrChainId).catch(() => {});
      const dir = this.#paths.active(nameOrChainId);
      if (await isMountedUpper(SnapshotPaths.fs(dir))) throw failedPrecondition(`snapshot ${nameOrChainId} is mounted`);
      this.#active.delete(nameOrChainId);
      await this.#discard(dir);
    });
  }

  async list(): Promise<SnapshotInfo[]> {
    const out: SnapshotInfo[] = [...this.#committed.values()].map(committedInfo);
    for (const [key, m] of this.#active) {
      const size = await diskUsage(this.upperDir(key)).catch(() => 0);
      out.push({ name: key, kind: 'active', ...(m.parent ? { parent: m.parent } : {}), size, created: m.created });
    }
    return out;
  }

  /** Committed chain from `top` down to the base layer (top first). */
  #chain(top: Digest): CommittedMeta[] {
    const out: CommittedMeta[] = [];
    let cur: Digest | undefined = top;
    while (cur !== undefined) {
      const m = this.#committed.get(cur);
      if (!m) throw notFound(`parent snapshot ${cur} not found`);
      out.push(m);
      if (out.length > MAX_DEPTH) throw failedPrecondition(`snapshot chain of ${top} is too deep`);
      cur = m.parent;
    }
    return out;
  }

  async #dropCommitted(m: CommittedMeta): Promise<void> {
    this.#committed.delete(m.chainId);
    await unlink(this.#paths.link(m.short)).catch(() => {});
    await this.#discard(this.#paths.committed(m.chainId));
  }

  /** Make a directory disappear atomically (rename into tmp/), then delete it. */
  async #discard(dir: string): Promise<void> {
    const grave = join(this.#paths.tmp, `rm-${randomBytes(6).toString('hex')}`);
    try {
      await rename(dir, grave);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await rm(grave, { recursive: true, force: true });
  }

  async #tmpDir(kind: string): Promise<string> {
    const dir = join(this.#paths.tmp, `${kind}-${randomBytes(8).toString('hex')}`);
    await mkdir(dir, { mode: 0o700 });
    return dir;
  }

  #locked<T>(name: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(name, fn);
  }

}

function committedInfo(m: CommittedMeta): SnapshotInfo {
  return { name: m.chainId, kind: 'committed', ...(m.parent ? { parent: m.parent } : {}), size: m.size, created: m.created };
}

/**
 * Link names are 6 base32 characters (2^30 names; a collision is retried): with the default
 * root /var/lib/berth/snapshots each lower costs 34 bytes of mount data, so 100 layers fit the
 * page with room for the upper and work dirs. (Docker keeps 26-character names and mounts with
 * relative paths from a chdir'ed helper; berth's Mount has no working directory to carry.)
 */
function shortName(): string {
  const bytes = randomBytes(6);
  let s = '';
  for (const b of bytes) s += SHORT_ALPHABET[b & 31];
  return s;
}

function validShort(s: unknown): s is string {
  return typeof s === 'string' && /^[a-z2-7]{6,26}$/.test(s);
}

async function readMeta<T>(dir: string): Promise<T | undefined> {
  try {
    return JSON.parse(await readFile(SnapshotPaths.meta(dir), 'utf8')) as T;
  } catch {
    return undefined;
  }
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(() => true, () => false);
}

/** Consume a stream we do not need (the layer is already there), ignoring its errors. */
async function drain(s: Readable): Promise<void> {
  s.resume();
  await finished(s).catch(() => {});
}

/** Apparent size of the regular files and symlinks under dir, hardlinks counted once. */
export async function diskUsage(dir: string): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name);
      if (ent.isDirectory()) {
        await walk(p);
        continue;
      }
      if (!ent.isFile() && !ent.isSymbolicLink()) continue;
      const st = await lstat(p);
      if (st.nlink > 1) {
        const id = `${st.dev}:${st.ino}`;
        if (seen.has(id)) continue;
        seen.add(id);
      }
      total += st.size;
    }
  };
  await walk(dir);
  return total;
}

function copyRootAttrsSync(from: string, to: string): void {
  const st = statSync(from);
  if (process.getuid?.() === 0) lchownSync(to, st.uid, st.gid);
  chmodSync(to, st.mode & 0o7777);
}

/** Is `upper` the upperdir of a mounted overlay (in this mount namespace)? */
async function isMountedUpper(upper: string): Promise<boolean> {
  let info: string;
  try {
    info = await readFile('/proc/self/mountinfo', 'utf8');
  } catch {
    return false;
  }
  // mountinfo escapes space, tab, newline and backslash as octal.
  const esc = upper.replace(/[\\ \t\n]/g, (c) => '\\' + c.charCodeAt(0).toString(8).padStart(3, '0'));
  return info.split('\n').some((line) => line.includes(`upperdir=${esc},`) || line.endsWith(`upperdir=${esc}`));
}
