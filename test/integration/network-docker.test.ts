// Networks through the real docker CLI against berthd: user networks with DNS by name and
// alias, published ports from the host and from a second test host (a netns with a veth pair),
// 127.0.0.1 bindings, isolation, --internal, none/host/container modes, connect/disconnect,
// and leak checks (veths, netns, rules) once everything is removed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { startDaemon, importBusybox, docker, api, isRoot, run, type TestDaemon } from '../helpers/fixtures.ts';
import { contains, parseCidr, parseIp } from '../../src/network/ipv4.ts';

const tag = randomBytes(3).toString('hex');
const base = 10 + Math.floor(Math.random() * 200);
// 10.122.x: network-service.test.ts takes 10.123.x; the two files may run side by side, and a
// shared second octet let their random ranges overlap (a failed egress check, then "Pool overlaps").
const sub = (i: number) => `10.122.${base + i}`;
const extNs = `berth-test-${tag}`;
const extVeth = `bx${tag}`;
let d: TestDaemon;

/** `run` (the fixtures' spawner) with the short field names these tests use. */
async function sh(cmd: string, args: string[], input = ''): Promise<{ code: number; out: string; err: string }> {
  const r = await run(cmd, args, { input });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

async function ok(args: string[]): Promise<string> {
  const r = await docker(d, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

function httpGet(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host, port }, () => s.write('GET /hostname HTTP/1.0\r\n\r\n'));
    let data = '';
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
    s.on('data', (b: Buffer) => (data += b.toString()));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

/** busybox wget from the second test host (busybox's own -T segfaults: use timeout(1)). */
const fromOutside = (url: string) => sh('ip', ['netns', 'exec', extNs, 'timeout', '3', '/bin/busybox', 'wget', '-q', '-O', '-', url]);

async function waitHttp(container: string, url: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const r = await docker(d, ['exec', container, 'wget', '-q', '-O', '/dev/null', url]);
    if (r.code === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} never answered in ${container}`);
}

before(async () => {
  if (!isRoot) return;
  d = await startDaemon();
  await importBusybox(d);
  await sh('ip', ['netns', 'add', extNs]);
  await sh('ip', ['link', 'add', extVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', extNs]);
  await sh('ip', ['addr', 'add', `${sub(9)}.1/24`, 'dev', extVeth]);
  await sh('ip', ['link', 'set', extVeth, 'up']);
  await sh('ip', ['-n', extNs, '-batch', '-'], `link set lo up\naddr add ${sub(9)}.2/24 dev eth0\nlink set eth0 up\nroute add default via ${sub(9)}.1\n`);
});

after(async () => {
  if (!isRoot) return;
  await sh('ip', ['netns', 'del', extNs]);
  await sh('ip', ['link', 'del', extVeth]);
  await d?.cleanup();
});

test('docker network create/ls/inspect/rm with Docker shapes', { skip: !isRoot }, async () => {
  const id = await ok(['network', 'create', '--subnet', `${sub(1)}.0/24`, '--gateway', `${sub(1)}.254`, '--label', 'team=net', `n1${tag}`]);
  assert.match(id, /^[0-9a-f]{64}$/);
  const ls = await ok(['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
  for (const n of ['bridge bridge', 'host host', 'none null', `n1${tag} bridge`]) assert.ok(ls.split('\n').includes(n), ls);
  const [inspected] = JSON.parse(await ok(['network', 'inspect', `n1${tag}`]));
  assert.equal(inspected.Id, id);
  assert.deepEqual(inspected.IPAM.Config, [{ Subnet: `${sub(1)}.0/24`, Gateway: `${sub(1)}.254` }]);
  assert.deepEqual(inspected.Labels, { team: 'net' });
  assert.equal(inspected.Internal, false);
  const dup = await docker(d, ['network', 'create', `n1${tag}`]);
  assert.notEqual(dup.code, 0);
  assert.match(dup.stderr, /already exists/);
  const overlap = await docker(d, ['network', 'create', '--subnet', `${sub(1)}.0/25`, `n1b${tag}`]);
  assert.notEqual(overlap.code, 0);
  const rmDefault = await docker(d, ['network', 'rm', 'bridge']);
  assert.notEqual(rmDefault.code, 0);
  assert.match(rmDefault.stderr, /pre-defined/);
  await ok(['network', 'rm', `n1${tag}`]);
  const gone = await docker(d, ['network', 'inspect', `n1${tag}`]);
  assert.notEqual(gone.code, 0);
  assert.match(gone.stderr, /not found/);
  const r = await api(d.socket, 'POST', '/networks/prune');
  assert.equal(r.status, 200);
  assert.ok(Array.isArray(r.json().NetworksDeleted));
  const ev = await api(d.socket, 'GET', `/events?since=0&until=${Math.floor(Date.now() / 1000) + 1}&filters=${encodeURIComponent(JSON.stringify({ type: ['network'] }))}`);
  const actions = ev.text().split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.Actor.ID === id).map((e) => e.Action);
  assert.deepEqual(actions, ['create', 'destroy']);
});

test('containers on a user network talk by name and alias; other networks are isolated; --internal has no egress', { skip: !isRoot }, async () => {
  await ok(['network', 'create', '--subnet', `${sub(2)}.0/24`, `app${tag}`]);
  await ok(['network', 'create', '--subnet', `${sub(3)}.0/24`, `other${tag}`]);
  await ok(['network', 'create', '--internal', '--subnet', `${sub(4)}.0/24`, `int${tag}`]);
  await ok(['run', '-d', '--name', `web${tag}`, '--hostname', 'webhost', '--network', `app${tag}`, '--network-alias', 'api', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
  try {
    const ip = await ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "app${tag}").IPAddress}}`, `web${tag}`]);
    assert.match(ip, new RegExp(`^${sub(2).replace(/\./g, '\\.')}\\.\\d+$`));
    await waitHttp(`web${tag}`, 'http://127.0.0.1/hostname');
    const byName = await ok(['run', '--rm', '--network', `app${tag}`, 'busybox', 'sh', '-c', `cat /etc/resolv.conf; wget -q -O - http://web${tag}/hostname; wget -q -O - http://api/hostname`]);
    assert.match(byName, new RegExp(`nameserver ${sub(2).replace(/\./g, '\\.')}\\.1`));
    assert.equal(byName.split('\n').filter((l) => l === 'webhost').length, 2, byName);
    // Another network: the name does not resolve and the address is unreachable.
    const isolated = await docker(d, ['run', '--rm', '--network', `other${tag}`, 'busybox', 'sh', '-c', `nslookup web${tag} >/dev/null 2>&1 && echo RESOLVED; timeout 3 wget -q -O - http://${ip}/hostname || echo UNREACHABLE`]);
    assert.doesNotMatch(isolated.stdout, /RESOLVED|webhost/);
    assert.match(isolated.stdout, /UNREACHABLE/);
    // Egress: the second test host is reachable from a normal network, not from an internal one.
    await sh('ip', ['netns', 'exec', extNs, '/bin/busybox', 'httpd', '-p', `${sub(9)}.2:8081`, '-h', '/etc']);
    const egress = await ok(['run', '--rm', '--network', `app${tag}`, 'busybox', 'timeout', '3', 'wget', '-q', '-O', '-', `http://${sub(9)}.2:8081/hostname`]);
    assert.ok(egress.length > 0);
    const internal = await docker(d, ['run', '--rm', '--network', `int${tag}`, 'busybox', 'sh', '-c', `timeout 3 wget -q -O - http://${sub(9)}.2:8081/hostname || echo NOEGRESS`]);
    assert.match(internal.stdout, /NOEGRESS/);
  } finally {
    await docker(d, ['rm', '-f', `web${tag}`]);
    const pids = await sh('ip', ['netns', 'pids', extNs]);
    for (const p of pids.out.split('\n').filter(Boolean)) process.kill(Number(p), 'SIGKILL');
  }
  for (const n of ['app', 'other', 'int']) await ok(['network', 'rm', `${n}${tag}`]);
});

