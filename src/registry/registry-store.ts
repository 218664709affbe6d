// The registry's state machine over a StorageDriver: repositories, blobs, uploads, manifests,
// tags and referrers. The HTTP server maps requests onto it; it throws RegistryError (wire codes).
//
// Contracts:
// - A blob or manifest becomes visible only after its size and digest were verified, and its
//   bytes were made durable (fsync) before the rename that makes it visible.
// - Read-after-write within this process: a blob upload is acknowledged once verified; its
//   commit runs in the background and every later request touching that blob waits for it.
// - Blobs are shared by all repositories; a repository sees a blob only through its link.
// - Manifests referencing blobs (or child manifests) the repository lacks are refused.
// - Manifests and tag lookups are cached in memory; entries are revalidated against storage after
//   `cacheTtlMs`, so changes by another process (gc, a second server on the same root) show up
//   within that time; changes made through this store are visible at once.
import { createHash, randomUUID, type Hash } from 'node:crypto';
import type { Writable } from 'node:stream';
import { digestAlgorithm, isDigest, type Digest } from '../core/digest.ts';
import { isKind } from '../core/errors.ts';
import { MediaType, MAX_MANIFEST_BYTES, type Descriptor } from '../core/oci.ts';
import { checkName, isUploadId, type ManifestRef } from './names.ts';
import { paths } from './paths.ts';
import { registryError, RegistryError } from './registry-error.ts';
import type { StorageDriver } from './storage-driver.ts';
import type { Logger } from '../pkg/log.ts';

export interface ManifestEntry {
  digest: Digest;
  mediaType: string;
  body: Buffer;
  /** Precomputed response headers (flat [name, value, ...]) for GET and HEAD. */
  headers: string[];
}

export interface BlobStat {
  digest: Digest;
  size: number;
}

export interface RegistryStoreOptions {
  /** How long a cached manifest or tag is trusted before it is checked against storage. */
  cacheTtlMs?: number;
  /** Largest accepted blob upload (bytes). */
  maxBlobBytes?: number;
  maxManifestBytes?: number;
  log?: Logger;
}

const KNOWN_MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.OciIndex, MediaType.DockerManifest, MediaType.DockerManifestList]);
const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
/** Layers that clients fetch from `urls`, not from the registry: not required to be present. */
const FOREIGN_LAYER_RE = /^application\/vnd\.(docker\.image\.rootfs\.foreign\.diff\.tar\.gzip|oci\.image\.layer\.nondistributable\.v1\.tar.*)$/;
const MAX_CACHE_ENTRIES = 10_000;
/** Memory bound of the manifest cache (bodies). */
const MANIFEST_CACHE_BYTES = 64 * 1024 * 1024;

interface UploadState {
  hash: Hash;
  /** Bytes hashed so far; -1 when the hash is out of step with the data file. */
  offset: number;
  /** Serialises operations on one upload. */
  lock: Promise<unknown>;
}

interface Cached<T> {
  value: T;
  checkedAt: number;
}

