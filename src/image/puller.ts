// Pull: registry -> content store + snapshotter -> image record, with Docker's progress stream.
//
//   resolve (index -> platform manifest) -> config (verified, stored) -> chain IDs
//   -> per layer, in parallel (at most `concurrency` layers downloading or applying at once):
//        snapshot exists          -> "Already exists"
//        blob not stored          -> ONE pass: HTTP body -tee-> ContentWriter (verifies digest+size)
//                                                    \-> inflate -> sha256 (diffID) -> unpack
//        blob stored              -> stored blob -> inflate -> sha256 (diffID) -> unpack
//      layers apply concurrently, whether or not their parent is committed yet: the snapshotter
//      publishes each only after its parent (UnpackOptions.parentCommitted); each unpack commits
//      only from `beforeCommit`, after the compressed digest and size and the diffID from the
//      config were verified
//   -> record the image (tags, repo digest) last.
//
// Layer jobs are shared by chain ID across concurrent pulls (a base layer is fetched once). A
// pull holds a lease on everything it writes; when it fails it releases the lease and runs GC,
// so a failed pull leaves no blob, snapshot or record behind. A pull killed with the daemon
// leaves ingest files (swept at start), snapshotter temp dirs (the snapshotter sweeps them) and
// unowned blobs or snapshots (GC at start).
import { createReadStream } from 'node:fs';
import { PassThrough, Transform, type TransformCallback, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { isDigest, parseDigest, shortId, type Digest } from '../core/digest.ts';
import { chainIds } from '../core/chain-id.ts';
import { BerthError, dataLoss, errorMessage, invalidArgument, notFound } from '../core/errors.ts';
import { INDEX_TYPES, MANIFEST_TYPES, MediaType, platformMatches, type Descriptor, type ImageConfig, type Platform } from '../core/oci.ts';
import { familiarString, formatReference, parseReference, repositoryName, type Reference } from '../core/reference.ts';
import type { SnapshotInfo } from '../core/snapshots.ts';
import type { RegistryClient } from '../distribution/registry-client.ts';
import { staticAuth, type Credentials } from '../distribution/credentials.ts';
import { autoDecompress, LAYER_CHUNK } from '../layer/compression.ts';
import type { ImageService } from './image-service.ts';
import type { StoredImage } from './image-store.ts';
import { progressMessage, Throttle, type ProgressSink } from './progress.ts';
import { Tee } from './tee.ts';
import { Coalesce } from './coalesce.ts';
import { HashCounter } from './hash-counter.ts';

export interface PullOptions {
  platform?: Platform;
  /** Credentials from X-Registry-Auth. */
  auth?: Credentials;
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface PullResult {
  image: StoredImage;
  /** The digest pulled by: the index's when there was one, else the manifest's. */
  digest: Digest;
  /** Whether any layer was fetched (Docker's "Downloaded newer image" vs "Image is up to date"). */
  downloaded: boolean;
}

export interface PullerOptions {
  images: ImageService;
  registry: RegistryClient;
  /** Layer downloads at once per pull (Docker's max-concurrent-downloads is 3). */
  concurrency?: number;
  /** Bound on one layer's uncompressed size (decompression bombs). */
  maxLayerBytes?: number;
}

/** Parse a user's image reference; Docker's 400 "invalid reference format". */
export function parsePullReference(input: string): Reference {
  try {
    return parseReference(input);
  } catch (err) {
    throw invalidArgument(`invalid reference format${/repository name must be lowercase/.test(errorMessage(err)) ? ': repository name (' + input + ') must be lowercase' : ''}`, err);
  }
}

/** Counts bytes read from a source (extraction progress from a stored blob). */
class Counter extends Transform {
  readonly #on: (n: number) => void;
  #n = 0;
  constructor(on: (n: number) => void) {
    super({ highWaterMark: 1 << 20 });
    this.#on = on;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#n += chunk.length;
    this.#on(this.#n);
    cb(null, chunk);
  }
}

/** A counting semaphore; `acquire` reports whether the caller had to wait. */
class Semaphore {
  #free: number;
  #waiters: Array<() => void> = [];
  constructor(n: number) {
    this.#free = n;
  }
  tryAcquire(): boolean {
    if (this.#free > 0) {
      this.#free--;
      return true;
    }
    return false;
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

/** Compressed bytes buffered in memory ahead of the applies, shared by the layers streamed at once. */
const MAX_READ_AHEAD = 256 * 1024 * 1024;

const LAYER_TYPES = new Set<string>([
  MediaType.OciLayer, MediaType.OciLayerGzip, MediaType.OciLayerZstd, MediaType.DockerLayerGzip, MediaType.DockerForeignLayerGzip,
  'application/vnd.docker.image.rootfs.diff.tar',
  'application/vnd.oci.image.layer.nondistributable.v1.tar', 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
]);

interface LayerCtx {
  rc: RegistryClient;
  ref: Reference;
  desc: Descriptor;
  diffId: Digest;
  chain: Digest;
  parent: Digest | undefined;
  parentJob: Promise<SnapshotInfo> | undefined;
  progress: ProgressSink;
  signal: AbortSignal | undefined;
  sem: Semaphore;
  /** This layer's share of MAX_READ_AHEAD. */
  readAhead: number;
}

export class Puller {
  readonly #images: ImageService;
  readonly #registry: RegistryClient;
  readonly #concurrency: number;
  readonly #maxLayerBytes: number | undefined;
  /** chain ID -> the job unpacking it (shared by concurrent pulls). */
  readonly #jobs = new Map<Digest, Promise<SnapshotInfo>>();

  constructor(opts: PullerOptions) {
    this.#images = opts.images;
    this.#registry = opts.registry;
    this.#concurrency = opts.concurrency ?? 4;
    this.#maxLayerBytes = opts.maxLayerBytes;
  }

  async pull(input: string, opts: PullOptions = {}): Promise<PullResult> {
    const ref = parsePullReference(input);
    const progress = opts.progress ?? (() => {});
    const { signal } = opts;
    const images = this.#images;
    const rc = this.#registry.withAuth(opts.auth ? staticAuth(opts.auth) : undefined);
    const resolveOpts: { platform?: Platform; signal?: AbortSignal } = {};
    if (opts.platform) resolveOpts.platform = opts.platform;
    if (signal) resolveOpts.signal = signal;
    images.snapshotter.expectUnpacks?.(2); // the appliers start while the manifest is fetched
    const resolved = await rc.resolve(ref, resolveOpts);
    const manifest = resolved.manifest;
    if (!manifest.config || !isDigest(manifest.config.digest) || !Array.isArray(manifest.layers)) {
      throw invalidArgument(`manifest ${resolved.manifestDigest} is not an image manifest`);
    }
    if (INDEX_TYPES.includes(manifest.mediaType ?? '') || (manifest.mediaType && !MANIFEST_TYPES.includes(manifest.mediaType))) {
      throw invalidArgument(`unsupported manifest media type ${manifest.mediaType}`);
    }
    for (const l of manifest.layers) {
      parseDigest(l.digest);
      if (!LAYER_TYPES.has(l.mediaType)) throw invalidArgument(`unsupported layer media type ${l.mediaType}`);
    }
    const topDigest = resolved.index?.digest ?? resolved.manifestDigest;
    progress({ status: `Pulling from ${ref.path}`, id: ref.digest ?? ref.tag ?? 'latest' });

    const lease = await images.lease([manifest.config.digest, resolved.manifestDigest, ...manifest.layers.map((l) => l.digest)]);
    let chainLease: { release(): void } | undefined;
    const jobs: Array<Promise<SnapshotInfo>> = [];
    try {
      const config = await this.#config(rc, ref, manifest.config, signal);
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== manifest.layers.length) throw invalidArgument(`layers from manifest don't match image configuration`);
      for (const d of diffIds) parseDigest(d);
      if (opts.platform && !platformMatches(opts.platform, { os: config.os, architecture: config.architecture, ...(config.variant ? { variant: config.variant } : {}) })) {
        throw notFound(`image with reference ${familiarString(ref)} was found but does not match the specified platform: wanted ${opts.platform.os}/${opts.platform.architecture}, actual: ${config.os}/${config.architecture}`);
      }
      const chain = chainIds(diffIds);
      chainLease = await images.lease(chain);
      await images.content.putBytes(resolved.manifestBytes, { digest: resolved.manifestDigest });

      const existing = await Promise.all(chain.map((c) => images.snapshotter.stat(c)));
      for (let i = 0; i < chain.length; i++) {
        progress(progressMessage(shortId(manifest.layers[i]!.digest), existing[i] ? 'Already exists' : 'Pulling fs layer'));
      }
      const sem = new Semaphore(this.#concurrency);
      const readAhead = Math.floor(MAX_READ_AHEAD / Math.max(1, Math.min(this.#concurrency, existing.filter((e) => !e).length)));
      let downloaded = false;
      for (let i = 0; i < chain.length; i++) {
        const have = existing[i];
        if (have) {
          jobs.push(Promise.resolve(have));
          continue;
        }
        downloaded = true;
        jobs.push(this.#layerJob({
          rc, ref, desc: manifest.layers[i]!, diffId: diffIds[i]!, chain: chain[i]!, parent: i > 0 ? chain[i - 1] : undefined,
          parentJob: i > 0 ? jobs[i - 1] : undefined, progress, signal, sem, readAhead,
        }));
      }
      const settled = await Promise.allSettled(jobs);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      signal?.throwIfAborted();
      const size = settled.reduce((n, s) => n + (s as PromiseFulfilledResult<SnapshotInfo>).value.size, 0);
      const repoTags = ref.digest === undefined && ref.tag !== undefined ? [formatReference(ref)] : [];
      const image = await images.record({
        id: manifest.config.digest, manifestDigest: resolved.manifestDigest, repoTags, repoDigests: [`${repositoryName(ref)}@${topDigest}`], size,
      });
      progress({ status: `Digest: ${topDigest}` });
      progress({ status: `Status: ${downloaded ? 'Downloaded newer image' : 'Image is up to date'} for ${familiarString(ref)}` });
      return { image, digest: topDigest, downloaded };
    } catch (err) {
      await Promise.allSettled(jobs);
      chainLease?.release();
      lease.release();
      chainLease = undefined;
      await images.gc().catch((e: unknown) => images.log.warn({ err: errorMessage(e) }, 'gc after failed pull'));
      throw err;
    } finally {
      chainLease?.release();
      lease.release();
    }
  }

  async #config(rc: RegistryClient, ref: Reference, desc: Descriptor, signal: AbortSignal | undefined): Promise<ImageConfig> {
    const content = this.#images.content;
    let bytes: Buffer;
    if (await content.has(desc.digest)) {
      bytes = await content.readBytes(desc.digest);
    } else {
      bytes = await rc.fetchBlobBytes(ref, desc, signal ? { signal } : {});
      await content.putBytes(bytes, { digest: desc.digest, size: desc.size });
    }
    try {
      const cfg = JSON.parse(bytes.toString('utf8')) as ImageConfig;
      if (typeof cfg !== 'object' || cfg === null || !cfg.rootfs) throw new Error('no rootfs');
      return cfg;
    } catch (err) {
      throw invalidArgument(`image config ${desc.digest} is not valid: ${errorMessage(err)}`);
    }
  }

  /** The job committing one layer, shared by chain ID. */
  #layerJob(l: LayerCtx): Promise<SnapshotInfo> {
    const shared = this.#jobs.get(l.chain);
    const id = shortId(l.desc.digest);
    if (shared) {
      l.progress(progressMessage(id, 'Waiting'));
      return shared.then((info) => {
        l.progress(progressMessage(id, 'Pull complete'));
        return info;
      });
    }
    const job = this.#runLayer(l).finally(() => this.#jobs.delete(l.chain));
    this.#jobs.set(l.chain, job);
    return job;
  }

  async #runLayer(l: LayerCtx): Promise<SnapshotInfo> {
    const images = this.#images;
    const id = shortId(l.desc.digest);
    if (!l.sem.tryAcquire()) {
      l.progress(progressMessage(id, 'Waiting'));
      await l.sem.acquire();
    }
    // The slot is held while the layer downloads and applies, and given back when the apply is
    // done (before waiting for the parent to commit), so a slot never waits on a later layer:
    // slots are granted in layer order, and a layer only ever waits for its parent.
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      l.sem.release();
    };
    try {
      l.signal?.throwIfAborted();
      if (!(await images.content.has(l.desc.digest))) return await this.#streamLayer(l, release);
      l.progress(progressMessage(id, 'Download complete'));
      return await this.#unpackStored(l, release);
    } finally {
      release();
    }
  }

  #downloadProgress(l: LayerCtx): (n: number) => void {
    const id = shortId(l.desc.digest);
    const t = new Throttle(100);
    return (n: number) => {
      if (n < l.desc.size && !t.ready()) return;
      l.progress(progressMessage(id, 'Downloading', n, l.desc.size));
    };
  }

  async #fetch(l: LayerCtx): Promise<Readable> {
    const o: { signal?: AbortSignal; onProgress: (n: number) => void } = { onProgress: this.#downloadProgress(l) };
    if (l.signal) o.signal = l.signal;
    return l.rc.fetchBlob(l.ref, l.desc, o);
  }

  /** Download and unpack in one pass (see the file comment). */
  async #streamLayer(l: LayerCtx, applied: () => void): Promise<SnapshotInfo> {
    const images = this.#images;
    const id = shortId(l.desc.digest);
    const body = await this.#fetch(l);
    const writer = await images.content.writer({ digest: l.desc.digest, size: l.desc.size });
    const decomp = autoDecompress(this.#maxLayerBytes === undefined ? { chunkSize: LAYER_CHUNK } : { chunkSize: LAYER_CHUNK, maxBytes: this.#maxLayerBytes });
    const hasher = new HashCounter();
    // The apply side gets a deep buffer of compressed bytes (up to the whole layer, capped), so
    // the download runs at network speed and ends early (registry connection released, blob
    // committed) instead of being paced by the apply; on a busy machine a long chain of
    // processes and threads that must all be scheduled in step is what makes one pass slow.
    const ahead = new PassThrough({ writableHighWaterMark: Math.max(1 << 20, Math.min(l.desc.size, l.readAhead)), readableHighWaterMark: 1 << 20 });
    const tee = new Tee([writer, ahead]);
    const download = (async () => {
      await pipeline(body, new Coalesce(), tee);
      await finished(writer);
      l.progress(progressMessage(id, 'Verifying Checksum'));
      const blob = await writer.commit();
      l.progress(progressMessage(id, 'Download complete'));
      l.progress(progressMessage(id, 'Extracting', l.desc.size, l.desc.size));
      return blob;
    })();
    download.catch(() => {});
    const inflating = pipeline(ahead, decomp, hasher);
    inflating.catch(() => {});
    try {
      const unpackOpts: Parameters<typeof images.snapshotter.unpack>[3] = {
        beforeCommit: async () => {
          await download;
          await inflating;
          applied();
          this.#checkDiffId(l, hasher.digest);
        },
        ...(l.parentJob ? { parentCommitted: l.parentJob } : {}),
      };
      if (this.#maxLayerBytes !== undefined) unpackOpts.maxBytes = this.#maxLayerBytes;
      if (l.signal) unpackOpts.signal = l.signal;
      const info = await images.snapshotter.unpack(l.chain, l.parent, hasher, unpackOpts);
      // An unpack that found the snapshot already committed may not have read the tar: drain it
      // so the blob still lands in the content store, verified.
      hasher.resume();
      await download;
      await inflating;
      l.progress(progressMessage(id, 'Pull complete'));
      return info;
    } catch (err) {
      tee.destroy();
      body.destroy();
      ahead.destroy();
      decomp.destroy();
      hasher.destroy();
      await download.catch(() => {});
      await writer.abort();
      // The first cause: a digest failure of the download explains a truncated tar.
      const dl = await download.then(() => undefined, (e: unknown) => e);
      throw layerError(l, dl instanceof BerthError && dl.kind === 'DataLoss' ? dl : err);
    }
  }

  /** Unpack a layer from its stored (already verified) blob. */
  async #unpackStored(l: LayerCtx, applied: () => void = () => {}): Promise<SnapshotInfo> {
    const images = this.#images;
    const id = shortId(l.desc.digest);
    const existing = await images.snapshotter.stat(l.chain);
    if (existing) {
      l.progress(progressMessage(id, 'Pull complete'));
      return existing;
    }
    const t = new Throttle(100);
    const total = l.desc.size;
    const counter = new Counter((n) => {
      if (n < total && !t.ready()) return;
      l.progress(progressMessage(id, 'Extracting', n, total));
    });
    const decomp = autoDecompress(this.#maxLayerBytes === undefined ? { chunkSize: LAYER_CHUNK } : { chunkSize: LAYER_CHUNK, maxBytes: this.#maxLayerBytes });
    const hasher = new HashCounter();
    // 1 MiB reads: a 50 MB layer is 50 thread-pool round trips instead of 800.
    const feed = pipeline(createReadStream(images.content.blobPath(l.desc.digest), { highWaterMark: 1 << 20 }), counter, decomp, hasher);
    feed.catch(() => {});
    try {
      const unpackOpts: Parameters<typeof images.snapshotter.unpack>[3] = {
        beforeCommit: async () => {
          await feed;
          applied();
          this.#checkDiffId(l, hasher.digest);
        },
        ...(l.parentJob ? { parentCommitted: l.parentJob } : {}),
      };
      if (this.#maxLayerBytes !== undefined) unpackOpts.maxBytes = this.#maxLayerBytes;
      if (l.signal) unpackOpts.signal = l.signal;
      const info = await images.snapshotter.unpack(l.chain, l.parent, hasher, unpackOpts);
      l.progress(progressMessage(id, 'Pull complete'));
      return info;
    } catch (err) {
      hasher.destroy();
      await feed.catch(() => {});
      throw layerError(l, err);
    }
  }

  #checkDiffId(l: LayerCtx, got: Digest | undefined): void {
    if (got !== l.diffId) {
      throw dataLoss(`layer ${l.desc.digest}: uncompressed digest (diffID) mismatch: got ${got ?? 'an incomplete stream'}, config says ${l.diffId}`);
    }
  }
}

function layerError(l: LayerCtx, err: unknown): Error {
  if (err instanceof BerthError) {
    if (err.kind === 'DataLoss' && !/digest/i.test(err.message)) {
      return new BerthError('DataLoss', `failed to verify digest of layer ${l.desc.digest}: ${err.message}`, { cause: err });
    }
    return err;
  }
  return err instanceof Error ? err : new Error(String(err));
}
