// Docker's JSON message stream (pull, push, load, import, build progress), rendered like
// moby's pkg/jsonmessage DisplayJSONMessagesStream:
// - on a terminal, each message with an id and progress owns one line; the cursor moves up to
//   that line, clears it and rewrites it ("a3ed95caeb02: Downloading [==>   ] 1.2MB/4.3MB"),
//   the per-layer bars of `docker pull`;
// - not on a terminal, progress updates are dropped and every status change is one plain line;
// - an `error` ends the stream with a JsonMessageError (exit status 1 unless it has a code);
// - `aux` messages go to a callback and are not printed.
import type { Writable } from 'node:stream';
import { humanSize } from './units.ts';

export interface JsonProgress {
  current?: number;
  total?: number;
  start?: number;
  hidecounts?: boolean;
  units?: string;
}

export interface JsonMessage {
  stream?: string;
  status?: string;
  progress?: string;
  progressDetail?: JsonProgress;
  id?: string;
  from?: string;
  time?: number;
  timeNano?: number;
  error?: string;
  errorDetail?: { code?: number; message?: string };
  aux?: unknown;
}

export class JsonMessageError extends Error {
  readonly code: number;
  constructor(message: string, code = 0) {
    super(message);
    this.name = 'JsonMessageError';
    this.code = code;
  }
}

/** JSONProgress.String(): "[=====>     ] 1.2MB/4.3MB 3s"; the bar only on wide terminals. */
export function progressString(p: JsonProgress, width: number, now = Date.now()): string {
  const current = p.current ?? 0;
  const total = p.total ?? 0;
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return p.units ? `${current} ${p.units}` : humanSize(current).padStart(8);
  let percentage = Math.trunc(Math.trunc((current / total) * 100) / 2);
  if (percentage > 50) percentage = 50;
  let bar = '';
  if (width > 110) bar = `[${'='.repeat(percentage)}>${' '.repeat(Math.max(0, 50 - percentage))}] `;
  let numbers = '';
  if (!p.hidecounts) {
    if (!p.units) {
      numbers = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
    } else {
      numbers = current > total ? `${current} ${p.units}` : `${current}/${total} ${p.units}`;
    }
  }
  let left = '';
  if (current > 0 && p.start && p.start > 0 && percentage < 50) {
    const fromStart = now - p.start * 1000;
    const perEntry = fromStart / current;
    left = ' ' + goDurationSeconds(Math.round(((total - current) * perEntry) / 1000));
  }
  return bar + numbers + left;
}

/** time.Duration.String() of whole seconds: "0s", "45s", "1m5s", "2h0m3s". */
function goDurationSeconds(s: number): string {
  if (s <= 0) return '0s';
  const h = Math.trunc(s / 3600);
  const m = Math.trunc((s % 3600) / 60);
  const sec = s % 60;
  if (h > 0) return `${h}h${m}m${sec}s`;
  if (m > 0) return `${m}m${sec}s`;
  return `${sec}s`;
}

function hasProgress(m: JsonMessage): boolean {
  return m.progressDetail !== undefined && m.progressDetail !== null;
}

function rfc3339NanoFixed(ms: number, nanos?: number): string {
  const d = new Date(ms).toISOString().replace(/\.\d+Z$/, '');
  const frac = String(nanos ?? (ms % 1000) * 1e6).padStart(9, '0');
  return `${d}.${frac}Z`;
}

