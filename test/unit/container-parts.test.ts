import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RestartManager, validateRestartPolicy, BACKOFF_MAX_MS } from '../../src/container/restart-manager.ts';
import { parseLogLine, frame, streamLogs, rotateLogs, parseSize, formatEntry } from '../../src/container/container-logs.ts';
import { EventBus, matchEvent, parseEventTime } from '../../src/container/event-bus.ts';
import { humanDuration, statusText, matchesFilters, inspectJson } from '../../src/container/container-json.ts';
import { ContainerStore, emptyState, type ContainerRecord } from '../../src/container/container-store.ts';
import { ContainerPaths } from '../../src/container/paths.ts';
import { probeCommand } from '../../src/container/health-monitor.ts';
import { parseSignal } from '../../src/container/container-service.ts';

test('restart back-off: 100 ms doubling to 1 min, reset after 10 s up', () => {
  const m = new RestartManager();
  const always = { Name: 'always' as const };
  const delays: number[] = [];
  for (let i = 0; i < 12; i++) delays.push(m.shouldRestart(always, 0, false, i, 50).delayMs);
  assert.deepEqual(delays.slice(0, 5), [100, 200, 400, 800, 1600]);
  assert.equal(delays[11], BACKOFF_MAX_MS);
  assert.equal(m.shouldRestart(always, 0, false, 12, 10_000).delayMs, 100, 'reset after 10 s');
  assert.equal(m.shouldRestart(always, 0, true, 0, 0).restart, false, 'manual stop');
  m.cancel();
  assert.equal(m.shouldRestart(always, 1, false, 0, 0).restart, false, 'canceled');
});

test('restart policies: on-failure max retries, unless-stopped, no', () => {
  const m = new RestartManager();
  const of = { Name: 'on-failure' as const, MaximumRetryCount: 2 };
  assert.equal(m.shouldRestart(of, 1, false, 0, 0).restart, true);
  assert.equal(m.shouldRestart(of, 1, false, 1, 0).restart, true);
  assert.equal(m.shouldRestart(of, 1, false, 2, 0).restart, false);
  assert.equal(m.shouldRestart(of, 0, false, 0, 0).restart, false, 'exit 0 is no failure');
  assert.equal(m.shouldRestart({ Name: 'unless-stopped' }, 0, false, 0, 0).restart, true);
  assert.equal(m.shouldRestart({ Name: 'unless-stopped' }, 0, true, 0, 0).restart, false);
  assert.equal(m.shouldRestart({ Name: 'no' }, 1, false, 0, 0).restart, false);
  assert.equal(m.shouldRestart(undefined, 1, false, 0, 0).restart, false);
  assert.throws(() => validateRestartPolicy({ Name: 'always' }, true), /Conflicting options/);
  assert.throws(() => validateRestartPolicy({ Name: 'sometimes' as never }, false));
  assert.throws(() => validateRestartPolicy({ Name: 'always', MaximumRetryCount: 3 }, false));
  validateRestartPolicy({ Name: 'on-failure', MaximumRetryCount: 3 }, false);
});

test('k8s-file log lines, Docker framing and timestamps', () => {
  const e = parseLogLine('2026-11-22T05:34:35.815412875+00:00 stderr F boom')!;
  assert.equal(e.stream, 2);
  assert.equal(e.data.toString(), 'boom\n');
  assert.equal(e.ts, '2026-11-22T05:34:35.815412875Z');
  const p = parseLogLine('2026-11-22T05:34:35.8+00:00 stdout P part')!;
  assert.equal(p.data.toString(), 'part');
  assert.equal(parseLogLine('garbage'), undefined);
  assert.equal(parseLogLine('2026-11-22T05:34:35Z stdout F ')!.data.toString(), '\n');
  const f = frame(1, Buffer.from('hi'));
  assert.deepEqual([...f.subarray(0, 8)], [1, 0, 0, 0, 0, 0, 0, 2]);
  assert.equal(formatEntry(e, true, true).toString(), '2026-11-22T05:34:35.815412875Z boom\n');
  assert.equal(parseSize('10m'), 10 * 1024 * 1024);
  assert.equal(parseSize('512k'), 512 * 1024);
  assert.equal(parseSize('x'), undefined);
});

