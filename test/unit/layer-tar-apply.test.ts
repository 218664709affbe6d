// Layer apply without root: 'delete' mode on temp dirs, and 'overlay' mode against FakeHost to
// check the whiteout/opaque/xattr calls. The hostile corpus follows security.md 1.A and 1.B
// (moby's TestUntarInvalidFilenames, ...InvalidHardlink, ...InvalidSymlink, malicious symlinks,
// two-archive CVE-2025-45582, stereoscope's bare `.wh.`). Every hostile case asserts that the
// "victim" directory next to the root is untouched.
import { test, describe, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, readFile, readdir, lstat, readlink, rm, symlink, stat, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { applyLayer as applyLocal, type ApplyOptions } from '../../src/layer/tar-apply.ts';
import { applyLayerInWorker } from '../../src/layer/worker-apply.ts';

// test/unit/layer-worker-apply.test.ts runs this whole suite again through the worker thread.
const applyLayer = process.env.BERTH_TEST_APPLY_IN_WORKER === '1' ? applyLayerInWorker : applyLocal;
import { buildTar, type TarEntrySpec } from '../../src/layer/tar-build.ts';
import { autoDecompress } from '../../src/layer/compression.ts';
import { FakeHost } from '../../src/host/host.ts';
import { isKind, BerthError, dataLoss } from '../../src/core/errors.ts';

let base: string;
let root: string;
let victim: string;
let host: FakeHost;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'berth-layer-'));
  root = join(base, 'root');
  victim = join(base, 'victim');
  await mkdir(root);
  await mkdir(victim);
  await writeFile(join(victim, 'hello'), 'host file\n');
  host = new FakeHost();
});

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function apply(entries: TarEntrySpec[], opts: Partial<ApplyOptions> = {}) {
  const tar = await buildTar(entries);
  return applyLayer(root, Readable.from([tar]), { mode: 'delete', host, sameOwner: false, ...opts });
}

async function victimUntouched(): Promise<void> {
  assert.deepEqual((await readdir(victim)).sort(), ['hello']);
  assert.equal(await readFile(join(victim, 'hello'), 'utf8'), 'host file\n');
  assert.equal((await stat(join(victim, 'hello'))).nlink, 1);
  assert.equal((await stat(join(victim, 'hello'))).mode & 0o7777, 0o644);
}

async function refused(p: Promise<unknown>, entry: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isKind(err, 'InvalidArgument'), `want InvalidArgument, got ${String(err)}`);
    const msg = (err as BerthError).message;
    assert.match(msg, /layer/);
    assert.ok(msg.includes(JSON.stringify(entry).slice(1, -1)), `message ${msg} names ${entry}`);
    return true;
  });
}

const exists = async (p: string) => lstat(p).then(() => true, () => false);

