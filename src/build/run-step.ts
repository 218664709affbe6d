// Runs one RUN step: a short-lived container on a mounted build snapshot, with the spec the
// container part generates (Docker's default capabilities, seccomp, masked paths, clamped
// rlimits) and the build's env, user and working directory. `runc run` runs in the foreground
// under its own state root (<execRoot>/build-runc), so no conmon is needed: its exit status is
// the command's, and stdout/stderr stream straight into the build progress.
//
// Networking: `default` (and `bridge`) joins the daemon's default bridge through the network
// service, as `docker build` does; `none` gets an empty network namespace; `host` shares the
// host's. Without a network service (unit setups) `default` falls back to the host network.
import { spawn } from 'node:child_process';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { BerthError, internal, invalidArgument } from '../core/errors.ts';
import type { ContainerConfig } from '../core/oci.ts';
import type { NetworkService } from '../core/networks.ts';
import type { Host } from '../host/host.ts';
import { buildSpec, hostsFile, resolvConf, specToJson, type OciSpec } from '../runtime/spec.ts';
import { resolveUser } from '../runtime/user.ts';
import { hostRlimits } from '../runtime/rlimits.ts';
import { hostBoundingCaps } from '../runtime/capabilities.ts';
import { trace } from './builder.ts';

export interface RunStepOptions {
  /** Mounted root filesystem of the step (read-write). */
  rootfs: string;
  args: string[];
  env: string[];
  user: string;
  workdir: string;
  network: string;
  /** Extra read-only bind mounts (heredoc scripts). */
  binds?: Array<{ source: string; destination: string }>;
  output: (chunk: Buffer) => void;
  signal?: AbortSignal;
}

export interface StepRunner {
  /** Run and return the exit code. Throws only when the container cannot be run at all. */
  run(opts: RunStepOptions): Promise<number>;
  /**
   * A runner for one build: its RUN steps share one network sandbox (set up at the first RUN
   * on the default network, ended by close()), as steps of one build never run as servers.
   */
  session?(): StepRunner & { close(): Promise<void> };
}

export interface RuncStepRunnerOptions {
  host: Host;
  /** Where bundles live (private, under the build cache tmp dir). */
  tmpRoot: string;
  /** runc --root for build containers. */
  stateRoot: string;
  cgroupVersion: '1' | '2';
  runtimePath?: string;
  /** Read at call time: the network module registers after the build module may have. */
  networks?: () => NetworkService | undefined;
  /** The cgroup parent of build containers (default 'berth-build'); test daemons side by side
   *  each need their own, or one's clean-up removes the parent under another's `runc run`. */
  cgroupParent?: string;
}

interface NetSetup {
  netnsPath: string | undefined;
  files: { hostname: string; hosts: string; resolvConf: string };
}

export class RuncStepRunner implements StepRunner {
  readonly #o: RuncStepRunnerOptions;
  #hostCaps: string[] | undefined;
  /** Sessions open: the cgroup parent is removed when the last one closes, never under another
   *  build's `runc run` (that failed with exit status 1, creating its cgroup). */
  #open = 0;

  constructor(opts: RuncStepRunnerOptions) {
    if (opts.cgroupParent !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(opts.cgroupParent)) throw invalidArgument(`invalid build cgroup parent ${JSON.stringify(opts.cgroupParent)}`);
    this.#o = opts;
  }

