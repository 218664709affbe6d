// Dockerfile word processing and variable expansion, as BuildKit's shell lexer
// (frontend/dockerfile/shell/lex.go) does it for the instructions that expand variables
// (FROM, ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG, ONBUILD keeps raw):
//   - single quotes keep everything literal (no escapes inside);
//   - double quotes expand `$`, and the escape char escapes only `"`, `$` and itself;
//   - outside quotes the escape char makes the next character literal;
//   - `$VAR`, `${VAR}`, `${VAR:-w}`, `${VAR-w}`, `${VAR:+w}`, `${VAR+w}`, `${VAR:?m}`, `${VAR?m}`,
//     `${VAR#p}`, `${VAR##p}`, `${VAR%p}`, `${VAR%%p}`, `${VAR/p/r}`, `${VAR//p/r}`;
//   - `$` followed by anything else is a literal `$`.
// RUN, CMD and ENTRYPOINT are never expanded here: their shell does it at run time.
import { invalidArgument } from '../core/errors.ts';
import { hostPlatform, parsePlatform, formatPlatform, type Platform } from '../core/oci.ts';

export interface LexOptions {
  /** The Dockerfile's escape character (`\` or `` ` ``). */
  escape?: string;
  /** Keep quote characters in the output (heredoc detection, heredoc bodies). */
  rawQuotes?: boolean;
  /** Keep escape characters in the output. */
  rawEscapes?: boolean;
  /** Leave references to unset variables as written (`$X`, `${X}`). */
  skipUnsetEnv?: boolean;
}

/** Variables in scope: a map (name -> value). Unset names are absent. */
export type Env = ReadonlyMap<string, string>;

const EOF = '';
const SPECIAL_PARAMS = new Set(['@', '*', '#', '?', '-', '$', '!', '0']);

class WordCollector {
  words: string[] = [];
  #cur = '';
  #inWord = false;
  addRune(ch: string): void {
    if (/\s/.test(ch)) {
      if (this.#inWord) {
        this.words.push(this.#cur);
        this.#cur = '';
        this.#inWord = false;
      }
      return;
    }
    this.addRawRune(ch);
  }
  addString(s: string): void {
    for (const ch of s) this.addRune(ch);
  }
  addRawRune(ch: string): void {
    this.#cur += ch;
    this.#inWord = true;
  }
  addRawString(s: string): void {
    this.#cur += s;
    this.#inWord = true;
  }
  finish(): string[] {
    if (this.#inWord) {
      this.words.push(this.#cur);
      this.#cur = '';
      this.#inWord = false;
    }
    return this.words;
  }
}

class Lexer {
  readonly #src: string[];
  #pos = 0;
  readonly #env: Env;
  readonly #escape: string;
  readonly #rawQuotes: boolean;
  readonly #rawEscapes: boolean;
  readonly #skipUnset: boolean;
  /** Names that were looked up (the cache key and "unused build-arg" warnings use them). */
  readonly used = new Set<string>();

  constructor(src: string, env: Env, opts: LexOptions) {
    this.#src = [...src];
    this.#env = env;
    this.#escape = opts.escape ?? '\\';
    this.#rawQuotes = opts.rawQuotes ?? false;
    this.#rawEscapes = opts.rawEscapes ?? false;
    this.#skipUnset = opts.skipUnsetEnv ?? false;
  }

  #peek(): string {
    return this.#src[this.#pos] ?? EOF;
  }
  #next(): string {
    const c = this.#src[this.#pos] ?? EOF;
    if (c !== EOF) this.#pos++;
    return c;
  }

