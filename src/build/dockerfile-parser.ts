// The Dockerfile grammar as BuildKit's parser (frontend/dockerfile/parser) and instruction
// layer (frontend/dockerfile/instructions) read it:
//   - parser directives (`# syntax=`, `# escape=`, `# check=`) only in the leading comment block;
//     the first blank line, ordinary comment or instruction ends that block;
//   - `#` comments at line start only; continuation with the escape char at end of line
//     (trailing blanks allowed); comment and empty lines inside a continuation are skipped;
//   - `INSTR [--flag[=v]]... args`, keyword case-insensitive; exec (JSON array) vs shell forms;
//   - heredocs for RUN, COPY and ADD (`<<EOF`, `<<-EOF` strips leading tabs, quoted delimiter
//     disables expansion, several per line; the bodies follow the instruction line).
// Variable expansion is not done here (see shell-words.ts): nodes keep the raw words.
// Errors name the file and line: `Dockerfile:7: unknown instruction: FOO`.
import { BerthError } from '../core/errors.ts';
import { processWords } from './shell-words.ts';

export interface Heredoc {
  /** The delimiter word, quotes removed: also the file name for COPY/ADD. */
  name: string;
  /** Body, each line ending in "\n"; tabs already stripped for `<<-`. */
  content: string;
  /** False when the delimiter was quoted: no variable expansion of the body. */
  expand: boolean;
  chomp: boolean;
}

export interface Flag {
  name: string;
  /** undefined for a bare `--flag`. */
  value: string | undefined;
}

interface Base {
  /** 1-based line of the keyword, and of the last line (continuations, heredocs). */
  line: number;
  endLine: number;
  /** The instruction as written, continuations joined (Docker's "Original"). */
  original: string;
}

/** A command in exec form (JSON array) or shell form (one string for the SHELL). */
export type CommandLine = { json: true; args: string[] } | { json: false; cmd: string };

export interface FromInstruction extends Base { kind: 'FROM'; image: string; stageName?: string; platform?: string }
export interface RunMount { raw: string; fields: Record<string, string> }
export interface RunInstruction extends Base { kind: 'RUN'; command: CommandLine; heredocs: Heredoc[]; network?: string; security?: string; mounts: RunMount[] }
export interface CmdInstruction extends Base { kind: 'CMD'; command: CommandLine }
export interface EntrypointInstruction extends Base { kind: 'ENTRYPOINT'; command: CommandLine }
export interface ShellInstruction extends Base { kind: 'SHELL'; args: string[] }
export interface KeyValue { key: string; value: string }
export interface LabelInstruction extends Base { kind: 'LABEL'; pairs: KeyValue[]; /** Taken as given, no variable expansion (`--label` of the request). */ noExpand?: boolean }
export interface EnvInstruction extends Base { kind: 'ENV'; pairs: KeyValue[] }
export interface ExposeInstruction extends Base { kind: 'EXPOSE'; ports: string[] }
export interface CopyInstruction extends Base {
  kind: 'COPY' | 'ADD';
  /** Raw source words; heredoc sources appear as their `<<NAME` word and in `heredocs`. */
  sources: string[];
  dest: string;
  json: boolean;
  heredocs: Heredoc[];
  from?: string;
  chown?: string;
  chmod?: string;
  link: boolean;
  parents: boolean;
  excludes: string[];
  keepGitDir: boolean;
  checksum?: string;
}
export interface VolumeInstruction extends Base { kind: 'VOLUME'; paths: string[]; json: boolean }
export interface UserInstruction extends Base { kind: 'USER'; user: string }
export interface WorkdirInstruction extends Base { kind: 'WORKDIR'; path: string }
export interface ArgDecl { name: string; default?: string }
export interface ArgInstruction extends Base { kind: 'ARG'; args: ArgDecl[] }
export interface OnbuildInstruction extends Base { kind: 'ONBUILD'; /** Trigger as written, e.g. "RUN echo hi". */ expression: string; trigger: Instruction }
export interface StopsignalInstruction extends Base { kind: 'STOPSIGNAL'; signal: string }
export interface HealthcheckInstruction extends Base {
  kind: 'HEALTHCHECK';
  /** ["NONE"], ["CMD", args...] or ["CMD-SHELL", cmd]. */
  test: string[];
  /** Nanoseconds, Docker's HealthConfig units; undefined: inherit the default. */
  interval?: number;
  timeout?: number;
  startPeriod?: number;
  startInterval?: number;
  retries?: number;
}
export interface MaintainerInstruction extends Base { kind: 'MAINTAINER'; name: string }

