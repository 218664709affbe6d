// OverlaySnapshotter without mounting: layout, atomic unpack, dedupe, mount options, commit,
// remove, crash debris. FakeHost records the whiteout/xattr calls (nothing needs root here).
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir, readFile, writeFile, mkdir, readlink, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { existsSync } from 'node:fs';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { buildTar, type TarEntrySpec } from '../../src/layer/tar-build.ts';
import { FakeHost } from '../../src/host/host.ts';
import { chainIds } from '../../src/core/chain-id.ts';
import { sha256, type Digest } from '../../src/core/digest.ts';
import { isKind } from '../../src/core/errors.ts';

let root: string;
let host: FakeHost;
let snap: OverlaySnapshotter;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'berth-snap-'));
  host = new FakeHost();
  snap = new OverlaySnapshotter(root, host);
  await snap.init();
});
afterEach(() => rm(root, { recursive: true, force: true }));

async function tarOf(entries: TarEntrySpec[]): Promise<Readable> {
  return Readable.from([await buildTar(entries)]);
}

const ids = chainIds([sha256('l0'), sha256('l1'), sha256('l2')]) as [Digest, Digest, Digest];

async function unpack3(): Promise<void> {
  await snap.unpack(ids[0], undefined, await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', body: 'a0' }, { name: 'etc/b', body: 'b0' }]));
  await snap.unpack(ids[1], ids[0], await tarOf([{ name: 'etc/.wh.b' }, { name: 'etc/c', body: 'c1' }]));
  await snap.unpack(ids[2], ids[1], await tarOf([{ name: 'etc/a', body: 'a2' }]));
}

test('unpack commits layers keyed by chain ID; stat/list report them', async () => {
  await unpack3();
  const info = await snap.stat(ids[1]);
  assert.equal(info?.kind, 'committed');
  assert.equal(info?.parent, ids[0]);
  assert.equal(info?.size, 2);
  assert.equal(await snap.stat(sha256('nope')), undefined);
  assert.deepEqual((await snap.list()).map((s) => s.name).sort(), [...ids].sort());
  // The whiteout went to the Host as a c 0:0 device in layer 1's own diff (applied in tmp/).
  const mk = host.calls.filter((c) => c.op === 'mknod');
  assert.equal(mk.length, 1);
  assert.match(String(mk[0]?.args[0]), /\/tmp\/unpack-[0-9a-f]+\/fs\/etc\/b$/);
  assert.deepEqual(mk[0]?.args.slice(1), ['c', 0, 0, 0]);
  assert.equal(await readdir(join(root, 'tmp')).then((l) => l.length), 0);
});

test('prepare mounts lowerdir=top:...:bottom through short links; no parent gives a bind mount', async () => {
  await unpack3();
  const [m] = await snap.prepare('c1', ids[2]);
  assert.ok(m);
  assert.equal(m.type, 'overlay');
  const lower = m.options.find((o) => o.startsWith('lowerdir='))?.slice('lowerdir='.length).split(':') ?? [];
  assert.equal(lower.length, 3);
  const targets = await Promise.all(lower.map((l) => readlink(l)));
  const hex = ids.map((d) => d.slice(7));
  assert.deepEqual(targets, [hex[2], hex[1], hex[0]].map((h) => `../committed/${h}/fs`));
  assert.ok(m.options.includes(`upperdir=${snap.upperDir('c1')}`));
  assert.ok(m.options.some((o) => o.startsWith('workdir=')));
  if (existsSync('/sys/module/overlay/parameters/redirect_dir')) assert.ok(m.options.includes('redirect_dir=off'));
  if (existsSync('/sys/module/overlay/parameters/index')) assert.ok(m.options.includes('index=off'));
  assert.deepEqual(await snap.mounts('c1'), [m]);

  const [b] = await snap.prepare('scratch', undefined);
  assert.deepEqual(b, { type: 'bind', source: snap.upperDir('scratch'), options: ['rbind', 'rw'] });
  await assert.rejects(snap.prepare('c1', ids[2]), (e: unknown) => isKind(e, 'AlreadyExists'));
  await assert.rejects(snap.prepare('x', sha256('missing')), (e: unknown) => isKind(e, 'NotFound'));
  await assert.rejects(snap.prepare('../evil', undefined), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('prepare with syncLater: mountable at once, durable() once the fsyncs are done; remove waits for them', async () => {
  await unpack3();
  const [m] = await snap.prepare('later', ids[2], { syncLater: true });
  assert.ok(m);
  // Usable right away: its directories exist and it is listed and mountable.
  assert.deepEqual(await snap.mounts('later'), [m]);
  assert.ok(existsSync(snap.upperDir('later')));
  await snap.durable('later');
  const meta = JSON.parse(await readFile(join(root, 'active', 'later', 'meta.json'), 'utf8'));
  assert.equal(meta.key, 'later');
  assert.equal(meta.parent, ids[2]);
  // A remove right after a prepare (fsyncs in flight) leaves nothing behind.
  await snap.prepare('gone', ids[2], { syncLater: true });
  await snap.remove('gone');
  await snap.durable('gone');
  assert.equal(existsSync(join(root, 'active', 'gone')), false);
  // Nothing in flight: durable() of a snapshot prepared without syncLater resolves too.
  await snap.prepare('now', ids[2]);
  await snap.durable('now');
});

test('mount options for 100 layers stay under the 4096-byte page', async () => {
  const diff = Array.from({ length: 100 }, (_, i) => sha256(`layer ${i}`));
  const chain = chainIds(diff);
  let parent: Digest | undefined;
  for (const [i, id] of chain.entries()) {
    await snap.unpack(id, parent, await tarOf([{ name: `f${i}`, body: String(i) }]));
    parent = id;
  }
  const [m] = await snap.prepare('deep', parent);
  assert.ok(m);
  const data = m.options.join(',');
  assert.ok(Buffer.byteLength(data) < 4096, `${Buffer.byteLength(data)} bytes`);
  assert.equal(m.options[0]?.split(':').length, 100);
});

test('a failed beforeCommit or a bad tar leaves nothing visible', async () => {
  await assert.rejects(
    snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]), {
      beforeCommit: async () => {
        throw new Error('digest mismatch');
      },
    }),
    /digest mismatch/,
  );
  await assert.rejects(snap.unpack(ids[0], undefined, await tarOf([{ name: '../x', body: 'x' }])), (e: unknown) => isKind(e, 'InvalidArgument'));
  await assert.rejects(snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]), { maxBytes: 0 }), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.equal(await snap.stat(ids[0]), undefined);
  assert.deepEqual(await readdir(join(root, 'committed')), []);
  assert.deepEqual(await readdir(join(root, 'l')), []);
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
  await assert.rejects(snap.unpack(ids[1], ids[0], await tarOf([])), (e: unknown) => isKind(e, 'NotFound'));
});

