// A pass-through that checks bytes against a descriptor: it fails as soon as more than `size`
// bytes pass, and at the end unless exactly `size` bytes hashed to `digest`. The error is
// DataLoss and its message names the digest, so a bad blob can never be mistaken for a good one
// by a consumer that only sees the stream (e.g. layer apply running while the download runs).
import { Transform, type TransformCallback } from 'node:stream';
import { hasherFor, digestAlgorithm, parseDigest, type Digest } from '../core/digest.ts';
import { dataLoss } from '../core/errors.ts';

export interface VerifyTarget {
  digest: Digest;
  /** Checked when given (descriptors always carry it). */
  size?: number;
}

export class VerifyingStream extends Transform {
  readonly expected: VerifyTarget;
  #hash;
  #n = 0;

  constructor(expected: VerifyTarget) {
    super();
    parseDigest(expected.digest);
    this.expected = expected;
    this.#hash = hasherFor(expected.digest);
  }

  /** Bytes seen so far. */
  get bytes(): number {
    return this.#n;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.#n += chunk.length;
    const { size, digest } = this.expected;
    if (size !== undefined && this.#n > size) {
      cb(dataLoss(`blob ${digest}: size exceeds ${size} bytes, digest not verified`));
      return;
    }
    this.#hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    const { size, digest } = this.expected;
    if (size !== undefined && this.#n !== size) {
      cb(dataLoss(`blob ${digest}: size mismatch: got ${this.#n} bytes, want ${size}; digest not verified`));
      return;
    }
    const got = `${digestAlgorithm(digest)}:${this.#hash.digest('hex')}`;
    if (got !== digest) {
      cb(dataLoss(`blob digest mismatch: got ${got}, want ${digest}`));
      return;
    }
    cb();
  }
}

/** A Transform that passes bytes through and fails (DataLoss, 'digest') unless they match `desc`. */
export function verifyingStream(desc: VerifyTarget): VerifyingStream {
  return new VerifyingStream(desc);
}
