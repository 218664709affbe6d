// Registry credentials: Docker's config.json and the X-Registry-Auth header.
//
// config.json (the file `docker login` writes; berth reads and writes the same format):
//
//   <dir>/config.json        dir = $BERTH_CONFIG, else $DOCKER_CONFIG, else ~/.docker
//   { "auths": { "<server>": { "auth": "base64(user:pass)", "identitytoken": "..." } }, ...other keys kept }
//
// Docker Hub is stored under "https://index.docker.io/v1/"; every other registry under its
// host[:port]. Lookups accept any spelling Docker has ever written (scheme, /v1/ or /v2/ path).
// Writes are atomic (tmp + fsync + rename) with mode 0600 and keep unknown keys.
// credsStore / credHelpers (external helper binaries) are not supported: entries they own are
// invisible here, as with `docker login` when the helper is missing.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { invalidArgument } from '../core/errors.ts';
import { DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, DOCKER_HUB_REGISTRY } from '../core/reference.ts';
import { writeJsonAtomic } from '../pkg/atomic-file.ts';

/** Credentials for one registry. Either username+password, or a token. */
export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (Docker's `identitytoken`): exchanged at the token realm. */
  identityToken?: string;
  /** A bearer token sent to the registry as is (Docker's `registrytoken`). */
  registryToken?: string;
  /** The server these were given for, as the client spelled it. */
  serverAddress?: string;
}

/**
 * Where credentials come from. `registry` is a normalized registry name as in a Reference's
 * domain ("docker.io", "127.0.0.1:5000"), never the host it is served from.
 */
export interface AuthProvider {
  credentials(registry: string): Promise<Credentials | undefined> | Credentials | undefined;
}

/** The key Docker uses for Docker Hub in config.json. */
export const DOCKER_HUB_AUTH_KEY = 'https://index.docker.io/v1/';

/**
 * Normalize a server address as typed to `docker login` or found in config.json:
 * "https://index.docker.io/v1/" -> "docker.io", "http://127.0.0.1:5000/v2/" -> "127.0.0.1:5000".
 */
export function normalizeRegistry(server: string): string {
  let s = server.trim();
  s = s.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = s.indexOf('/');
  if (slash !== -1) s = s.slice(0, slash);
  s = s.toLowerCase();
  if (s === '' || s === LEGACY_DEFAULT_DOMAIN || s === DOCKER_HUB_REGISTRY || s === DEFAULT_DOMAIN) return DEFAULT_DOMAIN;
  return s;
}

/** The config.json "auths" key for a registry. */
export function authKey(registry: string): string {
  const r = normalizeRegistry(registry);
  return r === DEFAULT_DOMAIN ? DOCKER_HUB_AUTH_KEY : r;
}

/** A provider that gives the same credentials for every registry (one pull's X-Registry-Auth). */
export function staticAuth(creds: Credentials | undefined): AuthProvider {
  return { credentials: () => creds };
}

/** $BERTH_CONFIG, else $DOCKER_CONFIG, else ~/.docker. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.BERTH_CONFIG || env.DOCKER_CONFIG || join(homedir(), '.docker');
}

interface AuthEntry {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
  email?: string;
  [k: string]: unknown;
}

interface ConfigFile {
  auths?: Record<string, AuthEntry>;
  [k: string]: unknown;
}

function entryToCredentials(e: AuthEntry, server: string): Credentials | undefined {
  const c: Credentials = { serverAddress: server };
  if (typeof e.auth === 'string' && e.auth !== '') {
    const raw = Buffer.from(e.auth, 'base64').toString('utf8');
    const colon = raw.indexOf(':');
    if (colon === -1) return undefined; // Docker: "invalid auth configuration file"; treat as absent
    c.username = raw.slice(0, colon);
    c.password = raw.slice(colon + 1);
  } else if (typeof e.username === 'string') {
    c.username = e.username;
    if (typeof e.password === 'string') c.password = e.password;
  }
  if (typeof e.identitytoken === 'string' && e.identitytoken !== '') c.identityToken = e.identitytoken;
  if (typeof e.registrytoken === 'string' && e.registrytoken !== '') c.registryToken = e.registrytoken;
  if (c.username === undefined && c.identityToken === undefined && c.registryToken === undefined) return undefined;
  return c;
}

/** Docker's config.json as a credential store. Reads the file on each lookup (it is small). */
export class CredentialStore implements AuthProvider {
  readonly dir: string;
  readonly path: string;
  constructor(dir: string = configDir()) {
    this.dir = dir;
    this.path = join(dir, 'config.json');
  }