function stripParams(contentType: string | undefined): string {
  if (!contentType) return '';
  const i = contentType.indexOf(';');
  return (i < 0 ? contentType : contentType.slice(0, i)).trim().toLowerCase();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Validate a descriptor's shape; returns it typed. */
function checkDescriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw registryError('MANIFEST_INVALID', `manifest invalid: ${where} is not a descriptor`);
  const { mediaType, digest, size } = v;
  if (typeof mediaType !== 'string' || mediaType === '') throw registryError('MANIFEST_INVALID', `manifest invalid: ${where}.mediaType missing`);
  if (typeof digest !== 'string' || !isDigest(digest)) throw registryError('MANIFEST_INVALID', `manifest invalid: ${where}.digest invalid`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw registryError('MANIFEST_INVALID', `manifest invalid: ${where}.size invalid`);
  return v as unknown as Descriptor;
}

export function manifestHeaders(digest: string, mediaType: string, size: number): string[] {
  return [
    'Content-Type', mediaType,
    'Content-Length', String(size),
    'Docker-Content-Digest', digest,
    'ETag', `"${digest}"`,
    'Docker-Distribution-API-Version', 'registry/2.0',
  ];
}

/** Infer the media type of a stored manifest (the mediaType field is optional in OCI). */
function mediaTypeOf(doc: Record<string, unknown>): string {
  if (typeof doc.mediaType === 'string' && doc.mediaType) return doc.mediaType;
  return Array.isArray(doc.manifests) ? MediaType.OciIndex : MediaType.OciManifest;
}

export class RegistryStore {
  readonly driver: StorageDriver;
  readonly cacheTtlMs: number;
  readonly maxBlobBytes: number;
  readonly maxManifestBytes: number;
  #uploads = new Map<string, UploadState>();
  /** Verified uploads being made durable and visible: `${name}\0${uuid}`. */
  #committing = new Set<string>();
  /** Background blob commits by `${name}\0${digest}`; they never reject. */
  #pending = new Map<string, Promise<void>>();
  /** The latest background commit of each digest, whatever the repository. */
  #pendingBlobs = new Map<string, Promise<void>>();
  /** Blobs deleted from a repository (`${name}\0${digest}`): no implicit mount back. */
  #unlinked = new Set<string>();
  readonly log: Logger | undefined;
  #manifests = new Map<string, Cached<ManifestEntry>>();
  #manifestBytes = 0;
  #tags = new Map<string, Cached<Digest>>();

  constructor(driver: StorageDriver, opts: RegistryStoreOptions = {}) {
    this.driver = driver;
    this.cacheTtlMs = opts.cacheTtlMs ?? 1000;
    this.maxBlobBytes = opts.maxBlobBytes ?? 64 * 1024 ** 3;
    this.maxManifestBytes = opts.maxManifestBytes ?? MAX_MANIFEST_BYTES;
    this.log = opts.log;
  }

  // ---- blobs ----------------------------------------------------------------------------

  /** The blob if the repository links it and its bytes exist. */
  async blobStat(name: string, digest: Digest): Promise<BlobStat | undefined> {
    await this.#settled(name, digest);
    const [link, blob] = await Promise.all([this.driver.stat(paths.layerLink(name, digest)), this.driver.stat(paths.blob(digest))]);
    if (!link || !blob || blob.isDir) return undefined;
    return { digest, size: blob.size };
  }

  /** Write blob bytes [start, end] to dest (see StorageDriver.send). */
  async sendBlob(digest: Digest, dest: Writable, start?: number, end?: number): Promise<void> {
    try {
      await this.driver.send(paths.blob(digest), dest, start, end);
    } catch (err) {
      if (isKind(err, 'NotFound')) throw registryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
      throw err;
    }
  }

  /** Unlink a blob from a repository (its bytes stay until gc). */
  async deleteBlob(name: string, digest: Digest): Promise<void> {
    await this.#settled(name, digest);
    if (!(await this.driver.stat(paths.layerLink(name, digest)))) throw registryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    await this.driver.delete(paths.layerLink(name, digest));
    this.#unlinked.add(`${name}\0${digest}`);
  }

  /** Link a blob of `from` into `name`; false when `from` lacks it. */
  async mountBlob(name: string, from: string, digest: Digest): Promise<BlobStat | undefined> {
    const st = await this.blobStat(from, digest);
    if (!st) return undefined;
    await this.#link(name, digest);
    this.#unlinked.delete(`${name}\0${digest}`);
    return st;
  }

  /** Link a blob the registry holds (under any repository) into `name`; undefined if absent. */
  async linkExisting(name: string, digest: Digest): Promise<BlobStat | undefined> {
    // A blob deleted from this repository stays gone until it is pushed or mounted again.
    if (this.#unlinked.has(`${name}\0${digest}`)) return undefined;
    const committing = this.#pendingBlobs.get(digest);
    if (committing) await committing;
    const blob = await this.driver.stat(paths.blob(digest));
    if (!blob || blob.isDir) return undefined;
    try {
      await this.#link(name, digest);
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') return undefined;
      throw err;
    }
    return { digest, size: blob.size };
  }

  async #link(name: string, digest: Digest): Promise<void> {
    // Touch first: gc spares blobs modified within its grace period, so a blob being linked
    // now is not swept by a collection that marked before this link existed.
    if (!(await this.driver.touch(paths.blob(digest)))) throw registryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    if (!(await this.driver.stat(paths.layerLink(name, digest)))) await this.driver.putContent(paths.layerLink(name, digest), '');
  }

  // ---- uploads --------------------------------------------------------------------------

  async startUpload(name: string): Promise<string> {
    const uuid = randomUUID();
    await this.driver.append(paths.uploadData(name, uuid), (async function* () {})());
    // Abandoned uploads must not pin memory: forgetting a state only costs a rehash later.
    if (this.#uploads.size >= MAX_CACHE_ENTRIES) this.#uploads.clear();
    this.#uploads.set(`${name}\0${uuid}`, { hash: createHash('sha256'), offset: 0, lock: Promise.resolve() });
    return uuid;
  }

  /** Bytes received so far. BLOB_UPLOAD_UNKNOWN when there is no such upload. */
  async uploadSize(name: string, uuid: string): Promise<number> {
    if (!isUploadId(uuid)) throw registryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid });
    const st = this.#committing.has(`${name}\0${uuid}`) ? undefined : await this.driver.stat(paths.uploadData(name, uuid));
    if (!st || st.isDir) throw registryError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid });
    return st.size;
  }

  #state(name: string, uuid: string): UploadState {
    const key = `${name}\0${uuid}`;
    let s = this.#uploads.get(key);
    if (!s) {
      // Started by an earlier process: the hash is rebuilt from the data when needed.
      s = { hash: createHash('sha256'), offset: -1, lock: Promise.resolve() };
      this.#uploads.set(key, s);
    }
    return s;
  }

  async #locked<T>(name: string, uuid: string, fn: (s: UploadState) => Promise<T>): Promise<T> {
    const s = this.#state(name, uuid);
    const run = s.lock.then(() => fn(s));
    s.lock = run.catch(() => {});
    return run;
  }

  /**
   * Append a chunk. `start` (from Content-Range) must equal the bytes received so far, else
   * RANGE_INVALID (416) with the current size in `detail`. Returns the new size.
   */
  async appendUpload(name: string, uuid: string, source: AsyncIterable<Uint8Array>, start?: number, length?: number): Promise<number> {
    await this.uploadSize(name, uuid);
    return this.#locked(name, uuid, (s) => this.#append(name, uuid, s, source, start, length));
  }

  async #append(name: string, uuid: string, s: UploadState, source: AsyncIterable<Uint8Array>, start?: number, length?: number): Promise<number> {
    const size = await this.uploadSize(name, uuid);
    if (start !== undefined && start !== size) throw registryError('RANGE_INVALID', 'invalid content range', { size });
    if (size + (length ?? 0) > this.maxBlobBytes) throw registryError('PAYLOAD_TOO_LARGE', `blob exceeds limit of ${this.maxBlobBytes} bytes`);
    if (s.offset !== size) await this.#rehash(name, uuid, s, size);
    const max = this.maxBlobBytes;
    let total = size;
    let got = 0;
    const hash = s.hash;
    s.offset = -1; // out of step until the append succeeded
    async function* tap(): AsyncIterable<Uint8Array> {
      for await (const chunk of source) {
        total += chunk.byteLength;
        got += chunk.byteLength;
        if (total > max) throw registryError('PAYLOAD_TOO_LARGE', `blob exceeds limit of ${max} bytes`);
        if (length !== undefined && got > length) throw registryError('SIZE_INVALID', 'body longer than Content-Length');
        yield chunk;
      }
      if (length !== undefined && got !== length) throw registryError('SIZE_INVALID', 'body shorter than Content-Length');
    }
    // Hash only what the driver accepted: a chunk that fails is cut from the file again, so
    // the hash is built from a copy and swapped in after success.
    const work = hash.copy();
    async function* hashing(): AsyncIterable<Uint8Array> {
      for await (const chunk of tap()) {
        work.update(chunk);
        yield chunk;
      }
    }
    const newSize = await this.driver.append(paths.uploadData(name, uuid), hashing());
    s.hash = work;
    s.offset = newSize;
    return newSize;
  }

  async #rehash(name: string, uuid: string, s: UploadState, size: number): Promise<void> {
    const hash = createHash('sha256');
    if (size > 0) {
      const r = await this.driver.reader(paths.uploadData(name, uuid), 0, size - 1);
      for await (const chunk of r) hash.update(chunk as Buffer);
    }
    s.hash = hash;
    s.offset = size;
  }

  /**
   * Complete an upload: append the last chunk (if any), verify the digest, make the blob
   * visible and link it. DIGEST_INVALID (upload discarded) on mismatch.
   */
  async finishUpload(name: string, uuid: string, digest: Digest, source?: AsyncIterable<Uint8Array>, start?: number, length?: number): Promise<BlobStat> {
    await this.uploadSize(name, uuid);
    return this.#locked(name, uuid, async (s) => {
      let size = await this.uploadSize(name, uuid);
      if (source) size = await this.#append(name, uuid, s, source, start, length);
      let got: string;
      if (digestAlgorithm(digest) === 'sha256' && s.offset === size) {
        got = `sha256:${s.hash.digest('hex')}`;
      } else {
        const h = createHash(digestAlgorithm(digest));
        if (size > 0) for await (const chunk of await this.driver.reader(paths.uploadData(name, uuid), 0, size - 1)) h.update(chunk as Buffer);
        got = `${digestAlgorithm(digest)}:${h.digest('hex')}`;
      }
      s.offset = -1;
      if (got !== digest) {
        await this.cancelUpload(name, uuid);
        throw registryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest, got });
      }
      // Verified. Making it durable and visible (fsync, rename, link) runs in the background
      // so the client goes on with its next blob while the disk works; every later read of
      // this blob in this process first waits for the commit (see #settled).
      this.#uploads.delete(`${name}\0${uuid}`);
      this.#unlinked.delete(`${name}\0${digest}`);
      this.#committing.add(`${name}\0${uuid}`);
      const commit = this.#commit(name, uuid, digest).finally(() => this.#committing.delete(`${name}\0${uuid}`));
      this.#track(name, digest, commit);
      return { digest, size };
    });
  }

  async #commit(name: string, uuid: string, digest: Digest): Promise<void> {
    const blob = paths.blob(digest);
    if (await this.driver.stat(blob)) {
      // Same bytes pushed before (or concurrently): keep the committed copy.
      await this.driver.delete(paths.upload(name, uuid));
    } else {
      await this.driver.move(paths.uploadData(name, uuid), blob);
      await this.driver.delete(paths.upload(name, uuid));
    }
    await this.#link(name, digest);
  }

  #track(name: string, digest: Digest, commit: Promise<void>): void {
    const key = `${name}\0${digest}`;
    const settled: Promise<void> = commit.then(
      () => {},
      (err: unknown) => this.log?.error({ repository: name, digest, err: String(err) }, 'blob commit failed'),
    ).finally(() => {
      if (this.#pending.get(key) === settled) this.#pending.delete(key);
      if (this.#pendingBlobs.get(digest) === settled) this.#pendingBlobs.delete(digest);
    });
    this.#pending.set(key, settled);
    this.#pendingBlobs.set(digest, settled);
  }

  /** Wait for a background commit of this blob into this repository, if one runs. */
  async #settled(name: string, digest: Digest): Promise<void> {
    const p = this.#pending.get(`${name}\0${digest}`);
    if (p) await p;
  }

  /** Wait for every background commit (before shutdown). */
  async flush(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending.values()]);
  }

  async cancelUpload(name: string, uuid: string): Promise<void> {
    await this.uploadSize(name, uuid);
    this.#uploads.delete(`${name}\0${uuid}`);
    await this.driver.delete(paths.upload(name, uuid));
  }

  // ---- manifests ------------------------------------------------------------------------

  /** Resolve a tag or digest to the manifest; undefined when unknown. */
  async getManifest(name: string, ref: ManifestRef): Promise<ManifestEntry | undefined> {
    const digest = ref.digest ?? (await this.resolveTag(name, ref.tag));
    if (!digest) return undefined;
    const key = `${name}@${digest}`;
    const now = Date.now();
    const c = this.#manifests.get(key);
    if (c && now - c.checkedAt < this.cacheTtlMs) return c.value;
    if (c) {
      if (await this.driver.stat(paths.revisionLink(name, digest))) {
        c.checkedAt = now;
        return c.value;
      }
      this.#forgetManifest(key);
      return undefined;
    }
    if (!(await this.driver.stat(paths.revisionLink(name, digest)))) return undefined;
    let body: Buffer;
    try {
      body = await this.driver.getContent(paths.blob(digest), this.maxManifestBytes);
    } catch (err) {
      if (isKind(err, 'NotFound')) return undefined;
      throw err;
    }
    let mediaType: string = MediaType.OciManifest;
    try {
      const doc = JSON.parse(body.toString('utf8')) as unknown;
      if (isObject(doc)) mediaType = mediaTypeOf(doc);
    } catch {
      // A stored manifest was verified at push; keep serving its bytes whatever they are.
    }
    const entry: ManifestEntry = { digest, mediaType, body, headers: manifestHeaders(digest, mediaType, body.length) };
    this.#cacheManifest(key, entry, now);
    return entry;
  }

  async resolveTag(name: string, tag: string): Promise<Digest | undefined> {
    const key = `${name}:${tag}`;
    const now = Date.now();
    const c = this.#tags.get(key);
    if (c && now - c.checkedAt < this.cacheTtlMs) return c.value;
    let text: string;
    try {
      text = (await this.driver.getContent(paths.tag(name, tag), 1024)).toString('utf8').trim();
    } catch (err) {
      if (isKind(err, 'NotFound')) {
        this.#tags.delete(key);
        return undefined;
      }
      throw err;
    }
    if (!isDigest(text)) return undefined;
    this.#cache(this.#tags, key, text, now);
    return text;
  }

  /** Cache a manifest within MANIFEST_CACHE_BYTES, evicting the oldest entries first. */
  #cacheManifest(key: string, entry: ManifestEntry, now: number): void {
    this.#forgetManifest(key);
    if (entry.body.length > MANIFEST_CACHE_BYTES / 16) return; // huge indexes: read each time
    while (this.#manifests.size > 0 && (this.#manifestBytes + entry.body.length > MANIFEST_CACHE_BYTES || this.#manifests.size >= MAX_CACHE_ENTRIES)) {
      this.#forgetManifest(this.#manifests.keys().next().value!);
    }
    this.#manifests.set(key, { value: entry, checkedAt: now });
    this.#manifestBytes += entry.body.length;
  }

  #forgetManifest(key: string): void {
    const old = this.#manifests.get(key);
    if (!old) return;
    this.#manifests.delete(key);
    this.#manifestBytes -= old.value.body.length;
  }

  #cache<T>(map: Map<string, Cached<T>>, key: string, value: T, now: number): void {
    if (map.size >= MAX_CACHE_ENTRIES && !map.has(key)) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
    map.set(key, { value, checkedAt: now });
  }

  /**
   * Verify and store a manifest, then point the tag at it (when `ref` is a tag). Returns its
   * digest and, for manifests with a subject, the subject's digest (the OCI-Subject header).
   */
  async putManifest(name: string, ref: ManifestRef, contentType: string | undefined, body: Buffer): Promise<{ digest: Digest; subject?: Digest }> {
    checkName(name);
    if (body.length > this.maxManifestBytes) throw registryError('PAYLOAD_TOO_LARGE', `manifest exceeds limit of ${this.maxManifestBytes} bytes`);
    const alg = ref.digest ? digestAlgorithm(ref.digest) : 'sha256';
    const digest = `${alg}:${createHash(alg).update(body).digest('hex')}` as Digest;
    if (ref.digest && ref.digest !== digest) throw registryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: ref.digest, got: digest });

    let doc: unknown;
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw registryError('MANIFEST_INVALID', 'manifest invalid: not JSON');
    }
    if (!isObject(doc)) throw registryError('MANIFEST_INVALID', 'manifest invalid: not a JSON object');
    if (doc.schemaVersion !== 2) throw registryError('MANIFEST_INVALID', 'manifest invalid: schemaVersion must be 2 (schema 1 is not supported)');
    const header = stripParams(contentType);
    const field = typeof doc.mediaType === 'string' ? doc.mediaType : undefined;
    if (field !== undefined && header !== '' && KNOWN_MANIFEST_TYPES.has(header) && field !== header) {
      throw registryError('MANIFEST_INVALID', 'manifest invalid: mediaType does not match Content-Type', { mediaType: field, contentType: header });
    }
    const mediaType = field ?? (KNOWN_MANIFEST_TYPES.has(header) ? header : undefined);
    if (!mediaType) throw registryError('MANIFEST_INVALID', 'manifest invalid: no mediaType and no manifest Content-Type');
    if (!KNOWN_MANIFEST_TYPES.has(mediaType)) throw registryError('MANIFEST_INVALID', `manifest invalid: unsupported media type ${mediaType}`);
    // CVE-2021-41190: a document must not read both as an index and as an image manifest.
    const isIndex = INDEX_TYPES.has(mediaType);
    if (isIndex ? 'config' in doc || 'layers' in doc : 'manifests' in doc) {
      throw registryError('MANIFEST_INVALID', 'manifest invalid: ambiguous document (both manifests and config/layers)');
    }

    const blobs: Descriptor[] = [];
    const children: Descriptor[] = [];
    if (isIndex) {
      if (!Array.isArray(doc.manifests)) throw registryError('MANIFEST_INVALID', 'manifest invalid: manifests must be an array');
      doc.manifests.forEach((m, i) => children.push(checkDescriptor(m, `manifests[${i}]`)));
    } else {
      blobs.push(checkDescriptor(doc.config, 'config'));
      if (!Array.isArray(doc.layers)) throw registryError('MANIFEST_INVALID', 'manifest invalid: layers must be an array');
      doc.layers.forEach((l, i) => {
        const d = checkDescriptor(l, `layers[${i}]`);
        if (!(FOREIGN_LAYER_RE.test(d.mediaType) && Array.isArray(d.urls) && d.urls.length > 0)) blobs.push(d);
      });
    }
    let subject: Descriptor | undefined;
    if (doc.subject !== undefined) subject = checkDescriptor(doc.subject, 'subject');
    if (doc.artifactType !== undefined && typeof doc.artifactType !== 'string') throw registryError('MANIFEST_INVALID', 'manifest invalid: artifactType must be a string');

    // Every referenced blob must be in this repository, with the size the manifest declares.
    await Promise.all(blobs.map(async (d) => {
      const st = await this.blobStat(name, d.digest);
      if (!st) throw registryError('MANIFEST_BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest });
      if (st.size !== d.size) throw registryError('MANIFEST_INVALID', 'manifest invalid: descriptor size does not match blob', { digest: d.digest, size: d.size, actual: st.size });
    }));
    await Promise.all(children.map(async (d) => {
      if (!(await this.driver.stat(paths.revisionLink(name, d.digest)))) throw registryError('MANIFEST_BLOB_UNKNOWN', 'manifest unknown to repository', { digest: d.digest });
    }));

    // Store: bytes, then the revision link, then referrer and tag. Touch the blobs it
    // references so a concurrent gc (which spares recent files) keeps them.
    const blobPath = paths.blob(digest);
    if (!(await this.driver.touch(blobPath))) await this.driver.putContent(blobPath, body);
    await Promise.all(blobs.map((d) => this.driver.touch(paths.blob(d.digest))));
    await this.driver.putContent(paths.revisionLink(name, digest), '');
    if (subject) {
      const desc: Record<string, unknown> = { mediaType, digest, size: body.length };
      const artifactType = typeof doc.artifactType === 'string' ? doc.artifactType : !isIndex && isObject(doc.config) ? doc.config.mediaType : undefined;
      if (artifactType) desc.artifactType = artifactType;
      if (isObject(doc.annotations)) desc.annotations = doc.annotations;
      await this.driver.putContent(paths.referrer(name, subject.digest, digest), JSON.stringify(desc));
    }
    if (ref.tag) {
      await this.driver.putContent(paths.tag(name, ref.tag), digest);
      this.#cache(this.#tags, `${name}:${ref.tag}`, digest, Date.now());
    }
    const entry: ManifestEntry = { digest, mediaType, body, headers: manifestHeaders(digest, mediaType, body.length) };
    this.#cacheManifest(`${name}@${digest}`, entry, Date.now());
    return subject ? { digest, subject: subject.digest } : { digest };
  }

  /** Delete a tag, or a manifest by digest (with its tags and its referrer entry). */
  async deleteManifest(name: string, ref: ManifestRef): Promise<void> {
    if (ref.tag) {
      if (!(await this.driver.stat(paths.tag(name, ref.tag)))) throw registryError('MANIFEST_UNKNOWN', 'manifest unknown', { tag: ref.tag });
      await this.driver.delete(paths.tag(name, ref.tag));
      this.#tags.delete(`${name}:${ref.tag}`);
      return;
    }
    const digest = ref.digest!;
    const entry = await this.getManifest(name, { digest });
    if (!entry) throw registryError('MANIFEST_UNKNOWN', 'manifest unknown', { digest });
    for (const tag of await this.driver.list(paths.tagsDir(name))) {
      if ((await this.resolveTag(name, tag)) === digest) {
        await this.driver.delete(paths.tag(name, tag));
        this.#tags.delete(`${name}:${tag}`);
      }
    }
    try {
      const doc = JSON.parse(entry.body.toString('utf8')) as Record<string, unknown>;
      if (isObject(doc.subject) && typeof doc.subject.digest === 'string' && isDigest(doc.subject.digest)) {
        await this.driver.delete(paths.referrer(name, doc.subject.digest, digest));
      }
    } catch {
      // unparseable bytes cannot have a referrer entry
    }
    await this.driver.delete(paths.revisionLink(name, digest));
    this.#forgetManifest(`${name}@${digest}`);
  }

  // ---- listings -------------------------------------------------------------------------

  /** Sorted tags; undefined when the repository has no manifests at all. */
  async listTags(name: string): Promise<string[] | undefined> {
    if (!(await this.driver.stat(paths.manifestsDir(name)))) return undefined;
    return (await this.driver.list(paths.tagsDir(name))).sort();
  }

  /** All repository names (those holding manifests), in lexical order. */
  async catalog(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (prefix: string): Promise<void> => {
      const dir = prefix ? `${paths.repositoriesRoot}/${prefix}` : paths.repositoriesRoot;
      const children = await this.driver.list(dir);
      if (prefix && children.includes('_manifests')) out.push(prefix);
      await Promise.all(children.filter((c) => !c.startsWith('_')).map((c) => walk(prefix ? `${prefix}/${c}` : c)));
    };
    await walk('');
    return out.sort();
  }

  /** Descriptors of the manifests whose subject is `subject`, optionally by artifactType. */
  async referrers(name: string, subject: Digest, artifactType?: string): Promise<Descriptor[]> {
    const dir = paths.referrersDir(name, subject);
    const names = await this.driver.list(dir);
    const out: Descriptor[] = [];
    await Promise.all(names.map(async (n) => {
      const dash = n.indexOf('-');
      const digest = `${n.slice(0, dash)}:${n.slice(dash + 1)}`;
      if (!isDigest(digest)) return;
      // A referrer whose manifest was deleted (or collected) no longer counts.
      if (!(await this.driver.stat(paths.revisionLink(name, digest)))) return;
      try {
        const desc = JSON.parse((await this.driver.getContent(`${dir}/${n}`, 1 << 20)).toString('utf8')) as Descriptor;
        if (artifactType === undefined || desc.artifactType === artifactType) out.push(desc);
      } catch (err) {
        if (!isKind(err, 'NotFound') && !(err instanceof SyntaxError)) throw err;
      }
    }));
    return out.sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  }

  /** Forget cached manifests and tags (after another writer changed storage). */
  invalidate(): void {
    this.#manifests.clear();
    this.#manifestBytes = 0;
    this.#tags.clear();
  }
}

export { RegistryError };
