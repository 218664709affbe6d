// BridgeNetworkService against a FakeHost: what it asks the kernel and the CNI plugins for (the
// namespace by unshare, loopback + bridge + firewall ADD with berth's address, DEL with the
// stored results; one iptables-restore per change), IPAM and validation, rollback, persistence
// across restarts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BridgeNetworkService } from '../../src/network/bridge-network-service.ts';
import { FakeHost, type RunOptions, type RunResult } from '../../src/host/host.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { isKind } from '../../src/core/errors.ts';

interface CniCall { plugin: string; env: Record<string, string | undefined>; conf: Record<string, any> }

/** Records every run with its stdin; answers CNI plugin runs the way the real plugins do. */
class RecordingHost extends FakeHost {
  inputs: Array<{ cmd: string; input: string }> = [];
  cni: CniCall[] = [];
  /** Make the next ADD of this plugin fail with this stdout. */
  fail?: { plugin: string; stdout: string };
  /** DELs wait for this (a slow teardown). */
  delGate?: Promise<void>;
  override async run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.inputs.push({ cmd: [file, ...args].join(' '), input: String(opts?.input ?? '') });
    if (file.startsWith('/usr/lib/cni/')) {
      const env = { ...(opts?.env ?? {}) };
      const conf = JSON.parse(String(opts?.input));
      this.cni.push({ plugin: file.slice('/usr/lib/cni/'.length), env, conf });
      if (env.CNI_COMMAND === 'DEL') {
        await this.delGate;
        return { code: 0, stdout: '', stderr: '' };
      }
      const fail = this.fail;
      if (fail && fail.plugin === conf.type) return { code: 1, stdout: fail.stdout, stderr: '' };
      let result: object = conf.prevResult ?? { cniVersion: '1.0.0' };
      if (conf.type === 'bridge') {
        result = {
          cniVersion: '1.0.0',
          interfaces: [{ name: conf.bridge, mac: '02:00:00:00:00:01' }, { name: `veth${randomBytes(4).toString('hex')}`, mac: '02:00:00:00:00:02' }, { name: env.CNI_IFNAME, mac: conf.runtimeConfig.mac, sandbox: env.CNI_NETNS }],
          ips: conf.ipam.addresses.map((a: { address: string; gateway: string }) => ({ ...a, interface: 2 })),
          routes: conf.ipam.routes,
          dns: {},
        };
      }
      return { code: 0, stdout: JSON.stringify(result), stderr: '' };
    }
    return super.run(file, args, opts);
  }
}

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'berth-netunit-'));
  const host = new RecordingHost();
  const make = () => new BridgeNetworkService({
    host, dataRoot: join(root, 'data'), execRoot: join(root, 'exec'), log: createLogger({ out: () => {} }),
    bridgeName: 'btunit', bridgeCidr: '10.200.0.1/24', chainPrefix: 'BT-unit', embeddedDns: false, upstreams: [],
  });
  const svc = make();
  await svc.start();
  return { root, host, svc, make, async [Symbol.asyncDispose]() { await svc.close(); await rm(root, { recursive: true, force: true }); } };
}
const cid = () => randomBytes(32).toString('hex');

