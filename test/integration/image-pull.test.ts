// Pull through berthd: the Docker API and the real docker CLI against a loopback docker-registry,
// multi-layer images with whiteouts, opaque dirs and hardlinks, corrupt blobs, concurrent pulls
// sharing a base layer, and a daemon killed mid-pull.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdtemp, readdir, rm, stat, readFile, mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { pack as tarPack } from 'tar-stream';
import {
  api, busyboxImage, docker, isRoot, pullViaApi, pushLayout, run, startDaemon, startRegistry, writeOciLayout, tempDir, waitFor,
  type TestDaemon, type TestRegistry, type LayoutImage,
} from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

interface TarEntry { name: string; type?: 'file' | 'directory' | 'link' | 'symlink'; data?: string | Buffer; linkname?: string; mode?: number }

/** A layer tar from entries (tar-stream; whiteouts are ordinary entries named .wh.*). */
async function layerTar(entries: TarEntry[]): Promise<Buffer> {
  const p = tarPack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => void chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  for (const e of entries) {
    const type = e.type ?? 'file';
    const header = { name: e.name, type, mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644), mtime: new Date('2024-01-01T00:00:00Z'), ...(e.linkname ? { linkname: e.linkname } : {}) };
    await new Promise<void>((res, rej) => {
      if (type === 'file') p.entry(header, e.data ?? '', (err) => (err ? rej(err) : res()));
      else p.entry(header, (err) => (err ? rej(err) : res()));
    });
  }
  p.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A proxy in front of the registry: counts blob GETs, can corrupt one blob (same length, one
 * byte flipped) and can slow blob bodies down.
 */
