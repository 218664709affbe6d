// Shared fixtures for integration tests: temp dirs, a busybox-static rootfs, OCI image layouts,
// Debian's reference registry on a loopback port, skopeo, and a berthd on its own roots and
// socket. Every fixture cleans up what it made; tests run side by side.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtemp, mkdir, rm, writeFile, copyFile, symlink, readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { gzipSync } from 'node:zlib';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { before, after } from 'node:test';

const execFileP = promisify(execFile);
export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NODE = join(REPO_ROOT, 'node_modules', 'node', 'bin', 'node');
export const BERTH = join(REPO_ROOT, 'bin', 'berth');
export const BERTHD = join(REPO_ROOT, 'bin', 'berthd');

export const isRoot = process.getuid?.() === 0;

/** A temp dir removed by the returned cleanup (also usable with `await using`). */
export async function tempDir(prefix = 'berth-test-'): Promise<{ path: string; cleanup(): Promise<void>; [Symbol.asyncDispose](): Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  const cleanup = () => rm(path, { recursive: true, force: true });
  return { path, cleanup, [Symbol.asyncDispose]: cleanup };
}

export interface RunResult { code: number; stdout: string; stderr: string }

/** Run a program; never throws on non-zero exit. */
export function run(file: string, args: readonly string[], opts: { env?: NodeJS.ProcessEnv; input?: string | Buffer; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.on('error', reject);
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? 128, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/** A free loopback TCP port (bind :0, read, close). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export async function waitFor(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------------------------------------
// Root filesystems and OCI image layouts

/** A busybox-static userland: /bin/busybox, applet symlinks, /etc/passwd and group, /tmp. */
export async function busyboxRootfs(dir: string): Promise<void> {
  await mkdir(join(dir, 'bin'), { recursive: true });
  for (const d of ['etc', 'tmp', 'proc', 'sys', 'dev', 'root', 'home', 'var', 'usr/bin', 'sbin']) await mkdir(join(dir, d), { recursive: true });
  await copyFile('/bin/busybox', join(dir, 'bin', 'busybox'));
  const { stdout } = await execFileP('/bin/busybox', ['--list']);
  for (const applet of stdout.split('\n').filter((a) => a && a !== 'busybox')) {
    await symlink('busybox', join(dir, 'bin', applet)).catch(() => {});
  }
  await writeFile(join(dir, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\nuser:x:1000:1000:user:/home:/bin/sh\n');
  await writeFile(join(dir, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n');
}

/** Tar a directory (GNU tar, numeric owners, sorted: reproducible). */
export async function tarDirectory(dir: string): Promise<Buffer> {
  const { stdout } = await execFileP('tar', ['--sort=name', '--numeric-owner', '--mtime=2024-01-01 00:00Z', '-C', dir, '-cf', '-', '.'], { encoding: 'buffer', maxBuffer: 1 << 30 });
  return stdout as unknown as Buffer;
}

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

export interface LayoutImage {
  /** OCI image layout directory (`oci:<dir>:<tag>` for skopeo). */
  dir: string;
  tag: string;
  manifestDigest: string;
  configDigest: string;
  diffIds: string[];
}

/**
 * Write an OCI image layout with the given uncompressed layer tars (gzipped unless told not to).
 * `config` is merged into the image config's `config` section (Cmd, Env, ...).
 */
export async function writeOciLayout(dir: string, opts: { layers: Buffer[]; config?: Record<string, unknown>; tag?: string; gzip?: boolean; history?: string[] }): Promise<LayoutImage> {
  const tag = opts.tag ?? 'latest';
  const blobs = join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (b: Buffer) => {
    const d = sha(b);
    await writeFile(join(blobs, d.slice(7)), b);
    return d;
  };
  const gzip = opts.gzip ?? true;
  const layerDescs = [];
  const diffIds: string[] = [];
  for (const tar of opts.layers) {
    diffIds.push(sha(tar));
    const blob = gzip ? gzipSync(tar) : tar;
    layerDescs.push({ mediaType: gzip ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', digest: await put(blob), size: blob.length });
  }
  const config = Buffer.from(JSON.stringify({
    created: '2024-01-01T00:00:00Z',
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['sh'], ...opts.config },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: opts.layers.map((_, i) => ({ created: '2024-01-01T00:00:00Z', created_by: opts.history?.[i] ?? `layer ${i}` })),
  }));
  const configDigest = await put(config);
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: layerDescs,
  }));
  const manifestDigest = await put(manifest);
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
  return { dir, tag, manifestDigest, configDigest, diffIds };
}

/** A busybox-static image layout (one layer), built once per process and cached. */
let busyboxCache: Promise<LayoutImage> | undefined;
export function busyboxImage(): Promise<LayoutImage> {
  busyboxCache ??= (async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-busybox-'));
    process.on('exit', () => void execFile('rm', ['-rf', root]));
    const fs = join(root, 'rootfs');
    await busyboxRootfs(fs);
    const tar = await tarDirectory(fs);
    return writeOciLayout(join(root, 'layout'), { layers: [tar], config: { Cmd: ['sh'] } });
  })();
  return busyboxCache;
}

// ---------------------------------------------------------------------------------------------
// Registries

export interface TestRegistry {
  /** "127.0.0.1:PORT" */
  addr: string;
  url: string;
  root: string;
  stop(): Promise<void>;
}

/** Debian's docker-registry (CNCF Distribution 2.8) on a loopback port, temp storage. */
export async function startRegistry(opts: { htpasswd?: { user: string; pass: string }; deleteEnabled?: boolean } = {}): Promise<TestRegistry> {
  const root = await mkdtemp(join(tmpdir(), 'berth-registry-'));
  const port = await freePort();
  let auth = '';
  if (opts.htpasswd) {
    const { stdout } = await execFileP('htpasswd', ['-Bbn', opts.htpasswd.user, opts.htpasswd.pass]);
    await writeFile(join(root, 'htpasswd'), stdout);
    auth = `auth:\n  htpasswd:\n    realm: berth-test\n    path: ${join(root, 'htpasswd')}\n`;
  }
  const config = `version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: ${join(root, 'data')}
  delete:
    enabled: ${opts.deleteEnabled ? 'true' : 'false'}
http:
  addr: 127.0.0.1:${port}
${auth}`;
  await writeFile(join(root, 'config.yml'), config);
  const child = spawn('/usr/bin/docker-registry', ['serve', join(root, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const addr = `127.0.0.1:${port}`;
  try {
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`docker-registry exited: ${stderr}`);
      const r = await fetch(`http://${addr}/v2/`);
      return r.status === 200 || r.status === 401;
    }, 'docker-registry to listen');
  } catch (err) {
    child.kill('SIGKILL');
    await rm(root, { recursive: true, force: true });
    throw err;
  }
  return {
    addr,
    url: `http://${addr}`,
    root,
    async stop() {
      await stopChild(child);
      await rm(root, { recursive: true, force: true });
    },
  };
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await done;
  clearTimeout(t);
}

/** skopeo copy with TLS verification off for loopback registries. */
export async function skopeoCopy(src: string, dst: string, extra: string[] = []): Promise<void> {
  const args = ['copy', '--quiet', '--insecure-policy'];
  if (src.startsWith('docker://')) args.push('--src-tls-verify=false');
  if (dst.startsWith('docker://')) args.push('--dest-tls-verify=false');
  const r = await run('skopeo', [...args, ...extra, src, dst]);
  if (r.code !== 0) throw new Error(`skopeo copy ${src} ${dst}: ${r.stderr}`);
}

/** Push an OCI layout image to a registry as `repo:tag`. Returns the pulled-by reference. */
export async function pushLayout(img: LayoutImage, registry: TestRegistry, repoTag: string, extra: string[] = []): Promise<string> {
  const ref = `${registry.addr}/${repoTag}`;
  await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${ref}`, extra);
  return ref;
}

// ---------------------------------------------------------------------------------------------
// berthd

export interface TestDaemon {
  socket: string;
  /** DOCKER_HOST and BERTH_HOST pointing at this daemon; merge into a child's env. */
  env: NodeJS.ProcessEnv;
  dataRoot: string;
  execRoot: string;
  pid: number;
  logs(): string;
  /** SIGTERM and wait; containers keep running (live restore). */
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. */
  kill(): Promise<void>;
  /** Start again on the same roots. */
  restart(): Promise<void>;
  /** Stop and remove the roots (after unmounting anything left under them). */
  cleanup(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startDaemon(opts: { args?: string[] } = {}): Promise<TestDaemon> {
  const base = await mkdtemp(join(tmpdir(), 'berthd-'));
  const dataRoot = join(base, 'data');
  const execRoot = join(base, 'exec');
  const socket = join(execRoot, 'berth.sock');
  let child: ChildProcess;
  let logs = '';
  const launch = async () => {
    child = spawn(NODE, [join(REPO_ROOT, 'src', 'daemon', 'main.ts'), '--data-root', dataRoot, '--exec-root', execRoot, '-H', `unix://${socket}`, ...(opts.args ?? [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BERTH_TEST: '1' },
    });
    child.stdout!.on('data', (b: Buffer) => (logs += b.toString()));
    child.stderr!.on('data', (b: Buffer) => (logs += b.toString()));
    await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`berthd exited ${child.exitCode}: ${logs}`);
      return (await api(socket, 'GET', '/_ping')).status === 200;
    }, 'berthd to listen', 30000).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${logs}`);
    });
  };
  await launch();
  const env = { ...process.env, DOCKER_HOST: `unix://${socket}`, BERTH_HOST: `unix://${socket}` };
  const d: TestDaemon = {
    socket,
    env,
    dataRoot,
    execRoot,
    get pid() {
      return child.pid!;
    },
    logs: () => logs,
    stop: () => stopChild(child, 'SIGTERM', 15000),
    kill: () => stopChild(child, 'SIGKILL'),
    restart: async () => {
      await stopChild(child, 'SIGTERM', 15000);
      await launch();
    },
    async cleanup() {
      // Containers outlive berthd (live restore), so remove them while the daemon still runs:
      // otherwise their conmon, cgroups and mounts would outlive the test.
      if (child.exitCode === null && child.signalCode === null) {
        try {
          const list = await api(socket, 'GET', '/containers/json?all=1');
          if (list.status === 200) {
            await Promise.all((list.json() as Array<{ Id: string }>).map((c) => api(socket, 'DELETE', `/containers/${c.Id}?force=1&v=1`)));
          }
        } catch {
          /* the daemon may have no container module or be wedged; stop it anyway */
        }
      }
      await stopChild(child, 'SIGTERM', 15000);
      await unmountUnder(base);
      await rm(base, { recursive: true, force: true });
    },
    [Symbol.asyncDispose]() {
      return this.cleanup();
    },
  };
  return d;
}

