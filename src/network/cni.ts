// CniRunner: executes CNI plugins (CNI spec 1.0.0; Debian's containernetworking-plugins 1.1 in
// /usr/lib/cni) through the Host interface, and builds the plugin configs berth sends.
//
// The protocol, as the spec states it: the plugin binary is run with CNI_COMMAND (ADD | DEL),
// CNI_CONTAINERID, CNI_NETNS (a path to the namespace file; may be empty for DEL when the
// namespace is gone), CNI_IFNAME and CNI_PATH (where it finds delegated plugins such as the
// IPAM one) in its environment and the network config JSON on stdin. ADD prints a result JSON
// ({cniVersion, interfaces, ips, routes, dns}); a failure exits non-zero with an error JSON
// ({cniVersion, code, msg, details}) on stdout. Chained plugins (firewall after bridge) get the
// previous plugin's result as `prevResult`; DEL gets the ADD result back the same way, since the
// firewall plugin finds its rules by the addresses in it.
//
// DEL is idempotent here: a plugin asked to remove what is already gone succeeds (the spec
// asks plugins to clean up what they can and return success), and berth passes an empty
// CNI_NETNS when the namespace has vanished.
import type { Host } from '../host/host.ts';
import { BerthError, internal, type ErrorKind } from '../core/errors.ts';

export const CNI_VERSION = '1.0.0';
export const DEFAULT_CNI_PATH = '/usr/lib/cni';

export interface CniInterface {
  name: string;
  mac?: string;
  sandbox?: string;
}

export interface CniIp {
  /** "10.1.2.3/24" */
  address: string;
  gateway?: string;
  /** Index into `interfaces`. */
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  cniVersion: string;
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
}

/** A plugin's network config: `type` names the binary in CNI_PATH. */
export interface CniConfig {
  cniVersion: string;
  name: string;
  type: string;
  prevResult?: CniResult;
  [key: string]: unknown;
}

export interface CniRuntime {
  containerId: string;
  /** Namespace file; '' on DEL when it is gone. */
  netns: string;
  ifname: string;
}

/**
 * The spec's well-known error codes (1-99 reserved by the spec, 100+ plugin-specific) and the
 * kind each one maps to. Anything else is Internal.
 */
const CODE_KINDS: Record<number, ErrorKind> = {
  1: 'Internal', // incompatible CNI version
  2: 'InvalidArgument', // unsupported field in network configuration
  3: 'NotFound', // container unknown or does not exist
  4: 'InvalidArgument', // invalid necessary environment variables
  5: 'Internal', // I/O failure
  6: 'InvalidArgument', // failed to decode content
  7: 'InvalidArgument', // invalid network config
  11: 'Unavailable', // try again later
};

/** The error a plugin reported (exit status non-zero, error JSON or plain text on stdout). */
export class CniError extends BerthError {
  readonly code: number;
  readonly plugin: string;
  readonly details: string;
  constructor(plugin: string, command: string, code: number, msg: string, details: string) {
    super(CODE_KINDS[code] ?? 'Internal', `cni plugin ${plugin} ${command.toLowerCase()} failed: ${msg}${details && details !== msg ? ` (${details})` : ''}`);
    this.code = code;
    this.plugin = plugin;
    this.details = details;
  }
}

/** Turn a failed plugin run into a CniError: the error JSON if it printed one, else its text. */
export function parseCniError(plugin: string, command: string, exit: number, stdout: string, stderr: string): CniError {
  const text = stdout.trim();
  if (text.startsWith('{')) {
    try {
      const e = JSON.parse(text) as { code?: unknown; msg?: unknown; details?: unknown };
      if (typeof e.msg === 'string' || typeof e.code === 'number') {
        return new CniError(plugin, command, typeof e.code === 'number' ? e.code : 999, typeof e.msg === 'string' ? e.msg : 'unknown error', typeof e.details === 'string' ? e.details : '');
      }
    } catch {
      // Not JSON after all: report the text.
    }
  }
  return new CniError(plugin, command, 999, text || stderr.trim() || `exit ${exit}`, '');
}

/** Validate an ADD result enough for berth to rely on it. */
export function parseCniResult(plugin: string, stdout: string): CniResult {
  let r: unknown;
  try {
    r = JSON.parse(stdout);
  } catch {
    throw internal(`cni plugin ${plugin} add: result is not JSON: ${JSON.stringify(stdout.slice(0, 200))}`);
  }
  const res = r as CniResult;
  if (!res || typeof res !== 'object' || typeof res.cniVersion !== 'string') throw internal(`cni plugin ${plugin} add: result without cniVersion`);
  if (res.ips !== undefined && (!Array.isArray(res.ips) || res.ips.some((i) => typeof i?.address !== 'string'))) throw internal(`cni plugin ${plugin} add: malformed ips in result`);
  if (res.interfaces !== undefined && (!Array.isArray(res.interfaces) || res.interfaces.some((i) => typeof i?.name !== 'string'))) throw internal(`cni plugin ${plugin} add: malformed interfaces in result`);
  return res;
}

