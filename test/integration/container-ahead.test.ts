// A container's runtime task is created ahead of its start (right after the create, for
// containers without a network service, volumes or devices): the start then only lets the init
// exec the user's process. None of it may show: the container is 'created' with no PID until it
// starts, every other operation sees it as if nothing had been made ahead, and what was made is
// undone when the start does not come (TTL), on removal, at shutdown and after a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, importBusybox, docker, berth, isRoot, waitFor, run, mountsUnder, tempDir, type TestDaemon } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

/** Containers in the runtime's state directory (runc's root under the exec root). */
async function runtimeTasks(d: TestDaemon): Promise<string[]> {
  return (await readdir(join(d.execRoot, 'runtimes', 'runc')).catch(() => [])).filter((f) => /^[0-9a-f]{64}$/.test(f));
}

async function runcState(d: TestDaemon, id: string): Promise<string | undefined> {
  const r = await run('runc', ['--root', join(d.execRoot, 'runtimes', 'runc'), 'state', id]);
  return r.code === 0 ? JSON.parse(r.stdout).status : undefined;
}

async function conmons(d: TestDaemon): Promise<string> {
  return (await run('pgrep', ['-f', `conmon .*${d.execRoot}`])).stdout.trim();
}

async function cgroupDirs(id: string): Promise<string[]> {
  const out: string[] = [];
  for (const parent of await readdir('/sys/fs/cgroup/memory').catch(() => [])) {
    if (existsSync(join('/sys/fs/cgroup/memory', parent, id))) out.push(join('/sys/fs/cgroup/memory', parent, id));
  }
  return out;
}

async function nothingLeft(d: TestDaemon, what: string): Promise<void> {
  await waitFor(async () => (await runtimeTasks(d)).length === 0, `${what}: no runtime state left`, 20_000);
  await waitFor(async () => (await conmons(d)) === '', `${what}: no conmon left`, 20_000);
  await waitFor(async () => (await mountsUnder(d.execRoot)).length === 0, `${what}: no rootfs mounted`, 20_000);
}

const ok = (r: { code: number; stderr: string }, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

test('a task created ahead: invisible before the start, used by it, undone by rm and when the start does not come', { skip, timeout: 180_000 }, async () => {
  const d = await startDaemon({ args: ['--prepare-ahead-ttl', '3000'] });
  try {
    await importBusybox(d);
    // Made ahead: runc holds it in 'created', the API shows a created container without a PID.
    let r = await docker(d, ['create', '--name', 'ahead1', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 7']);
    ok(r, 'create');
    const id = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id)) === 'created', 'task created ahead');
    let i = JSON.parse((await docker(d, ['inspect', id])).stdout)[0];
    assert.equal(i.State.Status, 'created');
    assert.equal(i.State.Pid, 0);
    assert.equal(i.State.StartedAt, '0001-01-01T00:00:00Z');
    assert.equal((await docker(d, ['logs', id])).stdout, '', 'no user code ran before the start');
    // The start uses it: the user's process runs once, with its output and exit code.
    r = await docker(d, ['start', '-a', id]);
    assert.equal(r.code, 7, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    i = JSON.parse((await docker(d, ['inspect', id])).stdout)[0];
    assert.equal(i.State.Status, 'exited');
    assert.equal(i.State.ExitCode, 7);
    assert.notEqual(i.State.StartedAt, '0001-01-01T00:00:00Z');
    ok(await docker(d, ['rm', id]), 'rm');
    await nothingLeft(d, 'after a start and rm');

    // rm of a container whose task was made ahead undoes it: no init, conmon, mount or cgroup.
    r = await docker(d, ['create', '--network', 'none', 'busybox', 'sleep', '600']);
    ok(r, 'create 2');
    const id2 = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id2)) === 'created', 'second task created ahead');
    const initPid = Number(JSON.parse((await run('runc', ['--root', join(d.execRoot, 'runtimes', 'runc'), 'state', id2])).stdout).pid);
    assert.ok(initPid > 0);
    assert.ok((await cgroupDirs(id2)).length > 0, 'the task has its cgroup');
    ok(await docker(d, ['rm', id2]), 'rm created');
    assert.notEqual((await run('kill', ['-0', String(initPid)])).code, 0, 'the waiting init is gone');
    assert.deepEqual(await cgroupDirs(id2), []);
    await nothingLeft(d, 'after rm of a created container');

    // No start within the TTL (3 s here): undone; a later start makes it the usual way.
    r = await docker(d, ['create', '--name', 'late', '--network', 'none', 'busybox', 'echo', 'late start']);
    ok(r, 'create 3');
    const id3 = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id3)) === 'created', 'third task created ahead');
    await nothingLeft(d, 'after the TTL');
    assert.equal(JSON.parse((await docker(d, ['inspect', id3])).stdout)[0].State.Status, 'created');
    r = await docker(d, ['start', '-a', 'late']);
    ok(r, 'late start');
    assert.equal(r.stdout, 'late start\n');
    ok(await docker(d, ['rm', 'late']), 'rm late');
    await nothingLeft(d, 'after the late start');
  } finally {
    await d.cleanup();
  }
});

