// `run`/`create` flags -> the POST /containers/create body, field for field what the docker CLI
// (cli/command/container/opts.go) sends: Config + HostConfig + NetworkingConfig, with Go's
// zero values (null slices, {} maps, -1 swappiness) in Go's field order, so a daemon sees the
// same request from `berth run` as from `docker run`.
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { FlagDef, Flags } from '../flags.ts';
import { parseRamSize, parseGoDuration } from '../render/units.ts';

export const CREATE_FLAGS: FlagDef[] = [
  { name: 'add-host', kind: 'list', help: 'Add a custom host-to-IP mapping (host:ip)' },
  { name: 'annotation', kind: 'list', valueName: 'map', help: 'Add an annotation to the container (passed through to the OCI runtime)' },
  { name: 'attach', short: 'a', kind: 'list', help: 'Attach to STDIN, STDOUT or STDERR' },
  { name: 'blkio-weight', kind: 'int', valueName: 'uint16', help: 'Block IO (relative weight), between 10 and 1000, or 0 to disable' },
  { name: 'cap-add', kind: 'list', help: 'Add Linux capabilities' },
  { name: 'cap-drop', kind: 'list', help: 'Drop Linux capabilities' },
  { name: 'cgroup-parent', kind: 'string', valueName: 'string', help: 'Optional parent cgroup for the container' },
  { name: 'cgroupns', kind: 'string', valueName: 'string', help: 'Cgroup namespace to use (host|private)' },
  { name: 'cidfile', kind: 'string', valueName: 'string', help: 'Write the container ID to the file' },
  { name: 'cpu-period', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) period' },
  { name: 'cpu-quota', kind: 'int', help: 'Limit CPU CFS (Completely Fair Scheduler) quota' },
  { name: 'cpu-shares', short: 'c', kind: 'int', help: 'CPU shares (relative weight)' },
  { name: 'cpus', kind: 'string', valueName: 'decimal', help: 'Number of CPUs' },
  { name: 'cpuset-cpus', kind: 'string', valueName: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
  { name: 'cpuset-mems', kind: 'string', valueName: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
  { name: 'device', kind: 'list', help: 'Add a host device to the container' },
  { name: 'device-cgroup-rule', kind: 'list', help: 'Add a rule to the cgroup allowed devices list' },
  { name: 'dns', kind: 'list', help: 'Set custom DNS servers' },
  { name: 'dns-option', kind: 'list', help: 'Set DNS options' },
  { name: 'dns-search', kind: 'list', help: 'Set custom DNS search domains' },
  { name: 'domainname', kind: 'string', valueName: 'string', help: 'Container NIS domain name' },
  { name: 'entrypoint', kind: 'string', valueName: 'string', help: 'Overwrite the default ENTRYPOINT of the image' },
  { name: 'env', short: 'e', kind: 'list', help: 'Set environment variables' },
  { name: 'env-file', kind: 'list', help: 'Read in a file of environment variables' },
  { name: 'expose', kind: 'list', help: 'Expose a port or a range of ports' },
  { name: 'group-add', kind: 'list', help: 'Add additional groups to join' },
  { name: 'health-cmd', kind: 'string', valueName: 'string', help: 'Command to run to check health' },
  { name: 'health-interval', kind: 'string', valueName: 'duration', help: 'Time between running the check (ms|s|m|h) (default 0s)' },
  { name: 'health-retries', kind: 'int', help: 'Consecutive failures needed to report unhealthy' },
  { name: 'health-start-interval', kind: 'string', valueName: 'duration', help: 'Time between running the check during the start period (ms|s|m|h) (default 0s)' },
  { name: 'health-start-period', kind: 'string', valueName: 'duration', help: 'Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)' },
  { name: 'health-timeout', kind: 'string', valueName: 'duration', help: 'Maximum time to allow one check to run (ms|s|m|h) (default 0s)' },
  { name: 'hostname', short: 'h', kind: 'string', valueName: 'string', help: 'Container host name' },
  { name: 'init', kind: 'bool', help: 'Run an init inside the container that forwards signals and reaps processes' },
  { name: 'interactive', short: 'i', kind: 'bool', help: 'Keep STDIN open even if not attached' },
  { name: 'ip', kind: 'string', valueName: 'ip', help: 'IPv4 address (e.g., 172.30.100.104)' },
  { name: 'ip6', kind: 'string', valueName: 'ip', help: 'IPv6 address (e.g., 2001:db8::33)' },
  { name: 'ipc', kind: 'string', valueName: 'string', help: 'IPC mode to use' },
  { name: 'isolation', kind: 'string', valueName: 'string', help: 'Container isolation technology' },
  { name: 'label', short: 'l', kind: 'list', help: 'Set meta data on a container' },
  { name: 'label-file', kind: 'list', help: 'Read in a line delimited file of labels' },
  { name: 'link', kind: 'list', help: 'Add link to another container' },
  { name: 'log-driver', kind: 'string', valueName: 'string', help: 'Logging driver for the container' },
  { name: 'log-opt', kind: 'list', help: 'Log driver options' },
  { name: 'mac-address', kind: 'string', valueName: 'string', help: 'Container MAC address (e.g., 92:d0:c6:0a:29:33)' },
  { name: 'memory', short: 'm', kind: 'string', valueName: 'bytes', help: 'Memory limit' },
  { name: 'memory-reservation', kind: 'string', valueName: 'bytes', help: 'Memory soft limit' },
  { name: 'memory-swap', kind: 'string', valueName: 'bytes', help: "Swap limit equal to memory plus swap: '-1' to enable unlimited swap" },
  { name: 'memory-swappiness', kind: 'int', default: -1, help: 'Tune container memory swappiness (0 to 100)' },
  { name: 'mount', kind: 'list', valueName: 'mount', help: 'Attach a filesystem mount to the container' },
  { name: 'name', kind: 'string', valueName: 'string', help: 'Assign a name to the container' },
  { name: 'net', kind: 'list', valueName: 'network', help: 'Connect a container to a network', hidden: true },
  { name: 'net-alias', kind: 'list', help: 'Add network-scoped alias for the container', hidden: true },
  { name: 'network', kind: 'list', valueName: 'network', help: 'Connect a container to a network' },
  { name: 'network-alias', kind: 'list', help: 'Add network-scoped alias for the container' },
  { name: 'no-healthcheck', kind: 'bool', help: 'Disable any container-specified HEALTHCHECK' },
  { name: 'oom-kill-disable', kind: 'bool', help: 'Disable OOM Killer' },
  { name: 'oom-score-adj', kind: 'int', help: "Tune host's OOM preferences (-1000 to 1000)" },
  { name: 'pid', kind: 'string', valueName: 'string', help: 'PID namespace to use' },
  { name: 'pids-limit', kind: 'int', help: 'Tune container pids limit (set -1 for unlimited)' },
  { name: 'platform', kind: 'string', valueName: 'string', help: 'Set platform if server is multi-platform capable' },
  { name: 'privileged', kind: 'bool', help: 'Give extended privileges to this container' },
  { name: 'publish', short: 'p', kind: 'list', help: "Publish a container's port(s) to the host" },
  { name: 'publish-all', short: 'P', kind: 'bool', help: 'Publish all exposed ports to random ports' },
  { name: 'pull', kind: 'string', valueName: 'string', default: 'missing', help: 'Pull image before running ("always", "missing", "never")' },
  { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the pull output' },
  { name: 'read-only', kind: 'bool', help: "Mount the container's root filesystem as read only" },
  { name: 'restart', kind: 'string', valueName: 'string', default: 'no', help: 'Restart policy to apply when a container exits' },
  { name: 'rm', kind: 'bool', help: 'Automatically remove the container and its associated anonymous volumes when it exits' },
  { name: 'runtime', kind: 'string', valueName: 'string', help: 'Runtime to use for this container' },
  { name: 'security-opt', kind: 'list', help: 'Security Options' },
  { name: 'shm-size', kind: 'string', valueName: 'bytes', help: 'Size of /dev/shm' },
  { name: 'stop-signal', kind: 'string', valueName: 'string', help: 'Signal to stop the container' },
  { name: 'stop-timeout', kind: 'int', help: 'Timeout (in seconds) to stop a container' },
  { name: 'storage-opt', kind: 'list', help: 'Storage driver options for the container' },
  { name: 'sysctl', kind: 'list', valueName: 'map', help: 'Sysctl options' },
  { name: 'tmpfs', kind: 'list', help: 'Mount a tmpfs directory' },
  { name: 'tty', short: 't', kind: 'bool', help: 'Allocate a pseudo-TTY' },
  { name: 'ulimit', kind: 'list', valueName: 'ulimit', help: 'Ulimit options' },
  { name: 'user', short: 'u', kind: 'string', valueName: 'string', help: 'Username or UID (format: <name|uid>[:<group|gid>])' },
  { name: 'userns', kind: 'string', valueName: 'string', help: 'User namespace to use' },
  { name: 'uts', kind: 'string', valueName: 'string', help: 'UTS namespace to use' },
  { name: 'volume', short: 'v', kind: 'list', help: 'Bind mount a volume' },
  { name: 'volume-driver', kind: 'string', valueName: 'string', help: 'Optional volume driver for the container' },
  { name: 'volumes-from', kind: 'list', help: 'Mount volumes from the specified container(s)' },
  { name: 'workdir', short: 'w', kind: 'string', valueName: 'string', help: 'Working directory inside the container' },
];

export const RUN_ONLY_FLAGS: FlagDef[] = [
  { name: 'detach', short: 'd', kind: 'bool', help: 'Run container in background and print container ID' },
  { name: 'detach-keys', kind: 'string', valueName: 'string', help: 'Override the key sequence for detaching a container' },
  { name: 'sig-proxy', kind: 'bool', default: true, help: 'Proxy received signals to the process' },
];

export interface CreateEnv {
  /** stdout is a terminal of this size (ConsoleSize); undefined when not a terminal. */
  tty?: { rows: number; columns: number };
  cwd: string;
  env: Record<string, string | undefined>;
  readFile?: (path: string) => string;
}

export interface CreateRequest {
  query: { name?: string; platform?: string };
  body: Record<string, unknown>;
  /** For the caller (run): what to attach, whether to remove, ... */
  image: string;
  attachStdin: boolean;
  attachStdout: boolean;
  attachStderr: boolean;
  tty: boolean;
  openStdin: boolean;
  autoRemove: boolean;
  cidfile: string;
}

function bad(msg: string): Error {
  return new Error(msg);
}

// ---- small parsers (docker's opts package) ------------------------------------------------------

/** opts.ValidateEnv: "K" alone takes the client's value of K when set. */
function envValue(v: string, env: Record<string, string | undefined>): string {
  if (v.includes('=')) {
    if (v.startsWith('=')) throw bad(`invalid environment variable: ${v}`);
    return v;
  }
  const e = env[v];
  return e !== undefined ? `${v}=${e}` : v;
}

/** opts.parseKeyValueFile: comments and blank lines skipped; "K" alone looked up in env. */
function readKvFile(path: string, env: Record<string, string | undefined> | undefined, read: (p: string) => string): string[] {
  const out: string[] = [];
  const lines = read(path).split('\n');
  lines.forEach((raw, i) => {
    const line = raw.replace(/^[\s\uFEFF]+/, '').replace(/\r$/, '');
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    const key = eq === -1 ? line : line.slice(0, eq);
    if (key.length === 0) throw bad(`no variable name on line '${line}'`);
    if (/\s/.test(key)) throw bad(`variable '${key.trim()}' contains whitespaces`);
    if (eq !== -1) out.push(line);
    else if (env) {
      // A bare name takes the client's value; unset names are dropped (docker does the same).
      const v = env[line.trimEnd()];
      if (v !== undefined) out.push(`${line.trimEnd()}=${v}`);
    }
    // Label files (no env lookup): bare names are dropped, as docker does.
    void i;
  });
  return out;
}

function kvMap(list: string[]): Record<string, string> {
  const m: Record<string, string> = {};
  for (const kv of list) {
    const eq = kv.indexOf('=');
    if (eq === -1) m[kv] = '';
    else m[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return m;
}

function sortedKeys<T>(o: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}

/** opts.ParseRestartPolicy: only the syntax is checked here; the daemon judges the name. */
export function parseRestartPolicy(s: string): { Name: string; MaximumRetryCount: number } {
  if (s === '') return { Name: '', MaximumRetryCount: 0 };
  const i = s.indexOf(':');
  const name = i === -1 ? s : s.slice(0, i);
  const count = i === -1 ? '' : s.slice(i + 1);
  if (i !== -1 && name === '') throw bad('invalid restart policy format: no policy provided before colon');
  if (count !== '' && !/^[+-]?\d+$/.test(count)) throw bad('invalid restart policy format: maximum retry count must be an integer');
  return { Name: name, MaximumRetryCount: count ? Number(count) : 0 };
}

interface PortBinding {
  HostIp: string;
  HostPort: string;
}

function splitRange(s: string): [number, number] {
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw bad(`invalid containerPort: ${s}`);
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  if (b < a) throw bad(`invalid range specified for port: ${s}`);
  return [a, b];
}

/** convertToStandardNotation: "published=8080,target=80,protocol=udp" -> "8080:80/udp". */
function standardPortNotation(p: string): string {
  if (!p.includes('=')) return p;
  const params: Record<string, string> = {};
  for (const kv of p.split(',')) {
    const eq = kv.indexOf('=');
    if (eq === -1) throw bad(`invalid publish opts format (should be name=value but got '${kv}')`);
    params[kv.slice(0, eq).toLowerCase()] = kv.slice(eq + 1);
  }
  if (!params.target) throw bad('missing required field: target');
  return `${params.published ?? ''}:${params.target}/${params.protocol ?? 'tcp'}`;
}

/** nat.ParsePortSpecs: exposed ports and bindings from -p specs. */
export function parsePortSpecs(specs: string[]): { exposed: Record<string, object>; bindings: Record<string, PortBinding[]> } {
  const exposed: Record<string, object> = {};
  const bindings: Record<string, PortBinding[]> = {};
  for (const raw of specs) {
    let spec = standardPortNotation(raw);
    let proto = 'tcp';
    const slash = spec.lastIndexOf('/');
    if (slash !== -1) {
      proto = spec.slice(slash + 1).toLowerCase();
      spec = spec.slice(0, slash);
      if (!['tcp', 'udp', 'sctp'].includes(proto)) throw bad(`invalid proto: ${proto}`);
    }
    let ip = '';
    let hostPort = '';
    let containerPort: string;
    // [ip]:hostPort:containerPort with IPv6 in brackets.
    const v6 = /^\[([^\]]+)\]:(.*)$/.exec(spec);
    let rest = spec;
    if (v6) {
      ip = v6[1]!;
      rest = v6[2]!;
      const parts = rest.split(':');
      if (parts.length !== 2) throw bad(`invalid port format: ${raw}`);
      [hostPort, containerPort] = parts as [string, string];
    } else {
      const parts = rest.split(':');
      if (parts.length === 1) containerPort = parts[0]!;
      else if (parts.length === 2) [hostPort, containerPort] = parts as [string, string];
      else if (parts.length === 3) [ip, hostPort, containerPort] = parts as [string, string, string];
      else {
        // IPv6 without brackets: the last two are ports.
        containerPort = parts.pop()!;
        hostPort = parts.pop()!;
        ip = parts.join(':');
      }
    }
    if (containerPort === '') throw bad(`no port specified: ${raw}<empty>`);
    const [cs, ce] = splitRange(containerPort);
    let hs = 0;
    let he = 0;
    if (hostPort !== '') [hs, he] = splitRange(hostPort);
    if (hostPort !== '' && he - hs !== ce - cs && ce !== cs) throw bad(`invalid ranges specified for container and host Ports: ${containerPort} and ${hostPort}`);
    for (let i = 0; i <= ce - cs; i++) {
      const port = `${cs + i}/${proto}`;
      let hp = hostPort;
      if (hostPort !== '' && ce - cs === he - hs) hp = String(hs + i);
      exposed[port] = {};
      bindings[port] = [...(bindings[port] ?? []), { HostIp: ip, HostPort: hp }];
    }
  }
  return { exposed, bindings };
}

/** --expose 3000, 3000-3001, 53/udp */
function exposePorts(list: string[], into: Record<string, object>): void {
  for (const e of list) {
    let [port, proto = 'tcp'] = e.split('/') as [string, string | undefined];
    proto = proto.toLowerCase();
    const [a, b] = splitRange(port);
    for (let p = a; p <= b; p++) into[`${p}/${proto}`] = {};
  }
}

/** --ulimit nofile=1024:2048 */
function parseUlimit(s: string): { Name: string; Hard: number; Soft: number } {
  const eq = s.indexOf('=');
  if (eq === -1) throw bad(`invalid ulimit argument: ${s}`);
  const name = s.slice(0, eq);
  const [soft, hard] = s.slice(eq + 1).split(':') as [string, string | undefined];
  if (!/^-?\d+$/.test(soft) || (hard !== undefined && !/^-?\d+$/.test(hard))) throw bad(`invalid ulimit argument: ${s}`);
  return { Name: name, Hard: Number(hard ?? soft), Soft: Number(soft) };
}

/** --device /dev/sda[:/dev/xvda[:rwm]] */
function parseDevice(s: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = s.split(':');
  let perms = 'rwm';
  let src = parts[0]!;
  let dst = src;
  if (parts.length === 3) {
    dst = parts[1]!;
    perms = parts[2]!;
  } else if (parts.length === 2) {
    if (/^[rwm]+$/.test(parts[1]!)) perms = parts[1]!;
    else dst = parts[1]!;
  } else if (parts.length > 3) throw bad(`invalid device specification: ${s}`);
  if (!/^[rwm]{1,3}$/.test(perms)) throw bad(`invalid device mode: ${perms}`);
  if (!dst.startsWith('/')) throw bad(`invalid device specification: ${s}`);
  src = src || dst;
  return { PathOnHost: src, PathInContainer: dst, CgroupPermissions: perms };
}

/** Capabilities as docker 28 sends them: "net_admin" -> "CAP_NET_ADMIN", "ALL" kept. */
function normalizeCaps(list: string[]): string[] | null {
  if (list.length === 0) return null;
  const out: string[] = [];
  for (const c of list) {
    const u = c.toUpperCase();
    const n = u === 'ALL' ? 'ALL' : u.startsWith('CAP_') ? u : `CAP_${u}`;
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

/** --mount CSV: type=bind,src=/a,dst=/b,readonly */
export function parseMount(s: string, cwd: string): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  let type = 'volume';
  let source: string | undefined;
  let target: string | undefined;
  let readOnly = false;
  const bind: Record<string, unknown> = {};
  const vol: Record<string, unknown> = {};
  const volLabels: Record<string, string> = {};
  const volDriverOpts: Record<string, string> = {};
  let volDriver: string | undefined;
  const tmpfs: Record<string, unknown> = {};
  let consistency: string | undefined;
  for (const field of s.split(',')) {
    const eq = field.indexOf('=');
    const key = (eq === -1 ? field : field.slice(0, eq)).toLowerCase().trim();
    const val = eq === -1 ? undefined : field.slice(eq + 1);
    const boolVal = () => {
      if (val === undefined) return true;
      if (['1', 'true', 'TRUE', 'True', 't'].includes(val)) return true;
      if (['0', 'false', 'FALSE', 'False', 'f'].includes(val)) return false;
      throw bad(`invalid value for ${key}: ${val}`);
    };
    if (val === undefined && !['readonly', 'ro', 'volume-nocopy', 'bind-nonrecursive'].includes(key)) {
      throw bad(`invalid field '${field}' must be a key=value pair`);
    }
    switch (key) {
      case 'type': type = val!.toLowerCase(); break;
      case 'source': case 'src': source = val; break;
      case 'target': case 'dst': case 'destination': target = val; break;
      case 'readonly': case 'ro': readOnly = boolVal(); break;
      case 'consistency': consistency = val; break;
      case 'bind-propagation': bind.Propagation = val; break;
      case 'bind-nonrecursive': bind.NonRecursive = boolVal(); break;
      case 'volume-nocopy': vol.NoCopy = boolVal(); break;
      case 'volume-subpath': vol.Subpath = val; break;
      case 'volume-label': { const [k, v = ''] = val!.split('='); volLabels[k!] = v; break; }
      case 'volume-driver': volDriver = val; break;
      case 'volume-opt': { const i = val!.indexOf('='); volDriverOpts[i === -1 ? val! : val!.slice(0, i)] = i === -1 ? '' : val!.slice(i + 1); break; }
      case 'tmpfs-size': tmpfs.SizeBytes = parseRamSize(val!); break;
      case 'tmpfs-mode': tmpfs.Mode = Number.parseInt(val!, 8); break;
      default: throw bad(`unexpected key '${key}' in '${field}'`);
    }
  }
  if (!target) throw bad('target is required');
  if (type === 'bind' && source && !source.startsWith('/')) source = resolvePath(cwd, source);
  m.Type = type;
  if (source) m.Source = source;
  m.Target = target;
  if (readOnly) m.ReadOnly = true;
  if (consistency) m.Consistency = consistency;
  if (type === 'bind' && Object.keys(bind).length) m.BindOptions = bind;
  const volHas = Object.keys(vol).length > 0 || Object.keys(volLabels).length > 0 || volDriver !== undefined || Object.keys(volDriverOpts).length > 0;
  if (type === 'volume' && volHas) {
    const vo: Record<string, unknown> = {};
    if (vol.NoCopy) vo.NoCopy = true;
    if (Object.keys(volLabels).length) vo.Labels = volLabels;
    if (vol.Subpath) vo.Subpath = vol.Subpath;
    const dc: Record<string, unknown> = {};
    if (volDriver) dc.Name = volDriver;
    if (Object.keys(volDriverOpts).length) dc.Options = volDriverOpts;
    vo.DriverConfig = dc;
    m.VolumeOptions = vo;
  }
  if (type === 'tmpfs' && Object.keys(tmpfs).length) m.TmpfsOptions = tmpfs;
  return m;
}

/** parseSecurityOpts: seccomp=<file> is sent as the file's compact JSON. */
function parseSecurityOpts(list: string[], read: (p: string) => string): string[] {
  return list.map((opt) => {
    let sep = opt.indexOf('=');
    if (sep === -1 && opt !== 'no-new-privileges') sep = opt.indexOf(':');
    const k = sep === -1 ? opt : opt.slice(0, sep);
    const v = sep === -1 ? '' : opt.slice(sep + 1);
    if (v === '' && k !== 'no-new-privileges') throw bad(`Invalid --security-opt: ${JSON.stringify(opt)}`);
    if (k === 'seccomp' && v !== 'unconfined' && v !== 'builtin') {
      let text: string;
      try {
        text = read(v);
      } catch (err) {
        throw bad(`opening seccomp profile (${v}) failed: ${(err as Error).message}`);
      }
      try {
        return `seccomp=${JSON.stringify(JSON.parse(text))}`;
      } catch (err) {
        throw bad(`compacting json for seccomp profile (${v}) failed: ${(err as Error).message}`);
      }
    }
    return opt;
  });
}

function durationNs(f: Flags, name: string): number {
  const s = f.string(name);
  if (!s) return 0;
  try {
    return parseGoDuration(s);
  } catch (err) {
    throw bad(`invalid argument "${s}" for "--${name}" flag: ${(err as Error).message}`);
  }
}

function bytesFlag(f: Flags, name: string): number {
  const s = f.string(name);
  if (!s) return 0;
  if (s === '-1') return -1;
  try {
    return parseRamSize(s);
  } catch (err) {
    throw bad(`invalid argument "${s}" for "--${name}" flag: ${(err as Error).message}`);
  }
}

function nanoCpus(s: string): number {
  if (!s) return 0;
  if (!/^\d*\.?\d+$/.test(s)) throw bad(`invalid argument "${s}" for "--cpus" flag: failed to parse ${s} as a rational number`);
  return Math.round(Number(s) * 1e9);
}

/** An EndpointSettings as the docker CLI sends it with nothing set (run --network, network connect). */
export const EMPTY_ENDPOINT = () => ({
  IPAMConfig: null as unknown,
  Links: null as unknown,
  Aliases: null as unknown,
  MacAddress: '',
  DriverOpts: null,
  GwPriority: 0,
  NetworkID: '',
  EndpointID: '',
  Gateway: '',
  IPAddress: '',
  IPPrefixLen: 0,
  IPv6Gateway: '',
  GlobalIPv6Address: '',
  GlobalIPv6PrefixLen: 0,
  DNSNames: null,
});

function isUserDefinedNetwork(n: string): boolean {
  return !['default', 'bridge', 'host', 'none'].includes(n) && !n.startsWith('container:');
}

/** The create request for `run`/`create` flags and [IMAGE, COMMAND...] arguments. */
export function buildCreateRequest(f: Flags, args: string[], cenv: CreateEnv, opts: { detach?: boolean } = {}): CreateRequest {
  const read = cenv.readFile ?? ((p: string) => readFileSync(resolvePath(cenv.cwd, p), 'utf8'));
  const [image, ...cmd] = args;
  if (!image) throw bad('image is required');

  // attach
  const attach = f.list('attach').map((a) => a.toLowerCase());
  for (const a of attach) if (!['stdin', 'stdout', 'stderr'].includes(a)) throw bad(`invalid argument "${a}" for "-a, --attach" flag: valid streams are STDIN, STDOUT and STDERR`);
  let attachStdin = attach.includes('stdin');
  let attachStdout = attach.includes('stdout');
  let attachStderr = attach.includes('stderr');
  const openStdin = f.bool('interactive');
  if (openStdin) attachStdin = true;
  if (attach.length === 0) {
    attachStdout = true;
    attachStderr = true;
  }
  const tty = f.bool('tty');
  if (opts.detach) {
    if (attach.length > 0) throw bad('conflicting options: cannot specify both --attach and --detach');
    attachStdin = attachStdout = attachStderr = false;
  }

  // volumes and binds
  const volumes: Record<string, object> = {};
  const binds: string[] = [];
  for (const v of f.list('volume')) {
    const parts = v.split(':');
    if (parts.length === 1 || (parts.length === 2 && /^(ro|rw|z|Z|.*,.*)$/.test(parts[1]!) && !parts[1]!.startsWith('/'))) {
      if (!parts[0]!.startsWith('/')) throw bad(`invalid volume specification: '${v}': invalid mount config for type "volume": invalid mount path: '${parts[0]}' mount path must be absolute`);
      volumes[parts[0]!] = {};
      continue;
    }
    let host = parts[0]!;
    if (!host.startsWith('/') && host.startsWith('.')) host = resolvePath(cenv.cwd, host);
    if (!parts[1]!.startsWith('/')) throw bad(`invalid volume specification: '${v}': invalid mount config for type "bind": invalid mount path: '${parts[1]}' mount path must be absolute`);
    binds.push([host, ...parts.slice(1)].join(':'));
  }

  const tmpfs: Record<string, string> = {};
  for (const t of f.list('tmpfs')) {
    const i = t.indexOf(':');
    tmpfs[i === -1 ? t : t.slice(0, i)] = i === -1 ? '' : t.slice(i + 1);
  }

  let entrypoint: string[] | null = null;
  if (f.string('entrypoint') !== '') entrypoint = [f.string('entrypoint')];
  else if (f.changed('entrypoint')) entrypoint = [''];

  const { exposed, bindings } = parsePortSpecs(f.list('publish'));
  exposePorts(f.list('expose'), exposed);

  const devices = f.list('device').map(parseDevice);

  const envList = [
    ...f.list('env-file').flatMap((p) => readKvFile(p, cenv.env, read)),
    ...f.list('env').map((e) => envValue(e, cenv.env)),
  ];
  const labels = kvMap([...f.list('label-file').flatMap((p) => readKvFile(p, undefined, read)), ...f.list('label')]);

  const restartPolicy = parseRestartPolicy(f.string('restart'));
  const logOpts = kvMap(f.list('log-opt'));
  let securityOpt: string[] | null = parseSecurityOpts(f.list('security-opt'), read);
  let maskedPaths: string[] | null = null;
  let readonlyPaths: string[] | null = null;
  if (securityOpt.includes('systempaths=unconfined')) {
    securityOpt = securityOpt.filter((o) => o !== 'systempaths=unconfined');
    maskedPaths = [];
    readonlyPaths = [];
  }
  if (securityOpt.length === 0 && f.list('security-opt').length === 0) securityOpt = null;

  // healthcheck
  let healthcheck: Record<string, unknown> | undefined;
  const hInterval = durationNs(f, 'health-interval');
  const hTimeout = durationNs(f, 'health-timeout');
  const hStart = durationNs(f, 'health-start-period');
  const hStartInterval = durationNs(f, 'health-start-interval');
  const hRetries = f.int('health-retries');
  const haveHealth = f.string('health-cmd') !== '' || hInterval !== 0 || hTimeout !== 0 || hStart !== 0 || hRetries !== 0 || hStartInterval !== 0;
  if (f.bool('no-healthcheck')) {
    if (haveHealth) throw bad('--no-healthcheck conflicts with --health-* options');
    healthcheck = { Test: ['NONE'] };
  } else if (haveHealth) {
    if (hInterval < 0) throw bad('--health-interval cannot be negative');
    if (hTimeout < 0) throw bad('--health-timeout cannot be negative');
    if (hRetries < 0) throw bad('--health-retries cannot be negative');
    if (hStart < 0) throw bad('--health-start-period cannot be negative');
    healthcheck = {};
    if (f.string('health-cmd')) healthcheck.Test = ['CMD-SHELL', f.string('health-cmd')];
    if (hInterval) healthcheck.Interval = hInterval;
    if (hTimeout) healthcheck.Timeout = hTimeout;
    if (hStart) healthcheck.StartPeriod = hStart;
    if (hStartInterval) healthcheck.StartInterval = hStartInterval;
    if (hRetries) healthcheck.Retries = hRetries;
  }

  const mounts = f.list('mount').map((m) => parseMount(m, cenv.cwd));
  const sysctls = kvMap(f.list('sysctl'));
  const annotations = kvMap(f.list('annotation'));
  const storageOpt = kvMap(f.list('storage-opt'));

  const extraHosts = f.list('add-host').map((h) => {
    // host=ip is accepted and sent as host:ip.
    const eq = h.indexOf('=');
    const colon = h.indexOf(':');
    const sep = eq !== -1 && (colon === -1 || eq < colon) ? eq : colon;
    if (sep <= 0) throw bad(`bad format for add-host: "${h}"`);
    return `${h.slice(0, sep)}:${h.slice(sep + 1)}`;
  });

  // networks
  const networks = [...f.list('network'), ...f.list('net')];
  const aliases = [...f.list('network-alias'), ...f.list('net-alias')];
  const links = f.list('link');
  const endpoint = () => {
    const ep = EMPTY_ENDPOINT();
    if (links.length) ep.Links = links;
    if (aliases.length) ep.Aliases = aliases;
    const ipam: Record<string, string> = {};
    if (f.string('ip')) ipam.IPv4Address = f.string('ip');
    if (f.string('ip6')) ipam.IPv6Address = f.string('ip6');
    if (Object.keys(ipam).length) ep.IPAMConfig = ipam;
    if (f.string('mac-address')) ep.MacAddress = f.string('mac-address');
    return ep;
  };
  const endpoints: Record<string, unknown> = {};
  if (networks.length === 0) {
    if (aliases.length) throw bad('network-scoped aliases are only supported for user-defined networks');
    endpoints.default = endpoint();
  } else {
    const seen = new Set<string>();
    let userDefined = false;
    let builtin = false;
    networks.forEach((n, i) => {
      if (seen.has(n)) throw bad(`network "${n}" is specified multiple times`);
      seen.add(n);
      if (isUserDefinedNetwork(n)) userDefined = true;
      else builtin = true;
      if (i === 0) {
        if (aliases.length && !isUserDefinedNetwork(n)) throw bad('network-scoped aliases are only supported for user-defined networks');
        const ep = endpoint();
        const isEmpty = JSON.stringify(ep) === JSON.stringify(EMPTY_ENDPOINT());
        if (networks.length === 1 && isEmpty) return;
        endpoints[n] = ep;
      } else {
        endpoints[n] = EMPTY_ENDPOINT();
      }
    });
    if (userDefined && builtin) throw bad('conflicting options: cannot attach both user-defined and non-user-defined network-modes');
  }

  const autoRemove = f.bool('rm');
  if (autoRemove && restartPolicy.Name !== '' && restartPolicy.Name !== 'no') throw bad('conflicting options: cannot specify both --restart and --rm');

  const config: Record<string, unknown> = {
    Hostname: f.string('hostname'),
    Domainname: f.string('domainname'),
    User: f.string('user'),
    AttachStdin: attachStdin,
    AttachStdout: attachStdout,
    AttachStderr: attachStderr,
  };
  if (Object.keys(exposed).length) config.ExposedPorts = sortedKeys(exposed);
  Object.assign(config, {
    Tty: tty,
    OpenStdin: openStdin,
    StdinOnce: openStdin && attachStdin,
    Env: envList.length ? envList : null,
    Cmd: cmd.length ? cmd : null,
  });
  if (healthcheck) config.Healthcheck = healthcheck;
  Object.assign(config, {
    Image: image,
    Volumes: volumes,
    WorkingDir: f.string('workdir'),
    Entrypoint: entrypoint,
  });
  if (f.string('mac-address') && networks.length === 0) config.MacAddress = f.string('mac-address');
  Object.assign(config, { OnBuild: null, Labels: labels });
  if (f.string('stop-signal')) config.StopSignal = f.string('stop-signal');
  if (f.changed('stop-timeout')) config.StopTimeout = f.int('stop-timeout');

  const hostConfig: Record<string, unknown> = {
    Binds: binds.length ? binds : null,
    ContainerIDFile: f.string('cidfile'),
    LogConfig: { Type: f.string('log-driver'), Config: logOpts },
    NetworkMode: networks[0] ?? 'default',
    PortBindings: sortedKeys(bindings),
    RestartPolicy: restartPolicy,
    AutoRemove: autoRemove,
    VolumeDriver: f.string('volume-driver'),
    VolumesFrom: f.list('volumes-from').length ? f.list('volumes-from') : null,
    ConsoleSize: cenv.tty ? [cenv.tty.rows, cenv.tty.columns] : [0, 0],
  };
  if (Object.keys(annotations).length) hostConfig.Annotations = annotations;
  Object.assign(hostConfig, {
    CapAdd: normalizeCaps(f.list('cap-add')),
    CapDrop: normalizeCaps(f.list('cap-drop')),
    CgroupnsMode: f.string('cgroupns'),
    Dns: f.list('dns'),
    DnsOptions: f.list('dns-option'),
    DnsSearch: f.list('dns-search'),
    ExtraHosts: extraHosts.length ? extraHosts : null,
    GroupAdd: f.list('group-add').length ? f.list('group-add') : null,
    IpcMode: f.string('ipc'),
    Cgroup: '',
    Links: links.length ? links : null,
    OomScoreAdj: f.int('oom-score-adj'),
    PidMode: f.string('pid'),
    Privileged: f.bool('privileged'),
    PublishAllPorts: f.bool('publish-all'),
    ReadonlyRootfs: f.bool('read-only'),
    SecurityOpt: securityOpt,
  });
  if (Object.keys(storageOpt).length) hostConfig.StorageOpt = storageOpt;
  if (Object.keys(tmpfs).length) hostConfig.Tmpfs = tmpfs;
  Object.assign(hostConfig, {
    UTSMode: f.string('uts'),
    UsernsMode: f.string('userns'),
    ShmSize: bytesFlag(f, 'shm-size'),
  });
  if (Object.keys(sysctls).length) hostConfig.Sysctls = sysctls;
  if (f.string('runtime')) hostConfig.Runtime = f.string('runtime');
  Object.assign(hostConfig, {
    Isolation: f.string('isolation'),
    CpuShares: f.int('cpu-shares'),
    Memory: bytesFlag(f, 'memory'),
    NanoCpus: nanoCpus(f.string('cpus')),
    CgroupParent: f.string('cgroup-parent'),
    BlkioWeight: f.int('blkio-weight'),
    BlkioWeightDevice: [],
    BlkioDeviceReadBps: [],
    BlkioDeviceWriteBps: [],
    BlkioDeviceReadIOps: [],
    BlkioDeviceWriteIOps: [],
    CpuPeriod: f.int('cpu-period'),
    CpuQuota: f.int('cpu-quota'),
    CpuRealtimePeriod: 0,
    CpuRealtimeRuntime: 0,
    CpusetCpus: f.string('cpuset-cpus'),
    CpusetMems: f.string('cpuset-mems'),
    Devices: devices,
    DeviceCgroupRules: f.list('device-cgroup-rule').length ? f.list('device-cgroup-rule') : null,
    DeviceRequests: null,
    MemoryReservation: bytesFlag(f, 'memory-reservation'),
    MemorySwap: bytesFlag(f, 'memory-swap'),
    MemorySwappiness: f.int('memory-swappiness'),
    OomKillDisable: f.bool('oom-kill-disable'),
    PidsLimit: f.int('pids-limit'),
    Ulimits: f.list('ulimit').map(parseUlimit),
    CpuCount: 0,
    CpuPercent: 0,
    IOMaximumIOps: 0,
    IOMaximumBandwidth: 0,
  });
  if (mounts.length) hostConfig.Mounts = mounts;
  hostConfig.MaskedPaths = maskedPaths;
  hostConfig.ReadonlyPaths = readonlyPaths;
  if (f.changed('init')) hostConfig.Init = f.bool('init');

  const query: CreateRequest['query'] = {};
  if (f.string('name')) query.name = f.string('name');
  if (f.string('platform')) query.platform = f.string('platform');
  return {
    query,
    body: { ...config, HostConfig: hostConfig, NetworkingConfig: { EndpointsConfig: endpoints } },
    image,
    attachStdin,
    attachStdout,
    attachStderr,
    tty,
    openStdin,
    autoRemove,
    cidfile: f.string('cidfile'),
  };
}