export class CniRunner {
  readonly cniPath: string;
  #host: Host;

  constructor(host: Host, cniPath = DEFAULT_CNI_PATH) {
    this.#host = host;
    this.cniPath = cniPath;
  }

  #env(command: 'ADD' | 'DEL', rt: CniRuntime): NodeJS.ProcessEnv {
    // A minimal environment: the plugins find iptables/ip6tables through PATH.
    return {
      PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
      CNI_COMMAND: command,
      CNI_CONTAINERID: rt.containerId,
      CNI_NETNS: rt.netns,
      CNI_IFNAME: rt.ifname,
      CNI_PATH: this.cniPath,
    };
  }

  #bin(conf: CniConfig): string {
    if (!/^[a-z0-9][a-z0-9_-]*$/.test(conf.type)) throw internal(`invalid cni plugin type ${JSON.stringify(conf.type)}`);
    return `${this.cniPath}/${conf.type}`;
  }

  async add(conf: CniConfig, rt: CniRuntime): Promise<CniResult> {
    const r = await this.#host.run(this.#bin(conf), [], { env: this.#env('ADD', rt), input: JSON.stringify(conf), allowFailure: true });
    if (r.code !== 0) throw parseCniError(conf.type, 'ADD', r.code, r.stdout, r.stderr);
    return parseCniResult(conf.type, r.stdout);
  }

  /** Remove what ADD made. Succeeds when it is already gone (the plugins' contract). */
  async del(conf: CniConfig, rt: CniRuntime): Promise<void> {
    const r = await this.#host.run(this.#bin(conf), [], { env: this.#env('DEL', rt), input: JSON.stringify(conf), allowFailure: true });
    if (r.code !== 0) throw parseCniError(conf.type, 'DEL', r.code, r.stdout, r.stderr);
  }
}

// ------------------------------------------------------------------ the configs berth sends

export interface BridgeAttachment {
  /** CNI network name (berth's network name). */
  network: string;
  bridge: string;
  /** "10.1.2.3/24": the address berth's own IPAM leased (berth's lease table is the truth). */
  address: string;
  gateway: string;
  mac: string;
  /** Default route via the gateway (the container's first network only). */
  defaultRoute: boolean;
  mtu?: number;
}

/**
 * The bridge plugin creates the veth inside the container's namespace with its peer already in
 * the host's (nothing is moved between namespaces), puts the host end on berth's bridge, and
 * configures the address through the `static` IPAM plugin. berth makes the bridge and its gateway
 * address itself (isGateway false: the plugin leaves them alone), and masquerades in its own
 * POSTROUTING chain (ipMasq false). hairpinMode lets a container reach its own published port
 * through a host address (berth's hairpin MASQUERADE rule sends it back out the same port).
 */
export function bridgeConfig(a: BridgeAttachment): CniConfig {
  return {
    cniVersion: CNI_VERSION,
    name: a.network,
    type: 'bridge',
    bridge: a.bridge,
    isGateway: false,
    isDefaultGateway: false,
    ipMasq: false,
    hairpinMode: true,
    ...(a.mtu ? { mtu: a.mtu } : {}),
    ipam: {
      type: 'static',
      addresses: [{ address: a.address, gateway: a.gateway }],
      routes: a.defaultRoute ? [{ dst: '0.0.0.0/0', gw: a.gateway }] : [],
    },
    runtimeConfig: { mac: a.mac },
  };
}

export function loopbackConfig(network = 'berth-loopback'): CniConfig {
  return { cniVersion: CNI_VERSION, name: network, type: 'loopback' };
}

/**
 * The firewall plugin (iptables backend) accepts the container's addresses in the shared
 * CNI-FORWARD chain: `-s <ip> -j ACCEPT` and replies to it. Chained after bridge: its
 * prevResult carries the addresses. berth keeps its own chain ahead of CNI-FORWARD in FORWARD so
 * isolation and --internal drops are decided before this accept (see netfilter.ts).
 */
export function firewallConfig(network: string, prevResult: CniResult): CniConfig {
  return { cniVersion: CNI_VERSION, name: network, type: 'firewall', backend: 'iptables', prevResult };
}

/** The result the bridge plugin returns for an attachment, for DEL when the stored one is
 *  missing (sandboxes written before berth kept results). */
export function syntheticResult(address: string, gateway: string): CniResult {
  return { cniVersion: CNI_VERSION, ips: [{ address, gateway }] };
}
