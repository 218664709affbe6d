// Loading the CLI bundle with a V8 code cache made after a run (see bin/berth.cjs).
//
// The cache lives in the user's cache directory ($XDG_CACHE_HOME or ~/.cache, then berth/),
// named after the Node.js version and the bundle's size and mtime, so a rebuilt bundle or
// another Node gets its own. It is used only from a directory (and as a file) owned by the user
// and writable by nobody else: code cache data is code. V8 rejects data made for another source
// or other flags, and the file is then rewritten. It is (re)written at exit, atomically, when it
// was missing or rejected, and when the run's command (the first argument that is not a flag) is
// not among those it was made after yet (at most 16: then it stays as it is).
//
// The bundle must not use a dynamic import(): a vm.Script needs --experimental-vm-modules for it
// (scripts/build-cli.mjs loads the registry CLI with require(), built-ins come from
// process.getBuiltinModule).
'use strict';
const vm = require('node:vm');
const { createRequire } = require('node:module');
const { basename, dirname, join } = require('node:path');
const { lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } = require('node:fs');

const MAX_VERBS = 16;

/** The user's berth cache directory, if it is safe to use (ours, not writable by others). */
function cacheDir(env = process.env) {
  const base = env.XDG_CACHE_HOME || (env.HOME ? join(env.HOME, '.cache') : undefined);
  if (!base) return undefined;
  const dir = join(base, 'berth');
  try {
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

/** require() of a CommonJS file, compiled with the code cache; the cache updated at exit. */
function loadWithCodeCache(file, argv, env = process.env) {
  const source = readFileSync(file, 'utf8');
  const dir = cacheDir(env);
  let cacheFile;
  let cachedData;
  let verbs = [];
  if (dir) {
    const st = statSync(file);
    cacheFile = join(dir, `cli-${process.version}-${st.size}-${Math.trunc(st.mtimeMs)}.v8`);
    try {
      if (ownedAndPrivate(cacheFile)) {
        cachedData = readFileSync(cacheFile);
        verbs = readFileSync(`${cacheFile}.verbs`, 'utf8').split('\n').filter(Boolean);
      }
    } catch {
      cachedData = undefined;
    }
  }
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
        const mine = basename(cacheFile);
        for (const f of readdirSync(dir)) {
          if (/^cli-v.*\.v8(\.verbs)?$/.test(f) && !f.startsWith(mine)) rmSync(join(dir, f), { force: true });
        }
      } catch {
        // a cache we cannot write only costs speed
      }
    });
  }
  const module = { exports: {} };
  script.runInThisContext()(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

module.exports = { loadWithCodeCache, cacheDir };
