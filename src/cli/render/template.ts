// The subset of Go's text/template that `--format` uses in the docker CLI:
//   {{.Field}} {{.A.B}} {{.}} {{json .}} {{index .X "k"}} {{.X | json}} {{join .X ","}}
//   {{if ...}}{{else}}{{end}} {{range .X}}{{end}} {{range $k, $v := .X}} {{with}} {{$v.Y}}
//   trim markers {{- -}}, docker's functions (json split join title lower upper pad truncate)
//   and Go's builtins (index len print printf println eq ne lt le gt ge and or not slice).
// Values print like Go's fmt %v: arrays "[a b]", maps "map[k:v]", missing map keys "<no value>".
// A field whose value is a function is called with the command's arguments, as a Go method
// would be (`{{.Label "com.example.x"}}`).

type Arg =
  | { t: 'field'; base: 'dot' | 'var'; name?: string; path: string[] }
  | { t: 'lit'; v: unknown }
  | { t: 'ident'; name: string }
  | { t: 'sub'; pipe: Pipe };
type Cmd = Arg[];
interface Pipe {
  decl?: string[];
  cmds: Cmd[];
}
type Node =
  | { t: 'text'; s: string }
  | { t: 'action'; pipe: Pipe }
  | { t: 'if' | 'with'; pipe: Pipe; body: Node[]; else?: Node[] }
  | { t: 'range'; pipe: Pipe; body: Node[]; else?: Node[] };

export class TemplateError extends Error {}

// ---- lexing ---------------------------------------------------------------------------------

type Tok =
  | { k: 'str'; v: string }
  | { k: 'num'; v: number }
  | { k: 'field'; v: string[] }
  | { k: 'dot' }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'ident'; v: string }
  | { k: 'punct'; v: '|' | '(' | ')' | ':=' | '=' | ',' };