export type Instruction =
  | FromInstruction | RunInstruction | CmdInstruction | EntrypointInstruction | ShellInstruction
  | LabelInstruction | EnvInstruction | ExposeInstruction | CopyInstruction | VolumeInstruction
  | UserInstruction | WorkdirInstruction | ArgInstruction | OnbuildInstruction
  | StopsignalInstruction | HealthcheckInstruction | MaintainerInstruction;

export interface Stage {
  index: number;
  /** Lower-cased `AS` name. */
  name?: string;
  from: FromInstruction;
  instructions: Instruction[];
}

export interface Dockerfile {
  directives: { syntax?: string; escape: string; check?: string };
  /** ARG lines before the first FROM. */
  metaArgs: ArgInstruction[];
  stages: Stage[];
  /** Parse warnings (empty continuation lines, MAINTAINER, ...): Docker prints them too. */
  warnings: string[];
}

const DIRECTIVE_RE = /^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$/;
const KNOWN_DIRECTIVES = new Set(['escape', 'syntax', 'check']);
const HEREDOC_INSTRUCTIONS = new Set(['RUN', 'COPY', 'ADD']);
const ALLOWED_FLAGS: Record<string, readonly string[]> = {
  FROM: ['platform'],
  RUN: ['mount', 'network', 'security'],
  COPY: ['from', 'chown', 'chmod', 'link', 'parents', 'exclude'],
  ADD: ['chown', 'chmod', 'link', 'keep-git-dir', 'checksum', 'exclude'],
  HEALTHCHECK: ['interval', 'timeout', 'start-period', 'start-interval', 'retries'],
};
const REPEATABLE_FLAGS = new Set(['mount', 'exclude']);
const INSTRUCTIONS = new Set(['FROM', 'RUN', 'CMD', 'ENTRYPOINT', 'SHELL', 'LABEL', 'ENV', 'EXPOSE', 'COPY', 'ADD', 'VOLUME', 'USER', 'WORKDIR', 'ARG', 'ONBUILD', 'STOPSIGNAL', 'HEALTHCHECK', 'MAINTAINER']);

/** A parse error that carries the file and line: `Dockerfile:7: unknown instruction: FOO`. */
export class DockerfileError extends BerthError {
  readonly file: string;
  readonly line: number;
  constructor(file: string, line: number, message: string) {
    super('InvalidArgument', `${file}:${line}: ${message}`);
    this.file = file;
    this.line = line;
  }
}

class LineError extends Error {}