async function startProxy(upstream: string): Promise<{ addr: string; blobGets: Map<string, number>; corrupt: Set<string>; slowBytesPerSec: number; stop(): Promise<void> }> {
  const state = { blobGets: new Map<string, number>(), corrupt: new Set<string>(), slowBytesPerSec: 0 };
  const [host, port] = upstream.split(':');
  const server: Server = createServer((req, res) => {
    const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(req.url ?? '');
    if (m && req.method === 'GET') state.blobGets.set(m[1]!, (state.blobGets.get(m[1]!) ?? 0) + 1);
    const up = httpRequest({ host, port: Number(port), method: req.method, path: req.url, headers: req.headers }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      let first = true;
      ur.on('data', (c: Buffer) => {
        if (m && state.corrupt.has(m[1]!) && first && c.length > 0) {
          c = Buffer.from(c);
          c[c.length - 1]! ^= 0xff;
          first = false;
        }
        if (m && state.slowBytesPerSec > 0) {
          ur.pause();
          setTimeout(() => ur.resume(), (c.length / state.slowBytesPerSec) * 1000);
        }
        res.write(c);
      });
      ur.on('end', () => res.end());
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = `127.0.0.1:${(server.address() as { port: number }).port}`;
  return {
    addr,
    get blobGets() { return state.blobGets; },
    get corrupt() { return state.corrupt; },
    get slowBytesPerSec() { return state.slowBytesPerSec; },
    set slowBytesPerSec(v: number) { state.slowBytesPerSec = v; },
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function listOrEmpty(dir: string): Promise<string[]> {
  return readdir(dir).catch(() => [] as string[]);
}

/** What the daemon holds on disk: blobs, committed snapshots, in-progress files. */
async function disk(d: TestDaemon): Promise<{ blobs: string[]; snapshots: string[]; ingest: string[]; snapTmp: string[] }> {
  return {
    blobs: await listOrEmpty(join(d.dataRoot, 'content', 'blobs', 'sha256')),
    snapshots: await listOrEmpty(join(d.dataRoot, 'snapshots', 'committed')),
    ingest: await listOrEmpty(join(d.dataRoot, 'content', 'ingest')),
    snapTmp: await listOrEmpty(join(d.dataRoot, 'snapshots', 'tmp')),
  };
}

function messages(body: string): Array<Record<string, any>> {
  return body.split(/\r?\n/).filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>);
}

let registry: TestRegistry;
let work: { path: string; cleanup(): Promise<void> };
let busybox: LayoutImage;
let multi: LayoutImage;

before(async () => {
  if (!isRoot) return;
  registry = await startRegistry();
  work = await tempDir('berth-image-pull-');
  busybox = await busyboxImage();
  // Layer 0: a base with files to delete, an opaque dir, hardlinks.
  const l0 = await layerTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/hostname', data: 'base\n' },
    { name: 'etc/gone', data: 'to be whited out\n' },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/old-a', data: 'a' },
    { name: 'opq/old-b', data: 'b' },
    { name: 'data/', type: 'directory' },
    { name: 'data/original', data: 'shared inode\n' },
    { name: 'data/hardlink', type: 'link', linkname: 'data/original' },
  ]);
  // Layer 1: whiteout a file, make a dir opaque and add to it, a new hardlink to a lower file.
  const l1 = await layerTar([
    { name: 'etc/', type: 'directory' },
    { name: 'etc/.wh.gone', data: '' },
    { name: 'opq/', type: 'directory' },
    { name: 'opq/.wh..wh..opq', data: '' },
    { name: 'opq/new', data: 'new' },
    { name: 'data/', type: 'directory' },
    { name: 'data/link-up', type: 'link', linkname: 'data/original' },
  ]);
  const l2 = await layerTar([{ name: 'hello', data: 'world\n' }, { name: 'bin/', type: 'directory' }, { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' }]);
  const l3 = await layerTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/hostname', data: 'top\n' }]);
  const l4 = await layerTar([{ name: 'big', data: randomBytes(256 * 1024) }]);
  multi = await writeOciLayout(join(work.path, 'multi'), { layers: [l0, l1, l2, l3, l4], config: { Cmd: ['/hello'] } });
});

after(async () => {
  if (!isRoot) return;
  await registry.stop();
  await work.cleanup();
});

test('pull busybox through the API: Docker progress stream, inspect, list', { skip }, async () => {
  await using d = await startDaemon();
  const ref = await pushLayout(busybox, registry, 'library/busybox:latest');
  const r = await pullViaApi(d, ref);
  assert.equal(r.status, 200);
  const msgs = messages(r.text());
  assert.deepEqual(msgs[0], { status: 'Pulling from library/busybox', id: 'latest' });
  const statuses = msgs.map((m) => m.status);
  for (const s of ['Pulling fs layer', 'Downloading', 'Verifying Checksum', 'Download complete', 'Extracting', 'Pull complete']) assert.ok(statuses.includes(s), `missing ${s}`);
  const dl = msgs.find((m) => m.status === 'Downloading')!;
  assert.equal(typeof dl.progressDetail.current, 'number');
  assert.match(dl.progress, /^\[=*>\s*\]\s+\S+\/\S+$/);
  assert.ok(msgs.some((m) => /^Digest: sha256:[a-f0-9]{64}$/.test(m.status ?? '')));
  assert.equal(msgs.at(-1)!.status, `Status: Downloaded newer image for ${ref}`);
  assert.ok(!msgs.some((m) => m.error));

  const insp = await api(d.socket, 'GET', `/images/${ref}/json`);
  assert.equal(insp.status, 200);
  const j = insp.json();
  assert.equal(j.Id, busybox.configDigest);
  assert.deepEqual(j.RepoTags, [ref]);
  assert.match(j.RepoDigests[0], new RegExp(`^${ref.replace(/:latest$/, '')}@sha256:`));
  assert.deepEqual(j.RootFS, { Type: 'layers', Layers: busybox.diffIds });
  assert.equal(j.GraphDriver.Name, 'overlay');
  assert.deepEqual(j.Config.Cmd, ['sh']);
  assert.ok(j.Size > 1_000_000);

  const again = messages((await pullViaApi(d, ref)).text());
  assert.equal(again.find((m) => m.id && m.id !== 'latest')?.status, 'Already exists');
  assert.equal(again.at(-1)!.status, `Status: Image is up to date for ${ref}`);

  const list = (await api(d.socket, 'GET', '/images/json')).json();
  assert.equal(list.length, 1);
  assert.equal(list[0].Id, busybox.configDigest);
  assert.equal(list[0].Containers, -1);
  assert.equal(typeof list[0].Created, 'number');

  const missing = await api(d.socket, 'GET', '/images/nope:1/json');
  assert.equal(missing.status, 404);
  assert.equal(missing.json().message, 'No such image: nope:1');
  assert.equal((await api(d.socket, 'GET', '/images/In%20valid/json')).status, 400);
});

test('the docker CLI: pull, images, inspect, tag, history, rmi', { skip }, async () => {
  await using d = await startDaemon();
  const ref = await pushLayout(busybox, registry, 'cli/busybox:1');
  const pull = await docker(d, ['pull', ref]);
  assert.equal(pull.code, 0, pull.stderr);
  assert.match(pull.stdout, /1: Pulling from cli\/busybox/);
  assert.match(pull.stdout, /Pull complete/);
  assert.match(pull.stdout, /Status: Downloaded newer image/);
  const images = await docker(d, ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']);
  assert.equal(images.stdout.trim(), `${ref} ${busybox.configDigest.slice(7, 19)}`);
  const insp = await docker(d, ['image', 'inspect', '--format', '{{.Id}} {{.Os}}', ref]);
  assert.equal(insp.stdout.trim(), `${busybox.configDigest} linux`);
  assert.equal((await docker(d, ['tag', ref, 'other/name:2'])).code, 0);
  assert.match((await docker(d, ['images'])).stdout, /other\/name\s+2/);
  const hist = await docker(d, ['history', '--no-trunc', '--format', '{{.ID}}|{{.CreatedBy}}', 'other/name:2']);
  assert.equal(hist.code, 0, hist.stderr);
  assert.equal(hist.stdout.trim(), `${busybox.configDigest}|layer 0`);
  // By ID with two tags: refused without force (409), as Docker.
  const byId = await docker(d, ['rmi', busybox.configDigest.slice(7, 19)]);
  assert.notEqual(byId.code, 0);
  assert.match(byId.stderr, /conflict: unable to delete .* \(must be forced\) - image is referenced in multiple repositories/);
  const untag = await docker(d, ['rmi', 'other/name:2']);
  assert.equal(untag.stdout.trim(), 'Untagged: other/name:2');
  const rm = await docker(d, ['rmi', ref]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /Untagged: .*cli\/busybox:1/);
  assert.match(rm.stdout, new RegExp(`Deleted: ${busybox.configDigest}`));
  const left = await disk(d);
  assert.deepEqual(left.blobs, []);
  assert.deepEqual(left.snapshots, []);
  const nope = await docker(d, ['rmi', 'busybox:nope']);
  assert.match(nope.stderr, /No such image: busybox:nope/);
});

test('multi-layer image: whiteouts, opaque dirs and hardlinks apply as overlay layers', { skip }, async () => {
  await using d = await startDaemon();
  const ref = await pushLayout(multi, registry, 'multi/layers:1');
  const r = await pullViaApi(d, ref);
  assert.ok(!messages(r.text()).some((m) => m.error), r.text());
  const j = (await api(d.socket, 'GET', `/images/${ref}/json`)).json();
  assert.equal(j.RootFS.Layers.length, 5);
  const gd = j.GraphDriver.Data;
  const lowers = `${gd.UpperDir}:${gd.LowerDir}`;
  const mnt = await mkdtemp(join(tmpdir(), 'berth-mnt-'));
  const m = await run('mount', ['-t', 'overlay', 'overlay', '-o', `ro,lowerdir=${lowers}`, mnt]);
  assert.equal(m.code, 0, m.stderr);
  try {
    assert.equal(await readFile(join(mnt, 'etc/hostname'), 'utf8'), 'top\n');
    await assert.rejects(stat(join(mnt, 'etc/gone')), { code: 'ENOENT' });
    assert.deepEqual((await readdir(join(mnt, 'opq'))).sort(), ['new']);
    assert.equal(await readFile(join(mnt, 'data/link-up'), 'utf8'), 'shared inode\n');
    // A hardlink to a lower layer's file copies the target up: both names are one inode there.
    const a = await stat(join(mnt, 'data/original'));
    const b = await stat(join(mnt, 'data/link-up'));
    assert.equal(a.ino, b.ino);
    assert.equal(await readFile(join(mnt, 'data/hardlink'), 'utf8'), 'shared inode\n');
    // In layer 0 alone, the hardlink pair is one inode.
    const base = gd.LowerDir.split(':').at(-1);
    assert.equal((await stat(join(base, 'data/original'))).ino, (await stat(join(base, 'data/hardlink'))).ino);
    assert.equal(await readFile(join(mnt, 'hello'), 'utf8'), 'world\n');
  } finally {
    await run('umount', [mnt]);
    await rm(mnt, { recursive: true, force: true });
  }
  const hist = (await api(d.socket, 'GET', `/images/${ref}/history`)).json();
  assert.equal(hist.length, 5);
  assert.equal(hist[0].Id, j.Id);
  assert.equal(hist[1].Id, '<missing>');
  assert.equal(hist[4].CreatedBy, 'layer 0');
});

test('a registry serving wrong bytes fails the pull with a digest error and leaves nothing', { skip }, async () => {
  const proxy = await startProxy(registry.addr);
  await using d = await startDaemon();
  try {
    await pushLayout(multi, registry, 'corrupt/image:1');
    const m = JSON.parse(await readFile(join(multi.dir, 'blobs', 'sha256', multi.manifestDigest.slice(7)), 'utf8'));
    proxy.corrupt.add(m.layers[2].digest);
    const r = await pullViaApi(d, `${proxy.addr}/corrupt/image:1`);
    const msgs = messages(r.text());
    const err = msgs.find((x) => x.error);
    assert.ok(err, r.text());
    assert.match(err!.error, /digest/);
    assert.equal(err!.errorDetail.message, err!.error);
    assert.deepEqual((await api(d.socket, 'GET', '/images/json')).json(), []);
    const left = await disk(d);
    assert.deepEqual(left, { blobs: [], snapshots: [], ingest: [], snapTmp: [] });
    // The same pull works once the registry behaves.
    proxy.corrupt.clear();
    const ok = messages((await pullViaApi(d, `${proxy.addr}/corrupt/image:1`)).text());
    assert.ok(!ok.some((x) => x.error));
    assert.equal((await api(d.socket, 'GET', '/images/json')).json().length, 1);
  } finally {
    await proxy.stop();
  }
});

test('concurrent pulls share layers: each blob is fetched once', { skip }, async () => {
  const proxy = await startProxy(registry.addr);
  await using d = await startDaemon();
  try {
    // Two images on the same four-layer base, differing only in their top layer.
    const base = [await layerTar([{ name: 'a', data: randomBytes(300_000) }]), await layerTar([{ name: 'b', data: 'b' }])];
    const dir = await mkdtemp(join(tmpdir(), 'berth-shared-'));
    try {
      const one = await writeOciLayout(join(dir, 'one'), { layers: [...base, await layerTar([{ name: 'one', data: '1' }])] });
      const two = await writeOciLayout(join(dir, 'two'), { layers: [...base, await layerTar([{ name: 'two', data: '2' }])] });
      await pushLayout(one, registry, 'shared/one:1');
      await pushLayout(two, registry, 'shared/two:1');
      proxy.slowBytesPerSec = 2_000_000;
      const [a, b] = await Promise.all([pullViaApi(d, `${proxy.addr}/shared/one:1`), pullViaApi(d, `${proxy.addr}/shared/two:1`)]);
      assert.ok(!messages(a.text()).some((m) => m.error), a.text());
      assert.ok(!messages(b.text()).some((m) => m.error), b.text());
      for (const [digest, n] of proxy.blobGets) assert.equal(n, 1, `blob ${digest} fetched ${n} times`);
      assert.equal((await api(d.socket, 'GET', '/images/json')).json().length, 2);
      assert.equal((await disk(d)).snapshots.length, 4);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } finally {
    await proxy.stop();
  }
});

test('berthd killed mid-pull: restart leaves a consistent store and the pull works again', { skip }, async () => {
  const proxy = await startProxy(registry.addr);
  const d = await startDaemon();
  const dir = await mkdtemp(join(tmpdir(), 'berth-kill-'));
  try {
    const big = await writeOciLayout(join(dir, 'big'), { layers: [await layerTar([{ name: 'x', data: randomBytes(2_000_000) }]), await layerTar([{ name: 'y', data: randomBytes(3_000_000) }])], gzip: true });
    await pushLayout(big, registry, 'kill/big:1');
    proxy.slowBytesPerSec = 1_000_000;
    // Start the pull and kill the daemon once a download is under way.
    const started = new Promise<void>((resolve) => {
      const req = httpRequest({ socketPath: d.socket, method: 'POST', path: `/images/create?fromImage=${encodeURIComponent(`${proxy.addr}/kill/big`)}&tag=1` }, (res) => {
        res.on('data', (c: Buffer) => {
          if (c.toString().includes('Downloading')) resolve();
        });
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end();
    });
    await started;
    await new Promise((r) => setTimeout(r, 300));
    await d.kill();
    const mid = await disk(d);
    assert.ok(mid.ingest.length > 0, 'a download was in progress');
    proxy.slowBytesPerSec = 0;
    // What a crash after a blob commit but before the image record leaves: an unowned blob.
    const orphan = Buffer.from('orphan blob of an interrupted pull');
    const orphanHex = createHash('sha256').update(orphan).digest('hex');
    await writeFile(join(d.dataRoot, 'content', 'blobs', 'sha256', orphanHex), orphan);
    await d.restart();
    const after = await disk(d);
    assert.deepEqual(after.ingest, []);
    assert.deepEqual(after.snapTmp, []);
    assert.deepEqual((await api(d.socket, 'GET', '/images/json')).json(), []);
    await waitFor(async () => !(await disk(d)).blobs.includes(orphanHex), 'the start-up GC to remove the orphan blob', 10_000);
    const r = messages((await pullViaApi(d, `${proxy.addr}/kill/big:1`)).text());
    assert.ok(!r.some((m) => m.error), JSON.stringify(r));
    const j = (await api(d.socket, 'GET', `/images/${proxy.addr}/kill/big:1/json`)).json();
    assert.equal(j.Id, big.configDigest);
  } finally {
    await proxy.stop();
    await d.cleanup();
    await rm(dir, { recursive: true, force: true });
  }
});

test('POST /auth checks credentials against the registry', { skip }, async () => {
  const reg = await startRegistry({ htpasswd: { user: 'u', pass: 'p' } });
  await using d = await startDaemon();
  try {
    const ok = await api(d.socket, 'POST', '/auth', { username: 'u', password: 'p', serveraddress: reg.addr });
    assert.equal(ok.status, 200, ok.text());
    assert.equal(ok.json().Status, 'Login Succeeded');
    const bad = await api(d.socket, 'POST', '/auth', { username: 'u', password: 'wrong', serveraddress: reg.addr });
    assert.equal(bad.status, 401);
    // Pull with X-Registry-Auth from the docker CLI's login.
    await mkdir(join(d.dataRoot, '..', 'docker-config'), { recursive: true });
    const login = await docker(d, ['login', '-u', 'u', '--password-stdin', reg.addr], { input: 'p' });
    assert.equal(login.code, 0, login.stderr);
    const img = await busyboxImage();
    await run('skopeo', ['copy', '--quiet', '--insecure-policy', '--dest-tls-verify=false', '--dest-creds', 'u:p', `oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/private/bb:1`]);
    const pull = await docker(d, ['pull', `${reg.addr}/private/bb:1`]);
    assert.equal(pull.code, 0, pull.stderr);
  } finally {
    await reg.stop();
  }
});

test('an index: the host platform by default, --platform picks another; the repo digest is the index digest', { skip }, async () => {
  await using d = await startDaemon();
  const dir = await mkdtemp(join(tmpdir(), 'berth-index-'));
  try {
    const blobs = join(dir, 'blobs', 'sha256');
    await mkdir(blobs, { recursive: true });
    const put = async (b: Buffer) => {
      const dg = 'sha256:' + createHash('sha256').update(b).digest('hex');
      await writeFile(join(blobs, dg.slice(7)), b);
      return { digest: dg, size: b.length };
    };
    const { gzipSync } = await import('node:zlib');
    const manifests = [];
    for (const arch of ['amd64', 'arm64']) {
      const tar = await layerTar([{ name: 'arch', data: arch }]);
      const gz = gzipSync(tar);
      const layer = await put(gz);
      const config = await put(Buffer.from(JSON.stringify({ architecture: arch, os: 'linux', config: { Cmd: ['/arch'] }, rootfs: { type: 'layers', diff_ids: ['sha256:' + createHash('sha256').update(tar).digest('hex')] } })));
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }] }));
      manifests.push({ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...(await put(m)), platform: { architecture: arch, os: 'linux' }, configDigest: config.digest });
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: manifests.map(({ configDigest: _c, ...m }) => m) }));
    const idx = await put(index);
    await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.index.v1+json', ...idx, annotations: { 'org.opencontainers.image.ref.name': 'multi' } }] }));
    const r = await run('skopeo', ['copy', '--quiet', '--insecure-policy', '--all', '--dest-tls-verify=false', `oci:${dir}:multi`, `docker://${registry.addr}/multi/arch:1`]);
    assert.equal(r.code, 0, r.stderr);
    const ref = `${registry.addr}/multi/arch:1`;
    const host = process.arch === 'arm64' ? 'arm64' : 'amd64';
    const other = host === 'amd64' ? 'arm64' : 'amd64';
    const p1 = messages((await pullViaApi(d, ref)).text());
    assert.ok(!p1.some((m) => m.error), JSON.stringify(p1));
    assert.equal(p1.find((m) => m.status?.startsWith('Digest:'))!.status, `Digest: ${idx.digest}`);
    const j1 = (await api(d.socket, 'GET', `/images/${ref}/json`)).json();
    assert.equal(j1.Architecture, host);
    assert.equal(j1.Id, manifests.find((m) => m.platform.architecture === host)!.configDigest);
    assert.deepEqual(j1.RepoDigests, [`${registry.addr}/multi/arch@${idx.digest}`]);
    const p2 = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(`${registry.addr}/multi/arch`)}&tag=1&platform=linux/${other}`);
    assert.ok(!messages(p2.text()).some((m) => m.error), p2.text());
    const j2 = (await api(d.socket, 'GET', `/images/${ref}/json`)).json();
    assert.equal(j2.Architecture, other, 'the tag moved to the other platform\'s image');
    assert.equal((await api(d.socket, 'GET', '/images/json')).json().length, 2);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