/** JSONMessage.Display. */
function display(m: JsonMessage, out: string[], isTerminal: boolean, width: number): void {
  if (m.error !== undefined || m.errorDetail !== undefined) {
    throw new JsonMessageError(m.errorDetail?.message ?? m.error ?? 'unknown error', m.errorDetail?.code ?? 0);
  }
  let endl = '';
  const progress = hasProgress(m) ? progressString(m.progressDetail!, width) : '';
  if (isTerminal && !m.stream && hasProgress(m)) {
    out.push('\x1b[2K\r');
    endl = '\r';
  } else if (hasProgress(m) && progress !== '') {
    return; // progress bars only on terminals
  }
  if (m.timeNano) out.push(rfc3339NanoFixed(Math.trunc(m.timeNano / 1e6), m.timeNano % 1e9) + ' ');
  else if (m.time) out.push(rfc3339NanoFixed(m.time * 1000, 0) + ' ');
  if (m.id) out.push(`${m.id}: `);
  if (m.from) out.push(`(from ${m.from}) `);
  if (hasProgress(m) && isTerminal) out.push(`${m.status ?? ''} ${progress}${endl}`);
  else if (m.progress) out.push(`${m.status ?? ''} ${m.progress}${endl}`);
  else if (m.stream) out.push(`${m.stream}${endl}`);
  else out.push(`${m.status ?? ''}${endl}\n`);
}

export interface DisplayOptions {
  isTerminal: boolean;
  /** Terminal width; the bar is drawn only when wider than 110 columns. */
  width?: number;
  onAux?: (msg: JsonMessage) => void;
}

/**
 * The renderer as a state machine over decoded messages, so it can be fed from a stream or from
 * a test. Returns what to write for each message.
 */
export class JsonMessageRenderer {
  readonly #ids = new Map<string, number>();
  readonly #opts: DisplayOptions;

  constructor(opts: DisplayOptions) {
    this.#opts = opts;
  }

  render(m: JsonMessage): string {
    const { isTerminal } = this.#opts;
    const width = this.#opts.width ?? (isTerminal ? 80 : 200);
    if (m.aux !== undefined) {
      this.#opts.onAux?.(m);
      return '';
    }
    const out: string[] = [];
    let diff = 0;
    if (m.id && (hasProgress(m) || m.progress)) {
      let line = this.#ids.get(m.id);
      if (line === undefined) {
        // One line per id, counted from the first line of this group of ids.
        line = this.#ids.size;
        this.#ids.set(m.id, line);
        if (isTerminal) out.push('\n');
      }
      diff = this.#ids.size - line;
      if (isTerminal && diff > 0) out.push(`\x1b[${diff}A`);
    } else {
      // Anything else starts a new group: earlier ids are never rewritten again.
      this.#ids.clear();
    }
    try {
      display(m, out, isTerminal, width);
    } finally {
      if (m.id && isTerminal && diff > 0) out.push(`\x1b[${diff}B`);
    }
    return out.join('');
  }
}

/** Split a byte stream of concatenated or newline-separated JSON values. */
export async function* decodeJsonStream(
  input: AsyncIterable<Buffer | string>,
  reviver?: (key: string, value: unknown, context: { source?: string }) => unknown,
): AsyncGenerator<JsonMessage> {
  let buf = '';
  for await (const chunk of input) {
    buf += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let start = -1;
    let depth = 0;
    let inStr = false;
    let consumed = 0;
    for (let i = 0; i < buf.length; i++) {
      const c = buf[i];
      if (inStr) {
        if (c === '\\') i++;
        else if (c === '"') inStr = false;
        continue;
      }
      if (c === '"') inStr = true;
      else if (c === '{') {
        if (depth === 0) start = i;
        depth++;
      } else if (c === '}') {
        depth--;
        if (depth === 0 && start !== -1) {
          yield (reviver ? JSON.parse(buf.slice(start, i + 1), reviver as never) : JSON.parse(buf.slice(start, i + 1))) as JsonMessage;
          consumed = i + 1;
          start = -1;
        }
      }
    }
    buf = buf.slice(consumed);
  }
  if (buf.trim() !== '') throw new Error(`unexpected EOF in JSON message stream`);
}

/**
 * Render a whole stream to `out`. Rejects with JsonMessageError on an in-band error, after
 * everything before it has been written.
 */
export async function displayJsonMessages(input: AsyncIterable<Buffer | string>, out: Writable, opts: DisplayOptions): Promise<void> {
  const r = new JsonMessageRenderer(opts);
  for await (const m of decodeJsonStream(input)) {
    const s = r.render(m);
    if (s) out.write(s);
  }
}
