// Entry point of the `berth` CLI. bin/berth.cjs calls `main()` from the bundle that
// scripts/build-cli.mjs makes of this module (dist/cli/berth.cjs), or from this file when the
// bundle is missing or older than the sources. Run directly (`node src/cli/main.ts`), it runs
// itself. Everything else lives in cli.ts.
import { runCli, processIO } from './cli.ts';

export async function main(argv: string[]): Promise<never> {
  const io = processIO();
  const code = await runCli(argv, io);
  // Only the streams the run made (each is made on first use) can hold output.
  const flush = (s: NodeJS.WritableStream) => new Promise<void>((r) => (s.write('') ? r() : s.once('drain', () => r())));
  for (const s of io.outputs()) await flush(s);
  process.exit(code);
}

// (No top-level await: the bundle is CommonJS, where import.meta is empty. In the bundle
// import.meta.filename is undefined, so it never runs itself.)
if (import.meta.filename !== undefined && import.meta.filename === process.argv[1]) void main(process.argv.slice(2));