/** Parse a whole Dockerfile. `file` names it in errors ("Dockerfile", "build/Containerfile"). */
export function parseDockerfile(text: string, file = 'Dockerfile'): Dockerfile {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const lines = text.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const directives: Dockerfile['directives'] = { escape: '\\' };
  const warnings: string[] = [];
  const seen = new Set<string>();
  let i = 0;
  // Directives: only the leading block of `# key=value` comments.
  for (; i < lines.length; i++) {
    const m = DIRECTIVE_RE.exec(lines[i]!.trim());
    if (!m) break;
    const key = m[1]!.toLowerCase();
    if (!KNOWN_DIRECTIVES.has(key)) continue; // unknown directives are comments
    if (seen.has(key)) throw new DockerfileError(file, i + 1, `only one ${key} parser directive can be used`);
    seen.add(key);
    const value = m[2]!;
    if (key === 'escape') {
      if (value !== '\\' && value !== '`') throw new DockerfileError(file, i + 1, `invalid escape token '${value}' does not match ` + '` or \\');
      directives.escape = value;
    } else if (key === 'syntax') directives.syntax = value;
    else directives.check = value;
  }
  const esc = directives.escape;
  const contRe = new RegExp(`${esc === '\\' ? '\\\\' : '`'}[ \\t]*$`);
  const isComment = (l: string) => /^\s*#/.test(l);

  const instructions: Instruction[] = [];
  while (i < lines.length) {
    const raw = lines[i]!;
    const start = i + 1;
    i++;
    if (isComment(raw) || raw.trim() === '') continue;
    let line = raw.replace(/^\s+/, '');
    let complete = !contRe.test(line);
    if (!complete) line = line.replace(contRe, '');
    while (!complete && i < lines.length) {
      const next = lines[i]!;
      i++;
      if (isComment(next)) continue;
      if (next.trim() === '') {
        warnings.push(`${file}:${i}: empty continuation line`);
        continue;
      }
      if (contRe.test(next)) line += next.replace(contRe, '');
      else {
        line += next;
        complete = true;
      }
    }
    let node: Instruction;
    try {
      node = parseLine(line, start, i, esc, warnings);
    } catch (err) {
      if (err instanceof DockerfileError) throw err;
      throw new DockerfileError(file, start, (err as Error).message);
    }
    // Heredoc bodies follow the complete instruction line.
    if (HEREDOC_INSTRUCTIONS.has(node.kind) && line.includes('<<')) {
      const docs = heredocsFromLine(line);
      for (const doc of docs) {
        let terminated = false;
        let content = '';
        while (i < lines.length) {
          const l = lines[i]!;
          i++;
          const candidate = doc.chomp ? l.replace(/^\t+/, '') : l;
          if (candidate === doc.name) {
            terminated = true;
            break;
          }
          content += (doc.chomp ? l.replace(/^\t+/, '') : l) + '\n';
        }
        if (!terminated) throw new DockerfileError(file, start, 'unterminated heredoc');
        doc.content = content;
      }
      (node as RunInstruction | CopyInstruction).heredocs = docs;
      node.endLine = i;
      try {
        if (node.kind === 'COPY' || node.kind === 'ADD') checkCopyHeredocs(node);
      } catch (err) {
        throw new DockerfileError(file, start, (err as Error).message);
      }
    }
    instructions.push(node);
  }

  const metaArgs: ArgInstruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.kind === 'FROM') {
      const st: Stage = { index: stages.length, from: ins, instructions: [] };
      if (ins.stageName !== undefined) {
        st.name = ins.stageName;
        if (stages.some((s) => s.name === st.name)) throw new DockerfileError(file, ins.line, `duplicate stage name "${st.name}"`);
      }
      stages.push(st);
      continue;
    }
    const cur = stages[stages.length - 1];
    if (!cur) {
      if (ins.kind === 'ARG') {
        metaArgs.push(ins);
        continue;
      }
      throw new DockerfileError(file, ins.line, `no build stage in current context (${ins.kind} before FROM)`);
    }
    if (ins.kind === 'MAINTAINER') warnings.push(`${file}:${ins.line}: MAINTAINER is deprecated, use a LABEL instead`);
    cur.instructions.push(ins);
  }
  if (instructions.length === 0) throw new DockerfileError(file, 1, 'the Dockerfile cannot be empty');
  if (stages.length === 0) throw new DockerfileError(file, 1, 'dockerfile contains no stages to build (no FROM)');
  return { directives, metaArgs, stages, warnings };
}

/** Parse one logical instruction line (continuations already joined). Exposed for ONBUILD triggers. */
export function parseInstruction(line: string, escape = '\\', lineNo = 1): Instruction {
  return parseLine(line, lineNo, lineNo, escape, []);
}

