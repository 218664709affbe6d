// Start failures through the real docker CLI: full runc error, 126/127, --rm removal without a
// hang; wait on an unknown container is a 404.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { docker, api, isRoot, fileDaemon } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';
const d = fileDaemon(skip);

test('run --rm of a missing or non-executable command: full error, 127/126, returns, container gone', { skip, timeout: 60000 }, async () => {
  const cases: Array<[string, number, RegExp]> = [
    ['/nonexistent', 127, /exec: "\/nonexistent": stat \/nonexistent: no such file or directory/],
    ['no-such-binary', 127, /exec: "no-such-binary": executable file not found in \$PATH/],
    ['/etc/passwd', 126, /exec: "\/etc\/passwd": permission denied/],
  ];
  for (const [cmd, code, msg] of cases) {
    // timeoutMs: a hang (removed-waiter never answered) fails here instead of stalling the suite.
    const r = await docker(d, ['run', '--rm', '--network', 'none', 'busybox', cmd], { timeoutMs: 20000 });
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr, msg);
    assert.doesNotMatch(r.stderr, /exec: `\s*$/m, 'message not cut off');
    // The removed-wait answers without an error (as Docker), so the CLI logs nothing extra.
    assert.doesNotMatch(r.stderr, /Error waiting for container/);
  }
  const ps = await docker(d, ['ps', '-a', '--format', '{{.Command}}']);
  assert.equal(ps.code, 0, ps.stderr);
  assert.equal(ps.stdout.trim(), '', 'no --rm container left');
});

test('wait condition=removed returns once a failed --rm container is removed', { skip, timeout: 60000 }, async () => {
  const c = await api(d.socket, 'POST', '/containers/create', { Image: 'busybox', Cmd: ['/nonexistent'], HostConfig: { AutoRemove: true, NetworkMode: 'none' } });
  assert.equal(c.status, 201, c.text());
  const id = c.json().Id as string;
  const waiting = api(d.socket, 'POST', `/containers/${id}/wait?condition=removed`);
  const s = await api(d.socket, 'POST', `/containers/${id}/start`);
  assert.equal(s.status, 400, s.text());
  assert.match(s.json().message, /no such file or directory/);
  const w = await Promise.race([waiting, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('wait did not return')), 15000).unref())]);
  assert.equal(w.status, 200);
  assert.equal(w.json().StatusCode, 127);
  assert.equal(w.json().Error, null);
  assert.equal((await api(d.socket, 'GET', `/containers/${id}/json`)).status, 404);
});

test('run without --rm of a missing command: 127, the start error once, no wait error', { skip, timeout: 60000 }, async () => {
  for (const extra of [[], ['-d']]) {
    const r = await docker(d, ['run', ...extra, '--name', `startfail${extra.length}`, '--network', 'none', 'busybox', '/nonexistent'], { timeoutMs: 20000 });
    assert.equal(r.code, 127, r.stderr);
    assert.match(r.stderr, /stat \/nonexistent: no such file or directory/);
    assert.doesNotMatch(r.stderr, /Error waiting for container/);
    const st = await docker(d, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', `startfail${extra.length}`]);
    assert.equal(st.stdout.trim(), 'created 127');
    assert.equal((await docker(d, ['rm', `startfail${extra.length}`])).code, 0);
  }
});

test('wait on an unknown container is a 404 with Docker\'s message', { skip, timeout: 30000 }, async () => {
  for (const cond of ['', '?condition=removed', '?condition=next-exit']) {
    const w = await api(d.socket, 'POST', `/containers/no-such-ctr/wait${cond}`);
    assert.equal(w.status, 404, w.text());
    assert.equal(w.json().message, 'No such container: no-such-ctr');
  }
  const r = await docker(d, ['wait', 'no-such-ctr'], { timeoutMs: 15000 });
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /No such container: no-such-ctr/);
});

test('exec of a missing or non-executable command: 127/126 with runc\'s error, with and without a TTY', { skip, timeout: 60000 }, async () => {
  const run = await docker(d, ['run', '-d', '--network', 'none', '--name', 'execfail', 'busybox', 'sleep', '60']);
  assert.equal(run.code, 0, run.stderr);
  try {
    for (const tty of [[], ['-t']]) {
      const missing = await docker(d, ['exec', ...tty, 'execfail', 'no-such-binary'], { timeoutMs: 15000 });
      assert.equal(missing.code, 127, `${tty} ${missing.stderr}`);
      assert.match(missing.stdout + missing.stderr, /exec: \\?"no-such-binary\\?": executable file not found in \$PATH/);
      const denied = await docker(d, ['exec', ...tty, 'execfail', '/etc/passwd'], { timeoutMs: 15000 });
      assert.equal(denied.code, 126, `${tty} ${denied.stderr}`);
      assert.match(denied.stdout + denied.stderr, /exec: \\?"\/etc\/passwd\\?": permission denied/);
    }
    // A process of its own that exits 255 keeps its code.
    assert.equal((await docker(d, ['exec', 'execfail', 'sh', '-c', 'exit 255'])).code, 255);
  } finally {
    await docker(d, ['rm', '-f', 'execfail']);
  }
});
