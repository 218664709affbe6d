// The berth CLI against a real berthd (root): image and container verbs end to end, exit codes,
// stdin, cp, save/load, and login + push/pull through an htpasswd-protected registry.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isRoot, startDaemon, startRegistry, busyboxRootfs, tarDirectory, tempDir, berth, type TestDaemon } from '../helpers/fixtures.ts';

const skip = isRoot ? false : 'needs root';
let d: TestDaemon;
let dir: Awaited<ReturnType<typeof tempDir>>;

before(async () => {
  if (!isRoot) return;
  d = await startDaemon();
  dir = await tempDir('berth-cli-int-');
  await busyboxRootfs(join(dir.path, 'rootfs'));
  await writeFile(join(dir.path, 'busybox.tar'), await tarDirectory(join(dir.path, 'rootfs')));
  const r = await berth(d, ['import', '-c', 'CMD ["sh"]', join(dir.path, 'busybox.tar'), 'busybox:latest']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^sha256:[0-9a-f]{64}\n$/);
});

after(async () => {
  if (!isRoot) return;
  await berth(d, ['rm', '-f', 'web']);
  await d.cleanup();
  await dir.cleanup();
});

test('images, inspect and history show the imported image', { skip }, async () => {
  const r = await berth(d, ['images']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^REPOSITORY {3}TAG {7}IMAGE ID {7}CREATED +SIZE\nbusybox {6}latest {4}[0-9a-f]{12} {3}/);
  const i = await berth(d, ['image', 'inspect', '-f', '{{json .Config.Cmd}}', 'busybox']);
  assert.equal(i.stdout, '["sh"]\n');
  const none = await berth(d, ['image', 'inspect', 'nosuch']);
  assert.equal(none.code, 1);
  assert.equal(none.stdout, '[]\n');
  assert.match(none.stderr, /^Error response from daemon: No such image: nosuch/);
});

test('run: output, exit status, stdin, --rm', { skip }, async () => {
  const hello = await berth(d, ['run', '--rm', 'busybox', 'echo', 'hello']);
  assert.equal(hello.code, 0, hello.stderr);
  assert.equal(hello.stdout, 'hello\n');
  const seven = await berth(d, ['run', '--rm', 'busybox', 'sh', '-c', 'echo err >&2; exit 7']);
  assert.equal(seven.code, 7);
  assert.equal(seven.stderr, 'err\n');
  const cat = await berth(d, ['run', '--rm', '-i', 'busybox', 'sh', '-c', 'cat; echo done'], { input: 'from stdin\n' });
  assert.equal(cat.code, 0, cat.stderr);
  assert.equal(cat.stdout, 'from stdin\ndone\n');
  const env = await berth(d, ['run', '--rm', '-e', 'A=1', '-w', '/tmp', 'busybox', 'sh', '-c', 'echo $A $(pwd)']);
  assert.equal(env.stdout, '1 /tmp\n');
  const ps = await berth(d, ['ps', '-a', '-q']);
  assert.equal(ps.stdout, '', 'no --rm container left');
  const missing = await berth(d, ['run', '--rm', '--pull', 'never', 'nosuch:1']);
  assert.equal(missing.code, 125);
  assert.match(missing.stderr, /^berth: Error response from daemon: No such image/);
});

test('detached container: ps, exec, logs, cp, stop, rm', { skip }, async () => {
  const run = await berth(d, ['run', '-d', '--name', 'web', 'busybox', 'sh', '-c', 'echo started; sleep 300']);
  assert.equal(run.code, 0, run.stderr);
  const id = run.stdout.trim();
  assert.match(id, /^[0-9a-f]{64}$/);
  const ps = await berth(d, ['ps', '--format', '{{.ID}} {{.Names}} {{.Command}}']);
  assert.equal(ps.stdout, `${id.slice(0, 12)} web "sh -c 'echo started…"\n`);
  const ex = await berth(d, ['exec', 'web', 'sh', '-c', 'echo in-exec; exit 5']);
  assert.equal(ex.code, 5);
  assert.equal(ex.stdout, 'in-exec\n');
  const logs = await berth(d, ['logs', 'web']);
  assert.equal(logs.stdout, 'started\n');

  await mkdir(join(dir.path, 'up'));
  await writeFile(join(dir.path, 'up', 'a.txt'), 'A');
  const cpIn = await berth(d, ['cp', join(dir.path, 'up'), 'web:/tmp/']);
  assert.equal(cpIn.code, 0, cpIn.stderr);
  assert.equal((await berth(d, ['exec', 'web', 'cat', '/tmp/up/a.txt'])).stdout, 'A');
  const cpOut = await berth(d, ['cp', 'web:/tmp/up', join(dir.path, 'down')]);
  assert.equal(cpOut.code, 0, cpOut.stderr);
  assert.equal(await readFile(join(dir.path, 'down', 'a.txt'), 'utf8'), 'A');

  const stop = await berth(d, ['stop', '-t', '1', 'web']);
  assert.equal(stop.stdout, 'web\n');
  const st = await berth(d, ['inspect', '-f', '{{.State.Status}}', 'web']);
  assert.equal(st.stdout, 'exited\n');
  const rm = await berth(d, ['rm', 'web']);
  assert.equal(rm.stdout, 'web\n');
});

