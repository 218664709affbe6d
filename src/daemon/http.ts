// A small regex router for the Docker Engine API on node:http. Docker paths carry image names
// with '/' (`/images/127.0.0.1:5000/a/b:tag/json`), so routes are regexes with named groups,
// tried in registration order (literal routes such as `/images/json` go first).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { httpStatus, errorMessage, invalidArgument, kindOf } from '../core/errors.ts';

export const API_VERSION = '1.44';
export const MIN_API_VERSION = '1.24';
export const MAX_API_VERSION = '1.51';

export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** API version from the path prefix, or the daemon's default. */
  version: string;
  path: string;
}

export type Handler = (ctx: Ctx) => Promise<void> | void;

interface Route {
  method: string;
  re: RegExp;
  handler: Handler;
}

/** `/images/{name*}/json` style patterns: `{x}` matches one segment, `{x*}` one or more. */
function compile(pattern: string): RegExp {
  const src = pattern.replace(/[.+?^$()|[\]\\]/g, '\\$&').replace(/\{(\w+)(\*)?\}/g, (_m, name: string, star?: string) =>
    star ? `(?<${name}>.+)` : `(?<${name}>[^/]+)`,
  );
  return new RegExp(`^${src}$`);
}

export class Router {
  #routes: Route[] = [];

  add(method: string, pattern: string, handler: Handler): this {
    this.#routes.push({ method, re: compile(pattern), handler });
    return this;
  }
  get(p: string, h: Handler): this { return this.add('GET', p, h); }
  post(p: string, h: Handler): this { return this.add('POST', p, h); }
  put(p: string, h: Handler): this { return this.add('PUT', p, h); }
  delete(p: string, h: Handler): this { return this.add('DELETE', p, h); }
  head(p: string, h: Handler): this { return this.add('HEAD', p, h); }

  match(method: string, path: string): { handler: Handler; params: Record<string, string> } | 'method' | undefined {
    let pathMatched = false;
    for (const r of this.#routes) {
      const m = r.re.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (r.method !== method) continue;
      const params: Record<string, string> = {};
      for (const [k, v] of Object.entries(m.groups ?? {})) params[k] = decodeURIComponent(v);
      return { handler: r.handler, params };
    }
    return pathMatched ? 'method' : undefined;
  }
}

function versionLess(a: string, b: string): boolean {
  const [a1 = 0, a2 = 0] = a.split('.').map(Number);
  const [b1 = 0, b2 = 0] = b.split('.').map(Number);
  return a1 < b1 || (a1 === b1 && a2 < b2);
}

export function versionAtLeast(v: string, min: string): boolean {
  return !versionLess(v, min);
}

/** Split `/v1.43/containers/json` into version and path. */
export function splitVersion(rawPath: string): { version: string; path: string } {
  const m = /^\/v(\d+\.\d+)(\/.*)$/.exec(rawPath);
  if (!m) return { version: API_VERSION, path: rawPath };
  const version = m[1]!;
  if (versionLess(version, MIN_API_VERSION)) {
    throw invalidArgument(`client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
  if (versionLess(MAX_API_VERSION, version)) {
    throw invalidArgument(`client version ${version} is too new. Maximum supported API version is ${MAX_API_VERSION}`);
  }
  return { version, path: m[2]! };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(data) });
  res.end(data);
}

export function sendError(res: ServerResponse, err: unknown): void {
  const status = httpStatus(err);
  if (res.headersSent) {
    // Mid-stream: Docker's JSON message streams carry the error in-band.
    if (!res.writableEnded) res.end(JSON.stringify({ errorDetail: { message: errorMessage(err) }, error: errorMessage(err) }) + '\n');
    return;
  }
  sendJson(res, status, { message: errorMessage(err) });
}

export function noContent(res: ServerResponse, status = 204): void {
  res.writeHead(status);
  res.end();
}

export async function readBody(req: IncomingMessage, limit = 16 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) throw invalidArgument(`request body exceeds ${limit} bytes`);
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}

export async function readJson<T>(req: IncomingMessage, limit?: number): Promise<T | undefined> {
  const b = await readBody(req, limit);
  if (b.length === 0) return undefined;
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch (err) {
    throw invalidArgument(`invalid JSON: ${errorMessage(err)}`);
  }
}

/** Docker booleans in query strings: "1", "true", "True". */
export function queryBool(q: URLSearchParams, name: string, dflt = false): boolean {
  const v = q.get(name);
  if (v === null || v === '') return dflt;
  return !(v === '0' || v.toLowerCase() === 'false');
}

/** Docker's `filters` query parameter: {"key":["v"]} or the legacy {"key":{"v":true}}. */
export function parseFilters(q: URLSearchParams): Map<string, string[]> {
  const raw = q.get('filters');
  const out = new Map<string, string[]>();
  if (!raw) return out;
  let obj: unknown;
  try {
    obj = JSON.parse(raw);
  } catch {
    throw invalidArgument(`invalid filter: ${raw}`);
  }
  if (typeof obj !== 'object' || obj === null) throw invalidArgument(`invalid filter: ${raw}`);
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    if (Array.isArray(v)) out.set(k, v.map(String));
    else if (typeof v === 'object' && v !== null) out.set(k, Object.keys(v).filter((x) => (v as Record<string, unknown>)[x]));
    else throw invalidArgument(`invalid filter ${k}`);
  }
  return out;
}

/** Start a Docker JSON-message stream (pull, push, load, build progress). */
export function startJsonStream(res: ServerResponse): (msg: object) => void {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  return (msg: object) => {
    if (!res.writableEnded) res.write(JSON.stringify(msg) + '\r\n');
  };
}

export { kindOf };