function parseLine(line: string, start: number, end: number, esc: string, warnings: string[]): Instruction {
  const trimmed = line.trim();
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(trimmed);
  const keyword = (m?.[1] ?? '').toUpperCase();
  let rest = m?.[2] ?? '';
  if (!INSTRUCTIONS.has(keyword)) throw new LineError(`unknown instruction: ${m?.[1] ?? trimmed}`);
  const base = { line: start, endLine: end, original: trimmed };
  const fl = extractFlags(rest);
  rest = fl.rest;
  const flags = checkFlags(keyword, fl.flags);
  const one = (name: string) => flags.get(name)?.[0];
  const bool = (name: string): boolean => {
    const v = one(name);
    if (v === undefined) return flags.has(name);
    if (v === 'true' || v === '') return true;
    if (v === 'false') return false;
    throw new LineError(`expecting boolean value for flag ${name}, not: ${v}`);
  };
  const needArgs = () => {
    if (rest.trim() === '') throw new LineError(`${keyword} requires at least one argument`);
  };
  switch (keyword) {
    case 'FROM': {
      const words = splitWhitespace(rest);
      if (words.length !== 1 && !(words.length === 3 && words[1]!.toLowerCase() === 'as')) {
        throw new LineError('FROM requires either one or three arguments');
      }
      const ins: FromInstruction = { ...base, kind: 'FROM', image: words[0]! };
      if (words.length === 3) {
        const name = words[2]!.toLowerCase();
        if (!/^[a-z][a-z0-9-_.]*$/.test(name)) throw new LineError(`invalid name for build stage: "${words[2]}", name can't start with a number or contain symbols`);
        ins.stageName = name;
      }
      const p = one('platform');
      if (p !== undefined) ins.platform = p;
      return ins;
    }
    case 'RUN': {
      needArgs();
      const mounts = (flags.get('mount') ?? []).map(parseMountFlag);
      const ins: RunInstruction = { ...base, kind: 'RUN', command: parseMaybeJson(rest), heredocs: [], mounts };
      const net = one('network');
      if (net !== undefined) {
        if (!['default', 'none', 'host'].includes(net)) throw new LineError(`unsupported network mode ${JSON.stringify(net)}: want default, none or host`);
        ins.network = net;
      }
      const sec = one('security');
      if (sec !== undefined) {
        if (!['sandbox', 'insecure'].includes(sec)) throw new LineError(`unsupported security mode ${JSON.stringify(sec)}`);
        ins.security = sec;
      }
      return ins;
    }
    case 'CMD':
    case 'ENTRYPOINT': {
      return { ...base, kind: keyword, command: parseMaybeJson(rest) };
    }
    case 'SHELL': {
      const c = parseMaybeJson(rest);
      if (!c.json) throw new LineError('SHELL requires the arguments to be in JSON form');
      if (c.args.length === 0) throw new LineError('SHELL requires at least one argument');
      return { ...base, kind: 'SHELL', args: c.args };
    }
    case 'LABEL': {
      needArgs();
      return { ...base, kind: 'LABEL', pairs: parseNameVal(rest, 'LABEL', esc) };
    }
    case 'ENV': {
      needArgs();
      return { ...base, kind: 'ENV', pairs: parseNameVal(rest, 'ENV', esc) };
    }
    case 'EXPOSE': {
      needArgs();
      return { ...base, kind: 'EXPOSE', ports: splitWhitespace(rest) };
    }
    case 'ADD':
    case 'COPY': {
      const list = parseMaybeJsonToList(rest);
      if (list.args.length < 2) throw new LineError(`${keyword} requires at least two arguments, but only ${list.args.length} provided`);
      const ins: CopyInstruction = {
        ...base,
        kind: keyword,
        sources: list.args.slice(0, -1),
        dest: list.args[list.args.length - 1]!,
        json: list.json,
        heredocs: [],
        link: bool('link'),
        parents: keyword === 'COPY' ? bool('parents') : false,
        excludes: flags.get('exclude') ?? [],
        keepGitDir: keyword === 'ADD' ? bool('keep-git-dir') : false,
      };
      const from = one('from');
      if (from !== undefined) ins.from = from;
      const chown = one('chown');
      if (chown !== undefined) ins.chown = chown;
      const chmod = one('chmod');
      if (chmod !== undefined) ins.chmod = chmod;
      const sum = one('checksum');
      if (sum !== undefined) ins.checksum = sum;
      return ins;
    }
    case 'VOLUME': {
      const list = parseMaybeJsonToList(rest);
      if (list.args.length === 0 || list.args.some((a) => a.trim() === '')) throw new LineError('VOLUME specified can not be an empty string');
      return { ...base, kind: 'VOLUME', paths: list.args, json: list.json };
    }
    case 'USER': {
      needArgs();
      return { ...base, kind: 'USER', user: rest.trim() };
    }
    case 'WORKDIR': {
      needArgs();
      return { ...base, kind: 'WORKDIR', path: rest.trim() };
    }
    case 'ARG': {
      needArgs();
      const words = parseWords(rest, esc);
      const args: ArgDecl[] = words.map((w) => {
        const eq = w.indexOf('=');
        const name = eq < 0 ? w : w.slice(0, eq);
        if (name === '') throw new LineError(`ARG names can not be blank`);
        return eq < 0 ? { name } : { name, default: w.slice(eq + 1) };
      });
      return { ...base, kind: 'ARG', args };
    }
    case 'ONBUILD': {
      needArgs();
      const expression = rest.trim();
      const sub = /^(\S+)/.exec(expression)![1]!.toUpperCase();
      if (sub === 'ONBUILD') throw new LineError('Chaining ONBUILD via `ONBUILD ONBUILD` isn\'t allowed');
      if (sub === 'FROM' || sub === 'MAINTAINER') throw new LineError(`${sub} isn't allowed as an ONBUILD trigger`);
      const trigger = parseLine(expression, start, end, esc, warnings);
      return { ...base, kind: 'ONBUILD', expression, trigger };
    }
    case 'STOPSIGNAL': {
      needArgs();
      return { ...base, kind: 'STOPSIGNAL', signal: rest.trim() };
    }
    case 'HEALTHCHECK': {
      needArgs();
      const mm = /^(\S+)(?:\s+([\s\S]*))?$/.exec(rest.trim())!;
      const typ = mm[1]!.toUpperCase();
      const args = mm[2] ?? '';
      if (typ === 'NONE') {
        if (args.trim() !== '' || flags.size > 0) throw new LineError('HEALTHCHECK NONE takes no arguments');
        return { ...base, kind: 'HEALTHCHECK', test: ['NONE'] };
      }
      if (typ !== 'CMD') throw new LineError(`Unknown type "${typ}" in HEALTHCHECK (try CMD)`);
      if (args.trim() === '') throw new LineError('Missing command after HEALTHCHECK CMD');
      const c = parseMaybeJson(args);
      const ins: HealthcheckInstruction = { ...base, kind: 'HEALTHCHECK', test: c.json ? ['CMD', ...c.args] : ['CMD-SHELL', c.cmd] };
      const dur = (name: string): number | undefined => {
        const v = one(name);
        if (v === undefined) return undefined;
        const ns = parseGoDuration(v, name);
        if (ns !== 0 && ns < 1_000_000) throw new LineError(`Interval "${name}" cannot be less than 1ms`);
        return ns;
      };
      const iv = dur('interval');
      if (iv !== undefined) ins.interval = iv;
      const to = dur('timeout');
      if (to !== undefined) ins.timeout = to;
      const sp = dur('start-period');
      if (sp !== undefined) ins.startPeriod = sp;
      const si = dur('start-interval');
      if (si !== undefined) ins.startInterval = si;
      const r = one('retries');
      if (r !== undefined) {
        if (!/^-?\d+$/.test(r)) throw new LineError(`invalid value for --retries: ${JSON.stringify(r)}`);
        const n = Number(r);
        if (n < 0) throw new LineError('--retries cannot be negative');
        ins.retries = n;
      }
      return ins;
    }
    case 'MAINTAINER': {
      needArgs();
      return { ...base, kind: 'MAINTAINER', name: rest.trim() };
    }
  }
  throw new LineError(`unknown instruction: ${keyword}`);
}

