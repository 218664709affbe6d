// Docker Engine API routes for containers, exec and events. Hijacked endpoints (attach, exec
// start) answer `101 UPGRADED` and then carry raw bytes (TTY) or Docker's multiplexed frames.
import type { Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { lstat, readlink } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Router, Ctx } from '../daemon/http.ts';
import { sendJson, noContent, readJson, queryBool, parseFilters } from '../daemon/http.ts';
import type { Daemon } from '../daemon/server.ts';
import { invalidArgument, notFound, errorMessage } from '../core/errors.ts';
import type { NetworkService } from '../core/networks.ts';
import type { Host } from '../host/host.ts';
import type { ContainerService, ExecConfig, StreamSink, WaitCondition } from './container-service.ts';
import { inspectJson, summaryJson, matchesFilters } from './container-json.ts';
import { frame, streamLogs, formatEntry } from './container-logs.ts';
import { matchEvent, parseEventTime } from './event-bus.ts';
import { parseDetachKeys, DEFAULT_DETACH_KEYS } from '../pkg/detach-keys.ts';
import type { CreateBody, HostConfig } from '../runtime/create-config.ts';

export interface RouteDeps {
  svc: ContainerService;
  host: Host;
  networks: () => NetworkService | undefined;
  imageIdOf: (ref: string) => string | undefined;
}

const RAW = 'application/vnd.docker.raw-stream';
const MUX = 'application/vnd.docker.multiplexed-stream';

/** Write to a hijacked socket or an HTTP response in Docker's stream framing. */
function sinkFor(out: { write(b: Buffer): unknown }, tty: boolean, stdin?: Readable): StreamSink {
  return {
    write: (s, d) => void out.write(tty ? d : frame(s, d)),
    stdin,
  };
}

function upgradeHeaders(tty: boolean, hijacked: boolean): string {
  return hijacked
    ? `HTTP/1.1 101 UPGRADED\r\nContent-Type: ${tty ? RAW : MUX}\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`
    : `HTTP/1.1 200 OK\r\nContent-Type: ${tty ? RAW : MUX}\r\n\r\n`;
}

function num(v: string | null, what: string): number | undefined {
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw invalidArgument(`invalid value for ${what}: ${v}`);
  return n;
}

/** Go's os.FileMode bits for X-Docker-Container-Path-Stat. */
function goFileMode(mode: number): number {
  const S_IFMT = 0o170000;
  let m = mode & 0o777;
  const t = mode & S_IFMT;
  if (t === 0o040000) m |= 2 ** 31;
  else if (t === 0o120000) m |= 2 ** 27;
  else if (t === 0o010000) m |= 2 ** 25;
  else if (t === 0o140000) m |= 2 ** 24;
  else if (t === 0o020000) m |= 2 ** 26 + 2 ** 21;
  else if (t === 0o060000) m |= 2 ** 26;
  if (mode & 0o4000) m |= 2 ** 23;
  if (mode & 0o2000) m |= 2 ** 22;
  if (mode & 0o1000) m |= 2 ** 20;
  return m >>> 0;
}

