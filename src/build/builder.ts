// The Dockerfile builder (Docker's legacy builder semantics, BuildKit's stage graph):
//
//   context tar -> .dockerignore -> parse -> stage graph (only the stages the target needs;
//   independent stages run concurrently) -> per stage: FROM (image, stage or scratch; pull when
//   absent or with --pull) -> steps -> image (config with history) -> tags.
//
// Steps. Metadata instructions (ENV, LABEL, CMD, ...) change the image config and add an
// `empty_layer` history entry. RUN, COPY and ADD work on a build snapshot: prepare an active
// snapshot on the stage's top chain ID, mount it, run the container or copy the files, unmount,
// turn the overlay upper dir into a layer tar (layer-diff), commit the snapshot under the
// layer's chain ID (no second unpack) and store the blob, uncompressed, in the content store
// while the next step runs. Everything a build creates is leased against the image service's
// GC until the image and the cache entries (GC roots) hold it.
//
// Cache. The key of a step is sha256 of: the key of the step before (the first comes from the
// base image ID or "scratch" and the platform), the chain ID the step starts from, and the
// step's descriptor: the instruction with args and env expanded, for RUN the whole environment
// (ENV and the ARG values in scope), for COPY/ADD the path, type, mode and content digest of
// every source file. A hit replays the recorded layer and history `created` time, so a no-op
// rebuild gives byte-identical configs and the same image ID; changing one file changes the key
// of the COPY that reads it and, through the chain, of every later step in that stage (and in
// stages that COPY --from it), and nothing else.
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { sha256, shortId, type Digest } from '../core/digest.ts';
import { BerthError, errorMessage, invalidArgument, isKind, notFound } from '../core/errors.ts';
import type { ImageRecord, ResolvedImage } from '../core/images.ts';
import { MediaType, formatPlatform, type ContainerConfig, type HistoryEntry, type ImageConfig, type ImageManifest, type Platform } from '../core/oci.ts';
import type { Mount, Snapshotter } from '../core/snapshots.ts';
import type { ContentStore } from '../content/content-store.ts';
import type { Host } from '../host/host.ts';
import type { Logger } from '../pkg/log.ts';
import { layerDiff } from '../snapshot/layer-diff.ts';
import { BuildCache, type CachedLayer } from './build-cache.ts';
import { BuildContext, DirectoryTree, expandSource, type SourceTree } from './context.ts';
import { copyInto, mkdirAll, parseChmod, resolveChown, writeFileInto, type CopyItem } from './copy-files.ts';
import { Dockerignore } from './dockerignore.ts';
import {
  parseDockerfile, parseInstruction, DockerfileError,
  type CopyInstruction, type Dockerfile, type Instruction, type RunInstruction, type Stage, type Heredoc,
} from './dockerfile-parser.ts';
import { PROXY_ARGS, envListSet, platformArgs, platformFromFlag, processWord, processWords, type Env } from './shell-words.ts';
import type { StepRunner } from './run-step.ts';
import { familiarString, parseReference } from '../core/reference.ts';

/** What the builder needs from the image part (src/core/images.ts plus two extras). */
export interface BuildImages {
  resolve(nameOrId: string): Promise<ResolvedImage>;
  createImage(config: ImageConfig, layers: LayerRef[], tags: string[]): Promise<ImageRecord>;
  tag(nameOrId: string, newRef: string): Promise<void>;
  defaultPlatform(): Platform;
}

export interface LayerRef {
  diffId: Digest;
  blob: { digest: Digest; size: number; mediaType: string };
}

export interface BuilderDeps {
  images: BuildImages;
  /** Pull by reference (X-Registry-Auth not supported here); undefined: no registry access. */
  pullImage?: (ref: string, opts: { platform?: Platform; signal?: AbortSignal }) => Promise<{ id: string }>;
  snapshotter: Snapshotter;
  content: ContentStore;
  host: Host;
  runner: StepRunner;
  cache: BuildCache;
  log: Logger;
  /**
   * Hold blobs and snapshots against the image service's GC until released (ImageService.lease).
   * A build leases each layer before committing it and the base image's layers, and releases
   * them when it is over (by then the image and the cache entries are GC roots).
   */
  lease?: (ids: string[]) => Promise<{ release(): void }>;
  /** mount/umount for build roots (the runtime's syscall helper); the host's commands otherwise. */
  mounter?: Pick<Host, 'mount' | 'unmount'>;
}

/** Docker's JSON message (the legacy builder's progress stream). */
export interface BuildMessage {
  stream?: string;
  status?: string;
  errorDetail?: { code?: number; message: string };
  error?: string;
  aux?: unknown;
}

export interface BuildRequest {
  context: BuildContext;
  /** Path of the Dockerfile inside the context. */
  dockerfile?: string;
  tags?: string[];
  /** --build-arg values. */
  buildArgs?: Record<string, string | null>;
  target?: string;
  noCache?: boolean;
  pull?: boolean;
  labels?: Record<string, string>;
  /** default | bridge | host | none. */
  network?: string;
  platform?: string;
  quiet?: boolean;
  signal?: AbortSignal;
  out: (msg: BuildMessage) => void;
  /**
   * After a successful build, hand the cleanup (unmounts, temp files, network teardown) to the
   * caller, which runs it once the client has its answer; without it cleanup is awaited.
   */
  deferCleanup?: (fn: () => Promise<void>) => void;
}

export interface BuildResult {
  id: Digest;
  tags: string[];
}

/** A step failed: the message and the exit code reach the client as errorDetail. */
export class BuildStepError extends BerthError {
  readonly code: number;
  constructor(message: string, code: number) {
    super('InvalidArgument', message);
    this.code = code;
  }
}

interface StageState {
  config: ImageConfig;
  layers: LayerRef[];
  chain: Digest[];
  key: string;
  /** ARG values in scope in this stage (declared with ARG, value from --build-arg or default). */
  args: Map<string, string>;
  platform: Platform;
  /** A CMD was set in this stage (then ENTRYPOINT keeps it). */
  cmdSet: boolean;
  /** This stage's progress output (kept in stage order, see BuildRun.#writer). */
  out: (s: string) => void;
}

interface StageJob {
  stage: Stage;
  promise?: Promise<StageState>;
}

const DEFAULT_SHELL = ['/bin/sh', '-c'];
const DEFAULT_PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** BERTH_BUILD_TRACE=1: per-phase timings on stderr (benchmark work). */
export const trace: (what: string, t0: number) => void = process.env.BERTH_BUILD_TRACE === '1'
  ? (what, t0) => process.stderr.write(`[build] ${what} ${(performance.now() - t0).toFixed(1)}ms\n`)
  : () => {};
