import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startFakeDaemon, runBerth, sendJson, type Recorded } from './cli-fake-daemon.ts';

const NOW = Math.floor(Date.now() / 1000);
const ID = 'sha256:' + 'ab'.repeat(32);

test('unknown flag: 125 with docker wording, no request sent', async () => {
  const d = await startFakeDaemon(() => {});
  try {
    const r = await runBerth(['images', '--x'], { host: d.host });
    assert.equal(r.code, 125);
    assert.match(r.stderr, /^unknown flag: --x\n\nUsage: {2}berth images \[OPTIONS\] \[REPOSITORY\[:TAG\]\]\n\nRun 'berth images --help' for more information\n$/);
    const run = await runBerth(['run', '--bogus', 'img'], { host: d.host });
    assert.equal(run.code, 125);
    assert.match(run.stderr, /unknown flag: --bogus[\s\S]*Run 'berth run --help'/);
    assert.equal(d.requests.length, 0);
    const args = await runBerth(['rmi'], { host: d.host });
    assert.equal(args.code, 1);
    assert.match(args.stderr, /'berth rmi' requires at least 1 argument/);
    const unknown = await runBerth(['frobnicate'], { host: d.host });
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /unknown command: berth frobnicate/);
  } finally {
    await d.close();
  }
});

test('global flags before the verb select the daemon: -H beats BERTH_HOST and DOCKER_HOST', async () => {
  const a = await startFakeDaemon((r, res) => sendJson(res, 200, []));
  const b = await startFakeDaemon((r, res) => sendJson(res, 200, []));
  try {
    const r = await runBerth(['-H', a.host, 'images', '-q'], { env: { BERTH_HOST: b.host, DOCKER_HOST: b.host } });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(a.calls(), ['GET /images/json']);
    assert.equal(b.requests.length, 0);
    const viaDocker = await runBerth(['images', '-q'], { env: { DOCKER_HOST: b.host } });
    assert.equal(viaDocker.code, 0);
    assert.deepEqual(b.calls(), ['GET /images/json']);
    // versioned path from _ping's API-Version
    assert.match(a.requests.find((x) => x.path === '/images/json')!.url, /^\/v1\.44\/images\/json/);
  } finally {
    await a.close();
    await b.close();
  }
});

test('daemon unreachable: docker-like message, exit 1', async () => {
  const r = await runBerth(['images'], { host: 'unix:///nonexistent/berth.sock' });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, 'Cannot connect to the berth daemon at unix:///nonexistent/berth.sock. Is the berth daemon running?\n');
});

test('images: request, filters, and docker columns', async () => {
  const images = [
    { Id: ID, RepoTags: ['busybox:latest', 'me/bb:1'], RepoDigests: ['busybox@sha256:' + 'cd'.repeat(32)], Created: NOW - 120, Size: 4261234 },
    { Id: 'sha256:' + 'ef'.repeat(32), RepoTags: [], RepoDigests: [], Created: NOW - 3 * 86400, Size: 1000 },
  ];
  const d = await startFakeDaemon((r, res) => sendJson(res, 200, images));
  try {
    const r = await runBerth(['images'], { host: d.host });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n' +
        'busybox      latest    abababababab   2 minutes ago   4.26MB\n' +
        'me/bb        1         abababababab   2 minutes ago   4.26MB\n' +
        '<none>       <none>    efefefefefef   3 days ago      1kB\n',
    );
    const q = await runBerth(['image', 'ls', '-aq', '--filter', 'dangling=true', 'busybox'], { host: d.host });
    assert.equal(q.stdout, 'abababababab\nabababababab\nefefefefefef\n');
    const last = d.requests[d.requests.length - 1]!;
    assert.equal(last.query.get('all'), '1');
    assert.deepEqual(JSON.parse(last.query.get('filters')!), { dangling: { true: true }, reference: { busybox: true } });
    const dig = await runBerth(['images', '--digests', '--no-trunc', '--format', '{{.Repository}}@{{.Digest}} {{.ID}}'], { host: d.host });
    assert.equal(dig.stdout.split('\n')[0], `busybox@sha256:${'cd'.repeat(32)} ${ID}`);
    const json = await runBerth(['images', '--format', 'json'], { host: d.host });
    const first = JSON.parse(json.stdout.split('\n')[0]!) as Record<string, string>;
    assert.equal(first.Repository, 'busybox');
    assert.equal(first.Size, '4.26MB');
  } finally {
    await d.close();
  }
});

