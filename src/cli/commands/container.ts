// Container verbs other than run/create/start/attach/exec: lifecycle (stop, restart, kill,
// pause, unpause, rm, wait, rename, update), listing (ps, top, stats, port, events), logs,
// file transfer (cp, export) and prune, plus the `container` group with docker's aliases.
import { pipeline } from 'node:stream/promises';
import { StatusError, isTerminal, type Command, type Ctx } from '../command.ts';
import { formatList } from '../render/list.ts';
import { truncateId, ellipsis, renderTable } from '../render/table.ts';
import { humanSizeWithPrecision, bytesSize, timeAgo, goTimeString, parseGoDuration, parseRamSize } from '../render/units.ts';
import { compileTemplate, normalizeFormat, unescapeFormat } from '../render/template.ts';
import { decodeJsonStream } from '../render/jsonmessage.ts';
import { parseReference, familiarString, familiarName } from '../../core/reference.ts';
import { demux } from '../attach-streams.ts';
import { FORMAT_FLAG, FILTER_FLAG, filtersJson, copyToFile, deletedList, pruneCommand } from './util.ts';
import { inspectObjects } from './inspect.ts';
import { runCommands } from './container-run.ts';
import { copyCommand } from './container-cp.ts';
import { parseRestartPolicy } from './container-opts.ts';

/** Apply `op` to each container, print each name on success, fail at the end with all errors. */
async function forEach(ctx: Ctx, names: string[], op: (name: string) => Promise<void>): Promise<void> {
  const errs: string[] = [];
  for (const n of names) {
    try {
      await op(n);
      ctx.out(`${n}\n`);
    } catch (err) {
      errs.push((err as Error).message);
    }
  }
  if (errs.length) throw new StatusError(1, errs.join('\n'));
}

const stop: Command = {
  name: 'stop',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Stop one or more running containers',
  args: { min: 1 },
  flags: [
    { name: 'signal', short: 's', kind: 'string', valueName: 'string', help: 'Signal to send to the container' },
    { name: 'timeout', short: 't', kind: 'int', help: 'Seconds to wait before killing the container' },
    { name: 'time', kind: 'int', help: 'Seconds to wait before killing the container (deprecated)', hidden: true },
  ],
  async run(ctx, f, args) {
    const t = f.changed('timeout') ? f.int('timeout') : f.changed('time') ? f.int('time') : undefined;
    await forEach(ctx, args, (n) => ctx.client.call('POST', `/containers/${n}/stop`, { query: { signal: f.string('signal') || undefined, t } }));
  },
};

const restart: Command = {
  ...stop,
  name: 'restart',
  short: 'Restart one or more containers',
  async run(ctx, f, args) {
    const t = f.changed('timeout') ? f.int('timeout') : f.changed('time') ? f.int('time') : undefined;
    await forEach(ctx, args, (n) => ctx.client.call('POST', `/containers/${n}/restart`, { query: { signal: f.string('signal') || undefined, t } }));
  },
};

const kill: Command = {
  name: 'kill',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Kill one or more running containers',
  args: { min: 1 },
  flags: [{ name: 'signal', short: 's', kind: 'string', valueName: 'string', help: 'Signal to send to the container' }],
  async run(ctx, f, args) {
    await forEach(ctx, args, (n) => ctx.client.call('POST', `/containers/${n}/kill`, { query: { signal: f.string('signal') || undefined } }));
  },
};

const simple = (name: string, short: string): Command => ({
  name,
  usage: 'CONTAINER [CONTAINER...]',
  short,
  args: { min: 1 },
  async run(ctx, _f, args) {
    await forEach(ctx, args, (n) => ctx.client.call('POST', `/containers/${n}/${name}`));
  },
});

const rm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Remove one or more containers',
  args: { min: 1 },
  flags: [
    { name: 'force', short: 'f', kind: 'bool', help: 'Force the removal of a running container (uses SIGKILL)' },
    { name: 'link', short: 'l', kind: 'bool', help: 'Remove the specified link' },
    { name: 'volumes', short: 'v', kind: 'bool', help: 'Remove anonymous volumes associated with the container' },
  ],
  async run(ctx, f, args) {
    await forEach(ctx, args, async (n) => {
      const name = n.replace(/^\//, '');
      if (!name) throw new Error('Container name cannot be empty');
      await ctx.client.call('DELETE', `/containers/${name}`, { query: { force: f.bool('force'), link: f.bool('link'), v: f.bool('volumes') } });
    });
  },
};

