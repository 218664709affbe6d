// `network` and `volume` groups: create, ls, rm, inspect, prune, connect, disconnect, with the
// request bodies and tables of the docker CLI.
import { StatusError, type Command, type Ctx } from '../command.ts';
import { formatList } from '../render/list.ts';
import { truncateId } from '../render/table.ts';
import { humanSize, goTimeString } from '../render/units.ts';
import { FILTER_FLAG, FORMAT_FLAG, filtersJson, deletedList, pruneCommand } from './util.ts';
import { inspectObjects } from './inspect.ts';
import { EMPTY_ENDPOINT } from './container-opts.ts';

function kvMap(list: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    m[i === -1 ? kv : kv.slice(0, i)] = i === -1 ? '' : kv.slice(i + 1);
  }
  return m;
}

/** sortorder.NaturalLess, as docker sorts networks and volumes by name. */
function naturalCompare(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true, sensitivity: 'variant' });
}

async function removeEach(ctx: Ctx, names: string[], path: (n: string) => string, query?: Record<string, boolean>): Promise<void> {
  const errs: string[] = [];
  for (const n of names) {
    try {
      await ctx.client.call('DELETE', path(n), { query });
      ctx.out(`${n}\n`);
    } catch (err) {
      errs.push((err as Error).message);
    }
  }
  if (errs.length) throw new StatusError(1, errs.join('\n'));
}

// ---- network ------------------------------------------------------------------------------------

function ipv4ToInt(ip: string): number | undefined {
  const p = ip.split('.');
  if (p.length !== 4 || p.some((x) => !/^\d+$/.test(x) || Number(x) > 255)) return undefined;
  return p.reduce((a, x) => a * 256 + Number(x), 0);
}

/** Whether an address (or a CIDR range) lies inside an IPv4 subnet; IPv6 by family only. */
function within(subnet: string, addr: string): boolean {
  const [net, bitsS] = subnet.split('/');
  const [a] = addr.split('/');
  const n = ipv4ToInt(net!);
  const x = ipv4ToInt(a!);
  if (n === undefined || x === undefined) return net!.includes(':') && a!.includes(':');
  const bits = Number(bitsS ?? 32);
  const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
  return ((n & mask) >>> 0) === ((x & mask) >>> 0);
}

/** consolidateIpam: each gateway, range and aux address joins the subnet that contains it. */
export function ipamConfig(subnets: string[], ranges: string[], gateways: string[], aux: Record<string, string>): Array<Record<string, unknown>> {
  const configs = subnets.map((s) => ({ Subnet: s }) as Record<string, unknown>);
  const place = (what: string, value: string, key: string) => {
    const c = configs.find((x) => within(x.Subnet as string, value));
    if (!c) throw new Error(`no matching subnet for ${what} ${value}`);
    if (key === 'AuxiliaryAddresses') return c;
    if (c[key] !== undefined) throw new Error(`cannot configure multiple ${what}s for the same subnet`);
    c[key] = value;
    return c;
  };
  for (const r of ranges) place('range', r, 'IPRange');
  for (const g of gateways) place('gateway', g, 'Gateway');
  for (const [k, v] of Object.entries(aux)) {
    const c = place('aux-address', v, 'AuxiliaryAddresses');
    c.AuxiliaryAddresses = { ...(c.AuxiliaryAddresses as Record<string, string> | undefined), [k]: v };
  }
  // Go field order: Subnet, IPRange, Gateway, AuxiliaryAddresses.
  return configs.map((c) => {
    const o: Record<string, unknown> = { Subnet: c.Subnet };
    for (const k of ['IPRange', 'Gateway', 'AuxiliaryAddresses']) if (c[k] !== undefined) o[k] = c[k];
    return o;
  });
}

