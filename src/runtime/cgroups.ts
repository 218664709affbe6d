// Container cgroups: runc creates each container's cgroup from the spec's `linux.cgroupsPath`
// (`/<parent>/<id>`) and resources; this module reads them (stats, OOM kills) and removes what is
// left after `runc delete` (runc leaves the parent and, on v1, sometimes empty leaves).
//
// Layout, v1 (this host: "hybrid", v1 controllers plus a cgroup2 mount at /sys/fs/cgroup/unified):
//   /sys/fs/cgroup/<controller>/<parent>/<id>/   memory.usage_in_bytes, cpuacct.usage, pids.current ...
// v2 (unified):
//   /sys/fs/cgroup/<parent>/<id>/                memory.current, cpu.stat, pids.current, memory.events
import { readFile, readdir, rmdir } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus } from 'node:os';

export type CgroupVersion = '1' | '2';

export function detectCgroupVersion(root = '/sys/fs/cgroup'): CgroupVersion {
  return existsSync(join(root, 'cgroup.controllers')) ? '2' : '1';
}

/** Docker's stats JSON (the parts the docker CLI and SDKs read). */
export interface CgroupStats {
  read: string;
  pids_stats: { current?: number; limit?: number };
  blkio_stats: { io_service_bytes_recursive: Array<{ major: number; minor: number; op: string; value: number }> | null };
  cpu_stats: {
    cpu_usage: { total_usage: number; usage_in_kernelmode: number; usage_in_usermode: number; percpu_usage?: number[] };
    system_cpu_usage: number;
    online_cpus: number;
    throttling_data: { periods: number; throttled_periods: number; throttled_time: number };
  };
  memory_stats: { usage?: number; max_usage?: number; limit?: number; failcnt?: number; stats?: Record<string, number> };
}

