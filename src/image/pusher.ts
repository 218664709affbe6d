// Push: local image -> registry, with dockerd's progress stream (distribution/push_v2.go).
//
//   plan(name, {tag, platform})   the tags to push, resolved BEFORE any progress is written (the
//                                 route answers 404 "No such image: x:tag" as a plain HTTP error)
//   push(plan, opts), per tag, one after the other:
//     "The push refers to repository [<domain>/<path>]"          (once)
//     lease the image's manifest, config and layer blobs against GC for the whole push
//     make the manifest distributable (see below)
//     per layer, top first, at most `concurrency` at once (dockerd's max-concurrent-uploads, 5):
//       "Preparing" -> ("Waiting") -> HEAD blob: exists        -> "Layer already exists"
//                                  -> mount from a repository of the same registry the image
//                                     came from or was pushed to (its repo digests)  -> "Mounted from <path>"
//                                  -> upload from the content store -> "Pushing" (bytes) -> "Pushed"
//     config blob (no progress line), then PUT the manifest's exact stored bytes under the tag
//     "<tag>: digest: <digest> size: <bytes>" and the aux {Tag, Digest, Size}
//     record "<repo>@<digest>" as a repo digest of the image (as dockerd does; later pushes to
//     other repositories of that registry mount from it)
// Progress IDs are short diffIDs, as dockerd's (not blob digests). The first failing layer
// cancels the others; the error goes to the caller (the route writes it in-band).
//
// What is in the content store, and what gets pushed. Every path that records an image stores
// its layer blobs (pull: as fetched; load: as archived; import, build, commit: through
// ImageService.createImage, which refuses missing blobs), so a blob is never regenerated from a
// snapshot: a re-tarred snapshot would not hash to the config's diffID, and the image ID would
// change. But import and legacy docker-archive loads store UNCOMPRESSED layer tars (media type
// ...layer.v1.tar). Docker always pushes gzip layers, so before the first push such an image is
// made distributable once: each uncompressed blob is gzipped into the content store, a manifest
// with the gzip descriptors (same config, so the same image ID) is written, and the image record
// points at it from then on (the uncompressed blobs become garbage for GC). Compressed blobs
// (gzip, zstd) are pushed byte for byte, so a pulled image pushes to the same manifest digest.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createGzip } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { sha256, shortId, type Digest } from '../core/digest.ts';
import { failedPrecondition, invalidArgument, notFound } from '../core/errors.ts';
import { MediaType, formatPlatform, platformMatches, type Descriptor, type ImageManifest, type Platform } from '../core/oci.ts';
import { familiarName, familiarString, formatReference, parseReference, repositoryName, type Reference } from '../core/reference.ts';
import type { RegistryClient, RepositoryRef } from '../distribution/registry-client.ts';
import { staticAuth, type Credentials } from '../distribution/credentials.ts';
import { HashCounter } from './hash-counter.ts';
import type { ImageService, Lease } from './image-service.ts';
import { repoOf, type StoredImage } from './image-store.ts';
import { progressMessage, Throttle, type JsonMessage, type ProgressSink } from './progress.ts';

export interface PusherOptions {
  images: ImageService;
  registry: RegistryClient;
  /** Layer uploads at once per push (dockerd's max-concurrent-uploads default is 5). */
  concurrency?: number;
}

export interface PushPlanOptions {
  /** The API's `tag` parameter: push this tag only. Empty: the name's tag, else every tag of the repository. */
  tag?: string;
  /** Only push when the image is for this platform. */
  platform?: Platform;
}

