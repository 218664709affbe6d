// The berth CLI (not only the docker CLI) drives networks and volumes end to end: a user
// network with DNS by name and alias, a published port, and a named volume that outlives the
// containers and cannot be removed while in use.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startDaemon, importBusybox, berth, isRoot, waitFor } from '../helpers/fixtures.ts';

test('berth CLI: network create, DNS by name and alias, -p, named volume, rm', { skip: !isRoot }, async () => {
  await using d = await startDaemon();
  await importBusybox(d);
  const tag = randomBytes(3).toString('hex');
  const net = `bn${tag}`;
  const ok = async (args: string[]) => {
    const r = await berth(d, args, { timeoutMs: 60_000 });
    assert.equal(r.code, 0, `berth ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await ok(['network', 'create', '--subnet', `10.${100 + (parseInt(tag.slice(0, 2), 16) % 50)}.${parseInt(tag.slice(2, 4), 16)}.0/24`, net]);
  assert.match(await ok(['network', 'ls', '--format', '{{.Name}}']), new RegExp(`^${net}$`, 'm'));
  await ok(['run', '-d', '--name', `web${tag}`, '--network', net, '--network-alias', `alias${tag}`, '-p', '127.0.0.1::80', 'busybox', 'httpd', '-f', '-p', '80', '-h', '/etc']);
  const byName = await ok(['run', '--rm', '--network', net, 'busybox', 'sh', '-c', `for i in 1 2 3 4 5 6 7 8 9 10; do wget -q -O - http://web${tag}/passwd && exit 0; sleep 0.3; done; exit 1`]);
  assert.match(byName, /^root:/m);
  const byAlias = await ok(['run', '--rm', '--network', net, 'busybox', 'wget', '-q', '-O', '-', `http://alias${tag}/group`]);
  assert.match(byAlias, /^root:/m);
  const port = (await ok(['port', `web${tag}`, '80'])).trim();
  assert.match(port, /^127\.0\.0\.1:\d+$/);
  let body = '';
  await waitFor(async () => {
    const r = await fetch(`http://${port}/hostname`);
    body = await r.text();
    return r.status === 200;
  }, 'the published port');
  assert.ok(body.trim().length > 0);

  const vol = `bv${tag}`;
  await ok(['volume', 'create', '--label', 'k=v', vol]);
  await ok(['run', '--rm', '-v', `${vol}:/data`, 'busybox', 'sh', '-c', 'echo kept > /data/f']);
  assert.equal((await ok(['run', '--rm', '-v', `${vol}:/data:ro`, 'busybox', 'cat', '/data/f'])).trim(), 'kept');
  await ok(['run', '-d', '--name', `user${tag}`, '-v', `${vol}:/data`, 'busybox', 'sleep', '300']);
  const busy = await berth(d, ['volume', 'rm', vol]);
  assert.notEqual(busy.code, 0, 'a volume in use was removed');
  await ok(['rm', '-f', `user${tag}`, `web${tag}`]);
  await ok(['volume', 'rm', vol]);
  await ok(['network', 'rm', net]);
  assert.doesNotMatch(await ok(['network', 'ls', '--format', '{{.Name}}']), new RegExp(`^${net}$`, 'm'));
});
