// Build benchmark: berth (POST /build through berthd, context packed by berth's client code)
// vs `podman build` (buildah) on the same Dockerfiles and contexts.
//
//   node_modules/node/bin/node bench/build-bench.ts [--runs N] [--only four,many,multi]
//
// Scenarios (base image: the busybox-static image of test/helpers/fixtures.ts, present in both
// stores before timing):
//   four   FROM, RUN, COPY of a 20 MB file, RUN
//   many   COPY of 10,000 small files (100 dirs x 100), RUN over them
//   multi  two independent stages (each a RUN of ~0.5 s of shell work + a small layer) and a
//          final stage copying from both
// Measures (each timed end to end: berth = pack context + POST /build until the stream ends;
// podman = the whole `podman build` command):
//   cold     --no-cache build (every step executed; base image present)
//   noop     rebuild with everything cached
//   last     the last step changed (a counter in its command), everything before cached
// Runs are interleaved berth/podman so drift hits both. Medians; ratio = podman/berth (> 1: berth
// faster). podman runs with its own --root/--runroot, runc, cgroupfs, --pull=never, defaults
// otherwise (sequential stages: --jobs 1 is podman's default).
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { api, busyboxImage, importBusybox, run, startDaemon, unmountUnder, type TestDaemon } from '../test/helpers/fixtures.ts';
import { packContext } from '../src/build/context-tar.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, only: { type: 'string', default: 'four,many,multi' } } });
const RUNS = Number(values.runs);
const ONLY = new Set(values.only!.split(','));

interface Scenario {
  name: string;
  /** Write the context; `n` varies the last step. */
  dockerfile(n: number): string;
  files(dir: string): Promise<void>;
}

