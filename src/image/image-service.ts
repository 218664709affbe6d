// berth's image service: the image index (ImageStore) over the content store (configs, manifests,
// layer blobs) and the snapshotter (unpacked layers by chain ID). It implements the core
// ImageService contract the container and build parts use, plus Docker's image operations:
// inspect, history, tag, rmi, prune and garbage collection.
//
// Ownership and garbage collection: an image owns its config blob, its manifest blob, the layer
// blobs the manifest lists and the committed snapshots of its chain IDs. Anything in the content
// store or the snapshotter that no image owns, no operation in progress holds (a lease), and
// that no active snapshot (container root) sits on, is removed by `gc()`. GC runs after rmi and
// prune, after failed pulls and loads, and shortly after start (clearing what a crash left behind).
import { mkdir, rm } from 'node:fs/promises';
import { sha256, shortId, type Digest } from '../core/digest.ts';
import { chainIds } from '../core/chain-id.ts';
import { BerthError, failedPrecondition, invalidArgument, notFound, errorMessage } from '../core/errors.ts';
import type { ImageRecord, ImageService as ImageServiceContract, ResolvedImage } from '../core/images.ts';
import { MediaType, hostPlatform, type ImageConfig, type ImageManifest, type Platform } from '../core/oci.ts';
import { formatReference, parseReference, familiarString } from '../core/reference.ts';
import type { Snapshotter, SnapshotInfo } from '../core/snapshots.ts';
import type { ContentStore } from '../content/content-store.ts';
import type { Logger } from '../pkg/log.ts';
import { ImageStore, familiar, repoOf, type StoredImage } from './image-store.ts';
import { Mutex } from './mutex.ts';
import type { ImagePaths } from './paths.ts';

/** A container using an image (the container module answers `inUse`). */
export interface ImageUser {
  id: string;
  running: boolean;
}

export type InUseHook = (imageId: Digest) => Promise<ImageUser[]> | ImageUser[];

/** One line of Docker's DELETE /images response. */
export type DeleteItem = { Untagged: string } | { Deleted: string };

export interface PruneReport {
  ImagesDeleted: DeleteItem[] | null;
  SpaceReclaimed: number;
}

export interface GcReport {
  blobs: Digest[];
  /** Committed snapshots removed, top (child) first. */
  snapshots: string[];
  bytes: number;
}

/** Held while an operation writes blobs or snapshots an image does not own yet. */
export interface Lease {
  release(): void;
}

export interface ImageServiceOptions {
  content: ContentStore;
  snapshotter: Snapshotter;
  paths: ImagePaths;
  log: Logger;
  platform?: Platform;
}

/** Docker's isImageIDPrefix. */
function isImageIdPrefix(id: string, s: string): boolean {
  return id.startsWith(s) || id.slice(id.indexOf(':') + 1).startsWith(s);
}

/** Docker's isSingleReference: at most one tag, and digests only of that tag's repository. */
function isSingleReference(refs: string[]): boolean {
  if (refs.length <= 1) return refs.length === 1;
  let single: string | undefined;
  const canonicalRepos = new Set<string>();
  for (const r of refs) {
    if (r.includes('@')) canonicalRepos.add(repoOf(r));
    else if (single === undefined) single = r;
    else return false;
  }
  single ??= refs[0]!;
  return canonicalRepos.size === 1 && canonicalRepos.has(repoOf(single));
}

class DeleteConflict extends BerthError {
  readonly hard: boolean;
  readonly used: boolean;
  constructor(id: Digest, hard: boolean, used: boolean, message: string) {
    super('FailedPrecondition', `conflict: unable to delete ${shortId(id)} (${hard ? 'cannot be forced' : 'must be forced'}) - ${message}`);
    this.hard = hard;
    this.used = used;
  }
}

const CONFLICT_CHILD = 1;
const CONFLICT_RUNNING = 2;
const CONFLICT_REFERENCE = 4;
const CONFLICT_STOPPED = 8;
const CONFLICT_HARD = CONFLICT_CHILD | CONFLICT_RUNNING;
const CONFLICT_SOFT = CONFLICT_REFERENCE | CONFLICT_STOPPED;

export class ImageService implements ImageServiceContract {
  readonly store: ImageStore;
  readonly content: ContentStore;
  readonly snapshotter: Snapshotter;
  readonly paths: ImagePaths;
  readonly log: Logger;
  /** Containers using an image; the container module replaces this. */
  inUse: InUseHook = () => [];
  #platform: Platform;
  #gcLock = new Mutex();
  #leases = new Map<string, number>();
  #gcRoots: Array<() => Promise<Iterable<string>> | Iterable<string>> = [];
  #configs = new Map<Digest, ImageConfig>();
  #manifests = new Map<Digest, ImageManifest>();

