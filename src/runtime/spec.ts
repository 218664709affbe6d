// OCI runtime spec (config.json) generation from an image config plus a Docker create body, with
// Docker's secure defaults: its capability set (CapEff a80425fb) in bounding/effective/permitted
// and nothing inheritable or ambient; the default seccomp profile; masked and read-only /proc and
// /sys paths; /dev as a tmpfs with only the default devices; rlimits clamped to the host's hard
// limits. Pure: every fact about the host (limits, capabilities, resolved user and devices) comes
// in through SpecInput, so the whole thing is unit-tested without root.
import { posix } from 'node:path';
import type { ContainerConfig } from '../core/oci.ts';
import { invalidArgument } from '../core/errors.ts';
import type { CreateBody, HostConfig } from './create-config.ts';
import { strSlice } from './create-config.ts';
import { DEFAULT_CAPS, tweakCapabilities } from './capabilities.ts';
import { defaultSeccomp, seccompFromDockerProfile, goArch, type OciSeccomp } from './seccomp.ts';
import { clampRlimit, rlimitType, ulimitValue, type Rlimit } from './rlimits.ts';
import type { ResolvedUser } from './user.ts';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
/** containerd's default RLIMIT_NOFILE, before clamping to the host. */
export const DEFAULT_NOFILE = 1048576n;
/** Where --init's binary is bound in the container (Docker's path). */
export const INIT_PATH = '/sbin/docker-init';

export const MASKED_PATHS = [
  '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list',
  '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware', '/sys/devices/virtual/powercap',
];
export const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

export interface OciMount {
  destination: string;
  type?: string;
  source?: string;
  options?: string[];
}

export interface OciDevice {
  path: string;
  type: 'c' | 'b' | 'p';
  major: number;
  minor: number;
  fileMode?: number;
  uid?: number;
  gid?: number;
}

export interface OciDeviceRule {
  allow: boolean;
  type?: string;
  major?: number;
  minor?: number;
  access?: string;
}

export interface OciSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    consoleSize?: { height: number; width: number };
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: { bounding: string[]; effective: string[]; permitted: string[]; inheritable: string[]; ambient: string[] };
    rlimits: Array<{ type: string; hard: bigint; soft: bigint }>;
    noNewPrivileges: boolean;
    oomScoreAdj?: number;
  };
  root: { path: string; readonly: boolean };
  hostname?: string;
  mounts: OciMount[];
  linux: {
    namespaces: Array<{ type: string; path?: string }>;
    cgroupsPath: string;
    resources: Record<string, unknown> & { devices: OciDeviceRule[] };
    devices?: OciDevice[];
    seccomp?: OciSeccomp;
    maskedPaths?: string[];
    readonlyPaths?: string[];
  };
  annotations?: Record<string, string>;
}

/** Files berth writes in the container's directory and binds over /etc (host paths). */
export interface EtcFiles {
  hostname: string;
  hosts: string;
  resolvConf: string;
}

export interface SpecInput {
  id: string;
  rootfs: string;
  image: ContainerConfig;
  create: CreateBody;
  user: ResolvedUser;
  files: EtcFiles;
  cgroupsPath: string;
  cgroupVersion: '1' | '2';
  hostRlimits: Map<string, { soft: bigint; hard: bigint }>;
  /** The daemon's bounding set: the ceiling for --privileged and --cap-add ALL. */
  hostCaps: readonly string[];
  /** Devices from --device, already looked up on the host. */
  devices?: Array<OciDevice & { access: string }>;
  /** Host path of the init binary for --init. */
  initBinary?: string;
  arch?: string;
}

/** Docker's rules for Entrypoint and Cmd against the image's (daemon merge + getEntrypointAndArgs). */
export function processArgs(image: ContainerConfig, create: CreateBody): string[] {
  let entrypoint = strSlice(create.Entrypoint);
  let cmd = strSlice(create.Cmd);
  // `--entrypoint ''` arrives as [""]: it resets the image's entrypoint, and with it the image's Cmd.
  if (entrypoint === undefined || entrypoint === null || entrypoint.length === 0) {
    if (!cmd || cmd.length === 0) cmd = image.Cmd ?? [];
    if (entrypoint === undefined || entrypoint === null) entrypoint = image.Entrypoint ?? [];
  }
  const ep = (entrypoint ?? []).filter((s, i) => !(i === 0 && s === '' && (entrypoint ?? []).length === 1));
  const args = [...ep, ...(cmd ?? [])];
  if (args.length === 0) throw invalidArgument('No command specified');
  return args;
}

