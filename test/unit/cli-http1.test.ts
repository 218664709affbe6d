// The CLI's HTTP/1.1 client (src/cli/http1.ts) and ApiClient on top of it, against real servers on
// a unix socket in a temp dir: node:http where a well-formed answer is wanted, a raw node:net
// server where the bytes on the wire are the point (malformed, truncated, close-delimited).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net from 'node:net';
import { Readable } from 'node:stream';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tempDir, waitFor } from '../helpers/fixtures.ts';
import { request, parseHead, ChunkedDecoder, LengthDecoder, Http1Error, type Http1Response } from '../../src/cli/http1.ts';
import { ApiClient, ApiError, ConnectError, readAll } from '../../src/cli/api-client.ts';

interface Server {
  sock: string;
  /** Every connection the server accepted (raw sockets). */
  conns: net.Socket[];
  [Symbol.asyncDispose](): Promise<void>;
}

async function listen(server: net.Server, conns: net.Socket[]): Promise<Server> {
  const dir = await tempDir('berth-http1-');
  const sock = join(dir.path, 's.sock');
  server.on('connection', (c: net.Socket) => conns.push(c));
  await new Promise<void>((r) => server.listen(sock, r));
  return {
    sock,
    conns,
    async [Symbol.asyncDispose]() {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      await dir.cleanup();
    },
  };
}

/** A node:http server; `upgrade` handles Connection: Upgrade requests. */
function httpServer(handler: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void, upgrade?: (req: IncomingMessage, socket: net.Socket, head: Buffer) => void): Promise<Server> {
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    handler(req, res, Buffer.concat(chunks));
  });
  if (upgrade) server.on('upgrade', upgrade);
  return listen(server, []);
}

/** A server that answers each connection with `reply` (after reading the request head). */
function rawServer(reply: (socket: net.Socket, request: string) => void): Promise<Server> {
  const server = net.createServer((socket) => {
    let buf = '';
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      if (!buf.includes('\r\n\r\n')) return;
      socket.off('data', onData);
      reply(socket, buf);
    };
    socket.on('data', onData);
    socket.on('error', () => {});
  });
  return listen(server, []);
}

const body = async (res: Http1Response) => (await readAll(res)).toString('utf8');

test('content-length body; status, message and lower-cased headers as node:http gave them', async () => {
  await using s = await httpServer((req, res) => {
    res.writeHead(201, 'Made It', { 'Content-Type': 'text/plain', 'X-Mixed-Case': 'v', 'Content-Length': '5' });
    res.end('hello');
  });
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/x' });
  assert.equal(res.statusCode, 201);
  assert.equal(res.statusMessage, 'Made It');
  assert.equal(res.headers['x-mixed-case'], 'v');
  assert.equal(res.headers['content-length'], '5');
  assert.equal(await body(res), 'hello');
});

test('chunked body: resolves at the head, streams chunks as they come, one connection closed at the end', async () => {
  let write!: (s: string) => void;
  let end!: () => void;
  const closed: Promise<unknown>[] = [];
  await using s = await httpServer((req, res) => {
    closed.push(once(req.socket, 'close'));
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    write = (x) => res.write(x);
    end = () => res.end();
  });
  const res = await request({ socketPath: s.sock }, { method: 'POST', path: '/wait' });
  assert.equal(res.statusCode, 200, 'the head arrived before any body was written');
  const it = res[Symbol.asyncIterator]();
  write('{"a":');
  assert.equal(String((await it.next()).value), '{"a":');
  write('1}\n');
  assert.equal(String((await it.next()).value), '1}\n');
  end();
  assert.equal((await it.next()).done, true);
  await closed[0];
  assert.equal(s.conns.length, 1);
});

test('chunked body with extensions and trailers; set-cookie array, repeated headers joined, first content-type kept', async () => {
  await using s = await rawServer((socket) => {
    socket.end(
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-A: 1\r\nx-a: 2\r\n' +
        'Content-Type: text/plain\r\nContent-Type: text/html\r\n\r\n' +
        '3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n',
    );
  });
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/' });
  assert.deepEqual(res.headers['set-cookie'], ['a=1', 'b=2']);
  assert.equal(res.headers['x-a'], '1, 2');
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(await body(res), 'abc0123456789');
});

test('close-delimited body: read until the server closes', async () => {
  await using s = await rawServer((socket) => {
    socket.write('HTTP/1.0 200 OK\r\nContent-Type: application/x-tar\r\n\r\nfirst ');
    setTimeout(() => socket.end('second'), 20);
  });
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/export' });
  assert.equal(res.httpVersion, '1.0');
  assert.equal(await body(res), 'first second');
});

