// Worker thread side of applyLayerInWorker (src/layer/worker-apply.ts): runs applyLayer on a
// tar stream fed by the parent thread, one apply at a time. Host calls (mknod, setxattr) and the
// lazy lower dirs are asked of the parent, which owns the Host.
import { parentPort } from 'node:worker_threads';
import { Readable } from 'node:stream';
import type { Host, RunResult } from '../host/host.ts';
import { applyLayer, type ApplyOptions } from './tar-apply.ts';
import { fromWire, toWire, type ToParent, type ToWorker } from './worker-wire.ts';

const port = parentPort;
if (!port) throw new Error('apply-worker.ts must run in a worker thread');

let feed: Readable | undefined;
let abort: AbortController | undefined;
/** Bytes pushed but not yet acknowledged (acknowledged once the stream wants more). */
let unacked = 0;
let call = 0;
const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();

function send(m: ToParent): void {
  port!.postMessage(m);
}

function ask(m: { op: 'mknod' | 'setxattr' | 'lowers'; args: unknown[] }): Promise<unknown> {
  const id = ++call;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject });
    send({ type: 'call', call: id, op: m.op, args: m.args });
  });
}

const host: Host = {
  run(): Promise<RunResult> {
    return Promise.reject(new Error('host.run is not available in the apply worker'));
  },
  mount(): Promise<void> {
    return Promise.reject(new Error('host.mount is not available in the apply worker'));
  },
  unmount(): Promise<void> {
    return Promise.reject(new Error('host.unmount is not available in the apply worker'));
  },
  async mknod(path, type, major, minor, mode) {
    await ask({ op: 'mknod', args: [path, type, major, minor, mode] });
  },
  async setxattr(paths, name, value) {
    await ask({ op: 'setxattr', args: [[...paths], name, typeof value === 'string' ? value : Buffer.from(value)] });
  },
};

function ack(): void {
  if (unacked === 0) return;
  send({ type: 'ack', bytes: unacked });
  unacked = 0;
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'start': {
      abort = new AbortController();
      feed = new Readable({ highWaterMark: 1 << 20, read: ack });
      const opts: ApplyOptions = {
        mode: m.mode,
        host,
        signal: abort.signal,
        ...(m.maxBytes !== undefined ? { maxBytes: m.maxBytes } : {}),
        ...(m.maxEntries !== undefined ? { maxEntries: m.maxEntries } : {}),
        ...(m.sameOwner !== undefined ? { sameOwner: m.sameOwner } : {}),
        ...(m.lowers === 'lazy' ? { lowers: async () => (await ask({ op: 'lowers', args: [] })) as string[] } : m.lowers ? { lowers: m.lowers } : {}),
      };
      applyLayer(m.root, feed, opts).then(
        (result) => send({ type: 'done', result }),
        (err: unknown) => send({ type: 'failed', error: toWire(err) }),
      ).finally(() => {
        feed = undefined;
        abort = undefined;
        unacked = 0;
      });
      break;
    }
    case 'data': {
      if (!feed) return;
      const buf = Buffer.from(m.buf);
      unacked += buf.length;
      if (feed.push(buf)) ack();
      break;
    }
    case 'end':
      feed?.push(null);
      break;
    case 'fail':
      feed?.destroy(fromWire(m.error));
      break;
    case 'abort':
      abort?.abort();
      break;
    case 'reply': {
      const p = pending.get(m.call);
      if (!p) return;
      pending.delete(m.call);
      if (m.error) p.reject(fromWire(m.error));
      else p.resolve(m.value);
      break;
    }
  }
});
