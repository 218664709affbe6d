// Pusher against the in-memory FakeRegistry (no root): what a push request resolves to, the
// progress stream dockerd writes, exists/mount/upload decisions, the upload bound, gzip of
// uncompressed layers, auth, and failures.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync, gunzipSync } from 'node:zlib';
import { sha256, shortId, type Digest } from '../../src/core/digest.ts';
import { BerthError } from '../../src/core/errors.ts';
import { MediaType, hostPlatform, type ImageManifest } from '../../src/core/oci.ts';
import type { Snapshotter } from '../../src/core/snapshots.ts';
import { ContentStore } from '../../src/content/content-store.ts';
import { FakeRegistry } from '../../src/distribution/fake-registry.ts';
import { RegistryClient } from '../../src/distribution/registry-client.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { ImageService } from '../../src/image/image-service.ts';
import { imagePaths } from '../../src/image/paths.ts';
import type { JsonMessage } from '../../src/image/progress.ts';
import { Pusher, mountSources, parsePushPlatform } from '../../src/image/pusher.ts';

/** The pusher never touches snapshots; GC lists them. */
const noSnapshots: Snapshotter = {
  stat: async () => undefined,
  list: async () => [],
  unpack: async () => assert.fail('unpack'),
  prepare: async () => assert.fail('prepare'),
  mounts: async () => assert.fail('mounts'),
  upperDir: () => assert.fail('upperDir'),
  commit: async () => assert.fail('commit'),
  remove: async () => assert.fail('remove'),
};

let dir: string;
let images: ImageService;
let reg: FakeRegistry;
let client: RegistryClient;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'berth-pusher-'));
  const content = new ContentStore(join(dir, 'content'));
  await content.init();
  images = new ImageService({ content, snapshotter: noSnapshots, paths: imagePaths(dir), log: createLogger({ out: () => {} }) });
  await images.init();
  reg = await FakeRegistry.start();
  client = new RegistryClient({ retry: { attempts: 1 } });
});

afterEach(async () => {
  await client.close();
  await reg.close();
  await rm(dir, { recursive: true, force: true });
});

interface Seeded { id: Digest; manifestDigest: Digest; manifestBytes: Buffer; diffIds: Digest[]; layers: Buffer[] }

/** Store an image (config, layer blobs, manifest) and record it under `tags`. */
async function seed(tags: string[], opts: { layers?: number; gzip?: boolean; mediaType?: string; seed?: string } = {}): Promise<Seeded> {
  const n = opts.layers ?? 2;
  const gzip = opts.gzip ?? true;
  const tars = Array.from({ length: n }, (_, i) => Buffer.from(`${opts.seed ?? ''}layer-${i}-`.repeat(200 + i)));
  const diffIds = tars.map((t) => sha256(t));
  const blobs = tars.map((t) => (gzip ? gzipSync(t) : t));
  for (const b of blobs) await images.content.putBytes(b);
  const p = hostPlatform();
  const config = Buffer.from(JSON.stringify({ architecture: p.architecture, os: p.os, rootfs: { type: 'layers', diff_ids: diffIds }, config: {} }));
  const id = (await images.content.putBytes(config)).digest;
  const docker = opts.mediaType === MediaType.DockerManifest;
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: opts.mediaType ?? MediaType.OciManifest,
    config: { mediaType: docker ? MediaType.DockerConfig : MediaType.OciConfig, digest: id, size: config.length },
    layers: blobs.map((b) => ({
      mediaType: gzip ? (docker ? MediaType.DockerLayerGzip : MediaType.OciLayerGzip) : docker ? 'application/vnd.docker.image.rootfs.diff.tar' : MediaType.OciLayer,
      digest: sha256(b),
      size: b.length,
    })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest, null, 3));
  const manifestDigest = (await images.content.putBytes(manifestBytes)).digest;
  await images.record({ id, manifestDigest, repoTags: tags, size: 1 });
  return { id, manifestDigest, manifestBytes, diffIds, layers: tars };
}

