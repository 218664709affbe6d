// Pieces of the runtime layer that run without root: cgroup v2 (and v1) reading and removal on a
// fake cgroupfs, the PID-reuse guard, the spawn helper, and Docker's detach keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Cgroups, detectCgroupVersion } from '../../src/runtime/cgroups.ts';
import { procStartTime, sameProcess } from '../../src/runtime/conmon.ts';
import { Spawner } from '../../src/runtime/spawner.ts';
import { parseDetachKeys, DetachScanner, DEFAULT_DETACH_KEYS } from '../../src/pkg/detach-keys.ts';
import { isKind } from '../../src/core/errors.ts';
import { tempDir, waitFor } from '../helpers/fixtures.ts';

test('cgroup v2: detected from cgroup.controllers; stats, OOM kills and removal on a fake cgroupfs', async () => {
  await using root = await tempDir();
  await writeFile(join(root.path, 'cgroup.controllers'), 'cpu memory pids io\n');
  assert.equal(detectCgroupVersion(root.path), '2');
  const cg = new Cgroups({ root: root.path, parent: 'berth-x' });
  assert.equal(cg.version, '2');
  assert.equal(cg.pathFor('abc'), '/berth-x/abc');
  const dir = join(root.path, 'berth-x', 'abc');
  assert.equal(cg.dir('abc', 'memory'), dir, 'v2 has one unified directory whatever the controller');
  await mkdir(join(dir, 'leaf'), { recursive: true });
  await writeFile(join(dir, 'cpu.stat'), 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 7\nnr_throttled 2\nthrottled_usec 30\n');
  await writeFile(join(dir, 'memory.current'), '4096\n');
  await writeFile(join(dir, 'memory.max'), '1048576\n');
  await writeFile(join(dir, 'memory.stat'), 'anon 100\nfile 200\n');
  await writeFile(join(dir, 'pids.current'), '3\n');
  await writeFile(join(dir, 'pids.max'), 'max\n');
  await writeFile(join(dir, 'io.stat'), '8:0 rbytes=10 wbytes=20 rios=1 wios=2\n');
  await writeFile(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 0\n');
  const s = await cg.stats('abc');
  assert.deepEqual(s.cpu_stats.cpu_usage, { total_usage: 1_500_000, usage_in_kernelmode: 500_000, usage_in_usermode: 1_000_000 });
  assert.deepEqual(s.cpu_stats.throttling_data, { periods: 7, throttled_periods: 2, throttled_time: 30_000 });
  assert.equal(s.memory_stats.usage, 4096);
  assert.equal(s.memory_stats.limit, 1048576);
  assert.deepEqual(s.memory_stats.stats, { anon: 100, file: 200 });
  assert.deepEqual(s.pids_stats, { current: 3, limit: undefined }, '"max" is no limit');
  assert.deepEqual(s.blkio_stats.io_service_bytes_recursive, [{ major: 8, minor: 0, op: 'read', value: 10 }, { major: 8, minor: 0, op: 'write', value: 20 }]);
  assert.equal(await cg.oomKilled('abc'), false, 'oom without oom_kill is no kill');
  await writeFile(join(dir, 'memory.events'), 'oom 1\noom_kill 1\n');
  assert.equal(await cg.oomKilled('abc'), true);
  assert.deepEqual(await cg.dirs('abc'), [dir]);
  // cgroupfs files cannot be unlinked, only directories rmdir'ed: the fake's files must go first.
  for (const f of ['cpu.stat', 'memory.current', 'memory.max', 'memory.stat', 'pids.current', 'pids.max', 'io.stat', 'memory.events']) await import('node:fs/promises').then((m) => m.unlink(join(dir, f)));
  await cg.remove('abc');
  assert.equal(existsSync(dir), false, 'leaf and container cgroup removed');
  await cg.remove('abc');
  await cg.removeParent();
  assert.equal(existsSync(join(root.path, 'berth-x')), false, 'parent removed');
});

test('cgroup v1: per-controller directories; OOM kill from memory.oom_control', async () => {
  await using root = await tempDir();
  const cg = new Cgroups({ root: root.path, parent: 'p' });
  assert.equal(cg.version, '1');
  for (const c of ['memory', 'pids', 'cpu,cpuacct']) await mkdir(join(root.path, c, 'p', 'id1'), { recursive: true });
  await writeFile(join(root.path, 'memory', 'p', 'id1', 'memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n');
  assert.equal(await cg.oomKilled('id1'), true);
  assert.deepEqual((await cg.dirs('id1')).sort(), ['cpu,cpuacct', 'memory', 'pids'].map((c) => join(root.path, c, 'p', 'id1')).sort());
});

test('PID reuse guard: a PID is only "the same process" with its recorded start time', async () => {
  const start = await procStartTime(process.pid);
  assert.match(start ?? '', /^\d+$/);
  assert.equal(await sameProcess(process.pid, start), true);
  assert.equal(await sameProcess(process.pid, String(Number(start) + 1)), false, 'another start time: a reused PID');
  assert.equal(await sameProcess(process.pid, undefined), false);
  assert.equal(await sameProcess(0, start), false);
  const child = spawn('true');
  const pid = child.pid!;
  await new Promise((r) => child.on('close', r));
  assert.equal(await procStartTime(pid), undefined, 'gone');
});

test('spawn helper: a new session, env and cwd as asked, stderr to a file, fd 3 relayed', async () => {
  await using dir = await tempDir();
  const sp = new Spawner();
  try {
    const script = 'echo "$FOO $(pwd)" >&3; echo err-line >&2; ps -o sid= -p $$ >&3; printf "\\000\\377" >&3';
    const s = await sp.spawn({ file: '/bin/sh', args: ['-c', script], cwd: dir.path, env: { FOO: 'bar baz', PATH: '/usr/bin:/bin' }, stderrPath: join(dir.path, 'err') });
    assert.ok(s.pid > 0);
    const chunks: Buffer[] = [];
    for await (const c of s.fd3) chunks.push(c as Buffer);
    const out = Buffer.concat(chunks);
    const text = out.subarray(0, out.length - 2).toString();
    assert.equal(text.split('\n')[0], `bar baz ${dir.path}`);
    assert.equal(Number(text.split('\n')[1]), s.pid, 'session leader: its own session');
    assert.deepEqual([...out.subarray(out.length - 2)], [0, 255], 'binary bytes relayed intact');
    assert.equal(await readFile(join(dir.path, 'err'), 'utf8'), 'err-line\n');
    // A program that does not exist: the fork succeeds, the pipe just closes.
    const bad = await sp.spawn({ file: '/nonexistent/prog', args: [], cwd: dir.path, env: {}, stderrPath: join(dir.path, 'err2') });
    const rest: Buffer[] = [];
    for await (const c of bad.fd3) rest.push(c as Buffer);
    assert.equal(Buffer.concat(rest).length, 0);
    // Done with fd 3 while the program keeps it open (conmon does): the helper closes its end,
    // so the program's next write fails instead of filling a pipe nobody reads.
    const keep = await sp.spawn({ file: '/bin/sh', args: ['-c', 'trap "" PIPE; echo first >&3; sleep 0.5; echo again >&3 || echo write-failed >&2'], cwd: dir.path, env: { PATH: '/usr/bin:/bin' }, stderrPath: join(dir.path, 'err3') });
    const first = await new Promise<Buffer>((r) => keep.fd3.once('data', r));
    assert.equal(first.toString(), 'first\n');
    keep.fd3.destroy();
    await waitFor(async () => (await readFile(join(dir.path, 'err3'), 'utf8').catch(() => '')).includes('write-failed'), 'the write after release fails', 5000);
    await assert.rejects(sp.spawn({ file: '/bin/true', args: ['a\0b'], cwd: dir.path, env: {}, stderrPath: join(dir.path, 'e') }), (e: unknown) => isKind(e, 'Internal'));
  } finally {
    sp.close();
  }
});

test('detach keys: Docker\'s spelling, held-back prefixes, a broken sequence passes through', () => {
  assert.deepEqual([...parseDetachKeys(DEFAULT_DETACH_KEYS)], [0x10, 0x11]);
  assert.deepEqual([...parseDetachKeys('ctrl-@,a,ctrl-_,ctrl-Z')], [0x00, 0x61, 0x1f, 0x1a]);
  for (const bad of ['', 'ctrl-', 'ctrl-ab', 'ab', 'ctrl-1']) assert.throws(() => parseDetachKeys(bad), (e: unknown) => isKind(e, 'InvalidArgument'), bad);
  assert.throws(() => parseDetachKeys('xx', 'escape'), /Invalid escape keys \(xx\) provided/);
  const s = new DetachScanner(parseDetachKeys(DEFAULT_DETACH_KEYS));
  assert.deepEqual(s.push(Buffer.from('ab')), { data: Buffer.from('ab'), detach: false });
  assert.deepEqual(s.push(Buffer.from([0x63, 0x10])), { data: Buffer.from('c'), detach: false }, 'a possible start is held back');
  assert.deepEqual(s.push(Buffer.from([0x64])), { data: Buffer.from([0x10, 0x64]), detach: false }, 'broken: released');
  assert.deepEqual(s.push(Buffer.from([0x10, 0x10])), { data: Buffer.from([0x10]), detach: false }, 'a repeated first key restarts the match');
  assert.deepEqual(s.push(Buffer.from([0x11, 0x65])), { data: Buffer.alloc(0), detach: true }, 'complete across chunks: nothing of it, nothing after it');
  const one = new DetachScanner(Buffer.from([0x1d]));
  assert.deepEqual(one.push(Buffer.from([0x61, 0x1d, 0x62])), { data: Buffer.from('a'), detach: true });
});

test('spawn helper: a start pipe on fd 4 holds the program until start(); released unstarted, it is killed', async () => {
  await using dir = await tempDir();
  const sp = new Spawner();
  try {
    const script = 'echo ready >&3; read -r x <&4; echo "go $x" >&3';
    const s = await sp.spawn({ file: '/bin/sh', args: ['-c', script], cwd: dir.path, env: { PATH: '/usr/bin:/bin' }, stderrPath: join(dir.path, 'err'), startPipe: true });
    assert.equal(typeof s.start, 'function');
    const chunks: string[] = [];
    s.fd3.on('data', (c: Buffer) => chunks.push(c.toString()));
    await waitFor(async () => chunks.join('') === 'ready\n', 'the program started and waits', 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(chunks.join(''), 'ready\n', 'still waiting on fd 4');
    s.start!();
    await new Promise((r) => s.fd3.on('end', r));
    assert.equal(chunks.join(''), 'ready\ngo 0\n');
    // Let go of before start(): the helper kills it rather than let it take EOF for a start.
    const held = await sp.spawn({ file: '/bin/sh', args: ['-c', 'echo ready >&3; read -r x <&4; echo started >&2'], cwd: dir.path, env: { PATH: '/usr/bin:/bin' }, stderrPath: join(dir.path, 'err2'), startPipe: true });
    await new Promise((r) => held.fd3.once('data', r));
    held.fd3.destroy();
    await waitFor(async () => (await procStartTime(held.pid)) === undefined, 'the unstarted program is gone', 5000);
    assert.equal(await readFile(join(dir.path, 'err2'), 'utf8').catch(() => ''), '', 'it never ran past the start pipe');
  } finally {
    sp.close();
  }
});
