// HTTP transport for registries: which scheme a registry is spoken to with, the shared undici
// Agent (keep-alive, several connections per origin so layers download in parallel), and the
// rules for where credentials may travel.
//
// Scheme (Docker's rule, without its HTTPS->HTTP fallback, CVE-2014-5277):
//   127.0.0.0/8, localhost, [::1]      -> http
//   a name in insecureRegistries       -> http (host:port, host, or an IPv4 CIDR like 10.0.0.0/8)
//   everything else                    -> https, verified against Node's bundled CAs + the system store
// There is never a fallback from https to http.
//
// Credentials (Authorization, token-realm basic auth) go only to https URLs or to plain-http
// loopback URLs; see mayCarryCredentials.
import { getCACertificates } from 'node:tls';
import { isIP } from 'node:net';
import { Agent, type Dispatcher } from 'undici';
import { unavailable, BerthError } from '../core/errors.ts';
import { registryHost } from '../core/reference.ts';

export interface Endpoint {
  /** The registry name as in references ("docker.io", "127.0.0.1:5000"). */
  registry: string;
  /** host[:port] actually contacted ("registry-1.docker.io"). */
  host: string;
  /** "https://host[:port]" or "http://host[:port]". */
  origin: string;
}

/** The hostname of "host:port", "[::1]:5000", "host" (brackets removed, lower-cased). */
export function hostnameOf(hostport: string): string {
  if (hostport.startsWith('[')) {
    const end = hostport.indexOf(']');
    return hostport.slice(1, end === -1 ? undefined : end).toLowerCase();
  }
  const colon = hostport.lastIndexOf(':');
  return (colon === -1 ? hostport : hostport.slice(0, colon)).toLowerCase();
}

export function isLoopbackHostname(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h);
  return mapped !== null && mapped[1]!.startsWith('127.');
}

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((a, p) => (a << 8) + Number(p), 0) >>> 0;
}

function inCidr(ip: string, cidr: string): boolean {
  const [net, bitsStr] = cidr.split('/');
  const bits = Number(bitsStr);
  if (isIP(ip) !== 4 || isIP(net ?? '') !== 4 || !Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return (ipv4ToInt(ip) & mask) === (ipv4ToInt(net!) & mask);
}

/** Whether a registry host[:port] is spoken to over plain HTTP. */
export function isInsecureHost(host: string, insecureRegistries: readonly string[] = []): boolean {
  const hostname = hostnameOf(host);
  if (isLoopbackHostname(hostname)) return true;
  for (const entry of insecureRegistries) {
    const e = entry.replace(/^[a-z]+:\/\//i, '').replace(/\/+$/, '').toLowerCase();
    if (e.includes('/')) {
      if (inCidr(hostname, e)) return true;
    } else if (e === host.toLowerCase() || e === hostname) {
      return true;
    }
  }
  return false;
}

export function endpointFor(registry: string, insecureRegistries: readonly string[] = []): Endpoint {
  const host = registryHost(registry);
  const scheme = isInsecureHost(host, insecureRegistries) ? 'http' : 'https';
  return { registry, host, origin: `${scheme}://${host}` };
}

/**
 * Whether a URL may carry credentials: https always; plain http only to a loopback host, where
 * nothing on the network can read them.
 */
export function mayCarryCredentials(url: URL): boolean {
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && isLoopbackHostname(url.hostname);
}

let caCache: string[] | undefined;
/** Node's bundled Mozilla CAs plus the system store (/etc/ssl/certs), deduplicated. */
export function trustedCAs(): string[] {
  caCache ??= [...new Set([...getCACertificates('bundled'), ...getCACertificates('system'), ...getCACertificates('extra')])];
  return caCache;
}

export interface AgentOptions {
  /** Connections per origin (default 8: parallel layer fetches reuse warm connections). */
  connections?: number;
  /** Extra CA certificates (PEM) trusted for https registries. */
  ca?: string[];
}

export function createAgent(opts: AgentOptions = {}): Dispatcher {
  return new Agent({
    connections: opts.connections ?? 8,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 300_000,
    headersTimeout: 60_000,
    // A stalled body for this long counts as a dropped connection (resumed with Range).
    bodyTimeout: 60_000,
    connect: { ca: [...trustedCAs(), ...(opts.ca ?? [])], timeout: 30_000 },
  });
}

/** Map a transport failure to Unavailable naming the URL (Docker: `Get "https://h/v2/": ...`). */
export function networkError(method: string, url: string, err: unknown): Error {
  if (err instanceof BerthError) return err;
  if (err instanceof Error && err.name === 'AbortError') return err;
  const e = err as { code?: string; message?: string; cause?: { code?: string; message?: string } };
  const detail = e.cause?.message ?? e.message ?? String(err);
  const verb = method.charAt(0) + method.slice(1).toLowerCase();
  return unavailable(`${verb} "${url}": ${detail}`, err);
}

/** Failures worth retrying before the first byte: resets, refused/timeouts, 429 and 5xx gateways. */
export function isTransientNetworkError(err: unknown): boolean {
  const e = err as { code?: string; cause?: { code?: string } };
  const code = e?.code ?? e?.cause?.code ?? '';
  return [
    'ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
    'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CLOSED',
  ].includes(code);
}

export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status === 500 || status === 502 || status === 503 || status === 504;
}

/** One header value (first of a repeated header). */
export function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const v = headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** All values of a possibly repeated header. */
export function headerAll(headers: Record<string, string | string[] | undefined>, name: string): string[] {
  const v = headers[name.toLowerCase()];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}
