// A small client of the Docker Engine API over a unix socket (or tcp://), the transport the moby
// Go client uses: versioned paths (/v1.44/...) negotiated from `_ping`'s API-Version header,
// JSON request bodies, streaming response bodies, and hijacked connections (attach, exec start)
// with `Connection: Upgrade` / `Upgrade: tcp`.
//
// Contract: every request resolves with the response once its headers have arrived, so a caller
// can order calls on the daemon (docker sends `wait` and sees its headers before `start`).
// Status >= 400 rejects with an ApiError whose message is moby's wording,
// "Error response from daemon: <message>", and whose `kind` comes from the status.
//
// The transport is ./http1.ts (node:net, one connection per request), not node:http: loading
// node:http and running its request machinery was ~10 ms of every CLI run.
import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import { BerthError, kindFromStatus } from '../core/errors.ts';
import { request as http1Request, type Http1Response, type Http1Target } from './http1.ts';

/** A response whose head has arrived: statusCode, statusMessage, lower-cased headers, the body. */
export type ApiResponse = Http1Response;

/** The API version this client speaks; lowered to the daemon's when the daemon is older. */
export const CLIENT_API_VERSION = '1.44';
/** What a daemon that does not send API-Version is assumed to speak (moby's fallback). */
export const FALLBACK_API_VERSION = '1.24';
export const DEFAULT_HOST = 'unix:///run/berth/berth.sock';

export class ApiError extends BerthError {
  readonly status: number;
  /** The daemon's own message, without moby's prefix. */
  readonly daemonMessage: string;
  constructor(status: number, daemonMessage: string) {
    super(kindFromStatus(status), `Error response from daemon: ${daemonMessage}`);
    this.status = status;
    this.daemonMessage = daemonMessage;
  }
}

/** The daemon could not be reached at all. */
export class ConnectError extends Error {
  readonly host: string;
  constructor(host: string, cause: unknown) {
    super(`Cannot connect to the berth daemon at ${host}. Is the berth daemon running?`, { cause });
    this.host = host;
  }
}

export type QueryValue = string | number | boolean | string[] | undefined;

export interface RequestOptions {
  query?: Record<string, QueryValue>;
  /** A JSON value, or a raw body (Buffer or stream) sent with `contentType`. */
  body?: unknown;
  contentType?: string;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export interface Hijacked {
  /** The raw connection: daemon output to read, container stdin to write. */
  socket: Duplex;
  headers: IncomingHttpHeaders;
}

export function parseHost(host: string): Http1Target {
  if (host.startsWith('unix://')) {
    const p = host.slice('unix://'.length);
    if (!p) throw new Error(`unable to parse docker host \`${host}\``);
    return { socketPath: p };
  }
  if (host.startsWith('/')) return { socketPath: host };
  const m = /^(?:tcp|http):\/\/(\[[^\]]+\]|[^:/]+)(?::(\d+))?\/?$/.exec(host);
  if (m) return { host: m[1]!.replace(/^\[|\]$/g, ''), port: m[2] ? Number(m[2]) : 2375 };
  throw new Error(`unable to parse docker host \`${host}\``);
}

function encodeQuery(q: Record<string, QueryValue> | undefined): string {
  if (!q) return '';
  // Keys sorted, as Go's url.Values.Encode does (the docker CLI's query strings).
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(q).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (v === undefined || v === false) continue;
    if (Array.isArray(v)) for (const x of v) p.append(k, x);
    else p.set(k, v === true ? '1' : String(v));
  }
  // Go's url.QueryEscape: '*' escaped, '~' not (URLSearchParams does the opposite).
  const s = p.toString().replaceAll('*', '%2A').replaceAll('%7E', '~');
  return s ? `?${s}` : '';
}

function versionLess(a: string, b: string): boolean {
  const [a1 = 0, a2 = 0] = a.split('.').map(Number);
  const [b1 = 0, b2 = 0] = b.split('.').map(Number);
  return a1 < b1 || (a1 === b1 && a2 < b2);
}

export function versionAtLeast(v: string, min: string): boolean {
  return !versionLess(v, min);
}

function isRawBody(b: unknown): b is Buffer | Readable {
  return Buffer.isBuffer(b) || (typeof b === 'object' && b !== null && typeof (b as Readable).pipe === 'function');
}

/**
 * The rest of a stream, to its end; rejects with its error, or when it closes before its end.
 * (With events, not `for await`: a run's first async iteration of a stream costs ~0.5 ms of
 * Node's own stream code compiling.)
 */
export function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const r = stream as Readable;
  return new Promise((resolve, reject) => {
    if (r.errored) return reject(r.errored);
    if (r.readableEnded) return resolve(Buffer.alloc(0));
    if (r.destroyed) return reject(prematureClose());
    const chunks: Buffer[] = [];
    r.on('data', (c: Buffer | string) => chunks.push(typeof c === 'string' ? Buffer.from(c) : c));
    r.once('end', () => resolve(Buffer.concat(chunks)));
    r.once('error', reject);
    r.once('close', () => {
      if (!r.readableEnded) reject(r.errored ?? prematureClose());
    });
  });
}

/** What `for await` over a stream throws when the stream closes before its end. */
function prematureClose(): Error {
  return Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
}

