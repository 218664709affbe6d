// `docker load` (POST /images/load): a docker-archive (manifest.json; Docker 25+ and berth add an
// OCI layout) or a plain OCI image layout (index.json + blobs), as a tar, plain or compressed,
// streamed. Every blob is verified before it is used:
//   blobs/sha256/<hex>        ingested against the digest its name states (ContentStore verifies)
//   <id>.json, <id>/layer.tar legacy docker-archive files: hashed on the way in, stored under the
//                             digest they hash to
// and every layer's uncompressed digest is checked against the config's diff_ids before its
// snapshot commits. Archive paths are never joined into the filesystem: only digests (validated)
// and random scratch names are. Tags from the archive move to the loaded images.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract } from 'tar-stream';
import { isDigest, sha256, shortId, type Digest } from '../core/digest.ts';
import { chainIds } from '../core/chain-id.ts';
import { BerthError, dataLoss, errorMessage, invalidArgument } from '../core/errors.ts';
import { INDEX_TYPES, MAX_MANIFEST_BYTES, MediaType, platformMatches, type ImageConfig, type ImageIndex, type ImageManifest } from '../core/oci.ts';
import { formatReference, parseReference } from '../core/reference.ts';
import { autoDecompress, LAYER_CHUNK, sniffCompression } from '../layer/compression.ts';
import { HashCounter } from './hash-counter.ts';
import type { ImageService, Lease } from './image-service.ts';
import { familiar, type StoredImage } from './image-store.ts';
import { progressMessage, Throttle, type ProgressSink } from './progress.ts';

export interface LoadOptions {
  quiet?: boolean;
  progress?: ProgressSink;
  signal?: AbortSignal;
}

const BLOB_RE = /^blobs\/(sha256)\/([a-f0-9]{64})$/;
const LEGACY_CONFIG_RE = /^[a-f0-9]{64}\.json$/;
const LEGACY_LAYER_RE = /^[a-f0-9]{64}\/layer\.tar$/;
const META_FILES = new Set(['manifest.json', 'index.json', 'repositories', 'oci-layout']);
const MAX_CONFIG_BYTES = 32 * 1024 * 1024;

interface DockerArchiveEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

interface ToLoad {
  configDigest: Digest;
  layers: Digest[];
  tags: string[];
  /** Stored manifest to keep, when the archive had one for this image. */
  manifestDigest?: Digest;
}

function cleanName(name: string): string {
  return posix.normalize(name.replace(/^(\.\/|\/)+/, '')).replace(/\/$/, '');
}

