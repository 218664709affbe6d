import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile, mkdir, readlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ServerResponse } from 'node:http';
import tar from 'tar-stream';
import { startFakeDaemon, runBerth, sendJson, frame, type Recorded } from './cli-fake-daemon.ts';
import { readAll } from '../../src/cli/api-client.ts';
import { displayablePorts, apiTimestamp, prettyEvent } from '../../src/cli/commands/container.ts';
import { startErrorStatus } from '../../src/cli/commands/container-run.ts';
import { DetachScanner, parseDetachKeys } from '../../src/pkg/detach-keys.ts';
import { runCli } from '../../src/cli/cli.ts';
import { PassThrough } from 'node:stream';

const CID = 'c'.repeat(64);

// Like a daemon: wait's headers come at once, its body only after the container was started
// (and has run for `ms`). A client that waits for the body before starting hangs here.
let started: () => void = () => {};
let startedP = new Promise<void>((r) => (started = r));
function resetStarted(): void {
  startedP = new Promise<void>((r) => (started = r));
}
function waitAfter(res: ServerResponse, status: number, ms = 50): void {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  res.flushHeaders();
  void startedP.then(() => setTimeout(() => res.end(JSON.stringify({ StatusCode: status, Error: null })), ms));
}
function startOk(res: ServerResponse): void {
  res.writeHead(204);
  res.end();
  started();
}

test('run (attached): create, attach, wait, start in docker order; demuxed output; exit code from wait', async () => {
  resetStarted();
  const d = await startFakeDaemon(
    (r, res) => {
      if (r.path === '/containers/create') return sendJson(res, 201, { Id: CID, Warnings: ['low memory'] });
      if (r.path.endsWith('/wait')) return waitAfter(res, 3, 150);
      if (r.path.endsWith('/start')) return startOk(res);
    },
    (r, socket) => {
      socket.write(frame(1, 'out line\n'));
      socket.write(frame(2, 'err line\n'));
      setTimeout(() => socket.end(), 100);
    },
  );
  try {
    const r = await runBerth(['run', '--rm', '--name', 'x', 'img', 'sh', '-c', 'exit 3'], { host: d.host });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out line\n');
    assert.equal(r.stderr, 'WARNING: low memory\nerr line\n');
    assert.deepEqual(d.calls(), [
      'POST /containers/create?name=x',
      `POST /containers/${CID}/attach?stderr=1&stdout=1&stream=1`,
      `POST /containers/${CID}/wait?condition=removed`,
      `POST /containers/${CID}/start`,
    ]);
    const body = JSON.parse(d.requests.find((x) => x.path === '/containers/create')!.body) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
    assert.deepEqual(body.Cmd, ['sh', '-c', 'exit 3']);
    assert.equal(body.HostConfig.AutoRemove, true);
  } finally {
    await d.close();
  }
});