const wait: Command = {
  name: 'wait',
  usage: 'CONTAINER [CONTAINER...]',
  short: 'Block until one or more containers stop, then print their exit codes',
  args: { min: 1 },
  async run(ctx, _f, args) {
    const errs: string[] = [];
    for (const n of args) {
      try {
        const r = await ctx.client.json<{ StatusCode?: number; Error?: { Message?: string } | null; error?: string }>('POST', `/containers/${n}/wait`);
        if (typeof r?.error === 'string') throw new Error(`Error response from daemon: ${r.error}`);
        if (r?.Error?.Message) throw new Error(r.Error.Message);
        if (typeof r?.StatusCode !== 'number') throw new Error('Error response from daemon: no exit status in wait response');
        ctx.out(`${r.StatusCode}\n`);
      } catch (err) {
        errs.push((err as Error).message);
      }
    }
    if (errs.length) throw new StatusError(1, errs.join('\n'));
  },
};

const rename: Command = {
  name: 'rename',
  usage: 'CONTAINER NEW_NAME',
  short: 'Rename a container',
  args: { min: 2, max: 2 },
  async run(ctx, _f, [old, name]) {
    const n = name!.trim().replace(/^\//, '');
    if (!old!.trim() || !n) throw new Error('Error: Neither old nor new names may be empty');
    try {
      await ctx.client.call('POST', `/containers/${old}/rename`, { query: { name: n } });
    } catch (err) {
      throw new Error(`${(err as Error).message}\nError: failed to rename container named ${old}`);
    }
  },
};

const update: Command = {
  name: 'update',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Update configuration of one or more containers',
  args: { min: 1 },
  flags: [
    { name: 'blkio-weight', kind: 'int', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
    { name: 'cpu-period', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
    { name: 'cpu-quota', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
    { name: 'cpu-shares', short: 'c', kind: 'int', help: 'CPU shares (relative weight)' },
    { name: 'cpus', kind: 'string', valueName: 'decimal', help: 'Number of CPUs' },
    { name: 'cpuset-cpus', kind: 'string', valueName: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
    { name: 'cpuset-mems', kind: 'string', valueName: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
    { name: 'memory', short: 'm', kind: 'string', valueName: 'bytes', help: 'Memory limit' },
    { name: 'memory-reservation', kind: 'string', valueName: 'bytes', help: 'Memory soft limit' },
    { name: 'memory-swap', kind: 'string', valueName: 'bytes', help: "Swap limit equal to memory plus swap: -1 to enable unlimited swap" },
    { name: 'pids-limit', kind: 'int', help: 'Tune container pids limit (set -1 for unlimited)' },
    { name: 'restart', kind: 'string', valueName: 'string', help: 'Restart policy to apply when a container exits' },
  ],
  async run(ctx, f, args) {
    const bytes = (n: string) => {
      const s = f.string(n);
      return s === '' ? 0 : s === '-1' ? -1 : parseRamSize(s);
    };
    // container.UpdateConfig as the docker CLI sends it: Resources (Go field order, nulls for
    // unset pointers and slices) plus RestartPolicy.
    const body: Record<string, unknown> = {
      CpuShares: f.int('cpu-shares'),
      Memory: bytes('memory'),
      NanoCpus: f.string('cpus') ? Math.round(Number(f.string('cpus')) * 1e9) : 0,
      CgroupParent: '',
      BlkioWeight: f.int('blkio-weight'),
      BlkioWeightDevice: null,
      BlkioDeviceReadBps: null,
      BlkioDeviceWriteBps: null,
      BlkioDeviceReadIOps: null,
      BlkioDeviceWriteIOps: null,
      CpuPeriod: f.int('cpu-period'),
      CpuQuota: f.int('cpu-quota'),
      CpuRealtimePeriod: 0,
      CpuRealtimeRuntime: 0,
      CpusetCpus: f.string('cpuset-cpus'),
      CpusetMems: f.string('cpuset-mems'),
      Devices: null,
      DeviceCgroupRules: null,
      DeviceRequests: null,
      MemoryReservation: bytes('memory-reservation'),
      MemorySwap: bytes('memory-swap'),
      MemorySwappiness: null,
      OomKillDisable: null,
      PidsLimit: f.changed('pids-limit') ? f.int('pids-limit') : null,
      Ulimits: null,
      CpuCount: 0,
      CpuPercent: 0,
      IOMaximumIOps: 0,
      IOMaximumBandwidth: 0,
      RestartPolicy: f.changed('restart') ? parseRestartPolicy(f.string('restart')) : { Name: '', MaximumRetryCount: 0 },
    };
    const errs: string[] = [];
    for (const n of args) {
      try {
        const r = await ctx.client.json<{ Warnings?: string[] | null }>('POST', `/containers/${n}/update`, { body });
        for (const w of r?.Warnings ?? []) ctx.err(`${w}\n`);
        ctx.out(`${n}\n`);
      } catch (err) {
        errs.push((err as Error).message);
      }
    }
    if (errs.length) throw new StatusError(1, errs.join('\n'));
  },
};

// ---- ps -----------------------------------------------------------------------------------------

interface Port {
  IP?: string;
  PrivatePort: number;
  PublicPort?: number;
  Type: string;
}

interface ContainerSummary {
  Id: string;
  Names?: string[] | null;
  Image: string;
  ImageID?: string;
  Command: string;
  Created: number;
  Ports?: Port[] | null;
  SizeRw?: number;
  SizeRootFs?: number;
  Labels?: Record<string, string> | null;
  State: string;
  Status: string;
  Mounts?: Array<{ Name?: string; Source?: string; Type?: string }> | null;
  NetworkSettings?: { Networks?: Record<string, unknown> | null } | null;
}

function joinHostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** formatter.DisplayablePorts: consecutive ports grouped, "0.0.0.0:8080->80/tcp". */
export function displayablePorts(input: Port[]): string {
  const ports = [...input].sort((a, b) =>
    a.PrivatePort !== b.PrivatePort ? a.PrivatePort - b.PrivatePort
      : (a.IP ?? '') !== (b.IP ?? '') ? ((a.IP ?? '') < (b.IP ?? '') ? -1 : 1)
        : (a.PublicPort ?? 0) !== (b.PublicPort ?? 0) ? (a.PublicPort ?? 0) - (b.PublicPort ?? 0)
          : a.Type < b.Type ? -1 : a.Type > b.Type ? 1 : 0,
  );
  const groups = new Map<string, { first: number; last: number }>();
  const keys: string[] = [];
  const result: string[] = [];
  const hostMappings: string[] = [];
  const formGroup = (key: string, start: number, last: number) => {
    const parts = key.split('/');
    let type = parts[0]!;
    let ip = '';
    if (parts.length > 1) {
      ip = parts[0]!;
      type = parts[1]!;
    }
    let group = String(start);
    if (start !== last) group += `-${last}`;
    if (ip) group = `${ip}:${group}->${group}`;
    return `${group}/${type}`;
  };
  for (const p of ports) {
    const current = p.PrivatePort;
    let key = p.Type;
    if (p.IP) {
      if ((p.PublicPort ?? 0) !== current) {
        hostMappings.push(`${joinHostPort(p.IP, p.PublicPort ?? 0)}->${p.PrivatePort}/${p.Type}`);
        continue;
      }
      key = `${p.IP}/${p.Type}`;
    }
    const g = groups.get(key);
    if (!g) {
      groups.set(key, { first: current, last: current });
      keys.push(key);
      continue;
    }
    if (current === g.last + 1) {
      g.last = current;
      continue;
    }
    result.push(formGroup(key, g.first, g.last));
    groups.set(key, { first: current, last: current });
  }
  for (const k of keys) {
    const g = groups.get(k)!;
    result.push(formGroup(k, g.first, g.last));
  }
  return [...result, ...hostMappings].join(', ');
}

function displayImage(c: ContainerSummary, trunc: boolean): string {
  if (!c.Image) return '<no image>';
  if (!trunc) return c.Image;
  if (c.ImageID && truncateId(c.ImageID) === truncateId(c.Image)) return truncateId(c.Image);
  try {
    const r = parseReference(c.Image, { defaultTag: false });
    if (r.tag !== undefined) return familiarString({ domain: r.domain, path: r.path, tag: r.tag });
    return familiarName(r);
  } catch {
    return c.Image;
  }
}

export function containerRows(list: ContainerSummary[], opts: { trunc: boolean; now?: number }): object[] {
  return list.map((c) => {
    let names = (c.Names ?? []).map((n) => n.replace(/^\//, ''));
    if (opts.trunc) {
      const plain = names.find((n) => !n.includes('/'));
      if (plain !== undefined) names = [plain];
    }
    const labels = c.Labels ?? {};
    const srw = humanSizeWithPrecision(c.SizeRw ?? 0, 3);
    return {
      ID: opts.trunc ? truncateId(c.Id) : c.Id,
      Image: displayImage(c, opts.trunc),
      Command: JSON.stringify(opts.trunc ? ellipsis(c.Command, 20) : c.Command),
      CreatedAt: goTimeString(c.Created),
      RunningFor: timeAgo(c.Created, opts.now),
      CreatedSince: timeAgo(c.Created, opts.now),
      Ports: displayablePorts(c.Ports ?? []),
      State: c.State,
      Status: c.Status,
      Size: (c.SizeRootFs ?? 0) > 0 ? `${srw} (virtual ${humanSizeWithPrecision(c.SizeRootFs!, 3)})` : srw,
      Names: names.join(','),
      Labels: Object.keys(labels).map((k) => `${k}=${labels[k]}`).join(','),
      Label: (k: string) => labels[k] ?? '',
      Mounts: (c.Mounts ?? []).map((m) => (opts.trunc ? ellipsis(m.Name || m.Source || '', 15) : m.Name || m.Source || '')).join(','),
      LocalVolumes: String((c.Mounts ?? []).filter((m) => m.Type === 'volume').length),
      Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).sort().join(','),
    };
  });
}

const CONTAINER_HEADERS = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  CreatedSince: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Label: (k: string) => k,
  Mounts: 'MOUNTS',
  LocalVolumes: 'LOCAL VOLUMES',
  Networks: 'NETWORKS',
};

const ps: Command = {
  name: 'ls',
  aliases: ['ps', 'list'],
  usage: '[OPTIONS]',
  short: 'List containers',
  args: { max: 0 },
  flags: [
    { name: 'all', short: 'a', kind: 'bool', help: 'Show all containers (default shows just running)' },
    FILTER_FLAG,
    FORMAT_FLAG,
    { name: 'last', short: 'n', kind: 'int', default: -1, help: 'Show n last created containers (includes all states)' },
    { name: 'latest', short: 'l', kind: 'bool', help: 'Show the latest created container (includes all states)' },
    { name: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Only display container IDs' },
    { name: 'size', short: 's', kind: 'bool', help: 'Display total file sizes' },
  ],
  async run(ctx, f) {
    let limit = f.int('last');
    if (f.bool('latest')) limit = 1;
    const format = f.optString('format');
    const size = f.bool('size') || (format !== undefined && /\.Size/.test(format));
    const list = await ctx.client.json<ContainerSummary[]>('GET', '/containers/json', {
      query: {
        all: f.bool('all'),
        limit: limit > 0 ? limit : undefined,
        size,
        filters: filtersJson(f.list('filter')),
      },
    });
    let fmt = format;
    if ((fmt === undefined || fmt === 'table') && f.bool('quiet')) fmt = '{{.ID}}';
    const defaultTable = `table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}${f.bool('size') ? '\t{{.Size}}' : ''}`;
    const rows = containerRows(list ?? [], { trunc: !f.bool('no-trunc') });
    ctx.out(formatList(rows, { format: fmt === 'table' ? undefined : fmt, defaultTable, headers: CONTAINER_HEADERS }));
  },
};

// ---- logs ---------------------------------------------------------------------------------------

/** timetypes.GetTimestamp: "10m" -> now-10m, RFC 3339 -> unix, numbers as is; "sec.nanos". */
export function apiTimestamp(value: string, now = Date.now()): string {
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  let ms: number;
  try {
    ms = now - parseGoDuration(value) / 1e6;
  } catch {
    ms = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(ms)) throw new Error(`failed to parse value as time or duration: "${value}"`);
  }
  const sec = Math.floor(ms / 1000);
  const nanos = Math.round((ms - sec * 1000) * 1e6);
  return `${sec}.${String(nanos).padStart(9, '0')}`;
}

const logs: Command = {
  name: 'logs',
  usage: '[OPTIONS] CONTAINER',
  short: 'Fetch the logs of a container',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'details', kind: 'bool', help: 'Show extra details provided to logs' },
    { name: 'follow', short: 'f', kind: 'bool', help: 'Follow log output' },
    { name: 'since', kind: 'string', valueName: 'string', help: 'Show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
    { name: 'tail', short: 'n', kind: 'string', valueName: 'string', default: 'all', help: 'Number of lines to show from the end of the logs' },
    { name: 'timestamps', short: 't', kind: 'bool', help: 'Show timestamps' },
    { name: 'until', kind: 'string', valueName: 'string', help: 'Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)' },
  ],
  async run(ctx, f, [name]) {
    const c = await ctx.client.json<{ Id?: string; Config?: { Tty?: boolean } }>('GET', `/containers/${name}/json`);
    const res = await ctx.client.request('GET', `/containers/${c.Id ?? name}/logs`, {
      query: {
        stdout: true,
        stderr: true,
        since: f.string('since') ? apiTimestamp(f.string('since')) : undefined,
        until: f.string('until') ? apiTimestamp(f.string('until')) : undefined,
        timestamps: f.bool('timestamps'),
        follow: f.bool('follow'),
        tail: f.string('tail') || undefined,
        details: f.bool('details'),
      },
    });
    if (c.Config?.Tty) await pipeline(res, ctx.io.stdout, { end: false });
    else await demux(res, ctx.io);
  },
};

// ---- top / port / stats -------------------------------------------------------------------------

const top: Command = {
  name: 'top',
  usage: 'CONTAINER [ps OPTIONS]',
  short: 'Display the running processes of a container',
  args: { min: 1 },
  interspersed: false,
  async run(ctx, _f, [name, ...psArgs]) {
    const r = await ctx.client.json<{ Titles: string[]; Processes: string[][] }>('GET', `/containers/${name}/top`, {
      query: { ps_args: psArgs.length ? psArgs.join(' ') : undefined },
    });
    ctx.out(renderTable(r.Titles, r.Processes ?? [], { minWidth: 20 }));
  },
};

const port: Command = {
  name: 'port',
  usage: 'CONTAINER [PRIVATE_PORT[/PROTO]]',
  short: 'List port mappings or a specific mapping for the container',
  args: { min: 1, max: 2 },
  async run(ctx, _f, [name, want]) {
    const c = await ctx.client.json<{ NetworkSettings?: { Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> } }>('GET', `/containers/${name}/json`);
    const ports = c.NetworkSettings?.Ports ?? {};
    const fmt = (b: { HostIp: string; HostPort: string }) => joinHostPort(b.HostIp || '0.0.0.0', Number(b.HostPort));
    if (want) {
      const [p, proto = 'tcp'] = want.split('/');
      const key = `${p}/${proto}`;
      const list = ports[key];
      if (!list?.length) throw new Error(`Error: No public port '${want}' published for ${name}`);
      for (const b of list) ctx.out(fmt(b) + '\n');
      return;
    }
    const keys = Object.keys(ports).sort((a, b) => Number.parseInt(a) - Number.parseInt(b) || (a < b ? -1 : 1));
    for (const k of keys) for (const b of ports[k] ?? []) ctx.out(`${k} -> ${fmt(b)}\n`);
  },
};

interface StatsJson {
  id?: string;
  name?: string;
  read?: string;
  pids_stats?: { current?: number };
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
}

export function statsRow(id: string, name: string, s: StatsJson, trunc = true): Record<string, string> {
  const cpuDelta = (s.cpu_stats?.cpu_usage?.total_usage ?? 0) - (s.precpu_stats?.cpu_usage?.total_usage ?? 0);
  const sysDelta = (s.cpu_stats?.system_cpu_usage ?? 0) - (s.precpu_stats?.system_cpu_usage ?? 0);
  const online = s.cpu_stats?.online_cpus || s.cpu_stats?.cpu_usage?.percpu_usage?.length || 0;
  const cpu = sysDelta > 0 && cpuDelta > 0 ? (cpuDelta / sysDelta) * online * 100 : 0;
  const st = s.memory_stats?.stats ?? {};
  // Like docker: cache is not "used" (cgroup v1 total_inactive_file, v2 inactive_file).
  let mem = s.memory_stats?.usage ?? 0;
  const inactive = st.total_inactive_file ?? st.inactive_file;
  if (inactive !== undefined && inactive < mem) mem -= inactive;
  const limit = s.memory_stats?.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(s.networks ?? {})) {
    rx += n.rx_bytes ?? 0;
    tx += n.tx_bytes ?? 0;
  }
  let blkR = 0;
  let blkW = 0;
  for (const e of s.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (e.op.toLowerCase() === 'read') blkR += e.value;
    if (e.op.toLowerCase() === 'write') blkW += e.value;
  }
  return {
    ID: trunc ? truncateId(id) : id,
    Container: trunc ? truncateId(id) : id,
    Name: name.replace(/^\//, ''),
    CPUPerc: `${cpu.toFixed(2)}%`,
    MemUsage: `${bytesSize(mem)} / ${bytesSize(limit)}`,
    MemPerc: `${(limit > 0 ? (mem / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: `${humanSizeWithPrecision(rx, 3)} / ${humanSizeWithPrecision(tx, 3)}`,
    BlockIO: `${humanSizeWithPrecision(blkR, 3)} / ${humanSizeWithPrecision(blkW, 3)}`,
    PIDs: String(s.pids_stats?.current ?? 0),
  };
}

const stats: Command = {
  name: 'stats',
  usage: '[OPTIONS] [CONTAINER...]',
  short: 'Display a live stream of container(s) resource usage statistics',
  flags: [
    { name: 'all', short: 'a', kind: 'bool', help: 'Show all containers (default shows just running)' },
    FORMAT_FLAG,
    { name: 'no-stream', kind: 'bool', help: 'Disable streaming stats and only pull the first result' },
    { name: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
  ],
  async run(ctx, f, args) {
    const snapshot = async (): Promise<object[]> => {
      let targets: Array<{ id: string; name: string }>;
      if (args.length) targets = args.map((a) => ({ id: a, name: a }));
      else {
        const list = await ctx.client.json<ContainerSummary[]>('GET', '/containers/json', { query: { all: f.bool('all') } });
        targets = (list ?? []).map((c) => ({ id: c.Id, name: (c.Names ?? [])[0] ?? c.Id }));
      }
      const rows: object[] = [];
      for (const t of targets) {
        const s = await ctx.client.json<StatsJson>('GET', `/containers/${t.id}/stats`, { query: { stream: '0' } });
        rows.push(statsRow(s.id ?? t.id, s.name ?? t.name, s, !f.bool('no-trunc')));
      }
      return rows;
    };
    const spec = {
      format: f.optString('format'),
      defaultTable: 'table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}',
      headers: { ID: 'CONTAINER ID', Container: 'CONTAINER', Name: 'NAME', CPUPerc: 'CPU %', MemUsage: 'MEM USAGE / LIMIT', MemPerc: 'MEM %', NetIO: 'NET I/O', BlockIO: 'BLOCK I/O', PIDs: 'PIDS' },
    };
    if (f.bool('no-stream')) {
      ctx.out(formatList(await snapshot(), spec));
      return;
    }
    for (;;) {
      const text = formatList(await snapshot(), spec);
      ctx.out(isTerminal(ctx.io.stdout) ? `\x1b[2J\x1b[H${text}` : text);
      await new Promise((r) => setTimeout(r, 1000));
    }
  },
};

// ---- events -------------------------------------------------------------------------------------

interface EventMessage {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
  time?: number;
  /** A bigint when decoded by `events` (nanoseconds since 1970 exceed 2^53). */
  timeNano?: number | bigint;
  [k: string]: unknown;
}

function rfc3339NanoFixed(nanos: bigint): string {
  const d = new Date(Number(nanos / 1_000_000n)).toISOString().replace(/\.\d+Z$/, '');
  return `${d}.${String(nanos % 1_000_000_000n).padStart(9, '0')}Z`;
}

/** Keep timeNano exact: JSON numbers beyond 2^53 lose digits as doubles. */
const exactTimeNano = (key: string, value: unknown, context: { source?: string }): unknown =>
  key === 'timeNano' && typeof value === 'number' && context?.source ? BigInt(context.source) : value;

export function prettyEvent(e: EventMessage): string {
  let s = '';
  if (e.timeNano) s += rfc3339NanoFixed(BigInt(e.timeNano)) + ' ';
  else if (e.time) s += rfc3339NanoFixed(BigInt(e.time) * 1_000_000_000n) + ' ';
  s += `${e.Type ?? ''} ${e.Action ?? ''} ${e.Actor?.ID ?? ''}`;
  const attrs = e.Actor?.Attributes ?? {};
  const keys = Object.keys(attrs).sort();
  if (keys.length) s += ` (${keys.map((k) => `${k}=${attrs[k]}`).join(', ')})`;
  return s + '\n';
}

export const events: Command = {
  name: 'events',
  usage: '[OPTIONS]',
  short: 'Get real time events from the server',
  args: { max: 0 },
  flags: [
    FILTER_FLAG,
    { name: 'format', kind: 'string', valueName: 'string', help: 'Format output using a custom template' },
    { name: 'since', kind: 'string', valueName: 'string', help: 'Show all events created since timestamp' },
    { name: 'until', kind: 'string', valueName: 'string', help: 'Stream events until this timestamp' },
  ],
  async run(ctx, f) {
    const format = f.string('format');
    const tmpl = format ? compileTemplate(normalizeFormat(unescapeFormat(format)).template) : undefined;
    const res = await ctx.client.request('GET', '/events', {
      query: {
        since: f.string('since') ? apiTimestamp(f.string('since')) : undefined,
        until: f.string('until') ? apiTimestamp(f.string('until')) : undefined,
        filters: filtersJson(f.list('filter')),
      },
    });
    for await (const e of decodeJsonStream(res as AsyncIterable<Buffer>, exactTimeNano)) {
      ctx.out(tmpl ? tmpl.execute(e) + '\n' : prettyEvent(e as EventMessage));
    }
  },
};

// ---- export / prune / inspect -------------------------------------------------------------------

const exportCmd: Command = {
  name: 'export',
  usage: '[OPTIONS] CONTAINER',
  short: "Export a container's filesystem as a tar archive",
  args: { min: 1, max: 1 },
  flags: [{ name: 'output', short: 'o', kind: 'string', valueName: 'string', help: 'Write to a file, instead of STDOUT' }],
  async run(ctx, f, [name]) {
    const output = f.string('output');
    if (!output && isTerminal(ctx.io.stdout)) throw new Error('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    const res = await ctx.client.request('GET', `/containers/${name}/export`);
    if (output) await copyToFile(output, res);
    else await pipeline(res, ctx.io.stdout, { end: false });
  },
};

const prune = pruneCommand<{ ContainersDeleted?: string[] | null; SpaceReclaimed?: number }>({
  short: 'Remove all stopped containers',
  path: '/containers/prune',
  filterHelp: 'Provide filter values (e.g. "until=<timestamp>")',
  prompt: () => 'WARNING! This will remove all stopped containers.\nAre you sure you want to continue?',
  deleted: (r) => deletedList('Deleted Containers', r.ContainersDeleted),
  space: true,
});

const containerInspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Display detailed information on one or more containers',
  args: { min: 1 },
  flags: [
    { name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' },
    { name: 'size', short: 's', kind: 'bool', help: 'Display total file sizes' },
  ],
  async run(ctx, f, args) {
    await inspectObjects(ctx, args, f.string('format'), (n) => ctx.client.json('GET', `/containers/${n}/json`, { query: { size: f.bool('size') } }));
  },
};

const diff: Command = {
  name: 'diff',
  usage: 'CONTAINER',
  short: "Inspect changes to files or directories on a container's filesystem",
  args: { min: 1, max: 1 },
  async run(ctx, _f, [name]) {
    const changes = await ctx.client.json<Array<{ Kind: number; Path: string }> | null>('GET', `/containers/${name}/changes`);
    for (const c of changes ?? []) ctx.out(`${['C', 'A', 'D'][c.Kind] ?? '?'} ${c.Path}\n`);
  },
};

const pause = simple('pause', 'Pause all processes within one or more containers');
const unpause = simple('unpause', 'Unpause all processes within one or more containers');

const [run, create, start, attach, exec] = runCommands as [Command, Command, Command, Command, Command];

export const containerGroup: Command = {
  name: 'container',
  usage: 'COMMAND',
  short: 'Manage containers',
  sub: [attach, copyCommand, create, diff, exec, exportCmd, containerInspect, kill, logs, ps, pause, port, prune, rename, restart, rm, run, start, stats, stop, top, unpause, update, wait],
};

export const containerTopLevel: Command[] = [
  run,
  create,
  start,
  attach,
  exec,
  { ...ps, name: 'ps', aliases: [] },
  stop,
  restart,
  kill,
  pause,
  unpause,
  rm,
  logs,
  top,
  stats,
  wait,
  copyCommand,
  rename,
  update,
  exportCmd,
  events,
  port,
  diff,
];

