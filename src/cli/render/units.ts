// docker/go-units formatting, which the docker CLI uses for every size and age it prints.

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

/** Go's `%.<p>g`: shortest of %e/%f with p significant digits, trailing zeros removed. */
export function formatG(v: number, precision: number): string {
  if (v === 0) return '0';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
  const exp = Math.floor(Math.log10(Math.abs(Number(v.toPrecision(precision)))));
  if (exp < -4 || exp >= precision) {
    const [m, e] = v.toExponential(precision - 1).split('e') as [string, string];
    const mant = m.includes('.') ? m.replace(/0+$/, '').replace(/\.$/, '') : m;
    const n = Number(e);
    return `${mant}e${n < 0 ? '-' : '+'}${String(Math.abs(n)).padStart(2, '0')}`;
  }
  const s = v.toFixed(Math.max(0, precision - 1 - exp));
  return s.includes('.') ? s.replace(/0+$/, '').replace(/\.$/, '') : s;
}

function scale(size: number, base: number, units: string[]): [number, string] {
  let i = 0;
  while (size >= base && i < units.length - 1) {
    size /= base;
    i++;
  }
  return [size, units[i]!];
}

/** units.HumanSizeWithPrecision: base 1000, "4.26MB". */
export function humanSizeWithPrecision(size: number, precision: number): string {
  const [v, u] = scale(size, 1000, DECIMAL);
  return `${formatG(v, precision)}${u}`;
}

/** units.HumanSize (precision 4): "4.261MB". */
export function humanSize(size: number): string {
  return humanSizeWithPrecision(size, 4);
}

/** units.BytesSize: base 1024, "1.5GiB". */
export function bytesSize(size: number): string {
  const [v, u] = scale(size, 1024, BINARY);
  return `${formatG(v, 4)}${u}`;
}

/** units.HumanDuration, for "2 minutes ago" and "Up About an hour". */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(ms / 3_600_000 / 24 / 365)} years`;
}

/** "2 minutes ago" from a unix-seconds timestamp or an RFC 3339 string. */
export function timeAgo(created: number | string, now = Date.now()): string {
  const t = typeof created === 'number' ? created * 1000 : Date.parse(created);
  if (!Number.isFinite(t) || t <= 0) return 'N/A';
  return `${humanDuration(now - t)} ago`;
}

/** Go's time.Time.String() in UTC: "2024-01-02 15:04:05 +0000 UTC". */
export function goTimeString(created: number | string): string {
  const d = new Date(typeof created === 'number' ? created * 1000 : created);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000 UTC`;
}

/** RFC 3339 (seconds) in UTC. */
export function rfc3339(created: number | string): string {
  const d = new Date(typeof created === 'number' ? created * 1000 : created);
  if (Number.isNaN(d.getTime())) return '';
  return d.toISOString().replace(/\.\d+Z$/, 'Z');
}

/** Docker's --memory style sizes: "512m", "1g", "100k", "1024" (bytes, base 1024). */
export function parseRamSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgtpe]?)(i?b)?\s*$/i.exec(s);
  if (!m) throw new Error(`invalid size: '${s}'`);
  const mult = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5, e: 1024 ** 6 }[m[2]!.toLowerCase()] ?? 1;
  return Math.trunc(Number(m[1]) * mult);
}

/** Go duration strings ("1m30s", "500ms", "10s") to nanoseconds. */
export function parseGoDuration(s: string): number {
  if (s === '0') return 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let matched = 0;
  let m: RegExpExecArray | null;
  let neg = false;
  if (s.startsWith('-')) {
    neg = true;
    s = s.slice(1);
  }
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    matched = re.lastIndex;
  }
  if (matched !== s.length || s.length === 0) throw new Error(`time: invalid duration "${s}"`);
  return Math.round(neg ? -total : total);
}