function checkCopyHeredocs(ins: CopyInstruction): void {
  const names = new Set(ins.heredocs.map((h) => h.name));
  const destDoc = parseHeredocWord(ins.dest);
  if (destDoc) throw new LineError(`${ins.kind} cannot have a heredoc as its destination`);
  for (const s of ins.sources) {
    const d = parseHeredocWord(s);
    if (d && !names.has(d.name)) throw new LineError(`unterminated heredoc`);
  }
}

/** `--mount=type=cache,target=/x` into fields. Execution refuses the types it does not support. */
function parseMountFlag(raw: string): RunMount {
  const fields: Record<string, string> = {};
  for (const part of raw.split(',')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const k = (eq < 0 ? part : part.slice(0, eq)).trim().toLowerCase();
    fields[k] = eq < 0 ? 'true' : part.slice(eq + 1);
  }
  if (!fields.type) fields.type = 'bind';
  return { raw, fields };
}

/** Leading `--name[=value]` words; quotes in values are removed. Stops at the first other word. */
function extractFlags(rest: string): { flags: Flag[]; rest: string } {
  const flags: Flag[] = [];
  let pos = 0;
  for (;;) {
    while (pos < rest.length && /\s/.test(rest[pos]!)) pos++;
    if (!rest.startsWith('--', pos)) break;
    let word = '';
    let quote = '';
    let p = pos + 2;
    for (; p < rest.length; p++) {
      const ch = rest[p]!;
      if (quote) {
        if (ch === quote) quote = '';
        else word += ch;
        continue;
      }
      if (ch === '"' || ch === "'") {
        quote = ch;
        continue;
      }
      if (/\s/.test(ch)) break;
      word += ch;
    }
    if (quote) throw new LineError(`unterminated quote in flag --${word}`);
    if (word === '') {
      // a bare `--` ends the flags
      pos = p;
      break;
    }
    const eq = word.indexOf('=');
    flags.push(eq < 0 ? { name: word, value: undefined } : { name: word.slice(0, eq), value: word.slice(eq + 1) });
    pos = p;
  }
  return { flags, rest: rest.slice(pos) };
}

