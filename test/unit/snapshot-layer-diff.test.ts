// layerDiff/exportTree without root: entry order and types, hardlinks, determinism, opaque dirs
// and xattrs from a (faked) getfattr, and a round trip through applyLayer.
import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, symlink, link, chmod, utimes, readFile, lstat, readlink, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { layerDiff, exportTree, parseGetfattr } from '../../src/snapshot/layer-diff.ts';
import { binaryPaxExtract } from '../../src/layer/tar-pax.ts';
import { applyLayer } from '../../src/layer/tar-apply.ts';
import { FakeHost } from '../../src/host/host.ts';

let base: string;
let tree: string;
let host: FakeHost;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'berth-diff-'));
  tree = join(base, 'tree');
  await mkdir(join(tree, 'b/sub'), { recursive: true });
  await mkdir(join(tree, 'a'));
  await writeFile(join(tree, 'b/sub/file'), 'content');
  await writeFile(join(tree, 'a/z'), 'z'.repeat(100_000));
  await link(join(tree, 'a/z'), join(tree, 'b/hard'));
  await symlink('/etc/passwd', join(tree, 'a/abs'));
  await writeFile(join(tree, 'setuid'), '#!');
  await chmod(join(tree, 'setuid'), 0o4755);
  const t = new Date('2021-06-01T00:00:00Z');
  for (const p of ['a', 'b', 'b/sub', 'setuid']) await utimes(join(tree, p), t, t);
  host = new FakeHost();
});
afterEach(() => rm(base, { recursive: true, force: true }));

interface Seen {
  name: string;
  type: string;
  linkname: string | null;
  mode: number;
  size: number;
  pax: Record<string, string> | undefined;
  body: string;
}

async function list(tar: Buffer): Promise<Seen[]> {
  const ex = binaryPaxExtract();
  const out: Seen[] = [];
  const done = (async () => {
    for await (const e of ex) {
      const body = (await buffer(e as unknown as Readable)).toString('latin1');
      const h = e.header;
      out.push({ name: h.name, type: h.type, linkname: h.linkname, mode: h.mode, size: h.size, pax: (h.pax ?? undefined) as Record<string, string> | undefined, body });
    }
  })();
  Readable.from([tar]).pipe(ex as unknown as NodeJS.WritableStream);
  await done;
  return out;
}

test('entries are byte-sorted pre-order with types, modes and a hardlink', async () => {
  const tar = await buffer(layerDiff(tree, { host }));
  const seen = await list(tar);
  assert.deepEqual(seen.map((e) => [e.name, e.type]), [
    ['a/', 'directory'],
    ['a/abs', 'symlink'],
    ['a/z', 'file'],
    ['b/', 'directory'],
    ['b/hard', 'link'],
    ['b/sub/', 'directory'],
    ['b/sub/file', 'file'],
    ['setuid', 'file'],
  ]);
  assert.equal(seen.find((e) => e.name === 'a/abs')?.linkname, '/etc/passwd');
  assert.equal(seen.find((e) => e.name === 'b/hard')?.linkname, 'a/z');
  assert.equal(seen.find((e) => e.name === 'a/z')?.size, 100_000);
  assert.equal(seen.find((e) => e.name === 'setuid')?.mode, 0o4755);
  // getfattr was asked once for the whole tree, without following symlinks.
  const runs = host.calls.filter((c) => c.op === 'run');
  assert.equal(runs.length, 1);
  assert.deepEqual(runs[0]?.args.slice(0, 3), ['getfattr', '-R', '-h']);
});

test('the same tree gives the same bytes (stable diffID)', async () => {
  const one = await buffer(layerDiff(tree, { host }));
  const two = await buffer(layerDiff(tree, { host }));
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  assert.equal(sha(one), sha(two));
});

test('opaque dirs get .wh..wh..opq; xattrs travel byte-exact; overlay xattrs do not', async () => {
  const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
  host.responses.set('getfattr', () => ({
    code: 0,
    stderr: '',
    stdout:
      `# file: ${join(tree, 'b')}\ntrusted.overlay.opaque=0x79\n\n` +
      `# file: ${join(tree, 'setuid')}\nsecurity.capability=0x${cap.toString('hex')}\nuser.note="hi"\n\n`,
  }));
  const seen = await list(await buffer(layerDiff(tree, { host })));
  const names = seen.map((e) => e.name);
  assert.equal(names[names.indexOf('b/') + 1], 'b/.wh..wh..opq');
  const b = seen.find((e) => e.name === 'b/');
  assert.ok(!b?.pax || !Object.keys(b.pax).some((k) => k.includes('overlay')));
  const s = seen.find((e) => e.name === 'setuid');
  assert.ok(Buffer.from(s?.pax?.['SCHILY.xattr.security.capability'] ?? '', 'latin1').equals(cap));
  assert.equal(s?.pax?.['SCHILY.xattr.user.note'], 'hi');
  // exportTree leaves overlay markers alone (a merged view has none to convert).
  const exported = (await list(await buffer(exportTree(tree, { host })))).map((e) => e.name);
  assert.ok(!exported.includes('b/.wh..wh..opq'));
});

test('round trip through applyLayer reproduces the tree', async () => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 7, 0x5a); // streamed, not read in one call
  big.write('head');
  await writeFile(join(tree, 'big'), big);
  const out = join(base, 'out');
  await mkdir(out);
  await applyLayer(out, layerDiff(tree, { host }), { mode: 'delete', host });
  assert.equal(await readFile(join(out, 'b/sub/file'), 'utf8'), 'content');
  assert.ok((await readFile(join(out, 'big'))).equals(big));
  assert.equal((await stat(join(out, 'a/z'))).ino, (await stat(join(out, 'b/hard'))).ino);
  assert.equal(await readlink(join(out, 'a/abs')), '/etc/passwd');
  assert.equal((await lstat(join(out, 'setuid'))).mode & 0o7777, 0o4755);
  assert.equal((await stat(join(out, 'b/sub'))).mtime.getTime(), new Date('2021-06-01T00:00:00Z').getTime());
});

test('an empty dir gives an empty (end-of-archive only) tar', async () => {
  const empty = join(base, 'empty');
  await mkdir(empty);
  const tar = await buffer(layerDiff(empty, { host }));
  assert.equal(tar.length, 1024);
  assert.ok(tar.every((b) => b === 0));
});

test('parseGetfattr unescapes octal file names', () => {
  const m = parseGetfattr('# file: /x/a\\040b\\012c\nuser.k=0x6869\n\n');
  assert.deepEqual([...m.keys()], ['/x/a b\nc']);
  assert.equal(m.get('/x/a b\nc')?.get('user.k')?.toString(), 'hi');
});