test('HEAD, 204 and 304 have empty bodies whatever their headers say', async () => {
  await using s = await httpServer((req, res) => {
    if (req.url === '/204') res.writeHead(204).end();
    else if (req.url === '/304') res.writeHead(304, { ETag: '"x"' }).end();
    else res.writeHead(200, { 'Content-Length': '100', 'X-Docker-Container-Path-Stat': 'e30=' }).end();
  });
  const head = await request({ socketPath: s.sock }, { method: 'HEAD', path: '/archive' });
  assert.equal(head.headers['content-length'], '100');
  assert.equal(head.headers['x-docker-container-path-stat'], 'e30=');
  assert.equal(await body(head), '');
  for (const p of ['/204', '/304']) {
    const res = await request({ socketPath: s.sock }, { method: 'GET', path: p });
    assert.equal(res.statusCode, Number(p.slice(1)));
    assert.equal(await body(res), '');
  }
});

test('an interim 100 Continue is skipped for the final answer', async () => {
  await using s = await rawServer((socket) => {
    socket.end('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
  });
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/' });
  assert.equal(res.statusCode, 200);
  assert.equal(await body(res), 'ok');
});

test('101 upgrade: the raw socket, with bytes sent right after the head first, carries both ways', async () => {
  await using s = await httpServer((_req, res) => res.writeHead(200, { 'API-Version': '1.44' }).end(), (req, socket) => {
    assert.equal(req.headers.upgrade, 'tcp');
    // Head and the first output in one write: the client reads them in one chunk.
    socket.write('HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\nearly|');
    socket.on('data', (d) => socket.end(`echo:${d.toString()}`));
  });
  const c = new ApiClient(`unix://${s.sock}`);
  const h = await c.hijack('POST', '/containers/x/attach', { query: { stream: true } });
  assert.equal(h.headers['content-type'], 'application/vnd.docker.raw-stream');
  await new Promise((r) => setTimeout(r, 20)); // a consumer that starts late loses nothing
  h.socket.write('hi');
  assert.equal((await readAll(h.socket)).toString(), 'early|echo:hi');
  h.socket.destroy();
});

test('hijack: a 2xx answer without upgrade streams its body; >= 400 rejects with ApiError', async () => {
  await using s = await httpServer((req, res) => {
    if (req.url?.includes('/bad/')) res.writeHead(409, { 'Content-Type': 'application/json' }).end('{"message":"container x is not running"}');
    else res.writeHead(200).end('output');
  }, undefined);
  const c = new ApiClient(`unix://${s.sock}`);
  const h = await c.hijack('POST', '/containers/x/attach');
  assert.equal((await readAll(h.socket)).toString(), 'output');
  await assert.rejects(c.hijack('POST', '/containers/bad/attach'), (e: unknown) =>
    e instanceof ApiError && e.status === 409 && e.kind === 'FailedPrecondition' && e.message === 'Error response from daemon: container x is not running');
});

test('ApiClient: 4xx JSON and plain-text error bodies, version negotiation, query encoding', async () => {
  const seen: string[] = [];
  await using s = await httpServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    if (req.url === '/_ping') res.writeHead(200, { 'API-Version': '1.41', OSType: 'linux' }).end();
    else if (req.url?.includes('/json')) res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"message":"No such container: x"}');
    else if (req.url?.includes('/plain')) res.writeHead(500, { 'Content-Type': 'text/plain' }).end('it broke\n');
    else if (req.url?.includes('/empty')) res.writeHead(503, 'Service Unavailable').end();
    else res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  });
  const c = new ApiClient(`unix://${s.sock}`);
  assert.deepEqual(await c.json('GET', '/info', { query: { all: true, z: 'a b*~', skip: false, f: ['x', 'y'] } }), { ok: true });
  assert.equal(c.version, '1.41');
  assert.equal(c.pingHeaders['ostype'], 'linux');
  assert.deepEqual(seen.slice(0, 2), ['HEAD /_ping', 'GET /v1.41/info?all=1&f=x&f=y&z=a+b%2A~']);
  await assert.rejects(c.call('GET', '/containers/x/json'), (e: unknown) => e instanceof ApiError && e.status === 404 && e.kind === 'NotFound' && e.daemonMessage === 'No such container: x');
  await assert.rejects(c.call('GET', '/plain'), (e: unknown) => e instanceof ApiError && e.status === 500 && e.message === 'Error response from daemon: it broke');
  await assert.rejects(c.call('GET', '/empty'), (e: unknown) => e instanceof ApiError && e.kind === 'Unavailable' && e.daemonMessage === '503 Service Unavailable');
});

