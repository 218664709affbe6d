// Pure parts of the network service: IPv4 arithmetic, /etc files, the iptables ruleset, port
// ranges, the embedded DNS server and the userland proxy (on loopback, no root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer, createConnection, type AddressInfo } from 'node:net';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import { parseIp, formatIp, parseCidr, allocate, overlaps, contains, macForIp, broadcast } from '../../src/network/ipv4.ts';
import { hostsFile, parseExtraHost, parseResolvConf, formatResolvConf, hostResolvConf } from '../../src/network/etc-files.ts';
import { renderRules } from '../../src/network/netfilter.ts';
import { parsePortRange, routedElsewhere } from '../../src/network/bridge-network-service.ts';
import { DnsServer } from '../../src/network/dns-server.ts';
import { PortProxy } from '../../src/network/port-proxy.ts';
import { isKind } from '../../src/core/errors.ts';

test('ipv4: parse, format, CIDR, overlap, allocation with rotation and ranges, MACs', () => {
  assert.equal(formatIp(parseIp('10.1.2.3')), '10.1.2.3');
  assert.throws(() => parseIp('10.1.2.256'), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => parseCidr('10.1.2.3/24'), /host bits/);
  assert.deepEqual(parseCidr('10.1.2.3/24', true), { network: parseIp('10.1.2.0'), prefix: 24 });
  const s = parseCidr('10.0.0.0/30');
  assert.equal(formatIp(broadcast(s)), '10.0.0.3');
  assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.9.0.0/16')));
  assert.ok(!overlaps(parseCidr('10.0.0.0/24'), parseCidr('10.0.1.0/24')));
  assert.ok(contains(s, parseIp('10.0.0.2')));
  const used = new Set([parseIp('10.0.0.1')]);
  assert.equal(formatIp(allocate(s, used)!), '10.0.0.2');
  used.add(parseIp('10.0.0.2'));
  assert.equal(allocate(s, used), undefined, 'a /30 has two hosts');
  const big = parseCidr('10.0.0.0/24');
  assert.equal(formatIp(allocate(big, new Set(), parseIp('10.0.0.7'))!), '10.0.0.8', 'rotates after the last lease');
  assert.equal(formatIp(allocate(big, new Set(), parseIp('10.0.0.254'))!), '10.0.0.1', 'wraps');
  assert.equal(formatIp(allocate(big, new Set(), undefined, parseCidr('10.0.0.128/25'))!), '10.0.0.128');
  assert.equal(macForIp(parseIp('172.17.0.2')), '02:42:ac:11:00:02');
});

test('parsePortRange', () => {
  assert.deepEqual(parsePortRange(''), [0, 0]);
  assert.deepEqual(parsePortRange('8080'), [8080, 8080]);
  assert.deepEqual(parsePortRange('8000-8010'), [8000, 8010]);
  for (const bad of ['x', '0-5', '9-3', '70000']) assert.throws(() => parsePortRange(bad), (e: unknown) => isKind(e, 'InvalidArgument'), bad);
});

