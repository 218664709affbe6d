// Benchmark: berth's registry against CNCF Distribution (Debian's /usr/bin/docker-registry) on
// the same machine with the same content.
//
//   node_modules/node/bin/node bench/registry-bench.ts [--rounds N] [--wrk-seconds S]
//
// 1. manifest GETs per second: wrk -c32 -t2 -d10s with the manifest Accept header
// 2. single-stream GET of a ~200 MB blob: curl -o /dev/null, MB/s (median of all samples)
// 3. wall time for 20 concurrent pushes of a 10-layer image: skopeo copy from an OCI layout,
//    in parallel, to 20 repositories; zero failures required
// Each round starts both registries fresh (empty roots) and measures them alternately; figures
// are medians over the rounds.
// Prints each figure and berth/Distribution ratios. Not a test: it needs wrk, curl, skopeo.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir, cpus } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pack } from 'tar-stream';

const run = promisify(execFile);
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NODE = join(ROOT, 'node_modules/node/bin/node');
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json';

// Self-spawn mode: serve berth's registry in this process.
if (process.argv[2] === '--serve-berth') {
  const { registryCommand } = await import('../src/registry/cli.ts');
  process.exitCode = await registryCommand(['serve', ...process.argv.slice(3)]);
} else {
  await main();
}

interface Registry {
  name: string;
  port: number;
  proc: ChildProcess;
  stop(): Promise<void>;
}

function sha256(b: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(b).digest('hex');
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

async function waitReady(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`);
      if (res.status === 200) return;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`registry on ${port} did not start`);
}

function stopper(proc: ChildProcess): () => Promise<void> {
  return async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const done = new Promise<void>((r) => proc.once('exit', () => r()));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await done;
    clearTimeout(t);
  };
}

async function startDistribution(dir: string): Promise<Registry> {
  const port = await freePort();
  const cfg = join(dir, 'config.yml');
  await writeFile(cfg, [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  cache:',
    '    blobdescriptor: inmemory',
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: 127.0.0.1:${port}`,
    '',
  ].join('\n'));
  // Distribution logs every 4xx (skopeo's HEAD probes) at level error: discard its output.
  const proc = spawn('/usr/bin/docker-registry', ['serve', cfg], { stdio: ['ignore', 'ignore', 'ignore'] });
  await waitReady(port);
  return { name: 'distribution', port, proc, stop: stopper(proc) };
}

async function startBerth(dir: string): Promise<Registry> {
  const port = await freePort();
  const proc = spawn(NODE, [fileURLToPath(import.meta.url), '--serve-berth', '--addr', `127.0.0.1:${port}`, '--root', join(dir, 'data'), '--delete'], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitReady(port);
  return { name: 'berth', port, proc, stop: stopper(proc) };
}

/** A gzip'd tar holding one file of random bytes. */
async function randomLayer(bytes: number, name: string): Promise<{ tar: Buffer; gz: Buffer }> {
  const p = pack();
  const chunks: Buffer[] = [];
  p.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((r) => p.on('end', () => r()));
  p.entry({ name, size: bytes, mode: 0o644, mtime: new Date(0) }, randomBytes(bytes));
  p.finalize();
  await done;
  const tar = Buffer.concat(chunks);
  return { tar, gz: gzipSync(tar, { level: 1 }) };
}

/** An OCI image layout with one image of `layers` random layers, tagged "img". */
async function writeLayout(dir: string, layers: number, layerBytes: number): Promise<void> {
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha256(b);
    await writeFile(join(blobs, d.slice(7)), b);
    return { digest: d, size: b.length };
  };
  const descs = [];
  const diffIds = [];
  for (let i = 0; i < layers; i++) {
    const l = await randomLayer(layerBytes, `layer-${i}.bin`);
    diffIds.push(sha256(l.tar));
    descs.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...(await put(l.gz)) });
  }
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: diffIds } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...(await put(config)) },
    layers: descs,
  }));
  const m = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'img' } }],
  }));
}

async function skopeoPush(layout: string, port: number, repo: string, env: NodeJS.ProcessEnv): Promise<void> {
  await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:img`, `docker://127.0.0.1:${port}/${repo}:latest`], { env, maxBuffer: 1 << 24 });
}

