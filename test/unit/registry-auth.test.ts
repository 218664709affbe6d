// Basic auth from htpasswd (bcrypt), anonymous pull, and TLS for berth's registry.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { Agent, fetch as ufetch } from 'undici';
import { isKind } from '../../src/core/errors.ts';
import { HtpasswdAuth } from '../../src/registry/htpasswd-auth.ts';
import { startTestRegistry, errorCode, pushImage, sha256, type TestRegistry } from './registry-harness.ts';

const basic = (user: string, pass: string) => 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64');

describe('HtpasswdAuth', () => {
  const file = `alice:${bcrypt.hashSync('secret', 4)}\n# comment\n\nbob:${bcrypt.hashSync('hunter2', 4).replace('$2b$', '$2y$')}\n`;

  it('verifies bcrypt entries, including htpasswd -B ($2y$) ones', async () => {
    const auth = HtpasswdAuth.parse(file);
    assert.equal(await auth.verify(basic('alice', 'secret')), 'alice');
    assert.equal(await auth.verify(basic('bob', 'hunter2')), 'bob');
    // cached success still answers the same
    assert.equal(await auth.verify(basic('alice', 'secret')), 'alice');
  });

  it('refuses wrong passwords, unknown users and malformed headers', async () => {
    const auth = HtpasswdAuth.parse(file);
    assert.equal(await auth.verify(basic('alice', 'wrong')), undefined);
    assert.equal(await auth.verify(basic('mallory', 'secret')), undefined);
    assert.equal(await auth.verify('Bearer abc'), undefined);
    assert.equal(await auth.verify('Basic !!!'), undefined);
    assert.equal(await auth.verify('Basic ' + Buffer.from('nocolon').toString('base64')), undefined);
  });

  it('treats no credentials and the empty user as anonymous', async () => {
    const auth = HtpasswdAuth.parse(file);
    assert.equal(await auth.verify(undefined), '');
    assert.equal(await auth.verify(basic('', '')), '');
  });

  it('refuses non-bcrypt entries', () => {
    assert.throws(() => HtpasswdAuth.parse('carol:{SHA}abc\n'), (e) => isKind(e, 'InvalidArgument'));
    assert.throws(() => HtpasswdAuth.parse('nocolon\n'), (e) => isKind(e, 'InvalidArgument'));
  });
});

describe('registry with htpasswd', () => {
  let r: TestRegistry;
  const alice = basic('alice', 'secret');
  before(async () => {
    r = await startTestRegistry('inmemory', { auth: HtpasswdAuth.parse(`alice:${bcrypt.hashSync('secret', 4)}\n`) });
  });
  after(async () => r.stop());

  it('challenges anonymous and wrong credentials with 401 + WWW-Authenticate', async () => {
    for (const headers of [{}, { Authorization: basic('alice', 'nope') }, { Authorization: basic('eve', 'secret') }] as Record<string, string>[]) {
      for (const path of ['/v2/', '/v2/x/tags/list', '/v2/_catalog']) {
        const res = await fetch(`${r.url}${path}`, { headers });
        assert.equal(res.status, 401, `${path} ${JSON.stringify(headers)}`);
        assert.equal(res.headers.get('www-authenticate'), 'Basic realm="berth-registry"');
        assert.equal(await errorCode(res), 'UNAUTHORIZED');
      }
    }
    const push = await fetch(`${r.url}/v2/x/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 401);
  });

  it('lets a valid login push and pull', async () => {
    assert.equal((await fetch(`${r.url}/v2/`, { headers: { Authorization: alice } })).status, 200);
    const cfg = Buffer.from('{"a":1}');
    const res = await fetch(`${r.url}/v2/auth/img/blobs/uploads/?digest=${sha256(cfg)}`, { method: 'POST', body: cfg, headers: { Authorization: alice } });
    assert.equal(res.status, 201);
    const get = await fetch(`${r.url}/v2/auth/img/blobs/${sha256(cfg)}`, { headers: { Authorization: alice } });
    assert.equal(get.status, 200);
    assert.equal((await fetch(`${r.url}/v2/auth/img/blobs/${sha256(cfg)}`)).status, 401);
  });
});

describe('registry with anonymous pull', () => {
  it('serves pulls without credentials but needs a login to push', async () => {
    const auth = HtpasswdAuth.parse(`alice:${bcrypt.hashSync('secret', 4)}\n`);
    await using open = await startTestRegistry('inmemory');
    const img = await pushImage(open.url, 'anon/img', 'v1');
    await using r = await startTestRegistry('inmemory', { auth, anonymousPull: true }, {}, { driver: open.driver });
    assert.equal((await fetch(`${r.url}/v2/anon/img/manifests/v1`)).status, 200);
    // some clients send an empty user when they have no credentials
    assert.equal((await fetch(`${r.url}/v2/anon/img/manifests/${img.digest}`, { headers: { Authorization: basic('', '') } })).status, 200);
    assert.equal((await fetch(`${r.url}/v2/anon/img/tags/list`)).status, 200);
    // the base endpoint still challenges, so clients learn to log in before pushing
    assert.equal((await fetch(`${r.url}/v2/`)).status, 401);
    const push = await fetch(`${r.url}/v2/anon/img/blobs/uploads/`, { method: 'POST' });
    assert.equal(push.status, 401);
    const put = await fetch(`${r.url}/v2/anon/img/manifests/v2`, { method: 'PUT', body: img.body, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(put.status, 401);
    // an anonymous HEAD never links blobs into a repository (it may not push there)
    const cfg = JSON.parse(img.body.toString()).config.digest as string;
    assert.equal((await fetch(`${r.url}/v2/anon/other/blobs/${cfg}`, { method: 'HEAD' })).status, 404);
    assert.equal((await fetch(`${r.url}/v2/anon/other/blobs/${cfg}`, { method: 'HEAD', headers: { Authorization: basic('alice', 'secret') } })).status, 200);
    // wrong credentials are refused even for pulls
    assert.equal((await fetch(`${r.url}/v2/anon/img/manifests/v1`, { headers: { Authorization: basic('alice', 'bad') } })).status, 401);
    const ok = await fetch(`${r.url}/v2/anon/img/manifests/v2`, { method: 'PUT', body: img.body, headers: { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json', Authorization: basic('alice', 'secret') } });
    assert.equal(ok.status, 201);
  });
});

describe('registry over TLS', () => {
  it('serves HTTPS with the given certificate', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'berth-regtls-'));
    try {
      await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')]);
      const cert = await readFile(join(dir, 'cert.pem'));
      await using r = await startTestRegistry('inmemory', { tls: { cert, key: await readFile(join(dir, 'key.pem')) } });
      assert.match(r.url, /^https:/);
      const dispatcher = new Agent({ connect: { ca: cert } });
      try {
        const res = await ufetch(`${r.url}/v2/`, { dispatcher });
        assert.equal(res.status, 200);
        assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
        // plain HTTP to the TLS port does not get a registry answer
        await assert.rejects(fetch(r.url.replace('https:', 'http:') + '/v2/'));
      } finally {
        await dispatcher.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
