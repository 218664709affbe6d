// berth's registry: the OCI distribution spec 1.1 / Docker Registry HTTP API v2 over bare
// node:http (or node:https). Routes are matched by regex on the path because repository names
// contain '/'. Every error leaves through sendError with a code from registry-error.ts.
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Digest } from '../core/digest.ts';
import { MediaType } from '../core/oci.ts';
import type { Logger } from '../pkg/log.ts';
import type { Action, HtpasswdAuth } from './htpasswd-auth.ts';
import { checkDigest, checkName, parseManifestRef } from './names.ts';
import { registryError, toRegistryError, RegistryError } from './registry-error.ts';
import type { RegistryStore } from './registry-store.ts';

export interface RegistryServerOptions {
  store: RegistryStore;
  /** Require Basic credentials from this htpasswd file. */
  auth?: HtpasswdAuth;
  /** With auth: let requests without credentials pull (GET/HEAD); pushing still needs a login. */
  anonymousPull?: boolean;
  /** Refuse every write. */
  readOnly?: boolean;
  /** Allow DELETE of manifests, tags and blobs (off by default, as in Distribution). */
  allowDelete?: boolean;
  tls?: { cert: Buffer | string; key: Buffer | string };
  /**
   * HEAD of a blob the repository lacks but the registry holds links it for callers who may
   * push there (default on): clients skip uploads of content the registry already has.
   */
  implicitMount?: boolean;
  /** A connection silent this long is dropped (stalled or trickling clients). Default 120 s. */
  idleTimeoutMs?: number;
  log?: Logger;
  realm?: string;
}

const API_VERSION = ['Docker-Distribution-API-Version', 'registry/2.0'] as const;
const MAX_PAGE = 1000;
/** Refused bodies up to this size are read and dropped to keep the connection. */
const DRAIN_MAX = 1 << 20;
const JSON_TYPE = 'application/json; charset=utf-8';

const NAME = '(.+)';
const ROUTES: { re: RegExp; kind: 'manifest' | 'upload' | 'blob' | 'tags' | 'referrers' }[] = [
  { re: new RegExp(`^/v2/${NAME}/manifests/([^/]+)$`), kind: 'manifest' },
  { re: new RegExp(`^/v2/${NAME}/blobs/uploads/([^/]*)$`), kind: 'upload' },
  { re: new RegExp(`^/v2/${NAME}/blobs/([^/]+)$`), kind: 'blob' },
  { re: new RegExp(`^/v2/${NAME}/tags/list$`), kind: 'tags' },
  { re: new RegExp(`^/v2/${NAME}/referrers/([^/]+)$`), kind: 'referrers' },
];

function actionOf(method: string): Action {
  if (method === 'GET' || method === 'HEAD') return 'pull';
  if (method === 'DELETE') return 'delete';
  return 'push';
}

/** `Range: 0-<last>` as the spec reports upload progress (0-0 when empty, like Distribution). */
function rangeHeader(size: number): string {
  return `0-${size > 0 ? size - 1 : 0}`;
}

/** Content-Range of a chunk: "<start>-<end>" (Docker) or "bytes <start>-<end>[/<total>]". */
function parseContentRange(v: string | undefined): { start: number; end: number } | undefined {
  if (v === undefined) return undefined;
  const m = /^(?:bytes[ =])?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(v.trim());
  if (!m) throw registryError('RANGE_INVALID', 'invalid content range', { contentRange: v });
  const start = Number(m[1]);
  const end = Number(m[2]);
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start - 1) throw registryError('RANGE_INVALID', 'invalid content range', { contentRange: v });
  return { start, end };
}

