// Overlay snapshotter end to end, as root with the real Host: unpack three layers (files,
// whiteouts, an opaque dir, hardlinks, symlinks, a device node, xattrs), mount the overlay that
// prepare() describes, check the merged view against what the layers say, change it, diff the
// upper dir back into a layer, commit it, mount again, then unmount and remove everything.
// Also a rough figure: unpacking ~50 MB of small files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, readFile, readdir, lstat, stat, readlink, writeFile, unlink, chown, chmod } from 'node:fs/promises';
import { applyLayer } from '../../src/layer/tar-apply.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { createHash, randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { layerDiff } from '../../src/snapshot/layer-diff.ts';
import { buildTar, type TarEntrySpec } from '../../src/layer/tar-build.ts';
import { autoDecompress } from '../../src/layer/compression.ts';
import { binaryPaxExtract } from '../../src/layer/tar-pax.ts';
import { RealHost } from '../../src/host/host.ts';
import { chainIds } from '../../src/core/chain-id.ts';
import type { Digest } from '../../src/core/digest.ts';
import type { Mount } from '../../src/core/snapshots.ts';

const isRoot = process.getuid?.() === 0;
const host = new RealHost();
let base: string;
let snap: OverlaySnapshotter;
const mounted: string[] = [];

function sha(b: Buffer): Digest {
  return `sha256:${createHash('sha256').update(b).digest('hex')}`;
}

async function mountAt(mounts: Mount[], target: string): Promise<void> {
  const [m] = mounts;
  assert.ok(m);
  await mkdir(target, { recursive: true });
  if (m.type === 'bind') await host.mount(m.source, target, 'none', ['bind']);
  else await host.mount(m.source, target, m.type, m.options);
  mounted.push(target);
}

async function unmountAll(): Promise<void> {
  while (mounted.length) await host.unmount(mounted.pop() as string);
}

function getfattr(path: string, name: string): string | undefined {
  try {
    return execFileSync('getfattr', ['-h', '--absolute-names', '--only-values', '-n', name, path], { stdio: ['ignore', 'pipe', 'ignore'] }).toString();
  } catch {
    return undefined;
  }
}

const exists = (p: string) => lstat(p).then(() => true, () => false);
const cap = Buffer.from('0100000200040000000000000000000000000000', 'hex'); // cap_net_bind_service... shaped v2

const layers: TarEntrySpec[][] = [
  [
    { name: 'bin/', type: 'directory' },
    { name: 'bin/tool', body: 'tool v1', mode: 0o755 },
    { name: 'bin/tool-link', type: 'link', linkname: 'bin/tool' },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/tool' },
    { name: 'bin/ping', body: 'ping', mode: 0o4755, xattrs: { 'security.capability': cap } },
    { name: 'etc/', type: 'directory' },
    { name: 'etc/passwd', body: 'root:x:0:0::/root:/bin/sh\n' },
    { name: 'etc/shadow', body: 'secret' },
    { name: 'var/', type: 'directory' },
    { name: 'var/cache/', type: 'directory' },
    { name: 'var/cache/old1', body: '1' },
    { name: 'var/cache/old2', body: '2' },
    { name: 'dev/', type: 'directory' },
    { name: 'srv/', type: 'directory', mode: 0o750, uid: 1000, gid: 1000 },
    { name: 'srv/data', body: 'owned', uid: 1000, gid: 1000, mode: 0o640 },
  ],
  [
    { name: 'etc/', type: 'directory' },
    { name: 'etc/.wh.shadow' },
    { name: 'var/cache/', type: 'directory' },
    { name: 'var/cache/.wh..wh..opq' },
    { name: 'var/cache/new', body: 'fresh' },
    { name: 'dev/', type: 'directory' },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
    { name: 'bin/', type: 'directory' },
    { name: 'bin/tool', body: 'tool v2', mode: 0o755 },
    // A hardlink to a file of the lower layer: copied up into this diff, then linked.
    { name: 'bin/passwd-link', type: 'link', linkname: 'etc/passwd' },
  ],
  [
    { name: '.wh.srv' },
    { name: 'srv/', type: 'directory' },
    { name: 'srv/again', body: 'recreated in the layer after it was deleted' },
    { name: 'opt/app/run', body: 'run', mode: 0o700 },
    { name: 'opt/app/.wh.nothing' },
  ],
];