async function push(name: string, opts: { tag?: string; concurrency?: number; auth?: { username: string; password: string }; signal?: AbortSignal } = {}) {
  const msgs: JsonMessage[] = [];
  const pusher = new Pusher({ images, registry: client, ...(opts.concurrency ? { concurrency: opts.concurrency } : {}) });
  const plan = await pusher.plan(name, opts.tag ? { tag: opts.tag } : {});
  const o: Parameters<Pusher['push']>[1] = { progress: (m) => msgs.push(m) };
  if (opts.auth) o.auth = opts.auth;
  if (opts.signal) o.signal = opts.signal;
  const results = await pusher.push(plan, o);
  return { msgs, results };
}

const statuses = (msgs: JsonMessage[]) => msgs.map((m) => (m.id ? `${m.id}: ${m.status}` : m.status ?? JSON.stringify(m.aux)));

test('plan: digest references, unknown tags and bad names fail before anything is sent', async () => {
  await seed([`${reg.host}/a/b:1`]);
  const pusher = new Pusher({ images, registry: client });
  await assert.rejects(pusher.plan(`${reg.host}/a/b@sha256:${'0'.repeat(64)}`), (e: BerthError) => e.kind === 'InvalidArgument' && /digest reference/.test(e.message));
  await assert.rejects(pusher.plan(`${reg.host}/a/b`, { tag: '2' }), (e: BerthError) => e.kind === 'NotFound' && e.message === `No such image: ${reg.host}/a/b:2`);
  await assert.rejects(pusher.plan('busybox', { tag: 'latest' }), (e: BerthError) => e.kind === 'NotFound' && e.message === 'No such image: busybox:latest');
  await assert.rejects(pusher.plan('me/UPPER'), (e: BerthError) => e.kind === 'InvalidArgument');
  await assert.rejects(pusher.plan(`${reg.host}/a/b`, { tag: 'bad tag!' }), (e: BerthError) => e.kind === 'InvalidArgument');
  await assert.rejects(
    pusher.plan(`${reg.host}/a/b`, { tag: '1', platform: { os: 'linux', architecture: 'other' } }),
    (e: BerthError) => e.kind === 'NotFound' && /does not match the specified platform/.test(e.message),
  );
  assert.equal((await pusher.plan(`${reg.host}/a/b`, { tag: '1', platform: hostPlatform() })).targets.length, 1);
});

test('plan: the tag parameter wins over the name\'s tag; no tag means every tag of that repository, sorted', async () => {
  const a = await seed([`${reg.host}/r:z`, `${reg.host}/r:a`, `${reg.host}/other:a`], { seed: 'a' });
  const b = await seed([`${reg.host}/r:m`], { seed: 'b' });
  const pusher = new Pusher({ images, registry: client });
  const one = await pusher.plan(`${reg.host}/r:z`, { tag: 'm' });
  assert.deepEqual(one.targets.map((t) => [t.tag, t.image.id]), [['m', b.id]]);
  const named = await pusher.plan(`${reg.host}/r:z`);
  assert.deepEqual(named.targets.map((t) => t.tag), ['z']);
  const all = await pusher.plan(`${reg.host}/r`);
  assert.deepEqual(all.targets.map((t) => [t.tag, t.image.id]), [['a', a.id], ['m', b.id], ['z', a.id]]);
  assert.deepEqual(all.repo, { domain: reg.host, path: 'r' });
  const none = await pusher.plan(`${reg.host}/empty`);
  assert.deepEqual(none.targets, []);
  await assert.rejects(
    pusher.push(none),
    (e: BerthError) => e.kind === 'NotFound' && e.message === `An image does not exist locally with the tag: ${reg.host}/empty`,
  );
});

