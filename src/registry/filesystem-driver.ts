// Filesystem StorageDriver: keys are files under one root directory. Atomic puts stage in
// <root>/_tmp (same filesystem) and rename into place; data is fsynced before it is renamed
// into a visible name, so a crash leaves the old bytes or the new, never a torn file.
import { open, mkdir, rename, readdir, rm, stat, utimes } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { join, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { notFound, invalidArgument } from '../core/errors.ts';
import { checkKey, type FileInfo, type StorageDriver } from './storage-driver.ts';

const TMP_DIR = '_tmp';
const READ_CHUNK = 1 << 20;
/** Buffers busy per send(): being read ahead, or draining into the socket. */
const SEND_RING = 6;
const POOL_MAX = 64;
/**
 * Reused 1 MiB send buffers. Fresh large buffers cost page faults and GC on every chunk; a
 * buffer comes back here only after the destination's write callback reported it consumed.
 */
const sendPool: Buffer[] = [];
const WRITE_BATCH = 1 << 20;

function isErrno(err: unknown, ...codes: string[]): boolean {
  return codes.includes((err as NodeJS.ErrnoException)?.code ?? '');
}

export class FilesystemDriver implements StorageDriver {
  readonly name = 'filesystem';
  readonly root: string;

  constructor(root: string) {
    this.root = root;
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, TMP_DIR), { recursive: true, mode: 0o700 });
  }

  #abs(path: string): string {
    checkKey(path);
    if (path === TMP_DIR || path.startsWith(TMP_DIR + '/')) throw invalidArgument(`invalid storage path ${JSON.stringify(path)}`);
    return join(this.root, path);
  }

  async getContent(path: string, maxBytes?: number): Promise<Buffer> {
    const abs = this.#abs(path);
    let fh;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) throw notFound(`${path}: not found`);
      throw err;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw notFound(`${path}: not found`);
      if (maxBytes !== undefined && st.size > maxBytes) throw invalidArgument(`${path}: ${st.size} bytes exceeds limit ${maxBytes}`);
      return await fh.readFile();
    } finally {
      await fh.close();
    }
  }

  async putContent(path: string, data: Uint8Array | string): Promise<void> {
    const abs = this.#abs(path);
    if (data.length === 0) {
      // Links are empty files: creating one is atomic by itself, no staging or fsync needed.
      await this.#createEmpty(abs);
      return;
    }
    const tmp = join(this.root, TMP_DIR, randomBytes(12).toString('hex'));
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(data);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      await rm(tmp, { force: true });
      throw err;
    }
    await fh.close();
    try {
      await this.#renameInto(tmp, abs);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async reader(path: string, start = 0, end?: number): Promise<Readable> {
    const abs = this.#abs(path);
    try {
      const fh = await open(abs, 'r');
      return fh.createReadStream({ start, end, highWaterMark: READ_CHUNK });
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw notFound(`${path}: not found`);
      throw err;
    }
  }

  async send(path: string, dest: Writable, start = 0, end?: number): Promise<void> {
    const abs = this.#abs(path);
    let fh;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw notFound(`${path}: not found`);
      throw err;
    }
    // Up to SEND_RING buffers are busy at once, either being read (several reads run in
    // parallel on the thread pool, ahead of the socket) or being written to dest.
    const free: Buffer[] = [];
    const reads: { buf: Buffer; len: number; read: Promise<number> }[] = [];
    let inFlight = 0;
    let stopped = false;
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const onClose = () => {
      stopped = true;
      poke();
    };
    dest.once('close', onClose);
    const wait = () => new Promise<void>((r) => (wake = r));
    let next = start;
    let last = -1;
    const issue = () => {
      while (!stopped && next <= last && reads.length + inFlight < SEND_RING) {
        const buf = free.pop() ?? sendPool.pop() ?? Buffer.allocUnsafeSlow(READ_CHUNK);
        const len = Math.min(READ_CHUNK, last - next + 1);
        const read = fh.read(buf, 0, len, next).then((r) => r.bytesRead);
        read.catch(() => {}); // observed when its turn comes
        reads.push({ buf, len, read });
        next += len;
      }
    };
    try {
      last = end ?? (await fh.stat()).size - 1;
      issue();
      while (reads.length > 0 && !stopped) {
        const r = reads.shift()!;
        const n = await r.read;
        if (n !== r.len) throw notFound(`${path}: truncated`);
        if (stopped) break;
        inFlight++;
        dest.write(n === r.buf.length ? r.buf : r.buf.subarray(0, n), () => {
          inFlight--;
          free.push(r.buf);
          issue();
          poke();
        });
        issue();
        while (reads.length === 0 && next <= last && !stopped) await wait();
      }
      while (inFlight > 0 && !stopped) await wait();
    } finally {
      stopped = true;
      dest.off('close', onClose);
      await Promise.allSettled(reads.map((r) => r.read));
      // Buffers still in flight on a closed destination are left to the GC.
      for (const b of [...free, ...reads.map((r) => r.buf)]) if (sendPool.length < POOL_MAX) sendPool.push(b);
      await fh.close();
    }
  }

  async append(path: string, source: AsyncIterable<Uint8Array>): Promise<number> {
    const abs = this.#abs(path);
    await mkdir(dirname(abs), { recursive: true });
    const fh = await open(abs, 'a', 0o600);
    let size = 0;
    let start = 0;
    try {
      start = size = (await fh.stat()).size;
      let batch: Uint8Array[] = [];
      let batched = 0;
      for await (const chunk of source) {
        batch.push(chunk);
        batched += chunk.byteLength;
        if (batched >= WRITE_BATCH) {
          await fh.writev(batch);
          size += batched;
          batch = [];
          batched = 0;
        }
      }
      if (batched > 0) {
        await fh.writev(batch);
        size += batched;
      }
      return size;
    } catch (err) {
      await fh.truncate(start).catch(() => {});
      throw err;
    } finally {
      await fh.close();
    }
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    try {
      const st = await stat(this.#abs(path));
      return { size: st.isDirectory() ? 0 : st.size, modTime: st.mtimeMs, isDir: st.isDirectory() };
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return undefined;
      throw err;
    }
  }

  async list(path: string): Promise<string[]> {
    try {
      return (await readdir(this.#abs(path))).sort();
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return [];
      throw err;
    }
  }

  async move(from: string, to: string): Promise<void> {
    const src = this.#abs(from);
    const dst = this.#abs(to);
    let fh;
    try {
      fh = await open(src, 'r');
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) throw notFound(`${from}: not found`);
      throw err;
    }
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.#renameInto(src, dst);
  }

  async delete(path: string): Promise<void> {
    await rm(this.#abs(path), { recursive: true, force: true });
  }

  async touch(path: string): Promise<boolean> {
    const now = new Date();
    try {
      await utimes(this.#abs(path), now, now);
      return true;
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return false;
      throw err;
    }
  }

  /** Test hook: age a file so gc treats it as old. */
  async setModTime(path: string, modTime: number): Promise<void> {
    const t = new Date(modTime);
    await utimes(this.#abs(path), t, t);
  }

  /** Leftovers of interrupted puts; only safe while no writer runs. */
  async sweepTmp(): Promise<void> {
    const dir = join(this.root, TMP_DIR);
    for (const n of await readdir(dir).catch(() => [] as string[])) await rm(join(dir, n), { force: true });
  }

  async #createEmpty(abs: string): Promise<void> {
    let fh;
    try {
      fh = await open(abs, 'w', 0o600);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      await mkdir(dirname(abs), { recursive: true });
      fh = await open(abs, 'w', 0o600);
    }
    await fh.close();
  }

  async #renameInto(src: string, dst: string): Promise<void> {
    try {
      await rename(src, dst);
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
      await mkdir(dirname(dst), { recursive: true });
      await rename(src, dst);
    }
  }
}

