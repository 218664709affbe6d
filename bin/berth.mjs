// The berth CLI's launcher (bin/berth execs it on the project's Node.js 24). It turns on Node's
// on-disk compile cache, then runs the bundled CLI (dist/cli/berth.cjs, made by
// scripts/build-cli.mjs) while it matches the sources (bin/cli-bundle.mjs), and the TypeScript
// sources otherwise (BERTH_CLI_FROM_SOURCE=1 forces them). Plain JavaScript, and built-ins
// through process.getBuiltinModule, on purpose: loading any .ts file starts Node's type
// stripper (~35 ms), and an ES module import of 'node:fs' evaluates its lazy stream getters.
import { bundleIsFresh } from './cli-bundle.mjs';

const { enableCompileCache, createRequire } = process.getBuiltinModule('node:module');
try {
  enableCompileCache?.();
} catch {
  // a read-only or missing cache directory only costs speed
}

const { main } = process.env.BERTH_CLI_FROM_SOURCE !== '1' && bundleIsFresh(new URL('../', import.meta.url))
  ? createRequire(import.meta.url)('../dist/cli/berth.cjs')
  : await import('../src/cli/main.ts');
await main(process.argv.slice(2));
