// Push through berthd (POST /images/{name}/push) to Debian's docker-registry: the real docker CLI
// and the berth CLI, manifest digests preserved byte for byte, pull-back image IDs, "Layer
// already exists", cross-repository mounts, htpasswd auth with docker/berth login, a multi-layer
// image with more layers than upload slots, and an imported (uncompressed) image pulled back by
// podman and by a fresh berthd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  api, berth, busyboxImage, docker, importBusybox, isRoot, pullViaApi, pushLayout, run, startDaemon, startRegistry, writeOciLayout, tempDir,
  type TestDaemon, type TestRegistry,
} from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

interface Msg { status?: string; id?: string; progressDetail?: { current?: number; total?: number }; error?: string; errorDetail?: { message: string }; aux?: { Tag: string; Digest: string; Size: number } }

function messages(body: string): Msg[] {
  return body.split(/\r?\n/).filter((l) => l.trim() !== '').map((l) => JSON.parse(l) as Msg);
}

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

/** The manifest a registry serves for a reference: raw bytes (skopeo inspect --raw) and their digest. */
async function remoteManifest(ref: string, creds?: string): Promise<{ bytes: string; digest: string }> {
  const r = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ...(creds ? ['--creds', creds] : []), `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  return { bytes: r.stdout, digest: sha(r.stdout) };
}

let regA: TestRegistry;
let regB: TestRegistry;
let d1: TestDaemon;
let srcRef: string;
let srcDigest: string;
let imageId: string;

before(async () => {
  if (skip) return;
  [regA, regB, d1] = await Promise.all([startRegistry(), startRegistry(), startDaemon()]);
  srcRef = await pushLayout(await busyboxImage(), regA, 'library/busybox:latest');
  srcDigest = (await remoteManifest(srcRef)).digest;
  const r = await pullViaApi(d1, srcRef);
  assert.equal(r.status, 200, r.text());
  imageId = (await api(d1.socket, 'GET', `/images/${srcRef}/json`)).json().Id;
});

after(async () => {
  await Promise.allSettled([d1?.cleanup(), regA?.stop(), regB?.stop()]);
});

test('docker push and berth push of a pulled image keep its manifest digest; a fresh daemon pulls the same image ID', { skip }, async () => {
  const viaDocker = `${regB.addr}/team/busybox:1.0`;
  const viaBerth = `${regB.addr}/team/busybox:2.0`;
  assert.equal((await docker(d1, ['tag', srcRef, viaDocker])).code, 0);
  assert.equal((await docker(d1, ['tag', srcRef, viaBerth])).code, 0);

  const p1 = await docker(d1, ['push', viaDocker]);
  assert.equal(p1.code, 0, p1.stderr);
  assert.match(p1.stdout, new RegExp(`^The push refers to repository \\[${regB.addr}/team/busybox\\]$`, 'm'));
  assert.match(p1.stdout, /^[a-f0-9]{12}: Pushed$/m);
  assert.match(p1.stdout, new RegExp(`^1\\.0: digest: ${srcDigest} size: \\d+$`, 'm'));
  assert.equal((await remoteManifest(viaDocker)).digest, srcDigest);

  const p2 = await berth(d1, ['push', viaBerth]);
  assert.equal(p2.code, 0, p2.stderr);
  assert.match(p2.stdout, new RegExp(`2\\.0: digest: ${srcDigest} size: \\d+`));
  const remote = await remoteManifest(viaBerth);
  assert.equal(remote.digest, srcDigest);

  // The pushed repository is now one of the image's repo digests, as with dockerd.
  const inspect = (await api(d1.socket, 'GET', `/images/${viaDocker}/json`)).json();
  assert.ok(inspect.RepoDigests.includes(`${regB.addr}/team/busybox@${srcDigest}`), JSON.stringify(inspect.RepoDigests));

  await using d2 = await startDaemon();
  const r = await pullViaApi(d2, viaDocker);
  assert.equal(r.status, 200, r.text());
  assert.equal((await api(d2.socket, 'GET', `/images/${viaDocker}/json`)).json().Id, imageId);
  const run2 = await docker(d2, ['image', 'inspect', '--format', '{{.Id}}', viaBerth]);
  assert.notEqual(run2.code, 0, 'only the pulled tag is in the fresh daemon');
});

test('the API stream: Preparing, Pushing with progressDetail, Pushed, digest line and aux; again: Layer already exists', { skip }, async () => {
  // A registry of its own: on regB the layer would be mounted from an earlier push.
  const reg = await startRegistry();
  await using _stop = { [Symbol.asyncDispose]: () => reg.stop() };
  const name = `${reg.addr}/stream/busybox`;
  assert.equal((await docker(d1, ['tag', srcRef, `${name}:latest`])).code, 0);
  const r = await api(d1.socket, 'POST', `/images/${name}/push?tag=latest`, undefined, { 'X-Registry-Auth': 'e30=' });
  assert.equal(r.status, 200);
  const msgs = messages(r.text());
  assert.deepEqual(msgs[0], { status: `The push refers to repository [${name}]` });
  const layerId = msgs.find((m) => m.status === 'Preparing')?.id;
  assert.match(layerId ?? '', /^[a-f0-9]{12}$/);
  const pushing = msgs.filter((m) => m.status === 'Pushing' && m.id === layerId);
  assert.ok(pushing.length >= 1);
  const last = pushing[pushing.length - 1]!;
  assert.ok(last.progressDetail?.total && last.progressDetail.current === last.progressDetail.total, JSON.stringify(last));
  assert.ok(msgs.some((m) => m.status === 'Pushed' && m.id === layerId));
  const digestLine = msgs.find((m) => /^latest: digest: /.test(m.status ?? ''));
  const m = /^latest: digest: (sha256:[a-f0-9]{64}) size: (\d+)$/.exec(digestLine?.status ?? '');
  assert.ok(m, digestLine?.status);
  assert.equal(m[1], srcDigest);
  const aux = msgs[msgs.length - 1]!;
  assert.deepEqual(aux, { progressDetail: {}, aux: { Tag: 'latest', Digest: srcDigest, Size: Number(m[2]) } });
  assert.ok(!msgs.some((x) => x.error), r.text());

  const again = messages((await api(d1.socket, 'POST', `/images/${name}/push?tag=latest`)).text());
  assert.ok(again.some((x) => x.status === 'Layer already exists' && x.id === layerId), JSON.stringify(again));
  assert.ok(!again.some((x) => x.status === 'Pushing' || x.status === 'Pushed'));

  const cli = await docker(d1, ['push', `${name}:latest`]);
  assert.equal(cli.code, 0, cli.stderr);
  assert.match(cli.stdout, new RegExp(`^${layerId}: Layer already exists$`, 'm'));
});

test('a push to another repository of the same registry mounts the layer (Mounted from)', { skip }, async () => {
  const first = `${regB.addr}/mount/src:latest`;
  const second = `${regB.addr}/mount/dst:latest`;
  assert.equal((await docker(d1, ['tag', srcRef, first])).code, 0);
  assert.equal((await docker(d1, ['push', first])).code, 0);
  assert.equal((await docker(d1, ['tag', srcRef, second])).code, 0);
  const r = await docker(d1, ['push', second]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^[a-f0-9]{12}: Mounted from (mount\/src|team\/busybox)$/m);
  assert.doesNotMatch(r.stdout, /Pushed/);
  assert.equal((await remoteManifest(second)).digest, srcDigest);
});

test('all tags of a repository (no tag parameter), and the errors before and inside the stream', { skip }, async () => {
  const repo = `${regB.addr}/multi/bb`;
  for (const t of ['a', 'b']) assert.equal((await docker(d1, ['tag', srcRef, `${repo}:${t}`])).code, 0);
  const all = await docker(d1, ['push', '--all-tags', repo]);
  assert.equal(all.code, 0, all.stderr);
  assert.match(all.stdout, /^a: digest: sha256:[a-f0-9]{64} size: \d+$/m);
  assert.match(all.stdout, /^b: digest: sha256:[a-f0-9]{64} size: \d+$/m);

  const missing = await api(d1.socket, 'POST', `/images/${regB.addr}/nope/push?tag=latest`);
  assert.equal(missing.status, 404);
  assert.equal(missing.json().message, `No such image: ${regB.addr}/nope:latest`);
  const cli = await docker(d1, ['push', `${regB.addr}/nope:latest`]);
  assert.notEqual(cli.code, 0);
  assert.match(cli.stderr, /No such image: 127\.0\.0\.1:\d+\/nope:latest/);

  const none = await api(d1.socket, 'POST', `/images/${regB.addr}/nope/push`);
  assert.equal(none.status, 200);
  const msgs = messages(none.text());
  assert.equal(msgs[0]!.status, `The push refers to repository [${regB.addr}/nope]`);
  assert.deepEqual(msgs[msgs.length - 1], {
    errorDetail: { message: `An image does not exist locally with the tag: ${regB.addr}/nope` },
    error: `An image does not exist locally with the tag: ${regB.addr}/nope`,
  });

  const digestRef = await api(d1.socket, 'POST', `/images/${encodeURIComponent(`${repo}@${srcDigest}`)}/push`);
  assert.equal(digestRef.status, 400);
});

test('a registry with htpasswd refuses the anonymous push in-band and accepts it after docker login and berth login', { skip }, async () => {
  const regC = await startRegistry({ htpasswd: { user: 'pusher', pass: 's3cret' } });
  try {
    const ref = `${regC.addr}/private/bb:latest`;
    assert.equal((await docker(d1, ['tag', srcRef, ref])).code, 0);
    const anon = await api(d1.socket, 'POST', `/images/${regC.addr}/private/bb/push?tag=latest`, undefined, { 'X-Registry-Auth': 'e30=' });
    assert.equal(anon.status, 200);
    const last = messages(anon.text()).pop()!;
    assert.match(last.error ?? '', /^unauthorized: authentication required/);
    assert.equal(last.errorDetail?.message, last.error);

    const denied = await docker(d1, ['push', ref]);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /unauthorized: authentication required/);

    const bad = await docker(d1, ['login', '-u', 'pusher', '--password-stdin', regC.addr], { input: 'wrong\n' });
    assert.notEqual(bad.code, 0);
    const login = await docker(d1, ['login', '-u', 'pusher', '--password-stdin', regC.addr], { input: 's3cret\n' });
    assert.equal(login.code, 0, login.stderr);
    const ok = await docker(d1, ['push', ref]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`latest: digest: ${srcDigest}`));
    assert.equal((await remoteManifest(ref, 'pusher:s3cret')).digest, srcDigest);

    // berth shares the CLI config dir with docker in these fixtures: log out, then in with berth.
    assert.equal((await berth(d1, ['logout', regC.addr])).code, 0);
    const ref2 = `${regC.addr}/private/bb2:latest`;
    assert.equal((await docker(d1, ['tag', srcRef, ref2])).code, 0);
    const denied2 = await berth(d1, ['push', ref2]);
    assert.notEqual(denied2.code, 0);
    assert.match(denied2.stderr + denied2.stdout, /unauthorized/);
    const blogin = await berth(d1, ['login', '-u', 'pusher', '--password-stdin', regC.addr], { input: 's3cret\n' });
    assert.equal(blogin.code, 0, blogin.stderr);
    const ok2 = await berth(d1, ['push', ref2]);
    assert.equal(ok2.code, 0, ok2.stderr);
    assert.equal((await remoteManifest(ref2, 'pusher:s3cret')).digest, srcDigest);
  } finally {
    await regC.stop();
  }
});

test('a multi-layer image with more layers than upload slots keeps its manifest digest', { skip }, async () => {
  await using dir = await tempDir();
  const layers = Array.from({ length: 7 }, (_, i) => Buffer.concat([tarHeader(`f${i}.txt`, Buffer.from(`layer ${i}\n`.repeat(1000 * (i + 1))))]));
  const layout = await writeOciLayout(join(dir.path, 'layout'), { layers, config: { Cmd: ['sh'] } });
  const src = await pushLayout(layout, regA, 'multi/seven:latest');
  assert.equal((await pullViaApi(d1, src)).status, 200);
  const dst = `${regB.addr}/multi/seven:latest`;
  assert.equal((await docker(d1, ['tag', src, dst])).code, 0);
  const r = await api(d1.socket, 'POST', `/images/${regB.addr}/multi/seven/push?tag=latest`);
  const msgs = messages(r.text());
  assert.ok(!msgs.some((m) => m.error), r.text());
  const ids = new Set(msgs.filter((m) => m.status === 'Preparing').map((m) => m.id));
  assert.equal(ids.size, 7);
  assert.ok(msgs.some((m) => m.status === 'Waiting'), 'seven layers, five upload slots');
  assert.equal(msgs.filter((m) => m.status === 'Pushed').length, 7);
  assert.equal((await remoteManifest(dst)).digest, layout.manifestDigest);
});

test('an imported image (uncompressed layer) is pushed gzipped, pulled back by podman and by a fresh berthd with the same image ID', { skip }, async () => {
  await importBusybox(d1, 'imported:latest');
  const local = (await api(d1.socket, 'GET', '/images/imported/json')).json();
  const ref = `${regB.addr}/imported/bb:latest`;
  assert.equal((await docker(d1, ['tag', 'imported:latest', ref])).code, 0);
  const r = await berth(d1, ['push', ref]);
  assert.equal(r.code, 0, r.stderr);
  const remote = await remoteManifest(ref);
  const manifest = JSON.parse(remote.bytes);
  assert.equal(manifest.config.digest, local.Id);
  assert.equal(manifest.layers.length, 1);
  assert.equal(manifest.layers[0].mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
  assert.match(r.stdout, new RegExp(`latest: digest: ${remote.digest}`));
  // Pushing again sends the same (already gzipped) manifest.
  const again = await berth(d1, ['push', ref]);
  assert.match(again.stdout, /Layer already exists/);
  assert.match(again.stdout, new RegExp(`latest: digest: ${remote.digest}`));

  const root = await mkdtemp(join(tmpdir(), 'berth-podman-root-'));
  const runroot = await mkdtemp(join(tmpdir(), 'berth-podman-run-'));
  try {
    const podman = (args: string[]) => run('podman', ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs', ...args], { timeoutMs: 120_000 });
    const pull = await podman(['pull', '--tls-verify=false', ref]);
    assert.equal(pull.code, 0, pull.stderr);
    const id = await podman(['image', 'inspect', '--format', '{{.ID}}', ref]);
    assert.equal(id.code, 0, id.stderr);
    assert.equal(`sha256:${id.stdout.trim()}`, local.Id);
    const dig = await podman(['image', 'inspect', '--format', '{{.Digest}}', ref]);
    assert.equal(dig.stdout.trim(), remote.digest);
  } finally {
    await run('podman', ['--root', root, '--runroot', runroot, '--storage-driver', 'vfs', 'rmi', '-a', '-f']);
    await rm(root, { recursive: true, force: true });
    await rm(runroot, { recursive: true, force: true });
  }

  await using d3 = await startDaemon();
  assert.equal((await pullViaApi(d3, ref)).status, 200);
  assert.equal((await api(d3.socket, 'GET', `/images/${ref}/json`)).json().Id, local.Id);
});

/** A one-file tar (ustar header + data + padding + end blocks), enough for a layer. */
function tarHeader(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100);
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('14540000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return Buffer.concat([h, data, pad, Buffer.alloc(1024)]);
}
