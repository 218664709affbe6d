// The registry client against the real CNCF Distribution 2.8 (/usr/bin/docker-registry) on a
// loopback port: push with our client, read back with it and with skopeo; pull what skopeo
// pushed; cross-repository mount; login against htpasswd auth.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startRegistry, run, busyboxImage, pushLayout, type TestRegistry } from '../helpers/fixtures.ts';
import { RegistryClient, verifyingStream } from '../../src/distribution/registry-client.ts';
import { staticAuth } from '../../src/distribution/credentials.ts';
import { ContentStore } from '../../src/content/content-store.ts';
import { MediaType, type Descriptor } from '../../src/core/oci.ts';
import { sha256 } from '../../src/core/digest.ts';
import { parseReference } from '../../src/core/reference.ts';
import { kindOf } from '../../src/core/errors.ts';

function smallImage(tag: string) {
  const layer = gzipSync(Buffer.concat([Buffer.from(`layer for ${tag}\n`), randomBytes(4096)]));
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: [sha256('not checked by the registry')] },
  }));
  const configDesc: Descriptor = { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length };
  const layerDesc: Descriptor = { mediaType: MediaType.OciLayerGzip, digest: sha256(layer), size: layer.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: configDesc, layers: [layerDesc] }));
  return { layer, config, configDesc, layerDesc, manifest };
}

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function push(rc: RegistryClient, refStr: string, img: ReturnType<typeof smallImage>): Promise<string> {
  const ref = parseReference(refStr);
  for (const [desc, bytes] of [[img.configDesc, img.config], [img.layerDesc, img.layer]] as const) {
    if (!(await rc.blobExists(ref, desc.digest))) await rc.uploadBlob(ref, desc, () => Readable.from([bytes]));
  }
  return rc.putManifest(ref, ref.tag!, img.manifest, MediaType.OciManifest);
}

