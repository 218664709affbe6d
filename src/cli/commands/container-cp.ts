// `cp`: files between a container and the local filesystem through the archive endpoints.
//   cp CONTAINER:SRC DEST   GET /containers/{id}/archive?path=SRC -> tar -> extract (or stdout for "-")
//   cp SRC CONTAINER:DEST   HEAD .../archive?path=DEST (stat) -> PUT .../archive?path=DIR with a tar
// Docker's rules for the destination: an existing directory receives SRC under its own name;
// a path that does not exist becomes SRC renamed. Extraction never writes outside DEST (entries
// with '..' or absolute names are refused, and nothing is written through a symlink the archive
// planted).
import { createReadStream, createWriteStream } from 'node:fs';
import { lstat, mkdir, readdir, readlink, stat, symlink, chmod, utimes } from 'node:fs/promises';
import { basename, dirname, join, resolve, sep, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type tarStream from 'tar-stream';
import type { Command, Ctx } from '../command.ts';
import { ApiError } from '../api-client.ts';

/** "name:path" -> container and path, unless it looks like a local path. */
export function splitCpArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/') || arg.startsWith('.')) return { path: arg };
  const i = arg.indexOf(':');
  if (i <= 0) return { path: arg };
  return { container: arg.slice(0, i), path: arg.slice(i + 1) };
}

interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

const MODE_DIR = 0x80000000; // Go's os.ModeDir

function decodeStat(h: string | string[] | undefined): PathStat | undefined {
  if (typeof h !== 'string' || !h) return undefined;
  try {
    return JSON.parse(Buffer.from(h, 'base64').toString('utf8')) as PathStat;
  } catch {
    return undefined;
  }
}

/** tar-stream, loaded only when cp runs. */
async function tarLib(): Promise<typeof tarStream> {
  return (await import('tar-stream')).default;
}