  constructor(opts: ImageServiceOptions) {
    this.content = opts.content;
    this.snapshotter = opts.snapshotter;
    this.paths = opts.paths;
    this.log = opts.log;
    this.#platform = opts.platform ?? hostPlatform();
    this.store = new ImageStore(opts.paths.index);
  }

  /**
   * Load the index and clear scratch space. Call `startupGc()` once every GC root provider (build
   * cache, ...) has registered, to clear what interrupted operations left.
   */
  async init(): Promise<void> {
    await mkdir(this.paths.root, { recursive: true, mode: 0o700 });
    await rm(this.paths.tmp, { recursive: true, force: true });
    await mkdir(this.paths.tmp, { recursive: true, mode: 0o700 });
    await this.store.load();
  }

  /** GC of what a crash left behind (unowned blobs and snapshots), logged when it found any. */
  async startupGc(): Promise<GcReport> {
    const r = await this.gc();
    if (r.blobs.length || r.snapshots.length) this.log.info({ blobs: r.blobs.length, snapshots: r.snapshots.length, bytes: r.bytes }, 'image gc at start removed unreferenced content');
    return r;
  }

  defaultPlatform(): Platform {
    return { ...this.#platform };
  }

  /** Extra GC roots (blob digests or chain IDs), e.g. a build cache. */
  addGcRoots(fn: () => Promise<Iterable<string>> | Iterable<string>): void {
    this.#gcRoots.push(fn);
  }

  /**
   * Hold blobs and chain IDs against GC until `release()`. Waits for a running GC to finish, so
   * once this resolves, whatever exists now stays.
   */
  lease(ids: Iterable<string>): Promise<Lease> {
    const list = [...ids];
    return this.#gcLock.run(() => {
      for (const id of list) this.#leases.set(id, (this.#leases.get(id) ?? 0) + 1);
      let released = false;
      return {
        release: () => {
          if (released) return;
          released = true;
          for (const id of list) {
            const n = (this.#leases.get(id) ?? 1) - 1;
            if (n <= 0) this.#leases.delete(id);
            else this.#leases.set(id, n);
          }
        },
      };
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Reading

  async config(id: Digest): Promise<ImageConfig> {
    let c = this.#configs.get(id);
    if (!c) {
      c = await this.content.readJson<ImageConfig>(id);
      this.#configs.set(id, c);
    }
    return c;
  }

  async manifest(digest: Digest): Promise<ImageManifest> {
    let m = this.#manifests.get(digest);
    if (!m) {
      m = await this.content.readJson<ImageManifest>(digest);
      this.#manifests.set(digest, m);
    }
    return m;
  }

  /** Resolve to the stored record (Docker's lookup order; see ImageStore.lookup). */
  get(nameOrId: string): StoredImage {
    return this.store.lookup(nameOrId);
  }

  async resolve(nameOrId: string): Promise<ResolvedImage> {
    const record = this.store.lookup(nameOrId);
    const config = await this.config(record.id);
    return { record, config, chainIds: chainIds(config.rootfs?.diff_ids ?? []) };
  }

  async list(): Promise<ImageRecord[]> {
    return this.store.all();
  }

  /** Per-layer sizes (bytes of each committed snapshot's own diff), bottom first. */
  async layerSizes(config: ImageConfig): Promise<number[]> {
    return Promise.all(chainIds(config.rootfs?.diff_ids ?? []).map(async (c) => (await this.snapshotter.stat(c))?.size ?? 0));
  }

  // ---------------------------------------------------------------------------------------------
  // Writing

  /**
   * Record an image whose config, manifest, layer blobs and snapshots are all in place. Tags and
   * repo digests (any spelling) move to it from other images.
   */
  async record(img: { id: Digest; manifestDigest?: Digest; repoTags?: string[]; repoDigests?: string[]; size: number; parent?: Digest }): Promise<StoredImage> {
    const repoTags = (img.repoTags ?? []).map((t) => formatReference(parseReference(t)));
    const repoDigests = (img.repoDigests ?? []).map((t) => formatReference(parseReference(t)));
    return this.store.mutate((d) => {
      const rec: StoredImage = { id: img.id, repoTags, repoDigests, added: d.get(img.id)?.added ?? new Date().toISOString(), size: img.size };
      if (img.manifestDigest) rec.manifestDigest = img.manifestDigest;
      if (img.parent) rec.parent = img.parent;
      return d.put(rec);
    });
  }

  /**
   * Write a config and an OCI manifest for layers that are already stored (blobs in the content
   * store, snapshots committed) and record the image.
   */
  async createImage(
    config: ImageConfig,
    layers: Array<{ diffId: Digest; blob: { digest: Digest; size: number; mediaType: string } }>,
    tags: string[],
    opts: { parent?: Digest } = {},
  ): Promise<StoredImage> {
    const diffIds = layers.map((l) => l.diffId);
    const cfg: ImageConfig = { ...config, rootfs: { type: 'layers', diff_ids: diffIds } };
    const chain = chainIds(diffIds);
    const configBytes = Buffer.from(JSON.stringify(cfg));
    const configDigest = sha256(configBytes);
    const manifest: ImageManifest = {
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: configBytes.length },
      layers: layers.map((l) => ({ mediaType: l.blob.mediaType, digest: l.blob.digest, size: l.blob.size })),
    };
    const manifestBytes = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = sha256(manifestBytes);
    const lease = await this.lease([configDigest, manifestDigest, ...layers.map((l) => l.blob.digest), ...chain]);
    try {
      for (const l of layers) {
        if (!(await this.content.has(l.blob.digest))) throw notFound(`layer blob ${l.blob.digest} is not in the content store`);
      }
      let size = 0;
      for (const c of chain) {
        const st = await this.snapshotter.stat(c);
        if (!st) throw notFound(`layer snapshot ${c} is not committed`);
        size += st.size;
      }
      await this.content.putBytes(configBytes, { digest: configDigest });
      await this.content.putBytes(manifestBytes, { digest: manifestDigest });
      const rec: Parameters<ImageService['record']>[0] = { id: configDigest, manifestDigest, repoTags: tags, size };
      if (opts.parent) rec.parent = opts.parent;
      return await this.record(rec);
    } finally {
      lease.release();
    }
  }

  /** `docker tag`: point `newRef` (a tag; ":latest" if none) at the image. */
  async tag(nameOrId: string, newRef: string): Promise<void> {
    const img = this.store.lookup(nameOrId);
    let ref;
    try {
      ref = parseReference(newRef);
    } catch {
      throw invalidArgument('invalid reference format');
    }
    if (ref.digest) throw invalidArgument('refusing to create a tag with a digest reference');
    const key = formatReference(ref);
    await this.store.mutate((d) => d.addRef(img.id, key));
  }

  // ---------------------------------------------------------------------------------------------
  // Removing (Docker's daemon/images/image_delete.go semantics)

  async remove(imageRef: string, opts: { force?: boolean; prune?: boolean } = {}): Promise<DeleteItem[]> {
    const force = opts.force ?? false;
    const prune = opts.prune ?? true;
    const img = this.store.lookup(imageRef);
    const id = img.id;
    const records: DeleteItem[] = [];
    const refsOf = () => {
      const cur = this.store.get(id);
      return cur ? [...cur.repoTags, ...cur.repoDigests] : [];
    };
    let quiet = false;
    if (!isImageIdPrefix(id, imageRef)) {
      // A reference was given: untag it; the image goes only when nothing names it any more.
      const users = await this.inUse(id);
      if (users.length > 0 && !force && refsOf().length === 1) {
        throw failedPrecondition(`conflict: unable to remove repository reference ${JSON.stringify(imageRef)} (must force) - container ${shortId(users[0]!.id)} is using its referenced image ${shortId(id)}`);
      }
      const ref = parseReference(imageRef);
      const key = ref.digest ? formatReference({ domain: ref.domain, path: ref.path, digest: ref.digest }) : formatReference(ref);
      await this.store.mutate((d) => d.removeRef(key));
      records.push({ Untagged: familiar(key) });
      if (!ref.digest) {
        // The last tag of a repository takes that repository's digest references with it.
        const repo = repoOf(key);
        const remaining = refsOf();
        if (!remaining.some((r) => !r.includes('@') && repoOf(r) === repo)) {
          const digests = remaining.filter((r) => r.includes('@') && repoOf(r) === repo);
          if (digests.length) {
            await this.store.mutate((d) => {
              for (const r of digests) d.removeRef(r);
            });
            for (const r of digests) records.push({ Untagged: familiar(r) });
          }
        }
      }
      if (refsOf().length > 0) return records;
      quiet = true;
    } else {
      const refs = refsOf();
      if (isSingleReference(refs)) {
        const mask = force ? CONFLICT_HARD : CONFLICT_HARD | (CONFLICT_SOFT & ~CONFLICT_REFERENCE);
        const conflict = await this.#conflict(id, mask);
        if (conflict) throw conflict;
        await this.store.mutate((d) => {
          for (const r of refs) d.removeRef(r);
        });
        for (const r of refs) records.push({ Untagged: familiar(r) });
      }
    }
    await this.#deleteHelper(id, records, force, prune, quiet);
    return records;
  }

  async #conflict(id: Digest, mask: number): Promise<DeleteConflict | undefined> {
    if (mask & CONFLICT_CHILD && this.store.children(id).length > 0) return new DeleteConflict(id, true, false, 'image has dependent child images');
    const users = mask & (CONFLICT_RUNNING | CONFLICT_STOPPED) ? await this.inUse(id) : [];
    if (mask & CONFLICT_RUNNING) {
      const running = users.find((u) => u.running);
      if (running) return new DeleteConflict(id, true, true, `image is being used by running container ${shortId(running.id)}`);
    }
    if (mask & CONFLICT_REFERENCE) {
      const cur = this.store.get(id);
      if (cur && cur.repoTags.length + cur.repoDigests.length > 0) return new DeleteConflict(id, false, false, 'image is referenced in multiple repositories');
    }
    if (mask & CONFLICT_STOPPED) {
      const stopped = users.find((u) => !u.running);
      if (stopped) return new DeleteConflict(id, false, true, `image is being used by stopped container ${shortId(stopped.id)}`);
    }
    return undefined;
  }

  async #deleteHelper(id: Digest, records: DeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const conflict = await this.#conflict(id, force ? CONFLICT_HARD : CONFLICT_HARD | CONFLICT_SOFT);
    if (conflict) {
      const cur = this.store.get(id);
      const dangling = !cur || cur.repoTags.length + cur.repoDigests.length === 0;
      if (quiet && (!dangling || conflict.used)) return;
      throw conflict;
    }
    const img = this.store.get(id);
    if (!img) return;
    const parent = img.parent;
    const refs = [...img.repoTags, ...img.repoDigests];
    await this.store.mutate((d) => {
      for (const r of refs) d.removeRef(r);
      d.delete(id);
    });
    for (const r of refs) records.push({ Untagged: familiar(r) });
    records.push({ Deleted: id });
    this.#configs.delete(id);
    const gc = await this.gc();
    for (const s of gc.snapshots) records.push({ Deleted: s });
    if (prune && parent && this.store.get(parent)) await this.#deleteHelper(parent, records, false, true, true);
  }