const hash = (...parts: string[]) => createHash('sha256').update(parts.join('\0')).digest('hex');

export class Builder {
  readonly #d: BuilderDeps;

  constructor(deps: BuilderDeps) {
    this.#d = deps;
  }

  async build(req: BuildRequest): Promise<BuildResult> {
    const run = new BuildRun(this.#d, req);
    let ok = false;
    try {
      const r = await run.execute();
      ok = true;
      return r;
    } finally {
      const finish = async () => {
        await run.cleanup();
        await this.#d.cache.save().catch(() => {});
      };
      if (ok && req.deferCleanup) req.deferCleanup(finish);
      else await finish();
    }
  }
}

class BuildRun {
  readonly #d: BuilderDeps;
  readonly #req: BuildRequest;
  readonly #id = randomBytes(6).toString('hex');
  readonly #tmp: string;
  readonly #buildArgs: Map<string, string>;
  readonly #usedArgs = new Set<string>();
  readonly #platform: Platform;
  #stepNo = new Map<Instruction | Stage, number>();
  #total = 0;
  #jobs: StageJob[] = [];
  #df!: Dockerfile;
  #globalArgs = new Map<string, string>();
  #snapSeq = 0;
  readonly #stageRoots = new Map<string, Promise<DirectoryTreeHandle>>();
  readonly #cleanups: Array<() => Promise<void>> = [];
  /** Layer blobs being stored in the background (see #storeLayer). */
  readonly #pending: Array<Promise<void>> = [];
  readonly #runner: StepRunner & { close?(): Promise<void> };
  readonly #leases: Array<{ release(): void }> = [];

  constructor(deps: BuilderDeps, req: BuildRequest) {
    this.#d = deps;
    this.#req = req;
    this.#tmp = join(deps.cache.tmp, `build-${this.#id}`);
    this.#buildArgs = new Map();
    for (const [k, v] of Object.entries(req.buildArgs ?? {})) if (v !== null && v !== undefined) this.#buildArgs.set(k, v);
    this.#platform = platformFromFlag(req.platform) ?? deps.images.defaultPlatform();
    this.#runner = deps.runner.session?.() ?? deps.runner;
  }

  #out(stream: string): void {
    if (!this.#req.quiet) this.#req.out({ stream });
  }

  // Stages run concurrently but their output is shown in Dockerfile order, as a sequential
  // build would print it: the first unfinished stage streams live, later ones are buffered
  // until every stage before them is done.
  #order: number[] = [];
  #cursor = 0;
  #buffers = new Map<number, string[]>();
  #finished = new Set<number>();

  #writer(index: number): (s: string) => void {
    return (s: string) => {
      if (this.#order[this.#cursor] === index) this.#out(s);
      else {
        const b = this.#buffers.get(index) ?? [];
        b.push(s);
        this.#buffers.set(index, b);
      }
    };
  }