  #get(name: string): string | undefined {
    this.used.add(name);
    return this.#env.get(name);
  }

  process(): { word: string; words: string[] } {
    const { word, words } = this.#processStopOn(EOF, this.#rawEscapes);
    return { word, words };
  }

  #processStopOn(stop: string, rawEscapes: boolean): { word: string; words: string[] } {
    let result = '';
    const words = new WordCollector();
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (stop !== EOF && ch === stop) {
        this.#next();
        return { word: result, words: words.finish() };
      }
      if (ch === "'" || ch === '"' || ch === '$') {
        const tmp = ch === "'" ? this.#singleQuote() : ch === '"' ? this.#doubleQuote() : this.#dollar();
        result += tmp;
        if (ch === '$') words.addString(tmp);
        else words.addRawString(tmp);
        continue;
      }
      let c = this.#next();
      if (c === this.#escape) {
        if (rawEscapes) {
          words.addRawRune(c);
          result += c;
        }
        c = this.#next();
        if (c === EOF) break;
        words.addRawRune(c);
      } else {
        words.addRune(c);
      }
      result += c;
    }
    if (stop !== EOF) throw invalidArgument(`unexpected end of statement while looking for matching ${stop}`);
    return { word: result, words: words.finish() };
  }

  #singleQuote(): string {
    // Everything up to the next single quote is literal; a single quote cannot be escaped.
    let result = '';
    const open = this.#next();
    if (this.#rawQuotes) result += open;
    for (;;) {
      const c = this.#next();
      if (c === EOF) throw invalidArgument('unexpected end of statement while looking for matching single-quote');
      if (c === "'") {
        if (this.#rawQuotes) result += c;
        return result;
      }
      result += c;
    }
  }

  #doubleQuote(): string {
    let result = '';
    const open = this.#next();
    if (this.#rawQuotes) result += open;
    for (;;) {
      const p = this.#peek();
      if (p === EOF) throw invalidArgument('unexpected end of statement while looking for matching double-quote');
      if (p === '"') {
        const c = this.#next();
        if (this.#rawQuotes) result += c;
        return result;
      }
      if (p === '$') {
        result += this.#dollar();
        continue;
      }
      let c = this.#next();
      if (c === this.#escape) {
        const n = this.#peek();
        if (n === EOF) continue;
        if (n === '"' || n === '$' || n === this.#escape) {
          if (this.#rawEscapes) result += c;
          c = this.#next();
        }
      }
      result += c;
    }
  }

  #name(): string {
    let name = '';
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (name === '' && /[0-9]/.test(ch)) {
        while (/[0-9]/.test(this.#peek()) && this.#peek() !== EOF) name += this.#next();
        return name;
      }
      if (name === '' && SPECIAL_PARAMS.has(ch)) return this.#next();
      if (!/[\p{L}\p{N}_]/u.test(ch)) break;
      name += this.#next();
    }
    return name;
  }

  #dollar(): string {
    this.#next(); // $
    if (this.#peek() !== '{') {
      const name = this.#name();
      if (name === '') return '$';
      const v = this.#get(name);
      if (v === undefined && this.#skipUnset) return '$' + name;
      return v ?? '';
    }
    this.#next(); // {
    const p = this.#peek();
    if (p === EOF) throw invalidArgument("syntax error: missing '}'");
    if (p === '{' || p === '}' || p === ':') throw invalidArgument('syntax error: bad substitution');
    const name = this.#name();
    const ch = this.#next();
    const value = this.#get(name);
    const set = value !== undefined;
    const val = value ?? '';
    const word = (): string => {
      try {
        return this.#processStopOn('}', false).word;
      } catch (err) {
        if (this.#peek() === EOF) throw invalidArgument("syntax error: missing '}'");
        throw err;
      }
    };
    switch (ch) {
      case '}':
        if (!set && this.#skipUnset) return `\${${name}}`;
        return val;
      case '?': {
        const w = word();
        if (!set) throw invalidArgument(`${name}: ${w || 'is not allowed to be unset'}`);
        return val;
      }
      case ':': {
        const mod = this.#next();
        const w = word();
        if (this.#skipUnset && !set) return `\${${name}:${mod}${w}}`;
        switch (mod) {
          case '+': return val !== '' ? w : '';
          case '-': return val === '' ? w : val;
          case '?':
            if (val === '') throw invalidArgument(`${name}: ${w || 'is not allowed to be unset'}`);
            return val;
          default: throw invalidArgument(`unsupported modifier (${mod}) in substitution`);
        }
      }
      case '+': {
        const w = word();
        if (this.#skipUnset && !set) return `\${${name}+${w}}`;
        return set ? w : '';
      }
      case '-': {
        const w = word();
        if (this.#skipUnset && !set) return `\${${name}-${w}}`;
        return set ? val : w;
      }
      case '#':
      case '%': {
        const longest = this.#peek() === ch;
        if (longest) this.#next();
        const pat = word();
        if (this.#skipUnset && !set) return `\${${name}${ch}${longest ? ch : ''}${pat}}`;
        return trimPattern(val, pat, ch === '#' ? 'prefix' : 'suffix', longest);
      }
      case '/': {
        const all = this.#peek() === '/';
        if (all) this.#next();
        const pat = this.#processStopOnAny(['/', '}']);
        const repl = pat.stop === '/' ? word() : '';
        if (this.#skipUnset && !set) return `\${${name}/${all ? '/' : ''}${pat.word}${pat.stop === '/' ? '/' + repl : ''}}`;
        return replacePattern(val, pat.word, repl, all);
      }
      default:
        if (ch === EOF) throw invalidArgument("syntax error: missing '}'");
        throw invalidArgument(`unsupported modifier (${ch}) in substitution`);
    }
  }

  #processStopOnAny(stops: string[]): { word: string; stop: string } {
    let result = '';
    while (this.#peek() !== EOF) {
      const ch = this.#peek();
      if (stops.includes(ch)) {
        this.#next();
        return { word: result, stop: ch };
      }
      if (ch === '$') {
        result += this.#dollar();
        continue;
      }
      let c = this.#next();
      if (c === this.#escape) {
        c = this.#next();
        if (c === EOF) break;
      }
      result += c;
    }
    throw invalidArgument("syntax error: missing '}'");
  }
}

/** Shell glob pattern (`*`, `?`, `[...]`) to an anchored-at-nothing regex source. */
function globSource(pat: string): string {
  let re = '';
  for (let i = 0; i < pat.length; i++) {
    const c = pat[i]!;
    if (c === '*') re += '[\\s\\S]*';
    else if (c === '?') re += '[\\s\\S]';
    else if (c === '[') {
      const end = pat.indexOf(']', i + 2);
      if (end < 0) re += '\\[';
      else {
        let cls = pat.slice(i + 1, end);
        if (cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += '[' + cls.replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return re;
}

function trimPattern(val: string, pat: string, where: 'prefix' | 'suffix', longest: boolean): string {
  const re = new RegExp(`^${globSource(pat)}$`);
  if (where === 'prefix') {
    const order = [...Array(val.length + 1).keys()];
    if (longest) order.reverse();
    for (const n of order) if (re.test(val.slice(0, n))) return val.slice(n);
  } else {
    const order = [...Array(val.length + 1).keys()].reverse();
    if (longest) order.reverse();
    for (const n of order) if (re.test(val.slice(n))) return val.slice(0, n);
  }
  return val;
}

function replacePattern(val: string, pat: string, repl: string, all: boolean): string {
  if (pat === '') return val;
  const re = new RegExp(globSource(pat), all ? 'g' : '');
  return val.replace(re, () => repl);
}

/** Expand one word (quotes removed, whitespace kept): ENV/LABEL values, WORKDIR, USER, COPY args. */
export function processWord(word: string, env: Env, opts: LexOptions = {}): string {
  return new Lexer(word, env, opts).process().word;
}

/** Expand and split into words on unquoted whitespace (EXPOSE, VOLUME, the heredoc scan). */
export function processWords(line: string, env: Env, opts: LexOptions = {}): string[] {
  return new Lexer(line, env, opts).process().words;
}

/** Like processWord, also returning the variable names it referenced. */
export function processWordWithUsage(word: string, env: Env, opts: LexOptions = {}): { word: string; used: Set<string> } {
  const lx = new Lexer(word, env, opts);
  return { word: lx.process().word, used: lx.used };
}

/** The proxy args every build accepts without an ARG line; they never enter the image history. */
export const PROXY_ARGS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy'] as const;

/** BuildKit's automatic platform args (available after `ARG TARGETARCH` etc., and globally before FROM). */
export function platformArgs(target: Platform | undefined, build: Platform = hostPlatform()): Map<string, string> {
  const t = target ?? build;
  const m = new Map<string, string>();
  const set = (prefix: string, p: Platform) => {
    m.set(`${prefix}PLATFORM`, formatPlatform(p));
    m.set(`${prefix}OS`, p.os);
    m.set(`${prefix}ARCH`, p.architecture);
    m.set(`${prefix}VARIANT`, p.variant ?? '');
  };
  set('BUILD', build);
  set('TARGET', t);
  return m;
}

/** `--platform` value (after expansion) to a Platform; an empty string means the default. */
export function platformFromFlag(value: string | undefined): Platform | undefined {
  if (!value) return undefined;
  try {
    return parsePlatform(value);
  } catch {
    throw invalidArgument(`invalid platform ${JSON.stringify(value)}`);
  }
}

/** `K=V` list (image Env) to a map; later entries win. */
export function envListToMap(list: readonly string[] | undefined): Map<string, string> {
  const m = new Map<string, string>();
  for (const kv of list ?? []) {
    const i = kv.indexOf('=');
    if (i < 0) m.set(kv, '');
    else m.set(kv.slice(0, i), kv.slice(i + 1));
  }
  return m;
}

/** Set or replace K in a `K=V` list, keeping the position of an existing entry (Docker's order). */
export function envListSet(list: readonly string[], key: string, value: string): string[] {
  const out = [...list];
  const i = out.findIndex((kv) => kv === key || kv.startsWith(key + '='));
  if (i >= 0) out[i] = `${key}=${value}`;
  else out.push(`${key}=${value}`);
  return out;
}
