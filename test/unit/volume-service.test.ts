// LocalVolumeService and mount parsing without root: plain directory volumes, binds, copy-up
// from a fake rootfs (symlinks must not lead the copy out of it), in-use refusal, anonymous
// volumes reused across restarts and removed by release({removeAnonymous}).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readFile, symlink, readlink, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalVolumeService } from '../../src/volume/local-volume-service.ts';
import { parseBind, parseMount, planMounts } from '../../src/volume/mount-spec.ts';
import { RealHost } from '../../src/host/host.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { isKind } from '../../src/core/errors.ts';

async function setup() {
  const root = await mkdtemp(join(tmpdir(), 'berth-vol-'));
  const svc = new LocalVolumeService({ host: new RealHost(), dataRoot: join(root, 'data'), log: createLogger({ out: () => {} }) });
  await svc.start();
  return { root, svc, async [Symbol.asyncDispose]() { await rm(root, { recursive: true, force: true }); } };
}

test('parseBind: host paths, names, anonymous, modes; bad specs rejected', () => {
  assert.deepEqual(parseBind('/src:/dst:ro,Z'), { kind: 'bind', source: '/src', destination: '/dst', readOnly: true, propagation: 'rprivate', createSource: true, mode: 'ro,Z' });
  assert.equal(parseBind('data:/var/lib/x/').kind, 'volume');
  assert.equal((parseBind('data:/x') as { name: string }).name, 'data');
  assert.deepEqual(parseBind('/anon'), { kind: 'volume', destination: '/anon', readOnly: false, noCopy: false, mode: '' });
  assert.equal((parseBind('/a:/b:rshared') as { propagation: string }).propagation, 'rshared');
  for (const bad of ['../x:/y', 'a/b:/y', 'x:relative', '/a:/b:bogus', '/a:/', 'a:/b:c:d', 'a:/b']) {
    assert.throws(() => parseBind(bad), (e: unknown) => isKind(e, 'InvalidArgument'), bad);
  }
});

test('parseMount and planMounts: types, precedence, duplicates', () => {
  assert.equal(parseMount({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1024, Mode: 0o700 } }).kind, 'tmpfs');
  assert.throws(() => parseMount({ Type: 'bind', Source: 'rel', Target: '/x' }), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => parseMount({ Type: 'volume', Source: '../../etc', Target: '/x' }), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => parseMount({ Type: 'volume', Source: 'v', Target: '/x', VolumeOptions: { Subpath: '../up' } }), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => planMounts({ binds: ['/a:/x', 'vv:/x'] }), /Duplicate mount point/);
  const plan = planMounts({
    binds: ['/h:/data'],
    imageVolumes: ['/data', '/cache'],
    volumesFrom: [{ mode: 'ro', mounts: [{ Type: 'volume', Name: 'shared', Source: '/s', Destination: '/shared', Mode: '', RW: true, Propagation: '' }] }],
  });
  assert.deepEqual(plan.map((p) => [p.kind, p.destination]), [['bind', '/data'], ['volume', '/shared'], ['volume', '/cache']]);
  assert.equal(plan[1]!.kind === 'volume' && plan[1]!.readOnly, true);
});