test('predefined networks; create validates names, subnets, gateways, overlaps; rm and prune', async () => {
  await using s = await setup();
  assert.deepEqual((await s.svc.list()).map((n) => n.Name).sort(), ['bridge', 'host', 'none']);
  const br = await s.svc.inspect('bridge');
  assert.deepEqual(br.IPAM.Config, [{ Subnet: '10.200.0.0/24', Gateway: '10.200.0.1' }]);
  assert.equal(br.Options['com.docker.network.bridge.name'], 'btunit');
  const { Id } = await s.svc.create({ Name: 'app', IPAM: { Config: [{ Subnet: '10.201.0.0/24', IPRange: '10.201.0.128/25' }] }, Labels: { a: 'b' } });
  assert.equal((await s.svc.inspect(Id.slice(0, 6))).Name, 'app');
  const bad: Array<[object, string]> = [
    [{ Name: 'app' }, 'AlreadyExists'],
    [{ Name: 'bad name' }, 'InvalidArgument'],
    [{ Name: 'bridge' }, 'Forbidden'],
    [{ Name: 'x', Driver: 'overlay' }, 'InvalidArgument'],
    [{ Name: 'x', IPAM: { Config: [{ Subnet: '10.201.0.0/16' }] } }, 'AlreadyExists'],
    [{ Name: 'x', IPAM: { Config: [{ Subnet: '10.202.0.1/24' }] } }, 'InvalidArgument'],
    [{ Name: 'x', IPAM: { Config: [{ Subnet: '10.202.0.0/24', Gateway: '10.203.0.1' }] } }, 'InvalidArgument'],
    [{ Name: 'x', IPAM: { Config: [{ Subnet: 'fd00::/64' }] } }, 'InvalidArgument'],
  ];
  for (const [req, kind] of bad) await assert.rejects(s.svc.create(req as never), (e: unknown) => isKind(e, kind as never), JSON.stringify(req));
  const auto = await s.svc.inspect((await s.svc.create({ Name: 'auto' })).Id);
  assert.match(auto.IPAM.Config[0]!.Subnet, /^172\.18\.0\.0\/16$/);
  await assert.rejects(s.svc.remove('host'), (e: unknown) => isKind(e, 'Forbidden'));
  assert.deepEqual((await s.svc.prune(new Map([['label', ['a=b']]]))), ['app']);
  await assert.rejects(s.svc.inspect('app'), (e: unknown) => isKind(e, 'NotFound'));
  await s.svc.remove('auto');
  assert.deepEqual(s.host.inputs.filter((i) => i.cmd.startsWith('ip link del')).map((i) => i.cmd).length, 2);
});

