// Pull benchmark: berth (through berthd's API) vs `podman pull`, from a loopback docker-registry.
//
//   node_modules/node/bin/node bench/pull-bench.ts [--runs N] [--only busybox,debian,layers5] [--podman-topdir]
//
// Images (built once, cached under /var/tmp/berth-bench):
//   busybox   busybox-static rootfs, one layer (~1 MB gzip)
//   debian    `debootstrap --variant=minbase bookworm` rootfs as one layer (~200 MB unpacked)
//   layers5   the same Debian rootfs split into five layers by directory
// Each run starts from an empty store: a fresh berthd data root (daemon start not timed; the
// time is POST /images/create until the progress stream ends), and fresh podman --root/--runroot
// (the whole `podman pull` command is timed). Runs are interleaved (berth, podman, podman, berth,
// ...) so drift hits both. Medians are printed with the ratio podman/berth (> 1: berth faster).
// --podman-topdir: podman's store goes under a directory with ext4's T attribute, as berth marks
// its unpack dir (see OverlaySnapshotter.init): a control for that allocator effect.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, readdir, writeFile, readFile } from 'node:fs/promises';
import { tmpdir, cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import {
  api, busyboxImage, pushLayout, run, startDaemon, startRegistry, tarDirectory, unmountUnder, writeOciLayout, type LayoutImage,
} from '../test/helpers/fixtures.ts';

const execFileP = promisify(execFile);
const CACHE = '/var/tmp/berth-bench';

async function debianRootfs(): Promise<string> {
  const dir = join(CACHE, 'debian-rootfs');
  if (existsSync(dir)) return dir;
  await mkdir(CACHE, { recursive: true });
  const tmp = join(CACHE, 'rootfs-tmp');
  await rm(tmp, { recursive: true, force: true });
  process.stderr.write('debootstrap --variant=minbase bookworm (once)...\n');
  await execFileP('debootstrap', ['--variant=minbase', 'bookworm', tmp], { maxBuffer: 1 << 26 });
  await execFileP('mv', [tmp, dir]);
  return dir;
}

/** Tar a subset of top-level paths of a tree (GNU tar, reproducible). */
async function tarPaths(dir: string, paths: string[]): Promise<Buffer> {
  const { stdout } = await execFileP('tar', ['--sort=name', '--numeric-owner', '--mtime=2024-01-01 00:00Z', '-C', dir, '-cf', '-', ...paths], { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout as unknown as Buffer;
}

async function cachedLayout(name: string, build: () => Promise<Buffer[]>): Promise<LayoutImage> {
  const dir = join(CACHE, `layout-${name}`);
  const meta = join(CACHE, `layout-${name}.json`);
  if (existsSync(meta)) return JSON.parse(await readFile(meta, 'utf8')) as LayoutImage;
  await rm(dir, { recursive: true, force: true });
  const img = await writeOciLayout(dir, { layers: await build(), config: { Cmd: ['bash'] } });
  await writeFile(meta, JSON.stringify(img));
  return img;
}

async function images(): Promise<Record<string, LayoutImage>> {
  const rootfs = await debianRootfs();
  const debian = await cachedLayout('debian', async () => [await tarDirectory(rootfs)]);
  const layers5 = await cachedLayout('layers5', async () => {
    const top = (await readdir(rootfs)).sort();
    const groups = [['usr/lib'], ['usr/share'], ['usr/bin', 'usr/sbin', 'usr/libexec', 'usr/include', 'usr/local', 'usr/games', 'usr/src'].filter((p) => existsSync(join(rootfs, p))), ['var'], top.filter((t) => t !== 'usr' && t !== 'var')];
    return Promise.all(groups.map((g) => tarPaths(rootfs, g)));
  });
  return { busybox: await busyboxImage(), debian, layers5 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function berthPull(ref: string): Promise<number> {
  const d = await startDaemon();
  try {
    const i = ref.lastIndexOf(':');
    const t0 = performance.now();
    const r = await api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(ref.slice(0, i))}&tag=${ref.slice(i + 1)}`);
    const ms = performance.now() - t0;
    if (r.status !== 200 || r.text().includes('"error"')) throw new Error(`berth pull failed: ${r.text().slice(-500)}`);
    return ms;
  } finally {
    await d.cleanup();
  }
}

const TOPDIR = join(tmpdir(), 'berth-bench-topdir');
let podmanParent = tmpdir();

async function podmanPull(ref: string): Promise<number> {
  const base = await mkdtemp(join(podmanParent, 'podman-bench-'));
  try {
    // Own --tmpdir too: podman's default (/run/libpod) is shared with every other podman.
    const args = ['--root', join(base, 'root'), '--runroot', join(base, 'run'), '--tmpdir', join(base, 'tmp'), '--storage-driver', 'overlay', 'pull', '--quiet', '--tls-verify=false', ref];
    const t0 = performance.now();
    const r = await run('podman', args);
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`podman pull failed: ${r.stderr}`);
    return ms;
  } finally {
    await unmountUnder(base);
    await rm(base, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '5' }, only: { type: 'string' }, 'write-readme': { type: 'boolean', default: false }, 'podman-topdir': { type: 'boolean', default: false } } });
  if (values['podman-topdir']) {
    await mkdir(TOPDIR, { recursive: true });
    await execFileP('chattr', ['+T', TOPDIR]);
    podmanParent = TOPDIR;
  }
  const runs = Number(values.runs);
  const imgs = await images();
  const names = values.only ? values.only.split(',') : Object.keys(imgs);
  const registry = await startRegistry();
  const load0 = loadavg();
  try {
    const refs: Record<string, string> = {};
    for (const n of names) refs[n] = await pushLayout(imgs[n]!, registry, `bench/${n}:1`);
    const results: Record<string, { berth: number[]; podman: number[] }> = {};
    for (const n of names) results[n] = { berth: [], podman: [] };
    // Warm-up (page cache, registry, binaries): one pull each, not counted.
    for (const n of names) {
      await berthPull(refs[n]!);
      await podmanPull(refs[n]!);
    }
    for (let i = 0; i < runs; i++) {
      for (const n of names) {
        const order = i % 2 === 0 ? (['berth', 'podman'] as const) : (['podman', 'berth'] as const);
        for (const who of order) {
          const ms = who === 'berth' ? await berthPull(refs[n]!) : await podmanPull(refs[n]!);
          results[n]![who].push(ms);
          process.stderr.write(`${n} ${who} run ${i + 1}: ${ms.toFixed(0)} ms\n`);
        }
      }
    }
    const lines = ['| image | berth median (ms) | podman median (ms) | podman/berth |', '|---|---|---|---|'];
    for (const n of names) {
      const b = median(results[n]!.berth);
      const p = median(results[n]!.podman);
      lines.push(`| ${n} | ${b.toFixed(0)} | ${p.toFixed(0)} | ${(p / b).toFixed(2)}x |`);
    }
    const table = lines.join('\n');
    process.stdout.write(`${table}\n\nruns: ${runs} per tool per image; all samples (ms):\n`);
    for (const n of names) process.stdout.write(`  ${n}: berth ${results[n]!.berth.map((x) => x.toFixed(0)).join(' ')} | podman ${results[n]!.podman.map((x) => x.toFixed(0)).join(' ')}\n`);
    if (podmanParent === TOPDIR) process.stdout.write(`podman stores under ${TOPDIR} (ext4 T attribute)\n`);
    process.stdout.write(`machine: ${cpus().length} cores, ${cpus()[0]?.model ?? ''}; load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(1)).join('/')}, at end ${loadavg().map((x) => x.toFixed(1)).join('/')}\n`);
  } finally {
    await registry.stop();
    if (podmanParent === TOPDIR) await rm(TOPDIR, { recursive: true, force: true });
  }
}

await main();