const networkCreate: Command = {
  name: 'create',
  usage: '[OPTIONS] NETWORK',
  short: 'Create a network',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'attachable', kind: 'bool', help: 'Enable manual container attachment' },
    { name: 'aux-address', kind: 'list', valueName: 'map', help: 'Auxiliary IPv4 or IPv6 addresses used by Network driver' },
    { name: 'config-from', kind: 'string', valueName: 'string', help: 'The network from which to copy the configuration' },
    { name: 'config-only', kind: 'bool', help: 'Create a configuration only network' },
    { name: 'driver', short: 'd', kind: 'string', valueName: 'string', default: 'bridge', help: 'Driver to manage the Network' },
    { name: 'gateway', kind: 'list', valueName: 'strings', help: 'IPv4 or IPv6 Gateway for the master subnet' },
    { name: 'ingress', kind: 'bool', help: 'Create swarm routing-mesh network' },
    { name: 'internal', kind: 'bool', help: 'Restrict external access to the network' },
    { name: 'ip-range', kind: 'list', valueName: 'strings', help: 'Allocate container ip from a sub-range' },
    { name: 'ipam-driver', kind: 'string', valueName: 'string', default: 'default', help: 'IP Address Management Driver' },
    { name: 'ipam-opt', kind: 'list', valueName: 'map', help: 'Set IPAM driver specific options' },
    { name: 'ipv4', kind: 'bool', default: true, help: 'Enable or disable IPv4 address assignment' },
    { name: 'ipv6', kind: 'bool', help: 'Enable or disable IPv6 address assignment' },
    { name: 'label', kind: 'list', help: 'Set metadata on a network' },
    { name: 'opt', short: 'o', kind: 'list', valueName: 'map', help: 'Set driver specific options' },
    { name: 'scope', kind: 'string', valueName: 'string', help: "Control the network's scope" },
    { name: 'subnet', kind: 'list', valueName: 'strings', help: 'Subnet in CIDR format that represents a network segment' },
  ],
  async run(ctx, f, [name]) {
    const body: Record<string, unknown> = { Driver: f.string('driver'), Scope: f.string('scope') };
    if (f.changed('ipv4')) body.EnableIPv4 = f.bool('ipv4');
    if (f.changed('ipv6')) body.EnableIPv6 = f.bool('ipv6');
    body.IPAM = {
      Driver: f.string('ipam-driver'),
      Options: kvMap(f.list('ipam-opt')),
      Config: ipamConfig(f.list('subnet'), f.list('ip-range'), f.list('gateway'), kvMap(f.list('aux-address'))),
    };
    Object.assign(body, {
      Internal: f.bool('internal'),
      Attachable: f.bool('attachable'),
      Ingress: f.bool('ingress'),
      ConfigOnly: f.bool('config-only'),
      ConfigFrom: f.string('config-from') ? { Network: f.string('config-from') } : null,
      Options: kvMap(f.list('opt')),
      Labels: kvMap(f.list('label')),
      Name: name,
    });
    const r = await ctx.client.json<{ Id: string; Warning?: string }>('POST', '/networks/create', { body });
    if (r.Warning) ctx.err(`${r.Warning}\n`);
    ctx.out(`${r.Id}\n`);
  },
};

interface NetworkSummary {
  Id: string;
  Name: string;
  Driver: string;
  Scope: string;
  EnableIPv6?: boolean;
  Internal?: boolean;
  Labels?: Record<string, string> | null;
  Created?: string;
}

const networkLs: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS]',
  short: 'List networks',
  args: { max: 0 },
  flags: [
    FILTER_FLAG,
    FORMAT_FLAG,
    { name: 'no-trunc', kind: 'bool', help: 'Do not truncate the output' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Only display network IDs' },
  ],
  async run(ctx, f) {
    const list = (await ctx.client.json<NetworkSummary[]>('GET', '/networks', { query: { filters: filtersJson(f.list('filter')) } })) ?? [];
    list.sort((a, b) => naturalCompare(a.Name, b.Name));
    const trunc = !f.bool('no-trunc');
    const rows = list.map((n) => {
      const labels = n.Labels ?? {};
      return {
        ID: trunc ? truncateId(n.Id) : n.Id,
        Name: n.Name,
        Driver: n.Driver,
        Scope: n.Scope,
        IPv6: String(n.EnableIPv6 ?? false),
        Internal: String(n.Internal ?? false),
        Labels: Object.keys(labels).map((k) => `${k}=${labels[k]}`).join(','),
        Label: (k: string) => labels[k] ?? '',
        CreatedAt: n.Created ? goTimeString(n.Created) : '',
      };
    });
    let fmt = f.optString('format');
    if ((fmt === undefined || fmt === 'table') && f.bool('quiet')) fmt = '{{.ID}}';
    ctx.out(
      formatList(rows, {
        format: fmt === 'table' ? undefined : fmt,
        defaultTable: 'table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}',
        headers: { ID: 'NETWORK ID', Name: 'NAME', Driver: 'DRIVER', Scope: 'SCOPE', IPv6: 'IPV6', Internal: 'INTERNAL', Labels: 'LABELS', Label: (k: string) => k, CreatedAt: 'CREATED AT' },
      }),
    );
  },
};

