// Registry authentication (distribution's token auth spec + Basic), as Docker's client does it.
//
// Flow: a request goes out with whatever the registry's last challenge allows (nothing at first);
// a 401 carries `WWW-Authenticate`, which is remembered per registry host, and the request is
// retried once with:
//   Bearer realm="R",service="S",scope="X"  -> GET R?service=S&scope=..(Basic creds if any) -> {token|access_token, expires_in}
//                                               (identity token: POST R grant_type=refresh_token)
//   Basic realm="R"                         -> Authorization: Basic base64(user:pass)
// Tokens are cached per (host, credentials, scope set) until shortly before they expire, and
// concurrent requests for the same token share one fetch.
//
// Where credentials may go (never weaker than Docker; CVE-2020-15157, CVE-2014-5277 classes):
//   - only to https URLs, or plain-http loopback URLs (mayCarryCredentials);
//   - a plain-http token realm must also be on the registry's own hostname.
// When credentials are withheld the request goes anonymously, and a final 401 says why.
import { createHash } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { unauthorized, invalidArgument } from '../core/errors.ts';
import type { AuthProvider, Credentials } from './credentials.ts';
import { mayCarryCredentials, networkError, hostnameOf, type Endpoint } from './transport.ts';

export interface Challenge {
  scheme: string; // lower-case: "bearer", "basic"
  params: Record<string, string>;
}

/** Parse WWW-Authenticate values (RFC 7235): several challenges may share one header. */
export function parseChallenges(values: readonly string[]): Challenge[] {
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    const s = value;
    let cur: Challenge | undefined;
    const skipWs = () => {
      while (i < s.length && (s[i] === ' ' || s[i] === '\t' || s[i] === ',')) i++;
    };
    while (i < s.length) {
      skipWs();
      const m = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+/.exec(s.slice(i));
      if (!m) break;
      const tok = m[0];
      i += tok.length;
      while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
      if (s[i] === '=' && cur) {
        i++;
        while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
        let v = '';
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === '\\' && i + 1 < s.length) i++;
            v += s[i];
            i++;
          }
          i++;
        } else {
          const vm = /^[^,\s]*/.exec(s.slice(i))!;
          v = vm[0];
          i += v.length;
        }
        cur.params[tok.toLowerCase()] = v;
      } else {
        cur = { scheme: tok.toLowerCase(), params: {} };
        out.push(cur);
      }
    }
  }
  return out;
}

/** "repository:library/busybox:pull,push" */
export function repositoryScope(repo: string, actions: readonly ('pull' | 'push' | 'delete' | '*')[]): string {
  return `repository:${repo}:${actions.join(',')}`;
}

export interface Authorization {
  /** Value for the Authorization header, if any. */
  header?: string;
  /** Why credentials that exist were not sent (for the Unauthorized message). */
  withheld?: string;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** State shared by all Authenticators of one client: challenges and tokens. */
export class AuthState {
  readonly challenges = new Map<string, Challenge>();
  readonly tokens = new Map<string, CachedToken>();
  readonly inflight = new Map<string, Promise<CachedToken>>();
}

export interface AuthenticatorOptions {
  dispatcher: Dispatcher;
  provider?: AuthProvider;
  userAgent?: string;
  state?: AuthState;
  /** Clock, for tests of token expiry. */
  now?: () => number;
}

const MAX_TOKEN_RESPONSE = 1 << 20;

function credId(c: Credentials | undefined): string {
  if (!c) return 'anon';
  return createHash('sha256').update(JSON.stringify([c.username, c.password, c.identityToken, c.registryToken])).digest('hex').slice(0, 16);
}

function basic(c: Credentials): string {
  return 'Basic ' + Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64');
}

export class Authenticator {
  readonly state: AuthState;
  #dispatcher: Dispatcher;
  #provider: AuthProvider | undefined;
  #userAgent: string;
  #now: () => number;

  constructor(opts: AuthenticatorOptions) {
    this.#dispatcher = opts.dispatcher;
    this.#provider = opts.provider;
    this.#userAgent = opts.userAgent ?? 'berth';
    this.state = opts.state ?? new AuthState();
    this.#now = opts.now ?? Date.now;
  }

