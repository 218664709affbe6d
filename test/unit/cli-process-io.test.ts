// The CLI's own stdio (processIO in src/cli/cli.ts), through bin/berth as users run it: each
// stream is made on first use (a run without -i never builds stdin, ~4 ms when it is a file),
// stdin still reaches the container with -i, and a closed stdout pipe ends the CLI quietly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { tempDir, run, BERTH } from '../helpers/fixtures.ts';
import { startFakeDaemon, sendJson, frame, type Recorded } from './cli-fake-daemon.ts';

const CID = 'c'.repeat(64);

/**
 * A daemon for `run`: the attach stream echoes what the container's stdin gets (or, without
 * `output`, says nothing), then ends at start.
 */
async function runDaemon(output = true) {
  let startedAt: (() => void) | undefined;
  const started = new Promise<void>((r) => (startedAt = r));
  return startFakeDaemon(
    (r: Recorded, res) => {
      if (r.path === '/containers/create') return sendJson(res, 201, { Id: CID });
      if (r.path.endsWith('/wait')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        void started.then(() => setTimeout(() => res.end('{"StatusCode":0}\n'), 20));
        return;
      }
      if (r.path.endsWith('/start')) {
        res.writeHead(204);
        res.end();
        startedAt!();
      }
    },
    (r: Recorded, socket: Duplex) => {
      const stdin = r.query.get('stdin') === '1';
      let got = '';
      socket.on('data', (c: Buffer) => (got += c.toString()));
      const finish = () => {
        if (output) socket.write(frame(1, `out ${stdin ? `stdin=${got}` : 'no stdin'}\n`));
        socket.end();
      };
      if (stdin) socket.once('end', finish);
      else void started.then(() => setTimeout(finish, 5));
    },
  );
}

/** Runs bin/berth with a preloaded probe that counts reads of process.stdin and process.stdout. */
async function berthWithProbe(dir: string, host: string, args: string[], input = '') {
  const probe = join(dir, 'probe.cjs');
  const out = join(dir, 'reads');
  await writeFile(probe, `const n = { stdin: 0, stdout: 0 };
for (const name of ['stdin', 'stdout']) {
  const d = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, { configurable: true, enumerable: d.enumerable, get() { n[name]++; return d.get.call(process); } });
}
process.on('exit', () => require('node:fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(n)));
`);
  const r = await run(BERTH, args, {
    input,
    env: { ...process.env, BERTH_HOST: host, XDG_CACHE_HOME: join(dir, 'cache'), NODE_OPTIONS: `--require ${probe}` },
    timeoutMs: 30_000,
  });
  const reads = JSON.parse(await readFile(out, 'utf8')) as { stdin: number; stdout: number };
  return { ...r, stdinReads: reads.stdin, stdoutReads: reads.stdout };
}

test('berth run without -i never builds stdin; with -i stdin reaches the container', async () => {
  await using dir = await tempDir();
  const d = await runDaemon();
  try {
    const plain = await berthWithProbe(dir.path, d.host, ['run', '--rm', 'img', 'true'], 'unread');
    assert.equal(plain.code, 0, plain.stderr);
    assert.equal(plain.stdout, 'out no stdin\n');
    assert.equal(plain.stdinReads, 0, 'process.stdin never read');

    const interactive = await berthWithProbe(dir.path, d.host, ['run', '--rm', '-i', 'img', 'cat'], 'hello');
    assert.equal(interactive.code, 0, interactive.stderr);
    assert.equal(interactive.stdout, 'out stdin=hello\n');
    assert.ok(interactive.stdinReads > 0);
  } finally {
    await d.close();
  }
});

test('berth run with nothing to print never builds stdout when it is a pipe (~1 ms)', async () => {
  await using dir = await tempDir();
  const d = await runDaemon(false);
  try {
    const silent = await berthWithProbe(dir.path, d.host, ['run', '--rm', 'img', 'true']);
    assert.equal(silent.code, 0, silent.stderr);
    assert.equal(silent.stdout, '');
    assert.equal(silent.stdoutReads, 0, 'process.stdout never read');
    assert.equal(silent.stdinReads, 0);
  } finally {
    await d.close();
  }
});

test('berth with its stdout pipe closed early exits 0 and prints nothing to stderr (EPIPE, as docker)', async () => {
  await using dir = await tempDir();
  const many = Array.from({ length: 4000 }, (_, i) => ({ Id: `${i}`.padStart(64, 'a'), Names: [`/n${i}`], Image: 'busybox', Command: 'sleep 1', Created: 0, State: 'running', Status: 'Up', Ports: [], Labels: {} }));
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/containers/json') return sendJson(res, 200, many);
  });
  try {
    const child = spawn(BERTH, ['ps', '--no-trunc'], { env: { ...process.env, BERTH_HOST: d.host, XDG_CACHE_HOME: join(dir.path, 'cache') }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.once('data', () => child.stdout.destroy()); // `| head -c1`
    const code = await new Promise<number | null>((r) => child.on('close', r));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  } finally {
    await d.close();
  }
});
