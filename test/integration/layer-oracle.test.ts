// Differential test (security.md 1.B: "compare the merged view against a reference
// extraction"): the same layers are unpacked by umoci (Debian's OCI reference tool), applied by
// berth in 'delete' mode into one tree, and unpacked by the overlay snapshotter and mounted. The
// three trees must agree on names, types, modes, owners, contents, link targets and devices.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readdir, lstat, readlink, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { buildTar, type TarEntrySpec } from '../../src/layer/tar-build.ts';
import { applyLayer } from '../../src/layer/tar-apply.ts';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { RealHost } from '../../src/host/host.ts';
import { chainIds } from '../../src/core/chain-id.ts';
import type { Digest } from '../../src/core/digest.ts';

const isRoot = process.getuid?.() === 0;
const hasUmoci = (() => {
  try {
    execFileSync('umoci', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
const skip = (!isRoot && 'needs root') || (!hasUmoci && 'needs umoci');
const host = new RealHost();
let base: string;
let mountedAt: string | undefined;

const t = new Date('2022-02-02T02:02:02Z');
const layers: TarEntrySpec[][] = [
  [
    { name: 'bin/', type: 'directory', mtime: t },
    { name: 'bin/a', body: 'A1', mode: 0o755, mtime: t },
    { name: 'bin/b', type: 'link', linkname: 'bin/a', mtime: t },
    { name: 'bin/sh', type: 'symlink', linkname: 'a', mtime: t },
    { name: 'lib/', type: 'directory', mtime: t },
    { name: 'lib/x/', type: 'directory', mtime: t },
    { name: 'lib/x/1', body: '1', mtime: t },
    { name: 'lib/x/2', body: '2', mtime: t },
    { name: 'lib64', type: 'symlink', linkname: 'lib', mtime: t },
    { name: 'etc/', type: 'directory', mtime: t },
    { name: 'etc/keep', body: 'keep', mtime: t },
    { name: 'etc/gone', body: 'gone', mtime: t },
    { name: 'etc/dir/', type: 'directory', mtime: t },
    { name: 'etc/dir/f', body: 'f', mtime: t },
    { name: 'home/', type: 'directory', mode: 0o755, mtime: t },
    { name: 'home/u/', type: 'directory', mode: 0o700, uid: 1000, gid: 1000, mtime: t },
    { name: 'home/u/.profile', body: 'p', uid: 1000, gid: 1000, mode: 0o600, mtime: t },
    { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: t },
    { name: 'usr/bin/su', body: 'su', mode: 0o4755, mtime: t },
    { name: 'usr/bin/wall', body: 'wall', mode: 0o2755, gid: 5, mtime: t },
  ],
  [
    { name: 'etc/', type: 'directory', mtime: t },
    { name: 'etc/.wh.gone', mtime: t },
    { name: 'etc/.wh.dir', mtime: t },
    { name: 'etc/new', body: 'new', mtime: t },
    { name: 'lib/', type: 'directory', mtime: t },
    { name: 'lib/x/', type: 'directory', mtime: t },
    { name: 'lib/x/.wh..wh..opq', mtime: t },
    { name: 'lib/x/3', body: '3', mtime: t },
    { name: 'bin/', type: 'directory', mtime: t },
    { name: 'bin/a', body: 'A2', mode: 0o755, mtime: t },
    { name: 'dev/', type: 'directory', mtime: t },
    { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666, mtime: t },
    { name: 'dev/fifo', type: 'fifo', mode: 0o600, mtime: t },
  ],
  [
    { name: 'etc/', type: 'directory', mtime: t },
    { name: 'etc/dir/', type: 'directory', mtime: t },
    { name: 'etc/dir/again', body: 'again', mtime: t },
    { name: '.wh.home', mtime: t },
    { name: 'home/', type: 'directory', mode: 0o755, mtime: t },
    { name: 'home/v', body: 'v', mtime: t },
    { name: 'bin/', type: 'directory', mtime: t },
    { name: 'bin/sh', type: 'symlink', linkname: '/bin/a', mtime: t },
    { name: 'usr/bin/.wh.wall', mtime: t },
  ],
];

before(async () => {
  if (skip) return;
  base = await mkdtemp(join(tmpdir(), 'berth-oracle-'));
});

after(async () => {
  if (skip) return;
  if (mountedAt) await host.unmount(mountedAt).catch(() => {});
  await rm(base, { recursive: true, force: true });
});

function sha(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

async function writeLayout(dir: string, tars: Buffer[]): Promise<void> {
  await mkdir(join(dir, 'blobs/sha256'), { recursive: true });
  const blob = async (b: Buffer) => {
    const h = sha(b);
    await writeFile(join(dir, 'blobs/sha256', h), b);
    return { digest: `sha256:${h}`, size: b.length };
  };
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: {},
    rootfs: { type: 'layers', diff_ids: tars.map((x) => `sha256:${sha(x)}`) },
  }));
  const cfg = await blob(config);
  const layerDescs = [];
  for (const x of tars) layerDescs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...(await blob(x)) });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: layerDescs,
  }));
  const man = await blob(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...man, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }],
  }));
}

