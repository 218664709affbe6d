// Test helper for the CLI tests: a fake Docker Engine API daemon (node:http on a unix socket in
// a temp dir) that records every request, and an in-process runner for `berth` with in-memory
// stdio. Not a test file itself.
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { PassThrough } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../../src/cli/cli.ts';
import type { CliIO } from '../../src/cli/command.ts';

export interface Recorded {
  method: string;
  url: string;
  /** Path without the /v1.xx prefix and query. */
  path: string;
  query: URLSearchParams;
  headers: http.IncomingHttpHeaders;
  body: string;
  upgrade?: boolean;
}

export type Handler = (req: Recorded, res: ServerResponse) => unknown;
export type UpgradeHandler = (req: Recorded, socket: Duplex) => void;

export interface FakeDaemon {
  host: string;
  dir: string;
  requests: Recorded[];
  /** Requests other than _ping, as "METHOD /path?query" (unversioned). */
  calls(): string[];
  close(): Promise<void>;
}

function record(req: IncomingMessage, body: string, upgrade = false): Recorded {
  const u = new URL(req.url ?? '/', 'http://x');
  return {
    method: req.method ?? '',
    url: req.url ?? '',
    path: u.pathname.replace(/^\/v\d+\.\d+/, ''),
    query: u.searchParams,
    headers: req.headers,
    body,
    upgrade,
  };
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** One stdcopy frame. */
export function frame(stream: 1 | 2, data: string): Buffer {
  const h = Buffer.alloc(8);
  h[0] = stream;
  h.writeUInt32BE(Buffer.byteLength(data), 4);
  return Buffer.concat([h, Buffer.from(data)]);
}

export async function startFakeDaemon(handler: Handler, upgrade?: UpgradeHandler): Promise<FakeDaemon> {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cli-test-'));
  const sock = join(dir, 'd.sock');
  const requests: Recorded[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const r = record(req, Buffer.concat(chunks).toString('utf8'));
    requests.push(r);
    res.setHeader('API-Version', '1.44');
    res.setHeader('OSType', 'linux');
    if (r.path === '/_ping') {
      res.end(req.method === 'HEAD' ? undefined : 'OK');
      return;
    }
    try {
      await handler(r, res);
    } catch (err) {
      if (!res.headersSent) sendJson(res, 500, { message: String(err) });
    }
    if (!res.headersSent) sendJson(res, 404, { message: `page not found: ${r.method} ${r.path}` });
  });
  const upgraded = new Set<Duplex>();
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgraded.add(socket);
    socket.on('close', () => upgraded.delete(socket));
    const r = record(req, '', true);
    requests.push(r);
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n');
    if (upgrade) upgrade(r, socket);
    else socket.end();
  });
  await new Promise<void>((resolve) => server.listen(sock, resolve));
  return {
    host: `unix://${sock}`,
    dir,
    requests,
    calls: () => requests.filter((r) => r.path !== '/_ping').map((r) => `${r.method} ${r.path}${r.query.size ? '?' + r.query.toString() : ''}`),
    async close() {
      for (const s of upgraded) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RunOptions {
  host?: string;
  env?: Record<string, string | undefined>;
  stdin?: string | Buffer;
  /** Keep stdin open (never EOF) unless `stdin` is given. */
  stdinTTY?: boolean;
  stdoutTTY?: boolean;
  columns?: number;
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function collect(s: PassThrough): () => string {
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  return () => Buffer.concat(chunks).toString('utf8');
}

/** Run `berth argv...` in-process with in-memory stdio. */
export async function runBerth(argv: string[], opts: RunOptions = {}): Promise<RunResult> {
  const stdin = new PassThrough() as PassThrough & { isTTY?: boolean };
  const stdout = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number; rows?: number };
  const stderr = new PassThrough() as PassThrough & { isTTY?: boolean };
  if (opts.stdinTTY) stdin.isTTY = true;
  if (opts.stdoutTTY) {
    stdout.isTTY = true;
    stdout.columns = opts.columns ?? 80;
    stdout.rows = 24;
  }
  const out = collect(stdout);
  const err = collect(stderr);
  if (opts.stdin !== undefined) stdin.end(opts.stdin);
  else if (!opts.stdinTTY) stdin.end();
  const io: CliIO = {
    stdin,
    stdout,
    stderr,
    env: { HOME: '/nonexistent', BERTH_CONFIG: '/nonexistent-berth-config', ...(opts.host ? { BERTH_HOST: opts.host } : {}), ...opts.env },
  };
  const code = await runCli(argv, io);
  await new Promise((r) => setImmediate(r));
  return { code, stdout: out(), stderr: err() };
}
