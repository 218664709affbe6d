// Bundles the berth CLI (src/cli/main.ts and everything it imports) into one CommonJS file,
// dist/cli/berth.cjs, so a CLI run loads one pre-stripped file instead of ~40 TypeScript
// modules: no type stripping (Node's amaro WebAssembly alone costs ~35 ms per start), no
// per-module resolution, and Node built-ins reached through require(), which (unlike an ES
// module import of 'node:fs' or 'node:http') does not evaluate their lazy getters (fs streams,
// readline, the bundled undici: 10-40 ms). Beside it, inputs.json records each source file's
// size and mtime; bin/berth.cjs runs the bundle only while every input still matches, and the
// TypeScript sources otherwise, so an edited checkout never runs stale code.
//
// `berth registry` stays outside the bundle: its import is pointed at src/registry/cli.ts
// (relative to dist/cli/, so the checkout can move).
//
// Run by scripts/setup and scripts/test; by hand: node_modules/node/bin/node scripts/build-cli.mjs
import { build } from 'esbuild';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const LAZY_FS_PROMISES = ['access', 'appendFile', 'chmod', 'chown', 'copyFile', 'cp', 'lchown', 'link', 'lstat', 'lutimes', 'mkdir', 'mkdtemp', 'open', 'opendir', 'readdir', 'readFile', 'readlink', 'realpath', 'rename', 'rm', 'rmdir', 'stat', 'statfs', 'symlink', 'truncate', 'unlink', 'utimes', 'writeFile'];
const LAZY_OS = ['homedir', 'tmpdir', 'hostname', 'userInfo', 'platform', 'arch', 'cpus', 'totalmem', 'freemem', 'release', 'type'];
const out = join(root, 'dist', 'cli');
await mkdir(out, { recursive: true });

const registryEntry = join(root, 'src', 'registry', 'cli.ts');
const tmp = join(out, `.berth.${process.pid}.cjs`);
const result = await build({
  absWorkingDir: root,
  entryPoints: ['src/cli/main.ts'],
  outfile: tmp,
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node24',
  packages: 'bundle',
  metafile: true,
  legalComments: 'none',
  charset: 'ascii',
  logLevel: 'warning',
  // main.ts's "run when executed directly" check reads import.meta.url; in the bundle it is
  // meant to be empty (bin/berth.cjs calls main() itself).
  logOverride: { 'empty-import-meta': 'silent' },
  plugins: [{
    // Built-ins a CLI run rarely needs before its first request, loaded on first use instead:
    // node:fs/promises costs ~1 ms to load (it pulls in readline, the REPL history and the fs
    // watchers), node:os ~0.3 ms (credentials.ts's homedir(), for the config directory). Imports
    // of them resolve to modules of thin wrappers that require the real one on the first call
    // (fs.promises is a lazy getter of node:fs). An export missing here fails the build: "No
    // matching export".
    name: 'lazy-builtins',
    setup(b) {
      b.onResolve({ filter: /^node:(fs\/promises|os)$/ }, (args) => ({ path: args.path, namespace: 'berth-lazy' }));
      b.onLoad({ filter: /.*/, namespace: 'berth-lazy' }, (args) => ({
        loader: 'js',
        contents: args.path === 'node:os'
          ? LAZY_OS.map((n) => `export const ${n} = (...a) => require('node:os').${n}(...a);`).join('\n')
          : [
            "const fs = require('node:fs');",
            ...LAZY_FS_PROMISES.map((n) => `export const ${n} = (...a) => fs.promises.${n}(...a);`),
            'export const constants = fs.constants;',
          ].join('\n'),
      }));
    },
  }, {
    name: 'registry-outside',
    setup(b) {
      // Loaded with require() (Node 24 requires an ES module without top-level await, type
      // stripped), not import(): bin/berth.cjs compiles the bundle through vm.Script, where a
      // dynamic import() needs --experimental-vm-modules.
      b.onResolve({ filter: /\/registry\/cli\.ts$/ }, (args) =>
        join(args.resolveDir, args.path) === registryEntry ? { path: 'registry-cli', namespace: 'berth-registry' } : undefined);
      b.onLoad({ filter: /.*/, namespace: 'berth-registry' }, () => ({ loader: 'js', contents: "module.exports = require('../../src/registry/cli.ts');" }));
      b.onResolve({ filter: /^\.\.\/\.\.\/src\/registry\/cli\.ts$/, namespace: 'berth-registry' }, (args) => ({ path: args.path, external: true }));
    },
  }],
});

// bin/berth.cjs reads the bundle as Latin-1, so that V8 holds it as a one-byte string (half the
// memory of a two-byte one, and no UTF-8 decoding): it must be ASCII. esbuild escapes non-ASCII
// characters in strings and identifiers (charset: 'ascii'), not in regular expression literals:
// those are escaped here (\uXXXX per UTF-16 unit means the same there, with or without the u flag).
{
  const text = await readFile(tmp, 'utf8');
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) await writeFile(tmp, ascii);
}

const inputs = {};
for (const file of Object.keys(result.metafile.inputs).sort()) {
  if (/^berth-(lazy|registry):/.test(file)) continue; // the plugins' modules above, not files
  const s = await stat(join(root, file));
  inputs[file] = [s.size, s.mtimeMs];
}
await writeFile(join(out, 'inputs.json.tmp'), JSON.stringify(inputs) + '\n');
await rename(tmp, join(out, 'berth.cjs'));
await rename(join(out, 'inputs.json.tmp'), join(out, 'inputs.json'));
console.log(`berth: CLI bundled into ${relative(root, join(out, 'berth.cjs'))} (${Object.keys(inputs).length} inputs)`);
