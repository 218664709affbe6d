// A small HTTP/1.1 client over node:net, for the CLI's calls to its daemon. Loading node:http
// (agent, client, server, incoming/outgoing, the llhttp binding) and running its
// ClientRequest/IncomingMessage machinery is ~10 ms of every CLI run; the CLI needs one request
// per connection and none of the rest.
//
// Contract of `request()`:
//  - one connection per request, `Connection: close` (unless the caller sends its own Connection
//    header, as an upgrade does); the socket is destroyed when the response body ends;
//  - resolves with the response as soon as its head has arrived (1xx interim answers other than
//    101 are skipped); the body streams afterwards;
//  - request bodies: a Buffer is sent with Content-Length, a stream with
//    `Transfer-Encoding: chunked` (unless the caller set Content-Length itself); POST/PUT/PATCH
//    without a body send `Content-Length: 0`, as node:http did;
//  - response bodies are framed by `Transfer-Encoding: chunked`, else Content-Length, else the
//    close of the connection; empty for HEAD, 1xx, 204 and 304;
//  - a malformed head rejects with Http1Error; a malformed chunk, or a connection that closes
//    before the Content-Length or the last chunk, destroys the body stream with Http1Error:
//    never a hang or a silent truncation;
//  - `upgrade: true` and a `101` answer: `res.upgraded` is the raw socket (bytes already read
//    after the head pushed back into it first), the body is empty and the socket is the
//    caller's to close;
//  - `signal`: aborting destroys the connection; before the head arrived the promise rejects
//    with an AbortError, after it the body stream errors with one.
import type { IncomingHttpHeaders } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { invalidArgument } from '../core/errors.ts';

export interface Http1Target {
  /** A unix socket path, or else host and port (TCP). */
  socketPath?: string;
  host?: string;
  port?: number;
}

export interface Http1Request {
  method: string;
  /** The request target: path and query, as sent (characters not allowed there are %-encoded). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | Readable;
  signal?: AbortSignal;
  /** Hand over the socket on a `101` answer (the caller sends the Connection/Upgrade headers). */
  upgrade?: boolean;
}

/** A response head or body that breaks HTTP/1.1 framing (node:http's HPE_* errors). */
export class Http1Error extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.name = 'Http1Error';
    this.code = code;
  }
}

/** What node:http rejects with on abort: name AbortError, code ABORT_ERR, the reason as cause. */
export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(reason: unknown) {
    super('The operation was aborted', { cause: reason });
    this.name = 'AbortError';
  }
}

/** Heads larger than this are refused (node:http's limit is 16 KiB). */
export const MAX_HEAD_BYTES = 64 * 1024;