let tars: Buffer[] = [];
let chain: Digest[] = [];

before(async () => {
  if (!isRoot) return;
  base = await mkdtemp(join(tmpdir(), 'berth-snapi-'));
  snap = new OverlaySnapshotter(join(base, 'snapshots'), host);
  await snap.init();
  tars = await Promise.all(layers.map((l) => buildTar(l)));
  chain = chainIds(tars.map(sha));
});

after(async () => {
  if (!isRoot) return;
  await unmountAll().catch(() => {});
  await rm(base, { recursive: true, force: true });
});

test('unpack 3 layers, mount, check the merged view, diff, commit, clean up', { skip: !isRoot && 'needs root' }, async () => {
  let parent: Digest | undefined;
  for (const [i, tar] of tars.entries()) {
    // Gzip on the wire, as a registry would serve it.
    const d = autoDecompress({ maxBytes: 1 << 20 });
    Readable.from([gzipSync(tar)]).pipe(d);
    const id = chain[i] as Digest;
    const info = await snap.unpack(id, parent, d);
    assert.equal(info.name, id);
    parent = id;
  }

  // Layer 1's diff holds overlay's own representation of its whiteouts and opaque dir.
  const diff1 = join(base, 'snapshots/committed', (chain[1] as string).slice(7), 'fs');
  const wh = await lstat(join(diff1, 'etc/shadow'));
  assert.ok(wh.isCharacterDevice() && wh.rdev === 0);
  assert.equal(getfattr(join(diff1, 'var/cache'), 'trusted.overlay.opaque'), 'y');

  const mounts = await snap.prepare('ctr1', chain[2]);
  const merged = join(base, 'merged');
  await mountAt(mounts, merged);

  // The merged view is what the three layers say.
  assert.equal(await readFile(join(merged, 'bin/tool'), 'utf8'), 'tool v2');
  assert.equal(await readFile(join(merged, 'bin/tool-link'), 'utf8'), 'tool v1', 'the layer-0 hardlink keeps the old inode');
  assert.equal(await readlink(join(merged, 'bin/sh')), '/bin/tool');
  assert.equal((await stat(join(merged, 'bin/ping'))).mode & 0o7777, 0o4755);
  assert.ok(Buffer.from(execFileSync('getfattr', ['-h', '--absolute-names', '--only-values', '-n', 'security.capability', join(merged, 'bin/ping')])).equals(cap));
  assert.ok(!(await exists(join(merged, 'etc/shadow'))), 'whiteout hides etc/shadow');
  assert.equal(await readFile(join(merged, 'etc/passwd'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  assert.equal(await readFile(join(merged, 'bin/passwd-link'), 'utf8'), 'root:x:0:0::/root:/bin/sh\n');
  assert.deepEqual(await readdir(join(merged, 'var/cache')), ['new'], 'opaque dir hides the lower content');
  const devnull = await stat(join(merged, 'dev/null'));
  assert.ok(devnull.isCharacterDevice());
  assert.equal(devnull.rdev, (1 << 8) | 3);
  assert.deepEqual(await readdir(join(merged, 'srv')), ['again'], 'deleted and recreated: no lower files');
  assert.equal((await stat(join(merged, 'opt/app/run'))).mode & 0o777, 0o700);
  assert.ok(!(await exists(join(merged, 'opt/app/nothing'))));
  assert.ok(!(await exists(join(merged, 'opt/app/.wh.nothing'))));

  // Change the container's view; the kernel writes whiteouts/opaque markers into the upper dir.
  await unlink(join(merged, 'etc/passwd'));
  await rm(join(merged, 'bin'), { recursive: true });
  await mkdir(join(merged, 'bin'));
  await writeFile(join(merged, 'bin/tool'), 'tool v3');
  await writeFile(join(merged, 'etc/hostname'), 'box\n');
  await unmountAll();

  // The upper dir as an OCI layer: whiteouts and opaque markers in tar form.
  const diffTar = await buffer(layerDiff(snap.upperDir('ctr1'), { host }));
  const names: string[] = [];
  const ex = binaryPaxExtract();
  const reading = (async () => {
    for await (const e of ex) {
      names.push(e.header.name);
      (e as unknown as Readable).resume();
    }
  })();
  Readable.from([diffTar]).pipe(ex as unknown as NodeJS.WritableStream);
  await reading;
  assert.ok(names.includes('etc/.wh.passwd'), names.join(' '));
  assert.ok(names.includes('bin/.wh..wh..opq'), names.join(' '));
  assert.ok(names.includes('bin/tool'));
  assert.ok(names.includes('etc/hostname'));
  // Same upper, same bytes.
  assert.equal(sha(await buffer(layerDiff(snap.upperDir('ctr1'), { host }))), sha(diffTar));

  // Commit it (a build step) and mount a fresh container on top.
  const built = chainIds([...tars.map(sha), sha(diffTar)])[3] as Digest;
  await snap.commit('ctr1', built);
  const m2 = await snap.prepare('ctr2', built);
  await mountAt(m2, merged);
  assert.deepEqual(await readdir(join(merged, 'bin')), ['tool']);
  assert.equal(await readFile(join(merged, 'bin/tool'), 'utf8'), 'tool v3');
  assert.ok(!(await exists(join(merged, 'etc/passwd'))));
  assert.equal(await readFile(join(merged, 'etc/hostname'), 'utf8'), 'box\n');
  // Removing a mounted snapshot is refused.
  await assert.rejects(snap.remove('ctr2'), (e: unknown) => (e as { kind?: string }).kind === 'FailedPrecondition');
  await unmountAll();

  // Applying the diff tar as a layer gives the same view as the commit did.
  const reapplied = chainIds([...tars.map(sha), sha(Buffer.from('again'))])[3] as Digest;
  await snap.unpack(reapplied, chain[2], Readable.from([diffTar]));
  const m3 = await snap.prepare('ctr3', reapplied);
  await mountAt(m3, merged);
  assert.deepEqual(await readdir(join(merged, 'bin')), ['tool']);
  assert.ok(!(await exists(join(merged, 'etc/passwd'))));
  await unmountAll();

  for (const k of ['ctr2', 'ctr3', built, reapplied, chain[2], chain[1], chain[0]]) await snap.remove(k as string);
  assert.deepEqual(await snap.list(), []);
  for (const d of ['committed', 'active', 'l', 'tmp']) assert.deepEqual(await readdir(join(base, 'snapshots', d)), [], d);
});

test('a bind mount for a snapshot with no parent', { skip: !isRoot && 'needs root' }, async () => {
  const mounts = await snap.prepare('scratch', undefined);
  const target = join(base, 'scratch-root');
  await mountAt(mounts, target);
  await writeFile(join(target, 'hello'), 'hi');
  await unmountAll();
  assert.equal(await readFile(join(snap.upperDir('scratch'), 'hello'), 'utf8'), 'hi');
  await snap.remove('scratch');
});

test('100 layers mount for real: short links keep the options under a page', { skip: !isRoot && 'needs root' }, async () => {
  const diffIds: Digest[] = [];
  const tars: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    const t = await buildTar([{ name: `layers/l${String(i).padStart(3, '0')}`, body: String(i) }, ...(i > 0 ? [{ name: `layers/.wh.l${String(i - 1).padStart(3, '0')}` }] : [])]);
    tars.push(t);
    diffIds.push(sha(t));
  }
  const ids = chainIds(diffIds);
  // A root as long as the default /var/lib/berth/snapshots (24 bytes): /tmp/berth-snapi-XXXXXX/s.
  const deepSnap = new OverlaySnapshotter(join(base, 's'), host);
  await deepSnap.init();
  let parent: Digest | undefined;
  for (const [i, t] of tars.entries()) {
    await deepSnap.unpack(ids[i] as Digest, parent, Readable.from([t]));
    parent = ids[i];
  }
  const mounts = await deepSnap.prepare('deep', parent);
  assert.ok(Buffer.byteLength(mounts[0]?.options.join(',') ?? '') < 4096);
  const target = join(base, 'deep-root');
  await mountAt(mounts, target);
  // Each layer whited out the previous one's file: only the top file is visible.
  assert.deepEqual(await readdir(join(target, 'layers')), ['l099']);
  assert.equal(await readFile(join(target, 'layers/l099'), 'utf8'), '99');
  await unmountAll();
  await deepSnap.remove('deep');
  for (const id of [...ids].reverse()) await deepSnap.remove(id);
  assert.deepEqual(await deepSnap.list(), []);
});

test('measure: unpack ~50 MB of small files', { skip: !isRoot && 'needs root' }, async () => {
  const entries: TarEntrySpec[] = [];
  const files = 10_000;
  for (let d = 0; d < 100; d++) {
    entries.push({ name: `usr/share/d${d}/`, type: 'directory' });
    for (let f = 0; f < files / 100; f++) entries.push({ name: `usr/share/d${d}/f${f}.txt`, body: randomBytes(5000) });
  }
  const tar = await buildTar(entries);
  assert.ok(tar.length > 50_000_000);
  const id = sha(tar);
  const t0 = performance.now();
  // 64 KiB chunks, as a registry download delivers them.
  const chunks: Buffer[] = [];
  for (let i = 0; i < tar.length; i += 65536) chunks.push(tar.subarray(i, i + 65536));
  const info = await snap.unpack(id, undefined, Readable.from(chunks));
  const ms = performance.now() - t0;
  // GNU tar on the same bytes and filesystem, for scale (the host's disk and load dominate).
  const ref = join(base, 'gnu-tar');
  await mkdir(ref);
  const t1 = performance.now();
  execFileSync('tar', ['-xf', '-', '-C', ref], { input: tar });
  const refMs = performance.now() - t1;
  await rm(ref, { recursive: true });
  process.stdout.write(`# unpack ${(tar.length / 1e6).toFixed(1)} MB, ${entries.length} entries: ${ms.toFixed(0)} ms (${(tar.length / 1e6 / (ms / 1000)).toFixed(1)} MB/s); GNU tar: ${refMs.toFixed(0)} ms\n`);
  assert.equal(info.size, files * 5000);
  assert.ok(ms < 120_000);
  // And back: the diff dir as a layer tar (what a build step does with its upper dir).
  const t2 = performance.now();
  let bytes = 0;
  for await (const c of layerDiff(join(base, 'snapshots/committed', id.slice(7), 'fs'), { host })) bytes += (c as Buffer).length;
  const diffMs = performance.now() - t2;
  process.stdout.write(`# layerDiff of the same tree: ${(bytes / 1e6).toFixed(1)} MB in ${diffMs.toFixed(0)} ms\n`);
  assert.ok(bytes > files * 5000);
  await snap.remove(id);
});

test('init marks tmp/ as a top of directory hierarchies on ext4 (unpacks spread over block groups)', { skip: !isRoot && 'needs root' }, async (t) => {
  const fsType = execFileSync('stat', ['-f', '-c', '%T', base], { encoding: 'utf8' }).trim();
  if (fsType !== 'ext2/ext3') return t.skip(`${fsType} has no T attribute`);
  const attrs = execFileSync('lsattr', ['-d', join(base, 'snapshots', 'tmp')], { encoding: 'utf8' }).split(/\s+/)[0] ?? '';
  assert.ok(attrs.includes('T'), `lsattr shows ${attrs}`);
  // Not inherited: an unpack's own tree is allocated normally below its spread top.
  const sub = join(base, 'snapshots', 'tmp', 'probe');
  await mkdir(sub);
  const subAttrs = execFileSync('lsattr', ['-d', sub], { encoding: 'utf8' }).split(/\s+/)[0] ?? '';
  await rm(sub, { recursive: true });
  assert.ok(!subAttrs.includes('T'), `lsattr shows ${subAttrs}`);
});

test('new nodes get the tar owner even under a setgid root of another group (the chown is skipped only when it is a no-op)', { skip: !isRoot && 'needs root' }, async () => {
  const dir = join(base, 'setgid-root');
  await mkdir(dir);
  await chown(dir, 0, 4242);
  await chmod(dir, 0o2755);
  const tar = await buildTar([
    { name: 'f', body: 'x', uid: 0, gid: 0 },
    { name: 'd/', type: 'directory', uid: 0, gid: 0 },
    { name: 'd/g', body: 'y', uid: 0, gid: 0 },
    { name: 'l', type: 'symlink', linkname: 'f', uid: 0, gid: 0 },
    { name: 'o', body: 'z', uid: 1000, gid: 1000 },
  ]);
  await applyLayer(dir, Readable.from([tar]), { mode: 'overlay', host, lowers: [] });
  for (const [name, gid] of [['f', 0], ['d', 0], ['d/g', 0], ['l', 0], ['o', 1000]] as const) {
    assert.equal((await lstat(join(dir, name))).gid, gid, name);
  }
  await rm(dir, { recursive: true });
});
