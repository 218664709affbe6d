// The container API's query parameters and edge answers, through raw API requests (the docker
// CLI tests cover the common paths): wait conditions, logs since/until, events, stats, archive
// HEAD, exec inspect/resize, attach with stdin and a TTY, detach keys, resize, ps filters and
// sizes, rm -v, and Docker's status codes and messages for unknown objects and bad bodies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { api, docker, isRoot, waitFor, fileDaemon, type ApiResponse } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';
const d = fileDaemon(skip);

const ok = (r: { code: number; stderr: string }, what = '') => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

async function create(body: Record<string, unknown>, name?: string): Promise<string> {
  const r = await api(d.socket, 'POST', `/containers/create${name ? `?name=${name}` : ''}`, { Image: 'busybox', HostConfig: { NetworkMode: 'none' }, ...body });
  assert.equal(r.status, 201, r.text());
  return r.json().Id as string;
}

async function inspect(id: string, q = ''): Promise<any> {
  const r = await api(d.socket, 'GET', `/containers/${id}/json${q}`);
  assert.equal(r.status, 200, r.text());
  return r.json();
}

/** Docker's multiplexed stream -> frames. */
function demux(b: Buffer): Array<{ stream: number; text: string }> {
  const out: Array<{ stream: number; text: string }> = [];
  for (let i = 0; i + 8 <= b.length;) {
    const len = b.readUInt32BE(i + 4);
    out.push({ stream: b[i]!, text: b.subarray(i + 8, i + 8 + len).toString() });
    i += 8 + len;
  }
  return out;
}

/** A hijacked attach/exec connection: send bytes, read what comes back, see when it closes. */
function hijack(path: string, body?: object): Promise<{ send(s: string | Buffer): void; output(): string; closed: Promise<void>; close(): void }> {
  return new Promise((resolve, reject) => {
    const sock = connect(d.socket);
    let buf = Buffer.alloc(0);
    let headerDone = false;
    const payload = body ? JSON.stringify(body) : '';
    const closed = new Promise<void>((r) => sock.on('close', () => r()));
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      if (!headerDone) {
        const i = buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const head = buf.subarray(0, i).toString();
        buf = buf.subarray(i + 4);
        headerDone = true;
        if (!/^HTTP\/1\.1 101/.test(head)) return reject(new Error(`no upgrade: ${head}\n${buf.toString()}`));
        resolve({ send: (s) => sock.write(s), output: () => buf.toString(), closed, close: () => sock.destroy() });
      }
    });
    sock.write(`POST ${path} HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`);
  });
}

test('wait: not-running at once for a stopped container, next-exit for the next run, removed for the removal', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'sleep 0.3; exit 3'] });
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/start`)).status, 204);
  const w1 = await api(d.socket, 'POST', `/containers/${id}/wait`);
  assert.deepEqual(w1.json(), { StatusCode: 3, Error: null });
  // Exited: not-running answers at once, next-exit only after another run.
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/wait?condition=not-running`)).json().StatusCode, 3);
  let nextDone = false;
  const next = api(d.socket, 'POST', `/containers/${id}/wait?condition=next-exit`).then((r) => ((nextDone = true), r));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(nextDone, false, 'next-exit waits for a run that has not happened');
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/start`)).status, 204);
  assert.equal((await next).json().StatusCode, 3);
  let removedDone = false;
  const removed = api(d.socket, 'POST', `/containers/${id}/wait?condition=removed`).then((r) => ((removedDone = true), r));
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(removedDone, false, 'removed waits for the removal');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}`)).status, 204);
  assert.equal((await removed).json().StatusCode, 3);
  const bad = await api(d.socket, 'POST', `/containers/${id}/wait?condition=sometime`);
  assert.equal(bad.status, 400);
});

