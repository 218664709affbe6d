// BridgeNetworkService as root, without containers: each "container" is the sandbox's network
// namespace with busybox processes started in it by nsenter. Every test daemon-equivalent uses
// its own bridge names, subnets (10.123.x.0/24) and iptables chain prefix, and the leak check
// at the end asserts no veth, netns, bridge or chain is left.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, mkdir, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { BridgeNetworkService } from '../../src/network/bridge-network-service.ts';
import { RealHost } from '../../src/host/host.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { isKind } from '../../src/core/errors.ts';
import { CniRunner, bridgeConfig, firewallConfig, loopbackConfig, syntheticResult } from '../../src/network/cni.ts';
import { run } from '../helpers/fixtures.ts';

const isRoot = process.getuid?.() === 0;
const tag = randomBytes(3).toString('hex');
const base = 10 + Math.floor(Math.random() * 200);
const nets = { def: base, a: base + 1, b: base + 2, int: base + 3, out: base + 4 };
let root: string;
let svc: BridgeNetworkService;
const host = new RealHost();
const children: ChildProcess[] = [];
const extHostNs = `berth-test-${tag}`;
const extVeth = `bx${tag}`;

/** `run` (the fixtures' spawner) with the short field names these tests use. */
async function sh(cmd: string, args: string[], input = ''): Promise<{ code: number; out: string; err: string }> {
  const r = await run(cmd, args, { input });
  return { code: r.code, out: r.stdout, err: r.stderr };
}

/** A long-running busybox process in a namespace (killed by PID in after()). */
function daemonIn(netns: string, args: string[]): ChildProcess {
  const c = spawn('nsenter', [`--net=${netns}`, '/bin/busybox', ...args], { stdio: 'ignore' });
  children.push(c);
  return c;
}

/** Run busybox in the namespace with the sandbox's resolv.conf bind-mounted over /etc/resolv.conf. */
function inSandbox(netns: string, resolvConf: string, script: string) {
  return sh('nsenter', [`--net=${netns}`, 'unshare', '-m', '/bin/busybox', 'sh', '-c', `mount --bind ${resolvConf} /etc/resolv.conf && ${script}`]);
}

async function waitPort(netns: string, ip: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await sh('nsenter', [`--net=${netns}`, '/bin/busybox', 'nc', '-w', '1', ip, String(port)]);
    if (r.code === 0) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`port ${ip}:${port} never opened`);
}

function tcpGet(hostIp: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = createConnection({ host: hostIp, port }, () => s.write(`GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n`));
    let data = '';
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
    s.on('data', (b: Buffer) => (data += b.toString()));
    s.on('end', () => resolve(data));
    s.on('error', reject);
  });
}