describe('RegistryClient against docker-registry (no auth)', () => {
  let reg: TestRegistry;
  let rc: RegistryClient;
  before(async () => {
    reg = await startRegistry();
    rc = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 10 } });
  });
  after(async () => {
    await rc.close();
    await reg.stop();
  });

  test('push config + layer + manifest, then resolve and fetch it back', async () => {
    const img = smallImage('v1');
    const digest = await push(rc, `${reg.addr}/berth/small:v1`, img);
    assert.equal(digest, sha256(img.manifest));
    const ref = parseReference(`${reg.addr}/berth/small:v1`);
    const r = await rc.resolve(ref);
    assert.equal(r.manifestDigest, digest);
    assert.deepEqual(r.manifestBytes, img.manifest);
    assert.equal(r.mediaType, MediaType.OciManifest);
    assert.deepEqual(await rc.fetchBlobBytes(ref, r.manifest.config), img.config);
    const layer = await collect((await rc.fetchBlob(ref, r.manifest.layers[0]!)).pipe(verifyingStream(r.manifest.layers[0]!)));
    assert.deepEqual(layer, img.layer);
    assert.equal(await rc.blobExists(ref, img.layerDesc.digest), true);
    // A third-party client reads what we pushed.
    const inspect = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.addr}/berth/small:v1`]);
    assert.equal(inspect.code, 0, inspect.stderr);
    assert.equal(sha256(Buffer.from(inspect.stdout)), digest);
  });

  test('missing tag is NotFound with Docker wording', async () => {
    await assert.rejects(rc.resolve(parseReference(`${reg.addr}/berth/small:missing`)), (e: Error) =>
      kindOf(e) === 'NotFound' && /^manifest for 127\.0\.0\.1:\d+\/berth\/small:missing not found: manifest unknown/.test(e.message));
  });

  test('cross-repository mount; a mount of an unknown blob falls back (false)', async () => {
    const img = smallImage('mount');
    await push(rc, `${reg.addr}/berth/src:v1`, img);
    const dst = parseReference(`${reg.addr}/berth/dst:v1`);
    assert.equal(await rc.blobExists(dst, img.layerDesc.digest), false);
    assert.equal(await rc.mountBlob(dst, img.layerDesc.digest, 'berth/src'), true);
    assert.equal(await rc.mountBlob(dst, img.configDesc.digest, 'berth/src'), true);
    assert.equal(await rc.blobExists(dst, img.layerDesc.digest), true);
    await rc.putManifest(dst, 'v1', img.manifest, MediaType.OciManifest);
    assert.equal((await rc.resolve(dst)).manifestDigest, sha256(img.manifest));
    assert.equal(await rc.mountBlob(dst, sha256('never uploaded'), 'berth/src'), false);
  });

  test('pulls an image pushed by skopeo into a ContentStore (digests verified on commit)', async () => {
    const bb = await busyboxImage();
    const refStr = await pushLayout(bb, reg, 'berth/busybox:latest');
    const ref = parseReference(refStr);
    const r = await rc.resolve(ref);
    const dir = await mkdtemp(join(tmpdir(), 'berth-dist-int-'));
    try {
      const store = new ContentStore(dir);
      await store.init();
      await store.putBytes(r.manifestBytes, { digest: r.manifestDigest });
      await store.putBytes(await rc.fetchBlobBytes(ref, r.manifest.config), { digest: r.manifest.config.digest });
      await Promise.all(r.manifest.layers.map(async (l) => store.ingest(await rc.fetchBlob(ref, l), { digest: l.digest, size: l.size })));
      for (const l of r.manifest.layers) assert.equal((await store.info(l.digest))?.size, l.size);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('throughput: a 64 MiB blob round trip', async () => {
    const big = randomBytes(64 * 1024 * 1024);
    const desc: Descriptor = { mediaType: MediaType.OciLayer, digest: sha256(big), size: big.length };
    const ref = parseReference(`${reg.addr}/berth/big:v1`);
    let t = performance.now();
    await rc.uploadBlob(ref, desc, () => Readable.from([big]));
    const up = performance.now() - t;
    t = performance.now();
    const got = await collect((await rc.fetchBlob(ref, desc)).pipe(verifyingStream(desc)));
    const down = performance.now() - t;
    assert.equal(got.length, big.length);
    console.log(`# 64 MiB: upload ${(64 / (up / 1000)).toFixed(0)} MiB/s, download+verify ${(64 / (down / 1000)).toFixed(0)} MiB/s`);
  });
});

describe('RegistryClient against docker-registry with htpasswd', () => {
  let reg: TestRegistry;
  let rc: RegistryClient;
  before(async () => {
    reg = await startRegistry({ htpasswd: { user: 'berth', pass: 'hunter2' } });
    rc = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 10 } });
  });
  after(async () => {
    await rc.close();
    await reg.stop();
  });

  test('login check: good credentials succeed, bad and missing ones are Unauthorized', async () => {
    assert.deepEqual(await rc.checkLogin(reg.addr, { username: 'berth', password: 'hunter2' }), { status: 'Login Succeeded' });
    await assert.rejects(rc.checkLogin(reg.addr, { username: 'berth', password: 'wrong' }), (e: Error) => kindOf(e) === 'Unauthorized' && /^unauthorized: /.test(e.message));
    await assert.rejects(rc.checkLogin(reg.addr, undefined), (e) => kindOf(e) === 'Unauthorized');
  });

  test('push and pull with credentials; anonymous pull is Unauthorized', async () => {
    const authed = rc.withAuth(staticAuth({ username: 'berth', password: 'hunter2' }));
    const img = smallImage('auth');
    const digest = await push(authed, `${reg.addr}/private/app:v1`, img);
    const ref = parseReference(`${reg.addr}/private/app:v1`);
    assert.equal((await authed.resolve(ref)).manifestDigest, digest);
    assert.deepEqual(await authed.fetchBlobBytes(ref, img.configDesc), img.config);
    await assert.rejects(rc.resolve(ref), (e: Error) => kindOf(e) === 'Unauthorized' && /authentication required/.test(e.message));
  });
});
