// ImageService over a real ContentStore and an in-memory snapshotter: Docker's rmi rules, the
// in-use hook, prune, leases and garbage collection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ContentStore } from '../../src/content/content-store.ts';
import { chainIds } from '../../src/core/chain-id.ts';
import { sha256, type Digest } from '../../src/core/digest.ts';
import { isKind } from '../../src/core/errors.ts';
import { MediaType, type ImageConfig } from '../../src/core/oci.ts';
import type { Mount, SnapshotInfo, Snapshotter, UnpackOptions } from '../../src/core/snapshots.ts';
import { ImageService, type ImageUser } from '../../src/image/image-service.ts';
import { imagePaths } from '../../src/image/paths.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { tempDir } from '../helpers/fixtures.ts';

class MemorySnapshotter implements Snapshotter {
  snaps = new Map<string, SnapshotInfo>();
  async stat(c: Digest) { const s = this.snaps.get(c); return s?.kind === 'committed' ? s : undefined; }
  async unpack(c: Digest, parent: Digest | undefined, tar: Readable, opts: UnpackOptions = {}) {
    let n = 0;
    for await (const b of tar) n += (b as Buffer).length;
    await opts.beforeCommit?.();
    const info: SnapshotInfo = { name: c, kind: 'committed', size: n, created: new Date().toISOString(), ...(parent ? { parent } : {}) };
    this.snaps.set(c, info);
    return info;
  }
  async prepare(key: string, parent: Digest | undefined): Promise<Mount[]> {
    this.snaps.set(key, { name: key, kind: 'active', size: 0, created: '', ...(parent ? { parent } : {}) });
    return [];
  }
  async mounts(): Promise<Mount[]> { return []; }
  upperDir(key: string) { return key; }
  async commit(): Promise<SnapshotInfo> { throw new Error('unused'); }
  async remove(name: string) {
    if ([...this.snaps.values()].some((s) => s.parent === name)) throw new Error('has children');
    this.snaps.delete(name);
  }
  async list() { return [...this.snaps.values()]; }
}

const log = createLogger({ out: () => {} });

async function setup(dir: string) {
  const content = new ContentStore(join(dir, 'content'));
  await content.init();
  const snap = new MemorySnapshotter();
  const svc = new ImageService({ content, snapshotter: snap, paths: imagePaths(dir), log });
  await svc.init();
  return { content, snap, svc };
}

/** An image with the given layer contents (stored blobs + committed snapshots). */
async function makeImage(svc: ImageService, snap: MemorySnapshotter, layers: string[], tags: string[], extra: Partial<ImageConfig> = {}) {
  const descs = [];
  for (const l of layers) {
    const blob = Buffer.from(l);
    const info = await svc.content.putBytes(blob);
    descs.push({ diffId: info.digest, blob: { digest: info.digest, size: info.size, mediaType: MediaType.OciLayer } });
  }
  const chain = chainIds(descs.map((d) => d.diffId));
  chain.forEach((c, i) => snap.snaps.set(c, { name: c, kind: 'committed', size: layers[i]!.length, created: '', ...(i > 0 ? { parent: chain[i - 1]! } : {}) }));
  const config: ImageConfig = { architecture: 'amd64', os: 'linux', created: '2024-01-01T00:00:00Z', rootfs: { type: 'layers', diff_ids: [] }, ...extra };
  return svc.createImage(config, descs, tags);
}