test('tag, save, rmi, load round trip', { skip }, async () => {
  assert.equal((await berth(d, ['tag', 'busybox', 'me/bb:1'])).code, 0);
  const out = join(dir.path, 'saved.tar');
  const save = await berth(d, ['save', '-o', out, 'me/bb:1']);
  assert.equal(save.code, 0, save.stderr);
  const rmi = await berth(d, ['rmi', 'me/bb:1']);
  assert.equal(rmi.code, 0, rmi.stderr);
  assert.equal(rmi.stdout, 'Untagged: me/bb:1\n');
  const load = await berth(d, ['load', '-i', out]);
  assert.equal(load.code, 0, load.stderr);
  assert.match(load.stdout, /Loaded image: me\/bb:1/);
  const listed = await berth(d, ['images', '--format', '{{.Repository}}:{{.Tag}}', 'me/bb']);
  assert.ok(listed.stdout.split('\n').includes('me/bb:1'), listed.stdout);
});

test('build: context with .dockerignore, tag, run the result', { skip }, async () => {
  const ctxDir = join(dir.path, 'ctx');
  await mkdir(ctxDir);
  await writeFile(join(ctxDir, 'Dockerfile'), 'FROM busybox\nCOPY . /app/\nRUN ls /app > /listing\nCMD ["cat", "/listing"]\n');
  await writeFile(join(ctxDir, 'keep.txt'), 'k');
  await writeFile(join(ctxDir, 'secret.txt'), 's');
  await writeFile(join(ctxDir, '.dockerignore'), 'secret.txt\n');
  const b = await berth(d, ['build', '-t', 'built:1', ctxDir]);
  assert.equal(b.code, 0, b.stderr + b.stdout);
  assert.match(b.stdout, /^Sending build context to Docker daemon/);
  assert.match(b.stdout, /Successfully tagged built:1\n$/);
  const r = await berth(d, ['run', '--rm', 'built:1']);
  assert.equal(r.stdout, 'Dockerfile\nkeep.txt\n');
  const q = await berth(d, ['build', '-q', ctxDir]);
  assert.equal(q.code, 0, q.stderr);
  assert.match(q.stdout, /^sha256:[0-9a-f]{64}\n$/);
});

test('login stores credentials; push and pull through an authenticating registry', { skip }, async () => {
  const reg = await startRegistry({ htpasswd: { user: 'alice', pass: 's3cret' } });
  try {
    const bad = await berth(d, ['login', '-u', 'alice', '--password-stdin', reg.addr], { input: 'wrong\n' });
    assert.equal(bad.code, 1);
    const login = await berth(d, ['login', '-u', 'alice', '--password-stdin', reg.addr], { input: 's3cret\n' });
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.stdout, 'Login Succeeded\n');
    const cfg = JSON.parse(await readFile(join(d.dataRoot, '..', 'docker-config', 'config.json'), 'utf8')) as { auths: Record<string, unknown> };
    assert.ok(cfg.auths[reg.addr], 'credentials stored under the registry host');
    const ref = `${reg.addr}/team/bb:v1`;
    assert.equal((await berth(d, ['tag', 'busybox', ref])).code, 0);
    const push = await berth(d, ['push', ref]);
    assert.equal(push.code, 0, push.stderr + push.stdout);
    assert.equal((await berth(d, ['rmi', ref])).code, 0);
    const pull = await berth(d, ['pull', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    assert.ok(pull.stdout.endsWith(`${ref}\n`), pull.stdout);
    const logout = await berth(d, ['logout', reg.addr]);
    assert.equal(logout.stdout, `Removing login credentials for ${reg.addr}\n`);
    assert.equal((await berth(d, ['rmi', ref])).code, 0);
    const denied = await berth(d, ['pull', ref]);
    assert.notEqual(denied.code, 0, 'pull without credentials is refused');
  } finally {
    await reg.stop();
  }
});
