// A Writable that copies every chunk into several writables, with backpressure from the slowest
// (a chunk is done when every target accepted it) and errors from any. It ends the targets when
// it ends; it does not wait for them to finish (callers await those themselves).
import { Writable } from 'node:stream';

export class Tee extends Writable {
  readonly #targets: Writable[];

  constructor(targets: Writable[]) {
    super({ highWaterMark: 1 << 20 });
    this.#targets = targets;
    for (const t of targets) t.on('error', (err) => this.destroy(err));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    let pending = 0;
    let done = false;
    const finish = () => {
      if (--pending === 0 && !done) {
        done = true;
        cb();
      }
    };
    pending++;
    for (const t of this.#targets) {
      if (t.destroyed) {
        done = true;
        cb(t.errored ?? new Error('tee target closed early'));
        return;
      }
      if (!t.write(chunk)) {
        pending++;
        const onDrain = () => {
          t.off('close', onDrain);
          t.off('drain', onDrain);
          finish();
        };
        t.once('drain', onDrain);
        t.once('close', onDrain);
      }
    }
    finish();
  }

  override _final(cb: (err?: Error | null) => void): void {
    for (const t of this.#targets) t.end();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (err) for (const t of this.#targets) if (!t.destroyed) t.destroy(err);
    cb(err);
  }
}