test('ApiClient: a daemon that is not there is a ConnectError with the moby wording', async () => {
  await using dir = await tempDir('berth-http1-');
  const host = `unix://${join(dir.path, 'none.sock')}`;
  await assert.rejects(new ApiClient(host).json('GET', '/info'), (e: unknown) =>
    e instanceof ConnectError && e.message === `Cannot connect to the berth daemon at ${host}. Is the berth daemon running?`);
});

test('ApiClient over tcp://', async () => {
  const server = http.createServer((req, res) => res.writeHead(200, { 'Content-Type': 'application/json', 'API-Version': '1.44' }).end(JSON.stringify({ host: req.headers.host })));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as net.AddressInfo).port;
    const c = new ApiClient(`tcp://127.0.0.1:${port}`);
    assert.deepEqual(await c.json('GET', '/version'), { host: `127.0.0.1:${port}` });
  } finally {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
});

test('request bodies: JSON with Content-Length, streams chunked (1 MiB, with back-pressure), no body POST with Content-Length: 0', async () => {
  const got: { headers: http.IncomingHttpHeaders; body: Buffer }[] = [];
  await using s = await httpServer((req, res, b) => {
    got.push({ headers: req.headers, body: b });
    res.writeHead(200, { 'Content-Type': 'application/json', 'API-Version': '1.44' }).end('{}');
  });
  const c = new ApiClient(`unix://${s.sock}`);
  await c.call('POST', '/containers/create', { body: { Image: 'busybox' } });
  const big = randomBytes(1024 * 1024);
  await c.call('PUT', '/containers/x/archive', { body: Readable.from((function* () { for (let i = 0; i < big.length; i += 10000) yield big.subarray(i, i + 10000); })()) });
  await c.call('POST', '/containers/x/start');
  const [, create, archive, start] = got;
  assert.equal(create!.headers['content-type'], 'application/json');
  assert.equal(create!.headers['content-length'], String(create!.body.length));
  assert.deepEqual(JSON.parse(create!.body.toString()), { Image: 'busybox' });
  assert.equal(archive!.headers['transfer-encoding'], 'chunked');
  assert.equal(archive!.headers['content-type'], 'application/x-tar');
  assert.ok(archive!.body.equals(big), 'the stream arrived whole');
  assert.equal(start!.headers['content-length'], '0');
});

test('a request path with spaces or non-ASCII goes %-encoded', async () => {
  await using s = await httpServer((req, res) => res.writeHead(200).end(req.url));
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/containers/a b\u00e9/json?x=1' });
  assert.equal(await body(res), '/containers/a%20b%C3%A9/json?x=1');
  await assert.rejects(request({ socketPath: s.sock }, { method: 'GET', path: '/', headers: { 'X-Evil': 'a\r\nInjected: 1' } }), (e: unknown) => (e as { kind?: string }).kind === 'InvalidArgument');
});

test('malformed heads reject: bad status line, bad header line, bad content-length, conflicting lengths, no answer at all', async () => {
  const answers: Record<string, string> = {
    '/status': 'HTTP/1.1 abc OK\r\n\r\n',
    '/proto': 'HTTP/2 200 OK\r\n\r\n',
    '/header': 'HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n',
    '/fold': 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\n\r\n',
    '/length': 'HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n',
    '/lengths': 'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
    '/te': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
    '/hangup': '',
  };
  await using s = await rawServer((socket, req) => socket.end(answers[req.split(' ')[1]!]!));
  for (const [path, code] of [['/status', 'HPE_INVALID_STATUS'], ['/proto', 'HPE_INVALID_STATUS'], ['/header', 'HPE_INVALID_HEADER_TOKEN'], ['/fold', 'HPE_INVALID_HEADER_TOKEN'], ['/length', 'HPE_INVALID_CONTENT_LENGTH'], ['/lengths', 'HPE_UNEXPECTED_CONTENT_LENGTH'], ['/te', 'HPE_INVALID_TRANSFER_ENCODING'], ['/hangup', 'ECONNRESET']] as const) {
    await assert.rejects(request({ socketPath: s.sock }, { method: 'GET', path }), (e: unknown) => e instanceof Http1Error && e.code === code, path);
  }
});

