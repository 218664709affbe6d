// The build context: the tar a client sends with `POST /build` (plain or gzip/zstd), read as a
// stream into a private temp directory, with a content digest per regular file computed in the
// same pass (the step cache keys on them).
//
// Confinement: entry names are cleaned (absolute names are rooted at the context, `..` that
// climbs out is refused) and parent directories are resolved with secure-join, so a symlink
// planted by an earlier entry is followed only inside the context dir. Symlinks are stored as
// written; COPY resolves its source paths inside the context root (a symlink to `/etc/passwd`
// means `<context>/etc/passwd`), and a symlink inside a copied directory is copied as a
// symlink, never followed. Hardlinks must point at a regular file already in the context.
// Device nodes and FIFOs are skipped (Docker's client never sends them for a context).
import { createHash } from 'node:crypto';
import { constants as fsc } from 'node:fs';
import { chmod, link, lstat, mkdir, mkdtemp, open, readFile, readlink, realpath, rm, symlink, utimes, lutimes } from 'node:fs/promises';
import { posix, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { invalidArgument, notFound } from '../core/errors.ts';
import { cleanEntryName, secureJoin, secureResolve } from '../layer/secure-join.ts';
import { autoDecompress } from '../layer/compression.ts';
import { Dockerignore } from './dockerignore.ts';

export type ContextEntryType = 'file' | 'directory' | 'symlink';

export interface ContextEntry {
  /** Clean path relative to the context root ('' is the root). */
  path: string;
  type: ContextEntryType;
  mode: number;
  size: number;
  mtime: Date;
  /** sha256 of the body for files; of the target for symlinks. */
  digest?: string;
  linkname?: string;
}

export interface ContextLimits {
  /** Upper bound on the sum of file sizes (default 64 GiB). */
  maxBytes?: number;
  /** Upper bound on entries (default 1M). */
  maxEntries?: number;
  signal?: AbortSignal;
}

/** Files up to this size are buffered and written in parallel during extraction. */
const SMALL_FILE = 256 * 1024;
const PARALLEL_WRITES = 32;

/** Create a file that must not exist yet (O_EXCL|O_NOFOLLOW), with mode and mtime. */
async function writeNew(path: string, data: Buffer, mode: number, mtime: Date): Promise<void> {
  const fh = await open(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o777);
  try {
    if (data.length) await fh.write(data);
    await fh.chmod(mode);
    await fh.utimes(mtime, mtime);
  } finally {
    await fh.close();
  }
}

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
}

