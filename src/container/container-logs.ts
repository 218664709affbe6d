// Container logs: conmon's k8s-file format (`<RFC3339Nano> <stdout|stderr> <P|F> <text>`; P marks
// a partial line continued by the next entry), read across berth's rotations (ctr.log.N ... .1,
// then ctr.log), with Docker's options (tail, since, until, timestamps, follow) and Docker's
// stream framing: 8-byte headers [stream, 0, 0, 0, len u32be] without a TTY, raw bytes with one.
import { createReadStream } from 'node:fs';
import { open, stat, rename, unlink } from 'node:fs/promises';
import { watch } from 'node:fs';

export interface LogEntry {
  /** Nanoseconds since the epoch. */
  tsNano: number;
  /** RFC 3339 with nanoseconds, as Docker prints it with --timestamps. */
  ts: string;
  stream: 1 | 2;
  /** The text including the newline for complete (F) lines. */
  data: Buffer;
}

/** Parse one k8s-file line; undefined for garbage. */
export function parseLogLine(line: string): LogEntry | undefined {
  const a = line.indexOf(' ');
  const b = line.indexOf(' ', a + 1);
  const c = line.indexOf(' ', b + 1);
  if (a < 0 || b < 0) return undefined;
  const rawTs = line.slice(0, a);
  const streamName = line.slice(a + 1, b);
  const tag = c < 0 ? line.slice(b + 1) : line.slice(b + 1, c);
  const text = c < 0 ? '' : line.slice(c + 1);
  if (streamName !== 'stdout' && streamName !== 'stderr') return undefined;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/.exec(rawTs);
  if (!m) return undefined;
  const frac = (m[2] ?? '').padEnd(9, '0').slice(0, 9);
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) return undefined;
  const tsNano = ms * 1e6 + Number(frac);
  const iso = new Date(ms).toISOString().slice(0, 19) + '.' + frac + 'Z';
  const full = tag.includes('F');
  return { tsNano, ts: iso, stream: streamName === 'stderr' ? 2 : 1, data: Buffer.from(full ? text + '\n' : text) };
}

/** Docker's multiplexed-stream frame. */
export function frame(stream: 0 | 1 | 2, data: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(data.length, 4);
  return Buffer.concat([h, data]);
}

export function rotatedPath(logPath: string, n: number): string {
  return n === 0 ? logPath : `${logPath}.${n}`;
}

/** Oldest first. */
async function logFiles(logPath: string, maxFiles: number): Promise<string[]> {
  const out: string[] = [];
  for (let n = Math.max(maxFiles, 1) + 1; n >= 0; n--) {
    const p = rotatedPath(logPath, n);
    try {
      await stat(p);
      out.push(p);
    } catch {
      /* absent */
    }
  }
  return out;
}

export interface LogOptions {
  stdout: boolean;
  stderr: boolean;
  timestamps: boolean;
  /** Number of lines from the end; undefined = all. */
  tail?: number;
  sinceNano?: number;
  untilNano?: number;
  follow: boolean;
}

export function formatEntry(e: LogEntry, tty: boolean, timestamps: boolean): Buffer {
  const data = timestamps ? Buffer.concat([Buffer.from(e.ts + ' '), e.data]) : e.data;
  return tty ? data : frame(e.stream, data);
}

/**
 * Stream a container's logs to `write`. With follow, keeps reading the live file until `stopped`
 * resolves (the container exited; what it wrote before is still delivered) or `signal` aborts.
 */
export async function streamLogs(
  logPath: string,
  maxFiles: number,
  opts: LogOptions,
  write: (e: LogEntry) => boolean | void,
  stopped: Promise<void> | undefined,
  signal: AbortSignal,
): Promise<void> {
  const want = (e: LogEntry) =>
    ((e.stream === 1 && opts.stdout) || (e.stream === 2 && opts.stderr)) &&
    (opts.sinceNano === undefined || e.tsNano >= opts.sinceNano) &&
    (opts.untilNano === undefined || e.tsNano <= opts.untilNano);
  const files = await logFiles(logPath, maxFiles);
  const tailBuf: LogEntry[] = [];
  let liveOffset = 0;
  for (const f of files) {
    if (signal.aborted) return;
    let bytes = 0;
    for await (const { line, size, complete } of fileLines(f)) {
      // A line still being written is the follower's to read once it is complete.
      if (!complete && opts.follow && f === logPath) break;
      bytes += size;
      const e = parseLogLine(line);
      if (!e || !want(e)) continue;
      if (opts.tail !== undefined) {
        if (opts.tail === 0) continue;
        tailBuf.push(e);
        // Count lines, not partial chunks: a P entry belongs to the next F.
        let lines = 0;
        for (const t of tailBuf) if (t.data[t.data.length - 1] === 0x0a) lines++;
        while (lines > opts.tail && tailBuf.length) {
          const d = tailBuf.shift()!;
          if (d.data[d.data.length - 1] === 0x0a) lines--;
        }
      } else write(e);
    }
    if (f === logPath) liveOffset = bytes;
  }
  for (const e of tailBuf) write(e);
  if (!opts.follow || !stopped || signal.aborted) return;
  if (opts.untilNano !== undefined && opts.untilNano < Date.now() * 1e6) return;
  await followFile(logPath, liveOffset, (line) => {
    const e = parseLogLine(line);
    if (e && want(e)) write(e);
  }, stopped, signal);
}