test('truncated bodies and bad chunks error the body stream, never a silent short read', async () => {
  const answers: Record<string, string> = {
    '/short': 'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello',
    '/chunks': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n',
    '/size': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n',
    '/crlf': 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n',
    '/_ping': 'HTTP/1.1 200 OK\r\nAPI-Version: 1.44\r\nContent-Length: 0\r\n\r\n',
  };
  await using s = await rawServer((socket, req) => socket.end(answers[req.split(' ')[1]!.replace(/^\/v[\d.]+/, '')]!));
  for (const [path, code] of [['/short', 'HPE_TRUNCATED_BODY'], ['/chunks', 'HPE_TRUNCATED_BODY'], ['/size', 'HPE_INVALID_CHUNK_SIZE'], ['/crlf', 'HPE_STRICT']] as const) {
    const res = await request({ socketPath: s.sock }, { method: 'GET', path });
    assert.equal(res.statusCode, 200);
    await assert.rejects(readAll(res), (e: unknown) => e instanceof Http1Error && e.code === code, path);
  }
  // Through ApiClient.json as a command would use it.
  const c = new ApiClient(`unix://${s.sock}`);
  await assert.rejects(c.json('GET', '/short'), (e: unknown) => e instanceof Http1Error && e.code === 'HPE_TRUNCATED_BODY');
});

test('abort: before the head rejects with AbortError and closes the connection; after it the body errors', async () => {
  let res2!: ServerResponse;
  await using s = await httpServer((req, res) => {
    if (req.url === '/body') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.write('{"partial":');
      res2 = res;
    } // /never: no answer
  });
  const ac = new AbortController();
  const p = request({ socketPath: s.sock }, { method: 'GET', path: '/never', signal: ac.signal });
  await waitFor(() => s.conns.length === 1, 'the request reaches the server');
  const serverSaw = once(s.conns[0]!, 'close');
  ac.abort();
  await assert.rejects(p, (e: unknown) => (e as Error).name === 'AbortError');
  await serverSaw;

  const ac2 = new AbortController();
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/body', signal: ac2.signal });
  const it = res[Symbol.asyncIterator]();
  assert.equal(String((await it.next()).value), '{"partial":');
  ac2.abort();
  await assert.rejects(it.next(), (e: unknown) => (e as Error).name === 'AbortError');
  assert.ok(res2);
  await assert.rejects(request({ socketPath: s.sock }, { method: 'GET', path: '/never', signal: AbortSignal.abort() }), (e: unknown) => (e as Error).name === 'AbortError');
});

test('a body its reader abandons closes the connection', async () => {
  let serverSocket!: net.Socket;
  await using s = await httpServer((req, res) => {
    serverSocket = req.socket;
    res.writeHead(200);
    res.write('event 1\n');
  });
  const res = await request({ socketPath: s.sock }, { method: 'GET', path: '/events' });
  const it = res[Symbol.asyncIterator]();
  await it.next();
  const closed = once(serverSocket, 'close');
  await it.return!();
  await closed;
});

test('parseHead and the decoders, fed a byte at a time', () => {
  const raw = Buffer.from('HTTP/1.1 200 OK\r\nA: 1\r\n\r\nrest');
  for (let i = 0; i < raw.length - 4; i++) assert.equal(parseHead(raw.subarray(0, i)), undefined, `incomplete at ${i}`);
  const h = parseHead(raw)!;
  assert.equal(h.size, raw.length - 4);
  assert.deepEqual(h.rawHeaders, ['A', '1']);
  assert.equal(parseHead(Buffer.from('HTTP/1.1 200 OK\nA: 1\n\n'))!.headers['a'], '1', 'bare LF line ends');
  assert.throws(() => parseHead(Buffer.alloc(70 * 1024, 'a')), (e: unknown) => e instanceof Http1Error && e.code === 'HPE_HEADER_OVERFLOW');

  const wire = Buffer.from('4\r\nWiki\r\n5;a=b\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nT: 1\r\n\r\nIGNORED');
  const d = new ChunkedDecoder();
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length && !d.done; i++) out.push(...d.push(wire.subarray(i, i + 1)));
  assert.equal(Buffer.concat(out).toString(), 'Wikipedia in\r\n\r\nchunks.');
  assert.ok(d.done);
  assert.throws(() => new ChunkedDecoder().push(Buffer.from('-1\r\n')), Http1Error);
  assert.throws(() => new ChunkedDecoder().push(Buffer.from('0x5\r\n')), Http1Error);
  assert.throws(() => new ChunkedDecoder().push(Buffer.from('1234567890abc\r\n')), Http1Error, 'more than 12 hex digits');
  const l = new LengthDecoder(3);
  assert.deepEqual(l.push(Buffer.from('abcd')).map(String), ['abc']);
  assert.ok(l.done);
  assert.throws(() => new LengthDecoder(3).eof(), Http1Error);
});