async function readNum(p: string): Promise<number | undefined> {
  try {
    const t = (await readFile(p, 'utf8')).trim();
    if (t === 'max') return undefined;
    const n = Number(t);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

// cgroupfs and procfs files are generated from kernel memory: read synchronously (microseconds,
// against a thread-pool round trip each on the exit and stats paths).
async function readKV(p: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  try {
    for (const line of readFileSync(p, 'utf8').split('\n')) {
      const [k, v] = line.trim().split(/\s+/);
      if (k && v !== undefined && /^\d+$/.test(v)) out[k] = Number(v);
    }
  } catch {
    /* absent */
  }
  return out;
}

/** Host-wide CPU time in nanoseconds from /proc/stat (Docker's system_cpu_usage). */
export async function systemCpuUsage(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((a, b) => a + Number(b), 0);
  return (ticks * 1e9) / 100; // USER_HZ = 100
}

export class Cgroups {
  readonly parent: string;
  readonly version: CgroupVersion;
  readonly root: string;

  constructor(opts: { parent?: string; version?: CgroupVersion; root?: string } = {}) {
    this.root = opts.root ?? '/sys/fs/cgroup';
    this.parent = opts.parent ?? 'berth';
    this.version = opts.version ?? detectCgroupVersion(this.root);
  }

  /** The spec's linux.cgroupsPath for a container. */
  pathFor(id: string): string {
    return `/${this.parent}/${id}`;
  }

  /**
   * Directory of a controller's cgroup (v1), or the unified cgroup (v2). `parent` overrides the
   * configured one (a container keeps the parent it was started under across daemon restarts).
   */
  dir(id: string, controller = '', parent = this.parent): string {
    return this.version === '2' ? join(this.root, parent, id) : join(this.root, controller, parent, id);
  }

  async stats(id: string, parent = this.parent): Promise<CgroupStats> {
    const v2 = this.version === '2';
    const online = cpus().length;
    const out: CgroupStats = {
      read: new Date().toISOString(),
      pids_stats: {},
      blkio_stats: { io_service_bytes_recursive: [] },
      cpu_stats: { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, system_cpu_usage: await systemCpuUsage(), online_cpus: online, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } },
      memory_stats: {},
    };
    if (v2) {
      const d = this.dir(id, '', parent);
      const cpu = await readKV(join(d, 'cpu.stat'));
      out.cpu_stats.cpu_usage = { total_usage: (cpu.usage_usec ?? 0) * 1000, usage_in_kernelmode: (cpu.system_usec ?? 0) * 1000, usage_in_usermode: (cpu.user_usec ?? 0) * 1000 };
      out.cpu_stats.throttling_data = { periods: cpu.nr_periods ?? 0, throttled_periods: cpu.nr_throttled ?? 0, throttled_time: (cpu.throttled_usec ?? 0) * 1000 };
      const mstat = await readKV(join(d, 'memory.stat'));
      out.memory_stats = { usage: await readNum(join(d, 'memory.current')), limit: (await readNum(join(d, 'memory.max'))) ?? (await totalMem()), stats: mstat };
      out.pids_stats = { current: await readNum(join(d, 'pids.current')), limit: await readNum(join(d, 'pids.max')) };
      const io = await readFile(join(d, 'io.stat'), 'utf8').catch(() => '');
      const rows: Array<{ major: number; minor: number; op: string; value: number }> = [];
      for (const line of io.split('\n')) {
        const m = /^(\d+):(\d+)\s+(.*)$/.exec(line);
        if (!m) continue;
        const kv = Object.fromEntries(m[3]!.split(/\s+/).map((x) => x.split('=')));
        rows.push({ major: +m[1]!, minor: +m[2]!, op: 'read', value: Number(kv.rbytes ?? 0) }, { major: +m[1]!, minor: +m[2]!, op: 'write', value: Number(kv.wbytes ?? 0) });
      }
      out.blkio_stats.io_service_bytes_recursive = rows;
      return out;
    }
    const acct = this.dir(id, 'cpuacct', parent);
    const cpuStat = await readKV(join(acct, 'cpuacct.stat'));
    const percpu = (await readFile(join(acct, 'cpuacct.usage_percpu'), 'utf8').catch(() => '')).trim().split(/\s+/).filter(Boolean).map(Number);
    const tick = 1e9 / 100;
    out.cpu_stats.cpu_usage = {
      total_usage: (await readNum(join(acct, 'cpuacct.usage'))) ?? 0,
      usage_in_kernelmode: (cpuStat.system ?? 0) * tick,
      usage_in_usermode: (cpuStat.user ?? 0) * tick,
      ...(percpu.length ? { percpu_usage: percpu } : {}),
    };
    const thr = await readKV(join(this.dir(id, 'cpu', parent), 'cpu.stat'));
    out.cpu_stats.throttling_data = { periods: thr.nr_periods ?? 0, throttled_periods: thr.nr_throttled ?? 0, throttled_time: thr.throttled_time ?? 0 };
    const mem = this.dir(id, 'memory', parent);
    const limit = await readNum(join(mem, 'memory.limit_in_bytes'));
    const host = await totalMem();
    out.memory_stats = {
      usage: await readNum(join(mem, 'memory.usage_in_bytes')),
      max_usage: await readNum(join(mem, 'memory.max_usage_in_bytes')),
      failcnt: await readNum(join(mem, 'memory.failcnt')),
      limit: limit === undefined || limit > host ? host : limit,
      stats: await readKV(join(mem, 'memory.stat')),
    };
    const pids = this.dir(id, 'pids', parent);
    out.pids_stats = { current: await readNum(join(pids, 'pids.current')), limit: await readNum(join(pids, 'pids.max')) };
    const blk = await readFile(join(this.dir(id, 'blkio', parent), 'blkio.throttle.io_service_bytes_recursive'), 'utf8').catch(() => '');
    const rows: Array<{ major: number; minor: number; op: string; value: number }> = [];
    for (const line of blk.split('\n')) {
      const m = /^(\d+):(\d+)\s+(\w+)\s+(\d+)$/.exec(line.trim());
      if (m) rows.push({ major: +m[1]!, minor: +m[2]!, op: m[3]!.toLowerCase(), value: +m[4]! });
    }
    out.blkio_stats.io_service_bytes_recursive = rows;
    return out;
  }

  /** Whether the kernel OOM-killed a process in the container's cgroup (read before removal). */
  async oomKilled(id: string, parent = this.parent): Promise<boolean> {
    if (this.version === '2') {
      const ev = await readKV(join(this.dir(id, '', parent), 'memory.events'));
      return (ev.oom_kill ?? 0) > 0;
    }
    const ctl = await readKV(join(this.dir(id, 'memory', parent), 'memory.oom_control'));
    return (ctl.oom_kill ?? 0) > 0;
  }

  /** The cgroup's directories across hierarchies (v1: every mounted controller, incl. named ones). */
  async dirs(id: string, parent = this.parent): Promise<string[]> {
    if (this.version === '2') return [this.dir(id, '', parent)];
    const out: string[] = [];
    for (const c of await readdir(this.root).catch(() => [] as string[])) {
      const d = join(this.root, c, parent, id);
      if (existsSync(d)) out.push(d);
    }
    return out;
  }

  /** Remove what runc left of a container's cgroup. Never throws on absent directories. */
  async remove(id: string, parent = this.parent): Promise<void> {
    for (const d of await this.dirs(id, parent)) await rmdirTree(d);
  }

  /** Remove the (empty) parent in every hierarchy: test teardown. */
  async removeParent(): Promise<void> {
    for (const c of this.version === '2' ? [''] : await readdir(this.root).catch(() => [] as string[])) {
      const d = join(this.root, c, this.parent);
      if (existsSync(d)) await rmdirTree(d);
    }
  }
}

/** cgroupfs directories are removed with rmdir, leaves first. */
async function rmdirTree(d: string): Promise<void> {
  try {
    for (const e of await readdir(d, { withFileTypes: true })) if (e.isDirectory()) await rmdirTree(join(d, e.name));
    await rmdir(d);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT') throw err;
  }
}

let memTotal: number | undefined;
async function totalMem(): Promise<number> {
  if (memTotal === undefined) {
    const m = /^MemTotal:\s+(\d+) kB/m.exec(await readFile('/proc/meminfo', 'utf8'));
    memTotal = m ? Number(m[1]) * 1024 : 0;
  }
  return memTotal;
}

