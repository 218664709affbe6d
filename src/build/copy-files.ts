// COPY and ADD into a mounted build root. Sources come from a SourceTree (the context, or
// another stage's rootfs); destinations are resolved inside the build root with secure-join, so
// a symlink in the image (`/bin -> usr/bin`) is followed only within the root, and an existing
// entry at a target is replaced, never written through. Symlinks inside copied directories are
// copied as symlinks. Ownership is 0:0 unless --chown; modes come from the source unless
// --chmod; mtimes are kept.
import { constants as fsc } from 'node:fs';
import { chmod, copyFile, lchown, lstat, lutimes, mkdir, open, readdir, readFile, rm, symlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { spawn } from 'node:child_process';
import { PassThrough, Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createReadStream } from 'node:fs';
import { internal, invalidArgument, notFound } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { secureJoin } from '../layer/secure-join.ts';
import { applyLayer } from '../layer/tar-apply.ts';
import { autoDecompress } from '../layer/compression.ts';
import { parseGroup, parsePasswd, readEtcFile } from '../runtime/user.ts';
import { DirectoryTree, type ContextEntry, type SourceTree } from './context.ts';

export interface CopyItem {
  tree: SourceTree;
  /** Clean path in the tree ('' = its root). */
  path: string;
}

export interface CopyOptions {
  uid: number;
  gid: number;
  chmod?: number;
  /** The destination is a directory (trailing `/`, several sources). */
  destIsDir: boolean;
  /** ADD: extract local tar archives into the destination. */
  extractArchives?: boolean;
  host: Host;
  /**
   * The snapshot's overlay upper dir, when `root` is an overlay mount and this copy is the only
   * write of the step: the contents of a directory the step created are then written straight
   * into the upper dir. Creating files through overlayfs costs several times the system time of
   * creating them in the upper dir (lower-layer lookups per name); for a directory overlay has
   * just made (a pure upper directory whose children it has never looked up) the result after
   * unmount is the same.
   */
  upper?: string;
}

const isRoot = process.getuid?.() === 0;

/** Copy `items` to absolute in-container path `dest` under `root`. */
export async function copyInto(root: string, items: readonly CopyItem[], dest: string, opts: CopyOptions): Promise<void> {
  let destIsDir = opts.destIsDir;
  if (!destIsDir) {
    const st = await lstat(await secureJoin(root, dest)).catch(() => undefined);
    if (st?.isDirectory()) destIsDir = true;
  }
  for (const item of items) {
    const e = await item.tree.entry(item.path);
    if (!e) throw notFound(`"${item.path}": not found`);
    if (e.type === 'directory') {
      const existing = await lstat(await secureJoin(root, dest)).catch(() => undefined);
      const fresh = !existing;
      // An existing empty directory (typically made by WORKDIR) takes the context's entries
      // the same way: nothing below it can have been planted.
      const emptyDir = !fresh && existing.isDirectory() && !(item.tree instanceof DirectoryTree) && (await readdir(await secureJoin(root, dest))).length === 0;
      await mkdirAll(root, dest, opts);
      if (fresh || emptyDir) {
        // A destination this step creates holds nothing planted by the image (no symlink to
        // write through), so paths below it are joined lexically: a mounted tree is copied
        // by one cp, the context's entries are written straight from memory.
        let destAbs = await secureJoin(root, dest);
        if (items.length === 1 && opts.upper !== undefined) {
          // A lower-layer directory is copied up (a no-op time update through the overlay) so
          // that its upper half exists and takes the entries.
          if (emptyDir) await utimes(destAbs, existing.atime, existing.mtime);
          destAbs = await upperPath(root, destAbs, opts.upper, emptyDir);
        }
        if (item.tree instanceof DirectoryTree) await copyTreeFresh(posix.join(item.tree.root, item.path), destAbs, opts);
        else await writeTreeFresh(item.tree, item.path, destAbs, opts);
        continue;
      }
      for (const child of await item.tree.list(item.path)) {
        const rel = item.path === '' ? child.path : child.path.slice(item.path.length + 1);
        await copyEntry(root, item.tree, child, posix.join(dest, rel), opts);
      }
      continue;
    }
    const target = destIsDir ? posix.join(dest, posix.basename(item.path)) : dest;
    if (opts.extractArchives && e.type === 'file') {
      const src = await item.tree.pathOf(e);
      const kind = await archiveKind(src);
      if (kind) {
        await mkdirAll(root, dest, opts);
        const into = await secureJoin(root, dest);
        await applyLayer(into, decompressStream(src, kind), { mode: 'delete', host: opts.host });
        continue;
      }
    }
    await mkdirAll(root, posix.dirname(target), opts);
    await copyEntry(root, item.tree, e, target, opts);
  }
}

/**
 * Where to write below `mergedAbs` (a directory this step created, or an empty one it copied up,
 * through the overlay mounted at `root`): the same directory in the upper dir when overlay put
 * it there, the merged path otherwise.
 */
async function upperPath(root: string, mergedAbs: string, upper: string, copiedUp: boolean): Promise<string> {
  if (!mergedAbs.startsWith(root + '/')) return mergedAbs;
  const candidate = posix.join(upper, mergedAbs.slice(root.length));
  const [m, u] = await Promise.all([lstat(mergedAbs), lstat(candidate).catch(() => undefined)]);
  if (!u?.isDirectory()) return mergedAbs;
  // A copied-up directory (empty in every lower layer) shows the lower's inode number; a pure
  // upper one the upper's (on overlay's own st_dev): then it must be the same directory.
  return copiedUp || u.ino === m.ino ? candidate : mergedAbs;
}

/** Create file `abs` (must not exist) with the entry's body, mode, owner and mtime. */
async function writeEntryFile(tree: SourceTree, e: ContextEntry, abs: string, opts: CopyOptions): Promise<void> {
  const mode = opts.chmod ?? e.mode;
  if (e.data === undefined) {
    await copyFile(await tree.pathOf(e), abs, fsc.COPYFILE_EXCL);
    await chmod(abs, mode);
    if (isRoot) await lchown(abs, opts.uid, opts.gid);
    await utimes(abs, e.mtime, e.mtime);
    return;
  }
  const fh = await open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o777);
  try {
    if (e.data.length) await fh.write(e.data);
    // Each call is a thread-pool round trip: skip what creation already got right.
    if ((mode & ~0o777) !== 0 || (mode & (await umask())) !== 0) await fh.chmod(mode);
    if (isRoot && (opts.uid !== 0 || opts.gid !== 0)) await fh.chown(opts.uid, opts.gid);
    await fh.utimes(e.mtime, e.mtime);
  } finally {
    await fh.close();
  }
}

