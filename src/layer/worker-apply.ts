// applyLayer on a worker thread: same contract and errors as applyLayer (src/layer/tar-apply.ts),
// but the per-entry filesystem calls run off the main thread. A pull applies several layers at
// once and inflates and hashes on the main thread and the thread pool; with the applies on their
// own threads they run in parallel instead of taking turns on the event loop (and on a loaded
// host each thread gets its own share of the CPU).
//
// The tar bytes are copied into transferable buffers, at most WINDOW bytes ahead of what the
// worker consumed, so backpressure reaches the source as with a local apply. Host calls (mknod,
// setxattr) and lazy lower dirs are answered here, on the thread that owns the Host. Workers
// are kept (up to MAX_IDLE, unref'd) for the next apply.
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { internal } from '../core/errors.ts';
import type { ApplyOptions, ApplyResult } from './tar-apply.ts';
import { fromWire, toWire, type ToParent, type ToWorker } from './worker-wire.ts';
import type { Readable } from 'node:stream';

const WORKER_URL = new URL('./apply-worker.ts', import.meta.url);
/** Bytes sent to a worker and not yet consumed by its tar parser. */
const WINDOW = 4 << 20;
const MAX_IDLE = 4;
const idle: Worker[] = [];

function spawnWorker(): Worker {
  const w = new Worker(WORKER_URL);
  // An idle worker that dies is dropped; a busy one is reported by its apply's own listeners.
  const drop = () => {
    const i = idle.indexOf(w);
    if (i >= 0) idle.splice(i, 1);
  };
  w.on('error', drop);
  w.on('exit', drop);
  return w;
}

function takeWorker(): Worker {
  const w = idle.pop() ?? spawnWorker();
  w.ref();
  return w;
}

function keepWorker(w: Worker): void {
  if (idle.length < MAX_IDLE) {
    w.unref();
    idle.push(w);
  } else {
    void w.terminate();
  }
}

/** Start `n` workers ahead of the first apply (their start-up is not on a pull's path). */
export function prewarmApplyWorkers(n = 1): void {
  while (idle.length < Math.min(n, MAX_IDLE)) {
    const w = spawnWorker();
    w.unref();
    idle.push(w);
  }
}

export async function applyLayerInWorker(root: string, tar: Readable, opts: ApplyOptions): Promise<ApplyResult> {
  // A source error must not go unhandled while the worker starts; it is reported below.
  tar.on('error', () => {});
  const w = takeWorker();
  const post = (m: ToWorker, transfer?: ArrayBuffer[]) => w.postMessage(m, transfer);
  let outstanding = 0;
  let resume: (() => void) | undefined;
  let settle!: { resolve: (r: ApplyResult) => void; reject: (e: unknown) => void };
  const result = new Promise<ApplyResult>((resolve, reject) => (settle = { resolve, reject }));
  let broken = false;

  const onMessage = (m: ToParent) => {
    switch (m.type) {
      case 'ack':
        outstanding -= m.bytes;
        if (resume && outstanding <= WINDOW) {
          const r = resume;
          resume = undefined;
          r();
        }
        break;
      case 'call':
        void answer(m.op, m.args).then(
          (value) => post({ type: 'reply', call: m.call, value }),
          (err: unknown) => post({ type: 'reply', call: m.call, error: toWire(err) }),
        );
        break;
      case 'done':
        settle.resolve(m.result);
        break;
      case 'failed':
        settle.reject(fromWire(m.error));
        break;
    }
  };
  const answer = async (op: 'mknod' | 'setxattr' | 'lowers', args: unknown[]): Promise<unknown> => {
    if (op === 'lowers') return typeof opts.lowers === 'function' ? [...(await opts.lowers())] : [...(opts.lowers ?? [])];
    if (op === 'mknod') {
      const [path, type, major, minor, mode] = args as [string, 'c' | 'b' | 'p', number, number, number];
      await opts.host.mknod(path, type, major, minor, mode);
      return undefined;
    }
    const [paths, name, value] = args as [string[], string, string | Uint8Array];
    // A Buffer arrives as a plain Uint8Array (structured clone): give the Host a Buffer again.
    await opts.host.setxattr(paths, name, typeof value === 'string' ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    return undefined;
  };
  const onError = (err: unknown) => {
    broken = true;
    settle.reject(internal(`layer apply worker: ${err instanceof Error ? err.message : String(err)}`, err));
  };
  const onExit = (code: number) => onError(new Error(`exited with code ${code}`));
  w.on('message', onMessage);
  w.on('error', onError);
  w.on('exit', onExit);
  const onAbort = () => post({ type: 'abort' });
  opts.signal?.addEventListener('abort', onAbort, { once: true });

  post({
    type: 'start', root, mode: opts.mode,
    ...(opts.maxBytes !== undefined ? { maxBytes: opts.maxBytes } : {}),
    ...(opts.maxEntries !== undefined ? { maxEntries: opts.maxEntries } : {}),
    ...(opts.sameOwner !== undefined ? { sameOwner: opts.sameOwner } : {}),
    ...(typeof opts.lowers === 'function' ? { lowers: 'lazy' as const } : opts.lowers ? { lowers: opts.lowers } : {}),
  });
  if (opts.signal?.aborted) onAbort();

  const sink = new Writable({
    highWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      // A copy the worker owns: the chunk's memory may be shared (pooled or sliced buffers).
      // allocUnsafeSlow: an ArrayBuffer of its own, and not zero-filled before the copy.
      const copy = Buffer.allocUnsafeSlow(chunk.length);
      chunk.copy(copy);
      const buf = copy.buffer as ArrayBuffer;
      outstanding += chunk.length;
      post({ type: 'data', buf }, [buf]);
      if (outstanding <= WINDOW) cb();
      else resume = () => cb();
    },
    final(cb) {
      post({ type: 'end' });
      cb();
    },
  });
  const feeding = pipeline(tar, sink).catch((err: unknown) => {
    // The source failed (or the worker gave up and the sink was destroyed): tell the worker,
    // which reports the error as a local apply would ('reading layer: ...', or the BerthError).
    post({ type: 'fail', error: toWire(err) });
  });
  try {
    return await result;
  } catch (err) {
    tar.destroy();
    sink.destroy();
    throw err;
  } finally {
    await feeding;
    opts.signal?.removeEventListener('abort', onAbort);
    w.off('message', onMessage);
    w.off('error', onError);
    w.off('exit', onExit);
    if (broken) void w.terminate();
    else keepWorker(w);
  }
}
