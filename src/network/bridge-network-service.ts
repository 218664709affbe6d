// berth's NetworkService: Linux bridge networks with berth's own IPAM, the CNI plugins for each
// container's interfaces, berth's iptables rules, embedded DNS and a userland proxy for published
// ports. See src/core/networks.ts for the contract and the container lifecycle.
//
// Per container (bridge mode): berth leases the addresses (its lease table is the source of
// truth), makes the namespace (`unshare`), then runs the CNI plugins (src/network/cni.ts):
// `loopback` for lo and `bridge` (static IPAM with berth's address, berth's MAC) for each
// network concurrently, each bridge attachment followed by `firewall` with its result as
// prevResult. Teardown runs DEL in reverse (firewall, bridge; loopback) with the stored results,
// then unmounts the namespace, all off the `run --rm` path. Bridges, isolation, --internal,
// published ports and masquerade stay berth's own (link-ops.ts, netfilter.ts).
//
// Consistency: network records are in <dataRoot> (written atomically before the bridge is made;
// a bridge whose record is gone is never created). IP leases are the sandboxes in <execRoot>
// (tmpfs: a reboot frees them with the namespaces). At start the service re-reads both, drops
// sandboxes whose namespace is gone (after the plugins' DEL, with an empty CNI_NETNS, for what
// they made outside it), re-creates bridges, rules, DNS servers and proxies, and re-runs the
// firewall plugin's ADD for live sandboxes (idempotent; also after a firewall reload).
import { readdir, readFile, rm, mkdir, copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type {
  ContainerLookup, EndpointInfo, EndpointSettings, NetworkCreateRequest, NetworkResource, NetworkService,
  NetworkSettings, PortMap, Sandbox, SandboxRequest,
} from '../core/networks.ts';
import { alreadyExists, failedPrecondition, forbidden, invalidArgument, internal, notFound, errorMessage, isKind } from '../core/errors.ts';
import type { Host } from '../host/host.ts';
import { writeJsonAtomic } from '../pkg/atomic-file.ts';
import { writeFile, rename } from 'node:fs/promises';
import type { Logger } from '../pkg/log.ts';
import { NetworkPaths } from './network-paths.ts';
import { LinkOps, isMountpoint } from './link-ops.ts';
import { Netfilter, CNI_FORWARD, type FilterPort } from './netfilter.ts';
import { CniRunner, bridgeConfig, firewallConfig, loopbackConfig, syntheticResult, type CniResult } from './cni.ts';
import { DnsServer } from './dns-server.ts';
import { PortProxy } from './port-proxy.ts';
import {
  allocate, contains, formatCidr, formatIp, macForIp, overlaps, parseCidr, parseIp, isIpv4, firstHost, broadcast, type Subnet,
} from './ipv4.ts';
import { formatResolvConf, hostResolvConf, hostsFile, parseExtraHost, writeInPlace, type ResolvConf } from './etc-files.ts';
import { KeyedQueue } from '../pkg/keyed-queue.ts';

export interface NetworkRecord {
  id: string;
  name: string;
  driver: 'bridge' | 'host' | 'null';
  bridge?: string;
  subnet?: string;
  gateway?: string;
  ipRange?: string;
  internal: boolean;
  attachable: boolean;
  labels: Record<string, string>;
  options: Record<string, string>;
  created: string;
  /** The predefined networks (bridge, host, none) cannot be removed. */
  predefined?: boolean;
}

interface EndpointRecord {
  networkId: string;
  endpointId: string;
  ip: string;
  prefixLen: number;
  gateway: string;
  mac: string;
  aliases: string[];
  /** Host end of the veth, as the bridge plugin named it. */
  hostVeth: string;
  ifname: string;
  /** The bridge plugin's ADD result: prevResult of the firewall plugin, and of both DELs. */
  cni?: CniResult;
}

interface PublishedPort {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerPort: number;
  containerIp: string;
  bridge: string;
  /** A HostPort range ("8000-8010") not yet bound: the first free port in it is taken. */
  range?: [number, number];
}

interface SandboxRecord {
  containerId: string;
  name: string;
  hostname: string;
  mode: 'bridge' | 'none' | 'host' | 'container';
  netnsPath?: string;
  filesDir: string;
  endpoints: EndpointRecord[];
  ports: PublishedPort[];
  /** Exposed but unpublished ports, for NetworkSettings.Ports (null values). */
  exposed: string[];
  dns: string[];
  dnsSearch: string[];
  dnsOptions: string[];
  extraHosts: string[];
}

/** What connect/disconnect changed about a container's networks; persisted. */
interface ContainerNetConfig {
  mode: string;
  endpoints: Record<string, { aliases: string[]; ipv4?: string }>;
  /** connect/disconnect before the container's first start (compose creates, then connects
   *  with aliases): changes RELATIVE to its create body, merged in at the first setUp. */
  relative?: boolean;
  removed?: string[];
}

export interface BridgeNetworkServiceOptions {
  host: Host;
  dataRoot: string;
  execRoot: string;
  log: Logger;
  /** Default bridge device and its gateway/prefix (Docker's --bridge and --bip). */
  bridgeName?: string;
  bridgeCidr?: string;
  /** Prefix of berth's iptables chains. */
  chainPrefix?: string;
  /** Upstream resolvers for the embedded DNS (default: the host's real resolvers). */
  upstreams?: string[];
  /** DNS port on the gateway (53; tests of the server alone use others). */
  dnsPort?: number;
  /** How often to check that berth's iptables rules survived a firewall reload (ms; 0: never). */
  ruleCheckMs?: number;
  /** Run the embedded DNS servers (default true; unit tests with a FakeHost have no bridge). */
  embeddedDns?: boolean;
  /** Remove bridges and chains on close when no sandbox is live (test daemons). */
  cleanupOnClose?: boolean;
  /** Test daemons: a file listing what this service made on the host (bridges, chain prefix,
   *  data root), so a later test daemon can sweep what a killed one left (sweepOrphans). */
  ownerFile?: string;
  /** Where the CNI plugins are (CNI_PATH). */
  cniPath?: string;
}

interface OwnerRecord {
  dataRoot: string;
  chainPrefix: string;
  bridges: string[];
  /** Subnets of its networks: CNI-FORWARD rules for addresses in them are its containers'. */
  subnets?: string[];
}

/** Remove bridges and chains of test daemons whose data root is gone (killed, never cleaned). */
export async function sweepOrphans(host: Host, dir: string): Promise<string[]> {
  const swept: string[] = [];
  let files: string[];
  try {
    files = await readdir(dir);
  } catch {
    return swept;
  }
  for (const f of files) {
    if (!f.endsWith('.json')) continue;
    const p = join(dir, f);
    let rec: OwnerRecord;
    try {
      rec = JSON.parse(await readFile(p, 'utf8')) as OwnerRecord;
    } catch {
      continue;
    }
    if (existsSync(rec.dataRoot)) continue;
    // The CNI rules first, while the dead daemon's bridges still hold its subnets: once a bridge
    // is gone its subnet is free, and another daemon's containers may get addresses in it.
    // Subnets some other device routes already are someone else's now: their rules are left.
    const routes = (await host.run('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { allowFailure: true })).stdout;
    const ours = (rec.subnets ?? []).filter((sub) => !routedElsewhere(routes, sub, rec.bridges));
    await removeCniRules(host, ours.map((sub) => parseCidr(sub, true)));
    await new Netfilter(host, rec.chainPrefix).removeAll();
    const links = new LinkOps(host);
    for (const b of rec.bridges) await links.deleteLink(b);
    await rm(p, { force: true });
    swept.push(...rec.bridges);
  }
  return swept;
}

/** Whether `ip -o -4 route` output routes `subnet` through a device not in `devices`. */
export function routedElsewhere(routes: string, subnet: string, devices: readonly string[]): boolean {
  const net = parseCidr(subnet, true);
  for (const line of routes.split('\n')) {
    const m = /^(?:\S+\s+)?(\d+\.\d+\.\d+\.\d+\/\d+)\s.*\bdev\s+(\S+)/.exec(line);
    if (!m) continue;
    let routed;
    try {
      routed = parseCidr(m[1]!, true);
    } catch {
      continue;
    }
    if (overlaps(routed, net) && !devices.includes(m[2]!)) return true;
  }
  return false;
}

/** Delete the firewall plugin's CNI-FORWARD rules for addresses in `subnets` (what a killed
 *  daemon's containers left; a live daemon removes them with the plugin's DEL). */
async function removeCniRules(host: Host, subnets: Subnet[]): Promise<void> {
  if (!subnets.length) return;
  const r = await host.run('iptables', ['-w', '-t', 'filter', '-S', CNI_FORWARD], { allowFailure: true });
  for (const line of r.stdout.split('\n')) {
    const m = /^-A \S+ (?:-s|-d) (\d+\.\d+\.\d+\.\d+)\/32 /.exec(line);
    if (!m || !subnets.some((s) => contains(s, parseIp(m[1]!)))) continue;
    await host.run('iptables', ['-w', '-t', 'filter', '-D', ...splitRule(line.slice(3))], { allowFailure: true });
  }
}

/** `iptables -S` output back into arguments (quoted comments kept whole). */
function splitRule(rule: string): string[] {
  return [...rule.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const DEFAULT_NAMES = new Set(['bridge', 'host', 'none']);

export class BridgeNetworkService implements NetworkService {
  #o: Required<Pick<BridgeNetworkServiceOptions, 'bridgeName' | 'bridgeCidr' | 'chainPrefix'>> & BridgeNetworkServiceOptions;
  #paths: NetworkPaths;
  #links: LinkOps;
  #netfilter: Netfilter;
  #cni: CniRunner;
  #networks = new Map<string, NetworkRecord>();
  #sandboxes = new Map<string, SandboxRecord>();
  #configs = new Map<string, ContainerNetConfig>();
  /** Leased addresses per network (from the sandboxes), plus the last one handed out. */
  #leases = new Map<string, Set<number>>();
  #lastLease = new Map<string, number>();
  #dns = new Map<string, DnsServer>();
  #proxies = new Map<string, PortProxy[]>();
  #lookup?: ContainerLookup;
  #hostRc: ResolvConf = { nameservers: [], search: [], options: [] };
  /** Per-container operations are serialised (setUp vs tearDown vs connect). */
  readonly #locks = new KeyedQueue();

  constructor(opts: BridgeNetworkServiceOptions) {
    this.#o = { bridgeName: 'berth0', bridgeCidr: '172.17.0.1/16', chainPrefix: 'BERTH', ...opts };
    this.#paths = new NetworkPaths(opts.dataRoot, opts.execRoot);
    this.#links = new LinkOps(opts.host);
    this.#netfilter = new Netfilter(opts.host, this.#o.chainPrefix);
    this.#cni = new CniRunner(opts.host, opts.cniPath);
  }

  get paths(): NetworkPaths {
    return this.#paths;
  }

  useContainers(lookup: ContainerLookup): void {
    this.#lookup = lookup;
  }

  // ------------------------------------------------------------------ start / stop

  async start(): Promise<void> {
    await mkdir(this.#paths.containersDir, { recursive: true, mode: 0o700 });
    await mkdir(this.#paths.sandboxesDir, { recursive: true, mode: 0o700 });
    this.#hostRc = await hostResolvConf();
    for (const f of await readdir(this.#paths.networksDir)) {
      if (!f.endsWith('.json')) continue;
      const rec = JSON.parse(await readFile(join(this.#paths.networksDir, f), 'utf8')) as NetworkRecord;
      this.#networks.set(rec.id, rec);
    }
    for (const f of await readdir(this.#paths.containersDir)) {
      if (!f.endsWith('.json')) continue;
      this.#configs.set(f.slice(0, -5), JSON.parse(await readFile(join(this.#paths.containersDir, f), 'utf8')) as ContainerNetConfig);
    }
    await this.#ensurePredefined();
    await this.#sysctl('net.ipv4.ip_forward', '1');
    await this.#writeOwner();
    for (const n of this.#networks.values()) if (n.driver === 'bridge') await this.#links.ensureBridge(n.bridge!, `${n.gateway}/${parseCidr(n.subnet!).prefix}`);
    for (const f of await readdir(this.#paths.sandboxesDir)) {
      if (!f.endsWith('.json')) continue;
      const sb = JSON.parse(await readFile(join(this.#paths.sandboxesDir, f), 'utf8')) as SandboxRecord;
      if (sb.mode !== 'host' && sb.mode !== 'container' && (!sb.netnsPath || !(await isMountpoint(sb.netnsPath)))) {
        // The namespace is gone (reboot, crash between steps): the lease is free, and what the
        // plugins made outside it (firewall rules) is removed by their DEL.
        if (sb.mode === 'bridge') await this.#unplumb(sb);
        await rm(join(this.#paths.sandboxesDir, f), { force: true });
        continue;
      }
      this.#sandboxes.set(sb.containerId, sb);
      for (const ep of sb.endpoints) this.#leaseSet(ep.networkId).add(parseIp(ep.ip));
    }
    await this.#applyRules();
    await this.#restoreCniRules();
    for (const n of this.#networks.values()) await this.#startDns(n);
    const every = this.#o.ruleCheckMs ?? 30_000;
    if (every > 0) {
      this.#ruleTimer = setInterval(() => void this.#checkRules(), every);
      this.#ruleTimer.unref();
    }
    for (const sb of this.#sandboxes.values()) {
      try {
        await this.#startProxies(sb);
      } catch (err) {
        this.#o.log.warn({ container: sb.containerId, err: errorMessage(err) }, 'cannot restore published ports');
      }
    }
  }

  #ruleTimer?: NodeJS.Timeout;

  /** Re-apply the whole ruleset when a firewall reload removed it. */
  async #checkRules(): Promise<void> {
    try {
      if (await this.#netfilter.intact()) return;
      this.#o.log.warn({ chains: this.#o.chainPrefix }, 'iptables rules were removed (firewall reload?); restoring them');
      await this.#applyRules();
      await this.#restoreCniRules();
    } catch (err) {
      this.#o.log.error({ err: errorMessage(err) }, 'cannot restore iptables rules');
    }
  }

  /** For tests: run the firewall check now. Returns whether rules had to be restored. */
  async checkRulesNow(): Promise<boolean> {
    const ok = await this.#netfilter.intact();
    if (!ok) {
      await this.#applyRules();
      await this.#restoreCniRules();
    }
    return !ok;
  }

  /** Re-run the firewall plugin's ADD for every live endpoint (idempotent: it appends only what
   *  is missing), after a restart or a firewall reload. */
  async #restoreCniRules(): Promise<void> {
    await Promise.all([...this.#sandboxes.values()].flatMap((sb) => (sb.mode === 'bridge' ? sb.endpoints : []).map(async (ep) => {
      try {
        await this.#cni.add(firewallConfig(this.#cniName(ep), this.#resultOf(ep)), { containerId: sb.containerId, netns: sb.netnsPath!, ifname: ep.ifname });
      } catch (err) {
        this.#o.log.warn({ container: sb.containerId, err: errorMessage(err) }, 'cannot restore firewall plugin rules');
      }
    })));
  }

  async close(): Promise<void> {
    clearInterval(this.#ruleTimer);
    await this.settle();
    await this.#locks.idleAll();
    for (const d of this.#dns.values()) await d.stop();
    this.#dns.clear();
    for (const ps of this.#proxies.values()) for (const p of ps) await p.stop();
    this.#proxies.clear();
    if (this.#o.cleanupOnClose && this.#sandboxes.size === 0) await this.destroyAll();
  }

  /** Remove every bridge and rule this service made (test cleanup; records stay on disk). */
  async destroyAll(): Promise<void> {
    for (const n of this.#networks.values()) if (n.driver === 'bridge') await this.#links.deleteLink(n.bridge!);
    await this.#netfilter.removeAll();
    if (this.#o.ownerFile) await rm(this.#o.ownerFile, { force: true });
  }

  async #ensurePredefined(): Promise<void> {
    const have = new Set([...this.#networks.values()].filter((n) => n.predefined).map((n) => n.name));
    const now = new Date().toISOString();
    const gw = parseCidr(this.#o.bridgeCidr, true);
    const gwIp = parseIp(this.#o.bridgeCidr.split('/')[0]!);
    const defs: Array<Omit<NetworkRecord, 'id' | 'created'>> = [
      {
        name: 'bridge', driver: 'bridge', bridge: this.#o.bridgeName, subnet: formatCidr(gw),
        gateway: formatIp(gwIp === gw.network ? firstHost(gw) : gwIp), internal: false, attachable: false, labels: {},
        options: {
          'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.enable_icc': 'true',
          'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
          'com.docker.network.bridge.name': this.#o.bridgeName, 'com.docker.network.driver.mtu': '1500',
        },
        predefined: true,
      },
      { name: 'host', driver: 'host', internal: false, attachable: false, labels: {}, options: {}, predefined: true },
      { name: 'none', driver: 'null', internal: false, attachable: false, labels: {}, options: {}, predefined: true },
    ];
    for (const d of defs) {
      const existing = [...this.#networks.values()].find((n) => n.predefined && n.name === d.name);
      if (existing && d.name === 'bridge' && (existing.bridge !== d.bridge || existing.subnet !== d.subnet || existing.gateway !== d.gateway)) {
        // --bridge/--bip changed between runs: follow the flags (live leases stay in the old range).
        Object.assign(existing, { bridge: d.bridge, subnet: d.subnet, gateway: d.gateway, options: d.options });
        await writeJsonAtomic(this.#paths.network(existing.id), existing);
      }
      if (have.has(d.name)) continue;
      const rec: NetworkRecord = { ...d, id: randomBytes(32).toString('hex'), created: now };
      await writeJsonAtomic(this.#paths.network(rec.id), rec);
      this.#networks.set(rec.id, rec);
    }
  }

  async #sysctl(key: string, value: string): Promise<void> {
    const p = `/proc/sys/${key.replace(/\./g, '/')}`;
    try {
      if ((await readFile(p, 'utf8')).trim() === value) return;
      await writeInPlace(p, value);
    } catch (err) {
      this.#o.log.warn({ key, err: errorMessage(err) }, 'cannot set sysctl');
    }
  }

  // ------------------------------------------------------------------ networks

  #find(ref: string): NetworkRecord {
    if (ref === 'default') ref = 'bridge';
    for (const n of this.#networks.values()) if (n.name === ref) return n;
    for (const n of this.#networks.values()) if (n.id === ref) return n;
    const byPrefix = ref.length > 0 ? [...this.#networks.values()].filter((n) => n.id.startsWith(ref)) : [];
    if (byPrefix.length === 1) return byPrefix[0]!;
    if (byPrefix.length > 1) throw invalidArgument(`network ${ref} is ambiguous (${byPrefix.length} matches found based on ID prefix)`);
    throw notFound(`network ${ref} not found`);
  }

  async #hostRoutes(): Promise<Subnet[]> {
    const r = await this.#o.host.run('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { allowFailure: true });
    const out: Subnet[] = [];
    for (const line of r.stdout.split('\n')) {
      const dst = line.split(' ')[0] ?? '';
      if (line.includes(' table local ')) continue;
      if (/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(dst)) out.push(parseCidr(dst, true));
    }
    return out;
  }

  async #pickSubnet(): Promise<Subnet> {
    const taken = [...(await this.#hostRoutes()), ...[...this.#networks.values()].filter((n) => n.subnet).map((n) => parseCidr(n.subnet!))];
    const candidates: Subnet[] = [];
    for (let b = 18; b <= 31; b++) candidates.push({ network: parseIp(`172.${b}.0.0`), prefix: 16 });
    for (let c = 0; c < 256; c += 16) candidates.push({ network: parseIp(`192.168.${c}.0`), prefix: 20 });
    const s = candidates.find((c) => !taken.some((t) => overlaps(t, c)));
    if (!s) throw failedPrecondition('all predefined address pools have been fully subnetted');
    return s;
  }

  async create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }> {
    const name = req.Name ?? '';
    if (!name) throw invalidArgument('network name is required');
    if (!NAME_RE.test(name)) throw invalidArgument(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
    const driver = req.Driver || 'bridge';
    if (DEFAULT_NAMES.has(name)) throw forbidden(`${name} is a pre-defined network and cannot be created`);
    if (driver !== 'bridge') throw invalidArgument(`plugin "${driver}" not found: only the bridge driver is supported`);
    if ([...this.#networks.values()].some((n) => n.name === name)) throw alreadyExists(`network with name ${name} already exists`);
    if (req.EnableIPv6) throw notImplementedIpv6();
    const ipam = req.IPAM?.Config?.[0];
    if ((req.IPAM?.Config?.length ?? 0) > 1) throw invalidArgument('only one IPAM config (one IPv4 subnet) per network is supported');
    let subnet: Subnet;
    if (ipam?.Subnet) {
      if (ipam.Subnet.includes(':')) throw notImplementedIpv6();
      subnet = parseCidr(ipam.Subnet);
      if (subnet.prefix > 30) throw invalidArgument(`subnet ${ipam.Subnet} is too small`);
      for (const n of this.#networks.values()) {
        if (n.subnet && overlaps(parseCidr(n.subnet), subnet)) throw alreadyExists(`invalid pool request: Pool overlaps with other one on this address space`);
      }
    } else {
      if (ipam?.Gateway || ipam?.IPRange) throw invalidArgument('a gateway or ip-range needs a subnet');
      subnet = await this.#pickSubnet();
    }
    let gateway = firstHost(subnet);
    if (ipam?.Gateway) {
      gateway = parseIp(ipam.Gateway);
      if (!contains(subnet, gateway) || gateway === subnet.network || gateway === broadcast(subnet)) throw invalidArgument(`gateway ${ipam.Gateway} is not a host address of subnet ${formatCidr(subnet)}`);
    }
    let ipRange: string | undefined;
    if (ipam?.IPRange) {
      const r = parseCidr(ipam.IPRange);
      if (!overlaps(r, subnet) || r.prefix < subnet.prefix) throw invalidArgument(`ip-range ${ipam.IPRange} is not inside subnet ${formatCidr(subnet)}`);
      ipRange = formatCidr(r);
    }
    const id = randomBytes(32).toString('hex');
    const options = { ...(req.Options ?? {}) };
    const bridge = options['com.docker.network.bridge.name'] || `br-${id.slice(0, 12)}`;
    if (!/^[a-zA-Z0-9_.-]{1,15}$/.test(bridge)) throw invalidArgument(`invalid bridge name ${bridge}`);
    if ([...this.#networks.values()].some((n) => n.bridge === bridge)) throw alreadyExists(`bridge name ${bridge} is in use by another network`);
    const rec: NetworkRecord = {
      id, name, driver: 'bridge', bridge, subnet: formatCidr(subnet), gateway: formatIp(gateway), ipRange,
      internal: req.Internal === true, attachable: req.Attachable === true, labels: { ...(req.Labels ?? {}) }, options,
      created: new Date().toISOString(),
    };
    await writeJsonAtomic(this.#paths.network(id), rec);
    this.#networks.set(id, rec);
    try {
      await this.#links.ensureBridge(bridge, `${rec.gateway}/${subnet.prefix}`);
      await this.#applyRules();
      await this.#startDns(rec);
    } catch (err) {
      this.#networks.delete(id);
      await this.#dns.get(id)?.stop();
      this.#dns.delete(id);
      await this.#links.deleteLink(bridge);
      await this.#applyRules().catch(() => {});
      await rm(this.#paths.network(id), { force: true });
      throw err;
    }
    return { Id: id, Warning: '' };
  }

  async list(filters: Map<string, string[]> = new Map()): Promise<NetworkResource[]> {
    return [...this.#networks.values()].filter((n) => matchFilters(n, filters)).map((n) => this.#resource(n));
  }

  async inspect(ref: string): Promise<NetworkResource> {
    return this.#resource(this.#find(ref));
  }

  async remove(ref: string): Promise<void> {
    const n = this.#find(ref);
    if (n.predefined) throw forbidden(`${n.name} is a pre-defined network and cannot be removed`);
    const users = [...this.#sandboxes.values()].filter((s) => s.endpoints.some((e) => e.networkId === n.id));
    if (users.length) throw failedPrecondition(`error while removing network: network ${n.name} id ${n.id} has active endpoints`);
    await this.#dns.get(n.id)?.stop();
    this.#dns.delete(n.id);
    this.#networks.delete(n.id);
    await rm(this.#paths.network(n.id), { force: true });
    await this.#applyRules();
    await this.#links.deleteLink(n.bridge!);
    this.#leases.delete(n.id);
  }

  async prune(filters: Map<string, string[]> = new Map()): Promise<string[]> {
    const removed: string[] = [];
    for (const n of [...this.#networks.values()]) {
      if (n.predefined || !matchFilters(n, filters, true)) continue;
      if ([...this.#sandboxes.values()].some((s) => s.endpoints.some((e) => e.networkId === n.id))) continue;
      await this.remove(n.id);
      removed.push(n.name);
    }
    return removed;
  }

  #resource(n: NetworkRecord): NetworkResource {
    const containers: NetworkResource['Containers'] = {};
    for (const sb of this.#sandboxes.values()) {
      for (const ep of sb.endpoints) {
        if (ep.networkId !== n.id) continue;
        containers[sb.containerId] = { Name: sb.name, EndpointID: ep.endpointId, MacAddress: ep.mac, IPv4Address: `${ep.ip}/${ep.prefixLen}`, IPv6Address: '' };
      }
    }
    const config = n.subnet ? [{ Subnet: n.subnet, Gateway: n.gateway, ...(n.ipRange ? { IPRange: n.ipRange } : {}) }] : [];
    return {
      Name: n.name, Id: n.id, Created: n.created, Scope: 'local', Driver: n.driver, EnableIPv6: false,
      IPAM: { Driver: 'default', Options: null, Config: config }, Internal: n.internal, Attachable: n.attachable, Ingress: false,
      ConfigFrom: { Network: '' }, ConfigOnly: false, Containers: containers, Options: n.options, Labels: n.labels,
    };
  }

  // ------------------------------------------------------------------ rules and DNS

  async #writeOwner(): Promise<void> {
    if (!this.#o.ownerFile) return;
    const bridges = [...this.#networks.values()].filter((n) => n.driver === 'bridge').map((n) => n.bridge!);
    const subnets = [...this.#networks.values()].filter((n) => n.driver === 'bridge').map((n) => n.subnet!);
    const rec: OwnerRecord = { dataRoot: this.#o.dataRoot, chainPrefix: this.#o.chainPrefix, bridges, subnets };
    await writeJsonAtomic(this.#o.ownerFile, rec);
  }

  async #applyRules(): Promise<void> {
    await this.#writeOwner();
    const nets = [...this.#networks.values()].filter((n) => n.driver === 'bridge').map((n) => ({ bridge: n.bridge!, subnet: n.subnet!, internal: n.internal }));
    const ports: FilterPort[] = [...this.#sandboxes.values()].flatMap((s) => s.ports);
    await this.#netfilter.apply(nets, ports);
  }

  async #startDns(n: NetworkRecord): Promise<void> {
    // Docker's default bridge has no embedded DNS: containers there get the host's resolvers.
    if (n.driver !== 'bridge' || n.predefined || this.#dns.has(n.id) || this.#o.embeddedDns === false) return;
    const subnet = parseCidr(n.subnet!);
    const server = new DnsServer({
      address: n.gateway!,
      port: this.#o.dnsPort ?? 53,
      resolver: {
        allowed: (client) => isIpv4(client) && contains(subnet, parseIp(client)),
        lookup: (name) => this.#dnsLookup(n, name),
        reverse: (ip) => {
          const sb = this.#sandboxByIp(n.id, ip);
          return sb ? `${sb.name}.${n.name}` : undefined;
        },
        upstreams: (client) => {
          if (n.internal) return [];
          const sb = this.#sandboxByIp(n.id, client);
          if (sb?.dns.length) return sb.dns;
          return this.#o.upstreams ?? this.#hostRc.nameservers;
        },
      },
    });
    await server.start();
    this.#dns.set(n.id, server);
  }

  #dnsLookup(n: NetworkRecord, name: string): string[] | undefined {
    // "<name>" or "<name>.<network>" (Docker answers both).
    const suffix = `.${n.name.toLowerCase()}`;
    const bare = name.endsWith(suffix) ? name.slice(0, -suffix.length) : name;
    const ips: string[] = [];
    for (const sb of this.#sandboxes.values()) {
      for (const ep of sb.endpoints) {
        if (ep.networkId !== n.id) continue;
        const names = [sb.name, sb.containerId.slice(0, 12), ...ep.aliases].map((x) => x.toLowerCase());
        if (names.includes(bare) || names.includes(name)) ips.push(ep.ip);
      }
    }
    return ips.length ? ips : undefined;
  }

  #sandboxByIp(networkId: string, ip: string): SandboxRecord | undefined {
    for (const sb of this.#sandboxes.values()) if (sb.endpoints.some((e) => e.networkId === networkId && e.ip === ip)) return sb;
    return undefined;
  }

  // ------------------------------------------------------------------ containers

  #locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.#locks.run(id, fn);
  }


  #leaseSet(networkId: string): Set<number> {
    let s = this.#leases.get(networkId);
    if (!s) this.#leases.set(networkId, (s = new Set()));
    return s;
  }

  /** Reserve an address (synchronously: no two callers can get the same one). */
  #lease(n: NetworkRecord, wanted?: string): { ip: number; prefix: number } {
    const subnet = parseCidr(n.subnet!);
    const used = this.#leaseSet(n.id);
    const gw = parseIp(n.gateway!);
    let ip: number | undefined;
    if (wanted) {
      ip = parseIp(wanted);
      if (!contains(subnet, ip) || ip === subnet.network || ip === broadcast(subnet)) throw invalidArgument(`invalid address ${wanted}: it does not belong to any of this network's subnets`);
      if (ip === gw || used.has(ip)) throw alreadyExists(`Address already in use`);
    } else {
      const withGw = new Set(used);
      withGw.add(gw);
      ip = allocate(subnet, withGw, this.#lastLease.get(n.id), n.ipRange ? parseCidr(n.ipRange) : undefined);
      if (ip === undefined) throw failedPrecondition(`no available IPv4 addresses on this network's address pools: ${n.name} (${n.id})`);
      this.#lastLease.set(n.id, ip);
    }
    used.add(ip);
    return { ip, prefix: subnet.prefix };
  }

  #release(sb: SandboxRecord): void {
    for (const ep of sb.endpoints) this.#leases.get(ep.networkId)?.delete(parseIp(ep.ip));
  }

  /** The container's configured networks: the remembered config, else its create body. */
  #configFor(req: SandboxRequest): ContainerNetConfig {
    const saved = this.#configs.get(req.containerId);
    if (saved && !saved.relative) return saved;
    let mode = req.networkMode || 'default';
    const endpoints: ContainerNetConfig['endpoints'] = {};
    const primary = mode === 'default' ? 'bridge' : mode;
    for (const [net, es] of Object.entries(req.endpointsConfig ?? {})) {
      endpoints[net === 'default' ? 'bridge' : net] = { aliases: [...(es?.Aliases ?? [])], ipv4: es?.IPAMConfig?.IPv4Address || undefined };
    }
    if (!isSpecialMode(primary) && !(primary in endpoints)) {
      // EndpointsConfig may name the network by ID; the mode names it by name or ID too.
      const n = this.#find(primary);
      const key = Object.keys(endpoints).find((k) => k === n.id || k === n.name || n.id.startsWith(k));
      if (!key) endpoints[primary] = { aliases: [] };
    }
    if (saved?.relative) {
      const same = (a: string, b: string) => a === b || (this.#tryFind(a)?.id ?? a) === (this.#tryFind(b)?.id ?? b);
      for (const r of saved.removed ?? []) for (const k of Object.keys(endpoints)) if (same(k, r)) delete endpoints[k];
      for (const [k, es] of Object.entries(saved.endpoints)) {
        const existing = Object.keys(endpoints).find((e) => same(e, k));
        if (existing) delete endpoints[existing];
        endpoints[k] = es;
      }
      if (!isSpecialMode(primary) && !Object.keys(endpoints).some((k) => same(k, primary))) mode = Object.keys(endpoints)[0] ?? 'none';
    }
    return { mode, endpoints };
  }

  setUp(req: SandboxRequest): Promise<Sandbox> {
    return this.#locked(req.containerId, async () => {
      if (this.#sandboxes.has(req.containerId)) await this.#tearDown(req.containerId);
      const wasRelative = this.#configs.get(req.containerId)?.relative === true;
      const cfg = this.#configFor(req);
      this.#configs.set(req.containerId, cfg);
      if (wasRelative) await writeJsonAtomic(this.#paths.containerConfig(req.containerId), cfg);
      const mode = cfg.mode === 'default' ? 'bridge' : cfg.mode;
      const files = { hostsPath: join(req.filesDir, 'hosts'), resolvConfPath: join(req.filesDir, 'resolv.conf'), hostnamePath: join(req.filesDir, 'hostname') };
      const sb: SandboxRecord = {
        containerId: req.containerId, name: req.name.replace(/^\//, ''), hostname: req.hostname, mode: 'bridge', filesDir: req.filesDir,
        endpoints: [], ports: [], exposed: [], dns: [...(req.dns ?? [])], dnsSearch: [...(req.dnsSearch ?? [])],
        dnsOptions: [...(req.dnsOptions ?? [])], extraHosts: [...(req.extraHosts ?? [])],
      };
      await mkdir(req.filesDir, { recursive: true });
      if (mode === 'host') {
        sb.mode = 'host';
        await Promise.all([
          copyFile('/etc/hosts', files.hostsPath).catch(() => writeInPlace(files.hostsPath, hostsFile([], []))),
          writeInPlace(files.resolvConfPath, formatResolvConf(this.#resolvFor(sb, undefined))),
          writeInPlace(files.hostnamePath, `${req.hostname}\n`),
        ]);
        this.#sandboxes.set(sb.containerId, sb);
        await this.#saveSandbox(sb);
        return { ...files, netnsPath: undefined, settings: this.#settingsOf(sb) };
      }
      if (mode.startsWith('container:')) {
        const ref = mode.slice('container:'.length);
        // The container part should pass a full ID; names and prefixes are resolved here too.
        const target = this.#sandboxes.has(ref) ? ref : ((await this.#resolveContainer(ref).catch(() => undefined))?.id ?? ref);
        const other = this.#sandboxes.get(target);
        if (!other || (!other.netnsPath && other.mode !== 'host')) throw failedPrecondition(`cannot join network of a non running container: ${target}`);
        sb.mode = 'container';
        sb.netnsPath = other.netnsPath;
        // Same network view as the target: its /etc files.
        await Promise.all([
          copyFile(join(other.filesDir, 'hosts'), files.hostsPath),
          copyFile(join(other.filesDir, 'resolv.conf'), files.resolvConfPath),
          writeInPlace(files.hostnamePath, `${req.hostname}\n`),
        ]);
        this.#sandboxes.set(sb.containerId, sb);
        await this.#saveSandbox(sb);
        return { ...files, netnsPath: other.netnsPath, settings: this.#settingsOf(sb) };
      }
      const netnsPath = this.#paths.netns(req.containerId);
      sb.netnsPath = netnsPath;
      if (mode === 'none') {
        sb.mode = 'none';
      } else {
        // Primary network first: it gets eth0 and the default route.
        const entries = Object.entries(cfg.endpoints).map(([ref, es]) => ({ net: this.#find(ref), es }));
        const primary = this.#find(mode);
        entries.sort((a, b) => (a.net.id === primary.id ? -1 : b.net.id === primary.id ? 1 : 0));
        try {
          for (const { net, es } of entries) {
            if (net.driver !== 'bridge') throw invalidArgument(`container cannot be connected to network ${net.name} and to other networks`);
            if (net.predefined && es.aliases.length) throw invalidArgument('network-scoped alias is supported only for containers in user defined networks');
            const { ip, prefix } = this.#lease(net, es.ipv4);
            const ep: EndpointRecord = {
              networkId: net.id, endpointId: randomBytes(32).toString('hex'), ip: formatIp(ip), prefixLen: prefix, gateway: net.gateway!,
              mac: macForIp(ip), aliases: net.predefined ? [] : [...new Set(es.aliases)], hostVeth: '', ifname: `eth${sb.endpoints.length}`,
            };
            sb.endpoints.push(ep);
          }
          this.#planPorts(sb, req);
        } catch (err) {
          this.#release(sb);
          throw err;
        }
      }
      this.#sandboxes.set(sb.containerId, sb);
      try {
        // Ports first: a port in use fails here, cheaply, before any namespace exists.
        await this.#startProxies(sb);
        // Then all of the rest, letting every step finish before judging (no undo racing a
        // namespace mount still in flight).
        const results = await Promise.allSettled([this.#plumb(sb), this.#writeFiles(sb, files)]);
        const failed = results.find((r) => r.status === 'rejected');
        if (failed) throw (failed as PromiseRejectedResult).reason;
        if (sb.ports.length) await this.#applyRules();
        await this.#saveSandbox(sb);
      } catch (err) {
        await this.#undo(sb);
        throw err;
      }
      return { ...files, netnsPath, settings: this.#settingsOf(sb) };
    });
  }

  // ------------------------------------------------------------------ CNI plumbing

  /** CNI network name of an endpoint's network (the attachment's identity for the plugins). */
  #cniName(ep: EndpointRecord): string {
    return `berth-${this.#networks.get(ep.networkId)?.name ?? ep.networkId.slice(0, 12)}`;
  }

  #bridgeConfigOf(ep: EndpointRecord, defaultRoute: boolean) {
    const net = this.#networks.get(ep.networkId);
    return bridgeConfig({
      network: this.#cniName(ep), bridge: net?.bridge ?? '', address: `${ep.ip}/${ep.prefixLen}`, gateway: ep.gateway, mac: ep.mac, defaultRoute,
    });
  }

  #resultOf(ep: EndpointRecord): CniResult {
    return ep.cni ?? syntheticResult(`${ep.ip}/${ep.prefixLen}`, ep.gateway);
  }

  /** The namespace, then lo and every network's interface concurrently (different interfaces;
   *  each bridge attachment is followed by its firewall rules). */
  async #plumb(sb: SandboxRecord): Promise<void> {
    const netns = sb.netnsPath!;
    await this.#links.createNetns(netns);
    const steps = [
      this.#cni.add(loopbackConfig(), { containerId: sb.containerId, netns, ifname: 'lo' }),
      ...sb.endpoints.map((ep, i) => this.#attach(sb, ep, i === 0)),
    ];
    // Let every step finish before judging: no rollback racing a plugin still at work.
    const results = await Promise.allSettled(steps);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }

  /** bridge ADD (the veth, made inside the namespace, with berth's address and MAC), then
   *  firewall ADD chained on its result. (Running firewall alongside bridge with the address
   *  berth already knows would save ~20 ms of setUp, but it would no longer be chained on what
   *  the bridge plugin actually configured.) */
  async #attach(sb: SandboxRecord, ep: EndpointRecord, defaultRoute: boolean): Promise<void> {
    const rt = { containerId: sb.containerId, netns: sb.netnsPath!, ifname: ep.ifname };
    const result = await this.#cni.add(this.#bridgeConfigOf(ep, defaultRoute), rt);
    ep.cni = result;
    const net = this.#networks.get(ep.networkId);
    ep.hostVeth = result.interfaces?.find((i) => !i.sandbox && i.name !== net?.bridge)?.name ?? '';
    const addr = result.ips?.[0]?.address;
    if (addr !== `${ep.ip}/${ep.prefixLen}`) throw internalMismatch(ep, addr);
    await this.#cni.add(firewallConfig(this.#cniName(ep), result), rt);
  }

  /** DEL in reverse chain order: firewall, then bridge (which removes the veth when the
   *  namespace still exists; `netns` is '' when it is gone). Idempotent; errors are logged
   *  unless `strict`. */
  async #detachEndpoint(sb: SandboxRecord, ep: EndpointRecord, netns: string, strict = false): Promise<void> {
    const rt = { containerId: sb.containerId, netns, ifname: ep.ifname };
    try {
      await this.#cni.del(firewallConfig(this.#cniName(ep), this.#resultOf(ep)), rt);
      await this.#cni.del({ ...this.#bridgeConfigOf(ep, false), prevResult: this.#resultOf(ep) }, rt);
    } catch (err) {
      if (strict) throw err;
      this.#o.log.error({ container: sb.containerId, network: ep.networkId, err: errorMessage(err) }, 'cni del failed');
    }
  }

  /** Every attachment's DELs and lo's, concurrently, before the namespace is unmounted. */
  async #unplumb(sb: SandboxRecord): Promise<void> {
    const netns = sb.netnsPath && (await isMountpoint(sb.netnsPath)) ? sb.netnsPath : '';
    await Promise.all([
      ...sb.endpoints.map((ep) => this.#detachEndpoint(sb, ep, netns)),
      this.#cni.del(loopbackConfig(), { containerId: sb.containerId, netns, ifname: 'lo' }).catch((err: unknown) => {
        this.#o.log.error({ container: sb.containerId, err: errorMessage(err) }, 'cni del failed');
      }),
    ]);
  }

  /** Sandboxes live in the exec root (tmpfs; gone at reboot with the namespaces they describe):
   *  tmp + rename keeps them whole across a daemon crash; no fsync needed. */
  async #saveSandbox(sb: SandboxRecord): Promise<void> {
    const p = this.#paths.sandbox(sb.containerId);
    const tmp = `${p}.${randomBytes(4).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(sb), { mode: 0o600 });
    await rename(tmp, p);
  }

  /** Turn PortBindings / -P into concrete bindings on the primary endpoint (ports 0 = any). */
  #planPorts(sb: SandboxRecord, req: SandboxRequest): void {
    const ep = sb.endpoints[0];
    const bindings: PortMap = { ...(req.portBindings ?? {}) };
    const exposed = new Set((req.exposedPorts ?? []).map(normalizePortKey));
    for (const k of Object.keys(bindings)) exposed.add(normalizePortKey(k));
    if (req.publishAllPorts) for (const k of exposed) if (!bindings[k]?.length) bindings[k] = [{ HostIp: '', HostPort: '' }];
    sb.exposed = [...exposed];
    if (!ep) return;
    const net = this.#networks.get(ep.networkId)!;
    for (const [rawKey, list] of Object.entries(bindings)) {
      if (!list) continue;
      const key = normalizePortKey(rawKey);
      const [portStr, proto] = key.split('/') as [string, string];
      if (proto !== 'tcp' && proto !== 'udp') throw invalidArgument(`invalid proto: ${proto}`);
      const cport = Number(portStr);
      if (!Number.isInteger(cport) || cport < 1 || cport > 65535) throw invalidArgument(`invalid containerPort: ${portStr}`);
      for (const b of list) {
        const hostIp = b.HostIp || '';
        if (hostIp && !isIpv4(hostIp)) {
          if (hostIp === '::' || hostIp.includes(':')) continue; // IPv6 bindings: berth's networks are IPv4-only.
          throw invalidArgument(`invalid host IP: ${hostIp}`);
        }
        const range = parsePortRange(b.HostPort ?? '');
        sb.ports.push({ proto, hostIp: hostIp === '0.0.0.0' ? '' : hostIp, hostPort: range[0], containerPort: cport, containerIp: ep.ip, bridge: net.bridge!, ...(range[1] !== range[0] ? { range } : {}) });
      }
    }
  }

  async #startProxies(sb: SandboxRecord): Promise<void> {
    const started: PortProxy[] = [];
    this.#proxies.set(sb.containerId, started);
    try {
      for (const p of sb.ports) {
        const range = p.range;
        let lastErr: unknown;
        let ok = false;
        for (let port = range ? range[0] : p.hostPort; port <= (range ? range[1] : p.hostPort); port++) {
          const proxy = new PortProxy({ proto: p.proto, hostIp: p.hostIp, hostPort: port, containerIp: p.containerIp, containerPort: p.containerPort });
          try {
            await proxy.start();
          } catch (err) {
            lastErr = err;
            if (range && isKind(err, 'FailedPrecondition')) continue;
            throw err;
          }
          p.hostPort = proxy.port;
          delete p.range;
          started.push(proxy);
          ok = true;
          break;
        }
        if (!ok) throw lastErr;
      }
    } catch (err) {
      for (const s of started) await s.stop();
      this.#proxies.delete(sb.containerId);
      throw err;
    }
  }

  async #writeFiles(sb: SandboxRecord, files: { hostsPath: string; resolvConfPath: string; hostnamePath: string }): Promise<void> {
    const ep = sb.endpoints[0];
    const own = ep ? [{ ip: ep.ip, names: [sb.hostname] }] : [];
    const extra = sb.extraHosts.map((h) => parseExtraHost(h, ep?.gateway));
    const net = ep ? this.#networks.get(ep.networkId) : undefined;
    await Promise.all([
      writeInPlace(files.hostsPath, hostsFile(own, extra)),
      writeInPlace(files.resolvConfPath, formatResolvConf(this.#resolvFor(sb, net))),
      writeInPlace(files.hostnamePath, `${sb.hostname}\n`),
    ]);
  }

  /** User-defined networks: the embedded DNS on the gateway (it forwards to --dns or the host's
   *  resolvers). Default bridge, host and none: the --dns servers, else the host's resolvers. */
  #resolvFor(sb: SandboxRecord, net: NetworkRecord | undefined): ResolvConf {
    const search = sb.dnsSearch.length ? sb.dnsSearch : this.#hostRc.search;
    if (net && !net.predefined) {
      return { nameservers: [net.gateway!], search, options: sb.dnsOptions.length ? sb.dnsOptions : ['ndots:0'] };
    }
    return { nameservers: sb.dns.length ? sb.dns : this.#hostRc.nameservers, search, options: sb.dnsOptions.length ? sb.dnsOptions : this.#hostRc.options };
  }

  async #undo(sb: SandboxRecord): Promise<void> {
    await this.#detach(sb);
    await this.#destroy(sb);
  }

  /** The fast half of a teardown: names leave DNS, published ports are freed at once. */
  async #detach(sb: SandboxRecord): Promise<void> {
    this.#sandboxes.delete(sb.containerId);
    for (const p of this.#proxies.get(sb.containerId) ?? []) await p.stop();
    this.#proxies.delete(sb.containerId);
  }

  /** The slow half: rules, the namespace (the kernel frees its veth), the record, then the
   *  leases (only once the old interface is gone, so an address is never on the bridge twice). */
  async #destroy(sb: SandboxRecord): Promise<void> {
    try {
      if (sb.ports.length) await this.#applyRules().catch((err: unknown) => this.#o.log.error({ container: sb.containerId, err: errorMessage(err) }, 'cannot remove port rules'));
      if (sb.mode === 'bridge' || sb.mode === 'none') {
        // No namespace file: setUp failed before any plugin ran (a busy port), nothing to DEL.
        if (existsSync(sb.netnsPath!)) await this.#unplumb(sb);
        await this.#links.destroyNetns(sb.netnsPath!);
      }
      await rm(this.#paths.sandbox(sb.containerId), { force: true });
    } finally {
      this.#release(sb);
    }
  }

  /**
   * Resolves once the sandbox is detached (ports free, names gone); the namespace, rules and
   * leases are released after that, off the caller's clock, still under the container's lock
   * (a new setUp of the same container waits for them). settle() waits for all of it.
   */
  tearDown(containerId: string): Promise<void> {
    return this.#startTearDown(containerId).fast;
  }

  /**
   * A teardown already in flight (the exit started it; the removal asks again) is shared: a
   * second caller gets its halves instead of queuing behind its lock, which would wait for the
   * CNI DELs and the namespace unmount (what the fast half keeps off `run --rm`'s path).
   */
  #startTearDown(containerId: string): { fast: Promise<void>; full: Promise<void> } {
    const inFlight = this.#tearingDown.get(containerId);
    if (inFlight) return inFlight;
    let detached!: () => void;
    const fast = new Promise<void>((r) => (detached = r));
    let handle!: { fast: Promise<void>; full: Promise<void> };
    const done = () => {
      detached();
      if (this.#tearingDown.get(containerId) === handle) this.#tearingDown.delete(containerId);
    };
    const full = this.#locked(containerId, async () => {
      try {
        const sb = this.#sandboxes.get(containerId);
        if (!sb) return;
        try {
          await this.#detach(sb);
        } finally {
          detached();
        }
        await this.#destroy(sb);
      } finally {
        done(); // still under the lock: a set-up queued behind it never sees this teardown
      }
    }).catch((err: unknown) => {
      this.#o.log.error({ container: containerId, err: errorMessage(err) }, 'network teardown failed');
    }).finally(done);
    handle = { fast, full };
    this.#tearingDown.set(containerId, handle);
    this.#background.add(full);
    void full.finally(() => this.#background.delete(full));
    return handle;
  }

  #background = new Set<Promise<void>>();
  /** Each teardown in flight, by container. */
  #tearingDown = new Map<string, { fast: Promise<void>; full: Promise<void> }>();

  /** Wait for every teardown in flight (tests, shutdown). */
  async settle(): Promise<void> {
    while (this.#background.size) await Promise.allSettled([...this.#background]);
  }

  async #tearDown(containerId: string): Promise<void> {
    const sb = this.#sandboxes.get(containerId);
    if (!sb) return;
    await this.#undo(sb);
  }

  async forget(containerId: string, opts: { background?: boolean } = {}): Promise<void> {
    // Nothing of it here (--network none or host, never connected): nothing to wait for. The
    // maps mirror the files (loaded at start, written with every change).
    if (!this.#configs.has(containerId) && !this.#sandboxes.has(containerId) && !this.#tearingDown.has(containerId)) return;
    const t = this.#startTearDown(containerId);
    await (opts.background ? t.fast : t.full);
    this.#configs.delete(containerId);
    await rm(this.#paths.containerConfig(containerId), { force: true });
  }

  #resolveContainer(ref: string): Promise<{ id: string; name: string; running: boolean }> {
    return this.#lookup ? this.#lookup.resolve(ref) : this.resolveLocal(ref);
  }

  /** Resolve among containers with a live sandbox (when no container service is plugged in). */
  async resolveLocal(ref: string): Promise<{ id: string; name: string; running: boolean }> {
    const r = ref.replace(/^\//, '');
    const sbs = [...this.#sandboxes.values()];
    const sb = sbs.find((s) => s.containerId === r) ?? sbs.find((s) => s.name === r) ?? (() => {
      const m = sbs.filter((s) => s.containerId.startsWith(r));
      return m.length === 1 ? m[0] : undefined;
    })();
    if (!sb) throw notFound(`No such container: ${ref}`);
    return { id: sb.containerId, name: sb.name, running: true };
  }

  async connect(containerRef: string, network: string, endpoint: EndpointSettings = {}): Promise<EndpointInfo | undefined> {
    const c = await this.#resolveContainer(containerRef);
    const net = this.#find(network);
    return this.#locked(c.id, async () => {
      // Never started: the create body is not known here; record the change relative to it.
      const cfg: ContainerNetConfig = this.#configs.get(c.id) ?? { mode: '', endpoints: {}, relative: true, removed: [] };
      const mode = cfg.mode === 'default' ? 'bridge' : cfg.mode;
      if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw invalidArgument(`container sharing network namespace with another container or host cannot be connected to any other network`);
      if (net.driver !== 'bridge') throw invalidArgument(`container cannot be disconnected from host network or connected to host network`);
      const known = Object.keys(cfg.endpoints).some((k) => this.#tryFind(k)?.id === net.id);
      if (known) throw forbidden(`endpoint with name ${c.name} already exists in network ${net.name}`);
      const es = { aliases: net.predefined ? [] : [...new Set(endpoint.Aliases ?? [])], ipv4: endpoint.IPAMConfig?.IPv4Address || undefined };
      const sb = this.#sandboxes.get(c.id);
      let info: EndpointInfo | undefined;
      if (sb && sb.netnsPath && sb.mode === 'bridge') {
        const { ip, prefix } = this.#lease(net, es.ipv4);
        const used = new Set(sb.endpoints.map((e) => e.ifname));
        let i = 0;
        while (used.has(`eth${i}`)) i++;
        const ep: EndpointRecord = {
          networkId: net.id, endpointId: randomBytes(32).toString('hex'), ip: formatIp(ip), prefixLen: prefix, gateway: net.gateway!,
          mac: macForIp(ip), aliases: es.aliases, hostVeth: '', ifname: `eth${i}`,
        };
        try {
          await this.#attach(sb, ep, sb.endpoints.length === 0);
        } catch (err) {
          await this.#detachEndpoint(sb, ep, sb.netnsPath);
          this.#leases.get(net.id)?.delete(ip);
          throw err;
        }
        sb.endpoints.push(ep);
        await this.#saveSandbox(sb);
        info = this.#endpointInfo(sb, ep);
      }
      cfg.endpoints[net.name] = es;
      if (cfg.relative) cfg.removed = (cfg.removed ?? []).filter((r) => this.#tryFind(r)?.id !== net.id);
      this.#configs.set(c.id, cfg);
      await writeJsonAtomic(this.#paths.containerConfig(c.id), cfg);
      return info;
    });
  }

  #tryFind(ref: string): NetworkRecord | undefined {
    try {
      return this.#find(ref);
    } catch {
      return undefined;
    }
  }

  async disconnect(containerRef: string, network: string, force = false): Promise<void> {
    const net = this.#find(network);
    let c: { id: string; name: string; running: boolean };
    try {
      c = await this.#resolveContainer(containerRef);
    } catch (err) {
      if (force && isKind(err, 'NotFound')) return;
      throw err;
    }
    await this.#locked(c.id, async () => {
      let cfg = this.#configs.get(c.id);
      const key = cfg ? Object.keys(cfg.endpoints).find((k) => this.#tryFind(k)?.id === net.id) : undefined;
      const sb = this.#sandboxes.get(c.id);
      const ep = sb?.endpoints.find((e) => e.networkId === net.id);
      if (!cfg || cfg.relative) {
        // Never started: remember the removal relative to the create body.
        cfg ??= { mode: '', endpoints: {}, relative: true, removed: [] };
        if (key) delete cfg.endpoints[key];
        else cfg.removed = [...new Set([...(cfg.removed ?? []), net.name])];
        this.#configs.set(c.id, cfg);
        await writeJsonAtomic(this.#paths.containerConfig(c.id), cfg);
        return;
      }
      if (!key && !ep) throw notFound(`container ${c.id} is not connected to network ${net.name}`);
      if (sb && ep) {
        await this.#detachEndpoint(sb, ep, sb.netnsPath!, true);
        sb.endpoints = sb.endpoints.filter((e) => e !== ep);
        this.#leases.get(net.id)?.delete(parseIp(ep.ip));
        if (sb.ports.some((p) => p.containerIp === ep.ip)) {
          for (const p of this.#proxies.get(sb.containerId) ?? []) if (p.spec.containerIp === ep.ip) await p.stop();
          sb.ports = sb.ports.filter((p) => p.containerIp !== ep.ip);
          await this.#applyRules();
        }
        await this.#saveSandbox(sb);
      }
      if (cfg && key) {
        delete cfg.endpoints[key];
        await writeJsonAtomic(this.#paths.containerConfig(c.id), cfg);
      }
    });
  }

  #endpointInfo(sb: SandboxRecord, ep: EndpointRecord): EndpointInfo {
    const net = this.#networks.get(ep.networkId);
    const rc = this.#resolvFor(sb, net);
    return {
      networkId: ep.networkId, networkName: net?.name ?? '', ipAddress: ep.ip, prefixLen: ep.prefixLen, gateway: ep.gateway,
      macAddress: ep.mac, aliases: ep.aliases, dns: { nameservers: rc.nameservers, search: rc.search },
    };
  }

  netnsPathOf(containerId: string): string | undefined {
    return this.#sandboxes.get(containerId)?.netnsPath;
  }

  settings(containerId: string): NetworkSettings {
    const sb = this.#sandboxes.get(containerId);
    if (sb) return this.#settingsOf(sb);
    const s = emptySettings();
    const cfg = this.#configs.get(containerId);
    for (const [ref, es] of Object.entries(cfg?.endpoints ?? {})) {
      const n = this.#tryFind(ref);
      s.Networks[n?.name ?? ref] = { ...emptyEndpoint(), Aliases: es.aliases.length ? es.aliases : null, NetworkID: n?.id ?? '', IPAMConfig: es.ipv4 ? { IPv4Address: es.ipv4 } : null };
    }
    return s;
  }

  #settingsOf(sb: SandboxRecord): NetworkSettings {
    const s = emptySettings();
    s.SandboxID = sb.containerId;
    s.SandboxKey = sb.netnsPath ?? '';
    for (const k of sb.exposed) s.Ports[k] = null;
    for (const p of sb.ports) {
      const k = `${p.containerPort}/${p.proto}`;
      (s.Ports[k] ??= [])!.push({ HostIp: p.hostIp || '0.0.0.0', HostPort: String(p.hostPort) });
    }
    if (sb.mode === 'host') s.Networks.host = { ...emptyEndpoint(), NetworkID: this.#find('host').id };
    if (sb.mode === 'none') s.Networks.none = { ...emptyEndpoint(), NetworkID: this.#find('none').id };
    for (const ep of sb.endpoints) {
      const n = this.#networks.get(ep.networkId);
      const name = n?.name ?? ep.networkId;
      s.Networks[name] = {
        ...emptyEndpoint(), IPAMConfig: null, Aliases: ep.aliases.length ? ep.aliases : null, MacAddress: ep.mac, NetworkID: ep.networkId,
        EndpointID: ep.endpointId, Gateway: ep.gateway, IPAddress: ep.ip, IPPrefixLen: ep.prefixLen,
        DNSNames: n && !n.predefined ? [sb.name, sb.containerId.slice(0, 12), ...ep.aliases] : null,
      };
      if (n?.predefined && n.name === 'bridge') {
        Object.assign(s, { Bridge: '', EndpointID: ep.endpointId, Gateway: ep.gateway, IPAddress: ep.ip, IPPrefixLen: ep.prefixLen, MacAddress: ep.mac });
      }
    }
    return s;
  }

  /** For leak checks in tests: host veth names of live endpoints, netns paths. */
  live(): { sandboxes: number; veths: string[]; netns: string[] } {
    const sbs = [...this.#sandboxes.values()];
    return { sandboxes: sbs.length, veths: sbs.flatMap((s) => s.endpoints.map((e) => e.hostVeth)), netns: sbs.flatMap((s) => (s.netnsPath && (s.mode === 'bridge' || s.mode === 'none') ? [s.netnsPath] : [])) };
  }
}

function internalMismatch(ep: EndpointRecord, got: string | undefined) {
  return internal(`cni plugin bridge add: configured ${got ?? 'no address'} instead of ${ep.ip}/${ep.prefixLen}`);
}

function notImplementedIpv6() {
  return invalidArgument('IPv6 networks are not supported by berth yet');
}

function isSpecialMode(m: string): boolean {
  return m === 'host' || m === 'none' || m.startsWith('container:');
}

function normalizePortKey(k: string): string {
  return k.includes('/') ? k.toLowerCase() : `${k}/tcp`;
}

/** "" -> [0,0] (any), "8080" -> [8080,8080], "8000-8010" -> [8000,8010]. */
export function parsePortRange(s: string): [number, number] {
  if (s === '' || s === '0') return [0, 0];
  const m = /^(\d+)(?:-(\d+))?$/.exec(s);
  if (!m) throw invalidArgument(`invalid hostPort: ${s}`);
  const a = Number(m[1]);
  const b = m[2] ? Number(m[2]) : a;
  if (a < 1 || b > 65535 || b < a) throw invalidArgument(`invalid hostPort: ${s}`);
  return [a, b];
}

function emptyEndpoint(): EndpointSettings {
  return {
    IPAMConfig: null, Links: null, Aliases: null, MacAddress: '', DriverOpts: null, NetworkID: '', EndpointID: '', Gateway: '', IPAddress: '',
    IPPrefixLen: 0, IPv6Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0, DNSNames: null,
  };
}

function emptySettings(): NetworkSettings {
  return {
    Bridge: '', SandboxID: '', SandboxKey: '', HairpinMode: false, LinkLocalIPv6Address: '', LinkLocalIPv6PrefixLen: 0, Ports: {},
    SecondaryIPAddresses: null, SecondaryIPv6Addresses: null, EndpointID: '', Gateway: '', GlobalIPv6Address: '', GlobalIPv6PrefixLen: 0,
    IPAddress: '', IPPrefixLen: 0, IPv6Gateway: '', MacAddress: '', Networks: {},
  };
}

/** Docker's network filters: name (substring), id (prefix), label (key or key=value), driver,
 *  type (builtin|custom); prune honours label, label! and until. */
function matchFilters(n: NetworkRecord, f: Map<string, string[]>, prune = false): boolean {
  for (const [k, vals] of f) {
    if (!vals.length) continue;
    const labelMatch = (v: string) => {
      const i = v.indexOf('=');
      return i < 0 ? v in n.labels : n.labels[v.slice(0, i)] === v.slice(i + 1);
    };
    switch (k) {
      case 'name': if (!vals.some((v) => n.name.includes(v))) return false; break;
      case 'id': if (!vals.some((v) => n.id.startsWith(v))) return false; break;
      case 'driver': if (!vals.includes(n.driver)) return false; break;
      case 'scope': if (!vals.includes('local')) return false; break;
      case 'type': if (!vals.some((v) => (v === 'builtin') === !!n.predefined)) return false; break;
      case 'label': if (!vals.every(labelMatch)) return false; break;
      case 'label!': if (vals.some(labelMatch)) return false; break;
      case 'until': {
        const t = untilTime(vals[0]!);
        if (!(Date.parse(n.created) < t)) return false;
        break;
      }
      case 'dangling': break;
      default: if (!prune) throw invalidArgument(`invalid filter '${k}'`);
    }
  }
  return true;
}

function untilTime(v: string): number {
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  const d = /^(\d+)(s|m|h)$/.exec(v);
  if (d) return Date.now() - Number(d[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[d[2] as 's' | 'm' | 'h'];
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw invalidArgument(`invalid until filter: ${v}`);
  return t;
}
