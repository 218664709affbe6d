// Entry point of the `berth` CLI. bin/berth.cjs calls `main()` from the bundle that
// scripts/build-cli.mjs makes of this module (dist/cli/berth.cjs), or from this file when the
// bundle is missing or older than the sources. Run directly (`node src/cli/main.ts`), it runs
// itself. Everything else lives in cli.ts.
import { pathToFileURL } from 'node:url';
import { runCli, processIO } from './cli.ts';

export async function main(argv: string[]): Promise<never> {
  // Broken pipes (`berth images | head -1`) end the program quietly, as in docker.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const code = await runCli(argv, processIO());
  const flush = (s: NodeJS.WritableStream) => new Promise<void>((r) => (s.write('') ? r() : s.once('drain', () => r())));
  await flush(process.stdout);
  await flush(process.stderr);
  process.exit(code);
}

// (No top-level await: the bundle is CommonJS, where import.meta.url is undefined.)
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) void main(process.argv.slice(2));