test('/etc files: hosts with extra hosts, resolv.conf, host-gateway, stub resolvers skipped', async () => {
  const h = hostsFile([{ ip: '10.0.0.2', names: ['abc'] }], [parseExtraHost('db:10.9.9.9'), parseExtraHost('gw=host-gateway', '10.0.0.1')]);
  assert.match(h, /^127\.0\.0\.1\tlocalhost\n/);
  assert.match(h, /10\.9\.9\.9\tdb\n10\.0\.0\.1\tgw\n10\.0\.0\.2\tabc\n$/);
  assert.throws(() => parseExtraHost('nocolon'), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => parseExtraHost('x:host-gateway'), (e: unknown) => isKind(e, 'InvalidArgument'));
  const rc = parseResolvConf('# c\nnameserver 1.1.1.1\nnameserver 8.8.8.8 # x\nsearch a.example b.example\noptions ndots:2 edns0\n');
  assert.deepEqual(rc, { nameservers: ['1.1.1.1', '8.8.8.8'], search: ['a.example', 'b.example'], options: ['ndots:2', 'edns0'] });
  assert.equal(formatResolvConf(rc), 'search a.example b.example\nnameserver 1.1.1.1\nnameserver 8.8.8.8\noptions ndots:2 edns0\n');
  const dir = await mkdtemp(join(tmpdir(), 'berth-rc-'));
  try {
    await writeFile(join(dir, 'stub'), 'nameserver 127.0.0.53\nsearch lan\n');
    await writeFile(join(dir, 'real'), 'nameserver 192.0.2.53\n');
    assert.deepEqual((await hostResolvConf([join(dir, 'stub'), join(dir, 'real')])).nameservers, ['192.0.2.53']);
    assert.deepEqual(await hostResolvConf([join(dir, 'stub'), join(dir, 'missing')]), { nameservers: [], search: ['lan'], options: [] });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('iptables ruleset: isolation, internal without egress or NAT, loopback ports without DNAT', () => {
  const r = renderRules('BT', [
    { bridge: 'b1', subnet: '10.1.0.0/24', internal: false },
    { bridge: 'b2', subnet: '10.2.0.0/24', internal: true },
  ], [
    { proto: 'tcp', hostIp: '', hostPort: 8080, containerIp: '10.1.0.2', containerPort: 80, bridge: 'b1' },
    { proto: 'udp', hostIp: '127.0.0.1', hostPort: 5353, containerIp: '10.1.0.2', containerPort: 53, bridge: 'b1' },
    { proto: 'tcp', hostIp: '192.0.2.1', hostPort: 9090, containerIp: '10.1.0.3', containerPort: 90, bridge: 'b1' },
  ]);
  const lines = r.split('\n');
  assert.ok(lines.includes('-A BT-ISO1 -i b1 ! -o b1 -j BT-ISO2'));
  assert.ok(lines.includes('-A BT-ISO2 -o b2 -j DROP'));
  assert.ok(lines.includes('-A BT-FWD -i b2 -j DROP'), 'internal: nothing leaves');
  assert.ok(lines.includes('-A BT-POST -s 10.1.0.0/24 ! -o b1 -j MASQUERADE'));
  assert.ok(!r.includes('-s 10.2.0.0/24'), 'internal: no NAT');
  assert.ok(lines.includes('-A BT-DNAT ! -i b1 -p tcp -m tcp --dport 8080 -j DNAT --to-destination 10.1.0.2:80'));
  assert.ok(lines.includes('-A BT-DNAT -d 192.0.2.1/32 ! -i b1 -p tcp -m tcp --dport 9090 -j DNAT --to-destination 10.1.0.3:90'));
  assert.ok(!r.includes('--dport 5353'), '127.0.0.1 bindings get no DNAT (proxy only)');
  assert.ok(lines.indexOf('-A BT-FWD -j BT-ISO1') < lines.findIndex((l) => l.includes('ACCEPT')), 'isolation before any accept');
  // The container's own traffic and replies to it go on to CNI-FORWARD (the firewall plugin's
  // accept); isolation and unsolicited-ingress drops are decided before that.
  const at = (l: string) => { const i = lines.indexOf(l); assert.ok(i >= 0, l); return i; };
  assert.ok(at('-A BT-FWD -j BT-ISO1') < lines.findIndex((l) => l.includes('RETURN') && l.startsWith('-A BT-FWD')), 'isolation before any return');
  assert.ok(at('-A BT-FWD -i b1 -j RETURN') < at('-A BT-FWD -o b1 -j DROP'));
  assert.ok(at('-A BT-FWD -o b1 -m conntrack --ctstate DNAT -j ACCEPT') < at('-A BT-FWD -o b1 -j DROP'), 'published ports accepted by berth');
  assert.ok(at('-A BT-FWD -i b2 -o b2 -j RETURN') < at('-A BT-FWD -i b2 -j DROP'), 'internal: intra-network only');
  assert.ok(!lines.some((l) => /-[io] b2 .*RELATED/.test(l)), 'internal: no replies from outside');
  assert.equal(lines.filter((l) => l === 'COMMIT').length, 2);
});

function query(name: string, type = 'A', id = 7): Buffer {
  return dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name }] });
}

