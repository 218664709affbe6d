// Basic authentication against an Apache htpasswd file (bcrypt entries only, as Distribution).
// bcrypt is slow on purpose (~100 ms in JS), so a verified Authorization header is remembered
// (by its SHA-256, never in clear) for a few minutes; failures are never cached.
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { invalidArgument } from '../core/errors.ts';

const CACHE_MS = 5 * 60 * 1000;
const MAX_CACHE = 1000;

export type Action = 'pull' | 'push' | 'delete';

export class HtpasswdAuth {
  readonly #users: Map<string, string>;
  readonly #verified = new Map<string, { user: string; until: number }>();

  constructor(users: Map<string, string>) {
    this.#users = users;
  }

  static parse(text: string): HtpasswdAuth {
    const users = new Map<string, string>();
    for (const raw of text.split('\n')) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const i = line.indexOf(':');
      if (i <= 0) throw invalidArgument('htpasswd: malformed line');
      const hash = line.slice(i + 1);
      if (!/^\$2[abxy]\$\d\d\$/.test(hash)) throw invalidArgument(`htpasswd: user ${line.slice(0, i)}: only bcrypt entries are supported (htpasswd -B)`);
      users.set(line.slice(0, i), hash);
    }
    return new HtpasswdAuth(users);
  }

  static async load(path: string): Promise<HtpasswdAuth> {
    return HtpasswdAuth.parse(await readFile(path, 'utf8'));
  }

  /**
   * The user an Authorization header proves, '' for no credentials (or the empty user some
   * clients send when they have none), or undefined for wrong credentials.
   */
  async verify(authorization: string | undefined): Promise<string | undefined> {
    if (!authorization) return '';
    const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(authorization);
    if (!m) return undefined;
    const key = createHash('sha256').update(authorization).digest('base64');
    const hit = this.#verified.get(key);
    const now = Date.now();
    if (hit && hit.until > now) return hit.user;
    const decoded = Buffer.from(m[1]!, 'base64').toString('utf8');
    const i = decoded.indexOf(':');
    if (i < 0) return undefined;
    const user = decoded.slice(0, i);
    const password = decoded.slice(i + 1);
    if (user === '' && password === '') return '';
    const hash = this.#users.get(user);
    if (hash === undefined) return undefined;
    if (!(await bcrypt.compare(password, hash))) return undefined;
    if (this.#verified.size >= MAX_CACHE) this.#verified.clear();
    this.#verified.set(key, { user, until: now + CACHE_MS });
    return user;
  }
}