  /**
   * Docker's image prune: dangling images (no tag) by default, every image no container uses
   * with `all`. Filters: until (RFC3339 or Unix time or Go duration), label, label!.
   */
  async prune(opts: { all?: boolean; filters?: Map<string, string[]> } = {}): Promise<PruneReport> {
    const filters = opts.filters ?? new Map<string, string[]>();
    let all = opts.all ?? false;
    const dangling = filters.get('dangling');
    if (dangling?.length) all = !['true', '1'].includes(dangling[0]!.toLowerCase());
    for (const k of filters.keys()) {
      if (!['dangling', 'until', 'label', 'label!'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    }
    const until = filters.get('until')?.[0];
    const untilMs = until === undefined ? undefined : parseUntil(until);
    const deleted: DeleteItem[] = [];
    let reclaimed = 0;
    const before = await this.#diskUsage();
    // Heads (images without children) first, as Docker; repeat so parents freed by their
    // children's removal go too.
    for (let pass = 0; pass < 8; pass++) {
      let progress = false;
      for (const img of this.store.all()) {
        if (!this.store.get(img.id)) continue;
        if (!all && this.store.children(img.id).length > 0) continue;
        if ((await this.inUse(img.id)).length > 0) continue;
        if (untilMs !== undefined && Date.parse(await this.#created(img)) >= untilMs) continue;
        if (!(await this.#labelsMatch(img, filters))) continue;
        const tagged = img.repoTags.length > 0;
        if (!all && tagged) continue;
        try {
          const refs = [...img.repoTags, ...img.repoDigests];
          if (refs.length > 0) {
            for (const r of refs) {
              if (!this.store.get(img.id)) break;
              deleted.push(...(await this.remove(r, { force: false, prune: true })));
            }
          } else {
            deleted.push(...(await this.remove(img.id.slice(7), { force: false, prune: true })));
          }
          progress = true;
        } catch (err) {
          if (err instanceof BerthError && err.kind === 'FailedPrecondition') continue;
          throw err;
        }
      }
      if (!progress || !all) break;
    }
    const after = await this.#diskUsage();
    reclaimed = Math.max(0, before - after);
    return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
  }

  async #created(img: StoredImage): Promise<string> {
    try {
      return (await this.config(img.id)).created ?? img.added;
    } catch {
      return img.added;
    }
  }

  async #labelsMatch(img: StoredImage, filters: Map<string, string[]>): Promise<boolean> {
    const want = filters.get('label') ?? [];
    const notWant = filters.get('label!') ?? [];
    if (!want.length && !notWant.length) return true;
    let labels: Record<string, string> = {};
    try {
      labels = (await this.config(img.id)).config?.Labels ?? {};
    } catch {
      /* no config: no labels */
    }
    return want.every((l) => labelMatch(labels, l)) && !notWant.some((l) => labelMatch(labels, l));
  }

  async #diskUsage(): Promise<number> {
    let n = 0;
    for await (const b of this.content.list()) n += b.size;
    for (const s of await this.snapshotter.list()) if (s.kind === 'committed') n += s.size;
    return n;
  }

  // ---------------------------------------------------------------------------------------------
  // Garbage collection

  /** Remove blobs and committed snapshots nothing owns, holds or sits on (see the file comment). */
  gc(): Promise<GcReport> {
    return this.#gcLock.run(() => this.#gc());
  }

  async #gc(): Promise<GcReport> {
    const keepBlobs = new Set<string>(this.#leases.keys());
    const keepSnaps = new Set<string>(this.#leases.keys());
    for (const fn of this.#gcRoots) for (const r of await fn()) {
      keepBlobs.add(r);
      keepSnaps.add(r);
    }
    for (const img of this.store.all()) {
      keepBlobs.add(img.id);
      try {
        const cfg = await this.config(img.id);
        for (const c of chainIds(cfg.rootfs?.diff_ids ?? [])) keepSnaps.add(c);
      } catch (err) {
        this.log.warn({ image: img.id, err: errorMessage(err) }, 'image config unreadable during gc');
      }
      if (img.manifestDigest) {
        keepBlobs.add(img.manifestDigest);
        try {
          const m = await this.manifest(img.manifestDigest);
          keepBlobs.add(m.config.digest);
          for (const l of m.layers) keepBlobs.add(l.digest);
        } catch (err) {
          this.log.warn({ image: img.id, manifest: img.manifestDigest, err: errorMessage(err) }, 'image manifest unreadable during gc');
        }
      }
    }
    const report: GcReport = { blobs: [], snapshots: [], bytes: 0 };
    const snaps = await this.snapshotter.list();
    const byName = new Map<string, SnapshotInfo>(snaps.map((s) => [s.name, s]));
    const keepChain = (name: string | undefined) => {
      for (let n = name; n !== undefined && byName.has(n); n = byName.get(n)!.parent) keepSnaps.add(n);
    };
    for (const s of snaps) if (s.kind === 'active' || keepSnaps.has(s.name)) keepChain(s.kind === 'active' ? s.parent : s.name);
    const depth = (s: SnapshotInfo): number => {
      let d = 0;
      for (let p = s.parent; p !== undefined && byName.has(p) && d < 1000; p = byName.get(p)!.parent) d++;
      return d;
    };
    const doomed = snaps.filter((s) => s.kind === 'committed' && !keepSnaps.has(s.name)).sort((a, b) => depth(b) - depth(a));
    for (const s of doomed) {
      try {
        await this.snapshotter.remove(s.name);
        report.snapshots.push(s.name);
        report.bytes += s.size;
      } catch (err) {
        this.log.warn({ snapshot: s.name, err: errorMessage(err) }, 'snapshot gc failed');
      }
    }
    for await (const b of this.content.list()) {
      if (keepBlobs.has(b.digest)) continue;
      if (await this.content.delete(b.digest)) {
        report.blobs.push(b.digest);
        report.bytes += b.size;
        this.#manifests.delete(b.digest);
        this.#configs.delete(b.digest);
      }
    }
    return report;
  }
}

function labelMatch(labels: Record<string, string>, filter: string): boolean {
  const i = filter.indexOf('=');
  if (i === -1) return filter in labels;
  return labels[filter.slice(0, i)] === filter.slice(i + 1);
}

/** Docker's `until` filter: RFC 3339, Unix seconds, or a duration ("24h", "10m") before now. */
export function parseUntil(s: string): number {
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const d = /^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$/.exec(s);
  if (d) {
    const mult: Record<string, number> = { ns: 1e-6, us: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
    return Date.now() - Number(d[1]) * mult[d[2]!]!;
  }
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw invalidArgument(`invalid filter 'until=${s}'`);
  return t;
}

export { familiarString };
