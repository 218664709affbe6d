// The build context: the tar a client sends with `POST /build` (plain or gzip/zstd), read as a
// stream into an index of entries with a content digest per regular file computed in the same
// pass (the step cache keys on them). Nothing is laid out as a tree on disk: small file bodies
// stay in memory and large ones are spilled to flat numbered files in a private temp dir, so a
// rebuild whose steps all hit the cache writes no context file at all, and a COPY writes each
// file once, straight into the build root.
//
// Confinement: entry names are cleaned (absolute names are rooted at the context, `..` that
// climbs out is refused). Symlinks are kept as written; resolving a COPY source follows them
// inside the context only (a symlink to `/etc/passwd` means the context's `etc/passwd`), and a
// symlink inside a copied directory is copied as a symlink, never followed. Hardlinks must point
// at a regular file already in the context. Device nodes and FIFOs are skipped (Docker's client
// never sends them for a context).
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { lstat, mkdir, mkdtemp, open, readFile, readlink, realpath, rm, writeFile } from 'node:fs/promises';
import { posix, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform, type Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { BerthError, invalidArgument, notFound } from '../core/errors.ts';
import { cleanEntryName, secureResolve } from '../layer/secure-join.ts';
import { autoDecompress } from '../layer/compression.ts';
import { Dockerignore } from './dockerignore.ts';

export type ContextEntryType = 'file' | 'directory' | 'symlink';

export interface ContextEntry {
  /** Clean path relative to the tree root ('' is the root). */
  path: string;
  type: ContextEntryType;
  mode: number;
  size: number;
  mtime: Date;
  /** sha256 of the body for files; of the target for symlinks. */
  digest?: string;
  linkname?: string;
  /** A file's body in memory, or ... */
  data?: Buffer;
  /** ... the absolute path of a file holding it. */
  source?: string;
}

export interface ContextLimits {
  /** Upper bound on the sum of file sizes (default 64 GiB). */
  maxBytes?: number;
  /** Upper bound on entries (default 1M). */
  maxEntries?: number;
  /** File bodies kept in memory, in all (default 512 MiB); the rest is spilled to disk. */
  maxMemory?: number;
  signal?: AbortSignal;
}

/** Files up to this size are kept in memory (while the memory budget lasts). */
const SMALL_FILE = 256 * 1024;
const MAX_SYMLINKS = 40;

/** A read-only tree COPY can take sources from (the context, or another stage's rootfs). */
export interface SourceTree {
  /** Real directory holding the tree. */
  readonly root: string;
  /** Stat an entry without following the last component; undefined if absent. */
  entry(rel: string): Promise<ContextEntry | undefined>;
  /** Every path under `dir` (recursive, sorted), `dir` excluded. */
  list(dir: string): Promise<ContextEntry[]>;
  /** All paths in the tree (glob matching), sorted. */
  allPaths(): Promise<string[]>;
  /** Follow symlinks inside the tree (the tree is `/`); undefined if the path does not exist. */
  resolve(rel: string): Promise<string | undefined>;
  /** A path on disk holding a file entry's body. */
  pathOf(e: ContextEntry): Promise<string>;
}

const sha = (b: string | Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export class BuildContext implements SourceTree {
  /** Private spill directory (large file bodies as numbered files). */
  readonly root: string;
  readonly #entries = new Map<string, ContextEntry>();
  #sorted: string[] | undefined;
  #spilled = 0;
  #memory = 0;

  private constructor(root: string) {
    this.root = root;
    this.#entries.set('', { path: '', type: 'directory', mode: 0o755, size: 0, mtime: new Date(0) });
  }

  /** An empty context with its spill dir under `parent`. */
  static async empty(parent: string): Promise<BuildContext> {
    await mkdir(parent, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(parent, 'ctx-'));
    return new BuildContext(await realpath(dir));
  }

  /** Read a (possibly compressed) context tar. */
  static async fromTar(stream: Readable, parent: string, limits: ContextLimits = {}): Promise<BuildContext> {
    const ctx = await BuildContext.empty(parent);
    try {
      await ctx.#extract(stream, limits);
    } catch (err) {
      await ctx.cleanup();
      throw err;
    }
    return ctx;
  }

  /** The context when the body is a bare Dockerfile (no tar): only that file. */
  static async fromDockerfile(text: Buffer, parent: string, name = 'Dockerfile'): Promise<BuildContext> {
    const ctx = await BuildContext.empty(parent);
    const clean = cleanEntryName(name) || 'Dockerfile';
    ctx.#put({ path: clean, type: 'file', mode: 0o644, size: text.length, mtime: new Date(), digest: sha(text), data: text });
    return ctx;
  }

  async cleanup(): Promise<void> {
    await rm(this.root, { recursive: true, force: true });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.cleanup();
  }

  get size(): number {
    return this.#entries.size - 1;
  }

  async #extract(stream: Readable, limits: ContextLimits): Promise<void> {
    const maxBytes = limits.maxBytes ?? 64 * 1024 ** 3;
    const maxEntries = limits.maxEntries ?? 1_000_000;
    const maxMemory = limits.maxMemory ?? 512 * 1024 * 1024;
    let bytes = 0;
    let count = 0;
    const ex = tarExtract();
    let feedError: unknown;
    const feeding = pipeline(stream, autoDecompress(), completeTarTail(), ex as unknown as NodeJS.WritableStream, { signal: limits.signal } as object).catch((err: unknown) => {
      feedError = err;
    });
    try {
      for await (const entry of ex as AsyncIterable<Readable & { header: Header }>) {
        const h = entry.header;
        if (++count > maxEntries) throw invalidArgument(`build context has more than ${maxEntries} entries`);
        const name = cleanEntryName(h.name);
        if (name === undefined) throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}: path escapes the context`);
        if (name.includes('\0')) throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}`);
        const isFile = h.type === 'file' || h.type === 'contiguous-file';
        bytes += isFile ? (h.size ?? 0) : 0;
        if (bytes > maxBytes) throw invalidArgument(`build context exceeds ${maxBytes} bytes`);
        if (name !== '') {
          this.#parents(name);
          await this.#entry(name, h, entry, maxMemory);
        }
        entry.resume();
      }
    } catch (err) {
      ex.destroy();
      stream.destroy();
      await feeding;
      if (err instanceof BerthError) throw err;
      throw invalidArgument(`invalid build context: ${(err as Error).message}`);
    }
    await feeding;
    if (feedError !== undefined) throw invalidArgument(`invalid build context: ${(feedError as Error).message}`);
  }

  async #entry(name: string, h: Header, body: Readable, maxMemory: number): Promise<void> {
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime ?? new Date(0);
    const prev = this.#entries.get(name);
    if (prev) this.#drop(name);
    switch (h.type) {
      case 'directory':
        this.#put({ path: name, type: 'directory', mode, size: 0, mtime });
        return;
      case 'file':
      case 'contiguous-file': {
        const size = h.size ?? 0;
        const hash = createHash('sha256');
        if (size <= SMALL_FILE && this.#memory + size <= maxMemory) {
          const chunks: Buffer[] = [];
          for await (const c of body as AsyncIterable<Buffer>) {
            hash.update(c);
            chunks.push(c);
          }
          const data = Buffer.concat(chunks);
          this.#memory += data.length;
          this.#put({ path: name, type: 'file', mode, size: data.length, mtime, digest: 'sha256:' + hash.digest('hex'), data });
          return;
        }
        const source = join(this.root, `f${++this.#spilled}`);
        const fh = await open(source, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
        let n = 0;
        try {
          let batch: Buffer[] = [];
          let pending = 0;
          for await (const c of body as AsyncIterable<Buffer>) {
            hash.update(c);
            batch.push(c);
            pending += c.length;
            n += c.length;
            if (pending >= 1 << 20) {
              await fh.writev(batch);
              batch = [];
              pending = 0;
            }
          }
          if (batch.length) await fh.writev(batch);
        } finally {
          await fh.close();
        }
        this.#put({ path: name, type: 'file', mode, size: n, mtime, digest: 'sha256:' + hash.digest('hex'), source });
        return;
      }
      case 'symlink': {
        const linkname = h.linkname ?? '';
        this.#put({ path: name, type: 'symlink', mode: 0o777, size: 0, mtime, linkname, digest: sha('symlink:' + linkname) });
        return;
      }
      case 'link': {
        const tname = cleanEntryName(h.linkname ?? '');
        if (tname === undefined || tname === '') throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}: hardlink target escapes the context`);
        const target = this.#entries.get(tname);
        if (!target || target.type !== 'file') throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}: hardlink to a missing or non-regular file`);
        this.#put({ ...target, path: name });
        return;
      }
      default:
        // Devices, FIFOs and PAX/GNU metadata entries have no place in a context.
        return;
    }
  }

  /** Tars may omit directory entries: missing parents are 0755 directories. */
  #parents(name: string): void {
    let p = posix.dirname(name);
    const missing: string[] = [];
    while (p !== '.' && p !== '' && !this.#entries.has(p)) {
      missing.push(p);
      p = posix.dirname(p);
    }
    // An entry "below" a symlink or a file would be written through it when copied: refused.
    for (let q = p; q !== '.' && q !== ''; q = posix.dirname(q)) {
      const e = this.#entries.get(q);
      if (e && e.type !== 'directory') throw invalidArgument(`invalid build context entry ${JSON.stringify(name)}: ${q} is not a directory`);
    }
    for (const m of missing) this.#put({ path: m, type: 'directory', mode: 0o755, size: 0, mtime: new Date(0) });
  }

  #put(e: ContextEntry): void {
    this.#entries.set(e.path, e);
    this.#sorted = undefined;
  }

  /** Remove an entry and, for a directory, everything below it (a later entry replaced it). */
  #drop(path: string): void {
    const prefix = path + '/';
    for (const k of [...this.#entries.keys()]) {
      if (k === path || k.startsWith(prefix)) {
        const e = this.#entries.get(k)!;
        if (e.data) this.#memory -= e.data.length;
        this.#entries.delete(k);
      }
    }
    this.#sorted = undefined;
  }

  /** Read a small file (Dockerfile, .dockerignore) resolved inside the context; undefined if absent. */
  async readFile(rel: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer | undefined> {
    const p = await this.resolve(rel);
    const e = p === undefined ? undefined : this.#entries.get(p);
    if (!e || e.type !== 'file') return undefined;
    if (e.size > maxBytes) throw invalidArgument(`${rel} is larger than ${maxBytes} bytes`);
    return e.data ?? readFile(e.source!);
  }

  /** Apply .dockerignore: excluded entries disappear (a directory stays if a child is re-included). */
  async applyIgnore(di: Dockerignore): Promise<number> {
    if (di.empty) return 0;
    let removed = 0;
    // Longest paths first so files go before their directories.
    for (const p of [...this.#entries.keys()].sort((a, b) => b.length - a.length)) {
      if (p === '' || !this.#entries.has(p) || !di.excludes(p)) continue;
      const e = this.#entries.get(p)!;
      if (e.type === 'directory') {
        const prefix = p + '/';
        if ([...this.#entries.keys()].some((k) => k.startsWith(prefix))) continue;
      }
      if (e.data) this.#memory -= e.data.length;
      this.#entries.delete(p);
      removed++;
    }
    this.#sorted = undefined;
    return removed;
  }

  async entry(rel: string): Promise<ContextEntry | undefined> {
    return this.#entries.get(cleanRel(rel));
  }

  async list(dir: string): Promise<ContextEntry[]> {
    const d = cleanRel(dir);
    const prefix = d === '' ? '' : d + '/';
    return (await this.allPaths()).filter((p) => p !== '' && p.startsWith(prefix)).map((p) => this.#entries.get(p)!);
  }

  async allPaths(): Promise<string[]> {
    this.#sorted ??= [...this.#entries.keys()].sort();
    return this.#sorted;
  }

  /**
   * Resolve a path as the kernel would with the context as `/`: symlinks in every component
   * (the last included) are followed, absolute targets restart at the context root and `..`
   * never climbs above it. Undefined when the path does not exist.
   */
  async resolve(rel: string): Promise<string | undefined> {
    const out: string[] = [];
    let pending = rel.split('/').filter((c) => c !== '' && c !== '.');
    let links = 0;
    while (pending.length) {
      const c = pending.shift()!;
      if (c === '..') {
        out.pop();
        continue;
      }
      const p = [...out, c].join('/');
      const e = this.#entries.get(p);
      if (!e) return undefined;
      if (e.type === 'symlink') {
        if (++links > MAX_SYMLINKS) throw invalidArgument(`path ${JSON.stringify(rel)}: too many levels of symbolic links`);
        const t = e.linkname ?? '';
        if (t.startsWith('/')) out.length = 0;
        pending = [...t.split('/').filter((x) => x !== '' && x !== '.'), ...pending];
        continue;
      }
      if (e.type !== 'directory' && pending.length) return undefined;
      out.push(c);
    }
    return out.join('/');
  }

  /** A file's body on disk (spilling an in-memory body), for tools that need a path (ADD archives). */
  async pathOf(e: ContextEntry): Promise<string> {
    if (e.source) return e.source;
    const source = join(this.root, `f${++this.#spilled}`);
    await writeFile(source, e.data ?? Buffer.alloc(0), { mode: 0o600, flag: 'wx' });
    e.source = source;
    return source;
  }
}

function cleanRel(p: string): string {
  return cleanEntryName(p) ?? '';
}

/**
 * A tree on disk that was not extracted by us (another stage's rootfs, mounted read-only):
 * entries are stat'ed and file digests computed on demand, and cached.
 */
export class DirectoryTree implements SourceTree {
  readonly root: string;
  readonly #cache = new Map<string, ContextEntry | null>();
  #all: string[] | undefined;

  constructor(root: string) {
    this.root = root;
  }

  async resolve(rel: string): Promise<string | undefined> {
    const r = await secureResolve(this.root, rel);
    return (await this.entry(r)) ? r : undefined;
  }

  async pathOf(e: ContextEntry): Promise<string> {
    return join(this.root, e.path);
  }

  async entry(rel: string): Promise<ContextEntry | undefined> {
    const p = cleanRel(rel);
    const hit = this.#cache.get(p);
    if (hit !== undefined) return hit ?? undefined;
    let st;
    try {
      st = await lstat(p === '' ? this.root : join(this.root, p));
    } catch {
      this.#cache.set(p, null);
      return undefined;
    }
    let e: ContextEntry;
    if (st.isSymbolicLink()) {
      const linkname = await readlink(join(this.root, p));
      e = { path: p, type: 'symlink', mode: 0o777, size: 0, mtime: st.mtime, linkname, digest: sha('symlink:' + linkname) };
    } else if (st.isDirectory()) {
      e = { path: p, type: 'directory', mode: st.mode & 0o7777, size: 0, mtime: st.mtime };
    } else if (st.isFile()) {
      e = { path: p, type: 'file', mode: st.mode & 0o7777, size: st.size, mtime: st.mtime, digest: await fileDigest(join(this.root, p)), source: join(this.root, p) };
    } else {
      this.#cache.set(p, null);
      return undefined;
    }
    this.#cache.set(p, e);
    return e;
  }

  async list(dir: string): Promise<ContextEntry[]> {
    const d = cleanRel(dir);
    const prefix = d === '' ? '' : d + '/';
    const out: ContextEntry[] = [];
    for (const p of await this.allPaths()) {
      if (p === '' || !p.startsWith(prefix)) continue;
      const e = await this.entry(p);
      if (e) out.push(e);
    }
    return out;
  }

  async allPaths(): Promise<string[]> {
    if (this.#all) return this.#all;
    const out: string[] = [''];
    const walk = async (rel: string) => {
      const { readdir } = await import('node:fs/promises');
      const names = await readdir(rel === '' ? this.root : join(this.root, rel), { withFileTypes: true });
      for (const d of names) {
        const p = rel === '' ? d.name : `${rel}/${d.name}`;
        out.push(p);
        if (d.isDirectory()) await walk(p);
      }
    };
    await walk('');
    this.#all = out.sort();
    return this.#all;
  }
}

export async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  const fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      hash.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return 'sha256:' + hash.digest('hex');
}

/**
 * Resolve a COPY source path inside a tree: symlinks in every component (the last included) are
 * followed with the tree root as `/`. Returns the clean relative path, or NotFound.
 */
export async function resolveSource(tree: SourceTree, rel: string): Promise<string> {
  const r = await tree.resolve(rel);
  if (r === undefined || !(await tree.entry(r))) throw notFound(`"${rel.replace(/^\/+/, '')}": not found`);
  return r;
}

/** Glob characters as Go's filepath.Match reads them. */
export function hasGlob(p: string): boolean {
  return /[*?[\\]/.test(p);
}

/** Go filepath.Match for one path (`*`/`?` never cross `/`). */
export function globMatcher(pattern: string): RegExp {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = pattern.slice(i + 1, end);
        if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += `[${cls}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\]]/g, '\\$&');
  }
  return new RegExp(re + '$', 's');
}

/** Expand one COPY source (maybe a glob) into clean relative paths in the tree, sorted. */
export async function expandSource(tree: SourceTree, src: string): Promise<string[]> {
  const clean = cleanEntryName(src);
  // `../x` climbs out of the context: the legacy builder's error (never the context root).
  if (clean === undefined) throw invalidArgument(`Forbidden path outside the build context: ${src} ()`);
  if (!hasGlob(clean)) return [await resolveSource(tree, clean)];
  const re = globMatcher(clean);
  const out = (await tree.allPaths()).filter((p) => p !== '' && re.test(p));
  if (out.length === 0) throw notFound(`no source files were specified: "${src}" matched nothing`);
  return out;
}


/**
 * Go's archive/tar, which dockerd reads contexts with, takes an archive that stops right after
 * the last entry's data (no padding to 512 bytes, no end-of-archive blocks): the docker CLI's
 * `build -f - PATH` sends such archives (its Dockerfile-injecting wrapper never closes the tar
 * writer). tar-stream calls that "Unexpected end of data", so the missing padding and end blocks
 * are added here, and only in exactly that case: an archive cut inside a header or inside an
 * entry's data is left as it is and fails.
 */
export function completeTarTail(): Transform {
  let pos = 0; // bytes seen
  let nextHeader = 0; // offset of the next header block
  let dataEnd = 0; // where the current entry's data ends (its padding follows)
  let header: Buffer[] = [];
  let headerLen = 0;
  const parseSize = (h: Buffer): number => {
    const f = h.subarray(124, 136);
    if (f[0]! & 0x80) {
      let n = 0;
      for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
      return n;
    }
    const t = f.toString('latin1').replace(/\0.*$/s, '').trim();
    return t === '' ? 0 : parseInt(t, 8);
  };
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      let off = 0;
      while (off < chunk.length) {
        const at = pos + off;
        if (at < nextHeader) {
          off += Math.min(chunk.length - off, nextHeader - at);
          continue;
        }
        const take = Math.min(chunk.length - off, 512 - headerLen);
        header.push(chunk.subarray(off, off + take));
        headerLen += take;
        off += take;
        if (headerLen === 512) {
          const h = Buffer.concat(header);
          header = [];
          headerLen = 0;
          const size = h.every((b) => b === 0) ? 0 : parseSize(h);
          dataEnd = nextHeader + 512 + size;
          nextHeader = dataEnd + ((512 - (size % 512)) % 512);
        }
      }
      pos += chunk.length;
      cb(null, chunk);
    },
    flush(cb) {
      if (headerLen === 0 && pos === dataEnd && pos < nextHeader) cb(null, Buffer.alloc(nextHeader - pos + 1024));
      else cb();
    },
  });
}
