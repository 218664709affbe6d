// The Docker API's container shapes: ContainerJSON (inspect) and the list summary, from a record.
import type { NetworkSettings } from '../core/networks.ts';
import type { MountPoint } from '../core/volumes.ts';
import type { ContainerRecord } from './container-store.ts';
import type { ContainerPaths } from './paths.ts';

/** Docker's units.HumanDuration. */
export function humanDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 1) return 'Less than a second';
  if (s === 1) return '1 second';
  if (s < 60) return `${s} seconds`;
  const m = Math.floor(s / 60);
  if (m === 1) return 'About a minute';
  if (m < 60) return `${m} minutes`;
  const h = Math.floor(ms / 3.6e6 + 0.5);
  if (h === 1) return 'About an hour';
  if (h < 48) return `${h} hours`;
  if (h < 24 * 7 * 2) return `${Math.floor(h / 24)} days`;
  if (h < 24 * 30 * 2) return `${Math.floor(h / 24 / 7)} weeks`;
  if (h < 24 * 365 * 2) return `${Math.floor(h / 24 / 30)} months`;
  return `${Math.floor(ms / 3.6e6 / 24 / 365)} years`;
}

/** `docker ps` STATUS column. */
export function statusText(rec: ContainerRecord, now = Date.now()): string {
  const st = rec.state;
  const health = st.health && st.health.Status !== 'none' ? ` (${st.health.Status === 'starting' ? 'health: starting' : st.health.Status})` : '';
  switch (st.status) {
    case 'running': return `Up ${humanDuration(now - Date.parse(st.startedAt))}${health}`;
    case 'paused': return `Up ${humanDuration(now - Date.parse(st.startedAt))} (Paused)`;
    case 'restarting': return `Restarting (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
    case 'exited': return `Exited (${st.exitCode}) ${humanDuration(now - Date.parse(st.finishedAt))} ago`;
    case 'removing': return 'Removal In Progress';
    case 'dead': return 'Dead';
    default: return 'Created';
  }
}

function emptyNetworkSettings(): NetworkSettings {
  return {
    Bridge: '', SandboxID: '', SandboxKey: '', HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0, Ports: {},
    SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
    IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '', Networks: {},
  };
}

const HOSTCONFIG_DEFAULTS = {
  Binds: null, ContainerIDFile: '', LogConfig: { Type: 'json-file', Config: {} }, NetworkMode: 'bridge', PortBindings: {},
  RestartPolicy: { Name: 'no', MaximumRetryCount: 0 }, AutoRemove: false, VolumeDriver: '', VolumesFrom: null, ConsoleSize: [0, 0],
  CapAdd: null, CapDrop: null, CgroupnsMode: 'host', Dns: [], DnsOptions: [], DnsSearch: [], ExtraHosts: null, GroupAdd: null,
  IpcMode: 'private', Cgroup: '', Links: null, OomScoreAdj: 0, PidMode: '', Privileged: false, PublishAllPorts: false,
  ReadonlyRootfs: false, SecurityOpt: null, UTSMode: '', UsernsMode: '', ShmSize: 67108864, Runtime: 'runc', Isolation: '',
  CpuShares: 0, Memory: 0, NanoCpus: 0, CgroupParent: '', BlkioWeight: 0, BlkioWeightDevice: [], BlkioDeviceReadBps: [],
  BlkioDeviceWriteBps: [], BlkioDeviceReadIOps: [], BlkioDeviceWriteIOps: [], CpuPeriod: 0, CpuQuota: 0, CpuRealtimePeriod: 0,
  CpuRealtimeRuntime: 0, CpusetCpus: '', CpusetMems: '', Devices: [], DeviceCgroupRules: null, DeviceRequests: null,
  MemoryReservation: 0, MemorySwap: 0, MemorySwappiness: null, OomKillDisable: null, PidsLimit: null, Ulimits: [],
  CpuCount: 0, CpuPercent: 0, IOMaximumIOps: 0, IOMaximumBandwidth: 0, Init: null,
  MaskedPaths: [], ReadonlyPaths: [],
};

/** none/host containers are not the network service's business; Docker still lists the mode. */
function withModeNetwork(rec: ContainerRecord, net: NetworkSettings | undefined): NetworkSettings {
  const n = net ?? emptyNetworkSettings();
  const mode = rec.hostConfig.NetworkMode;
  if ((mode === 'none' || mode === 'host') && Object.keys(n.Networks ?? {}).length === 0) {
    n.Networks = { [mode]: { IPAMConfig: null, Links: null, Aliases: null, NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, MacAddress: '', DriverOpts: null, DNSNames: null } };
  }
  return n;
}

export function inspectJson(rec: ContainerRecord, paths: ContainerPaths, opts: { network?: NetworkSettings; execIds?: string[]; size?: { rw: number; rootFs: number } } = {}): Record<string, unknown> {
  const st = rec.state;
  const running = st.status === 'running' || st.status === 'paused';
  const mounts = (rec as ContainerRecord & { mountPoints?: MountPoint[] }).mountPoints ?? [];
  return {
    Id: rec.id,
    Created: rec.created,
    Path: rec.path,
    Args: rec.args,
    State: {
      Status: st.status === 'creating' ? 'created' : st.status,
      Running: running,
      Paused: st.status === 'paused',
      Restarting: st.status === 'restarting',
      OOMKilled: st.oomKilled,
      Dead: st.status === 'dead',
      Pid: running ? st.pid : 0,
      ExitCode: st.exitCode,
      Error: st.error,
      StartedAt: st.startedAt,
      FinishedAt: st.finishedAt,
      ...(st.health ? { Health: st.health } : {}),
    },
    Image: rec.image,
    ResolvConfPath: paths.etcFile(rec.id, 'resolv.conf'),
    HostnamePath: paths.etcFile(rec.id, 'hostname'),
    HostsPath: paths.etcFile(rec.id, 'hosts'),
    LogPath: rec.logPath,
    Name: rec.name,
    RestartCount: rec.restartCount,
    Driver: 'overlay',
    Platform: 'linux',
    MountLabel: '',
    ProcessLabel: '',
    AppArmorProfile: '',
    ExecIDs: opts.execIds?.length ? opts.execIds : null,
    HostConfig: { ...HOSTCONFIG_DEFAULTS, ...rec.hostConfig },
    GraphDriver: { Name: 'overlay', Data: { MergedDir: paths.rootfs(rec.id) } },
    ...(opts.size !== undefined ? { SizeRw: opts.size.rw, SizeRootFs: opts.size.rootFs } : {}),
    Mounts: mounts,
    Config: {
      Hostname: '', Domainname: '', User: '', AttachStdin: false, AttachStdout: false, AttachStderr: false, Tty: false,
      OpenStdin: false, StdinOnce: false, Env: [], Cmd: null, Image: rec.imageRef, Volumes: null, WorkingDir: '', Entrypoint: null,
      OnBuild: null, Labels: {},
      ...rec.config,
    },
    NetworkSettings: withModeNetwork(rec, opts.network),
  };
}

export function summaryJson(rec: ContainerRecord, opts: { network?: NetworkSettings; size?: { rw: number; rootFs: number } } = {}): Record<string, unknown> {
  const net = withModeNetwork(rec, opts.network);
  const ports: Array<{ IP?: string; PrivatePort: number; PublicPort?: number; Type: string }> = [];
  for (const [k, binds] of Object.entries(net.Ports ?? {})) {
    const [p, proto = 'tcp'] = k.split('/');
    if (!binds || binds.length === 0) ports.push({ PrivatePort: Number(p), Type: proto });
    else for (const b of binds) ports.push({ IP: b.HostIp || '0.0.0.0', PrivatePort: Number(p), PublicPort: Number(b.HostPort), Type: proto });
  }
  const cmd = [rec.path, ...rec.args].map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ');
  return {
    Id: rec.id,
    Names: [rec.name],
    Image: rec.imageRef,
    ImageID: rec.image,
    Command: cmd,
    Created: Math.floor(Date.parse(rec.created) / 1000),
    Ports: ports,
    ...(opts.size !== undefined ? { SizeRw: opts.size.rw, SizeRootFs: opts.size.rootFs } : {}),
    Labels: rec.config.Labels ?? {},
    State: rec.state.status === 'creating' ? 'created' : rec.state.status,
    Status: statusText(rec),
    HostConfig: { NetworkMode: rec.hostConfig.NetworkMode ?? 'bridge' },
    NetworkSettings: { Networks: net.Networks ?? {} },
    Mounts: (rec as ContainerRecord & { mountPoints?: MountPoint[] }).mountPoints ?? [],
  };
}

/** Docker's `docker ps` filters. */
export function matchesFilters(rec: ContainerRecord, f: Map<string, string[]>, imageIdOf: (ref: string) => string | undefined): boolean {
  const any = (k: string, pred: (v: string) => boolean) => {
    const vals = f.get(k);
    return !vals || vals.length === 0 || vals.some(pred);
  };
  const labels = rec.config.Labels ?? {};
  const status = rec.state.status === 'creating' ? 'created' : rec.state.status;
  return (
    any('id', (v) => rec.id.startsWith(v)) &&
    any('name', (v) => {
      try {
        return new RegExp(v).test(rec.name.slice(1)) || rec.name === v;
      } catch {
        return rec.name.slice(1).includes(v);
      }
    }) &&
    any('status', (v) => v === status) &&
    any('exited', (v) => status === 'exited' && Number(v) === rec.state.exitCode) &&
    any('health', (v) => (rec.state.health?.Status ?? 'none') === v) &&
    any('ancestor', (v) => rec.imageRef === v || rec.image === v || rec.image.replace(/^sha256:/, '').startsWith(v.replace(/^sha256:/, '')) || imageIdOf(v) === rec.image) &&
    (f.get('label') ?? []).every((v) => {
      const i = v.indexOf('=');
      return i < 0 ? v in labels : labels[v.slice(0, i)] === v.slice(i + 1);
    })
  );
}
