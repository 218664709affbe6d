// `docker run` flags the other container tests do not reach, through the real docker CLI:
// --env-file, -l, --cpuset-cpus, --shm-size, --stop-timeout, --security-opt seccomp=FILE,
// --network host, kill -s, --restart always, -t, and HEALTHCHECK from the image.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { docker, isRoot, waitFor, run, fileDaemon, tempDir } from '../helpers/fixtures.ts';

const skip = !isRoot && 'needs root';
const d = fileDaemon(skip);

const ok = (r: { code: number; stderr: string }, what = '') => assert.equal(r.code, 0, `${what}: ${r.stderr}`);
const inspect = async (name: string) => JSON.parse((await docker(d, ['inspect', name])).stdout)[0];

test('--env-file, -l, --cpuset-cpus, --shm-size, --stop-timeout', { skip, timeout: 60_000 }, async () => {
  await using dir = await tempDir();
  const envFile = join(dir.path, 'env');
  await writeFile(envFile, '# comment\nA=1\nB=two words\n');
  const r = await docker(d, ['run', '-d', '--name', 'fl', '--network', 'none', '--env-file', envFile, '-l', 'team=x', '--cpuset-cpus', '0', '--shm-size', '8m', '--stop-timeout', '1', 'busybox', 'sh', '-c', 'trap "" TERM; echo "$A|$B"; df -k /dev/shm | tail -1; while :; do sleep 0.1; done']);
  ok(r, 'run');
  const id = r.stdout.trim();
  await waitFor(async () => (await docker(d, ['logs', 'fl'])).stdout.includes('|'), 'output');
  const out = (await docker(d, ['logs', 'fl'])).stdout.split('\n');
  assert.equal(out[0], '1|two words');
  assert.match(out[1]!, /^shm\s+8192\s/, '--shm-size sizes /dev/shm');
  const i = await inspect('fl');
  assert.equal(i.Config.Labels.team, 'x');
  assert.equal(i.Config.StopTimeout, 1);
  const cg = `berth-test-${createHash('sha256').update(d.dataRoot).digest('hex').slice(0, 12)}`;
  assert.equal((await readFile(`/sys/fs/cgroup/cpuset/${cg}/${id}/cpuset.cpus`, 'utf8')).trim(), '0');
  // TERM is ignored: the stop escalates to KILL after --stop-timeout (1 s), not the default 10 s.
  const t0 = Date.now();
  ok(await docker(d, ['stop', 'fl']), 'stop');
  assert.ok(Date.now() - t0 < 8000, `stop took ${Date.now() - t0} ms`);
  assert.equal((await inspect('fl')).State.ExitCode, 137);
  const bad = await docker(d, ['run', '--rm', '--cpuset-cpus', 'x', 'busybox', 'true']);
  assert.equal(bad.code, 125);
  assert.match(bad.stderr, /Invalid value x for cpuset cpus/);
  ok(await docker(d, ['rm', 'fl']), 'rm');
});

test('--security-opt seccomp=FILE applies a Docker-format profile', { skip, timeout: 60_000 }, async () => {
  await using dir = await tempDir();
  const profile = join(dir.path, 'deny-mkdir.json');
  // Everything allowed except mkdir/mkdirat, which fail with EPERM.
  await writeFile(profile, JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }] }));
  const r = await docker(d, ['run', '--rm', '--network', 'none', '--security-opt', `seccomp=${profile}`, 'busybox', 'sh', '-c', 'mkdir /tmp/x 2>&1; grep Seccomp: /proc/self/status']);
  assert.match(r.stdout, /Operation not permitted/);
  assert.match(r.stdout, /Seccomp:\s+2/);
  const dflt = await docker(d, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'mkdir /tmp/x && echo made']);
  assert.equal(dflt.stdout, 'made\n');
});

test('--network host shares the host\'s network and hostname; none has only lo', { skip, timeout: 60_000 }, async () => {
  // The host's interfaces before and after: tests running alongside add and remove veths.
  const hostIfs = async () => (await run('ls', ['/sys/class/net'])).stdout.trim().split('\n');
  const before = await hostIfs();
  const host = await docker(d, ['run', '--rm', '--network', 'host', 'busybox', 'sh', '-c', 'hostname; ls /sys/class/net']);
  ok(host, 'host');
  const after = await hostIfs();
  const [hn, ...ifs] = host.stdout.trim().split('\n');
  assert.equal(hn, hostname());
  const stable = before.filter((i) => after.includes(i));
  assert.ok(stable.length > 1, `host interfaces: ${stable}`);
  assert.deepEqual(stable.filter((i) => !ifs.includes(i)), [], 'every interface the host had throughout is in the container');
  assert.deepEqual(ifs.filter((i) => !before.includes(i) && !after.includes(i)), [], 'and nothing the host never had');
  const none = await docker(d, ['run', '--rm', '--network', 'none', 'busybox', 'ls', '/sys/class/net']);
  assert.equal(none.stdout.trim(), 'lo');
});