function lexAction(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  const fieldChain = (): string[] => {
    const path: string[] = [];
    while (src[i] === '.' && /[A-Za-z_]/.test(src[i + 1] ?? '')) {
      i++;
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      path.push(m[0]);
      i += m[0].length;
    }
    return path;
  };
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) throw new TemplateError('unterminated quoted string');
      toks.push({ k: 'str', v: JSON.parse(src.slice(i, j + 1)) as string });
      i = j + 1;
    } else if (c === '`') {
      const j = src.indexOf('`', i + 1);
      if (j === -1) throw new TemplateError('unterminated raw quoted string');
      toks.push({ k: 'str', v: src.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '.') {
      if (/[A-Za-z_]/.test(src[i + 1] ?? '')) toks.push({ k: 'field', v: fieldChain() });
      else {
        toks.push({ k: 'dot' });
        i++;
      }
    } else if (c === '$') {
      const m = /^\$[A-Za-z0-9_]*/.exec(src.slice(i))!;
      i += m[0].length;
      toks.push({ k: 'var', name: m[0], path: fieldChain() });
    } else if (/[-+0-9]/.test(c) && /^[-+]?\d/.test(src.slice(i))) {
      const m = /^[-+]?\d+(\.\d+)?/.exec(src.slice(i))!;
      toks.push({ k: 'num', v: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(src.slice(i))!;
      toks.push({ k: 'ident', v: m[0] });
      i += m[0].length;
    } else if (src.startsWith(':=', i)) {
      toks.push({ k: 'punct', v: ':=' });
      i += 2;
    } else if ('|(),='.includes(c)) {
      toks.push({ k: 'punct', v: c as '|' });
      i++;
    } else {
      throw new TemplateError(`unexpected ${JSON.stringify(c)} in command`);
    }
  }
  return toks;
}

// ---- parsing --------------------------------------------------------------------------------

function parsePipe(toks: Tok[], pos: { i: number }, allowDecl: boolean): Pipe {
  const pipe: Pipe = { cmds: [] };
  if (allowDecl) {
    // $x := ..., $k, $v := ...
    let j = pos.i;
    const names: string[] = [];
    while (toks[j]?.k === 'var' && (toks[j] as { path: string[] }).path.length === 0) {
      names.push((toks[j] as { name: string }).name);
      j++;
      const p = toks[j];
      if (p?.k === 'punct' && p.v === ',') {
        j++;
        continue;
      }
      break;
    }
    const p = toks[j];
    if (names.length > 0 && p?.k === 'punct' && (p.v === ':=' || p.v === '=')) {
      pipe.decl = names;
      pos.i = j + 1;
    }
  }
  let cmd: Cmd = [];
  while (pos.i < toks.length) {
    const t = toks[pos.i]!;
    if (t.k === 'punct' && t.v === ')') break;
    pos.i++;
    if (t.k === 'punct' && t.v === '|') {
      if (cmd.length === 0) throw new TemplateError('missing command');
      pipe.cmds.push(cmd);
      cmd = [];
      continue;
    }
    switch (t.k) {
      case 'str':
      case 'num':
        cmd.push({ t: 'lit', v: t.v });
        break;
      case 'dot':
        cmd.push({ t: 'field', base: 'dot', path: [] });
        break;
      case 'field':
        cmd.push({ t: 'field', base: 'dot', path: t.v });
        break;
      case 'var':
        cmd.push({ t: 'field', base: 'var', name: t.name, path: t.path });
        break;
      case 'ident':
        if (t.v === 'true' || t.v === 'false') cmd.push({ t: 'lit', v: t.v === 'true' });
        else if (t.v === 'nil') cmd.push({ t: 'lit', v: null });
        else cmd.push({ t: 'ident', name: t.v });
        break;
      case 'punct':
        if (t.v === '(') {
          const sub = parsePipe(toks, pos, false);
          const close = toks[pos.i];
          if (!(close?.k === 'punct' && close.v === ')')) throw new TemplateError('unclosed left paren');
          pos.i++;
          cmd.push({ t: 'sub', pipe: sub });
        } else {
          throw new TemplateError(`unexpected "${t.v}" in operand`);
        }
        break;
    }
  }
  if (cmd.length > 0) pipe.cmds.push(cmd);
  if (pipe.cmds.length === 0) throw new TemplateError('missing value for command');
  return pipe;
}

function parseTemplate(src: string): Node[] {
  // Split into text and actions, applying trim markers.
  const parts: Array<{ text: string } | { action: string }> = [];
  let i = 0;
  while (i < src.length) {
    const open = src.indexOf('{{', i);
    if (open === -1) {
      parts.push({ text: src.slice(i) });
      break;
    }
    let text = src.slice(i, open);
    let start = open + 2;
    if (src.startsWith('- ', start) || src.startsWith('-\t', start) || src.startsWith('-\n', start)) {
      text = text.replace(/\s+$/, '');
      start += 1;
    }
    parts.push({ text });
    const close = src.indexOf('}}', start);
    if (close === -1) throw new TemplateError('unclosed action');
    let body = src.slice(start, close);
    i = close + 2;
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      const m = /^\s*/.exec(src.slice(i))!;
      i += m[0].length;
    }
    parts.push({ action: body.trim() });
  }

  let p = 0;
  const parseList = (endWords: string[]): { nodes: Node[]; end: string; rest?: string } => {
    const nodes: Node[] = [];
    while (p < parts.length) {
      const part = parts[p++]!;
      if ('text' in part) {
        if (part.text) nodes.push({ t: 'text', s: part.text });
        continue;
      }
      const a = part.action;
      if (a.startsWith('/*')) continue; // comment
      const word = /^[a-z]+/.exec(a)?.[0] ?? '';
      if (endWords.includes(word) && (word === 'end' || word === 'else')) {
        return { nodes, end: word, rest: a.slice(word.length).trim() };
      }
      if (word === 'if' || word === 'with' || word === 'range') {
        nodes.push(parseBlock(word, a.slice(word.length).trim()));
        continue;
      }
      if (word === 'end' || word === 'else') throw new TemplateError(`unexpected {{${word}}}`);
      const toks = lexAction(a);
      if (toks.length === 0) throw new TemplateError('missing value for command');
      nodes.push({ t: 'action', pipe: parsePipe(toks, { i: 0 }, true) });
    }
    if (endWords.length > 0) throw new TemplateError('unexpected EOF');
    return { nodes, end: '' };
  };
  const parseBlock = (kind: 'if' | 'with' | 'range', expr: string): Node => {
    const pipe = parsePipe(lexAction(expr), { i: 0 }, kind === 'range' || kind === 'with' || kind === 'if');
    const body = parseList(['end', 'else']);
    const node: { t: 'if' | 'with' | 'range'; pipe: Pipe; body: Node[]; else?: Node[] } = { t: kind, pipe, body: body.nodes };
    if (body.end === 'else') {
      if (body.rest && body.rest.startsWith('if') && kind === 'if') {
        // {{else if X}} chains: nest an if inside else, sharing the single {{end}}.
        node.else = [parseBlock('if', body.rest.slice(2).trim())];
      } else {
        node.else = parseList(['end']).nodes;
      }
    }
    return node as Node;
  };
  return parseList([]).nodes;
}

// ---- evaluation -----------------------------------------------------------------------------

const NO_VALUE = Symbol('no value');

export function goString(v: unknown): string {
  if (v === NO_VALUE || v === undefined) return '<no value>';
  if (v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(goString).join(' ')}]`;
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if (typeof o.toString === 'function' && o.toString !== Object.prototype.toString) return o.toString();
    return `map[${Object.keys(o).sort().map((k) => `${k}:${goString(o[k])}`).join(' ')}]`;
  }
  return String(v);
}

function truthy(v: unknown): boolean {
  if (v === NO_VALUE || v === undefined || v === null || v === false || v === 0 || v === '') return false;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v as object).length > 0;
  return true;
}

/**
 * Marks a listing row (ps, images, ...). Docker marshals those as maps (keys sorted, HTML
 * characters escaped: "\u003cnone\u003e"); anything else, inspect data, keeps the daemon's
 * field order and is not escaped, like the `json` template function on a struct.
 */
export const LIST_ROW = Symbol('listRow');

function norm(x: unknown, sortKeys: boolean): unknown {
  if (x === NO_VALUE || x === undefined) return null;
  if (typeof x === 'bigint') return (JSON as unknown as { rawJSON(s: string): unknown }).rawJSON(x.toString());
  if (Array.isArray(x)) return x.map((e) => norm(e, sortKeys));
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    const keys = Object.keys(o);
    const out: Record<string, unknown> = {};
    for (const k of sortKeys ? keys.sort() : keys) if (typeof o[k] !== 'function') out[k] = norm(o[k], sortKeys);
    return out;
  }
  return x;
}

export function goJson(v: unknown): string {
  if (v && typeof v === 'object' && (v as Record<symbol, unknown>)[LIST_ROW]) {
    return (JSON.stringify(norm(v, true)) ?? 'null').replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
  }
  return JSON.stringify(norm(v, false)) ?? 'null';
}

function printf(format: string, ...args: unknown[]): string {
  let i = 0;
  return format.replace(/%([-+ 0#]*)(\d*)(?:\.(\d+))?([vsdqtfgx%])/g, (_m, flags: string, w: string, prec: string | undefined, verb: string) => {
    if (verb === '%') return '%';
    const a = args[i++];
    let s: string;
    switch (verb) {
      case 'q': s = JSON.stringify(goString(a)); break;
      case 'd': s = String(Math.trunc(Number(a))); break;
      case 'f': s = Number(a).toFixed(prec === undefined ? 6 : Number(prec)); break;
      case 'x': s = typeof a === 'number' ? a.toString(16) : Buffer.from(goString(a)).toString('hex'); break;
      default: s = goString(a);
    }
    if (prec !== undefined && verb === 's') s = s.slice(0, Number(prec));
    if (w) s = flags.includes('-') ? s.padEnd(Number(w)) : s.padStart(Number(w), flags.includes('0') ? '0' : ' ');
    return s;
  });
}

const cmp = (a: unknown, b: unknown): number => {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return goString(a) < goString(b) ? -1 : goString(a) > goString(b) ? 1 : 0;
};

const FUNCS: Record<string, (...a: unknown[]) => unknown> = {
  json: (v) => goJson(v),
  split: (s, sep) => goString(s).split(goString(sep)),
  join: (a, sep) => (Array.isArray(a) ? a.map(goString).join(goString(sep)) : goString(a)),
  title: (s) => goString(s).replace(/(^|[^\p{L}\p{N}_'])(\p{L})/gu, (_m, p: string, c: string) => p + c.toUpperCase()),
  lower: (s) => goString(s).toLowerCase(),
  upper: (s) => goString(s).toUpperCase(),
  pad: (s, l, r) => ' '.repeat(Number(l)) + goString(s) + ' '.repeat(Number(r)),
  truncate: (s, n) => [...goString(s)].slice(0, Number(n)).join(''),
  len: (v) => (Array.isArray(v) || typeof v === 'string' ? v.length : v && typeof v === 'object' ? Object.keys(v).length : 0),
  index: (v, ...keys) => {
    let cur: unknown = v;
    for (const k of keys) {
      if (cur === null || cur === undefined || cur === NO_VALUE) return NO_VALUE;
      const next = (cur as Record<string, unknown>)[k as string];
      cur = next === undefined ? NO_VALUE : next;
    }
    return cur;
  },
  slice: (v, a, b) => (typeof v === 'string' || Array.isArray(v) ? v.slice(Number(a ?? 0), b === undefined ? undefined : Number(b)) : v),
  print: (...a) => a.map(goString).join(''),
  println: (...a) => a.map(goString).join(' ') + '\n',
  printf: (f, ...a) => printf(goString(f), ...a),
  eq: (a, ...bs) => bs.some((b) => cmp(a, b) === 0),
  ne: (a, b) => cmp(a, b) !== 0,
  lt: (a, b) => cmp(a, b) < 0,
  le: (a, b) => cmp(a, b) <= 0,
  gt: (a, b) => cmp(a, b) > 0,
  ge: (a, b) => cmp(a, b) >= 0,
  not: (a) => !truthy(a),
  and: (...a) => a.find((x) => !truthy(x)) ?? a[a.length - 1],
  or: (...a) => a.find((x) => truthy(x)) ?? a[a.length - 1],
};

interface Scope {
  dot: unknown;
  vars: Map<string, unknown>;
}

function fieldOf(v: unknown, name: string): unknown {
  if (v === null || v === undefined || v === NO_VALUE || typeof v !== 'object') {
    throw new TemplateError(`can't evaluate field ${name} in type ${v === null || v === undefined || v === NO_VALUE ? 'interface {}' : typeof v}`);
  }
  const o = v as Record<string, unknown>;
  const x = o[name];
  if (typeof x === 'function') return (x as (...a: unknown[]) => unknown).bind(o);
  return x === undefined ? NO_VALUE : x;
}

