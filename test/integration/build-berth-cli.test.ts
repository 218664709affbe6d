// `berth build` against a real berthd: every flag of issue 6 (-t several, -f, --build-arg,
// --target, --no-cache, --pull, --label, --network, --platform, -q, PATH and `-` with a tar or a
// Dockerfile on stdin), the failing-RUN exit code, and `berth builder prune`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { api, berth, isRoot, tempDir, fileDaemon, waitFor } from '../helpers/fixtures.ts';
import { buildTar } from '../../src/layer/tar-build.ts';

const skip = !isRoot ? 'needs root' : false;
const d = fileDaemon(skip);

const hits = (s: string) => (s.match(/Using cache/g) ?? []).length;

async function inspect(ref: string): Promise<any> {
  const r = await api(d.socket, 'GET', `/images/${encodeURIComponent(ref)}/json`);
  assert.equal(r.status, 200, r.text());
  return r.json();
}

test('berth build: -t (several), -f outside the default name, --build-arg (K=V and K from the environment), --target, --label, PATH', { skip }, async () => {
  await using dir = await tempDir('berth-bcli-');
  await mkdir(join(dir.path, 'docker'));
  await writeFile(join(dir.path, 'docker', 'App.Dockerfile'), [
    'FROM busybox AS base',
    'ARG A',
    'ARG FROM_ENV',
    'COPY data.txt /data.txt',
    'RUN echo "a=$A env=$FROM_ENV" > /args',
    'FROM base AS final',
    'CMD ["cat", "/args"]',
    'FROM final AS broken',
    'RUN exit 1',
  ].join('\n') + '\n');
  await writeFile(join(dir.path, 'data.txt'), 'data\n');
  const args = ['build', '-t', 'bcli:1', '-t', 'bcli:2', '--tag', 'other/bcli:x', '-f', join(dir.path, 'docker', 'App.Dockerfile'), '--build-arg', 'A=1', '--build-arg', 'FROM_ENV', '--target', 'final', '--label', 'team=berth', '--label', 'tier=$HOME', dir.path];
  const { run, BERTH } = await import('../helpers/fixtures.ts');
  const b = await run(BERTH, args, { env: { ...d.env, FROM_ENV: 'from-client-env' }, timeoutMs: 120000 });
  assert.equal(b.code, 0, b.stderr + b.stdout);
  assert.match(b.stdout, /^Sending build context to Docker daemon/);
  assert.match(b.stdout, /Step 1\/9 : FROM busybox AS base\n/);
  assert.match(b.stdout, /Step 8\/9 : LABEL team=berth\n[\s\S]*Step 9\/9 : LABEL tier=\$HOME\n/, 'one LABEL step per --label, in key order, as dockerd');
  assert.doesNotMatch(b.stdout, /exit 1/, '--target stops before the later stage');
  for (const t of ['bcli:1', 'bcli:2', 'other/bcli:x']) assert.match(b.stdout, new RegExp(`Successfully tagged ${t}\\n`));
  const img = await inspect('bcli:1');
  assert.equal((await inspect('other/bcli:x')).Id, img.Id);
  assert.deepEqual(img.Config.Labels, { team: 'berth', tier: '$HOME' }, 'label values are not expanded');
  assert.deepEqual(img.Config.Cmd, ['cat', '/args']);
  const out = await berth(d, ['run', '--rm', '--network', 'none', 'bcli:1'], { timeoutMs: 60000 });
  assert.equal(out.stdout, 'a=1 env=from-client-env\n');
});

test('berth build: cache, --no-cache, -q prints only the ID, --pull with a local image, --platform', { skip }, async () => {
  await using dir = await tempDir('berth-bcli-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo cached > /c\nCOPY f /f\n');
  await writeFile(join(dir.path, 'f'), 'f1');
  const first = await berth(d, ['build', '-t', 'cache:1', dir.path], { timeoutMs: 120000 });
  assert.equal(first.code, 0, first.stderr + first.stdout);
  const again = await berth(d, ['build', '-q', '-t', 'cache:1', dir.path], { timeoutMs: 120000 });
  assert.equal(again.code, 0, again.stderr);
  const id = (await inspect('cache:1')).Id;
  assert.equal(again.stdout, `${id}\n`, '-q prints the image ID and nothing else; a no-op rebuild gives the same ID');
  const verbose = await berth(d, ['build', dir.path], { timeoutMs: 120000 });
  assert.equal(hits(verbose.stdout), 2);
  const nc = await berth(d, ['build', '--no-cache', dir.path], { timeoutMs: 120000 });
  assert.equal(nc.code, 0, nc.stderr);
  assert.equal(hits(nc.stdout), 0);
  await writeFile(join(dir.path, 'f'), 'f2');
  const changed = await berth(d, ['build', dir.path], { timeoutMs: 120000 });
  assert.equal(hits(changed.stdout), 1, 'only the COPY of the changed file (the last step) reruns');
  // --pull: no registry here, so the pull fails and the local image is used (said in the output).
  const pull = await berth(d, ['build', '--pull', dir.path], { timeoutMs: 120000 });
  assert.equal(pull.code, 0, pull.stderr + pull.stdout);
  assert.match(pull.stdout, /Pulling busybox/);
  const arch = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  const plat = await berth(d, ['build', '-q', '--platform', `linux/${arch}`, dir.path], { timeoutMs: 120000 });
  assert.equal(plat.code, 0, plat.stderr);
  const other = arch === 'amd64' ? 'arm64' : 'amd64';
  const foreign = await berth(d, ['build', '--platform', `linux/${other}`, dir.path], { timeoutMs: 120000 });
  assert.notEqual(foreign.code, 0, 'a base image of another architecture is not used for --platform');
});

