// Layer decompression tuned for throughput: an adapter over src/layer/compression.ts (same magic
// sniffing, same zstd window bound, same output limit) that inflates in 1 MiB chunks instead of
// zlib's default 16 KiB. Pull and load are bound by the layer apply; with 16 KiB chunks a 200 MB
// layer costs ~13k thread-pool round trips and ~38k small write(2)s in the applier, which on a
// loaded 2-core machine is most of the wall time. Input is coalesced to 1 MiB for the same reason.
import { Duplex, PassThrough } from 'node:stream';
import { createGunzip, createZstdDecompress, constants as zc } from 'node:zlib';
import { invalidArgument } from '../core/errors.ts';
import { sniffCompression, type Compression } from '../layer/compression.ts';

const CHUNK = 1 << 20;

export function inflate(opts: { maxBytes?: number } = {}): Duplex {
  return new Inflate(opts.maxBytes ?? Number.POSITIVE_INFINITY);
}

class Inflate extends Duplex {
  #max: number;
  #produced = 0;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #inner: Duplex | undefined;
  compression: Compression | undefined;

  constructor(max: number) {
    // A deep read-ahead (16 MiB of tar): the inflater keeps working while the applier is busy,
    // and the applier finds data ready when the inflater's thread is not scheduled.
    super({ readableHighWaterMark: 16 * CHUNK, writableHighWaterMark: 4 * CHUNK });
    this.#max = max;
  }

  #start(head: Buffer): Duplex {
    this.compression = sniffCompression(head);
    const inner: Duplex =
      this.compression === 'gzip'
        ? createGunzip({ chunkSize: CHUNK })
        : this.compression === 'zstd'
          ? createZstdDecompress({ chunkSize: CHUNK, params: { [zc.ZSTD_d_windowLogMax]: 27 } })
          : new PassThrough({ highWaterMark: CHUNK });
    inner.on('data', (chunk: Buffer) => {
      this.#produced += chunk.length;
      if (this.#produced > this.#max) {
        this.destroy(invalidArgument(`layer exceeds the limit of ${this.#max} uncompressed bytes`));
        return;
      }
      if (!this.push(chunk)) inner.pause();
    });
    inner.on('end', () => this.push(null));
    inner.on('error', (err) => this.destroy(invalidArgument(`layer decompression failed: ${err.message}`, err)));
    this.#inner = inner;
    return inner;
  }

  #feed(buf: Buffer, cb: (err?: Error | null) => void): void {
    const inner = this.#inner ?? this.#start(buf);
    if (inner.write(buf)) cb();
    else inner.once('drain', () => cb());
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#pending.push(chunk);
    this.#pendingLen += chunk.length;
    if (this.#pendingLen < CHUNK) return cb();
    const buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLen);
    this.#pending = [];
    this.#pendingLen = 0;
    this.#feed(buf, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const end = () => {
      this.#inner!.end();
      cb();
    };
    const buf = Buffer.concat(this.#pending, this.#pendingLen);
    this.#pending = [];
    this.#pendingLen = 0;
    if (!this.#inner) this.#start(buf);
    if (buf.length === 0) return end();
    this.#feed(buf, (err) => (err ? cb(err) : end()));
  }

  override _read(): void {
    this.#inner?.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#inner?.destroy();
    cb(err);
  }
}