function contentLength(req: IncomingMessage): number | undefined {
  const v = req.headers['content-length'];
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = contentLength(req);
  if (declared !== undefined && declared > limit) throw registryError('PAYLOAD_TOO_LARGE', `body exceeds limit of ${limit} bytes`);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const chunk of req) {
    n += (chunk as Buffer).length;
    if (n > limit) throw registryError('PAYLOAD_TOO_LARGE', `body exceeds limit of ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks, n);
}

function pageSize(q: URLSearchParams, dflt: number | undefined): number | undefined {
  const v = q.get('n');
  if (v === null || v === '') return dflt;
  if (!/^\d+$/.test(v)) throw registryError('PAGINATION_NUMBER_INVALID', 'invalid number of results requested', { n: v });
  // CVE-2023-2253: never size anything by the client's number; clamp it (the spec lets a
  // registry return fewer results, with a Link to the rest).
  return Math.min(Number(v), MAX_PAGE);
}

function paginate(all: string[], q: URLSearchParams, dflt: number | undefined, base: string): { items: string[]; link?: string } {
  const n = pageSize(q, dflt);
  const last = q.get('last');
  let items = last ? all.filter((x) => x > last) : all;
  if (n === undefined || items.length <= n) return { items };
  items = items.slice(0, n);
  if (n === 0) return { items };
  const next = new URLSearchParams({ n: String(n), last: items[items.length - 1]! });
  return { items, link: `<${base}?${next.toString()}>; rel="next"` };
}

export class RegistryServer {
  readonly store: RegistryStore;
  readonly opts: RegistryServerOptions;
  readonly server: Server;

  constructor(opts: RegistryServerOptions) {
    this.opts = opts;
    this.store = opts.store;
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }, handler) : createHttpServer(handler);
    // Large uploads may take long: no whole-request deadline, but a stalled socket is dropped.
    this.server.requestTimeout = 0;
    this.server.headersTimeout = 60_000;
    this.server.timeout = opts.idleTimeoutMs ?? 120_000;
    this.server.keepAliveTimeout = 30_000;
  }

  async listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  /** Stop listening, drop connections, and wait until acknowledged blobs are committed. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.store.flush();
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      await this.#route(req, res);
    } catch (err) {
      await this.#drainSmallBody(req);
      this.#sendError(req, res, err);
    }
  }

  /**
   * A refused request whose small body is still unread: read and drop it, so the answer can
   * keep the connection alive. Large or endless bodies are not read (the connection closes).
   */
  async #drainSmallBody(req: IncomingMessage): Promise<void> {
    const len = contentLength(req);
    if (req.complete || req.readableEnded || req.destroyed || len === undefined || len > DRAIN_MAX) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(done, 5000);
      function done() {
        clearTimeout(t);
        req.off('end', done);
        req.off('error', done);
        req.off('close', done);
        resolve();
      }
      req.on('end', done);
      req.on('error', done);
      req.on('close', done);
      req.resume();
    });
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '/';
    const qi = url.indexOf('?');
    const path = qi < 0 ? url : url.slice(0, qi);
    const method = req.method ?? 'GET';
    if (path === '/healthz') {
      res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Cache-Control': 'no-store' });
      res.end(method === 'HEAD' ? undefined : '{"status":"ok"}');
      return;
    }
    if (path !== '/v2' && !path.startsWith('/v2/')) throw registryError('NOT_FOUND', 'no such endpoint', { path });
    const action = actionOf(method);
    const user = await this.#authenticate(req, action, path);
    if (path === '/v2/' || path === '/v2') {
      if (method !== 'GET' && method !== 'HEAD') throw registryError('UNSUPPORTED', 'method not allowed');
      res.writeHead(200, { 'Content-Type': JSON_TYPE, 'Content-Length': '2', [API_VERSION[0]]: API_VERSION[1] });
      res.end(method === 'HEAD' ? undefined : '{}');
      return;
    }
    const q = new URLSearchParams(qi < 0 ? '' : url.slice(qi + 1));
    if (path === '/v2/_catalog') {
      if (method !== 'GET') throw registryError('UNSUPPORTED', 'method not allowed');
      const page = paginate(await this.store.catalog(), q, MAX_PAGE, '/v2/_catalog');
      this.#json(res, 200, { repositories: page.items }, page.link ? { Link: page.link } : {});
      return;
    }
    for (const r of ROUTES) {
      const m = r.re.exec(path);
      if (!m) continue;
      let name: string;
      let ref: string;
      try {
        name = decodeURIComponent(m[1]!);
        ref = decodeURIComponent(m[2] ?? '');
      } catch {
        throw registryError('NAME_INVALID', 'invalid repository name');
      }
      checkName(name);
      if (action !== 'pull') this.#checkWritable(action);
      switch (r.kind) {
        case 'manifest': return this.#manifest(req, res, method, name, ref);
        case 'blob': return this.#blob(req, res, method, name, ref, user);
        case 'upload': return this.#upload(req, res, method, name, ref, q, user);
        case 'tags': return this.#tags(res, method, name, q);
        case 'referrers': return this.#referrers(res, method, name, ref, q);
      }
    }
    throw registryError('NOT_FOUND', 'no such endpoint', { path });
  }

  /** Returns the user ('' for anonymous) or throws UNAUTHORIZED with a Basic challenge. */
  async #authenticate(req: IncomingMessage, action: Action, path: string): Promise<string> {
    const auth = this.opts.auth;
    if (!auth) return '';
    const user = await auth.verify(req.headers.authorization);
    if (user === undefined) throw registryError('UNAUTHORIZED', 'authentication required');
    // The base endpoint always challenges anonymous callers, so clients learn to log in
    // before they push; with anonymous pull they carry on without credentials.
    if (user === '' && !(this.opts.anonymousPull && action === 'pull' && path !== '/v2/' && path !== '/v2')) {
      throw registryError('UNAUTHORIZED', 'authentication required');
    }
    return user;
  }

  /** Whether `user` may do `action` on `name`. Today all-or-nothing: a login may do everything. */
  #may(user: string, action: Action, _name: string): boolean {
    if (!this.opts.auth) return true;
    return user !== '' || (action === 'pull' && this.opts.anonymousPull === true);
  }

  /**
   * Implicit mounts need push rights on `name` and pull rights on whichever repository holds
   * the blob; with all-or-nothing logins, a caller who may push may pull everything.
   */
  #mayMountImplicitly(user: string, name: string): boolean {
    if (this.opts.readOnly || this.opts.implicitMount === false) return false;
    return this.#may(user, 'push', name) && this.#may(user, 'pull', '*');
  }

  #checkWritable(action: Action): void {
    if (this.opts.readOnly) throw registryError('UNSUPPORTED', 'registry is read-only');
    if (action === 'delete' && !this.opts.allowDelete) throw registryError('UNSUPPORTED', 'deletes are disabled (start with --delete)');
  }

  // ---- manifests ------------------------------------------------------------------------

  async #manifest(req: IncomingMessage, res: ServerResponse, method: string, name: string, refText: string): Promise<void> {
    const ref = parseManifestRef(refText);
    if (method === 'GET' || method === 'HEAD') {
      const entry = await this.store.getManifest(name, ref);
      if (!entry) throw registryError('MANIFEST_UNKNOWN', 'manifest unknown', ref.tag ? { tag: ref.tag } : { digest: ref.digest });
      const inm = req.headers['if-none-match'];
      if (inm !== undefined && (inm === `"${entry.digest}"` || inm === entry.digest)) {
        res.writeHead(304, ['ETag', `"${entry.digest}"`, 'Docker-Content-Digest', entry.digest, ...API_VERSION]);
        res.end();
        return;
      }
      res.writeHead(200, entry.headers);
      res.end(method === 'HEAD' ? undefined : entry.body);
      return;
    }
    if (method === 'PUT') {
      const body = await readBody(req, this.store.maxManifestBytes);
      const { digest, subject } = await this.store.putManifest(name, ref, req.headers['content-type'], body);
      const headers: Record<string, string> = {
        Location: `/v2/${name}/manifests/${digest}`,
        'Docker-Content-Digest': digest,
        'Content-Length': '0',
        [API_VERSION[0]]: API_VERSION[1],
      };
      if (subject) headers['OCI-Subject'] = subject;
      res.writeHead(201, headers);
      res.end();
      return;
    }
    if (method === 'DELETE') {
      await this.store.deleteManifest(name, ref);
      this.#empty(res, 202);
      return;
    }
    throw registryError('UNSUPPORTED', 'method not allowed');
  }

  // ---- blobs ----------------------------------------------------------------------------

  async #blob(req: IncomingMessage, res: ServerResponse, method: string, name: string, refText: string, user: string): Promise<void> {
    const digest = checkDigest(refText);
    if (method === 'DELETE') {
      await this.store.deleteBlob(name, digest);
      this.#empty(res, 202, { 'Docker-Content-Digest': digest });
      return;
    }
    if (method !== 'GET' && method !== 'HEAD') throw registryError('UNSUPPORTED', 'method not allowed');
    let st = await this.store.blobStat(name, digest);
    if (!st && method === 'HEAD' && this.#mayMountImplicitly(user, name)) {
      // The existence check a client makes before uploading: when the registry already holds
      // the bytes, link them into this repository (a mount without `from`) and spare the
      // client the upload. GET stays strict, so a deleted blob still reads as gone.
      st = await this.store.linkExisting(name, digest);
    }
    if (!st) throw registryError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    const headers: Record<string, string> = {
      'Content-Type': 'application/octet-stream',
      'Docker-Content-Digest': digest,
      ETag: `"${digest}"`,
      'Accept-Ranges': 'bytes',
      'Cache-Control': 'max-age=31536000',
      [API_VERSION[0]]: API_VERSION[1],
    };
    let start = 0;
    let end = st.size - 1;
    let status = 200;
    const range = req.headers.range;
    if (range !== undefined) {
      const r = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      if (r && (r[1] !== '' || r[2] !== '')) {
        if (r[1] === '') {
          start = Math.max(0, st.size - Number(r[2]));
        } else {
          start = Number(r[1]);
          if (r[2] !== '') end = Math.min(Number(r[2]), st.size - 1);
        }
        if (start >= st.size || start > end) {
          res.writeHead(416, { 'Content-Range': `bytes */${st.size}`, 'Content-Length': '0', [API_VERSION[0]]: API_VERSION[1] });
          res.end();
          return;
        }
        status = 206;
        headers['Content-Range'] = `bytes ${start}-${end}/${st.size}`;
      }
      // Other forms (multiple ranges) are ignored: the whole blob is served.
    }
    headers['Content-Length'] = String(end - start + 1);
    if (method === 'HEAD' || st.size === 0) {
      res.writeHead(status, headers);
      res.end();
      return;
    }
    res.writeHead(status, headers);
    await this.store.sendBlob(digest, res, start, end);
    res.end();
  }

  // ---- uploads --------------------------------------------------------------------------

  async #upload(req: IncomingMessage, res: ServerResponse, method: string, name: string, uuid: string, q: URLSearchParams, user: string): Promise<void> {
    const location = (id: string) => `/v2/${name}/blobs/uploads/${id}`;
    const progress = (id: string, size: number): Record<string, string> => ({
      Location: location(id),
      Range: rangeHeader(size),
      'Docker-Upload-UUID': id,
    });
    const created = (digest: Digest) => this.#empty(res, 201, { Location: `/v2/${name}/blobs/${digest}`, 'Docker-Content-Digest': digest });

    if (uuid === '') {
      if (method !== 'POST') throw registryError('UNSUPPORTED', 'method not allowed');
      const mount = q.get('mount');
      const from = q.get('from');
      if (mount !== null && from !== null) {
        const digest = checkDigest(mount);
        let fromOk = false;
        try {
          checkName(from);
          fromOk = true;
        } catch {
          // an invalid source falls back to a plain upload, as the spec asks
        }
        if (fromOk && this.#may(user, 'pull', from) && (await this.store.mountBlob(name, from, digest))) {
          created(digest);
          return;
        }
      }
      const digestParam = q.get('digest');
      const uuidNew = await this.store.startUpload(name);
      if (digestParam !== null) {
        // Monolithic upload: the body is the whole blob.
        const digest = checkDigest(digestParam);
        try {
          const st = await this.store.finishUpload(name, uuidNew, digest, req, undefined, contentLength(req));
          created(st.digest);
        } catch (err) {
          await this.store.cancelUpload(name, uuidNew).catch(() => {});
          throw err;
        }
        return;
      }
      this.#empty(res, 202, progress(uuidNew, 0));
      return;
    }

    if (method === 'GET') {
      const size = await this.store.uploadSize(name, uuid);
      this.#empty(res, 204, progress(uuid, size));
      return;
    }
    if (method === 'PATCH') {
      const cr = parseContentRange(req.headers['content-range']);
      const len = contentLength(req);
      if (cr && len !== undefined && cr.end - cr.start + 1 !== len) throw registryError('RANGE_INVALID', 'content range does not match content length', { size: await this.store.uploadSize(name, uuid) });
      const size = await this.#withRange(name, uuid, () => this.store.appendUpload(name, uuid, req, cr?.start, len));
      this.#empty(res, 202, progress(uuid, size));
      return;
    }
    if (method === 'PUT') {
      const digestParam = q.get('digest');
      if (digestParam === null) throw registryError('DIGEST_INVALID', 'digest missing', { uuid });
      const digest = checkDigest(digestParam);
      const cr = parseContentRange(req.headers['content-range']);
      const len = contentLength(req);
      const hasBody = (len !== undefined && len > 0) || req.headers['transfer-encoding'] !== undefined;
      const st = await this.#withRange(name, uuid, () => this.store.finishUpload(name, uuid, digest, hasBody ? req : undefined, cr?.start, len));
      created(st.digest);
      return;
    }
    if (method === 'DELETE') {
      await this.store.cancelUpload(name, uuid);
      this.#empty(res, 204);
      return;
    }
    throw registryError('UNSUPPORTED', 'method not allowed');
  }

  /** Attach the upload's Location and Range to a 416, so the client can resume. */
  async #withRange<T>(name: string, uuid: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof RegistryError && err.code === 'RANGE_INVALID') {
        const size = (err.detail as { size?: number } | undefined)?.size;
        if (size !== undefined) {
          (err as RegistryError & { headers?: Record<string, string> }).headers = {
            Location: `/v2/${name}/blobs/uploads/${uuid}`,
            Range: rangeHeader(size),
            'Docker-Upload-UUID': uuid,
          };
        }
      }
      throw err;
    }
  }

  // ---- listings -------------------------------------------------------------------------

  async #tags(res: ServerResponse, method: string, name: string, q: URLSearchParams): Promise<void> {
    if (method !== 'GET') throw registryError('UNSUPPORTED', 'method not allowed');
    const tags = await this.store.listTags(name);
    if (!tags) throw registryError('NAME_UNKNOWN', 'repository name not known to registry', { name });
    const page = paginate(tags, q, undefined, `/v2/${name}/tags/list`);
    this.#json(res, 200, { name, tags: page.items }, page.link ? { Link: page.link } : {});
  }

  async #referrers(res: ServerResponse, method: string, name: string, ref: string, q: URLSearchParams): Promise<void> {
    if (method !== 'GET') throw registryError('UNSUPPORTED', 'method not allowed');
    const digest = checkDigest(ref);
    const artifactType = q.get('artifactType') ?? undefined;
    const manifests = await this.store.referrers(name, digest, artifactType);
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests });
    const headers: Record<string, string> = {
      'Content-Type': MediaType.OciIndex,
      'Content-Length': String(Buffer.byteLength(body)),
      [API_VERSION[0]]: API_VERSION[1],
    };
    if (artifactType !== undefined) headers['OCI-Filters-Applied'] = 'artifactType';
    res.writeHead(200, headers);
    res.end(body);
  }

  // ---- responses ------------------------------------------------------------------------

  #empty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
    res.writeHead(status, { ...headers, 'Content-Length': '0', [API_VERSION[0]]: API_VERSION[1] });
    res.end();
  }

  #json(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
    const body = JSON.stringify(value);
    res.writeHead(status, { ...headers, 'Content-Type': JSON_TYPE, 'Content-Length': String(Buffer.byteLength(body)), [API_VERSION[0]]: API_VERSION[1] });
    res.end(body);
  }

  #sendError(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    const e = toRegistryError(err);
    if (e.code === 'UNKNOWN') this.opts.log?.error({ method: req.method, url: req.url, err: String((err as Error)?.stack ?? err) }, 'registry request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = req.method === 'HEAD' ? '' : e.body();
    const headers: Record<string, string> = {
      ...((e as RegistryError & { headers?: Record<string, string> }).headers ?? {}),
      'Content-Type': JSON_TYPE,
      'Content-Length': String(Buffer.byteLength(body)),
      [API_VERSION[0]]: API_VERSION[1],
    };
    if (e.code === 'UNAUTHORIZED') headers['WWW-Authenticate'] = `Basic realm="${this.opts.realm ?? 'berth-registry'}"`;
    // A body we did not read (refused early, or cut short) must not be parsed as the next
    // request, nor drained forever: close the connection after the answer.
    if (!req.complete) headers.Connection = 'close';
    res.writeHead(e.status, headers);
    res.end(body);
  }
}
