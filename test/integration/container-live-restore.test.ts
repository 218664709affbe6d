// Containers outlive berthd: kill -9 the daemon, start it again, and it reattaches to running
// containers, records exits that happened while it was down, applies restart policies, and
// cleans up a create that a crash interrupted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { RealHost } from '../../src/host/host.ts';
import { startDaemon, importBusybox, docker, api, isRoot, waitFor, run, mountsUnder } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

test('kill -9 of berthd: containers keep running, exits while down are recorded, policies applied', { skip, timeout: 180_000 }, async () => {
  const d = await startDaemon();
  try {
    await importBusybox(d);
    const ok = (r: { code: number; stderr: string }) => assert.equal(r.code, 0, r.stderr);
    ok(await docker(d, ['run', '-d', '--name', 'keeps', 'busybox', 'sh', '-c', 'i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.2; done']));
    ok(await docker(d, ['run', '-d', '--name', 'dies', 'busybox', 'sh', '-c', 'sleep 2; exit 7']));
    ok(await docker(d, ['run', '-d', '--name', 'always', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 2; exit 3']));
    const before = JSON.parse((await docker(d, ['inspect', 'keeps'])).stdout)[0];
    const pid = before.State.Pid as number;
    assert.ok(pid > 0);

    await d.kill();
    // A create interrupted by the crash: a record stuck in 'creating'.
    const halfId = randomBytes(32).toString('hex');
    await mkdir(join(d.dataRoot, 'containers', halfId), { recursive: true });
    await writeFile(join(d.dataRoot, 'containers', halfId, 'config.v2.json'), JSON.stringify({ id: halfId, name: '/half', created: new Date().toISOString(), image: 'x', imageRef: 'busybox', config: {}, hostConfig: {}, path: 'true', args: [], runtime: 'runc', state: { status: 'creating', pid: 0, conmonPid: 0, exitCode: 0, error: '', oomKilled: false, startedAt: '0001-01-01T00:00:00Z', finishedAt: '0001-01-01T00:00:00Z' }, restartCount: 0, manuallyStopped: false, logPath: '', logMaxSize: 0, logMaxFiles: 1 }));
    // A crash between the snapshot and the record of a create: an orphan active snapshot.
    const orphan = randomBytes(32).toString('hex');
    const snaps = new OverlaySnapshotter(join(d.dataRoot, 'snapshots'), new RealHost());
    await snaps.init();
    await snaps.prepare(orphan, undefined);
    await new Promise((r) => setTimeout(r, 3000)); // 'dies' and 'always' exit while berthd is down
    assert.equal((await run('kill', ['-0', String(pid)])).code, 0, 'container survived the daemon');

    await d.restart();
    await waitFor(async () => {
      const i = JSON.parse((await docker(d, ['inspect', 'dies'])).stdout)[0];
      return i.State.Status === 'exited';
    }, 'exit recorded', 20000);
    const dies = JSON.parse((await docker(d, ['inspect', 'dies'])).stdout)[0];
    assert.equal(dies.State.ExitCode, 7);
    const keeps = JSON.parse((await docker(d, ['inspect', 'keeps'])).stdout)[0];
    assert.equal(keeps.State.Status, 'running');
    assert.equal(keeps.State.Pid, pid, 'same process, reattached');
    await waitFor(async () => {
      const i = JSON.parse((await docker(d, ['inspect', 'always'])).stdout)[0];
      return i.State.Status === 'running' && i.RestartCount >= 1;
    }, 'always restarted', 20000);
    assert.equal(existsSync(join(d.dataRoot, 'containers', halfId)), false, 'half-created container cleaned up');
    const after = new OverlaySnapshotter(join(d.dataRoot, 'snapshots'), new RealHost());
    await after.init();
    assert.equal((await after.list()).some((x) => x.name === orphan), false, 'orphan snapshot removed');
    const ps = (await docker(d, ['ps', '-a', '--format', '{{.Names}}'])).stdout;
    assert.ok(!ps.includes('half'));
    // The reattached container still works: logs, exec, stop.
    assert.match((await docker(d, ['logs', '--tail', '1', 'keeps'])).stdout, /tick\d+/);
    assert.equal((await docker(d, ['exec', 'keeps', 'echo', 'hi'])).stdout, 'hi\n');
    ok(await docker(d, ['stop', '-t', '1', 'keeps']));
    assert.notEqual((await run('kill', ['-0', String(pid)])).code, 0, 'stopped after reattach');
    ok(await docker(d, ['rm', '-f', 'keeps', 'dies', 'always']));
    assert.deepEqual(await mountsUnder(d.execRoot), []);
    assert.deepEqual(await readdir(join(d.execRoot, 'runtimes', 'runc')).catch(() => []), []);
    const parent = `berth-test-${createHash('sha256').update(d.dataRoot).digest('hex').slice(0, 12)}`;
    const left = existsSync(`/sys/fs/cgroup/memory/${parent}`) ? (await readdir(`/sys/fs/cgroup/memory/${parent}`, { withFileTypes: true })).filter((e) => e.isDirectory()) : [];
    assert.deepEqual(left, [], 'no container cgroups left after restore and removal');
    const ev = await api(d.socket, 'GET', `/events?since=0&until=${Math.ceil(Date.now() / 1000)}`);
    assert.equal(ev.status, 200);
  } finally {
    await d.cleanup();
  }
});
