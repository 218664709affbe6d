// A berthd crash in the middle of a start or a removal leaves nothing half-done once it is back:
// the record is the truth, and whatever the runtime made beyond it is undone (a start) or
// finished (a removal). The crash is simulated by kill -9 and the record as the crash left it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startDaemon, importBusybox, docker, isRoot, waitFor, run, mountsUnder } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';

async function setStatus(dataRoot: string, id: string, status: string): Promise<void> {
  const p = join(dataRoot, 'containers', id, 'config.v2.json');
  const rec = JSON.parse(await readFile(p, 'utf8'));
  rec.state.status = status;
  await writeFile(p, JSON.stringify(rec));
}

test('crash during a start or a removal: undone or finished at the next daemon start', { skip, timeout: 120_000 }, async () => {
  const d = await startDaemon();
  try {
    await importBusybox(d);
    const ok = (r: { code: number; stderr: string }, what = '') => assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    const ids: Record<string, string> = {};
    const pids: Record<string, number> = {};
    for (const n of ['halfstart', 'halfrm']) {
      const r = await docker(d, ['run', '-d', '--name', n, '--network', 'none', 'busybox', 'sleep', '600']);
      ok(r, n);
      ids[n] = r.stdout.trim();
      pids[n] = JSON.parse((await docker(d, ['inspect', n])).stdout)[0].State.Pid;
    }
    await d.kill();
    // The runtime created (and started) it, the record still says 'created': a crash before the save.
    await setStatus(d.dataRoot, ids.halfstart!, 'created');
    // The record said 'removing' when the crash came.
    await setStatus(d.dataRoot, ids.halfrm!, 'removing');
    await d.restart();
    await waitFor(async () => (await run('kill', ['-0', String(pids.halfstart)])).code !== 0, 'half-started process undone', 20_000);
    await waitFor(async () => (await run('kill', ['-0', String(pids.halfrm)])).code !== 0, 'half-removed process gone', 20_000);
    await waitFor(async () => !(await docker(d, ['ps', '-a', '--format', '{{.Names}}'])).stdout.includes('halfrm'), 'removal finished');
    await waitFor(() => !existsSync(join(d.dataRoot, 'containers', ids.halfrm!)), 'record and files removed');
    const i = JSON.parse((await docker(d, ['inspect', 'halfstart'])).stdout)[0];
    assert.equal(i.State.Status, 'created');
    // Restore runs in the background once berthd serves: wait for it to settle.
    await waitFor(async () => (await readdir(join(d.execRoot, 'runtimes', 'runc')).catch(() => [])).length === 0, 'no runtime state left');
    await waitFor(async () => (await mountsUnder(d.execRoot)).length === 0, 'no rootfs mounted');
    // It starts again as a fresh container.
    ok(await docker(d, ['start', 'halfstart']), 'start again');
    assert.equal(JSON.parse((await docker(d, ['inspect', 'halfstart'])).stdout)[0].State.Running, true);
    ok(await docker(d, ['rm', '-f', 'halfstart']), 'rm');
    assert.deepEqual(await mountsUnder(d.execRoot), []);
    assert.equal((await run('pgrep', ['-f', `conmon .*${d.execRoot}`])).stdout.trim(), '', 'no conmon left');
  } finally {
    await d.cleanup();
  }
});