function evalArg(a: Arg, s: Scope): unknown {
  switch (a.t) {
    case 'lit':
      return a.v;
    case 'sub':
      return evalPipe(a.pipe, s);
    case 'ident': {
      const f = FUNCS[a.name];
      if (!f) throw new TemplateError(`function "${a.name}" not defined`);
      return f();
    }
    case 'field': {
      let v: unknown;
      if (a.base === 'dot') v = s.dot;
      else {
        if (!s.vars.has(a.name!)) throw new TemplateError(`undefined variable: ${a.name}`);
        v = s.vars.get(a.name!);
      }
      for (const p of a.path) {
        if (typeof v === 'function') v = (v as () => unknown)();
        v = fieldOf(v, p);
      }
      return v;
    }
  }
}

function evalCmd(cmd: Cmd, s: Scope, piped: unknown[]): unknown {
  const [head, ...rest] = cmd;
  if (head!.t === 'ident') {
    const f = FUNCS[head!.name];
    if (!f) throw new TemplateError(`function "${head!.name}" not defined`);
    return f(...rest.map((a) => evalArg(a, s)), ...piped);
  }
  const v = evalArg(head!, s);
  if (typeof v === 'function') return (v as (...a: unknown[]) => unknown)(...rest.map((a) => evalArg(a, s)), ...piped);
  if (rest.length > 0 || piped.length > 0) throw new TemplateError("can't give argument to non-function");
  return v;
}