/** Extract a tar stream under `dest`, renaming the top-level entry `from` to `to` when given. */
async function extractTar(input: NodeJS.ReadableStream, dest: string, rename?: { from: string; to: string }): Promise<void> {
  const tar = await tarLib();
  const root = resolve(dest);
  const ex = tar.extract();
  const dirTimes: Array<{ p: string; t: Date }> = [];
  ex.on('entry', (header, stream, next) => {
    (async () => {
      let name = header.name.replace(/^\.\//, '').replace(/\/+$/, '');
      if (rename) {
        if (name === rename.from) name = rename.to;
        else if (name.startsWith(rename.from + '/')) name = rename.to + name.slice(rename.from.length);
      }
      const norm = posix.normalize(name);
      if (norm === '' || norm === '.' || norm.startsWith('../') || norm === '..' || posix.isAbsolute(norm)) {
        stream.resume();
        return;
      }
      const target = resolve(root, norm);
      if (target !== root && !target.startsWith(root + sep)) throw new Error(`invalid path in archive: ${header.name}`);
      // Never write through a symlink: every existing parent must be a real directory.
      let p = dirname(target);
      const parents: string[] = [];
      while (p.startsWith(root) && p !== root) {
        parents.push(p);
        p = dirname(p);
      }
      for (const d of parents.reverse()) {
        const st = await lstat(d).catch(() => undefined);
        if (!st) await mkdir(d);
        else if (!st.isDirectory()) throw new Error(`refusing to write through non-directory ${d}`);
      }
      const existing = await lstat(target).catch(() => undefined);
      if (existing?.isSymbolicLink()) throw new Error(`refusing to overwrite symlink ${target}`);
      const mode = (header.mode ?? 0o644) & 0o7777;
      switch (header.type) {
        case 'directory':
          if (!existing) await mkdir(target, { mode });
          if (header.mtime) dirTimes.push({ p: target, t: header.mtime });
          stream.resume();
          break;
        case 'symlink':
          await symlink(header.linkname ?? '', target);
          stream.resume();
          break;
        case 'file':
        case 'contiguous-file':
          await pipeline(stream, createWriteStream(target, { mode }));
          await chmod(target, mode);
          if (header.mtime) await utimes(target, header.mtime, header.mtime);
          break;
        default:
          stream.resume(); // devices, hardlinks, fifos: skipped by the client
      }
    })().then(
      () => next(),
      (err: unknown) => next(err as Error),
    );
  });
  await pipeline(input, ex);
  for (const d of dirTimes.reverse()) await utimes(d.p, d.t, d.t).catch(() => {});
}

/** Pack a local file or directory as `name` (and its children). */
async function packPath(pack: tarStream.Pack, src: string, name: string): Promise<void> {
  const st = await lstat(src);
  const base = { name, mode: st.mode & 0o7777, mtime: st.mtime, uid: st.uid, gid: st.gid };
  if (st.isDirectory()) {
    pack.entry({ ...base, type: 'directory' });
    for (const e of (await readdir(src)).sort()) await packPath(pack, join(src, e), `${name}/${e}`);
  } else if (st.isSymbolicLink()) {
    pack.entry({ ...base, type: 'symlink', linkname: await readlink(src) });
  } else if (st.isFile()) {
    await new Promise<void>((res, rej) => {
      const entry = pack.entry({ ...base, type: 'file', size: st.size }, (err) => (err ? rej(err) : res()));
      createReadStream(src).on('error', rej).pipe(entry);
    });
  }
}

async function copyFromContainer(ctx: Ctx, container: string, srcPath: string, dest: string): Promise<void> {
  const res = await ctx.client.request('GET', `/containers/${container}/archive`, { query: { path: srcPath } });
  if (dest === '-') {
    await pipeline(res, ctx.io.stdout, { end: false });
    return;
  }
  const st = decodeStat(res.headers['x-docker-container-path-stat']);
  const srcName = st?.name ?? basename(srcPath.replace(/\/+$/, '')) ?? '';
  const dst = await stat(dest).catch(() => undefined);
  if (dst?.isDirectory() && !srcPath.endsWith('/.')) {
    await extractTar(res, dest);
  } else if (dst?.isDirectory()) {
    // SRC/. copies the directory's contents.
    await extractTar(res, dest, { from: srcName, to: '.' });
  } else {
    if (dest.endsWith('/')) throw new Error(`destination directory ${dest} must exist`);
    const parent = dirname(resolve(dest));
    const pst = await stat(parent).catch(() => undefined);
    if (!pst?.isDirectory()) throw new Error(`no such directory: ${parent}`);
    await extractTar(res, parent, { from: srcName, to: basename(dest) });
  }
}

async function copyToContainer(ctx: Ctx, src: string, container: string, destPath: string, opts: { copyUIDGID: boolean }): Promise<void> {
  let dir = destPath;
  let name = basename(resolve(src));
  let dstStat: PathStat | undefined;
  try {
    const res = await ctx.client.request('HEAD', `/containers/${container}/archive`, { query: { path: destPath } });
    res.resume();
    dstStat = decodeStat(res.headers['x-docker-container-path-stat']);
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) throw err;
  }
  const isDir = dstStat !== undefined && (dstStat.mode & MODE_DIR) !== 0;
  if (!isDir) {
    if (destPath.endsWith('/')) throw new Error(`Error response from daemon: Could not find the file ${destPath} in container ${container}`);
    dir = posix.dirname(destPath);
    name = posix.basename(destPath);
  }
  if (src === '-') {
    await ctx.client.call('PUT', `/containers/${container}/archive`, {
      query: { path: destPath, noOverwriteDirNonDir: true, copyUIDGID: opts.copyUIDGID },
      body: ctx.io.stdin,
      contentType: 'application/x-tar',
    });
    return;
  }
  const pack = (await tarLib()).pack();
  const packing = (async () => {
    try {
      if (src.endsWith('/.')) {
        for (const e of (await readdir(src)).sort()) await packPath(pack, join(src, e), e);
        dir = destPath;
      } else {
        await packPath(pack, src, name);
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  await lstat(src);
  await ctx.client.call('PUT', `/containers/${container}/archive`, {
    query: { path: dir, noOverwriteDirNonDir: true, copyUIDGID: opts.copyUIDGID },
    body: pack,
    contentType: 'application/x-tar',
  });
  await packing;
}

export const copyCommand: Command = {
  name: 'cp',
  usage: '[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH',
  short: 'Copy files/folders between a container and the local filesystem',
  args: { min: 2, max: 2 },
  flags: [
    { name: 'archive', short: 'a', kind: 'bool', help: 'Archive mode (copy all uid/gid information)' },
    { name: 'follow-link', short: 'L', kind: 'bool', help: 'Always follow symbol link in SRC_PATH' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress progress output during copy' },
  ],
  async run(ctx, f, [a, b]) {
    const src = splitCpArg(a!);
    const dst = splitCpArg(b!);
    if (src.container && dst.container) throw new Error('copying between containers is not supported');
    if (!src.container && !dst.container) throw new Error('must specify at least one container source');
    if (src.container) {
      if (!src.path) throw new Error('source path cannot be empty');
      await copyFromContainer(ctx, src.container, src.path, dst.path);
    } else {
      if (!dst.path) throw new Error('destination path cannot be empty');
      await copyToContainer(ctx, src.path, dst.container!, dst.path, { copyUIDGID: f.bool('archive') });
    }
  },
};