test('logs: multiplexed streams, timestamps, since and until select by time, tail', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'echo a; sleep 1.1; echo b >&2; sleep 1.1; echo c'] });
  await api(d.socket, 'POST', `/containers/${id}/start`);
  await api(d.socket, 'POST', `/containers/${id}/wait`);
  const all = await api(d.socket, 'GET', `/containers/${id}/logs?stdout=1&stderr=1&timestamps=1`);
  assert.equal(all.headers['content-type'], 'application/vnd.docker.multiplexed-stream');
  const frames = demux(all.body);
  assert.deepEqual(frames.map((f) => [f.stream, f.text.replace(/^\S+ /, '')]), [[1, 'a\n'], [2, 'b\n'], [1, 'c\n']]);
  const tsB = frames[1]!.text.split(' ')[0]!;
  const secB = Date.parse(tsB) / 1000;
  const since = await api(d.socket, 'GET', `/containers/${id}/logs?stdout=1&stderr=1&since=${(secB - 0.5).toFixed(3)}`);
  assert.deepEqual(demux(since.body).map((f) => f.text), ['b\n', 'c\n']);
  const until = await api(d.socket, 'GET', `/containers/${id}/logs?stdout=1&stderr=1&until=${(secB + 0.5).toFixed(3)}`);
  assert.deepEqual(demux(until.body).map((f) => f.text), ['a\n', 'b\n']);
  const onlyErr = await api(d.socket, 'GET', `/containers/${id}/logs?stderr=1`);
  assert.deepEqual(demux(onlyErr.body).map((f) => f.text), ['b\n']);
  const tail = await api(d.socket, 'GET', `/containers/${id}/logs?stdout=1&stderr=1&tail=1`);
  assert.deepEqual(demux(tail.body).map((f) => f.text), ['c\n']);
  assert.equal((await api(d.socket, 'GET', `/containers/${id}/logs`)).status, 400, 'no stream chosen');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}`)).status, 204);
  // With a TTY there is one stream and no framing.
  const t = await create({ Cmd: ['sh', '-c', 'echo tty-line'], Tty: true });
  await api(d.socket, 'POST', `/containers/${t}/start`);
  await api(d.socket, 'POST', `/containers/${t}/wait`);
  const raw = await api(d.socket, 'GET', `/containers/${t}/logs?stdout=1&stderr=1`);
  assert.equal(raw.headers['content-type'], 'application/vnd.docker.raw-stream');
  assert.equal(raw.text(), 'tty-line\r\n');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${t}`)).status, 204);
  // follow on a TTY container: the lines read from the file, then the live ones, each once.
  const f = await create({ Cmd: ['sh', '-c', 'echo l1; echo l2; sleep 1.5; echo l3; sleep 0.3; echo l4'], Tty: true });
  await api(d.socket, 'POST', `/containers/${f}/start`);
  await new Promise((r) => setTimeout(r, 700));
  const fol = await api(d.socket, 'GET', `/containers/${f}/logs?stdout=1&follow=1`);
  assert.equal(fol.text(), 'l1\r\nl2\r\nl3\r\nl4\r\n');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${f}`)).status, 204);
});

test('events: streamed live with filters, replayed with since/until', { skip, timeout: 60_000 }, async () => {
  const since = Date.now() / 1000;
  const filters = encodeURIComponent(JSON.stringify({ type: ['container'], container: ['evapi'] }));
  const seen: string[] = [];
  const ac = new AbortController();
  const live = new Promise<void>((resolve, reject) => {
    const sock = connect(d.socket);
    ac.signal.addEventListener('abort', () => sock.destroy());
    sock.on('error', reject);
    let buf = '';
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      for (const m of buf.matchAll(/"Action":"([^"]+)"/g)) if (!seen.includes(m[1]!)) seen.push(m[1]!);
      if (seen.includes('destroy')) resolve();
    });
    sock.write(`GET /events?filters=${filters} HTTP/1.1\r\nHost: docker\r\n\r\n`);
  });
  await new Promise((r) => setTimeout(r, 200));
  ok(await docker(d, ['run', '--name', 'evapi', '--network', 'none', 'busybox', 'true']), 'run');
  ok(await docker(d, ['run', '--name', 'other', '--network', 'none', 'busybox', 'true']), 'run other');
  ok(await docker(d, ['rm', 'evapi', 'other']), 'rm');
  await Promise.race([live, new Promise((_, rej) => setTimeout(() => rej(new Error(`live events: ${seen}`)), 10_000))]);
  ac.abort();
  assert.deepEqual(seen.filter((a) => ['create', 'start', 'die', 'destroy'].includes(a)), ['create', 'start', 'die', 'destroy']);
  const until = Date.now() / 1000 + 1;
  const replay = await api(d.socket, 'GET', `/events?since=${since}&until=${until}&filters=${encodeURIComponent(JSON.stringify({ event: ['die'] }))}`);
  const evs = replay.text().trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(evs.map((e) => e.Actor.Attributes.name).sort(), ['evapi', 'other']);
  assert.ok(evs.every((e) => e.Action === 'die' && e.Type === 'container' && e.Actor.Attributes.exitCode === '0'));
  const none = await api(d.socket, 'GET', `/events?since=${since}&until=${since + 0.001}&filters=${encodeURIComponent(JSON.stringify({ event: ['die'] }))}`);
  assert.equal(none.text().trim(), '', 'nothing before since+1ms');
});

test('stats: one-shot and streamed, from the container\'s cgroup', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'while :; do :; done'] }, 'statsapi');
  await api(d.socket, 'POST', `/containers/${id}/start`);
  const one = await api(d.socket, 'GET', `/containers/${id}/stats?stream=0&one-shot=1`);
  assert.equal(one.status, 200);
  const s = one.json();
  assert.equal(s.name, '/statsapi');
  assert.ok(s.memory_stats.usage > 0, 'memory usage');
  assert.equal(s.pids_stats.current, 1);
  assert.ok(s.cpu_stats.online_cpus > 0);
  // Streamed: one JSON document per second; the second has precpu from the first.
  const lines = await new Promise<any[]>((resolve, reject) => {
    const sock = connect(d.socket);
    let buf = '';
    sock.on('error', reject);
    sock.on('data', (c: Buffer) => {
      buf += c.toString();
      const docs = buf.split('\n').filter((l) => l.trim().startsWith('{'));
      if (docs.length >= 2) {
        sock.destroy();
        resolve(docs.slice(0, 2).map((l) => JSON.parse(l)));
      }
    });
    sock.write(`GET /containers/${id}/stats HTTP/1.1\r\nHost: docker\r\n\r\n`);
    setTimeout(() => reject(new Error(`stream: ${buf}`)), 8000);
  });
  assert.ok(lines[1].cpu_stats.cpu_usage.total_usage > lines[1].precpu_stats.cpu_usage.total_usage, 'a busy loop uses CPU between samples');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}?force=1`)).status, 204);
});