test('createImage stores config and manifest; resolve and tag', async () => {
  await using dir = await tempDir();
  const { svc, snap } = await setup(dir.path);
  const img = await makeImage(svc, snap, ['base', 'top'], ['app:1']);
  assert.equal(img.size, 7);
  const r = await svc.resolve('app:1');
  assert.equal(r.record.id, img.id);
  assert.deepEqual(r.config.rootfs.diff_ids, [sha256('base'), sha256('top')]);
  assert.deepEqual(r.chainIds, chainIds([sha256('base'), sha256('top')]));
  await svc.tag('app:1', 'other:2');
  assert.equal((await svc.resolve('other:2')).record.id, img.id);
  await assert.rejects(svc.tag('app:1', `x@sha256:${'a'.repeat(64)}`), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test("rmi: by tag untags; by ID with several tags needs force; the last tag deletes", async () => {
  await using dir = await tempDir();
  const { svc, snap, content } = await setup(dir.path);
  const img = await makeImage(svc, snap, ['base', 'top'], ['app:1', 'app:2']);
  assert.deepEqual(await svc.remove('app:2'), [{ Untagged: 'app:2' }]);
  await svc.tag('app:1', 'other:1');
  await assert.rejects(svc.remove(img.id.slice(7, 19)), (e: unknown) => isKind(e, 'FailedPrecondition') && /must be forced\) - image is referenced in multiple repositories/.test((e as Error).message));
  const out = await svc.remove(img.id.slice(7, 19), { force: true });
  assert.deepEqual(out.filter((x) => 'Untagged' in x).map((x) => (x as { Untagged: string }).Untagged).sort(), ['app:1', 'other:1']);
  assert.ok(out.some((x) => 'Deleted' in x && x.Deleted === img.id));
  assert.equal(out.filter((x) => 'Deleted' in x).length, 3, 'the image and its two layers');
  assert.equal(snap.snaps.size, 0);
  const left = [];
  for await (const b of content.list()) left.push(b);
  assert.deepEqual(left, []);
});

test('shared layers stay while another image uses them', async () => {
  await using dir = await tempDir();
  const { svc, snap } = await setup(dir.path);
  await makeImage(svc, snap, ['base', 'one'], ['one:1']);
  await makeImage(svc, snap, ['base', 'two'], ['two:1']);
  const out = await svc.remove('one:1');
  assert.equal(out.filter((x) => 'Deleted' in x).length, 2, 'the image and its own top layer');
  assert.ok(await svc.snapshotter.stat(sha256('base')));
  assert.ok(await svc.content.has(sha256('base')));
  assert.equal(await svc.content.has(sha256('one')), false);
});

test('the in-use hook: stopped containers need force, running ones cannot be forced', async () => {
  await using dir = await tempDir();
  const { svc, snap } = await setup(dir.path);
  const img = await makeImage(svc, snap, ['l'], ['app:1']);
  let users: ImageUser[] = [{ id: 'f'.repeat(64), running: false }];
  svc.inUse = () => users;
  await assert.rejects(svc.remove('app:1'), (e: unknown) => isKind(e, 'FailedPrecondition') && /unable to remove repository reference "app:1" \(must force\) - container ffffffffffff is using its referenced image/.test((e as Error).message));
  await assert.rejects(svc.remove(img.id), (e: unknown) => isKind(e, 'FailedPrecondition') && /image is being used by stopped container ffffffffffff/.test((e as Error).message));
  users = [{ id: 'e'.repeat(64), running: true }];
  await assert.rejects(svc.remove(img.id, { force: true }), (e: unknown) => isKind(e, 'FailedPrecondition') && /\(cannot be forced\) - image is being used by running container eeeeeeeeeeee/.test((e as Error).message));
  const pr = await svc.prune({ all: true });
  assert.equal(pr.ImagesDeleted, null, 'prune skips images in use');
  users = [];
  assert.ok((await svc.remove('app:1')).some((x) => 'Deleted' in x));
});

test('prune: dangling only by default, every unused image with dangling=false; label filters', async () => {
  await using dir = await tempDir();
  const { svc, snap } = await setup(dir.path);
  const dangling = await makeImage(svc, snap, ['d'], []);
  const tagged = await makeImage(svc, snap, ['t'], ['t:1'], { config: { Labels: { keep: 'yes' } } });
  const r1 = await svc.prune();
  assert.ok(r1.ImagesDeleted!.some((x) => 'Deleted' in x && x.Deleted === dangling.id));
  assert.ok(svc.store.get(tagged.id));
  const r2 = await svc.prune({ filters: new Map([['dangling', ['false']], ['label!', ['keep=yes']]]) });
  assert.equal(r2.ImagesDeleted, null);
  const r3 = await svc.prune({ filters: new Map([['dangling', ['false']], ['label', ['keep']]]) });
  assert.ok(r3.ImagesDeleted!.some((x) => 'Deleted' in x && x.Deleted === tagged.id));
  assert.equal(svc.store.size, 0);
  assert.equal(snap.snaps.size, 0);
  await assert.rejects(svc.prune({ filters: new Map([['bogus', ['1']]]) }), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('gc keeps leased content and what active snapshots sit on, removes the rest', async () => {
  await using dir = await tempDir();
  const { svc, snap, content } = await setup(dir.path);
  const orphan = await content.putBytes(Buffer.from('orphan'));
  const leased = await content.putBytes(Buffer.from('leased'));
  snap.snaps.set(sha256('x'), { name: sha256('x'), kind: 'committed', size: 1, created: '' });
  snap.snaps.set(sha256('y'), { name: sha256('y'), kind: 'committed', size: 1, created: '', parent: sha256('x') });
  await snap.prepare('container1', sha256('y'));
  const lease = await svc.lease([leased.digest]);
  const r = await svc.gc();
  assert.deepEqual(r.blobs, [orphan.digest]);
  assert.deepEqual(r.snapshots, []);
  assert.ok(await content.has(leased.digest));
  lease.release();
  await svc.snapshotter.remove('container1');
  const r2 = await svc.gc();
  assert.deepEqual(r2.blobs, [leased.digest]);
  assert.deepEqual(r2.snapshots, [sha256('y'), sha256('x')], 'children first');
});
