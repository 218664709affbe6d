// OCI distribution-spec client: what pull, push and login use to talk to registries.
//
//   const rc = new RegistryClient({ insecureRegistries, auth, userAgent, platform });
//   const perRequest = rc.withAuth(staticAuth(decodeRegistryAuthHeader(xRegistryAuth)));
//
// Pull side
//   resolve(ref, {platform, signal})            -> { manifest, manifestDigest, manifestBytes, mediaType, index?, descriptor? }
//       GET the manifest by tag or digest; an index/list is narrowed to one platform (default:
//       the client's, else the host's) and that manifest fetched by digest. Verified: by-digest
//       bytes hash to the digest, Docker-Content-Digest when sent, the child's size; refused:
//       > MAX_MANIFEST_BYTES (never buffered past it), schema 1, ambiguous documents.
//   getManifest(repo, tagOrDigest, {signal})     -> { kind, mediaType, document, digest, bytes } (no platform step)
//   headManifest(repo, tagOrDigest, {signal})    -> { digest, mediaType, size } | undefined (HEAD, no body)
//   fetchBlob(repo, desc, {signal, onProgress})  -> Readable of the blob's bytes. Follows redirects
//       (dropping Authorization on any change of origin); retries transient failures before the
//       first byte; resumes a dropped body with Range. It does NOT verify the digest: pipe it
//       through ContentStore (or verifyingStream(desc)); it does fail past desc.size.
//   fetchBlobBytes(repo, desc, {signal, maxBytes}) -> Buffer, verified (configs; bounded, default 32 MiB)
// Push side
//   blobExists(repo, digest)                     -> boolean (HEAD)
//   mountBlob(repo, digest, fromRepoPath)        -> true when mounted (201); false (202) means upload it
//   uploadBlob(repo, desc, () => Readable)       -> POST /blobs/uploads/ then one PUT ?digest= (monolithic)
//   putManifest(repo, tagOrDigest, bytes, mediaType) -> the manifest's digest
// Login
//   checkLogin(registry, creds)                  -> { status: 'Login Succeeded' } or Unauthorized
//
// `repo` is anything with { domain, path } (a Reference): domain "docker.io" is served from
// registry-1.docker.io. Errors use the taxonomy: 401 Unauthorized ("unauthorized: authentication
// required"), 403 Forbidden ("denied: ..."), missing manifest NotFound ("manifest for X not found:
// manifest unknown"), transport failures Unavailable naming the URL, bad content DataLoss.
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { hasherFor, digestAlgorithm, isDigest, parseDigest, sha256, type Digest } from '../core/digest.ts';
import {
  BerthError, dataLoss, forbidden, invalidArgument, isKind, notFound, notImplemented, unauthorized, unavailable,
} from '../core/errors.ts';
import { MAX_MANIFEST_BYTES, hostPlatform, type Descriptor, type ImageIndex, type ImageManifest, type Platform } from '../core/oci.ts';
import { familiarString, isValidRepositoryPath, isValidTag, type Reference } from '../core/reference.ts';
import { Authenticator, AuthState, parseChallenges, readBounded, readBoundedBytes, registryErrorText, repositoryScope } from './auth.ts';
import { normalizeRegistry, type AuthProvider, type Credentials } from './credentials.ts';
import { MANIFEST_ACCEPT, bareMediaType, classifyManifest, selectPlatform, type ManifestDocument } from './manifest-document.ts';
import {
  createAgent, endpointFor, header, headerAll, isLoopbackHostname, isTransientNetworkError, isTransientStatus,
  mayCarryCredentials, networkError, type Endpoint,
} from './transport.ts';
import { verifyingStream } from './verifying-stream.ts';

export { verifyingStream, VerifyingStream } from './verifying-stream.ts';
export { selectPlatform, classifyManifest, MANIFEST_ACCEPT } from './manifest-document.ts';

/** A repository: a Reference, or just its registry and path. */
export type RepositoryRef = Pick<Reference, 'domain' | 'path'>;