test('run -i: stdin goes to the container and is half-closed at EOF', async () => {
  resetStarted();
  let got = '';
  const d = await startFakeDaemon(
    (r, res) => {
      if (r.path === '/containers/create') return sendJson(res, 201, { Id: CID });
      if (r.path.endsWith('/wait')) return waitAfter(res, 0, 10);
      if (r.path.endsWith('/start')) return startOk(res);
    },
    (r, socket) => {
      socket.on('data', (c: Buffer) => (got += c.toString()));
      // echo back once our side half-closes, like `cat`
      socket.on('end', () => {
        socket.write(frame(1, got.toUpperCase()));
        socket.end();
      });
    },
  );
  try {
    const r = await runBerth(['run', '-i', 'img', 'cat'], { host: d.host, stdin: 'hello\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(got, 'hello\n');
    assert.equal(r.stdout, 'HELLO\n');
    assert.match(d.calls()[1]!, /attach\?stderr=1&stdin=1&stdout=1&stream=1$/);
    const body = JSON.parse(d.requests.find((x) => x.path === '/containers/create')!.body) as Record<string, unknown>;
    assert.equal(body.OpenStdin, true);
    assert.equal(body.StdinOnce, true);
  } finally {
    await d.close();
  }
});

test('run: missing image is pulled (progress on stderr) and create retried', async () => {
  resetStarted();
  let creates = 0;
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/containers/create') {
      creates++;
      if (creates === 1) return sendJson(res, 404, { message: 'No such image: busybox:latest' });
      return sendJson(res, 201, { Id: CID });
    }
    if (r.path === '/images/create') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ status: 'Pulling from library/busybox', id: 'latest' }) + '\r\n' + JSON.stringify({ status: 'Status: Downloaded newer image for busybox:latest' }) + '\r\n');
      return;
    }
    if (r.path.endsWith('/wait')) return waitAfter(res, 0);
    if (r.path.endsWith('/start')) return startOk(res);
  });
  try {
    const r = await runBerth(['run', '-d', 'busybox'], { host: d.host });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${CID}\n`);
    assert.equal(r.stderr, "Unable to find image 'busybox:latest' locally\nlatest: Pulling from library/busybox\nStatus: Downloaded newer image for busybox:latest\n");
    assert.deepEqual(d.calls().slice(0, 3), ['POST /containers/create', 'POST /images/create?fromImage=docker.io%2Flibrary%2Fbusybox&tag=latest', 'POST /containers/create']);
    const never = await runBerth(['run', '-d', '--pull', 'never', 'busybox'], { host: d.host });
    void never;
  } finally {
    await d.close();
  }
});

test('run: create and start failures map to 125 / 126 / 127', async () => {
  let startMsg = '';
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/containers/create') {
      if (r.query.get('name') === 'dup') return sendJson(res, 409, { message: 'Conflict. The container name "/dup" is already in use' });
      return sendJson(res, 201, { Id: CID });
    }
    if (r.path.endsWith('/wait')) return waitAfter(res, 0, 10);
    if (r.path.endsWith('/start')) return sendJson(res, 400, { message: startMsg });
  }, () => {
    // an attach that the daemon never ends: the client must hang up itself when start fails
  });
  try {
    const dup = await runBerth(['run', '-d', '--name', 'dup', 'img'], { host: d.host });
    assert.equal(dup.code, 125);
    assert.equal(dup.stderr, "berth: Error response from daemon: Conflict. The container name \"/dup\" is already in use\n\nRun 'berth run --help' for more information\n");
    startMsg = 'failed to create task: exec: "nope": executable file not found in $PATH';
    assert.equal((await runBerth(['run', '-d', 'img', 'nope'], { host: d.host })).code, 127);
    startMsg = 'exec /etc: permission denied';
    assert.equal((await runBerth(['run', '-d', 'img', '/etc'], { host: d.host })).code, 126);
    startMsg = 'something else';
    assert.equal((await runBerth(['run', '-d', 'img'], { host: d.host })).code, 125);
    startMsg = 'exec: "x": executable file not found in $PATH';
    const attached = await runBerth(['run', 'img', 'x'], { host: d.host });
    assert.equal(attached.code, 127);
    assert.match(attached.stderr, /^berth: Error response from daemon: exec: "x": executable file not found/);
    const conflict = await runBerth(['run', '--rm', '--restart', 'always', 'img'], { host: d.host });
    assert.equal(conflict.code, 125);
    assert.match(conflict.stderr, /conflicting options: cannot specify both --restart and --rm/);
    const tty = await runBerth(['run', '-it', 'img'], { host: d.host });
    assert.equal(tty.code, 125);
    assert.match(tty.stderr, /the input device is not a TTY/);
    assert.equal(startErrorStatus('Error response from daemon: no such file or directory'), 127);
  } finally {
    await d.close();
  }
});

test('exec: dummy inspect, exec create body, hijacked start, exit code from exec inspect', async () => {
  const d = await startFakeDaemon(
    (r, res) => {
      if (r.path === '/containers/web/json') return sendJson(res, 200, { Id: CID, Config: { Tty: false }, State: { Running: true } });
      if (r.path === '/containers/web/exec') return sendJson(res, 201, { Id: 'e1' });
      if (r.path === '/exec/e1/json') return sendJson(res, 200, { ExitCode: 4, Running: false });
      if (r.path === '/exec/e1/start') {
        res.writeHead(200);
        return res.end();
      }
    },
    (r, socket) => {
      socket.write(frame(1, 'a.txt\n'));
      socket.end();
    },
  );
  try {
    const r = await runBerth(['exec', '-e', 'A=1', '-w', '/x', '-u', '1', 'web', 'ls', '-l'], { host: d.host });
    assert.equal(r.code, 4);
    assert.equal(r.stdout, 'a.txt\n');
    assert.deepEqual(d.calls(), ['GET /containers/web/json', 'POST /containers/web/exec', 'POST /exec/e1/start', 'GET /exec/e1/json']);
    assert.deepEqual(JSON.parse(d.requests.find((x) => x.path === '/containers/web/exec')!.body), {
      User: '1', Privileged: false, Tty: false, AttachStdin: false, AttachStderr: true, AttachStdout: true, Detach: false, DetachKeys: '', Env: ['A=1'], WorkingDir: '/x', Cmd: ['ls', '-l'],
    });
    const det = await runBerth(['exec', '-d', 'web', 'sleep', '1'], { host: d.host });
    assert.equal(det.code, 0);
    assert.deepEqual(JSON.parse(d.requests.at(-1)!.body), { Detach: true, Tty: false });
  } finally {
    await d.close();
  }
});

test('logs: inspect for Tty, query flags, stdcopy demux to stdout/stderr', async () => {
  const d = await startFakeDaemon((r, res) => {
    if (r.path.endsWith('/json')) return sendJson(res, 200, { Id: CID, Config: { Tty: false } });
    res.writeHead(200, { 'Content-Type': 'application/vnd.docker.multiplexed-stream' });
    res.write(frame(1, 'one\n'));
    res.end(Buffer.concat([frame(2, 'two\n'), frame(1, 'three\n')]));
  });
  try {
    const r = await runBerth(['logs', '-t', '--tail', '2', '--since', '1700000000', 'web'], { host: d.host });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'one\nthree\n');
    assert.equal(r.stderr, 'two\n');
    assert.equal(d.calls().at(-1), `GET /containers/${CID}/logs?since=1700000000&stderr=1&stdout=1&tail=2&timestamps=1`);
  } finally {
    await d.close();
  }
});

test('lifecycle verbs print names and collect errors', async () => {
  const d = await startFakeDaemon((r, res) => {
    if (r.path.startsWith('/containers/nope')) return sendJson(res, 404, { message: 'No such container: nope' });
    if (r.path.endsWith('/wait')) return sendJson(res, 200, { StatusCode: 7 });
    res.writeHead(204);
    res.end();
  });
  try {
    const stop = await runBerth(['stop', '-t', '3', 'a', 'nope', 'b'], { host: d.host });
    assert.equal(stop.code, 1);
    assert.equal(stop.stdout, 'a\nb\n');
    assert.equal(stop.stderr, 'Error response from daemon: No such container: nope\n');
    assert.equal(d.calls()[0], 'POST /containers/a/stop?t=3');
    await runBerth(['kill', '-s', 'HUP', 'a'], { host: d.host });
    assert.equal(d.calls().at(-1), 'POST /containers/a/kill?signal=HUP');
    await runBerth(['rm', '-fv', 'a'], { host: d.host });
    assert.equal(d.calls().at(-1), 'DELETE /containers/a?force=1&v=1');
    await runBerth(['container', 'restart', 'a'], { host: d.host });
    assert.equal(d.calls().at(-1), 'POST /containers/a/restart');
    assert.equal((await runBerth(['pause', 'a'], { host: d.host })).stdout, 'a\n');
    assert.equal((await runBerth(['wait', 'a'], { host: d.host })).stdout, '7\n');
    await runBerth(['rename', 'a', 'b'], { host: d.host });
    assert.equal(d.calls().at(-1), 'POST /containers/a/rename?name=b');
  } finally {
    await d.close();
  }
});

test('ps: query from flags, docker columns', async () => {
  const now = Math.floor(Date.now() / 1000);
  const d = await startFakeDaemon((r, res) =>
    sendJson(res, 200, [
      { Id: 'd'.repeat(64), Names: ['/web'], Image: 'nginx', Command: 'nginx -g daemon off; sleep', Created: now - 300, Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }], State: 'running', Status: 'Up 5 minutes' },
    ]),
  );
  try {
    const r = await runBerth(['ps', '-a', '-n', '3', '--filter', 'status=running'], { host: d.host });
    assert.equal(
      r.stdout,
      'CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS                  NAMES\n' +
        'dddddddddddd   nginx     "nginx -g daemon off…"   5 minutes ago   Up 5 minutes   0.0.0.0:8080->80/tcp   web\n',
    );
    assert.equal(d.calls()[0], `GET /containers/json?all=1&filters=${encodeURIComponent('{"status":{"running":true}}')}&limit=3`);
    await runBerth(['ps', '-l'], { host: d.host });
    assert.equal(d.calls().at(-1), 'GET /containers/json?limit=1');
    const q = await runBerth(['container', 'ls', '-q', '--no-trunc'], { host: d.host });
    assert.equal(q.stdout, 'd'.repeat(64) + '\n');
    assert.equal(displayablePorts([{ PrivatePort: 80, Type: 'tcp' }, { PrivatePort: 81, Type: 'tcp' }, { IP: '::', PrivatePort: 53, PublicPort: 5353, Type: 'udp' }]), '80-81/tcp, [::]:5353->53/udp');
  } finally {
    await d.close();
  }
});

test('cp: container -> host extracts the archive; host -> container sends a tar', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cli-cp-'));
  let put: Recorded | undefined;
  let putEntries: string[] = [];
  const d = await startFakeDaemon(async (r, res) => {
    if (r.method === 'GET' && r.path === '/containers/web/archive') {
      const p = tar.pack();
      p.entry({ name: 'etc', type: 'directory', mode: 0o755 });
      p.entry({ name: 'etc/hostname', mode: 0o644 }, 'web\n');
      p.entry({ name: 'etc/link', type: 'symlink', linkname: '/etc/hostname' });
      p.entry({ name: '../escape', mode: 0o644 }, 'bad');
      p.finalize();
      const stat = Buffer.from(JSON.stringify({ name: 'etc', size: 4096, mode: 0x80000000 | 0o755, mtime: '', linkTarget: '' })).toString('base64');
      res.writeHead(200, { 'Content-Type': 'application/x-tar', 'X-Docker-Container-Path-Stat': stat });
      p.pipe(res);
      return;
    }
    if (r.method === 'HEAD') {
      const stat = Buffer.from(JSON.stringify({ name: 'tmp', size: 0, mode: 0x80000000 | 0o777, mtime: '', linkTarget: '' })).toString('base64');
      res.writeHead(200, { 'X-Docker-Container-Path-Stat': stat });
      return res.end();
    }
    if (r.method === 'PUT') {
      put = r;
      const ex = tar.extract();
      const names: string[] = [];
      ex.on('entry', (h, s, next) => {
        names.push(`${h.type}:${h.name}`);
        s.resume();
        s.on('end', next);
      });
      const { Readable } = await import('node:stream');
      await new Promise<void>((ok, bad) => {
        ex.on('finish', ok).on('error', bad);
        Readable.from([Buffer.from(r.body, 'latin1')]).pipe(ex);
      });
      putEntries = names;
      res.writeHead(200);
      return res.end();
    }
  });
  try {
    // existing directory: the source keeps its name inside it
    const r = await runBerth(['cp', 'web:/etc', dir], { host: d.host });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(join(dir, 'etc/hostname'), 'utf8'), 'web\n');
    assert.equal(await readlink(join(dir, 'etc/link')), '/etc/hostname');
    await assert.rejects(readFile(join(dir, '..', 'escape')));
    // missing destination: the source is renamed
    const r2 = await runBerth(['cp', 'web:/etc', join(dir, 'copy')], { host: d.host });
    assert.equal(r2.code, 0, r2.stderr);
    assert.equal(await readFile(join(dir, 'copy/hostname'), 'utf8'), 'web\n');

    await mkdir(join(dir, 'src'));
    await writeFile(join(dir, 'src', 'a.txt'), 'A');
    const up = await runBerth(['cp', join(dir, 'src'), 'web:/tmp'], { host: d.host });
    assert.equal(up.code, 0, up.stderr);
    assert.equal(put!.query.get('path'), '/tmp');
    assert.deepEqual(putEntries, ['directory:src', 'file:src/a.txt']);
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('events, port, top, stats --no-stream, container prune', async () => {
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/events') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      // timeNano written as raw text: it does not fit a double
      res.end(JSON.stringify({ Type: 'container', Action: 'start', Actor: { ID: 'abc', Attributes: { name: 'web', image: 'nginx' } }, time: 1700000000 }).replace(/}$/, ',"timeNano":1700000000123456789}') + '\n');
      return;
    }
    if (r.path === '/containers/web/json') return sendJson(res, 200, { NetworkSettings: { Ports: { '80/tcp': [{ HostIp: '0.0.0.0', HostPort: '8080' }], '53/udp': null } } });
    if (r.path === '/containers/web/top') return sendJson(res, 200, { Titles: ['UID', 'PID', 'CMD'], Processes: [['root', '1', 'nginx']] });
    if (r.path === '/containers/web/stats')
      return sendJson(res, 200, {
        id: 'f'.repeat(64), name: '/web', pids_stats: { current: 3 },
        cpu_stats: { cpu_usage: { total_usage: 2_000_000 }, system_cpu_usage: 20_000_000, online_cpus: 2 },
        precpu_stats: { cpu_usage: { total_usage: 1_000_000 }, system_cpu_usage: 10_000_000 },
        memory_stats: { usage: 10 * 1024 * 1024, limit: 100 * 1024 * 1024, stats: { total_inactive_file: 0 } },
        networks: { eth0: { rx_bytes: 1500, tx_bytes: 500 } },
        blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 4096 }, { op: 'Write', value: 0 }] },
      });
    if (r.path === '/containers/prune') return sendJson(res, 200, { ContainersDeleted: ['x1'], SpaceReclaimed: 0 });
  });
  try {
    const ev = await runBerth(['events', '--since', '1700000000', '--filter', 'type=container'], { host: d.host });
    assert.equal(ev.stdout, '2023-11-14T22:13:20.123456789Z container start abc (image=nginx, name=web)\n');
    assert.equal(prettyEvent({ Type: 'image', Action: 'pull', Actor: { ID: 'x' }, time: 1 }), '1970-01-01T00:00:01.000000000Z image pull x\n');
    const evf = await runBerth(['events', '--format', '{{.Action}} {{.Actor.Attributes.name}} {{.TimeNano}}'], { host: d.host });
    assert.equal(evf.stdout, 'start web <no value>\n');
    const evj = await runBerth(['events', '--format', '{{json .timeNano}}'], { host: d.host });
    assert.equal(evj.stdout, '1700000000123456789\n');
    assert.equal((await runBerth(['port', 'web'], { host: d.host })).stdout, '80/tcp -> 0.0.0.0:8080\n');
    assert.equal((await runBerth(['port', 'web', '80'], { host: d.host })).stdout, '0.0.0.0:8080\n');
    const noPort = await runBerth(['port', 'web', '53/udp'], { host: d.host });
    assert.equal(noPort.code, 1);
    assert.equal((await runBerth(['top', 'web'], { host: d.host })).stdout, 'UID                 PID                 CMD\nroot                1                   nginx\n');
    const st = await runBerth(['stats', '--no-stream', 'web'], { host: d.host });
    assert.equal(
      st.stdout,
      'CONTAINER ID   NAME      CPU %     MEM USAGE / LIMIT   MEM %     NET I/O        BLOCK I/O    PIDS\n' +
        'ffffffffffff   web       20.00%    10MiB / 100MiB      10.00%    1.5kB / 500B   4.1kB / 0B   3\n',
    );
    const pr = await runBerth(['container', 'prune', '-f'], { host: d.host });
    assert.equal(pr.stdout, 'Deleted Containers:\nx1\n\nTotal reclaimed space: 0B\n');
    assert.match(apiTimestamp('10m', 1_700_000_600_000), /^1700000000\.000000000$/);
  } finally {
    await d.close();
  }
});

test('detach keys: the escape proxy holds back a partial sequence and detects the full one', () => {
  assert.deepEqual([...parseDetachKeys('ctrl-p,ctrl-q')], [0x10, 0x11]);
  assert.deepEqual([...parseDetachKeys('ctrl-a,x,ctrl-\\')], [1, 0x78, 28]);
  assert.throws(() => parseDetachKeys('ctrl-pp'));
  const p = new DetachScanner(Buffer.from([0x10, 0x11]));
  assert.deepEqual(p.push(Buffer.from('ab\x10')), { data: Buffer.from('ab'), detach: false });
  assert.deepEqual(p.push(Buffer.from('c')), { data: Buffer.from('\x10c'), detach: false });
  assert.deepEqual(p.push(Buffer.from('\x10\x10\x11rest')), { data: Buffer.from('\x10'), detach: true });
});

test('run -it on a terminal: raw mode on and off, resize, detach keys end the client with 0', async () => {
  resetStarted();
  let got = '';
  const d = await startFakeDaemon(
    (r, res) => {
      if (r.path === '/containers/create') return sendJson(res, 201, { Id: CID });
      if (r.path.endsWith('/wait')) return waitAfter(res, 0, 60_000); // never exits during the test
      if (r.path.endsWith('/start')) return startOk(res);
      if (r.path.endsWith('/resize')) return sendJson(res, 200, {});
    },
    (r, socket) => {
      socket.write('prompt$ ');
      socket.on('data', (c: Buffer) => (got += c.toString()));
    },
  );
  try {
    const stdin = new PassThrough() as PassThrough & { isTTY?: boolean; setRawMode?(m: boolean): void };
    const modes: boolean[] = [];
    stdin.isTTY = true;
    stdin.setRawMode = (m: boolean) => void modes.push(m);
    const stdout = new PassThrough() as PassThrough & { isTTY?: boolean; columns?: number; rows?: number };
    Object.assign(stdout, { isTTY: true, columns: 100, rows: 30 });
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const stderr = new PassThrough();
    const running = runCli(['run', '-it', 'img', 'sh'], { stdin, stdout, stderr, env: { BERTH_HOST: d.host, BERTH_CONFIG: '/nonexistent-berth-config' } });
    await new Promise((r) => setTimeout(r, 300));
    stdin.write('ls\r');
    await new Promise((r) => setTimeout(r, 100));
    stdin.write('\x10\x11');
    const code = await running;
    assert.equal(code, 0);
    assert.equal(got, 'ls\r');
    assert.equal(Buffer.concat(chunks).toString(), 'prompt$ ');
    assert.deepEqual(modes, [true, false]);
    const create = JSON.parse(d.requests.find((x) => x.path === '/containers/create')!.body) as { Tty: boolean; HostConfig: { ConsoleSize: number[] } };
    assert.equal(create.Tty, true);
    assert.deepEqual(create.HostConfig.ConsoleSize, [30, 100]);
    assert.ok(d.calls().includes(`POST /containers/${CID}/resize?h=30&w=100`), d.calls().join('\n'));
  } finally {
    await d.close();
  }
});

void readAll;
