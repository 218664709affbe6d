// The embedded DNS server of a user-defined network (podman's aardvark-dns role), bound on the
// network's gateway address, UDP and TCP port 53. Containers' /etc/resolv.conf points at it.
//
// - Names of containers on THIS network (container name, network aliases, compose service
//   aliases) answer with their address on this network, to clients on this network only: a
//   query whose source is outside the subnet is refused, so names do not leak across networks.
// - Other names are forwarded to the asking container's upstreams (its --dns, else the host's
//   real resolvers). Internal networks never forward (CVE-2024-29018: exfiltration through the
//   forwarder); they answer local names or NXDOMAIN.
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { createServer, connect, type Server, type Socket as TcpSocket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Packet } from 'dns-packet';

export interface DnsResolver {
  /** Local A records for `name` (lower case, no trailing dot) asked by `client`; undefined: not local. */
  lookup(name: string, client: string): string[] | undefined;
  /** PTR for an address on this network (Docker answers "<container>.<network>"). */
  reverse?(ip: string): string | undefined;
  /** Upstream servers ("ip" or "ip:port") for this client; empty: do not forward. */
  upstreams(client: string): string[];
  /** Whether the client may use this server at all (inside the network's subnet). */
  allowed(client: string): boolean;
}

const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;
const TTL = 600;

export class DnsServer {
  readonly address: string;
  readonly port: number;
  #resolver: DnsResolver;
  #udp?: UdpSocket;
  #tcp?: Server;
  #tcpConns = new Set<TcpSocket>();
  #timeoutMs: number;

  constructor(opts: { address: string; port?: number; resolver: DnsResolver; timeoutMs?: number }) {
    this.address = opts.address;
    this.port = opts.port ?? 53;
    this.#resolver = opts.resolver;
    this.#timeoutMs = opts.timeoutMs ?? 3000;
  }

  /** The port actually bound (tests pass port 0). */
  get boundPort(): number {
    return this.#udp?.address().port ?? this.port;
  }

  async start(): Promise<void> {
    const udp = createSocket({ type: 'udp4', reuseAddr: true });
    await new Promise<void>((res, rej) => {
      udp.once('error', rej);
      udp.bind(this.port, this.address, () => {
        udp.off('error', rej);
        res();
      });
    });
    udp.on('error', () => {});
    udp.on('message', (msg, rinfo) => void this.#onUdp(udp, msg, rinfo));
    this.#udp = udp;
    const tcp = createServer((s) => this.#onTcp(s));
    await new Promise<void>((res, rej) => {
      tcp.once('error', rej);
      tcp.listen(udp.address().port, this.address, () => {
        tcp.off('error', rej);
        res();
      });
    }).catch((err: unknown) => {
      udp.close();
      throw err;
    });
    this.#tcp = tcp;
  }

  async stop(): Promise<void> {
    this.#udp?.close();
    this.#udp = undefined;
    for (const s of this.#tcpConns) s.destroy();
    if (this.#tcp) await new Promise<void>((r) => this.#tcp!.close(() => r()));
    this.#tcp = undefined;
  }

  async #onUdp(sock: UdpSocket, msg: Buffer, rinfo: RemoteInfo): Promise<void> {
    const reply = await this.answer(msg, rinfo.address, 'udp');
    if (reply && this.#udp === sock) sock.send(reply, rinfo.port, rinfo.address);
  }

  #onTcp(s: TcpSocket): void {
    this.#tcpConns.add(s);
    s.on('close', () => this.#tcpConns.delete(s));
    s.on('error', () => {});
    s.setTimeout(10_000, () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const q = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        void this.answer(q, s.remoteAddress?.replace(/^::ffff:/, '') ?? '', 'tcp').then((r) => {
          if (!r || s.destroyed) return;
          const h = Buffer.alloc(2);
          h.writeUInt16BE(r.length);
          s.write(Buffer.concat([h, r]));
        });
      }
    });
  }

  /** One query in, one reply out (undefined: drop). Exposed for unit tests. */
  async answer(msg: Buffer, client: string, transport: 'udp' | 'tcp'): Promise<Buffer | undefined> {
    let q: Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return undefined;
    }
    if (q.type !== 'query' || !q.questions?.length) return undefined;
    const reply = (rcode: number, answers: Packet['answers'] = []) =>
      dnsPacket.encode({
        type: 'response',
        id: q.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | rcode,
        questions: q.questions,
        answers,
      });
    if (!this.#resolver.allowed(client)) return reply(RCODE.REFUSED);
    const question = q.questions[0]!;
    const name = question.name.toLowerCase().replace(/\.$/, '');
    if (question.type === 'PTR' && name.endsWith('.in-addr.arpa')) {
      const ip = name.slice(0, -'.in-addr.arpa'.length).split('.').reverse().join('.');
      const ptr = this.#resolver.reverse?.(ip);
      if (ptr) return reply(RCODE.NOERROR, [{ type: 'PTR', name: question.name, ttl: TTL, class: 'IN', data: ptr }]);
    }
    const ips = this.#resolver.lookup(name, client);
    if (ips !== undefined) {
      // A local name: A records; other types exist-but-empty (NOERROR), as Docker answers AAAA.
      if (question.type === 'A' || question.type === 'ANY') {
        return reply(RCODE.NOERROR, ips.map((ip) => ({ type: 'A', name: question.name, ttl: TTL, class: 'IN', data: ip })));
      }
      return reply(RCODE.NOERROR);
    }
    const ups = this.#resolver.upstreams(client);
    if (!ups.length) return reply(RCODE.NXDOMAIN);
    for (const up of ups) {
      const r = await (transport === 'udp' ? this.#forwardUdp(msg, up) : this.#forwardTcp(msg, up)).catch(() => undefined);
      if (r) return r;
    }
    return reply(RCODE.SERVFAIL);
  }

  #forwardUdp(msg: Buffer, upstream: string): Promise<Buffer | undefined> {
    const [host, port] = splitHostPort(upstream);
    return new Promise((resolve) => {
      const s = createSocket('udp4');
      const done = (v: Buffer | undefined) => {
        clearTimeout(t);
        s.close();
        resolve(v);
      };
      const t = setTimeout(() => done(undefined), this.#timeoutMs);
      s.on('error', () => done(undefined));
      s.on('message', (m) => done(m));
      s.send(msg, port, host);
    });
  }

  #forwardTcp(msg: Buffer, upstream: string): Promise<Buffer | undefined> {
    const [host, port] = splitHostPort(upstream);
    return new Promise((resolve) => {
      const s = connect(port, host);
      let buf = Buffer.alloc(0);
      const done = (v: Buffer | undefined) => {
        clearTimeout(t);
        s.destroy();
        resolve(v);
      };
      const t = setTimeout(() => done(undefined), this.#timeoutMs);
      s.on('error', () => done(undefined));
      s.on('connect', () => {
        const h = Buffer.alloc(2);
        h.writeUInt16BE(msg.length);
        s.write(Buffer.concat([h, msg]));
      });
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      });
    });
  }
}

function splitHostPort(s: string): [string, number] {
  const m = /^(.*):(\d+)$/.exec(s);
  return m && m[1]!.includes('.') ? [m[1]!, Number(m[2])] : [s, 53];
}
