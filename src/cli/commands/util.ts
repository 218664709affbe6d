// Helpers shared by the verbs: docker's --filter syntax, prompts, output files, stream display.
import { createWriteStream } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import { randomHex } from '../../pkg/random-hex.ts';
import { pipeline } from 'node:stream/promises';
import type { ApiResponse } from '../api-client.ts';
import type { FlagDef, Flags } from '../flags.ts';
import { CancelledError, isTerminal, type Command, type Ctx } from '../command.ts';
import { humanSize } from '../render/units.ts';
import { displayJsonMessages, type JsonMessage } from '../render/jsonmessage.ts';

export const FORMAT_FLAG: FlagDef = {
  name: 'format',
  kind: 'string',
  valueName: 'string',
  help: "Format output using a custom template: 'table', 'table TEMPLATE', 'json', 'TEMPLATE'",
};
export const FILTER_FLAG: FlagDef = { name: 'filter', short: 'f', kind: 'list', valueName: 'filter', help: 'Filter output based on conditions provided' };

/**
 * `--filter k=v` flags as the API's `filters` query value: {"k":{"v":true}} with sorted keys
 * (what the docker CLI sends), or undefined when there are none.
 */
export function filtersJson(list: string[], extra: Array<[string, string]> = []): string | undefined {
  const m = new Map<string, Set<string>>();
  const add = (k: string, v: string) => {
    if (!m.has(k)) m.set(k, new Set());
    m.get(k)!.add(v);
  };
  for (const f of list) {
    const eq = f.indexOf('=');
    if (eq === -1) throw new Error('bad format of filter (expected name=value)');
    add(f.slice(0, eq).trim().toLowerCase(), f.slice(eq + 1).trim());
  }
  for (const [k, v] of extra) add(k, v);
  if (m.size === 0) return undefined;
  const o: Record<string, Record<string, boolean>> = {};
  for (const k of [...m.keys()].sort()) {
    o[k] = {};
    for (const v of [...m.get(k)!].sort()) o[k]![v] = true;
  }
  return JSON.stringify(o);
}

/** Read one line from stdin (the answer to a prompt); '' at end of input. */
export async function readLine(ctx: Ctx): Promise<string> {
  const stdin = ctx.io.stdin;
  return new Promise((resolve) => {
    let buf = '';
    const done = (s: string) => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onEnd);
      stdin.pause();
      resolve(s);
    };
    const onData = (c: Buffer | string) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1) done(buf.slice(0, nl).replace(/\r$/, ''));
    };
    const onEnd = () => done(buf);
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', onEnd);
    stdin.resume();
  });
}

/**
 * docker's PromptForConfirmation: print "<message> [y/N] " and read a line; anything but y/Y
 * cancels (CancelledError: exit 0, nothing more printed). A closed or empty stdin declines.
 */
export async function confirm(ctx: Ctx, message: string): Promise<void> {
  ctx.out(`${message} [y/N] `);
  const answer = (await readLine(ctx)).trim();
  if (answer.toLowerCase() !== 'y') {
    ctx.out('\n');
    throw new CancelledError('cancelled');
  }
}

/** Write a stream to a file atomically (temp file in the same directory, then rename). */
export async function copyToFile(path: string, src: NodeJS.ReadableStream): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${randomHex(4)}.tmp`);
  try {
    await pipeline(src, createWriteStream(tmp, { mode: 0o644 }));
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
}

/** Render a JSON message stream response on stdout (bars on a terminal, lines otherwise). */
export async function showJsonStream(ctx: Ctx, res: ApiResponse, quiet = false, onAux?: (m: JsonMessage) => void): Promise<void> {
  const out = ctx.io.stdout;
  const sink = quiet ? new (process.getBuiltinModule('node:stream') as typeof import('node:stream')).Writable({ write: (_c, _e, cb) => cb() }) : out;
  await displayJsonMessages(res as AsyncIterable<Buffer>, sink, {
    isTerminal: !quiet && isTerminal(out),
    width: out.columns,
    onAux,
  });
}

/** Collect per-object errors (rm, rmi, stop ...) and fail with all of them at the end, as docker does. */
export class ErrorList {
  readonly messages: string[] = [];
  add(err: unknown): void {
    this.messages.push(err instanceof Error ? err.message : String(err));
  }
  get failed(): boolean {
    return this.messages.length > 0;
  }
}

export interface PruneSpec<R> {
  short: string;
  /** The API endpoint (POST). */
  path: string;
  /** docker's prompt; with `all` it may depend on -a. */
  prompt: (all: boolean) => string;
  filterHelp: string;
  /** -a/--all and its help, when the command has it. */
  allHelp?: string;
  extraFlags?: FlagDef[];
  /** The query beyond `filters` (whose defaults come from `filters`). */
  query?: (f: Flags, all: boolean) => Record<string, string | undefined>;
  /** Filters added to the user's --filter values. */
  filters?: (all: boolean) => Array<[string, string]>;
  /** What was deleted, as docker prints it (a heading, a line each, a blank line), or ''. */
  deleted: (report: R) => string;
  /** Print "Total reclaimed space" (every prune but `network prune`). */
  space: boolean;
}

/** docker's `<object> prune`: ask unless -f, POST with the filters, print what went and the space. */
export function pruneCommand<R extends { SpaceReclaimed?: number }>(o: PruneSpec<R>): Command {
  const flags: FlagDef[] = [];
  if (o.allHelp) flags.push({ name: 'all', short: 'a', kind: 'bool', help: o.allHelp });
  flags.push(
    { name: 'filter', kind: 'list', valueName: 'filter', help: o.filterHelp },
    { name: 'force', short: 'f', kind: 'bool', help: 'Do not prompt for confirmation' },
    ...(o.extraFlags ?? []),
  );
  return {
    name: 'prune',
    usage: '[OPTIONS]',
    short: o.short,
    args: { max: 0 },
    flags,
    async run(ctx, f) {
      const all = o.allHelp !== undefined && f.bool('all');
      if (!f.bool('force')) await confirm(ctx, o.prompt(all));
      const query = { filters: filtersJson(f.list('filter'), o.filters?.(all) ?? []), ...o.query?.(f, all) };
      const report = (await ctx.client.json<R>('POST', o.path, { query })) ?? ({} as R);
      ctx.out(o.deleted(report));
      if (o.space) ctx.out(`Total reclaimed space: ${humanSize(report.SpaceReclaimed ?? 0)}\n`);
    },
  };
}

/** "Deleted <What>:\n" and a line per item, then a blank line; '' for none. */
export function deletedList(heading: string, items: readonly string[] | null | undefined): string {
  return items?.length ? `${heading}:\n${items.map((x) => x + '\n').join('')}\n` : '';
}