export interface RegistryClientOptions {
  /** Registries spoken to over plain http (host:port, host, or IPv4 CIDR); loopback always is. */
  insecureRegistries?: string[];
  auth?: AuthProvider;
  userAgent?: string;
  /** Default platform for index selection (else the host's). */
  platform?: Platform;
  /** Share a transport (connection pools) between clients; else one is created (see close()). */
  dispatcher?: Dispatcher;
  /** Connections per registry origin when creating the transport (default 8). */
  connections?: number;
  /** Attempts for a request before its first byte (default 4) and the first back-off (default 250 ms, doubling). */
  retry?: { attempts?: number; baseDelayMs?: number };
  /** Range resumes of one blob body after dropped connections (default 5). */
  maxResumes?: number;
}

export interface ResolveOptions {
  platform?: Platform;
  signal?: AbortSignal;
}

export interface ResolvedImage {
  manifest: ImageManifest;
  manifestDigest: Digest;
  manifestBytes: Buffer;
  mediaType: string;
  /** Set when the reference named an index / manifest list. */
  index?: { digest: Digest; bytes: Buffer; mediaType: string; document: ImageIndex };
  /** The index entry chosen for the platform (when there was an index). */
  descriptor?: Descriptor;
}

export interface FetchedManifest {
  kind: ManifestDocument['kind'];
  mediaType: string;
  document: ImageManifest | ImageIndex;
  digest: Digest;
  bytes: Buffer;
}

export interface BlobFetchOptions {
  signal?: AbortSignal;
  /** Called with the total bytes received so far (monotonic across resumes). */
  onProgress?: (bytes: number) => void;
}

export interface UploadOptions {
  signal?: AbortSignal;
  /** Called with the total bytes sent so far. */
  onProgress?: (bytes: number) => void;
}

export interface LoginResult {
  status: 'Login Succeeded';
  identityToken?: string;
}

type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

interface Request {
  method: Method;
  url: URL;
  scopes: string[];
  headers?: Record<string, string>;
  /** A factory so the body can be sent again after a 401 challenge. */
  body?: () => Buffer | string | Readable;
  signal?: AbortSignal | undefined;
  followRedirects?: boolean;
}

type Response = Dispatcher.ResponseData & { url: URL };

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 10;
const MAX_ERROR_BODY = 64 * 1024;
const DEFAULT_MAX_BLOB_BYTES = 32 * 1024 * 1024;

/** Errors worth another attempt before the first byte. */
const transient = new WeakSet<object>();
function markTransient<E extends Error>(e: E): E {
  transient.add(e);
  return e;
}

export class RegistryClient {
  readonly insecureRegistries: readonly string[];
  readonly userAgent: string;
  readonly platform: Platform | undefined;
  #dispatcher: Dispatcher;
  #ownsDispatcher: boolean;
  #auth: Authenticator;
  #attempts: number;
  #baseDelay: number;
  #maxResumes: number;
  #opts: RegistryClientOptions;