/**
 * One daemon with the busybox image for a whole test file: started in `before`, cleaned up (its
 * containers force-removed) in `after`. The returned handle forwards to that daemon.
 */
export function fileDaemon(skip: unknown): TestDaemon {
  let inst: TestDaemon | undefined;
  before(async () => {
    if (skip) return;
    inst = await startDaemon();
    await importBusybox(inst);
  });
  after(async () => {
    await inst?.cleanup();
  });
  const started = (): TestDaemon => {
    if (!inst) throw new Error('fileDaemon: the daemon is not started (skipped file?)');
    return inst;
  };
  // Forwards reads, and spreads (`{ ...d, env }`) through ownKeys and descriptors.
  return new Proxy({} as TestDaemon, {
    get(_t, key) {
      const v = Reflect.get(started(), key, inst);
      return typeof v === 'function' ? v.bind(inst) : v;
    },
    ownKeys: () => Reflect.ownKeys(started()),
    getOwnPropertyDescriptor(_t, key) {
      const d = started();
      return key in d ? { value: Reflect.get(d, key, d), enumerable: true, configurable: true, writable: false } : undefined;
    },
  });
}

/** Lazily unmount anything still mounted under `dir` (deepest first). Returns what it found. */
export async function unmountUnder(dir: string): Promise<string[]> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '').map((m) => m.replace(/\\040/g, ' '));
  const under = mounts.filter((m) => m === dir || m.startsWith(dir + '/')).sort((a, b) => b.length - a.length);
  for (const m of under) await run('umount', ['-l', m]);
  return under;
}