let umaskValue: Promise<number> | undefined;
/** The process umask, read once by creating a 0777 file (process.umask() to read is deprecated). */
function umask(): Promise<number> {
  umaskValue ??= (async () => {
    const { mkdtemp } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(posix.join(tmpdir(), 'berth-umask-'));
    try {
      const fh = await open(posix.join(dir, 'f'), 'wx', 0o777);
      const st = await fh.stat();
      await fh.close();
      return ~st.mode & 0o777;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  })().catch(() => 0o777);
  return umaskValue;
}


/**
 * Write the entries under `src` of a tree into `dest`, a directory this step created, by
 * streaming them as a tar (owner, --chmod and mtimes in the headers) into GNU tar: one process
 * creating files with direct system calls is several times faster than a thread-pool round
 * trip per call from Node for many small files. Names are clean relative paths and nothing in
 * `dest` predates this step, so extraction stays inside it.
 */
async function writeTreeFresh(tree: SourceTree, src: string, dest: string, opts: CopyOptions): Promise<void> {
  const children = await tree.list(src);
  if (children.length === 0) return;
  const rel = (p: string) => (src === '' ? p : p.slice(src.length + 1));
  const { pack: tarPack } = await import('tar-stream');
  const pack = tarPack();
  const child = spawn('tar', ['-C', dest, '-x', '-p', '--numeric-owner', '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', (e) => reject(internal(`tar: ${e.message}`)));
    child.on('close', (code) => resolve(code ?? 1));
  });
  child.stdin.on('error', () => {});
  // tar-stream emits a small chunk per header and body: coalesced, the pipe sees few writes.
  const feeding = pipeline(pack as unknown as Readable, coalesce(256 * 1024), child.stdin).catch(() => {});
  try {
    // Entries with in-memory bodies are queued without waiting for tar to read each one (a
    // round trip per entry through the pipe would dominate); streamed bodies wait.
    let queued: Array<Promise<void>> = [];
    for (const c of children) {
      const base = { name: rel(c.path), mtime: c.mtime, uid: opts.uid, gid: opts.gid, mode: opts.chmod ?? c.mode };
      if (c.type === 'directory') queued.push(entryP(pack, { ...base, type: 'directory' }));
      else if (c.type === 'symlink') queued.push(entryP(pack, { ...base, mode: 0o777, type: 'symlink', linkname: c.linkname ?? '' }));
      else {
        const data = c.data ?? (c.size <= 1 << 20 ? await readFile(await tree.pathOf(c)) : undefined);
        if (data) queued.push(entryP(pack, { ...base, type: 'file', size: data.length }, data));
        else {
          await Promise.all(queued);
          queued = [];
          await new Promise<void>((res, rej) => {
            const ws = pack.entry({ ...base, type: 'file', size: c.size }, (err) => (err ? rej(err) : res()));
            void tree.pathOf(c).then((path) => createReadStream(path).on('error', rej).pipe(ws as unknown as NodeJS.WritableStream), rej);
          });
        }
      }
      if (queued.length >= 4096) {
        await Promise.all(queued);
        queued = [];
      }
    }
    await Promise.all(queued);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    child.kill();
    await exited.catch(() => {});
    throw err;
  }
  await feeding;
  const code = await exited;
  if (code !== 0) throw internal(`copying into ${dest}: tar exit ${code}: ${stderr.trim()}`);
}

