// POST /build end to end, as root: every instruction, multi-stage, cache, .dockerignore, hostile
// contexts, failing RUN, ADD archives and URLs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile, symlink, readFile, readdir } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { join, dirname } from 'node:path';
import { execFileSync } from 'node:child_process';
import { api, isRoot, tempDir, mountsUnder, fileDaemon, waitFor } from '../helpers/fixtures.ts';
import { packContext } from '../../src/build/context-tar.ts';
import { buildTar } from '../../src/layer/tar-build.ts';

const skip = !isRoot ? 'needs root' : false;
const d = fileDaemon(skip);

interface Msg { stream?: string; aux?: { ID: string }; error?: string; errorDetail?: { code?: number; message: string } }

async function tarOf(files: Record<string, string | { link: string }>): Promise<Buffer> {
  await using dir = await tempDir('berth-build-ctx-');
  for (const [name, body] of Object.entries(files)) {
    const p = join(dir.path, name);
    await mkdir(dirname(p), { recursive: true });
    if (typeof body === 'string') await writeFile(p, body);
    else await symlink(body.link, p);
  }
  const chunks: Buffer[] = [];
  for await (const c of packContext(dir.path) as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks);
}

async function build(body: Buffer, query = ''): Promise<{ status: number; msgs: Msg[]; text: string; id?: string; error?: Msg }> {
  const r = await api(d.socket, 'POST', `/build?${query}`, body, { 'Content-Type': 'application/x-tar' });
  const msgs = r.text().split(/\r?\n/).filter(Boolean).map((l) => JSON.parse(l) as Msg);
  const text = msgs.map((m) => m.stream ?? '').join('');
  const id = msgs.find((m) => m.aux?.ID)?.aux?.ID;
  const error = msgs.find((m) => m.error);
  return { status: r.status, msgs, text, ...(id ? { id } : {}), ...(error ? { error } : {}) };
}

async function inspect(ref: string): Promise<any> {
  const r = await api(d.socket, 'GET', `/images/${encodeURIComponent(ref)}/json`);
  assert.equal(r.status, 200, r.text());
  return r.json();
}

/** Run a command in an image through the build itself (no container module needed). */
async function runIn(image: string, cmd: string | string[]): Promise<string> {
  const r = await build(await tarOf({ Dockerfile: `FROM ${image}\nRUN ${typeof cmd === 'string' ? cmd : JSON.stringify(cmd)}\n` }), 'nocache=1');
  assert.equal(r.error, undefined, r.text);
  return r.text;
}

test('a simple build: steps, layer from RUN, metadata, tags, history', { skip }, async () => {
  const ctx = await tarOf({
    Dockerfile: [
      'FROM busybox',
      'LABEL a=1 "b c"="d e"',
      'ENV GREETING=hello PATH=/opt/bin:$PATH',
      'WORKDIR /app',
      'RUN echo "$GREETING world" > out.txt && mkdir -p /opt/bin',
      'COPY file.txt ./',
      'EXPOSE 80 53/udp',
      'USER 1000:1000',
      'VOLUME /data',
      'STOPSIGNAL SIGINT',
      'HEALTHCHECK --interval=5s --retries=2 CMD true',
      'ENTRYPOINT ["/bin/sh", "-c"]',
      'CMD ["cat out.txt"]',
      'ONBUILD RUN echo triggered',
      'MAINTAINER someone',
    ].join('\n'),
    'file.txt': 'from context\n',
  });
  const r = await build(ctx, 't=simple:1&t=simple:2');
  assert.equal(r.status, 200);
  assert.equal(r.error, undefined, r.text);
  assert.match(r.text, /^Step 1\/15 : FROM busybox\n/);
  assert.match(r.text, /Step 5\/15 : RUN echo "\$GREETING world" > out.txt/);
  assert.match(r.text, /Successfully built [0-9a-f]{12}\n/);
  assert.match(r.text, /Successfully tagged simple:1\n/);
  assert.match(r.text, /Successfully tagged simple:2\n/);
  const img = await inspect('simple:1');
  assert.equal(img.Id, r.id);
  const c = img.Config;
  assert.deepEqual(c.Labels, { a: '1', 'b c': 'd e' });
  assert.ok(c.Env.includes('GREETING=hello'));
  assert.ok(c.Env.some((e: string) => e.startsWith('PATH=/opt/bin:/usr/local/sbin')));
  assert.equal(c.WorkingDir, '/app');
  assert.deepEqual(Object.keys(c.ExposedPorts).sort(), ['53/udp', '80/tcp']);
  assert.equal(c.User, '1000:1000');
  assert.deepEqual(Object.keys(c.Volumes), ['/data']);
  assert.equal(c.StopSignal, 'SIGINT');
  assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'true'], Interval: 5e9, Retries: 2 });
  assert.deepEqual(c.Entrypoint, ['/bin/sh', '-c']);
  assert.deepEqual(c.Cmd, ['cat out.txt']);
  assert.deepEqual(c.OnBuild, ['RUN echo triggered']);
  assert.equal(img.Author, 'someone');
  const hist = (await api(d.socket, 'GET', '/images/simple:1/history')).json() as Array<{ CreatedBy: string }>;
  assert.ok(hist.some((h) => h.CreatedBy.includes('/bin/sh -c echo "$GREETING world" > out.txt')), JSON.stringify(hist));
  assert.ok(hist.some((h) => /#\(nop\)\s+ENV GREETING=hello/.test(h.CreatedBy)));
  // The RUN output and the copied file are in the image.
  const out = await runIn('simple:1', 'cat /app/out.txt /app/file.txt && ls -ln /app/file.txt');
  assert.match(out, /hello world\nfrom context\n/);
  assert.match(out, /-rw-r--r-- +1 0 +0 /);
  // ONBUILD triggers run in a child build
  const child = await build(await tarOf({ Dockerfile: 'FROM simple:1\nUSER root\nRUN true\n' }));
  assert.match(child.text, /triggered/);
  assert.equal((await inspect(child.id!)).Config.OnBuild, null);
});

