// Docker Engine API image endpoints. Literal paths (/images/json, /images/create, /images/prune,
// /images/get, /images/load) are registered before the `{name*}` patterns, since image names
// carry '/' and ':' ("/images/127.0.0.1:5000/a/b:1/json").
import type { ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { BerthError, errorMessage, invalidArgument, notImplemented } from '../core/errors.ts';
import { isDigest } from '../core/digest.ts';
import { parsePlatform, type Platform } from '../core/oci.ts';
import { formatReference, familiarName, parseReference } from '../core/reference.ts';
import { parseFilters, queryBool, readJson, sendJson, versionAtLeast, type Ctx, type Router } from '../daemon/http.ts';
import { decodeRegistryAuthHeader, normalizeRegistry, type Credentials } from '../distribution/credentials.ts';
import type { RegistryClient } from '../distribution/registry-client.ts';
import { toHistory, toInspect, toSummary } from './image-json.ts';
import { parseUntil, type ImageService } from './image-service.ts';
import { familiar, type StoredImage } from './image-store.ts';
import { importRootfs } from './import-rootfs.ts';
import { loadImages } from './load-images.ts';
import { encodeJsonMessage, type JsonMessage } from './progress.ts';
import { parsePullReference, type Puller } from './puller.ts';
import { saveImages } from './save-images.ts';

export interface ImageRouteDeps {
  images: ImageService;
  puller: Puller;
  registry: RegistryClient;
  /** GraphDriver.Data for an image (the snapshotter's directories). */
  graphDriverData: (chainIds: readonly string[]) => Record<string, string>;
  /** Docker image events (pull, import, load, tag, untag, delete) to the daemon's event bus. */
  emit?: (type: 'image', action: string, id: string, attrs: Record<string, string>) => void;
}

/**
 * A JSON message stream whose 200 header goes out with the first message, so an error before
 * any progress (bad reference, manifest unknown, 401) is a plain HTTP error the CLI understands.
 */
export class LazyJsonStream {
  readonly #res: ServerResponse;
  constructor(res: ServerResponse) {
    this.#res = res;
  }
  get started(): boolean {
    return this.#res.headersSent;
  }
  write = (msg: JsonMessage): void => {
    const res = this.#res;
    if (res.writableEnded || res.destroyed) return;
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/json' });
    res.write(encodeJsonMessage(msg) + '\r\n');
  };
  /** End the stream, or report `err` in band (after the header) or as an HTTP error (before). */
  end(err?: unknown): void {
    const res = this.#res;
    if (err !== undefined && !res.headersSent) throw err;
    if (err !== undefined) this.write({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) });
    if (!res.headersSent) res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end();
  }
}

/** An AbortSignal that fires when the client goes away before the response ended. */
function clientGone(ctx: Ctx): AbortSignal {
  const ac = new AbortController();
  ctx.res.on('close', () => {
    if (!ctx.res.writableFinished) ac.abort();
  });
  return ac.signal;
}

function platformParam(ctx: Ctx): Platform | undefined {
  const p = ctx.query.get('platform');
  if (!p) return undefined;
  const plat = parsePlatform(p);
  if (!plat.os || !plat.architecture) throw invalidArgument(`invalid platform ${JSON.stringify(p)}`);
  return plat;
}

/** Docker's fromImage + tag: the tag parameter may also be a digest. */
export function pullReference(fromImage: string, tag: string | null): string {
  let ref;
  try {
    ref = parseReference(fromImage, { defaultTag: false });
  } catch {
    throw invalidArgument('invalid reference format');
  }
  if (tag) {
    if (isDigest(tag)) return formatReference({ domain: ref.domain, path: ref.path, digest: tag });
    return formatReference({ domain: ref.domain, path: ref.path, tag });
  }
  return formatReference(ref.tag === undefined && ref.digest === undefined ? { ...ref, tag: 'latest' } : ref);
}

/**
 * path.Match-style glob as a RegExp: '*' and '?' stay within one path segment, '[...]' classes
 * (negated with '^', ranges with '-'), '\\' escapes. A malformed pattern is an invalid argument
 * (Go's ErrBadPattern).
 */
export function globRe(pattern: string): RegExp {
  const esc = (c: string) => c.replace(/[-.*+?^${}()|[\]\\/]/g, '\\$&');
  const bad = () => invalidArgument(`invalid reference filter ${JSON.stringify(pattern)}: syntax error in pattern`);
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '\\') {
      if (i + 1 >= pattern.length) throw bad();
      re += esc(pattern[++i]!);
    } else if (c === '[') {
      let j = i + 1;
      let cls = '';
      if (pattern[j] === '^') {
        cls += '^';
        j++;
      }
      const start = j;
      while (j < pattern.length && (pattern[j] !== ']' || j === start)) {
        if (pattern[j] === ']' && j === start) throw bad();
        if (pattern[j] === '\\') {
          j++;
          if (j >= pattern.length) throw bad();
          cls += esc(pattern[j]!);
        } else if (pattern[j] === '-' && j > start && pattern[j + 1] !== undefined && pattern[j + 1] !== ']') cls += '-';
        else cls += esc(pattern[j]!);
        j++;
      }
      if (j >= pattern.length || j === start) throw bad();
      // A class never matches '/', as in Go.
      re += `(?!/)[${cls}]`;
      i = j;
    } else re += esc(c);
  }
  return new RegExp(`^${re}$`);
}

