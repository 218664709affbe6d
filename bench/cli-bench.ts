// Benchmark of the CLI's own cost (issue 3): `run --rm --network none busybox true` against an
// instant fake daemon, so the figures are the clients' start-up and HTTP work, not the engine's.
//
//   berth   bin/berth (the bundle, rebuilt first from the sources being measured)
//   docker  /usr/local/bin/docker, DOCKER_HOST pointing at the same fake
//   node    bare `node -e 0`: the floor of any Node.js CLI
//
// Timed with hyperfine (-N: no shell); with --rounds N the three commands are timed N times in
// turn (interleaved, so load from other work on the machine hits them alike) and the medians are
// taken over all rounds' runs. Prints medians and the ratio berth/docker. Needs no root.
//
// With --baseline DIR, DIR/bin/berth (another checkout with its bundle built, e.g. an older
// commit's tree) is timed in the same rounds as "baseline": before/after figures under the same
// load. --output pipe gives the commands a pipe for stdout (hyperfine's default is /dev/null), as
// bench/run-bench.ts does; stdin is /dev/null either way.
//
// --alternate times without hyperfine: the commands run one after the other, one run each, for
// rounds x runs turns (the order rotating), each with a code cache directory of its own, timed
// from spawn to exit here (which adds the same ~1 ms of spawning to every command). Load from
// other work then falls on all commands alike, run by run; hyperfine's blocks of one command can
// catch a burst of it alone.
//
// Usage: node bench/cli-bench.ts [--runs 40] [--rounds 1] [--baseline DIR] [--output null|pipe] [--alternate] [--json out.json]
import { spawn } from 'node:child_process';
import { createServer, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { parseArgs } from 'node:util';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, BERTH, NODE, REPO_ROOT } from '../test/helpers/fixtures.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '40' },
    rounds: { type: 'string', default: '1' },
    json: { type: 'string' },
    baseline: { type: 'string' },
    output: { type: 'string', default: 'null' },
    alternate: { type: 'boolean', default: false },
  },
});
const RUNS = Number(values.runs);
const ROUNDS = Number(values.rounds);
const DOCKER = '/usr/local/bin/docker';
if (values.output !== 'null' && values.output !== 'pipe') throw new Error('--output: null or pipe');

/**
 * A daemon that answers `run --rm` at once: _ping, create, attach (101, then closed when the
 * container "exits"), wait (headers at once, the exit status after start) and start. Anything
 * else is a 404, so a client that sends more calls fails the bench instead of timing them.
 */
function startFakeDaemon(sock: string): Promise<() => Promise<void>> {
  const id = 'a'.repeat(64);
  const waiters: ServerResponse[] = [];
  const attached: Duplex[] = [];
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = (req.url ?? '/').replace(/^\/v[\d.]+/, '');
      if (path.startsWith('/_ping')) {
        res.writeHead(200, { 'API-Version': '1.44', OSType: 'linux', 'Content-Type': 'text/plain' });
        res.end(req.method === 'HEAD' ? undefined : 'OK');
      } else if (path.startsWith('/containers/create')) {
        res.writeHead(201, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ Id: id, Warnings: [] }));
      } else if (path.includes('/wait')) {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.flushHeaders();
        waiters.push(res);
      } else if (path.includes('/start')) {
        res.writeHead(204);
        res.end();
        setTimeout(() => {
          for (const s of attached.splice(0)) s.end();
          for (const w of waiters.splice(0)) w.end('{"StatusCode":0,"Error":null}\n');
        }, 1);
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: `fake daemon: no route ${req.method} ${path}` }));
      }
    });
  });
  server.on('upgrade', (_req, socket: Duplex) => {
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    attached.push(socket);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () =>
      resolve(() => {
        server.closeAllConnections();
        return new Promise((r) => server.close(() => r()));
      }),
    );
  });
}