function pullStream(res: import('node:http').ServerResponse, msgs: object[]): void {
  res.writeHead(200, { 'Content-Type': 'application/json' });
  for (const m of msgs) res.write(JSON.stringify(m) + '\r\n');
  res.end();
}

test('pull: fromImage/tag/platform, X-Registry-Auth, plain progress lines, final reference', async () => {
  const d = await startFakeDaemon((r, res) =>
    pullStream(res, [
      { status: 'Pulling from library/busybox', id: 'latest' },
      { status: 'Pulling fs layer', progressDetail: {}, id: 'aaa' },
      { status: 'Downloading', progressDetail: { current: 1, total: 2 }, id: 'aaa' },
      { status: 'Pull complete', progressDetail: {}, id: 'aaa' },
      { status: 'Digest: sha256:abc' },
      { status: 'Status: Downloaded newer image for busybox:latest' },
    ]),
  );
  try {
    const r = await runBerth(['pull', '--platform', 'linux/amd64', 'busybox'], { host: d.host });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'Using default tag: latest\nlatest: Pulling from library/busybox\naaa: Pulling fs layer\naaa: Pull complete\nDigest: sha256:abc\nStatus: Downloaded newer image for busybox:latest\ndocker.io/library/busybox:latest\n',
    );
    assert.deepEqual(d.calls(), ['POST /images/create?fromImage=docker.io%2Flibrary%2Fbusybox&platform=linux%2Famd64&tag=latest']);
    assert.equal(d.requests[d.requests.length - 1]!.headers['x-registry-auth'], 'e30=');
    const q = await runBerth(['pull', '-q', '127.0.0.1:5000/a/b:v1'], { host: d.host });
    assert.equal(q.stdout, '127.0.0.1:5000/a/b:v1\n');
    const all = await runBerth(['pull', '-a', 'busybox'], { host: d.host });
    assert.equal(all.code, 0);
    assert.equal(d.calls().at(-1), 'POST /images/create?fromImage=docker.io%2Flibrary%2Fbusybox');
  } finally {
    await d.close();
  }
});

test('pull: an error in the stream exits 1 with the message', async () => {
  const d = await startFakeDaemon((r, res) =>
    pullStream(res, [{ status: 'Pulling from x', id: 'latest' }, { errorDetail: { message: 'manifest unknown' }, error: 'manifest unknown' }]),
  );
  try {
    const r = await runBerth(['pull', 'x'], { host: d.host });
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'manifest unknown\n');
    assert.ok(!r.stdout.includes('docker.io/library/x:latest'));
  } finally {
    await d.close();
  }
});

test('pull on a terminal draws per-layer lines with cursor movement', async () => {
  const d = await startFakeDaemon((r, res) =>
    pullStream(res, [
      { status: 'Pulling fs layer', progressDetail: {}, id: 'aaa' },
      { status: 'Downloading', progressDetail: { current: 1000, total: 2000 }, id: 'aaa' },
    ]),
  );
  try {
    const r = await runBerth(['pull', 'x:1'], { host: d.host, stdoutTTY: true, columns: 120 });
    assert.equal(r.code, 0);
    assert.ok(r.stdout.includes('\x1b[1A\x1b[2K\raaa: Downloading [' + '='.repeat(25) + '>'), JSON.stringify(r.stdout));
  } finally {
    await d.close();
  }
});