const networkRm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: 'NETWORK [NETWORK...]',
  short: 'Remove one or more networks',
  args: { min: 1 },
  flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'Do not error if the network does not exist' }],
  async run(ctx, f, args) {
    if (!f.bool('force')) return removeEach(ctx, args, (n) => `/networks/${n}`);
    for (const n of args) {
      try {
        await ctx.client.call('DELETE', `/networks/${n}`);
        ctx.out(`${n}\n`);
      } catch (err) {
        if (!/not found|no such network/i.test((err as Error).message)) throw err;
      }
    }
  },
};

const networkInspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] NETWORK [NETWORK...]',
  short: 'Display detailed information on one or more networks',
  args: { min: 1 },
  flags: [
    { name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' },
    { name: 'verbose', short: 'v', kind: 'bool', help: 'Verbose output for diagnostics' },
  ],
  async run(ctx, f, args) {
    await inspectObjects(ctx, args, f.string('format'), (n) => ctx.client.json('GET', `/networks/${n}`, { query: { verbose: f.bool('verbose') ? 'true' : undefined } }));
  },
};

const networkConnect: Command = {
  name: 'connect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  short: 'Connect a container to a network',
  args: { min: 2, max: 2 },
  flags: [
    { name: 'alias', kind: 'list', valueName: 'strings', help: 'Add network-scoped alias for the container' },
    { name: 'driver-opt', kind: 'list', valueName: 'strings', help: 'driver options for the network' },
    { name: 'gw-priority', kind: 'int', help: 'Highest gw-priority provides the default gateway' },
    { name: 'ip', kind: 'string', valueName: 'string', help: 'IPv4 address (e.g., "172.30.100.104")' },
    { name: 'ip6', kind: 'string', valueName: 'string', help: 'IPv6 address (e.g., "2001:db8::33")' },
    { name: 'link', kind: 'list', help: 'Add link to another container' },
    { name: 'link-local-ip', kind: 'list', valueName: 'strings', help: 'Add a link-local address for the container' },
  ],
  async run(ctx, f, [network, container]) {
    const ipam: Record<string, unknown> = {};
    if (f.string('ip')) ipam.IPv4Address = f.string('ip');
    if (f.string('ip6')) ipam.IPv6Address = f.string('ip6');
    if (f.list('link-local-ip').length) ipam.LinkLocalIPs = f.list('link-local-ip');
    const endpoint = {
      ...EMPTY_ENDPOINT(),
      IPAMConfig: ipam,
      Links: f.list('link').length ? f.list('link') : null,
      Aliases: f.list('alias'),
      DriverOpts: kvMap(f.list('driver-opt')),
      GwPriority: f.int('gw-priority'),
    };
    await ctx.client.call('POST', `/networks/${network}/connect`, { body: { Container: container, EndpointConfig: endpoint } });
  },
};

const networkDisconnect: Command = {
  name: 'disconnect',
  usage: '[OPTIONS] NETWORK CONTAINER',
  short: 'Disconnect a container from a network',
  args: { min: 2, max: 2 },
  flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'Force the container to disconnect from a network' }],
  async run(ctx, f, [network, container]) {
    await ctx.client.call('POST', `/networks/${network}/disconnect`, { body: { Container: container, Force: f.bool('force') } });
  },
};

const networkPrune = pruneCommand<{ NetworksDeleted?: string[] | null; SpaceReclaimed?: number }>({
  short: 'Remove all unused networks',
  path: '/networks/prune',
  filterHelp: 'Provide filter values (e.g. "until=<timestamp>")',
  prompt: () => 'WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?',
  deleted: (r) => deletedList('Deleted Networks', r.NetworksDeleted),
  space: false,
});

export const networkGroup: Command = {
  name: 'network',
  usage: 'COMMAND',
  short: 'Manage networks',
  sub: [networkConnect, networkCreate, networkDisconnect, networkInspect, networkLs, networkPrune, networkRm],
};

// ---- volume -------------------------------------------------------------------------------------

interface VolumeSummary {
  Name: string;
  Driver: string;
  Mountpoint?: string;
  Scope?: string;
  Labels?: Record<string, string> | null;
  CreatedAt?: string;
  UsageData?: { Size?: number; RefCount?: number } | null;
}