describe('applyLayer: entry types and attributes', () => {
  test('files, directories, symlinks, hardlinks, modes and times', async () => {
    const t = new Date('2020-01-02T03:04:05Z');
    const res = await apply([
      { name: 'bin/', type: 'directory', mode: 0o755, mtime: t },
      { name: 'bin/su', body: 'su', mode: 0o4755 },
      { name: 'bin/sgid', body: 'x', mode: 0o2711 },
      { name: 'tmp/', type: 'directory', mode: 0o1777, mtime: t },
      { name: 'tmp/f', body: 'data' },
      { name: 'etc/', type: 'directory' },
      { name: 'etc/mtab', type: 'symlink', linkname: '/proc/mounts' },
      { name: 'bin/su2', type: 'link', linkname: 'bin/su' },
      { name: './usr/lib/deep/file', body: 'implicit parents' },
    ]);
    assert.equal(res.entries, 9);
    assert.equal(res.bytes, 2 + 1 + 4 + 16);
    assert.equal((await stat(join(root, 'bin/su'))).mode & 0o7777, 0o4755);
    assert.equal((await stat(join(root, 'bin/sgid'))).mode & 0o7777, 0o2711);
    assert.equal((await stat(join(root, 'tmp'))).mode & 0o7777, 0o1777);
    // Absolute symlink targets are preserved verbatim.
    assert.equal(await readlink(join(root, 'etc/mtab')), '/proc/mounts');
    const a = await stat(join(root, 'bin/su'));
    const b = await stat(join(root, 'bin/su2'));
    assert.equal(a.ino, b.ino);
    // Directory mtimes are set after their children were created.
    assert.equal((await stat(join(root, 'bin'))).mtime.getTime(), t.getTime());
    assert.equal((await stat(join(root, 'tmp'))).mtime.getTime(), t.getTime());
    assert.equal(await readFile(join(root, 'usr/lib/deep/file'), 'utf8'), 'implicit parents');
    assert.equal((await stat(join(root, 'usr/lib'))).mode & 0o777, 0o755);
  });

  test('the root entry "./" sets the root directory attributes', async () => {
    const t = new Date('2019-05-05T00:00:00Z');
    await apply([{ name: './', type: 'directory', mode: 0o750, mtime: t }, { name: './a', body: 'x' }]);
    const st = await stat(root);
    assert.equal(st.mode & 0o777, 0o750);
    assert.equal(st.mtime.getTime(), t.getTime());
  });

  test('long names (PAX path) and utf-8 names', async () => {
    const long = 'd'.repeat(120) + '/' + 'f'.repeat(150);
    await apply([{ name: long, body: 'long' }, { name: 'ünïcødé', body: 'u' }]);
    assert.equal(await readFile(join(root, long), 'utf8'), 'long');
    assert.equal(await readFile(join(root, 'ünïcødé'), 'utf8'), 'u');
  });

  test('duplicate entries: last wins, a file replaces a dir, a dir replaces a symlink', async () => {
    await apply([
      { name: 'f', body: 'one' },
      { name: 'f', body: 'two' },
      { name: 'd/', type: 'directory' },
      { name: 'd/child', body: 'c' },
      { name: 'd', body: 'now a file' },
      { name: 's', type: 'symlink', linkname: '../victim' },
      { name: 's/', type: 'directory', mode: 0o700 },
      { name: 's/inside', body: 'in' },
    ]);
    assert.equal(await readFile(join(root, 'f'), 'utf8'), 'two');
    assert.ok((await lstat(join(root, 'd'))).isFile());
    assert.equal(await readFile(join(root, 'd'), 'utf8'), 'now a file');
    const s = await lstat(join(root, 's'));
    assert.ok(s.isDirectory() && !s.isSymbolicLink());
    assert.equal(await readFile(join(root, 's/inside'), 'utf8'), 'in');
    await victimUntouched();
  });

  test('devices and fifos go through Host.mknod', async () => {
    await apply([
      { name: 'dev/', type: 'directory' },
      { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'dev/sda', type: 'block-device', devmajor: 8, devminor: 0, mode: 0o660 },
      { name: 'run/fifo', type: 'fifo', mode: 0o600 },
    ]);
    const mk = host.calls.filter((c) => c.op === 'mknod').map((c) => c.args);
    assert.deepEqual(mk, [
      [join(root, 'dev/null'), 'c', 1, 3, 0o666],
      [join(root, 'dev/sda'), 'b', 8, 0, 0o660],
      [join(root, 'run/fifo'), 'p', 0, 0, 0o600],
    ]);
  });

  test('xattrs are set byte-exact, batched, and overlay xattrs from the tar are dropped', async () => {
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex'); // cap_net_bind_service
    await apply([
      { name: 'ping', body: 'x', xattrs: { 'security.capability': cap } },
      { name: 'a', body: 'a', xattrs: { 'user.k': 'v' } },
      { name: 'b', body: 'b', xattrs: { 'user.k': 'v', 'trusted.overlay.opaque': 'y', 'trusted.overlay.redirect': '/x' } },
    ]);
    const calls = host.calls.filter((c) => c.op === 'setxattr').map((c) => c.args);
    assert.equal(calls.length, 2);
    const capCall = calls.find((c) => c[1] === 'security.capability');
    assert.ok(capCall);
    assert.deepEqual(capCall[0], [join(root, 'ping')]);
    assert.ok(Buffer.from(capCall[2] as Uint8Array).equals(cap));
    const userCall = calls.find((c) => c[1] === 'user.k');
    assert.ok(userCall);
    assert.deepEqual(userCall[0], [join(root, 'a'), join(root, 'b')]);
    assert.ok(!calls.some((c) => String(c[1]).startsWith('trusted.overlay')));
    // PAX-carrying entries keep their mtime (the ustar field of a PAX entry once overflowed).
    assert.equal((await stat(join(root, 'ping'))).mtime.getTime(), 1_700_000_000_000);
  });
});

