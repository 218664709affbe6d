// The berth CLI's launcher (bin/berth execs it on the project's Node.js 24). It runs the bundled
// CLI (dist/cli/berth.cjs, made by scripts/build-cli.mjs) while it matches the sources
// (bin/cli-bundle.cjs), and the TypeScript sources otherwise (BERTH_CLI_FROM_SOURCE=1 forces
// them). Plain CommonJS on purpose: an ES module entry costs the ESM loader's set-up (~1.5 ms of
// every run), loading any .ts file starts Node's type stripper (~35 ms), and an ES module import
// of 'node:fs' evaluates its lazy getters.
//
// The bundle is compiled through vm.Script with a V8 code cache of our own (bin/cli-cache.cjs),
// made after a run rather than right after compiling as Node's compile cache is: it then holds
// the functions that run used, which V8 otherwise compiles lazily on every start (~6 ms of a
// `run --rm`).
'use strict';
const { enableCompileCache } = require('node:module');
const { join } = require('node:path');
const { pathToFileURL } = require('node:url');
const { bundleIsFresh } = require('./cli-bundle.cjs');

const root = join(__dirname, '..');
const argv = process.argv.slice(2);
if (process.env.BERTH_CLI_FROM_SOURCE !== '1' && bundleIsFresh(pathToFileURL(root + '/'))) {
  require('./cli-cache.cjs').loadWithCodeCache(join(root, 'dist', 'cli', 'berth.cjs'), argv).main(argv);
} else {
  try {
    enableCompileCache?.();
  } catch {
    // a read-only or missing cache directory only costs speed
  }
  import(pathToFileURL(join(root, 'src', 'cli', 'main.ts')).href).then((m) => m.main(argv));
}
