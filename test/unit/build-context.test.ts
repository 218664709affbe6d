import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir, symlink, lstat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { buildTar } from '../../src/layer/tar-build.ts';
import { BuildContext, DirectoryTree, expandSource, resolveSource } from '../../src/build/context.ts';
import { contextFiles, packContext } from '../../src/build/context-tar.ts';
import { Dockerignore } from '../../src/build/dockerignore.ts';
import { kindOf } from '../../src/core/errors.ts';

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-ctx-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a context tar is extracted with per-file digests; gzip is detected', () => withTmp(async (dir) => {
  const tar = await buildTar([
    { name: 'Dockerfile', body: 'FROM scratch\n' },
    { name: 'src/', type: 'directory', mode: 0o750 },
    { name: 'src/a.txt', body: 'hello', mode: 0o640 },
    { name: 'deep/er/b.txt', body: 'b' },
    { name: 'link', type: 'symlink', linkname: 'src/a.txt' },
    { name: 'hard', type: 'link', linkname: 'src/a.txt' },
  ]);
  for (const body of [tar, gzipSync(tar)]) {
    const ctx = await BuildContext.fromTar(Readable.from([body]), dir);
    try {
      const a = await ctx.entry('src/a.txt');
      assert.equal(a?.digest, sha('hello'));
      assert.equal(a?.mode, 0o640);
      assert.equal((await ctx.entry('deep/er'))?.type, 'directory', 'missing parents are created');
      assert.equal((await ctx.entry('link'))?.type, 'symlink');
      assert.equal((await ctx.entry('hard'))?.digest, sha('hello'));
      assert.equal((await ctx.readFile('hard'))?.toString(), 'hello');
      assert.equal((await ctx.readFile('Dockerfile'))?.toString(), 'FROM scratch\n');
      assert.deepEqual((await ctx.list('src')).map((e) => e.path), ['src/a.txt']);
    } finally {
      await ctx.cleanup();
    }
  }
}));

test('hostile contexts: .. names refused, symlinks never lead writes or reads out of the context', () => withTmp(async (dir) => {
  const outside = join(dir, 'outside');
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'top secret');
  // `..` climbing out of the root
  await assert.rejects(BuildContext.fromTar(Readable.from([await buildTar([{ name: '../evil', body: 'x' }])]), join(dir, 'ctx')), (e) => kindOf(e) === 'InvalidArgument');
  // a file "through" a symlink is refused (copying it would write through the link)
  await assert.rejects(BuildContext.fromTar(Readable.from([await buildTar([
    { name: 'esc', type: 'symlink', linkname: outside },
    { name: 'esc/planted', body: 'x' },
  ])]), join(dir, 'ctx')), (e) => kindOf(e) === 'InvalidArgument');
  await assert.rejects(lstat(join(outside, 'planted')), 'nothing written outside');
  const ctx = await BuildContext.fromTar(Readable.from([await buildTar([
    { name: 'esc', type: 'symlink', linkname: outside },
    { name: 'rel', type: 'symlink', linkname: '../../../../../../' + outside },
    { name: 'abs', type: 'symlink', linkname: '/etc/passwd' },
  ])]), join(dir, 'ctx'));
  try {
    assert.equal((await ctx.entry('esc'))?.linkname, outside, 'the symlink itself is kept as written');
    // reads resolve inside the root
    await assert.rejects(resolveSource(ctx, 'abs'), (e) => kindOf(e) === 'NotFound');
    await assert.rejects(resolveSource(ctx, 'rel/secret'), (e) => kindOf(e) === 'NotFound');
    assert.equal(await ctx.readFile('rel/secret'), undefined);
    // hardlink to a path outside
    await assert.rejects(BuildContext.fromTar(Readable.from([await buildTar([{ name: 'h', type: 'link', linkname: '../../etc/passwd' }])]), join(dir, 'ctx2')), (e) => kindOf(e) === 'InvalidArgument');
  } finally {
    await ctx.cleanup();
  }
}));

