// Apply one uncompressed OCI/Docker layer tar to a directory (containerd's archive.Apply, moby's
// ApplyLayer), streaming: entry bodies go straight from the tar stream to disk.
//
// Two modes:
//  - 'overlay': `root` is a fresh, empty per-layer diff directory that will become an overlayfs
//    lower dir. Whiteouts become overlay whiteouts: `.wh.x` -> a `c 0:0` device `x` (Host.mknod)
//    and `.wh..wh..opq` -> `trusted.overlay.opaque=y` on the directory (Host.setxattr, batched).
//  - 'delete': `root` is an existing tree (a flattened rootfs). `.wh.x` deletes `x`, and
//    `.wh..wh..opq` deletes the directory's lower-layer content.
// In both modes whiteouts apply only to entries of lower layers (OCI image-spec layer.md): an
// entry of this layer is never hidden by a whiteout of the same layer, whatever the order.
//
// Confinement (security.md 1.A/1.B): every entry name and hardlink target is cleaned (absolute
// names are taken relative to the root, `..` that climbs out of the root is refused) and its
// parent directory is resolved with secure-join, so symlinks planted by this or an earlier layer
// are followed only inside the root. The last component is never followed: an existing entry
// there is replaced (a symlink is removed, not written through), files are created with
// O_EXCL|O_NOFOLLOW, and hardlinks link to the target itself. Metadata calls on files use the
// open descriptor. Directory modes and times, xattrs and opaque markers are applied at the end
// (after the children), and only where every parent is still a real directory, since a later
// entry may have replaced one with a symlink. This relies on nothing else modifying the tree
// during the apply, which holds for the private temp dirs the snapshotter applies into; a
// running container's rootfs needs the container paused (CVE-2018-15664 class).
//
// The per-entry filesystem calls are synchronous on purpose: each takes microseconds, while a
// thread-pool round trip per call made 10k small files ~5x slower on a loaded 2-core host
// (measured). The event loop still turns for every chunk read from the tar stream. The
// snapshotter runs this on worker threads (worker-apply.ts), so those calls block only the apply.
import {
  chmodSync, closeSync, constants as fsc, copyFileSync, fchmodSync, fchownSync, futimesSync, lchownSync, linkSync,
  lstatSync, lutimesSync, mkdirSync, openSync, readdirSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeSync,
  type Stats,
} from 'node:fs';
import { realpath } from 'node:fs/promises';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import type { Header } from 'tar-stream';
import { BerthError, canceled, internal, invalidArgument } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { cleanEntryName, secureJoinSync, secureResolveSync } from './secure-join.ts';
import { binaryPaxExtract, XATTR_PREFIX } from './tar-pax.ts';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

/** Defaults when the caller gives no bound: generous for real images, finite for hostile ones. */
export const DEFAULT_MAX_ENTRIES = 1_000_000;
export const DEFAULT_MAX_BYTES = 256 * 1024 ** 3;
const EUID = process.geteuid?.() ?? -1;
const EGID = process.getegid?.() ?? -1;
/** Linux PATH_MAX; longer names cannot be created anyway. */
const MAX_NAME_BYTES = 4096;
/** Paths per setfattr invocation (argv stays far below ARG_MAX). */
const XATTR_BATCH = 256;

export interface ApplyOptions {
  mode: 'overlay' | 'delete';
  host: Host;
  /** Upper bound on file body bytes written; exceeding it fails the apply. */
  maxBytes?: number;
  /** Upper bound on tar entries. */
  maxEntries?: number;
  /** lchown entries to the tar's uid/gid (default: when running as root). */
  sameOwner?: boolean;
  signal?: AbortSignal;
  /**
   * Overlay mode: the diff dirs of the layers below, top first, or a function that resolves them
   * (the snapshotter's waits until the parent layer is committed). A hardlink whose target lives
   * in a lower layer copies the target up first (asking for the lowers then), and a parent
   * directory the tar does not list is created with the attributes it has below (asked for at
   * the end of the apply, so the merged view keeps its mode and owner). A layer that needs
   * neither never waits for its lowers.
   */
  lowers?: readonly string[] | (() => Promise<readonly string[]>);
}