/** A comparable description of a tree: one line per entry. */
async function describe(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string, rel: string): Promise<void> => {
    for (const name of (await readdir(dir)).sort()) {
      const p = join(dir, name);
      const r = rel ? `${rel}/${name}` : name;
      const st = await lstat(p);
      const own = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out.push(`d ${r} ${own}`);
        await walk(p, r);
      } else if (st.isFile()) out.push(`f ${r} ${own} ${sha(await readFile(p))} ${st.mtime.toISOString()}`);
      else if (st.isSymbolicLink()) out.push(`l ${r} -> ${await readlink(p)}`);
      else if (st.isCharacterDevice()) out.push(`c ${r} ${own} ${st.rdev}`);
      else if (st.isBlockDevice()) out.push(`b ${r} ${own} ${st.rdev}`);
      else if (st.isFIFO()) out.push(`p ${r} ${own}`);
      else out.push(`? ${r}`);
    }
  };
  await walk(root, '');
  return out;
}

test('umoci, delete-mode apply and the mounted overlay agree', { skip }, async () => {
  const tars = await Promise.all(layers.map((l) => buildTar(l)));

  const layout = join(base, 'layout');
  await writeLayout(layout, tars);
  const bundle = join(base, 'bundle');
  execFileSync('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { stdio: 'ignore' });
  const reference = await describe(join(bundle, 'rootfs'));

  const flat = join(base, 'flat');
  await mkdir(flat);
  for (const x of tars) await applyLayer(flat, Readable.from([x]), { mode: 'delete', host });
  const flattened = await describe(flat);

  const snap = new OverlaySnapshotter(join(base, 'snapshots'), host);
  await snap.init();
  const chain = chainIds(tars.map((x) => `sha256:${sha(x)}` as Digest));
  for (const [i, x] of tars.entries()) await snap.unpack(chain[i] as Digest, i ? chain[i - 1] : undefined, Readable.from([x]));
  const [m] = await snap.prepare('oracle', chain[2]);
  assert.ok(m);
  const merged = join(base, 'merged');
  await mkdir(merged);
  await host.mount(m.source, merged, m.type, m.options);
  mountedAt = merged;
  let overlay: string[];
  try {
    overlay = await describe(merged);
  } finally {
    await host.unmount(merged);
    mountedAt = undefined;
  }

  // The roots themselves are not compared (umoci makes its own); every entry below must agree.
  assert.ok(reference.length >= 20, reference.join('\n'));
  assert.deepEqual(flattened, reference);
  assert.deepEqual(overlay, reference);
  // And the fixture exercised what it claims to.
  assert.ok(reference.some((l) => l.startsWith('c dev/null')));
  assert.ok(!reference.some((l) => l.includes('etc/gone')));
  assert.ok(reference.includes('d lib/x 755 0:0'));
  assert.ok(!reference.some((l) => l.startsWith('f lib/x/1')));
  assert.ok(!reference.some((l) => l.includes('home/u')));
  assert.ok(!reference.some((l) => l.includes('usr/bin/wall')));
});