interface HyperfineResult {
  results: { command: string; times: number[] }[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// The berth CLI as users run it after scripts/setup: the bundle, rebuilt from these sources (a
// stale bundle makes bin/berth fall back to the TypeScript sources).
{
  const b = await run(NODE, [join(REPO_ROOT, 'scripts', 'build-cli.mjs')]);
  if (b.code !== 0) throw new Error(`scripts/build-cli.mjs failed: ${b.stderr}`);
}

const work = await mkdtemp(join(tmpdir(), 'berth-cli-bench-'));
const sock = join(work, 'fake.sock');
const closeDaemon = await startFakeDaemon(sock);
try {
  const host = `unix://${sock}`;
  const env = {
    ...process.env,
    BERTH_HOST: host,
    DOCKER_HOST: host,
    DOCKER_CONFIG: join(work, 'docker-config'),
    XDG_CACHE_HOME: join(work, 'cache'),
  };
  const commands: Record<string, string> = {
    berth: `${BERTH} run --rm --network none busybox true`,
    docker: `${DOCKER} run --rm --network none busybox true`,
    node: `${NODE} -e 0`,
  };
  if (values.baseline) commands.baseline = `${join(values.baseline, 'bin', 'berth')} run --rm --network none busybox true`;
  // A failing command would time its error path: check each once first.
  for (const [name, cmd] of Object.entries(commands)) {
    const [file, ...args] = cmd.split(' ');
    const r = await run(file!, args, { env, timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`${name}: exit ${r.code}: ${r.stderr}`);
  }
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(commands).map((k) => [k, []]));
  /** One run of a command, spawn to exit, stdin and stderr /dev/null, stdout as --output says. */
  const timeOnce = async (name: string): Promise<number> => {
    const [file, ...args] = commands[name]!.split(' ');
    const t = performance.now();
    const child = spawn(file!, args, { env: { ...env, XDG_CACHE_HOME: join(work, `cache-${name}`) }, stdio: ['ignore', values.output === 'pipe' ? 'pipe' : 'ignore', 'ignore'] });
    child.stdout?.resume();
    const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve));
    const ms = performance.now() - t;
    if (code !== 0) throw new Error(`${name}: exit ${code}`);
    return ms;
  };
  const names = Object.keys(commands);
  if (values.alternate) {
    for (const name of names) for (let i = 0; i < 5; i++) await timeOnce(name);
    for (let turn = 0; turn < RUNS * ROUNDS; turn++) {
      for (let j = 0; j < names.length; j++) {
        const name = names[(turn + j) % names.length]!;
        times[name]!.push(await timeOnce(name));
      }
    }
  }
  for (let round = 0; round < (values.alternate ? 0 : ROUNDS); round++) {
    const out = join(work, `round${round}.json`);
    const args = ['-N', '-w', '5', '-r', String(RUNS), `--output=${values.output}`, '--export-json', out, '--style', 'none'];
    for (const [name, cmd] of Object.entries(commands)) args.push('-n', name, cmd);
    const r = await run('hyperfine', args, { env, timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`hyperfine: exit ${r.code}: ${r.stderr}`);
    const res = JSON.parse(await readFile(out, 'utf8')) as HyperfineResult;
    for (const x of res.results) times[x.command]!.push(...x.times.map((t) => t * 1000));
  }
  const med = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)])) as Record<string, number>;
  const summary = {
    runs: RUNS * ROUNDS,
    rounds: ROUNDS,
    medianMs: Object.fromEntries(Object.entries(med).map(([k, v]) => [k, Number(v.toFixed(1))])),
    berthOverDocker: Number((med.berth! / med.docker!).toFixed(2)),
    berthOverNode: Number((med.berth! / med.node!).toFixed(2)),
    ...(med.baseline ? { baselineOverDocker: Number((med.baseline / med.docker!).toFixed(2)), berthOverBaseline: Number((med.berth! / med.baseline).toFixed(2)) } : {}),
  };
  console.log(`run --rm --network none busybox true against an instant fake daemon (${summary.runs} runs each${values.alternate ? ', alternating' : ''}, stdout to ${values.output === 'pipe' ? 'a pipe' : '/dev/null'}, medians):`);
  for (const [k, v] of Object.entries(summary.medianMs)) console.log(`  ${k.padEnd(7)} ${v.toFixed(1).padStart(6)} ms`);
  console.log(`  berth/docker ${summary.berthOverDocker}x   berth - node -e 0: ${(med.berth! - med.node!).toFixed(1)} ms`);
  if (summary.berthOverBaseline !== undefined) console.log(`  baseline/docker ${summary.baselineOverDocker}x   berth/baseline ${summary.berthOverBaseline}x`);
  if (values.json) await writeFile(values.json, JSON.stringify(summary, null, 2) + '\n');
} finally {
  await closeDaemon();
  await rm(work, { recursive: true, force: true });
}