test('no-op rebuild reuses every step and gives the identical image ID; one file change invalidates its COPY and later steps only', { skip }, async () => {
  const files = {
    Dockerfile: 'FROM busybox\nRUN echo one > /one\nCOPY a.txt /a.txt\nRUN cat /a.txt > /b.txt\nCOPY c.txt /c.txt\n',
    'a.txt': 'A1',
    'c.txt': 'C1',
  };
  const first = await build(await tarOf(files), 't=cache:1');
  assert.equal(first.error, undefined, first.text);
  const again = await build(await tarOf(files), 't=cache:1');
  assert.equal(again.id, first.id);
  assert.equal((again.text.match(/Using cache/g) ?? []).length, 4);
  // c.txt changes: only the last COPY reruns
  const c2 = await build(await tarOf({ ...files, 'c.txt': 'C2' }));
  assert.equal((c2.text.match(/Using cache/g) ?? []).length, 3);
  assert.notEqual(c2.id, first.id);
  // a.txt changes: the COPY of a.txt and everything after it reruns, the first RUN stays cached
  const a2 = await build(await tarOf({ ...files, 'a.txt': 'A2' }));
  assert.equal((a2.text.match(/Using cache/g) ?? []).length, 1);
  // --no-cache reuses nothing
  const nc = await build(await tarOf(files), 'nocache=1');
  assert.equal((nc.text.match(/Using cache/g) ?? []).length, 0);
  // build args: a changed value misses at its first use
  const argFile = { Dockerfile: 'FROM busybox\nARG V=1\nRUN echo x\nRUN echo $V > /v\n' };
  await build(await tarOf(argFile));
  const v2 = await build(await tarOf(argFile), `buildargs=${encodeURIComponent(JSON.stringify({ V: '2' }))}`);
  assert.equal((v2.text.match(/Using cache/g) ?? []).length, 0, 'RUN sees all args in scope, as Docker');
  const v2b = await build(await tarOf(argFile), `buildargs=${encodeURIComponent(JSON.stringify({ V: '2' }))}`);
  assert.equal((v2b.text.match(/Using cache/g) ?? []).length, 2);
  const hist = (await api(d.socket, 'GET', `/images/${v2b.id}/history`)).json() as Array<{ CreatedBy: string }>;
  assert.ok(hist.some((h) => h.CreatedBy.startsWith('|1 V=2 /bin/sh -c echo $V > /v')), JSON.stringify(hist.map((h) => h.CreatedBy)));
});