/** Image env, then the user's (-e replaces by key; a bare `KEY` removes it); PATH and HOSTNAME. */
export function processEnv(image: ContainerConfig, create: CreateBody, hostname: string, home: string): string[] {
  const env = new Map<string, string>();
  const put = (e: string) => {
    const i = e.indexOf('=');
    if (i < 0) env.delete(e);
    else env.set(e.slice(0, i), e.slice(i + 1));
  };
  put(`PATH=${DEFAULT_PATH}`);
  if (hostname) put(`HOSTNAME=${hostname}`);
  if (create.Tty) put('TERM=xterm');
  for (const e of image.Env ?? []) put(e);
  for (const e of create.Env ?? []) put(e);
  if (!env.has('HOME')) env.set('HOME', home || '/');
  return [...env].map(([k, v]) => `${k}=${v}`);
}

/** WorkingDir: absolute, never inside /proc (CVE-2024-21626 leaked fds via /proc/self/fd/N). */
export function processCwd(image: ContainerConfig, create: CreateBody): string {
  const wd = create.WorkingDir || image.WorkingDir || '/';
  if (!posix.isAbsolute(wd)) throw invalidArgument(`the working directory '${wd}' is invalid, it needs to be an absolute path`);
  const clean = posix.normalize(wd);
  if (clean === '/proc' || clean.startsWith('/proc/')) throw invalidArgument(`the working directory '${wd}' is invalid: it is inside /proc`);
  return clean;
}

export interface SecurityOpts {
  noNewPrivileges: boolean;
  /** undefined: default profile; 'unconfined'; or a Docker-format profile's JSON. */
  seccomp?: string;
}

/** `--security-opt` values; unknown labels (apparmor, label) are accepted and ignored. */
export function parseSecurityOpts(opts: readonly string[]): SecurityOpts {
  const out: SecurityOpts = { noNewPrivileges: false };
  for (const o of opts) {
    const m = /^([a-z-]+)(?:[=:](.*))?$/s.exec(o);
    if (!m) throw invalidArgument(`invalid --security-opt: ${o}`);
    const [, key, value] = m as unknown as [string, string, string | undefined];
    if (key === 'no-new-privileges') {
      if (value === undefined || value === 'true') out.noNewPrivileges = true;
      else if (value === 'false') out.noNewPrivileges = false;
      else throw invalidArgument(`invalid --security-opt 2: "${o}"`);
    } else if (key === 'seccomp') {
      if (!value) throw invalidArgument(`invalid --security-opt: ${o}`);
      out.seccomp = value;
    } else if (key === 'apparmor' || key === 'label' || key === 'systempaths' || key === 'writable-cgroups') {
      // Not enforced by berth (no AppArmor/SELinux here); accepted as Docker does on such hosts.
    } else {
      throw invalidArgument(`invalid --security-opt 1: "${o}"`);
    }
  }
  return out;
}