  constructor(opts: RegistryClientOptions = {}, shared?: { auth: AuthState }) {
    this.#opts = opts;
    this.insecureRegistries = opts.insecureRegistries ?? [];
    this.userAgent = opts.userAgent ?? 'berth';
    this.platform = opts.platform;
    this.#ownsDispatcher = opts.dispatcher === undefined;
    this.#dispatcher = opts.dispatcher ?? createAgent(opts.connections === undefined ? {} : { connections: opts.connections });
    const ao: ConstructorParameters<typeof Authenticator>[0] = { dispatcher: this.#dispatcher, userAgent: this.userAgent };
    if (opts.auth) ao.provider = opts.auth;
    if (shared) ao.state = shared.auth;
    this.#auth = new Authenticator(ao);
    this.#attempts = Math.max(1, opts.retry?.attempts ?? 4);
    this.#baseDelay = opts.retry?.baseDelayMs ?? 250;
    this.#maxResumes = opts.maxResumes ?? 5;
  }

  /**
   * A client with other credentials that shares this one's connections and caches (tokens are
   * cached per credentials, so one user's token never serves another). Closing it is a no-op.
   */
  withAuth(auth: AuthProvider | undefined): RegistryClient {
    const o: RegistryClientOptions = { ...this.#opts, dispatcher: this.#dispatcher };
    if (auth) o.auth = auth;
    else delete o.auth;
    return new RegistryClient(o, { auth: this.#auth.state });
  }

  /** Close the connection pools if this client created them. */
  async close(): Promise<void> {
    if (this.#ownsDispatcher) await this.#dispatcher.close();
  }

  endpoint(registry: string): Endpoint {
    return endpointFor(registry, this.insecureRegistries);
  }

  // ---- pull side ----

  async resolve(ref: Reference, opts: ResolveOptions = {}): Promise<ResolvedImage> {
    const reference = ref.digest ?? ref.tag ?? 'latest';
    const top = await this.getManifest(ref, reference, opts.signal ? { signal: opts.signal } : {}, ref);
    if (top.kind === 'manifest') {
      return { manifest: top.document as ImageManifest, manifestDigest: top.digest, manifestBytes: top.bytes, mediaType: top.mediaType };
    }
    const index = top.document as ImageIndex;
    const want = opts.platform ?? this.platform ?? hostPlatform();
    const desc = selectPlatform(index, want);
    const child = await this.getManifest(ref, desc.digest, opts.signal ? { signal: opts.signal } : {}, ref);
    if (child.kind !== 'manifest') throw notImplemented(`unsupported: index ${top.digest} points to another index ${desc.digest}`);
    if (child.bytes.length !== desc.size) {
      throw dataLoss(`manifest ${desc.digest}: size mismatch: got ${child.bytes.length} bytes, index says ${desc.size}`);
    }
    return {
      manifest: child.document as ImageManifest,
      manifestDigest: child.digest,
      manifestBytes: child.bytes,
      mediaType: child.mediaType,
      index: { digest: top.digest, bytes: top.bytes, mediaType: top.mediaType, document: index },
      descriptor: desc,
    };
  }

  /** GET one manifest or index, verified and classified (no platform selection). */
  async getManifest(repo: RepositoryRef, reference: string, opts: { signal?: AbortSignal } = {}, display?: Reference): Promise<FetchedManifest> {
    const byDigest = isDigest(reference);
    if (!byDigest && !isValidTag(reference)) throw invalidArgument(`invalid tag ${JSON.stringify(reference)}`);
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `manifests/${reference}`);
    const shown = familiarString(display ?? (byDigest ? { ...repo, digest: reference as Digest } : { ...repo, tag: reference }));
    return this.#withRetry(opts.signal, async () => {
      const res = await this.#send(ep, { method: 'GET', url, scopes: [repositoryScope(repo.path, ['pull'])], headers: { accept: MANIFEST_ACCEPT }, signal: opts.signal, followRedirects: true });
      if (res.statusCode === 404) {
        const text = await readBounded(res.body, MAX_ERROR_BODY).catch(() => '');
        throw notFound(`manifest for ${shown} not found: ${registryErrorText(text) ?? 'manifest unknown'}`);
      }
      await this.#expect(res, [200], `manifest for ${shown}`);
      const cl = Number(header(res.headers, 'content-length') ?? NaN);
      if (cl > MAX_MANIFEST_BYTES) {
        discard(res.body);
        throw invalidArgument(`manifest for ${shown} is ${cl} bytes, over the limit of ${MAX_MANIFEST_BYTES}`);
      }
      const bytes = await readBoundedBytes(res.body, MAX_MANIFEST_BYTES, `manifest for ${shown}`);
      const doc = classifyManifest(bytes, header(res.headers, 'content-type'));
      let digest: Digest;
      if (byDigest) {
        digest = reference as Digest;
        const got = `${digestAlgorithm(digest)}:${hasherFor(digest).update(bytes).digest('hex')}`;
        if (got !== digest) throw dataLoss(`manifest digest mismatch: got ${got}, want ${digest}`);
      } else {
        digest = sha256(bytes);
      }
      const claimed = header(res.headers, 'docker-content-digest');
      if (claimed !== undefined && isDigest(claimed)) {
        const got = `${digestAlgorithm(claimed)}:${hasherFor(claimed).update(bytes).digest('hex')}`;
        if (got !== claimed) throw dataLoss(`manifest digest mismatch: registry says ${claimed}, content is ${got}`);
        if (!byDigest && digestAlgorithm(claimed) === 'sha256') digest = claimed;
      }
      return { kind: doc.kind, mediaType: doc.mediaType, document: doc.document, digest, bytes };
    });
  }

  /**
   * HEAD a manifest: its digest, media type and size without its body, or undefined when the
   * registry has no such tag/digest (cheap "is my copy current?" checks before a pull or push).
   */
  async headManifest(repo: RepositoryRef, reference: string, opts: { signal?: AbortSignal } = {}): Promise<{ digest: Digest; mediaType: string; size: number } | undefined> {
    if (!isDigest(reference) && !isValidTag(reference)) throw invalidArgument(`invalid tag ${JSON.stringify(reference)}`);
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `manifests/${reference}`);
    return this.#withRetry(opts.signal, async () => {
      const res = await this.#send(ep, { method: 'HEAD', url, scopes: [repositoryScope(repo.path, ['pull'])], headers: { accept: MANIFEST_ACCEPT }, signal: opts.signal, followRedirects: true });
      if (res.statusCode === 404) {
        await res.body.dump().catch(() => {});
        return undefined;
      }
      await this.#expect(res, [200], `manifest ${reference}`);
      await res.body.dump().catch(() => {});
      const d = header(res.headers, 'docker-content-digest');
      const digest = d !== undefined && isDigest(d) ? d : isDigest(reference) ? reference : undefined;
      if (!digest) throw unavailable(`manifest ${reference}: registry ${ep.host} sent no Docker-Content-Digest`);
      if (isDigest(reference) && digest !== reference) throw dataLoss(`manifest digest mismatch: registry says ${digest}, want ${reference}`);
      return { digest, mediaType: bareMediaType(header(res.headers, 'content-type')), size: Number(header(res.headers, 'content-length') ?? 0) };
    });
  }

  /** Stream a blob; see the file comment. Rejects (before any byte) on 401/403/404 and persistent failures. */
  async fetchBlob(repo: RepositoryRef, desc: Descriptor, opts: BlobFetchOptions = {}): Promise<Readable> {
    const digest = parseDigest(desc.digest);
    const size = desc.size;
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `blobs/${digest}`);
    const scopes = [repositoryScope(repo.path, ['pull'])];
    const { signal, onProgress } = opts;

    const open = async (from: number): Promise<AsyncIterable<Buffer> & { destroy(): void }> => {
      const headers: Record<string, string> = {};
      if (from > 0) headers.range = `bytes=${from}-`;
      const res = await this.#send(ep, { method: 'GET', url, scopes, headers, signal, followRedirects: true });
      if (res.statusCode === 404) {
        await res.body.dump().catch(() => {});
        throw notFound(`blob unknown: ${digest} in ${repo.domain}/${repo.path}`);
      }
      if (from > 0 && res.statusCode === 206) {
        const m = /^bytes (\d+)-/.exec(header(res.headers, 'content-range') ?? '');
        if (!m || Number(m[1]) !== from) {
          discard(res.body);
          throw unavailable(`resume of blob ${digest}: registry answered a different range (${header(res.headers, 'content-range') ?? 'none'})`);
        }
        return res.body;
      }
      await this.#expect(res, [200], `blob ${digest}`);
      const cl = header(res.headers, 'content-length');
      if (cl !== undefined && Number(cl) !== size) {
        discard(res.body);
        throw dataLoss(`blob ${digest}: registry sends ${cl} bytes, descriptor says ${size}; digest not verified`);
      }
      // A server that ignores Range sends everything again: skip what we already have.
      return from > 0 ? skipBytes(res.body, from) : res.body;
    };

    let body = await this.#withRetry(signal, () => open(0));
    const maxResumes = this.#maxResumes;
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let offset = 0;
      let resumes = 0;
      try {
        for (;;) {
          try {
            for await (const chunk of body) {
              offset += chunk.length;
              if (offset > size) throw dataLoss(`blob ${digest}: more than ${size} bytes, digest not verified`);
              onProgress?.(offset);
              yield chunk;
            }
            if (offset === size) return;
            throw markTransient(unavailable(`blob ${digest}: connection closed after ${offset} of ${size} bytes`));
          } catch (err) {
            if (isKind(err, 'DataLoss') || signal?.aborted || (err instanceof BerthError && !transient.has(err))) throw err;
            if (resumes >= maxResumes) throw networkError('GET', url.href, err);
            resumes++;
            discard(body);
            const from = offset;
            body = await self.#withRetry(signal, () => open(from));
          }
        }
      } finally {
        discard(body);
      }
    }
    return Readable.from(chunks(), { objectMode: false, highWaterMark: 1 << 20 });
  }

  /** A small blob (an image config) in memory, verified against `desc`. */
  async fetchBlobBytes(repo: RepositoryRef, desc: Descriptor, opts: { signal?: AbortSignal; maxBytes?: number } = {}): Promise<Buffer> {
    const max = opts.maxBytes ?? DEFAULT_MAX_BLOB_BYTES;
    if (desc.size > max) throw invalidArgument(`blob ${desc.digest} is ${desc.size} bytes, over the limit of ${max}`);
    const src = await this.fetchBlob(repo, desc, opts.signal ? { signal: opts.signal } : {});
    const v = verifyingStream(desc);
    const out: Buffer[] = [];
    // fetchBlob already fails past desc.size, so this buffers at most `max` bytes.
    await pipeline(src, v, async (verified: AsyncIterable<Buffer>) => {
      for await (const c of verified) out.push(c);
    });
    return Buffer.concat(out);
  }

  // ---- push side ----

  async blobExists(repo: RepositoryRef, digest: Digest, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    parseDigest(digest);
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `blobs/${digest}`);
    return this.#withRetry(opts.signal, async () => {
      const res = await this.#send(ep, { method: 'HEAD', url, scopes: [repositoryScope(repo.path, ['pull', 'push'])], signal: opts.signal, followRedirects: true });
      if (res.statusCode === 404) {
        await res.body.dump().catch(() => {});
        return false;
      }
      await this.#expect(res, [200], `blob ${digest}`);
      await res.body.dump().catch(() => {});
      return true;
    });
  }

  /**
   * Cross-repository mount (POST ?mount=&from=). True when the registry mounted it (201); false
   * when it did not (202: the blob must be uploaded; the session it opened is cancelled).
   * `fromPath` is a repository path on the same registry.
   */
  async mountBlob(repo: RepositoryRef, digest: Digest, fromPath: string, opts: { signal?: AbortSignal } = {}): Promise<boolean> {
    parseDigest(digest);
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `blobs/uploads/`);
    if (!isValidRepositoryPath(fromPath)) throw invalidArgument(`invalid repository name ${JSON.stringify(fromPath)}`);
    url.searchParams.set('mount', digest);
    url.searchParams.set('from', fromPath);
    const scopes = [repositoryScope(repo.path, ['pull', 'push']), repositoryScope(fromPath, ['pull'])];
    const res = await this.#send(ep, { method: 'POST', url, scopes, headers: { 'content-length': '0' }, body: () => '', signal: opts.signal });
    if (res.statusCode === 201) {
      await res.body.dump().catch(() => {});
      return true;
    }
    await this.#expect(res, [202], `mount of ${digest} from ${fromPath}`);
    await res.body.dump().catch(() => {});
    const loc = header(res.headers, 'location');
    if (loc) {
      const cancel = new URL(loc, url);
      await this.#send(ep, { method: 'DELETE', url: cancel, scopes, signal: opts.signal })
        .then((r) => r.body.dump())
        .catch(() => {});
    }
    return false;
  }

  /** Upload a blob: POST a session, then one PUT ?digest= with the whole body. */
  async uploadBlob(repo: RepositoryRef, desc: Descriptor, body: () => Readable, opts: UploadOptions = {}): Promise<void> {
    const digest = parseDigest(desc.digest);
    const ep = this.endpoint(repo.domain);
    const scopes = [repositoryScope(repo.path, ['pull', 'push'])];
    const start = repoUrl(ep, repo, `blobs/uploads/`);
    const { onProgress } = opts;
    // The body is a factory, so a transient failure restarts the whole upload in a new session.
    await this.#withRetry(opts.signal, async () => {
      const started = await this.#send(ep, { method: 'POST', url: start, scopes, headers: { 'content-length': '0' }, body: () => '', signal: opts.signal });
      await this.#expect(started, [202], `upload of ${digest}`);
      await started.body.dump().catch(() => {});
      const loc = header(started.headers, 'location');
      if (!loc) throw unavailable(`upload of ${digest}: registry sent no Location`);
      const put = new URL(loc, start);
      put.searchParams.append('digest', digest);
      const res = await this.#send(ep, {
        method: 'PUT',
        url: put,
        scopes,
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
        body: () => {
          const src = body();
          if (!onProgress) return src;
          let n = 0;
          const counter = new Transform({
            transform(chunk: Buffer, _e, cb) {
              n += chunk.length;
              onProgress(n);
              cb(null, chunk);
            },
          });
          src.on('error', (e) => counter.destroy(e));
          return src.pipe(counter);
        },
        signal: opts.signal,
      });
      await this.#expect(res, [201], `upload of ${digest}`);
      await res.body.dump().catch(() => {});
      const claimed = header(res.headers, 'docker-content-digest');
      if (claimed !== undefined && isDigest(claimed) && claimed !== digest) {
        throw dataLoss(`upload of ${digest}: registry stored ${claimed}`);
      }
    });
  }

  /** PUT a manifest under a tag or its digest. Returns its digest (sha256 of `bytes`). */
  async putManifest(repo: RepositoryRef, reference: string, bytes: Buffer, mediaType: string, opts: { signal?: AbortSignal } = {}): Promise<Digest> {
    if (bytes.length > MAX_MANIFEST_BYTES) throw invalidArgument(`manifest is ${bytes.length} bytes, over the limit of ${MAX_MANIFEST_BYTES}`);
    const digest = sha256(bytes);
    if (isDigest(reference)) {
      const got = `${digestAlgorithm(reference)}:${hasherFor(reference).update(bytes).digest('hex')}`;
      if (got !== reference) throw invalidArgument(`manifest does not match digest ${reference}`);
    } else if (!isValidTag(reference)) {
      throw invalidArgument(`invalid tag ${JSON.stringify(reference)}`);
    }
    const ep = this.endpoint(repo.domain);
    const url = repoUrl(ep, repo, `manifests/${reference}`);
    const res = await this.#withRetry(opts.signal, () =>
      this.#send(ep, { method: 'PUT', url, scopes: [repositoryScope(repo.path, ['pull', 'push'])], headers: { 'content-type': mediaType }, body: () => bytes, signal: opts.signal }),
    );
    await this.#expect(res, [201, 200], `manifest ${reference}`);
    await res.body.dump().catch(() => {});
    const claimed = header(res.headers, 'docker-content-digest');
    if (claimed !== undefined && isDigest(claimed) && digestAlgorithm(claimed) === 'sha256' && claimed !== digest) {
      throw dataLoss(`manifest digest mismatch: registry says ${claimed}, content is ${digest}`);
    }
    return digest;
  }

  // ---- login ----

  /**
   * `docker login`: GET /v2/ and satisfy its challenge with `creds`. Resolves when the registry
   * accepts them (or needs none); Unauthorized when it does not. Credentials never travel over
   * plain http to a non-loopback host.
   */
  async checkLogin(registry: string, creds: Credentials | undefined, opts: { signal?: AbortSignal } = {}): Promise<LoginResult> {
    const ep = this.endpoint(normalizeRegistry(registry));
    const url = new URL(`${ep.origin}/v2/`);
    const first = await this.#withRetry(opts.signal, () => this.#raw(ep, { method: 'GET', url, scopes: [], signal: opts.signal, followRedirects: true }, undefined));
    if (first.statusCode === 200) {
      await first.body.dump().catch(() => {});
      return { status: 'Login Succeeded' };
    }
    if (first.statusCode !== 401) {
      await this.#expect(first, [200], 'login');
    }
    const www = headerAll(first.headers, 'www-authenticate');
    await first.body.dump().catch(() => {});
    if (!creds || (!creds.username && !creds.identityToken && !creds.registryToken)) throw unauthorized('unauthorized: authentication required');
    if (!mayCarryCredentials(url)) throw unauthorized(`unauthorized: credentials are not sent over plain http to ${ep.host}`);
    const challenges = parseChallenges(www);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const auth = this.#auth.withProvider({ credentials: () => creds });
    let authz: string | undefined;
    if (bearer) {
      await auth.login(ep, creds, www, opts.signal);
      auth.learn(ep, www);
      authz = (await auth.authorize(ep, [], opts.signal ? { signal: opts.signal } : {})).header;
    } else if (challenges.some((c) => c.scheme === 'basic')) {
      authz = 'Basic ' + Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
    } else {
      throw unauthorized('unauthorized: registry sent no usable authentication challenge');
    }
    const again = await this.#raw(ep, { method: 'GET', url, scopes: [], signal: opts.signal, followRedirects: true }, authz);
    if (again.statusCode === 401) {
      const text = await readBounded(again.body, MAX_ERROR_BODY).catch(() => '');
      throw unauthorized(`unauthorized: ${stripPrefix(registryErrorText(text), 'unauthorized: ') ?? 'incorrect username or password'}`);
    }
    await this.#expect(again, [200], 'login');
    await again.body.dump().catch(() => {});
    return { status: 'Login Succeeded' };
  }

  // ---- transport ----

  /** Send with authentication: one retry after a 401 whose challenge gives a (new) Authorization. */
  async #send(ep: Endpoint, req: Request): Promise<Response> {
    let authz = await this.#auth.authorize(ep, req.scopes, req.signal ? { signal: req.signal } : {});
    for (let attempt = 0; ; attempt++) {
      const res = await this.#raw(ep, req, authz.header);
      // A 401 from elsewhere (storage after a redirect) is not the registry's challenge: #expect maps it.
      if (res.statusCode !== 401 || res.url.origin !== ep.origin) return res;
      const www = headerAll(res.headers, 'www-authenticate');
      const text = await readBounded(res.body, MAX_ERROR_BODY).catch(() => '');
      const denied = () => {
        const msg = registryErrorText(text) ?? 'unauthorized: authentication required';
        const withPrefix = msg.startsWith('unauthorized') ? msg : `unauthorized: ${msg}`;
        return unauthorized(authz.withheld ? `${withPrefix} (${authz.withheld})` : withPrefix);
      };
      if (attempt > 0 || !this.#auth.learn(ep, www)) throw denied();
      const scope = parseChallenges(www).find((c) => c.scheme === 'bearer')?.params.scope;
      const o: { refused?: string; signal?: AbortSignal; extraScope?: string } = {};
      if (authz.header) o.refused = authz.header;
      if (req.signal) o.signal = req.signal;
      if (scope) o.extraScope = scope;
      const next = await this.#auth.authorize(ep, req.scopes, o);
      if (!next.header) throw unauthorized(authz.withheld || next.withheld ? `unauthorized: authentication required (${next.withheld ?? authz.withheld})` : 'unauthorized: authentication required');
      authz = next;
    }
  }

  /** One request, following redirects for GET/HEAD; Authorization only to the registry's own origin. */
  async #raw(ep: Endpoint, req: Request, authz: string | undefined): Promise<Response> {
    let url = req.url;
    let auth = authz;
    for (let hops = 0; ; hops++) {
      const headers: Record<string, string> = { 'user-agent': this.userAgent, ...(req.headers ?? {}) };
      if (auth && url.origin === ep.origin) headers.authorization = auth;
      const opts: Dispatcher.RequestOptions = { origin: url.origin, path: url.pathname + url.search, method: req.method, headers };
      if (req.body) opts.body = req.body();
      if (req.signal) opts.signal = req.signal;
      let res: Dispatcher.ResponseData;
      try {
        res = await this.#dispatcher.request(opts);
      } catch (err) {
        const e = networkError(req.method, url.href, err);
        throw isTransientNetworkError(err) ? markTransient(e) : e;
      }
      if (!req.followRedirects || !REDIRECTS.has(res.statusCode)) return Object.assign(res, { url });
      const loc = header(res.headers, 'location');
      await res.body.dump().catch(() => {});
      if (!loc) throw unavailable(`${req.method} "${url.href}": redirect without Location`);
      if (hops >= MAX_REDIRECTS) throw unavailable(`${req.method} "${req.url.href}": too many redirects`);
      const next = new URL(loc, url);
      if (next.protocol !== 'https:' && next.protocol !== 'http:') throw unavailable(`refusing redirect to ${next.protocol} URL`);
      if (url.protocol === 'https:' && next.protocol === 'http:' && !isLoopbackHostname(next.hostname)) {
        throw unavailable(`refusing redirect from https to plain http (${next.host})`);
      }
      // Storage backends (S3, CDNs) get pre-signed URLs; registry credentials never follow.
      if (next.origin !== url.origin) auth = undefined;
      url = next;
    }
  }

  /** Map a non-success status to the taxonomy (401 is handled in #send). Consumes the body on error. */
  async #expect(res: Response, ok: number[], what: string): Promise<void> {
    if (ok.includes(res.statusCode)) return;
    const text = await readBounded(res.body, MAX_ERROR_BODY).catch(() => '');
    const detail = registryErrorText(text);
    const s = res.statusCode;
    if (s === 401) throw unauthorized(detail ?? 'unauthorized: authentication required');
    if (s === 403) throw forbidden(detail?.startsWith('denied') ? detail : `denied: ${detail ?? 'requested access to the resource is denied'}`);
    if (s === 404) throw notFound(`${what}: ${detail ?? 'not found'}`);
    if (s === 405) throw notImplemented(`${what}: ${detail ?? 'operation not supported by the registry'}`);
    if (isTransientStatus(s)) throw markTransient(unavailable(`${what}: registry ${res.url.host} answered ${s}${detail ? ': ' + detail : ''}`));
    if (s >= 400 && s < 500) throw invalidArgument(`${what}: ${detail ?? `registry answered ${s}`}`);
    throw unavailable(`${what}: registry ${res.url.host} answered ${s}${detail ? ': ' + detail : ''}`);
  }

  /** Retry transient failures (resets, 5xx, 429) with exponential back-off; nothing else. */
  async #withRetry<T>(signal: AbortSignal | undefined, fn: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (signal?.aborted || i + 1 >= this.#attempts || !(err instanceof Error) || !transient.has(err)) throw err;
        const delay = this.#baseDelay * 2 ** i * (0.5 + Math.random() / 2);
        await sleep(delay, undefined, signal ? { signal } : {});
      }
    }
  }
}

