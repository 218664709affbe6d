// A pass-through that hashes (sha256) and counts the bytes going through: the diffID of an
// uncompressed layer, computed in the same pass that applies it.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import type { Digest } from '../core/digest.ts';

export class HashCounter extends Transform {
  readonly #hash = createHash('sha256');
  bytes = 0;
  #digest: Digest | undefined;

  constructor() {
    super({ highWaterMark: 1 << 20 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length;
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.#digest = `sha256:${this.#hash.digest('hex')}`;
    cb();
  }

  /** Defined once the whole stream went through. */
  get digest(): Digest | undefined {
    return this.#digest;
  }
}
