// Network benchmark (issue 4): `run --rm busybox true` on the default bridge network,
// berth (through the docker CLI and through the berth CLI) vs podman (netavark, its default `podman` network), interleaved,
// medians; then 200 more berth runs and a leak check (veths on the bridge, netns mounts and
// files under the exec root, DNAT rules, the CNI firewall plugin's CNI-FORWARD rules for the
// bridge subnet); then the network service's own attach/detach path (setUp: netns + CNI
// loopback/bridge/firewall ADD; tearDown on the caller's clock, and the full DEL + unmount
// behind it) without containers.
//
//   node_modules/node/bin/node bench/network-bench.ts [rounds=30] [leakRuns=200]
//
// The whole command is timed on both sides (CLI start, API, spec, runtime, network, teardown).
// podman runs with its own --root/--runroot, runc, cgroupfs and the host's rlimit ceilings
// (--ulimit: its defaults exceed this machine's hard limits and fail).
import { mkdtemp, rm, readFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startDaemon, importBusybox, busyboxImage, docker, berth, run, unmountUnder, REPO_ROOT, type TestDaemon } from '../test/helpers/fixtures.ts';
import { BridgeNetworkService } from '../src/network/bridge-network-service.ts';
import { RealHost } from '../src/host/host.ts';
import { contains, parseCidr, parseIp } from '../src/network/ipv4.ts';
import { createLogger } from '../src/pkg/log.ts';

const rounds = Number(process.argv[2] ?? 30);
const leakRuns = Number(process.argv[3] ?? 200);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

class Podman {
  readonly base: string;
  constructor(base: string) {
    this.base = base;
  }
  args(...rest: string[]): string[] {
    return ['--root', join(this.base, 'root'), '--runroot', join(this.base, 'runroot'), '--storage-driver', 'overlay', '--runtime', 'runc', '--cgroup-manager', 'cgroupfs', '--events-backend', 'file', ...rest];
  }
  async runTrue(): Promise<number> {
    const t0 = performance.now();
    const r = await run('podman', this.args('run', '--rm', '--pull=never', '--ulimit', 'nofile=1024:20000', '--ulimit', 'nproc=4096:4096', 'busybox', 'true'), { timeoutMs: 120000 });
    const ms = performance.now() - t0;
    if (r.code !== 0) throw new Error(`podman run: ${r.stderr.slice(-800)}`);
    return ms;
  }
  async cleanup(): Promise<void> {
    await run('podman', this.args('system', 'reset', '--force'), { timeoutMs: 120000 });
    await unmountUnder(this.base);
    await rm(this.base, { recursive: true, force: true });
  }
}

async function berthTrue(d: TestDaemon): Promise<number> {
  const t0 = performance.now();
  const r = await docker(d, ['run', '--rm', 'busybox', 'true'], { timeoutMs: 120000 });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`berth run: ${r.stderr}`);
  return ms;
}

/** The same through the berth CLI (the bundle scripts/setup builds; rebuilt at the start). */
async function berthCliTrue(d: TestDaemon): Promise<number> {
  const t0 = performance.now();
  const r = await berth(d, ['run', '--rm', 'busybox', 'true'], { timeoutMs: 120000 });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`berth CLI run: ${r.stderr}`);
  return ms;
}

