// Containers through the berth CLI (a client of the same API) against berthd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { berth, isRoot, waitFor, mountsUnder, fileDaemon } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';
const d = fileDaemon(skip);

test('berth run: exit code, streams apart, --rm', { skip }, async () => {
  const r = await berth(d, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 4']);
  assert.equal(r.code, 4, r.stderr);
  assert.equal(r.stdout, 'out\n');
  assert.equal(r.stderr, 'err\n');
  const nf = await berth(d, ['run', '--rm', 'busybox', 'no-such-cmd']);
  assert.equal(nf.code, 127);
  await waitFor(async () => (await berth(d, ['ps', '-aq'])).stdout.trim() === '', 'removed');
  await waitFor(async () => (await mountsUnder(d.execRoot)).length === 0, 'no mounts', 5000);
});

test('berth run -d, exec, logs, stop, rm', { skip }, async () => {
  const r = await berth(d, ['run', '-d', '--name', 'bc', 'busybox', 'sh', '-c', 'echo hello; sleep 60']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[0-9a-f]{64}\n$/);
  const ex = await berth(d, ['exec', 'bc', 'sh', '-c', 'echo $((6*7))']);
  assert.equal(ex.stdout, '42\n');
  await waitFor(async () => (await berth(d, ['logs', 'bc'])).stdout === 'hello\n', 'logs');
  assert.equal((await berth(d, ['stop', '-t', '1', 'bc'])).code, 0);
  const ins = JSON.parse((await berth(d, ['inspect', 'bc'])).stdout)[0];
  assert.equal(ins.State.Status, 'exited');
  assert.equal((await berth(d, ['rm', 'bc'])).code, 0);
  const gone = await berth(d, ['inspect', 'bc']);
  assert.notEqual(gone.code, 0);
});