test('archive HEAD/GET/PUT: path stat header, 404 for a missing path, 400 for a file as target', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'printf hello > /tmp/f; sleep 60'] });
  await api(d.socket, 'POST', `/containers/${id}/start`);
  await waitFor(async () => (await api(d.socket, 'HEAD', `/containers/${id}/archive?path=/tmp/f`)).status === 200, 'file');
  const head = await api(d.socket, 'HEAD', `/containers/${id}/archive?path=/tmp/f`);
  const st = JSON.parse(Buffer.from(head.headers['x-docker-container-path-stat'] as string, 'base64').toString());
  assert.equal(st.name, 'f');
  assert.equal(st.size, 5);
  assert.equal(st.mode & 0o777, 0o644);
  const dir = JSON.parse(Buffer.from((await api(d.socket, 'HEAD', `/containers/${id}/archive?path=/tmp`)).headers['x-docker-container-path-stat'] as string, 'base64').toString());
  assert.ok(dir.mode & 2 ** 31, 'a directory has Go\'s ModeDir bit');
  assert.equal((await api(d.socket, 'HEAD', `/containers/${id}/archive?path=/nope`)).status, 404);
  const get = await api(d.socket, 'GET', `/containers/${id}/archive?path=/tmp/f`);
  assert.equal(get.status, 200);
  assert.ok(get.body.includes(Buffer.from('hello')));
  assert.equal((await api(d.socket, 'GET', `/containers/${id}/archive`)).status, 400, 'path is required');
  assert.equal((await api(d.socket, 'PUT', `/containers/${id}/archive?path=/tmp/f`, get.body, { 'Content-Type': 'application/x-tar' })).status, 400);
  // A copy freezes a running container meanwhile (race-free path checks) and thaws it after; a
  // container the user paused stays paused.
  assert.equal((await api(d.socket, 'PUT', `/containers/${id}/archive?path=/`, get.body, { 'Content-Type': 'application/x-tar' })).status, 200);
  assert.equal((await inspect(id)).State.Status, 'running');
  const ex = await api(d.socket, 'POST', `/containers/${id}/exec`, { Cmd: ['cat', '/f'], AttachStdout: true });
  const out = await api(d.socket, 'POST', `/exec/${ex.json().Id}/start`, { Detach: false });
  assert.match(out.body.toString(), /hello/, 'copied in and the container still runs processes');
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/pause`)).status, 204);
  assert.equal((await api(d.socket, 'PUT', `/containers/${id}/archive?path=/tmp`, get.body, { 'Content-Type': 'application/x-tar' })).status, 200);
  assert.equal((await api(d.socket, 'GET', `/containers/${id}/archive?path=/tmp/f`)).status, 200);
  assert.equal((await inspect(id)).State.Status, 'paused', 'still paused after the copies');
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/unpause`)).status, 204);
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}?force=1`)).status, 204);
});

test('exec: inspect while running and after, detached start, resize, unknown exec', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sleep', '60'] });
  await api(d.socket, 'POST', `/containers/${id}/start`);
  const ex = await api(d.socket, 'POST', `/containers/${id}/exec`, { Cmd: ['sh', '-c', 'sleep 0.5; exit 7'], AttachStdout: true });
  assert.equal(ex.status, 201);
  const eid = ex.json().Id as string;
  const before = (await api(d.socket, 'GET', `/exec/${eid}/json`)).json();
  assert.equal(before.Running, false);
  assert.equal(before.ExitCode, null);
  assert.equal(before.ContainerID, id);
  const start = await api(d.socket, 'POST', `/exec/${eid}/start`, { Detach: true });
  assert.equal(start.status, 200);
  const during = (await api(d.socket, 'GET', `/exec/${eid}/json`)).json();
  assert.equal(during.Running, true);
  assert.ok(during.Pid > 0);
  assert.ok((await inspect(id)).ExecIDs.includes(eid), 'listed in the container\'s ExecIDs');
  assert.equal((await api(d.socket, 'POST', `/exec/${eid}/resize?h=10&w=20`)).status, 200);
  await waitFor(async () => (await api(d.socket, 'GET', `/exec/${eid}/json`)).json().Running === false, 'exec exit');
  assert.equal((await api(d.socket, 'GET', `/exec/${eid}/json`)).json().ExitCode, 7);
  const again = await api(d.socket, 'POST', `/exec/${eid}/start`, { Detach: true });
  assert.equal(again.status, 409, 'an exec runs once');
  for (const [m, p] of [['GET', '/exec/nope/json'], ['POST', '/exec/nope/resize?h=1&w=1'], ['POST', '/exec/nope/start']] as const) {
    const r = await api(d.socket, m, p, m === 'POST' ? {} : undefined);
    assert.equal(r.status, 404, `${m} ${p}`);
    assert.equal(r.json().message, 'No such exec instance: nope');
  }
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/exec`, { Cmd: [] })).status, 400);
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/exec`, { Cmd: ['true'], DetachKeys: 'ctrl-' })).status, 400);
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}?force=1`)).status, 204);
});