/** Gather small chunks into writes of at least `size` bytes. */
function coalesce(size: number): Transform {
  let buf: Buffer[] = [];
  let n = 0;
  return new Transform({
    transform(c: Buffer, _e, cb) {
      buf.push(c);
      n += c.length;
      if (n >= size) {
        const out = Buffer.concat(buf);
        buf = [];
        n = 0;
        cb(null, out);
      } else cb();
    },
    flush(cb) {
      cb(null, n ? Buffer.concat(buf) : undefined);
    },
  });
}

function entryP(pack: import('tar-stream').Pack, header: Parameters<import('tar-stream').Pack['entry']>[0], body?: Buffer): Promise<void> {
  return new Promise((res, rej) => {
    if (body) pack.entry(header, body, (err) => (err ? rej(err) : res()));
    else pack.entry(header, (err) => (err ? rej(err) : res()));
  });
}

function exec(file: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => reject(internal(`${file}: ${e.message}`)));
    child.on('close', (code) => (code === 0 ? resolve() : reject(internal(`${file} ${args.join(' ')}: exit ${code}: ${err.trim()}`))));
  });
}

/**
 * Copy the contents of directory `src` into `dest`, a directory this step just created.
 * Symlinks are copied as symlinks (-P), modes and mtimes kept; then owner and --chmod applied
 * (chmod -R leaves symlinks met during the walk alone).
 */
async function copyTreeFresh(src: string, dest: string, opts: CopyOptions): Promise<void> {
  await exec('cp', ['-R', '-P', '--preserve=mode,timestamps', '--', `${src}/.`, dest]);
  if (isRoot) await exec('chown', ['-R', '-h', `${opts.uid}:${opts.gid}`, '--', dest]);
  if (opts.chmod !== undefined) await exec('chmod', ['-R', opts.chmod.toString(8), '--', dest]);
}

/** mkdir -p inside root; directories created here get the copy's owner. */
export async function mkdirAll(root: string, dir: string, opts: Pick<CopyOptions, 'uid' | 'gid'>): Promise<void> {
  const parts = dir.split('/').filter((c) => c !== '' && c !== '.');
  let cur = '/';
  for (const c of parts) {
    cur = posix.join(cur, c);
    const p = await secureJoin(root, cur);
    const st = await lstat(p).catch(() => undefined);
    if (st?.isDirectory()) continue;
    if (st) throw invalidArgument(`cannot create directory ${cur}: a file is in the way`);
    await mkdir(p, { mode: 0o755 });
    await chmod(p, 0o755);
    if (isRoot) await lchown(p, opts.uid, opts.gid);
  }
}

async function copyEntry(root: string, tree: SourceTree, e: ContextEntry, target: string, opts: CopyOptions): Promise<void> {
  const parent = await secureJoin(root, posix.dirname(target));
  const abs = posix.join(parent, posix.basename(target));
  if (abs === root) return;
  const existing = await lstat(abs).catch(() => undefined);
  switch (e.type) {
    case 'directory': {
      if (existing && !existing.isDirectory()) await rm(abs, { force: true });
      if (!existing || !existing.isDirectory()) await mkdir(abs);
      await chmod(abs, opts.chmod ?? e.mode);
      if (isRoot) await lchown(abs, opts.uid, opts.gid);
      await utimes(abs, e.mtime, e.mtime);
      return;
    }
    case 'file': {
      if (existing) {
        if (existing.isDirectory()) throw invalidArgument(`cannot copy file to ${target}: it is a directory`);
        await rm(abs, { force: true });
      }
      await writeEntryFile(tree, e, abs, opts);
      return;
    }
    case 'symlink': {
      if (existing) {
        if (existing.isDirectory()) await rm(abs, { recursive: true, force: true });
        else await rm(abs, { force: true });
      }
      await symlink(e.linkname ?? '', abs);
      if (isRoot) await lchown(abs, opts.uid, opts.gid);
      await lutimes(abs, e.mtime, e.mtime).catch(() => {});
      return;
    }
  }
}

