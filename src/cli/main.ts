// Entry point of the `berth` CLI (bin/berth). Kept tiny: it turns on Node's on-disk compile
// cache before the CLI's modules load, so later runs skip most of the parse/compile (and
// type-stripping) work of startup. Everything else lives in cli.ts.
import { enableCompileCache } from 'node:module';
import { pathToFileURL } from 'node:url';

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    enableCompileCache?.();
  } catch {
    // a read-only or missing cache directory only costs speed
  }
  const { runCli, processIO } = await import('./cli.ts');
  // Broken pipes (`berth images | head -1`) end the program quietly, as in docker.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
  });
  const code = await runCli(process.argv.slice(2), processIO());
  const flush = (s: NodeJS.WritableStream) => new Promise<void>((r) => (s.write('') ? r() : s.once('drain', () => r())));
  await flush(process.stdout);
  await flush(process.stderr);
  process.exit(code);
}