async function readAll(s: Readable, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of s as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > max) throw invalidArgument(`${what} exceeds ${max} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export async function loadImages(images: ImageService, body: Readable, opts: LoadOptions = {}): Promise<StoredImage[]> {
  const progress = opts.progress ?? (() => {});
  const leases: Lease[] = [];
  const hold = async (ids: string[]) => leases.push(await images.lease(ids));
  const meta = new Map<string, Buffer>();
  const files = new Map<string, Digest>();
  const links = new Map<string, string>();
  const { content } = images;
  try {
    const extract = tarExtract();
    const feeding = pipeline(body, autoDecompress({ chunkSize: LAYER_CHUNK }), extract, opts.signal ? { signal: opts.signal } : {});
    let feedErr: unknown;
    feeding.catch((e: unknown) => (feedErr = e));
    try {
      for await (const entry of extract) {
        const h = entry.header;
        const name = cleanName(h.name);
        const stream = entry as unknown as Readable;
        if (h.type === 'symlink' || h.type === 'link') {
          const target = h.type === 'symlink' ? posix.join(posix.dirname(name), h.linkname ?? '') : cleanName(h.linkname ?? '');
          links.set(name, posix.normalize(target));
          stream.resume();
          continue;
        }
        if (h.type !== 'file' && h.type !== 'contiguous-file') {
          stream.resume();
          continue;
        }
        const blob = BLOB_RE.exec(name);
        if (blob) {
          const digest = `${blob[1]}:${blob[2]}` as Digest;
          await hold([digest]);
          if (await content.has(digest)) stream.resume();
          else await content.ingest(stream, { digest, size: h.size ?? 0 }, opts.signal);
          files.set(name, digest);
        } else if (META_FILES.has(name)) {
          meta.set(name, await readAll(stream, MAX_MANIFEST_BYTES, name));
        } else if (LEGACY_CONFIG_RE.test(name)) {
          const bytes = await readAll(stream, MAX_CONFIG_BYTES, name);
          const digest = sha256(bytes);
          await hold([digest]);
          await content.putBytes(bytes, { digest });
          files.set(name, digest);
        } else if (LEGACY_LAYER_RE.test(name)) {
          // The digest is known only at the end: spool to scratch, then store verified.
          const tmp = join(images.paths.tmp, `load-${randomBytes(8).toString('hex')}`);
          try {
            const hasher = new HashCounter();
            await pipeline(stream, hasher, createWriteStream(tmp, { mode: 0o600 }));
            const digest = hasher.digest!;
            await hold([digest]);
            if (!(await content.has(digest))) await content.ingest(createReadStream(tmp), { digest, size: hasher.bytes }, opts.signal);
            files.set(name, digest);
          } finally {
            await rm(tmp, { force: true });
          }
        } else {
          stream.resume();
        }
      }
    } catch (err) {
      extract.destroy();
      await feeding.catch(() => {});
      throw err;
    }
    await feeding.catch(() => {});
    if (feedErr !== undefined) throw feedErr instanceof BerthError ? feedErr : invalidArgument(`invalid image archive: ${errorMessage(feedErr)}`, feedErr);

    const resolvePath = (p: string): Digest => {
      let cur = cleanName(p);
      for (let i = 0; i < 16 && !files.has(cur) && links.has(cur); i++) cur = links.get(cur)!;
      const d = files.get(cur);
      if (!d) throw invalidArgument(`invalid image archive: ${JSON.stringify(p)} is not in the archive`);
      return d;
    };

    const plan: ToLoad[] = [];
    const manifestJson = meta.get('manifest.json');
    const indexJson = meta.get('index.json');
    // Manifests of the OCI layout part, to keep the original manifest digest where it matches.
    const ociManifests = indexJson ? await collectManifests(images, JSON.parse(indexJson.toString('utf8')) as ImageIndex) : [];
    if (manifestJson) {
      let entries: DockerArchiveEntry[];
      try {
        entries = JSON.parse(manifestJson.toString('utf8')) as DockerArchiveEntry[];
        if (!Array.isArray(entries)) throw new Error('not a list');
      } catch (err) {
        throw invalidArgument(`invalid image archive: manifest.json: ${errorMessage(err)}`);
      }
      for (const e of entries) {
        const configDigest = resolvePath(e.Config);
        const layers = (e.Layers ?? []).map(resolvePath);
        const item: ToLoad = { configDigest, layers, tags: (e.RepoTags ?? []).map((t) => normalizeTag(t)) };
        const match = ociManifests.find((m) => m.manifest.config.digest === configDigest && m.manifest.layers.length === layers.length && m.manifest.layers.every((l, i) => l.digest === layers[i]));
        if (match) item.manifestDigest = match.digest;
        plan.push(item);
      }
    } else if (indexJson) {
      for (const m of ociManifests) {
        const item: ToLoad = { configDigest: m.manifest.config.digest, layers: m.manifest.layers.map((l) => l.digest), tags: m.names, manifestDigest: m.digest };
        const same = plan.find((p) => p.manifestDigest === m.digest);
        if (same) same.tags.push(...m.names);
        else plan.push(item);
      }
    } else {
      throw invalidArgument('invalid image archive: no manifest.json or index.json');
    }
    if (plan.length === 0) throw invalidArgument('invalid image archive: no images in it');

    const loaded: StoredImage[] = [];
    for (const item of plan) {
      for (const d of [item.configDigest, ...item.layers]) {
        if (!(await content.has(d))) throw invalidArgument(`invalid image archive: blob ${d} is missing`);
      }
      let config: ImageConfig;
      try {
        config = await content.readJson<ImageConfig>(item.configDigest, MAX_CONFIG_BYTES);
      } catch (err) {
        throw invalidArgument(`invalid image archive: config ${item.configDigest}: ${errorMessage(err)}`);
      }
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (!Array.isArray(diffIds) || diffIds.length !== item.layers.length || !diffIds.every((d) => isDigest(d))) {
        throw invalidArgument(`invalid image archive: layers of ${item.configDigest} don't match its configuration`);
      }
      const chain = chainIds(diffIds);
      await hold(chain);
      let size = 0;
      for (let i = 0; i < chain.length; i++) {
        size += (await unpackLayer(images, item.layers[i]!, diffIds[i]!, chain[i]!, i > 0 ? chain[i - 1] : undefined, opts, progress)).size;
      }
      let manifestDigest = item.manifestDigest;
      if (!manifestDigest) {
        const manifest: ImageManifest = {
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: { mediaType: MediaType.OciConfig, digest: item.configDigest, size: (await content.info(item.configDigest))!.size },
          layers: await Promise.all(item.layers.map(async (d) => ({ mediaType: await layerMediaType(images, d), digest: d, size: (await content.info(d))!.size }))),
        };
        const bytes = Buffer.from(JSON.stringify(manifest));
        manifestDigest = sha256(bytes);
        await hold([manifestDigest]);
        await content.putBytes(bytes, { digest: manifestDigest });
      }
      for (const t of item.tags) {
        const prev = images.store.byRef(t);
        if (prev && prev.id !== item.configDigest) {
          progress({ stream: `The image ${familiar(t)} already exists, renaming the old one with ID ${prev.id} to empty string\n` });
        }
      }
      const img = await images.record({ id: item.configDigest, manifestDigest, repoTags: item.tags, size });
      loaded.push(img);
      if (item.tags.length) for (const t of item.tags) progress({ stream: `Loaded image: ${familiar(t)}\n` });
      else progress({ stream: `Loaded image ID: ${img.id}\n` });
    }
    return loaded;
  } catch (err) {
    for (const l of leases) l.release();
    leases.length = 0;
    await images.gc().catch(() => {});
    throw err;
  } finally {
    for (const l of leases) l.release();
    if (leases.length) await images.gc().catch(() => {});
  }
}

