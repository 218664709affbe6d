// Worker thread entry (see layer-workers.ts): everything of a layer transfer except the apply.
//
//   source http: registry blob -> ContentWriter (verifies digest and size, commits the blob)
//                              \-> inflate -> sha256 (diffID) -> tar chunks to the main thread
//   source file: stored blob   -> inflate -> sha256 (diffID) -> tar chunks to the main thread
//
// The main thread then only parses the tar and writes files. Messages (main -> worker):
//   {type:'job', job}  {type:'pause'|'resume'|'abort', id}
// (worker -> main): {type:'progress', id, bytes} {type:'stored', id} {type:'tar', id, chunk}
//   {type:'done', id, diffId?, bytes?} {type:'error', id, kind, message}
import { parentPort } from 'node:worker_threads';
import { createReadStream } from 'node:fs';
import { PassThrough, Writable, type Readable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import { ContentStore, type ContentWriter } from '../content/content-store.ts';
import { BerthError, errorMessage, kindOf } from '../core/errors.ts';
import { RegistryClient } from '../distribution/registry-client.ts';
import { staticAuth } from '../distribution/credentials.ts';
import { Coalesce } from './coalesce.ts';
import { HashCounter } from './hash-counter.ts';
import { inflate } from './inflate.ts';
import { Tee } from './tee.ts';
import type { LayerJob, WorkerMessage } from './layer-workers.ts';

const port = parentPort!;
const clients = new Map<string, RegistryClient>();
const jobs = new Map<number, { abort: AbortController; paused: boolean; resume: Array<() => void> }>();

function client(job: LayerJob): RegistryClient {
  const key = JSON.stringify([job.registry?.insecureRegistries ?? [], job.registry?.userAgent ?? 'berth']);
  let c = clients.get(key);
  if (!c) {
    c = new RegistryClient({ insecureRegistries: [...(job.registry?.insecureRegistries ?? [])], userAgent: job.registry?.userAgent ?? 'berth' });
    clients.set(key, c);
  }
  return c.withAuth(job.auth ? staticAuth(job.auth) : undefined);
}

const post = (m: WorkerMessage, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer ?? []);

async function run(job: LayerJob): Promise<void> {
  const state = { abort: new AbortController(), paused: false, resume: [] as Array<() => void> };
  jobs.set(job.id, state);
  const signal = state.abort.signal;
  let writer: ContentWriter | undefined;
  try {
    const store = new ContentStore(job.contentRoot);
    let last = 0;
    const progress = (bytes: number) => {
      const now = performance.now();
      if (bytes < job.desc.size && now - last < 50) return;
      last = now;
      post({ type: 'progress', id: job.id, bytes });
    };
    let src: Readable;
    if (job.source === 'http') {
      src = await client(job).fetchBlob(job.repo!, job.desc, { signal, onProgress: progress });
    } else {
      src = createReadStream(store.blobPath(job.desc.digest), { highWaterMark: 1 << 20 });
      let n = 0;
      src.on('data', (c: Buffer | string) => progress((n += c.length)));
    }
    const targets: Writable[] = [];
    if (job.store) {
      writer = await store.writer({ digest: job.desc.digest, size: job.desc.size });
      targets.push(writer);
    }
    let out: Promise<void> | undefined;
    let hasher: HashCounter | undefined;
    if (job.tar) {
      // Compressed bytes may run ahead of the apply by up to the whole layer (capped).
      const ahead = new PassThrough({ writableHighWaterMark: Math.max(1 << 20, Math.min(job.desc.size, 256 << 20)), readableHighWaterMark: 1 << 20 });
      targets.push(ahead);
      hasher = new HashCounter();
      const sender = new Writable({
        highWaterMark: 1 << 20,
        write(chunk: Buffer, _e, cb) {
          const send = () => {
            const ab = chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength) as ArrayBuffer;
            post({ type: 'tar', id: job.id, chunk: ab }, [ab]);
            cb();
          };
          if (state.paused) state.resume.push(send);
          else send();
        },
      });
      out = pipeline(ahead, inflate(job.maxBytes === undefined ? {} : { maxBytes: job.maxBytes }), hasher, sender, { signal });
      out.catch(() => {});
    }
    const sink = targets.length === 1 ? targets[0]! : new Tee(targets);
    await pipeline(src, new Coalesce(), sink, { signal });
    if (writer) {
      await finished(writer);
      await writer.commit();
      writer = undefined;
      post({ type: 'stored', id: job.id });
    }
    if (out) await out;
    post({ type: 'done', id: job.id, ...(hasher?.digest ? { diffId: hasher.digest, bytes: hasher.bytes } : {}) });
  } catch (err) {
    if (writer) await writer.abort().catch(() => {});
    const kind = signal.aborted ? 'Canceled' : kindOf(err);
    post({ type: 'error', id: job.id, kind, message: err instanceof BerthError ? err.message : errorMessage(err) });
  } finally {
    jobs.delete(job.id);
  }
}

port.on('message', (m: { type: string; id: number; job?: LayerJob }) => {
  if (m.type === 'job') {
    void run(m.job!);
    return;
  }
  const state = jobs.get(m.id);
  if (!state) return;
  if (m.type === 'abort') state.abort.abort();
  else if (m.type === 'pause') state.paused = true;
  else if (m.type === 'resume') {
    state.paused = false;
    for (const f of state.resume.splice(0)) f();
  }
});
port.postMessage({ type: 'ready' });