describe('applyLayer: hostile names (security.md 1.A)', () => {
  test('relative names that climb out are refused', async () => {
    await refused(apply([{ name: '../victim/x', body: 'pwn' }]), '../victim/x');
    await refused(apply([{ name: 'a/../../victim/hello', body: 'pwn' }]), 'a/../../victim/hello');
    await victimUntouched();
  });

  test('absolute names are confined to the root', async () => {
    await apply([
      { name: '/etc/x', body: 'abs' },
      { name: '/../victim/hello', body: 'clamped' },
    ]);
    assert.equal(await readFile(join(root, 'etc/x'), 'utf8'), 'abs');
    assert.equal(await readFile(join(root, 'victim/hello'), 'utf8'), 'clamped');
    await victimUntouched();
  });

  test('empty names and NUL bytes are refused', async () => {
    await refused(apply([{ name: 'ok\0../../victim/hello', body: 'x', pax: { comment: 'forces PAX path' } }]), 'ok\0../../victim/hello');
    await refused(apply([{ name: '', body: 'x' }]), '');
    await refused(apply([{ name: 'l', type: 'symlink', linkname: 'a\0b', pax: { linkpath: 'a\0b' } }]), 'l');
    await victimUntouched();
  });

  test('a symlink planted earlier in the layer is not written through to the host', async () => {
    await apply([
      { name: 'loophole', type: 'symlink', linkname: '../victim' },
      { name: 'loophole/hello', body: 'pwn' },
      { name: 'abs', type: 'symlink', linkname: '/' },
      { name: 'abs/victim/hello', body: 'pwn2' },
      { name: 'dotdot', type: 'symlink', linkname: '../../../../../../' },
      { name: 'dotdot/etc/passwd', body: 'pwn3' },
    ]);
    // All confined: the symlinks resolve with the root as "/".
    assert.equal(await readFile(join(root, 'victim/hello'), 'utf8'), 'pwn2');
    assert.equal(await readFile(join(root, 'etc/passwd'), 'utf8'), 'pwn3');
    await victimUntouched();
  });

  test('two-archive attack (CVE-2025-45582): a later layer writes through an earlier symlink', async () => {
    await apply([{ name: 'x', type: 'symlink', linkname: '../../victim' }]);
    await apply([{ name: 'x/hello', body: 'pwn' }, { name: 'x/new', body: 'pwn' }]);
    assert.equal(await readFile(join(root, 'victim/hello'), 'utf8'), 'pwn');
    await victimUntouched();
  });

  test('symlink chains stay inside the root', async () => {
    await apply([
      { name: 'a', type: 'symlink', linkname: 'b' },
      { name: 'b', type: 'symlink', linkname: 'c/../../..' },
      { name: 'c/', type: 'directory' },
      { name: 'a/victim/hello', body: 'chain' },
    ]);
    assert.equal(await readFile(join(root, 'victim/hello'), 'utf8'), 'chain');
    await victimUntouched();
  });

  test('a symlink loop is refused, not followed forever', async () => {
    await refused(apply([
      { name: 'p', type: 'symlink', linkname: 'q' },
      { name: 'q', type: 'symlink', linkname: 'p' },
      { name: 'p/x', body: 'x' },
    ]), 'p/x');
  });

  test('hardlinks to outside the root are refused', async () => {
    await refused(apply([{ name: 'h', type: 'link', linkname: '../victim/hello' }]), 'h');
    // Absolute targets are relative to the layer root: there is no /victim/hello inside it.
    await refused(apply([{ name: 'h', type: 'link', linkname: '/' + join(victim, 'hello').slice(1) }]), 'h');
    await victimUntouched();
  });

  test('a hardlink through a symlinked directory does not reach the host', async () => {
    await refused(apply([
      { name: 'dirlink', type: 'symlink', linkname: '../victim' },
      { name: 'h', type: 'link', linkname: 'dirlink/hello' },
    ]), 'h');
    // Same via an earlier layer.
    await refused(apply([{ name: 'h2', type: 'link', linkname: 'dirlink/hello' }]), 'h2');
    await victimUntouched();
  });

  test('a hardlink to a symlink links the symlink itself', async () => {
    await apply([
      { name: 'sym', type: 'symlink', linkname: '../victim/hello' },
      { name: 'hl', type: 'link', linkname: 'sym' },
    ]);
    const st = await lstat(join(root, 'hl'));
    assert.ok(st.isSymbolicLink());
    assert.equal(st.ino, (await lstat(join(root, 'sym'))).ino);
    await victimUntouched();
  });

  test('a hardlink named like an existing symlink replaces the symlink', async () => {
    await symlink(join(victim, 'hello'), join(root, 'name'));
    await apply([{ name: 'target', body: 'inside' }, { name: 'name', type: 'link', linkname: 'target' }]);
    assert.ok((await lstat(join(root, 'name'))).isFile());
    assert.equal(await readFile(join(root, 'name'), 'utf8'), 'inside');
    await victimUntouched();
  });

  test('a file or directory entry at an existing symlink replaces it', async () => {
    await symlink(join(victim, 'hello'), join(root, 'f'));
    await symlink(victim, join(root, 'd'));
    await apply([{ name: 'f', body: 'mine', mode: 0o4777 }, { name: 'd/', type: 'directory', mode: 0o777 }]);
    assert.equal(await readFile(join(root, 'f'), 'utf8'), 'mine');
    assert.ok((await lstat(join(root, 'd'))).isDirectory());
    await victimUntouched();
  });

  test('CVE-2021-32760: a directory entry never chmods a host directory', async () => {
    await chmod(victim, 0o755);
    await apply([{ name: 'v', type: 'symlink', linkname: '../victim' }]);
    await apply([{ name: 'v/', type: 'directory', mode: 0o4777 }]);
    assert.equal((await stat(victim)).mode & 0o7777, 0o755);
    await victimUntouched();
  });

  test('unsupported entry types are refused', async () => {
    const tar = await buildTar([{ name: 'sparse', body: 'x' }]);
    tar[156] = 'S'.charCodeAt(0); // GNU sparse
    // fix the checksum
    tar.fill(0x20, 148, 156);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += tar[i] as number;
    tar.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
    await refused(applyLayer(root, Readable.from([tar]), { mode: 'delete', host, sameOwner: false }), 'sparse');
  });

  test('PAX-encoded GNU sparse files are refused', async () => {
    await refused(apply([{ name: 'sp', body: 'map+data', pax: { 'GNU.sparse.major': '1', 'GNU.sparse.minor': '0', 'GNU.sparse.realsize': '1099511627776' } }]), 'sp');
    assert.ok(!(await exists(join(root, 'sp'))));
  });

  test('a truncated or garbage tar is refused as InvalidArgument', async () => {
    const tar = await buildTar([{ name: 'f', body: 'x'.repeat(5000) }]);
    await assert.rejects(applyLayer(root, Readable.from([tar.subarray(0, 1500)]), { mode: 'delete', host, sameOwner: false }),
      (e: unknown) => isKind(e, 'InvalidArgument') && /layer/.test((e as Error).message));
    const junk = Buffer.alloc(1024, 0x41);
    await assert.rejects(applyLayer(root, Readable.from([junk]), { mode: 'delete', host, sameOwner: false }),
      (e: unknown) => isKind(e, 'InvalidArgument'));
  });
});

