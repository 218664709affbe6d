// `DOCKER_BUILDKIT=0 docker build` (the real docker CLI 28, legacy builder protocol),
// docker-compose 1.29 `build:` and python3-docker `images.build` through berthd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { api, docker, isRoot, run, tempDir, fileDaemon } from '../helpers/fixtures.ts';

const skip = !isRoot ? 'needs root' : false;
const d = fileDaemon(skip);

const legacy = (args: string[], input?: string | Buffer) =>
  docker({ ...d, env: { ...d.env, DOCKER_BUILDKIT: '0' } }, args, { timeoutMs: 120000, ...(input !== undefined ? { input } : {}) });

test('docker build (legacy builder): progress, tags, build args, -f, --target, cache, --iidfile', { skip }, async () => {
  await using dir = await tempDir('berth-cli-build-');
  await mkdir(join(dir.path, 'sub'));
  await writeFile(join(dir.path, 'sub', 'Containerfile'), 'FROM busybox AS base\nARG MSG=default\nRUN echo "msg=$MSG" > /msg\nCOPY data.txt /data.txt\nFROM base AS final\nCMD ["cat", "/msg"]\n');
  await writeFile(join(dir.path, 'data.txt'), 'data\n');
  await writeFile(join(dir.path, '.dockerignore'), 'ignored.txt\n');
  await writeFile(join(dir.path, 'ignored.txt'), 'x');
  const iid = join(dir.path, 'iid');
  const r = await legacy(['build', '-t', 'clibuild:1', '-f', join(dir.path, 'sub', 'Containerfile'), '--build-arg', 'MSG=hello', '--iidfile', iid, dir.path]);
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /Step 1\/6 : FROM busybox AS base/);
  assert.match(r.stdout, /Successfully built [0-9a-f]{12}/);
  assert.match(r.stdout, /Successfully tagged clibuild:1/);
  const img = (await api(d.socket, 'GET', '/images/clibuild:1/json')).json();
  assert.deepEqual(img.Config.Cmd, ['cat', '/msg']);
  const { readFile } = await import('node:fs/promises');
  assert.equal((await readFile(iid, 'utf8')).trim(), img.Id);
  // a no-op rebuild uses the cache and gives the same ID
  const again = await legacy(['build', '-q', '-t', 'clibuild:1', '-f', join(dir.path, 'sub', 'Containerfile'), '--build-arg', 'MSG=hello', dir.path]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(again.stdout.trim(), img.Id);
  // --target
  const t = await legacy(['build', '-t', 'clibuild:base', '--target', 'base', '-f', join(dir.path, 'sub', 'Containerfile'), dir.path]);
  assert.equal(t.code, 0, t.stderr);
  assert.doesNotMatch(t.stdout, /CMD/);
});

test('docker build: a failing RUN exits with its code and the error; Dockerfile from stdin, alone and with -f - PATH', { skip }, async () => {
  await using dir = await tempDir('berth-cli-build-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo out; exit 7\n');
  const r = await legacy(['build', '-t', 'clifail:1', dir.path]);
  assert.equal(r.code, 7, 'the docker CLI exits with the code of the failing RUN');
  assert.match(r.stderr + r.stdout, /The command '\/bin\/sh -c echo out; exit 7' returned a non-zero code: 7/);
  assert.equal((await api(d.socket, 'GET', '/images/clifail:1/json')).status, 404);
  const s = await legacy(['build', '-t', 'clistdin:1', '-'], 'FROM busybox\nRUN echo from-stdin\n');
  assert.equal(s.code, 0, s.stderr + s.stdout);
  assert.match(s.stdout, /from-stdin/);
  // -f - with a context directory: the CLI adds the Dockerfile to the context under a random name
  await writeFile(join(dir.path, 'ctx.txt'), 'context file\n');
  const f = await legacy(['build', '-t', 'clistdin:2', '-f', '-', dir.path], 'FROM busybox\nCOPY ctx.txt /\nRUN cat /ctx.txt\n');
  assert.equal(f.code, 0, f.stderr + f.stdout);
  assert.match(f.stdout, /context file\n/);
});