function normalizeTag(t: string): string {
  try {
    return formatReference(parseReference(t));
  } catch {
    throw invalidArgument(`invalid image archive: invalid tag ${JSON.stringify(t)}`);
  }
}

async function layerMediaType(images: ImageService, d: Digest): Promise<string> {
  const head = await new Promise<Buffer>((res, rej) => {
    const s = images.content.createReadStream(d, { start: 0, end: 3 });
    const chunks: Buffer[] = [];
    s.on("data", (c: Buffer | string) => chunks.push(Buffer.from(c)));
    s.on('end', () => res(Buffer.concat(chunks)));
    s.on('error', rej);
  });
  const c = sniffCompression(head);
  return c === 'gzip' ? MediaType.OciLayerGzip : c === 'zstd' ? MediaType.OciLayerZstd : MediaType.OciLayer;
}

/** Image manifests an OCI index names (nested indexes narrowed to the host platform), with names. */
async function collectManifests(images: ImageService, index: ImageIndex, depth = 0): Promise<Array<{ digest: Digest; manifest: ImageManifest; names: string[] }>> {
  const out: Array<{ digest: Digest; manifest: ImageManifest; names: string[] }> = [];
  if (depth > 4 || !Array.isArray(index?.manifests)) return out;
  const platform = images.defaultPlatform();
  for (const desc of index.manifests) {
    if (!isDigest(desc.digest) || !(await images.content.has(desc.digest))) continue;
    let doc: ImageManifest & ImageIndex;
    try {
      doc = await images.content.readJson<ImageManifest & ImageIndex>(desc.digest, MAX_MANIFEST_BYTES);
    } catch {
      continue;
    }
    const names: string[] = [];
    const n = desc.annotations?.['io.containerd.image.name'];
    if (n) {
      try {
        names.push(formatReference(parseReference(n)));
      } catch {
        /* not a reference: ignored */
      }
    }
    if (INDEX_TYPES.includes(desc.mediaType) || Array.isArray(doc.manifests)) {
      const kids = doc.manifests.filter((m) => m.platform === undefined || platformMatches(platform, m.platform));
      const sub = await collectManifests(images, { schemaVersion: 2, manifests: kids.slice(0, 1) }, depth + 1);
      for (const s of sub) out.push({ ...s, names: [...s.names, ...names] });
    } else if (doc.config && Array.isArray(doc.layers)) {
      out.push({ digest: desc.digest, manifest: doc, names });
    }
  }
  return out;
}

async function unpackLayer(
  images: ImageService, blob: Digest, diffId: Digest, chain: Digest, parent: Digest | undefined, opts: LoadOptions, progress: ProgressSink,
): Promise<{ size: number }> {
  const existing = await images.snapshotter.stat(chain);
  if (existing) return existing;
  const total = (await images.content.info(blob))?.size ?? 0;
  const id = shortId(diffId);
  const t = new Throttle(100);
  let n = 0;
  const src = createReadStream(images.content.blobPath(blob), { highWaterMark: 1 << 20 });
  if (!opts.quiet) {
    src.on("data", (c: Buffer | string) => {
      n += c.length;
      if (n >= total || t.ready()) progress(progressMessage(id, 'Loading layer', n, total));
    });
  }
  const hasher = new HashCounter();
  const feed = pipeline(src, autoDecompress({ chunkSize: LAYER_CHUNK }), hasher);
  feed.catch(() => {});
  try {
    const unpackOpts: Parameters<typeof images.snapshotter.unpack>[3] = {
      beforeCommit: async () => {
        await feed;
        if (hasher.digest !== diffId) throw dataLoss(`layer ${blob}: uncompressed digest mismatch: got ${hasher.digest ?? 'an incomplete stream'}, config says ${diffId}`);
      },
    };
    if (opts.signal) unpackOpts.signal = opts.signal;
    return await images.snapshotter.unpack(chain, parent, hasher, unpackOpts);
  } catch (err) {
    hasher.destroy();
    await feed.catch(() => {});
    throw err;
  }
}
