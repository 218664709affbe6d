// The client side of a build context: walk a directory, drop what .dockerignore excludes
// (the Dockerfile and .dockerignore are always sent, as the docker CLI does), and stream it as
// a tar. Used by `berth build`, the tests and the benchmark.
import { createReadStream } from 'node:fs';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join, posix, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { pack as tarPack } from 'tar-stream';
import { Dockerignore } from './dockerignore.ts';

export interface PackOptions {
  /** Dockerfile path relative to the context (default "Dockerfile"). */
  dockerfile?: string;
}

/** Paths (relative, slash-separated, sorted) that a context walk would send. */
export async function contextFiles(dir: string, opts: PackOptions = {}): Promise<string[]> {
  const root = resolve(dir);
  const dockerfile = posix.normalize(opts.dockerfile ?? 'Dockerfile');
  let di = new Dockerignore([]);
  try {
    di = Dockerignore.parse(await readFile(join(root, '.dockerignore'), 'utf8'));
  } catch {
    /* no .dockerignore */
  }
  const always = new Set([dockerfile, '.dockerignore']);
  const out: string[] = [];
  const walk = async (rel: string) => {
    const ents = await readdir(rel === '' ? root : join(root, rel), { withFileTypes: true });
    ents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of ents) {
      const p = rel === '' ? e.name : `${rel}/${e.name}`;
      const excluded = !always.has(p) && di.excludes(p);
      if (e.isDirectory()) {
        if (excluded && di.canSkipDir(p)) continue;
        if (!excluded) out.push(p);
        await walk(p);
        continue;
      }
      if (!excluded) out.push(p);
    }
  };
  await walk('');
  // A directory excluded but with re-included children is still needed as their parent.
  return out;
}

/** Stream the context of `dir` as an uncompressed tar. */
export function packContext(dir: string, opts: PackOptions = {}): Readable {
  const root = resolve(dir);
  const pack = tarPack();
  void (async () => {
    try {
      for (const p of await contextFiles(root, opts)) {
        const full = join(root, p);
        const st = await lstat(full);
        const base = { name: p, mode: st.mode & 0o7777, mtime: st.mtime, uid: 0, gid: 0 };
        if (st.isDirectory()) await entry(pack, { ...base, type: 'directory' });
        else if (st.isSymbolicLink()) await entry(pack, { ...base, type: 'symlink', linkname: await readlink(full) });
        else if (st.isFile()) {
          await new Promise<void>((res, rej) => {
            const ws = pack.entry({ ...base, type: 'file', size: st.size }, (err) => (err ? rej(err) : res()));
            createReadStream(full).on('error', rej).pipe(ws as unknown as NodeJS.WritableStream);
          });
        }
      }
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
    }
  })();
  return pack as unknown as Readable;
}

function entry(pack: ReturnType<typeof tarPack>, header: Parameters<ReturnType<typeof tarPack>['entry']>[0]): Promise<void> {
  return new Promise((res, rej) => pack.entry(header, (err) => (err ? rej(err) : res())));
}


