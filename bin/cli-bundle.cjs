// Whether the CLI bundle (dist/cli/berth.cjs, made by scripts/build-cli.mjs) was built from the
// sources now in the checkout: every input recorded in dist/cli/inputs.json still has the size
// and mtime it had at build time. Anything missing or unreadable means "not fresh", so the
// launcher falls back to the TypeScript sources rather than run stale code.
'use strict';
const { readFileSync, statSync } = require('node:fs');

/** @param {URL} root the checkout's root directory URL (ending in '/') */
function bundleIsFresh(root) {
  try {
    if (!statSync(new URL('dist/cli/berth.cjs', root), { throwIfNoEntry: false })) return false;
    const inputs = JSON.parse(readFileSync(new URL('dist/cli/inputs.json', root), 'utf8'));
    const entries = Object.entries(inputs);
    if (entries.length === 0) return false;
    for (const [file, [size, mtimeMs]] of entries) {
      const s = statSync(new URL(file, root), { throwIfNoEntry: false });
      if (!s || s.size !== size || s.mtimeMs !== mtimeMs) return false;
    }
    return true;
  } catch {
    return false;
  }
}

module.exports = { bundleIsFresh };
