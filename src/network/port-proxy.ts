// The userland proxy for published ports (docker-proxy's role): it listens on the host side of a
// binding and relays to the container. It serves what DNAT cannot: connections to 127.0.0.1
// (NAT to a non-loopback address would need route_localnet=1, CVE-2020-8558) and it HOLDS the
// host port, so a port already in use fails at listen() with a clear error before any rule is
// written. Connections from other hosts are DNAT'ed in the kernel and never reach it.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { BerthError, invalidArgument, failedPrecondition } from '../core/errors.ts';

export interface ProxySpec {
  proto: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
  containerIp: string;
  containerPort: number;
}

export class PortProxy {
  readonly spec: ProxySpec;
  #tcp?: Server;
  #udp?: UdpSocket;
  #conns = new Set<Socket>();
  #udpPeers = new Map<string, { sock: UdpSocket; timer: NodeJS.Timeout }>();

  constructor(spec: ProxySpec) {
    this.spec = spec;
  }

  /** The bound port (hostPort 0 picks a free one). */
  get port(): number {
    const a = this.#tcp?.address() ?? this.#udp?.address();
    return a && typeof a === 'object' ? a.port : this.spec.hostPort;
  }

  async start(): Promise<void> {
    const host = this.spec.hostIp || '0.0.0.0';
    try {
      if (this.spec.proto === 'tcp') await this.#startTcp(host);
      else await this.#startUdp(host);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const where = `${host}:${this.spec.hostPort}`;
      if (code === 'EADDRINUSE') throw failedPrecondition(`driver failed programming external connectivity: Bind for ${where} failed: port is already allocated`, err);
      if (code === 'EADDRNOTAVAIL') throw invalidArgument(`driver failed programming external connectivity: listen ${this.spec.proto} ${where}: bind: cannot assign requested address`, err);
      throw new BerthError('Internal', `listen ${this.spec.proto} ${where}: ${(err as Error).message}`, { cause: err });
    }
  }

  #startTcp(host: string): Promise<void> {
    const srv = createServer((client) => {
      this.#conns.add(client);
      const upstream = connect(this.spec.containerPort, this.spec.containerIp);
      this.#conns.add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        this.#conns.delete(client);
        this.#conns.delete(upstream);
      };
      client.on('error', end);
      upstream.on('error', end);
      client.on('close', end);
      upstream.on('close', end);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    return new Promise((res, rej) => {
      srv.once('error', rej);
      srv.listen({ port: this.spec.hostPort, host, exclusive: true }, () => {
        srv.off('error', rej);
        this.#tcp = srv;
        res();
      });
    });
  }

  #startUdp(host: string): Promise<void> {
    const sock = createSocket('udp4');
    sock.on('message', (msg, rinfo) => {
      const key = `${rinfo.address}:${rinfo.port}`;
      let peer = this.#udpPeers.get(key);
      if (!peer) {
        const up = createSocket('udp4');
        up.on('message', (reply) => sock.send(reply, rinfo.port, rinfo.address));
        up.on('error', () => {});
        peer = { sock: up, timer: setTimeout(() => {}, 0) };
        this.#udpPeers.set(key, peer);
      }
      clearTimeout(peer.timer);
      const p = peer;
      p.timer = setTimeout(() => {
        p.sock.close();
        this.#udpPeers.delete(key);
      }, 90_000);
      p.timer.unref();
      p.sock.send(msg, this.spec.containerPort, this.spec.containerIp);
    });
    return new Promise((res, rej) => {
      sock.once('error', rej);
      sock.bind({ port: this.spec.hostPort, address: host, exclusive: true }, () => {
        sock.off('error', rej);
        sock.on('error', () => {});
        this.#udp = sock;
        res();
      });
    });
  }

  async stop(): Promise<void> {
    for (const c of this.#conns) c.destroy();
    this.#conns.clear();
    for (const p of this.#udpPeers.values()) {
      clearTimeout(p.timer);
      p.sock.close();
    }
    this.#udpPeers.clear();
    if (this.#tcp) await new Promise<void>((r) => this.#tcp!.close(() => r()));
    this.#udp?.close();
    this.#tcp = undefined;
    this.#udp = undefined;
  }
}
