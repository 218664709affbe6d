import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDigest, isDigest, sha256, shortId } from '../../src/core/digest.ts';
import { httpStatus, notFound, failedPrecondition, invalidArgument, isKind, kindFromStatus } from '../../src/core/errors.ts';
import { chainIds } from '../../src/core/chain-id.ts';

test('digests are validated before use in paths', () => {
  assert.ok(isDigest('sha256:' + 'f'.repeat(64)));
  assert.ok(isDigest('sha512:' + '0'.repeat(128)));
  for (const bad of ['sha256:../../etc/passwd', 'sha256:' + 'F'.repeat(64), 'sha256:' + 'a'.repeat(63), 'md5:' + 'a'.repeat(32), 'sha256:' + 'a'.repeat(64) + '/x']) {
    assert.throws(() => parseDigest(bad), (e: unknown) => isKind(e, 'InvalidArgument'), bad);
  }
});

test('sha256 and short ids', () => {
  assert.equal(sha256(''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(shortId('sha256:e3b0c44298fc1c149afbf4c8996fb924'), 'e3b0c44298fc');
});

test('error classes map to Docker API statuses and back', () => {
  assert.equal(httpStatus(notFound('No such image: x')), 404);
  assert.equal(httpStatus(failedPrecondition('in use')), 409);
  assert.equal(httpStatus(invalidArgument('bad')), 400);
  assert.equal(httpStatus(new Error('boom')), 500);
  assert.equal(kindFromStatus(404), 'NotFound');
  assert.equal(kindFromStatus(409), 'FailedPrecondition');
});

test('chain IDs follow the OCI definition', () => {
  const a = sha256('a');
  const b = sha256('b');
  const ids = chainIds([a, b]);
  assert.equal(ids[0], a);
  assert.equal(ids[1], sha256(`${a} ${b}`));
});