describe('applyLayer: bombs', () => {
  test('entry count limit', async () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({ name: `f${i}`, body: '' }));
    await refused(apply(entries, { maxEntries: 10 }), 'f10');
  });

  test('byte limit (declared and streamed)', async () => {
    await refused(apply([{ name: 'big', body: Buffer.alloc(2 * 1024 * 1024) }], { maxBytes: 1024 * 1024 }), 'big');
    await refused(apply([{ name: 'a', body: Buffer.alloc(600_000) }, { name: 'b', body: Buffer.alloc(600_000) }], { maxBytes: 1024 * 1024 }), 'b');
  });

  test('a gzip bomb stops at the decompression limit', async () => {
    const tar = await buildTar([{ name: 'zeros', body: Buffer.alloc(20 * 1024 * 1024) }]);
    const gz = gzipSync(tar);
    assert.ok(gz.length * 500 < tar.length, 'compresses by more than 500x');
    const d = autoDecompress({ maxBytes: 4 * 1024 * 1024 });
    Readable.from([gz]).pipe(d);
    await assert.rejects(applyLayer(root, d, { mode: 'delete', host, sameOwner: false }),
      (e: unknown) => isKind(e, 'InvalidArgument') && /layer/.test((e as Error).message));
  });

  test('abort signal cancels', async () => {
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(apply([{ name: 'a', body: 'x' }], { signal: ac.signal }), (e: unknown) => isKind(e, 'Canceled'));
  });
});