test('setUp: netns by unshare, CNI loopback + bridge (berth\'s address, MAC, route) + firewall chained on its result; DEL on teardown', async () => {
  await using s = await setup();
  const a = cid();
  const b = cid();
  const sa = await s.svc.setUp({ containerId: a, name: 'a', hostname: 'ha', networkMode: 'bridge', filesDir: join(s.root, 'a') });
  const sb = await s.svc.setUp({ containerId: b, name: 'b', hostname: 'hb', networkMode: 'default', filesDir: join(s.root, 'b'), dns: ['192.0.2.53'], extraHosts: ['db:10.9.9.9'] });
  assert.equal(sa.settings.IPAddress, '10.200.0.2');
  assert.equal(sb.settings.IPAddress, '10.200.0.3');
  assert.equal(sa.settings.Networks.bridge!.MacAddress, '02:42:0a:c8:00:02');
  assert.ok(s.host.inputs.some((i) => i.cmd === `unshare --net=${sa.netnsPath} true`), 'namespace made by unshare');
  const forA = s.host.cni.filter((c) => c.env.CNI_CONTAINERID === a);
  assert.deepEqual(forA.map((c) => `${c.env.CNI_COMMAND} ${c.plugin} ${c.env.CNI_IFNAME}`).sort(), ['ADD bridge eth0', 'ADD firewall eth0', 'ADD loopback lo']);
  for (const c of forA) {
    assert.equal(c.env.CNI_NETNS, sa.netnsPath);
    assert.equal(c.env.CNI_PATH, '/usr/lib/cni');
    assert.equal(c.conf.cniVersion, '1.0.0');
  }
  const bridgeAdd = forA.find((c) => c.plugin === 'bridge')!;
  assert.deepEqual(bridgeAdd.conf, {
    cniVersion: '1.0.0', name: 'berth-bridge', type: 'bridge', bridge: 'btunit', isGateway: false, isDefaultGateway: false, ipMasq: false, hairpinMode: true,
    ipam: { type: 'static', addresses: [{ address: '10.200.0.2/24', gateway: '10.200.0.1' }], routes: [{ dst: '0.0.0.0/0', gw: '10.200.0.1' }] },
    runtimeConfig: { mac: '02:42:0a:c8:00:02' },
  });
  const fwAdd = forA.find((c) => c.plugin === 'firewall')!;
  assert.equal(fwAdd.conf.backend, 'iptables');
  assert.deepEqual(fwAdd.conf.prevResult.ips, [{ address: '10.200.0.2/24', gateway: '10.200.0.1', interface: 2 }], 'firewall chained on the bridge result');
  assert.ok(s.host.cni.indexOf(fwAdd) > s.host.cni.indexOf(bridgeAdd), 'firewall after bridge');
  const hostEnd = fwAdd.conf.prevResult.interfaces[1].name as string;
  assert.ok(s.svc.live().veths.includes(hostEnd), 'host veth name taken from the plugin result');
  assert.equal(await readFile(sb.resolvConfPath, 'utf8'), 'nameserver 192.0.2.53\n');
  assert.match(await readFile(sb.hostsPath, 'utf8'), /10\.9\.9\.9\tdb\n10\.200\.0\.3\thb\n$/);
  assert.equal(await readFile(sb.hostnamePath, 'utf8'), 'hb\n');
  // No published ports: no iptables work on the run path.
  const restores = s.host.inputs.filter((i) => i.cmd.startsWith('iptables-restore')).length;
  const c = cid();
  await s.svc.setUp({ containerId: c, name: 'c', hostname: 'hc', networkMode: 'bridge', filesDir: join(s.root, 'c') });
  assert.equal(s.host.inputs.filter((i) => i.cmd.startsWith('iptables-restore')).length, restores);
  await s.svc.tearDown(c);
  await s.svc.settle();
  assert.equal(existsSync(join(s.root, 'exec', 'netns', c)), false);
  // DEL: firewall before bridge, both with the ADD result; lo too. (FakeHost mounts nothing, so
  // the namespace counts as gone: CNI_NETNS is empty, which the plugins accept on DEL.)
  const delC = s.host.cni.filter((x) => x.env.CNI_CONTAINERID === c && x.env.CNI_COMMAND === 'DEL');
  assert.deepEqual(delC.map((x) => x.plugin).filter((p) => p !== 'loopback'), ['firewall', 'bridge']);
  assert.equal(delC.length, 3);
  const addC = s.host.cni.find((x) => x.env.CNI_CONTAINERID === c && x.plugin === 'bridge')!;
  for (const d of delC.filter((x) => x.plugin !== 'loopback')) {
    assert.deepEqual(d.conf.prevResult.ips, [{ address: '10.200.0.4/24', gateway: '10.200.0.1', interface: 2 }]);
    assert.equal(d.env.CNI_NETNS, '');
    assert.equal(d.env.CNI_IFNAME, 'eth0');
  }
  assert.equal(addC.conf.ipam.addresses[0].address, '10.200.0.4/24');
  // A static address taken, outside the subnet, or the gateway: refused, nothing made.
  await s.svc.create({ Name: 'u', IPAM: { Config: [{ Subnet: '10.210.0.0/24' }] } });
  const d1 = cid();
  await s.svc.setUp({ containerId: d1, name: 'd1', hostname: 'd1', networkMode: 'u', endpointsConfig: { u: { IPAMConfig: { IPv4Address: '10.210.0.9' }, Aliases: ['x'] } }, filesDir: join(s.root, 'd1') });
  for (const ip of ['10.210.0.9', '10.211.0.9', '10.210.0.1']) {
    const id = cid();
    await assert.rejects(s.svc.setUp({ containerId: id, name: id, hostname: 'x', networkMode: 'u', endpointsConfig: { u: { IPAMConfig: { IPv4Address: ip } } }, filesDir: join(s.root, id) }), ip);
    assert.equal(existsSync(join(s.root, 'exec', 'netns', id)), false);
  }
  await assert.rejects(s.svc.setUp({ containerId: cid(), name: 'z', hostname: 'z', networkMode: 'nosuch', filesDir: join(s.root, 'z') }), (e: unknown) => isKind(e, 'NotFound'));
  await assert.rejects(s.svc.setUp({ containerId: cid(), name: 'z', hostname: 'z', networkMode: 'bridge', endpointsConfig: { bridge: { Aliases: ['al'] } }, filesDir: join(s.root, 'z') }), (e: unknown) => isKind(e, 'InvalidArgument'), 'aliases on the default bridge');
});

