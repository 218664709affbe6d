// Docker's flag syntax (spf13/pflag as the docker CLI configures it):
//   --name=value, --name value, --bool, --bool=false, -e VALUE, -eVALUE, -e=VALUE,
//   bundled shorthands (-aq, -it, -itd), repeated flags (-e A=1 -e B=2),
//   `--` ends flags, and with `interspersed: false` (run, exec, create) the first positional
//   ends flags too: everything after the image is the command, flags included.
// Errors are UsageErrors carrying pflag's wording ("unknown flag: --x"); the caller adds
// "See 'berth run --help'." and exits 125.

export type FlagKind = 'bool' | 'string' | 'list' | 'int';

export interface FlagDef {
  /** Long name without dashes. */
  name: string;
  /** One-letter shorthand. */
  short?: string;
  kind: FlagKind;
  default?: string | boolean | number;
  help: string;
  /** Placeholder in help output ("string", "list", "bytes", ...). */
  valueName?: string;
  hidden?: boolean;
}

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Parsed flags with typed accessors; `changed` tells a flag given explicitly from a default. */
export class Flags {
  readonly #defs: Map<string, FlagDef>;
  readonly #values = new Map<string, string | boolean | number | string[]>();

  constructor(defs: FlagDef[]) {
    this.#defs = new Map(defs.map((d) => [d.name, d]));
  }

  set(def: FlagDef, raw: string): void {
    switch (def.kind) {
      case 'bool': {
        const v = parseBool(raw);
        if (v === undefined) throw new UsageError(`invalid argument ${JSON.stringify(raw)} for "${flagLabel(def)}" flag: strconv.ParseBool: parsing ${JSON.stringify(raw)}: invalid syntax`);
        this.#values.set(def.name, v);
        break;
      }
      case 'int': {
        if (!/^[+-]?\d+$/.test(raw.trim())) {
          throw new UsageError(`invalid argument ${JSON.stringify(raw)} for "${flagLabel(def)}" flag: strconv.ParseInt: parsing ${JSON.stringify(raw)}: invalid syntax`);
        }
        this.#values.set(def.name, Number.parseInt(raw, 10));
        break;
      }
      case 'list': {
        const cur = this.#values.get(def.name);
        this.#values.set(def.name, [...(Array.isArray(cur) ? cur : []), raw]);
        break;
      }
      case 'string':
        this.#values.set(def.name, raw);
        break;
    }
  }

  changed(name: string): boolean {
    return this.#values.has(name);
  }

  bool(name: string): boolean {
    const v = this.#values.get(name) ?? this.#def(name).default;
    return v === true;
  }

  string(name: string): string {
    const v = this.#values.get(name) ?? this.#def(name).default;
    return v === undefined ? '' : String(v);
  }

  /** String value, or undefined when the flag was not given and has no default. */
  optString(name: string): string | undefined {
    const v = this.#values.get(name) ?? this.#def(name).default;
    return v === undefined ? undefined : String(v);
  }

  int(name: string): number {
    const v = this.#values.get(name) ?? this.#def(name).default;
    return typeof v === 'number' ? v : 0;
  }

  list(name: string): string[] {
    this.#def(name);
    const v = this.#values.get(name);
    return Array.isArray(v) ? v : [];
  }

  #def(name: string): FlagDef {
    const d = this.#defs.get(name);
    if (!d) throw new Error(`flag --${name} is not defined`);
    return d;
  }
}

function parseBool(s: string): boolean | undefined {
  // strconv.ParseBool
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(s)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(s)) return false;
  return undefined;
}

function flagLabel(d: FlagDef): string {
  return d.short ? `-${d.short}, --${d.name}` : `--${d.name}`;
}

export interface ParseOptions {
  /** false: the first positional ends flag parsing (docker run/exec/create). Default true. */
  interspersed?: boolean;
}

export interface ParseResult {
  flags: Flags;
  args: string[];
  /** -h/--help was given. */
  help: boolean;
}

/** Parse argv (without the command path) against the command's flags. */
export function parseFlags(argv: string[], defs: FlagDef[], opts: ParseOptions = {}): ParseResult {
  const interspersed = opts.interspersed ?? true;
  const flags = new Flags(defs);
  const byLong = new Map(defs.map((d) => [d.name, d]));
  const byShort = new Map(defs.filter((d) => d.short).map((d) => [d.short!, d]));
  const args: string[] = [];
  let help = false;
  let i = 0;
  while (i < argv.length) {
    const a = argv[i++]!;
    if (a === '--') {
      args.push(...argv.slice(i));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      args.push(a);
      if (!interspersed) {
        args.push(...argv.slice(i));
        break;
      }
      continue;
    }
    if (a.startsWith('--')) {
      const body = a.slice(2);
      const eq = body.indexOf('=');
      const name = eq === -1 ? body : body.slice(0, eq);
      const def = byLong.get(name);
      if (!def) {
        if (name === 'help') {
          help = true;
          continue;
        }
        throw new UsageError(`unknown flag: --${name}`);
      }
      if (eq !== -1) {
        flags.set(def, body.slice(eq + 1));
      } else if (def.kind === 'bool') {
        flags.set(def, 'true');
      } else {
        if (i >= argv.length) throw new UsageError(`flag needs an argument: --${name}`);
        flags.set(def, argv[i++]!);
      }
      continue;
    }
    // Shorthand cluster: -aq, -e VALUE, -eVALUE, -e=VALUE, -d=false
    let rest = a.slice(1);
    while (rest.length > 0) {
      const c = rest[0]!;
      const def = byShort.get(c);
      if (!def) {
        if (c === 'h') {
          help = true;
          rest = rest.slice(1);
          continue;
        }
        throw new UsageError(`unknown shorthand flag: '${c}' in -${rest}`);
      }
      if (rest.length > 2 && rest[1] === '=') {
        flags.set(def, rest.slice(2));
        rest = '';
      } else if (def.kind === 'bool') {
        flags.set(def, 'true');
        rest = rest.slice(1);
      } else if (rest.length > 1) {
        flags.set(def, rest.slice(1));
        rest = '';
      } else {
        if (i >= argv.length) throw new UsageError(`flag needs an argument: '${c}' in -${c}`);
        flags.set(def, argv[i++]!);
        rest = '';
      }
    }
  }
  return { flags, args, help };
}

/** pflag's help listing: "  -a, --all             Show all images". */
export function formatFlagHelp(defs: FlagDef[]): string {
  const rows = defs
    .filter((d) => !d.hidden)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((d) => {
      const names = d.short ? `-${d.short}, --${d.name}` : `    --${d.name}`;
      const val = d.kind === 'bool' ? '' : ` ${d.valueName ?? (d.kind === 'list' ? 'list' : d.kind)}`;
      let help = d.help;
      if (d.default !== undefined && d.default !== false && d.default !== '') help += ` (default ${typeof d.default === 'string' ? JSON.stringify(d.default) : d.default})`;
      return { left: `  ${names}${val}`, help };
    });
  const w = Math.max(0, ...rows.map((r) => r.left.length));
  return rows.map((r) => `${r.left.padEnd(w)}   ${r.help}`).join('\n');
}
