import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dockerignore, readDockerignore, cleanPath } from '../../src/build/dockerignore.ts';

test('reading: comments, blanks, cleaning, leading slash, ! with spaces', () => {
  assert.deepEqual(readDockerignore('# comment\n\n  /foo/bar/  \n./a/../b\n! /keep\n \t\n*.md\r\n'), ['foo/bar', 'b', '!keep', '*.md']);
  assert.equal(cleanPath('a//b/./c/'), 'a/b/c');
  assert.equal(cleanPath(''), '.');
});

test('documented example: */temp* */*/temp* temp?', () => {
  const di = Dockerignore.parse('# comment\n*/temp*\n*/*/temp*\ntemp?\n');
  assert.equal(di.excludes('somedir/temporary.txt'), true);
  assert.equal(di.excludes('somedir/temp'), true);
  assert.equal(di.excludes('somedir/temp/inner/file'), true, 'everything below an excluded dir');
  assert.equal(di.excludes('somedir/subdir/temporary.txt'), true);
  assert.equal(di.excludes('tempa'), true);
  assert.equal(di.excludes('tempb'), true);
  assert.equal(di.excludes('temp.txt'), false);
  assert.equal(di.excludes('tempab'), false);
  assert.equal(di.excludes('a/b/c/temporary.txt'), false);
  assert.equal(di.excludes('other/file'), false);
});

test('** matches any number of directories, zero included', () => {
  const di = Dockerignore.parse('**/*.go\n');
  assert.equal(di.excludes('main.go'), true);
  assert.equal(di.excludes('a/b/c.go'), true);
  assert.equal(di.excludes('a/b/c.gox'), false);
  const d2 = Dockerignore.parse('a/**/z\n');
  assert.equal(d2.excludes('a/z'), true);
  assert.equal(d2.excludes('a/b/c/z'), true);
  assert.equal(d2.excludes('b/z'), false);
  const d3 = Dockerignore.parse('build/**\n');
  assert.equal(d3.excludes('build/x/y'), true);
});

test('exceptions apply in order: the last matching line wins', () => {
  const a = Dockerignore.parse('*.md\n!README.md\n');
  assert.equal(a.excludes('README.md'), false);
  assert.equal(a.excludes('CHANGES.md'), true);
  const b = Dockerignore.parse('*.md\n!README*.md\nREADME-secret.md\n');
  assert.equal(b.excludes('README-secret.md'), true);
  assert.equal(b.excludes('README-x.md'), false);
  assert.equal(b.excludes('other.md'), true);
  const c = Dockerignore.parse('*.md\nREADME-secret.md\n!README*.md\n');
  assert.equal(c.excludes('README-secret.md'), false);
  assert.equal(c.excludes('other.md'), true);
});

test('directory patterns exclude contents; an exception re-includes one file under them', () => {
  const di = Dockerignore.parse('docs\n!docs/keep.md\n');
  assert.equal(di.excludes('docs'), true);
  assert.equal(di.excludes('docs/a.md'), true);
  assert.equal(di.excludes('docs/keep.md'), false);
  assert.equal(di.canSkipDir('docs'), false, 'an exception below it forbids pruning the walk');
  const plain = Dockerignore.parse('node_modules\n.git\n');
  assert.equal(plain.canSkipDir('node_modules'), true);
  assert.equal(plain.excludes('node_modules/x/y.js'), true);
  assert.equal(plain.excludes('src/node_modules'), false, 'patterns are anchored at the context root');
});

test('leading slash and ./ mean the context root; ? and [] classes never cross /', () => {
  const di = Dockerignore.parse('/secret\n./tmp/\nf?le\n[a-c].txt\n[^x]y\n');
  assert.equal(di.excludes('secret'), true);
  assert.equal(di.excludes('tmp/x'), true);
  assert.equal(di.excludes('file'), true);
  assert.equal(di.excludes('f/le'), false);
  assert.equal(di.excludes('b.txt'), true);
  assert.equal(di.excludes('d.txt'), false);
  assert.equal(di.excludes('ay'), true);
  assert.equal(di.excludes('xy'), false);
  assert.equal(di.excludes('./secret'), true);
});

test('escapes and regex metacharacters are literal', () => {
  const di = Dockerignore.parse('a+b(1).txt\n\\*star\n{x}\n');
  assert.equal(di.excludes('a+b(1).txt'), true);
  assert.equal(di.excludes('aab1.txt'), false);
  assert.equal(di.excludes('*star'), true);
  assert.equal(di.excludes('xstar'), false);
  assert.equal(di.excludes('{x}'), true);
});

test('no patterns exclude nothing', () => {
  const di = Dockerignore.parse('# only comments\n');
  assert.equal(di.empty, true);
  assert.equal(di.excludes('anything'), false);
});
