// berth's iptables rules, next to the CNI firewall plugin's. Per container, the CNI `firewall`
// plugin (run by the network service after `bridge`) adds `-s <ip> -j ACCEPT` and an
// established-replies accept for the container's address to the shared CNI-FORWARD chain, as
// podman's CNI setup does. What the plugin cannot express stays here, per NETWORK rather than per
// container (one `iptables-restore` rewrites berth's own chains atomically from state; a
// container without published ports needs no change to them): isolation between networks,
// --internal, published ports (berth's own rules, not the portmap plugin: they also need the
// loopback proxy and the hairpin rule), and masquerade. Every such rule lives in berth-owned
// chains (prefix configurable so test daemons run side by side); the built-in chains only get
// one jump each.
//
//   filter FORWARD     -> <P>-FWD      decides first; CNI-FORWARD's jump is kept BELOW it (the
//                                      plugin's accept would otherwise let traffic cross
//                                      networks): isolation first (<P>-ISO1/<P>-ISO2: nothing
//                                      crosses from one berth bridge to another), --internal
//                                      networks drop all but intra-network traffic, DNAT'ed
//                                      (published) traffic is accepted, unsolicited traffic to a
//                                      bridge dropped; the container's own traffic and replies
//                                      to it RETURN, to be accepted in CNI-FORWARD.
//   nat PREROUTING     -> <P>-DNAT     (dst-type LOCAL) published ports -> container ip:port
//   nat OUTPUT         -> <P>-DNAT     (dst-type LOCAL, not 127/8) the host's own non-loopback
//                                      addresses; loopback is served by the userland proxy, so
//                                      route_localnet stays 0 (CVE-2020-8558).
//   nat POSTROUTING    -> <P>-POST     masquerade egress of non-internal subnets; hairpin.
//
// Why berth's isolation and not the firewall plugin's `ingressPolicy: same-bridge`: that puts
// per-bridge rules in the shared CNI-ISOLATION chains which the plugin never removes (DEL leaves
// them), so removed networks would leak rules; berth's chains are rewritten from state.
//
// Ports published on 127.0.0.1 get NO DNAT rule at all (only the loopback proxy), and direct
// routing to a container IP from a neighbour is dropped by `-o <bridge> -j DROP`: they are not
// reachable from other hosts.
import type { Host } from '../host/host.ts';

export interface FilterNetwork {
  bridge: string;
  subnet: string;
  internal: boolean;
}

export interface FilterPort {
  proto: 'tcp' | 'udp';
  /** '' or '0.0.0.0' for every address. Loopback bindings produce no rule (proxy only). */
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
  bridge: string;
}

/** The CNI firewall plugin's chains and rules, exactly as it writes them (its iptables backend
 *  looks them up by this spec). Shared with every other CNI user on the host: never removed. */
export const CNI_FORWARD = 'CNI-FORWARD';
const CNI_ADMIN = 'CNI-ADMIN';
const CNI_FORWARD_JUMP = ['-m', 'comment', '--comment', 'CNI firewall plugin rules', '-j', CNI_FORWARD];
const CNI_ADMIN_JUMP = ['-m', 'comment', '--comment', 'CNI firewall plugin admin overrides', '-j', CNI_ADMIN];

export function chainNames(prefix: string) {
  return { fwd: `${prefix}-FWD`, iso1: `${prefix}-ISO1`, iso2: `${prefix}-ISO2`, dnat: `${prefix}-DNAT`, post: `${prefix}-POST` };
}

const isLoopbackIp = (ip: string) => ip.startsWith('127.');