async function leaks(d: TestDaemon, bridge: string, subnet: string): Promise<{ veths: number; netnsMounts: number; netnsFiles: number; dnat: number; cni: number }> {
  // Namespace destruction is asynchronous in the kernel: give it a moment.
  let veths = 0;
  for (let i = 0; i < 50; i++) {
    veths = (await run('ip', ['-o', 'link', 'show', 'master', bridge])).stdout.split('\n').filter(Boolean).length;
    if (veths === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const mounts = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').filter((l) => l.includes(join(d.execRoot, 'netns'))).length;
  const files = await readdir(join(d.execRoot, 'netns')).then((f) => f.length, () => 0);
  const dnat = (await run('iptables-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.includes(`-${bridge}-DNAT`) && l.includes('--to-destination')).length;
  const net = parseCidr(subnet);
  const cniRules = async () => (await run('iptables', ['-w', '-S', 'CNI-FORWARD'])).stdout.split('\n').filter((l) => {
    const m = /(?:-s|-d) (\d+\.\d+\.\d+\.\d+)\/32 /.exec(l);
    return m !== null && contains(net, parseIp(m[1]!));
  }).length;
  let cni = 0;
  for (let i = 0; i < 50; i++) {
    cni = await cniRules();
    if (cni === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { veths, netnsMounts: mounts, netnsFiles: files, dnat, cni };
}

async function attachDetach(n: number): Promise<{ setUp: number; tearDown: number; settle: number }> {
  const root = await mkdtemp(join(tmpdir(), 'berth-netbench-'));
  const tag = randomBytes(3).toString('hex');
  const svc = new BridgeNetworkService({
    host: new RealHost(), dataRoot: join(root, 'data'), execRoot: join(root, 'exec'), log: createLogger({ out: () => {} }),
    bridgeName: `bb${tag}`, bridgeCidr: `10.125.${randomBytes(1)[0]}.1/24`, chainPrefix: `BB-${tag}`, upstreams: [],
  });
  await svc.start();
  const up: number[] = [];
  const down: number[] = [];
  const full: number[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const id = randomBytes(32).toString('hex');
      let t0 = performance.now();
      await svc.setUp({ containerId: id, name: `c${i}`, hostname: id.slice(0, 12), networkMode: 'bridge', filesDir: join(root, 'c', id) });
      up.push(performance.now() - t0);
      t0 = performance.now();
      await svc.tearDown(id);
      down.push(performance.now() - t0);
      await svc.settle();
      full.push(performance.now() - t0);
    }
  } finally {
    await svc.close();
    await svc.destroyAll();
    await rm(root, { recursive: true, force: true });
  }
  return { setUp: median(up), tearDown: median(down), settle: median(full) };
}

async function main(): Promise<void> {
  const ad = await attachDetach(50);
  console.log(`network service alone (50 sandboxes): setUp median ${ad.setUp.toFixed(1)} ms, tearDown median ${ad.tearDown.toFixed(1)} ms on the caller's clock, ${ad.settle.toFixed(1)} ms until DEL + unmount finished`);

  const d = await startDaemon();
  const podman = new Podman(await mkdtemp(join(tmpdir(), 'berth-bench-podman-')));
  try {
    await importBusybox(d);
    const bb = await busyboxImage();
    await run('skopeo', ['copy', '-q', `oci:${bb.dir}:${bb.tag}`, `containers-storage:[overlay@${join(podman.base, 'root')}+${join(podman.base, 'runroot')}]docker.io/library/busybox:latest`]);
    const bridgeNet = JSON.parse((await docker(d, ['network', 'inspect', 'bridge'])).stdout)[0];
    const bridge = bridgeNet.Options['com.docker.network.bridge.name'] as string;
    const subnet = bridgeNet.IPAM.Config[0].Subnet as string;
    const built = await run(process.execPath, [join(REPO_ROOT, 'scripts', 'build-cli.mjs')]);
    if (built.code !== 0) throw new Error(`scripts/build-cli.mjs: ${built.stderr}`);
    // Warm-up: one of each.
    await berthTrue(d);
    await berthCliTrue(d);
    await podman.runTrue();
    const t = { berth: [] as number[], cli: [] as number[], podman: [] as number[] };
    const once = { berth: () => berthTrue(d), cli: () => berthCliTrue(d), podman: () => podman.runTrue() };
    for (let i = 0; i < rounds; i++) {
      const order: Array<keyof typeof t> = [['berth', 'cli', 'podman'], ['podman', 'berth', 'cli'], ['cli', 'podman', 'berth']][i % 3] as never;
      for (const who of order) t[who].push(await once[who]());
    }
    const mb = median(t.berth);
    const mc = median(t.cli);
    const mp = median(t.podman);
    process.stderr.write(`berth (docker CLI): ${t.berth.map((x) => x.toFixed(0)).join(',')}\nberth CLI: ${t.cli.map((x) => x.toFixed(0)).join(',')}\npodman: ${t.podman.map((x) => x.toFixed(0)).join(',')}\n`);
    console.log(`| run --rm busybox true (default bridge) | docker CLI -> berthd ${mb.toFixed(0)} ms | berth CLI ${mc.toFixed(0)} ms | podman ${mp.toFixed(0)} ms | ${(mb / mp).toFixed(2)}x / ${(mc / mp).toFixed(2)}x |`);

    const t0 = performance.now();
    for (let i = 0; i < leakRuns; i++) await berthTrue(d);
    const l = await leaks(d, bridge, subnet);
    console.log(`${leakRuns} more berth runs in ${((performance.now() - t0) / 1000).toFixed(1)} s; left behind: ${l.veths} veths on ${bridge}, ${l.netnsMounts} netns mounts, ${l.netnsFiles} netns files, ${l.dnat} DNAT rules, ${l.cni} CNI-FORWARD rules`);
    if (mb > 0.7 * mp || mc > 0.7 * mp) process.exitCode = 1;
    if (l.veths || l.netnsMounts || l.netnsFiles || l.dnat || l.cni) process.exitCode = 1;
  } finally {
    await podman.cleanup().catch((e: unknown) => process.stderr.write(`podman cleanup: ${String(e)}\n`));
    await d.cleanup();
  }
}

await main();