test('a first push uploads every layer, then config and the exact manifest bytes, with dockerd\'s messages', async () => {
  const img = await seed([`${reg.host}/app:v1`]);
  const { msgs, results } = await push(`${reg.host}/app`, { tag: 'v1' });
  const manifestDigest = sha256(img.manifestBytes);
  assert.deepEqual(results, [{ tag: 'v1', digest: manifestDigest, size: img.manifestBytes.length }]);
  const [top, bottom] = [shortId(img.diffIds[1]!), shortId(img.diffIds[0]!)];
  const s = statuses(msgs);
  assert.deepEqual(s.slice(0, 3), [`The push refers to repository [${reg.host}/app]`, `${top}: Preparing`, `${bottom}: Preparing`]);
  assert.ok(s.includes(`${top}: Pushed`) && s.includes(`${bottom}: Pushed`), s.join('\n'));
  assert.ok(s.indexOf(`${top}: Pushing`) < s.indexOf(`${top}: Pushed`));
  const lastPushing = msgs.filter((m) => m.status === 'Pushing' && m.id === bottom).pop()!;
  const size = (JSON.parse(img.manifestBytes.toString()) as ImageManifest).layers[0]!.size;
  assert.deepEqual(lastPushing.progressDetail, { current: size, total: size });
  assert.match(lastPushing.progress ?? '', /^\[=+>\]/);
  assert.deepEqual(msgs.at(-2), { status: `v1: digest: ${manifestDigest} size: ${img.manifestBytes.length}` });
  assert.deepEqual(msgs.at(-1), { progressDetail: {}, aux: { Tag: 'v1', Digest: manifestDigest, Size: img.manifestBytes.length } });
  // What the registry holds: the manifest byte for byte, with its media type, and every blob.
  const stored = reg.repos.get('app')!.manifests.get('v1')!;
  assert.deepEqual(stored.bytes, img.manifestBytes);
  assert.equal(stored.mediaType, MediaType.OciManifest);
  for (const d of [img.id, ...(JSON.parse(img.manifestBytes.toString()) as ImageManifest).layers.map((l) => l.digest)]) {
    assert.ok(reg.repos.get('app')!.blobs.has(d), d);
  }
  // The image now names the pushed repository in its repo digests.
  assert.ok(images.store.get(img.id)!.repoDigests.includes(`${reg.host}/app@${manifestDigest}`));
});

test('a second push finds every layer (Layer already exists) and uploads nothing', async () => {
  const img = await seed([`${reg.host}/app:v1`]);
  await push(`${reg.host}/app:v1`);
  const before = reg.requests.length;
  const { msgs } = await push(`${reg.host}/app:v1`);
  const s = statuses(msgs);
  for (const d of img.diffIds) assert.ok(s.includes(`${shortId(d)}: Layer already exists`), s.join('\n'));
  assert.ok(!s.some((x) => /Pushing|Pushed|Mounted/.test(x)));
  assert.ok(!reg.requests.slice(before).some((r) => r.method === 'PATCH' || (r.method === 'PUT' && r.path.includes('/blobs/'))));
});

test('a push to another repository of the same registry mounts from where the image was pushed or pulled', async () => {
  const img = await seed([`${reg.host}/src/app:1`, `${reg.host}/dst/app:1`]);
  await push(`${reg.host}/src/app:1`);
  assert.deepEqual(mountSources(images.store.get(img.id)!, { domain: reg.host, path: 'dst/app' }), ['src/app']);
  assert.deepEqual(mountSources(images.store.get(img.id)!, { domain: 'other:5000', path: 'dst/app' }), []);
  const { msgs } = await push(`${reg.host}/dst/app:1`);
  const s = statuses(msgs);
  for (const d of img.diffIds) assert.ok(s.includes(`${shortId(d)}: Mounted from src/app`), s.join('\n'));
  assert.ok(reg.requests.some((r) => r.method === 'POST' && r.path.startsWith('/v2/dst/app/blobs/uploads/?mount=')));
  assert.deepEqual(reg.repos.get('dst/app')!.manifests.get('1')!.bytes, img.manifestBytes);
});

test('more layers than upload slots: the rest wait', async () => {
  const img = await seed([`${reg.host}/many:1`], { layers: 3 });
  const { msgs } = await push(`${reg.host}/many:1`, { concurrency: 1 });
  const s = statuses(msgs);
  // Top first: the top layer takes the slot, the two below wait.
  assert.ok(!s.includes(`${shortId(img.diffIds[2]!)}: Waiting`));
  assert.ok(s.includes(`${shortId(img.diffIds[1]!)}: Waiting`) && s.includes(`${shortId(img.diffIds[0]!)}: Waiting`), s.join('\n'));
  assert.equal(s.filter((x) => x.endsWith(': Pushed')).length, 3);
});