test('multi-stage: --from by name and index, unused stages skipped, --target', { skip }, async () => {
  const ctx = await tarOf({
    Dockerfile: [
      'FROM busybox AS a',
      'RUN echo from-a > /a',
      'FROM busybox AS unused',
      'RUN exit 1',
      'FROM busybox AS b',
      'RUN echo from-b > /b',
      'FROM scratch',
      'COPY --from=a /a /a',
      'COPY --from=2 /b /b',
      'COPY --from=busybox /bin/busybox /bin/busybox',
    ].join('\n'),
  });
  const r = await build(ctx, 't=multi:latest');
  assert.equal(r.error, undefined, r.text);
  assert.doesNotMatch(r.text, /RUN exit 1/, 'the unused stage is skipped');
  const out = await runIn('multi', ['/bin/busybox', 'cat', '/a', '/b']);
  assert.match(out, /from-a\nfrom-b\n/);
  const t = await build(ctx, 'target=b&t=multi:b');
  assert.equal(t.error, undefined, t.text);
  assert.doesNotMatch(t.text, /from-a/);
  const bad = await build(ctx, 'target=nope');
  assert.match(bad.error?.error ?? '', /target nope/);
});

test('failing RUN: error with the exit code, nothing tagged', { skip }, async () => {
  const r = await build(await tarOf({ Dockerfile: 'FROM busybox\nRUN echo before\nRUN exit 3\n' }), 't=failing:1');
  assert.equal(r.status, 200);
  assert.equal(r.error?.errorDetail?.code, 3);
  assert.equal(r.error?.error, "The command '/bin/sh -c exit 3' returned a non-zero code: 3");
  assert.equal((await api(d.socket, 'GET', '/images/failing:1/json')).status, 404);
  const pe = await build(await tarOf({ Dockerfile: 'FROM busybox\nFOO bar\n' }));
  assert.equal(pe.error?.error, 'Dockerfile:2: unknown instruction: FOO');
});

test('builds side by side: every RUN step runs, and the build cgroup parent is gone afterwards', { skip }, async () => {
  // Each finished build used to remove the shared cgroup parent, also while another build's
  // `runc run` was creating its cgroup under it (runc then failed with exit status 1).
  const steps = Array.from({ length: 6 }, (_, i) => `RUN echo step${i} > /s${i}`).join('\n');
  const results = await Promise.all(
    Array.from({ length: 4 }, async (_, i) => build(await tarOf({ Dockerfile: `FROM busybox\nRUN echo build${i}\n${steps}\n` }), 'nocache=1')),
  );
  for (const r of results) assert.equal(r.error, undefined, JSON.stringify(r.error));
  const parent = `berth-build-${createHash('sha256').update(d.dataRoot).digest('hex').slice(0, 12)}`;
  // A build's clean-up runs after its answer (deferCleanup): the parent goes with the last one.
  const left = async () => (await readdir('/sys/fs/cgroup')).filter((h) => existsSync(join('/sys/fs/cgroup', h, parent)));
  await waitFor(async () => (await left()).length === 0, 'the build cgroup parent removed', 10_000).catch(() => {});
  assert.deepEqual(await left(), [], 'no build cgroup parent left');
});

test('.dockerignore applies on the daemon side too', { skip }, async () => {
  // A raw tar with files the ignore file excludes (clients normally drop them first).
  const tar = await buildTar([
    { name: 'Dockerfile', body: 'FROM busybox\nCOPY . /ctx/\n' },
    { name: '.dockerignore', body: '*.log\nsecret/\n!secret/ok\n' },
    { name: 'keep.txt', body: 'k' },
    { name: 'x.log', body: 'l' },
    { name: 'secret/key', body: 's' },
    { name: 'secret/ok', body: 'o' },
  ]);
  const r = await build(tar, 't=ign:1');
  assert.equal(r.error, undefined, r.text);
  const out = await runIn('ign:1', 'find /ctx | sort');
  assert.match(out, /\/ctx\/keep.txt/);
  assert.match(out, /\/ctx\/secret\/ok/);
  assert.doesNotMatch(out, /x\.log|secret\/key/);
});

