// Docker's JSON message stream (moby pkg/jsonmessage + pkg/streamformatter), as dockerd writes it
// for pull, push, load and import: one JSON object per line, fields in Go's struct order
// (stream, status, progressDetail, progress, id, ..., errorDetail, error, aux), '<', '>' and '&'
// escaped as Go's encoder does. The `progress` text is JSONProgress.String() at dockerd's width.

export interface ProgressDetail {
  current?: number;
  total?: number;
}

export interface JsonMessage {
  stream?: string;
  status?: string;
  progressDetail?: ProgressDetail;
  progress?: string;
  id?: string;
  errorDetail?: { message: string };
  error?: string;
  aux?: unknown;
}

export type ProgressSink = (msg: JsonMessage) => void;

/** JSON with Go's HTML-safe escapes, keys in Go's JSONMessage order. */
export function encodeJsonMessage(m: JsonMessage): string {
  const ordered: JsonMessage = {};
  if (m.stream !== undefined) ordered.stream = m.stream;
  if (m.status !== undefined) ordered.status = m.status;
  if (m.progressDetail !== undefined) ordered.progressDetail = m.progressDetail;
  if (m.progress !== undefined && m.progress !== '') ordered.progress = m.progress;
  if (m.id !== undefined && m.id !== '') ordered.id = m.id;
  if (m.errorDetail !== undefined) ordered.errorDetail = m.errorDetail;
  if (m.error !== undefined) ordered.error = m.error;
  if (m.aux !== undefined) ordered.aux = m.aux;
  return JSON.stringify(ordered).replace(/[<>&]/g, (c) => (c === '<' ? '\\u003c' : c === '>' ? '\\u003e' : '\\u0026'));
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];

/** go-units HumanSize: decimal units, 4 significant digits ("32.77kB", "2.216MB", "5B"). */
export function humanSize(n: number): string {
  let size = n;
  let i = 0;
  while (size >= 1000 && i < UNITS.length - 1) {
    size /= 1000;
    i++;
  }
  return `${formatG4(size)}${UNITS[i]}`;
}

/** Go's %.4g for 0 <= x < 1000. */
function formatG4(x: number): string {
  if (x === 0) return '0';
  let s = x.toPrecision(4);
  if (s.includes('e')) return String(Number(s));
  if (s.includes('.')) s = s.replace(/0+$/, '').replace(/\.$/, '');
  return s;
}

/** JSONProgress.String() with dockerd's terminal width (no terminal: 200, bar shown, no ETA). */
export function progressText(current: number, total: number): string {
  if (current <= 0 && total <= 0) return '';
  if (total <= 0) return humanSize(current).padStart(8);
  let pct = Math.floor(Math.floor((current / total) * 100) / 2);
  if (pct > 50) pct = 50;
  const bar = `[${'='.repeat(pct)}>${' '.repeat(Math.max(0, 50 - pct))}] `;
  const nums = current > total ? humanSize(current).padStart(8) : `${humanSize(current).padStart(8)}/${humanSize(total)}`;
  return bar + nums;
}

/** A layer progress line: `{"status":"Downloading","progressDetail":{...},"progress":"[=> ]..","id":".."}`. */
export function progressMessage(id: string, status: string, current?: number, total?: number): JsonMessage {
  if (current === undefined) return { status, progressDetail: {}, id };
  const detail: ProgressDetail = { current };
  if (total !== undefined && total > 0) detail.total = total;
  return { status, progressDetail: detail, progress: progressText(current, total ?? 0), id };
}

/** Rate-limits progress updates of one id to one per `intervalMs` (the last one is always sent by the caller). */
export class Throttle {
  #last = 0;
  readonly #interval: number;
  constructor(intervalMs = 100) {
    this.#interval = intervalMs;
  }
  ready(): boolean {
    const now = performance.now();
    if (now - this.#last < this.#interval) return false;
    this.#last = now;
    return true;
  }
}
