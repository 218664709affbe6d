// A FIFO async mutex: the image index and the garbage collector each serialize on one.
export class Mutex {
  #tail: Promise<void> = Promise.resolve();

  /** Run `fn` alone; later callers wait for it (its failure does not poison the queue). */
  run<T>(fn: () => Promise<T> | T): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.then(() => undefined, () => undefined);
    return result;
  }
}