/** The whole berth ruleset for `iptables-restore --noflush` (declaring a chain flushes it). */
export function renderRules(prefix: string, networks: FilterNetwork[], ports: FilterPort[]): string {
  const c = chainNames(prefix);
  const f: string[] = ['*filter', `:${c.fwd} - [0:0]`, `:${c.iso1} - [0:0]`, `:${c.iso2} - [0:0]`, `-A ${c.fwd} -j ${c.iso1}`];
  for (const n of networks) {
    const b = n.bridge;
    f.push(`-A ${c.iso1} -i ${b} ! -o ${b} -j ${c.iso2}`, `-A ${c.iso2} -o ${b} -j DROP`);
    if (n.internal) {
      f.push(`-A ${c.fwd} -i ${b} -o ${b} -j RETURN`, `-A ${c.fwd} -i ${b} -j DROP`, `-A ${c.fwd} -o ${b} -j DROP`);
    } else {
      f.push(
        `-A ${c.fwd} -i ${b} -j RETURN`,
        `-A ${c.fwd} -o ${b} -m conntrack --ctstate DNAT -j ACCEPT`,
        `-A ${c.fwd} -o ${b} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN`,
        `-A ${c.fwd} -o ${b} -j DROP`,
      );
    }
  }
  f.push(`-A ${c.iso1} -j RETURN`, `-A ${c.iso2} -j RETURN`, 'COMMIT');
  const n: string[] = ['*nat', `:${c.dnat} - [0:0]`, `:${c.post} - [0:0]`];
  for (const net of networks) {
    if (!net.internal) n.push(`-A ${c.post} -s ${net.subnet} ! -o ${net.bridge} -j MASQUERADE`);
  }
  for (const p of ports) {
    if (isLoopbackIp(p.hostIp)) continue;
    const dst = p.hostIp && p.hostIp !== '0.0.0.0' ? ` -d ${p.hostIp}/32` : '';
    n.push(`-A ${c.dnat}${dst} ! -i ${p.bridge} -p ${p.proto} -m ${p.proto} --dport ${p.hostPort} -j DNAT --to-destination ${p.containerIp}:${p.containerPort}`);
    // Hairpin: a container reaching its own published port through the host address.
    n.push(`-A ${c.post} -s ${p.containerIp}/32 -d ${p.containerIp}/32 -p ${p.proto} -m ${p.proto} --dport ${p.containerPort} -j MASQUERADE`);
  }
  n.push('COMMIT');
  return [...f, ...n].join('\n') + '\n';
}

