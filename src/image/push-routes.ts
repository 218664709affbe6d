// Docker Engine API: POST /images/{name}/push?tag=&platform= with X-Registry-Auth.
//
// Everything that can be known before the push starts is checked first and answered as a plain
// HTTP error (400 bad name / digest reference / platform, 404 "No such image: x:tag"), so the CLI
// prints "Error response from daemon: ...". From the first progress line on, errors go in-band
// as {"errorDetail":{"message":..},"error":..}, as dockerd writes them. Closing the connection
// cancels the push.
import { errorMessage } from '../core/errors.ts';
import { readJson, type Ctx, type Router } from '../daemon/http.ts';
import { decodeRegistryAuthHeader, type Credentials } from '../distribution/credentials.ts';
import type { RegistryClient } from '../distribution/registry-client.ts';
import type { ImageService } from './image-service.ts';
import { LazyJsonStream } from './image-routes.ts';
import { Pusher, parsePushPlatform, type PushOptions, type PushPlanOptions } from './pusher.ts';

export interface PushRouteDeps {
  images: ImageService;
  registry: RegistryClient;
  /** Defaults to a Pusher over `images` and `registry`. */
  pusher?: Pusher;
}

/** An AbortSignal that fires when the client goes away before the response ended. */
function clientGone(ctx: Ctx): AbortSignal {
  const ac = new AbortController();
  ctx.res.on('close', () => {
    if (!ctx.res.writableFinished) ac.abort();
  });
  return ac.signal;
}

/**
 * Credentials as dockerd takes them: the X-Registry-Auth header (an undecodable one is ignored,
 * "to increase compatibility"), else an AuthConfig JSON body (the pre-1.x clients' format).
 */
async function pushAuth(ctx: Ctx): Promise<Credentials | undefined> {
  const header = ctx.req.headers['x-registry-auth'];
  const value = Array.isArray(header) ? header[0] : header;
  if (value !== undefined && value !== '') {
    try {
      return decodeRegistryAuthHeader(value);
    } catch {
      return undefined;
    }
  }
  try {
    const body = await readJson<unknown>(ctx.req, 64 * 1024);
    if (body === undefined) return undefined;
    return decodeRegistryAuthHeader(Buffer.from(JSON.stringify(body)).toString('base64'));
  } catch {
    return undefined;
  }
}

export function registerPushRoutes(router: Router, deps: PushRouteDeps): void {
  const pusher = deps.pusher ?? new Pusher({ images: deps.images, registry: deps.registry });

  router.post('/images/{name*}/push', async (ctx) => {
    const planOpts: PushPlanOptions = {};
    const tag = ctx.query.get('tag');
    if (tag) planOpts.tag = tag;
    const platform = ctx.query.get('platform');
    if (platform) planOpts.platform = parsePushPlatform(platform);
    const auth = await pushAuth(ctx);
    const plan = await pusher.plan(ctx.params.name!, planOpts);
    const stream = new LazyJsonStream(ctx.res);
    const opts: PushOptions = { progress: stream.write, signal: clientGone(ctx) };
    if (auth) opts.auth = auth;
    try {
      await pusher.push(plan, opts);
    } catch (err) {
      if (!stream.started) throw err;
      deps.images.log.warn({ image: ctx.params.name, err: errorMessage(err) }, 'push failed');
      stream.end(err);
      return;
    }
    stream.end();
  });
}
