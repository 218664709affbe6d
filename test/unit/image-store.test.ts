import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isKind } from '../../src/core/errors.ts';
import type { Digest } from '../../src/core/digest.ts';
import { ImageStore, familiar, normalizeName, repoOf } from '../../src/image/image-store.ts';
import { tempDir } from '../helpers/fixtures.ts';

const A = `sha256:${'a'.repeat(60)}1111` as Digest;
const B = `sha256:${'a'.repeat(60)}2222` as Digest;
const C = `sha256:${'c'.repeat(64)}` as Digest;
const DIG = `sha256:${'d'.repeat(64)}`;

async function store(dir: string): Promise<ImageStore> {
  const s = new ImageStore(join(dir, 'image', 'images.json'));
  await s.load();
  await s.mutate((d) => {
    d.put({ id: A, repoTags: ['busybox'], repoDigests: [`busybox@${DIG}`], added: '2024-01-01T00:00:00Z', size: 1 });
    d.put({ id: B, repoTags: ['127.0.0.1:5000/a/b:1'], repoDigests: [], added: '2024-01-01T00:00:00Z', size: 2 });
    d.put({ id: C, repoTags: [], repoDigests: [], added: '2024-01-01T00:00:00Z', size: 3 });
  });
  return s;
}

test('names are normalized Docker-style', () => {
  assert.equal(normalizeName('busybox'), 'docker.io/library/busybox:latest');
  assert.equal(normalizeName('me/app:1'), 'docker.io/me/app:1');
  assert.equal(repoOf('docker.io/library/busybox:latest'), 'docker.io/library/busybox');
  assert.equal(repoOf('127.0.0.1:5000/a@sha256:' + 'e'.repeat(64)), '127.0.0.1:5000/a');
  assert.equal(repoOf('127.0.0.1:5000/a'), '127.0.0.1:5000/a');
  assert.equal(familiar('docker.io/library/busybox:latest'), 'busybox:latest');
  assert.equal(familiar('127.0.0.1:5000/a/b:1'), '127.0.0.1:5000/a/b:1');
});

test("lookup follows Docker's order: ID, reference, ID prefix", async () => {
  await using dir = await tempDir();
  const s = await store(dir.path);
  assert.equal(s.lookup('busybox').id, A);
  assert.equal(s.lookup('busybox:latest').id, A);
  assert.equal(s.lookup('docker.io/library/busybox:latest').id, A);
  assert.equal(s.lookup(`busybox@${DIG}`).id, A);
  assert.equal(s.lookup(`busybox:whatever@${DIG}`).id, A, 'the digest wins over the tag');
  assert.equal(s.lookup('127.0.0.1:5000/a/b:1').id, B);
  assert.equal(s.lookup(C).id, C);
  assert.equal(s.lookup(C.slice(7)).id, C, 'a bare 64-hex string is an ID');
  assert.equal(s.lookup('ccc').id, C, 'short ID prefix');
  assert.equal(s.lookup('sha256:ccc').id, C);
  assert.throws(() => s.lookup('aaaa'), (e: unknown) => isKind(e, 'InvalidArgument') && /ambiguous/.test((e as Error).message));
  assert.throws(() => s.lookup('nope'), (e: unknown) => isKind(e, 'NotFound') && (e as Error).message === 'No such image: nope:latest');
  assert.throws(() => s.lookup(`sha256:${'f'.repeat(64)}`), (e: unknown) => isKind(e, 'NotFound'));
  assert.throws(() => s.lookup('Busybox'), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('a tag moves: it names one image at a time; the index survives a reload', async () => {
  await using dir = await tempDir();
  const s = await store(dir.path);
  await s.mutate((d) => d.addRef(C, 'docker.io/library/busybox:latest'));
  assert.deepEqual(s.get(A)!.repoTags, []);
  assert.deepEqual(s.get(C)!.repoTags, ['docker.io/library/busybox:latest']);
  assert.ok(s.get(C)!.lastTagTime);
  const again = new ImageStore(join(dir.path, 'image', 'images.json'));
  await again.load();
  assert.equal(again.lookup('busybox').id, C);
  assert.equal(again.size, 3);
  const raw = JSON.parse(await readFile(join(dir.path, 'image', 'images.json'), 'utf8'));
  assert.equal(raw.version, 1);
});

test('a failed mutation changes nothing, in memory or on disk', async () => {
  await using dir = await tempDir();
  const s = await store(dir.path);
  const before = await readFile(join(dir.path, 'image', 'images.json'), 'utf8');
  await assert.rejects(s.mutate((d) => {
    d.delete(A);
    throw new Error('boom');
  }));
  assert.ok(s.get(A));
  assert.equal(await readFile(join(dir.path, 'image', 'images.json'), 'utf8'), before);
});