async function pushBlob(port: number, repo: string, data: Buffer<ArrayBuffer>): Promise<string> {
  const d = sha256(data);
  // POST + PUT: Distribution 2.8 does not do single-request (POST ?digest=) uploads.
  const start = await fetch(`http://127.0.0.1:${port}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location') ?? '', `http://127.0.0.1:${port}`);
  loc.searchParams.set('digest', d);
  const res = await fetch(loc, { method: 'PUT', body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  if (res.status !== 201) throw new Error(`push blob to ${port}: ${res.status} ${await res.text()}`);
  return d;
}

/** wrk's figures: requests/s and failed requests (non-2xx answers, socket errors, timeouts). */
async function manifestGets(port: number, seconds: number): Promise<{ rps: number; failures: number }> {
  const url = `http://127.0.0.1:${port}/v2/bench/img/manifests/latest`;
  const { stdout } = await run('wrk', ['-c32', '-t2', `-d${seconds}s`, '-H', `Accept: ${ACCEPT}`, url]);
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(stdout);
  if (!rps) throw new Error(`wrk output: ${stdout}`);
  let failures = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
  if (sock) failures += sock.slice(1).reduce((a, b) => a + Number(b), 0);
  return { rps: Number(rps[1]), failures };
}

async function blobGet(port: number, digest: string, size: number): Promise<number> {
  const url = `http://127.0.0.1:${port}/v2/bench/big/blobs/${digest}`;
  const { stdout } = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{speed_download}', url]);
  const [code, got, speed] = stdout.trim().split(' ');
  if (code !== '200' || Number(got) !== size) throw new Error(`blob GET from ${port}: ${stdout}`);
  return Number(speed) / 1e6;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
}

async function concurrentPushes(reg: Registry, layout: string, n: number, env: NodeJS.ProcessEnv): Promise<number> {
  const t0 = performance.now();
  const results = await Promise.allSettled(Array.from({ length: n }, (_, i) => skopeoPush(layout, reg.port, `push/r${i}`, env)));
  const ms = performance.now() - t0;
  const failed = results.filter((r) => r.status === 'rejected') as PromiseRejectedResult[];
  if (failed.length) throw new Error(`${reg.name}: ${failed.length}/${n} pushes failed: ${String(failed[0]!.reason)}`);
  // Every push must be pullable with the same digest.
  for (let i = 0; i < n; i++) {
    const res = await fetch(`http://127.0.0.1:${reg.port}/v2/push/r${i}/manifests/latest`, { method: 'HEAD', headers: { Accept: ACCEPT } });
    if (res.status !== 200) throw new Error(`${reg.name}: push/r${i} missing after push (${res.status})`);
  }
  return ms / 1000;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rounds: { type: 'string', default: '5' },
      'wrk-seconds': { type: 'string', default: '10' },
      'blob-mb': { type: 'string', default: '200' },
      'layer-kb': { type: 'string', default: '2048' },
      pushes: { type: 'string', default: '20' },
      'blob-samples': { type: 'string', default: '5' },
    },
  });
  const rounds = Number(values.rounds);
  const pushes = Number(values.pushes);
  const work = await mkdtemp(join(tmpdir(), 'berth-regbench-'));
  // skopeo's blob-info cache lives in ~; keep it per run so earlier runs cannot help.
  const env = { ...process.env, HOME: join(work, 'home'), XDG_DATA_HOME: join(work, 'home', '.local', 'share') };
  await mkdir(env.HOME, { recursive: true });
  const live: Registry[] = [];
  try {
    console.log(`machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}; node ${process.version}`);
    const layout = join(work, 'layout');
    await writeLayout(layout, 10, Number(values['layer-kb']) * 1024);
    const big = randomFillSync(Buffer.alloc(Number(values['blob-mb']) * 1024 * 1024));
    const results: Record<string, { rps: number[]; mbps: number[]; push: number[] }> = {
      distribution: { rps: [], mbps: [], push: [] },
      berth: { rps: [], mbps: [], push: [] },
    };
    // Both registries run side by side and are measured alternately, so drift of this
    // (virtual) machine hits both alike; the order flips every round.
    for (let round = 0; round < rounds; round++) {
      const regs: Registry[] = [];
      for (const start of [startDistribution, startBerth]) {
        const dir = join(work, `r${round}-${start.name}`);
        await mkdir(dir, { recursive: true });
        const reg = await start(dir);
        live.push(reg);
        regs.push(reg);
      }
      if (round % 2 === 1) regs.reverse();
      const line: Record<string, string[]> = { distribution: [], berth: [] };
      for (const reg of regs) {
        const s = await concurrentPushes(reg, layout, pushes, env);
        results[reg.name]!.push.push(s);
        line[reg.name]!.push(`${pushes} concurrent pushes ${s.toFixed(2)} s`);
      }
      const digests = new Map<Registry, string>();
      for (const reg of regs) {
        await skopeoPush(layout, reg.port, 'bench/img', env);
        digests.set(reg, await pushBlob(reg.port, 'bench/big', big));
      }
      for (const reg of regs) {
        const { rps, failures } = await manifestGets(reg.port, Number(values['wrk-seconds']));
        // berth must answer every request; Distribution's failures (wrk timeouts under load)
        // are reported, not fatal, since its rate is what it is.
        if (failures > 0 && reg.name === 'berth') throw new Error(`berth failed ${failures} manifest GETs`);
        results[reg.name]!.rps.push(rps);
        line[reg.name]!.push(`manifest GET ${rps.toFixed(0)} req/s${failures ? ` (${failures} failed)` : ''}`);
      }
      const samples: Record<string, number[]> = { distribution: [], berth: [] };
      for (let i = 0; i < Number(values['blob-samples']); i++) {
        for (const reg of regs) samples[reg.name]!.push(await blobGet(reg.port, digests.get(reg)!, big.length));
      }
      for (const reg of regs) {
        results[reg.name]!.mbps.push(...samples[reg.name]!);
        line[reg.name]!.push(`blob GET median ${median(samples[reg.name]!).toFixed(0)} MB/s`);
        console.log(`round ${round + 1} ${reg.name.padEnd(12)} ${line[reg.name]!.join(' | ')}`);
      }
      for (const reg of regs) {
        await reg.stop();
        live.splice(live.indexOf(reg), 1);
      }
      await rm(join(work, `r${round}-startDistribution`), { recursive: true, force: true });
      await rm(join(work, `r${round}-startBerth`), { recursive: true, force: true });
    }
    const d = results.distribution!;
    const b = results.berth!;
    const rpsRatio = median(b.rps) / median(d.rps);
    const mbRatio = median(b.mbps) / median(d.mbps);
    const pushRatio = median(b.push) / median(d.push);
    console.log('');
    console.log(`| metric (median of ${rounds}) | Distribution 2.8 | berth | ratio | required |`);
    console.log('|---|---|---|---|---|');
    console.log(`| manifest GET req/s (wrk -c32 -t2 -d${values['wrk-seconds']}s) | ${median(d.rps).toFixed(0)} | ${median(b.rps).toFixed(0)} | ${rpsRatio.toFixed(2)}x | >= 1.0x |`);
    console.log(`| blob GET MB/s (${values['blob-mb']} MiB, curl, median of ${rounds}x${values['blob-samples']}) | ${median(d.mbps).toFixed(0)} | ${median(b.mbps).toFixed(0)} | ${mbRatio.toFixed(2)}x | >= 1.0x |`);
    console.log(`| ${pushes} concurrent skopeo pushes, 10 layers (s) | ${median(d.push).toFixed(2)} | ${median(b.push).toFixed(2)} | ${pushRatio.toFixed(2)}x | <= 0.8x |`);
    const ok = rpsRatio >= 1 && mbRatio >= 1 && pushRatio <= 0.8;
    console.log(ok ? '\nall required ratios hold' : '\nREQUIRED RATIOS NOT MET');
    process.exitCode = ok ? 0 : 1;
  } finally {
    for (const r of live) await r.stop();
    await rm(work, { recursive: true, force: true });
  }
}