export interface ResponseHead {
  httpVersion: string;
  statusCode: number;
  statusMessage: string;
  /** Lower-cased names; repeated headers joined as node:http joins them. */
  headers: IncomingHttpHeaders;
  /** Names and values as received, alternating. */
  rawHeaders: string[];
  /** Content-Length, when sent (repeats must agree). */
  contentLength?: number;
  /** The last transfer coding is `chunked`. */
  chunked: boolean;
  /** Transfer-Encoding was sent. */
  transferEncoding: boolean;
  /** Bytes of the buffer the head took, blank line included. */
  size: number;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values and reason phrases: no control characters but tab.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const STATUS_LINE = /^HTTP\/1\.([01]) (\d{3})(?: (.*))?$/;

// node:http keeps the first of these when they repeat, makes set-cookie an array, joins cookie
// with '; ' and every other header with ', ' (IncomingMessage._addHeaderLine).
const FIRST_WINS = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host',
  'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards',
  'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

function addHeader(headers: Record<string, string | string[]>, name: string, value: string): void {
  const prev = headers[name];
  if (prev === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
  else if (name === 'set-cookie') (prev as string[]).push(value);
  else if (FIRST_WINS.has(name)) return;
  else headers[name] = `${prev as string}${name === 'cookie' ? '; ' : ', '}${value}`;
}

/**
 * Parse a response head at the start of `buf`: undefined while it is incomplete; Http1Error if
 * it is malformed or larger than MAX_HEAD_BYTES. Lines end in CRLF (a bare LF is accepted, as
 * RFC 9112 allows); obsolete line folding is refused.
 */
export function parseHead(buf: Buffer): ResponseHead | undefined {
  const lines: string[] = [];
  let start = 0;
  for (let nl = buf.indexOf(0x0a); nl !== -1 && nl < MAX_HEAD_BYTES; nl = buf.indexOf(0x0a, start)) {
    const end = nl > start && buf[nl - 1] === 0x0d ? nl - 1 : nl;
    const line = buf.toString('latin1', start, end);
    start = nl + 1;
    if (line === '') return parseHeadLines(lines, start);
    lines.push(line);
  }
  if (buf.length >= MAX_HEAD_BYTES) throw new Http1Error('HPE_HEADER_OVERFLOW', 'response head too large');
  return undefined;
}

function parseHeadLines(lines: string[], size: number): ResponseHead {
  const status = STATUS_LINE.exec(lines[0] ?? '');
  if (!status || BAD_VALUE.test(status[3] ?? '')) throw new Http1Error('HPE_INVALID_STATUS', `malformed status line ${JSON.stringify(lines[0] ?? '')}`);
  const headers: Record<string, string | string[]> = {};
  const rawHeaders: string[] = [];
  let contentLength: number | undefined;
  const codings: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(':');
    const rawName = colon > 0 ? line.slice(0, colon) : '';
    if (!TOKEN.test(rawName)) throw new Http1Error('HPE_INVALID_HEADER_TOKEN', `malformed header line ${JSON.stringify(line)}`);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, '');
    if (BAD_VALUE.test(value)) throw new Http1Error('HPE_INVALID_HEADER_TOKEN', `malformed header value for ${rawName}`);
    const name = rawName.toLowerCase();
    if (name === 'content-length') {
      if (!/^\d{1,15}$/.test(value)) throw new Http1Error('HPE_INVALID_CONTENT_LENGTH', `invalid content-length ${JSON.stringify(value)}`);
      const n = Number(value);
      if (contentLength !== undefined && contentLength !== n) throw new Http1Error('HPE_UNEXPECTED_CONTENT_LENGTH', 'conflicting content-length headers');
      contentLength = n;
    } else if (name === 'transfer-encoding') {
      for (const c of value.split(',')) {
        const coding = c.trim().toLowerCase();
        if (coding) codings.push(coding);
      }
    }
    rawHeaders.push(rawName, value);
    addHeader(headers, name, value);
  }
  // `chunked` must be the last coding, and only once (RFC 9112 6.1).
  const chunkedAt = codings.indexOf('chunked');
  if (chunkedAt !== -1 && chunkedAt !== codings.length - 1) throw new Http1Error('HPE_INVALID_TRANSFER_ENCODING', 'chunked is not the final transfer coding');
  return {
    httpVersion: `1.${status[1]}`,
    statusCode: Number(status[2]),
    statusMessage: status[3] ?? '',
    headers: headers as IncomingHttpHeaders,
    rawHeaders,
    contentLength,
    chunked: chunkedAt !== -1,
    transferEncoding: 'transfer-encoding' in headers,
    size,
  };
}

/** Turns the bytes after a response head into body bytes. */
export interface BodyDecoder {
  /** Body bytes in `data`; throws Http1Error on bad framing. Bytes past the end are ignored. */
  push(data: Buffer): Buffer[];
  /** The body is complete. */
  readonly done: boolean;
  /** The connection closed: throws Http1Error if the body is incomplete. */
  eof(): void;
}