const sha = (b: string | Uint8Array) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export class BuildContext implements SourceTree {
  readonly root: string;
  readonly #entries = new Map<string, ContextEntry>();
  #sorted: string[] | undefined;

  private constructor(root: string) {
    this.root = root;
    this.#entries.set('', { path: '', type: 'directory', mode: 0o755, size: 0, mtime: new Date(0) });
  }

  /** An empty context in a new temp dir under `parent` (`docker build - < Dockerfile`). */
  static async empty(parent: string): Promise<BuildContext> {
    await mkdir(parent, { recursive: true, mode: 0o700 });
    const dir = await mkdtemp(join(parent, 'ctx-'));
    return new BuildContext(await realpath(dir));
  }

  /** Read a (possibly compressed) context tar into a new temp dir under `parent`. */
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
    const p = join(ctx.root, name);
    await mkdir(posix.dirname(p), { recursive: true });
    await (await open(p, 'wx', 0o644)).writeFile(text).then(() => undefined);
    ctx.#entries.set(name, { path: name, type: 'file', mode: 0o644, size: text.length, mtime: new Date(), digest: sha(text) });
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
    let bytes = 0;
    let count = 0;
    const ex = tarExtract();
    const inflight = new Set<Promise<void>>();
    let writeError: unknown;
    let feedError: unknown;
    const feeding = pipeline(stream, autoDecompress(), ex as unknown as NodeJS.WritableStream, { signal: limits.signal } as object).catch((err: unknown) => {
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
        if (writeError !== undefined) throw writeError;
        // Small new files are written in parallel (file writes are latency-bound); anything
        // else waits for them, so ordering between entries that touch the same path holds.
        if (isFile && (h.size ?? 0) <= SMALL_FILE && name !== '' && !this.#entries.has(name)) {
          await this.#ensureParents(name);
          if (this.#realDirs(posix.dirname(name))) {
            const chunks: Buffer[] = [];
            for await (const c of entry as AsyncIterable<Buffer>) chunks.push(c);
            const data = Buffer.concat(chunks);
            const mode = (h.mode ?? 0o644) & 0o7777;
            const mtime = h.mtime ?? new Date(0);
            this.#put({ path: name, type: 'file', mode, size: data.length, mtime, digest: sha(data) });
            if (inflight.size >= PARALLEL_WRITES) await Promise.race(inflight);
            const task: Promise<void> = writeNew(posix.join(this.root, name), data, mode, mtime)
              .catch((err: unknown) => {
                writeError ??= err;
              })
              .finally(() => inflight.delete(task));
            inflight.add(task);
            continue;
          }
        }
        await Promise.all(inflight);
        if (writeError !== undefined) throw writeError;
        await this.#entry(name, h, entry);
        entry.resume();
      }
      await Promise.all(inflight);
      if (writeError !== undefined) throw writeError;
    } catch (err) {
      ex.destroy();
      stream.destroy();
      await feeding;
      await Promise.all(inflight);
      throw err;
    }
    await feeding;
    if (feedError !== undefined) throw invalidArgument(`invalid build context: ${(feedError as Error).message}`);
  }

  async #entry(name: string, h: Header, body: Readable): Promise<void> {
    const mode = (h.mode ?? 0o644) & 0o7777;
    const mtime = h.mtime ?? new Date(0);
    if (name === '') return;
    await this.#ensureParents(name);
    // Fast path: every ancestor is a directory this extraction made (no symlink can be on the
    // way), so the lexical path is the resolved one. Otherwise resolve inside the root.
    const parentRel = posix.dirname(name);
    const target = this.#realDirs(parentRel)
      ? posix.join(this.root, name)
      : posix.join(await secureJoin(this.root, parentRel), posix.basename(name));
    const rel = posix.relative(this.root, target);
    // Only paths this extraction created can exist (the directory started empty).
    const exists = this.#entries.has(rel);
    switch (h.type) {
      case 'directory': {
        const st = exists ? await lstat(target).catch(() => undefined) : undefined;
        if (st && !st.isDirectory()) await rm(target, { recursive: true, force: true });
        if (!st || !st.isDirectory()) await mkdir(target, { mode: (mode | 0o700) & 0o777 });
        await chmod(target, mode | 0o700);
        this.#put({ path: rel, type: 'directory', mode, size: 0, mtime });
        return;
      }
      case 'file':
      case 'contiguous-file': {
        if (exists) await rm(target, { recursive: true, force: true });
        const hash = createHash('sha256');
        const fh = await open(target, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o777);
        try {
          // Small files in one write; large ones in batches of chunks (fewer syscalls).
          let batch: Buffer[] = [];
          let n = 0;
          for await (const c of body as AsyncIterable<Buffer>) {
            hash.update(c);
            batch.push(c);
            n += c.length;
            if (n >= 1 << 20) {
              await fh.writev(batch);
              batch = [];
              n = 0;
            }
          }
          if (batch.length) await fh.writev(batch);
          // The umask may have taken bits; setuid/setgid/sticky need an explicit chmod.
          await fh.chmod(mode);
          await fh.utimes(mtime, mtime);
        } finally {
          await fh.close();
        }
        this.#put({ path: rel, type: 'file', mode, size: h.size ?? 0, mtime, digest: 'sha256:' + hash.digest('hex') });
        return;
      }
      case 'symlink': {
        if (exists) await rm(target, { recursive: true, force: true });
        const linkname = h.linkname ?? '';
        await symlink(linkname, target);
        await lutimes(target, mtime, mtime).catch(() => {});
        this.#put({ path: rel, type: 'symlink', mode: 0o777, size: 0, mtime, linkname, digest: sha('symlink:' + linkname) });
        return;
      }
      case 'link': {
        const tname = cleanEntryName(h.linkname ?? '');
        if (tname === undefined || tname === '') throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}: hardlink target escapes the context`);
        const src = await secureJoin(this.root, tname, { noFollowLast: true });
        const srcEntry = this.#entries.get(posix.relative(this.root, src));
        if (!srcEntry || srcEntry.type !== 'file') throw invalidArgument(`invalid build context entry ${JSON.stringify(h.name)}: hardlink to a missing or non-regular file`);
        await rm(target, { recursive: true, force: true });
        await link(src, target);
        this.#put({ ...srcEntry, path: rel });
        return;
      }
      default:
        // Devices, FIFOs and PAX/GNU metadata entries have no place in a context.
        return;
    }
  }

  /** Are `rel` and all its ancestors directories created by this extraction? */
  #realDirs(rel: string): boolean {
    if (rel === '.' || rel === '') return true;
    for (let p = rel; p !== '.' && p !== ''; p = posix.dirname(p)) {
      if (this.#entries.get(p)?.type !== 'directory') return false;
    }
    return true;
  }

  /** Tars may omit directory entries; create missing parents (inside the root) as 0755. */
  async #ensureParents(name: string): Promise<void> {
    const parts = name.split('/');
    let cur = '';
    for (let i = 0; i < parts.length - 1; i++) {
      cur = cur ? `${cur}/${parts[i]}` : parts[i]!;
      if (this.#entries.get(cur)?.type === 'directory') continue;
      const p = await secureJoin(this.root, cur);
      const st = await lstat(p).catch(() => undefined);
      if (!st) {
        await mkdir(p, { recursive: true, mode: 0o755 });
        this.#put({ path: posix.relative(this.root, p), type: 'directory', mode: 0o755, size: 0, mtime: new Date(0) });
      } else if (!st.isDirectory()) {
        throw invalidArgument(`invalid build context entry ${JSON.stringify(name)}: a parent is not a directory`);
      }
    }
  }

  #put(e: ContextEntry): void {
    this.#entries.set(e.path, e);
    this.#sorted = undefined;
  }

  /** Read a small file (Dockerfile, .dockerignore) resolved inside the context; undefined if absent. */
  async readFile(rel: string, maxBytes = 16 * 1024 * 1024): Promise<Buffer | undefined> {
    const p = await secureJoin(this.root, rel);
    let st;
    try {
      st = await lstat(p);
    } catch {
      return undefined;
    }
    if (!st.isFile()) return undefined;
    if (st.size > maxBytes) throw invalidArgument(`${rel} is larger than ${maxBytes} bytes`);
    return readFile(p);
  }

  /**
   * Apply .dockerignore: excluded entries disappear from the context (disk and index). Paths in
   * `keep` stay readable by the builder but disappear too if excluded (Docker reads the
   * Dockerfile before removing it).
   */
  async applyIgnore(di: Dockerignore): Promise<number> {
    if (di.empty) return 0;
    let removed = 0;
    // Longest paths first so files go before their directories.
    for (const p of [...this.#entries.keys()].sort((a, b) => b.length - a.length)) {
      if (p === '') continue;
      const e = this.#entries.get(p)!;
      if (!di.excludes(p)) continue;
      if (e.type === 'directory') {
        // A directory with a re-included child stays (as the child's parent).
        const prefix = p + '/';
        if ([...this.#entries.keys()].some((k) => k.startsWith(prefix))) continue;
      }
      await rm(join(this.root, p), { recursive: true, force: true });
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
      e = { path: p, type: 'file', mode: st.mode & 0o7777, size: st.size, mtime: st.mtime, digest: await fileDigest(join(this.root, p)) };
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
  const r = await secureResolve(tree.root, rel);
  if (!(await tree.entry(r))) throw notFound(`"${rel.replace(/^\/+/, '')}": not found`);
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
  const clean = cleanEntryName(src) ?? '';
  if (!hasGlob(clean)) return [await resolveSource(tree, clean)];
  const re = globMatcher(clean);
  const out = (await tree.allPaths()).filter((p) => p !== '' && re.test(p));
  if (out.length === 0) throw notFound(`no source files were specified: "${src}" matched nothing`);
  return out;
}

