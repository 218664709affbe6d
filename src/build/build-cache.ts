// The build step cache. Layout (under <dataRoot>/build-cache/):
//
//   index.json      { version, entries: { <cache key>: CacheEntry } }   written atomically
//   tmp/            scratch for build steps (contexts, layer tars, mount points); wiped at start
//
// A key is sha256(parent key + the step's expanded instruction + the digests of every file the
// step reads); see builder.ts. An entry records what the step produced: its history `created`
// time (so a rebuild gives the identical config, hence the identical image ID) and, for steps
// that write a layer, the layer's diffID, blob and chain ID. Layers stay alive because the
// cache registers them as GC roots with the image service; an entry whose blob or snapshot
// has gone is treated as a miss. The cache is bounded: least recently used entries go first
// once `maxEntries` or `maxBytes` (the layer bytes the entries hold) is exceeded, and the image
// service's GC then frees what no entry or image holds; `prune()` drops everything.
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Digest } from '../core/digest.ts';
import { writeJsonAtomic } from '../pkg/atomic-file.ts';

export interface CachedLayer {
  diffId: Digest;
  chainId: Digest;
  blob: { digest: Digest; size: number; mediaType: string };
}

export interface CacheEntry {
  created: string;
  layer?: CachedLayer;
  /** Last use (ms since epoch) for LRU eviction. */
  used: number;
}

interface IndexFile {
  version: 1;
  entries: Record<string, CacheEntry>;
}

export class BuildCache {
  readonly root: string;
  readonly maxEntries: number;
  /** Bound on the layer bytes the entries hold (uncompressed layer blobs, each counted once). */
  readonly maxBytes: number;
  #entries = new Map<string, CacheEntry>();
  #saving: Promise<void> = Promise.resolve();
  #dirty = false;

  constructor(root: string, opts: { maxEntries?: number; maxBytes?: number } = {}) {
    this.root = root;
    this.maxEntries = opts.maxEntries ?? 5000;
    this.maxBytes = opts.maxBytes ?? 20 * 1024 ** 3;
  }

  /** Layer bytes the entries hold, each blob counted once. */
  get bytes(): number {
    const seen = new Map<string, number>();
    for (const e of this.#entries.values()) if (e.layer) seen.set(e.layer.blob.digest, e.layer.blob.size);
    let n = 0;
    for (const v of seen.values()) n += v;
    return n;
  }

  get tmp(): string {
    return join(this.root, 'tmp');
  }

  get size(): number {
    return this.#entries.size;
  }

  async init(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await rm(this.tmp, { recursive: true, force: true });
    await mkdir(this.tmp, { recursive: true, mode: 0o700 });
    try {
      const f = JSON.parse(await readFile(join(this.root, 'index.json'), 'utf8')) as IndexFile;
      if (f.version === 1) for (const [k, v] of Object.entries(f.entries)) this.#entries.set(k, v);
    } catch {
      /* no index yet, or unreadable: start empty */
    }
  }

  get(key: string): CacheEntry | undefined {
    const e = this.#entries.get(key);
    if (e) {
      e.used = Date.now();
      // Re-insert: Map order is the LRU order.
      this.#entries.delete(key);
      this.#entries.set(key, e);
      this.#dirty = true;
    }
    return e;
  }

  delete(key: string): void {
    if (this.#entries.delete(key)) this.#dirty = true;
  }

  put(key: string, entry: Omit<CacheEntry, 'used'>): void {
    this.#entries.delete(key);
    this.#entries.set(key, { ...entry, used: Date.now() });
    while (this.#entries.size > this.maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    // Then by bytes, least recently used first; the entry just added always stays.
    if (entry.layer && this.bytes > this.maxBytes) {
      const users = new Map<string, number>();
      for (const e of this.#entries.values()) if (e.layer) users.set(e.layer.blob.digest, (users.get(e.layer.blob.digest) ?? 0) + 1);
      let bytes = this.bytes;
      while (bytes > this.maxBytes && this.#entries.size > 1) {
        const oldest = this.#entries.keys().next().value as string;
        const l = this.#entries.get(oldest)!.layer;
        this.#entries.delete(oldest);
        if (l) {
          const left = users.get(l.blob.digest)! - 1;
          users.set(l.blob.digest, left);
          if (left === 0) bytes -= l.blob.size;
        }
      }
    }
    this.#dirty = true;
  }

  /** Blob digests and chain IDs the cache holds (GC roots for the image service). */
  roots(): string[] {
    const out: string[] = [];
    for (const e of this.#entries.values()) if (e.layer) out.push(e.layer.blob.digest, e.layer.chainId);
    return out;
  }

  /** Drop every entry; returns how many there were. */
  async prune(): Promise<number> {
    const n = this.#entries.size;
    this.#entries.clear();
    this.#dirty = true;
    await this.save();
    return n;
  }

  /** Persist (serialised: concurrent builds never interleave writes). */
  save(): Promise<void> {
    this.#saving = this.#saving.then(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      const f: IndexFile = { version: 1, entries: Object.fromEntries(this.#entries) };
      await writeJsonAtomic(join(this.root, 'index.json'), f);
    });
    return this.#saving;
  }
}