/** Docker's `--tmpfs /run:rw,size=64m` options: defaults noexec,nosuid,nodev unless overridden. */
export function tmpfsOptions(opts: string): string[] {
  const given = opts ? opts.split(',').filter(Boolean) : [];
  const out: string[] = [];
  const has = (a: string, b: string) => given.includes(a) || given.includes(b);
  if (!has('exec', 'noexec')) out.push('noexec');
  if (!has('suid', 'nosuid')) out.push('nosuid');
  if (!has('dev', 'nodev')) out.push('nodev');
  for (const g of given) {
    const m = /^(size)=(\d+)([kmg])?$/i.exec(g);
    if (m) {
      const mult = { k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[(m[3] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
      out.push(`size=${Number(m[2]) * mult}`);
    } else out.push(g);
  }
  return out;
}

function resources(hc: HostConfig, devices: SpecInput['devices'], privileged: boolean): OciSpec['linux']['resources'] {
  const r: OciSpec['linux']['resources'] = { devices: privileged ? [{ allow: true, access: 'rwm' }] : [{ allow: false, access: 'rwm' }] };
  if (!privileged) for (const d of devices ?? []) r.devices.push({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access });
  const mem: Record<string, number | boolean> = {};
  if (hc.Memory && hc.Memory > 0) {
    if (hc.Memory < 6 * 1024 * 1024) throw invalidArgument('Minimum memory limit allowed is 6MB');
    mem.limit = hc.Memory;
    // Docker: --memory-swap unset means swap as large as memory (total = 2x); -1 unlimited.
    if (hc.MemorySwap === undefined || hc.MemorySwap === 0) mem.swap = hc.Memory * 2;
    else mem.swap = hc.MemorySwap;
    if (hc.MemorySwap !== undefined && hc.MemorySwap > 0 && hc.MemorySwap < hc.Memory) {
      throw invalidArgument('Minimum memoryswap limit should be larger than memory limit, see usage');
    }
  } else if (hc.MemorySwap && hc.MemorySwap > 0) {
    throw invalidArgument('You should always set the Memory limit when using Memoryswap limit, see usage');
  }
  if (hc.MemoryReservation && hc.MemoryReservation > 0) {
    if (hc.Memory && hc.Memory > 0 && hc.MemoryReservation > hc.Memory) throw invalidArgument('Minimum memory limit can not be less than memory reservation limit, see usage');
    mem.reservation = hc.MemoryReservation;
  }
  if (hc.MemorySwappiness !== undefined && hc.MemorySwappiness !== null && hc.MemorySwappiness >= 0) mem.swappiness = hc.MemorySwappiness;
  if (hc.OomKillDisable) mem.disableOOMKiller = true;
  if (Object.keys(mem).length) r.memory = mem;
  const cpu: Record<string, number | string> = {};
  if (hc.NanoCpus && hc.NanoCpus > 0) {
    if (hc.CpuQuota || hc.CpuPeriod) throw invalidArgument('Conflicting options: Nano CPUs and CPU Period cannot both be set');
    cpu.period = 100000;
    cpu.quota = Math.round((hc.NanoCpus * 100000) / 1e9);
  } else {
    if (hc.CpuPeriod) cpu.period = hc.CpuPeriod;
    if (hc.CpuQuota) cpu.quota = hc.CpuQuota;
  }
  if (hc.CpuShares && hc.CpuShares > 0) cpu.shares = Math.max(2, hc.CpuShares);
  if (hc.CpusetCpus) cpu.cpus = uintList(hc.CpusetCpus, 'cpuset cpus');
  if (hc.CpusetMems) cpu.mems = uintList(hc.CpusetMems, 'cpuset mems');
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (hc.PidsLimit !== undefined && hc.PidsLimit !== null && hc.PidsLimit !== 0) r.pids = { limit: hc.PidsLimit > 0 ? hc.PidsLimit : -1 };
  if (hc.BlkioWeight) r.blockIO = { weight: hc.BlkioWeight };
  return r;
}

/** Docker's ParseUintList: "0-2,5" (ranges ascending); the spec gets it as given. */
function uintList(v: string, what: string): string {
  const ok = v.split(',').every((part) => {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    return m !== null && (m[2] === undefined || Number(m[2]) >= Number(m[1]));
  });
  if (!ok) throw invalidArgument(`Invalid value ${v} for ${what}`);
  return v;
}

function rlimits(hc: HostConfig, host: SpecInput['hostRlimits']): Rlimit[] {
  const wanted = new Map<string, Rlimit>([['RLIMIT_NOFILE', { type: 'RLIMIT_NOFILE', soft: DEFAULT_NOFILE, hard: DEFAULT_NOFILE }]]);
  for (const u of hc.Ulimits ?? []) {
    const type = rlimitType(u.Name);
    wanted.set(type, { type, soft: ulimitValue(u.Soft), hard: ulimitValue(u.Hard) });
  }
  return [...wanted.values()].map((r) => clampRlimit(r, host));
}

/** Build the spec. Throws InvalidArgument for flags Docker would reject. */
export function buildSpec(input: SpecInput): OciSpec {
  const { create, image } = input;
  const hc: HostConfig = create.HostConfig ?? {};
  const privileged = hc.Privileged === true;
  const hostNet = hc.NetworkMode === 'host';
  const hostname = hostNet ? '' : (create.Hostname || input.id.slice(0, 12));
  const sec = parseSecurityOpts(hc.SecurityOpt ?? []);

  let args = processArgs(image, create);
  const init = hc.Init === true;
  if (init) {
    if (!input.initBinary) throw invalidArgument('--init: no init binary (catatonit or tini) on this host');
    args = [INIT_PATH, '--', ...args];
  }

  const caps = privileged
    ? [...input.hostCaps]
    : tweakCapabilities(DEFAULT_CAPS, hc.CapAdd ?? [], hc.CapDrop ?? [], input.hostCaps).filter((c) => input.hostCaps.includes(c));

  const shm = hc.ShmSize && hc.ShmSize > 0 ? hc.ShmSize : DEFAULT_SHM_SIZE;
  const mounts: OciMount[] = [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', privileged ? 'rw' : 'ro'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${shm}`] },
  ];
  const userDests = new Set<string>();
  for (const [dest, opts] of Object.entries(hc.Tmpfs ?? {})) {
    if (!posix.isAbsolute(dest)) throw invalidArgument(`invalid mount path: '${dest}' mount path must be absolute`);
    mounts.push({ destination: posix.normalize(dest), type: 'tmpfs', source: 'tmpfs', options: tmpfsOptions(opts) });
    userDests.add(posix.normalize(dest));
  }
  for (const b of hc.Binds ?? []) {
    const parts = b.split(':');
    if (parts.length < 2 || parts.length > 3 || !posix.isAbsolute(parts[0]!) || !posix.isAbsolute(parts[1]!)) {
      throw invalidArgument(`invalid volume specification: '${b}'`);
    }
    const ro = (parts[2] ?? '').split(',').includes('ro');
    mounts.push({ destination: posix.normalize(parts[1]!), type: 'bind', source: parts[0]!, options: ['rbind', ro ? 'ro' : 'rw', 'rprivate'] });
    userDests.add(posix.normalize(parts[1]!));
  }
  for (const m of hc.Mounts ?? []) {
    if (!m.Target || !posix.isAbsolute(m.Target)) throw invalidArgument('invalid mount config: mount path must be absolute');
    if (m.Type === 'tmpfs') {
      const o = ['nosuid', 'nodev', 'noexec'];
      if (m.TmpfsOptions?.SizeBytes) o.push(`size=${m.TmpfsOptions.SizeBytes}`);
      if (m.TmpfsOptions?.Mode) o.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
      mounts.push({ destination: posix.normalize(m.Target), type: 'tmpfs', source: 'tmpfs', options: o });
    } else if (m.Type === 'bind' || m.Type === undefined) {
      if (!m.Source || !posix.isAbsolute(m.Source)) throw invalidArgument('invalid mount config for type "bind": invalid mount path');
      mounts.push({ destination: posix.normalize(m.Target), type: 'bind', source: m.Source, options: ['rbind', m.ReadOnly ? 'ro' : 'rw', 'rprivate'] });
    } else {
      throw invalidArgument(`mount type "${m.Type}" is not supported yet`);
    }
    userDests.add(posix.normalize(m.Target));
  }
  // /etc files written by berth, unless the user mounted over them.
  const etc: Array<[string, string]> = [['/etc/resolv.conf', input.files.resolvConf], ['/etc/hostname', input.files.hostname], ['/etc/hosts', input.files.hosts]];
  for (const [dest, src] of etc) {
    if (!userDests.has(dest)) mounts.push({ destination: dest, type: 'bind', source: src, options: ['rbind', 'rprivate'] });
  }
  if (init) mounts.push({ destination: INIT_PATH, type: 'bind', source: input.initBinary!, options: ['bind', 'ro', 'nosuid', 'nodev', 'rprivate'] });

  const namespaces: Array<{ type: string }> = [{ type: 'pid' }, { type: 'ipc' }, { type: 'mount' }];
  if (!hostNet) namespaces.push({ type: 'network' }, { type: 'uts' });
  if (input.cgroupVersion === '2') namespaces.push({ type: 'cgroup' });

  let seccomp: OciSeccomp | undefined;
  if (!privileged && sec.seccomp !== 'unconfined') {
    seccomp = sec.seccomp === undefined || sec.seccomp === 'builtin'
      ? defaultSeccomp(caps, input.arch ?? goArch())
      : seccompFromDockerProfile(sec.seccomp, caps, input.arch ?? goArch());
  }

  const spec: OciSpec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: create.Tty === true,
      user: { uid: input.user.uid, gid: input.user.gid, ...(input.user.additionalGids.length ? { additionalGids: input.user.additionalGids } : {}) },
      args,
      env: processEnv(image, create, hostname, input.user.home),
      cwd: processCwd(image, create),
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      rlimits: rlimits(hc, input.hostRlimits),
      noNewPrivileges: sec.noNewPrivileges,
      oomScoreAdj: typeof hc.OomScoreAdj === 'number' ? hc.OomScoreAdj : 0,
    },
    root: { path: input.rootfs, readonly: hc.ReadonlyRootfs === true },
    mounts,
    linux: {
      namespaces,
      cgroupsPath: input.cgroupsPath,
      resources: resources(hc, input.devices, privileged),
    },
  };
  if (hostname) spec.hostname = hostname;
  if (create.Tty && hc.ConsoleSize && hc.ConsoleSize[0] > 0 && hc.ConsoleSize[1] > 0) {
    spec.process.consoleSize = { height: hc.ConsoleSize[0], width: hc.ConsoleSize[1] };
  }
  if (!privileged) {
    spec.linux.maskedPaths = [...MASKED_PATHS];
    spec.linux.readonlyPaths = [...READONLY_PATHS];
  }
  // --device entries; with --privileged the caller passes the host's devices (Docker's behaviour).
  if (input.devices?.length) spec.linux.devices = input.devices.map(({ access: _a, ...d }) => d);
  if (seccomp) spec.linux.seccomp = seccomp;
  return spec;
}

/** Serialise with exact 64-bit integers (RLIM_INFINITY does not fit a double). */
export function specToJson(spec: OciSpec): string {
  const raw = (JSON as unknown as { rawJSON(s: string): unknown }).rawJSON;
  return JSON.stringify(spec, (_k, v: unknown) => (typeof v === 'bigint' ? raw(v.toString()) : v));
}

/** Docker's /etc/hosts for a container (no network address yet: none/default networks). */
export function hostsFile(hostname: string, extraHosts: readonly string[] = [], ip?: string): string {
  let s = '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n';
  for (const e of extraHosts) {
    const i = e.indexOf(':');
    if (i < 1) throw invalidArgument(`invalid argument "${e}" for "--add-host" flag`);
    s += `${e.slice(i + 1)}\t${e.slice(0, i)}\n`;
  }
  if (ip) s += `${ip}\t${hostname}\n`;
  return s;
}

/** The host's resolv.conf with loopback nameservers removed (unreachable from a netns), plus --dns. */
export function resolvConf(hostText: string, dns: readonly string[] = [], search: readonly string[] = [], options: readonly string[] = [], keepLoopback = false): string {
  const lines = hostText.split('\n');
  let ns = lines.filter((l) => /^\s*nameserver\s/.test(l)).map((l) => l.trim().split(/\s+/)[1]!).filter(Boolean);
  if (!keepLoopback) ns = ns.filter((n) => !n.startsWith('127.') && n !== '::1');
  if (dns.length) ns = [...dns];
  if (ns.length === 0) ns = ['8.8.8.8', '8.8.4.4'];
  let srch = lines.filter((l) => /^\s*(search|domain)\s/.test(l)).flatMap((l) => l.trim().split(/\s+/).slice(1));
  if (search.length) srch = [...search];
  let opts = lines.filter((l) => /^\s*options\s/.test(l)).flatMap((l) => l.trim().split(/\s+/).slice(1));
  if (options.length) opts = [...options];
  let out = '';
  if (srch.length) out += `search ${srch.join(' ')}\n`;
  for (const n of ns) out += `nameserver ${n}\n`;
  if (opts.length) out += `options ${opts.join(' ')}\n`;
  return out;
}
