// OCI content store (containerd's ingest -> commit). Layout under its root:
//
//   <root>/
//     blobs/sha256/<hex>        committed, verified, read-only blobs
//     ingest/<random>           in-progress writes; never visible as blobs
//
// A blob becomes visible only by rename after its size and digest were verified, so a crash or
// an interrupted pull leaves at most stray files in ingest/ (cleared by `sweepIngest` at start).
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, rename, stat, unlink, readdir, rm, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, type Hash } from 'node:crypto';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { digestAlgorithm, digestHex, hasherFor, parseDigest, type Digest } from '../core/digest.ts';
import { dataLoss, notFound, invalidArgument } from '../core/errors.ts';
import { fsyncDir } from '../pkg/atomic-file.ts';

export interface Expected {
  digest: Digest;
  /** Verified when given; a stream that grows past it fails at once. */
  size?: number;
}

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export class ContentStore {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, 'blobs', 'sha256'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, 'blobs', 'sha512'), { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, 'ingest'), { recursive: true, mode: 0o700 });
  }

  /** Remove leftovers of interrupted writes. Call only when no writer is active (daemon start). */
  async sweepIngest(): Promise<number> {
    const dir = join(this.root, 'ingest');
    const names = await readdir(dir).catch(() => [] as string[]);
    await Promise.all(names.map((n) => rm(join(dir, n), { force: true, recursive: true })));
    return names.length;
  }

  blobPath(digest: Digest): string {
    parseDigest(digest);
    return join(this.root, 'blobs', digestAlgorithm(digest), digestHex(digest));
  }

  async info(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const st = await stat(this.blobPath(digest));
      return { digest, size: st.size };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async has(digest: Digest): Promise<boolean> {
    return (await this.info(digest)) !== undefined;
  }

  async readBytes(digest: Digest, maxBytes = 64 * 1024 * 1024): Promise<Buffer> {
    const info = await this.info(digest);
    if (!info) throw notFound(`content ${digest}: not found`);
    if (info.size > maxBytes) throw invalidArgument(`content ${digest}: ${info.size} bytes exceeds limit ${maxBytes}`);
    return readFile(this.blobPath(digest));
  }

  async readJson<T>(digest: Digest, maxBytes?: number): Promise<T> {
    return JSON.parse((await this.readBytes(digest, maxBytes)).toString('utf8')) as T;
  }

  createReadStream(digest: Digest, range?: { start: number; end?: number }): ReadStream {
    return createReadStream(this.blobPath(digest), range ?? {});
  }

  /** Start a verified write. Feed it, then `commit()`; or `abort()`. */
  async writer(expected: Expected): Promise<ContentWriter> {
    parseDigest(expected.digest);
    const path = join(this.root, 'ingest', randomBytes(12).toString('hex'));
    const fh = await open(path, 'wx', 0o600);
    return new ContentWriter(this, fh, path, expected);
  }

  /** Write a whole stream and commit it. Returns the committed blob. */
  async ingest(source: Readable | AsyncIterable<Uint8Array>, expected: Expected, signal?: AbortSignal): Promise<BlobInfo> {
    const w = await this.writer(expected);
    try {
      await pipeline(source, w, signal ? { signal } : {});
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  /** Store bytes in memory (manifests, configs). */
  async putBytes(data: Uint8Array, expected?: Partial<Expected>): Promise<BlobInfo> {
    const digest = expected?.digest ?? (`sha256:${hasherFor('sha256:' as Digest).update(data).digest('hex')}` as Digest);
    const existing = await this.info(digest);
    if (existing) return existing;
    const w = await this.writer({ digest, size: expected?.size ?? data.byteLength });
    try {
      await new Promise<void>((res, rej) => w.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength), (e?: Error | null) => (e ? rej(e) : res())));
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await unlink(this.blobPath(digest));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<BlobInfo> {
    for (const alg of ['sha256', 'sha512'] as const) {
      const dir = join(this.root, 'blobs', alg);
      for (const hex of await readdir(dir).catch(() => [] as string[])) {
        const digest = `${alg}:${hex}`;
        if (!/^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/.test(digest)) continue;
        const st = await stat(join(dir, hex)).catch(() => undefined);
        if (st) yield { digest: digest as Digest, size: st.size };
      }
    }
  }
}

/** A Writable into ingest/ that hashes as it writes and verifies on commit. */
export class ContentWriter extends Writable {
  readonly expected: Expected;
  #store: ContentStore;
  #fh: FileHandle;
  #path: string;
  #hash: Hash;
  #written = 0;
  #closed = false;

  constructor(store: ContentStore, fh: FileHandle, path: string, expected: Expected) {
    super({ highWaterMark: 1 << 20 });
    this.#store = store;
    this.#fh = fh;
    this.#path = path;
    this.expected = expected;
    this.#hash = hasherFor(expected.digest);
  }

  get written(): number {
    return this.#written;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#written += chunk.length;
    if (this.expected.size !== undefined && this.#written > this.expected.size) {
      cb(dataLoss(`content ${this.expected.digest}: size exceeds expected ${this.expected.size} bytes`));
      return;
    }
    this.#hash.update(chunk);
    this.#fh.write(chunk).then(() => cb(), cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    const bufs = chunks.map((c) => c.chunk);
    const n = bufs.reduce((a, b) => a + b.length, 0);
    this.#written += n;
    if (this.expected.size !== undefined && this.#written > this.expected.size) {
      cb(dataLoss(`content ${this.expected.digest}: size exceeds expected ${this.expected.size} bytes`));
      return;
    }
    for (const b of bufs) this.#hash.update(b);
    this.#fh.writev(bufs).then(() => cb(), cb);
  }

  /** Verify size and digest, then make the blob visible. */
  async commit(): Promise<BlobInfo> {
    const { digest, size } = this.expected;
    await this.#fh.sync();
    await this.#close();
    if (size !== undefined && this.#written !== size) {
      await this.abort();
      throw dataLoss(`content ${digest}: size mismatch: got ${this.#written} bytes, want ${size}`);
    }
    const got = `${digestAlgorithm(digest)}:${this.#hash.digest('hex')}`;
    if (got !== digest) {
      await this.abort();
      throw dataLoss(`content digest mismatch: got ${got}, want ${digest}`);
    }
    const target = this.#store.blobPath(digest);
    await rename(this.#path, target);
    await fsyncDir(join(target, '..'));
    return { digest, size: this.#written };
  }

  async abort(): Promise<void> {
    await this.#close();
    await unlink(this.#path).catch(() => {});
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#fh.close();
  }
}
