// The build part of berthd: `POST /build` with the legacy builder protocol (what
// `DOCKER_BUILDKIT=0 docker build`, docker-compose 1.29 `build:` and the Docker SDKs speak) and
// `POST /build/prune` (`berth builder prune`, `docker builder prune`).
//
// POST /build: the body is the build context (tar, optionally gzip/zstd; a bare Dockerfile is
// accepted too, as dockerd does for `docker build - < Dockerfile`). Query: t (repeated),
// dockerfile, buildargs (JSON), target, nocache, pull, labels (JSON), networkmode, platform,
// q, rm, forcerm (intermediate containers are always removed: builds use no named
// containers), version (only "1", the legacy builder). The answer is a JSON message stream:
// `{"stream":"Step 1/4 : FROM busybox\n"}` ... `{"aux":{"ID":"sha256:..."}}`,
// `{"stream":"Successfully built <id>\n"}`, `{"stream":"Successfully tagged x:y\n"}`; a failure
// ends it with `{"errorDetail":{"code":N,"message":...},"error":...}` and tags nothing.
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import { BerthError, errorMessage, invalidArgument, notImplemented } from '../core/errors.ts';
import { sendJson, type Ctx, type Router } from '../daemon/http.ts';
import type { DaemonModule, Daemon } from '../daemon/server.ts';
import type { Services } from '../daemon/services.ts';
import type { Logger } from '../pkg/log.ts';
import { BuildCache } from './build-cache.ts';
import { Builder, BuildStepError, trace, type BuildImages, type BuildMessage } from './builder.ts';
import { BuildContext } from './context.ts';
import { RuncStepRunner } from './run-step.ts';
import { Mounter } from '../runtime/mounter.ts';

/** Extras of berth's ImageService beyond the core contract (GC roots for cached layers, GC). */
type ImageExtras = {
  addGcRoots?(fn: () => Iterable<string>): void;
  gc?(): Promise<{ bytes: number }>;
  lease?(ids: Iterable<string>): Promise<{ release(): void }>;
};

export function createModule(): DaemonModule {
  let cache: BuildCache | undefined;
  let mounter: Mounter | undefined;
  const running = new Set<{ abort: AbortController; done: Promise<void> }>();
  return {
    async register(router: Router, services: Services, daemon: Daemon): Promise<void> {
      const s = services;
      const extras = (): ImageExtras | undefined => s.images as (ImageExtras | undefined);
      cache = new BuildCache(join(s.config.dataRoot, 'build-cache'));
      await cache.init();
      const c = cache;
      const m = (mounter = new Mounter(s.host));
      extras()?.addGcRoots?.(() => c.roots());
      const runner = new RuncStepRunner({
        host: s.host,
        tmpRoot: join(c.tmp, 'bundles'),
        stateRoot: join(s.config.execRoot, 'build-runc'),
        cgroupVersion: s.cgroupVersion,
        runtimePath: s.config.runtimes[s.config.defaultRuntime] ?? 'runc',
        networks: () => s.networks,
        // As the containers' parent (container-module.ts): test daemons side by side each get
        // their own, named after the data root.
        cgroupParent: process.env.BERTH_CGROUP_PARENT ? `${process.env.BERTH_CGROUP_PARENT}-build` : process.env.BERTH_TEST === '1' ? `berth-build-${createHash('sha256').update(s.config.dataRoot).digest('hex').slice(0, 12)}` : undefined,
      });
      const builder = (): Builder => {
        if (!s.images || !s.snapshotter) throw notImplemented('builds need the image service, which is not loaded');
        const deps: ConstructorParameters<typeof Builder>[0] = {
          images: s.images as unknown as BuildImages,
          snapshotter: s.snapshotter,
          content: s.content,
          host: s.host,
          runner,
          cache: c,
          log: daemon.log,
          mounter: m,
        };
        if (s.pullImage) deps.pullImage = s.pullImage;
        const x = extras();
        if (x?.lease) deps.lease = (ids) => x.lease!(ids);
        return new Builder(deps);
      };
      router.post('/build', async (ctx) => {
        const abort = new AbortController();
        const done = handleBuild(ctx, builder, c, daemon.log, abort);
        const entry = { abort, done: done.catch(() => {}) };
        running.add(entry);
        try {
          await done;
        } finally {
          running.delete(entry);
        }
      });
      router.post('/build/prune', async (ctx) => {
        const n = await c.prune();
        const report = (await extras()?.gc?.().catch(() => undefined)) ?? { bytes: 0 };
        sendJson(ctx.res, 200, { CachesDeleted: n ? [`${n} cache entries`] : null, SpaceReclaimed: report.bytes });
      });
    },
    async close(): Promise<void> {
      // Builds in flight are cancelled (their RUN containers killed, mounts undone) before
      // berthd goes: nothing of theirs outlives the daemon.
      for (const r of running) r.abort.abort();
      await Promise.race([Promise.all([...running].map((r) => r.done)), new Promise((res) => setTimeout(res, 15000).unref())]);
      mounter?.close();
      await cache?.save();
    },
  };
}

function jsonParam<T>(q: URLSearchParams, name: string): T | undefined {
  const raw = q.get(name);
  if (raw === null || raw === '') return undefined;
  try {
    return JSON.parse(raw) as T;
  } catch {
    throw invalidArgument(`invalid ${name} parameter: ${raw}`);
  }
}