function evalPipe(pipe: Pipe, s: Scope): unknown {
  let v: unknown;
  let first = true;
  for (const c of pipe.cmds) {
    v = evalCmd(c, s, first ? [] : [v]);
    first = false;
  }
  if (typeof v === 'function') v = (v as () => unknown)();
  return v;
}

function exec(nodes: Node[], s: Scope, out: string[]): void {
  for (const n of nodes) {
    switch (n.t) {
      case 'text':
        out.push(n.s);
        break;
      case 'action': {
        const v = evalPipe(n.pipe, s);
        if (n.pipe.decl) s.vars.set(n.pipe.decl[0]!, v);
        else out.push(goString(v));
        break;
      }
      case 'if': {
        const v = evalPipe(n.pipe, s);
        if (truthy(v)) exec(n.body, s, out);
        else if (n.else) exec(n.else, s, out);
        break;
      }
      case 'with': {
        const v = evalPipe(n.pipe, s);
        if (truthy(v)) exec(n.body, { dot: v, vars: s.vars }, out);
        else if (n.else) exec(n.else, s, out);
        break;
      }
      case 'range': {
        const v = evalPipe(n.pipe, s);
        const entries: Array<[unknown, unknown]> = Array.isArray(v)
          ? v.map((x, i) => [i, x])
          : v && typeof v === 'object'
            ? Object.keys(v).sort().map((k) => [k, (v as Record<string, unknown>)[k]])
            : typeof v === 'number'
              ? Array.from({ length: v }, (_x, i) => [i, i])
              : [];
        if (entries.length === 0) {
          if (n.else) exec(n.else, s, out);
          break;
        }
        for (const [k, x] of entries) {
          const vars = new Map(s.vars);
          const decl = n.pipe.decl;
          if (decl?.length === 1) vars.set(decl[0]!, x);
          else if (decl?.length === 2) {
            vars.set(decl[0]!, k);
            vars.set(decl[1]!, x);
          }
          exec(n.body, { dot: x, vars }, out);
        }
        break;
      }
    }
  }
}