test('logs across rotations with tail, since and stream selection; rotation keeps max-file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-logs-'));
  try {
    const log = join(dir, 'ctr.log');
    const line = (s: number, stream: string, t: string) => `2026-01-01T00:00:${String(s).padStart(2, '0')}.000000000+00:00 ${stream} F ${t}\n`;
    await writeFile(`${log}.1`, line(1, 'stdout', 'a') + line(2, 'stderr', 'b'));
    await writeFile(log, line(3, 'stdout', 'c') + line(4, 'stdout', 'd'));
    const got: string[] = [];
    const opts = { stdout: true, stderr: true, timestamps: false, follow: false };
    await streamLogs(log, 3, opts, (e) => void got.push(e.data.toString().trim()), undefined, new AbortController().signal);
    assert.deepEqual(got, ['a', 'b', 'c', 'd']);
    got.length = 0;
    await streamLogs(log, 3, { ...opts, tail: 2 }, (e) => void got.push(e.data.toString().trim()), undefined, new AbortController().signal);
    assert.deepEqual(got, ['c', 'd']);
    got.length = 0;
    await streamLogs(log, 3, { ...opts, stdout: false }, (e) => void got.push(e.data.toString().trim()), undefined, new AbortController().signal);
    assert.deepEqual(got, ['b']);
    got.length = 0;
    await streamLogs(log, 3, { ...opts, sinceNano: Date.parse('2026-01-01T00:00:03Z') * 1e6 }, (e) => void got.push(e.data.toString().trim()), undefined, new AbortController().signal);
    assert.deepEqual(got, ['c', 'd']);
    await rotateLogs(log, 2);
    assert.equal(await readFile(`${log}.1`, 'utf8'), line(3, 'stdout', 'c') + line(4, 'stdout', 'd'));
    await assert.rejects(readFile(log));
    await assert.rejects(readFile(`${log}.2`));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('events: filters, since/until parsing, history', () => {
  const bus = new EventBus();
  const seen: string[] = [];
  const unsub = bus.subscribe((e) => seen.push(e.Action));
  const e = bus.emit('container', 'die', 'abc123', { name: 'web', image: 'busybox', exitCode: '1', tier: 'front' });
  bus.emit('image', 'pull', 'busybox:latest', { name: 'busybox:latest' });
  unsub();
  bus.emit('container', 'start', 'x');
  assert.deepEqual(seen, ['die', 'pull']);
  assert.equal(e.status, 'die');
  assert.equal(e.from, 'busybox');
  assert.equal(matchEvent(e, new Map([['type', ['container']], ['event', ['die']]])), true);
  assert.equal(matchEvent(e, new Map([['container', ['web']]])), true);
  assert.equal(matchEvent(e, new Map([['container', ['abc']]])), true);
  assert.equal(matchEvent(e, new Map([['label', ['tier=front']]])), true);
  assert.equal(matchEvent(e, new Map([['label', ['tier=back']]])), false);
  assert.equal(matchEvent(e, new Map([['type', ['image']]])), false);
  assert.equal(bus.history(e.timeNano).length, 3);
  assert.equal(parseEventTime('1700000000.5'), 1700000000.5e9);
  assert.equal(parseEventTime('2024-01-01T00:00:00Z'), Date.parse('2024-01-01T00:00:00Z') * 1e6);
  assert.ok(Math.abs(parseEventTime('10m', 1_000_000)! - (1_000_000 - 600_000) * 1e6) < 1);
  assert.equal(parseEventTime(null), undefined);
});

function record(over: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id: 'ab'.repeat(32), name: '/web', created: '2026-01-01T00:00:00Z', image: 'sha256:' + 'c'.repeat(64), imageRef: 'busybox',
    config: { Labels: { tier: 'front' }, Cmd: ['sh'] }, hostConfig: {}, path: 'sh', args: ['-c', 'echo hi'], runtime: 'runc',
    state: emptyState(), restartCount: 0, manuallyStopped: false, logPath: '/x', logMaxSize: 0, logMaxFiles: 1, ...over,
  };
}

test('ps status text and filters; inspect shape', () => {
  assert.equal(humanDuration(500), 'Less than a second');
  assert.equal(humanDuration(1000), '1 second');
  assert.equal(humanDuration(30_000), '30 seconds');
  assert.equal(humanDuration(90_000), 'About a minute');
  assert.equal(humanDuration(3 * 3.6e6), '3 hours');
  const r = record({ state: { ...emptyState(), status: 'exited', exitCode: 3, finishedAt: new Date(Date.now() - 5000).toISOString() } });
  assert.match(statusText(r), /^Exited \(3\) [45] seconds ago$/);
  assert.equal(statusText(record()), 'Created');
  const f = (k: string, v: string) => new Map([[k, [v]]]);
  const none = () => undefined;
  assert.equal(matchesFilters(r, f('status', 'exited'), none), true);
  assert.equal(matchesFilters(r, f('status', 'running'), none), false);
  assert.equal(matchesFilters(r, f('label', 'tier=front'), none), true);
  assert.equal(matchesFilters(r, f('name', 'we'), none), true);
  assert.equal(matchesFilters(r, f('ancestor', 'busybox'), none), true);
  assert.equal(matchesFilters(r, f('exited', '3'), none), true);
  assert.equal(matchesFilters(r, f('id', 'abab'), none), true);
  const j = inspectJson(r, new ContainerPaths('/d', '/e'));
  assert.equal((j.State as { Status: string }).Status, 'exited');
  assert.equal((j.HostConfig as { LogConfig: { Type: string } }).LogConfig.Type, 'json-file');
  assert.equal(j.Name, '/web');
  assert.equal(j.Path, 'sh');
  const noNet = inspectJson(record({ hostConfig: { NetworkMode: 'none' } }), new ContainerPaths('/d', '/e'));
  assert.deepEqual(Object.keys((noNet.NetworkSettings as { Networks: object }).Networks), ['none']);
});

