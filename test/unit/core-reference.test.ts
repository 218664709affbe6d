import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReference, formatReference, familiarString, registryHost } from '../../src/core/reference.ts';
import { isKind } from '../../src/core/errors.ts';

const D = 'sha256:' + 'a'.repeat(64);

test('normalizes references as Docker does', () => {
  const cases: Array<[string, string]> = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['me/app:v1', 'docker.io/me/app:v1'],
    ['index.docker.io/me/app', 'docker.io/me/app:latest'],
    ['localhost/app', 'localhost/app:latest'],
    ['localhost:5000/a/b/c:t', 'localhost:5000/a/b/c:t'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest'],
    ['quay.io/org/img:tag', 'quay.io/org/img:tag'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`host:1/a:tag@${D}`, `host:1/a:tag@${D}`],
    ['[::1]:5000/a', '[::1]:5000/a:latest'],
  ];
  for (const [input, want] of cases) assert.equal(formatReference(parseReference(input)), want, input);
});

test('familiar form drops docker.io/library', () => {
  assert.equal(familiarString(parseReference('busybox')), 'busybox:latest');
  assert.equal(familiarString(parseReference('me/app:1')), 'me/app:1');
  assert.equal(familiarString(parseReference('127.0.0.1:5000/x:y')), '127.0.0.1:5000/x:y');
});

test('no default tag on request', () => {
  assert.equal(parseReference('busybox', { defaultTag: false }).tag, undefined);
});

test('refuses invalid references before any network traffic', () => {
  for (const bad of ['', 'me/UPPER', 'Busybox', 'a b', 'busybox:', 'busybox@sha256:abc', ':tag', 'a//b', '-a', 'a/-b', 'x:' + 't'.repeat(129), 'a' + '/b'.repeat(200), 'busybox@md5:' + 'a'.repeat(32)]) {
    assert.throws(() => parseReference(bad), (e: unknown) => isKind(e, 'InvalidArgument') && /invalid reference format/.test((e as Error).message), bad);
  }
});

test('docker.io is served by registry-1.docker.io', () => {
  assert.equal(registryHost('docker.io'), 'registry-1.docker.io');
  assert.equal(registryHost('127.0.0.1:5000'), '127.0.0.1:5000');
});