export interface ApplyResult {
  /** File body bytes written. */
  bytes: number;
  /** Tar entries processed (whiteouts included). */
  entries: number;
}

export async function applyLayer(root: string, tar: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  const applier = new LayerApplier(root, opts);
  return applier.run(tar);
}

function refuse(name: string, why: string): BerthError {
  return invalidArgument(`invalid layer entry ${JSON.stringify(name)}: ${why}`);
}

/** Name the entry in errors raised below it (secure-join, fs calls). */
function inEntry(name: string, err: unknown): unknown {
  if (err instanceof BerthError) {
    if (err.message.startsWith('invalid layer entry') || err.kind === 'Canceled') return err;
    if (err.kind === 'InvalidArgument') return refuse(name, err.message);
    return err;
  }
  if (isSysError(err)) return internal(`layer entry ${JSON.stringify(name)}: ${(err as Error).message}`, err);
  return err;
}

function isSysError(err: unknown): boolean {
  return typeof (err as NodeJS.ErrnoException | undefined)?.syscall === 'string';
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function lstatOrUndefined(p: string): Stats | undefined {
  try {
    // No exception for the common miss: building one costs more than the lstat itself.
    return lstatSync(p, { throwIfNoEntry: false });
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

interface Times {
  atime: Date;
  mtime: Date;
}

class LayerApplier {
  #root: string;
  readonly #opts: ApplyOptions;
  readonly #maxBytes: number;
  readonly #maxEntries: number;
  readonly #sameOwner: boolean;
  #bytes = 0;
  #entries = 0;
  /** Clean directory name -> resolved root-relative path of an existing real directory. */
  readonly #dirs = new Map<string, string>();
  /** Resolved root-relative paths this layer created, with all their ancestors. */
  readonly #unpacked = new Set<string>();
  /** Directory mode and times, set after all children (absolute path -> values). */
  readonly #dirMeta = new Map<string, { mode: number; times: Times }>();
  /** Pending xattrs (absolute path -> name -> value), applied in batches at the end. */
  readonly #xattrs = new Map<string, Map<string, Buffer>>();
  readonly #opaque = new Set<string>();
  #sourceError: Error | undefined;
  /** Overlay mode: whiteout devices this layer made (absolute paths). */
  readonly #whiteouts = new Set<string>();
  /** Directories the tar implies but does not list (absolute path -> resolved relative path and the #dirMeta record given them). */
  readonly #implicit = new Map<string, { rel: string; meta: { mode: number; times: Times } }>();
  #lowersJob: Promise<readonly string[]> | undefined;
  /** See #ownedAs. */
  #newNodesOurs = false;
  /** Directories (absolute) this layer gave a group other than berthd's (see #ownedAs). */
  readonly #foreignGid = new Set<string>();

  constructor(root: string, opts: ApplyOptions) {
    this.#root = root;
    this.#opts = opts;
    this.#maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
    this.#maxEntries = opts.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.#sameOwner = opts.sameOwner ?? process.getuid?.() === 0;
  }

  async run(tar: Readable): Promise<ApplyResult> {
    const extract = binaryPaxExtract();
    let feedError: unknown;
    // Errors of the source (network, digest check upstream) are reported as they are; only
    // errors of the tar parser mean the layer itself is malformed. Listen before any await.
    // The pipeline below destroys a still-open source with the parser's error: that one is not
    // the source's own.
    let parseError: unknown;
    extract.on('error', (err: unknown) => {
      parseError ??= err;
    });
    if (tar.errored) this.#sourceError = tar.errored;
    tar.on('error', (err) => {
      if (err !== parseError) this.#sourceError ??= err;
    });
    try {
      this.#root = await realpath(this.#root);
      const rst = lstatSync(this.#root);
      this.#newNodesOurs = this.#opts.mode === 'overlay' && (rst.mode & 0o2000) === 0 && rst.gid === EGID;
    } catch (err) {
      tar.destroy();
      throw err;
    }
    const signal = this.#opts.signal;
    const feeding = pipeline(tar, extract as unknown as NodeJS.WritableStream, ...(signal ? [{ signal }] : [])).catch((err: unknown) => {
      feedError = err;
    });
    try {
      for await (const entry of extract) {
        if (this.#opts.signal?.aborted) throw canceled('layer apply canceled');
        const body = entry as unknown as Readable;
        try {
          await this.#entry(entry.header, body);
        } catch (err) {
          throw inEntry(entry.header.name, err);
        }
        body.resume(); // whatever the handler did not read (bodies of non-files)
      }
    } catch (err) {
      extract.destroy();
      tar.destroy();
      await feeding;
      if (err instanceof BerthError) throw err;
      // A body read failed because the tar itself broke off: report the tar's error.
      const cause = feedError !== undefined && (feedError as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE' ? feedError : err;
      throw this.#wrap(cause);
    }
    await feeding;
    if (feedError !== undefined) throw this.#wrap(feedError);
    if (this.#opts.signal?.aborted) throw canceled('layer apply canceled');
    await this.#finish();
    return { bytes: this.#bytes, entries: this.#entries };
  }

  /** The lower layers' diff dirs (overlay mode), resolved once, on first need. */
  #lowers(): Promise<readonly string[]> {
    const l = this.#opts.lowers;
    if (this.#opts.mode !== 'overlay' || l === undefined) return Promise.resolve([]);
    return (this.#lowersJob ??= typeof l === 'function' ? l() : Promise.resolve(l));
  }

  #wrap(cause: unknown): Error {
    if (this.#sourceError !== undefined && this.#sourceError !== cause && !(cause instanceof BerthError)) cause = this.#sourceError;
    if (cause instanceof BerthError) return cause;
    if ((cause as Error | undefined)?.name === 'AbortError' || this.#opts.signal?.aborted) return canceled('layer apply canceled', cause);
    const msg = cause instanceof Error ? cause.message : String(cause);
    if (cause === this.#sourceError) return internal(`reading layer: ${msg}`, cause);
    if (isSysError(cause)) return internal(`layer apply: ${msg}`, cause);
    // tar-stream's parse errors: 'Invalid tar header', 'Unexpected end of data', 'Header exceeds max size'.
    return invalidArgument(`invalid layer tar: ${msg}`, cause);
  }

  // --- one entry -------------------------------------------------------------------------------

  async #entry(h: Header, body: Readable): Promise<void> {
    const name = h.name;
    if (++this.#entries > this.#maxEntries) throw refuse(name, `layer has more than ${this.#maxEntries} entries`);
    if (name === '') throw refuse(name, 'empty name');
    if (name.includes('\0')) throw refuse(name, 'name contains a NUL byte');
    if (Buffer.byteLength(name) > MAX_NAME_BYTES) throw refuse(name.slice(0, 64) + '...', 'name too long');
    const clean = cleanEntryName(name);
    if (clean === undefined) throw refuse(name, 'path escapes the layer root');
    const pax = h.pax as Record<string, string> | null | undefined;
    if (pax && ('GNU.sparse.major' in pax || 'GNU.sparse.map' in pax || 'GNU.sparse.size' in pax)) {
      // PAX-encoded GNU sparse files would otherwise land as their raw map + data.
      throw refuse(name, 'sparse files are not supported');
    }
    const dir = clean.includes('/') ? posix.dirname(clean) : '';
    const base = posix.basename(clean);

    if (base.startsWith(WHITEOUT_PREFIX)) {
      if (base === WHITEOUT_OPAQUE) return this.#opaqueDir(name, dir);
      if (base.startsWith(WHITEOUT_META_PREFIX)) return; // AUFS metadata (.wh..wh.plnk...): ignored, as moby does
      const victim = base.slice(WHITEOUT_PREFIX.length);
      if (victim === '' || victim === '.' || victim === '..') throw refuse(name, 'invalid whiteout');
      return this.#whiteout(name, dir, victim);
    }

    if (clean === '') {
      // "./" or "/": the layer's own root directory; only its attributes apply.
      if (h.type !== 'directory') throw refuse(name, 'the layer root must be a directory');
      this.#chownPath(this.#root, h);
      this.#noteDirGroup(this.#root, h);
      this.#dirMeta.set(this.#root, { mode: h.mode, times: timesOf(h) });
      this.#setXattrs(name, this.#root, h);
      return;
    }

    const parent = this.#dirOf(name, dir);
    const rel = parent === '' ? base : `${parent}/${base}`;
    const abs = posix.join(this.#root, rel);

    switch (h.type) {
      case 'file':
      case 'contiguous-file':
        await this.#file(name, abs, h, body);
        break;
      case 'directory': {
        // Create first, look only when something is there (rare): mkdir never follows a symlink.
        const created = this.#tryCreate(() => mkdirSync(abs, { mode: 0o700 }));
        const kept = !created && this.#replace(abs, true);
        if (!created && !kept) mkdirSync(abs, { mode: 0o700 });
        // Deleted and recreated in one layer: the new directory must not show the lower one's
        // content (BuildKit #2614), so it is opaque.
        if (this.#whiteouts.delete(abs)) this.#opaque.add(abs);
        // A kept directory may carry an owner from earlier in the layer: the last entry wins.
        if (kept) this.#chownPath(abs, h);
        else this.#chownNew(abs, h);
        this.#noteDirGroup(abs, h);
        this.#dirMeta.set(abs, { mode: h.mode, times: timesOf(h) });
        // A directory's own cached resolution stays valid: it is the same real directory.
        break;
      }
      case 'symlink': {
        const target = h.linkname ?? '';
        if (target === '') throw refuse(name, 'symlink without a target');
        if (target.includes('\0')) throw refuse(name, 'symlink target contains a NUL byte');
        // The target is stored verbatim (absolute targets too): it is resolved later, inside the
        // container's root, by the kernel; berth itself only ever follows it via secure-join.
        if (!this.#tryCreate(() => symlinkSync(target, abs))) {
          this.#replace(abs, false);
          symlinkSync(target, abs);
        }
        this.#chownNew(abs, h);
        const t = timesOf(h);
        lutimesSync(abs, t.atime, t.mtime);
        break;
      }
      case 'link':
        await this.#hardlink(name, abs, h.linkname ?? '');
        break;
      case 'character-device':
      case 'block-device':
      case 'fifo': {
        this.#replace(abs, false);
        const kind = h.type === 'fifo' ? 'p' : h.type === 'block-device' ? 'b' : 'c';
        await this.#opts.host.mknod(abs, kind, h.devmajor ?? 0, h.devminor ?? 0, h.mode & 0o7777);
        this.#nodeMeta(abs, h);
        break;
      }
      default:
        throw refuse(name, `unsupported entry type ${String(h.type)}`);
    }
    this.#markUnpacked(rel);
    this.#xattrs.delete(abs);
    this.#setXattrs(name, abs, h);
  }

  async #file(name: string, abs: string, h: Header, body: Readable): Promise<void> {
    if (!(h.size >= 0) || this.#bytes + h.size > this.#maxBytes) {
      throw refuse(name, `layer exceeds the limit of ${this.#maxBytes} bytes`);
    }
    const flags = fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW;
    let fd = -1;
    // O_EXCL|O_NOFOLLOW: an existing entry (or symlink) there fails with EEXIST, then is replaced.
    if (!this.#tryCreate(() => (fd = openSync(abs, flags, 0o600)))) {
      this.#replace(abs, false);
      fd = openSync(abs, flags, 0o600);
    }
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        this.#bytes += chunk.length;
        if (this.#bytes > this.#maxBytes) throw refuse(name, `layer exceeds the limit of ${this.#maxBytes} bytes`);
        let off = 0;
        while (off < chunk.length) off += writeSync(fd, chunk, off);
      }
      // chown clears setuid/setgid and file capabilities: owner first, then mode (xattrs at the end).
      if (this.#sameOwner) {
        const [uid, gid] = ownerOf(h);
        if (!this.#ownedAs(abs, uid, gid)) fchownSync(fd, uid, gid);
      }
      fchmodSync(fd, h.mode & 0o7777);
      const t = timesOf(h);
      futimesSync(fd, t.atime, t.mtime);
    } finally {
      closeSync(fd);
    }
  }

  /** A hardlink shares the target's inode and so its owner, mode and times: none are applied. */
  async #hardlink(name: string, abs: string, raw: string): Promise<void> {
    if (raw === '' || raw.includes('\0')) throw refuse(name, 'invalid hardlink target');
    const clean = cleanEntryName(raw);
    if (clean === undefined || clean === '') throw refuse(name, `hardlink target ${JSON.stringify(raw)} escapes the layer root`);
    // The target is relative to the layer root; its parents are resolved in-root, its last
    // component is not followed (link(2) links a symlink itself).
    const tdir = clean.includes('/') ? posix.dirname(clean) : '';
    const tbase = posix.basename(clean);
    let tparent = secureResolveSync(this.#root, tdir);
    let target = posix.join(this.#root, tparent, tbase);
    let st = lstatOrUndefined(target);
    if (!st) {
      st = await this.#copyUp(name, clean);
      if (st) {
        tparent = this.#dirOf(name, tdir);
        target = posix.join(this.#root, tparent, tbase);
      }
    }
    if (!st) throw refuse(name, `hardlink target ${JSON.stringify(raw)} not found`);
    if (st.isDirectory()) throw refuse(name, `hardlink target ${JSON.stringify(raw)} is a directory`);
    if (target === abs) return;
    this.#replace(abs, false);
    linkSync(target, abs);
  }

  /** Overlay mode: bring a lower layer's file into this diff so a hardlink can point at it. */
  async #copyUp(name: string, clean: string): Promise<Stats | undefined> {
    if (this.#opts.mode !== 'overlay') return undefined;
    for (const lower of await this.#lowers()) {
      const src = secureJoinSync(lower, clean, { noFollowLast: true });
      const st = lstatOrUndefined(src);
      if (!st || st.isDirectory()) continue;
      const dir = clean.includes('/') ? posix.dirname(clean) : '';
      const parent = this.#dirOf(name, dir);
      const dst = posix.join(this.#root, parent, posix.basename(clean));
      if (st.isSymbolicLink()) symlinkSync(readlinkSync(src), dst);
      else if (st.isFile()) copyFileSync(src, dst, fsc.COPYFILE_EXCL);
      else return undefined; // a device or fifo is not copied up
      if (this.#sameOwner) lchownSync(dst, st.uid, st.gid);
      if (!st.isSymbolicLink()) chmodSync(dst, st.mode & 0o7777);
      lutimesSync(dst, st.atime, st.mtime);
      return lstatSync(dst);
    }
    return undefined;
  }

  // --- whiteouts -------------------------------------------------------------------------------

  async #whiteout(name: string, dir: string, victim: string): Promise<void> {
    let parent: string;
    if (this.#opts.mode === 'overlay') {
      parent = this.#dirOf(name, dir);
    } else {
      parent = secureResolveSync(this.#root, dir);
      const pst = lstatOrUndefined(posix.join(this.#root, parent));
      if (!pst?.isDirectory()) return; // nothing below to delete
    }
    const rel = parent === '' ? victim : `${parent}/${victim}`;
    const abs = posix.join(this.#root, rel);
    const st = lstatOrUndefined(abs);
    if (this.#unpacked.has(rel)) {
      // Created by this same layer: not hidden. A directory still loses its lower content.
      if (st?.isDirectory()) this.#hideLower(abs, rel);
      return;
    }
    if (st) {
      rmSync(abs, { recursive: true, force: true });
      this.#invalidate();
    }
    if (this.#opts.mode === 'overlay') {
      await this.#opts.host.mknod(abs, 'c', 0, 0, 0);
      this.#whiteouts.add(abs);
    }
  }

  async #opaqueDir(name: string, dir: string): Promise<void> {
    if (this.#opts.mode === 'overlay') {
      const rel = this.#dirOf(name, dir);
      this.#opaque.add(posix.join(this.#root, rel));
      return;
    }
    const rel = secureResolveSync(this.#root, dir);
    const abs = posix.join(this.#root, rel);
    const st = lstatOrUndefined(abs);
    if (!st?.isDirectory()) return;
    this.#hideLower(abs, rel);
  }

  /** Remove what lower layers put under a directory (delete mode) or mark it opaque (overlay). */
  #hideLower(abs: string, rel: string): void {
    if (this.#opts.mode === 'overlay') {
      this.#opaque.add(abs);
      return;
    }
    for (const child of readdirSync(abs)) {
      const crel = rel === '' ? child : `${rel}/${child}`;
      const cabs = posix.join(abs, child);
      if (this.#unpacked.has(crel)) {
        const st = lstatSync(cabs);
        if (st.isDirectory()) this.#hideLower(cabs, crel);
      } else {
        rmSync(cabs, { recursive: true, force: true });
        this.#invalidate();
      }
    }
  }

  // --- paths -----------------------------------------------------------------------------------

  /**
   * Resolve directory `dir` (a clean entry-relative name) inside the root, creating missing
   * directories, and return its root-relative real path. Cached per name: each new directory
   * costs one lstat given its parent, so deep trees stay linear.
   */
  #dirOf(name: string, dir: string): string {
    if (dir === '') return '';
    const cached = this.#dirs.get(dir);
    if (cached !== undefined) return cached;
    const up = dir.includes('/') ? posix.dirname(dir) : '';
    const parent = this.#dirOf(name, up);
    let rel = parent === '' ? posix.basename(dir) : `${parent}/${posix.basename(dir)}`;
    const abs = posix.join(this.#root, rel);
    const st = lstatOrUndefined(abs);
    if (this.#whiteouts.has(abs)) {
      // Whited out earlier in this layer, now a parent of new entries: a new, opaque directory.
      rmSync(abs, { force: true });
      this.#whiteouts.delete(abs);
      mkdirSync(abs, { mode: 0o700 });
      this.#dirMeta.set(abs, { mode: 0o755, times: { atime: new Date(), mtime: new Date() } });
      this.#opaque.add(abs);
    } else if (st?.isSymbolicLink()) {
      rel = secureResolveSync(this.#root, rel);
      this.#mkdirChain(name, rel);
    } else if (!st) {
      this.#mkdirImplicit(rel);
    } else if (!st.isDirectory()) {
      throw refuse(name, `parent ${JSON.stringify(dir)} is not a directory`);
    }
    this.#dirs.set(dir, rel);
    return rel;
  }

  /** Make sure every component of a resolved relative path exists as a real directory. */
  #mkdirChain(name: string, rel: string): void {
    const parts = rel === '' ? [] : rel.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const sub = parts.slice(0, i).join('/');
      const st = lstatOrUndefined(posix.join(this.#root, sub));
      if (!st) this.#mkdirImplicit(sub);
      else if (!st.isDirectory()) throw refuse(name, `parent ${JSON.stringify(sub)} is not a directory`);
    }
  }

  /**
   * A directory the tar implies but does not list: like the lower layer's, or 0755 root:root.
   * Overlay mode takes the lower's attributes at the end (#implicitFromLowers), so the apply
   * does not wait for the lower layers to be committed.
   */
  #mkdirImplicit(rel: string): void {
    const abs = posix.join(this.#root, rel);
    mkdirSync(abs, { mode: 0o700 });
    const now = new Date();
    const meta = { mode: 0o755, times: { atime: now, mtime: now } };
    this.#dirMeta.set(abs, meta);
    if (this.#opts.mode === 'overlay' && this.#opts.lowers !== undefined) this.#implicit.set(abs, { rel, meta });
  }

  /** Give the implied directories still standing the owner, mode and times they have below. */
  async #implicitFromLowers(safe: (abs: string) => boolean): Promise<void> {
    if (this.#implicit.size === 0) return;
    const lowers = await this.#lowers();
    for (const [abs, { rel, meta }] of this.#implicit) {
      // Listed later in the layer (its own attributes win), replaced, or removed: nothing to do.
      if (this.#dirMeta.get(abs) !== meta || !safe(abs) || !lstatOrUndefined(abs)?.isDirectory()) continue;
      for (const lower of lowers) {
        const st = lstatOrUndefined(secureJoinSync(lower, rel));
        if (!st?.isDirectory()) continue;
        if (this.#sameOwner) lchownSync(abs, st.uid, st.gid);
        meta.mode = st.mode & 0o7777;
        meta.times = { atime: st.atime, mtime: st.mtime };
        break;
      }
    }
  }

  /**
   * Clear the way for a new entry at `abs` (never following a symlink there). Returns true when
   * an existing directory is kept because the new entry is a directory too (tar merges them).
   */
  #replace(abs: string, isDir: boolean): boolean {
    const st = lstatOrUndefined(abs);
    if (!st) return false;
    if (isDir && st.isDirectory()) return true;
    // A whiteout replaced by a non-directory needs nothing more: the new entry hides the lower.
    if (!isDir) this.#whiteouts.delete(abs);
    rmSync(abs, { recursive: true, force: true });
    this.#invalidate();
    return false;
  }

  /**
   * Run a create that fails with EEXIST when something is in the way (O_EXCL open, mkdir,
   * symlink, link: none follows a symlink in the last component). False: it was in the way.
   */
  #tryCreate(create: () => void): boolean {
    try {
      create();
      return true;
    } catch (err) {
      if (errnoOf(err) === 'EEXIST') return false;
      throw err;
    }
  }

  /**
   * Whether node `abs`, just created by this layer, already has owner uid:gid, so the chown can
   * be skipped. A new node's owner is berthd's effective uid; its group is berthd's effective
   * gid unless its parent directory is setgid or the filesystem is mounted with grpid, in which
   * case the parent's group. In overlay mode every directory below the fresh root was made by
   * this apply, mode 0700 until the end (never setgid meanwhile), so the group is berthd's as
   * long as the root is not setgid, has berthd's group, and the parent was not given another
   * group by the tar (tracked in #foreignGid).
   */
  #ownedAs(abs: string, uid: number, gid: number): boolean {
    return this.#newNodesOurs && uid === EUID && gid === EGID && !this.#foreignGid.has(posix.dirname(abs));
  }

  /** lchown a node this layer just created to the tar's owner, when it differs. */
  #chownNew(abs: string, h: Header): void {
    if (!this.#sameOwner) return;
    const [uid, gid] = ownerOf(h);
    if (!this.#ownedAs(abs, uid, gid)) lchownSync(abs, uid, gid);
  }

  #noteDirGroup(abs: string, h: Header): void {
    if (!this.#sameOwner) return;
    if (ownerOf(h)[1] !== EGID) this.#foreignGid.add(abs);
    else this.#foreignGid.delete(abs);
  }

  #invalidate(): void {
    this.#dirs.clear();
  }

  #markUnpacked(rel: string): void {
    let p = rel;
    while (p !== '' && !this.#unpacked.has(p)) {
      this.#unpacked.add(p);
      p = p.includes('/') ? posix.dirname(p) : '';
    }
  }

  // --- metadata --------------------------------------------------------------------------------

  #chownPath(abs: string, h: Header): void {
    if (this.#sameOwner) lchownSync(abs, ...ownerOf(h));
  }

  /** Owner, mode and times of a node made by the Host. A recording fake makes none: skip. */
  #nodeMeta(abs: string, h: Header): void {
    try {
      if (this.#sameOwner) lchownSync(abs, ...ownerOf(h));
      chmodSync(abs, h.mode & 0o7777);
      const t = timesOf(h);
      utimesSync(abs, t.atime, t.mtime);
    } catch (err) {
      if (errnoOf(err) !== 'ENOENT') throw err;
    }
  }

  #setXattrs(name: string, abs: string, h: Header): void {
    const pax = h.pax as Record<string, string> | null | undefined;
    if (!pax) return;
    for (const [key, value] of Object.entries(pax)) {
      if (!key.startsWith(XATTR_PREFIX)) continue;
      const xname = key.slice(XATTR_PREFIX.length);
      if (xname === '' || xname.includes('\0')) throw refuse(name, 'invalid xattr name');
      // Overlay's own attributes would let a layer steer the mount (opaque, redirect, metacopy);
      // SELinux labels belong to the host's policy, not to the image.
      if (xname.startsWith('trusted.overlay.') || xname.startsWith('user.overlay.') || xname === 'security.selinux') continue;
      let m = this.#xattrs.get(abs);
      if (!m) this.#xattrs.set(abs, (m = new Map()));
      m.set(xname, Buffer.from(value, 'latin1'));
    }
  }

  /**
   * Deferred metadata is applied by path, after later entries may have replaced a parent
   * directory with a symlink (`a/sub/` recorded, then `a -> ../victim`): the kernel would follow
   * it out of the root. Every parent of a deferred path must still be a real directory.
   */
  #parentsReal(abs: string, memo: Map<string, boolean>): boolean {
    if (abs === this.#root) return true;
    const parent = posix.dirname(abs);
    if (parent === this.#root) return true;
    if (!parent.startsWith(this.#root + '/')) return false;
    let ok = memo.get(parent);
    if (ok === undefined) {
      const st = lstatOrUndefined(parent);
      ok = st !== undefined && st.isDirectory() && this.#parentsReal(parent, memo);
      memo.set(parent, ok);
    }
    return ok;
  }

  async #finish(): Promise<void> {
    const host = this.#opts.host;
    const memo = new Map<string, boolean>();
    const safe = (abs: string) => this.#parentsReal(abs, memo);
    await this.#implicitFromLowers(safe);
    // Group identical (name, value) pairs so one setfattr call covers many paths.
    const groups = new Map<string, { name: string; value: Buffer; paths: string[] }>();
    for (const [abs, attrs] of this.#xattrs) {
      for (const [name, value] of attrs) {
        const key = `${name}\0${value.toString('hex')}`;
        let g = groups.get(key);
        if (!g) groups.set(key, (g = { name, value, paths: [] }));
        g.paths.push(abs);
      }
    }
    for (const g of groups.values()) {
      // Entries replaced or removed later in the layer are gone; a recording fake Host made no nodes.
      const exists = g.paths.map((p) => safe(p) && lstatOrUndefined(p) !== undefined);
      g.paths = g.paths.filter((_, i) => exists[i]);
      for (let i = 0; i < g.paths.length; i += XATTR_BATCH) {
        await setXattrTolerant(host, g.paths.slice(i, i + XATTR_BATCH), g.name, g.value);
      }
    }
    const opaque = [...this.#opaque].filter((p) => safe(p) && lstatOrUndefined(p)?.isDirectory());
    for (let i = 0; i < opaque.length; i += XATTR_BATCH) {
      await host.setxattr(opaque.slice(i, i + XATTR_BATCH), OVERLAY_OPAQUE_XATTR, 'y');
    }
    // Directory modes and times last, children before parents (creating entries touched them).
    const dirs = [...this.#dirMeta].reverse();
    for (const [abs, meta] of dirs) {
      if (!safe(abs)) continue;
      const st = lstatOrUndefined(abs);
      if (!st?.isDirectory()) continue; // replaced or removed later in the layer
      chmodSync(abs, meta.mode & 0o7777);
      utimesSync(abs, meta.times.atime, meta.times.mtime);
    }
  }
}

/**
 * Image xattrs are best effort, as in moby: a filesystem that refuses one (user.* on a symlink,
 * no xattr support) does not fail the pull. A failed batch is retried path by path so one
 * refusal does not drop the attribute from the others.
 */
async function setXattrTolerant(host: Host, paths: string[], name: string, value: Buffer): Promise<void> {
  try {
    await host.setxattr(paths, name, value);
  } catch {
    if (paths.length === 1) return;
    for (const p of paths) await host.setxattr([p], name, value).catch(() => {});
  }
}

/** uid/gid, from the PAX record when the ustar fields were too small for them. */
function ownerOf(h: Header): [number, number] {
  const pax = h.pax as Record<string, string> | null | undefined;
  const uid = pax?.uid !== undefined ? Number(pax.uid) : h.uid;
  const gid = pax?.gid !== undefined ? Number(pax.gid) : h.gid;
  if (!Number.isSafeInteger(uid) || !Number.isSafeInteger(gid) || uid < 0 || gid < 0 || uid > 0xfffffffe || gid > 0xfffffffe) {
    throw refuse(h.name, 'invalid uid or gid');
  }
  return [uid, gid];
}

function timesOf(h: Header): Times {
  const pax = h.pax as Record<string, string> | null | undefined;
  const mtime = paxTime(pax?.mtime) ?? h.mtime;
  const atime = paxTime(pax?.atime) ?? mtime;
  return { atime, mtime };
}

function paxTime(v: string | undefined): Date | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? new Date(n * 1000) : undefined;
}