function bool(q: URLSearchParams, name: string): boolean {
  const v = q.get(name);
  return v !== null && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
}

/** Go's JSON encoder escapes <, > and & (the docker CLI prints ` ---> ` from `\u003e`). */
function encode(m: BuildMessage): string {
  return JSON.stringify(m).replace(/[<>&]/g, (c) => (c === '<' ? '\\u003c' : c === '>' ? '\\u003e' : '\\u0026')) + '\r\n';
}

async function handleBuild(ctx: Ctx, builder: () => Builder, cache: BuildCache, log: Logger, abort: AbortController): Promise<void> {
  const q = ctx.query;
  const version = q.get('version');
  if (version && version !== '1') throw invalidArgument(`BuildKit (version=${version}) is not supported: use the legacy builder (DOCKER_BUILDKIT=0)`);
  if (q.get('remote')) throw notImplemented('remote build contexts are not supported: send the context as the request body');
  const buildArgs = jsonParam<Record<string, string | null>>(q, 'buildargs') ?? {};
  const labels = jsonParam<Record<string, string>>(q, 'labels') ?? {};
  const tags = q.getAll('t').filter((t) => t !== '');
  const { parseReference } = await import('../core/reference.ts');
  for (const t of tags) {
    try {
      parseReference(t);
    } catch {
      throw invalidArgument(`invalid reference format: ${t}`);
    }
  }
  const b = builder();
  // The client going away (its connection closed before the answer is complete) cancels the build.
  const socket = ctx.req.socket;
  const onGone = () => {
    if (!ctx.res.writableFinished) abort.abort();
  };
  socket.once('close', onGone);
  ctx.res.once('finish', () => socket.off('close', onGone));

  // The context arrives before anything is answered (dockerd reads it first, too).
  const t0 = performance.now();
  const body = await sniffBody(ctx.req);
  const context = body.kind === 'tar'
    ? await BuildContext.fromTar(body.stream, cache.tmp, { signal: abort.signal })
    : await BuildContext.fromDockerfile(body.data, cache.tmp, q.get('dockerfile') || 'Dockerfile');
  trace('context', t0);
  ctx.res.writeHead(200, { 'Content-Type': 'application/json' });
  const out = (m: BuildMessage) => {
    if (!ctx.res.writableEnded) ctx.res.write(encode(m));
  };
  const later: Array<() => Promise<void>> = [];
  try {
    const req: Parameters<Builder['build']>[0] = {
      context,
      tags,
      buildArgs,
      labels,
      noCache: bool(q, 'nocache'),
      pull: bool(q, 'pull'),
      quiet: bool(q, 'q'),
      signal: abort.signal,
      out,
      deferCleanup: (fn) => later.push(fn),
    };
    const df = q.get('dockerfile');
    if (df) req.dockerfile = df;
    const target = q.get('target');
    if (target) req.target = target;
    const nm = q.get('networkmode');
    if (nm) req.network = nm;
    const platform = q.get('platform');
    if (platform) req.platform = platform;
    await b.build(req);
  } catch (err) {
    const message = errorMessage(err);
    const code = err instanceof BuildStepError ? err.code : undefined;
    if (!(err instanceof BerthError) || err.kind === 'Internal') log.error({ err: message }, 'build failed');
    out({ errorDetail: code !== undefined ? { code, message } : { message }, error: message });
  } finally {
    // The client has its answer before the temp files and mounts go.
    ctx.res.end();
    for (const fn of later) await fn().catch((err: unknown) => log.warn({ err: errorMessage(err) }, 'build cleanup failed'));
    await context.cleanup().catch(() => {});
  }
}

type Body = { kind: 'tar'; stream: Readable } | { kind: 'dockerfile'; data: Buffer<ArrayBufferLike> };

/**
 * Tell a context archive from a bare Dockerfile by its first bytes: gzip, zstd, bzip2, xz magic
 * or a ustar header mean an archive; anything else is read (bounded) as a Dockerfile.
 */
async function sniffBody(req: IncomingMessage): Promise<Body> {
  const head: Buffer[] = [];
  let n = 0;
  const it = (req as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  let done = false;
  while (n < 512) {
    const r = await it.next();
    if (r.done) {
      done = true;
      break;
    }
    head.push(r.value);
    n += r.value.length;
  }
  const first: Buffer = Buffer.concat(head);
  const isArchive =
    (first[0] === 0x1f && first[1] === 0x8b) ||
    first.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])) ||
    first.subarray(0, 3).toString('latin1') === 'BZh' ||
    first.subarray(0, 6).equals(Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])) ||
    first.subarray(257, 262).toString('latin1') === 'ustar' ||
    first.length === 0;
  if (!isArchive) {
    const chunks = [first];
    let size = first.length;
    while (!done) {
      const r = await it.next();
      if (r.done) break;
      size += r.value.length;
      if (size > 16 * 1024 * 1024) throw invalidArgument('Dockerfile body larger than 16 MiB');
      chunks.push(r.value);
    }
    return { kind: 'dockerfile', data: Buffer.concat(chunks) };
  }
  const pt = new PassThrough();
  void (async () => {
    try {
      pt.write(first);
      if (!done) {
        for (;;) {
          const r = await it.next();
          if (r.done) break;
          if (!pt.write(r.value)) await new Promise((res) => pt.once('drain', res));
        }
      }
      pt.end();
    } catch (err) {
      pt.destroy(err as Error);
    }
  })();
  return { kind: 'tar', stream: pt };
}
