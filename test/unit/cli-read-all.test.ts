// readAll (src/cli/api-client.ts): a stream's rest as one Buffer, its failures as rejections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { readAll } from '../../src/cli/api-client.ts';

test('readAll: every chunk to the end, strings as UTF-8', async () => {
  const s = new PassThrough();
  const p = readAll(s);
  s.write(Buffer.from('{"Id":'));
  s.end('"é"}');
  assert.equal((await p).toString('utf8'), '{"Id":"é"}');
  assert.equal((await readAll(Readable.from(['a', 'b']))).toString(), 'ab');
});

test('readAll: rejects on error and on a close before the end; an ended stream gives nothing', async () => {
  const s = new PassThrough();
  const p = readAll(s);
  s.write('x');
  s.destroy(new Error('boom'));
  await assert.rejects(p, /boom/);

  const cut = new PassThrough();
  const p2 = readAll(cut);
  cut.write('x');
  await new Promise((r) => setImmediate(r));
  cut.destroy();
  await assert.rejects(p2, (e: NodeJS.ErrnoException) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');

  const errored = new PassThrough();
  errored.on('error', () => {});
  errored.destroy(new Error('before'));
  await assert.rejects(readAll(errored), /before/);

  const ended = new PassThrough();
  ended.end('gone');
  ended.resume();
  await new Promise((r) => ended.once('end', r));
  assert.equal((await readAll(ended)).length, 0);
});