  /** Same caches and transport, other credentials (one API request's X-Registry-Auth). */
  withProvider(provider: AuthProvider | undefined): Authenticator {
    const o: AuthenticatorOptions = { dispatcher: this.#dispatcher, userAgent: this.#userAgent, state: this.state, now: this.#now };
    if (provider) o.provider = provider;
    return new Authenticator(o);
  }

  async credentials(ep: Endpoint): Promise<Credentials | undefined> {
    return this.#provider ? await this.#provider.credentials(ep.registry) : undefined;
  }

  /** Remember a registry's challenge from a 401. Returns whether one was understood. */
  learn(ep: Endpoint, wwwAuthenticate: readonly string[]): boolean {
    const all = parseChallenges(wwwAuthenticate);
    const c = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic');
    if (!c) return false;
    this.state.challenges.set(ep.host, c);
    return true;
  }

  /**
   * The Authorization for a request to `ep` needing `scopes`, from the last challenge seen.
   * `refused` is an Authorization the registry just answered 401 to: a cached token equal to it
   * is dropped (only that one, so concurrent requests share the next fetch). `extraScope` is a scope the
   * challenge itself asked for.
   */
  async authorize(ep: Endpoint, scopes: readonly string[], opts: { refused?: string; signal?: AbortSignal; extraScope?: string } = {}): Promise<Authorization> {
    const ch = this.state.challenges.get(ep.host);
    if (!ch) return {};
    let creds = await this.credentials(ep);
    let withheld: string | undefined;
    if (creds && !mayCarryCredentials(new URL(ep.origin))) {
      // Not even a token obtained with them: it would cross the network in clear.
      withheld = `credentials are not sent over plain http to ${ep.host}`;
      creds = undefined;
    }
    if (ch.scheme === 'basic') {
      if (!creds?.username) return withheld ? { withheld } : {};
      return { header: basic(creds) };
    }
    if (ch.scheme !== 'bearer') return {};
    if (creds?.registryToken) return { header: `Bearer ${creds.registryToken}` };
    const base = [...new Set(scopes)].sort();
    const all = new Set(scopes);
    if (opts.extraScope) for (const s of opts.extraScope.split(' ')) if (s) all.add(s);
    const sorted = [...all].sort();
    const realm = ch.params.realm;
    if (!realm) throw unauthorized(`unauthorized: bearer challenge from ${ep.host} has no realm`);
    const prefix = `${ep.host}|${realm}|${credId(creds)}|`;
    const key = prefix + sorted.join(' ');
    if (opts.refused !== undefined) {
      for (const k of [key, prefix + base.join(' ')]) {
        if (`Bearer ${this.state.tokens.get(k)?.token}` === opts.refused) this.state.tokens.delete(k);
      }
    }
    const cached = this.state.tokens.get(key);
    if (cached && cached.expiresAt > this.#now()) return { header: `Bearer ${cached.token}` };
    let p = this.state.inflight.get(key);
    if (!p) {
      p = this.#fetchToken(ep, ch, sorted, creds, opts.signal).finally(() => this.state.inflight.delete(key));
      this.state.inflight.set(key, p);
    }
    const tok = await p;
    this.state.tokens.set(key, tok);
    // A token for more scopes also serves the requests that asked for fewer.
    if (sorted.length !== base.length) this.state.tokens.set(prefix + base.join(' '), tok);
    const out: Authorization = { header: `Bearer ${tok.token}` };
    withheld ??= creds && (creds.username || creds.identityToken) ? realmRefusal(ep, realm) : undefined;
    if (withheld) out.withheld = withheld;
    return out;
  }

  async #fetchToken(ep: Endpoint, ch: Challenge, scopes: string[], creds: Credentials | undefined, signal?: AbortSignal): Promise<CachedToken> {
    const realmStr = ch.params.realm!;
    let realm: URL;
    try {
      realm = new URL(realmStr);
    } catch {
      throw unauthorized(`unauthorized: invalid token realm ${JSON.stringify(realmStr)}`);
    }
    if (realm.protocol !== 'https:' && realm.protocol !== 'http:') throw unauthorized(`unauthorized: unsupported token realm ${realm.href}`);
    const sendCreds = creds !== undefined && realmRefusal(ep, realmStr) === undefined;
    const service = ch.params.service;
    const headers: Record<string, string> = { 'user-agent': this.#userAgent, accept: 'application/json' };
    let method: 'GET' | 'POST' = 'GET';
    let body: string | undefined;
    if (sendCreds && creds.identityToken) {
      method = 'POST';
      const form = new URLSearchParams();
      form.set('grant_type', 'refresh_token');
      form.set('refresh_token', creds.identityToken);
      form.set('client_id', 'berth');
      if (service) form.set('service', service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      body = form.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else {
      if (service) realm.searchParams.set('service', service);
      for (const s of scopes) realm.searchParams.append('scope', s);
      if (sendCreds && creds.username) {
        realm.searchParams.set('account', creds.username);
        headers.authorization = basic(creds);
      }
    }
    let res: Dispatcher.ResponseData;
    try {
      const req: Dispatcher.RequestOptions = { origin: realm.origin, path: realm.pathname + realm.search, method, headers };
      if (body !== undefined) req.body = body;
      if (signal) req.signal = signal;
      res = await this.#dispatcher.request(req);
    } catch (err) {
      throw networkError(method, realm.origin + realm.pathname, err);
    }
    const text = await readBounded(res.body, MAX_TOKEN_RESPONSE);
    if (res.statusCode === 401 || res.statusCode === 403) {
      const msg = registryErrorText(text) ?? (sendCreds ? 'incorrect username or password' : 'authentication required');
      throw unauthorized(`unauthorized: ${msg}`);
    }
    if (res.statusCode < 200 || res.statusCode > 299) {
      throw unauthorized(`unauthorized: token request to ${realm.origin}${realm.pathname} failed: ${res.statusCode}${registryErrorText(text) ? ': ' + registryErrorText(text) : ''}`);
    }
    let j: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      j = JSON.parse(text) as typeof j;
    } catch {
      throw unauthorized(`unauthorized: token response from ${realm.origin} is not JSON`);
    }
    const token = typeof j.token === 'string' && j.token ? j.token : typeof j.access_token === 'string' ? j.access_token : '';
    if (!token) throw unauthorized(`unauthorized: token response from ${realm.origin} has no token`);
    // The spec's minimum lifetime is 60 s; renew a little early so a request never carries a stale one.
    const ttl = typeof j.expires_in === 'number' && j.expires_in > 0 ? j.expires_in : 60;
    const margin = Math.min(10, ttl / 10);
    return { token, expiresAt: this.#now() + (ttl - margin) * 1000 };
  }

  /**
   * `docker login`: check credentials against a registry whose /v2/ answered 401 with the given
   * challenges. Returns normally when accepted; throws Unauthorized otherwise.
   */
  async login(ep: Endpoint, creds: Credentials, wwwAuthenticate: readonly string[], signal?: AbortSignal): Promise<void> {
    const all = parseChallenges(wwwAuthenticate);
    const ch = all.find((x) => x.scheme === 'bearer') ?? all.find((x) => x.scheme === 'basic');
    if (!ch) throw unauthorized('unauthorized: registry sent no usable authentication challenge');
    if (ch.scheme === 'bearer') {
      const realm = ch.params.realm;
      if (!realm) throw unauthorized(`unauthorized: bearer challenge from ${ep.host} has no realm`);
      const why = realmRefusal(ep, realm);
      if (why) throw unauthorized(`unauthorized: ${why}`);
      if (creds.registryToken) return;
      await this.#fetchToken(ep, ch, [], creds, signal);
    }
    // Basic: the caller retries /v2/ with Authorization: Basic and checks the status.
  }
}

/** Why credentials may not be sent to this realm, or undefined when they may. */
export function realmRefusal(ep: Endpoint, realm: string): string | undefined {
  let u: URL;
  try {
    u = new URL(realm);
  } catch {
    return `invalid token realm ${JSON.stringify(realm)}`;
  }
  if (!mayCarryCredentials(u)) return `credentials are not sent over plain http to ${u.host}`;
  if (u.protocol === 'http:' && u.hostname.replace(/^\[|\]$/g, '').toLowerCase() !== hostnameOf(ep.host)) {
    return `credentials are not sent over plain http to a token realm on another host (${u.host})`;
  }
  return undefined;
}

/** Read a response body as text, refusing more than `max` bytes. */
export async function readBounded(body: AsyncIterable<Uint8Array> & { destroy?: (e?: Error) => void }, max: number): Promise<string> {
  return (await readBoundedBytes(body, max)).toString('utf8');
}

export async function readBoundedBytes(body: AsyncIterable<Uint8Array> & { destroy?: (e?: Error) => void }, max: number, what = 'response'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    n += c.byteLength;
    if (n > max) {
      (body as { on?: (ev: string, fn: () => void) => void }).on?.('error', () => {});
      body.destroy?.();
      throw invalidArgument(`${what} exceeds the limit of ${max} bytes`);
    }
    chunks.push(Buffer.from(c.buffer, c.byteOffset, c.byteLength));
  }
  return Buffer.concat(chunks, n);
}

/** "code: message" of a registry error body ({"errors":[{code,message}]}), lower-cased code. */
export function registryErrorText(text: string): string | undefined {
  try {
    const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[]; details?: string; message?: string };
    const e = j.errors?.[0];
    if (e) {
      const code = (e.code ?? '').toLowerCase().replace(/_/g, ' ');
      if (code && e.message) return code === e.message.toLowerCase() ? e.message : `${code}: ${e.message}`;
      return e.message || code || undefined;
    }
    if (typeof j.details === 'string' && j.details) return j.details;
    if (typeof j.message === 'string' && j.message) return j.message;
  } catch {
    // not JSON
  }
  return undefined;
}