test('concurrent unpacks of one chain ID apply once', async () => {
  let applied = 0;
  const mk = async () =>
    snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]), {
      beforeCommit: async () => {
        applied++;
        await new Promise((r) => setTimeout(r, 20));
      },
    });
  const results = await Promise.all([mk(), mk(), mk()]);
  assert.equal(applied, 1);
  assert.deepEqual(new Set(results.map((r) => r.name)), new Set([ids[0]]));
  assert.equal((await readdir(join(root, 'committed'))).length, 1);
  // A later unpack of an existing layer drains its stream and returns the same snapshot.
  const again = await snap.unpack(ids[0], undefined, await tarOf([{ name: 'b', body: 'y' }]));
  assert.equal(again.name, ids[0]);
});

test('a waiter retries when the first unpack of a chain ID fails', async () => {
  const bad = snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]), {
    beforeCommit: async () => {
      throw new Error('bad blob');
    },
  });
  const good = snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]));
  await assert.rejects(bad, /bad blob/);
  assert.equal((await good).name, ids[0]);
});

test('commit turns an active snapshot into a committed layer; remove respects dependents', async () => {
  await unpack3();
  await snap.prepare('build', ids[2]);
  await writeFile(join(snap.upperDir('build'), 'new-file'), 'built');
  const built = chainIds([sha256('l0'), sha256('l1'), sha256('l2'), sha256('built')])[3] as Digest;
  const info = await snap.commit('build', built);
  assert.equal(info.parent, ids[2]);
  assert.equal(info.size, 5);
  assert.ok(!(await snap.list()).some((s) => s.name === 'build'));
  await assert.rejects(snap.mounts('build'), (e: unknown) => isKind(e, 'NotFound'));
  const [m] = await snap.prepare('run', built);
  assert.equal(m?.options[0]?.split(':').length, 4);

  await assert.rejects(snap.remove(ids[2]), (e: unknown) => isKind(e, 'FailedPrecondition'));
  await assert.rejects(snap.remove(built), (e: unknown) => isKind(e, 'FailedPrecondition'));
  await snap.remove('run');
  await snap.remove(built);
  await snap.remove(ids[2]);
  await snap.remove(ids[1]);
  await snap.remove(ids[0]);
  await assert.rejects(snap.remove(ids[0]), (e: unknown) => isKind(e, 'NotFound'));
  assert.deepEqual(await snap.list(), []);
  for (const d of ['committed', 'active', 'l', 'tmp']) assert.deepEqual(await readdir(join(root, d)), [], d);
});