function checkFlags(keyword: string, flags: Flag[]): Map<string, string[]> {
  const allowed = ALLOWED_FLAGS[keyword] ?? [];
  const out = new Map<string, string[]>();
  for (const f of flags) {
    const name = f.name.toLowerCase();
    if (!allowed.includes(name)) throw new LineError(`unknown flag: ${f.name}`);
    const prev = out.get(name);
    if (prev && !REPEATABLE_FLAGS.has(name)) throw new LineError(`duplicate flag specified: ${f.name}`);
    const isBool = name === 'link' || name === 'parents' || name === 'keep-git-dir';
    if (f.value === undefined && !isBool) throw new LineError(`missing a value on flag: ${f.name}`);
    out.set(name, [...(prev ?? []), f.value ?? '']);
  }
  return out;
}

/** JSON array of strings, or undefined when `rest` is not JSON; an array of non-strings is an error. */
function parseJsonArray(rest: string): string[] | undefined {
  const t = rest.trim();
  if (!t.startsWith('[')) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(t);
  } catch {
    return undefined;
  }
  if (!Array.isArray(v)) return undefined;
  if (!v.every((x) => typeof x === 'string')) throw new LineError('when using JSON array syntax, arrays must be comprised of strings only');
  return v as string[];
}

function parseMaybeJson(rest: string): CommandLine {
  const arr = parseJsonArray(rest);
  if (arr) return { json: true, args: arr };
  return { json: false, cmd: rest.trim() };
}

function parseMaybeJsonToList(rest: string): { json: boolean; args: string[] } {
  const arr = parseJsonArray(rest);
  if (arr) return { json: true, args: arr };
  return { json: false, args: splitWhitespace(rest) };
}

function splitWhitespace(rest: string): string[] {
  const t = rest.trim();
  return t === '' ? [] : t.split(/[ \t]+/);
}

