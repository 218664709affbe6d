// Resource limits: `--ulimit` parsing, the host's hard limits (/proc/self/limits), clamping.
// A runtime asked to raise a hard limit above the host's fails with EPERM (this host caps
// RLIMIT_NOFILE at 20000 and holds no CAP_SYS_RESOURCE), so every limit is clamped.
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../core/errors.ts';

/** 2^64-1: RLIM_INFINITY as the OCI spec writes it. */
export const RLIM_INFINITY = 0xffffffffffffffffn;

export interface Rlimit {
  type: string; // RLIMIT_NOFILE
  soft: bigint;
  hard: bigint;
}

/** Docker --ulimit names -> RLIMIT_*. */
const NAMES: Record<string, string> = {
  as: 'RLIMIT_AS', core: 'RLIMIT_CORE', cpu: 'RLIMIT_CPU', data: 'RLIMIT_DATA', fsize: 'RLIMIT_FSIZE',
  locks: 'RLIMIT_LOCKS', memlock: 'RLIMIT_MEMLOCK', msgqueue: 'RLIMIT_MSGQUEUE', nice: 'RLIMIT_NICE',
  nofile: 'RLIMIT_NOFILE', nproc: 'RLIMIT_NPROC', rss: 'RLIMIT_RSS', rtprio: 'RLIMIT_RTPRIO',
  rttime: 'RLIMIT_RTTIME', sigpending: 'RLIMIT_SIGPENDING', stack: 'RLIMIT_STACK',
};

/** /proc/self/limits row titles -> RLIMIT_*. */
const PROC_ROWS: Record<string, string> = {
  'Max cpu time': 'RLIMIT_CPU', 'Max file size': 'RLIMIT_FSIZE', 'Max data size': 'RLIMIT_DATA',
  'Max stack size': 'RLIMIT_STACK', 'Max core file size': 'RLIMIT_CORE', 'Max resident set': 'RLIMIT_RSS',
  'Max processes': 'RLIMIT_NPROC', 'Max open files': 'RLIMIT_NOFILE', 'Max locked memory': 'RLIMIT_MEMLOCK',
  'Max address space': 'RLIMIT_AS', 'Max file locks': 'RLIMIT_LOCKS', 'Max pending signals': 'RLIMIT_SIGPENDING',
  'Max msgqueue size': 'RLIMIT_MSGQUEUE', 'Max nice priority': 'RLIMIT_NICE', 'Max realtime priority': 'RLIMIT_RTPRIO',
  'Max realtime timeout': 'RLIMIT_RTTIME',
};

export function rlimitType(dockerName: string): string {
  const t = NAMES[dockerName.toLowerCase()];
  if (!t) throw invalidArgument(`invalid ulimit type: ${dockerName}`);
  return t;
}

const toBig = (v: string) => (v === 'unlimited' ? RLIM_INFINITY : BigInt(v));

/** Parse /proc/<pid>/limits. */
export function parseProcLimits(text: string): Map<string, { soft: bigint; hard: bigint }> {
  const out = new Map<string, { soft: bigint; hard: bigint }>();
  for (const line of text.split('\n').slice(1)) {
    const m = /^(.+?)\s{2,}(\S+)\s+(\S+)/.exec(line);
    if (!m) continue;
    const t = PROC_ROWS[m[1]!.trim()];
    if (t) out.set(t, { soft: toBig(m[2]!), hard: toBig(m[3]!) });
  }
  return out;
}

let cached: Map<string, { soft: bigint; hard: bigint }> | undefined;
export function hostRlimits(): Map<string, { soft: bigint; hard: bigint }> {
  cached ??= (() => {
    try {
      return parseProcLimits(readFileSync('/proc/self/limits', 'utf8'));
    } catch {
      return new Map();
    }
  })();
  return cached;
}

/** Docker's Ulimit JSON value (-1 = unlimited) as an rlimit value. */
export function ulimitValue(n: number): bigint {
  return n < 0 ? RLIM_INFINITY : BigInt(Math.trunc(n));
}

/** Clamp to the host's hard limit; soft never above hard. */
export function clampRlimit(r: Rlimit, host: Map<string, { soft: bigint; hard: bigint }>): Rlimit {
  const h = host.get(r.type)?.hard ?? RLIM_INFINITY;
  const hard = r.hard > h ? h : r.hard;
  const soft = r.soft > hard ? hard : r.soft;
  return { type: r.type, soft, hard };
}

/** "nofile=1024:2048" / "nproc=512" (CLI side). */
export function parseUlimitFlag(s: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(s);
  if (!m) throw invalidArgument(`invalid ulimit argument: ${s}`);
  rlimitType(m[1]!);
  const soft = Number(m[2]);
  const hard = m[3] !== undefined ? Number(m[3]) : soft;
  if (soft >= 0 && hard >= 0 && soft > hard) throw invalidArgument(`ulimit soft limit must be less than or equal to hard limit: ${soft} > ${hard}`);
  return { Name: m[1]!, Soft: soft, Hard: hard };
}