/** A body of exactly `length` bytes. */
export class LengthDecoder implements BodyDecoder {
  #left: number;
  readonly #length: number;
  constructor(length: number) {
    this.#left = this.#length = length;
  }
  get done(): boolean {
    return this.#left === 0;
  }
  push(data: Buffer): Buffer[] {
    if (this.#left === 0 || data.length === 0) return [];
    const take = data.length <= this.#left ? data : data.subarray(0, this.#left);
    this.#left -= take.length;
    return [take];
  }
  eof(): void {
    if (this.#left > 0) throw new Http1Error('HPE_TRUNCATED_BODY', `response body truncated: ${this.#length - this.#left} of ${this.#length} bytes`);
  }
}

/** A body that ends when the connection closes. */
export class CloseDecoder implements BodyDecoder {
  #done = false;
  get done(): boolean {
    return this.#done;
  }
  push(data: Buffer): Buffer[] {
    return data.length ? [data] : [];
  }
  eof(): void {
    this.#done = true;
  }
}

const MAX_CHUNK_LINE = 4096;
const MAX_TRAILERS = 64 * 1024;

/**
 * `Transfer-Encoding: chunked`: hex size [; extensions] CRLF, data, CRLF, ... `0` CRLF, trailer
 * lines (ignored), CRLF. Sizes are hex digits only (no sign, no 0x, at most 12 digits); the data
 * must be followed by CRLF (or a bare LF).
 */
export class ChunkedDecoder implements BodyDecoder {
  #state: 'size' | 'data' | 'data-end' | 'data-lf' | 'trailers' | 'done' = 'size';
  #line = '';
  #left = 0;
  #trailerBytes = 0;
  get done(): boolean {
    return this.#state === 'done';
  }
  push(data: Buffer): Buffer[] {
    const out: Buffer[] = [];
    let i = 0;
    while (i < data.length && this.#state !== 'done') {
      switch (this.#state) {
        case 'size':
        case 'trailers': {
          const nl = data.indexOf(0x0a, i);
          const end = nl === -1 ? data.length : nl;
          this.#line += data.toString('latin1', i, end);
          if (this.#line.length > (this.#state === 'size' ? MAX_CHUNK_LINE : MAX_TRAILERS)) {
            throw new Http1Error('HPE_CHUNK_EXTENSIONS_OVERFLOW', this.#state === 'size' ? 'chunk size line too long' : 'chunked trailers too large');
          }
          if (nl === -1) {
            i = data.length;
            break;
          }
          i = nl + 1;
          const line = this.#line.endsWith('\r') ? this.#line.slice(0, -1) : this.#line;
          this.#line = '';
          if (this.#state === 'trailers') {
            this.#trailerBytes += line.length + 2;
            if (this.#trailerBytes > MAX_TRAILERS) throw new Http1Error('HPE_HEADER_OVERFLOW', 'chunked trailers too large');
            if (line === '') this.#state = 'done';
            break;
          }
          const m = /^([0-9A-Fa-f]{1,12})[ \t]*(?:;.*)?$/.exec(line);
          if (!m || BAD_VALUE.test(line)) throw new Http1Error('HPE_INVALID_CHUNK_SIZE', `invalid chunk size ${JSON.stringify(line.slice(0, 40))}`);
          this.#left = parseInt(m[1]!, 16);
          this.#state = this.#left === 0 ? 'trailers' : 'data';
          break;
        }
        case 'data': {
          const n = Math.min(this.#left, data.length - i);
          out.push(data.subarray(i, i + n));
          i += n;
          this.#left -= n;
          if (this.#left === 0) this.#state = 'data-end';
          break;
        }
        case 'data-end':
        case 'data-lf': {
          const c = data[i++];
          if (c === 0x0a) this.#state = 'size';
          else if (c === 0x0d && this.#state === 'data-end') this.#state = 'data-lf';
          else throw new Http1Error('HPE_STRICT', 'chunk data not followed by CRLF');
          break;
        }
      }
    }
    return out;
  }
  eof(): void {
    if (this.#state !== 'done') throw new Http1Error('HPE_TRUNCATED_BODY', 'response body truncated: connection closed before the last chunk');
  }
}

/** A response as callers of node:http knew it: status, lower-cased headers, the body as a Readable. */
export class Http1Response extends Readable {
  readonly httpVersion: string;
  readonly statusCode: number;
  readonly statusMessage: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  /** After a 101 answer to an upgrade request: the raw connection, now the caller's to close. */
  upgraded?: Socket;
  readonly #socket: Socket;

  constructor(head: ResponseHead, socket: Socket) {
    super();
    this.httpVersion = head.httpVersion;
    this.statusCode = head.statusCode;
    this.statusMessage = head.statusMessage;
    this.headers = head.headers;
    this.rawHeaders = head.rawHeaders;
    this.#socket = socket;
    // A framing error can come before anyone reads (in the bytes that came with the head): it
    // reaches the reader through the stream's errored state (async iteration, pipeline,
    // readAll), and never crashes the CLI as an unhandled 'error' event.
    this.on('error', () => {});
  }

  // The socket is paused while the body's buffer is full; reading resumes it.
  override _read(): void {
    if (this.#socket.isPaused() && !this.upgraded) this.#socket.resume();
  }

  // A body abandoned by its reader closes the connection (the daemon sees the client go away).
  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.upgraded) this.#socket.destroy();
    cb(err);
  }
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS', 'TRACE', 'CONNECT']);
// What node:http refuses in a header value (and it writes the value as latin1).
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** The request line and headers, and whether the body goes chunked. */
export function formatHead(target: Http1Target, req: Http1Request): { head: Buffer; chunked: boolean } {
  if (!TOKEN.test(req.method)) throw invalidArgument(`invalid http method ${JSON.stringify(req.method)}`);
  if (!req.path.startsWith('/')) throw invalidArgument(`invalid request path ${JSON.stringify(req.path)}`);
  // Characters a request target cannot hold (space, controls, non-ASCII) go %-encoded, UTF-8,
  // as Go's client sends them; the daemon decodes path parameters.
  const path = req.path.replace(/[^\x21-\x7e]+/g, (s) => encodeURIComponent(s));
  const given = new Set<string>();
  let lines = '';
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    if (!TOKEN.test(name)) throw invalidArgument(`invalid header name ${JSON.stringify(name)}`);
    if (BAD_HEADER_VALUE.test(value)) throw invalidArgument(`invalid value for header ${name}`);
    given.add(name.toLowerCase());
    lines += `${name}: ${value}\r\n`;
  }
  let head = `${req.method} ${path} HTTP/1.1\r\n`;
  if (!given.has('host')) {
    const { host = 'localhost', port = 80 } = target;
    head += target.socketPath !== undefined ? 'Host: localhost\r\n' : `Host: ${host.includes(':') ? `[${host}]` : host}${port === 80 ? '' : `:${port}`}\r\n`;
  }
  head += lines;
  let chunked = false;
  const framed = given.has('content-length') || given.has('transfer-encoding');
  if (Buffer.isBuffer(req.body)) {
    if (!framed) head += `Content-Length: ${req.body.length}\r\n`;
  } else if (req.body !== undefined) {
    chunked = !given.has('content-length');
    if (chunked && !given.has('transfer-encoding')) head += 'Transfer-Encoding: chunked\r\n';
  } else if (!framed && !NO_BODY_METHODS.has(req.method)) {
    head += 'Content-Length: 0\r\n';
  }
  if (!given.has('connection')) head += 'Connection: close\r\n';
  return { head: Buffer.from(head + '\r\n', 'latin1'), chunked };
}

function toBuffer(c: Buffer | string | Uint8Array): Buffer {
  if (Buffer.isBuffer(c)) return c;
  return typeof c === 'string' ? Buffer.from(c) : Buffer.from(c.buffer, c.byteOffset, c.byteLength);
}

function drainOrClose(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/** Send a stream body; stops (and destroys the stream) when the connection is gone. */
async function sendStream(socket: Socket, body: Readable, chunked: boolean): Promise<void> {
  for await (const c of body as AsyncIterable<Buffer | string | Uint8Array>) {
    if (socket.destroyed) return;
    const b = toBuffer(c);
    if (b.length === 0) continue;
    let ok: boolean;
    if (chunked) {
      socket.cork();
      socket.write(`${b.length.toString(16)}\r\n`);
      socket.write(b);
      ok = socket.write('\r\n');
      socket.uncork();
    } else {
      ok = socket.write(b);
    }
    if (!ok) await drainOrClose(socket);
  }
  if (chunked && !socket.destroyed) socket.write('0\r\n\r\n');
}

const hangUp = () => new Http1Error('ECONNRESET', 'socket hang up');

/** Send one request on a connection of its own; see the contract at the top of this file. */
export function request(target: Http1Target, req: Http1Request): Promise<Http1Response> {
  return new Promise((resolve, reject) => {
    const { signal } = req;
    if (signal?.aborted) {
      reject(new AbortError(signal.reason));
      return;
    }
    let head: { head: Buffer; chunked: boolean };
    try {
      head = formatHead(target, req);
    } catch (err) {
      reject(err);
      return;
    }
    const socket = target.socketPath !== undefined
      ? connect({ path: target.socketPath })
      : connect({ host: target.host ?? 'localhost', port: target.port ?? 80, noDelay: true });
    let pending: Buffer | undefined;
    let res: Http1Response | undefined;
    let decoder: BodyDecoder | undefined;
    let finished = false;

    const onAbort = () => fail(new AbortError(signal!.reason));
    const fail = (err: Error) => {
      if (finished) return;
      finished = true;
      signal?.removeEventListener('abort', onAbort);
      if (res) res.destroy(err);
      else reject(err);
      socket.destroy();
    };
    const complete = () => {
      finished = true;
      signal?.removeEventListener('abort', onAbort);
      res!.push(null);
      socket.destroy();
    };
    const feed = (data: Buffer) => {
      let out: Buffer[];
      try {
        out = decoder!.push(data);
      } catch (err) {
        fail(err as Error);
        return;
      }
      for (const c of out) if (!res!.push(c)) socket.pause();
      if (decoder!.done) complete();
    };
    const onData = (d: Buffer) => {
      if (finished) return;
      if (res) {
        feed(d);
        return;
      }
      pending = pending ? Buffer.concat([pending, d]) : d;
      let h: ResponseHead | undefined;
      for (;;) {
        try {
          h = parseHead(pending);
        } catch (err) {
          fail(err as Error);
          return;
        }
        if (!h) return;
        // Interim answers (100 Continue, 103 Early Hints) precede the real one.
        if (h.statusCode < 200 && h.statusCode !== 101) {
          pending = pending.subarray(h.size);
          continue;
        }
        break;
      }
      const rest = pending.subarray(h.size);
      pending = undefined;
      if (h.statusCode === 101) {
        if (!req.upgrade) {
          fail(new Http1Error('HPE_UNEXPECTED_UPGRADE', 'unexpected 101 response to a request that did not ask to upgrade'));
          return;
        }
        finished = true;
        signal?.removeEventListener('abort', onAbort);
        socket.off('data', onData).off('end', onEnd).off('error', fail).off('close', onClose);
        // Out of flowing mode without a 'data' listener (bytes stay buffered), but not paused:
        // the new owner's on('data'), pipe or async iteration starts it, as after node:http's
        // 'upgrade' event.
        (socket as { readableFlowing: boolean | null }).readableFlowing = null;
        if (rest.length > 0) socket.unshift(rest);
        res = new Http1Response(h, socket);
        res.upgraded = socket;
        res.push(null);
        resolve(res);
        return;
      }
      res = new Http1Response(h, socket);
      const bodyless = req.method === 'HEAD' || h.statusCode === 204 || h.statusCode === 304;
      decoder = bodyless ? new LengthDecoder(0)
        : h.chunked ? new ChunkedDecoder()
        : h.contentLength !== undefined && !h.transferEncoding ? new LengthDecoder(h.contentLength)
        : new CloseDecoder();
      resolve(res);
      feed(rest);
    };
    const onEnd = () => {
      if (finished) return;
      if (!res) {
        fail(hangUp());
        return;
      }
      try {
        decoder!.eof();
      } catch (err) {
        fail(err as Error);
        return;
      }
      complete();
    };
    // (Every connection closes, after a complete response too: the error is made only if it is news.)
    const onClose = () => {
      if (!finished) fail(hangUp());
    };

    signal?.addEventListener('abort', onAbort, { once: true });
    socket.on('data', onData).on('end', onEnd).on('error', fail).on('close', onClose);
    const { body } = req;
    if (body === undefined) socket.write(head.head);
    else if (Buffer.isBuffer(body) && body.length <= 64 * 1024) socket.write(Buffer.concat([head.head, body]));
    else if (Buffer.isBuffer(body)) {
      socket.write(head.head);
      socket.write(body);
    } else {
      socket.write(head.head);
      sendStream(socket, body, head.chunked).catch((err: unknown) => fail(err as Error));
    }
  });
}
