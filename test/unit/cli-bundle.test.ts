// The CLI launcher (bin/berth.cjs) runs dist/cli/berth.cjs only while it matches the sources it
// was built from (bundleIsFresh), and the bundle behaves as the TypeScript sources do.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, utimes, rm, readFile, readdir, stat, chmod } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir, run, BERTH, REPO_ROOT } from '../helpers/fixtures.ts';
// @ts-expect-error: plain JavaScript module without type declarations
import { bundleIsFresh } from '../../bin/berth.cjs';

const fresh = bundleIsFresh as (root: string) => boolean;
const noBundle = !existsSync(join(REPO_ROOT, 'dist', 'cli', 'berth.cjs')) && 'no bundle (scripts/build-cli.mjs)';

test('bundleIsFresh: true only while every recorded input keeps its size and mtime', async () => {
  await using dir = await tempDir();
  const root = dir.path;
  assert.equal(fresh(root), false, 'no bundle');
  await mkdir(join(dir.path, 'dist', 'cli'), { recursive: true });
  await mkdir(join(dir.path, 'src'));
  await writeFile(join(dir.path, 'dist', 'cli', 'berth.cjs'), '');
  const src = join(dir.path, 'src', 'a.ts');
  await writeFile(src, 'export const a = 1;\n');
  const when = new Date('2026-01-02T03:04:05Z');
  await utimes(src, when, when);
  await writeFile(join(dir.path, 'dist', 'cli', 'inputs.json'), JSON.stringify({ 'src/a.ts': [20, when.getTime()] }));
  assert.equal(fresh(root), true);

  await writeFile(src, 'export const a = 2;\n'); // same size, new mtime
  assert.equal(fresh(root), false, 'edited source');
  await utimes(src, when, when);
  assert.equal(fresh(root), true);
  await writeFile(src, 'export const a = 22;\n');
  await utimes(src, when, when); // same mtime, new size
  assert.equal(fresh(root), false, 'resized source');
  await rm(src);
  assert.equal(fresh(root), false, 'deleted source');
  await writeFile(join(dir.path, 'dist', 'cli', 'inputs.json'), '{not json');
  assert.equal(fresh(root), false, 'corrupt inputs.json');
});

test('the bundled CLI and the TypeScript sources print the same help and errors', { skip: noBundle }, async () => {
  for (const args of [['--help'], ['run', '--help'], ['version', '--format', '{{.Client.Version}}'], ['run', '--no-such-flag', 'x']]) {
    const env = { ...process.env, BERTH_HOST: 'unix:///nonexistent/berth.sock' };
    const bundled = await run(BERTH, args, { env });
    const source = await run(BERTH, args, { env: { ...env, BERTH_CLI_FROM_SOURCE: '1' } });
    assert.equal(bundled.code, source.code, args.join(' '));
    assert.equal(bundled.stdout, source.stdout, args.join(' '));
    assert.equal(bundled.stderr, source.stderr, args.join(' '));
  }
});

/** The built-in modules a fresh Node process loads when it requires the bundle. */
async function modulesTheBundleLoads(): Promise<string[]> {
  const probe = `const before = new Set(process.moduleLoadList); require(${JSON.stringify(join(REPO_ROOT, 'dist', 'cli', 'berth.cjs'))});
console.log(JSON.stringify(process.moduleLoadList.filter((m) => !before.has(m))));`;
  const r = await run(process.execPath, ['-e', probe]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

test('loading the bundled CLI does not load node:crypto (OpenSSL start-up, ~10 ms of every run)', { skip: noBundle }, async () => {
  const loaded = await modulesTheBundleLoads();
  assert.ok(loaded.length > 0, 'the probe sees the modules the bundle loads');
  assert.deepEqual(loaded.filter((m) => /crypto/.test(m)), []);
});

test('loading the bundled CLI does not load node:http (its agent/client/server modules, ~10 ms of every run)', { skip: noBundle }, async () => {
  const loaded = await modulesTheBundleLoads();
  assert.ok(loaded.includes('NativeModule net'), 'the probe sees the modules the bundle loads (net, the transport)');
  assert.deepEqual(loaded.filter((m) => /_http_|NativeModule http$|http_parser/.test(m)), []);
});

test('loading the bundled CLI does not load node:os or node:fs/promises (loaded on first use)', { skip: noBundle }, async () => {
  const loaded = await modulesTheBundleLoads();
  assert.ok(loaded.includes('NativeModule net'), 'the probe sees the modules the bundle loads');
  assert.deepEqual(loaded.filter((m) => /^NativeModule (os|fs\/promises|internal\/fs\/promises)$/.test(m)), []);
});

test('the bundle has no dynamic import() (bin/berth.cjs compiles it through vm.Script, where import() needs a flag)', { skip: noBundle }, async () => {
  const text = await readFile(join(REPO_ROOT, 'dist', 'cli', 'berth.cjs'), 'utf8');
  assert.ok(text.length > 100_000, 'the whole CLI');
  assert.doesNotMatch(text, /(^|[^\w$.])import\(/m);
  assert.doesNotMatch(text, /[^\x00-\x7f]/, 'ASCII: bin/berth.cjs reads it as Latin-1');
});

test('CLI code cache: written after a run, reused, updated for a new command, never from a directory others can write', async () => {
  await using dir = await tempDir();
  const mod = join(dir.path, 'mod.cjs');
  await writeFile(mod, 'exports.twice = (x) => x * 2;\nexports.where = () => __filename;\n');
  const cache = join(dir.path, 'cache');
  const probe = (verb: string) =>
    run(process.execPath, ['-e', `const m = require(${JSON.stringify(join(REPO_ROOT, 'bin', 'berth.cjs'))}).loadWithCodeCache(${JSON.stringify(mod)}, [${JSON.stringify(verb)}]); console.log(m.twice(21), m.where());`], { env: { ...process.env, XDG_CACHE_HOME: cache } });
  const files = async () => (await readdir(join(cache, 'berth')).catch(() => [])).filter((f) => f.startsWith('cli-')).sort();
  let r = await probe('run');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `42 ${mod}\n`);
  const [v8, verbs] = await files();
  assert.match(v8 ?? '', /^cli-v[\d.]+-\d+-\d+\.v8$/);
  assert.equal(verbs, `${v8}.verbs`);
  assert.equal(await readFile(join(cache, 'berth', verbs!), 'utf8'), 'run\n');
  const written = (await stat(join(cache, 'berth', v8!))).mtimeMs;
  r = await probe('run');
  assert.equal(r.stdout, `42 ${mod}\n`);
  assert.equal((await stat(join(cache, 'berth', v8!))).mtimeMs, written, 'reused as it is');
  r = await probe('ps');
  assert.equal(await readFile(join(cache, 'berth', verbs!), 'utf8'), 'run\nps\n', 'made again after a new command');
  // A cache directory others may write to is not used at all.
  await rm(join(cache, 'berth'), { recursive: true });
  await mkdir(join(cache, 'berth'), { mode: 0o777 });
  await chmod(join(cache, 'berth'), 0o777);
  r = await probe('run');
  assert.equal(r.stdout, `42 ${mod}\n`);
  assert.deepEqual(await files(), []);
});