  #stageDone(index: number): void {
    this.#finished.add(index);
    while (this.#cursor < this.#order.length) {
      const cur = this.#order[this.#cursor]!;
      for (const s of this.#buffers.get(cur) ?? []) this.#out(s);
      this.#buffers.delete(cur);
      if (!this.#finished.has(cur)) break;
      this.#cursor++;
    }
  }

  /** On failure: show whatever the stages printed, in order. */
  #flushAll(): void {
    for (const i of this.#order) {
      for (const s of this.#buffers.get(i) ?? []) this.#out(s);
      this.#buffers.delete(i);
    }
    this.#cursor = this.#order.length;
  }

  async execute(): Promise<BuildResult> {
    await mkdir(this.#tmp, { recursive: true, mode: 0o700 });
    return this.#execute();
  }

  /** Unmount what the build mounted, end its network sandbox, remove its temp files. */
  async cleanup(): Promise<void> {
    // Layer blobs still being written must land (or fail) before their temp files go.
    await Promise.allSettled(this.#pending);
    for (const l of this.#leases) l.release();
    for (const c of this.#cleanups.reverse()) await c().catch((err: unknown) => this.#d.log.warn({ err: errorMessage(err) }, 'build cleanup failed'));
    await this.#runner.close?.().catch((err: unknown) => this.#d.log.warn({ err: errorMessage(err) }, 'build network teardown failed'));
    await rm(this.#tmp, { recursive: true, force: true }).catch(() => {});
  }

  async #execute(): Promise<BuildResult> {
    const ctx = this.#req.context;
    const dfName = posix.normalize(this.#req.dockerfile || 'Dockerfile').replace(/^\/+/, '');
    let text = await ctx.readFile(dfName);
    if (text === undefined && !this.#req.dockerfile) text = await ctx.readFile('dockerfile');
    if (text === undefined) throw invalidArgument(`Cannot locate specified Dockerfile: ${dfName}`);
    const ignore = await ctx.readFile('.dockerignore');
    if (ignore) await ctx.applyIgnore(Dockerignore.parse(ignore.toString('utf8')));
    this.#df = parseDockerfile(text.toString('utf8'), dfName);
    for (const w of this.#df.warnings) this.#d.log.debug({ build: this.#id }, w);

    // Global scope: ARGs before the first FROM, plus the automatic platform args.
    const auto = platformArgs(this.#platform);
    for (const [k, v] of auto) this.#globalArgs.set(k, v);
    for (const a of this.#df.metaArgs) {
      for (const decl of a.args) {
        const given = this.#buildArgs.get(decl.name);
        if (given !== undefined) {
          this.#globalArgs.set(decl.name, given);
          this.#usedArgs.add(decl.name);
        } else if (decl.default !== undefined) this.#globalArgs.set(decl.name, this.#expand(decl.default, this.#globalArgs, a.line));
        else if (!auto.has(decl.name)) this.#globalArgs.delete(decl.name);
      }
    }

    const stages = this.#df.stages;
    let target = stages[stages.length - 1]!;
    if (this.#req.target) {
      const t = stages.find((s) => s.name === this.#req.target!.toLowerCase());
      if (!t) throw invalidArgument(`failed to reach build target ${this.#req.target} in Dockerfile`);
      target = t;
    }
    // Labels from the request become LABEL steps at the end of the target stage, one per label
    // in key order and without variable expansion (moby's buildLabelOptions).
    const labels = Object.entries(this.#req.labels ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    if (labels.length) {
      const extra: Instruction[] = labels.map(([key, value]) => ({ kind: 'LABEL', line: 0, endLine: 0, original: `LABEL ${key}=${value}`, pairs: [{ key, value }], noExpand: true }));
      target = { ...target, instructions: [...target.instructions, ...extra] };
      stages[target.index] = target;
    }
    // Which stages the target needs.
    const needed = new Set<number>();
    const visit = (s: Stage) => {
      if (needed.has(s.index)) return;
      needed.add(s.index);
      for (const dep of this.#deps(s)) visit(stages[dep]!);
    };
    visit(target);
    // ARGs before the first FROM are steps too, printed first (moby's printCommand for metaArgs).
    for (const a of this.#df.metaArgs) this.#stepNo.set(a, ++this.#total);
    for (const s of stages) {
      if (!needed.has(s.index)) continue;
      this.#stepNo.set(s, ++this.#total);
      for (const ins of s.instructions) this.#stepNo.set(ins, ++this.#total);
    }
    for (const a of this.#df.metaArgs) this.#step((t) => this.#out(t), a, a.original.replace(/^\S+/, 'ARG'));
    this.#jobs = stages.map((stage) => ({ stage }));
    this.#order = [...needed].sort((a, b) => a - b);
    let final: StageState;
    try {
      final = await this.#stageResult(target.index);
    } catch (err) {
      this.#flushAll();
      throw err;
    }

    const unused = [...this.#buildArgs.keys()].filter((k) => !this.#usedArgs.has(k) && !(PROXY_ARGS as readonly string[]).includes(k));
    if (unused.length) this.#out(`[Warning] One or more build-args [${unused.sort().join(' ')}] were not consumed\n`);

    await this.settle();
    const tags = this.#req.tags ?? [];
    const rec = await this.#d.images.createImage(final.config, final.layers, []);
    for (const t of tags) await this.#d.images.tag(rec.id, t);
    this.#req.out({ aux: { ID: rec.id } });
    if (this.#req.quiet) this.#req.out({ stream: `${rec.id}\n` });
    this.#out(`Successfully built ${shortId(rec.id)}\n`);
    for (const t of tags) this.#out(`Successfully tagged ${familiarString(parseReference(t))}\n`);
    return { id: rec.id, tags };
  }

  /** Stage indexes a stage depends on: FROM <stage> and COPY --from=<stage|index>. */
  #deps(s: Stage): number[] {
    const out: number[] = [];
    const byName = (n: string) => this.#df.stages.find((x) => x.index < s.index && x.name === n.toLowerCase())?.index;
    const img = this.#expand(s.from.image, this.#globalArgs, s.from.line);
    const f = byName(img);
    if (f !== undefined) out.push(f);
    for (const ins of s.instructions) {
      if ((ins.kind === 'COPY' || ins.kind === 'ADD') && ins.from !== undefined) {
        const from = ins.from;
        if (/^\d+$/.test(from)) {
          const i = Number(from);
          if (i >= s.index) throw new DockerfileError(this.#dfName(), ins.line, `invalid from flag value ${from}: refers to current or later build stage`);
          out.push(i);
        } else {
          const i = byName(from);
          if (i !== undefined) out.push(i);
        }
      }
    }
    return out;
  }

  #dfName(): string {
    return posix.normalize(this.#req.dockerfile || 'Dockerfile');
  }

  #stageResult(index: number): Promise<StageState> {
    const job = this.#jobs[index]!;
    job.promise ??= this.#buildStage(job.stage);
    return job.promise;
  }

  #step(out: (s: string) => void, node: Instruction | Stage, text: string): void {
    out(`Step ${this.#stepNo.get(node) ?? '?'}/${this.#total} : ${text}\n`);
  }

  #expand(word: string, env: Env, line: number): string {
    try {
      return processWord(word, env, { escape: this.#df?.directives.escape ?? '\\' });
    } catch (err) {
      throw new DockerfileError(this.#dfName(), line, errorMessage(err));
    }
  }

  #expandWords(line: string, env: Env, lineNo: number): string[] {
    try {
      return processWords(line, env, { escape: this.#df.directives.escape });
    } catch (err) {
      throw new DockerfileError(this.#dfName(), lineNo, errorMessage(err));
    }
  }

  // -------------------------------------------------------------------------------------------
  // Stages

  async #buildStage(stage: Stage): Promise<StageState> {
    // Start the stages this one depends on (they run concurrently with each other).
    const deps = this.#deps(stage);
    for (const d of deps) void this.#stageResult(d).catch(() => {});
    const st = await this.#from(stage);
    for (const ins of stage.instructions) {
      if (this.#req.signal?.aborted) throw new BerthError('Canceled', 'build canceled');
      await this.#instruction(st, ins);
    }
    this.#stageDone(stage.index);
    return st;
  }

  async #from(stage: Stage): Promise<StageState> {
    const from = stage.from;
    const out = this.#writer(stage.index);
    this.#step(out, stage, from.original.replace(/^\S+/, 'FROM'));
    const image = this.#expand(from.image, this.#globalArgs, from.line);
    const platformWord = from.platform !== undefined ? this.#expand(from.platform, this.#globalArgs, from.line) : undefined;
    const platform = platformFromFlag(platformWord) ?? this.#platform;
    const parentStage = this.#df.stages.find((x) => x.index < stage.index && x.name === image.toLowerCase());
    let st: StageState;
    if (parentStage) {
      const p = await this.#stageResult(parentStage.index);
      st = { config: structuredClone(p.config), layers: [...p.layers], chain: [...p.chain], key: p.key, args: new Map(), platform: p.platform, cmdSet: false, out };
    } else if (image === 'scratch') {
      st = {
        config: { architecture: platform.architecture, os: platform.os, ...(platform.variant ? { variant: platform.variant } : {}), config: {}, rootfs: { type: 'layers', diff_ids: [] }, history: [] },
        layers: [],
        chain: [],
        key: hash('scratch', formatPlatform(platform)),
        args: new Map(),
        platform,
        cmdSet: false,
        out,
      };
    } else {
      const resolved = await this.#baseImage(image, platform, from.platform !== undefined || Boolean(this.#req.platform), out);
      await this.#lease([resolved.record.id, ...resolved.chainIds]);
      const layers = await this.#layersOf(resolved);
      await this.#lease(layers.map((l) => l.blob.digest));
      const config = structuredClone(resolved.config);
      st = { config, layers, chain: [...resolved.chainIds], key: hash('image', resolved.record.id), args: new Map(), platform, cmdSet: false, out };
    }
    st.config.config ??= {};
    const cc = st.config.config;
    if (!cc.Env || cc.Env.length === 0) cc.Env = [DEFAULT_PATH_ENV];
    out(` ---> ${st.chain.length || parentStage ? shortId(this.#stateId(st)) : 'scratch'}\n`);
    // ONBUILD triggers of the base run right after FROM (and are not inherited), whether the base
    // is an image or an earlier stage (moby's initializeStage does the same for both).
    const triggers = cc.OnBuild ?? [];
    if (triggers.length) {
      cc.OnBuild = null;
      out(`# Executing ${triggers.length} build trigger${triggers.length > 1 ? 's' : ''}\n`);
      for (const t of triggers) {
        let ins: Instruction;
        try {
          ins = parseInstruction(t, this.#df.directives.escape, from.line);
        } catch (err) {
          throw new DockerfileError(this.#dfName(), from.line, `invalid ONBUILD trigger ${JSON.stringify(t)}: ${errorMessage(err)}`);
        }
        await this.#instruction(st, ins, true);
      }
    }
    return st;
  }

  async #baseImage(ref: string, platform: Platform, explicitPlatform: boolean, out: (s: string) => void): Promise<ResolvedImage> {
    const tryLocal = async () => {
      try {
        return await this.#d.images.resolve(ref);
      } catch (err) {
        if (isKind(err, 'NotFound')) return undefined;
        throw err;
      }
    };
    let local = this.#req.pull ? undefined : await tryLocal();
    if (local && explicitPlatform && (local.config.architecture !== platform.architecture || local.config.os !== platform.os)) local = undefined;
    if (local) return local;
    if (!this.#d.pullImage) {
      if (this.#req.pull) {
        const again = await tryLocal();
        if (again) return again;
      }
      throw notFound(`pull access denied for ${ref}, repository does not exist or may require 'docker login'`);
    }
    out(`${this.#req.pull ? 'Pulling' : 'Unable to find image locally, pulling'} ${ref}\n`);
    try {
      const opts: { platform?: Platform; signal?: AbortSignal } = { platform };
      if (this.#req.signal) opts.signal = this.#req.signal;
      const r = await this.#d.pullImage(ref, opts);
      return await this.#d.images.resolve(r.id);
    } catch (err) {
      // --pull with the image present locally and the registry unreachable: Docker fails too,
      // but a local image by that name is the better answer for an offline machine.
      if (this.#req.pull) {
        const again = await tryLocal();
        if (again) {
          out(`Pull failed (${errorMessage(err)}); using the local image\n`);
          return again;
        }
      }
      throw err;
    }
  }

  async #layersOf(img: ResolvedImage): Promise<LayerRef[]> {
    const diffIds = img.config.rootfs?.diff_ids ?? [];
    if (diffIds.length === 0) return [];
    if (!img.record.manifestDigest) throw notFound(`image ${img.record.id} has no manifest`);
    const m = await this.#d.content.readJson<ImageManifest>(img.record.manifestDigest);
    if (m.layers.length !== diffIds.length) throw invalidArgument(`image ${img.record.id}: manifest and config disagree on layers`);
    return diffIds.map((d, i) => ({ diffId: d, blob: { digest: m.layers[i]!.digest, size: m.layers[i]!.size, mediaType: m.layers[i]!.mediaType } }));
  }

  /** The ID Docker would print for the intermediate image after a step. */
  #stateId(st: StageState): string {
    return sha256(JSON.stringify({ ...st.config, rootfs: { type: 'layers', diff_ids: st.layers.map((l) => l.diffId) } }));
  }

  /** Variables for expansion in this stage: ARG values, then ENV (ENV wins, as in Docker). */
  #env(st: StageState): Map<string, string> {
    const m = new Map<string, string>(st.args);
    for (const kv of st.config.config?.Env ?? []) {
      const i = kv.indexOf('=');
      m.set(i < 0 ? kv : kv.slice(0, i), i < 0 ? '' : kv.slice(i + 1));
    }
    return m;
  }

  // -------------------------------------------------------------------------------------------
  // Instructions

  async #instruction(st: StageState, ins: Instruction, trigger = false): Promise<void> {
    this.#step(st.out, ins, trigger ? ins.original : ins.original.replace(/^\S+/, ins.kind));
    const cc = (st.config.config ??= {});
    const env = this.#env(st);
    const line = ins.line;
    const meta = async (descriptor: string, createdBy: string, apply: () => void) => {
      apply();
      await this.#metaStep(st, descriptor, createdBy);
    };
    switch (ins.kind) {
      case 'ENV': {
        const pairs = ins.pairs.map((p) => [this.#expand(p.key, env, line), this.#expand(p.value, env, line)] as const);
        await meta(`ENV ${JSON.stringify(pairs)}`, `ENV ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, () => {
          for (const [k, v] of pairs) cc.Env = envListSet(cc.Env ?? [], k, v);
        });
        return;
      }
      case 'LABEL': {
        const pairs = ins.pairs.map((p) => (ins.noExpand ? [p.key, p.value] as const : [this.#expand(p.key, env, line), this.#expand(p.value, env, line)] as const));
        await meta(`LABEL ${JSON.stringify(pairs)}`, `LABEL ${pairs.map(([k, v]) => `${k}=${v}`).join(' ')}`, () => {
          cc.Labels = { ...(cc.Labels ?? {}) };
          for (const [k, v] of pairs) cc.Labels[k] = v;
        });
        return;
      }
      case 'MAINTAINER': {
        await meta(`MAINTAINER ${ins.name}`, `MAINTAINER ${ins.name}`, () => {
          st.config.author = ins.name;
        });
        return;
      }
      case 'EXPOSE': {
        const ports = ins.ports.flatMap((p) => this.#expandWords(p, env, line)).flatMap((p) => normalizePort(p, line, this.#dfName()));
        await meta(`EXPOSE ${JSON.stringify(ports)}`, `EXPOSE ${ports.join(' ')}`, () => {
          cc.ExposedPorts = { ...(cc.ExposedPorts ?? {}) };
          for (const p of ports) cc.ExposedPorts[p] = {};
        });
        return;
      }
      case 'VOLUME': {
        const paths = ins.paths.map((p) => this.#expand(p, env, line));
        if (paths.some((p) => p.trim() === '')) throw new DockerfileError(this.#dfName(), line, 'VOLUME specified can not be an empty string');
        await meta(`VOLUME ${JSON.stringify(paths)}`, `VOLUME ${JSON.stringify(paths)}`, () => {
          cc.Volumes = { ...(cc.Volumes ?? {}) };
          for (const p of paths) cc.Volumes[p] = {};
        });
        return;
      }
      case 'USER': {
        const user = this.#expand(ins.user, env, line);
        await meta(`USER ${user}`, `USER ${user}`, () => {
          cc.User = user;
        });
        return;
      }
      case 'WORKDIR': {
        const p = this.#expand(ins.path, env, line);
        const wd = posix.isAbsolute(p) ? posix.normalize(p) : posix.join(cc.WorkingDir || '/', p);
        cc.WorkingDir = wd;
        // The directory is made now, owned by root (dockerd's ContainerCreateWorkdir): a layer
        // when it is new, an empty_layer entry when it exists.
        await this.#layerStep(st, `WORKDIR ${wd}`, `/bin/sh -c #(nop) WORKDIR ${wd}`, async (root) => {
          await mkdirAll(root, wd, { uid: 0, gid: 0 });
        }, { emptyIsNoLayer: true });
        return;
      }
      case 'STOPSIGNAL': {
        const sig = this.#expand(ins.signal, env, line);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(sig)) throw new DockerfileError(this.#dfName(), line, `Invalid signal: ${sig}`);
        await meta(`STOPSIGNAL ${sig}`, `STOPSIGNAL ${sig}`, () => {
          cc.StopSignal = sig;
        });
        return;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const shell = cc.Shell?.length ? cc.Shell : DEFAULT_SHELL;
        const args = ins.command.json ? ins.command.args : [...shell, ins.command.cmd];
        await meta(`${ins.kind} ${JSON.stringify(args)}`, `${ins.kind} ${JSON.stringify(args)}`, () => {
          if (ins.kind === 'CMD') {
            cc.Cmd = args;
            st.cmdSet = true;
          } else {
            cc.Entrypoint = args;
            // An ENTRYPOINT resets a CMD inherited from the base image (Docker).
            if (!st.cmdSet) cc.Cmd = null;
          }
          if (!ins.command.json) cc.ArgsEscaped = true;
        });
        return;
      }
      case 'SHELL': {
        await meta(`SHELL ${JSON.stringify(ins.args)}`, `SHELL ${JSON.stringify(ins.args)}`, () => {
          cc.Shell = ins.args;
        });
        return;
      }
      case 'HEALTHCHECK': {
        const hc = ins.test[0] === 'NONE' ? { Test: ['NONE'] } : {
          Test: ins.test,
          ...(ins.interval !== undefined ? { Interval: ins.interval } : {}),
          ...(ins.timeout !== undefined ? { Timeout: ins.timeout } : {}),
          ...(ins.startPeriod !== undefined ? { StartPeriod: ins.startPeriod } : {}),
          ...(ins.startInterval !== undefined ? { StartInterval: ins.startInterval } : {}),
          ...(ins.retries !== undefined ? { Retries: ins.retries } : {}),
        };
        await meta(`HEALTHCHECK ${JSON.stringify(hc)}`, `HEALTHCHECK &{${JSON.stringify(hc.Test)}}`, () => {
          cc.Healthcheck = hc;
        });
        return;
      }
      case 'ONBUILD': {
        await meta(`ONBUILD ${ins.expression}`, `ONBUILD ${ins.expression}`, () => {
          cc.OnBuild = [...(cc.OnBuild ?? []), ins.expression];
        });
        return;
      }
      case 'ARG': {
        for (const decl of ins.args) {
          const given = this.#buildArgs.get(decl.name);
          let value: string | undefined;
          if (given !== undefined) {
            value = given;
            this.#usedArgs.add(decl.name);
          } else if (decl.default !== undefined) value = this.#expand(decl.default, this.#env(st), line);
          else value = this.#globalArgs.get(decl.name);
          if (value !== undefined) st.args.set(decl.name, value);
          else st.args.delete(decl.name);
        }
        // ARG changes nothing by itself: the cache misses at the first use of a changed value.
        st.out(` ---> ${shortId(this.#stateId(st))}\n`);
        return;
      }
      case 'RUN':
        await this.#run(st, ins);
        return;
      case 'COPY':
      case 'ADD':
        await this.#copy(st, ins);
        return;
      case 'FROM':
        throw invalidArgument('unexpected FROM');
    }
  }

  /** A config-only step: cached for its `created` time so rebuilds are byte-identical. */
  async #metaStep(st: StageState, descriptor: string, createdBy: string): Promise<void> {
    const key = hash(st.key, st.chain[st.chain.length - 1] ?? '', descriptor);
    const hit = this.#req.noCache ? undefined : this.#d.cache.get(key);
    const created = hit?.created ?? new Date().toISOString();
    if (!hit) this.#d.cache.put(key, { created });
    else st.out(' ---> Using cache\n');
    st.key = key;
    this.#history(st, { created, created_by: `/bin/sh -c #(nop)  ${createdBy}`, empty_layer: true });
    st.out(` ---> ${shortId(this.#stateId(st))}\n`);
  }

  #history(st: StageState, h: HistoryEntry): void {
    (st.config.history ??= []).push(h);
    st.config.created = h.created!;
  }

  // -------------------------------------------------------------------------------------------
  // RUN

  #argsInScope(st: StageState): Array<[string, string]> {
    // Declared ARGs, plus the predefined proxy args when given, even without an ARG line.
    const out = new Map(st.args);
    for (const p of PROXY_ARGS) {
      const v = this.#buildArgs.get(p);
      if (v !== undefined) {
        out.set(p, v);
        this.#usedArgs.add(p);
      }
    }
    return [...out].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  async #run(st: StageState, ins: RunInstruction): Promise<void> {
    for (const m of ins.mounts) {
      throw new DockerfileError(this.#dfName(), ins.line, `the --mount option requires BuildKit (RUN --mount=type=${m.fields.type ?? 'bind'} is not supported by berth's builder)`);
    }
    const cc = (st.config.config ??= {});
    const shell = cc.Shell?.length ? cc.Shell : DEFAULT_SHELL;
    let args: string[];
    const binds: Array<{ source: string; destination: string }> = [];
    let script: { name: string; data: string } | undefined;
    if (ins.command.json) args = ins.command.args;
    else if (ins.heredocs.length > 0) {
      const only = ins.heredocs.length === 1 && /^\d*<<-?\S+$/.test(ins.command.cmd) ? ins.heredocs[0]! : undefined;
      if (only && only.content.startsWith('#!')) {
        script = { name: only.name, data: only.content };
        args = [`/dev/pipes/${only.name}`];
      } else if (only) args = [...shell, only.content];
      else args = [...shell, [ins.command.cmd, ...ins.heredocs.map((h: Heredoc) => h.content + h.name)].join('\n')];
    } else args = [...shell, ins.command.cmd];
    const argPairs = this.#argsInScope(st);
    // RUN sees the build args, with ENV taking precedence.
    let runEnv = argPairs.map(([k, v]) => `${k}=${v}`);
    for (const kv of cc.Env ?? []) runEnv = envListSet(runEnv, kv.slice(0, kv.indexOf('=') < 0 ? kv.length : kv.indexOf('=')), kv.includes('=') ? kv.slice(kv.indexOf('=') + 1) : '');
    // RUN --network=default is the build's own network (the request's --network).
    const network = ins.network !== undefined && ins.network !== 'default' ? ins.network : this.#req.network ?? 'default';
    // Predefined proxy args not declared with ARG stay out of the history and out of the cache
    // key (moby's IsReferencedOrNotBuiltin): a proxy change neither leaks nor rebuilds.
    const undeclaredProxy = (k: string) => (PROXY_ARGS as readonly string[]).includes(k) && !st.args.has(k);
    const historyArgs = argPairs.filter(([k]) => !undeclaredProxy(k));
    const createdBy = (historyArgs.length ? `|${historyArgs.length} ${historyArgs.map(([k, v]) => `${k}=${v}`).join(' ')} ` : '') + args.join(' ');
    const keyEnv = runEnv.filter((kv) => !undeclaredProxy(kv.slice(0, kv.indexOf('=') < 0 ? kv.length : kv.indexOf('='))) || (cc.Env ?? []).includes(kv));
    const descriptor = JSON.stringify({ run: args, env: keyEnv, user: cc.User ?? '', workdir: cc.WorkingDir ?? '/', network, script: script?.data ?? null });
    await this.#layerStep(st, descriptor, createdBy, async (root) => {
      if (script) {
        const dir = join(this.#tmp, `pipes-${randomBytes(4).toString('hex')}`);
        await mkdir(dir, { mode: 0o755 });
        await writeFile(join(dir, script.name), script.data);
        await chmod(join(dir, script.name), 0o755);
        binds.push({ source: dir, destination: '/dev/pipes' });
      }
      const cid = randomBytes(6).toString('hex');
      st.out(` ---> Running in ${cid}\n`);
      const opts: Parameters<StepRunner['run']>[0] = {
        rootfs: root,
        args,
        env: runEnv,
        user: cc.User ?? '',
        workdir: cc.WorkingDir || '/',
        network,
        binds,
        output: (chunk) => st.out(chunk.toString('utf8')),
      };
      if (this.#req.signal) opts.signal = this.#req.signal;
      const code = await this.#runner.run(opts);
      if (code !== 0) {
        const shown = ins.command.json ? JSON.stringify(args) : args.join(' ');
        throw new BuildStepError(`The command '${shown}' returned a non-zero code: ${code}`, code);
      }
      st.out(`Removing intermediate container ${cid}\n`);
    });
  }

  // -------------------------------------------------------------------------------------------
  // COPY / ADD

  async #copy(st: StageState, ins: CopyInstruction): Promise<void> {
    const env = this.#env(st);
    const line = ins.line;
    const cc = (st.config.config ??= {});
    const dfn = this.#dfName();
    let tree: SourceTree = this.#req.context;
    let fromDesc = 'context';
    if (ins.from !== undefined) {
      if (ins.kind === 'ADD') throw new DockerfileError(dfn, line, 'ADD does not support --from');
      const from = this.#expand(ins.from, env, line);
      const h = await this.#fromTree(from, line, st.out);
      tree = h.tree;
      fromDesc = h.desc;
    }
    if (ins.parents) throw new DockerfileError(dfn, line, 'COPY --parents is not supported by this builder');
    if (ins.excludes.length) throw new DockerfileError(dfn, line, `${ins.kind} --exclude is not supported by this builder`);
    const chownSpec = ins.chown !== undefined ? this.#expand(ins.chown, env, line) : undefined;
    const chmodSpec = ins.chmod !== undefined ? this.#expand(ins.chmod, env, line) : undefined;
    let chmod: number | undefined;
    try {
      chmod = parseChmod(chmodSpec);
    } catch (err) {
      throw new DockerfileError(dfn, line, errorMessage(err));
    }
    let destRaw = this.#expand(ins.dest, env, line);
    const trailingSlash = destRaw.endsWith('/') || destRaw.endsWith('/.') || destRaw === '.';
    const wd = cc.WorkingDir || '/';
    let dest = posix.isAbsolute(destRaw) ? posix.normalize(destRaw) : posix.join(wd, destRaw);
    if (dest.length > 1 && dest.endsWith('/')) dest = dest.slice(0, -1);
    destRaw = dest;

    // Sources: heredocs, URLs (ADD), paths in the tree (globs expanded).
    const heredocs = new Map(ins.heredocs.map((h) => [h.name, h]));
    const items: CopyItem[] = [];
    const inline: Array<{ name: string; data: string }> = [];
    const urls: Array<{ url: string; path: string; digest: string; mtime?: Date }> = [];
    const parts: string[] = [];
    for (const raw of ins.sources) {
      const hd = /^\d*<<-?(.+)$/.exec(raw);
      if (hd && !ins.json) {
        const doc = [...heredocs.values()].find((h) => raw.endsWith(h.name) || raw.includes(h.name));
        if (doc) {
          const data = doc.expand ? processWord(doc.content, env, { rawQuotes: true, escape: this.#df.directives.escape }) : doc.content;
          inline.push({ name: doc.name, data });
          parts.push(`heredoc:${doc.name}:${sha256(data)}`);
          continue;
        }
      }
      const src = ins.json ? raw : this.#expand(raw, env, line);
      if (/^https?:\/\//i.test(src)) {
        if (ins.kind !== 'ADD') throw new DockerfileError(dfn, line, 'source can\'t be a URL for COPY');
        const dl = await this.#download(src, ins.checksum);
        urls.push(dl);
        parts.push(`url:${src}:${dl.digest}`);
        continue;
      }
      let paths: string[];
      try {
        paths = await expandSource(tree, src);
      } catch (err) {
        if (isKind(err, 'NotFound')) throw new BuildStepError(`${ins.kind} failed: file not found in build context or excluded by .dockerignore: stat ${src.replace(/^\/+/, '')}: file does not exist`, 1);
        throw err;
      }
      for (const p of paths) {
        items.push({ tree, path: p });
        parts.push(`src:${p}:${await this.#treeDigest(tree, p)}`);
      }
    }
    const count = items.length + inline.length + urls.length;
    const destIsDir = trailingSlash || count > 1;
    if (count > 1 && !trailingSlash) {
      throw new BuildStepError(`When using ${ins.kind} with more than one source file, the destination must be a directory and end with a /`, 1);
    }
    const descriptor = JSON.stringify({ kind: ins.kind, from: fromDesc, dest: destRaw, destIsDir, chown: chownSpec ?? null, chmod: chmod ?? null, parts });
    const summary = `${ins.kind} ${count === 1 ? (items[0] && (await tree.entry(items[0].path))?.type === 'directory' ? 'dir' : 'file') : 'multi'}:${hash(...parts)} in ${destRaw}${trailingSlash && destRaw !== '/' ? '/' : ''} `;
    await this.#layerStep(st, descriptor, `/bin/sh -c #(nop) ${summary}`, async (root, upper) => {
      const { uid, gid } = await resolveChown(root, chownSpec);
      // Only a step with one source may write into the upper dir behind the overlay's back:
      // later writes of the same step through the mount would not see it.
      const direct = upper !== undefined && items.length === 1 && inline.length === 0 && urls.length === 0 ? { upper } : {};
      await copyInto(root, items, destRaw, { uid, gid, ...(chmod !== undefined ? { chmod } : {}), destIsDir, extractArchives: ins.kind === 'ADD', host: this.#d.host, ...direct });
      for (const f of inline) {
        const target = destIsDir ? posix.join(destRaw, f.name) : destRaw;
        await writeFileInto(root, target, f.data, chmod ?? 0o644, { uid, gid });
      }
      for (const u of urls) {
        const name = posix.basename(new URL(u.url).pathname) || 'index.html';
        const target = destIsDir ? posix.join(destRaw, name) : destRaw;
        const { readFile } = await import('node:fs/promises');
        await writeFileInto(root, target, await readFile(u.path), chmod ?? 0o600, { uid, gid }, u.mtime);
      }
    });
  }

  /** Content digest of a source path: the entry itself and, for directories, everything below. */
  async #treeDigest(tree: SourceTree, p: string): Promise<string> {
    const e = await tree.entry(p);
    if (!e) return 'missing';
    if (e.type !== 'directory') return `${e.type}:${e.mode.toString(8)}:${e.digest ?? ''}`;
    const h = createHash('sha256');
    h.update(`dir:${e.mode.toString(8)}\n`);
    for (const c of await tree.list(p)) h.update(`${c.path.slice(p === '' ? 0 : p.length + 1)}\0${c.type}\0${c.mode.toString(8)}\0${c.digest ?? ''}\n`);
    return 'dir:' + h.digest('hex');
  }

  /** `COPY --from`: a previous stage (by name or index) or an image, mounted read-only. */
  async #fromTree(from: string, line: number, out: (s: string) => void): Promise<{ tree: SourceTree; desc: string }> {
    let chain: Digest[];
    let desc: string;
    const stage = /^\d+$/.test(from) ? this.#df.stages[Number(from)] : this.#df.stages.find((s) => s.name === from.toLowerCase());
    if (stage) {
      const st = await this.#stageResult(stage.index);
      chain = st.chain;
      desc = `stage:${st.chain[st.chain.length - 1] ?? 'empty'}`;
    } else {
      let img: ResolvedImage;
      try {
        img = await this.#baseImage(from, this.#platform, false, out);
      } catch (err) {
        throw new DockerfileError(this.#dfName(), line, `invalid from flag value ${from}: ${errorMessage(err)}`);
      }
      chain = img.chainIds;
      desc = `image:${img.record.id}`;
    }
    const top = chain[chain.length - 1];
    const cacheKey = top ?? 'empty';
    let handle = this.#stageRoots.get(cacheKey);
    if (!handle) {
      handle = this.#mountReadOnly(top);
      this.#stageRoots.set(cacheKey, handle);
    }
    const h = await handle;
    return { tree: h.tree, desc };
  }

  async #mountReadOnly(top: Digest | undefined): Promise<DirectoryTreeHandle> {
    const dir = join(this.#tmp, `from-${randomBytes(4).toString('hex')}`);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!top) return { tree: new DirectoryTree(dir) };
    const key = `build-${this.#id}-ro-${++this.#snapSeq}`;
    const mounts = await this.#d.snapshotter.prepare(key, top);
    const root = await this.#mountAt(mounts, join(dir, 'root'));
    this.#cleanups.push(async () => {
      await root.unmount();
      await this.#d.snapshotter.remove(key);
    });
    return { tree: new DirectoryTree(root.path) };
  }

  async #download(url: string, checksum: string | undefined): Promise<{ url: string; path: string; digest: string; mtime?: Date }> {
    const res = await fetch(url, { redirect: 'follow', ...(this.#req.signal ? { signal: this.#req.signal } : {}) });
    if (!res.ok || !res.body) throw new BuildStepError(`failed to fetch ${url}: ${res.status} ${res.statusText}`, 1);
    const path = join(this.#tmp, `dl-${randomBytes(6).toString('hex')}`);
    const h = createHash('sha256');
    const { Readable } = await import('node:stream');
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), new Transform({ transform(c: Buffer, _e, cb) { h.update(c); cb(null, c); } }), createWriteStream(path, { mode: 0o600 }));
    const digest = 'sha256:' + h.digest('hex');
    if (checksum && checksum !== digest) throw new BuildStepError(`digest mismatch for ${url}: ${digest}, expected ${checksum}`, 1);
    const lm = res.headers.get('last-modified');
    const out: { url: string; path: string; digest: string; mtime?: Date } = { url, path, digest };
    if (lm && !Number.isNaN(Date.parse(lm))) out.mtime = new Date(lm);
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // Layers

  async #mountAt(mounts: Mount[], target: string): Promise<{ path: string; unmount(): Promise<void> }> {
    const m = mounts[0]!;
    if (m.type === 'bind') {
      // A snapshot on an empty parent is a plain directory: use it in place.
      return { path: m.source, unmount: async () => {} };
    }
    await mkdir(target, { recursive: true, mode: 0o755 });
    // Read-only uses (COPY --from) mount with the snapshot's upper dir too (overlay refuses a
    // single lowerdir without one); nothing writes there and the snapshot is removed after.
    const mounter = this.#d.mounter ?? this.#d.host;
    await mounter.mount(m.source, target, m.type, m.options);
    return {
      path: target,
      unmount: async () => {
        await mounter.unmount(target).catch(async () => mounter.unmount(target, { lazy: true }));
      },
    };
  }

  /**
   * A step that writes a layer: on a cache hit replay the recorded layer; otherwise mutate a
   * fresh snapshot, diff it into a layer blob and commit it under its chain ID.
   */
  async #layerStep(st: StageState, descriptor: string, createdBy: string, mutate: (root: string, upper: string | undefined) => Promise<void>, opts: { emptyIsNoLayer?: boolean } = {}): Promise<void> {
    const parent = st.chain[st.chain.length - 1];
    const key = hash(st.key, parent ?? '', descriptor);
    const history = (created: string, empty = false): HistoryEntry => ({ created, created_by: createdBy, ...(empty ? { empty_layer: true } : {}) });
    if (!this.#req.noCache) {
      const hit = this.#d.cache.get(key);
      if (hit && (await this.#usable(hit.layer, parent))) {
        st.out(' ---> Using cache\n');
        st.key = key;
        if (hit.layer) this.#pushLayer(st, hit.layer);
        this.#history(st, history(hit.created, !hit.layer));
        st.out(` ---> ${shortId(this.#stateId(st))}\n`);
        return;
      }
      if (hit) this.#d.cache.delete(key);
    }
    const seq = ++this.#snapSeq;
    const snapKey = `build-${this.#id}-${seq}`;
    let t0 = performance.now();
    const mounts = await this.#d.snapshotter.prepare(snapKey, parent);
    trace('prepare', t0);
    let committed = false;
    try {
      t0 = performance.now();
      const root = await this.#mountAt(mounts, join(this.#tmp, `mnt-${seq}`));
      trace('mount', t0);
      try {
        t0 = performance.now();
        // The overlay's upper dir, for writes into directories this step created (see copyInto).
        await mutate(root.path, mounts[0]?.type === 'overlay' ? this.#d.snapshotter.upperDir(snapKey) : undefined);
        trace('mutate', t0);
      } finally {
        t0 = performance.now();
        await root.unmount();
        trace('unmount', t0);
      }
      const created = new Date().toISOString();
      if (opts.emptyIsNoLayer && (await readdir(this.#d.snapshotter.upperDir(snapKey))).length === 0) {
        // Nothing changed (a WORKDIR that exists): no layer, an empty_layer history entry, as
        // dockerd's commit of an empty diff gives.
        this.#d.cache.put(key, { created });
        st.key = key;
        this.#history(st, history(created, true));
        st.out(` ---> ${shortId(this.#stateId(st))}\n`);
        return;
      }
      const { layer, stored } = await this.#storeLayer(snapKey, parent);
      committed = true;
      const recorded = stored.then(() => this.#d.cache.put(key, { created, layer }));
      recorded.catch(() => {}); // observed by settle()/cleanup(); never an unhandled rejection
      this.#pending.push(recorded);
      st.key = key;
      this.#pushLayer(st, layer);
      this.#history(st, history(created));
      st.out(` ---> ${shortId(this.#stateId(st))}\n`);
    } finally {
      if (!committed) await this.#d.snapshotter.remove(snapKey).catch(() => {});
    }
  }

  async #usable(layer: CachedLayer | undefined, parent: Digest | undefined): Promise<boolean> {
    if (!layer) return true;
    const expected = parent ? sha256(`${parent} ${layer.diffId}`) : layer.diffId;
    if (expected !== layer.chainId) return false;
    return (await this.#d.snapshotter.stat(layer.chainId)) !== undefined && (await this.#d.content.has(layer.blob.digest));
  }

  #pushLayer(st: StageState, layer: CachedLayer): void {
    st.layers.push({ diffId: layer.diffId, blob: layer.blob });
    st.chain.push(layer.chainId);
    st.config.rootfs = { type: 'layers', diff_ids: st.layers.map((l) => l.diffId) };
  }

  /**
   * Diff the snapshot's upper dir into an uncompressed layer tar (hashing it on the way: the
   * diffID), commit the snapshot under the chain ID, and store the blob in the content store in
   * the background: the next step only needs the committed snapshot. The image is created only
   * after every blob landed (#settle); the cache records a layer once its blob is stored.
   */
  async #storeLayer(snapKey: string, parent: Digest | undefined): Promise<{ layer: CachedLayer; stored: Promise<void> }> {
    const upper = this.#d.snapshotter.upperDir(snapKey);
    const file = join(this.#tmp, `layer-${snapKey}.tar`);
    const h = createHash('sha256');
    let size = 0;
    let t0 = performance.now();
    await pipeline(
      layerDiff(upper, { host: this.#d.host }),
      new Transform({ transform(c: Buffer, _e, cb) { h.update(c); size += c.length; cb(null, c); } }),
      createWriteStream(file, { mode: 0o600 }),
    );
    const diffId = `sha256:${h.digest('hex')}` as Digest;
    trace('diff', t0);
    t0 = performance.now();
    const chainId = parent ? sha256(`${parent} ${diffId}`) : diffId;
    // Leased before it exists: a GC starting now cannot take it (lease waits for a running one).
    await this.#lease([chainId, diffId]);
    await this.#d.snapshotter.commit(snapKey, chainId);
    trace('commit', t0);
    const stored = (async () => {
      const t1 = performance.now();
      try {
        if (!(await this.#d.content.has(diffId))) await this.#d.content.ingest(createReadStream(file), { digest: diffId, size });
      } finally {
        await rm(file, { force: true });
      }
      trace('ingest (background)', t1);
    })();
    return { layer: { diffId, chainId, blob: { digest: diffId, size, mediaType: MediaType.OciLayer } }, stored };
  }

  async #lease(ids: string[]): Promise<void> {
    if (this.#d.lease) this.#leases.push(await this.#d.lease(ids));
  }

  /** Wait for every background blob write; the first failure fails the build. */
  async settle(): Promise<void> {
    const rs = await Promise.allSettled(this.#pending);
    const bad = rs.find((r) => r.status === 'rejected');
    if (bad) throw (bad as PromiseRejectedResult).reason;
  }
}

interface DirectoryTreeHandle {
  tree: SourceTree;
}

/** `80`, `80/udp`, `8000-8010/tcp` -> Docker's "80/tcp" keys (ranges expand). */
export function normalizePort(p: string, line: number, file: string): string[] {
  const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(p);
  if (!m) throw new DockerfileError(file, line, `invalid containerPort: ${p}`);
  const proto = (m[3] ?? 'tcp').toLowerCase();
  const lo = Number(m[1]);
  const hi = m[2] ? Number(m[2]) : lo;
  if (lo < 1 || hi > 65535 || hi < lo) throw new DockerfileError(file, line, `invalid containerPort: ${p}`);
  const out: string[] = [];
  for (let n = lo; n <= hi; n++) out.push(`${n}/${proto}`);
  return out;
}

export type { ContainerConfig };
