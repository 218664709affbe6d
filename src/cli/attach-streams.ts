// The client side of attach/exec/logs streams.
// - Without a TTY the daemon multiplexes stdout and stderr: frames of an 8-byte header
//   [stream, 0, 0, 0, size(uint32 BE)] and `size` bytes (stream 1 stdout, 2 stderr, 3 an error
//   from the daemon; 0 is stdin echoed as stdout) — moby's stdcopy.
// - With a TTY the stream is raw bytes.
// - On a hijacked connection stdin is copied to the socket (raw mode when both sides are
//   terminals) and the write side is half-closed at end of input, so the container sees EOF
//   while its output still flows.
import type { Duplex } from 'node:stream';
import type { Writable } from 'node:stream';
import type { Ctx } from './command.ts';
import { DetachScanner, parseDetachKeys, DEFAULT_DETACH_KEYS } from '../pkg/detach-keys.ts';

export class StdcopyError extends Error {}

/** Demultiplex a stdcopy stream into two writers. Resolves at end of stream. */
export async function demux(input: AsyncIterable<Buffer | string>, stdout: Writable, stderr: Writable): Promise<void> {
  let buf: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    buf = buf.length === 0 ? (typeof chunk === 'string' ? Buffer.from(chunk) : chunk) : Buffer.concat([buf, typeof chunk === 'string' ? Buffer.from(chunk) : chunk]);
    while (buf.length >= 8) {
      const size = buf.readUInt32BE(4);
      if (buf.length < 8 + size) break;
      const kind = buf[0];
      const payload = buf.subarray(8, 8 + size);
      buf = buf.subarray(8 + size);
      switch (kind) {
        case 0:
        case 1:
          await write(stdout, payload);
          break;
        case 2:
          await write(stderr, payload);
          break;
        case 3:
          throw new StdcopyError(`error from daemon in stream: ${payload.toString('utf8')}`);
        default:
          throw new StdcopyError(`Unrecognized input header: ${kind}`);
      }
    }
  }
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
  const { stdin, stdout, stderr } = ctx.io;
  let raw = false;
  if (opts.stdin && opts.tty && stdin.isTTY && stdin.setRawMode) {
    stdin.setRawMode(true);
    raw = true;
  }
  const restore = () => {
    if (raw) {
      stdin.setRawMode!(false);
      raw = false;
    }
  };
  let onData: ((c: Buffer) => void) | undefined;
  let onEnd: (() => void) | undefined;
  let detached = false;
  let detach: () => void = () => {};
  const detachedP = new Promise<void>((r) => (detach = r));
  if (opts.stdin) {
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
      for await (const c of socket as AsyncIterable<Buffer>) await write(stdout, c);
    } else {
      await demux(socket as AsyncIterable<Buffer>, stdout, stderr);
    }
  })();
  return Promise.race([outputDone, detachedP])
    .then(() => (detached ? 'detached' : 'ended') as 'ended' | 'detached')
    .finally(() => {
      restore();
      if (onData) stdin.off('data', onData);
      if (onEnd) stdin.off('end', onEnd);
      if (opts.stdin) stdin.pause();
      if (!socket.destroyed) socket.destroy();
    });
}