  async #read(): Promise<ConfigFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    if (text.trim() === '') return {};
    try {
      const v = JSON.parse(text) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      return v as ConfigFile;
    } catch (err) {
      throw invalidArgument(`invalid config file ${this.path}: ${(err as Error).message}`);
    }
  }

  async credentials(registry: string): Promise<Credentials | undefined> {
    const want = normalizeRegistry(registry);
    const auths = (await this.#read()).auths ?? {};
    // Exact key first, then any spelling that normalizes to the same registry.
    const exact = auths[authKey(want)];
    if (exact) {
      const c = entryToCredentials(exact, authKey(want));
      if (c) return c;
    }
    for (const [k, e] of Object.entries(auths)) {
      if (normalizeRegistry(k) === want) {
        const c = entryToCredentials(e, k);
        if (c) return c;
      }
    }
    return undefined;
  }

  /** Store credentials (what `docker login` does after a successful check). */
  async store(registry: string, creds: Credentials): Promise<void> {
    const cfg = await this.#read();
    const auths = { ...(cfg.auths ?? {}) };
    const want = normalizeRegistry(registry);
    for (const k of Object.keys(auths)) if (normalizeRegistry(k) === want) delete auths[k];
    const e: AuthEntry = {};
    if (creds.identityToken) {
      // Docker stores only the username alongside an identity token, never the password.
      e.auth = Buffer.from(`${creds.username ?? ''}:`).toString('base64');
      e.identitytoken = creds.identityToken;
    } else {
      e.auth = Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
    }
    auths[authKey(want)] = e;
    await writeJsonAtomic(this.path, { ...cfg, auths }, 0o600);
  }

  /** Remove credentials (`docker logout`). Returns whether any were present. */
  async erase(registry: string): Promise<boolean> {
    const cfg = await this.#read();
    const auths = { ...(cfg.auths ?? {}) };
    const want = normalizeRegistry(registry);
    let found = false;
    for (const k of Object.keys(auths)) {
      if (normalizeRegistry(k) === want) {
        delete auths[k];
        found = true;
      }
    }
    if (found) await writeJsonAtomic(this.path, { ...cfg, auths }, 0o600);
    return found;
  }
}

/**
 * Decode the X-Registry-Auth header (base64url JSON {username,password,serveraddress,
 * identitytoken,registrytoken}). Standard base64 and missing padding are tolerated, as Docker
 * does; an empty header or "{}" means anonymous (undefined).
 */
export function decodeRegistryAuthHeader(header: string | undefined | null): Credentials | undefined {
  if (header === undefined || header === null) return undefined;
  const h = header.trim();
  if (h === '') return undefined;
  let obj: unknown;
  try {
    // Buffer's base64 decoder accepts both alphabets ('+/' and '-_') and absent padding.
    obj = JSON.parse(Buffer.from(h, 'base64').toString('utf8'));
  } catch {
    // Some old clients send the JSON unencoded.
    try {
      obj = JSON.parse(h);
    } catch {
      throw invalidArgument('invalid X-Registry-Auth header: not base64-encoded JSON');
    }
  }
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw invalidArgument('invalid X-Registry-Auth header: not a JSON object');
  const o = obj as Record<string, unknown>;
  const str = (k: string): string | undefined => {
    // Docker's AuthConfig JSON keys are lower-case, but Go's decoder matches them case-insensitively.
    for (const [key, v] of Object.entries(o)) if (key.toLowerCase() === k && typeof v === 'string' && v !== '') return v;
    return undefined;
  };
  const c: Credentials = {};
  const username = str('username');
  const password = str('password');
  const server = str('serveraddress');
  const identity = str('identitytoken');
  const registry = str('registrytoken');
  // Old clients send "auth" (base64 user:pass) instead of username/password.
  const auth = str('auth');
  if (username !== undefined) c.username = username;
  if (password !== undefined) c.password = password;
  if (auth !== undefined && username === undefined) {
    const raw = Buffer.from(auth, 'base64').toString('utf8');
    const colon = raw.indexOf(':');
    if (colon !== -1) {
      c.username = raw.slice(0, colon);
      c.password = raw.slice(colon + 1);
    }
  }
  if (server !== undefined) c.serverAddress = server;
  if (identity !== undefined) c.identityToken = identity;
  if (registry !== undefined) c.registryToken = registry;
  if (c.username === undefined && c.password === undefined && c.identityToken === undefined && c.registryToken === undefined) return undefined;
  return c;
}

/** Encode credentials as an X-Registry-Auth header value (base64url JSON), as the docker CLI does. */
export function encodeRegistryAuthHeader(creds: Credentials): string {
  const o: Record<string, string> = {};
  if (creds.username !== undefined) o.username = creds.username;
  if (creds.password !== undefined) o.password = creds.password;
  if (creds.serverAddress !== undefined) o.serveraddress = creds.serverAddress;
  if (creds.identityToken !== undefined) o.identitytoken = creds.identityToken;
  if (creds.registryToken !== undefined) o.registrytoken = creds.registryToken;
  return Buffer.from(JSON.stringify(o)).toString('base64url');
}
