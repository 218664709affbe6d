import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedQueue } from '../../src/pkg/keyed-queue.ts';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('KeyedQueue: one key runs in order, past failures; other keys run alongside; idle waits', async () => {
  const q = new KeyedQueue();
  const log: string[] = [];
  const a1 = q.run('a', async () => { await tick(20); log.push('a1'); return 1; });
  const a2 = q.run('a', async () => { log.push('a2'); throw new Error('boom'); });
  const a3 = q.run('a', async () => { log.push('a3'); return 3; });
  const b1 = q.run('b', async () => { log.push('b1'); return 'b'; });
  assert.equal(await b1, 'b');
  assert.deepEqual(log, ['b1'], 'b does not wait for a');
  assert.equal(await a1, 1);
  await assert.rejects(a2, /boom/);
  assert.equal(await a3, 3);
  assert.deepEqual(log, ['b1', 'a1', 'a2', 'a3']);
  let done = false;
  void q.run('c', async () => { await tick(10); done = true; });
  await q.idle('c');
  assert.equal(done, true);
  void q.run('d', async () => { await tick(10); log.push('d'); });
  await q.idleAll();
  assert.equal(log.at(-1), 'd');
  await q.idle('never-used');
});