/** Mount points under `dir` right now (for leak assertions). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const mounts = (await readFile('/proc/self/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1] ?? '');
  return mounts.filter((m) => m === dir || m.startsWith(dir + '/'));
}

export interface ApiResponse { status: number; headers: IncomingMessage['headers']; body: Buffer; json<T = any>(): T; text(): string }

/** One Docker API request over the daemon's unix socket. */
export function api(socket: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    let payload: Buffer | undefined;
    const h: Record<string, string> = { ...headers };
    if (Buffer.isBuffer(body)) payload = body;
    else if (body !== undefined) {
      payload = Buffer.from(JSON.stringify(body));
      h['Content-Type'] ??= 'application/json';
    }
    if (payload) h['Content-Length'] = String(payload.length);
    const req = httpRequest({ socketPath: socket, method, path, headers: h }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const b = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b, json: () => JSON.parse(b.toString()), text: () => b.toString() });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** The real docker CLI against a daemon. */
export function docker(d: TestDaemon, args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
  return run('docker', args, { env: { ...d.env, DOCKER_CONFIG: join(d.dataRoot, '..', 'docker-config') }, ...opts });
}

/** The berth CLI against a daemon. */
export function berth(d: TestDaemon, args: string[], opts: { input?: string | Buffer; timeoutMs?: number } = {}): Promise<RunResult> {
  return run(BERTH, args, { env: { ...d.env, DOCKER_CONFIG: join(d.dataRoot, '..', 'docker-config') }, ...opts });
}

/** Pull an image into a daemon through the API (waits for the whole progress stream). */
export async function pullViaApi(d: TestDaemon, ref: string): Promise<ApiResponse> {
  const i = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  const [name, tag] = i > slash ? [ref.slice(0, i), ref.slice(i + 1)] : [ref, 'latest'];
  return api(d.socket, 'POST', `/images/create?fromImage=${encodeURIComponent(name)}&tag=${encodeURIComponent(tag)}`);
}

/** The busybox image, imported into a daemon through `POST /images/create?fromSrc=-` (no registry). */
export async function importBusybox(d: TestDaemon, repoTag = 'busybox:latest'): Promise<string> {
  const dir = await tempDir();
  try {
    await busyboxRootfs(join(dir.path, 'rootfs'));
    const tar = await tarDirectory(join(dir.path, 'rootfs'));
    const [repo, tag = 'latest'] = repoTag.split(':') as [string, string?];
    const r = await api(d.socket, 'POST', `/images/create?fromSrc=-&repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}&changes=${encodeURIComponent('CMD ["sh"]')}`, tar, { 'Content-Type': 'application/x-tar' });
    if (r.status !== 200) throw new Error(`import failed: ${r.status} ${r.text()}`);
    return repoTag;
  } finally {
    await dir.cleanup();
  }
}

export { existsSync, readdir };