export function registerContainerRoutes(r: Router, daemon: Daemon, d: RouteDeps): void {
  const { svc } = d;

  // ---- list / create / inspect
  r.get('/containers/json', async ({ res, query }) => {
    const all = queryBool(query, 'all');
    const limit = num(query.get('limit'), 'limit') ?? -1;
    const filters = parseFilters(query);
    // ancestor=<name>: Docker matches the image the name resolves to now (busybox = busybox:latest).
    const ancestors = new Map<string, string>();
    for (const v of filters.get('ancestor') ?? []) {
      const id = await svc.imageId(v);
      if (id) ancestors.set(v, id);
    }
    const imageIdOf = (v: string) => ancestors.get(v) ?? d.imageIdOf(v);
    let recs = svc.store.all().filter((c) => (all || limit > 0 || c.state.status === 'running' || c.state.status === 'paused' || c.state.status === 'restarting') && matchesFilters(c, filters, imageIdOf));
    recs.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    if (limit > 0) recs = recs.slice(0, limit);
    const net = d.networks();
    const sizes = queryBool(query, 'size') ? await svc.sizes(recs.map((c) => c.id)) : undefined;
    sendJson(res, 200, recs.map((c) => summaryJson(c, { network: net?.settings(c.id), size: sizes?.get(c.id) })));
  });

  r.post('/containers/create', async ({ req, res, query }) => {
    const body = await readJson<CreateBody>(req);
    if (body === undefined) throw invalidArgument('invalid JSON: empty body');
    const name = query.get('name') ?? undefined;
    const out = await svc.create(body, name || undefined);
    sendJson(res, 201, out);
  });

  r.post('/containers/prune', async ({ res, query }) => {
    const f = parseFilters(query);
    const until = f.get('until')?.[0];
    const u = until ? parseEventTime(until) : undefined;
    sendJson(res, 200, await svc.prune(u !== undefined ? u / 1e6 : undefined, f.get('label') ?? []));
  });

  r.get('/containers/{id}/json', async ({ res, params, query }) => {
    const rec = svc.store.get(params.id!);
    const execIds = svc.execs().filter((e) => e.containerId === rec.id && e.exitCode === null).map((e) => e.id);
    const size = queryBool(query, 'size') ? (await svc.sizes([rec.id])).get(rec.id) : undefined;
    sendJson(res, 200, inspectJson(rec, svc.paths, { network: d.networks()?.settings(rec.id), execIds, size }));
  });

  // ---- lifecycle
  r.post('/containers/{id}/start', async ({ res, params }) => {
    const started = await svc.start(params.id!);
    noContent(res, started ? 204 : 304);
  });

  r.post('/containers/{id}/stop', async ({ res, params, query }) => {
    const t = num(query.get('t') ?? query.get('timeout'), 't');
    const stopped = await svc.stop(params.id!, { timeout: t, signal: query.get('signal') ?? undefined });
    noContent(res, stopped ? 204 : 304);
  });

  r.post('/containers/{id}/restart', async ({ res, params, query }) => {
    await svc.restart(params.id!, { timeout: num(query.get('t'), 't'), signal: query.get('signal') ?? undefined });
    noContent(res);
  });

  r.post('/containers/{id}/kill', async ({ res, params, query }) => {
    await svc.kill(params.id!, query.get('signal') || 'SIGKILL');
    noContent(res);
  });

  r.post('/containers/{id}/pause', async ({ res, params }) => {
    await svc.pause(params.id!);
    noContent(res);
  });

  r.post('/containers/{id}/unpause', async ({ res, params }) => {
    await svc.unpause(params.id!);
    noContent(res);
  });

  r.post('/containers/{id}/wait', async ({ res, params, query }) => {
    const cond = (query.get('condition') || 'not-running') as WaitCondition;
    if (!['not-running', 'next-exit', 'removed'].includes(cond)) throw invalidArgument(`invalid condition: "${cond}"`);
    // An unknown container is a plain 404 before the streamed 200 header goes out.
    svc.store.get(params.id!);
    const p = svc.wait(params.id!, cond);
    // Docker sends the header at once (the CLI waits for it before starting the container).
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    const onClose = new Promise<undefined>((resolve) => res.on('close', () => resolve(undefined)));
    const r2 = await Promise.race([p, onClose]);
    if (!r2 || res.writableEnded) return;
    res.end(JSON.stringify({ StatusCode: r2.code, Error: r2.error ? { Message: r2.error } : null }) + '\n');
  });

  r.delete('/containers/{id}', async ({ res, params, query }) => {
    await svc.remove(params.id!, { force: queryBool(query, 'force'), volumes: queryBool(query, 'v') });
    noContent(res);
  });

  r.post('/containers/{id}/rename', async ({ res, params, query }) => {
    await svc.rename(params.id!, query.get('name') ?? '');
    noContent(res);
  });

  r.post('/containers/{id}/update', async ({ req, res, params }) => {
    const body = (await readJson<HostConfig>(req)) ?? {};
    sendJson(res, 200, { Warnings: await svc.update(params.id!, body) });
  });

  r.post('/containers/{id}/resize', async ({ res, params, query }) => {
    const h = num(query.get('h'), 'h') ?? 0;
    const w = num(query.get('w'), 'w') ?? 0;
    await svc.resize(params.id!, h, w);
    noContent(res, 200);
  });

  // ---- logs
  r.get('/containers/{id}/logs', async ({ res, params, query, req }) => {
    const rec = svc.store.get(params.id!);
    const stdout = queryBool(query, 'stdout');
    const stderr = queryBool(query, 'stderr');
    if (!stdout && !stderr) throw invalidArgument('You must choose at least one stream');
    const tailQ = query.get('tail');
    const tail = tailQ === null || tailQ === '' || tailQ === 'all' ? undefined : Number(tailQ);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw invalidArgument(`invalid tail value: ${tailQ}`);
    const since = parseEventTime(query.get('since'));
    const until = parseEventTime(query.get('until'));
    const tty = rec.config.Tty === true;
    const follow = queryBool(query, 'follow');
    res.writeHead(200, { 'Content-Type': tty ? RAW : MUX });
    const ac = new AbortController();
    req.on('close', () => ac.abort());
    res.on('close', () => ac.abort());
    await streamLogs(rec.logPath, rec.logMaxFiles, { stdout, stderr, timestamps: queryBool(query, 'timestamps'), tail, sinceNano: since && since > 0 ? since : undefined, untilNano: until && until > 0 ? until : undefined, follow },
      (e) => res.write(formatEntry(e, tty, queryBool(query, 'timestamps'))), follow ? svc.stopped(rec.id) : undefined, ac.signal);
    res.end();
  });

  // ---- attach
  const attach = async (ctx: Ctx, out: { write(b: Buffer): unknown; end(): void; on(ev: string, f: () => void): unknown }, stdin: Readable | undefined, hijacked: boolean, rawWrite: (s: string) => void) => {
    const rec = svc.store.get(ctx.params.id!);
    const tty = rec.config.Tty === true;
    const q = ctx.query;
    const wantStdout = queryBool(q, 'stdout');
    const wantStderr = queryBool(q, 'stderr');
    const wantStdin = queryBool(q, 'stdin');
    // As Docker, the server scans for detach keys only with a TTY (binary stdin stays intact).
    const detachKeys = tty ? parseDetachKeys(q.get('detachKeys') || DEFAULT_DETACH_KEYS) : undefined;
    rawWrite(upgradeHeaders(tty, hijacked));
    const base = sinkFor(out, tty, wantStdin ? stdin : undefined);
    const sink: StreamSink = { stdin: base.stdin, detachKeys, write: (s, data) => { if ((s === 1 && wantStdout) || (s === 2 && wantStderr)) base.write(s, data); } };
    if (queryBool(q, 'logs')) {
      const ac0 = new AbortController();
      await streamLogs(rec.logPath, rec.logMaxFiles, { stdout: wantStdout, stderr: wantStderr, timestamps: false, follow: false }, (e) => void out.write(formatEntry(e, tty, false)), undefined, ac0.signal);
    }
    if (!queryBool(q, 'stream', true) && queryBool(q, 'logs')) {
      out.end();
      return;
    }
    const ac = new AbortController();
    out.on('close', () => ac.abort());
    await svc.attach(rec.id, sink, ac.signal);
    out.end();
  };

  daemon.upgrade('POST', /^\/containers\/(?<id>[^/]+)\/attach$/, async (ctx, socket: Socket, head: Buffer) => {
    if (head.length) socket.unshift(head);
    socket.on('error', () => {});
    await attach(ctx, socket, socket, true, (s) => socket.write(s)).catch((err: unknown) => {
      if (!socket.destroyed && socket.bytesWritten === 0) throw err;
      socket.destroy();
    });
  });
  r.post('/containers/{id}/attach', async (ctx) => {
    // Unknown containers and bad detach keys get a plain answer before the socket is taken over.
    if (svc.store.get(ctx.params.id!).config.Tty) parseDetachKeys(ctx.query.get('detachKeys') || DEFAULT_DETACH_KEYS);
    const sock = ctx.res.socket!;
    ctx.res.detachSocket?.(sock);
    await attach(ctx, sock, ctx.req, false, (s) => sock.write(s));
  });

  // ---- exec
  r.post('/containers/{id}/exec', async ({ req, res, params }) => {
    const body = await readJson<ExecConfig>(req);
    if (!body || typeof body !== 'object') throw invalidArgument('invalid exec config');
    if (body.DetachKeys) parseDetachKeys(body.DetachKeys, 'escape');
    sendJson(res, 201, { Id: svc.execCreate(params.id!, body) });
  });

  const execStart = async (ctx: Ctx, out: { write(b: Buffer): unknown; end(): void; on(ev: string, f: () => void): unknown } | undefined, stdin: Readable | undefined, hijacked: boolean, rawWrite: (s: string) => void, body: { Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] }) => {
    const ex = svc.exec(ctx.params.id!);
    const tty = body.Tty ?? ex.config.Tty ?? false;
    if (body.Detach) {
      await svc.execStart(ex.id, { detach: true, tty }, undefined, new AbortController().signal);
      rawWrite(`HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 0\r\n\r\n`);
      out?.end();
      return;
    }
    svc.store.get(ex.containerId);
    rawWrite(upgradeHeaders(tty, hijacked));
    const ac = new AbortController();
    out!.on('close', () => ac.abort());
    const sink: StreamSink = { ...sinkFor(out!, tty, ex.config.AttachStdin ? stdin : undefined), detachKeys: tty ? parseDetachKeys(ex.config.DetachKeys || DEFAULT_DETACH_KEYS, 'escape') : undefined };
    await svc.execStart(ex.id, { detach: false, tty, consoleSize: body.ConsoleSize }, sink, ac.signal).catch((err: unknown) => {
      sink.write(2, Buffer.from(`${errorMessage(err)}\n`));
    });
    out!.end();
  };

  daemon.upgrade('POST', /^\/exec\/(?<id>[^/]+)\/start$/, async (ctx, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    // The JSON body arrives before the hijack: it is in `head` or still on the socket.
    const body = await readUpgradeBody(ctx, socket, head);
    await execStart(ctx, socket, socket, true, (s) => socket.write(s), body);
  });
  r.post('/exec/{id}/start', async (ctx) => {
    const body = (await readJson<{ Detach?: boolean; Tty?: boolean }>(ctx.req)) ?? {};
    const ex = svc.exec(ctx.params.id!);
    if (body.Detach) {
      // A plain answer on a connection the client may reuse.
      await svc.execStart(ex.id, { detach: true, tty: body.Tty ?? ex.config.Tty ?? false }, undefined, new AbortController().signal);
      noContent(ctx.res, 200);
      return;
    }
    const sock = ctx.res.socket!;
    ctx.res.detachSocket?.(sock);
    await execStart(ctx, sock, undefined, false, (s) => sock.write(s), body);
  });

  r.post('/exec/{id}/resize', async ({ res, params, query }) => {
    await svc.execResize(params.id!, num(query.get('h'), 'h') ?? 0, num(query.get('w'), 'w') ?? 0);
    noContent(res, 200);
  });

  r.get('/exec/{id}/json', ({ res, params }) => {
    const e = svc.exec(params.id!);
    sendJson(res, 200, {
      CanRemove: false, ContainerID: e.containerId, DetachKeys: e.config.DetachKeys ?? '', ExitCode: e.exitCode, ID: e.id,
      OpenStderr: e.config.AttachStderr ?? false, OpenStdin: e.config.AttachStdin ?? false, OpenStdout: e.config.AttachStdout ?? false,
      Running: e.running, Pid: e.pid,
      ProcessConfig: { arguments: e.config.Cmd.slice(1), entrypoint: e.config.Cmd[0], privileged: e.config.Privileged ?? false, tty: e.config.Tty ?? false, user: e.config.User ?? '' },
    });
  });

  // ---- top / stats
  r.get('/containers/{id}/top', async ({ res, params, query }) => {
    const pids = new Set((await svc.pids(params.id!)).map(String));
    const psArgs = (query.get('ps_args') || '-ef').split(/\s+/).filter(Boolean);
    const out = await d.host.run('ps', psArgs);
    const lines = out.stdout.split('\n').filter(Boolean);
    const titles = (lines[0] ?? '').trim().split(/\s+/);
    const pidCol = titles.indexOf('PID');
    if (pidCol < 0) throw invalidArgument(`Couldn't find PID field in ps output`);
    const procs = lines.slice(1).map((l) => {
      const f = l.trim().split(/\s+/);
      return [...f.slice(0, titles.length - 1), f.slice(titles.length - 1).join(' ')];
    }).filter((f) => pids.has(f[pidCol]!));
    sendJson(res, 200, { Titles: titles, Processes: procs });
  });

  r.get('/containers/{id}/stats', async ({ res, params, query, req }) => {
    const rec = svc.store.get(params.id!);
    const stream = queryBool(query, 'stream', true);
    const oneShot = queryBool(query, 'one-shot');
    const sample = async () => {
      const live = rec.state.status === 'running' || rec.state.status === 'paused';
      const s = live ? await svc.cgroups.stats(rec.id, rec.cgroupParent) : undefined;
      return s;
    };
    const blank = { read: '0001-01-01T00:00:00Z', cpu_stats: { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, system_cpu_usage: 0, online_cpus: 0, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } }, memory_stats: {}, pids_stats: {}, blkio_stats: { io_service_bytes_recursive: null } };
    const shape = (cur: Awaited<ReturnType<typeof sample>>, prev: Awaited<ReturnType<typeof sample>>) => ({
      ...(cur ?? blank), preread: prev?.read ?? '0001-01-01T00:00:00Z', precpu_stats: prev?.cpu_stats ?? blank.cpu_stats,
      num_procs: 0, storage_stats: {}, name: rec.name, id: rec.id, networks: {},
    });
    let prev = await sample();
    if (!stream) {
      if (!oneShot && prev) {
        await new Promise((r2) => setTimeout(r2, 1000));
        const cur = await sample();
        sendJson(res, 200, shape(cur, prev));
      } else sendJson(res, 200, shape(prev, undefined));
      return;
    }
    res.writeHead(200, { 'Content-Type': 'application/json' });
    let open = true;
    req.on('close', () => (open = false));
    res.on('close', () => (open = false));
    res.write(JSON.stringify(shape(prev, undefined)) + '\n');
    while (open && (rec.state.status === 'running' || rec.state.status === 'paused')) {
      await new Promise((r2) => setTimeout(r2, 1000));
      if (!open) break;
      const cur = await sample();
      res.write(JSON.stringify(shape(cur, prev)) + '\n');
      prev = cur;
    }
    res.end();
  });

  // ---- filesystem: export, archive
  r.get('/containers/{id}/export', async ({ res, params }) => {
    await svc.withRootfs(params.id!, async (rootfs) => {
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      const child = spawn('tar', ['--numeric-owner', '--xattrs', '-C', rootfs, '-cf', '-', '.'], { stdio: ['ignore', 'pipe', 'ignore'] });
      await pipeline(child.stdout!, res).catch(() => {});
    });
  });

  const statPath = async (rootfs: string, path: string) => {
    const { secureJoin } = await import('../layer/secure-join.ts');
    const clean = posix.normalize('/' + path);
    // Resolve the parent securely; the last component is reported as is (a symlink stays one).
    const parent = await secureJoin(rootfs, posix.dirname(clean));
    const host = posix.join(parent, posix.basename(clean));
    const st = await lstat(host).catch(() => undefined);
    return { host, st, name: posix.basename(clean) || '/', clean };
  };

  const archiveHead = async (ctx: Ctx, send: (st: NonNullable<Awaited<ReturnType<typeof statPath>>['st']>, info: Awaited<ReturnType<typeof statPath>>, rootfs: string) => Promise<void>) => {
    const path = ctx.query.get('path');
    if (!path) throw invalidArgument('bad parameter: path cannot be empty');
    const rec = svc.store.get(ctx.params.id!);
    await svc.withRootfs(rec.id, async (rootfs) => {
      const info = await statPath(rootfs, path);
      if (!info.st) throw notFound(`Could not find the file ${path} in container ${ctx.params.id}`);
      const linkTarget = info.st.isSymbolicLink() ? await readlink(info.host).catch(() => '') : '';
      const stat = { name: info.name, size: info.st.size, mode: goFileMode(info.st.mode), mtime: info.st.mtime.toISOString(), linkTarget };
      ctx.res.setHeader('X-Docker-Container-Path-Stat', Buffer.from(JSON.stringify(stat)).toString('base64'));
      await send(info.st, info, rootfs);
    }, { freeze: ctx.req.method === 'GET' });
  };

  r.head('/containers/{id}/archive', async (ctx) => {
    await archiveHead(ctx, async () => {
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      ctx.res.end();
    });
  });

  r.get('/containers/{id}/archive', async (ctx) => {
    await archiveHead(ctx, async (_st, info) => {
      ctx.res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      const dir = posix.dirname(info.host);
      const child = spawn('tar', ['--numeric-owner', '-C', dir, '-cf', '-', posix.basename(info.host)], { stdio: ['ignore', 'pipe', 'ignore'] });
      await pipeline(child.stdout!, ctx.res).catch(() => {});
    });
  });

  r.put('/containers/{id}/archive', async (ctx) => {
    const path = ctx.query.get('path');
    if (!path) throw invalidArgument('bad parameter: path cannot be empty');
    const rec = svc.store.get(ctx.params.id!);
    if (rec.hostConfig.ReadonlyRootfs) throw invalidArgument('container rootfs is marked read-only');
    await svc.withRootfs(rec.id, async (rootfs) => {
      const { secureJoin } = await import('../layer/secure-join.ts');
      const { applyLayer } = await import('../layer/tar-apply.ts');
      const { decompressed } = await import('../layer/compression.ts');
      const dest = await secureJoin(rootfs, path);
      const st = await lstat(dest).catch(() => undefined);
      if (!st) throw notFound(`Could not find the file ${path} in container ${ctx.params.id}`);
      if (!st.isDirectory()) throw invalidArgument(`extraction point is not a directory`);
      await applyLayer(dest, decompressed(ctx.req), { mode: 'delete', host: d.host });
    }, { freeze: true });
    noContent(ctx.res, 200);
  });

  // ---- events
  r.get('/events', async ({ res, query, req }) => {
    const filters = parseFilters(query);
    const since = parseEventTime(query.get('since'));
    const until = parseEventTime(query.get('until'));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    const send = (e: object) => res.write(JSON.stringify(e) + '\n');
    const nowNs = Date.now() * 1e6;
    if (since !== undefined) for (const e of svc.events.history(since)) if ((until === undefined || e.timeNano <= until) && matchEvent(e, filters)) send(e);
    if (until !== undefined && until <= nowNs) {
      res.end();
      return;
    }
    await new Promise<void>((resolve) => {
      const unsub = svc.events.subscribe((e) => {
        if (until !== undefined && e.timeNano > until) return;
        if (matchEvent(e, filters)) send(e);
      });
      const t = until !== undefined ? setTimeout(() => done(), (until - nowNs) / 1e6) : undefined;
      const done = () => {
        unsub();
        if (t) clearTimeout(t);
        resolve();
      };
      req.on('close', done);
      res.on('close', done);
    });
    if (!res.writableEnded) res.end();
  });
}

/** The exec-start JSON body on a hijacked connection (Content-Length bytes after the headers). */
async function readUpgradeBody(ctx: Ctx, socket: Socket, head: Buffer): Promise<{ Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] }> {
  const len = Number(ctx.req.headers['content-length'] ?? 0);
  let buf = head;
  // Node's upgrade event has already consumed the body into the request stream in some cases.
  if (len > 0 && buf.length < len) {
    const fromReq = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      let got = buf.length;
      const onData = (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= len) finish();
      };
      const finish = () => {
        socket.off('data', onData);
        socket.pause();
        resolve(Buffer.concat(chunks));
      };
      socket.on('data', onData);
      setTimeout(finish, 2000);
    });
    buf = Buffer.concat([buf, fromReq]);
  }
  const body = buf.subarray(0, len);
  const rest = buf.subarray(len);
  if (rest.length) socket.unshift(rest);
  if (body.length === 0) return {};
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw invalidArgument('invalid JSON in exec start body');
  }
}