describe('applyLayer: whiteouts in delete mode (security.md 1.B)', () => {
  beforeEach(async () => {
    await apply([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/passwd', body: 'root' },
      { name: 'etc/shadow', body: 's' },
      { name: 'opt/', type: 'directory' },
      { name: 'opt/app/', type: 'directory' },
      { name: 'opt/app/lib', body: 'l' },
      { name: 'd/', type: 'directory' },
      { name: 'd/old1', body: '1' },
      { name: 'd/sub/old2', body: '2' },
      { name: 'test', body: 'top-level' },
      { name: 'sub/test', body: 'nested' },
    ]);
  });

  test('whiteout of a file, a directory and a missing name', async () => {
    await apply([{ name: 'etc/.wh.shadow' }, { name: '.wh.opt' }, { name: 'etc/.wh.nothing' }, { name: 'nodir/.wh.x' }]);
    assert.ok(!(await exists(join(root, 'etc/shadow'))));
    assert.ok(await exists(join(root, 'etc/passwd')));
    assert.ok(!(await exists(join(root, 'opt'))));
    assert.ok(!(await exists(join(root, 'nodir'))), 'a whiteout does not create its parent');
  });

  test('a root-level whiteout removes only the top-level name', async () => {
    await apply([{ name: '.wh.test' }]);
    assert.ok(!(await exists(join(root, 'test'))));
    assert.equal(await readFile(join(root, 'sub/test'), 'utf8'), 'nested');
  });

  test('bare .wh. and .wh.. are refused', async () => {
    await refused(apply([{ name: 'etc/.wh.' }]), 'etc/.wh.');
    await refused(apply([{ name: '.wh.' }]), '.wh.');
    await refused(apply([{ name: 'etc/.wh..' }]), 'etc/.wh..');
    await refused(apply([{ name: 'etc/.wh...' }]), 'etc/.wh...');
    assert.ok(await exists(join(root, 'etc/passwd')));
  });

  test('a whiteout under a parent that a lower layer made a symlink stays inside the root', async () => {
    await apply([{ name: 'lnk', type: 'symlink', linkname: '../victim' }, { name: 'abs', type: 'symlink', linkname: victim }]);
    await apply([{ name: 'lnk/.wh.hello' }, { name: 'abs/.wh.hello' }]);
    await victimUntouched();
  });

  test('a whiteout entry that is a symlink or hardlink is still only a whiteout', async () => {
    await apply([{ name: 'etc/.wh.passwd', type: 'symlink', linkname: '../victim/hello' }]);
    assert.ok(!(await exists(join(root, 'etc/passwd'))));
    assert.ok(!(await exists(join(root, 'etc/.wh.passwd'))));
    await victimUntouched();
  });

  test('opaque directory with new content in the same layer, in either order', async () => {
    await apply([{ name: 'd/', type: 'directory' }, { name: 'd/.wh..wh..opq' }, { name: 'd/new', body: 'n' }]);
    assert.deepEqual((await readdir(join(root, 'd'))).sort(), ['new']);
    await apply([{ name: 'd/newer/x', body: 'x' }, { name: 'd/.wh..wh..opq' }]);
    assert.deepEqual((await readdir(join(root, 'd'))).sort(), ['newer']);
  });

  test('delete in layer N, recreate in layer N+1', async () => {
    await apply([{ name: '.wh.d' }]);
    assert.ok(!(await exists(join(root, 'd'))));
    await apply([{ name: 'd/', type: 'directory' }, { name: 'd/fresh', body: 'f' }]);
    assert.deepEqual(await readdir(join(root, 'd')), ['fresh']);
  });

  test('entries of the same layer are not hidden by its whiteouts, whatever the order', async () => {
    await apply([{ name: '.wh.test' }, { name: 'test', body: 'after' }, { name: 'etc/passwd', body: 'before' }, { name: 'etc/.wh.passwd' }]);
    assert.equal(await readFile(join(root, 'test'), 'utf8'), 'after');
    assert.equal(await readFile(join(root, 'etc/passwd'), 'utf8'), 'before');
  });
});

