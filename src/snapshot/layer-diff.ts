// Produce tar streams from directories:
//  - layerDiff(upper): an OCI layer from an active snapshot's overlay upper dir (a build step's
//    result, `docker commit`). Overlay whiteouts (c 0:0 devices) become `.wh.<name>` entries and
//    opaque directories (trusted.overlay.opaque=y, or user.overlay.opaque with userxattr) get a
//    `.wh..wh..opq` entry right after the directory.
//  - exportTree(dir): a whole tree as it is (`docker export` of a mounted rootfs, a flattened
//    image).
// Entries come in byte-sorted pre-order with numeric owners, modes, mtimes (whole seconds),
// xattrs as SCHILY.xattr PAX records and hardlinks as link entries, so the same content always
// gives the same bytes and so the same diffID. The tree must be quiescent (container stopped or
// paused): a file that changes size while it is read fails the stream, and files are opened
// with O_NOFOLLOW, but a running container could still swap a parent directory for a symlink
// between the walk and the read (CVE-2018-15664 class), so callers pause or stop it first.
//
// Node cannot read xattrs; one `getfattr -R` through the Host collects them for the whole tree.
// Overlay's own attributes are never copied into a tar; a redirect_dir upper (renamed lower
// directories recorded as trusted.overlay.redirect) cannot be expressed as a plain diff and is
// refused rather than producing an incomplete layer.
import { closeSync, createReadStream, fstatSync, lstatSync, openSync, readdirSync, readlinkSync, readSync, constants as fsc, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { once } from 'node:events';
import { Readable } from 'node:stream';
import type { Pack } from 'tar-stream';
import { failedPrecondition } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { binaryPaxPack, XATTR_PREFIX } from '../layer/tar-pax.ts';
import { WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from '../layer/tar-apply.ts';

export interface PackTreeOptions {
  host: Host;
  signal?: AbortSignal;
}

/** OCI layer tar of an overlay upper dir. */
export function layerDiff(upper: string, opts: PackTreeOptions): Readable {
  return packTree(upper, opts, true);
}

/** Tar of a whole directory tree, as is. */
export function exportTree(dir: string, opts: PackTreeOptions): Readable {
  return packTree(dir, opts, false);
}

type Xattrs = Map<string, Map<string, Buffer>>;

function packTree(dir: string, opts: PackTreeOptions, overlay: boolean): Readable {
  const pack = binaryPaxPack();
  const produce = async (): Promise<void> => {
    const xattrs = await readXattrs(opts.host, dir);
    const hardlinks = new Map<string, string>();
    for (const { rel, abs, st } of walk(dir)) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
      const attrs = xattrs.get(abs);
      if (overlay && attrs?.has('trusted.overlay.redirect')) {
        throw failedPrecondition(`cannot diff ${rel}: overlay redirect_dir is in use`);
      }
      const pax = paxOf(attrs);
      const base = {
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        mtime: st.mtime,
        ...(pax ? { pax } : {}),
      };
      if (st.isDirectory()) {
        await add(pack, { ...base, name: `${rel}/`, type: 'directory' });
        const opaque = attrs?.get('trusted.overlay.opaque') ?? attrs?.get('user.overlay.opaque');
        if (overlay && opaque?.toString() === 'y') {
          await add(pack, { name: `${rel}/${WHITEOUT_OPAQUE}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: st.mtime, size: 0 });
        }
      } else if (st.isCharacterDevice() && overlay && st.rdev === 0) {
        const name = posix.join(posix.dirname(rel), WHITEOUT_PREFIX + posix.basename(rel));
        await add(pack, { name, type: 'file', mode: 0, uid: 0, gid: 0, mtime: st.mtime, size: 0 });
      } else if (st.isFile()) {
        const id = `${st.dev}:${st.ino}`;
        const first = st.nlink > 1 ? hardlinks.get(id) : undefined;
        if (first !== undefined) {
          await add(pack, { ...base, name: rel, type: 'link', linkname: first });
        } else {
          if (st.nlink > 1) hardlinks.set(id, rel);
          await addFile(pack, { ...base, name: rel, type: 'file', size: st.size }, abs);
        }
      } else if (st.isSymbolicLink()) {
        await add(pack, { ...base, name: rel, type: 'symlink', linkname: readlinkSync(abs) });
      } else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const type = st.isCharacterDevice() ? 'character-device' : 'block-device';
        await add(pack, { ...base, name: rel, type, devmajor: major(st.rdev), devminor: minor(st.rdev) });
      } else if (st.isFIFO()) {
        await add(pack, { ...base, name: rel, type: 'fifo' });
      }
      // Sockets are not archived (as in Docker).
    }
  };
  produce().then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return Readable.from(pack as unknown as AsyncIterable<Buffer>, { objectMode: false });
}

interface Entry {
  rel: string;
  abs: string;
  st: Stats;
}

/**
 * Byte-sorted pre-order walk below dir (dir itself excluded). Metadata calls are synchronous:
 * microseconds each, where a thread-pool round trip per file dominated on a loaded host.
 */
function* walk(dir: string, prefix = ''): Generator<Entry> {
  const names = readdirSync(dir).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const abs = posix.join(dir, name);
    const rel = prefix === '' ? name : `${prefix}/${name}`;
    const st = lstatSync(abs);
    yield { rel, abs, st };
    if (st.isDirectory()) yield* walk(abs, rel);
  }
}

/** Files up to this size are read in one synchronous call instead of a stream. */
const SMALL_FILE = 1024 * 1024;

/** Read exactly `size` bytes of a small regular file (never following a symlink swapped in). */
function readSmall(abs: string, size: number): Buffer {
  const fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${abs}: not a regular file any more`);
    const buf = Buffer.allocUnsafe(size);
    let off = 0;
    while (off < size) {
      const n = readSync(fd, buf, off, size - off, off);
      if (n === 0) throw new Error(`${abs}: file shrank while it was archived`);
      off += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

type PackEntry = Parameters<Pack['entry']>[0] & { pax?: Record<string, string> };

function add(pack: Pack, header: PackEntry): Promise<void> {
  return new Promise((resolve, reject) => {
    const cb = (err?: Error | null) => (err ? reject(err) : resolve());
    // A file entry (whiteouts, empty files) needs its (empty) body to complete.
    if (header.type === 'file') pack.entry(header, Buffer.alloc(0), cb);
    else pack.entry(header, cb);
  });
}

async function addFile(pack: Pack, header: PackEntry & { size: number }, abs: string): Promise<void> {
  if (header.size <= SMALL_FILE) {
    const body = readSmall(abs, header.size);
    return new Promise((resolve, reject) => {
      pack.entry(header, body, (err) => (err ? reject(err) : resolve()));
    });
  }
  let sink: ReturnType<Pack['entry']> | undefined;
  const done = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  if (!sink) throw new Error('tar entry not opened');
  if (header.size > 0) {
    // Read exactly the size announced in the header; a shrinking file fails the entry.
    const fd = openSync(abs, fsc.O_RDONLY | fsc.O_NOFOLLOW);
    for await (const chunk of createReadStream(abs, { fd, autoClose: true, start: 0, end: header.size - 1 })) {
      if (!sink.write(chunk as Buffer)) await once(sink as unknown as NodeJS.EventEmitter, 'drain');
    }
  }
  (sink as unknown as NodeJS.WritableStream).end();
  await done;
}

/** SCHILY.xattr PAX records for a path's xattrs, overlay and host-specific ones left out. */
function paxOf(attrs: Map<string, Buffer> | undefined): Record<string, string> | undefined {
  if (!attrs) return undefined;
  let pax: Record<string, string> | undefined;
  for (const [name, value] of attrs) {
    if (name.startsWith('trusted.overlay.') || name.startsWith('user.overlay.') || name === 'security.selinux') continue;
    pax ??= {};
    pax[XATTR_PREFIX + name] = value.toString('latin1');
  }
  return pax;
}

/** All xattrs under dir (no dereference), by absolute path. */
export async function readXattrs(host: Host, dir: string): Promise<Xattrs> {
  const res = await host.run('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', '--', dir], { allowFailure: true });
  return parseGetfattr(res.stdout);
}

/** Parse `getfattr -d -e hex --absolute-names` output (file names are octal-escaped). */
export function parseGetfattr(out: string): Xattrs {
  const result: Xattrs = new Map();
  let cur: Map<string, Buffer> | undefined;
  for (const line of out.split('\n')) {
    if (line.startsWith('# file: ')) {
      const path = unescapeOctal(line.slice('# file: '.length));
      cur = new Map();
      result.set(path, cur);
      continue;
    }
    if (!cur || line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) {
      cur.set(line, Buffer.alloc(0));
      continue;
    }
    const name = line.slice(0, eq);
    const raw = line.slice(eq + 1);
    let value: Buffer;
    if (raw.startsWith('0x')) value = Buffer.from(raw.slice(2), 'hex');
    else if (raw.startsWith('0s')) value = Buffer.from(raw.slice(2), 'base64');
    else value = Buffer.from(raw.replace(/^"|"$/g, ''), 'utf8');
    cur.set(name, value);
  }
  return result;
}

function unescapeOctal(s: string): string {
  if (!s.includes('\\')) return s;
  const bytes: number[] = [];
  const src = Buffer.from(s, 'utf8');
  for (let i = 0; i < src.length; i++) {
    const c = src[i] as number;
    if (c === 0x5c && i + 3 < src.length && /^[0-7]{3}$/.test(src.toString('latin1', i + 1, i + 4))) {
      bytes.push(Number.parseInt(src.toString('latin1', i + 1, i + 4), 8));
      i += 3;
    } else {
      bytes.push(c);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Linux dev_t encoding (glibc gnu_dev_major/minor), for the low 32 bits Node reports exactly. */
function major(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & ~0xff);
}