test('hostile context: symlinks out of the context are copied as symlinks, never followed', { skip }, async () => {
  await using outside = await tempDir('berth-outside-');
  await writeFile(join(outside.path, 'secret'), 'host secret');
  const tar = await buildTar([
    { name: 'Dockerfile', body: 'FROM busybox\nCOPY dir /dir\n' },
    { name: 'dir/esc', type: 'symlink', linkname: join(outside.path, 'secret') },
    { name: 'dir/rel', type: 'symlink', linkname: '../../../../../../../../' + outside.path },
    { name: 'top', type: 'symlink', linkname: outside.path },
  ]);
  const r = await build(tar, 't=hostile:1');
  assert.equal(r.error, undefined, r.text);
  const out = await runIn('hostile:1', 'readlink /dir/esc; cat /dir/esc 2>&1 || echo unreadable');
  assert.doesNotMatch(out, /host secret/);
  assert.match(out, /unreadable/);
  // a top-level source symlink resolves inside the context: nothing there
  const tar2 = await buildTar([
    { name: 'Dockerfile', body: 'FROM busybox\nCOPY top/secret /x\n' },
    { name: 'top', type: 'symlink', linkname: outside.path },
  ]);
  const r2 = await build(tar2);
  assert.match(r2.error?.error ?? '', /not found/);
  assert.equal(await readFile(join(outside.path, 'secret'), 'utf8'), 'host secret');
  // entries climbing out of the context are refused
  const tar3 = await buildTar([{ name: 'Dockerfile', body: 'FROM busybox\n' }, { name: '../../evil', body: 'x' }]);
  const r3 = await api(d.socket, 'POST', '/build', tar3, { 'Content-Type': 'application/x-tar' });
  assert.equal(r3.status, 400);
});