test('a task created ahead is remade after what changes its container: update, cp', { skip, timeout: 120_000 }, async () => {
  const d = await startDaemon();
  try {
    await importBusybox(d);
    // update between create and start: the start sees the new limit (the task made ahead had
    // the old one and is undone by the update).
    let r = await docker(d, ['create', '--network', 'none', '-m', '64m', 'busybox', 'cat', '/sys/fs/cgroup/memory/memory.limit_in_bytes']);
    ok(r, 'create');
    const id = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id)) === 'created', 'task created ahead');
    ok(await docker(d, ['update', '-m', '96m', '--memory-swap', '-1', id]), 'update');
    r = await docker(d, ['start', '-a', id]);
    ok(r, 'start');
    assert.equal(r.stdout.trim(), String(96 * 1024 * 1024));
    ok(await docker(d, ['rm', id]), 'rm');

    // cp into a created container, then start: the file is there (the copy mounted and
    // unmounted the rootfs: the task made ahead over it was undone first).
    await using tmp = await tempDir();
    const dir = tmp.path;
    await run('sh', ['-c', `echo copied > ${join(dir, 'f.txt')}`]);
    r = await docker(d, ['create', '--network', 'none', 'busybox', 'cat', '/f.txt']);
    ok(r, 'create 2');
    const id2 = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id2)) === 'created', 'second task created ahead');
    ok(await docker(d, ['cp', join(dir, 'f.txt'), `${id2}:/f.txt`]), 'cp');
    r = await docker(d, ['start', '-a', id2]);
    ok(r, 'start 2');
    assert.equal(r.stdout, 'copied\n');
    ok(await docker(d, ['rm', id2]), 'rm 2');
    await nothingLeft(d, 'after update and cp');

    // The user databases a fresh container of this image read serve the next ones: the same
    // answers, and the same error for a user the image does not have.
    for (let k = 0; k < 2; k++) {
      r = await docker(d, ['run', '--rm', '--network', 'none', '-u', 'nobody', 'busybox', 'id']);
      ok(r, `run -u nobody #${k}`);
      assert.match(r.stdout, /^uid=65534\(nobody\) gid=65534\(nogroup\)/);
      r = await docker(d, ['run', '--rm', '--network', 'none', '-u', 'user:nogroup', 'busybox', 'id']);
      ok(r, `run -u user:nogroup #${k}`);
      assert.match(r.stdout, /^uid=1000\(user\) gid=65534\(nogroup\)/);
      r = await docker(d, ['run', '--rm', '--network', 'none', '-u', 'nosuchuser', 'busybox', 'id']);
      assert.notEqual(r.code, 0, `run -u nosuchuser #${k}`);
      assert.match(r.stderr, /unable to find user nosuchuser/);
    }

    // Not made ahead: a container with a volume (its mounts are resolved at the start).
    r = await docker(d, ['create', '--network', 'none', '-v', `${dir}:/data`, 'busybox', 'cat', '/data/f.txt']);
    ok(r, 'create with a bind');
    const id3 = r.stdout.trim();
    await new Promise((res) => setTimeout(res, 500));
    assert.equal(await runcState(d, id3), undefined, 'no task ahead for a container with a bind mount');
    r = await docker(d, ['start', '-a', id3]);
    assert.equal(r.stdout, 'copied\n');
    ok(await docker(d, ['rm', id3]), 'rm 3');
  } finally {
    await d.cleanup();
  }
});

test('a task created ahead does not outlive berthd: undone at shutdown and after a crash', { skip, timeout: 120_000 }, async () => {
  const d = await startDaemon();
  try {
    await importBusybox(d);
    let r = await docker(d, ['create', '--name', 'down1', '--network', 'none', 'busybox', 'echo', 'one']);
    ok(r, 'create');
    const id = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id)) === 'created', 'task created ahead');
    // A clean stop undoes it (a created container has no process in Docker).
    await d.stop();
    assert.deepEqual(await runtimeTasks(d), []);
    assert.equal(await conmons(d), '');
    assert.deepEqual(await mountsUnder(d.execRoot), []);
    await d.restart();
    r = await docker(d, ['start', '-a', 'down1']);
    ok(r, 'start after restart');
    assert.equal(r.stdout, 'one\n');

    // A crash (kill -9) leaves it; the next start undoes it, and the container starts.
    r = await docker(d, ['create', '--name', 'crash1', '--network', 'none', 'busybox', 'echo', 'two']);
    ok(r, 'create 2');
    const id2 = r.stdout.trim();
    await waitFor(async () => (await runcState(d, id2)) === 'created', 'second task created ahead');
    const initPid = Number(JSON.parse((await run('runc', ['--root', join(d.execRoot, 'runtimes', 'runc'), 'state', id2])).stdout).pid);
    await d.kill();
    assert.equal((await run('kill', ['-0', String(initPid)])).code, 0, 'the crash left the waiting init');
    await d.restart();
    await waitFor(async () => (await run('kill', ['-0', String(initPid)])).code !== 0, 'the waiting init undone at restore', 20_000);
    assert.equal(JSON.parse((await docker(d, ['inspect', 'crash1'])).stdout)[0].State.Status, 'created');
    r = await docker(d, ['start', '-a', 'crash1']);
    ok(r, 'start after crash');
    assert.equal(r.stdout, 'two\n');
    assert.equal((await readFile(join(d.dataRoot, 'containers', id2, 'config.v2.json'), 'utf8')).includes('"exited"'), true);
    ok(await docker(d, ['rm', 'down1', 'crash1']), 'rm');
    await nothingLeft(d, 'after shutdown and crash');
    // The berth CLI's run --rm goes through the same path.
    r = await berth(d, ['run', '--rm', '--network', 'none', 'busybox', 'echo', 'three']);
    ok(r, 'berth run --rm');
    assert.equal(r.stdout, 'three\n');
    await nothingLeft(d, 'after run --rm');
  } finally {
    await d.cleanup();
  }
});
