import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CredentialStore, configDir, decodeRegistryAuthHeader, encodeRegistryAuthHeader, normalizeRegistry, authKey,
} from '../../src/distribution/credentials.ts';
import { kindOf } from '../../src/core/errors.ts';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-creds-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('normalizeRegistry and authKey follow Docker spellings', () => {
  assert.equal(normalizeRegistry('https://index.docker.io/v1/'), 'docker.io');
  assert.equal(normalizeRegistry('index.docker.io'), 'docker.io');
  assert.equal(normalizeRegistry('registry-1.docker.io'), 'docker.io');
  assert.equal(normalizeRegistry(''), 'docker.io');
  assert.equal(normalizeRegistry('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000');
  assert.equal(normalizeRegistry('Quay.IO'), 'quay.io');
  assert.equal(authKey('docker.io'), 'https://index.docker.io/v1/');
  assert.equal(authKey('localhost:5000'), 'localhost:5000');
});

test('configDir: BERTH_CONFIG, then DOCKER_CONFIG, then ~/.docker', () => {
  assert.equal(configDir({ BERTH_CONFIG: '/a', DOCKER_CONFIG: '/b' }), '/a');
  assert.equal(configDir({ DOCKER_CONFIG: '/b' }), '/b');
  assert.match(configDir({}), /\.docker$/);
});

test('CredentialStore reads Docker config.json, writes atomically with mode 0600, keeps other keys', async () => {
  await withDir(async (dir) => {
    const store = new CredentialStore(dir);
    assert.equal(await store.credentials('docker.io'), undefined, 'no file: no credentials');
    await writeFile(join(dir, 'config.json'), JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: Buffer.from('hubuser:hub:pass').toString('base64') },
        'http://127.0.0.1:5000': { auth: Buffer.from('u:p').toString('base64') },
      },
      psFormat: 'table {{.ID}}',
    }));
    assert.deepEqual(await store.credentials('docker.io'), { serverAddress: 'https://index.docker.io/v1/', username: 'hubuser', password: 'hub:pass' });
    assert.equal((await store.credentials('127.0.0.1:5000'))?.password, 'p', 'a scheme-prefixed key still matches');
    assert.equal(await store.credentials('quay.io'), undefined);

    await store.store('127.0.0.1:5000', { username: 'new', password: 'pw2' });
    await store.store('index.docker.io', { username: 'tok', identityToken: 'refresh-xyz' });
    const raw = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8'));
    assert.equal(raw.psFormat, 'table {{.ID}}');
    assert.deepEqual(Object.keys(raw.auths).sort(), ['127.0.0.1:5000', 'https://index.docker.io/v1/']);
    assert.equal(raw.auths['127.0.0.1:5000'].auth, Buffer.from('new:pw2').toString('base64'));
    assert.equal(raw.auths['https://index.docker.io/v1/'].identitytoken, 'refresh-xyz');
    assert.equal((await stat(join(dir, 'config.json'))).mode & 0o777, 0o600);
    const hub = await store.credentials('docker.io');
    assert.equal(hub?.identityToken, 'refresh-xyz');
    assert.equal(hub?.password, '', 'no password stored next to an identity token');

    assert.equal(await store.erase('127.0.0.1:5000'), true);
    assert.equal(await store.erase('127.0.0.1:5000'), false);
    assert.equal(await store.credentials('127.0.0.1:5000'), undefined);
  });
});

test('CredentialStore refuses a corrupt config.json as InvalidArgument', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'config.json'), '{not json');
    await assert.rejects(new CredentialStore(dir).credentials('docker.io'), (e) => kindOf(e) === 'InvalidArgument');
  });
});

test('decodeRegistryAuthHeader: base64url, standard base64, empty and {}', () => {
  const json = JSON.stringify({ username: 'u', password: 'p?>>', serveraddress: '127.0.0.1:5000' });
  const url = Buffer.from(json).toString('base64url');
  const std = Buffer.from(json).toString('base64');
  assert.notEqual(url, std.replace(/=+$/, ''), 'the fixture exercises both alphabets');
  const want = { username: 'u', password: 'p?>>', serverAddress: '127.0.0.1:5000' };
  assert.deepEqual(decodeRegistryAuthHeader(url), want);
  assert.deepEqual(decodeRegistryAuthHeader(std), want);
  assert.equal(decodeRegistryAuthHeader(''), undefined);
  assert.equal(decodeRegistryAuthHeader(undefined), undefined);
  assert.equal(decodeRegistryAuthHeader(Buffer.from('{}').toString('base64url')), undefined);
  assert.deepEqual(decodeRegistryAuthHeader(Buffer.from('{"identitytoken":"t"}').toString('base64')), { identityToken: 't' });
  assert.deepEqual(decodeRegistryAuthHeader(Buffer.from('{"registrytoken":"r"}').toString('base64')), { registryToken: 'r' });
  assert.throws(() => decodeRegistryAuthHeader('!!!not-base64-json'), (e) => kindOf(e) === 'InvalidArgument');
  // round trip with the encoder the berth CLI uses
  assert.deepEqual(decodeRegistryAuthHeader(encodeRegistryAuthHeader(want)), want);
});