test('uncompressed layers (import, legacy load) are gzipped once; the image keeps its ID and points at the new manifest', async () => {
  for (const mediaType of [MediaType.OciManifest, MediaType.DockerManifest]) {
    const img = await seed([`${reg.host}/raw:${mediaType === MediaType.OciManifest ? 'oci' : 'docker'}`], { gzip: false, mediaType, seed: mediaType });
    const tag = mediaType === MediaType.OciManifest ? 'oci' : 'docker';
    const { results } = await push(`${reg.host}/raw:${tag}`);
    const rec = images.store.get(img.id)!;
    assert.notEqual(rec.manifestDigest, img.manifestDigest);
    assert.equal(results[0]!.digest, rec.manifestDigest);
    const pushed = reg.repos.get('raw')!.manifests.get(tag)!;
    assert.equal(sha256(pushed.bytes), rec.manifestDigest);
    const m = JSON.parse(pushed.bytes.toString()) as ImageManifest;
    assert.equal(m.config.digest, img.id);
    assert.equal(pushed.mediaType, mediaType);
    for (const [i, l] of m.layers.entries()) {
      assert.equal(l.mediaType, mediaType === MediaType.OciManifest ? MediaType.OciLayerGzip : MediaType.DockerLayerGzip);
      const blob = reg.blobs.get(l.digest)!;
      assert.equal(blob.length, l.size);
      assert.deepEqual(gunzipSync(blob), img.layers[i]);
    }
    // The second push sends the same manifest, converting nothing.
    const again = await push(`${reg.host}/raw:${tag}`);
    assert.equal(again.results[0]!.digest, rec.manifestDigest);
    assert.equal(images.store.get(img.id)!.manifestDigest, rec.manifestDigest);
  }
  // The uncompressed blobs and the old manifests are no longer owned by any image: GC removes them.
  const gc = await images.gc();
  assert.equal(gc.blobs.length, 2 * (2 + 1));
});

test('a registry that wants credentials: Unauthorized without them, success with them', async () => {
  await reg.close();
  reg = await FakeRegistry.start({ auth: { kind: 'basic', users: { u: 'p' } } });
  await seed([`${reg.host}/sec:1`]);
  await assert.rejects(push(`${reg.host}/sec:1`), (e: BerthError) => e.kind === 'Unauthorized' && /^unauthorized: authentication required/.test(e.message));
  await assert.rejects(push(`${reg.host}/sec:1`, { auth: { username: 'u', password: 'wrong' } }), (e: BerthError) => e.kind === 'Unauthorized');
  const { results } = await push(`${reg.host}/sec:1`, { auth: { username: 'u', password: 'p' } });
  assert.equal(results.length, 1);
  assert.ok(reg.repos.get('sec')!.manifests.has('1'));
});

test('a failing layer upload fails the push and no manifest is written', async () => {
  await reg.close();
  reg = await FakeRegistry.start({
    hook: (req, res, url) => {
      if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/')) {
        req.resume();
        res.writeHead(400, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ errors: [{ code: 'BLOB_UPLOAD_INVALID', message: 'blob upload invalid' }] }));
        return true;
      }
      return false;
    },
  });
  await seed([`${reg.host}/bad:1`]);
  await assert.rejects(push(`${reg.host}/bad:1`), (e: BerthError) => e instanceof BerthError && /blob upload invalid/.test(e.message));
  assert.ok(!reg.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/')));
});

test('an aborted push stops', async () => {
  await seed([`${reg.host}/ab:1`]);
  const ac = new AbortController();
  ac.abort();
  await assert.rejects(push(`${reg.host}/ab:1`, { signal: ac.signal }));
  assert.ok(!reg.repos.get('ab')?.manifests.has('1'));
});