describe('applyLayer: overlay mode (FakeHost)', () => {
  test('whiteouts become c 0:0 devices and opaque dirs a batched xattr', async () => {
    await apply([
      { name: 'etc/', type: 'directory' },
      { name: 'etc/.wh.shadow' },
      { name: '.wh.opt' },
      { name: 'a/.wh..wh..opq' },
      { name: 'b/', type: 'directory' },
      { name: 'b/.wh..wh..opq' },
      { name: 'b/keep', body: 'k' },
      { name: 'test', body: 't' },
      { name: '.wh.test' },
    ], { mode: 'overlay' });
    const mk = host.calls.filter((c) => c.op === 'mknod').map((c) => c.args);
    assert.deepEqual(mk, [[join(root, 'etc/shadow'), 'c', 0, 0, 0], [join(root, 'opt'), 'c', 0, 0, 0]]);
    const xa = host.calls.filter((c) => c.op === 'setxattr').map((c) => c.args);
    assert.deepEqual(xa, [[[join(root, 'a'), join(root, 'b')], 'trusted.overlay.opaque', 'y']]);
    assert.equal(await readFile(join(root, 'b/keep'), 'utf8'), 'k');
    assert.equal(await readFile(join(root, 'test'), 'utf8'), 't');
  });

  test('bare whiteouts are refused in overlay mode too', async () => {
    await refused(apply([{ name: 'x/.wh.' }], { mode: 'overlay' }), 'x/.wh.');
    assert.equal(host.calls.length, 0);
  });

  test('hardlink to a lower layer copies the target up; implicit dirs take the lower attributes', async () => {
    const lower = join(base, 'lower');
    await mkdir(join(lower, 'usr/bin'), { recursive: true });
    await writeFile(join(lower, 'usr/bin/python3.11'), 'py');
    await chmod(join(lower, 'usr/bin'), 0o750);
    await apply([{ name: 'usr/bin/python3', type: 'link', linkname: 'usr/bin/python3.11' }], { mode: 'overlay', lowers: [lower] });
    const a = await stat(join(root, 'usr/bin/python3'));
    const b = await stat(join(root, 'usr/bin/python3.11'));
    assert.equal(a.ino, b.ino);
    assert.equal(await readFile(join(root, 'usr/bin/python3'), 'utf8'), 'py');
    assert.equal((await stat(join(root, 'usr/bin'))).mode & 0o777, 0o750);
    // Without lowers, the missing target is refused.
    await rm(root, { recursive: true });
    await mkdir(root);
    await refused(apply([{ name: 'h', type: 'link', linkname: 'usr/bin/python3.11' }], { mode: 'overlay' }), 'h');
  });
});

describe('applyLayer: deleted and recreated in one layer (BuildKit #2614)', () => {
  test('overlay: a directory entry over a whiteout of the same layer is opaque', async () => {
    await apply([{ name: '.wh.srv' }, { name: 'srv/', type: 'directory' }, { name: 'srv/new', body: 'n' }], { mode: 'overlay' });
    const xa = host.calls.filter((c) => c.op === 'setxattr').map((c) => c.args);
    assert.deepEqual(xa, [[[join(root, 'srv')], 'trusted.overlay.opaque', 'y']]);
  });

  test('overlay: an implicit parent over a whiteout of the same layer is opaque', async () => {
    await apply([{ name: 'a/.wh.b' }, { name: 'a/b/c', body: 'c' }], { mode: 'overlay' });
    const xa = host.calls.filter((c) => c.op === 'setxattr').map((c) => c.args);
    assert.deepEqual(xa, [[[join(root, 'a/b')], 'trusted.overlay.opaque', 'y']]);
    assert.equal(await readFile(join(root, 'a/b/c'), 'utf8'), 'c');
  });

  test('overlay: a file over a whiteout needs no opaque marker', async () => {
    await apply([{ name: '.wh.f' }, { name: 'f', body: 'x' }], { mode: 'overlay' });
    assert.equal(host.calls.filter((c) => c.op === 'setxattr').length, 0);
  });

  test('delete: the lower directory content is gone', async () => {
    await apply([{ name: 'srv/old', body: 'o' }]);
    await apply([{ name: '.wh.srv' }, { name: 'srv/', type: 'directory' }, { name: 'srv/new', body: 'n' }]);
    assert.deepEqual(await readdir(join(root, 'srv')), ['new']);
  });
});