test('two active snapshots committed side by side as one chain ID: one layer, both commits succeed', async () => {
  await unpack3();
  await snap.prepare('b1', ids[2]);
  await snap.prepare('b2', ids[2]);
  await writeFile(join(snap.upperDir('b1'), 'same'), 'x');
  await writeFile(join(snap.upperDir('b2'), 'same'), 'x');
  const same = chainIds([sha256('l0'), sha256('l1'), sha256('l2'), sha256('same')])[3] as Digest;
  const [i1, i2] = await Promise.all([snap.commit('b1', same), snap.commit('b2', same)]);
  assert.deepEqual(i1, i2);
  assert.equal((await snap.list()).filter((x) => x.name === same).length, 1);
  assert.ok(!(await snap.list()).some((x) => x.name === 'b1' || x.name === 'b2'));
  await snap.remove(same);
  for (const id of [ids[2]!, ids[1]!, ids[0]!]) await snap.remove(id);
  for (const d of ['committed', 'active', 'l', 'tmp']) assert.deepEqual(await readdir(join(root, d)), [], d);
});

test('init sweeps crash debris and keeps complete snapshots', async () => {
  await unpack3();
  await snap.prepare('keep', ids[2]);
  // Debris: a half-done unpack, a committed dir without metadata, an active dir without work/,
  // a dangling link.
  await mkdir(join(root, 'tmp/unpack-dead/fs/etc'), { recursive: true });
  await mkdir(join(root, 'committed', 'f'.repeat(64), 'fs'), { recursive: true });
  await mkdir(join(root, 'active/half/fs'), { recursive: true });
  await writeFile(join(root, 'active/half/meta.json'), JSON.stringify({ key: 'half', created: '' }));
  await writeFile(join(root, 'l', 'zzzzzzzzzz'), '');
  // Metadata is checked on read: a parent that is not a digest never becomes a path.
  const evil = 'e'.repeat(64);
  await mkdir(join(root, 'committed', evil, 'fs'), { recursive: true });
  await writeFile(join(root, 'committed', evil, 'meta.json'), JSON.stringify({ chainId: `sha256:${evil}`, parent: '../../../etc', short: 'abcdefghij', size: 0, created: '' }));
  const again = new OverlaySnapshotter(root, host);
  await again.init();
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
  assert.deepEqual((await again.list()).map((s) => s.name).sort(), [...ids, 'keep'].sort());
  assert.equal((await readdir(join(root, 'l'))).length, 3);
  assert.equal((await readdir(join(root, 'committed'))).length, 3);
  const [m] = await again.mounts('keep');
  for (const l of m?.options[0]?.slice('lowerdir='.length).split(':') ?? []) assert.ok((await lstat(l)).isSymbolicLink());
  const meta = JSON.parse(await readFile(join(root, 'committed', ids[0].slice(7), 'meta.json'), 'utf8'));
  assert.equal(meta.chainId, ids[0]);
});

