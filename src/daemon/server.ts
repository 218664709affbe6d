// berthd's composition root: builds the services, wires the routes, serves the Docker Engine API
// on unix sockets.
import { createServer, type Server, type IncomingMessage, type ServerResponse } from 'node:http';
import { mkdir, lstat, unlink, chmod, rename, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { invalidArgument, notFound, errorMessage, httpStatus } from '../core/errors.ts';
import { Router, splitVersion, sendError, type Ctx } from './http.ts';
import type { DaemonConfig } from './config.ts';
import type { Services } from './services.ts';
import { RealHost, type Host } from '../host/host.ts';
import { ContentStore } from '../content/content-store.ts';
import { writeFileAtomic } from '../pkg/atomic-file.ts';
import { registerSystemRoutes } from './routes/system.ts';
import { createLogger, type Logger } from '../pkg/log.ts';

/** Hijacked-connection handlers (attach, exec start) get the raw socket. */
export type UpgradeHandler = (ctx: Ctx, socket: Socket, head: Buffer) => Promise<void> | void;

export interface DaemonModule {
  /** Register routes and start background work. */
  register(router: Router, services: Services, daemon: Daemon): Promise<void> | void;
  /** Stop background work (not the containers: they outlive the daemon). */
  close?(): Promise<void>;
}

/** Optional modules, loaded if present, so each part of berth plugs in without editing this file. */
const MODULES = ['../image/image-module.ts', '../container/container-module.ts', '../network/network-module.ts', '../volume/volume-module.ts', '../build/build-module.ts'];
/** BERTH_TRACE=1: log each request's arrival (ms on the daemon's clock) and duration (performance work). */
const TRACE = process.env.BERTH_TRACE === '1';

export class Daemon {
  readonly config: DaemonConfig;
  readonly router = new Router();
  readonly log: Logger;
  services!: Services;
  #servers: Server[] = [];
  #modules: DaemonModule[] = [];
  #host: Host;

  constructor(config: DaemonConfig, opts: { host?: Host } = {}) {
    this.config = config;
    this.#host = opts.host ?? new RealHost();
    this.log = createLogger({ debug: config.debug });
  }

  async start(): Promise<void> {
    const { dataRoot, execRoot } = this.config;
    await mkdir(dataRoot, { recursive: true, mode: 0o711 });
    await mkdir(execRoot, { recursive: true, mode: 0o700 });
    const content = new ContentStore(join(dataRoot, 'content'));
    await content.init();
    await content.sweepIngest();
    this.services = {
      config: this.config,
      daemonId: await this.#daemonId(),
      cgroupVersion: existsSync('/sys/fs/cgroup/cgroup.controllers') ? '2' : '1',
      host: this.#host,
      content,
      infoProviders: [],
    };
    registerSystemRoutes(this.router, this.services);
    for (const rel of MODULES) {
      const url = new URL(rel, import.meta.url);
      if (!existsSync(url)) continue;
      const mod = (await import(url.href)) as { createModule: () => DaemonModule };
      const m = mod.createModule();
      await m.register(this.router, this.services, this);
      this.#modules.push(m);
    }
    for (const h of this.config.hosts) await this.#listen(h);
    this.log.info({ dataRoot, execRoot, hosts: this.config.hosts }, 'berthd listening');
  }

  async stop(): Promise<void> {
    await Promise.all(this.#servers.map((s) => new Promise<void>((res) => {
      s.close(() => res());
      s.closeAllConnections();
    })));
    for (const m of this.#modules.reverse()) await m.close?.();
  }

  #upgrades: Array<{ method: string; re: RegExp; handler: UpgradeHandler }> = [];

  /** Register a hijack endpoint (`Upgrade: tcp`), e.g. `/containers/{id}/attach`. */
  upgrade(method: string, pattern: RegExp, handler: UpgradeHandler): void {
    this.#upgrades.push({ method, re: pattern, handler });
  }

  async #daemonId(): Promise<string> {
    const p = join(this.config.dataRoot, 'daemon-id');
    try {
      return (await readFile(p, 'utf8')).trim();
    } catch {
      const id = randomBytes(32).toString('hex');
      await writeFileAtomic(p, id);
      return id;
    }
  }

  async #listen(addr: string): Promise<void> {
    if (!addr.startsWith('unix://')) throw invalidArgument(`unsupported listen address ${addr}: only unix:// sockets are served (TCP without mTLS is refused)`);
    const path = addr.slice('unix://'.length);
    await mkdir(dirname(path), { recursive: true, mode: 0o755 });
    try {
      const st = await lstat(path);
      if (st.isSymbolicLink()) throw invalidArgument(`refusing to listen on ${path}: it is a symlink`);
      if (!st.isSocket()) throw invalidArgument(`refusing to listen on ${path}: not a socket`);
      await unlink(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // Bind in a private directory, set the mode, then rename into place: the socket is never
    // reachable with a looser mode (no TOCTOU window).
    const privDir = join(this.config.execRoot, `.sock-${randomBytes(4).toString('hex')}`);
    await mkdir(privDir, { mode: 0o700 });
    const tmp = join(privDir, 's');
    const server = createServer({ keepAlive: true }, (req, res) => void this.#handle(req, res));
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => void this.#handleUpgrade(req, socket, head));
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(tmp, () => res());
    });
    await chmod(tmp, 0o660);
    if (dirname(tmp) !== dirname(path)) {
      try {
        await rename(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
        throw invalidArgument(`socket ${path} must be on the same filesystem as the exec root ${this.config.execRoot}`);
      }
    }
    await import('node:fs/promises').then((f) => f.rmdir(privDir)).catch(() => {});
    server.on('close', () => void unlink(path).catch(() => {}));
    this.#servers.push(server);
  }

  #context(req: IncomingMessage, res: ServerResponse): Ctx {
    const url = new URL(req.url ?? '/', 'http://berth');
    const { version, path } = splitVersion(url.pathname);
    return { req, res, params: {}, query: url.searchParams, version, path };
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    if (TRACE) res.once('finish', () => this.log.info({ method: req.method, url: req.url, at: started.toFixed(1), ms: (performance.now() - started).toFixed(1) }, 'trace request'));
    let ctx: Ctx | undefined;
    try {
      ctx = this.#context(req, res);
      // docker CLI sends attach/exec-start with Upgrade headers; Node routes them to 'upgrade'.
      const m = this.router.match(req.method ?? 'GET', ctx.path);
      if (m === undefined) throw notFound(`page not found`);
      if (m === 'method') throw invalidArgument(`method ${req.method} not allowed for ${ctx.path}`);
      ctx.params = m.params;
      await m.handler(ctx);
    } catch (err) {
      const status = httpStatus(err);
      if (status >= 500) this.log.error({ method: req.method, url: req.url, err: errorMessage(err) }, 'request failed');
      sendError(res, err);
    } finally {
      if (this.config.debug) this.log.debug({ method: req.method, url: req.url, status: res.statusCode, ms: Math.round(performance.now() - started) }, 'request');
    }
  }

  async #handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    try {
      const url = new URL(req.url ?? '/', 'http://berth');
      const { version, path } = splitVersion(url.pathname);
      if (this.config.debug) this.log.debug({ method: req.method, url: req.url, upgrade: true }, 'request');
      if (TRACE) this.log.info({ method: req.method, url: req.url, at: performance.now().toFixed(1) }, 'trace upgrade');
      for (const u of this.#upgrades) {
        const m = u.re.exec(path);
        if (!m || u.method !== req.method) continue;
        // Route handlers write on the raw socket; `res` is unused for hijacked requests.
        const ctx: Ctx = { req, res: undefined as unknown as ServerResponse, params: { ...(m.groups ?? {}) }, query: url.searchParams, version, path };
        await u.handler(ctx, socket, head);
        return;
      }
      throw notFound('page not found');
    } catch (err) {
      if (socket.destroyed) return;
      const msg = JSON.stringify({ message: errorMessage(err) });
      socket.end(`HTTP/1.1 ${httpStatus(err)} Error\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(msg)}\r\nConnection: close\r\n\r\n${msg}`);
    }
  }
}