test('store: names, conflicts, ID prefixes, atomic records', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
  try {
    const s = new ContainerStore(new ContainerPaths(dir, dir));
    const a = record({ id: 'a1'.repeat(32), name: '/one' });
    const b = record({ id: 'a2'.repeat(32), name: '/two' });
    await s.save(a);
    await s.save(b);
    assert.equal(s.get('one').id, a.id);
    assert.equal(s.get('/two').id, b.id);
    assert.equal(s.get('a1a1').id, a.id);
    assert.throws(() => s.get('a'), (e: any) => e.kind === 'InvalidArgument', 'ambiguous prefix');
    assert.throws(() => s.get('nope'), (e: any) => e.kind === 'NotFound' && e.message === 'No such container: nope');
    assert.throws(() => s.reserveName('two', 'zz'), (e: any) => e.kind === 'FailedPrecondition' && /is already in use by container/.test(e.message));
    assert.throws(() => s.reserveName('bad name', 'zz'), (e: any) => e.kind === 'InvalidArgument');
    const s2 = new ContainerStore(new ContainerPaths(dir, dir));
    // A record that cannot be read is reported for cleanup, never loaded.
    await writeFile(join(dir, 'containers', 'f'.repeat(64)), '');
    const { broken } = await s2.load();
    assert.equal(s2.all().length, 2);
    assert.deepEqual(broken, ['f'.repeat(64)]);
    await s2.delete(s2.get('one'));
    assert.equal(s2.find('one'), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('store: writes left in flight land in order, and deleteFiles waits for them', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
  try {
    const s = new ContainerStore(new ContainerPaths(dir, dir));
    const a = record({ id: 'b1'.repeat(32), name: '/order' });
    const path = new ContainerPaths(dir, dir).record(a.id);
    // Three states asked for without waiting: the file ends with the last one, whatever the
    // thread pool does with the writes.
    const writes: Promise<void>[] = [];
    for (const status of ['created', 'running', 'exited'] as const) {
      a.state = { ...a.state, status };
      writes.push(s.save(a));
    }
    a.state = { ...a.state, status: 'dead' }; // after the call: not in any write
    await Promise.all(writes);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).state.status, 'exited');
    // A removal while a write is in flight must not see the record come back.
    const late = s.save(a);
    await s.delete(a);
    await late;
    await assert.rejects(readFile(path, 'utf8'), (e: any) => e.code === 'ENOENT');
    await s.flush();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('store: a write waits for `after` (the snapshot on disk), and later writes wait behind it', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-store-'));
  try {
    const s = new ContainerStore(new ContainerPaths(dir, dir));
    const a = record({ id: 'c2'.repeat(32), name: '/after' });
    const path = new ContainerPaths(dir, dir).record(a.id);
    let open!: () => void;
    const durable = new Promise<void>((r) => (open = r));
    a.state = { ...a.state, status: 'created' };
    const first = s.save(a, { after: durable });
    a.state = { ...a.state, status: 'running' };
    const second = s.save(a);
    await new Promise((r) => setTimeout(r, 50));
    await assert.rejects(readFile(path, 'utf8'), (e: any) => e.code === 'ENOENT', 'nothing written before `after`');
    open();
    await Promise.all([first, second]);
    assert.equal(JSON.parse(await readFile(path, 'utf8')).state.status, 'running');
    // A failed `after` does not stop the record.
    const b = record({ id: 'c3'.repeat(32), name: '/after2' });
    await s.save(b, { after: Promise.reject(new Error('fsync failed')) });
    assert.equal(JSON.parse(await readFile(new ContainerPaths(dir, dir).record(b.id), 'utf8')).name, '/after2');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('health probe commands and signals', () => {
  assert.deepEqual(probeCommand(['CMD-SHELL', 'curl -f x']), ['/bin/sh', '-c', 'curl -f x']);
  assert.deepEqual(probeCommand(['CMD', 'true']), ['true']);
  assert.equal(probeCommand(['NONE']), undefined);
  assert.equal(probeCommand(undefined), undefined);
  assert.equal(parseSignal('SIGTERM'), 15);
  assert.equal(parseSignal('kill'), 9);
  assert.equal(parseSignal('10'), 10);
  assert.equal(parseSignal('SIGRTMIN+3'), 37);
  assert.throws(() => parseSignal('SIGNOPE'), (e: any) => e.kind === 'InvalidArgument');
});
