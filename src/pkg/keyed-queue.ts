// Per-key serial execution: work queued under one key runs one at a time, in the order it was
// queued, whether the work before it succeeded or failed; different keys run independently.
// (One container's operations, one snapshot's, one network's, one record's writes.)
export class KeyedQueue {
  /** Per key, a promise that settles (never rejects) when the last queued work has. */
  readonly #tails = new Map<string, Promise<void>>();

  /** Run `fn` once everything queued under `key` before it has settled. */
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.#tails.get(key) ?? Promise.resolve()).then(fn);
    const tail = next.then(
      () => {},
      () => {},
    );
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return next;
  }

  /** Settles once everything queued under `key` so far has. */
  idle(key: string): Promise<void> {
    return this.#tails.get(key) ?? Promise.resolve();
  }

  /** Settles once everything queued under any key so far has. */
  async idleAll(): Promise<void> {
    await Promise.all(this.#tails.values());
  }
}
