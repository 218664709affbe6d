// The berth CLI's launcher (bin/berth execs it on the project's Node.js 24), in one file: every
// module a start loads is time on every CLI run. It runs the bundled CLI (dist/cli/berth.cjs,
// made by scripts/build-cli.mjs) while that matches the sources (bundleIsFresh), and the
// TypeScript sources otherwise (BERTH_CLI_FROM_SOURCE=1 forces them). Plain CommonJS on
// purpose: an ES module entry costs the ESM loader's set-up (~1.5 ms of every run), loading any
// .ts file starts Node's type stripper (~35 ms), and an ES module import of 'node:fs' evaluates
// its lazy getters. It uses only built-ins Node has loaded before it runs (fs, path) and vm.
//
// The bundle is compiled through vm.Script with a V8 code cache of our own (loadWithCodeCache),
// made after a run rather than right after compiling as Node's compile cache is: it then holds
// the functions that run used, which V8 otherwise compiles lazily on every start (~6 ms of a
// `run --rm`).
//
// Required as a module, it only exports its functions: the tests use them, and the wrapper
// scripts/setup installs as /usr/local/bin/berth calls launch().
'use strict';
const { closeSync, fstatSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');
const { dirname, join } = require('node:path');

/**
 * Whether the CLI bundle (dist/cli/berth.cjs under the checkout `root`, a directory path) was
 * built from the sources now in the checkout: every input recorded in dist/cli/inputs.json still
 * has the size and mtime it had at build time. Anything missing or unreadable means "not fresh",
 * so the launcher falls back to the TypeScript sources rather than run stale code.
 */
function bundleIsFresh(root) {
  const base = root.endsWith('/') ? root : `${root}/`;
  try {
    if (!statSync(`${base}dist/cli/berth.cjs`, { throwIfNoEntry: false })) return false;
    const inputs = JSON.parse(readFileSync(`${base}dist/cli/inputs.json`, 'utf8'));
    let n = 0;
    for (const file in inputs) {
      const [size, mtimeMs] = inputs[file];
      const s = statSync(base + file, { throwIfNoEntry: false });
      if (!s || s.size !== size || s.mtimeMs !== mtimeMs) return false;
      n++;
    }
    return n > 0;
  } catch {
    return false;
  }
}

// The code cache lives in the user's cache directory ($XDG_CACHE_HOME or ~/.cache, then berth/),
// named after the Node.js version and the bundle's size and mtime, so a rebuilt bundle or another
// Node gets its own. It is used only from a directory (and as a file) owned by the user and
// writable by nobody else: code cache data is code. V8 rejects data made for another source or
// other V8 flags, and the file is then rewritten. It is (re)written at exit, atomically, when it
// was missing or rejected, and when the run's command (the first argument that is not a flag) is
// not among those it was made after yet (at most 16: then it stays as it is).
//
// The bundle must not use a dynamic import(): a vm.Script needs --experimental-vm-modules for it
// (scripts/build-cli.mjs loads the registry CLI with require(), built-ins come from
// process.getBuiltinModule).
const MAX_VERBS = 16;

/** The user's berth cache directory, if it is safe to use (ours, not writable by others). */
function cacheDir(env = process.env) {
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : undefined);
  if (!base) return undefined;
  const dir = join(base, 'berth');
  try {
    if (ownedAndPrivate(dir)) return dir; // the usual case: one lstat
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return ownedAndPrivate(dir) ? dir : undefined;
  } catch {
    return undefined;
  }
}

function ownedAndPrivate(path) {
  const st = lstatSync(path, { throwIfNoEntry: false });
  return !!st && !st.isSymbolicLink() && st.uid === process.getuid?.() && (st.mode & 0o022) === 0;
}

function firstVerb(argv) {
  return argv.find((a) => !a.startsWith('-')) ?? '-';
}

/**
 * require() of a CommonJS file, compiled with the code cache; the cache updated at exit. The file
 * is read as Latin-1 (scripts/build-cli.mjs makes the bundle pure ASCII): V8 then holds it as a
 * one-byte string, half the memory of a two-byte one.
 */
function loadWithCodeCache(file, argv, env = process.env) {
  const fd = openSync(file, 'r');
  let st;
  let source;
  try {
    st = fstatSync(fd);
    source = readFileSync(fd, 'latin1');
  } finally {
    closeSync(fd);
  }
  const dir = cacheDir(env);
  let cacheFile;
  let cachedData;
  let verbs = [];
  if (dir) {
    cacheFile = join(dir, `cli-${process.version}-${st.size}-${Math.trunc(st.mtimeMs)}.v8`);
    try {
      if (ownedAndPrivate(cacheFile)) {
        cachedData = readFileSync(cacheFile);
        verbs = readFileSync(`${cacheFile}.verbs`, 'latin1').split('\n').filter(Boolean);
      }
    } catch {
      cachedData = undefined;
    }
  }
  const vm = require('node:vm');
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  const verb = firstVerb(argv);
  if (cacheFile && (!cachedData || script.cachedDataRejected || (!verbs.includes(verb) && verbs.length < MAX_VERBS))) {
    const keep = cachedData && !script.cachedDataRejected ? verbs : [];
    process.once('exit', () => {
      try {
        const tmp = `${cacheFile}.${process.pid}.tmp`;
        writeFileSync(tmp, script.createCachedData(), { mode: 0o600 });
        writeFileSync(`${tmp}.verbs`, [...new Set([...keep, verb])].join('\n') + '\n', { mode: 0o600 });
        renameSync(`${tmp}.verbs`, `${cacheFile}.verbs`);
        renameSync(tmp, cacheFile);
        // Caches of earlier bundles (or other Node versions) are of no more use.
        const mine = cacheFile.slice(dir.length + 1);
        for (const f of readdirSync(dir)) {
          if (/^cli-v.*\.v8(\.verbs)?$/.test(f) && !f.startsWith(mine)) rmSync(join(dir, f), { force: true });
        }
      } catch {
        // a cache we cannot write only costs speed
      }
    });
  }
  const module = { exports: {} };
  const here = dirname(file);
  // The bundle's require(): built-ins straight from Node (no node:module, no resolution), any
  // other path relative to the bundle (the registry CLI, kept outside it).
  const bundleRequire = (id) => process.getBuiltinModule(id) ?? require(id.startsWith('.') ? join(here, id) : id);
  script.runInThisContext()(module.exports, bundleRequire, module, file, here);
  return module.exports;
}

/** Run the CLI with this process's arguments. */
function launch() {
  const root = dirname(__dirname);
  const argv = process.argv.slice(2);
  if (process.env.BERTH_CLI_FROM_SOURCE !== '1' && bundleIsFresh(root)) {
    loadWithCodeCache(join(root, 'dist', 'cli', 'berth.cjs'), argv).main(argv);
    return;
  }
  // The sources: Node's own compile cache, in the user's private cache directory (never a
  // shared one such as /tmp: code cache data is code), unless NODE_COMPILE_CACHE names one.
  const { enableCompileCache } = require('node:module');
  const dir = process.env.NODE_COMPILE_CACHE ? undefined : cacheDir();
  try {
    if (process.env.NODE_COMPILE_CACHE || dir) enableCompileCache?.(dir && join(dir, 'node-compile-cache'));
  } catch {
    // a read-only or missing cache directory only costs speed
  }
  const { pathToFileURL } = require('node:url');
  import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href).then((m) => m.main(argv));
}

if (require.main === module) launch();

module.exports = { bundleIsFresh, loadWithCodeCache, cacheDir, launch };