test('embedded DNS: local names, refusal outside the network, forwarding, internal NXDOMAIN, TCP', async () => {
  // A fake upstream on loopback answers everything with 192.0.2.99.
  const up = createSocket('udp4');
  await new Promise<void>((r) => up.bind(0, '127.0.0.1', () => r()));
  up.on('message', (m, ri) => {
    const q = dnsPacket.decode(m);
    up.send(dnsPacket.encode({ type: 'response', id: q.id, flags: dnsPacket.RECURSION_AVAILABLE, questions: q.questions, answers: [{ type: 'A', name: q.questions![0]!.name, ttl: 5, data: '192.0.2.99' }] }), ri.port, ri.address);
  });
  let upstreams = [`127.0.0.1:${up.address().port}`];
  const srv = new DnsServer({
    address: '127.0.0.1', port: 0, timeoutMs: 500,
    resolver: {
      allowed: (c) => c === '127.0.0.1',
      lookup: (n) => (n === 'web' || n === 'web.mynet' ? ['10.0.0.2', '10.0.0.3'] : undefined),
      reverse: (ip) => (ip === '10.0.0.2' ? 'web.mynet' : undefined),
      upstreams: () => upstreams,
    },
  });
  await srv.start();
  try {
    const a = dnsPacket.decode((await srv.answer(query('web'), '127.0.0.1', 'udp'))!);
    assert.deepEqual(a.answers!.map((x) => x.data), ['10.0.0.2', '10.0.0.3']);
    assert.equal(a.id, 7);
    const aaaa = dnsPacket.decode((await srv.answer(query('web', 'AAAA'), '127.0.0.1', 'udp'))!);
    assert.equal(aaaa.rcode, 'NOERROR');
    assert.equal(aaaa.answers!.length, 0);
    assert.equal(dnsPacket.decode((await srv.answer(query('web'), '10.9.9.9', 'udp'))!).rcode, 'REFUSED');
    const ptr = dnsPacket.decode((await srv.answer(query('2.0.0.10.in-addr.arpa', 'PTR'), '127.0.0.1', 'udp'))!);
    assert.deepEqual(ptr.answers!.map((x) => x.data), ['web.mynet']);
    // Over the real UDP socket, forwarded upstream.
    const c = createSocket('udp4');
    const reply = await new Promise<Buffer>((res) => {
      c.on('message', (m) => res(m));
      c.send(query('example.org'), srv.boundPort, '127.0.0.1');
    });
    c.close();
    assert.deepEqual(dnsPacket.decode(reply).answers!.map((x) => x.data), ['192.0.2.99']);
    // Over TCP, a local name.
    const tcp = await new Promise<Buffer>((res, rej) => {
      const s = createConnection({ host: '127.0.0.1', port: srv.boundPort }, () => s.write(dnsPacket.streamEncode({ type: 'query', id: 9, questions: [{ type: 'A', name: 'web.mynet' }] })));
      let buf = Buffer.alloc(0);
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          s.destroy();
          res(buf);
        }
      });
      s.on('error', rej);
    });
    assert.deepEqual(dnsPacket.streamDecode(tcp).answers!.map((x) => x.data), ['10.0.0.2', '10.0.0.3']);
    // Internal networks: no upstreams -> NXDOMAIN, nothing forwarded.
    upstreams = [];
    assert.equal(dnsPacket.decode((await srv.answer(query('example.org'), '127.0.0.1', 'udp'))!).rcode, 'NXDOMAIN');
    // A dead upstream: SERVFAIL after the timeout.
    upstreams = ['127.0.0.1:1'];
    assert.equal(dnsPacket.decode((await srv.answer(query('example.org'), '127.0.0.1', 'udp'))!).rcode, 'SERVFAIL');
  } finally {
    await srv.stop();
    up.close();
  }
});

test('userland proxy: relays TCP, reports a busy port as FailedPrecondition', async () => {
  const backend = createServer((s) => s.end('hello-proxy'));
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', () => r()));
  const bport = (backend.address() as AddressInfo).port;
  const p = new PortProxy({ proto: 'tcp', hostIp: '127.0.0.1', hostPort: 0, containerIp: '127.0.0.1', containerPort: bport });
  await p.start();
  try {
    const got = await new Promise<string>((res, rej) => {
      const s = createConnection({ host: '127.0.0.1', port: p.port });
      let d = '';
      s.on('data', (b: Buffer) => (d += b.toString()));
      s.on('end', () => res(d));
      s.on('error', rej);
    });
    assert.equal(got, 'hello-proxy');
    const clash = new PortProxy({ proto: 'tcp', hostIp: '127.0.0.1', hostPort: p.port, containerIp: '127.0.0.1', containerPort: bport });
    await assert.rejects(clash.start(), (e: unknown) => isKind(e, 'FailedPrecondition') && /already allocated/.test((e as Error).message));
  } finally {
    await p.stop();
    backend.close();
  }
});

test('userland proxy: relays UDP both ways', async () => {
  const echo = createSocket('udp4');
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', () => r()));
  echo.on('message', (m, ri) => echo.send(Buffer.concat([Buffer.from('echo:'), m]), ri.port, ri.address));
  const p = new PortProxy({ proto: 'udp', hostIp: '127.0.0.1', hostPort: 0, containerIp: '127.0.0.1', containerPort: echo.address().port });
  await p.start();
  const c = createSocket('udp4');
  try {
    const got = await new Promise<string>((res) => {
      c.on('message', (m) => res(m.toString()));
      c.send('ping', p.port, '127.0.0.1');
    });
    assert.equal(got, 'echo:ping');
  } finally {
    c.close();
    await p.stop();
    echo.close();
  }
});

test('routedElsewhere: a dead daemon\'s subnet that another device routes now is not its to sweep', () => {
  const routes = [
    'default via 192.0.2.1 dev eth0 ',
    '10.88.0.0/16 dev cni-podman0 proto kernel scope link src 10.88.0.1 linkdown ',
    '10.124.64.0/24 dev btdead proto kernel scope link src 10.124.64.1 ',
    '10.123.40.0/24 dev btlive proto kernel scope link src 10.123.40.1 ',
    'local 10.88.0.1 dev cni-podman0 table local proto kernel scope host src 10.88.0.1 ',
  ].join('\n');
  assert.equal(routedElsewhere(routes, '10.124.64.0/24', ['btdead']), false, 'still on its own bridge');
  assert.equal(routedElsewhere(routes, '10.123.40.0/24', ['btdead']), true, 'taken by a live bridge');
  assert.equal(routedElsewhere(routes, '10.123.40.128/25', ['btdead']), true, 'overlapping counts');
  assert.equal(routedElsewhere(routes, '10.125.0.0/24', ['btdead']), false, 'routed by nobody');
  assert.equal(routedElsewhere(routes, '10.88.5.0/24', []), true, 'inside another network');
});
