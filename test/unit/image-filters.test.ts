// GET /images/json?filters={"reference":[...]}: Docker's FamiliarMatch per tag, only matching tags kept.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { filterByReference, globRe } from '../../src/image/image-routes.ts';
import type { StoredImage } from '../../src/image/image-store.ts';

const D = 'sha256:' + 'a'.repeat(64);
const img = (id: string, repoTags: string[], repoDigests: string[] = []): StoredImage =>
  ({ id, repoTags, repoDigests, added: '2026-01-01T00:00:00Z', size: 1 }) as unknown as StoredImage;

const images = [
  img('sha256:' + '1'.repeat(64), ['docker.io/library/busybox:latest', 'docker.io/library/busybox:1', 'docker.io/other/app:1'], [`docker.io/library/busybox@${D}`]),
  img('sha256:' + '2'.repeat(64), ['docker.io/library/alpine:3']),
  img('sha256:' + '3'.repeat(64), []),
];
const tags = (l: StoredImage[]) => l.map((i) => i.repoTags);

test('reference filter keeps only the matching tags and drops images with none', () => {
  assert.deepEqual(tags(filterByReference(images, ['busybox:1'])), [['docker.io/library/busybox:1']]);
  assert.deepEqual(filterByReference(images, ['busybox:1'])[0]!.repoDigests, []);
  assert.deepEqual(tags(filterByReference(images, ['*/app:1'])), [['docker.io/other/app:1']]);
  assert.deepEqual(tags(filterByReference(images, ['nothing'])), []);
  // The input records are not modified.
  assert.equal(images[0]!.repoTags.length, 3);
});

test('a bare name matches every tag and digest of that repository', () => {
  const r = filterByReference(images, ['busybox']);
  assert.deepEqual(tags(r), [['docker.io/library/busybox:latest', 'docker.io/library/busybox:1']]);
  assert.deepEqual(r[0]!.repoDigests, [`docker.io/library/busybox@${D}`]);
  assert.deepEqual(tags(filterByReference(images, ['busybox:*'])), [['docker.io/library/busybox:latest', 'docker.io/library/busybox:1']]);
});

test('several patterns: a tag matching any of them is kept', () => {
  assert.deepEqual(tags(filterByReference(images, ['busybox:latest', 'alpine'])), [['docker.io/library/busybox:latest'], ['docker.io/library/alpine:3']]);
});

test('globRe follows path.Match: * stays in a segment, classes, escapes, bad patterns', () => {
  assert.equal(globRe('*').test('other/app'), false);
  assert.equal(globRe('*/*').test('other/app'), true);
  assert.equal(globRe('busybox:[0-9]').test('busybox:1'), true);
  assert.equal(globRe('busybox:[^0-9]').test('busybox:1'), false);
  assert.equal(globRe('busybox:[^0-9]').test('busybox:x'), true);
  assert.equal(globRe('a.b').test('axb'), false);
  assert.equal(globRe('a\\*').test('a*'), true);
  assert.equal(globRe('a\\*').test('ab'), false);
  assert.throws(() => globRe('busybox:[1'), /syntax error in pattern/);
});
