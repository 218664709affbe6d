// Garbage collection of a registry root, for both drivers, including while the server serves.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { collectGarbage } from '../../src/registry/garbage-collector.ts';
import { paths } from '../../src/registry/paths.ts';
import type { StorageDriver } from '../../src/registry/storage-driver.ts';
import { DRIVERS, startTestRegistry, type TestRegistry, pushBlob, pushImage, sha256, OCI_MANIFEST, OCI_INDEX } from './registry-harness.ts';

const HOUR = 3_600_000;

/** Make every file under `prefix` look `ageMs` old. */
async function age(r: TestRegistry, prefix: string, ageMs: number): Promise<void> {
  // Storage as another process (gc) sees it: after the background blob commits.
  await r.store.flush();
  const driver: StorageDriver = r.driver;
  const set = (driver as unknown as { setModTime(p: string, t: number): Promise<void> | void }).setModTime.bind(driver);
  const walk = async (p: string): Promise<void> => {
    const st = await driver.stat(p);
    if (!st) return;
    if (!st.isDir) return void (await set(p, Date.now() - ageMs));
    for (const c of await driver.list(p)) await walk(`${p}/${c}`);
  };
  await walk(prefix);
}

for (const kind of DRIVERS) {
  describe(`registry gc (${kind})`, () => {
    it('sweeps old unreferenced blobs, keeps referenced and young ones', async () => {
      await using r = await startTestRegistry(kind, { allowDelete: true });
      const img = await pushImage(r.url, 'gc/app', 'v1', { layers: ['kept layer'] });
      const oldOrphan = await pushBlob(r.url, 'gc/app', 'old orphan');
      const youngOrphan = await pushBlob(r.url, 'gc/app', 'young orphan');
      await age(r, 'blobs', 2 * HOUR);
      await r.driver.touch(paths.blob(youngOrphan.digest));
      const report = await collectGarbage(r.driver, { graceMs: HOUR });
      assert.equal(report.blobsDeleted, 1);
      assert.equal(report.bytesFreed, 'old orphan'.length);
      assert.equal(await r.driver.stat(paths.blob(oldOrphan.digest)), undefined);
      assert.ok(await r.driver.stat(paths.blob(youngOrphan.digest)));
      // The image still pulls completely.
      const m = (await (await fetch(`${r.url}/v2/gc/app/manifests/v1`)).json()) as { config: { digest: string }; layers: { digest: string }[] };
      for (const d of [m.config.digest, ...m.layers.map((l) => l.digest)]) {
        assert.equal((await fetch(`${r.url}/v2/gc/app/blobs/${d}`)).status, 200, d);
      }
      // The dangling link of the swept blob is gone too.
      assert.equal(await r.driver.stat(paths.layerLink('gc/app', oldOrphan.digest as never)), undefined);
      assert.equal((await fetch(`${r.url}/v2/gc/app/manifests/${img.digest}`)).status, 200);
    });

    it('blobs shared by several repositories survive while any manifest references them', async () => {
      await using r = await startTestRegistry(kind, { allowDelete: true });
      const a = await pushImage(r.url, 'gc/a', 't', { layers: ['shared'] });
      const b = await pushImage(r.url, 'gc/b', 't', { layers: ['shared'] });
      await fetch(`${r.url}/v2/gc/a/manifests/${a.digest}`, { method: 'DELETE' });
      await age(r, 'blobs', 2 * HOUR);
      await collectGarbage(r.driver, { graceMs: HOUR });
      assert.ok(await r.driver.stat(paths.blob(sha256('shared'))));
      assert.equal((await fetch(`${r.url}/v2/gc/b/blobs/${sha256('shared')}`)).status, 200);
      assert.equal((await fetch(`${r.url}/v2/gc/b/manifests/${b.digest}`)).status, 200);
      // gc/a's manifest was deleted: its own blob bytes are collected.
      assert.equal(await r.driver.stat(paths.blob(a.digest as never)), undefined);
    });

    it('--delete-untagged removes old untagged manifests, keeps index children and referrers', async () => {
      await using r = await startTestRegistry(kind, { allowDelete: true });
      const old = await pushImage(r.url, 'gc/u', 'tmp', { layers: ['old layer'] });
      const child = await pushImage(r.url, 'gc/u', 'child-tag', { layers: ['child layer'] });
      const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: child.digest, size: child.body.length }] }));
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/release`, { method: 'PUT', body: idx, headers: { 'Content-Type': OCI_INDEX } })).status, 201);
      const cfg = await pushBlob(r.url, 'gc/u', '{}');
      const sig = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: 'application/x.sig', config: { mediaType: 'application/vnd.oci.empty.v1+json', ...cfg }, layers: [], subject: { mediaType: OCI_INDEX, digest: sha256(idx), size: idx.length } }));
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/${sha256(sig)}`, { method: 'PUT', body: sig, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
      // untag the old image and the child (the index still reaches the child)
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/tmp`, { method: 'DELETE' })).status, 202);
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/child-tag`, { method: 'DELETE' })).status, 202);
      await age(r, 'blobs', 2 * HOUR);
      await age(r, 'repositories', 2 * HOUR);
      const report = await collectGarbage(r.driver, { graceMs: HOUR, deleteUntagged: true });
      assert.equal(report.manifestsDeleted, 1);
      r.store.invalidate();
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/${old.digest}`)).status, 404);
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/${child.digest}`)).status, 200);
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/release`)).status, 200);
      assert.equal((await fetch(`${r.url}/v2/gc/u/manifests/${sha256(sig)}`)).status, 200);
      assert.equal(await r.driver.stat(paths.blob(sha256('old layer'))), undefined);
      assert.ok(await r.driver.stat(paths.blob(sha256('child layer'))));
      const refs = (await (await fetch(`${r.url}/v2/gc/u/referrers/${sha256(idx)}`)).json()) as { manifests: unknown[] };
      assert.equal(refs.manifests.length, 1);
    });

    it('young untagged manifests (an index push in flight) are kept', async () => {
      await using r = await startTestRegistry(kind);
      const cfg = await pushBlob(r.url, 'gc/young', 'cfg');
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', ...cfg }, layers: [] }));
      assert.equal((await fetch(`${r.url}/v2/gc/young/manifests/${sha256(m)}`, { method: 'PUT', body: m, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
      const report = await collectGarbage(r.driver, { graceMs: HOUR, deleteUntagged: true });
      assert.equal(report.manifestsDeleted, 0);
      assert.equal(report.blobsDeleted, 0);
      assert.equal((await fetch(`${r.url}/v2/gc/young/manifests/${sha256(m)}`)).status, 200);
    });

    it('expired uploads are removed; active ones stay', async () => {
      await using r = await startTestRegistry(kind);
      const a = await fetch(`${r.url}/v2/gc/up/blobs/uploads/`, { method: 'POST' });
      const b = await fetch(`${r.url}/v2/gc/up/blobs/uploads/`, { method: 'POST' });
      await fetch(`${r.url}${b.headers.get('location')}`, { method: 'PATCH', body: 'data' });
      await age(r, paths.upload('gc/up', a.headers.get('docker-upload-uuid')!), 48 * HOUR);
      const report = await collectGarbage(r.driver, { uploadExpiryMs: 24 * HOUR });
      assert.equal(report.uploadsDeleted, 1);
      assert.equal((await fetch(`${r.url}${a.headers.get('location')}`)).status, 404);
      assert.equal((await fetch(`${r.url}${b.headers.get('location')}`)).status, 204);
    });

    it('a push running during gc loses nothing (blobs first, manifest after the sweep)', async () => {
      await using r = await startTestRegistry(kind);
      // An old blob nobody references yet, about to be reused by a new manifest.
      const reused = await pushBlob(r.url, 'gc/race', 'reused old layer');
      await age(r, 'blobs', 2 * HOUR);
      // The push links it again (mount), which marks it as in use for the grace period.
      const mount = await fetch(`${r.url}/v2/gc/race2/blobs/uploads/?mount=${reused.digest}&from=gc/race`, { method: 'POST' });
      assert.equal(mount.status, 201);
      const fresh = await pushBlob(r.url, 'gc/race2', 'fresh layer');
      const report = await collectGarbage(r.driver, { graceMs: HOUR });
      assert.equal(report.blobsDeleted, 0);
      const cfg = await pushBlob(r.url, 'gc/race2', 'cfg');
      const m = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', ...cfg }, layers: [{ mediaType: 'x/l', ...reused }, { mediaType: 'x/l', ...fresh }] });
      assert.equal((await fetch(`${r.url}/v2/gc/race2/manifests/t`, { method: 'PUT', body: m, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
    });

    it('dry run changes nothing', async () => {
      await using r = await startTestRegistry(kind);
      const orphan = await pushBlob(r.url, 'gc/dry', 'orphan');
      await age(r, 'blobs', 2 * HOUR);
      const report = await collectGarbage(r.driver, { graceMs: HOUR, dryRun: true });
      assert.equal(report.blobsDeleted, 1);
      assert.ok(await r.driver.stat(paths.blob(orphan.digest)));
    });
  });
}