describe('applyLayer: sources, long names, xattr failures', () => {
  test('a failing source keeps its own error class; a stalled source is canceled by the signal', async () => {
    const tar = await buildTar([{ name: 'a', body: 'x'.repeat(10_000) }]);
    const broken = new Readable({ read() {} });
    broken.push(tar.subarray(0, 2048));
    setImmediate(() => broken.destroy(dataLoss('digest mismatch')));
    await assert.rejects(applyLayer(root, broken, { mode: 'delete', host, sameOwner: false }), (e: unknown) => isKind(e, 'DataLoss'));

    const netErr = new Readable({ read() {} });
    netErr.push(tar.subarray(0, 2048));
    setImmediate(() => netErr.destroy(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })));
    await assert.rejects(applyLayer(root, netErr, { mode: 'delete', host, sameOwner: false }), (e: unknown) => !isKind(e, 'InvalidArgument'));

    const stalled = new Readable({ read() {} });
    stalled.push(tar.subarray(0, 1024));
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(applyLayer(root, stalled, { mode: 'delete', host, sameOwner: false, signal: ac.signal }), (e: unknown) => isKind(e, 'Canceled'));
  });

  test('GNU longname/longlink entries (made by GNU tar) apply; a PAX path beyond PATH_MAX is refused', async () => {
    const src = join(base, 'src');
    const longDir = 'x'.repeat(150);
    await mkdir(join(src, longDir), { recursive: true });
    await writeFile(join(src, longDir, 'y'.repeat(120)), 'deep');
    await symlink('t'.repeat(200), join(src, 'longlink'));
    const { execFileSync } = await import('node:child_process');
    const tar = execFileSync('tar', ['--format=gnu', '-cf', '-', '-C', src, '.']);
    assert.ok(tar.includes(Buffer.from('././@LongLink')));
    await applyLayer(root, Readable.from([tar]), { mode: 'delete', host, sameOwner: false });
    assert.equal(await readFile(join(root, longDir, 'y'.repeat(120)), 'utf8'), 'deep');
    assert.equal(await readlink(join(root, 'longlink')), 't'.repeat(200));
    await refused(apply([{ name: 'p/'.repeat(2100) + 'f', body: 'x' }]), ('p/'.repeat(2100) + 'f').slice(0, 64) + '...');
  });

  test('xattrs a filesystem refuses do not fail the layer; the others are still set', async () => {
    class PickyHost extends FakeHost {
      override async setxattr(paths: readonly string[], name: string, value: string | Uint8Array): Promise<void> {
        if (paths.some((p) => p.endsWith('/bad'))) throw new Error('setfattr: Operation not supported');
        await super.setxattr(paths, name, value);
      }
    }
    host = new PickyHost();
    await apply([
      { name: 'good', body: 'g', xattrs: { 'user.k': 'v' } },
      { name: 'bad', body: 'b', xattrs: { 'user.k': 'v' } },
      { name: 'label', body: 'l', xattrs: { 'security.selinux': 'system_u:object_r:etc_t:s0' } },
    ]);
    const calls = host.calls.filter((c) => c.op === 'setxattr').map((c) => c.args);
    assert.deepEqual(calls, [[[join(root, 'good')], 'user.k', Buffer.from('v')]]);
  });
});

describe('applyLayer: deferred metadata after a parent is replaced by a symlink', () => {
  test('directory modes/times, xattrs and opaque markers never go through the new symlink', async () => {
    await mkdir(join(victim, 'sub'));
    await chmod(join(victim, 'sub'), 0o700);
    const before = await stat(join(victim, 'sub'));
    await apply([
      { name: 'a/', type: 'directory' },
      { name: 'a/sub/', type: 'directory', mode: 0o777, mtime: new Date(0), xattrs: { 'user.pwn': '1' } },
      { name: 'a/sub/.wh..wh..opq' },
      { name: 'a', type: 'symlink', linkname: '../victim' },
    ], { mode: 'overlay' });
    const after = await stat(join(victim, 'sub'));
    assert.equal(after.mode & 0o7777, 0o700);
    assert.equal(after.mtime.getTime(), before.mtime.getTime());
    const xa = host.calls.filter((c) => c.op === 'setxattr').flatMap((c) => c.args[0] as string[]);
    assert.deepEqual(xa, []);
    assert.deepEqual((await readdir(victim)).sort(), ['hello', 'sub']);
    assert.deepEqual(await readdir(join(victim, 'sub')), []);
  });
});
