// The runtime layer alone, as root: spec -> conmon -> runc with a busybox rootfs directory.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { busyboxRootfs, tempDir, isRoot, waitFor } from '../helpers/fixtures.ts';
import { buildSpec, specToJson } from '../../src/runtime/spec.ts';
import { hostRlimits } from '../../src/runtime/rlimits.ts';
import { hostBoundingCaps } from '../../src/runtime/capabilities.ts';
import { OciRuntime } from '../../src/runtime/oci-runtime.ts';
import { Cgroups } from '../../src/runtime/cgroups.ts';
import { attachConmon, readExitFile, procStartTime } from '../../src/runtime/conmon.ts';
import type { CreateBody } from '../../src/runtime/create-config.ts';

const skip = !isRoot && 'needs root';
let dir: Awaited<ReturnType<typeof tempDir>>;
let rootfs: string;
let runtime: OciRuntime;
let cg: Cgroups;

before(async () => {
  if (skip) return;
  dir = await tempDir('berth-rt-');
  rootfs = join(dir.path, 'rootfs');
  await busyboxRootfs(rootfs);
  runtime = new OciRuntime({ name: 'runc', path: 'runc', root: join(dir.path, 'runc') });
  cg = new Cgroups({ parent: `berth-test-${process.pid}` });
});

after(async () => {
  if (skip) return;
  await cg.removeParent();
  await dir.cleanup();
});

async function run(id: string, create: CreateBody, opts: { stdin?: string } = {}) {
  const b = join(dir.path, id);
  await mkdir(join(b, 'exits'), { recursive: true });
  for (const f of ['hostname', 'hosts', 'resolv.conf']) await writeFile(join(b, f), f === 'hostname' ? id + '\n' : '');
  const spec = buildSpec({
    id, rootfs, image: { Cmd: ['sh'] }, create, user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
    files: { hostname: join(b, 'hostname'), hosts: join(b, 'hosts'), resolvConf: join(b, 'resolv.conf') },
    cgroupsPath: cg.pathFor(id), cgroupVersion: cg.version, hostRlimits: hostRlimits(), hostCaps: hostBoundingCaps(),
  });
  await writeFile(join(b, 'config.json'), specToJson(spec));
  const started = await runtime.create({
    id, name: id, bundle: b, pidFile: join(b, 'pid'), conmonPidFile: join(b, 'conmon.pid'), exitDir: join(b, 'exits'),
    logPath: join(b, 'ctr.log'), socketDir: join(dir.path, 'sock'), terminal: false, stdin: opts.stdin !== undefined, conmonLog: join(b, 'conmon.log'),
  });
  const att = attachConmon(b);
  await att.ready;
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  att.onData((s, d) => (s === 1 ? out : err).push(d));
  await runtime.start(id);
  if (opts.stdin !== undefined) att.stdin.end(opts.stdin);
  await att.closed;
  await waitFor(async () => (await readExitFile(join(b, 'exits'), id)) !== undefined, 'exit file');
  const code = (await readExitFile(join(b, 'exits'), id))!;
  const oom = await cg.oomKilled(id);
  await runtime.delete(id, true);
  await cg.remove(id);
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), log: await readFile(join(b, 'ctr.log'), 'utf8'), oom, started };
}

test('a container runs under conmon: streams apart, exit code, Docker\'s caps, seccomp, cleanup', { skip }, async () => {
  const r = await run('rt1', { Cmd: ['sh', '-c', 'grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)|^Seccomp:" /proc/self/status; echo to-stderr >&2; exit 7'] });
  assert.equal(r.code, 7);
  assert.match(r.stdout, /CapEff:\s+00000000a80425fb/);
  assert.match(r.stdout, /CapBnd:\s+00000000a80425fb/);
  assert.match(r.stdout, /CapInh:\s+0000000000000000/);
  assert.match(r.stdout, /CapAmb:\s+0000000000000000/);
  assert.match(r.stdout, /Seccomp:\s+2/);
  assert.equal(r.stderr, 'to-stderr\n');
  assert.match(r.log, /stderr F to-stderr/);
  assert.equal(existsSync(join(runtime.root, 'rt1')), false, 'runc state removed');
  assert.deepEqual(await cg.dirs('rt1'), [], 'cgroups removed');
  assert.ok(r.started.conmonPid > 0);
  await waitFor(async () => (await procStartTime(r.started.conmonPid)) === undefined, 'conmon to exit', 5000);
});

test('stdin reaches the container and EOF closes it', { skip }, async () => {
  const r = await run('rt2', { Cmd: ['sh', '-c', 'cat; echo done'], OpenStdin: true, StdinOnce: true }, { stdin: 'hello\n' });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, 'hello\ndone\n');
});

test('limits are applied and an OOM kill is detected', { skip }, async () => {
  const r = await run('rt3', { Cmd: ['sh', '-c', 'cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; ulimit -n'], HostConfig: { Memory: 32 << 20, PidsLimit: 50 } });
  assert.equal(r.code, 0);
  assert.equal(r.stdout, `${32 << 20}\n50\n20000\n`);
  const oom = await run('rt4', { Cmd: ['sh', '-c', 'x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done'], HostConfig: { Memory: 8 << 20, MemorySwap: 8 << 20 } });
  assert.equal(oom.code, 137);
  assert.equal(oom.oom, true);
});
