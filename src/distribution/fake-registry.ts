// An in-memory OCI distribution registry on node:http, for unit tests of anything that talks to
// registries (the client here, pull, push). Not for production: no persistence, no limits.
//
//   const reg = await FakeRegistry.start({ auth: { kind: 'bearer', users: { u: 'p' }, anonymousPull: true } });
//   const cfg = reg.addBlob('a/b', Buffer.from('{}'));
//   reg.addManifest('a/b', 'latest', bytes, MediaType.OciManifest);
//   ... reg.host is "127.0.0.1:<port>", reg.requests / reg.tokenRequests record traffic ...
//   await reg.close();
//
// Auth modes: none; basic (users); bearer (token server at /token on the same origin unless
// `realm` is given; tokens grant exactly the requested scopes the user may have: anonymous
// pull when anonymousPull, users pull+push everywhere). `hook` sees every request first and may
// answer it itself (fault injection: drops, redirects, bad bodies).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomBytes } from 'node:crypto';
import { sha256, isDigest, type Digest } from '../core/digest.ts';

export type FakeAuth =
  | { kind: 'basic'; users: Record<string, string> }
  | { kind: 'bearer'; users?: Record<string, string>; anonymousPull?: boolean; realm?: string; expiresIn?: number };

export interface FakeRegistryOptions {
  auth?: FakeAuth;
  /** Serve Range requests on blobs (default true). */
  ranges?: boolean;
  /** Called first for every request; return true when it answered. */
  hook?: (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;
  /** Token table to use (share one between a token server and a registry on another origin). */
  tokens?: Map<string, FakeGrant>;
}

export interface LoggedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
}

interface Repo {
  blobs: Set<Digest>;
  manifests: Map<string, { bytes: Buffer; mediaType: string }>;
}

export interface FakeGrant {
  user: string | undefined;
  scopes: Set<string>; // "repo:action"
}

export class FakeRegistry {
  readonly server: Server;
  readonly opts: FakeRegistryOptions;
  readonly blobs = new Map<Digest, Buffer>();
  readonly repos = new Map<string, Repo>();
  readonly requests: LoggedRequest[] = [];
  readonly tokenRequests: { query: URLSearchParams; authorization?: string; method: string; body: string }[] = [];
  readonly tokens: Map<string, FakeGrant>;
  readonly uploads = new Map<string, { repo: string; parts: Buffer[] }>();
  host = '';