/** Follow a log from byte `offset` of the live file until `stopped` (attach without stdin). */
export async function followLog(logPath: string, offset: number, onEntry: (e: LogEntry) => void, stopped: Promise<void>, signal: AbortSignal): Promise<void> {
  await followFile(logPath, offset, (line) => {
    const e = parseLogLine(line);
    if (e) onEntry(e);
  }, stopped, signal);
}

/**
 * The lines of a file split on "\n" only: a TTY's "\r\n" keeps its "\r" (Docker returns it),
 * and `size` counts the exact bytes (with the newline) so a follower resumes where this ended.
 */
async function* fileLines(path: string): AsyncGenerator<{ line: string; size: number; complete: boolean }> {
  let rest: Buffer = Buffer.alloc(0);
  for await (const chunk of createReadStream(path)) {
    const buf: Buffer = rest.length ? Buffer.concat([rest, chunk as Buffer]) : (chunk as Buffer);
    let start = 0;
    for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, start)) {
      yield { line: buf.toString('utf8', start, i), size: i + 1 - start, complete: true };
      start = i + 1;
    }
    rest = buf.subarray(start);
  }
  if (rest.length) yield { line: rest.toString('utf8'), size: rest.length, complete: false };
}

/** Tail -F: read appended lines from `offset`, reopening when the file is rotated or truncated. */
async function followFile(path: string, offset: number, onLine: (l: string) => void, stopped: Promise<void>, signal: AbortSignal): Promise<void> {
  let pos = offset;
  let ino: number | undefined;
  let rest = '';
  let done = false;
  void stopped.then(() => (done = true));
  const drain = async () => {
    let st;
    try {
      st = await stat(path);
    } catch {
      return;
    }
    if (ino !== undefined && st.ino !== ino) pos = 0; // rotated: the new file starts fresh
    if (st.size < pos) pos = 0; // truncated by conmon's size cap
    ino = st.ino;
    if (st.size === pos) return;
    const fh = await open(path, 'r');
    try {
      const buf = Buffer.alloc(Math.min(st.size - pos, 4 << 20));
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      pos += bytesRead;
      const text = rest + buf.subarray(0, bytesRead).toString('utf8');
      const lines = text.split('\n');
      rest = lines.pop() ?? '';
      for (const l of lines) onLine(l);
    } finally {
      await fh.close();
    }
  };
  let wake: (() => void) | undefined;
  let watcher: ReturnType<typeof watch> | undefined;
  try {
    watcher = watch(path, () => wake?.());
    watcher.on('error', () => {});
  } catch {
    /* polling only */
  }
  try {
    try {
      ino = (await stat(path)).ino;
    } catch {
      /* not yet */
    }
    while (!signal.aborted) {
      await drain();
      if (done) {
        await drain();
        return;
      }
      await new Promise<void>((r) => {
        const t = setTimeout(r, 250);
        wake = () => {
          clearTimeout(t);
          r();
        };
        signal.addEventListener('abort', () => r(), { once: true });
        void stopped.then(() => r());
      });
      wake = undefined;
    }
  } finally {
    watcher?.close();
  }
}

/** Rotate `ctr.log` -> `.1` -> `.2` ... keeping `maxFiles` files in all. */
export async function rotateLogs(logPath: string, maxFiles: number): Promise<void> {
  if (maxFiles <= 1) return;
  await unlink(rotatedPath(logPath, maxFiles - 1)).catch(() => {});
  for (let n = maxFiles - 2; n >= 0; n--) await rename(rotatedPath(logPath, n), rotatedPath(logPath, n + 1)).catch(() => {});
}

/** Docker's --log-opt max-size values: "10m", "1g", "512k", bytes. */
export function parseSize(v: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]?)b?$/i.exec(v.trim());
  if (!m) return undefined;
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2]!.toLowerCase() as ''];
  return Math.floor(Number(m[1]) * mult);
}