test('restart: leases of live sandboxes kept, dead ones (namespace gone) freed', async () => {
  await using s = await setup();
  const a = cid();
  await s.svc.setUp({ containerId: a, name: 'a', hostname: 'a', networkMode: 'bridge', filesDir: join(s.root, 'a') });
  await s.svc.close();
  // With a FakeHost no namespace is really mounted: on restart the sandbox counts as dead.
  const again = s.make();
  await again.start();
  assert.deepEqual(again.live(), { sandboxes: 0, veths: [], netns: [] });
  const b = cid();
  const sb = await again.setUp({ containerId: b, name: 'b', hostname: 'b', networkMode: 'bridge', filesDir: join(s.root, 'b') });
  assert.equal(sb.settings.IPAddress, '10.200.0.2', 'the dead lease was freed');
  assert.equal((await again.inspect('bridge')).Id, (await s.svc.inspect('bridge')).Id, 'network IDs persist');
  await again.close();
});

test('published port ranges take the first free port; a busy fixed port leaves nothing behind', async () => {
  await using s = await setup();
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const busy = (blocker.address() as { port: number }).port;
  try {
    const id = cid();
    const sb = await s.svc.setUp({
      containerId: id, name: 'r', hostname: 'r', networkMode: 'bridge', filesDir: join(s.root, 'r'),
      portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: `${busy}-${busy + 1}` }] },
    });
    assert.deepEqual(sb.settings.Ports['80/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(busy + 1) }]);
    await s.svc.tearDown(id);
    const other = cid();
    await assert.rejects(s.svc.setUp({
      containerId: other, name: 'o', hostname: 'o', networkMode: 'bridge', filesDir: join(s.root, 'o'),
      portBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: String(busy) }] },
    }), (e: unknown) => isKind(e, 'FailedPrecondition'));
    assert.equal(existsSync(join(s.root, 'exec', 'netns', other)), false);
    assert.equal(s.host.inputs.some((i) => i.cmd.includes(other)), false, 'no namespace was even started');
    assert.equal(s.host.cni.some((c) => c.env.CNI_CONTAINERID === other), false, 'no CNI plugin ran (not even a DEL)');
  } finally {
    blocker.close();
  }
});