test('create, inspect, list with filters, idempotent create, invalid names and options', async () => {
  await using s = await setup();
  const v = await s.svc.create({ Name: 'data1', Labels: { team: 'a' } });
  assert.equal(v.Mountpoint, join(s.root, 'data', 'volumes', 'data1', '_data'));
  assert.ok(existsSync(v.Mountpoint));
  assert.deepEqual((await s.svc.create({ Name: 'data1' })).Labels, { team: 'a' });
  await s.svc.create({ Name: 'data2' });
  assert.deepEqual((await s.svc.list(new Map([['label', ['team=a']]]))).map((x) => x.Name), ['data1']);
  assert.deepEqual((await s.svc.list(new Map([['name', ['2']]]))).map((x) => x.Name), ['data2']);
  for (const bad of ['a', '../x', '.hidden', 'a/b', 'x y']) await assert.rejects(s.svc.create({ Name: bad }), (e: unknown) => isKind(e, 'InvalidArgument'), bad);
  await assert.rejects(s.svc.create({ Name: 'o1', DriverOpts: { bogus: '1' } }), (e: unknown) => isKind(e, 'InvalidArgument'));
  await assert.rejects(s.svc.create({ Name: 'o2', Driver: 'nfsplugin' }), (e: unknown) => isKind(e, 'NotFound'));
  await assert.rejects(s.svc.inspect('nope'), (e: unknown) => isKind(e, 'NotFound'));
  const anon = await s.svc.create({});
  assert.match(anon.Name, /^[0-9a-f]{64}$/);
});

