import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { ContentStore } from '../../src/content/content-store.ts';
import { sha256 } from '../../src/core/digest.ts';
import { isKind } from '../../src/core/errors.ts';
import { tempDir } from '../helpers/fixtures.ts';

test('ingest commits a verified blob', async () => {
  await using dir = await tempDir();
  const cs = new ContentStore(dir.path);
  await cs.init();
  const data = Buffer.from('hello world');
  const info = await cs.ingest(Readable.from([data.subarray(0, 5), data.subarray(5)]), { digest: sha256(data), size: data.length });
  assert.equal(info.size, 11);
  assert.deepEqual(await readFile(cs.blobPath(sha256(data))), data);
  assert.deepEqual(await readdir(join(dir.path, 'ingest')), []);
});

test('a wrong digest fails with DataLoss and leaves nothing visible', async () => {
  await using dir = await tempDir();
  const cs = new ContentStore(dir.path);
  await cs.init();
  const want = sha256('something else');
  await assert.rejects(cs.ingest(Readable.from([Buffer.from('evil')]), { digest: want }), (e: unknown) => isKind(e, 'DataLoss') && /digest/.test((e as Error).message));
  assert.equal(await cs.has(want), false);
  assert.deepEqual(await readdir(join(dir.path, 'ingest')), []);
});

test('a stream longer than the expected size fails early', async () => {
  await using dir = await tempDir();
  const cs = new ContentStore(dir.path);
  await cs.init();
  const data = Buffer.alloc(100);
  await assert.rejects(cs.ingest(Readable.from([data]), { digest: sha256(data), size: 10 }), (e: unknown) => isKind(e, 'DataLoss'));
  await assert.rejects(cs.ingest(Readable.from([data.subarray(0, 5)]), { digest: sha256(data), size: 100 }), (e: unknown) => isKind(e, 'DataLoss') && /size/.test((e as Error).message));
  assert.equal(await cs.has(sha256(data)), false);
});

test('putBytes is idempotent and list enumerates blobs', async () => {
  await using dir = await tempDir();
  const cs = new ContentStore(dir.path);
  await cs.init();
  await cs.putBytes(Buffer.from('{}'));
  await cs.putBytes(Buffer.from('{}'));
  const all = [];
  for await (const b of cs.list()) all.push(b);
  assert.deepEqual(all, [{ digest: sha256('{}'), size: 2 }]);
  assert.deepEqual(await cs.readJson(sha256('{}')), {});
  assert.equal(await cs.delete(sha256('{}')), true);
  assert.equal(await cs.delete(sha256('{}')), false);
});

test('sweepIngest removes interrupted writes', async () => {
  await using dir = await tempDir();
  const cs = new ContentStore(dir.path);
  await cs.init();
  const w = await cs.writer({ digest: sha256('x') });
  w.write(Buffer.from('partial'));
  assert.equal((await readdir(join(dir.path, 'ingest'))).length, 1);
  await w.abort();
  const w2 = await cs.writer({ digest: sha256('y') });
  void w2;
  assert.equal(await cs.sweepIngest(), 1);
  assert.deepEqual(await readdir(join(dir.path, 'ingest')), []);
});