test('login stores credentials in config.json; pull then sends them as X-Registry-Auth', async () => {
  const cfg = await mkdtemp(join(tmpdir(), 'berth-cli-cfg-'));
  let authBody: unknown;
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/auth') {
      authBody = JSON.parse(r.body);
      sendJson(res, 200, { Status: 'Login Succeeded' });
    } else pullStream(res, [{ status: 'ok' }]);
  });
  try {
    const r = await runBerth(['--config', cfg, 'login', '-u', 'alice', '--password-stdin', '127.0.0.1:5000'], { host: d.host, stdin: 's3cret\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'Login Succeeded\n');
    assert.deepEqual(authBody, { username: 'alice', password: 's3cret', serveraddress: '127.0.0.1:5000' });
    const conf = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(conf.auths['127.0.0.1:5000']!.auth, 'base64').toString(), 'alice:s3cret');
    await runBerth(['--config', cfg, 'pull', '127.0.0.1:5000/app:1'], { host: d.host });
    const hdr = d.requests.at(-1)!.headers['x-registry-auth'] as string;
    assert.deepEqual(JSON.parse(Buffer.from(hdr, 'base64url').toString()), { username: 'alice', password: 's3cret', serveraddress: '127.0.0.1:5000' });
    const out = await runBerth(['--config', cfg, 'logout', '127.0.0.1:5000'], { host: d.host });
    assert.equal(out.stdout, 'Removing login credentials for 127.0.0.1:5000\n');
    const noTty = await runBerth(['--config', cfg, 'login', '127.0.0.1:5000'], { host: d.host });
    assert.equal(noTty.code, 1);
    assert.match(noTty.stderr, /Cannot perform an interactive login from a non TTY device/);
  } finally {
    await d.close();
    await rm(cfg, { recursive: true, force: true });
  }
});

test('rmi prints Untagged/Deleted lines and reports each failure', async () => {
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/images/busybox') sendJson(res, 200, [{ Untagged: 'busybox:latest' }, { Deleted: ID }]);
    else sendJson(res, 404, { message: 'No such image: nope:latest' });
  });
  try {
    const r = await runBerth(['rmi', '-f', 'busybox', 'nope'], { host: d.host });
    assert.equal(r.code, 1);
    assert.equal(r.stdout, `Untagged: busybox:latest\nDeleted: ${ID}\n`);
    assert.equal(r.stderr, 'Error response from daemon: No such image: nope:latest\n');
    assert.deepEqual(d.calls(), ['DELETE /images/busybox?force=1', 'DELETE /images/nope?force=1']);
  } finally {
    await d.close();
  }
});

test('tag, history, inspect', async () => {
  const d = await startFakeDaemon((r: Recorded, res) => {
    if (r.path.endsWith('/tag')) return sendJson(res, 201, {});
    if (r.path.endsWith('/history'))
      return sendJson(res, 200, [
        { Id: ID, Created: NOW - 7200, CreatedBy: '/bin/sh -c #(nop)  CMD ["sh"]', Size: 0, Comment: '' },
        { Id: '<missing>', Created: NOW - 7200, CreatedBy: '/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789 in /', Size: 4261234, Comment: 'c' },
      ]);
    if (r.path === '/images/busybox/json') return sendJson(res, 200, { Id: ID, RepoTags: ['busybox:latest'], Config: { Cmd: ['sh'] } });
    sendJson(res, 404, { message: `No such image: ${r.path.split('/')[2]}` });
  });
  try {
    assert.equal((await runBerth(['tag', 'busybox', 'me/app'], { host: d.host })).code, 0);
    assert.equal(d.calls().at(-1), 'POST /images/busybox/tag?repo=docker.io%2Fme%2Fapp&tag=latest');
    const h = await runBerth(['history', 'busybox'], { host: d.host });
    assert.equal(
      h.stdout,
      'IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT\n' +
        'abababababab   2 hours ago   /bin/sh -c #(nop)  CMD ["sh"]                   0B        \n' +
        '<missing>      2 hours ago   /bin/sh -c #(nop) ADD file:0123456789abcdef0…   4.26MB    c\n',
    );
    const i = await runBerth(['image', 'inspect', 'busybox'], { host: d.host });
    assert.equal(i.code, 0);
    assert.deepEqual(JSON.parse(i.stdout), [{ Id: ID, RepoTags: ['busybox:latest'], Config: { Cmd: ['sh'] } }]);
    assert.ok(i.stdout.includes('\n    {\n        "Id"'), 'indented by 4 spaces like docker');
    const f = await runBerth(['image', 'inspect', '-f', '{{.Id}} {{json .Config.Cmd}}', 'busybox', 'nope'], { host: d.host });
    assert.equal(f.code, 1);
    assert.equal(f.stdout, `${ID} ["sh"]\n`);
    assert.equal(f.stderr, 'Error response from daemon: No such image: nope\n');
    const none = await runBerth(['inspect', 'nope'], { host: d.host });
    assert.equal(none.stdout, '[]\n');
    assert.equal(none.stderr, 'Error: No such object: nope\n');
    const badTmpl = await runBerth(['image', 'inspect', '-f', '{{.Id', 'busybox'], { host: d.host });
    assert.equal(badTmpl.code, 64);
  } finally {
    await d.close();
  }
});