test('published ports: -p and -P from the host and a second host; 127.0.0.1 bindings stay local; busy ports fail cleanly', { skip: !isRoot }, async () => {
  let p80 = 0;
  await ok(['run', '-d', '--name', `pub${tag}`, '--hostname', 'pubhost', '-p', '80', '-p', '127.0.0.1::81', '--expose', '82', '-P', 'busybox', 'sh', '-c', 'httpd -p 80 -h /etc; httpd -p 81 -h /etc; httpd -f -p 82 -h /etc']);
  try {
    await waitHttp(`pub${tag}`, 'http://127.0.0.1:82/hostname');
    const ports = JSON.parse(await ok(['inspect', '-f', '{{json .NetworkSettings.Ports}}', `pub${tag}`]));
    p80 = Number(ports['80/tcp'][0].HostPort);
    const p81 = Number(ports['81/tcp'][0].HostPort);
    const p82 = Number(ports['82/tcp'][0].HostPort);
    assert.equal(ports['81/tcp'][0].HostIp, '127.0.0.1');
    assert.ok(p80 && p81 && p82);
    const port = await ok(['port', `pub${tag}`, '80']);
    assert.match(port, new RegExp(`0\\.0\\.0\\.0:${p80}`));
    for (const p of [p80, p81, p82]) assert.match(await httpGet('127.0.0.1', p), /pubhost/);
    assert.match(await httpGet(`${sub(9)}.1`, p80), /pubhost/);
    assert.equal((await fromOutside(`http://${sub(9)}.1:${p80}/hostname`)).out, 'pubhost\n');
    assert.equal((await fromOutside(`http://${sub(9)}.1:${p82}/hostname`)).out, 'pubhost\n');
    assert.notEqual((await fromOutside(`http://${sub(9)}.1:${p81}/hostname`)).code, 0, '127.0.0.1-bound port reachable from another host');
    // The same host port for another container: a clear error, nothing half-made.
    const bridge = JSON.parse(await ok(['network', 'inspect', 'bridge']))[0].Options['com.docker.network.bridge.name'];
    const enslaved = async () => (await sh('ip', ['-o', 'link', 'show', 'master', bridge])).out.trim().split('\n').length;
    const before = await enslaved();
    const busy = await docker(d, ['run', '--name', `busy${tag}`, '-p', `${p80}:80`, 'busybox', 'true']);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, /already allocated/);
    await ok(['rm', '-f', `busy${tag}`]);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(await enslaved(), before);
  } finally {
    await ok(['rm', '-f', `pub${tag}`]);
  }
  // Rules go off the critical path, just after rm returns.
  let nat = '';
  for (let i = 0; i < 50; i++) {
    nat = (await sh('iptables-save', ['-t', 'nat'])).out;
    if (!nat.includes(`--dport ${p80} -j DNAT`)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.doesNotMatch(nat, new RegExp(`--dport ${p80} -j DNAT`), 'DNAT rule left after rm');
});

test('none, host and container network modes; connect and disconnect a running container', { skip: !isRoot }, async () => {
  const none = await ok(['run', '--rm', '--network', 'none', 'busybox', 'ip', '-o', 'link']);
  assert.deepEqual(none.split('\n').map((l) => l.split(':')[1]!.trim()), ['lo']);
  const hostLinks = await ok(['run', '--rm', '--network', 'host', 'busybox', 'ip', '-o', 'link']);
  assert.match(hostLinks, new RegExp(extVeth));
  await ok(['run', '-d', '--name', `own${tag}`, 'busybox', 'sleep', '60']);
  try {
    const ownIp = await ok(['inspect', '-f', '{{.NetworkSettings.IPAddress}}', `own${tag}`]);
    const shared = await ok(['run', '--rm', '--network', `container:own${tag}`, 'busybox', 'ip', '-o', '-4', 'addr', 'show', 'eth0']);
    assert.match(shared, new RegExp(ownIp.replace(/\./g, '\\.')));
    await ok(['network', 'create', '--subnet', `${sub(5)}.0/24`, `late${tag}`]);
    await ok(['network', 'connect', '--alias', 'later', '--ip', `${sub(5)}.50`, `late${tag}`, `own${tag}`]);
    const addrs = await ok(['exec', `own${tag}`, 'ip', '-o', '-4', 'addr']);
    assert.match(addrs, new RegExp(`${sub(5).replace(/\./g, '\\.')}\\.50/24`));
    const resolved = await ok(['run', '--rm', '--network', `late${tag}`, 'busybox', 'nslookup', 'later']);
    assert.match(resolved, new RegExp(`${sub(5).replace(/\./g, '\\.')}\\.50`));
    const nets = JSON.parse(await ok(['inspect', '-f', '{{json .NetworkSettings.Networks}}', `own${tag}`]));
    assert.deepEqual(Object.keys(nets).sort(), ['bridge', `late${tag}`].sort());
    const inUse = await docker(d, ['network', 'rm', `late${tag}`]);
    assert.notEqual(inUse.code, 0);
    await ok(['network', 'disconnect', `late${tag}`, `own${tag}`]);
    assert.doesNotMatch(await ok(['exec', `own${tag}`, 'ip', '-o', '-4', 'addr']), new RegExp(sub(5).replace(/\./g, '\\.')));
    await ok(['network', 'rm', `late${tag}`]);
  } finally {
    await docker(d, ['rm', '-f', `own${tag}`]);
  }
});

test('--dns, --dns-search, --dns-option and --add-host in /etc/resolv.conf and /etc/hosts', { skip: !isRoot }, async () => {
  const onBridge = await ok(['run', '--rm', '--hostname', 'h1', '--dns', '192.0.2.53', '--dns-search', 'example.test', '--dns-option', 'ndots:3', '--add-host', 'db:10.1.2.3', '--add-host', 'gw:host-gateway', 'busybox', 'sh', '-c', 'cat /etc/resolv.conf /etc/hosts /etc/hostname']);
  assert.match(onBridge, /^search example\.test\nnameserver 192\.0\.2\.53\noptions ndots:3\n/);
  assert.match(onBridge, /\n10\.1\.2\.3\tdb\n/);
  const gw = JSON.parse(await ok(['network', 'inspect', 'bridge']))[0].IPAM.Config[0].Gateway as string;
  assert.match(onBridge, new RegExp(`\\n${gw.replace(/\./g, '\\.')}\\tgw\\n`));
  assert.match(onBridge, /\th1\nh1$/);
  // On a user network the container asks the embedded DNS; --dns becomes its upstream.
  await ok(['network', 'create', '--subnet', `${sub(7)}.0/24`, `dn${tag}`]);
  try {
    const onUser = await ok(['run', '--rm', '--network', `dn${tag}`, '--dns', '192.0.2.53', 'busybox', 'cat', '/etc/resolv.conf']);
    assert.match(onUser, new RegExp(`nameserver ${sub(7).replace(/\./g, '\\.')}\\.1\\n`));
    assert.doesNotMatch(onUser, /192\.0\.2\.53/);
  } finally {
    await ok(['network', 'rm', `dn${tag}`]);
  }
});

test('berthd restart keeps networks, leases, names and published ports', { skip: !isRoot }, async () => {
  await ok(['network', 'create', '--subnet', `${sub(6)}.0/24`, `rs${tag}`]);
  await ok(['run', '-d', '--name', `rweb${tag}`, '--hostname', 'rweb', '--network', `rs${tag}`, '-p', '80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
  try {
    const port = Number((await ok(['port', `rweb${tag}`, '80'])).split(':').pop());
    await waitHttp(`rweb${tag}`, 'http://127.0.0.1/hostname');
    assert.match(await httpGet('127.0.0.1', port), /rweb/);
    const ip = await ok(['inspect', '-f', `{{(index .NetworkSettings.Networks "rs${tag}").IPAddress}}`, `rweb${tag}`]);
    await d.restart();
    assert.match(await httpGet('127.0.0.1', port), /rweb/, 'published port after restart');
    const [net] = JSON.parse(await ok(['network', 'inspect', `rs${tag}`]));
    assert.equal(Object.values(net.Containers as Record<string, { IPv4Address: string }>)[0]?.IPv4Address, `${ip}/24`);
    const other = await ok(['run', '--rm', '--network', `rs${tag}`, 'busybox', 'sh', '-c', `ip -o -4 addr show eth0; wget -q -O - http://rweb${tag}/hostname`]);
    assert.match(other, /rweb$/);
    assert.doesNotMatch(other, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`), 'a leased address was handed out again');
  } finally {
    await docker(d, ['rm', '-f', `rweb${tag}`]);
  }
  await ok(['network', 'rm', `rs${tag}`]);
});

/** The CNI firewall plugin's CNI-FORWARD rules for addresses in `subnet`. */
async function cniRulesIn(subnet: string): Promise<string[]> {
  const net = parseCidr(subnet);
  return (await sh('iptables', ['-w', '-S', 'CNI-FORWARD'])).out.split('\n').filter((l) => {
    const m = /(?:-s|-d) (\d+\.\d+\.\d+\.\d+)\/32 /.exec(l);
    return m !== null && contains(net, parseIp(m[1]!));
  });
}

test('nothing leaks: no veth on the bridges, no netns mounts, no DNAT rules, no CNI rules, after 20 run --rm', { skip: !isRoot }, async () => {
  const bridgeNet = JSON.parse(await ok(['network', 'inspect', 'bridge']))[0];
  const subnet = bridgeNet.IPAM.Config[0].Subnet as string;
  // While a container runs, the firewall plugin's accept for its address exists (its veth and
  // address were made by the CNI bridge plugin, which this rule is chained on); rm removes it.
  const id = (await ok(['run', '-d', 'busybox', 'sleep', '60'])).trim();
  const ip = JSON.parse(await ok(['inspect', id]))[0].NetworkSettings.IPAddress as string;
  assert.deepEqual((await cniRulesIn(subnet)).map((l) => l.replace(ip, 'IP')), [
    '-A CNI-FORWARD -d IP/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
    '-A CNI-FORWARD -s IP/32 -j ACCEPT',
  ]);
  await ok(['rm', '-f', id]);
  for (let i = 0; i < 20; i++) await ok(['run', '--rm', 'busybox', 'true']);
  const bridge = bridgeNet.Options['com.docker.network.bridge.name'];
  let enslaved = '';
  for (let i = 0; i < 50; i++) {
    enslaved = (await sh('ip', ['-o', 'link', 'show', 'master', bridge])).out.trim();
    if (!enslaved) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(enslaved, '', 'veths left on the default bridge');
  let mounts = '';
  for (let i = 0; i < 50; i++) {
    mounts = await readFile('/proc/self/mountinfo', 'utf8');
    if (!mounts.includes(`${d.execRoot}/netns/`)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.doesNotMatch(mounts, new RegExp(`${d.execRoot}/netns/`));
  const nat = await sh('iptables-save', ['-t', 'nat']);
  assert.doesNotMatch(nat.out.split('\n').filter((l) => l.includes(`-${bridge}-DNAT`) && l.includes('--to-destination')).join('\n'), /DNAT/);
  // DEL runs after `run --rm` returns: give the last teardowns a moment.
  let left: string[] = [];
  for (let i = 0; i < 50; i++) {
    left = await cniRulesIn(subnet);
    if (!left.length) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.deepEqual(left, [], 'CNI-FORWARD rules left for the bridge subnet');
});
