// demux: the client side of moby's stdcopy framing (src/cli/attach-streams.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough, Writable } from 'node:stream';
import { demux, StdcopyError } from '../../src/cli/attach-streams.ts';

function frame(kind: number, text: string): Buffer {
  const payload = Buffer.from(text);
  const head = Buffer.alloc(8);
  head[0] = kind;
  head.writeUInt32BE(payload.length, 4);
  return Buffer.concat([head, payload]);
}

/** A writer that collects; a `held` one reports itself full and finishes writes on release(). */
function sink(opts: { held?: boolean } = {}) {
  const got: string[] = [];
  const pending: (() => void)[] = [];
  const w = new Writable({
    highWaterMark: opts.held ? 1 : 16384,
    write(chunk: Buffer, _enc, cb) {
      got.push(chunk.toString());
      if (opts.held) pending.push(() => cb());
      else cb();
    },
  });
  const release = () => {
    for (const cb of pending.splice(0)) cb();
  };
  return { w, got, release };
}

test('demux: frames split across chunks reach stdout and stderr in order; the writers are read only when used', async () => {
  const input = new PassThrough();
  const out = sink();
  const err = sink();
  let stderrRead = 0;
  const to = {
    stdout: out.w,
    get stderr() {
      stderrRead++;
      return err.w;
    },
  };
  const done = demux(input, to);
  const all = Buffer.concat([frame(1, 'one\n'), frame(0, 'zero\n'), frame(1, 'two\n')]);
  input.write(all.subarray(0, 5));
  input.write(all.subarray(5, 13));
  input.end(all.subarray(13));
  await done;
  assert.deepEqual(out.got.join(''), 'one\nzero\ntwo\n');
  assert.equal(stderrRead, 0, 'no stderr frame, stderr never read');

  const input2 = new PassThrough();
  const done2 = demux(input2, to);
  input2.end(Buffer.concat([frame(2, 'e1\n'), frame(1, 'o\n'), frame(2, 'e2\n')]));
  await done2;
  assert.equal(err.got.join(''), 'e1\ne2\n');
  assert.equal(stderrRead, 2);
});

test('demux: a full writer pauses the input; resolves only once the writes drained', async () => {
  const input = new PassThrough();
  const out = sink({ held: true });
  let resolved = false;
  const done = demux(input, { stdout: out.w, stderr: out.w }).then(() => (resolved = true));
  input.write(frame(1, 'a'));
  await new Promise((r) => setImmediate(r));
  assert.equal(input.isPaused(), true, 'paused while stdout is full');
  out.release();
  await new Promise((r) => setImmediate(r));
  assert.equal(input.isPaused(), false, 'resumed after drain');
  input.end(Buffer.concat([frame(1, 'b'), frame(1, 'c')]));
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, false, 'the last writes are still pending');
  while (out.w.writableLength > 0) {
    out.release();
    await new Promise((r) => setImmediate(r));
  }
  await done;
  assert.deepEqual(out.got, ['a', 'b', 'c']);
});

test('demux: an error frame rejects with StdcopyError and destroys the input; a bad header too', async () => {
  const input = new PassThrough();
  const out = sink();
  const done = demux(input, { stdout: out.w, stderr: out.w });
  input.write(Buffer.concat([frame(1, 'before\n'), frame(3, 'boom')]));
  await assert.rejects(done, (e: Error) => e instanceof StdcopyError && e.message === 'error from daemon in stream: boom');
  assert.equal(out.got.join(''), 'before\n');
  assert.equal(input.destroyed, true);

  const bad = new PassThrough();
  const done2 = demux(bad, { stdout: out.w, stderr: out.w });
  bad.end(frame(7, 'x'));
  await assert.rejects(done2, (e: Error) => e instanceof StdcopyError && e.message === 'Unrecognized input header: 7');
});

test('demux: a stream that errors or closes before its end rejects; an ended one resolves', async () => {
  const out = sink();
  const failing = new PassThrough();
  const done = demux(failing, { stdout: out.w, stderr: out.w });
  failing.destroy(new Error('connection reset'));
  await assert.rejects(done, /connection reset/);

  const cut = new PassThrough();
  const done2 = demux(cut, { stdout: out.w, stderr: out.w });
  cut.write(frame(1, 'partial'));
  await new Promise((r) => setImmediate(r));
  cut.destroy();
  await assert.rejects(done2, (e: NodeJS.ErrnoException) => e.code === 'ERR_STREAM_PREMATURE_CLOSE');

  const errored = new PassThrough();
  errored.on('error', () => {});
  errored.destroy(new Error('gone before'));
  await assert.rejects(demux(errored, { stdout: out.w, stderr: out.w }), /gone before/);
});