/** Docker's FamiliarMatch: the pattern against "name:tag" (or "name@digest") and against "name". */
function referenceMatches(ref: string, patterns: RegExp[]): boolean {
  const f = familiar(ref);
  const name = familiarName(parseReference(ref, { defaultTag: false }));
  return patterns.some((re) => re.test(f) || re.test(name));
}

/**
 * Docker's `reference` filter for GET /images/json: each image keeps only the RepoTags and
 * RepoDigests that match one of the patterns; images left with none are dropped.
 */
export function filterByReference(list: StoredImage[], patterns: string[]): StoredImage[] {
  const res = patterns.map(globRe);
  const out: StoredImage[] = [];
  for (const img of list) {
    const repoTags = img.repoTags.filter((r) => referenceMatches(r, res));
    const repoDigests = img.repoDigests.filter((r) => referenceMatches(r, res));
    if (repoTags.length + repoDigests.length > 0) out.push({ ...img, repoTags, repoDigests });
  }
  return out;
}

export function registerImageRoutes(router: Router, deps: ImageRouteDeps): void {
  const { images, puller, registry } = deps;
  const emit = (action: string, id: string, name: string) => deps.emit?.('image', action, id, { name });

  const created = async (img: StoredImage): Promise<number> => {
    try {
      return Date.parse((await images.config(img.id)).created ?? img.added);
    } catch {
      return Date.parse(img.added);
    }
  };

  router.get('/images/json', async (ctx) => {
    const filters = parseFilters(ctx.query);
    for (const k of filters.keys()) {
      if (!['dangling', 'reference', 'label', 'before', 'since', 'until'].includes(k)) throw invalidArgument(`invalid filter '${k}'`);
    }
    const all = queryBool(ctx.query, 'all');
    let list = images.store.all();
    const dangling = filters.get('dangling');
    if (dangling?.length) {
      const want = ['true', '1'].includes(dangling[0]!.toLowerCase());
      if (!['true', '1', 'false', '0'].includes(dangling[0]!.toLowerCase())) throw invalidArgument(`invalid filter 'dangling=${dangling[0]}'`);
      list = list.filter((i) => (i.repoTags.length === 0) === want);
    }
    const refs = filters.get('reference');
    if (refs?.length) list = filterByReference(list, refs);
    for (const key of ['before', 'since'] as const) {
      const v = filters.get(key)?.[0];
      if (v === undefined) continue;
      const pivot = await created(images.get(v));
      const withTimes = await Promise.all(list.map(async (i) => [i, await created(i)] as const));
      list = withTimes.filter(([, t]) => (key === 'before' ? t < pivot : t > pivot)).map(([i]) => i);
    }
    const until = filters.get('until')?.[0];
    if (until !== undefined) {
      const limit = parseUntil(until);
      const withTimes = await Promise.all(list.map(async (i) => [i, await created(i)] as const));
      list = withTimes.filter(([, t]) => t < limit).map(([i]) => i);
    }
    if (!all) {
      // Intermediate images (untagged parents of other images) only with all=1.
      list = list.filter((i) => i.repoTags.length + i.repoDigests.length > 0 || images.store.children(i.id).length === 0);
    }
    const labels = filters.get('label');
    const useNone = !versionAtLeast(ctx.version, '1.43');
    const out = [];
    for (const img of list) {
      let cfg;
      try {
        cfg = await images.config(img.id);
      } catch {
        cfg = undefined;
      }
      if (labels?.length) {
        const l = cfg?.config?.Labels ?? {};
        const ok = labels.every((f) => {
          const i = f.indexOf('=');
          return i === -1 ? f in l : l[f.slice(0, i)] === f.slice(i + 1);
        });
        if (!ok) continue;
      }
      out.push(toSummary(img, cfg, { useNone }));
    }
    out.sort((a, b) => (b.Created as number) - (a.Created as number));
    sendJson(ctx.res, 200, out);
  });

  router.post('/images/create', async (ctx) => {
    const q = ctx.query;
    const fromImage = q.get('fromImage');
    const fromSrc = q.get('fromSrc');
    const platform = platformParam(ctx);
    const signal = clientGone(ctx);
    const stream = new LazyJsonStream(ctx.res);
    if (fromSrc !== null && fromSrc !== '') {
      if (fromSrc !== '-') throw notImplemented('importing from a URL is not supported: use fromSrc=- with the tar as the request body');
      const opts: Parameters<typeof importRootfs>[2] = { changes: q.getAll('changes').filter((c) => c !== ''), signal, source: '-' };
      const repo = q.get('repo');
      const tag = q.get('tag');
      const message = q.get('message');
      if (repo) opts.repo = repo;
      if (tag) opts.tag = tag;
      if (message) opts.message = message;
      if (platform) opts.platform = platform;
      const img = await importRootfs(images, ctx.req, opts);
      emit('import', img.id, img.id);
      stream.write({ status: img.id });
      stream.end();
      return;
    }
    if (!fromImage) throw invalidArgument('fromImage or fromSrc is required');
    const input = pullReference(fromImage, q.get('tag'));
    parsePullReference(input);
    let auth: Credentials | undefined;
    try {
      auth = decodeRegistryAuthHeader(ctx.req.headers['x-registry-auth'] as string | undefined);
    } catch {
      auth = undefined; // Docker ignores an undecodable header and pulls anonymously
    }
    const opts: Parameters<Puller['pull']>[1] = { progress: stream.write, signal };
    if (platform) opts.platform = platform;
    if (auth) opts.auth = auth;
    try {
      await puller.pull(input, opts);
      emit('pull', input, input);
    } catch (err) {
      if (!stream.started) throw err;
      images.log.warn({ image: input, err: errorMessage(err) }, 'pull failed');
      stream.end(err);
      return;
    }
    stream.end();
  });

  router.post('/images/prune', async (ctx) => {
    const filters = parseFilters(ctx.query);
    sendJson(ctx.res, 200, await images.prune({ filters }));
  });

  const save = async (ctx: Ctx, names: string[]) => {
    if (names.length === 0) throw invalidArgument('no images named');
    const tar = await saveImages(images, names);
    ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
    await pipeline(tar, ctx.res).catch((err: unknown) => {
      images.log.warn({ names, err: errorMessage(err) }, 'image save aborted');
      ctx.res.destroy();
    });
  };
  router.get('/images/get', (ctx) => save(ctx, ctx.query.getAll('names').flatMap((n) => n.split(',')).filter(Boolean)));

  router.post('/images/load', async (ctx) => {
    const quiet = queryBool(ctx.query, 'quiet');
    const stream = new LazyJsonStream(ctx.res);
    try {
      for (const img of await loadImages(images, ctx.req, { quiet, progress: stream.write, signal: clientGone(ctx) })) emit('load', img.id, img.repoTags[0] ?? img.id);
    } catch (err) {
      if (!stream.started) throw err;
      stream.end(err);
      return;
    }
    stream.end();
  });

  router.post('/auth', async (ctx) => {
    const body = (await readJson<Record<string, string>>(ctx.req)) ?? {};
    const pick = (k: string) => {
      for (const [key, v] of Object.entries(body)) if (key.toLowerCase() === k && typeof v === 'string' && v !== '') return v;
      return undefined;
    };
    const server = pick('serveraddress') ?? 'https://index.docker.io/v1/';
    const creds: Credentials = { serverAddress: server };
    const u = pick('username');
    const p = pick('password');
    const t = pick('identitytoken');
    if (u !== undefined) creds.username = u;
    if (p !== undefined) creds.password = p;
    if (t !== undefined) creds.identityToken = t;
    const r = await registry.checkLogin(normalizeRegistry(server), creds);
    sendJson(ctx.res, 200, { Status: 'Login Succeeded', IdentityToken: r.identityToken ?? '' });
  });

  router.get('/images/{name*}/json', async (ctx) => {
    const r = await images.resolve(ctx.params.name!);
    sendJson(ctx.res, 200, toInspect(r.record as StoredImage, r.config, { graphDriverData: deps.graphDriverData(r.chainIds) }));
  });

  router.get('/images/{name*}/history', async (ctx) => {
    const r = await images.resolve(ctx.params.name!);
    sendJson(ctx.res, 200, toHistory(r.record as StoredImage, r.config, await images.layerSizes(r.config)));
  });

  router.get('/images/{name*}/get', (ctx) => save(ctx, [ctx.params.name!]));

  router.post('/images/{name*}/tag', async (ctx) => {
    const repo = ctx.query.get('repo');
    if (!repo) throw invalidArgument('repository name must have at least one component');
    const tag = ctx.query.get('tag');
    let target: string;
    try {
      const ref = parseReference(repo, { defaultTag: false });
      if (ref.digest) throw invalidArgument('refusing to create a tag with a digest reference');
      target = formatReference({ domain: ref.domain, path: ref.path, tag: tag || ref.tag || 'latest' });
      parseReference(target);
    } catch (err) {
      if (err instanceof BerthError && err.kind === 'InvalidArgument' && !err.message.startsWith('invalid reference format')) throw err;
      throw invalidArgument('invalid reference format');
    }
    await images.tag(ctx.params.name!, target);
    emit('tag', (await images.resolve(target).catch(() => undefined))?.record.id ?? ctx.params.name!, target);
    ctx.res.writeHead(201);
    ctx.res.end();
  });

  router.delete('/images/{name*}', async (ctx) => {
    const force = queryBool(ctx.query, 'force');
    const noprune = queryBool(ctx.query, 'noprune');
    const items = await images.remove(ctx.params.name!, { force, prune: !noprune });
    for (const it of items) {
      if ('Untagged' in it) emit('untag', it.Untagged, it.Untagged);
      else emit('delete', it.Deleted, it.Deleted);
    }
    sendJson(ctx.res, 200, items);
  });
}
