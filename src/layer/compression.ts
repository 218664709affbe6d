// Layer blob decompression. Layers arrive gzip-compressed (Docker and OCI `+gzip`), zstd-
// compressed (OCI `+zstd`) or plain; registries and `docker load` archives do not always label
// them truthfully, so the stream is sniffed by its magic bytes rather than trusted by media type.
// Output is bounded on request: a 1000x gzip or zstd bomb fails instead of filling the disk.
import { Duplex, PassThrough, type Readable } from 'node:stream';
import { createGunzip, createZstdDecompress, constants as zc } from 'node:zlib';
import { invalidArgument } from '../core/errors.ts';
import { MediaType } from '../core/oci.ts';

export type Compression = 'gzip' | 'zstd' | 'none';

const GZIP_MAGIC = [0x1f, 0x8b];
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/** Compression implied by a layer media type; undefined when the type is not a layer type. */
export function compressionOf(mediaType: string): Compression | undefined {
  switch (mediaType) {
    case MediaType.OciLayer:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar':
    case 'application/vnd.docker.image.rootfs.diff.tar':
      return 'none';
    case MediaType.OciLayerGzip:
    case MediaType.DockerLayerGzip:
    case MediaType.DockerForeignLayerGzip:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip':
      return 'gzip';
    case MediaType.OciLayerZstd:
    case 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd':
      return 'zstd';
    default:
      return undefined;
  }
}

/** Compression recognised from the first bytes of a blob (at least 4 bytes for zstd). */
export function sniffCompression(head: Uint8Array): Compression {
  if (head.length >= 2 && head[0] === GZIP_MAGIC[0] && head[1] === GZIP_MAGIC[1]) return 'gzip';
  if (head.length >= 4 && ZSTD_MAGIC.every((b, i) => head[i] === b)) return 'zstd';
  return 'none';
}

export interface DecompressOptions {
  /** Fail once more than this many bytes have been produced (decompression bombs). */
  maxBytes?: number;
  /**
   * Inflate in chunks of this size (zlib's default is 16 KiB), coalesce input to it, and read
   * ahead 16 chunks. Pull and load use LAYER_CHUNK: they are bound by the layer apply, and with
   * 16 KiB chunks a 200 MB layer costs ~13k thread-pool round trips and ~38k small write(2)s in
   * the applier, most of the wall time on a loaded 2-core machine.
   */
  chunkSize?: number;
}

/** The chunk size pull, load and import inflate layers with. */
export const LAYER_CHUNK = 1 << 20;

/**
 * A duplex that takes a (possibly) compressed layer and emits the uncompressed tar. The format is
 * decided from the first 4 bytes. Backpressure is end to end: the inner inflater pauses while the
 * consumer is slow, so memory stays bounded by the read-ahead.
 */
export function autoDecompress(opts: DecompressOptions = {}): Duplex {
  return new AutoDecompress(opts.maxBytes ?? Number.POSITIVE_INFINITY, opts.chunkSize);
}

class AutoDecompress extends Duplex {
  #max: number;
  #chunk: number | undefined;
  #produced = 0;
  #pending: Buffer[] = [];
  #pendingLen = 0;
  #inner: Duplex | undefined;

  constructor(max: number, chunk: number | undefined) {
    super(chunk ? { readableHighWaterMark: 16 * chunk, writableHighWaterMark: 4 * chunk } : {});
    this.#max = max;
    this.#chunk = chunk;
  }

  /** Which format was detected; undefined until the first 4 bytes (or the end) arrived. */
  compression: Compression | undefined;

  #start(head: Buffer): Duplex {
    this.compression = sniffCompression(head);
    const size = this.#chunk ? { chunkSize: this.#chunk } : {};
    const inner: Duplex =
      this.compression === 'gzip'
        ? createGunzip(size)
        : this.compression === 'zstd'
          ? // 2^27 is zstd's own default window limit; stated here so a huge-window frame is refused.
            createZstdDecompress({ ...size, params: { [zc.ZSTD_d_windowLogMax]: 27 } })
          : new PassThrough(this.#chunk ? { highWaterMark: this.#chunk } : {});
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

  #takePending(): Buffer {
    const buf = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingLen);
    this.#pending = [];
    this.#pendingLen = 0;
    return buf;
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // Hold input until the sniff has its 4 bytes and, with a chunk size, a whole chunk is there.
    const want = Math.max(this.#inner ? 0 : 4, this.#chunk ?? 0);
    this.#pending.push(chunk);
    this.#pendingLen += chunk.length;
    if (this.#pendingLen < want) return cb();
    this.#feed(this.#takePending(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    const buf = this.#takePending();
    const end = () => {
      this.#inner!.end();
      cb();
    };
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

/** Convenience: decompress a whole readable (tests, `docker load`). */
export function decompressed(src: Readable, opts: DecompressOptions = {}): Duplex {
  const d = autoDecompress(opts);
  src.on('error', (err) => d.destroy(err));
  src.pipe(d);
  return d;
}
