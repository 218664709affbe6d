// Import, save, load, rmi and prune through berthd (API and docker CLI): round trips keep image
// IDs, every loaded blob is verified, and removal leaves no blob or snapshot behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import { Readable } from 'node:stream';
import {
  api, busyboxImage, busyboxRootfs, docker, importBusybox, isRoot, run, startDaemon, tarDirectory, tempDir, type TestDaemon,
} from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

async function disk(d: TestDaemon): Promise<{ blobs: string[]; snapshots: string[] }> {
  const ls = (p: string) => readdir(p).catch(() => [] as string[]);
  return { blobs: await ls(join(d.dataRoot, 'content', 'blobs', 'sha256')), snapshots: await ls(join(d.dataRoot, 'snapshots', 'committed')) };
}

async function tarEntries(tar: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const ex = tarExtract();
  const done = (async () => {
    for await (const e of ex) {
      const chunks: Buffer[] = [];
      for await (const c of e) chunks.push(c as Buffer);
      out.set(e.header.name, Buffer.concat(chunks));
    }
  })();
  Readable.from([tar]).pipe(ex);
  await done;
  return out;
}

async function makeTar(files: Array<{ name: string; data?: Buffer | string; type?: 'symlink'; linkname?: string }>): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const end = new Promise<void>((r) => p.on('end', () => r()));
  for (const f of files) {
    await new Promise<void>((res, rej) => {
      if (f.type === 'symlink') p.entry({ name: f.name, type: 'symlink', linkname: f.linkname! }, (e) => (e ? rej(e) : res()));
      else p.entry({ name: f.name, mode: 0o644 }, f.data ?? '', (e) => (e ? rej(e) : res()));
    });
  }
  p.finalize();
  await end;
  return Buffer.concat(chunks);
}

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

test('import a rootfs tar (plain and gzip) with changes and a message', { skip }, async () => {
  await using d = await startDaemon();
  await using dir = await tempDir();
  await busyboxRootfs(join(dir.path, 'rootfs'));
  const tar = await tarDirectory(join(dir.path, 'rootfs'));
  const changes = ['CMD ["sh", "-c", "echo hi"]', 'ENV A=1 B="two words"', 'WORKDIR /tmp', 'EXPOSE 8080', 'LABEL org.test=yes', 'USER 1000', 'ENTRYPOINT ["/bin/busybox"]', 'VOLUME /data'];
  const q = `fromSrc=-&repo=imp/bb&tag=1&message=${encodeURIComponent('hello import')}&` + changes.map((c) => `changes=${encodeURIComponent(c)}`).join('&');
  const r = await api(d.socket, 'POST', `/images/create?${q}`, gzipSync(tar), { 'Content-Type': 'application/x-tar' });
  assert.equal(r.status, 200, r.text());
  const id = JSON.parse(r.text().trim()).status as string;
  assert.match(id, /^sha256:[a-f0-9]{64}$/);
  const j = (await api(d.socket, 'GET', '/images/imp/bb:1/json')).json();
  assert.equal(j.Id, id);
  assert.deepEqual(j.RootFS.Layers, [sha(tar)]);
  assert.deepEqual(j.Config.Cmd, ['sh', '-c', 'echo hi']);
  assert.deepEqual(j.Config.Entrypoint, ['/bin/busybox']);
  assert.deepEqual(j.Config.Env, ['A=1', 'B=two words']);
  assert.equal(j.Config.WorkingDir, '/tmp');
  assert.equal(j.Config.User, '1000');
  assert.deepEqual(j.Config.ExposedPorts, { '8080/tcp': {} });
  assert.deepEqual(j.Config.Volumes, { '/data': {} });
  assert.deepEqual(j.Config.Labels, { 'org.test': 'yes' });
  assert.equal(j.Comment, 'hello import');
  assert.equal(j.Os, 'linux');
  // The layer unpacked: busybox is in the snapshot.
  const st = await run('test', ['-x', join(j.GraphDriver.Data.UpperDir, 'bin', 'busybox')]);
  assert.equal(st.code, 0);
  // The fixture's import (plain tar): one layer, Cmd sh.
  await importBusybox(d, 'busybox:latest');
  const b = (await api(d.socket, 'GET', '/images/busybox/json')).json();
  assert.deepEqual(b.Config.Cmd, ['sh']);
  assert.equal(b.RootFS.Layers.length, 1);
  assert.equal(b.RootFS.Layers[0], sha(tar), 'same rootfs tar, same diffID (plain or gzip)');
  const hist = (await api(d.socket, 'GET', '/images/busybox/history')).json();
  assert.equal(hist.length, 1);
  assert.equal(hist[0].Comment, 'Imported from -');
  assert.equal((await api(d.socket, 'POST', '/images/create?fromSrc=-&changes=RUN%20x', tar)).status, 400);
  // docker import (CLI): repo:tag in one argument, --change, -m.
  const file = join(dir.path, 'rootfs.tar');
  await writeFile(file, tar);
  const imp = await docker(d, ['import', '--change', 'ENV X=1', '-m', 'via cli', file, 'cli/imported:7']);
  assert.equal(imp.code, 0, imp.stderr);
  assert.match(imp.stdout.trim(), /^sha256:[a-f0-9]{64}$/);
  const ci = (await api(d.socket, 'GET', '/images/cli/imported:7/json')).json();
  assert.deepEqual(ci.Config.Env, ['X=1']);
  assert.equal(ci.Comment, 'via cli');
});

