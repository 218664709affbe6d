import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFlags, UsageError, type FlagDef } from '../../src/cli/flags.ts';
import { CREATE_FLAGS, RUN_ONLY_FLAGS } from '../../src/cli/commands/container-opts.ts';
import { resolveHost } from '../../src/cli/cli.ts';

const RUN = [...CREATE_FLAGS, ...RUN_ONLY_FLAGS];
const PS: FlagDef[] = [
  { name: 'all', short: 'a', kind: 'bool', help: '' },
  { name: 'quiet', short: 'q', kind: 'bool', help: '' },
  { name: 'last', short: 'n', kind: 'int', default: -1, help: '' },
  { name: 'filter', short: 'f', kind: 'list', help: '' },
  { name: 'format', kind: 'string', help: '' },
];

test('run: flags stop at the image; the rest is the command, flags included', () => {
  const r = parseFlags(['-it', '--rm', '-e', 'A=1', '-e', 'B=2', '-p', '8080:80', 'img', 'sh', '-c', 'echo hi', '-e', 'X'], RUN, { interspersed: false });
  assert.deepEqual(r.args, ['img', 'sh', '-c', 'echo hi', '-e', 'X']);
  assert.equal(r.flags.bool('interactive'), true);
  assert.equal(r.flags.bool('tty'), true);
  assert.equal(r.flags.bool('rm'), true);
  assert.deepEqual(r.flags.list('env'), ['A=1', 'B=2']);
  assert.deepEqual(r.flags.list('publish'), ['8080:80']);
});

test('bundled shorthands, attached values and --flag=value forms', () => {
  const r = parseFlags(['-aq', '-n3', '-fstatus=exited', '-f=name=x', '--format={{.ID}}', '--filter', 'label=a'], PS);
  assert.equal(r.flags.bool('all'), true);
  assert.equal(r.flags.bool('quiet'), true);
  assert.equal(r.flags.int('last'), 3);
  assert.deepEqual(r.flags.list('filter'), ['status=exited', 'name=x', 'label=a']);
  assert.equal(r.flags.string('format'), '{{.ID}}');
  const d = parseFlags(['-itd', 'img'], RUN, { interspersed: false });
  assert.equal(d.flags.bool('detach'), true);
  assert.equal(d.flags.bool('tty'), true);
  // -e as the last of a bundle takes the next argument
  const e = parseFlags(['-ie', 'A=1', 'img'], RUN, { interspersed: false });
  assert.deepEqual(e.flags.list('env'), ['A=1']);
  assert.deepEqual(e.args, ['img']);
});

test('booleans accept =false, defaults apply, changed() tells them apart', () => {
  const r = parseFlags(['--rm=false', '--sig-proxy=false', 'img'], RUN, { interspersed: false });
  assert.equal(r.flags.bool('rm'), false);
  assert.equal(r.flags.changed('rm'), true);
  assert.equal(r.flags.bool('sig-proxy'), false);
  const d = parseFlags(['img'], RUN, { interspersed: false });
  assert.equal(d.flags.bool('sig-proxy'), true);
  assert.equal(d.flags.string('restart'), 'no');
  assert.equal(d.flags.changed('entrypoint'), false);
  const ep = parseFlags(['--entrypoint=', 'img'], RUN, { interspersed: false });
  assert.equal(ep.flags.changed('entrypoint'), true);
  assert.equal(ep.flags.string('entrypoint'), '');
});

test('-- ends flags; interspersed commands accept flags after positionals', () => {
  const r = parseFlags(['a', '-q', '--', '-a', 'b'], PS);
  assert.deepEqual(r.args, ['a', '-a', 'b']);
  assert.equal(r.flags.bool('quiet'), true);
  assert.equal(r.flags.bool('all'), false);
  const run = parseFlags(['--rm', '--', 'img', '--rm'], RUN, { interspersed: false });
  assert.deepEqual(run.args, ['img', '--rm']);
});

test('-h is hostname for run, help elsewhere; --help everywhere', () => {
  const r = parseFlags(['-h', 'myhost', 'img'], RUN, { interspersed: false });
  assert.equal(r.flags.string('hostname'), 'myhost');
  assert.equal(r.help, false);
  assert.equal(parseFlags(['-h'], PS).help, true);
  assert.equal(parseFlags(['--help'], RUN, { interspersed: false }).help, true);
});

test('usage errors carry pflag wording', () => {
  assert.throws(() => parseFlags(['--x'], PS), (e: unknown) => e instanceof UsageError && e.message === 'unknown flag: --x');
  assert.throws(() => parseFlags(['-Z'], PS), { message: "unknown shorthand flag: 'Z' in -Z" });
  assert.throws(() => parseFlags(['-n'], PS), { message: "flag needs an argument: 'n' in -n" });
  assert.throws(() => parseFlags(['--format'], PS), { message: 'flag needs an argument: --format' });
  assert.throws(() => parseFlags(['-n', 'x'], PS), { message: 'invalid argument "x" for "-n, --last" flag: strconv.ParseInt: parsing "x": invalid syntax' });
  assert.throws(() => parseFlags(['--all=maybe'], PS), UsageError);
});

test('daemon selection: -H, then BERTH_HOST, then DOCKER_HOST, then the default', () => {
  assert.equal(resolveHost(['unix:///a.sock'], { BERTH_HOST: 'unix:///b.sock', DOCKER_HOST: 'unix:///c.sock' }), 'unix:///a.sock');
  assert.equal(resolveHost([], { BERTH_HOST: 'unix:///b.sock', DOCKER_HOST: 'unix:///c.sock' }), 'unix:///b.sock');
  assert.equal(resolveHost([], { DOCKER_HOST: 'unix:///c.sock' }), 'unix:///c.sock');
  assert.equal(resolveHost([], {}), 'unix:///run/berth/berth.sock');
});