test('parsePushPlatform: JSON (API 1.46+) and os/arch[/variant]', () => {
  assert.deepEqual(parsePushPlatform('{"os":"linux","architecture":"arm64","variant":"v8"}'), { os: 'linux', architecture: 'arm64', variant: 'v8' });
  assert.deepEqual(parsePushPlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.throws(() => parsePushPlatform('linux'), (e: BerthError) => e.kind === 'InvalidArgument');
  assert.throws(() => parsePushPlatform('{nope'), (e: BerthError) => e.kind === 'InvalidArgument');
});

test('push(name, {tag}) plans and pushes in one call', async () => {
  const img = await seed([`${reg.host}/one:x`]);
  const pusher = new Pusher({ images, registry: client });
  const results = await pusher.push(`${reg.host}/one`, { tag: 'x' });
  assert.deepEqual(results, [{ tag: 'x', digest: sha256(img.manifestBytes), size: img.manifestBytes.length }]);
  await assert.rejects(pusher.push(`${reg.host}/one`, { tag: 'y' }), (e: BerthError) => e.kind === 'NotFound');
});

test('foreign layers (with URLs) are skipped, as dockerd does, and not required locally', async () => {
  const tar = Buffer.from('local layer');
  const local = await images.content.putBytes(gzipSync(tar));
  const foreignDiff = sha256('foreign');
  const p = hostPlatform();
  const config = Buffer.from(JSON.stringify({ architecture: p.architecture, os: p.os, rootfs: { type: 'layers', diff_ids: [foreignDiff, sha256(tar)] } }));
  const id = (await images.content.putBytes(config)).digest;
  const manifestBytes = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.DockerManifest,
    config: { mediaType: MediaType.DockerConfig, digest: id, size: config.length },
    layers: [
      { mediaType: MediaType.DockerForeignLayerGzip, digest: sha256('not here'), size: 8, urls: ['https://example.invalid/base.tar.gz'] },
      { mediaType: MediaType.DockerLayerGzip, digest: local.digest, size: local.size },
    ],
  }));
  const manifestDigest = (await images.content.putBytes(manifestBytes)).digest;
  await images.record({ id, manifestDigest, repoTags: [`${reg.host}/win:1`], size: 1 });
  const { msgs, results } = await push(`${reg.host}/win:1`);
  const s = statuses(msgs);
  assert.ok(s.includes(`${shortId(foreignDiff)}: Skipped foreign layer`), s.join('\n'));
  assert.ok(s.includes(`${shortId(sha256(tar))}: Pushed`));
  assert.equal(results[0]!.digest, manifestDigest);
  assert.equal(reg.blobs.has(sha256('not here')), false);
});

test('aborting mid-upload (the client went away) cancels the stalled upload and writes no manifest', async () => {
  await reg.close();
  let stalled: (() => void) | undefined;
  const sawPut = new Promise<void>((r) => (stalled = r));
  reg = await FakeRegistry.start({
    hook: (req, _res, url) => {
      if (req.method === 'PUT' && url.pathname.includes('/blobs/uploads/')) {
        req.resume(); // read the body, never answer
        stalled?.();
        return true;
      }
      return false;
    },
  });
  await seed([`${reg.host}/stall:1`], { layers: 1 });
  const ac = new AbortController();
  const started = Date.now();
  const p = push(`${reg.host}/stall:1`, { signal: ac.signal });
  await sawPut;
  ac.abort();
  await assert.rejects(p);
  assert.ok(Date.now() - started < 5000);
  assert.ok(!reg.requests.some((r) => r.method === 'PUT' && r.path.includes('/manifests/')));
});

test('concurrent pushes of an uncompressed image share one conversion and push the same manifest', async () => {
  const img = await seed([`${reg.host}/c1:1`, `${reg.host}/c2:1`], { gzip: false });
  const [a, b] = await Promise.all([push(`${reg.host}/c1:1`), push(`${reg.host}/c2:1`)]);
  assert.equal(a.results[0]!.digest, b.results[0]!.digest);
  assert.equal(images.store.get(img.id)!.manifestDigest, a.results[0]!.digest);
  const ingested = [];
  for await (const blob of images.content.list()) ingested.push(blob.digest);
  // config + 2 raw layers + old manifest + 2 gzip layers + one new manifest: no second, diverging manifest.
  assert.equal(ingested.length, 7);
});