/** Write one file (heredoc body, downloaded URL) at absolute in-container `target`. */
export async function writeFileInto(root: string, target: string, data: Buffer | string, mode: number, opts: Pick<CopyOptions, 'uid' | 'gid'>, mtime?: Date): Promise<void> {
  await mkdirAll(root, posix.dirname(target), opts);
  const parent = await secureJoin(root, posix.dirname(target));
  const abs = posix.join(parent, posix.basename(target));
  const existing = await lstat(abs).catch(() => undefined);
  if (existing?.isDirectory()) throw invalidArgument(`cannot write ${target}: it is a directory`);
  if (existing) await rm(abs, { force: true });
  const fh = await open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    await fh.writeFile(data);
    await fh.chmod(mode);
    if (isRoot) await fh.chown(opts.uid, opts.gid);
    if (mtime) await fh.utimes(mtime, mtime);
  } finally {
    await fh.close();
  }
}

type ArchiveKind = 'tar' | 'gzip' | 'zstd' | 'bzip2' | 'xz';

/** Docker's ADD extracts tar, gzip/bzip2/xz (and zstd) compressed tars; anything else is copied. */
export async function archiveKind(path: string): Promise<ArchiveKind | undefined> {
  const fh = await open(path, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  let head: Buffer;
  try {
    head = Buffer.alloc(512);
    const { bytesRead } = await fh.read(head, 0, 512, 0);
    head = head.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
  const isTar = (b: Buffer) => b.length >= 262 && b.subarray(257, 262).toString('latin1') === 'ustar';
  if (isTar(head)) return 'tar';
  if (head[0] === 0x1f && head[1] === 0x8b) return (await peekDecompressed(path, 'gzip')) ? 'gzip' : undefined;
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))) return (await peekDecompressed(path, 'zstd')) ? 'zstd' : undefined;
  if (head.subarray(0, 3).toString('latin1') === 'BZh') return (await peekDecompressed(path, 'bzip2')) ? 'bzip2' : undefined;
  if (head.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]))) return (await peekDecompressed(path, 'xz')) ? 'xz' : undefined;
  return undefined;
}

async function peekDecompressed(path: string, kind: ArchiveKind): Promise<boolean> {
  const s = decompressStream(path, kind);
  let buf = Buffer.alloc(0);
  try {
    for await (const c of s as AsyncIterable<Buffer>) {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= 262) break;
    }
  } catch {
    return false;
  } finally {
    s.destroy();
  }
  return buf.length >= 262 && buf.subarray(257, 262).toString('latin1') === 'ustar';
}

function decompressStream(path: string, kind: ArchiveKind): Readable {
  if (kind === 'tar' || kind === 'gzip' || kind === 'zstd') return createReadStream(path).pipe(autoDecompress());
  const prog = kind === 'bzip2' ? 'bzip2' : 'xz';
  const child = spawn(prog, ['-dc', path], { stdio: ['ignore', 'pipe', 'ignore'] });
  const out = new PassThrough();
  child.stdout.pipe(out);
  child.on('error', (e) => out.destroy(e));
  out.on('close', () => child.kill());
  return out;
}

/** `--chown=user:group` against the build root's /etc/passwd and /etc/group (Docker's rules). */
export async function resolveChown(root: string, spec: string | undefined): Promise<{ uid: number; gid: number }> {
  if (!spec) return { uid: 0, gid: 0 };
  const [u = '', g] = spec.split(':', 2) as [string, string?];
  const num = (s: string) => (/^\d+$/.test(s) ? Number(s) : undefined);
  let uid = num(u);
  if (uid === undefined) {
    const e = parsePasswd(await readEtcFile(root, 'passwd')).find((p) => p.name === u);
    if (!e) throw invalidArgument(`unable to convert uid/gid chown string to host mapping: can't find uid for user ${u}: no such user: ${u}`);
    uid = e.uid;
  }
  let gid: number | undefined;
  if (g === undefined || g === '') gid = uid;
  else {
    gid = num(g);
    if (gid === undefined) {
      const e = parseGroup(await readEtcFile(root, 'group')).find((x) => x.name === g);
      if (!e) throw invalidArgument(`unable to convert uid/gid chown string to host mapping: can't find gid for group ${g}: no such group: ${g}`);
      gid = e.gid;
    }
  }
  return { uid, gid };
}

/** `--chmod=0755` (octal only, as the legacy builder takes it). */
export function parseChmod(s: string | undefined): number | undefined {
  if (s === undefined || s === '') return undefined;
  if (!/^[0-7]{3,4}$/.test(s)) throw invalidArgument(`invalid chmod parameter: ${s}: want an octal mode such as 0755`);
  return parseInt(s, 8);
}
