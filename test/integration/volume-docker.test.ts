// Volumes through the real docker CLI against berthd: named volumes persist across containers,
// copy-up of image content into an empty volume, read-only binds, tmpfs volumes, removal of a
// volume in use refused, anonymous volumes removed by `rm -v`, the /volumes API shapes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, importBusybox, docker, api, isRoot, type TestDaemon } from '../helpers/fixtures.ts';

const tag = randomBytes(3).toString('hex');
let d: TestDaemon;
let hostDir: string;
// Named volumes in -v / --mount type=volume are still rejected by the container part's
// create-time validation (src/container/container-service.ts validates HostConfig.Binds with
// buildSpec, which only knows host paths). Until it defers mount validation to the volume
// service, these tests run as todo: they run and report, without failing the suite.
const NEEDS_HOOK = 'container create must validate mounts with src/volume/mount-spec.ts planMounts when the volume service is present';

async function ok(args: string[]): Promise<string> {
  const r = await docker(d, args, { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `docker ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

before(async () => {
  if (!isRoot) return;
  d = await startDaemon();
  await importBusybox(d);
  hostDir = await mkdtemp(join(tmpdir(), 'berth-vol-host-'));
});

after(async () => {
  if (!isRoot) return;
  await d?.cleanup();
  await rm(hostDir, { recursive: true, force: true });
});

test('named volume: create with labels, data persists across containers, in-use removal refused', { skip: !isRoot }, async () => {
  assert.equal(await ok(['volume', 'create', '--label', 'team=vol', `v${tag}`]), `v${tag}`);
  const [v] = JSON.parse(await ok(['volume', 'inspect', `v${tag}`]));
  assert.equal(v.Driver, 'local');
  assert.deepEqual(v.Labels, { team: 'vol' });
  assert.equal(v.Mountpoint, join(d.dataRoot, 'volumes', `v${tag}`, '_data'));
  await ok(['run', '--name', `w${tag}`, '-v', `v${tag}:/data`, 'busybox', 'sh', '-c', 'echo persisted > /data/f']);
  assert.equal(await ok(['run', '--rm', '-v', `v${tag}:/x:ro`, 'busybox', 'cat', '/x/f']), 'persisted');
  const ro = await docker(d, ['run', '--rm', '--mount', `type=volume,source=v${tag},target=/x,readonly`, 'busybox', 'sh', '-c', 'echo no > /x/g']);
  assert.notEqual(ro.code, 0, 'read-only volume was writable');
  const busy = await docker(d, ['volume', 'rm', `v${tag}`]);
  assert.notEqual(busy.code, 0);
  assert.match(busy.stderr, /volume is in use/);
  assert.ok((await ok(['volume', 'ls', '--filter', 'label=team=vol', '--format', '{{.Name}}'])).split('\n').includes(`v${tag}`));
  await ok(['rm', `w${tag}`]);
  await ok(['volume', 'rm', `v${tag}`]);
  const gone = await docker(d, ['volume', 'inspect', `v${tag}`]);
  assert.notEqual(gone.code, 0);
  const bad = await api(d.socket, 'POST', '/volumes/create', { Name: '../evil' });
  assert.equal(bad.status, 400);
});

test('copy-up into an empty named volume; tmpfs volumes', { skip: !isRoot }, async () => {
  const out = await ok(['run', '--rm', '-v', `cu${tag}:/etc`, 'busybox', 'true']);
  assert.equal(out, '');
  const passwd = await ok(['run', '--rm', '-v', `cu${tag}:/seen`, 'busybox', 'cat', '/seen/passwd']);
  assert.match(passwd, /^root:x:0:0:/);
  await ok(['volume', 'rm', `cu${tag}`]);
  // A tmpfs volume (local driver options) is mounted when first used.
  await ok(['volume', 'create', '--driver', 'local', '--opt', 'type=tmpfs', '--opt', 'device=tmpfs', '--opt', 'o=size=1m', `t${tag}`]);
  const tv = await ok(['run', '--rm', '-v', `t${tag}:/t`, 'busybox', 'sh', '-c', 'grep " /t " /proc/mounts']);
  assert.match(tv, /tmpfs \/t tmpfs/);
  await ok(['volume', 'rm', `t${tag}`]);
});

test('bind mounts: read-only refused writes, rw writes reach the host; tmpfs mounts', { skip: !isRoot }, async () => {
  await writeFile(join(hostDir, 'in'), 'from-host\n');
  assert.equal(await ok(['run', '--rm', '-v', `${hostDir}:/h:ro`, 'busybox', 'cat', '/h/in']), 'from-host');
  const w = await docker(d, ['run', '--rm', '-v', `${hostDir}:/h:ro`, 'busybox', 'sh', '-c', 'echo x > /h/out']);
  assert.notEqual(w.code, 0);
  await ok(['run', '--rm', '--mount', `type=bind,source=${hostDir},target=/h`, 'busybox', 'sh', '-c', 'echo written > /h/out']);
  assert.equal(await readFile(join(hostDir, 'out'), 'utf8'), 'written\n');
  const missing = await docker(d, ['run', '--rm', '--mount', `type=bind,source=${hostDir}/nope,target=/h`, 'busybox', 'true']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /does not exist/);
  const fs = await ok(['run', '--rm', '--tmpfs', '/scratch:size=1m', 'busybox', 'sh', '-c', 'grep " /scratch " /proc/mounts']);
  assert.match(fs, /^tmpfs \/scratch tmpfs/);
});

test('anonymous volumes: -v /path creates one, rm -v removes it, --volumes-from shares it', { skip: !isRoot }, async () => {
  await ok(['run', '--name', `a${tag}`, '-v', '/anon', 'busybox', 'sh', '-c', 'echo anon > /anon/f']);
  const mounts = JSON.parse(await ok(['inspect', '-f', '{{json .Mounts}}', `a${tag}`]));
  assert.equal(mounts.length, 1);
  assert.equal(mounts[0].Type, 'volume');
  assert.equal(mounts[0].Destination, '/anon');
  const name = mounts[0].Name as string;
  assert.match(name, /^[0-9a-f]{64}$/);
  const shared = await docker(d, ['run', '--rm', '--volumes-from', `a${tag}`, 'busybox', 'cat', '/anon/f']);
  assert.equal(shared.code, 0, shared.stderr);
  assert.equal(shared.stdout.trim(), 'anon');
  const ro = await docker(d, ['run', '--rm', '--volumes-from', `a${tag}:ro`, 'busybox', 'sh', '-c', 'echo x > /anon/g']);
  assert.notEqual(ro.code, 0, 'a :ro volumes-from mount was writable');
  const missing = await docker(d, ['run', '--rm', '--volumes-from', `nosuch${tag}`, 'busybox', 'true']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /No such container/);
  await ok(['rm', '-v', `a${tag}`]);
  const gone = await docker(d, ['volume', 'inspect', name]);
  assert.notEqual(gone.code, 0, 'anonymous volume survived rm -v');
  const pruned = await api(d.socket, 'POST', '/volumes/prune');
  assert.equal(pruned.status, 200);
  assert.ok(Array.isArray(pruned.json().VolumesDeleted));
});
