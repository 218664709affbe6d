// The one StorageDriver conformance suite, run against every driver.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { isKind } from '../../src/core/errors.ts';
import { FilesystemDriver } from '../../src/registry/filesystem-driver.ts';
import { MemoryDriver } from '../../src/registry/memory-driver.ts';
import type { StorageDriver } from '../../src/registry/storage-driver.ts';

async function* chunks(...parts: (string | Error)[]): AsyncIterable<Uint8Array> {
  for (const p of parts) {
    if (p instanceof Error) throw p;
    yield Buffer.from(p);
  }
}

async function readAll(d: StorageDriver, path: string, start?: number, end?: number): Promise<string> {
  const r = await d.reader(path, start, end);
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out).toString();
}

export function driverSuite(name: string, make: () => Promise<{ driver: StorageDriver; cleanup: () => Promise<void> }>): void {
  describe(`StorageDriver conformance: ${name}`, () => {
    let d: StorageDriver;
    let cleanup: () => Promise<void>;
    before(async () => ({ driver: d, cleanup } = await make()));
    after(async () => cleanup());

    it('puts and gets content, replacing atomically', async () => {
      await d.putContent('a/b/c', 'one');
      assert.equal((await d.getContent('a/b/c')).toString(), 'one');
      await d.putContent('a/b/c', 'two');
      assert.equal((await d.getContent('a/b/c')).toString(), 'two');
    });

    it('reports missing content as NotFound', async () => {
      await assert.rejects(d.getContent('nope/x'), (e) => isKind(e, 'NotFound'));
      await assert.rejects(d.reader('nope/x'), (e) => isKind(e, 'NotFound'));
      await assert.rejects(d.move('nope/x', 'nope/y'), (e) => isKind(e, 'NotFound'));
      assert.equal(await d.stat('nope/x'), undefined);
      assert.deepEqual(await d.list('nope'), []);
      assert.equal(await d.touch('nope/x'), false);
    });

    it('refuses content above maxBytes', async () => {
      await d.putContent('big', 'x'.repeat(100));
      await assert.rejects(d.getContent('big', 10), (e) => isKind(e, 'InvalidArgument'));
      assert.equal((await d.getContent('big', 100)).length, 100);
    });

    it('refuses keys that could escape the root', async () => {
      for (const bad of ['../x', 'a/../../x', '/abs', 'a//b', 'a/./b', '', 'a/\0']) {
        await assert.rejects(d.putContent(bad, 'x'), (e) => isKind(e, 'InvalidArgument'), bad);
        await assert.rejects(d.getContent(bad), (e) => isKind(e, 'InvalidArgument'), bad);
      }
    });

    it('reads byte ranges (inclusive end)', async () => {
      await d.putContent('r/file', '0123456789');
      assert.equal(await readAll(d, 'r/file'), '0123456789');
      assert.equal(await readAll(d, 'r/file', 2, 5), '2345');
      assert.equal(await readAll(d, 'r/file', 7), '789');
    });

    it('sends byte ranges into a writable, large files in several chunks', async () => {
      const big = Buffer.alloc(3 * 1024 * 1024 + 17);
      for (let i = 0; i < big.length; i++) big[i] = i % 251;
      await d.putContent('send/big', big);
      const collect = async (start?: number, end?: number) => {
        const got: Buffer[] = [];
        const w = new Writable({ write(c, _e, cb) { got.push(Buffer.from(c)); setImmediate(cb); } });
        await d.send('send/big', w, start, end);
        return Buffer.concat(got);
      };
      assert.ok((await collect()).equals(big));
      assert.ok((await collect(1000, 2_500_000)).equals(big.subarray(1000, 2_500_001)));
      await assert.rejects(d.send('send/none', new Writable({ write(_c, _e, cb) { cb(); } })), (e) => isKind(e, 'NotFound'));
      // A destination that closes early ends the send instead of hanging it.
      const early = new Writable({ write(_c, _e, _cb) { setImmediate(() => early.destroy()); } });
      early.on('error', () => {});
      await d.send('send/big', early);
    });

    it('appends chunks and returns the new size', async () => {
      assert.equal(await d.append('up/data', chunks('abc', 'def')), 6);
      assert.equal(await d.append('up/data', chunks('gh')), 8);
      assert.equal((await d.getContent('up/data')).toString(), 'abcdefgh');
      assert.equal(await d.append('up/empty', chunks()), 0);
      assert.equal((await d.stat('up/empty'))?.size, 0);
    });

    it('rolls a failed append back to the old size', async () => {
      await d.append('roll/data', chunks('keep'));
      await assert.rejects(d.append('roll/data', chunks('lost', 'x'.repeat(3 << 20), new Error('cut'))), /cut/);
      assert.equal((await d.getContent('roll/data')).toString(), 'keep');
    });

    it('stats files and directories', async () => {
      await d.putContent('s/dir/file', '12345');
      const f = await d.stat('s/dir/file');
      assert.equal(f?.size, 5);
      assert.equal(f?.isDir, false);
      assert.ok(Math.abs(f!.modTime - Date.now()) < 60_000);
      assert.equal((await d.stat('s/dir'))?.isDir, true);
    });

    it('lists children sorted', async () => {
      await d.putContent('l/b', '');
      await d.putContent('l/a/x', '');
      await d.putContent('l/c', '');
      assert.deepEqual(await d.list('l'), ['a', 'b', 'c']);
    });

    it('moves atomically, replacing the target', async () => {
      await d.putContent('m/src', 'new');
      await d.putContent('m/dst/file', 'old');
      await d.move('m/src', 'm/dst/file');
      assert.equal((await d.getContent('m/dst/file')).toString(), 'new');
      assert.equal(await d.stat('m/src'), undefined);
      await d.putContent('m/src2', 'deep');
      await d.move('m/src2', 'm/new/parent/file');
      assert.equal((await d.getContent('m/new/parent/file')).toString(), 'deep');
    });

    it('deletes files and trees; deleting the missing is fine', async () => {
      await d.putContent('del/a/1', '');
      await d.putContent('del/a/2', '');
      await d.putContent('del/b', '');
      await d.delete('del/a');
      assert.deepEqual(await d.list('del'), ['b']);
      await d.delete('del/none');
    });

    it('touch moves the modification time forward', async () => {
      await d.putContent('t/file', 'x');
      const set = (d as { setModTime?: (p: string, t: number) => unknown }).setModTime;
      await set!.call(d, 't/file', Date.now() - 3_600_000);
      assert.ok((await d.stat('t/file'))!.modTime < Date.now() - 3_000_000);
      assert.equal(await d.touch('t/file'), true);
      assert.ok((await d.stat('t/file'))!.modTime > Date.now() - 60_000);
    });

    it('survives concurrent writers of the same key', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => d.putContent('race/key', `value-${i % 2}`.repeat(1000))));
      const v = (await d.getContent('race/key')).toString();
      assert.ok(v === 'value-0'.repeat(1000) || v === 'value-1'.repeat(1000));
    });
  });
}

driverSuite('inmemory', async () => ({ driver: new MemoryDriver(), cleanup: async () => {} }));
driverSuite('filesystem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-regdrv-'));
  const driver = new FilesystemDriver(dir);
  await driver.init();
  return {
    driver,
    cleanup: async () => {
      // atomic puts leave nothing behind in the staging directory
      assert.deepEqual(await readdir(join(dir, '_tmp')), []);
      await rm(dir, { recursive: true, force: true });
    },
  };
});