test('save -> rmi -> load round trip keeps the image ID (API and docker CLI)', { skip }, async () => {
  await using d = await startDaemon();
  await importBusybox(d, 'busybox:latest');
  const id = (await api(d.socket, 'GET', '/images/busybox/json')).json().Id as string;
  assert.equal((await api(d.socket, 'POST', `/images/busybox/tag?repo=me/app&tag=2`)).status, 201);

  // API save: a docker-archive with an OCI layout inside.
  const saved = await api(d.socket, 'GET', '/images/get?names=busybox:latest&names=me/app:2');
  assert.equal(saved.status, 200);
  const entries = await tarEntries(saved.body);
  for (const n of ['manifest.json', 'index.json', 'oci-layout', 'repositories']) assert.ok(entries.has(n), `archive has ${n}`);
  const manifest = JSON.parse(entries.get('manifest.json')!.toString());
  assert.equal(manifest.length, 1);
  assert.deepEqual(manifest[0].RepoTags.sort(), ['busybox:latest', 'me/app:2']);
  assert.equal(manifest[0].Config, `blobs/sha256/${id.slice(7)}`);
  for (const [name, data] of entries) {
    if (/^blobs\/sha256\/[a-f0-9]{64}$/.test(name)) assert.equal(sha(data), `sha256:${name.slice(13)}`, `blob ${name} matches its name`);
  }
  const index = JSON.parse(entries.get('index.json')!.toString());
  assert.ok(index.manifests.some((m: any) => m.annotations?.['io.containerd.image.name'] === 'docker.io/library/busybox:latest'));

  const rmi = await api(d.socket, 'DELETE', `/images/${id}?force=1`);
  assert.equal(rmi.status, 200, rmi.text());
  assert.deepEqual(rmi.json().filter((x: any) => x.Untagged).map((x: any) => x.Untagged).sort(), ['busybox:latest', 'me/app:2']);
  assert.ok(rmi.json().some((x: any) => x.Deleted === id));
  assert.deepEqual(await disk(d), { blobs: [], snapshots: [] });

  const load = await api(d.socket, 'POST', '/images/load?quiet=1', saved.body, { 'Content-Type': 'application/x-tar' });
  assert.equal(load.status, 200);
  const streamed = load.text().split(/\r?\n/).filter(Boolean).map((l) => JSON.parse(l).stream).join('');
  assert.match(streamed, /Loaded image: busybox:latest\n/);
  assert.match(streamed, /Loaded image: me\/app:2\n/);
  const back = (await api(d.socket, 'GET', '/images/me/app:2/json')).json();
  assert.equal(back.Id, id);

  // docker CLI: save -o, rmi, load -i (gzip-compressed archive).
  const dir = await mkdtemp(join(tmpdir(), 'berth-save-'));
  try {
    const out = join(dir, 'img.tar');
    const s = await docker(d, ['save', '-o', out, 'busybox']);
    assert.equal(s.code, 0, s.stderr);
    await writeFile(out + '.gz', gzipSync(await readFile(out)));
    assert.equal((await docker(d, ['rmi', '-f', 'busybox', 'me/app:2'])).code, 0);
    assert.deepEqual((await api(d.socket, 'GET', '/images/json')).json(), []);
    const l = await docker(d, ['load', '-i', out + '.gz']);
    assert.equal(l.code, 0, l.stderr);
    assert.match(l.stdout, /Loaded image: busybox:latest/);
    const insp = await docker(d, ['image', 'inspect', '--format', '{{.Id}}', 'busybox:latest']);
    assert.equal(insp.stdout.trim(), id);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('load an OCI layout and a legacy docker-archive; a corrupt blob fails with digest and leaves nothing', { skip }, async () => {
  await using d = await startDaemon();
  const img = await busyboxImage();
  // Plain OCI layout (no manifest.json): untagged unless named by annotation.
  const ociTar = Buffer.from((await run('bash', ['-c', `tar -C ${img.dir} -cf - . | base64 -w0`])).stdout, 'base64');
  const r = await api(d.socket, 'POST', '/images/load', ociTar);
  assert.equal(r.status, 200, r.text());
  assert.match(r.text(), new RegExp(`Loaded image ID: ${img.configDigest}`));
  assert.equal((await api(d.socket, 'GET', `/images/${img.configDigest}/json`)).json().Id, img.configDigest);

  // Legacy docker-archive (Docker < 25): <id>.json, <layer>/layer.tar, manifest.json.
  const layer = await readFile(join(img.dir, 'blobs', 'sha256', JSON.parse(await readFile(join(img.dir, 'blobs', 'sha256', img.manifestDigest.slice(7)), 'utf8')).layers[0].digest.slice(7)));
  const { gunzipSync } = await import('node:zlib');
  const layerTar = gunzipSync(layer);
  const config = await readFile(join(img.dir, 'blobs', 'sha256', img.configDigest.slice(7)));
  const lid = 'a'.repeat(64);
  const legacy = await makeTar([
    { name: `${img.configDigest.slice(7)}.json`, data: config },
    { name: `${lid}/layer.tar`, data: layerTar },
    { name: `${'b'.repeat(64)}/layer.tar`, type: 'symlink', linkname: `../${lid}/layer.tar` },
    { name: 'manifest.json', data: JSON.stringify([{ Config: `${img.configDigest.slice(7)}.json`, RepoTags: ['legacy/bb:old'], Layers: [`${'b'.repeat(64)}/layer.tar`] }]) },
  ]);
  const lr = await api(d.socket, 'POST', '/images/load', legacy);
  assert.equal(lr.status, 200, lr.text());
  assert.match(lr.text(), /Loaded image: legacy\/bb:old/);
  assert.equal((await api(d.socket, 'GET', '/images/legacy/bb:old/json')).json().Id, img.configDigest);

  // Corrupt: a blob whose bytes do not match its name.
  await api(d.socket, 'DELETE', `/images/${img.configDigest}?force=1`);
  assert.deepEqual(await disk(d), { blobs: [], snapshots: [] });
  const entries = await tarEntries(ociTar);
  const bad = await makeTar([...entries].filter(([n]) => !n.endsWith('/')).map(([name, data]) => {
    const clean = name.replace(/^\.\//, '');
    if (clean === `blobs/sha256/${img.configDigest.slice(7)}`) {
      const c = Buffer.from(data);
      c[c.length - 2]! ^= 1;
      return { name: clean, data: c };
    }
    return { name: clean, data };
  }));
  const br = await api(d.socket, 'POST', '/images/load', bad);
  assert.notEqual(br.status, 200);
  assert.match(br.json().message, /digest/);
  assert.deepEqual((await api(d.socket, 'GET', '/images/json')).json(), []);
  assert.deepEqual(await disk(d), { blobs: [], snapshots: [] });
});

test('rmi semantics and prune leave no blobs or snapshots', { skip }, async () => {
  await using d = await startDaemon();
  await importBusybox(d, 'keep:1');
  const id = (await api(d.socket, 'GET', '/images/keep:1/json')).json().Id as string;
  // A dangling image: import without repo.
  await using dir = await tempDir();
  await busyboxRootfs(join(dir.path, 'r'));
  await writeFile(join(dir.path, 'r', 'extra'), 'x');
  const tar = await tarDirectory(join(dir.path, 'r'));
  const dr = await api(d.socket, 'POST', '/images/create?fromSrc=-', tar);
  const danglingId = JSON.parse(dr.text()).status as string;
  let list = (await api(d.socket, 'GET', '/images/json?filters=' + encodeURIComponent('{"dangling":["true"]}'))).json();
  assert.deepEqual(list.map((i: any) => i.Id), [danglingId]);
  assert.deepEqual(list[0].RepoTags, []);
  const old = (await api(d.socket, 'GET', '/v1.41/images/json?filters=' + encodeURIComponent('{"dangling":["true"]}'))).json();
  assert.deepEqual(old[0].RepoTags, ['<none>:<none>']);
  const byRef = (await api(d.socket, 'GET', '/images/json?filters=' + encodeURIComponent('{"reference":["ke*"]}'))).json();
  assert.deepEqual(byRef.map((i: any) => i.Id), [id]);

  // Short ID prefix resolves; a tag on a missing image is 404; bad names 400.
  assert.equal((await api(d.socket, 'GET', `/images/${id.slice(7, 15)}/json`)).json().Id, id);
  assert.equal((await api(d.socket, 'POST', `/images/nope/tag?repo=x&tag=y`)).status, 404);
  assert.equal((await api(d.socket, 'POST', `/images/keep:1/tag?repo=BAD&tag=y`)).status, 400);

  const pruned = await api(d.socket, 'POST', '/images/prune');
  assert.equal(pruned.status, 200);
  assert.ok(pruned.json().ImagesDeleted.some((x: any) => x.Deleted === danglingId));
  assert.ok(pruned.json().SpaceReclaimed > 0);
  assert.equal((await api(d.socket, 'GET', '/images/json')).json().length, 1);
  const all = await api(d.socket, 'POST', '/images/prune?filters=' + encodeURIComponent('{"dangling":["false"]}'));
  assert.ok(all.json().ImagesDeleted.some((x: any) => x.Deleted === id));
  assert.deepEqual((await api(d.socket, 'GET', '/images/json')).json(), []);
  assert.deepEqual(await disk(d), { blobs: [], snapshots: [] });
  const info = (await api(d.socket, 'GET', '/info')).json();
  assert.equal(info.Images, 0);
});

test('docker rmi by name untags; the last name deletes the image and its layers', { skip }, async () => {
  await using d = await startDaemon();
  await importBusybox(d, 'a/b:1');
  assert.equal((await docker(d, ['tag', 'a/b:1', 'a/b:2'])).code, 0);
  const r1 = await docker(d, ['rmi', 'a/b:1']);
  assert.equal(r1.stdout.trim(), 'Untagged: a/b:1');
  const r2 = await docker(d, ['rmi', 'a/b:2']);
  assert.match(r2.stdout, /Untagged: a\/b:2\nDeleted: sha256:/);
  assert.deepEqual(await disk(d), { blobs: [], snapshots: [] });
});