const volumeCreate: Command = {
  name: 'create',
  usage: '[OPTIONS] [VOLUME]',
  short: 'Create a volume',
  args: { max: 1 },
  flags: [
    { name: 'driver', short: 'd', kind: 'string', valueName: 'string', default: 'local', help: 'Specify volume driver name' },
    { name: 'label', kind: 'list', help: 'Set metadata for a volume' },
    { name: 'name', kind: 'string', valueName: 'string', help: 'Specify volume name', hidden: true },
    { name: 'opt', short: 'o', kind: 'list', valueName: 'map', help: 'Set driver specific options' },
  ],
  async run(ctx, f, args) {
    if (args[0] && f.string('name') && args[0] !== f.string('name')) throw new Error('conflicting options: cannot specify a volume-name through both --name and as a positional arg');
    const name = args[0] ?? f.string('name');
    const body: Record<string, unknown> = { Driver: f.string('driver') };
    if (f.list('opt').length) body.DriverOpts = kvMap(f.list('opt'));
    if (f.list('label').length) body.Labels = kvMap(f.list('label'));
    if (name) body.Name = name;
    const r = await ctx.client.json<{ Name: string }>('POST', '/volumes/create', { body });
    ctx.out(`${r.Name}\n`);
  },
};

const volumeLs: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS]',
  short: 'List volumes',
  args: { max: 0 },
  flags: [FILTER_FLAG, FORMAT_FLAG, { name: 'quiet', short: 'q', kind: 'bool', help: 'Only display volume names' }],
  async run(ctx, f) {
    const r = await ctx.client.json<{ Volumes?: VolumeSummary[] | null; Warnings?: string[] | null }>('GET', '/volumes', { query: { filters: filtersJson(f.list('filter')) } });
    const list = [...(r?.Volumes ?? [])].sort((a, b) => naturalCompare(a.Name, b.Name));
    const rows = list.map((v) => {
      const labels = v.Labels ?? {};
      return {
        Name: v.Name,
        Driver: v.Driver,
        Scope: v.Scope ?? '',
        Mountpoint: v.Mountpoint ?? '',
        Labels: Object.keys(labels).map((k) => `${k}=${labels[k]}`).join(','),
        Label: (k: string) => labels[k] ?? '',
        Links: v.UsageData?.RefCount === undefined || v.UsageData.RefCount < 0 ? 'N/A' : String(v.UsageData.RefCount),
        Size: v.UsageData?.Size === undefined || v.UsageData.Size < 0 ? 'N/A' : humanSize(v.UsageData.Size),
        CreatedAt: v.CreatedAt ?? '',
      };
    });
    let fmt = f.optString('format');
    if ((fmt === undefined || fmt === 'table') && f.bool('quiet')) fmt = '{{.Name}}';
    ctx.out(
      formatList(rows, {
        format: fmt === 'table' ? undefined : fmt,
        defaultTable: 'table {{.Driver}}\t{{.Name}}',
        headers: { Name: 'VOLUME NAME', Driver: 'DRIVER', Scope: 'SCOPE', Mountpoint: 'MOUNTPOINT', Labels: 'LABELS', Label: (k: string) => k, Links: 'LINKS', Size: 'SIZE', CreatedAt: 'CREATED AT' },
      }),
    );
    for (const w of r?.Warnings ?? []) ctx.err(`${w}\n`);
  },
};

const volumeRm: Command = {
  name: 'rm',
  aliases: ['remove'],
  usage: '[OPTIONS] VOLUME [VOLUME...]',
  short: 'Remove one or more volumes',
  args: { min: 1 },
  flags: [{ name: 'force', short: 'f', kind: 'bool', help: 'Force the removal of one or more volumes' }],
  async run(ctx, f, args) {
    await removeEach(ctx, args, (n) => `/volumes/${n}`, { force: f.bool('force') });
  },
};

const volumeInspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] VOLUME [VOLUME...]',
  short: 'Display detailed information on one or more volumes',
  args: { min: 1 },
  flags: [{ name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' }],
  async run(ctx, f, args) {
    await inspectObjects(ctx, args, f.string('format'), (n) => ctx.client.json('GET', `/volumes/${n}`));
  },
};

const volumePrune = pruneCommand<{ VolumesDeleted?: string[] | null; SpaceReclaimed?: number }>({
  short: 'Remove unused local volumes',
  path: '/volumes/prune',
  allHelp: 'Remove all unused volumes, not just anonymous ones',
  filterHelp: 'Provide filter values (e.g. "label=<label>")',
  prompt: (all) => all
    ? 'WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?'
    : 'WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?',
  filters: (all) => (all ? [['all', 'true']] : []),
  deleted: (r) => deletedList('Deleted Volumes', r.VolumesDeleted),
  space: true,
});

export const volumeGroup: Command = {
  name: 'volume',
  usage: 'COMMAND',
  short: 'Manage volumes',
  sub: [volumeCreate, volumeInspect, volumeLs, volumePrune, volumeRm],
};
