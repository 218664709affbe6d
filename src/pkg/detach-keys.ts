// Docker's detach keys: a byte sequence on an attached stdin that ends the attach and leaves the
// container running (`detachKeys` on attach, `DetachKeys` on exec create; default ctrl-p,ctrl-q).
// Bytes that could start the sequence are held back until it is complete (detach, nothing of it
// reaches the container) or broken (they are passed on), as moby's term.EscapeProxy does.
// Shared by berthd's attach/exec streams and the berth CLI's terminal proxy.
import { invalidArgument } from '../core/errors.ts';

export const DEFAULT_DETACH_KEYS = 'ctrl-p,ctrl-q';

/** "ctrl-p,ctrl-q" -> [0x10, 0x11]; "a,ctrl-@" -> [0x61, 0x00]. Docker's term.ToBytes. */
export function parseDetachKeys(spec: string, what = 'detach'): Buffer {
  const bad = () => invalidArgument(`Invalid ${what} keys (${spec}) provided`);
  const out: number[] = [];
  for (const raw of spec.split(',')) {
    const k = raw.trim();
    if (k.length > 1 && k.toLowerCase().startsWith('ctrl-')) {
      const c = k.slice(5);
      if (c.length !== 1) throw bad();
      const lc = c.toLowerCase();
      if (lc >= 'a' && lc <= 'z') out.push(lc.charCodeAt(0) - 0x60);
      else if ('@[\\]^_'.includes(c)) out.push(c.charCodeAt(0) - 0x40);
      else throw bad();
    } else if (k.length === 1) {
      out.push(k.charCodeAt(0));
    } else {
      throw bad();
    }
  }
  if (out.length === 0) throw bad();
  return Buffer.from(out);
}

/** Scans stdin chunks for the detach sequence. */
export class DetachScanner {
  #keys: Buffer;
  #held = 0;

  constructor(keys: Buffer) {
    this.#keys = keys;
  }

  /**
   * The bytes to pass on for this chunk, and whether the sequence completed (then nothing after
   * it is passed on: the attach ends).
   */
  push(chunk: Buffer): { data: Buffer; detach: boolean } {
    const out: number[] = [];
    for (const b of chunk) {
      if (b === this.#keys[this.#held]) {
        this.#held++;
        if (this.#held === this.#keys.length) {
          this.#held = 0;
          return { data: Buffer.from(out), detach: true };
        }
        continue;
      }
      // Broken sequence: release what was held, then look at this byte afresh.
      for (let i = 0; i < this.#held; i++) out.push(this.#keys[i]!);
      this.#held = 0;
      if (b === this.#keys[0]) {
        this.#held = 1;
        if (this.#keys.length === 1) return { data: Buffer.from(out), detach: true };
      } else out.push(b);
    }
    return { data: Buffer.from(out), detach: false };
  }
}
