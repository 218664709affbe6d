// In-memory StorageDriver for tests: a flat map of file keys; directories exist implicitly
// while a file lives below them.
import { Readable, type Writable } from 'node:stream';
import { notFound, invalidArgument } from '../core/errors.ts';
import { checkKey, type FileInfo, type StorageDriver } from './storage-driver.ts';

interface Entry {
  data: Buffer;
  modTime: number;
}

export class MemoryDriver implements StorageDriver {
  readonly name = 'inmemory';
  #files = new Map<string, Entry>();

  async getContent(path: string, maxBytes?: number): Promise<Buffer> {
    checkKey(path);
    const e = this.#files.get(path);
    if (!e) throw notFound(`${path}: not found`);
    if (maxBytes !== undefined && e.data.length > maxBytes) throw invalidArgument(`${path}: ${e.data.length} bytes exceeds limit ${maxBytes}`);
    return Buffer.from(e.data);
  }

  async putContent(path: string, data: Uint8Array | string): Promise<void> {
    checkKey(path);
    this.#assertNotDir(path);
    this.#files.set(path, { data: Buffer.from(data), modTime: Date.now() });
  }

  async reader(path: string, start = 0, end?: number): Promise<Readable> {
    checkKey(path);
    const e = this.#files.get(path);
    if (!e) throw notFound(`${path}: not found`);
    const last = end === undefined ? e.data.length : end + 1;
    return Readable.from([e.data.subarray(start, last)], { objectMode: false });
  }

  async send(path: string, dest: Writable, start = 0, end?: number): Promise<void> {
    checkKey(path);
    const e = this.#files.get(path);
    if (!e) throw notFound(`${path}: not found`);
    const data = e.data.subarray(start, end === undefined ? e.data.length : end + 1);
    await new Promise<void>((resolve) => {
      dest.once('close', resolve);
      dest.write(data, () => {
        dest.off('close', resolve);
        resolve();
      });
    });
  }

  async append(path: string, source: AsyncIterable<Uint8Array>): Promise<number> {
    checkKey(path);
    this.#assertNotDir(path);
    const parts: Buffer[] = [];
    for await (const chunk of source) parts.push(Buffer.from(chunk));
    // All or nothing: commit only after the source ended cleanly.
    const old = this.#files.get(path)?.data ?? Buffer.alloc(0);
    const data = Buffer.concat([old, ...parts]);
    this.#files.set(path, { data, modTime: Date.now() });
    return data.length;
  }

  async stat(path: string): Promise<FileInfo | undefined> {
    checkKey(path);
    const e = this.#files.get(path);
    if (e) return { size: e.data.length, modTime: e.modTime, isDir: false };
    const prefix = path + '/';
    let modTime = -1;
    for (const [k, v] of this.#files) if (k.startsWith(prefix)) modTime = Math.max(modTime, v.modTime);
    return modTime < 0 ? undefined : { size: 0, modTime, isDir: true };
  }

  async list(path: string): Promise<string[]> {
    checkKey(path);
    const prefix = path + '/';
    const names = new Set<string>();
    for (const k of this.#files.keys()) {
      if (k.startsWith(prefix)) names.add(k.slice(prefix.length).split('/')[0]!);
    }
    return [...names].sort();
  }

  async move(from: string, to: string): Promise<void> {
    checkKey(from);
    checkKey(to);
    const e = this.#files.get(from);
    if (!e) throw notFound(`${from}: not found`);
    this.#files.delete(from);
    this.#files.set(to, e);
  }

  async delete(path: string): Promise<void> {
    checkKey(path);
    this.#files.delete(path);
    const prefix = path + '/';
    for (const k of [...this.#files.keys()]) if (k.startsWith(prefix)) this.#files.delete(k);
  }

  async touch(path: string): Promise<boolean> {
    checkKey(path);
    const e = this.#files.get(path);
    if (!e) return false;
    e.modTime = Date.now();
    return true;
  }

  /** Test hook: age a file so gc treats it as old. */
  setModTime(path: string, modTime: number): void {
    const e = this.#files.get(path);
    if (e) e.modTime = modTime;
  }

  #assertNotDir(path: string): void {
    const prefix = path + '/';
    for (const k of this.#files.keys()) if (k.startsWith(prefix)) throw invalidArgument(`${path}: is a directory`);
  }
}