/** A URL under /v2/<name>/; the name is checked first (it comes from outside and goes into a URL). */
function repoUrl(ep: Endpoint, repo: RepositoryRef, suffix: string): URL {
  if (!isValidRepositoryPath(repo.path)) throw invalidArgument(`invalid repository name ${JSON.stringify(repo.path)}`);
  return new URL(`${ep.origin}/v2/${repo.path}/${suffix}`);
}

/** Abandon a response body: close its connection without an unhandled 'error' from undici's abort. */
function discard(body: { destroy(): void; on?: (ev: 'error', fn: () => void) => unknown }): void {
  body.on?.('error', () => {});
  body.destroy();
}

function stripPrefix(s: string | undefined, p: string): string | undefined {
  return s?.startsWith(p) ? s.slice(p.length) : s;
}

/** Drop the first `n` bytes of a body (a server that ignored Range). */
function skipBytes(body: AsyncIterable<Buffer> & { destroy(): void }, n: number): AsyncIterable<Buffer> & { destroy(): void } {
  let left = n;
  const it = (async function* () {
    for await (const c of body) {
      if (left >= c.length) {
        left -= c.length;
        continue;
      }
      const out = left > 0 ? c.subarray(left) : c;
      left = 0;
      yield out;
    }
  })();
  return Object.assign(it, { destroy: () => discard(body) });
}