test('kill -s delivers the signal and keeps the container running; --restart always restarts after an exit', { skip, timeout: 60_000 }, async () => {
  ok(await docker(d, ['run', '-d', '--name', 'ks', '--network', 'none', 'busybox', 'sh', '-c', 'trap "echo got-hup" HUP; while :; do sleep 0.1; done']), 'run');
  await new Promise((r) => setTimeout(r, 300));
  ok(await docker(d, ['kill', '-s', 'HUP', 'ks']), 'kill -s');
  await waitFor(async () => (await docker(d, ['logs', 'ks'])).stdout.includes('got-hup'), 'trap ran');
  assert.equal((await inspect('ks')).State.Running, true);
  const bad = await docker(d, ['kill', '-s', 'NOPE', 'ks']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /Invalid signal: NOPE/);
  // stop -s: the given signal instead of the stop signal (the trap exits on USR1).
  ok(await docker(d, ['run', '-d', '--name', 'ss', '--network', 'none', 'busybox', 'sh', '-c', 'trap "exit 9" USR1; trap "" TERM; while :; do sleep 0.1; done']), 'run ss');
  await new Promise((r) => setTimeout(r, 300));
  ok(await docker(d, ['stop', '-s', 'USR1', 'ss']), 'stop -s');
  assert.equal((await inspect('ss')).State.ExitCode, 9);
  ok(await docker(d, ['rm', '-f', 'ks', 'ss']), 'rm');
  ok(await docker(d, ['run', '-d', '--name', 'alw', '--network', 'none', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.3; exit 0']), 'run always');
  await waitFor(async () => (await inspect('alw')).RestartCount >= 2, 'restarted twice', 20_000);
  ok(await docker(d, ['rm', '-f', 'alw']), 'rm');
});

test('run -t gives the container a TTY; HEALTHCHECK from the image sets State.Health', { skip, timeout: 120_000 }, async () => {
  const tty = await run('script', ['-qec', 'docker run --rm -t --network none busybox sh -c "tty; echo t-ok"', '/dev/null'], { env: { ...d.env, DOCKER_CONFIG: join(d.dataRoot, '..', 'docker-config') }, timeoutMs: 20_000 });
  assert.match(tty.stdout, /\/dev\/(pts\/\d+|console)/);
  assert.match(tty.stdout, /t-ok/);
  await using ctx = await tempDir();
  await writeFile(join(ctx.path, 'Dockerfile'), 'FROM busybox\nHEALTHCHECK --interval=200ms --retries=2 CMD test -f /tmp/ok\n');
  const b = await run('docker', ['build', '-q', '-t', 'hcimage', ctx.path], { env: { ...d.env, DOCKER_BUILDKIT: '0', DOCKER_CONFIG: join(d.dataRoot, '..', 'docker-config') }, timeoutMs: 60_000 });
  ok(b, 'build');
  ok(await docker(d, ['run', '-d', '--name', 'hci', '--network', 'none', 'hcimage', 'sh', '-c', 'touch /tmp/ok; sleep 60']), 'run');
  assert.deepEqual((await inspect('hci')).Config.Healthcheck.Test, ['CMD-SHELL', 'test -f /tmp/ok']);
  await waitFor(async () => (await inspect('hci')).State.Health?.Status === 'healthy', 'healthy', 20_000);
  ok(await docker(d, ['run', '-d', '--name', 'hcn', '--network', 'none', '--no-healthcheck', 'hcimage', 'sleep', '60']), 'run --no-healthcheck');
  await new Promise((r) => setTimeout(r, 600));
  assert.equal((await inspect('hcn')).State.Health, undefined, '--no-healthcheck disables the image\'s');
  ok(await docker(d, ['rm', '-f', 'hci', 'hcn']), 'rm');
});

test('masked and read-only /proc and /sys paths as Docker sets them (those this kernel has)', { skip, timeout: 60_000 }, async () => {
  const { MASKED_PATHS, READONLY_PATHS } = await import('../../src/runtime/spec.ts');
  const { existsSync, statSync } = await import('node:fs');
  const ro = ['/sys', ...READONLY_PATHS.filter((p) => existsSync(p))];
  const maskedFiles = MASKED_PATHS.filter((p) => existsSync(p) && statSync(p).isFile());
  const maskedDirs = MASKED_PATHS.filter((p) => existsSync(p) && statSync(p).isDirectory());
  assert.ok(ro.length >= 4 && maskedFiles.length + maskedDirs.length >= 2, 'this kernel has enough of them to test');
  const script = `cat /proc/mounts; echo ==; for f in ${maskedFiles.join(' ')}; do echo "$f $(cat $f 2>/dev/null | wc -c)"; done; for d in ${maskedDirs.join(' ')}; do echo "$d $(ls -A $d 2>/dev/null | wc -l)"; done`;
  const r = await docker(d, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', script]);
  ok(r, 'run');
  const [mounts, masked] = r.stdout.split('==\n') as [string, string];
  const opts = (p: string) => mounts.split('\n').filter((l) => l.split(' ')[1] === p).map((l) => l.split(' ')[3] ?? '').pop() ?? '';
  for (const p of ro) assert.match(opts(p), /^ro(,|$)/, `${p} read-only in the container`);
  for (const line of masked.trim().split('\n').filter(Boolean)) assert.match(line, / 0$/, `${line}: masked (empty)`);
  assert.equal(masked.trim().split('\n').filter(Boolean).length, maskedFiles.length + maskedDirs.length);
});