/** Jumps from the built-in chains into berth's, as iptables argument lists (table, chain, spec). */
export function jumps(prefix: string): Array<{ table: string; chain: string; spec: string[] }> {
  const c = chainNames(prefix);
  return [
    { table: 'filter', chain: 'FORWARD', spec: ['-j', c.fwd] },
    { table: 'nat', chain: 'PREROUTING', spec: ['-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat] },
    { table: 'nat', chain: 'OUTPUT', spec: ['!', '-d', '127.0.0.0/8', '-m', 'addrtype', '--dst-type', 'LOCAL', '-j', c.dnat] },
    { table: 'nat', chain: 'POSTROUTING', spec: ['-j', c.post] },
  ];
}

export class Netfilter {
  readonly prefix: string;
  #host: Host;
  #jumped = false;
  #last = '';
  /** Serialises applies: the last state wins, never an interleaving. */
  #queue: Promise<void> = Promise.resolve();

  constructor(host: Host, prefix: string) {
    this.#host = host;
    this.prefix = prefix;
  }

  /** Make berth's chains equal to this state (atomic per table), and the jumps present. */
  apply(networks: FilterNetwork[], ports: FilterPort[]): Promise<void> {
    const text = renderRules(this.prefix, networks, ports);
    const run = async () => {
      if (text === this.#last && this.#jumped) return;
      await this.#host.run('iptables-restore', ['-w', '--noflush'], { input: text });
      this.#last = text;
      if (!this.#jumped) {
        await this.#ensureJumps();
        this.#jumped = true;
      }
    };
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => {});
    return p;
  }

  /**
   * Whether berth's rules are still in place: a firewalld reload or an `iptables -F` drops them
   * (and with them isolation and published ports: CVE-2025-54410). Checks the jumps from the
   * built-in chains, that berth's forward jump still comes before CNI-FORWARD's (a firewall
   * plugin that found its jump missing re-inserts it at the top), and the first rule of berth's
   * forward chain; forgets the applied state when anything is off, so the next apply() rewrites
   * it all.
   */
  async intact(): Promise<boolean> {
    if (!this.#jumped) return true;
    const c = chainNames(this.prefix);
    const checks = [...jumps(this.prefix).filter((j) => j.chain !== 'FORWARD').map((j) => ['-t', j.table, '-C', j.chain, ...j.spec]), ['-t', 'filter', '-C', c.fwd, '-j', c.iso1]];
    let ok = (await this.#forwardOrder()) === 'ok';
    for (const args of ok ? checks : []) {
      const r = await this.#host.run('iptables', ['-w', ...args], { allowFailure: true });
      if (r.code !== 0) ok = false;
      if (!ok) break;
    }
    if (!ok) {
      this.#jumped = false;
      this.#last = '';
    }
    return ok;
  }

  /** Where berth's FORWARD jump stands relative to the CNI firewall plugin's. */
  async #forwardOrder(): Promise<'ok' | 'missing' | 'below-cni' | 'no-cni'> {
    const r = await this.#host.run('iptables', ['-w', '-t', 'filter', '-S', 'FORWARD'], { allowFailure: true });
    const lines = r.stdout.split('\n');
    const own = lines.indexOf(`-A FORWARD -j ${chainNames(this.prefix).fwd}`);
    const cni = lines.findIndex((l) => l.endsWith(`-j ${CNI_FORWARD}`));
    if (own < 0) return 'missing';
    if (cni < 0) return 'no-cni';
    return own < cni ? 'ok' : 'below-cni';
  }

  async #ensureJumps(): Promise<void> {
    // The CNI firewall plugin's chains and jump, made here first if missing, APPENDED: the
    // plugin only inserts its jump (at the top) when it is missing, so it stays below berth's.
    await this.#ensureCniChains();
    const order = await this.#forwardOrder();
    const c = chainNames(this.prefix);
    if (order === 'below-cni') await this.#host.run('iptables', ['-w', '-t', 'filter', '-D', 'FORWARD', '-j', c.fwd], { allowFailure: true });
    if (order === 'below-cni' || order === 'missing') await this.#host.run('iptables', ['-w', '-t', 'filter', '-I', 'FORWARD', '1', '-j', c.fwd]);
    for (const j of jumps(this.prefix)) {
      if (j.chain === 'FORWARD') continue;
      const r = await this.#host.run('iptables', ['-w', '-t', j.table, '-C', j.chain, ...j.spec], { allowFailure: true });
      if (r.code !== 0) await this.#host.run('iptables', ['-w', '-t', j.table, '-I', j.chain, '1', ...j.spec]);
    }
  }

  async #ensureCniChains(): Promise<void> {
    const ipt = (...args: string[]) => this.#host.run('iptables', ['-w', '-t', 'filter', ...args], { allowFailure: true });
    await ipt('-N', CNI_FORWARD);
    await ipt('-N', CNI_ADMIN);
    if ((await ipt('-C', CNI_FORWARD, ...CNI_ADMIN_JUMP)).code !== 0) await ipt('-I', CNI_FORWARD, '1', ...CNI_ADMIN_JUMP);
    if ((await ipt('-C', 'FORWARD', ...CNI_FORWARD_JUMP)).code !== 0) await ipt('-A', 'FORWARD', ...CNI_FORWARD_JUMP);
  }

  /** Remove every berth rule and chain (tests, and a daemon told to clean up). The CNI
   *  chains stay: they are shared, and the firewall plugin's DEL removed this daemon's rules. */
  async removeAll(): Promise<void> {
    await this.#queue;
    for (const j of jumps(this.prefix)) {
      for (;;) {
        const r = await this.#host.run('iptables', ['-w', '-t', j.table, '-D', j.chain, ...j.spec], { allowFailure: true });
        if (r.code !== 0) break;
      }
    }
    const c = chainNames(this.prefix);
    for (const [table, chains] of [['filter', [c.fwd, c.iso1, c.iso2]], ['nat', [c.dnat, c.post]]] as const) {
      for (const ch of chains) await this.#host.run('iptables', ['-w', '-t', table, '-F', ch], { allowFailure: true });
      for (const ch of chains) await this.#host.run('iptables', ['-w', '-t', table, '-X', ch], { allowFailure: true });
    }
    this.#jumped = false;
    this.#last = '';
  }
}
