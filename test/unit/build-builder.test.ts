// The builder without root: FROM scratch builds (the snapshotter's empty-parent snapshots are
// plain directories; overlay mounts are emulated by copying, see copyingMounter), a fake RUN
// runner, a recording host, an in-memory image index.
// Checks the cache: identical IDs on a no-op rebuild, exactly the dependent steps invalidated.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fsp from 'node:fs/promises';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sha256, type Digest } from '../../src/core/digest.ts';
import type { ImageRecord, ResolvedImage } from '../../src/core/images.ts';
import type { ImageConfig } from '../../src/core/oci.ts';
import { notFound } from '../../src/core/errors.ts';
import { ContentStore } from '../../src/content/content-store.ts';
import { FakeHost } from '../../src/host/host.ts';
import { OverlaySnapshotter } from '../../src/snapshot/overlay-snapshotter.ts';
import { buildTar } from '../../src/layer/tar-build.ts';
import { createLogger } from '../../src/pkg/log.ts';
import { BuildCache } from '../../src/build/build-cache.ts';
import { Builder, type BuilderDeps, type BuildImages, type BuildMessage, type LayerRef } from '../../src/build/builder.ts';
import { BuildContext } from '../../src/build/context.ts';
import type { RunStepOptions, StepRunner } from '../../src/build/run-step.ts';

class MemImages implements BuildImages {
  byId = new Map<string, { config: ImageConfig; layers: LayerRef[] }>();
  tags = new Map<string, string>();
  async resolve(ref: string): Promise<ResolvedImage> {
    const id = this.tags.get(ref) ?? ref;
    const img = this.byId.get(id);
    if (!img) throw notFound(`No such image: ${ref}`);
    return { record: { id: id as Digest, repoTags: [], repoDigests: [], added: '', size: 0 }, config: img.config, chainIds: [] };
  }
  async createImage(config: ImageConfig, layers: LayerRef[]): Promise<ImageRecord> {
    const cfg = { ...config, rootfs: { type: 'layers' as const, diff_ids: layers.map((l) => l.diffId) } };
    const id = sha256(JSON.stringify(cfg));
    this.byId.set(id, { config: cfg, layers });
    return { id, repoTags: [], repoDigests: [], added: '', size: 0 };
  }
  async tag(id: string, ref: string): Promise<void> {
    this.tags.set(ref, id);
  }
  defaultPlatform() {
    return { os: 'linux', architecture: 'amd64' };
  }
}

/** "Runs" `/bin/sh -c <cmd>` by writing the command into /ran/<n> of the rootfs. */
class FakeRunner implements StepRunner {
  calls: RunStepOptions[] = [];
  async run(opts: RunStepOptions): Promise<number> {
    this.calls.push(opts);
    const cmd = opts.args[opts.args.length - 1]!;
    if (cmd === 'fail') return 5;
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(opts.rootfs, 'ran'), { recursive: true });
    await writeFile(join(opts.rootfs, 'ran', String(this.calls.length)), `${cmd}\n${opts.env.join('\n')}\n`);
    opts.output(Buffer.from(`ran ${cmd}\n`));
    return 0;
  }
}

/**
 * Overlay mounts without root: mount copies the lower dirs (bottom first) and the upper dir into
 * the target; unmount copies what is new or changed back into the upper dir (deletions are not
 * tracked), so steps on a non-empty parent write real layers in these tests too.
 */
function copyingMounter(): NonNullable<BuilderDeps['mounter']> {
  const mounted = new Map<string, { upper: string | undefined; before: Map<string, string> }>();
  const { cp, realpath, readdir, lstat, mkdir, rm } = fsp;
  const walk = async (dir: string, rel = '', out = new Map<string, string>()) => {
    for (const e of await readdir(join(dir, rel), { withFileTypes: true })) {
      const p = rel ? `${rel}/${e.name}` : e.name;
      const st = await lstat(join(dir, p));
      out.set(p, `${st.mode}:${st.size}:${st.mtimeMs}:${st.uid}:${st.gid}`);
      if (e.isDirectory()) await walk(dir, p, out);
    }
    return out;
  };
  return {
    async mount(_source, target, _type, options) {
      const opt = (k: string) => options.find((o) => o.startsWith(`${k}=`))?.slice(k.length + 1);
      const lowers = (opt('lowerdir') ?? '').split(':').filter(Boolean);
      const upper = opt('upperdir');
      for (const l of [...lowers.reverse(), ...(upper ? [upper] : [])]) await cp(await realpath(l), target, { recursive: true, verbatimSymlinks: true, preserveTimestamps: true });
      mounted.set(target, { upper, before: await walk(target) });
    },
    async unmount(target) {
      const m = mounted.get(target);
      mounted.delete(target);
      if (m?.upper) {
        for (const [p, sig] of await walk(target)) {
          if (m.before.get(p) === sig) continue;
          const st = await lstat(join(target, p));
          if (st.isDirectory()) await mkdir(join(m.upper, p), { recursive: true, mode: st.mode & 0o7777 });
          else await cp(join(target, p), join(m.upper, p), { verbatimSymlinks: true, preserveTimestamps: true, force: true });
        }
      }
      await rm(target, { recursive: true, force: true });
      await mkdir(target);
    },
  };
}