test('docker-compose 1.29 build: context, dockerfile, args, target, labels, network', { skip }, async () => {
  await using dir = await tempDir('berth-compose-build-');
  await mkdir(join(dir.path, 'app'));
  await writeFile(join(dir.path, 'app', 'Compose.Dockerfile'), 'FROM busybox AS main\nARG V\nRUN echo "v=$V" > /v; cat /proc/net/dev | grep -c eth0 > /eth || true\nFROM main AS extra\nRUN exit 1\n');
  await writeFile(join(dir.path, 'docker-compose.yml'), [
    'version: "3.4"',
    'services:',
    '  app:',
    '    build:',
    '      context: ./app',
    '      dockerfile: Compose.Dockerfile',
    '      target: main',
    '      network: none',
    '      labels:',
    '        made.by: compose',
    '      args:',
    '        V: composed',
    '    image: composebuilt:1',
  ].join('\n') + '\n');
  const r = await run('docker-compose', ['-f', join(dir.path, 'docker-compose.yml'), 'build'], { env: { ...d.env, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0' }, timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const img = await api(d.socket, 'GET', '/images/composebuilt:1/json');
  assert.equal(img.status, 200);
  assert.equal(img.json().Config.Labels['made.by'], 'compose');
  const out = await docker(d, ['run', '--rm', '--network', 'none', 'composebuilt:1', 'cat', '/v', '/eth'], { timeoutMs: 60000 });
  assert.equal(out.stdout, 'v=composed\n0\n', 'args reached RUN, the RUN had no network, the target stage was built');
});

test('docker builder prune (POST /build/prune) empties the build cache', { skip }, async () => {
  await using dir = await tempDir('berth-cli-build-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo prune > /p\n');
  assert.equal((await legacy(['build', dir.path])).code, 0);
  assert.match((await legacy(['build', dir.path])).stdout, /Using cache/);
  const p = await legacy(['builder', 'prune', '-f']);
  assert.equal(p.code, 0, p.stderr + p.stdout);
  assert.match(p.stdout, /Total reclaimed space:/);
  assert.doesNotMatch((await legacy(['build', dir.path])).stdout, /Using cache/);
});

test('docker build flags: --label, --network none/host, --platform, --no-cache, --pull, -q, a gzipped context on stdin', { skip }, async () => {
  await using dir = await tempDir('berth-cli-build-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN ls /sys/class/net\n');
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const none = await legacy(['build', '--no-cache', '--pull', '--network', 'none', '--platform', `linux/${arch}`, '--label', 'via=docker', '-t', 'dflags:1', dir.path]);
  assert.equal(none.code, 0, none.stderr + none.stdout);
  assert.match(none.stdout, /Running in \w+\nlo\nRemoving/, 'only lo with --network none');
  assert.match(none.stdout, /Pulling busybox/);
  assert.equal((await api(d.socket, 'GET', '/images/dflags:1/json')).json().Config.Labels.via, 'docker');
  const host = await legacy(['build', '--no-cache', '-q', '--network', 'host', dir.path]);
  assert.equal(host.code, 0, host.stderr);
  assert.match(host.stdout.trim(), /^sha256:[0-9a-f]{64}$/);
  const { execFileSync } = await import('node:child_process');
  const tgz = execFileSync('tar', ['-C', dir.path, '-cz', '.']);
  const z = await legacy(['build', '-t', 'dflags:gz', '-'], tgz);
  assert.equal(z.code, 0, z.stderr + z.stdout);
  assert.match(z.stdout, /Successfully tagged dflags:gz/);
});

test('plain docker build (no DOCKER_BUILDKIT) picks the classic builder from _ping', { skip }, async () => {
  await using dir = await tempDir('berth-cli-build-');
  await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo plain > /p\n');
  const env = { ...d.env };
  delete env.DOCKER_BUILDKIT;
  const r = await docker({ ...d, env }, ['build', '-t', 'plain:1', dir.path], { timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  assert.match(r.stdout, /Successfully tagged plain:1/);
});

test('a built image runs (docker run) and pushes to a registry (docker push)', { skip }, async () => {
  const { startRegistry } = await import('../helpers/fixtures.ts');
  const reg = await startRegistry();
  try {
    await using dir = await tempDir('berth-cli-build-');
    await writeFile(join(dir.path, 'Dockerfile'), 'FROM busybox\nRUN echo built-and-run > /msg\nCMD ["cat", "/msg"]\n');
    const tag = `${reg.addr}/built:1`;
    const b = await legacy(['build', '-t', tag, dir.path]);
    assert.equal(b.code, 0, b.stderr + b.stdout);
    const r = await docker(d, ['run', '--rm', '--network', 'none', tag], { timeoutMs: 60000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'built-and-run');
    const p = await docker(d, ['push', tag], { timeoutMs: 60000 });
    assert.equal(p.code, 0, p.stderr + p.stdout);
    const insp = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${tag}`]);
    assert.equal(insp.code, 0, insp.stderr);
    const local = (await api(d.socket, 'GET', `/images/${encodeURIComponent(tag)}/json`)).json();
    assert.equal(JSON.parse(insp.stdout).Layers.length, local.RootFS.Layers.length);
  } finally {
    await reg.stop();
  }
});

const PY_BUILD = String.raw`
import io, sys, json, docker
c = docker.DockerClient(base_url='unix://' + sys.argv[1], version='1.44')
ctx = sys.argv[2]
out = {}
img, logs = c.images.build(path=ctx, tag='pybuilt:1', buildargs={'V': 'from-py'}, labels={'made.by': 'python'}, rm=True, dockerfile='Py.Dockerfile', target='final')
out['tags'] = img.tags
out['labels'] = img.labels
out['steps'] = [l['stream'] for l in logs if 'stream' in l and l['stream'].startswith('Step ')]
again, logs2 = c.images.build(path=ctx, tag='pybuilt:1', buildargs={'V': 'from-py'}, labels={'made.by': 'python'}, dockerfile='Py.Dockerfile', target='final', quiet=True)
out['same_id'] = again.id == img.id
f, _ = c.images.build(fileobj=io.BytesIO(b'FROM busybox\nRUN echo fileobj > /f\n'), tag='pyfileobj:1', network_mode='none', nocache=True)
out['fileobj_tags'] = f.tags
try:
    c.images.build(fileobj=io.BytesIO(b'FROM busybox\nRUN exit 4\n'), tag='pyfail:1')
    out['fail'] = None
except docker.errors.BuildError as e:
    out['fail'] = e.msg
try:
    c.images.get('pyfail:1')
    out['fail_tagged'] = True
except docker.errors.ImageNotFound:
    out['fail_tagged'] = False
events = list(c.api.build(path=ctx, dockerfile='Py.Dockerfile', target='final', buildargs={'V': 'from-py'}, decode=True))
out['aux'] = [e['aux']['ID'] for e in events if 'aux' in e]
print(json.dumps(out))
`;

test('python3-docker images.build: path with dockerfile/target/buildargs/labels, quiet, fileobj, BuildError on a failing RUN', { skip }, async () => {
  await using dir = await tempDir('berth-py-build-');
  await writeFile(join(dir.path, 'Py.Dockerfile'), 'FROM busybox AS base\nARG V\nRUN echo "v=$V" > /v\nFROM base AS final\nCMD ["cat", "/v"]\nFROM final AS after\nRUN exit 1\n');
  const r = await run('python3', ['-c', PY_BUILD, d.socket, dir.path], { timeoutMs: 120000 });
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  assert.deepEqual(out.tags, ['pybuilt:1']);
  assert.equal(out.labels['made.by'], 'python');
  assert.equal(out.steps[0], 'Step 1/6 : FROM busybox AS base\n');
  assert.equal(out.same_id, true, 'a quiet no-op rebuild gives the same image');
  assert.deepEqual(out.fileobj_tags, ['pyfileobj:1']);
  assert.equal(out.fail, "The command '/bin/sh -c exit 4' returned a non-zero code: 4");
  assert.equal(out.fail_tagged, false);
  assert.equal(out.aux.length, 1);
  assert.match(out.aux[0], /^sha256:[0-9a-f]{64}$/);
  const v = await docker(d, ['run', '--rm', '--network', 'none', 'pybuilt:1'], { timeoutMs: 60000 });
  assert.equal(v.stdout, 'v=from-py\n');
});