async function errorFromResponse(res: ApiResponse): Promise<ApiError> {
  const text = (await readAll(res)).toString('utf8').trim();
  let msg = text;
  try {
    const j = JSON.parse(text) as { message?: unknown };
    if (typeof j.message === 'string') msg = j.message;
  } catch {
    // plain-text error body
  }
  if (!msg) msg = `${res.statusCode} ${res.statusMessage ?? ''}`.trim();
  return new ApiError(res.statusCode, msg);
}

export class ApiClient {
  readonly host: string;
  readonly #endpoint: Http1Target;
  readonly #userAgent: string;
  #version: string;
  #negotiated = false;
  #pinned: boolean;
  #ping?: Promise<void>;
  /** Headers of the last `_ping`: OSType, Docker-Experimental, ... */
  pingHeaders: IncomingHttpHeaders = {};

  readonly #debug?: (msg: string) => void;

  constructor(host: string, opts: { version?: string; userAgent?: string; debug?: (msg: string) => void } = {}) {
    this.host = host;
    this.#debug = opts.debug;
    this.#endpoint = parseHost(host);
    this.#version = opts.version ?? CLIENT_API_VERSION;
    this.#pinned = opts.version !== undefined;
    this.#userAgent = opts.userAgent ?? 'berth-cli/0.1.0';
  }

  /** The negotiated API version (after the first request). */
  get version(): string {
    return this.#version;
  }

  /** `HEAD /_ping` (then `GET` if HEAD is refused); lowers the version to the daemon's. */
  negotiate(): Promise<void> {
    this.#ping ??= (async () => {
      let res: ApiResponse;
      try {
        res = await this.#send('HEAD', '/_ping', {});
        if (res.statusCode >= 400) {
          res.resume();
          res = await this.#send('GET', '/_ping', {});
        }
      } catch (err) {
        throw err instanceof ApiError ? err : new ConnectError(this.host, err);
      }
      res.resume();
      this.pingHeaders = res.headers;
      if (this.#pinned) return;
      const v = res.headers['api-version'];
      const server = typeof v === 'string' && /^\d+\.\d+$/.test(v) ? v : FALLBACK_API_VERSION;
      if (versionLess(server, this.#version)) this.#version = server;
      this.#negotiated = true;
    })();
    return this.#ping;
  }

  #send(method: string, path: string, opts: RequestOptions, extraHeaders: Record<string, string> = {}, upgrade = false): Promise<ApiResponse> {
    const headers: Record<string, string> = { 'User-Agent': this.#userAgent, ...extraHeaders, ...opts.headers };
    let body: Buffer | Readable | undefined;
    if (opts.body !== undefined) {
      if (isRawBody(opts.body)) {
        body = opts.body;
        headers['Content-Type'] = opts.contentType ?? 'application/x-tar';
      } else {
        body = Buffer.from(JSON.stringify(opts.body));
        headers['Content-Type'] = 'application/json';
      }
    }
    const target = path + encodeQuery(opts.query);
    this.#debug?.(`${method} ${target}${upgrade ? ' (hijack)' : ''}`);
    return http1Request(this.#endpoint, { method, path: target, headers, body, signal: opts.signal, upgrade });
  }

  #versioned(path: string): string {
    return `/v${this.#version}${path}`;
  }

  /** Send a request; reject with ApiError on status >= 400. The body is left to the caller. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse> {
    await this.negotiate();
    let res: ApiResponse;
    try {
      res = await this.#send(method, this.#versioned(path), opts);
    } catch (err) {
      if ((err as Error).name === 'AbortError' || err instanceof BerthError) throw err;
      throw new ConnectError(this.host, err);
    }
    if (res.statusCode >= 400) throw await errorFromResponse(res);
    return res;
  }

  /** A request whose response body is JSON (or empty: undefined). */
  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    const text = (await readAll(res)).toString('utf8');
    return (text.trim() === '' ? undefined : JSON.parse(text)) as T;
  }

  /** A request whose response body is ignored (204s, 200s without interest). */
  async call(method: string, path: string, opts: RequestOptions = {}): Promise<void> {
    const res = await this.request(method, path, opts);
    res.resume();
    await new Promise((r) => res.on('end', r).on('close', r));
  }

  /**
   * A hijacked request (attach, exec start): the daemon answers `101 UPGRADED` and the socket
   * carries the raw (TTY) or multiplexed stream both ways.
   */
  async hijack(method: string, path: string, opts: RequestOptions = {}): Promise<Hijacked> {
    await this.negotiate();
    let res: ApiResponse;
    try {
      // Always a connection of its own (http1 never pools), so the socket is ours to keep.
      res = await this.#send(method, this.#versioned(path), opts, { Connection: 'Upgrade', Upgrade: 'tcp' }, true);
    } catch (err) {
      if ((err as Error).name === 'AbortError' || err instanceof BerthError) throw err;
      throw new ConnectError(this.host, err);
    }
    if (res.upgraded) return { socket: res.upgraded, headers: res.headers };
    if (res.statusCode >= 400) throw await errorFromResponse(res);
    // A daemon that answers 200 without upgrading still streams the output in the body.
    return { socket: res as unknown as Duplex, headers: res.headers };
  }

  get negotiated(): boolean {
    return this.#negotiated;
  }
}
