// The registry's storage driver contract (CNCF Distribution's driver, trimmed to what berth's
// registry needs). Paths are '/'-separated keys relative to the driver's root, drawn in
// paths.ts and built nowhere else; a driver refuses keys with empty, '.' or '..' segments.
// Every implementation runs the one conformance suite in test/unit/registry-storage.test.ts.
import type { Readable, Writable } from 'node:stream';
import { invalidArgument } from '../core/errors.ts';

export interface FileInfo {
  size: number;
  /** Milliseconds since the epoch. */
  modTime: number;
  isDir: boolean;
}

export interface StorageDriver {
  readonly name: string;
  /** Whole content. NotFound when missing; InvalidArgument when larger than maxBytes. */
  getContent(path: string, maxBytes?: number): Promise<Buffer>;
  /** Replace content atomically: a reader sees the old bytes or the new, never a torn file. */
  putContent(path: string, data: Uint8Array | string): Promise<void>;
  /** A stream of bytes [start, end] (inclusive end, like fs). NotFound when missing. */
  reader(path: string, start?: number, end?: number): Promise<Readable>;
  /**
   * Write bytes [start, end] (inclusive) of `path` to `dest` and resolve once dest accepted
   * them all (or dest closed early). The fast path for serving blobs. NotFound when missing.
   */
  send(path: string, dest: Writable, start?: number, end?: number): Promise<void>;
  /**
   * Append all that `source` yields to `path` (created if missing) and return the new size.
   * All or nothing: when the source fails, the file is cut back to its previous size.
   */
  append(path: string, source: AsyncIterable<Uint8Array>): Promise<number>;
  /** undefined when missing. */
  stat(path: string): Promise<FileInfo | undefined>;
  /** Child names of a directory, sorted; [] when missing. */
  list(path: string): Promise<string[]>;
  /**
   * Atomic rename, replacing `to`; the content of `from` is made durable first. NotFound when
   * `from` is missing.
   */
  move(from: string, to: string): Promise<void>;
  /** Remove a file or a whole tree; no error when missing. */
  delete(path: string): Promise<void>;
  /** Set the modification time to now (gc grace periods); false when missing. */
  touch(path: string): Promise<boolean>;
}

/** Validate a driver key; returns its segments. */
export function checkKey(path: string): string[] {
  const parts = path.split('/');
  for (const p of parts) {
    if (p === '' || p === '.' || p === '..' || p.includes('\0')) throw invalidArgument(`invalid storage path ${JSON.stringify(path)}`);
  }
  return parts;
}
