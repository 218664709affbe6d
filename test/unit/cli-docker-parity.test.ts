// Parity with the real docker CLI (28.x, client only, at /usr/local/bin/docker when installed):
// both clients run against the same recording fake daemon and must send the same requests and
// print the same tables. Skipped when the docker binary is absent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startFakeDaemon, runBerth, sendJson, type FakeDaemon, type Recorded } from './cli-fake-daemon.ts';

const DOCKER = '/usr/local/bin/docker';
const skip = existsSync(DOCKER) ? false : 'docker CLI not installed';
const NOW = Math.floor(Date.now() / 1000);

function runDocker(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(DOCKER, args, { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/nonexistent', DOCKER_CONFIG: '/nonexistent-docker-config', ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

const CONTAINER_ID = 'c'.repeat(64);

function handler(r: Recorded, res: import('node:http').ServerResponse): void {
  if (r.path === '/containers/create') return sendJson(res, 201, { Id: CONTAINER_ID, Warnings: [] });
  if (r.path.endsWith('/wait')) {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.flushHeaders();
    setTimeout(() => res.end(JSON.stringify({ StatusCode: 0 })), 50);
    return;
  }
  if (r.path.endsWith('/start')) {
    res.writeHead(204);
    res.end();
    return;
  }
  if (r.path === '/images/json')
    return sendJson(res, 200, [
      { Id: 'sha256:' + 'ab'.repeat(32), RepoTags: ['busybox:latest', '127.0.0.1:5000/team/app:v1'], RepoDigests: ['busybox@sha256:' + 'cd'.repeat(32)], Created: NOW - 7200, Size: 4261234, SharedSize: -1, Containers: -1 },
      { Id: 'sha256:' + 'ef'.repeat(32), RepoTags: null, RepoDigests: null, Created: NOW - 40 * 86400, Size: 123456789, SharedSize: -1, Containers: -1 },
    ]);
  if (r.path === '/containers/json')
    return sendJson(res, 200, [
      {
        Id: 'd'.repeat(64), Names: ['/web'], Image: 'nginx:latest', ImageID: 'sha256:' + '1'.repeat(64), Command: 'nginx -g daemon off; and a long tail', Created: NOW - 300,
        Ports: [{ IP: '0.0.0.0', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { IP: '::', PrivatePort: 80, PublicPort: 8080, Type: 'tcp' }, { PrivatePort: 443, Type: 'tcp' }, { PrivatePort: 444, Type: 'tcp' }],
        Labels: { a: 'b' }, State: 'running', Status: 'Up 5 minutes', SizeRw: 12, SizeRootFs: 4261234, Mounts: [], NetworkSettings: { Networks: { bridge: {} } },
      },
      { Id: 'e'.repeat(64), Names: ['/db', '/web/db'], Image: 'sha256:' + '2'.repeat(64), ImageID: 'sha256:' + '2'.repeat(64), Command: 'sh', Created: NOW - 90000, Ports: [], Labels: {}, State: 'exited', Status: 'Exited (0) 2 hours ago', Mounts: [], NetworkSettings: { Networks: {} } },
    ]);
  if (r.path.endsWith('/history'))
    return sendJson(res, 200, [
      { Id: 'sha256:' + 'ab'.repeat(32), Created: NOW - 7200, CreatedBy: '/bin/sh -c #(nop)  CMD ["sh"]', Tags: ['busybox:latest'], Size: 0, Comment: '' },
      { Id: '<missing>', Created: NOW - 7300, CreatedBy: '/bin/sh -c #(nop) ADD file:6a3bcd8ac2d1df8e8d1bdd1b8f1 in /\t', Tags: null, Size: 4261234, Comment: 'imported' },
    ]);
  if (r.path === '/networks/create') return sendJson(res, 201, { Id: 'n'.repeat(64), Warning: '' });
  if (r.path === '/networks' && r.method === 'GET')
    return sendJson(res, 200, [
      { Id: '9'.repeat(64), Name: 'net10', Driver: 'bridge', Scope: 'local', EnableIPv6: false, Internal: false, Labels: { a: 'b' }, Created: '2024-01-02T03:04:05Z' },
      { Id: '8'.repeat(64), Name: 'net2', Driver: 'bridge', Scope: 'local', EnableIPv6: true, Internal: true, Labels: {}, Created: '2024-01-02T03:04:05Z' },
      { Id: '7'.repeat(64), Name: 'host', Driver: 'host', Scope: 'local', Labels: {}, Created: '2024-01-02T03:04:05Z' },
    ]);
  if (r.path === '/volumes/create') return sendJson(res, 201, { Name: 'v'.repeat(64), Driver: 'local' });
  if (r.path === '/volumes' && r.method === 'GET')
    return sendJson(res, 200, { Volumes: [{ Name: 'data10', Driver: 'local', Mountpoint: '/var/lib/berth/volumes/data10/_data', Scope: 'local', Labels: { x: 'y' } }, { Name: 'data2', Driver: 'local', Mountpoint: '/m', Scope: 'local', Labels: null }], Warnings: [] });
  sendJson(res, 200, {});
}

async function withDaemon(fn: (d: FakeDaemon) => Promise<void>): Promise<void> {
  const d = await startFakeDaemon(handler);
  try {
    await fn(d);
  } finally {
    await d.close();
  }
}

function createBody(d: FakeDaemon, from: number): { url: string; body: Record<string, unknown> } {
  const r = d.requests.slice(from).find((x) => x.path === '/containers/create');
  assert.ok(r, 'a create request was sent');
  const body = JSON.parse(r.body) as Record<string, unknown> & { HostConfig: Record<string, unknown> };
  // Go map iteration makes docker's Binds order random.
  if (Array.isArray(body.HostConfig.Binds)) body.HostConfig.Binds = [...body.HostConfig.Binds].sort();
  // docker 28 sometimes reorders Env (a Go map somewhere on its path): compare it as a multiset.
  if (Array.isArray(body.Env)) body.Env = [...body.Env].sort();
  return { url: r.url, body };
}

const CREATE_CASES: string[][] = [
  ['img'],
  ['-d', '-e', 'A=1', '-p', '8080:80', '--name', 'x', 'img', 'cmd'],
  ['-it', '--rm', 'img', 'sh', '-c', 'echo hi', '-e', 'X'],
  ['-i', '--entrypoint=', '--network', 'mynet', '--network-alias', 'z', '--ip', '10.0.0.2', '--link', 'a:b', '--expose', '3000-3001', '--restart', 'on-failure:3', '-e', 'X=', '--sysctl', 'net.a=1', '--mount', 'type=volume,dst=/vv', '--cap-add', 'sys_admin', '--security-opt', 'systempaths=unconfined', 'img'],
  ['-a', 'stdin', '-a', 'stdout', '-t', 'img'],
  ['-e', 'A=1', '-e', 'Y', '--label-file', 'ENVFILE', '--expose', '53/udp', 'img'],
  ['-p', '8080:80', '-p', '8081:80', '-p', '[::1]:53:53/udp', '-p', '127.0.0.1::90', '-p', '9000-9001:90-91', '-p', '70', '-P', 'img'],
  [
    '--env-file', 'ENVFILE', '-e', 'Y', '-e', 'A=1', '-w', '/w', '-u', '1000:1000', '--entrypoint', '/bin/sh', '-l', 'a=b', '-l', 'c', '--hostname', 'h', '--memory', '512m', '--memory-swap', '-1',
    '--memory-reservation', '100m', '--cpus', '1.5', '--cpu-shares', '512', '--cpuset-cpus', '0-1', '--pids-limit', '100', '--ulimit', 'nofile=1024:2048', '--ulimit', 'nproc=10', '--read-only',
    '--cap-add', 'NET_ADMIN', '--cap-drop', 'ALL', '--privileged', '--security-opt', 'no-new-privileges', '--security-opt', 'seccomp=unconfined', '--init', '--stop-signal', 'SIGINT', '--stop-timeout', '5',
    '--tmpfs', '/run:rw,size=64m', '--tmpfs', '/t', '--shm-size', '128m', '--device', '/dev/fuse', '--device', '/dev/sda:/dev/xvda:r', '--health-cmd', 'true', '--health-interval', '10s',
    '--health-timeout', '1s', '--health-retries', '3', '--health-start-period', '1m', '--log-opt', 'max-size=1m', '--log-driver', 'json-file', '--runtime', 'runc', '-v', '/a:/b:ro', '-v', 'vol:/data',
    '-v', '/anon', '--mount', 'type=bind,src=/x,dst=/y,readonly', '--mount', 'type=tmpfs,dst=/tm,tmpfs-size=1000', '--mount', 'type=volume,source=v2,target=/v2,volume-nocopy', '--add-host', 'h1:1.2.3.4',
    '--dns', '8.8.8.8', '--dns-search', 'example.com', '--dns-option', 'ndots:2', '--group-add', 'audio', '--platform', 'linux/amd64', '--restart', 'unless-stopped', '--name', 'full', '--no-healthcheck=false',
    '--oom-score-adj', '10', '--ipc', 'host', '--pid', 'host', '--uts', 'host', '--volumes-from', 'other', '--workdir', '/srv', 'img', 'sh', '-c', 'echo hi',
  ],
  ['--no-healthcheck', '--network', 'host', '--init=false', '--cgroupns', 'private', '--cidfile', '', 'img'],
];

test('run/create send the same create body as docker', { skip }, async () => {
  await withDaemon(async (d) => {
    const envFile = join(d.dir, 'env.list');
    await writeFile(envFile, 'X=1\n# comment\nY\nUNSET_VAR\n\nZ=a b\n');
    const env = { DOCKER_HOST: d.host, Y: 'yy' };
    for (const raw of CREATE_CASES) {
      const args = raw.map((a) => (a === 'ENVFILE' ? envFile : a));
      const verb = args.includes('-d') || args.includes('-it') ? ['run', '-d'] : ['create'];
      const a0 = d.requests.length;
      const dr = await runDocker([...verb, ...args.filter((a) => a !== '-d')], env);
      assert.equal(dr.code, 0, `docker ${args.join(' ')}: ${dr.stderr}`);
      const docker = createBody(d, a0);
      const b0 = d.requests.length;
      const br = await runBerth([...verb, ...args.filter((a) => a !== '-d')], { env });
      assert.equal(br.code, 0, `berth ${args.join(' ')}: ${br.stderr}`);
      const berth = createBody(d, b0);
      assert.equal(berth.url, docker.url, args.join(' '));
      assert.deepEqual(berth.body, docker.body, args.join(' '));
      // Same key order too (Go struct order), not just the same content.
      assert.deepEqual(Object.keys(berth.body), Object.keys(docker.body));
      assert.deepEqual(Object.keys(berth.body.HostConfig as object), Object.keys(docker.body.HostConfig as object));
    }
  });
});

test('run -d makes the same calls in the same order as docker', { skip }, async () => {
  await withDaemon(async (d) => {
    const env = { DOCKER_HOST: d.host };
    const a0 = d.requests.length;
    const dr = await runDocker(['run', '-d', '--rm', 'img', 'true'], env);
    assert.equal(dr.code, 0, dr.stderr);
    const docker = d.requests.slice(a0).map((r) => `${r.method} ${r.url}`);
    const b0 = d.requests.length;
    const br = await runBerth(['run', '-d', '--rm', 'img', 'true'], { env });
    assert.equal(br.code, 0, br.stderr);
    assert.equal(br.stdout, dr.stdout);
    assert.deepEqual(d.requests.slice(b0).map((r) => `${r.method} ${r.url}`), docker);
  });
});

test('images, ps and history print the same tables as docker', { skip }, async () => {
  await withDaemon(async (d) => {
    const env = { DOCKER_HOST: d.host };
    const cases = [
      ['images'],
      ['images', '--digests'],
      ['images', '--no-trunc'],
      ['images', '-q'],
      ['images', '--format', 'table {{.Repository}}\t{{.Tag}}\t{{.Size}}'],
      ['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}'],
      ['ps', '-a'],
      ['ps', '-a', '-s'],
      ['ps', '-a', '--no-trunc'],
      ['ps', '-aq'],
      ['ps', '-a', '--format', 'table {{.Names}}\t{{.Ports}}\t{{.Label "a"}}\t{{.Networks}}'],
      ['history', 'busybox'],
      ['history', '--no-trunc', 'busybox'],
      ['history', '-q', 'busybox'],
    ];
    for (const c of cases) {
      const dr = await runDocker(c, env);
      const br = await runBerth(c, { env });
      assert.equal(dr.code, 0, dr.stderr);
      assert.equal(br.code, 0, br.stderr);
      // docker orders one image's tags by Go map iteration (random): compare image lines as a set.
      const norm = (out: string) => {
        const lines = out.split('\n');
        return c[0] === 'images' ? lines.sort() : lines;
      };
      assert.deepEqual(norm(br.stdout), norm(dr.stdout), `berth ${c.join(' ')}`);
    }
  });
});

test('network and volume verbs: same requests and tables as docker', { skip }, async () => {
  await withDaemon(async (d) => {
    const env = { DOCKER_HOST: d.host };
    const cases = [
      ['network', 'create', '--driver', 'bridge', '--subnet', '10.9.0.0/24', '--gateway', '10.9.0.1', '--label', 'a=b', '--internal', '-o', 'com.x=y', 'net1'],
      ['network', 'create', 'n2'],
      ['network', 'create', '--ipv6', '--attachable', '--ip-range', '10.1.0.0/25', '--subnet', '10.1.0.0/24', '--aux-address', 'a=10.1.0.9', 'n3'],
      ['network', 'connect', '--alias', 'web', '--ip', '10.9.0.5', 'net1', 'c1'],
      ['network', 'connect', 'net1', 'c1'],
      ['network', 'disconnect', '-f', 'net1', 'c1'],
      ['network', 'ls'],
      ['network', 'ls', '--no-trunc', '--filter', 'driver=bridge'],
      ['network', 'ls', '-q'],
      ['network', 'ls', '--format', 'table {{.Name}}\t{{.IPv6}}\t{{.Internal}}\t{{.Labels}}'],
      ['volume', 'create', '--driver', 'local', '--label', 'a=b', '-o', 'type=tmpfs', 'v1'],
      ['volume', 'create'],
      ['volume', 'ls'],
      ['volume', 'ls', '-q', '--filter', 'dangling=true'],
      ['volume', 'ls', '--format', '{{.Name}} {{.Mountpoint}} {{.Labels}}'],
      ['volume', 'prune', '-af'],
    ];
    for (const c of cases) {
      const a0 = d.requests.length;
      const dr = await runDocker(c, env);
      const docker = d.requests.slice(a0).filter((r) => r.path !== '/_ping').map((r) => `${r.method} ${r.url} ${r.body.trim()}`);
      const b0 = d.requests.length;
      const br = await runBerth(c, { env });
      const berth = d.requests.slice(b0).filter((r) => r.path !== '/_ping').map((r) => `${r.method} ${r.url} ${r.body.trim()}`);
      assert.equal(br.code, dr.code, `berth ${c.join(' ')}: ${br.stderr} / docker: ${dr.stderr}`);
      assert.deepEqual(berth, docker, `berth ${c.join(' ')}`);
      assert.equal(br.stdout, dr.stdout, `berth ${c.join(' ')}`);
    }
  });
});