test('image prune: asks first; declined (or closed stdin) sends nothing; -f prunes', async () => {
  const d = await startFakeDaemon((r, res) => sendJson(res, 200, { ImagesDeleted: [{ Untagged: 'a:1' }, { Deleted: ID }], SpaceReclaimed: 4261234 }));
  try {
    const no = await runBerth(['image', 'prune'], { host: d.host });
    assert.equal(no.code, 0);
    assert.match(no.stdout, /^WARNING! This will remove all dangling images\.\nAre you sure you want to continue\? \[y\/N\] /);
    assert.equal(d.calls().length, 0);
    const yes = await runBerth(['image', 'prune', '-a'], { host: d.host, stdin: 'y\n' });
    assert.equal(yes.code, 0);
    assert.deepEqual(JSON.parse(d.requests.at(-1)!.query.get('filters')!), { dangling: { false: true } });
    const f = await runBerth(['image', 'prune', '-f', '--filter', 'until=1h'], { host: d.host });
    assert.equal(f.stdout, `Deleted Images:\nuntagged: a:1\ndeleted: ${ID}\n\nTotal reclaimed space: 4.261MB\n`);
    assert.deepEqual(JSON.parse(d.requests.at(-1)!.query.get('filters')!), { dangling: { true: true }, until: { '1h': true } });
  } finally {
    await d.close();
  }
});

test('save refuses a terminal, writes -o atomically; load and import send the tar body', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cli-save-'));
  const d = await startFakeDaemon((r, res) => {
    if (r.path === '/images/get') {
      res.writeHead(200, { 'Content-Type': 'application/x-tar' });
      res.end('TARDATA');
    } else if (r.path === '/images/load') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ stream: 'Loaded image: busybox:latest\n' }) + '\n');
    } else pullStream(res, [{ status: 'sha256:' + '12'.repeat(32) }]);
  });
  try {
    const tty = await runBerth(['save', 'busybox'], { host: d.host, stdoutTTY: true });
    assert.equal(tty.code, 1);
    assert.equal(tty.stderr, 'cowardly refusing to save to a terminal. Use the -o flag or redirect\n');
    const out = join(dir, 'img.tar');
    const s = await runBerth(['save', '-o', out, 'busybox', 'alpine'], { host: d.host });
    assert.equal(s.code, 0, s.stderr);
    assert.equal(await readFile(out, 'utf8'), 'TARDATA');
    assert.equal(d.calls().at(-1), 'GET /images/get?names=busybox&names=alpine');
    const piped = await runBerth(['save', 'busybox'], { host: d.host });
    assert.equal(piped.stdout, 'TARDATA');
    await writeFile(join(dir, 'in.tar'), 'INPUT');
    const l = await runBerth(['load', '-i', join(dir, 'in.tar')], { host: d.host });
    assert.equal(l.stdout, 'Loaded image: busybox:latest\n');
    assert.equal(d.requests.at(-1)!.body, 'INPUT');
    assert.equal(d.requests.at(-1)!.query.get('quiet'), '1');
    const im = await runBerth(['import', '-c', 'ENV A=1', '-m', 'msg', '-', 'me/imp:v2'], { host: d.host, stdin: 'ROOTFS' });
    assert.equal(im.code, 0, im.stderr);
    assert.equal(im.stdout, `sha256:${'12'.repeat(32)}\n`);
    const req = d.requests.at(-1)!;
    assert.equal(req.body, 'ROOTFS');
    assert.equal(req.query.get('fromSrc'), '-');
    assert.equal(req.query.get('repo'), 'me/imp:v2');
    assert.deepEqual(req.query.getAll('changes'), ['ENV A=1']);
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('version prints client and server sections', async () => {
  const d = await startFakeDaemon((r, res) =>
    sendJson(res, 200, {
      Platform: { Name: 'berth' },
      Components: [{ Name: 'Engine', Version: '0.1.0', Details: { ApiVersion: '1.44', MinAPIVersion: '1.24', Os: 'linux', Arch: 'amd64' } }],
      Version: '0.1.0',
    }),
  );
  try {
    const r = await runBerth(['version'], { host: d.host });
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Client:\n Version: {11}0\.1\.0\n API version: {7}1\.44\n/);
    assert.match(r.stdout, /\nServer: berth\n Engine:\n {2}Version: {10}0\.1\.0\n {2}API version: {6}1\.44 \(minimum version 1\.24\)\n/);
    const f = await runBerth(['version', '--format', '{{.Server.Version}}'], { host: d.host });
    assert.equal(f.stdout, '0.1.0\n');
  } finally {
    await d.close();
  }
});