test('sources: globs as filepath.Match, symlinked dirs resolved inside the context', () => withTmp(async (dir) => {
  const ctx = await BuildContext.fromTar(Readable.from([await buildTar([
    { name: 'a.txt', body: 'a' },
    { name: 'b.txt', body: 'b' },
    { name: 'c.md', body: 'c' },
    { name: 'sub/d.txt', body: 'd' },
    { name: 'ln', type: 'symlink', linkname: '/sub' },
  ])]), dir);
  try {
    assert.deepEqual(await expandSource(ctx, '*.txt'), ['a.txt', 'b.txt']);
    assert.deepEqual(await expandSource(ctx, '[ab].txt'), ['a.txt', 'b.txt']);
    assert.deepEqual(await expandSource(ctx, '*/*.txt'), ['sub/d.txt']);
    assert.deepEqual(await expandSource(ctx, './c.md'), ['c.md']);
    assert.deepEqual(await expandSource(ctx, 'ln/d.txt'), ['sub/d.txt']);
    assert.deepEqual(await expandSource(ctx, '.'), ['']);
    await assert.rejects(expandSource(ctx, 'nope'), (e) => kindOf(e) === 'NotFound');
    await assert.rejects(expandSource(ctx, '*.none'), (e) => kindOf(e) === 'NotFound');
    // climbing out of the context is refused, never read as the context root
    await assert.rejects(expandSource(ctx, '../../a.txt'), (e) => kindOf(e) === 'InvalidArgument' && /outside the build context/.test((e as Error).message));
    await assert.rejects(expandSource(ctx, 'sub/../../a.txt'), (e) => kindOf(e) === 'InvalidArgument');
    assert.deepEqual(await expandSource(ctx, '/../a.txt'), ['a.txt'], 'a rooted path is cleaned at the root');
  } finally {
    await ctx.cleanup();
  }
}));

test('applyIgnore removes excluded paths, keeps re-included ones and their parents', () => withTmp(async (dir) => {
  const ctx = await BuildContext.fromTar(Readable.from([await buildTar([
    { name: 'Dockerfile', body: 'FROM scratch' },
    { name: 'docs/a.md', body: 'a' },
    { name: 'docs/keep.md', body: 'k' },
    { name: 'x.log', body: 'l' },
  ])]), dir);
  try {
    await ctx.applyIgnore(Dockerignore.parse('docs\n!docs/keep.md\n*.log\n'));
    assert.equal(await ctx.entry('docs/a.md'), undefined);
    assert.equal(await ctx.entry('x.log'), undefined);
    assert.ok(await ctx.entry('docs/keep.md'));
    assert.ok(await ctx.entry('docs'));
    assert.deepEqual((await ctx.list('')).map((e) => e.path), ['Dockerfile', 'docs', 'docs/keep.md']);
  } finally {
    await ctx.cleanup();
  }
}));

test('packContext honours .dockerignore but always sends the Dockerfile and .dockerignore', () => withTmp(async (dir) => {
  const src = join(dir, 'src');
  await mkdir(join(src, 'node_modules/x'), { recursive: true });
  await writeFile(join(src, 'node_modules/x/i.js'), '');
  await writeFile(join(src, 'Dockerfile'), 'FROM scratch\n');
  await writeFile(join(src, '.dockerignore'), 'node_modules\nDockerfile\n.dockerignore\n*.tmp\n');
  await writeFile(join(src, 'keep.txt'), 'k');
  await writeFile(join(src, 'drop.tmp'), 'd');
  await symlink('keep.txt', join(src, 'ln'));
  assert.deepEqual(await contextFiles(src), ['.dockerignore', 'Dockerfile', 'keep.txt', 'ln']);
  const ctx = await BuildContext.fromTar(packContext(src), join(dir, 'out'));
  try {
    assert.equal((await ctx.entry('keep.txt'))?.digest, sha('k'));
    assert.equal((await ctx.entry('ln'))?.linkname, 'keep.txt');
    assert.equal(await ctx.entry('drop.tmp'), undefined);
  } finally {
    await ctx.cleanup();
  }
  // Without GNU tar on the PATH the archive is written from Node, with the same entries.
  const path = process.env.PATH;
  process.env.PATH = '';
  let fallback: BuildContext;
  try {
    fallback = await BuildContext.fromTar(packContext(src), join(dir, 'out2'));
  } finally {
    process.env.PATH = path;
  }
  try {
    assert.deepEqual((await fallback.list('')).map((e) => [e.path, e.type, e.digest ?? '']), [
      ['.dockerignore', 'file', sha('node_modules\nDockerfile\n.dockerignore\n*.tmp\n')],
      ['Dockerfile', 'file', sha('FROM scratch\n')],
      ['keep.txt', 'file', sha('k')],
      ['ln', 'symlink', (await fallback.entry('ln'))!.digest ?? ''],
    ]);
    assert.equal((await fallback.entry('ln'))?.linkname, 'keep.txt');
  } finally {
    await fallback.cleanup();
  }
}));