test('connect/disconnect on a running container: bridge + firewall ADD on ethN without a default route; DEL strict', async () => {
  await using s = await setup();
  await s.svc.create({ Name: 'u2', IPAM: { Config: [{ Subnet: '10.212.0.0/24' }] } });
  const a = cid();
  await s.svc.setUp({ containerId: a, name: 'a', hostname: 'a', networkMode: 'bridge', filesDir: join(s.root, 'a') });
  const info = await s.svc.connect(a, 'u2', { Aliases: ['al'] });
  assert.equal(info?.ipAddress, '10.212.0.2');
  const adds = s.host.cni.filter((c) => c.env.CNI_CONTAINERID === a && c.env.CNI_IFNAME === 'eth1');
  assert.deepEqual(adds.map((c) => `${c.env.CNI_COMMAND} ${c.plugin}`), ['ADD bridge', 'ADD firewall']);
  assert.deepEqual(adds[0]!.conf.ipam, { type: 'static', addresses: [{ address: '10.212.0.2/24', gateway: '10.212.0.1' }], routes: [] }, 'no second default route');
  assert.equal(adds[0]!.conf.bridge, (await s.svc.inspect('u2')).Options['com.docker.network.bridge.name'] ?? adds[0]!.conf.bridge);
  await s.svc.disconnect(a, 'u2');
  const dels = s.host.cni.filter((c) => c.env.CNI_CONTAINERID === a && c.env.CNI_IFNAME === 'eth1' && c.env.CNI_COMMAND === 'DEL');
  assert.deepEqual(dels.map((c) => c.plugin), ['firewall', 'bridge']);
  assert.deepEqual(dels[0]!.conf.prevResult.ips, [{ address: '10.212.0.2/24', gateway: '10.212.0.1', interface: 2 }]);
  // The address is free again.
  assert.equal((await s.svc.connect(a, 'u2', { IPAMConfig: { IPv4Address: '10.212.0.2' } }))?.ipAddress, '10.212.0.2');
  // A plugin failure on connect: the error is the plugin's, classified; the half-made
  // attachment is DELeted and the lease released.
  await s.svc.create({ Name: 'u3', IPAM: { Config: [{ Subnet: '10.213.0.0/24' }] } });
  s.host.fail = { plugin: 'firewall', stdout: JSON.stringify({ cniVersion: '1.0.0', code: 999, msg: 'iptables failed', details: 'exit 4' }) };
  await assert.rejects(s.svc.connect(a, 'u3', { IPAMConfig: { IPv4Address: '10.213.0.7' } }), (e: unknown) => isKind(e, 'Internal') && /cni plugin firewall add failed: iptables failed/.test((e as Error).message));
  s.host.fail = undefined;
  const rolled = s.host.cni.filter((c) => c.env.CNI_CONTAINERID === a && c.env.CNI_IFNAME === 'eth2' && c.env.CNI_COMMAND === 'DEL');
  assert.deepEqual(rolled.map((c) => c.plugin), ['firewall', 'bridge']);
  assert.equal((await s.svc.connect(a, 'u3', { IPAMConfig: { IPv4Address: '10.213.0.7' } }))?.ipAddress, '10.213.0.7', 'lease released after the failure');
});

test('tearDown asked again while one is in flight (exit, then the --rm removal) answers without waiting for the DELs; forget waits unless in the background', async () => {
  await using s = await setup();
  const c = cid();
  await s.svc.setUp({ containerId: c, name: 'c', hostname: 'hc', networkMode: 'bridge', filesDir: join(s.root, 'c') });
  let release!: () => void;
  s.host.delGate = new Promise<void>((r) => (release = r));
  try {
    await s.svc.tearDown(c);
    const again = await Promise.race([s.svc.tearDown(c).then(() => 'answered'), new Promise((r) => setTimeout(() => r('waited'), 500))]);
    assert.equal(again, 'answered');
    assert.equal(existsSync(join(s.root, 'exec', 'netns', c)), true, 'the DELs and the unmount are still in flight');
    // The --rm removal forgets in the background; an explicit rm waits for all of it.
    const bg = await Promise.race([s.svc.forget(c, { background: true }).then(() => 'answered'), new Promise((r) => setTimeout(() => r('waited'), 500))]);
    assert.equal(bg, 'answered');
    const full = await Promise.race([s.svc.forget(c).then(() => 'answered'), new Promise((r) => setTimeout(() => r('waited'), 300))]);
    assert.equal(full, 'waited', 'forget without background waits for the DELs and the unmount');
  } finally {
    release();
  }
  await s.svc.settle();
  assert.equal(existsSync(join(s.root, 'exec', 'netns', c)), false);
  assert.equal(s.host.cni.filter((x) => x.env.CNI_CONTAINERID === c && x.env.CNI_COMMAND === 'DEL').length, 3, 'one teardown, not two');
});