  private constructor(opts: FakeRegistryOptions) {
    this.opts = opts;
    this.tokens = opts.tokens ?? new Map();
    this.server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        if (!res.headersSent) this.#error(res, 500, 'UNKNOWN', String(err));
        else res.destroy();
      });
    });
  }

  static async start(opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
    const r = new FakeRegistry(opts);
    await new Promise<void>((resolve) => r.server.listen(0, '127.0.0.1', resolve));
    r.host = `127.0.0.1:${(r.server.address() as AddressInfo).port}`;
    return r;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #repo(name: string): Repo {
    let r = this.repos.get(name);
    if (!r) {
      r = { blobs: new Set(), manifests: new Map() };
      this.repos.set(name, r);
    }
    return r;
  }

  addBlob(repo: string, bytes: Buffer): { digest: Digest; size: number } {
    const digest = sha256(bytes);
    this.blobs.set(digest, bytes);
    this.#repo(repo).blobs.add(digest);
    return { digest, size: bytes.length };
  }

  addManifest(repo: string, tag: string | undefined, bytes: Buffer, mediaType: string): Digest {
    const digest = sha256(bytes);
    const r = this.#repo(repo);
    r.manifests.set(digest, { bytes, mediaType });
    if (tag) r.manifests.set(tag, { bytes, mediaType });
    return digest;
  }

  #error(res: ServerResponse, status: number, code: string, message: string, extra: Record<string, string> = {}): void {
    const body = JSON.stringify({ errors: [{ code, message, detail: null }] });
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...extra });
    res.end(body);
  }

  #challenge(scope: string | undefined): Record<string, string> {
    const a = this.opts.auth;
    if (!a) return {};
    if (a.kind === 'basic') return { 'www-authenticate': 'Basic realm="fake"' };
    const realm = a.realm ?? `${this.url}/token`;
    return { 'www-authenticate': `Bearer realm="${realm}",service="fake-registry"${scope ? `,scope="${scope}"` : ''}` };
  }

  #basicUser(h: string | undefined): string | undefined | null {
    const a = this.opts.auth;
    if (!h?.startsWith('Basic ') || !a || !a.users) return null;
    const raw = Buffer.from(h.slice(6), 'base64').toString();
    const i = raw.indexOf(':');
    const u = raw.slice(0, i);
    return a.users[u] !== undefined && a.users[u] === raw.slice(i + 1) ? u : undefined;
  }

  /** Whether the request may do `action` on `repo` (undefined repo: any authenticated access to /v2/). */
  #allowed(req: IncomingMessage, repo: string | undefined, action: string): boolean {
    const a = this.opts.auth;
    if (!a) return true;
    const h = req.headers.authorization;
    if (a.kind === 'basic') return typeof this.#basicUser(h) === 'string';
    if (!h?.startsWith('Bearer ')) return false;
    const g = this.tokens.get(h.slice(7));
    if (!g) return false;
    if (repo === undefined) return true;
    return g.scopes.has(`${repo}:${action}`);
  }

  async #token(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const a = this.opts.auth;
    if (!a || a.kind !== 'bearer') return this.#error(res, 404, 'NOT_FOUND', 'no token service');
    let body = '';
    for await (const c of req) body += String(c);
    const entry: FakeRegistry['tokenRequests'][number] = { query: url.searchParams, method: req.method ?? 'GET', body };
    if (req.headers.authorization) entry.authorization = req.headers.authorization;
    this.tokenRequests.push(entry);
    let user: string | undefined;
    let scopes = url.searchParams.getAll('scope');
    if (req.method === 'POST') {
      const form = new URLSearchParams(body);
      const rt = form.get('refresh_token');
      if (!rt?.startsWith('refresh-')) return this.#error(res, 401, 'UNAUTHORIZED', 'invalid refresh token');
      user = rt.slice('refresh-'.length);
      scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    } else if (req.headers.authorization) {
      const u = this.#basicUser(req.headers.authorization);
      if (typeof u !== 'string') return this.#error(res, 401, 'UNAUTHORIZED', 'incorrect username or password');
      user = u;
    }
    const grant: FakeGrant = { user, scopes: new Set() };
    for (const s of scopes) {
      const m = /^repository:([^:]+):(.+)$/.exec(s);
      if (!m) continue;
      for (const action of m[2]!.split(',')) {
        if (user !== undefined || (action === 'pull' && a.anonymousPull)) grant.scopes.add(`${m[1]}:${action}`);
      }
    }
    const token = 'tok-' + randomBytes(8).toString('hex');
    this.tokens.set(token, grant);
    const out = JSON.stringify({ token, access_token: token, expires_in: a.expiresIn ?? 300 });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(out);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    this.requests.push({ method: req.method ?? '', path: url.pathname + url.search, headers: req.headers });
    if (this.opts.hook && (await this.opts.hook(req, res, url))) return;
    if (url.pathname === '/token') return this.#token(req, res, url);
    if (url.pathname === '/v2/' || url.pathname === '/v2') {
      if (!this.#allowed(req, undefined, 'pull')) return this.#error(res, 401, 'UNAUTHORIZED', 'authentication required', this.#challenge(undefined));
      res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' });
      res.end('{}');
      return;
    }
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    if (!m) return this.#error(res, 404, 'NOT_FOUND', 'not found');
    const [, name, kind, rest] = m as unknown as [string, string, string, string];
    const writing = req.method !== 'GET' && req.method !== 'HEAD';
    const action = writing ? 'push' : 'pull';
    const scope = `repository:${name}:${writing ? 'pull,push' : 'pull'}`;
    if (!this.#allowed(req, name, action)) return this.#error(res, 401, 'UNAUTHORIZED', 'authentication required', this.#challenge(scope));
    if (kind === 'manifests') return this.#manifests(req, res, name, rest);
    if (rest === 'uploads/' || rest.startsWith('uploads/')) return this.#uploads(req, res, url, name, rest.slice('uploads/'.length));
    return this.#blob(req, res, name, rest);
  }

  async #manifests(req: IncomingMessage, res: ServerResponse, name: string, ref: string): Promise<void> {
    const repo = this.#repo(name);
    if (req.method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      const bytes = Buffer.concat(chunks);
      const digest = sha256(bytes);
      if (isDigest(ref) && ref !== digest) return this.#error(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
      this.addManifest(name, isDigest(ref) ? undefined : ref, bytes, req.headers['content-type'] ?? '');
      res.writeHead(201, { location: `/v2/${name}/manifests/${digest}`, 'docker-content-digest': digest, 'content-length': 0 });
      res.end();
      return;
    }
    const m = repo.manifests.get(ref);
    if (!m) return this.#error(res, 404, 'MANIFEST_UNKNOWN', 'manifest unknown');
    res.writeHead(200, { 'content-type': m.mediaType, 'content-length': m.bytes.length, 'docker-content-digest': sha256(m.bytes) });
    res.end(req.method === 'HEAD' ? undefined : m.bytes);
  }

  #blob(req: IncomingMessage, res: ServerResponse, name: string, ref: string): void {
    const d = ref as Digest;
    const bytes = this.#repo(name).blobs.has(d) ? this.blobs.get(d) : undefined;
    if (!bytes) return this.#error(res, 404, 'BLOB_UNKNOWN', 'blob unknown to registry');
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && this.opts.ranges !== false) {
      const from = Number(range[1]);
      res.writeHead(206, { 'content-type': 'application/octet-stream', 'content-length': bytes.length - from, 'content-range': `bytes ${from}-${bytes.length - 1}/${bytes.length}`, 'docker-content-digest': d });
      res.end(req.method === 'HEAD' ? undefined : bytes.subarray(from));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length, 'docker-content-digest': d, 'accept-ranges': 'bytes' });
    res.end(req.method === 'HEAD' ? undefined : bytes);
  }

  async #uploads(req: IncomingMessage, res: ServerResponse, url: URL, name: string, id: string): Promise<void> {
    if (req.method === 'POST' && id === '') {
      const mount = url.searchParams.get('mount');
      const from = url.searchParams.get('from');
      if (mount && from && isDigest(mount) && this.#repo(from).blobs.has(mount) && this.#allowed(req, from, 'pull')) {
        this.#repo(name).blobs.add(mount);
        res.writeHead(201, { location: `/v2/${name}/blobs/${mount}`, 'docker-content-digest': mount, 'content-length': 0 });
        res.end();
        return;
      }
      const uuid = randomBytes(8).toString('hex');
      this.uploads.set(uuid, { repo: name, parts: [] });
      res.writeHead(202, { location: `/v2/${name}/blobs/uploads/${uuid}?_state=x`, 'docker-upload-uuid': uuid, range: '0-0', 'content-length': 0 });
      res.end();
      return;
    }
    const up = this.uploads.get(id);
    if (!up || up.repo !== name) return this.#error(res, 404, 'BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry');
    if (req.method === 'DELETE') {
      this.uploads.delete(id);
      res.writeHead(204);
      res.end();
      return;
    }
    for await (const c of req) up.parts.push(c as Buffer);
    if (req.method === 'PATCH') {
      const n = up.parts.reduce((a, b) => a + b.length, 0);
      res.writeHead(202, { location: `/v2/${name}/blobs/uploads/${id}`, range: `0-${n - 1}`, 'content-length': 0 });
      res.end();
      return;
    }
    if (req.method !== 'PUT') return this.#error(res, 405, 'UNSUPPORTED', 'unsupported');
    const want = url.searchParams.get('digest') ?? '';
    const bytes = Buffer.concat(up.parts);
    if (!isDigest(want) || sha256(bytes) !== want) return this.#error(res, 400, 'DIGEST_INVALID', 'provided digest did not match uploaded content');
    this.uploads.delete(id);
    this.addBlob(name, bytes);
    res.writeHead(201, { location: `/v2/${name}/blobs/${want}`, 'docker-content-digest': want, 'content-length': 0 });
    res.end();
  }
}
