import { test } from 'node:test';
import assert from 'node:assert/strict';
import { processWord, processWords, processWordWithUsage, platformArgs, envListSet, envListToMap } from '../../src/build/shell-words.ts';
import { kindOf } from '../../src/core/errors.ts';

const env = new Map([
  ['A', 'alpha'],
  ['EMPTY', ''],
  ['SP', 'x y'],
  ['PATHV', '/usr/local/bin:/usr/bin'],
  ['FILE', 'archive.tar.gz'],
]);
const w = (s: string, opts = {}) => processWord(s, env, opts);

test('plain and braced variables; unset is empty; lone $ is literal', () => {
  assert.equal(w('$A'), 'alpha');
  assert.equal(w('${A}b'), 'alphab');
  assert.equal(w('$Ab'), '');
  assert.equal(w('x$NOPE.y'), 'x.y');
  assert.equal(w('cost $ 5'), 'cost $ 5');
  assert.equal(w('a$'), 'a$');
  assert.equal(w('$1x'), 'x');
});

test('modifiers :- - :+ + :? ?', () => {
  assert.equal(w('${NOPE:-def}'), 'def');
  assert.equal(w('${EMPTY:-def}'), 'def');
  assert.equal(w('${EMPTY-def}'), '');
  assert.equal(w('${NOPE-def}'), 'def');
  assert.equal(w('${A:-def}'), 'alpha');
  assert.equal(w('${A:+alt}'), 'alt');
  assert.equal(w('${EMPTY:+alt}'), '');
  assert.equal(w('${EMPTY+alt}'), 'alt');
  assert.equal(w('${NOPE:+alt}'), '');
  assert.equal(w('${NOPE:-${A}-x}'), 'alpha-x');
  assert.throws(() => w('${NOPE:?must be set}'), (e) => kindOf(e) === 'InvalidArgument' && /NOPE: must be set/.test((e as Error).message));
  assert.throws(() => w('${NOPE?}'), /NOPE: is not allowed to be unset/);
  assert.equal(w('${A:?x}'), 'alpha');
});

test('pattern removal and replacement', () => {
  assert.equal(w('${FILE%.*}'), 'archive.tar');
  assert.equal(w('${FILE%%.*}'), 'archive');
  assert.equal(w('${FILE#*.}'), 'tar.gz');
  assert.equal(w('${FILE##*.}'), 'gz');
  assert.equal(w('${PATHV/bin/sbin}'), '/usr/local/sbin:/usr/bin');
  assert.equal(w('${PATHV//bin/sbin}'), '/usr/local/sbin:/usr/sbin');
});

test('syntax errors', () => {
  assert.throws(() => w('${A'), /missing '}'/);
  assert.throws(() => w('${}'), /bad substitution/);
  assert.throws(() => w('${A:x}'), /unsupported modifier/);
  assert.throws(() => w('"open'), /matching double-quote/);
  assert.throws(() => w("'open"), /matching single-quote/);
});

test('quotes and escapes: single quotes literal, double quotes expand, escapes', () => {
  assert.equal(w("'$A'"), '$A');
  assert.equal(w('"$A b"'), 'alpha b');
  assert.equal(w('\\$A'), '$A');
  assert.equal(w('"\\$A"'), '$A');
  assert.equal(w('"a\\"b"'), 'a"b');
  assert.equal(w('"a\\nb"'), 'a\\nb');
  assert.equal(w('a\\ b'), 'a b');
  assert.equal(w("it's".replace("'", "\\'")), "it's");
  assert.equal(w('`$A', { escape: '`' }), '$A');
  assert.equal(w('C:\\dir', { escape: '`' }), 'C:\\dir');
});

test('word splitting: unquoted expansion splits, quoted does not', () => {
  assert.deepEqual(processWords('a $SP "$SP" \'q r\'', env), ['a', 'x', 'y', 'x y', 'q r']);
  assert.deepEqual(processWords('  80/tcp   443 ', env), ['80/tcp', '443']);
});

test('raw modes keep quotes/escapes and unset references (heredoc scan)', () => {
  assert.deepEqual(processWords(`cat <<"EOF" $X`, new Map(), { rawQuotes: true, skipUnsetEnv: true }), ['cat', '<<"EOF"', '$X']);
  assert.equal(processWord('${X:-d}', new Map(), { skipUnsetEnv: true }), '${X:-d}');
});

test('usage tracking lists the referenced names', () => {
  const r = processWordWithUsage('$A ${B:-x} $A', env);
  assert.deepEqual([...r.used].sort(), ['A', 'B']);
});

test('platform args and env list helpers', () => {
  const p = platformArgs({ os: 'linux', architecture: 'arm', variant: 'v7' }, { os: 'linux', architecture: 'amd64' });
  assert.equal(p.get('TARGETPLATFORM'), 'linux/arm/v7');
  assert.equal(p.get('TARGETARCH'), 'arm');
  assert.equal(p.get('TARGETVARIANT'), 'v7');
  assert.equal(p.get('BUILDPLATFORM'), 'linux/amd64');
  assert.equal(p.get('BUILDOS'), 'linux');
  assert.deepEqual(envListSet(['A=1', 'B=2'], 'A', '3'), ['A=3', 'B=2']);
  assert.deepEqual(envListSet(['A=1'], 'C', 'x=y'), ['A=1', 'C=x=y']);
  assert.equal(envListToMap(['A=1', 'B=x=y', 'A=2']).get('A'), '2');
  assert.equal(envListToMap(['B=x=y']).get('B'), 'x=y');
});