export interface Template {
  execute(data: unknown): string;
}

/** Parse once, execute per row. Parse and execution errors are TemplateErrors. */
export function compileTemplate(src: string): Template {
  let nodes: Node[];
  try {
    nodes = parseTemplate(src);
  } catch (err) {
    throw new TemplateError(`template parsing error: template: :1: ${(err as Error).message}`);
  }
  return {
    execute(data: unknown): string {
      const out: string[] = [];
      try {
        exec(nodes, { dot: data, vars: new Map([['$', data]]) }, out);
      } catch (err) {
        throw new TemplateError(`template: :1: executing "" ${(err as Error).message}`);
      }
      return out.join('');
    },
  };
}

/** Docker's `--format` conventions: "json" means {{json .}}, a "table " prefix means columns. */
export function normalizeFormat(format: string): { table: boolean; template: string } {
  if (format === 'json') return { table: false, template: '{{json .}}' };
  if (format === 'table') return { table: true, template: '' };
  if (format.startsWith('table ')) return { table: true, template: format.slice(6) };
  return { table: false, template: format };
}

/** Go-style escape sequences in --format strings ("\t", "\n") as the docker CLI expands them. */
export function unescapeFormat(s: string): string {
  return s.replace(/\\t/g, '\t').replace(/\\n/g, '\n');
}
