// A small pool of worker threads that do a layer transfer's non-apply work (download, digest and
// size verification, blob commit, inflate, diffID hash; see layer-worker.ts), so berthd's main
// thread only parses tars and writes files. On a busy machine every runnable thread gets its own
// share of the CPU: a pull spread over the main thread, the workers and libuv's pool gets
// several shares instead of one. The workers start with the daemon (their start-up, ~0.5 s of
// module loading, is not paid by the first pull) and never keep the process alive.
import { Worker } from 'node:worker_threads';
import { Readable } from 'node:stream';
import type { Digest } from '../core/digest.ts';
import { BerthError, type ErrorKind } from '../core/errors.ts';
import type { Descriptor } from '../core/oci.ts';
import type { Credentials } from '../distribution/credentials.ts';

export interface LayerJob {
  id: number;
  contentRoot: string;
  desc: Descriptor;
  source: 'http' | 'file';
  /** For source http. */
  repo?: { domain: string; path: string };
  auth?: Credentials;
  registry?: { insecureRegistries: readonly string[]; userAgent: string };
  /** Write the blob into the content store (verified). */
  store: boolean;
  /** Inflate, hash and stream the tar back. */
  tar: boolean;
  maxBytes?: number;
}

export type WorkerMessage =
  | { type: 'progress'; id: number; bytes: number }
  | { type: 'stored'; id: number }
  | { type: 'tar'; id: number; chunk: ArrayBuffer }
  | { type: 'done'; id: number; diffId?: Digest; bytes?: number }
  | { type: 'error'; id: number; kind: ErrorKind; message: string };

export interface LayerTransfer {
  /** The uncompressed tar (when the job asked for it). */
  tar: Readable | undefined;
  /** Resolves when the blob is committed to the content store (store jobs). */
  stored: Promise<void>;
  /** Resolves when everything was sent; diffID of the tar when one was produced. */
  done: Promise<{ diffId?: Digest; bytes?: number }>;
  abort(): void;
}

interface Pending {
  tar: Readable | undefined;
  onProgress: ((bytes: number) => void) | undefined;
  stored: { resolve(): void; reject(e: Error): void };
  done: { resolve(v: { diffId?: Digest; bytes?: number }): void; reject(e: Error): void };
  worker: Worker;
}

export class LayerWorkers {
  readonly #size: number;
  #workers: Worker[] = [];
  #busy = new Map<Worker, number>();
  #jobs = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;

  constructor(size = 2) {
    this.#size = size;
  }

  /** Start the workers; resolves when they are ready. */
  async start(): Promise<void> {
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < this.#size; i++) {
      const w = new Worker(new URL('./layer-worker.ts', import.meta.url));
      w.unref();
      this.#busy.set(w, 0);
      ready.push(new Promise((resolve, reject) => {
        const onMsg = (m: { type: string }) => {
          if (m.type === 'ready') {
            w.off('message', onMsg);
            resolve();
          }
        };
        w.on('message', onMsg);
        w.once('error', reject);
      }));
      w.on('message', (m: WorkerMessage | { type: 'ready' }) => this.#onMessage(w, m));
      w.on('error', (err) => this.#fail(w, err));
      w.on('exit', () => this.#fail(w, new Error('layer worker exited')));
      this.#workers.push(w);
    }
    await Promise.all(ready);
  }

  get available(): boolean {
    return !this.#closed && this.#workers.length > 0;
  }

  run(job: Omit<LayerJob, 'id'>, onProgress?: (bytes: number) => void): LayerTransfer {
    const id = this.#nextId++;
    // The least busy worker.
    const worker = [...this.#busy.entries()].sort((a, b) => a[1] - b[1])[0]![0];
    this.#busy.set(worker, (this.#busy.get(worker) ?? 0) + 1);
    let paused = false;
    const tar = job.tar
      ? new Readable({
          highWaterMark: 8 << 20,
          read: () => {
            if (paused) {
              paused = false;
              worker.postMessage({ type: 'resume', id });
            }
          },
          destroy: (err, cb) => {
            if (this.#jobs.has(id)) worker.postMessage({ type: 'abort', id });
            cb(err);
          },
        })
      : undefined;
    const stored = deferred<void>();
    const done = deferred<{ diffId?: Digest; bytes?: number }>();
    stored.promise.catch(() => {});
    done.promise.catch(() => {});
    const pending: Pending = { tar, onProgress, stored, done, worker };
    this.#jobs.set(id, pending);
    if (tar) {
      // Backpressure: pause the worker's sender while our buffer is full.
      (tar as Readable & { _berthPause?: () => void })._berthPause = () => {
        if (!paused) {
          paused = true;
          worker.postMessage({ type: 'pause', id });
        }
      };
    }
    worker.postMessage({ type: 'job', job: { ...job, id } });
    return {
      tar,
      stored: stored.promise,
      done: done.promise,
      abort: () => {
        if (this.#jobs.has(id)) worker.postMessage({ type: 'abort', id });
      },
    };
  }

  #onMessage(worker: Worker, m: WorkerMessage | { type: 'ready' }): void {
    if (m.type === 'ready') return;
    const p = this.#jobs.get(m.id);
    if (!p) return;
    switch (m.type) {
      case 'progress':
        p.onProgress?.(m.bytes);
        break;
      case 'stored':
        p.stored.resolve();
        break;
      case 'tar': {
        const t = p.tar as (Readable & { _berthPause?: () => void }) | undefined;
        if (t && !t.destroyed && !t.push(Buffer.from(m.chunk))) t._berthPause?.();
        break;
      }
      case 'done':
        this.#finish(worker, m.id);
        p.stored.resolve();
        p.done.resolve({ ...(m.diffId ? { diffId: m.diffId } : {}), ...(m.bytes !== undefined ? { bytes: m.bytes } : {}) });
        if (p.tar && !p.tar.destroyed) p.tar.push(null);
        break;
      case 'error': {
        this.#finish(worker, m.id);
        const err = new BerthError(m.kind, m.message);
        p.stored.reject(err);
        p.done.reject(err);
        if (p.tar && !p.tar.destroyed) p.tar.destroy(err);
        break;
      }
    }
  }

  #finish(worker: Worker, id: number): void {
    this.#jobs.delete(id);
    this.#busy.set(worker, Math.max(0, (this.#busy.get(worker) ?? 1) - 1));
  }

  #fail(worker: Worker, err: Error): void {
    this.#workers = this.#workers.filter((w) => w !== worker);
    this.#busy.delete(worker);
    for (const [id, p] of this.#jobs) {
      if (p.worker !== worker) continue;
      this.#jobs.delete(id);
      const e = new BerthError('Internal', `layer worker failed: ${err.message}`);
      p.stored.reject(e);
      p.done.reject(e);
      p.tar?.destroy(e);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    const ws = this.#workers;
    this.#workers = [];
    await Promise.all(ws.map((w) => w.terminate()));
  }
}

function deferred<T>(): { promise: Promise<T>; resolve(v: T): void; reject(e: Error): void } {
  let resolve!: (v: T) => void;
  let reject!: (e: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