test('build: context tar with .dockerignore applied, query from flags, stream output, -q and --iidfile', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cli-build-'));
  let entries: string[] = [];
  const d = await startFakeDaemon(async (r, res) => {
    const tar = (await import('tar-stream')).default;
    const ex = tar.extract();
    const names: string[] = [];
    ex.on('entry', (h, s, next) => {
      names.push(h.name);
      s.resume();
      s.on('end', next);
    });
    await new Promise<void>((ok, bad) => {
      ex.on('finish', ok).on('error', bad);
      ex.end(Buffer.from(r.body, 'latin1'));
    });
    entries = names;
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(
      [{ stream: 'Step 1/1 : FROM busybox\n' }, { aux: { ID: 'sha256:' + '5'.repeat(64) } }, { stream: 'Successfully built 555555555555\n' }]
        .map((m) => JSON.stringify(m))
        .join('\r\n'),
    );
  });
  try {
    await writeFile(join(dir, 'Dockerfile'), 'FROM busybox\n');
    await writeFile(join(dir, 'keep.txt'), 'k');
    await writeFile(join(dir, 'secret.txt'), 's');
    await writeFile(join(dir, '.dockerignore'), 'secret.txt\n');
    const iid = join(dir, 'iid');
    const r = await runBerth(['build', '-t', 'app:1', '--build-arg', 'A=1', '--build-arg', 'FROM_ENV', '--iidfile', iid, dir], { host: d.host, env: { FROM_ENV: 'v' } });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Sending build context to Docker daemon {2}\d[\d.]*kB\nStep 1\/1 : FROM busybox\nSuccessfully built 555555555555\n$/);
    assert.deepEqual(entries.sort(), ['.dockerignore', 'Dockerfile', 'keep.txt']);
    const q = d.requests.at(-1)!.query;
    assert.deepEqual(q.getAll('t'), ['app:1']);
    assert.equal(q.get('dockerfile'), 'Dockerfile');
    assert.equal(q.get('version'), '1');
    assert.deepEqual(JSON.parse(q.get('buildargs')!), { A: '1', FROM_ENV: 'v' });
    assert.equal(await readFile(iid, 'utf8'), 'sha256:' + '5'.repeat(64));
    const quiet = await runBerth(['build', '-q', dir], { host: d.host });
    assert.equal(quiet.code, 0);
    assert.equal(d.requests.at(-1)!.query.get('q'), '1');
    assert.ok(!quiet.stdout.includes('Sending build context'));
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('login on a terminal prompts for the username and reads the password without echo', async () => {
  const cfg = await mkdtemp(join(tmpdir(), 'berth-cli-cfg-'));
  let authBody: unknown;
  const d = await startFakeDaemon((r, res) => {
    authBody = JSON.parse(r.body);
    sendJson(res, 200, { Status: 'Login Succeeded', IdentityToken: 'tok' });
  });
  try {
    const { PassThrough } = await import('node:stream');
    const { runCli } = await import('../../src/cli/cli.ts');
    const stdin = new PassThrough() as InstanceType<typeof PassThrough> & { isTTY?: boolean; setRawMode?(m: boolean): void };
    const modes: boolean[] = [];
    stdin.isTTY = true;
    stdin.setRawMode = (m: boolean) => void modes.push(m);
    const stdout = new PassThrough();
    const chunks: Buffer[] = [];
    stdout.on('data', (c: Buffer) => chunks.push(c));
    const running = runCli(['--config', cfg, 'login', 'reg.example:5000'], { stdin, stdout, stderr: new PassThrough(), env: { BERTH_HOST: d.host } });
    await new Promise((r) => setTimeout(r, 50));
    stdin.write('bob\n');
    await new Promise((r) => setTimeout(r, 50));
    stdin.write('pw\x7fW\r');
    assert.equal(await running, 0);
    assert.deepEqual(authBody, { username: 'bob', password: 'pW', serveraddress: 'reg.example:5000' });
    assert.equal(Buffer.concat(chunks).toString(), 'Username: Password: \nLogin Succeeded\n');
    assert.deepEqual(modes, [true, false]);
    const conf = JSON.parse(await readFile(join(cfg, 'config.json'), 'utf8')) as { auths: Record<string, { identitytoken?: string }> };
    assert.equal(conf.auths['reg.example:5000']!.identitytoken, 'tok', 'an identity token is stored instead of the password');
  } finally {
    await d.close();
    await rm(cfg, { recursive: true, force: true });
  }
});

test('builder prune: asks first; -f -a --filter --keep-storage reach POST /build/prune; builder build is build', async () => {
  const d = await startFakeDaemon((r, res) => sendJson(res, 200, { CachesDeleted: ['abc', 'def'], SpaceReclaimed: 2048000 }));
  try {
    const no = await runBerth(['builder', 'prune'], { host: d.host });
    assert.equal(no.code, 0);
    assert.match(no.stdout, /^WARNING! This will remove all dangling build cache\. Are you sure you want to continue\? \[y\/N\] /);
    assert.equal(d.calls().length, 0);
    const f = await runBerth(['builder', 'prune', '-af', '--filter', 'until=24h', '--keep-storage', '1mb'], { host: d.host });
    assert.equal(f.code, 0, f.stderr);
    assert.equal(f.stdout, 'Deleted build cache objects:\nabc\ndef\n\nTotal reclaimed space: 2.048MB\n');
    const q = d.requests.at(-1)!;
    assert.equal(q.path, '/build/prune');
    assert.equal(q.query.get('all'), '1');
    assert.equal(q.query.get('keep-storage'), String(1024 * 1024));
    assert.deepEqual(JSON.parse(q.query.get('filters')!), { until: { '24h': true } });
    const help = await runBerth(['builder', 'build', '--help'], { host: d.host });
    assert.match(help.stdout, /Usage: {2}berth builder build \[OPTIONS\] PATH \| URL \| -/);
  } finally {
    await d.close();
  }
});

test('build -f - PATH: the Dockerfile from stdin travels in the context under a random name', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'berth-cli-build-'));
  const d = await startFakeDaemon((r, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ aux: { ID: ID } }) + '\n');
  });
  try {
    await writeFile(join(dir, 'hello.txt'), 'hi\n');
    const r = await runBerth(['build', '-q', '-f', '-', dir], { host: d.host, stdin: 'FROM scratch\nCOPY hello.txt /\n' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `${ID}\n`);
    const q = d.requests.at(-1)!;
    const name = q.query.get('dockerfile')!;
    assert.match(name, /^\.dockerfile\.[0-9a-f]{20}$/);
    assert.ok(q.body.includes(name), 'the named entry is in the context tar');
    assert.ok(q.body.includes('FROM scratch\nCOPY hello.txt /\n'), 'with stdin as its content');
    assert.ok(q.body.includes('hello.txt'), 'beside the context files');
  } finally {
    await d.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test('volume and network prune: filters as docker sends them, deleted lists, space only for volumes', async () => {
  const d = await startFakeDaemon((r, res) => sendJson(res, 200, r.path === '/volumes/prune' ? { VolumesDeleted: ['v1', 'v2'], SpaceReclaimed: 2048 } : { NetworksDeleted: ['n1'] }));
  try {
    const v = await runBerth(['volume', 'prune', '-af', '--filter', 'label=x'], { host: d.host });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, 'Deleted Volumes:\nv1\nv2\n\nTotal reclaimed space: 2.048kB\n');
    assert.deepEqual(JSON.parse(d.requests.at(-1)!.query.get('filters')!), { all: { true: true }, label: { x: true } });
    const n = await runBerth(['network', 'prune', '-f'], { host: d.host });
    assert.equal(n.code, 0, n.stderr);
    assert.equal(n.stdout, 'Deleted Networks:\nn1\n\n');
    assert.equal(d.requests.at(-1)!.path, '/networks/prune');
    const no = await runBerth(['network', 'prune'], { host: d.host });
    assert.match(no.stdout, /^WARNING! This will remove all custom networks not used by at least one container\.\nAre you sure you want to continue\? \[y\/N\] /);
    assert.equal(d.calls().length, 2, 'declined: nothing sent');
  } finally {
    await d.close();
  }
});
