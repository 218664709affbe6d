// The image index: which images exist and which names point at them. Docker's reference store
// plus image store metadata, kept in memory and persisted as one JSON file (see paths.ts).
//
// Invariants:
//   - a tag ("docker.io/library/busybox:latest") or repo digest ("...busybox@sha256:..") names
//     at most one image: adding it to one image removes it from any other (a tag move);
//   - every mutation is applied to a copy, written atomically, then swapped in, so memory never
//     runs ahead of disk and a crash leaves the old index or the new one.
import { readFile, mkdir } from 'node:fs/promises';
import { isDigest, type Digest } from '../core/digest.ts';
import { internal, invalidArgument, notFound } from '../core/errors.ts';
import type { ImageRecord } from '../core/images.ts';
import { familiarString, formatReference, parseReference, type Reference } from '../core/reference.ts';
import { writeJsonAtomic } from '../pkg/atomic-file.ts';
import { Mutex } from './mutex.ts';

export interface StoredImage extends ImageRecord {
  /** Docker's Parent: the image this one was built on (local builds and commits only). */
  parent?: Digest;
  /** Docker's Metadata.LastTagTime. */
  lastTagTime?: string;
}

interface IndexFile {
  version: 1;
  images: StoredImage[];
}

/** Image IDs are "sha256:<64 hex>"; a bare 64-hex string means the same. */
const FULL_HEX = /^[a-f0-9]{64}$/;
const HEX_PREFIX = /^(?:sha256:)?([a-f0-9]{1,64})$/;

/** The normalized string of a tag or digest reference, as stored ("busybox" gets ":latest"). */
export function normalizeName(name: string): string {
  const ref = parseReference(name);
  return formatReference(ref.digest ? { domain: ref.domain, path: ref.path, digest: ref.digest } : ref);
}

function isCanonical(ref: string): boolean {
  return ref.includes('@');
}

/** "docker.io/library/busybox" of a stored reference string. */
export function repoOf(stored: string): string {
  const at = stored.indexOf('@');
  if (at !== -1) return stored.slice(0, at);
  const slash = stored.lastIndexOf('/');
  const colon = stored.lastIndexOf(':');
  return colon > slash ? stored.slice(0, colon) : stored;
}

/** Docker's familiar form of a stored reference: "busybox:latest", "me/app@sha256:..". */
export function familiar(stored: string): string {
  return familiarString(parseReference(stored, { defaultTag: false }));
}

export class ImageStore {
  readonly #path: string;
  #images = new Map<Digest, StoredImage>();
  /** tag or repo digest (normalized) -> image ID */
  #refs = new Map<string, Digest>();
  #mutex = new Mutex();

  constructor(indexPath: string) {
    this.#path = indexPath;
  }

