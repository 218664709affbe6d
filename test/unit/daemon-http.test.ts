import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, splitVersion, parseFilters, queryBool } from '../../src/daemon/http.ts';
import { isKind } from '../../src/core/errors.ts';

test('routes with slashes in image names, literal routes first', () => {
  const r = new Router();
  const h = (n: string) => () => void n;
  r.get('/images/json', h('list'));
  r.get('/images/{name*}/json', h('inspect'));
  r.get('/containers/{id}/json', h('c'));
  assert.deepEqual((r.match('GET', '/images/json') as { params: object }).params, {});
  assert.deepEqual((r.match('GET', '/images/127.0.0.1:5000/a/b:tag/json') as { params: object }).params, { name: '127.0.0.1:5000/a/b:tag' });
  assert.deepEqual((r.match('GET', '/containers/abc/json') as { params: object }).params, { id: 'abc' });
  assert.equal(r.match('GET', '/containers/a/b/json'), undefined);
  assert.equal(r.match('POST', '/containers/abc/json'), 'method');
});

test('API version prefixes from 1.24 to 1.51 and unversioned paths', () => {
  assert.deepEqual(splitVersion('/v1.24/info'), { version: '1.24', path: '/info' });
  assert.deepEqual(splitVersion('/v1.51/info'), { version: '1.51', path: '/info' });
  assert.equal(splitVersion('/info').path, '/info');
  assert.throws(() => splitVersion('/v1.23/info'), (e: unknown) => isKind(e, 'InvalidArgument') && /too old/.test((e as Error).message));
  assert.throws(() => splitVersion('/v1.99/info'), (e: unknown) => isKind(e, 'InvalidArgument') && /too new/.test((e as Error).message));
});

test('filters in both Docker encodings', () => {
  assert.deepEqual([...parseFilters(new URLSearchParams({ filters: '{"label":["a=b"],"dangling":{"true":true}}' }))], [['label', ['a=b']], ['dangling', ['true']]]);
  assert.throws(() => parseFilters(new URLSearchParams({ filters: '{bad' })), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.equal(queryBool(new URLSearchParams('all=1'), 'all'), true);
  assert.equal(queryBool(new URLSearchParams('all=0'), 'all'), false);
  assert.equal(queryBool(new URLSearchParams('all=False'), 'all'), false);
  assert.equal(queryBool(new URLSearchParams(''), 'all', true), true);
});
