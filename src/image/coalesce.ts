// Re-chunks a byte stream into pieces of at least `size` bytes (the last may be smaller): fewer,
// bigger writes into the content store and fewer thread-pool round trips downstream.
import { Transform, type TransformCallback } from 'node:stream';

export class Coalesce extends Transform {
  readonly #size: number;
  #parts: Buffer[] = [];
  #len = 0;

  constructor(size = 1 << 20) {
    super({ highWaterMark: 2 * size });
    this.#size = size;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#parts.push(chunk);
    this.#len += chunk.length;
    if (this.#len >= this.#size) {
      const out = this.#parts.length === 1 ? this.#parts[0]! : Buffer.concat(this.#parts, this.#len);
      this.#parts = [];
      this.#len = 0;
      cb(null, out);
      return;
    }
    cb();
  }

  override _flush(cb: TransformCallback): void {
    if (this.#len > 0) this.push(Buffer.concat(this.#parts, this.#len));
    cb();
  }
}