/** BuildKit's parseWords: split on unquoted whitespace, keeping quotes and escapes in the words. */
export function parseWords(rest: string, esc: string): string[] {
  const words: string[] = [];
  const chars = [...rest];
  let phase: 'spaces' | 'word' | 'quote' = 'spaces';
  let word = '';
  let quote = '';
  let blankOK = false;
  for (let pos = 0; pos <= chars.length; pos++) {
    let ch = chars[pos] ?? '';
    if (phase === 'spaces') {
      if (pos === chars.length) break;
      if (/\s/.test(ch)) continue;
      phase = 'word';
    }
    if (pos === chars.length) {
      if (blankOK || word.length > 0) words.push(word);
      break;
    }
    if (phase === 'word') {
      if (/\s/.test(ch)) {
        phase = 'spaces';
        if (blankOK || word.length > 0) words.push(word);
        word = '';
        blankOK = false;
        continue;
      }
      if (ch === "'" || ch === '"') {
        quote = ch;
        blankOK = true;
        phase = 'quote';
      }
      if (ch === esc) {
        if (pos + 1 === chars.length) continue;
        word += ch;
        pos++;
        ch = chars[pos]!;
      }
      word += ch;
      continue;
    }
    // in quote
    if (ch === quote) phase = 'word';
    if (ch === esc && quote !== "'") {
      if (pos + 1 === chars.length) {
        phase = 'word';
        continue;
      }
      word += ch;
      pos++;
      ch = chars[pos]!;
    }
    word += ch;
  }
  return words;
}

/** ENV and LABEL: `k=v k2="v 2"` or the legacy `k v with spaces` (one pair). */
function parseNameVal(rest: string, keyword: string, esc: string): KeyValue[] {
  const words = parseWords(rest, esc);
  if (words.length === 0) throw new LineError(`${keyword} requires at least one argument`);
  if (!words[0]!.includes('=')) {
    // Legacy form: the first word is the key, the rest of the line (as written) the value.
    const m = /^\s*(\S+)\s+([\s\S]*?)\s*$/.exec(rest);
    if (!m || m[2] === '') throw new LineError(`${keyword} must have two arguments`);
    return [{ key: m[1]!, value: m[2]! }];
  }
  return words.map((w) => {
    const eq = w.indexOf('=');
    if (eq < 0) throw new LineError(`Syntax error - can't find = in ${JSON.stringify(w)}. Must be of the form: name=value`);
    if (eq === 0) throw new LineError(`${keyword} names can not be blank`);
    return { key: w.slice(0, eq), value: w.slice(eq + 1) };
  });
}

/** A heredoc marker word (`<<EOF`, `<<-"EOF"`, `3<<EOF`), or undefined. */
export function parseHeredocWord(word: string): Heredoc | undefined {
  const m = /^(\d*)<<(-?)([^<]*)$/.exec(word);
  if (!m || m[3] === '') return undefined;
  const rest = m[3]!;
  let words: string[];
  let raw: string[];
  try {
    words = processWords(rest, new Map(), { skipUnsetEnv: true });
    raw = processWords(rest, new Map(), { skipUnsetEnv: true, rawQuotes: true });
  } catch {
    return undefined;
  }
  if (words.length !== 1 || raw.length !== 1) return undefined;
  const quotes = (s: string) => (s.match(/['"]/g) ?? []).length;
  return { name: words[0]!, content: '', expand: quotes(words[0]!) === quotes(raw[0]!), chomp: m[2] === '-' };
}

function heredocsFromLine(line: string): Heredoc[] {
  let words: string[];
  try {
    words = processWords(line, new Map(), { rawQuotes: true, rawEscapes: true, skipUnsetEnv: true });
  } catch {
    return [];
  }
  const out: Heredoc[] = [];
  for (const w of words) {
    const d = parseHeredocWord(w);
    if (d) out.push(d);
  }
  return out;
}

/** Go's time.ParseDuration, to nanoseconds ("1m30s", "500ms", "1.5h"). */
export function parseGoDuration(s: string, flag = 'duration'): number {
  if (s === '0') return 0;
  const units: Record<string, number> = { ns: 1, us: 1e3, 'µs': 1e3, 'μs': 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let pos = 0;
  let neg = false;
  if (s[0] === '-' || s[0] === '+') {
    neg = s[0] === '-';
    pos = 1;
  }
  let total = 0;
  let any = false;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new LineError(`invalid duration ${JSON.stringify(s)} for --${flag}`);
    total += Number(m[1]) * units[m[2]!]!;
    pos = re.lastIndex;
    any = true;
  }
  if (!any) throw new LineError(`invalid duration ${JSON.stringify(s)} for --${flag}`);
  if (neg) throw new LineError(`--${flag} cannot be negative`);
  return Math.round(total);
}
