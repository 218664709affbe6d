import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseChallenges, realmRefusal, repositoryScope, registryErrorText } from '../../src/distribution/auth.ts';
import { endpointFor, isInsecureHost, mayCarryCredentials, isLoopbackHostname } from '../../src/distribution/transport.ts';
import { classifyManifest, selectPlatform } from '../../src/distribution/manifest-document.ts';
import { verifyingStream } from '../../src/distribution/verifying-stream.ts';
import { MediaType } from '../../src/core/oci.ts';
import { sha256 } from '../../src/core/digest.ts';
import { kindOf } from '../../src/core/errors.ts';
import { Readable } from 'node:stream';

test('parseChallenges reads bearer params, quoted commas and several challenges', () => {
  const c = parseChallenges(['Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"']);
  assert.deepEqual(c, [{ scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull,push' } }]);
  const two = parseChallenges(['Basic realm="r1", Bearer realm="https://x/t",service=svc']);
  assert.deepEqual(two.map((x) => x.scheme), ['basic', 'bearer']);
  assert.equal(two[1]!.params.service, 'svc');
  assert.deepEqual(parseChallenges([]), []);
});

test('repositoryScope', () => {
  assert.equal(repositoryScope('a/b', ['pull', 'push']), 'repository:a/b:pull,push');
});

test('registryErrorText formats distribution error bodies as Docker does', () => {
  assert.equal(registryErrorText('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'), 'unauthorized: authentication required');
  assert.equal(registryErrorText('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'), 'manifest unknown');
  assert.equal(registryErrorText('{"details":"incorrect username or password"}'), 'incorrect username or password');
  assert.equal(registryErrorText('<html>'), undefined);
});

test('scheme: loopback and insecureRegistries are http, the rest https; docker.io maps to registry-1', () => {
  assert.equal(endpointFor('127.0.0.1:5000').origin, 'http://127.0.0.1:5000');
  assert.equal(endpointFor('127.8.9.1:5000').origin, 'http://127.8.9.1:5000');
  assert.equal(endpointFor('localhost:5000').origin, 'http://localhost:5000');
  assert.equal(endpointFor('[::1]:5000').origin, 'http://[::1]:5000');
  assert.equal(endpointFor('docker.io').origin, 'https://registry-1.docker.io');
  assert.equal(endpointFor('docker.io').registry, 'docker.io');
  assert.equal(endpointFor('quay.io').origin, 'https://quay.io');
  assert.equal(endpointFor('10.1.2.3:5000').origin, 'https://10.1.2.3:5000');
  assert.equal(endpointFor('10.1.2.3:5000', ['10.0.0.0/8']).origin, 'http://10.1.2.3:5000');
  assert.equal(endpointFor('reg.lan:5000', ['reg.lan:5000']).origin, 'http://reg.lan:5000');
  assert.equal(isInsecureHost('reg.lan:5001', ['reg.lan:5000']), false);
  assert.equal(isLoopbackHostname('128.0.0.1'), false);
});

test('credentials travel only over https or to loopback; http realms only on the registry host', () => {
  assert.equal(mayCarryCredentials(new URL('https://quay.io/v2/')), true);
  assert.equal(mayCarryCredentials(new URL('http://127.0.0.1:5000/v2/')), true);
  assert.equal(mayCarryCredentials(new URL('http://[::1]:5000/v2/')), true);
  assert.equal(mayCarryCredentials(new URL('http://reg.lan:5000/v2/')), false);
  const ep = endpointFor('127.0.0.1:5000');
  assert.equal(realmRefusal(ep, 'http://127.0.0.1:5001/token'), undefined);
  assert.match(realmRefusal(ep, 'http://localhost:5001/token') ?? '', /another host/);
  assert.match(realmRefusal(endpointFor('quay.io'), 'http://quay.io/token') ?? '', /plain http/);
  assert.equal(realmRefusal(endpointFor('quay.io'), 'https://auth.example/token'), undefined);
});

test('classifyManifest infers OCI types without mediaType and validates descriptors', () => {
  const cfg = { mediaType: MediaType.OciConfig, digest: sha256('c'), size: 1 };
  const m = classifyManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: cfg, layers: [] })), 'application/json');
  assert.equal(m.kind, 'manifest');
  assert.equal(m.mediaType, MediaType.OciManifest);
  const i = classifyManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [] })));
  assert.equal(i.kind, 'index');
  assert.throws(() => classifyManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, config: { ...cfg, digest: 'sha256:../../etc' }, layers: [] }))), (e) => kindOf(e) === 'InvalidArgument');
  assert.throws(() => classifyManifest(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, layers: [] }))), /ambiguous|layers/);
  assert.throws(() => classifyManifest(Buffer.from('{"schemaVersion":1}')), (e) => kindOf(e) === 'NotImplemented');
  assert.throws(() => classifyManifest(Buffer.from('[]')), (e) => kindOf(e) === 'InvalidArgument');
});

test('selectPlatform prefers an exact variant', () => {
  const d = (arch: string, variant?: string) => ({ mediaType: MediaType.OciManifest, digest: sha256(arch + (variant ?? '')), size: 1, platform: { os: 'linux', architecture: arch, ...(variant ? { variant } : {}) } });
  const idx = { schemaVersion: 2 as const, manifests: [d('arm', 'v6'), d('arm', 'v7'), d('amd64')] };
  assert.equal(selectPlatform(idx, { os: 'linux', architecture: 'arm', variant: 'v7' }).platform?.variant, 'v7');
  assert.equal(selectPlatform(idx, { os: 'linux', architecture: 'amd64' }).platform?.architecture, 'amd64');
  assert.throws(() => selectPlatform(idx, { os: 'windows', architecture: 'amd64' }), (e) => kindOf(e) === 'NotFound');
});

test('verifyingStream passes good bytes and fails bad ones with DataLoss naming the digest', async () => {
  const data = Buffer.from('hello');
  const desc = { digest: sha256(data), size: data.length };
  const chunks: Buffer[] = [];
  for await (const c of Readable.from([data]).pipe(verifyingStream(desc))) chunks.push(c as Buffer);
  assert.deepEqual(Buffer.concat(chunks), data);
  for (const bad of [Buffer.from('hellO'), Buffer.from('hell'), Buffer.from('hello!')]) {
    await assert.rejects(
      (async () => {
        for await (const _ of Readable.from([bad]).pipe(verifyingStream(desc))) void _;
      })(),
      (e: Error) => kindOf(e) === 'DataLoss' && /digest/.test(e.message),
    );
  }
});
