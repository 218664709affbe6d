// BridgeNetworkService against a FakeHost: what it asks the kernel for (veths created in place,
// one iptables-restore per change), IPAM and validation, rollback, persistence across restarts.
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

class RecordingHost extends FakeHost {
  inputs: Array<{ cmd: string; input: string }> = [];
  override async run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.inputs.push({ cmd: [file, ...args].join(' '), input: String(opts?.input ?? '') });
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

test('setUp: netns by unshare with the veth created inside it, host end bridged, unique addresses', async () => {
  await using s = await setup();
  const a = cid();
  const b = cid();
  const sa = await s.svc.setUp({ containerId: a, name: 'a', hostname: 'ha', networkMode: 'bridge', filesDir: join(s.root, 'a') });
  const sb = await s.svc.setUp({ containerId: b, name: 'b', hostname: 'hb', networkMode: 'default', filesDir: join(s.root, 'b'), dns: ['192.0.2.53'], extraHosts: ['db:10.9.9.9'] });
  assert.equal(sa.settings.IPAddress, '10.200.0.2');
  assert.equal(sb.settings.IPAddress, '10.200.0.3');
  assert.equal(sa.settings.Networks.bridge!.MacAddress, '02:42:0a:c8:00:02');
  const unshare = s.host.inputs.find((i) => i.cmd.startsWith(`unshare --net=${sa.netnsPath} ip -batch -`))!;
  assert.ok(unshare, 'namespace made by unshare');
  assert.match(unshare.input, /^link set lo up\nlink add eth0 address 02:42:0a:c8:00:02 type veth peer name (veth\w+) netns \/proc\/\d+\/ns\/net\naddr add 10\.200\.0\.2\/24 dev eth0\nlink set eth0 up\nroute add default via 10\.200\.0\.1 dev eth0\n$/);
  const hostEnd = /peer name (veth\w+)/.exec(unshare.input)![1]!;
  assert.ok(s.host.inputs.some((i) => i.input === `link set ${hostEnd} master btunit up\n`));
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
  } finally {
    blocker.close();
  }
});