  #parent(): string {
    return this.#o.cgroupParent ?? CGROUP_PARENT;
  }

  async run(opts: RunStepOptions): Promise<number> {
    const s = this.session();
    try {
      return await s.run(opts);
    } finally {
      await s.close();
    }
  }

  session(): StepRunner & { close(): Promise<void> } {
    const sid = 'build-' + randomBytes(16).toString('hex');
    const filesDir = join(this.#o.tmpRoot, sid);
    let net: Promise<NetSetup> | undefined;
    const networks = () => this.#o.networks?.();
    this.#open++;
    let closed = false;
    return {
      run: (opts) => {
        // default/bridge, none, host, or the name of a user-defined network (as dockerd's
        // legacy builder takes --network); one sandbox serves every RUN of the session.
        const mode = opts.network === 'bridge' || opts.network === '' ? 'default' : opts.network;
        if (/^container:/.test(mode)) throw invalidArgument(`network mode ${JSON.stringify(opts.network)} not supported for builds`);
        const svc = mode === 'none' || mode === 'host' ? undefined : networks();
        if (!svc) {
          if (mode !== 'none' && mode !== 'host' && mode !== 'default') throw invalidArgument(`network ${JSON.stringify(mode)} not found: no network service`);
          return this.#runOne(opts, mode === 'none' ? 'none' : 'host', undefined);
        }
        net ??= (async () => {
          const t0 = performance.now();
          await mkdir(filesDir, { recursive: true, mode: 0o700 });
          const sb = await svc.setUp({ containerId: sid, name: sid, hostname: sid.slice(0, 12), networkMode: mode === 'default' ? 'bridge' : mode, filesDir });
          trace('run: network setup', t0);
          return { netnsPath: sb.netnsPath, files: { hostname: sb.hostnamePath, hosts: sb.hostsPath, resolvConf: sb.resolvConfPath } };
        })();
        return net.then((n) => this.#runOne(opts, 'bridge', n));
      },
      close: async () => {
        if (!closed) {
          closed = true;
          if (--this.#open === 0) await removeCgroupParent(this.#parent());
        }
        if (net) {
          const svc = networks();
          await net.catch(() => undefined);
          await svc?.tearDown(sid).catch(() => {});
          await svc?.forget(sid).catch(() => {});
        }
        await rm(filesDir, { recursive: true, force: true });
      },
    };
  }

  async #runOne(opts: RunStepOptions, mode: 'bridge' | 'host' | 'none', net: NetSetup | undefined): Promise<number> {
    const id = 'build-' + randomBytes(16).toString('hex');
    const bundle = join(this.#o.tmpRoot, id);
    await mkdir(bundle, { recursive: true, mode: 0o700 });
    try {
      let t0 = performance.now();
      let files = net?.files;
      if (!files) {
        const filesDir = join(bundle, 'files');
        await mkdir(filesDir, { mode: 0o700 });
        files = { hostname: join(filesDir, 'hostname'), hosts: join(filesDir, 'hosts'), resolvConf: join(filesDir, 'resolv.conf') };
        const hostResolv = await readFile('/etc/resolv.conf', 'utf8').catch(() => '');
        const hn = mode === 'host' ? (await readFile('/etc/hostname', 'utf8').catch(() => 'localhost')).trim() : id.slice(0, 12);
        await writeFile(files.hostname, hn + '\n');
        await writeFile(files.hosts, hostsFile(hn));
        await writeFile(files.resolvConf, resolvConf(hostResolv, [], [], [], mode === 'host'));
      }
      // WORKDIR may not exist yet (Docker creates it for RUN).
      await mkdirInRoot(opts.rootfs, opts.workdir);
      const user = await resolveUser(opts.rootfs, opts.user);
      const image: ContainerConfig = { Env: opts.env, WorkingDir: opts.workdir, User: opts.user, Cmd: opts.args, Entrypoint: null };
      this.#hostCaps ??= hostBoundingCaps();
      const spec: OciSpec = buildSpec({
        id,
        rootfs: opts.rootfs,
        image,
        create: { Cmd: opts.args, Entrypoint: [''], Hostname: id.slice(0, 12), HostConfig: { NetworkMode: mode } },
        user,
        files,
        cgroupsPath: `/${this.#parent()}/${id}`,
        cgroupVersion: this.#o.cgroupVersion,
        hostRlimits: hostRlimits(),
        hostCaps: this.#hostCaps,
      });
      spec.process.args = opts.args;
      if (net?.netnsPath) {
        for (const ns of spec.linux.namespaces as Array<{ type: string; path?: string }>) if (ns.type === 'network') ns.path = net.netnsPath;
      }
      for (const b of opts.binds ?? []) spec.mounts.push({ destination: b.destination, type: 'bind', source: b.source, options: ['rbind', 'ro', 'rprivate'] });
      await writeFile(join(bundle, 'config.json'), specToJson(spec));
      trace('run: spec', t0);
      t0 = performance.now();
      const code = await this.#runc(id, bundle, opts);
      trace('run: runc', t0);
      return code;
    } finally {
      await rm(bundle, { recursive: true, force: true });
    }
  }

  #runc(id: string, bundle: string, opts: RunStepOptions): Promise<number> {
    const runc = this.#o.runtimePath ?? 'runc';
    if (opts.signal?.aborted) return Promise.reject(new BerthError('Canceled', 'build canceled'));
    return new Promise((resolve, reject) => {
      const child = spawn(runc, [`--root=${this.#o.stateRoot}`, 'run', '--bundle', bundle, id], { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (b: Buffer) => opts.output(b));
      child.stderr.on('data', (b: Buffer) => opts.output(b));
      let closed = false;
      // `runc kill` fails until `runc run` has created the container: repeat until it is gone.
      const onAbort = () => {
        void (async () => {
          while (!closed) {
            await this.#kill(runc, id);
            await new Promise((r) => setTimeout(r, 100));
          }
        })();
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (e) => reject(internal(`${runc}: ${e.message}`)));
      child.on('close', (code, sig) => {
        closed = true;
        opts.signal?.removeEventListener('abort', onAbort);
        void this.#cleanup(runc, id).finally(() => resolve(code ?? (sig ? 128 + 9 : 1)));
      });
    });
  }

  async #kill(runc: string, id: string): Promise<void> {
    await this.#o.host.run(runc, [`--root=${this.#o.stateRoot}`, 'kill', id, 'KILL'], { allowFailure: true }).catch(() => {});
  }

  async #cleanup(runc: string, id: string): Promise<void> {
    await this.#o.host.run(runc, [`--root=${this.#o.stateRoot}`, 'delete', '--force', id], { allowFailure: true }).catch(() => {});
  }
}

/** Build containers' cgroups live under this parent by default (runc removes each child at exit). */
const CGROUP_PARENT = 'berth-build';

/** Remove the (then empty) parent cgroup in every hierarchy once the last build is done. */
async function removeCgroupParent(parent: string): Promise<void> {
  const root = '/sys/fs/cgroup';
  const { readdir, rmdir } = await import('node:fs/promises');
  await rmdir(join(root, parent)).catch(() => {});
  for (const h of await readdir(root).catch(() => [] as string[])) await rmdir(join(root, h, parent)).catch(() => {});
}

/** mkdir -p of an absolute in-container path, resolved inside the root (symlinks stay inside). */
export async function mkdirInRoot(root: string, dir: string): Promise<void> {
  const { secureJoin } = await import('../layer/secure-join.ts');
  const p = await secureJoin(root, dir);
  await mkdir(p, { recursive: true, mode: 0o755 });
}