  async load(): Promise<void> {
    let raw: string;
    try {
      raw = await readFile(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(this.#path.slice(0, this.#path.lastIndexOf('/')), { recursive: true, mode: 0o700 });
      this.#swap(new Map());
      return;
    }
    let file: IndexFile;
    try {
      file = JSON.parse(raw) as IndexFile;
    } catch (err) {
      throw internal(`image index ${this.#path} is corrupt`, err);
    }
    const map = new Map<Digest, StoredImage>();
    for (const img of file.images ?? []) {
      if (!isDigest(img.id)) continue;
      map.set(img.id, { ...img, repoTags: [...(img.repoTags ?? [])], repoDigests: [...(img.repoDigests ?? [])] });
    }
    this.#swap(map);
  }

  #swap(map: Map<Digest, StoredImage>): void {
    const refs = new Map<string, Digest>();
    for (const img of map.values()) for (const r of [...img.repoTags, ...img.repoDigests]) refs.set(r, img.id);
    this.#images = map;
    this.#refs = refs;
  }

  /** Apply `fn` to a copy of the index, persist it, then make it current. */
  mutate<T>(fn: (draft: Draft) => T): Promise<T> {
    return this.#mutex.run(async () => {
      const copy = new Map<Digest, StoredImage>();
      for (const [id, img] of this.#images) copy.set(id, { ...img, repoTags: [...img.repoTags], repoDigests: [...img.repoDigests] });
      const draft = new Draft(copy);
      const out = fn(draft);
      if (draft.changed) {
        const file: IndexFile = { version: 1, images: [...copy.values()] };
        await writeJsonAtomic(this.#path, file);
        this.#swap(copy);
      }
      return out;
    });
  }

  get(id: Digest): StoredImage | undefined {
    return this.#images.get(id);
  }

  all(): StoredImage[] {
    return [...this.#images.values()];
  }

  get size(): number {
    return this.#images.size;
  }

  /** The image a normalized tag or repo digest points at. */
  byRef(normalized: string): StoredImage | undefined {
    const id = this.#refs.get(normalized);
    return id === undefined ? undefined : this.#images.get(id);
  }

  /** Images whose ID starts with the hex prefix (with or without "sha256:"). */
  searchPrefix(prefix: string): StoredImage[] {
    const m = HEX_PREFIX.exec(prefix);
    if (!m) return [];
    const want = `sha256:${m[1]}`;
    return this.all().filter((img) => img.id.startsWith(want));
  }

  children(id: Digest): StoredImage[] {
    return this.all().filter((img) => img.parent === id);
  }

  /**
   * Docker's lookup order (daemon/images GetImage): a full 64-hex or sha256: digest is an ID;
   * otherwise the name as a reference (tag, or digest which wins over a tag); then an ID prefix.
   * NotFound says "No such image: <familiar name with tag>", as Docker does; an ambiguous prefix
   * is InvalidArgument.
   */
  lookup(nameOrId: string): StoredImage {
    const input = nameOrId.trim();
    if (input === '') throw invalidArgument('invalid reference format');
    if (FULL_HEX.test(input) || (input.startsWith('sha256:') && isDigest(input))) {
      const id = (input.startsWith('sha256:') ? input : `sha256:${input}`) as Digest;
      const img = this.#images.get(id);
      if (!img) throw notFound(`No such image: ${id}`);
      return img;
    }
    let ref: Reference | undefined;
    try {
      ref = parseReference(input);
    } catch {
      ref = undefined;
    }
    if (ref) {
      const key = ref.digest ? formatReference({ domain: ref.domain, path: ref.path, digest: ref.digest }) : formatReference(ref);
      const img = this.byRef(key);
      if (img) return img;
    }
    const hits = this.searchPrefix(input);
    if (hits.length === 1) return hits[0]!;
    if (hits.length > 1) throw invalidArgument(`image ID prefix ${input} is ambiguous: it matches ${hits.length} images`);
    if (!ref) throw invalidArgument('invalid reference format');
    throw notFound(`No such image: ${familiarString(ref)}`);
  }
}

/** A mutable copy of the index handed to `mutate`. Tag and digest uniqueness are kept here. */
export class Draft {
  readonly images: Map<Digest, StoredImage>;
  changed = false;

  constructor(images: Map<Digest, StoredImage>) {
    this.images = images;
  }

  get(id: Digest): StoredImage | undefined {
    return this.images.get(id);
  }

  /** Insert or replace an image record's metadata; names are added with `addRef`. */
  put(img: StoredImage): StoredImage {
    const existing = this.images.get(img.id);
    const rec: StoredImage = existing ? { ...existing, ...img, repoTags: existing.repoTags, repoDigests: existing.repoDigests } : { ...img, repoTags: [], repoDigests: [] };
    this.images.set(rec.id, rec);
    this.changed = true;
    for (const r of img.repoTags) this.addRef(rec.id, r);
    for (const r of img.repoDigests) this.addRef(rec.id, r);
    return rec;
  }

  /** Point a normalized tag or repo digest at `id`, moving it off any other image. */
  addRef(id: Digest, name: string): void {
    const normalized = normalizeName(name);
    const img = this.images.get(id);
    if (!img) throw notFound(`No such image: ${id}`);
    for (const other of this.images.values()) {
      if (other.id !== id) this.#drop(other, normalized);
    }
    const list = isCanonical(normalized) ? img.repoDigests : img.repoTags;
    if (!list.includes(normalized)) {
      list.push(normalized);
      if (!isCanonical(normalized)) img.lastTagTime = new Date().toISOString();
      this.changed = true;
    }
  }

  /** Remove a tag or repo digest; returns the image it pointed at. */
  removeRef(name: string): StoredImage | undefined {
    const normalized = normalizeName(name);
    for (const img of this.images.values()) {
      if (this.#drop(img, normalized)) return img;
    }
    return undefined;
  }

  #drop(img: StoredImage, normalized: string): boolean {
    const list = isCanonical(normalized) ? img.repoDigests : img.repoTags;
    const i = list.indexOf(normalized);
    if (i === -1) return false;
    list.splice(i, 1);
    this.changed = true;
    return true;
  }

  delete(id: Digest): boolean {
    const ok = this.images.delete(id);
    if (ok) this.changed = true;
    return ok;
  }
}