test('mountsFor: binds (ro), named volume copy-up once, symlinked mount point stays inside the rootfs', async () => {
  await using s = await setup();
  const rootfs = join(s.root, 'rootfs');
  await mkdir(join(rootfs, 'app', 'conf'), { recursive: true });
  await writeFile(join(rootfs, 'app', 'conf', 'a.txt'), 'from-image');
  await symlink('/etc/passwd', join(rootfs, 'app', 'link'));
  // /evil -> /../../<host dir>: resolved inside the rootfs, it is rootfs/<host dir> (missing).
  const hostDir = join(s.root, 'hostsecret');
  await mkdir(hostDir);
  await writeFile(join(hostDir, 'secret'), 'host-only');
  await symlink(`/../../../../..${hostDir}`, join(rootfs, 'evil'));
  const bindSrc = join(s.root, 'bind');
  await mkdir(bindSrc);
  const r = await s.svc.mountsFor({
    containerId: 'c1', rootfs,
    binds: [`${bindSrc}:/b:ro`, 'named:/app', `${join(s.root, 'created-by-v')}:/c`],
    mounts: [{ Type: 'volume', Source: 'evilvol', Target: '/evil' }],
    tmpfs: { '/run': 'size=1m' },
  });
  const byDest = Object.fromEntries(r.oci.map((m) => [m.destination, m]));
  assert.deepEqual(byDest['/b']!.options, ['rbind', 'rprivate', 'ro']);
  assert.equal(byDest['/b']!.source, bindSrc);
  assert.ok(existsSync(join(s.root, 'created-by-v')), '-v creates a missing host dir');
  assert.equal(byDest['/run']!.type, 'tmpfs');
  const data = (await s.svc.inspect('named')).Mountpoint;
  assert.equal(byDest['/app']!.source, data);
  assert.equal(await readFile(join(data, 'conf', 'a.txt'), 'utf8'), 'from-image');
  assert.equal(await readlink(join(data, 'link')), '/etc/passwd', 'symlink copied as a symlink');
  assert.deepEqual(await readdir((await s.svc.inspect('evilvol')).Mountpoint), [], 'copy-up followed a symlink out of the rootfs');
  // Not copied again once the volume has content of its own.
  await writeFile(join(data, 'conf', 'a.txt'), 'changed');
  await s.svc.mountsFor({ containerId: 'c2', rootfs, binds: ['named:/app'] });
  assert.equal(await readFile(join(data, 'conf', 'a.txt'), 'utf8'), 'changed');
  assert.deepEqual(r.mountPoints.find((m) => m.Destination === '/app'), { Type: 'volume', Name: 'named', Source: data, Destination: '/app', Driver: 'local', Mode: 'z', RW: true, Propagation: '' });
  await assert.rejects(s.svc.mountsFor({ containerId: 'c3', mounts: [{ Type: 'bind', Source: join(s.root, 'missing'), Target: '/m' }] }), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('in-use volumes cannot be removed; anonymous volumes survive restarts and go with release(removeAnonymous)', async () => {
  await using s = await setup();
  const r1 = await s.svc.mountsFor({ containerId: 'c1', binds: ['keep:/keep'], imageVolumes: ['/anon'] });
  const anonName = r1.mountPoints.find((m) => m.Destination === '/anon')!.Name!;
  await assert.rejects(s.svc.remove('keep'), (e: unknown) => isKind(e, 'FailedPrecondition') && /in use/.test((e as Error).message));
  await assert.rejects(s.svc.remove(anonName, true), (e: unknown) => isKind(e, 'FailedPrecondition'));
  const r2 = await s.svc.mountsFor({ containerId: 'c1', binds: ['keep:/keep'], imageVolumes: ['/anon'] });
  assert.equal(r2.mountPoints.find((m) => m.Destination === '/anon')!.Name, anonName, 'restart reuses the anonymous volume');
  assert.deepEqual((await s.svc.prune()).VolumesDeleted, []);
  // A restarted service still knows who uses what.
  const again = new LocalVolumeService({ host: new RealHost(), dataRoot: join(s.root, 'data'), log: createLogger({ out: () => {} }) });
  await again.start();
  await assert.rejects(again.remove('keep'), (e: unknown) => isKind(e, 'FailedPrecondition'));
  await again.release('c1', { removeAnonymous: true });
  await assert.rejects(again.inspect(anonName), (e: unknown) => isKind(e, 'NotFound'));
  await again.inspect('keep');
  await again.remove('keep');
  assert.equal(existsSync(join(s.root, 'data', 'volumes', 'keep')), false);
  await again.create({ Name: 'unused' });
  assert.deepEqual((await again.prune()).VolumesDeleted, [], 'named volumes are kept without all=true');
  assert.deepEqual((await again.prune(new Map([['all', ['true']]]))).VolumesDeleted, ['unused']);
});

test('local driver options: tmpfs volumes mounted on first use through the Host, bind-device volumes used in place', async () => {
  const root = await mkdtemp(join(tmpdir(), 'berth-vol-'));
  try {
    const { FakeHost } = await import('../../src/host/host.ts');
    const host = new FakeHost();
    const svc = new LocalVolumeService({ host, dataRoot: join(root, 'data'), log: createLogger({ out: () => {} }) });
    await svc.start();
    await svc.create({ Name: 'tv', DriverOpts: { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,uid=1000' } });
    await assert.rejects(svc.create({ Name: 'half', DriverOpts: { type: 'tmpfs' } }), (e: unknown) => isKind(e, 'InvalidArgument'));
    const dev = join(root, 'device');
    await mkdir(dev);
    await svc.create({ Name: 'bv', DriverOpts: { type: 'none', o: 'bind', device: dev } });
    await assert.rejects(svc.create({ Name: 'bv2', DriverOpts: { o: 'bind', device: join(root, 'missing') } }), (e: unknown) => isKind(e, 'InvalidArgument'));
    const r = await svc.mountsFor({ containerId: 'c1', binds: ['tv:/t', 'bv:/b'] });
    const tvData = (await svc.inspect('tv')).Mountpoint;
    assert.deepEqual(host.calls.filter((c) => c.op === 'mount'), [{ op: 'mount', args: ['tmpfs', tvData, 'tmpfs', ['size=1m', 'uid=1000']] }]);
    assert.equal(r.oci.find((m) => m.destination === '/b')!.source, dev);
    await svc.mountsFor({ containerId: 'c2', binds: ['tv:/t'] });
    assert.equal(host.calls.filter((c) => c.op === 'mount').length, 1, 'mounted once');
    await svc.release('c1');
    await svc.release('c2');
    await svc.remove('tv');
    assert.deepEqual(host.calls.filter((c) => c.op === 'unmount').map((c) => c.args[0]), [tvData]);
    assert.deepEqual((await svc.inspect('bv')).Options, { type: 'none', o: 'bind', device: dev });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