export interface PushOptions {
  /** Credentials from X-Registry-Auth. */
  auth?: Credentials;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

/** What a push request names: a repository and the tags (with their images) to push there. */
export interface PushPlan {
  repo: RepositoryRef;
  /** Empty when every tag of the repository was asked for and it has none locally. */
  targets: Array<{ tag: string; image: StoredImage }>;
}

export interface PushResult {
  tag: string;
  digest: Digest;
  size: number;
}

/** Docker's push aux message (types.PushResult). */
export function pushAux(r: PushResult): JsonMessage {
  return { progressDetail: {}, aux: { Tag: r.tag, Digest: r.digest, Size: r.size } };
}

/** Uncompressed layer media types and their gzip counterparts. */
const GZIP_OF: Record<string, { oci: string; docker: string }> = {
  [MediaType.OciLayer]: { oci: MediaType.OciLayerGzip, docker: MediaType.DockerLayerGzip },
  'application/vnd.docker.image.rootfs.diff.tar': { oci: MediaType.OciLayerGzip, docker: MediaType.DockerLayerGzip },
  'application/vnd.oci.image.layer.nondistributable.v1.tar': {
    oci: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip', docker: MediaType.DockerForeignLayerGzip,
  },
};

/** A foreign layer (Windows base layers, nondistributable): fetched from its URLs, never pushed (dockerd). */
function isForeign(d: Descriptor): boolean {
  return (d.urls?.length ?? 0) > 0;
}

/** dockerd's maxMountAttempts. */
const MAX_MOUNT_ATTEMPTS = 3;

/** A counting semaphore; `tryAcquire` tells whether a slot was free right now. */
class Limiter {
  #free: number;
  #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = Math.max(1, n);
  }
  tryAcquire(): boolean {
    if (this.#free === 0) return false;
    this.#free--;
    return true;
  }
  acquire(): Promise<void> {
    if (this.tryAcquire()) return Promise.resolve();
    return new Promise((r) => this.#waiters.push(r));
  }
  release(): void {
    const next = this.#waiters.shift();
    if (next) next();
    else this.#free++;
  }
}

/** The manifest to push: its exact bytes, parsed, and its media type. */
interface PushManifest {
  digest: Digest;
  bytes: Buffer;
  manifest: ImageManifest;
  mediaType: string;
}

function manifestMediaType(m: ImageManifest): string {
  if (m.mediaType) return m.mediaType;
  return m.config?.mediaType === MediaType.DockerConfig ? MediaType.DockerManifest : MediaType.OciManifest;
}

/** Parse the route's platform parameter: JSON (API 1.46+, `{"os":..,"architecture":..}`) or "os/arch[/variant]". */
export function parsePushPlatform(s: string): Platform {
  let p: Platform;
  if (s.trim().startsWith('{')) {
    try {
      p = JSON.parse(s) as Platform;
    } catch {
      throw invalidArgument(`invalid platform ${JSON.stringify(s)}`);
    }
  } else {
    const parts = s.split('/');
    p = { os: parts[0] ?? '', architecture: parts[1] ?? '' };
    if (parts[2]) p.variant = parts[2];
  }
  if (typeof p !== 'object' || p === null || !p.os || !p.architecture) throw invalidArgument(`invalid platform ${JSON.stringify(s)}`);
  return p;
}

export class Pusher {
  readonly #images: ImageService;
  readonly #registry: RegistryClient;
  readonly #concurrency: number;
  /** image ID -> the conversion making its manifest distributable (one at a time per image). */
  readonly #converting = new Map<Digest, Promise<PushManifest>>();

  constructor(opts: PusherOptions) {
    this.#images = opts.images;
    this.#registry = opts.registry;
    this.#concurrency = opts.concurrency ?? 5;
  }

  /**
   * Resolve a push request (Docker's POST /images/{name}/push?tag=). Throws before anything is
   * sent: InvalidArgument for a bad name or a digest reference, NotFound "No such image: x:tag"
   * for a tag that is not here, NotFound when the image is for another platform.
   */
  async plan(name: string, opts: PushPlanOptions = {}): Promise<PushPlan> {
    let ref: Reference;
    try {
      ref = parseReference(name, { defaultTag: false });
    } catch {
      throw invalidArgument('invalid reference format');
    }
    if (ref.digest !== undefined) throw invalidArgument('cannot push a digest reference');
    const repo: RepositoryRef = { domain: ref.domain, path: ref.path };
    const tag = opts.tag || ref.tag;
    let targets: PushPlan['targets'];
    if (tag !== undefined) {
      let tagged: Reference;
      try {
        tagged = parseReference(`${repositoryName(repo)}:${tag}`);
      } catch {
        throw invalidArgument('invalid reference format');
      }
      const image = this.#images.store.byRef(formatReference(tagged));
      if (!image) throw notFound(`No such image: ${familiarString(tagged)}`);
      targets = [{ tag, image }];
    } else {
      // Every tag of the repository, in Docker's order (sorted references).
      const repoName = repositoryName(repo);
      const found: PushPlan['targets'] = [];
      for (const image of this.#images.store.all()) {
        for (const t of image.repoTags) {
          if (repoOf(t) === repoName) found.push({ tag: t.slice(repoName.length + 1), image });
        }
      }
      targets = found.sort((a, b) => (a.tag < b.tag ? -1 : a.tag > b.tag ? 1 : 0));
    }
    if (opts.platform) {
      for (const t of targets) {
        const cfg = await this.#images.config(t.image.id);
        const have: Platform = { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) };
        if (!platformMatches(opts.platform, have)) {
          throw notFound(`image ${familiarString({ ...repo, tag: t.tag })} does not match the specified platform: wanted ${formatPlatform(opts.platform)}, actual: ${formatPlatform(have)}`);
        }
      }
    }
    return { repo, targets };
  }

  /**
   * Push what `plan` resolved (or plan `name` first, with opts.tag/platform); progress as dockerd
   * writes it. Resolves with one result per tag pushed.
   */
  async push(target: PushPlan | string, opts: PushOptions & PushPlanOptions = {}): Promise<PushResult[]> {
    let plan: PushPlan;
    if (typeof target === 'string') {
      const po: PushPlanOptions = {};
      if (opts.tag) po.tag = opts.tag;
      if (opts.platform) po.platform = opts.platform;
      plan = await this.plan(target, po);
    } else {
      plan = target;
    }
    const progress = opts.progress ?? (() => {});
    const rc = this.#registry.withAuth(opts.auth ? staticAuth(opts.auth) : undefined);
    progress({ status: `The push refers to repository [${repositoryName(plan.repo)}]` });
    if (plan.targets.length === 0) throw notFound(`An image does not exist locally with the tag: ${familiarName(plan.repo)}`);
    const results: PushResult[] = [];
    for (const t of plan.targets) {
      opts.signal?.throwIfAborted();
      results.push(await this.#pushTag(rc, plan.repo, t.tag, t.image, progress, opts.signal));
    }
    return results;
  }

  async #pushTag(rc: RegistryClient, repo: RepositoryRef, tag: string, image: StoredImage, progress: ProgressSink, signal: AbortSignal | undefined): Promise<PushResult> {
    const images = this.#images;
    const leases: Lease[] = [];
    try {
      leases.push(await images.lease([image.id]));
      const current = images.store.get(image.id);
      if (!current) throw notFound(`No such image: ${familiarString({ ...repo, tag })}`);
      if (!current.manifestDigest) throw failedPrecondition(`image ${image.id} has no manifest to push`);
      leases.push(await images.lease([current.manifestDigest]));
      const config = await images.config(image.id);
      const diffIds = config.rootfs?.diff_ids ?? [];
      let pm = await this.#readManifest(current.manifestDigest);
      leases.push(await images.lease(pm.manifest.layers.map((l) => l.digest)));
      if (pm.manifest.config.digest !== image.id) throw failedPrecondition(`image ${image.id}: its manifest names config ${pm.manifest.config.digest}`);
      if (pm.manifest.layers.length !== diffIds.length) throw failedPrecondition(`image ${image.id}: layers from manifest don't match image configuration`);

      // Layers top first, as dockerd lists them; one job per distinct blob.
      const order = pm.manifest.layers.map((_, i) => i).reverse();
      const seen = new Set<string>();
      const unique = order.filter((i) => {
        const d = pm.manifest.layers[i]!.digest;
        if (seen.has(d)) return false;
        seen.add(d);
        return true;
      });
      for (const i of unique) progress(progressMessage(shortId(diffIds[i]!), 'Preparing'));

      if (pm.manifest.layers.some((l) => GZIP_OF[l.mediaType] && !isForeign(l))) {
        pm = await this.#distributable(image.id, pm);
        leases.push(await images.lease([pm.digest, ...pm.manifest.layers.map((l) => l.digest)]));
      }

      const sources = mountSources(current, repo);
      const limiter = new Limiter(this.#concurrency);
      const ac = new AbortController();
      const onAbort = () => ac.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const jobs = unique.map((i) =>
          this.#pushLayer(rc, repo, pm.manifest.layers[i]!, shortId(diffIds[i]!), sources, limiter, progress, ac.signal).catch((err: unknown) => {
            ac.abort(err);
            throw err;
          }),
        );
        const settled = await Promise.allSettled(jobs);
        signal?.throwIfAborted();
        const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
        if (failed) throw failed.reason;
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }

      const cfg = pm.manifest.config;
      const sig = signal ? { signal } : {};
      if (!(await rc.blobExists(repo, cfg.digest, sig))) {
        await rc.uploadBlob(repo, cfg, () => images.content.createReadStream(cfg.digest), sig);
      }
      const digest = await rc.putManifest(repo, tag, pm.bytes, pm.mediaType, sig);
      const result: PushResult = { tag, digest, size: pm.bytes.length };
      await images.store.mutate((d) => {
        if (d.get(image.id)) d.addRef(image.id, `${repositoryName(repo)}@${digest}`);
      });
      progress({ status: `${tag}: digest: ${digest} size: ${pm.bytes.length}` });
      progress(pushAux(result));
      return result;
    } finally {
      for (const l of leases) l.release();
    }
  }

  async #readManifest(digest: Digest): Promise<PushManifest> {
    const bytes = await this.#images.content.readBytes(digest);
    let manifest: ImageManifest;
    try {
      manifest = JSON.parse(bytes.toString('utf8')) as ImageManifest;
    } catch {
      throw failedPrecondition(`manifest ${digest} in the content store is not JSON`);
    }
    if (!manifest?.config || !Array.isArray(manifest.layers)) throw failedPrecondition(`manifest ${digest} is not an image manifest`);
    return { digest, bytes, manifest, mediaType: manifestMediaType(manifest) };
  }

  /** One layer blob: exists, mount, or upload (see the file comment). */
  async #pushLayer(
    rc: RegistryClient, repo: RepositoryRef, desc: Descriptor, id: string, sources: string[], limiter: Limiter, progress: ProgressSink, signal: AbortSignal,
  ): Promise<void> {
    if (isForeign(desc)) {
      progress(progressMessage(id, 'Skipped foreign layer'));
      return;
    }
    if (!limiter.tryAcquire()) {
      progress(progressMessage(id, 'Waiting'));
      await limiter.acquire();
    }
    try {
      signal.throwIfAborted();
      if (await rc.blobExists(repo, desc.digest, { signal })) {
        progress(progressMessage(id, 'Layer already exists'));
        return;
      }
      for (const from of sources.slice(0, MAX_MOUNT_ATTEMPTS)) {
        let mounted = false;
        try {
          mounted = await rc.mountBlob(repo, desc.digest, from, { signal });
        } catch {
          // No pull access to the source, or no mount support: upload instead (as dockerd).
          signal.throwIfAborted();
        }
        if (mounted) {
          progress(progressMessage(id, `Mounted from ${from}`));
          return;
        }
      }
      if (!(await this.#images.content.has(desc.digest))) {
        throw failedPrecondition(`layer ${desc.digest} is not in the content store`);
      }
      const t = new Throttle(100);
      await rc.uploadBlob(repo, desc, () => this.#images.content.createReadStream(desc.digest), {
        signal,
        onProgress: (n) => {
          if (n < desc.size && !t.ready()) return;
          progress(progressMessage(id, 'Pushing', n, desc.size));
        },
      });
      progress(progressMessage(id, 'Pushed'));
    } finally {
      limiter.release();
    }
  }

  /**
   * Gzip the uncompressed layers once and point the image at the new manifest (file comment).
   * Concurrent pushes of the image share one conversion; it is not tied to any one client's
   * signal (a client going away must not fail another's push, and the result is kept anyway).
   */
  #distributable(imageId: Digest, pm: PushManifest): Promise<PushManifest> {
    const running = this.#converting.get(imageId);
    if (running) return running;
    const job = this.#convert(imageId, pm, undefined).finally(() => this.#converting.delete(imageId));
    this.#converting.set(imageId, job);
    return job;
  }

  async #convert(imageId: Digest, pm: PushManifest, signal: AbortSignal | undefined): Promise<PushManifest> {
    const images = this.#images;
    const docker = pm.mediaType === MediaType.DockerManifest;
    const leases: Lease[] = [];
    try {
      const layers: Descriptor[] = [];
      for (const l of pm.manifest.layers) {
        const to = GZIP_OF[l.mediaType];
        if (!to || isForeign(l)) {
          layers.push(l);
          continue;
        }
        const blob = await this.#gzipBlob(l.digest, leases, signal);
        const gz: Descriptor = { mediaType: docker ? to.docker : to.oci, digest: blob.digest, size: blob.size };
        if (l.annotations) gz.annotations = l.annotations;
        layers.push(gz);
      }
      const manifest: ImageManifest = { ...pm.manifest, layers };
      const bytes = Buffer.from(JSON.stringify(manifest));
      leases.push(await images.lease([sha256(bytes)]));
      const info = await images.content.putBytes(bytes);
      await images.store.mutate((d) => {
        const cur = d.get(imageId);
        if (cur && cur.manifestDigest === pm.digest) {
          cur.manifestDigest = info.digest;
          d.changed = true;
        }
      });
      images.log.info({ image: imageId, from: pm.digest, to: info.digest }, 'gzipped uncompressed layers for push');
      return { digest: info.digest, bytes, manifest, mediaType: pm.mediaType };
    } finally {
      for (const l of leases) l.release();
    }
  }

  /**
   * Gzip a stored blob into the content store (spooled: the digest is known only at the end). The
   * new blob is leased (into `leases`) before it is stored, so no GC can take it before the image
   * record owns it.
   */
  async #gzipBlob(digest: Digest, leases: Lease[], signal: AbortSignal | undefined): Promise<{ digest: Digest; size: number }> {
    const images = this.#images;
    const tmp = join(images.paths.tmp, `push-${randomBytes(8).toString('hex')}.tar.gz`);
    try {
      const hasher = new HashCounter();
      const sig = signal ? { signal } : {};
      await pipeline(images.content.createReadStream(digest), createGzip(), hasher, createWriteStream(tmp, { mode: 0o600 }), sig);
      const out = { digest: hasher.digest!, size: hasher.bytes };
      leases.push(await images.lease([out.digest]));
      if (!(await images.content.has(out.digest))) await images.content.ingest(createReadStream(tmp), out, signal);
      return out;
    } finally {
      await rm(tmp, { force: true });
    }
  }
}

/**
 * Repositories of the target's registry that hold the image's blobs: those its repo digests
 * name (where it was pulled from or pushed to), other than the target itself.
 */
export function mountSources(image: StoredImage, repo: RepositoryRef): string[] {
  const out: string[] = [];
  for (const r of image.repoDigests) {
    let ref: Reference;
    try {
      ref = parseReference(r, { defaultTag: false });
    } catch {
      continue;
    }
    if (ref.domain === repo.domain && ref.path !== repo.path && !out.includes(ref.path)) out.push(ref.path);
  }
  return out;
}