before(async () => {
  if (!isRoot) return;
  root = await mkdtemp(join(tmpdir(), 'berth-net-'));
  svc = new BridgeNetworkService({
    host, dataRoot: join(root, 'data'), execRoot: join(root, 'exec'), log: createLogger({ out: () => {} }),
    bridgeName: `bt${tag}`, bridgeCidr: `10.123.${nets.def}.1/24`, chainPrefix: `BT-${tag}`, upstreams: [],
  });
  await svc.start();
  // A second test host: a namespace with a veth pair to the host, on its own /30-ish subnet.
  await sh('ip', ['netns', 'add', extHostNs]);
  await sh('ip', ['link', 'add', extVeth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', extHostNs]);
  await sh('ip', ['addr', 'add', `10.123.${nets.out}.1/24`, 'dev', extVeth]);
  await sh('ip', ['link', 'set', extVeth, 'up']);
  await sh('ip', ['-n', extHostNs, '-batch', '-'], `link set lo up\naddr add 10.123.${nets.out}.2/24 dev eth0\nlink set eth0 up\nroute add default via 10.123.${nets.out}.1\n`);
});

after(async () => {
  if (!isRoot) return;
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await sh('ip', ['netns', 'del', extHostNs]);
  await sh('ip', ['link', 'del', extVeth]);
  if (svc) {
    for (const n of await svc.list()) if (!['bridge', 'host', 'none'].includes(n.Name)) await svc.remove(n.Id).catch(() => {});
    await svc.close();
    await svc.destroyAll();
  }
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')[4] ?? '');
  for (const m of mounts) if (m.startsWith(root + '/')) await sh('umount', ['-l', m]);
  await rm(root, { recursive: true, force: true });
});

const req = (id: string, name: string, extra: Partial<Parameters<BridgeNetworkService['setUp']>[0]> = {}) => ({
  containerId: id, name, hostname: id.slice(0, 12), networkMode: 'bridge', filesDir: join(root, 'c', id), ...extra,
});
const cid = () => randomBytes(32).toString('hex');

test('two containers on a user network reach each other by name and alias through the embedded DNS', { skip: !isRoot }, async () => {
  const { Id } = await svc.create({ Name: `na${tag}`, IPAM: { Config: [{ Subnet: `10.123.${nets.a}.0/24` }] } });
  const web = cid();
  const cli = cid();
  const w = await svc.setUp(req(web, 'web', { networkMode: `na${tag}`, endpointsConfig: { [`na${tag}`]: { Aliases: ['www', 'svc'] } } }));
  const c = await svc.setUp(req(cli, 'client', { networkMode: Id }));
  try {
    const wIp = w.settings.Networks[`na${tag}`]!.IPAddress!;
    assert.match(wIp, new RegExp(`^10\\.123\\.${nets.a}\\.\\d+$`));
    assert.equal(c.settings.Networks[`na${tag}`]!.Gateway, `10.123.${nets.a}.1`);
    const rc = await readFile(c.resolvConfPath, 'utf8');
    assert.match(rc, new RegExp(`nameserver 10\\.123\\.${nets.a}\\.1`));
    const hosts = await readFile(w.hostsPath, 'utf8');
    assert.match(hosts, new RegExp(`${wIp.replace(/\./g, '\\.')}\\t${web.slice(0, 12)}`));
    const www = join(root, 'www');
    await mkdir(www, { recursive: true });
    await writeFile(join(www, 'index.html'), 'hello-from-web\n');
    daemonIn(w.netnsPath!, ['httpd', '-f', '-p', '80', '-h', www]);
    await waitPort(w.netnsPath!, wIp, 80);
    for (const name of ['web', 'www', 'svc', `web.na${tag}`, web.slice(0, 12)]) {
      const r = await inSandbox(c.netnsPath!, c.resolvConfPath, `busybox nslookup ${name} 10.123.${nets.a}.1`);
      assert.equal(r.code, 0, `${name}: ${r.out}${r.err}`);
      assert.match(r.out, new RegExp(`Address: ${wIp.replace(/\./g, '\\.')}`), name);
      const g = await inSandbox(c.netnsPath!, c.resolvConfPath, `busybox wget -q -O - http://${name === web.slice(0, 12) ? wIp : name}/index.html`);
      assert.equal(g.out, 'hello-from-web\n', `${name}: ${g.err}`);
    }
    const nx = await inSandbox(c.netnsPath!, c.resolvConfPath, `busybox nslookup nosuchname 10.123.${nets.a}.1`);
    assert.notEqual(nx.code, 0);
    // inspect shows both endpoints
    const net = await svc.inspect(`na${tag}`);
    assert.deepEqual(Object.keys(net.Containers).sort(), [web, cli].sort());
    await assert.rejects(svc.remove(`na${tag}`), (e: unknown) => isKind(e, 'FailedPrecondition'));
  } finally {
    await svc.tearDown(web);
    await svc.tearDown(cli);
  }
  await svc.remove(Id);
});

test('networks are isolated from each other; --internal has no egress', { skip: !isRoot }, async () => {
  await svc.create({ Name: `nb${tag}`, IPAM: { Config: [{ Subnet: `10.123.${nets.b}.0/24` }] } });
  await svc.create({ Name: `ni${tag}`, Internal: true, IPAM: { Config: [{ Subnet: `10.123.${nets.int}.0/24` }] } });
  const a = cid();
  const b = cid();
  const i = cid();
  const sa = await svc.setUp(req(a, 'a'));
  const sb = await svc.setUp(req(b, 'b', { networkMode: `nb${tag}` }));
  const si = await svc.setUp(req(i, 'i', { networkMode: `ni${tag}` }));
  try {
    const aIp = sa.settings.IPAddress;
    assert.match(aIp, new RegExp(`^10\\.123\\.${nets.def}\\.`));
    daemonIn(sa.netnsPath!, ['nc', '-ll', '-p', '7777', '-e', '/bin/busybox', 'echo', 'pong']);
    await waitPort(sa.netnsPath!, aIp, 7777);
    // The second test host is reachable from a non-internal network (egress through NAT)...
    daemonIn(`/run/netns/${extHostNs}`, ['nc', '-ll', '-p', '7778', '-e', '/bin/busybox', 'echo', 'outside']);
    await waitPort(`/run/netns/${extHostNs}`, `10.123.${nets.out}.2`, 7778);
    const eg = await sh('nsenter', [`--net=${sb.netnsPath}`, '/bin/busybox', 'nc', '-w', '2', `10.123.${nets.out}.2`, '7778'], '');
    assert.match(eg.out, /outside/);
    // ...but not from an internal one,
    const ei = await sh('nsenter', [`--net=${si.netnsPath}`, '/bin/busybox', 'nc', '-w', '2', `10.123.${nets.out}.2`, '7778'], '');
    assert.doesNotMatch(ei.out, /outside/);
    // and a container on network b cannot reach one on the default bridge.
    const x = await sh('nsenter', [`--net=${sb.netnsPath}`, '/bin/busybox', 'nc', '-w', '2', aIp, '7777'], '');
    assert.doesNotMatch(x.out, /pong/);
    // A second container on the same network can.
    const a2 = cid();
    const s2 = await svc.setUp(req(a2, 'a2'));
    const ok = await sh('nsenter', [`--net=${s2.netnsPath}`, '/bin/busybox', 'nc', '-w', '2', aIp, '7777'], '');
    assert.match(ok.out, /pong/);
    await svc.tearDown(a2);
  } finally {
    await svc.tearDown(a);
    await svc.tearDown(b);
    await svc.tearDown(i);
  }
  await svc.remove(`nb${tag}`);
  await svc.remove(`ni${tag}`);
});

test('published ports: host loopback and address, a second host; 127.0.0.1 bindings stay local; busy port fails cleanly', { skip: !isRoot }, async () => {
  const www = join(root, 'www2');
  await mkdir(www, { recursive: true });
  await writeFile(join(www, 'index.html'), 'published\n');
  const id = cid();
  const s = await svc.setUp(req(id, 'pub', {
    portBindings: { '80/tcp': [{ HostIp: '', HostPort: '' }], '81/tcp': [{ HostIp: '127.0.0.1', HostPort: '' }] },
    exposedPorts: ['80/tcp', '81/tcp', '9999/udp'],
  }));
  const ip = s.settings.IPAddress;
  try {
    daemonIn(s.netnsPath!, ['httpd', '-f', '-p', '80', '-h', www]);
    daemonIn(s.netnsPath!, ['httpd', '-f', '-p', '81', '-h', www]);
    await waitPort(s.netnsPath!, ip, 80);
    await waitPort(s.netnsPath!, ip, 81);
    const p80 = Number(s.settings.Ports['80/tcp']![0]!.HostPort);
    const p81 = Number(s.settings.Ports['81/tcp']![0]!.HostPort);
    assert.equal(s.settings.Ports['81/tcp']![0]!.HostIp, '127.0.0.1');
    assert.equal(s.settings.Ports['9999/udp'], null);
    assert.ok(p80 > 0 && p81 > 0);
    assert.match(await tcpGet('127.0.0.1', p80), /published/);
    assert.match(await tcpGet('127.0.0.1', p81), /published/);
    assert.match(await tcpGet(`10.123.${nets.out}.1`, p80), /published/, 'host address');
    const fromOut = await sh('ip', ['netns', 'exec', extHostNs, 'timeout', '3', '/bin/busybox', 'wget', '-q', '-O', '-', `http://10.123.${nets.out}.1:${p80}/index.html`]);
    assert.equal(fromOut.out, 'published\n', fromOut.err);
    const local = await sh('ip', ['netns', 'exec', extHostNs, 'timeout', '3', '/bin/busybox', 'wget', '-q', '-O', '-', `http://10.123.${nets.out}.1:${p81}/index.html`]);
    assert.notEqual(local.code, 0, '127.0.0.1-bound port reachable from another host');
    // Routing straight to the container IP from the other host is dropped too.
    await sh('ip', ['-n', extHostNs, 'route', 'add', `10.123.${nets.def}.0/24`, 'via', `10.123.${nets.out}.1`]);
    const direct = await sh('ip', ['netns', 'exec', extHostNs, 'timeout', '3', '/bin/busybox', 'wget', '-q', '-O', '-', `http://${ip}:81/index.html`]);
    assert.notEqual(direct.code, 0, 'container reachable by direct routing');
    // The same host port again: a clear error and nothing half-made.
    const before = svc.live();
    const other = cid();
    await assert.rejects(svc.setUp(req(other, 'busy', { portBindings: { '80/tcp': [{ HostPort: String(p80) }] } })), (e: unknown) => isKind(e, 'FailedPrecondition') && /already allocated/.test((e as Error).message));
    assert.deepEqual(svc.live(), before);
    assert.equal(existsSync(join(root, 'exec', 'netns', other)), false);
  } finally {
    await svc.tearDown(id);
  }
  await svc.settle();
  const rules = await sh('iptables-save', []);
  assert.doesNotMatch(rules.out, new RegExp(`--to-destination ${ip.replace(/\./g, '\\.')}:`));
});

test('none and container modes; connect and disconnect a running container', { skip: !isRoot }, async () => {
  const n = cid();
  const sn = await svc.setUp(req(n, 'nonet', { networkMode: 'none' }));
  const links = await sh('nsenter', [`--net=${sn.netnsPath}`, 'ip', '-o', 'link']);
  assert.deepEqual(links.out.trim().split('\n').map((l) => l.split(':')[1]!.trim()), ['lo']);
  assert.deepEqual(Object.keys(sn.settings.Networks), ['none']);
  const a = cid();
  const sa = await svc.setUp(req(a, 'owner'));
  const j = cid();
  const sj = await svc.setUp(req(j, 'joiner', { networkMode: `container:${a}` }));
  assert.equal(sj.netnsPath, sa.netnsPath);
  const h = cid();
  const sh2 = await svc.setUp(req(h, 'hostnet', { networkMode: 'host' }));
  assert.equal(sh2.netnsPath, undefined);
  const { Id } = await svc.create({ Name: `nc${tag}`, IPAM: { Config: [{ Subnet: `10.123.${nets.b}.0/24` }] } });
  const info = await svc.connect(a, `nc${tag}`, { Aliases: ['late'], IPAMConfig: { IPv4Address: `10.123.${nets.b}.77` } });
  assert.equal(info?.ipAddress, `10.123.${nets.b}.77`);
  const addrs = await sh('nsenter', [`--net=${sa.netnsPath}`, 'ip', '-o', '-4', 'addr']);
  assert.match(addrs.out, new RegExp(`eth1\\s+inet 10\\.123\\.${nets.b}\\.77/24`));
  await assert.rejects(svc.connect(a, `nc${tag}`), (e: unknown) => isKind(e, 'Forbidden'));
  const lookedUp = await sh('nsenter', [`--net=${sa.netnsPath}`, '/bin/busybox', 'nslookup', 'late', `10.123.${nets.b}.1`]);
  assert.match(lookedUp.out, new RegExp(`10\\.123\\.${nets.b}\\.77`));
  assert.equal((await cniRules(`10.123.${nets.b}.77`)).length, 2, 'connect: firewall plugin ADD for the new address');
  await svc.disconnect(a, `nc${tag}`);
  const after = await sh('nsenter', [`--net=${sa.netnsPath}`, 'ip', '-o', '-4', 'addr']);
  assert.doesNotMatch(after.out, /eth1/);
  assert.deepEqual(await cniRules(`10.123.${nets.b}.77`), [], 'disconnect: firewall plugin DEL');
  for (const x of [n, a, j, h]) await svc.forget(x);
  await svc.remove(Id);
});

/** The firewall plugin's CNI-FORWARD rules for one address. */
async function cniRules(ip: string): Promise<string[]> {
  const r = await sh('iptables', ['-w', '-S', 'CNI-FORWARD']);
  return r.out.split('\n').filter((l) => l.includes(` ${ip}/32 `));
}

test('the CNI plugins made the interfaces and the firewall accept; DEL removes them; FORWARD order kept', { skip: !isRoot }, async () => {
  const id = cid();
  const s = await svc.setUp(req(id, 'cni'));
  const ip = s.settings.IPAddress;
  let veth = '';
  try {
    // The firewall plugin's accept for this address, chained on the bridge plugin's result.
    assert.deepEqual(await cniRules(ip), [
      `-A CNI-FORWARD -d ${ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
      `-A CNI-FORWARD -s ${ip}/32 -j ACCEPT`,
    ]);
    // The bridge plugin's veth: on berth's bridge, hairpin on (berth never set it itself),
    // the container end with berth's address and the MAC derived from it, the default route.
    veth = svc.live().veths.find((v) => v) ?? '';
    assert.match(veth, /^veth[0-9a-f]{8}$/, 'host end named by the bridge plugin');
    assert.match((await sh('ip', ['-o', 'link', 'show', 'master', `bt${tag}`])).out, new RegExp(`: ${veth}@`));
    assert.equal((await readFile(`/sys/class/net/${veth}/brport/hairpin_mode`, 'utf8')).trim(), '1');
    const inside = await sh('nsenter', [`--net=${s.netnsPath}`, 'ip', '-o', 'addr', 'show', 'eth0']);
    assert.match(inside.out, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/24`));
    const link = await sh('nsenter', [`--net=${s.netnsPath}`, 'ip', '-o', 'link', 'show', 'eth0']);
    assert.match(link.out, new RegExp(`link/ether ${s.settings.MacAddress} `));
    assert.match((await sh('nsenter', [`--net=${s.netnsPath}`, 'ip', 'route'])).out, new RegExp(`default via 10\\.123\\.${nets.def}\\.1 dev eth0`));
    assert.match((await sh('nsenter', [`--net=${s.netnsPath}`, 'ip', '-o', 'link', 'show', 'lo'])).out, /[<,]UP[,>]/, 'lo up (loopback plugin)');
    // berth's chain decides before the plugin's accept.
    const fwd = (await sh('iptables', ['-w', '-S', 'FORWARD'])).out.split('\n');
    const own = fwd.indexOf(`-A FORWARD -j BT-${tag}-FWD`);
    assert.ok(own >= 0 && own < fwd.findIndex((l) => l.endsWith('-j CNI-FORWARD')), fwd.join('\n'));
  } finally {
    await svc.tearDown(id);
    await svc.settle();
  }
  assert.deepEqual(await cniRules(ip), [], 'firewall DEL removed the accept');
  assert.equal(existsSync(`/sys/class/net/${veth}`), false, 'bridge DEL removed the veth');
  // DEL again, namespace gone (CNI_NETNS empty): the plugins succeed with nothing to do.
  const cni = new CniRunner(host);
  const prev = syntheticResult(`${ip}/24`, `10.123.${nets.def}.1`);
  const rt = { containerId: id, netns: '', ifname: 'eth0' };
  await cni.del(firewallConfig('berth-bridge', prev), rt);
  await cni.del({ ...bridgeConfig({ network: 'berth-bridge', bridge: `bt${tag}`, address: `${ip}/24`, gateway: `10.123.${nets.def}.1`, mac: s.settings.MacAddress, defaultRoute: true }), prevResult: prev }, rt);
  await cni.del(loopbackConfig(), { ...rt, ifname: 'lo' });
  // A namespace that vanished behind berth's back (unmounted): teardown still DELs the rules.
  const gone = cid();
  const sg = await svc.setUp(req(gone, 'gone'));
  assert.equal((await cniRules(sg.settings.IPAddress)).length, 2);
  await sh('umount', [sg.netnsPath!]);
  await svc.tearDown(gone);
  await svc.settle();
  assert.deepEqual(await cniRules(sg.settings.IPAddress), [], 'firewall DEL ran with the namespace gone');
  assert.equal(existsSync(sg.netnsPath!), false);
});

test('rules removed behind berth\'s back (firewall reload, iptables -F of its chain) are restored', { skip: !isRoot }, async () => {
  const id = cid();
  const s = await svc.setUp(req(id, 'fw', { portBindings: { '80/tcp': [{ HostPort: '' }] } }));
  try {
    assert.equal(await svc.checkRulesNow(), false, 'nothing to restore yet');
    await sh('iptables', ['-w', '-D', 'FORWARD', '-j', `BT-${tag}-FWD`]);
    await sh('iptables', ['-w', '-t', 'nat', '-F', `BT-${tag}-DNAT`]);
    await sh('iptables', ['-w', '-D', 'CNI-FORWARD', '-s', `${s.settings.IPAddress}/32`, '-j', 'ACCEPT']);
    assert.equal(await svc.checkRulesNow(), true);
    assert.equal((await cniRules(s.settings.IPAddress)).length, 2, 'the firewall plugin\'s accept re-added');
    assert.equal((await sh('iptables', ['-w', '-C', 'FORWARD', '-j', `BT-${tag}-FWD`])).code, 0);
    const nat = await sh('iptables-save', ['-t', 'nat']);
    assert.match(nat.out, new RegExp(`--to-destination ${s.settings.IPAddress.replace(/\./g, '\\.')}:80`));
  } finally {
    await svc.tearDown(id);
    await svc.settle();
  }
});

test('restart keeps networks and leases; nothing leaks', { skip: !isRoot }, async () => {
  const { Id } = await svc.create({ Name: `nr${tag}`, Labels: { keep: 'yes' }, IPAM: { Config: [{ Subnet: `10.123.${nets.a}.0/24` }] } });
  const id = cid();
  const s = await svc.setUp(req(id, 'persist', { networkMode: `nr${tag}` }));
  const ip = s.settings.Networks[`nr${tag}`]!.IPAddress;
  await svc.close();
  svc = new BridgeNetworkService({
    host, dataRoot: join(root, 'data'), execRoot: join(root, 'exec'), log: createLogger({ out: () => {} }),
    bridgeName: `bt${tag}`, bridgeCidr: `10.123.${nets.def}.1/24`, chainPrefix: `BT-${tag}`, upstreams: [],
  });
  await svc.start();
  const net = await svc.inspect(`nr${tag}`);
  assert.equal(net.Id, Id);
  assert.deepEqual(net.Labels, { keep: 'yes' });
  assert.equal(net.Containers[id]?.IPv4Address, `${ip}/24`);
  // A new container does not get the leased address.
  const other = cid();
  const so = await svc.setUp(req(other, 'other', { networkMode: `nr${tag}` }));
  assert.notEqual(so.settings.Networks[`nr${tag}`]!.IPAddress, ip);
  await svc.tearDown(other);
  await svc.tearDown(id);
  await svc.settle();
  await svc.remove(Id);
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  // Leak check: no sandbox, no netns file, no veth of ours, no netns mount under the root.
  assert.deepEqual(svc.live(), { sandboxes: 0, veths: [], netns: [] });
  const mounts = await readFile('/proc/self/mountinfo', 'utf8');
  assert.doesNotMatch(mounts, new RegExp(root.replace(/[.]/g, '\\.')));
  // Namespace destruction is asynchronous: wait for the kernel to drop the veths.
  let links = '';
  for (let i = 0; i < 50; i++) {
    links = (await sh('ip', ['-o', 'link', 'show', 'master', `bt${tag}`])).out;
    if (!links.trim()) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(links.trim(), '', 'veths left on the bridge');
  // No firewall plugin rule for any address of this file's subnets.
  const cni = (await sh('iptables', ['-w', '-S', 'CNI-FORWARD'])).out;
  assert.doesNotMatch(cni, new RegExp(`10\\.123\\.(${Object.values(nets).join('|')})\\.\\d+/32`), 'CNI-FORWARD rules left');
});