async function setup(opts: { runner?: StepRunner; mounter?: BuilderDeps['mounter'] } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'berth-builder-'));
  const host = new FakeHost();
  const content = new ContentStore(join(dir, 'content'));
  await content.init();
  const snapshotter = new OverlaySnapshotter(join(dir, 'snapshots'), host);
  await snapshotter.init();
  const cache = new BuildCache(join(dir, 'build-cache'), { maxEntries: 50 });
  await cache.init();
  const images = new MemImages();
  const runner = new FakeRunner();
  const leases = { held: new Map<string, number>(), taken: [] as string[] };
  const lease = async (ids: string[]) => {
    for (const id of ids) {
      leases.taken.push(id);
      leases.held.set(id, (leases.held.get(id) ?? 0) + 1);
    }
    return { release: () => ids.forEach((id) => leases.held.set(id, leases.held.get(id)! - 1)) };
  };
  const builder = new Builder({ images, snapshotter, content, host, runner: opts.runner ?? runner, cache, log: createLogger({ out: () => {} }), lease, mounter: opts.mounter ?? copyingMounter() });
  const build = async (files: Record<string, string>, extra: Partial<Parameters<Builder['build']>[0]> = {}) => {
    const ctx = await BuildContext.fromTar(Readable.from([await buildTar(Object.entries(files).map(([name, body]) => ({ name, body, mtime: new Date(1_600_000_000_000) })))]), cache.tmp);
    const msgs: BuildMessage[] = [];
    try {
      const r = await builder.build({ context: ctx, out: (m) => msgs.push(m), ...extra });
      const text = msgs.map((m) => m.stream ?? '').join('');
      return { ...r, text, hits: (text.match(/Using cache/g) ?? []).length };
    } finally {
      await ctx.cleanup();
    }
  };
  return { dir, images, runner, cache, content, snapshotter, build, leases, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

const DF = [
  'FROM scratch',
  'ENV A=1',
  'COPY a.txt /a.txt',
  'RUN build-a',
  'COPY b.txt /b/',
  'RUN build-b',
  'CMD ["x"]',
].join('\n');

test('no-op rebuild: every step cached, identical image ID, no RUN executed', async () => {
  const s = await setup();
  try {
    const files = { Dockerfile: DF, 'a.txt': 'A', 'b.txt': 'B' };
    const first = await s.build(files, { tags: ['t:1'] });
    assert.equal(first.hits, 0);
    assert.equal(s.runner.calls.length, 2);
    assert.match(first.text, /^Step 1\/7 : FROM scratch\n/);
    const img = s.images.byId.get(first.id)!;
    assert.equal(img.layers.length, 4, 'COPY, RUN, COPY, RUN each make a layer');
    assert.deepEqual(img.config.config?.Cmd, ['x']);
    assert.equal(img.config.history?.length, 6);
    assert.equal(img.config.history?.filter((h) => h.empty_layer).length, 2);
    assert.equal(s.images.tags.get('t:1'), first.id);
    const second = await s.build(files);
    assert.equal(second.id, first.id);
    assert.equal(second.hits, 6);
    assert.equal(s.runner.calls.length, 2, 'no RUN on a full cache hit');
  } finally {
    await s.cleanup();
  }
});

test('changing one file invalidates exactly the steps that depend on it', async () => {
  const s = await setup();
  try {
    const files = { Dockerfile: DF, 'a.txt': 'A', 'b.txt': 'B' };
    const base = await s.build(files);
    const b2 = await s.build({ ...files, 'b.txt': 'B2' });
    assert.equal(b2.hits, 3, 'ENV, COPY a.txt, RUN build-a stay cached');
    assert.equal(s.runner.calls.length, 3);
    assert.notEqual(b2.id, base.id);
    const a2 = await s.build({ ...files, 'a.txt': 'A2' });
    assert.equal(a2.hits, 1, 'only ENV stays cached');
    // a file nobody copies changes nothing
    const other = await s.build({ ...files, 'unused.txt': 'u' });
    assert.equal(other.id, base.id);
    // mode changes count as changes
    const df2 = await s.build({ ...files, Dockerfile: DF.replace('ENV A=1', 'ENV A=2') });
    assert.equal(df2.hits, 0);
  } finally {
    await s.cleanup();
  }
});

test('RUN gets ARG and ENV values (ENV wins), history records the args, no-cache rebuilds', async () => {
  const s = await setup();
  try {
    const files = { Dockerfile: 'FROM scratch\nARG X=fromdefault\nARG Y\nENV Y=fromenv\nRUN show\n' };
    const r = await s.build(files, { buildArgs: { Y: 'fromarg', HTTP_PROXY: 'http://proxy:3128', UNUSED: '1' } });
    const env = s.runner.calls[0]!.env;
    assert.ok(env.includes('X=fromdefault'));
    assert.ok(env.includes('Y=fromenv'));
    assert.ok(env.includes('HTTP_PROXY=http://proxy:3128'), 'proxy args need no ARG line');
    assert.match(r.text, /\[Warning\] One or more build-args \[UNUSED\] were not consumed/);
    const hist = s.images.byId.get(r.id)!.config.history!;
    const run = hist[hist.length - 1]!.created_by!;
    assert.equal(run, '|2 X=fromdefault Y=fromarg /bin/sh -c show');
    assert.doesNotMatch(run, /PROXY/);
    const nc = await s.build(files, { buildArgs: { Y: 'fromarg', HTTP_PROXY: 'http://proxy:3128' }, noCache: true });
    assert.equal(nc.hits, 0);
    assert.equal(s.runner.calls.length, 2);
  } finally {
    await s.cleanup();
  }
});

test('a failing RUN throws with the exit code and records nothing', async () => {
  const s = await setup();
  try {
    await assert.rejects(s.build({ Dockerfile: 'FROM scratch\nRUN fail\n' }, { tags: ['bad:1'] }), (e: Error & { code?: number }) => {
      assert.equal(e.message, "The command '/bin/sh -c fail' returned a non-zero code: 5");
      assert.equal(e.code, 5);
      return true;
    });
    assert.equal(s.images.byId.size, 0);
    assert.equal(s.images.tags.size, 0);
    assert.deepEqual((await s.snapshotter.list()).filter((x) => x.kind === 'active'), [], 'the step snapshot is removed');
  } finally {
    await s.cleanup();
  }
});

async function layerNames(s: Awaited<ReturnType<typeof setup>>, id: string): Promise<string[]> {
  const { extract } = await import('tar-stream');
  const names: string[] = [];
  for (const l of s.images.byId.get(id)!.layers) {
    const ex = extract();
    const done = (async () => {
      for await (const e of ex) {
        names.push(e.header.name.replace(/^\.?\//, '').replace(/\/$/, ''));
        e.resume();
      }
    })();
    ex.end(await s.content.readBytes(l.blob.digest));
    await done;
  }
  return names;
}

test('COPY semantics: directories copy contents, several sources into a dir/, globs, WORKDIR-relative dest', async () => {
  const s = await setup();
  try {
    const files = { 'dir/one': '1', 'dir/sub/two': '2', 'x.txt': 'x', 'y.txt': 'y', 'a.md': 'a', 'b.md': 'b' };
    const cases: Array<[string, string[]]> = [
      ['FROM scratch\nWORKDIR /w\nCOPY dir rel/\n', ['w/rel/one', 'w/rel/sub/two']],
      ['FROM scratch\nCOPY x.txt y.txt /multi/\n', ['multi/x.txt', 'multi/y.txt']],
      ['FROM scratch\nCOPY *.md /docs/\n', ['docs/a.md', 'docs/b.md']],
      ['FROM scratch\nCOPY x.txt /renamed\n', ['renamed']],
      ['FROM scratch\nCOPY <<EOF /etc/conf\nhello\nEOF\n', ['etc/conf']],
    ];
    for (const [df, want] of cases) {
      const r = await s.build({ Dockerfile: df, ...files });
      const names = await layerNames(s, r.id);
      for (const w of want) assert.ok(names.includes(w), `${df}: ${w} in ${names.join(',')}`);
      assert.ok(!names.includes('Dockerfile'));
    }
    await assert.rejects(s.build({ Dockerfile: 'FROM scratch\nCOPY x.txt y.txt /notdir\n', 'x.txt': 'x', 'y.txt': 'y' }), /must be a directory and end with a \//);
    await assert.rejects(s.build({ Dockerfile: 'FROM scratch\nCOPY missing /x\n' }), /file not found in build context/);
    await assert.rejects(s.build({ Dockerfile: 'FROM scratch\nCOPY --chmod=u+x x.txt /x\n', 'x.txt': 'x' }), /invalid chmod/);
  } finally {
    await s.cleanup();
  }
});

test('multi-stage with scratch stages: FROM a stage, unused stages skipped, --target', async () => {
  const s = await setup();
  try {
    const files = {
      Dockerfile: 'FROM scratch AS one\nCOPY a.txt /a\nFROM scratch AS unused\nRUN fail\nFROM one AS two\nENV B=2\n',
      'a.txt': 'A',
    };
    const r = await s.build(files);
    assert.doesNotMatch(r.text, /RUN fail/);
    assert.match(r.text, /Step 1\/4 : FROM scratch AS one[\s\S]*Step 3\/4 : FROM one AS two/);
    assert.equal(s.images.byId.get(r.id)!.layers.length, 1, 'two inherits one\'s layer');
    assert.ok(s.images.byId.get(r.id)!.config.config?.Env?.includes('B=2'));
    const t = await s.build(files, { target: 'one' });
    assert.equal(s.images.byId.get(t.id)!.config.config?.Env?.includes('B=2'), false);
    await assert.rejects(s.build(files, { target: 'nope' }), /failed to reach build target nope/);
  } finally {
    await s.cleanup();
  }
});

test('the cache is bounded (LRU) and persisted; prune empties it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cache-'));
  try {
    const c = new BuildCache(dir, { maxEntries: 3 });
    await c.init();
    for (const k of ['a', 'b', 'c']) c.put(k, { created: k });
    c.get('a');
    c.put('d', { created: 'd' });
    assert.equal(c.get('b'), undefined, 'least recently used went first');
    assert.ok(c.get('a'));
    await c.save();
    const again = new BuildCache(dir, { maxEntries: 3 });
    await again.init();
    assert.equal(again.size, 3);
    assert.ok(JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')).entries.d);
    assert.equal(await again.prune(), 3);
    assert.equal(again.size, 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the cache is bounded by layer bytes too: least recently used layers go first, shared blobs count once', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cache-'));
  try {
    const c = new BuildCache(dir, { maxBytes: 250 });
    await c.init();
    const layer = (d: string, size: number) => ({ diffId: sha256(d), chainId: sha256('c' + d), blob: { digest: sha256(d), size, mediaType: 'x' } });
    c.put('a', { created: 'a', layer: layer('A', 100) });
    c.put('a2', { created: 'a2', layer: layer('A', 100) });
    c.put('b', { created: 'b', layer: layer('B', 100) });
    c.put('meta', { created: 'm' });
    assert.equal(c.bytes, 200, 'A counted once');
    c.get('a');
    c.put('c', { created: 'c', layer: layer('C', 100) });
    assert.ok(c.bytes <= 250);
    assert.equal(c.get('a2'), undefined, 'the least recently used went first');
    assert.equal(c.get('b'), undefined, 'then the next, until under the bound');
    assert.ok(c.get('a') && c.get('c') && c.get('meta'));
    c.put('huge', { created: 'h', layer: layer('H', 1000) });
    assert.ok(c.get('huge'), 'the entry just added stays even alone over the bound');
    assert.equal(c.size, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('layers are leased against image GC while the build runs, and released after it', async () => {
  const s = await setup();
  try {
    const r = await s.build({ Dockerfile: 'FROM scratch\nCOPY a.txt /a\n', 'a.txt': 'A' });
    const img = s.images.byId.get(r.id)!;
    const diff = img.layers[0]!.diffId;
    assert.ok(s.leases.taken.includes(diff), 'the new layer was leased (before its commit)');
    assert.ok([...s.leases.held.values()].every((n) => n === 0), 'every lease released when the build is over');
  } finally {
    await s.cleanup();
  }
});

test('ONBUILD triggers of an earlier stage run when a later stage builds FROM it (as the legacy builder)', async () => {
  const s = await setup();
  try {
    const files = { Dockerfile: 'FROM scratch AS base\nONBUILD ENV TRIG=1\nFROM base\nENV B=2\n' };
    const r = await s.build(files);
    assert.match(r.text, /# Executing 1 build trigger/);
    const cfg = s.images.byId.get(r.id)!.config.config!;
    assert.ok(cfg.Env?.includes('TRIG=1'), 'the trigger ran in the child stage');
    assert.ok(cfg.Env?.includes('B=2'));
    assert.equal(cfg.OnBuild ?? null, null, 'triggers are not inherited');
    const base = await s.build(files, { target: 'base' });
    assert.deepEqual(s.images.byId.get(base.id)!.config.config?.OnBuild, ['ENV TRIG=1'], 'the base stage keeps its trigger');
  } finally {
    await s.cleanup();
  }
});

test('a build --platform refuses a local base image of another architecture instead of using it', async () => {
  const s = await setup();
  try {
    const base = await s.build({ Dockerfile: 'FROM scratch\nENV X=1\n' });
    await s.images.tag(base.id, 'base:amd64');
    assert.equal(s.images.byId.get(base.id)!.config.architecture, 'amd64');
    const ok = await s.build({ Dockerfile: 'FROM base:amd64\nENV Y=2\n' });
    assert.ok(s.images.byId.get(ok.id)!.config.config?.Env?.includes('Y=2'));
    await assert.rejects(s.build({ Dockerfile: 'FROM base:amd64\nENV Y=2\n' }, { platform: 'linux/arm64' }), /pull access denied/);
  } finally {
    await s.cleanup();
  }
});

test('independent stages build in parallel; their output still appears in Dockerfile order', async () => {
  // Each stage's RUN only succeeds once the other stage's RUN has started (a barrier): a builder
  // that runs the stages one after the other cannot pass.
  const started = new Map<string, () => void>();
  const gate = (name: string) => new Promise<void>((r) => started.set(name, r));
  const seen = { a: gate('a'), b: gate('b') };
  const runner: StepRunner = {
    async run(o: RunStepOptions): Promise<number> {
      const cmd = o.args[o.args.length - 1]! as 'a' | 'b';
      started.get(cmd)!();
      const other = seen[cmd === 'a' ? 'b' : 'a'];
      const ok = await Promise.race([other.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), 5000).unref())]);
      if (!ok) return 9;
      const { mkdir } = await import('node:fs/promises');
      await mkdir(join(o.rootfs, 'out'), { recursive: true });
      await writeFile(join(o.rootfs, 'out', cmd), cmd);
      o.output(Buffer.from(`ran ${cmd}\n`));
      return 0;
    },
  };
  const s = await setup({ runner });
  try {
    const files = { Dockerfile: 'FROM scratch AS a\nRUN a\nFROM scratch AS b\nRUN b\nFROM scratch\nCOPY --from=a /out/ /\nCOPY --from=b /out/ /\n' };
    const r = await s.build(files);
    assert.match(r.text, /ran a\n[\s\S]*Step 3\/7 : FROM scratch AS b[\s\S]*ran b[\s\S]*Step 5\/7 : FROM scratch\n/);
    assert.equal(s.images.byId.get(r.id)!.layers.length, 2);
  } finally {
    await s.cleanup();
  }
});

test('WORKDIR creates its directory: a layer when it is new, an empty_layer entry when it exists', async () => {
  const s = await setup();
  try {
    const r = await s.build({ Dockerfile: 'FROM scratch\nWORKDIR /a/b\nWORKDIR ..\nCOPY x.txt .\n', 'x.txt': 'x' });
    const img = s.images.byId.get(r.id)!;
    assert.equal(img.config.config?.WorkingDir, '/a');
    assert.equal(img.layers.length, 2, 'WORKDIR /a/b and the COPY; WORKDIR /a exists already');
    const names = await layerNames(s, r.id);
    assert.ok(names.includes('a/b') && names.includes('a/x.txt'), names.join(','));
    const h = img.config.history!.map((e) => [e.created_by, Boolean(e.empty_layer)]);
    assert.deepEqual(h, [['/bin/sh -c #(nop) WORKDIR /a/b', false], ['/bin/sh -c #(nop) WORKDIR /a', true], [h[2]![0], false]]);
    const again = await s.build({ Dockerfile: 'FROM scratch\nWORKDIR /a/b\nWORKDIR ..\nCOPY x.txt .\n', 'x.txt': 'x' });
    assert.equal(again.id, r.id, 'a no-op rebuild replays both WORKDIR steps');
    assert.equal(again.hits, 3);
  } finally {
    await s.cleanup();
  }
});
