// The client side of attach/exec/logs streams.
// - Without a TTY the daemon multiplexes stdout and stderr: frames of an 8-byte header
//   [stream, 0, 0, 0, size(uint32 BE)] and `size` bytes (stream 1 stdout, 2 stderr, 3 an error
//   from the daemon; 0 is stdin echoed as stdout) — moby's stdcopy.
// - With a TTY the stream is raw bytes.
// - On a hijacked connection stdin is copied to the socket (raw mode when both sides are
//   terminals) and the write side is half-closed at end of input, so the container sees EOF
//   while its output still flows.
import type { Duplex, Readable, Writable } from 'node:stream';
import type { Ctx } from './command.ts';
import { DetachScanner, parseDetachKeys, DEFAULT_DETACH_KEYS } from '../pkg/detach-keys.ts';

export class StdcopyError extends Error {}

/**
 * Demultiplex a stdcopy stream into `to.stdout` and `to.stderr`, each read when a frame is written
 * to it (a CliIO's streams are made on first use). Resolves at end of stream, once the writes are
 * drained; rejects with the stream's error, or with a StdcopyError (and destroys the stream) on a
 * bad frame. While a writer is full, the input is paused. (With events, not `for await`: a run's
 * first async iteration of a stream costs ~0.5 ms of Node's own stream code compiling.)
 */
export function demux(input: NodeJS.ReadableStream, to: { readonly stdout: Writable; readonly stderr: Writable }): Promise<void> {
  const r = input as Readable;
  return new Promise((resolve, reject) => {
    let buf: Buffer = Buffer.alloc(0);
    let full = 0; // writers waiting for 'drain'
    let ended = false;
    let settled = false;
    const settle = (err?: Error) => {
      if (settled) return;
      settled = true;
      r.off('data', onData).off('end', onEnd).off('error', onError).off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onData = (chunk: Buffer | string) => {
      const c = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      buf = buf.length === 0 ? c : Buffer.concat([buf, c]);
      while (buf.length >= 8) {
        const size = buf.readUInt32BE(4);
        if (buf.length < 8 + size) break;
        const kind = buf[0];
        const payload = buf.subarray(8, 8 + size);
        buf = buf.subarray(8 + size);
        let w: Writable;
        if (kind === 0 || kind === 1) w = to.stdout;
        else if (kind === 2) w = to.stderr;
        else {
          settle(new StdcopyError(kind === 3 ? `error from daemon in stream: ${payload.toString('utf8')}` : `Unrecognized input header: ${kind}`));
          r.destroy();
          return;
        }
        if (!w.write(payload)) {
          full++;
          r.pause();
          w.once('drain', () => {
            if (--full > 0) return;
            if (ended) settle();
            else r.resume();
          });
        }
      }
    };
    const onEnd = () => {
      ended = true;
      if (full === 0) settle();
    };
    const onError = (err: Error) => settle(err);
    const onClose = () => {
      if (!ended) settle(r.errored ?? Object.assign(new Error('Premature close'), { code: 'ERR_STREAM_PREMATURE_CLOSE' }));
    };
    if (r.errored) return settle(r.errored);
    if (r.readableEnded) return settle();
    if (r.destroyed) return onClose();
    r.on('data', onData).on('end', onEnd).on('error', onError).on('close', onClose);
  });
}

function write(w: Writable, b: Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (w.write(b)) resolve();
    else w.once('drain', resolve);
  });
}

export interface HijackOptions {
  tty: boolean;
  /** Copy our stdin into the connection. */
  stdin: boolean;
  /** Copy output (docker attach -a stdin alone does not). */
  output?: boolean;
  /** --detach-keys ("ctrl-p,ctrl-q" by default), watched on stdin in TTY mode. */
  detachKeys?: string;
}

/**
 * Run the streams of a hijacked connection until the daemon closes its output, or until the
 * user types the detach keys (TTY mode): resolves with 'detached' then, else 'ended'.
 */
export function streamHijacked(ctx: Ctx, socket: Duplex, opts: HijackOptions): Promise<'ended' | 'detached'> {
  // The streams are read only where used: each is made on first use, stdin at a cost (see
  // processIO), and a run without -i never touches it.
  const io = ctx.io;
  const stdin = opts.stdin ? io.stdin : undefined;
  let raw = false;
  if (stdin && opts.tty && stdin.isTTY && stdin.setRawMode) {
    stdin.setRawMode(true);
    raw = true;
  }
  const restore = () => {
    if (raw) {
      stdin!.setRawMode!(false);
      raw = false;
    }
  };
  let onData: ((c: Buffer) => void) | undefined;
  let onEnd: (() => void) | undefined;
  let detached = false;
  let detach: () => void = () => {};
  const detachedP = new Promise<void>((r) => (detach = r));
  if (stdin) {
    let proxy: DetachScanner | undefined;
    if (opts.tty) {
      try {
        proxy = new DetachScanner(parseDetachKeys(opts.detachKeys || DEFAULT_DETACH_KEYS));
      } catch {
        proxy = new DetachScanner(parseDetachKeys(DEFAULT_DETACH_KEYS)); // docker: invalid keys -> default
      }
    }
    onData = (c: Buffer) => {
      let data = typeof c === 'string' ? Buffer.from(c) : c;
      if (proxy) {
        const r = proxy.push(data);
        data = r.data;
        if (r.detach) {
          if (data.length && !socket.writableEnded) socket.write(data);
          detached = true;
          detach();
          return;
        }
      }
      if (data.length && !socket.writableEnded) socket.write(data);
    };
    onEnd = () => {
      // Half-close: the container reads EOF, its output keeps coming.
      if (!socket.writableEnded) socket.end();
    };
    stdin.on('data', onData);
    stdin.once('end', onEnd);
    stdin.resume();
  }
  const outputDone = (async () => {
    if (opts.output === false) {
      socket.resume();
      await new Promise<void>((r) => {
        socket.once('end', r);
        socket.once('close', r);
      });
    } else if (opts.tty) {
      for await (const c of socket as AsyncIterable<Buffer>) await write(io.stdout, c);
    } else {
      await demux(socket, io);
    }
  })();
  return Promise.race([outputDone, detachedP])
    .then(() => (detached ? 'detached' : 'ended') as 'ended' | 'detached')
    .finally(() => {
      restore();
      if (stdin) {
        if (onData) stdin.off('data', onData);
        if (onEnd) stdin.off('end', onEnd);
        stdin.pause();
      }
      if (!socket.destroyed) socket.destroy();
    });
}
