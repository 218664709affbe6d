import { test, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, symlink, writeFile, realpath } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { secureJoin, cleanEntryName } from '../../src/layer/secure-join.ts';
import { isKind } from '../../src/core/errors.ts';

let root: string;
let base: string;
beforeEach(async () => {
  base = await realpath(await mkdtemp(join(tmpdir(), 'berth-sj-')));
  root = join(base, 'root');
  await mkdir(join(root, 'a/b'), { recursive: true });
  await writeFile(join(root, 'file'), 'x');
});
afterEach(() => rm(base, { recursive: true, force: true }));

test('plain paths, `..` clamped at the root, absolute paths taken relative to it', async () => {
  assert.equal(await secureJoin(root, 'a/b/c'), join(root, 'a/b/c'));
  assert.equal(await secureJoin(root, '../../etc/passwd'), join(root, 'etc/passwd'));
  assert.equal(await secureJoin(root, '/etc/passwd'), join(root, 'etc/passwd'));
  assert.equal(await secureJoin(root, 'a/../../..'), root);
  assert.equal(await secureJoin(root, ''), root);
});

test('relative and absolute symlinks are resolved with the root as /', async () => {
  await symlink('../../..', join(root, 'a/up'));
  await symlink('/a/b', join(root, 'abs'));
  await symlink(base, join(root, 'hostabs'));
  assert.equal(await secureJoin(root, 'a/up/etc'), join(root, 'etc'));
  assert.equal(await secureJoin(root, 'abs/x'), join(root, 'a/b/x'));
  assert.equal(await secureJoin(root, 'hostabs/root'), join(root, base.slice(1), 'root'));
});

test('symlink chains and the last component', async () => {
  await symlink('l2', join(root, 'l1'));
  await symlink('a/b', join(root, 'l2'));
  assert.equal(await secureJoin(root, 'l1/z'), join(root, 'a/b/z'));
  assert.equal(await secureJoin(root, 'l1'), join(root, 'a/b'));
  assert.equal(await secureJoin(root, 'l1', { noFollowLast: true }), join(root, 'l1'));
});

test('loops and NUL bytes are InvalidArgument', async () => {
  await symlink('y', join(root, 'x'));
  await symlink('x', join(root, 'y'));
  await assert.rejects(secureJoin(root, 'x/z'), (e: unknown) => isKind(e, 'InvalidArgument'));
  await assert.rejects(secureJoin(root, 'a\0b'), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('cleanEntryName', () => {
  assert.equal(cleanEntryName('./a//b/./c/'), 'a/b/c');
  assert.equal(cleanEntryName('/etc/x'), 'etc/x');
  assert.equal(cleanEntryName('/../x'), 'x');
  assert.equal(cleanEntryName('a/../b'), 'b');
  assert.equal(cleanEntryName('../x'), undefined);
  assert.equal(cleanEntryName('a/../../x'), undefined);
  assert.equal(cleanEntryName('./'), '');
});