test('attach with stdin and a TTY; detach keys end the attach and leave the container running; resize', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh'], Tty: true, OpenStdin: true, AttachStdin: true, AttachStdout: true, AttachStderr: true }, 'ttyapi');
  await api(d.socket, 'POST', `/containers/${id}/start`);
  const a = await hijack(`/containers/${id}/attach?stream=1&stdin=1&stdout=1&stderr=1&detachKeys=ctrl-x`);
  a.send('echo hi-$((40+2))\n');
  await waitFor(() => a.output().includes('hi-42'), 'shell output through the TTY');
  assert.ok(!a.output().includes('\u0001\u0000\u0000\u0000'), 'raw stream with a TTY (no multiplexing)');
  a.send(Buffer.from([0x18]));
  await Promise.race([a.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('attach not ended by the detach key')), 5000))]);
  assert.equal((await inspect(id)).State.Running, true, 'still running after detach');
  // The default keys (ctrl-p ctrl-q) on a second attach; the sequence never reaches the shell.
  const b = await hijack(`/containers/${id}/attach?stream=1&stdin=1&stdout=1`);
  assert.equal((await api(d.socket, 'POST', `/containers/${id}/resize?h=33&w=111`)).status, 200);
  b.send('stty size\n');
  await waitFor(() => b.output().includes('33 111'), 'resized TTY');
  b.send(Buffer.from([0x10, 0x11]));
  await Promise.race([b.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('default detach keys')), 5000))]);
  assert.equal((await inspect(id)).State.Running, true);
  const ev = await api(d.socket, 'GET', `/events?since=0&until=${Date.now() / 1000 + 1}&filters=${encodeURIComponent(JSON.stringify({ event: ['detach'], container: ['ttyapi'] }))}`);
  assert.equal(ev.text().trim().split('\n').length, 2, 'a detach event per detach');
  // An exec session with a TTY detaches the same way (its DetachKeys) and keeps running.
  const ex = await api(d.socket, 'POST', `/containers/${id}/exec`, { Cmd: ['sh'], Tty: true, AttachStdin: true, AttachStdout: true, DetachKeys: 'ctrl-x' });
  const eid = ex.json().Id as string;
  const e = await hijack(`/exec/${eid}/start`, { Detach: false, Tty: true });
  e.send('echo in-$((6*7))-exec\n');
  await waitFor(() => e.output().includes('in-42-exec'), 'exec shell output');
  e.send(Buffer.from([0x18]));
  await Promise.race([e.closed, new Promise((_, rej) => setTimeout(() => rej(new Error('exec detach')), 5000))]);
  const ej = (await api(d.socket, 'GET', `/exec/${eid}/json`)).json();
  assert.equal(ej.Running, true, 'the exec session keeps running after its client detached');
  const badKeys = await api(d.socket, 'POST', `/containers/${id}/attach?stream=1&stdin=1&detachKeys=nonsense`);
  assert.equal(badKeys.status, 400);
  assert.match(badKeys.json().message, /Invalid detach keys \(nonsense\) provided/);
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}?force=1`)).status, 204);
});

test('ps: id and ancestor filters, sizes with size=1 on list and inspect', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'head -c 100000 /dev/zero > /big'] }, 'sizeapi');
  await api(d.socket, 'POST', `/containers/${id}/start`);
  await api(d.socket, 'POST', `/containers/${id}/wait`);
  const list = async (f: object, q = '') => (await api(d.socket, 'GET', `/containers/json?all=1${q}&filters=${encodeURIComponent(JSON.stringify(f))}`)).json() as any[];
  assert.deepEqual((await list({ id: [id.slice(0, 10)] })).map((c) => c.Id), [id]);
  for (const anc of ['busybox', 'busybox:latest']) assert.ok((await list({ ancestor: [anc], name: ['sizeapi'] })).some((c) => c.Id === id), `ancestor=${anc}`);
  assert.deepEqual(await list({ ancestor: ['no-such-image'], name: ['sizeapi'] }), []);
  const [c] = await list({ id: [id] }, '&size=1');
  assert.ok(c.SizeRw >= 100000 && c.SizeRw < 200000, `SizeRw ${c.SizeRw}`);
  assert.ok(c.SizeRootFs > c.SizeRw, `SizeRootFs ${c.SizeRootFs} counts the image`);
  const [plain] = await list({ id: [id] });
  assert.equal(plain.SizeRw, undefined, 'no sizes unless asked');
  const ins = await inspect(id, '?size=1');
  assert.equal(ins.SizeRw, c.SizeRw);
  assert.equal(ins.SizeRootFs, c.SizeRootFs);
  const ps = await docker(d, ['ps', '-a', '-s', '--filter', 'name=sizeapi', '--format', '{{.Size}}']);
  ok(ps, 'ps -s');
  assert.match(ps.stdout, /^100kB \(virtual [\d.]+[kM]B\)\n$/);
  assert.equal((await api(d.socket, 'DELETE', `/containers/${id}`)).status, 204);
});

test('DELETE ?v=1 removes the anonymous volumes, without v they stay', { skip, timeout: 60_000 }, async () => {
  const names: string[] = [];
  for (const v of [true, false]) {
    const id = await create({ Cmd: ['sh', '-c', 'echo x > /data/f'], Volumes: { '/data': {} } });
    await api(d.socket, 'POST', `/containers/${id}/start`);
    await api(d.socket, 'POST', `/containers/${id}/wait`);
    const m = (await inspect(id)).Mounts.find((x: { Destination: string }) => x.Destination === '/data');
    assert.ok(m?.Name, 'an anonymous volume');
    names.push(m.Name);
    assert.equal((await api(d.socket, 'DELETE', `/containers/${id}${v ? '?v=1' : ''}`)).status, 204);
  }
  const vols = ((await api(d.socket, 'GET', '/volumes')).json().Volumes as Array<{ Name: string }>).map((x) => x.Name);
  assert.equal(vols.includes(names[0]!), false, 'rm -v removed it');
  assert.equal(vols.includes(names[1]!), true, 'rm kept it');
  assert.equal((await api(d.socket, 'DELETE', `/volumes/${names[1]}`)).status, 204);
});

test('unknown containers and malformed bodies get Docker\'s status codes and messages', { skip, timeout: 60_000 }, async () => {
  const calls: Array<[string, string, unknown?]> = [
    ['POST', '/containers/nope/start'], ['POST', '/containers/nope/stop'], ['POST', '/containers/nope/restart'],
    ['POST', '/containers/nope/kill'], ['POST', '/containers/nope/pause'], ['POST', '/containers/nope/unpause'],
    ['POST', '/containers/nope/wait'], ['POST', '/containers/nope/resize?h=1&w=1'], ['POST', '/containers/nope/rename?name=x'],
    ['POST', '/containers/nope/update', {}], ['GET', '/containers/nope/json'], ['GET', '/containers/nope/logs?stdout=1'],
    ['GET', '/containers/nope/top'], ['GET', '/containers/nope/stats?stream=0'], ['GET', '/containers/nope/export'],
    ['GET', '/containers/nope/archive?path=/'], ['HEAD', '/containers/nope/archive?path=/'], ['DELETE', '/containers/nope'],
    ['POST', '/containers/nope/exec', { Cmd: ['true'] }], ['POST', '/containers/nope/attach?stream=1&stdout=1'],
  ];
  for (const [m, p, body] of calls) {
    const r: ApiResponse = await api(d.socket, m, p, body);
    assert.equal(r.status, 404, `${m} ${p}: ${r.status} ${r.text()}`);
    if (m !== 'HEAD') assert.equal(r.json().message, 'No such container: nope', `${m} ${p}`);
  }
  const bad = async (body: Buffer | object, re: RegExp) => {
    const r = await api(d.socket, 'POST', '/containers/create', body, { 'Content-Type': 'application/json' });
    assert.equal(r.status, 400, `${JSON.stringify(body.toString())}: ${r.status} ${r.text()}`);
    assert.match(r.json().message, re);
  };
  await bad(Buffer.from('{not json'), /invalid/i);
  await bad(Buffer.from('[1]'), /config|invalid/i);
  await bad({ Cmd: ['true'] }, /Image/);
  await bad({ Image: 'busybox', HostConfig: { Memory: 1024 } }, /Minimum memory limit allowed is 6MB/);
  await bad({ Image: 'busybox', HostConfig: { CpusetCpus: 'x' } }, /cpuset/i);
  await bad({ Image: 'busybox', HostConfig: { RestartPolicy: { Name: 'sometimes' } } }, /invalid restart policy/);
  await bad({ Image: 'busybox', StopSignal: 'SIGNOPE' }, /Invalid signal: SIGNOPE/);
  await bad({ Image: 'busybox', HostConfig: { Runtime: 'nope' } }, /unknown or invalid runtime name: nope/);
  const noImage = await api(d.socket, 'POST', '/containers/create', { Image: 'no-such-image:1' });
  assert.equal(noImage.status, 404, 'the CLI pulls on 404');
  assert.match(noImage.json().message, /No such image: no-such-image:1/);
  const dup = await create({ Cmd: ['true'] }, 'dupapi');
  const conflict = await api(d.socket, 'POST', '/containers/create?name=dupapi', { Image: 'busybox' });
  assert.equal(conflict.status, 409);
  assert.match(conflict.json().message, /Conflict\. The container name "\/dupapi" is already in use/);
  const running = await create({ Cmd: ['sleep', '60'] });
  await api(d.socket, 'POST', `/containers/${running}/start`);
  assert.equal((await api(d.socket, 'POST', `/containers/${running}/start`)).status, 304, 'already started');
  const rmRunning = await api(d.socket, 'DELETE', `/containers/${running}`);
  assert.equal(rmRunning.status, 409);
  assert.match(rmRunning.json().message, /You cannot remove a running container/);
  assert.equal((await api(d.socket, 'POST', `/containers/${dup}/stop`)).status, 304, 'not running');
  for (const c of [dup, running]) assert.equal((await api(d.socket, 'DELETE', `/containers/${c}?force=1`)).status, 204);
});

test('attach with logs=1 replays past output; prune honours label and until; update changes the restart policy', { skip, timeout: 60_000 }, async () => {
  const id = await create({ Cmd: ['sh', '-c', 'echo past-out; echo past-err >&2'], Labels: { prune: 'yes' } });
  await api(d.socket, 'POST', `/containers/${id}/start`);
  await api(d.socket, 'POST', `/containers/${id}/wait`);
  const att = await api(d.socket, 'POST', `/containers/${id}/attach?logs=1&stream=0&stdout=1&stderr=1`);
  assert.deepEqual(demux(att.body).map((f) => [f.stream, f.text]), [[1, 'past-out\n'], [2, 'past-err\n']]);
  const keep = await create({ Cmd: ['true'], Labels: { prune: 'no' } });
  const upd = await api(d.socket, 'POST', `/containers/${keep}/update`, { RestartPolicy: { Name: 'on-failure', MaximumRetryCount: 3 } });
  assert.equal(upd.status, 200);
  assert.deepEqual((await inspect(keep)).HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
  const past = await api(d.socket, 'POST', `/containers/prune?filters=${encodeURIComponent(JSON.stringify({ until: [String(Math.floor(Date.now() / 1000) - 3600)] }))}`);
  assert.deepEqual(past.json().ContainersDeleted ?? [], [], 'nothing created an hour ago');
  const pr = await api(d.socket, 'POST', `/containers/prune?filters=${encodeURIComponent(JSON.stringify({ label: ['prune=yes'] }))}`);
  assert.equal(pr.status, 200);
  assert.deepEqual(pr.json().ContainersDeleted, [id]);
  assert.equal((await api(d.socket, 'GET', `/containers/${id}/json`)).status, 404);
  assert.equal((await api(d.socket, 'GET', `/containers/${keep}/json`)).status, 200, 'the other label stays');
  assert.equal((await api(d.socket, 'DELETE', `/containers/${keep}`)).status, 204);
});

test('image events: import, tag, untag through GET /events with type=image', { skip, timeout: 60_000 }, async () => {
  ok(await docker(d, ['tag', 'busybox', 'evtag:1']), 'tag');
  ok(await docker(d, ['rmi', 'evtag:1']), 'rmi');
  const ev = await docker(d, ['events', '--since', '0', '--until', String(Math.ceil(Date.now() / 1000) + 1), '--filter', 'type=image', '--format', '{{.Type}} {{.Action}} {{.Actor.Attributes.name}}']);
  ok(ev, 'events');
  const lines = ev.stdout.trim().split('\n');
  assert.ok(lines.some((l) => /^image import sha256:[0-9a-f]{64}$/.test(l)), `import (the fixture's busybox): ${lines}`);
  assert.ok(lines.includes('image tag evtag:1') || lines.some((l) => /^image tag .*evtag:1$/.test(l)), `tag: ${lines}`);
  assert.ok(lines.some((l) => /^image untag .*evtag:1$/.test(l)), `untag: ${lines}`);
  assert.ok(lines.every((l) => l.startsWith('image ')), 'only image events');
});