test('packContext with dockerfileData (build -f - PATH): the given Dockerfile replaces the directory\'s, with GNU tar and without', () => withTmp(async (dir) => {
  const src = join(dir, 'src');
  await mkdir(src);
  await writeFile(join(src, 'Dockerfile'), 'FROM on-disk\n');
  await writeFile(join(src, 'data.txt'), 'd');
  const data = Buffer.from('FROM from-stdin\n');
  for (const [i, noTar] of [false, true].entries()) {
    const path = process.env.PATH;
    if (noTar) process.env.PATH = '';
    let ctx: BuildContext;
    try {
      ctx = await BuildContext.fromTar(packContext(src, { dockerfile: 'Dockerfile', dockerfileData: data }), join(dir, `out${i}`));
    } finally {
      process.env.PATH = path;
    }
    try {
      assert.equal((await ctx.readFile('Dockerfile'))?.toString(), 'FROM from-stdin\n', noTar ? 'without tar' : 'with tar');
      assert.equal((await ctx.entry('data.txt'))?.digest, sha('d'));
      assert.deepEqual((await ctx.list('')).map((e) => e.path), ['Dockerfile', 'data.txt']);
    } finally {
      await ctx.cleanup();
    }
  }
  const other = await BuildContext.fromTar(packContext(src, { dockerfile: '.dockerfile.0123', dockerfileData: data }), join(dir, 'out-other'));
  try {
    assert.equal((await other.readFile('.dockerfile.0123'))?.toString(), 'FROM from-stdin\n');
    assert.equal((await other.readFile('Dockerfile'))?.toString(), 'FROM on-disk\n');
  } finally {
    await other.cleanup();
  }
}));

test('an archive that stops right after the last entry\'s data (docker CLI -f -) is read; one cut inside an entry is refused', () => withTmp(async (dir) => {
  const full = await buildTar([{ name: 'Dockerfile', body: 'FROM scratch\n' }, { name: '.dockerignore', body: 'x'.repeat(47) }]);
  // header(512) + data(13, padded to 512) + header(512) + data(47): no padding, no end blocks
  const unpadded = full.subarray(0, 512 * 3 + 47);
  for (const [i, chunks] of [[unpadded], [unpadded.subarray(0, 700), unpadded.subarray(700, 1600), unpadded.subarray(1600)]].entries()) {
    const ctx = await BuildContext.fromTar(Readable.from(chunks), join(dir, `ok${i}`));
    try {
      assert.equal((await ctx.readFile('Dockerfile'))?.toString(), 'FROM scratch\n');
      assert.equal((await ctx.readFile('.dockerignore'))?.toString(), 'x'.repeat(47));
    } finally {
      await ctx.cleanup();
    }
  }
  await assert.rejects(BuildContext.fromTar(Readable.from([unpadded.subarray(0, 512 * 3 + 20)]), join(dir, 'cut-data')), (e) => kindOf(e) === 'InvalidArgument');
  await assert.rejects(BuildContext.fromTar(Readable.from([unpadded.subarray(0, 512 * 2 + 100)]), join(dir, 'cut-header')), (e) => kindOf(e) === 'InvalidArgument');
  // a complete archive is unchanged
  const ctx = await BuildContext.fromTar(Readable.from([full]), join(dir, 'full'));
  await ctx.cleanup();
}));

test('DirectoryTree stats and digests files on demand', () => withTmp(async (dir) => {
  await mkdir(join(dir, 'a'));
  await writeFile(join(dir, 'a/f'), 'data');
  await symlink('/nowhere', join(dir, 'a/l'));
  const t = new DirectoryTree(dir);
  assert.equal((await t.entry('a/f'))?.digest, sha('data'));
  assert.equal((await t.entry('a/l'))?.linkname, '/nowhere');
  assert.deepEqual((await t.list('a')).map((e) => e.path), ['a/f', 'a/l']);
  assert.deepEqual(await expandSource(t, 'a/*'), ['a/f', 'a/l']);
}));