const SCENARIOS: Scenario[] = [
  {
    name: 'four',
    dockerfile: (n) => `FROM busybox\nRUN echo one > /one && mkdir /data\nCOPY big.bin /data/big.bin\nRUN wc -c /data/big.bin > /size && echo ${n}\n`,
    files: async (dir) => writeFile(join(dir, 'big.bin'), randomBytes(20 * 1024 * 1024)),
  },
  {
    name: 'many',
    dockerfile: (n) => `FROM busybox\nCOPY files /files\nRUN find /files -type f | wc -l > /count && echo ${n}\n`,
    files: async (dir) => {
      for (let d = 0; d < 100; d++) {
        const sub = join(dir, 'files', `d${d}`);
        await mkdir(sub, { recursive: true });
        await Promise.all(Array.from({ length: 100 }, (_, f) => writeFile(join(sub, `f${f}.txt`), `file ${d}/${f}\n`.repeat(4))));
      }
    },
  },
  {
    name: 'multi',
    dockerfile: (n) => [
      'FROM busybox AS a',
      'RUN i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo a > /a',
      'FROM busybox AS b',
      'RUN i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done; echo b > /b',
      'FROM busybox',
      'COPY --from=a /a /a',
      'COPY --from=b /b /b',
      `RUN cat /a /b > /ab && echo ${n}`,
    ].join('\n') + '\n',
    files: async () => {},
  },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function berthBuild(d: TestDaemon, dir: string, query: string): Promise<number> {
  const t0 = performance.now();
  const chunks: Buffer[] = [];
  for await (const c of packContext(dir) as AsyncIterable<Buffer>) chunks.push(c);
  const r = await api(d.socket, 'POST', `/build?${query}`, Buffer.concat(chunks), { 'Content-Type': 'application/x-tar' });
  const ms = performance.now() - t0;
  if (r.status !== 200 || r.text().includes('"errorDetail"')) throw new Error(`berth build failed: ${r.text().slice(-800)}`);
  return ms;
}

class Podman {
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }
  args(...rest: string[]): string[] {
    return ['--root', join(this.base, 'root'), '--runroot', join(this.base, 'runroot'), '--tmpdir', join(this.base, 'tmp'), '--storage-driver', 'overlay', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...rest];
  }
  async run(...rest: string[]): Promise<string> {
    const r = await run('podman', this.args(...rest), { timeoutMs: 600000 });
    if (r.code !== 0) throw new Error(`podman ${rest.join(' ')}: ${r.stderr.slice(-800)}`);
    return r.stdout;
  }
  async build(dir: string, extra: string[]): Promise<number> {
    const t0 = performance.now();
    await this.run('build', '--pull=never', '-t', 'bench:latest', ...extra, dir);
    return performance.now() - t0;
  }
  async cleanup(): Promise<void> {
    await run('podman', this.args('system', 'reset', '--force'), { timeoutMs: 120000 });
    await unmountUnder(this.base);
    await rm(this.base, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const results: Array<{ scenario: string; measure: string; berth: number; podman: number }> = [];
  const bb = await busyboxImage();
  for (const sc of SCENARIOS.filter((s) => ONLY.has(s.name))) {
    const ctx = await mkdtemp(join(tmpdir(), `berth-bench-${sc.name}-`));
    const d = await startDaemon();
    const podman = new Podman(await mkdtemp(join(tmpdir(), 'berth-bench-podman-')));
    try {
      await sc.files(ctx);
      await importBusybox(d);
      await run('skopeo', ['copy', '-q', `oci:${bb.dir}:${bb.tag}`, `containers-storage:[overlay@${join(podman.base, 'root')}+${join(podman.base, 'runroot')}]docker.io/library/busybox:latest`]);
      let n = 0;
      const times: Record<string, { berth: number[]; podman: number[] }> = { cold: { berth: [], podman: [] }, noop: { berth: [], podman: [] }, last: { berth: [], podman: [] } };
      // warm-up (also fills both caches for the first noop run)
      await writeFile(join(ctx, 'Dockerfile'), sc.dockerfile(n));
      await berthBuild(d, ctx, 't=bench:latest');
      await podman.build(ctx, []);
      for (let i = 0; i < RUNS; i++) {
        const order: Array<'berth' | 'podman'> = i % 2 ? ['podman', 'berth'] : ['berth', 'podman'];
        for (const who of order) {
          // cold: nothing reused
          await writeFile(join(ctx, 'Dockerfile'), sc.dockerfile(n));
          times.cold![who].push(who === 'berth' ? await berthBuild(d, ctx, 't=bench:latest&nocache=1') : await podman.build(ctx, ['--no-cache']));
          // no-op: everything cached (the cold build above refreshed the cache)
          times.noop![who].push(who === 'berth' ? await berthBuild(d, ctx, 't=bench:latest') : await podman.build(ctx, []));
        }
        for (const who of order) {
          // last step changed: the counter in the last RUN
          n++;
          await writeFile(join(ctx, 'Dockerfile'), sc.dockerfile(n));
          times.last![who].push(who === 'berth' ? await berthBuild(d, ctx, 't=bench:latest') : await podman.build(ctx, []));
          // give the other builder the same change
          n--;
        }
        n++;
      }
      for (const [m, t] of Object.entries(times)) {
        results.push({ scenario: sc.name, measure: m, berth: median(t.berth), podman: median(t.podman) });
        process.stderr.write(`${sc.name} ${m}: berth ${t.berth.map((x) => x.toFixed(0)).join(',')} podman ${t.podman.map((x) => x.toFixed(0)).join(',')}\n`);
      }
    } finally {
      await podman.cleanup().catch((e: unknown) => process.stderr.write(`podman cleanup: ${String(e)}\n`));
      await d.cleanup();
      await rm(ctx, { recursive: true, force: true });
    }
  }
  console.log(`runs=${RUNS} (medians, ms)\n`);
  console.log('| scenario | measure | berth | podman build | podman/berth |');
  console.log('|---|---|---:|---:|---:|');
  for (const r of results) console.log(`| ${r.scenario} | ${r.measure} | ${r.berth.toFixed(0)} | ${r.podman.toFixed(0)} | ${(r.podman / r.berth).toFixed(2)}x |`);
}

await main();
