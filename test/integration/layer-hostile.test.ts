// The hostile corpus through the real path, as root: OverlaySnapshotter.unpack with RealHost
// (real mknod, real setfattr, real chown). Symlinks in the layers point at a "victim" directory
// by relative and by absolute host path; whiteouts, opaque markers, devices, xattrs and file
// writes go through them. Whatever each layer does, the victim stays byte-for-byte the same,
// with no new entries, modes, owners or xattrs, and refused layers leave nothing committed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, readdir, stat, readFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { buildTar, type TarEntrySpec } from '../../src/layer/tar-build.ts';
import { RealHost } from '../../src/host/host.ts';
import { isKind } from '../../src/core/errors.ts';
import type { Digest } from '../../src/core/digest.ts';

const isRoot = process.getuid?.() === 0;
const host = new RealHost();
let base: string;
let victim: string;
let snap: OverlaySnapshotter;
let snapRoot: string;

before(async () => {
  if (!isRoot) return;
  base = await mkdtemp(join(tmpdir(), 'berth-hostile-'));
  victim = join(base, 'victim');
  await mkdir(join(victim, 'sub'), { recursive: true });
  await writeFile(join(victim, 'hello'), 'host file\n');
  await writeFile(join(victim, 'sub/passwd'), 'root:x:0:0\n');
  await chmod(join(victim, 'hello'), 0o644);
  snapRoot = join(base, 'snapshots');
  snap = new OverlaySnapshotter(snapRoot, host);
  await snap.init();
});

after(async () => {
  if (!isRoot) return;
  await rm(base, { recursive: true, force: true });
});

function fingerprint(): string {
  // Names, types, modes, owners, sizes, contents and every xattr of the victim tree.
  const find = execFileSync('find', [victim, '-printf', '%P %y %m %U:%G %s\\n']).toString();
  const attrs = execFileSync('getfattr', ['-R', '-h', '-d', '-m', '-', '--absolute-names', victim]).toString();
  return find + attrs;
}

let n = 0;
const id = (): Digest => `sha256:${createHash('sha256').update(`hostile ${++n}`).digest('hex')}`;

async function unpack(entries: TarEntrySpec[], parent?: Digest): Promise<Digest> {
  const chain = id();
  await snap.unpack(chain, parent, Readable.from([await buildTar(entries)]));
  return chain;
}

test('hostile layers never touch the host outside the snapshot root', { skip: !isRoot && 'needs root' }, async () => {
  const before = fingerprint();
  const rel = relative(join(snapRoot, 'tmp', 'unpack-x', 'fs'), victim); // ../../../../victim
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');

  // Layer 0 plants symlinks to the victim, relative (climbing out) and by absolute host path.
  const l0 = await unpack([
    { name: 'rel', type: 'symlink', linkname: rel },
    { name: 'abs', type: 'symlink', linkname: victim },
    { name: 'dotdot', type: 'symlink', linkname: '../../../../../../../../' },
  ]);
  // Layer 1 writes, whiteouts, opaque dirs, devices and xattrs through them, in the same layer
  // where it plants more.
  await unpack([
    { name: 'rel/hello', body: 'pwn', mode: 0o4777 },
    { name: 'abs/sub/passwd', body: 'pwn' },
    { name: 'abs/.wh.hello' },
    { name: 'rel/.wh.sub' },
    { name: 'abs/sub/.wh..wh..opq' },
    { name: 'abs/dev', type: 'character-device', devmajor: 1, devminor: 3 },
    { name: 'abs/fifo', type: 'fifo' },
    { name: 'abs/capped', body: 'x', xattrs: { 'security.capability': cap, 'user.x': 'y' } },
    { name: 'abs/', type: 'directory', mode: 0o777, uid: 1234, gid: 1234 },
    { name: 'here', type: 'symlink', linkname: victim },
    { name: 'here/hello', body: 'pwn' },
    { name: 'here/.wh.hello' },
    { name: 'chain1', type: 'symlink', linkname: 'chain2' },
    { name: 'chain2', type: 'symlink', linkname: 'dotdot' },
    { name: 'dotdot', type: 'symlink', linkname: '/../../..' },
    { name: 'chain1' + victim + '/hello', body: 'pwn' },
    // Deferred directory metadata, xattrs and opaque markers recorded before a parent is
    // replaced by a symlink to the victim.
    { name: 'q/', type: 'directory' },
    { name: 'q/sub/', type: 'directory', mode: 0o777, uid: 4321, xattrs: { 'user.pwn': '1', 'security.capability': cap } },
    { name: 'q/sub/.wh..wh..opq' },
    { name: 'q', type: 'symlink', linkname: victim },
  ], l0);
  assert.equal(fingerprint(), before);

  // Refused outright: nothing committed, nothing left in tmp/.
  const refusedCases: TarEntrySpec[][] = [
    [{ name: '../victim/hello', body: 'pwn' }],
    [{ name: 'a/../../victim/hello', body: 'pwn' }],
    [{ name: 'h', type: 'link', linkname: '../victim/hello' }],
    [{ name: 'h', type: 'link', linkname: 'rel/hello' }],
    [{ name: 'x/.wh.' }],
    [{ name: 'x/.wh..' }],
    [{ name: 'ok', body: 'x' }, { name: 'h', type: 'link', linkname: victim + '/hello' }],
  ];
  for (const entries of refusedCases) {
    const chain = id();
    await assert.rejects(snap.unpack(chain, l0, Readable.from([await buildTar(entries)])), (e: unknown) => isKind(e, 'InvalidArgument'), JSON.stringify(entries));
    assert.equal(await snap.stat(chain), undefined);
  }
  assert.deepEqual(await readdir(join(snapRoot, 'tmp')), []);
  assert.equal(fingerprint(), before);
  assert.equal(await readFile(join(victim, 'hello'), 'utf8'), 'host file\n');
  assert.equal((await stat(join(victim, 'hello'))).mode & 0o7777, 0o644);
});
