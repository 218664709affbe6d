// berth's iptables rules. Why iptables and not the CNI bridge/portmap/firewall plugins: the
// plugins spawn one process per plugin per container plus several iptables calls each (podman's
// CNI path costs tens of ms per start), while berth's rules are per NETWORK, not per container:
// a container without published ports needs no rule change at all, and a container with ports
// costs one `iptables-restore` that rewrites berth's own chains atomically from state. Every rule
// lives in berth-owned chains (prefix configurable so test daemons run side by side); the
// built-in chains only get one jump each.
//
//   filter FORWARD     -> <P>-FWD      intra-network accept, egress accept (not --internal),
//                                      replies and DNAT'ed (published) traffic accepted, the rest
//                                      to a bridge dropped; isolation first (<P>-ISO1/<P>-ISO2):
//                                      nothing crosses from one berth bridge to another.
//   nat PREROUTING     -> <P>-DNAT     (dst-type LOCAL) published ports -> container ip:port
//   nat OUTPUT         -> <P>-DNAT     (dst-type LOCAL, not 127/8) the host's own non-loopback
//                                      addresses; loopback is served by the userland proxy, so
//                                      route_localnet stays 0 (CVE-2020-8558).
//   nat POSTROUTING    -> <P>-POST     masquerade egress of non-internal subnets; hairpin.
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
    f.push(`-A ${c.fwd} -i ${b} -o ${b} -j ACCEPT`);
    if (n.internal) {
      f.push(`-A ${c.fwd} -i ${b} -j DROP`, `-A ${c.fwd} -o ${b} -j DROP`);
    } else {
      f.push(
        `-A ${c.fwd} -o ${b} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
        `-A ${c.fwd} -o ${b} -m conntrack --ctstate DNAT -j ACCEPT`,
        `-A ${c.fwd} -i ${b} ! -o ${b} -j ACCEPT`,
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
   * built-in chains and the first rule of berth's forward chain; forgets the applied state when
   * anything is missing, so the next apply() rewrites it all.
   */
  async intact(): Promise<boolean> {
    if (!this.#jumped) return true;
    const c = chainNames(this.prefix);
    const checks = [...jumps(this.prefix).map((j) => ['-t', j.table, '-C', j.chain, ...j.spec]), ['-t', 'filter', '-C', c.fwd, '-j', c.iso1]];
    for (const args of checks) {
      const r = await this.#host.run('iptables', ['-w', ...args], { allowFailure: true });
      if (r.code !== 0) {
        this.#jumped = false;
        this.#last = '';
        return false;
      }
    }
    return true;
  }

  async #ensureJumps(): Promise<void> {
    for (const j of jumps(this.prefix)) {
      const r = await this.#host.run('iptables', ['-w', '-t', j.table, '-C', j.chain, ...j.spec], { allowFailure: true });
      if (r.code !== 0) await this.#host.run('iptables', ['-w', '-t', j.table, '-I', j.chain, '1', ...j.spec]);
    }
  }

  /** Remove every berth rule and chain (tests, and a daemon told to clean up). */
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