test('ADD extracts local tar archives and fetches http URLs; COPY --chown/--chmod; heredocs', { skip }, async () => {
  const inner = await buildTar([{ name: 'pkg/hello.txt', body: 'inside the tar' }]);
  const srv = createServer((req, res) => {
    res.writeHead(200, { 'Last-Modified': 'Wed, 01 Jan 2020 00:00:00 GMT' });
    res.end(`remote ${req.url}`);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    await using dir = await tempDir('berth-add-');
    await writeFile(join(dir.path, 'Dockerfile'), [
      'FROM busybox',
      'ADD a.tar.gz /opt/',
      `ADD http://127.0.0.1:${port}/file.txt /dl/`,
      'COPY --chown=1000:1000 --chmod=0751 f /f',
      'COPY <<EOF /etc/generated.conf',
      'value=$HOSTNAME_IS_UNSET-x',
      'EOF',
      'RUN <<EOT',
      'echo heredoc ran > /hd',
      'EOT',
    ].join('\n') + '\n');
    execFileSync('sh', ['-c', `cat > ${join(dir.path, 'a.tar')}`], { input: inner });
    execFileSync('gzip', [join(dir.path, 'a.tar')]);
    await writeFile(join(dir.path, 'f'), 'f');
    const chunks: Buffer[] = [];
    for await (const c of packContext(dir.path) as AsyncIterable<Buffer>) chunks.push(c);
    const r = await build(Buffer.concat(chunks), 't=adds:1');
    assert.equal(r.error, undefined, r.text);
    const out = await runIn('adds:1', 'cat /opt/pkg/hello.txt; echo; cat /dl/file.txt; echo; stat -c "%u:%g %a" /f; cat /etc/generated.conf /hd');
    assert.match(out, /inside the tar\n/);
    assert.match(out, /remote \/file.txt\n/);
    assert.match(out, /1000:1000 751\n/);
    assert.match(out, /value=-x\n/);
    assert.match(out, /heredoc ran\n/);
  } finally {
    srv.close();
  }
});

test('bare Dockerfile body, quiet mode, labels and build prune', { skip }, async () => {
  const r = await api(d.socket, 'POST', `/build?q=1&labels=${encodeURIComponent(JSON.stringify({ team: 'berth' }))}`, Buffer.from('FROM busybox\nRUN true\n'));
  assert.equal(r.status, 200);
  const lines = r.text().split(/\r?\n/).filter(Boolean).map((l) => JSON.parse(l) as Msg);
  assert.ok(lines.every((m) => !m.stream || /^sha256:[0-9a-f]{64}\n$/.test(m.stream)), r.text());
  const id = lines.find((m) => m.aux)!.aux!.ID;
  assert.equal((await inspect(id)).Config.Labels.team, 'berth');
  const p = await api(d.socket, 'POST', '/build/prune');
  assert.equal(p.status, 200);
  assert.equal(typeof p.json().SpaceReclaimed, 'number');
  // after a prune nothing is cached
  const again = await build(await tarOf({ Dockerfile: 'FROM busybox\nRUN true\n' }));
  assert.doesNotMatch(again.text, /Using cache/);
  assert.deepEqual((await mountsUnder(d.dataRoot)).filter((m) => m.includes('build')), [], 'no build mounts left');
});

test('RUN networking: default bridge, networkmode=none, RUN --network=none; SHELL and exec form', { skip }, async () => {
  const df = 'FROM busybox\nRUN cat /proc/net/dev > /def\nRUN --network=none cat /proc/net/dev > /none\nSHELL ["/bin/sh", "-e", "-c"]\nRUN ["/bin/sh", "-c", "echo exec-form > /exec"]\nRUN echo $0 > /shell\n';
  const r = await build(await tarOf({ Dockerfile: df }), 't=net:1');
  assert.equal(r.error, undefined, r.text);
  assert.match(await runIn('net:1', 'cat /def'), /eth0:/, 'the default network gives an interface on the bridge');
  assert.doesNotMatch(await runIn('net:1', 'cat /none'), /eth0:/);
  const out = await runIn('net:1', 'cat /exec /shell');
  assert.match(out, /exec-form\n/);
  assert.match(out, /\/bin\/sh\n/);
  const n = await build(await tarOf({ Dockerfile: 'FROM busybox\nRUN cat /proc/net/dev\n' }), 'networkmode=none&nocache=1');
  assert.equal(n.error, undefined, n.text);
  assert.doesNotMatch(n.text, /eth0:/);
  const m = await build(await tarOf({ Dockerfile: 'FROM busybox\nRUN --mount=type=cache,target=/c true\n' }));
  assert.match(m.error?.error ?? '', /Dockerfile:2: the --mount option requires BuildKit/);
});

test('ARG before FROM, FROM --platform with automatic platform args, pull=1 offline falls back to the local image', { skip }, async () => {
  const df = [
    'ARG BASE=busybox',
    'FROM --platform=$BUILDPLATFORM ${BASE} AS s',
    'ARG TARGETARCH',
    'ARG TARGETPLATFORM',
    'ARG BASE',
    'RUN echo "$TARGETARCH $TARGETPLATFORM $BASE" > /plat',
  ].join('\n') + '\n';
  const r = await build(await tarOf({ Dockerfile: df }), 't=plat:1&pull=1');
  assert.equal(r.error, undefined, r.text);
  assert.match(r.text, /Pulling busybox/);
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  assert.match(await runIn('plat:1', 'cat /plat'), new RegExp(`${arch} linux/${arch}\\S* busybox\\n`));
  const missing = await build(await tarOf({ Dockerfile: 'FROM nosuchimage:1\n' }));
  assert.ok(missing.error, 'an absent image that cannot be pulled fails the build');
});

test('COPY of a directory into a new path: owner, --chmod, symlinks and mtimes as Docker', { skip }, async () => {
  const tar = await buildTar([
    { name: 'Dockerfile', body: 'FROM busybox\nCOPY --chown=1000:1000 d /cd\nCOPY --chmod=0750 d /m\nCOPY d /plain\n' },
    { name: 'd/', type: 'directory', mode: 0o755 },
    { name: 'd/sub/', type: 'directory', mode: 0o700 },
    { name: 'd/sub/f', body: 'f', mode: 0o600, mtime: new Date('2021-02-03T04:05:06Z') },
    { name: 'd/ln', type: 'symlink', linkname: '/etc/passwd' },
  ]);
  const r = await build(tar, 't=cpdir:1');
  assert.equal(r.error, undefined, r.text);
  const out = await runIn('cpdir:1', 'stat -c "%n %u:%g %a" /cd/sub /cd/sub/f /m/sub/f /plain/sub /plain/sub/f; readlink /cd/ln; date -u -r /plain/sub/f +%Y');
  assert.match(out, /\/cd\/sub 1000:1000 700\n/);
  assert.match(out, /\/cd\/sub\/f 1000:1000 600\n/);
  assert.match(out, /\/m\/sub\/f 0:0 750\n/);
  assert.match(out, /\/plain\/sub 0:0 700\n/);
  assert.match(out, /\/plain\/sub\/f 0:0 600\n/);
  assert.match(out, /\/etc\/passwd\n2021\n/);
});
