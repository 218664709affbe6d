// .dockerignore as Docker reads it (moby/patternmatcher and its ignorefile package):
//   - one pattern per line; lines starting with `#` are comments; blank lines are skipped;
//   - `!` makes an exception; patterns apply in order and the last one that matches wins;
//   - each pattern is cleaned like Go's filepath.Clean and a leading `/` is dropped, so
//     `/a`, `./a` and `a/` all mean `a`;
//   - matching is Go's filepath.Match (`*` and `?` never cross `/`, `[...]` classes, `\` escapes)
//     plus `**`, which matches any number of directories, zero included;
//   - a pattern that matches a directory excludes everything below it, unless a later `!`
//     pattern re-includes a path.
import { posix } from 'node:path';

interface Pattern {
  exclusion: boolean;
  cleaned: string;
  re: RegExp;
}

/** Go's filepath.Clean for slash paths ("" becomes "."). */
export function cleanPath(p: string): string {
  if (p === '') return '.';
  const c = posix.normalize(p);
  return c.length > 1 && c.endsWith('/') ? c.slice(0, -1) : c;
}

/** Read a .dockerignore body into cleaned patterns (`!` kept as a prefix). */
export function readDockerignore(text: string): string[] {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const out: string[] = [];
  for (const rawLine of text.split(/\r?\n/)) {
    if (rawLine.startsWith('#')) continue;
    let p = rawLine.trim();
    if (p === '') continue;
    const invert = p.startsWith('!');
    if (invert) p = p.slice(1).trim();
    if (p.length > 0) {
      p = cleanPath(p);
      if (p.length > 1 && p.startsWith('/')) p = p.slice(1);
    }
    out.push(invert ? '!' + p : p);
  }
  return out;
}

function compile(pattern: string): RegExp {
  let re = '^';
  const chars = [...pattern];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '*') {
      if (chars[i + 1] === '*') {
        i++;
        if (chars[i + 1] === '/') i++;
        re += i + 1 >= chars.length ? '.*' : '(.*/)?';
      } else re += '[^/]*';
    } else if (ch === '?') re += '[^/]';
    else if ('.+()|{}$^'.includes(ch)) re += '\\' + ch;
    else if (ch === '\\') {
      if (i + 1 < chars.length) re += '\\' + chars[++i];
      else re += '\\\\';
    } else if (ch === '[') {
      // A class, as Go's filepath.Match reads it (`[^...]` negates); unterminated is literal.
      let j = i + 1;
      let cls = '';
      if (chars[j] === '^' || chars[j] === '!') {
        cls += '^';
        j++;
      }
      let closed = false;
      for (; j < chars.length; j++) {
        const c = chars[j]!;
        if (c === ']' && cls !== '' && cls !== '^') {
          closed = true;
          break;
        }
        if (c === '\\' && j + 1 < chars.length) {
          cls += '\\' + chars[++j];
          continue;
        }
        cls += c === '/' ? '' : c.replace(/[\]\[]/g, '\\$&');
      }
      if (!closed) re += '\\[';
      else {
        re += `[${cls}]`;
        i = j;
      }
    } else if (ch === ']') re += '\\]';
    else re += ch;
  }
  return new RegExp(re + '$', 's');
}

export class Dockerignore {
  readonly #patterns: Pattern[];

  constructor(patterns: readonly string[]) {
    this.#patterns = patterns.map((raw) => {
      const exclusion = raw.startsWith('!');
      const cleaned = exclusion ? raw.slice(1) : raw;
      return { exclusion, cleaned, re: compile(cleaned) };
    });
  }

  static parse(text: string): Dockerignore {
    return new Dockerignore(readDockerignore(text));
  }

  get empty(): boolean {
    return this.#patterns.length === 0;
  }

  /** True if any exception pattern exists (a directory walk cannot prune excluded dirs then). */
  get hasExceptions(): boolean {
    return this.#patterns.some((p) => p.exclusion);
  }

  /**
   * Is `file` (slash path relative to the context root, no leading `./`) excluded? A pattern
   * that matches one of its parent directories counts as matching it.
   */
  excludes(file: string): boolean {
    file = cleanPath(file.replace(/^\.\//, ''));
    const parent = posix.dirname(file);
    const parentDirs = parent === '.' ? [] : parent.split('/');
    let matched = false;
    for (const p of this.#patterns) {
      if (p.exclusion !== matched) continue;
      let m = p.re.test(file);
      if (!m) {
        for (let i = 0; i < parentDirs.length; i++) {
          if (p.re.test(parentDirs.slice(0, i + 1).join('/'))) {
            m = true;
            break;
          }
        }
      }
      if (m) matched = !p.exclusion;
    }
    return matched;
  }

  /**
   * Can a walk skip everything under directory `dir` (it is excluded and no exception
   * pattern could re-include something below it)?
   */
  canSkipDir(dir: string): boolean {
    if (!this.excludes(dir)) return false;
    const prefix = cleanPath(dir) + '/';
    return !this.#patterns.some((p) => p.exclusion && (p.cleaned.startsWith(prefix) || /[*?[\\]/.test(p.cleaned) || p.cleaned === cleanPath(dir)));
  }
}