test('berth build --network: none and host reach RUN steps', { skip }, async () => {
  await using dir = await tempDir('berth-bcli-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN cut -d: -f1 /proc/net/dev | tr -d " " | grep -v "|" | sort\n');
  const none = await berth(d, ['build', '--no-cache', '--network', 'none', dir.path], { timeoutMs: 120000 });
  assert.equal(none.code, 0, none.stderr + none.stdout);
  assert.match(none.stdout, /\nlo\n/);
  assert.doesNotMatch(none.stdout, /\neth0\n/);
  const host = await berth(d, ['build', '--no-cache', '--network', 'host', dir.path], { timeoutMs: 120000 });
  assert.equal(host.code, 0, host.stderr + host.stdout);
  const hostIfs = (await readFile('/proc/net/dev', 'utf8')).split('\n').slice(2).map((l) => l.split(':')[0]!.trim()).filter(Boolean);
  const shown = hostIfs.filter((i) => i !== 'lo' && host.stdout.includes(`\n${i}\n`));
  assert.ok(shown.length > 0, `the host's interfaces (${hostIfs.join(' ')}) are visible:\n${host.stdout}`);
  const def = await berth(d, ['build', '--no-cache', dir.path], { timeoutMs: 120000 });
  assert.match(def.stdout, /\neth0\n/, 'the default bridge gives the RUN an eth0');
});

test('berth build -: a tar context or a bare Dockerfile on stdin', { skip }, async () => {
  const tar = await buildTar([{ name: 'Dockerfile', body: 'FROM busybox\nCOPY x /x\nRUN cat /x\n' }, { name: 'x', body: 'from-stdin-tar\n' }]);
  const t = await berth(d, ['build', '-t', 'stdin:tar', '-'], { input: tar, timeoutMs: 120000 });
  assert.equal(t.code, 0, t.stderr + t.stdout);
  assert.match(t.stdout, /from-stdin-tar\n/);
  const f = await berth(d, ['build', '-t', 'stdin:df', '-'], { input: 'FROM busybox\nRUN echo from-stdin-dockerfile\n', timeoutMs: 120000 });
  assert.equal(f.code, 0, f.stderr + f.stdout);
  assert.match(f.stdout, /from-stdin-dockerfile\n/);
  assert.equal((await api(d.socket, 'GET', '/images/stdin:df/json')).status, 200);
});

test('berth build: a failing RUN exits with its code and the error, tags nothing; a Dockerfile error names file:line', { skip }, async () => {
  await using dir = await tempDir('berth-bcli-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo partial; exit 5\n');
  const r = await berth(d, ['build', '-t', 'bfail:1', '-t', 'bfail:2', dir.path], { timeoutMs: 120000 });
  assert.equal(r.code, 5, r.stderr + r.stdout);
  assert.match(r.stdout, /partial\n/);
  assert.match(r.stderr, /The command '\/bin\/sh -c echo partial; exit 5' returned a non-zero code: 5/);
  for (const t of ['bfail:1', 'bfail:2']) assert.equal((await api(d.socket, 'GET', `/images/${t}/json`)).status, 404);
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN true\nNOPE x\n');
  const p = await berth(d, ['build', dir.path], { timeoutMs: 120000 });
  assert.notEqual(p.code, 0);
  assert.match(p.stderr, /Dockerfile:3: unknown instruction: NOPE/);
});

test('berth builder prune clears the build cache', { skip }, async () => {
  await using dir = await tempDir('berth-bcli-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo prune-me > /p\n');
  assert.equal((await berth(d, ['build', dir.path], { timeoutMs: 120000 })).code, 0);
  assert.equal(hits((await berth(d, ['build', dir.path], { timeoutMs: 120000 })).stdout), 1);
  const p = await berth(d, ['builder', 'prune', '-f'], { timeoutMs: 60000 });
  assert.equal(p.code, 0, p.stderr + p.stdout);
  assert.match(p.stdout, /Total reclaimed space:/);
  assert.equal(hits((await berth(d, ['build', dir.path], { timeoutMs: 120000 })).stdout), 0);
});

test('berth build --network NAME: RUN steps join a user-defined network; an unknown one fails the build', { skip }, async () => {
  const net = await api(d.socket, 'POST', '/networks/create', { Name: 'buildnet' });
  assert.equal(net.status, 201, net.text());
  try {
    const subnet = (await api(d.socket, 'GET', '/networks/buildnet')).json().IPAM.Config[0].Subnet as string;
    const prefix = subnet.split('.').slice(0, 2).join('.') + '.';
    await using dir = await tempDir('berth-bcli-');
    await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN ip -4 addr show eth0 | grep inet\nRUN --network=default ip -4 addr show eth0 | grep -c inet\n');
    const r = await berth(d, ['build', '--no-cache', '--network', 'buildnet', dir.path], { timeoutMs: 120000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}`), `an address in ${subnet}:\n${r.stdout}`);
    const bad = await berth(d, ['build', '--no-cache', '--network', 'nosuchnet', dir.path], { timeoutMs: 120000 });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /nosuchnet/);
    // the build's endpoint is gone once the answer is in (teardown may trail it a little)
    await waitFor(async () => (await api(d.socket, 'DELETE', '/networks/buildnet')).status === 204, 'buildnet to be removable', 15000);
  } finally {
    await api(d.socket, 'DELETE', '/networks/buildnet');
  }
});