/** A promise with its resolve/reject exposed. */
function gate(): { promise: Promise<void>; open: () => void; fail: (e: Error) => void } {
  let open!: () => void;
  let fail!: (e: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    open = res;
    fail = rej;
  });
  return { promise, open, fail };
}

test('a child applies while its parent is still unpacking and is published only after it', async () => {
  const parentGate = gate();
  const parent = snap.unpack(ids[0], undefined, await tarOf([{ name: 'etc/', type: 'directory', mode: 0o750, mtime: new Date(1_600_000_000_000) }, { name: 'etc/a', body: 'a0' }]), {
    beforeCommit: () => parentGate.promise,
  });
  // etc/ is implied by the child's entry, not listed: it must end up with the parent's attributes
  // (which only the end of the apply waits for).
  const child = snap.unpack(ids[1], ids[0], await tarOf([{ name: 'etc/c', body: 'c1' }]), { parentCommitted: parent });
  // The child's entries land in its temp dir while the parent is uncommitted; it is not visible.
  const childFile = async () => {
    for (const d of await readdir(join(root, 'tmp'))) {
      if (existsSync(join(root, 'tmp', d, 'fs', 'etc', 'c'))) return true;
    }
    return false;
  };
  while (!(await childFile())) await new Promise((r) => setTimeout(r, 5));
  assert.equal(await snap.stat(ids[0]), undefined);
  assert.equal(await snap.stat(ids[1]), undefined);
  parentGate.open();
  const [p, c] = await Promise.all([parent, child]);
  assert.equal(p.name, ids[0]);
  assert.equal(c.parent, ids[0]);
  const etc = await lstat(join(root, 'committed', ids[1].slice(7), 'fs', 'etc'));
  assert.equal(etc.mode & 0o7777, 0o750);
  assert.equal(etc.mtimeMs, 1_600_000_000_000);
  assert.equal(await readFile(join(root, 'committed', ids[1].slice(7), 'fs', 'etc', 'c'), 'utf8'), 'c1');
});

test('a hardlink to a lower file waits for the parent, then copies it up', async () => {
  const parentGate = gate();
  const parent = snap.unpack(ids[0], undefined, await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', body: 'a0' }]), {
    beforeCommit: () => parentGate.promise,
  });
  const child = snap.unpack(ids[1], ids[0], await tarOf([{ name: 'etc/', type: 'directory' }, { name: 'etc/a2', type: 'link', linkname: 'etc/a' }]), { parentCommitted: parent });
  setTimeout(() => parentGate.open(), 20);
  await child;
  const fs1 = join(root, 'committed', ids[1].slice(7), 'fs');
  assert.equal(await readFile(join(fs1, 'etc', 'a2'), 'utf8'), 'a0');
  const [a, a2] = await Promise.all([lstat(join(fs1, 'etc', 'a')), lstat(join(fs1, 'etc', 'a2'))]);
  assert.equal(a.ino, a2.ino);
  assert.ok(await snap.stat(ids[0]));
});

test('a child whose parent fails is discarded, whatever it applied', async () => {
  const parent = snap.unpack(ids[0], undefined, await tarOf([{ name: 'a', body: 'x' }]), {
    beforeCommit: async () => {
      await new Promise((r) => setTimeout(r, 20));
      throw new Error('bad parent blob');
    },
  });
  const child = snap.unpack(ids[1], ids[0], await tarOf([{ name: 'b', body: 'y' }]), { parentCommitted: parent });
  const grand = snap.unpack(ids[2], ids[1], await tarOf([{ name: 'c', body: 'z' }]), { parentCommitted: child });
  await assert.rejects(parent, /bad parent blob/);
  await assert.rejects(child, (e: unknown) => isKind(e, 'NotFound'));
  await assert.rejects(grand, (e: unknown) => isKind(e, 'NotFound'));
  assert.deepEqual(await readdir(join(root, 'committed')), []);
  assert.deepEqual(await readdir(join(root, 'l')), []);
  assert.deepEqual(await readdir(join(root, 'tmp')), []);
  // Without a parentCommitted promise, a parent neither committed nor in flight is not found.
  await assert.rejects(snap.unpack(ids[1], ids[0], await tarOf([])), (e: unknown) => isKind(e, 'NotFound'));
});
