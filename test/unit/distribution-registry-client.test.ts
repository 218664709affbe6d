import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RegistryClient, verifyingStream } from '../../src/distribution/registry-client.ts';
import { FakeRegistry } from '../../src/distribution/fake-registry.ts';
import { staticAuth } from '../../src/distribution/credentials.ts';
import { MediaType, MAX_MANIFEST_BYTES, type Descriptor } from '../../src/core/oci.ts';
import { sha256 } from '../../src/core/digest.ts';
import { parseReference } from '../../src/core/reference.ts';
import { kindOf } from '../../src/core/errors.ts';
import { Authenticator } from '../../src/distribution/auth.ts';
import { createAgent, endpointFor } from '../../src/distribution/transport.ts';
import { ContentStore } from '../../src/content/content-store.ts';

function image(reg: FakeRegistry, repo: string, tag: string, layerBytes = Buffer.from('layer-bytes-' + repo)) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const c = reg.addBlob(repo, config);
  const l = reg.addBlob(repo, layerBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, ...c },
    layers: [{ mediaType: MediaType.OciLayerGzip, ...l }],
  };
  const bytes = Buffer.from(JSON.stringify(manifest));
  const digest = reg.addManifest(repo, tag, bytes, MediaType.OciManifest);
  return { config, layerBytes, manifest, bytes, digest, layer: manifest.layers[0]! as Descriptor, configDesc: manifest.config as Descriptor };
}

async function collect(r: Readable): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of r) out.push(c as Buffer);
  return Buffer.concat(out);
}

async function rejectsKind(p: Promise<unknown>, kind: string, re?: RegExp): Promise<Error> {
  try {
    await p;
  } catch (err) {
    assert.equal(kindOf(err), kind, `kind of ${String(err)}`);
    if (re) assert.match((err as Error).message, re);
    return err as Error;
  }
  assert.fail(`expected ${kind}`);
}

const fast = { retry: { attempts: 3, baseDelayMs: 5 } };

describe('RegistryClient against a fake registry (anonymous)', () => {
  let reg: FakeRegistry;
  let rc: RegistryClient;
  before(async () => {
    reg = await FakeRegistry.start();
    rc = new RegistryClient({ ...fast, userAgent: 'berth-test' });
  });
  after(async () => {
    await rc.close();
    await reg.close();
  });

  test('resolves a tag, verifies the digest and fetches config and layer', async () => {
    const img = image(reg, 'a/b', 'v1');
    const ref = parseReference(`${reg.host}/a/b:v1`);
    const r = await rc.resolve(ref);
    assert.equal(r.manifestDigest, img.digest);
    assert.deepEqual(r.manifestBytes, img.bytes);
    assert.equal(r.mediaType, MediaType.OciManifest);
    assert.equal(r.index, undefined);
    assert.deepEqual(await rc.fetchBlobBytes(ref, img.configDesc), img.config);
    let progress = 0;
    const body = await rc.fetchBlob(ref, img.layer, { onProgress: (n) => (progress = n) });
    assert.deepEqual(await collect(body), img.layerBytes);
    assert.equal(progress, img.layerBytes.length);
    assert.deepEqual(await rc.headManifest(ref, 'v1'), { digest: img.digest, mediaType: MediaType.OciManifest, size: img.bytes.length });
    assert.equal(await rc.headManifest(ref, 'nope'), undefined);
    await rejectsKind(rc.getManifest({ domain: reg.host, path: '../x' }, 'v1'), 'InvalidArgument');
    const byDigest = await rc.resolve(parseReference(`${reg.host}/a/b@${img.digest}`));
    assert.equal(byDigest.manifestDigest, img.digest);
    assert.equal(reg.requests.at(-1)!.headers['user-agent'], 'berth-test');
  });

  test('missing manifest is NotFound with Docker wording; missing blob is NotFound', async () => {
    image(reg, 'a/c', 'v1');
    await rejectsKind(rc.resolve(parseReference(`${reg.host}/a/c:nope`)), 'NotFound', /^manifest for 127\.0\.0\.1:\d+\/a\/c:nope not found: manifest unknown$/);
    const missing = { mediaType: MediaType.OciLayerGzip, digest: sha256('nothing'), size: 7 };
    await rejectsKind(rc.fetchBlob(parseReference(`${reg.host}/a/c`), missing), 'NotFound', /blob unknown/);
  });

  test('index: selects the wanted platform, fetches it by digest; no match lists platforms', async () => {
    const amd = image(reg, 'multi/x', 'amd64-only', Buffer.from('amd64 layer'));
    const arm = image(reg, 'multi/x', 'arm-only', Buffer.from('arm64 layer'));
    const index = {
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        { mediaType: MediaType.OciManifest, digest: arm.digest, size: arm.bytes.length, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        { mediaType: MediaType.OciManifest, digest: amd.digest, size: amd.bytes.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: MediaType.OciManifest, digest: amd.digest, size: amd.bytes.length, platform: { os: 'unknown', architecture: 'unknown' } },
      ],
    };
    const ib = Buffer.from(JSON.stringify(index));
    const idig = reg.addManifest('multi/x', 'latest', ib, MediaType.OciIndex);
    const ref = parseReference(`${reg.host}/multi/x`);
    const r = await rc.resolve(ref, { platform: { os: 'linux', architecture: 'arm64' } });
    assert.equal(r.manifestDigest, arm.digest);
    assert.equal(r.index?.digest, idig);
    assert.deepEqual(r.index?.bytes, ib);
    assert.equal(r.descriptor?.platform?.architecture, 'arm64');
    const r2 = await rc.resolve(ref, { platform: { os: 'linux', architecture: 'amd64' } });
    assert.equal(r2.manifestDigest, amd.digest);
    assert.ok(reg.requests.some((q) => q.path === `/v2/multi/x/manifests/${amd.digest}`), 'child fetched by digest');
    const err = await rejectsKind(rc.resolve(ref, { platform: { os: 'linux', architecture: 's390x' } }), 'NotFound', /no matching manifest for linux\/s390x/);
    assert.match(err.message, /linux\/arm64\/v8/);
    assert.match(err.message, /linux\/amd64/);
    assert.doesNotMatch(err.message, /unknown/);
  });

  test('refuses ambiguous documents and schema 1', async () => {
    const amb = {
      schemaVersion: 2,
      manifests: [],
      config: { mediaType: MediaType.OciConfig, digest: sha256('x'), size: 1 },
      layers: [],
    };
    reg.addManifest('bad/amb', 'latest', Buffer.from(JSON.stringify(amb)), MediaType.OciIndex);
    await rejectsKind(rc.resolve(parseReference(`${reg.host}/bad/amb`)), 'InvalidArgument', /ambiguous/);
    const s1 = { schemaVersion: 1, name: 'bad/s1', tag: 'latest', fsLayers: [] };
    reg.addManifest('bad/s1', 'latest', Buffer.from(JSON.stringify(s1)), 'application/vnd.docker.distribution.manifest.v1+prettyjws');
    await rejectsKind(rc.resolve(parseReference(`${reg.host}/bad/s1`)), 'NotImplemented', /schema 1/);
    // mediaType field contradicting the Content-Type
    const img = image(reg, 'bad/mt', 'ok');
    reg.addManifest('bad/mt', 'lie', img.bytes, MediaType.DockerManifestList);
    await rejectsKind(rc.resolve(parseReference(`${reg.host}/bad/mt:lie`)), 'InvalidArgument', /does not match/);
  });

  test('a manifest fetched by digest must hash to it', async () => {
    const img = image(reg, 'bad/dig', 'v1');
    const other = sha256('something else');
    reg.repos.get('bad/dig')!.manifests.set(other, { bytes: img.bytes, mediaType: MediaType.OciManifest });
    await rejectsKind(rc.resolve(parseReference(`${reg.host}/bad/dig@${other}`)), 'DataLoss', /digest/);
  });
});

describe('RegistryClient fault handling (hooks)', () => {
  test('refuses manifests over 4 MiB, with and without Content-Length, without reading them whole', async () => {
    let sent = 0;
    const reg = await FakeRegistry.start({
      hook: (req, res, url) => {
        if (!url.pathname.includes('/manifests/')) return false;
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const total = MAX_MANIFEST_BYTES + 1024 * 1024;
        const withLength = url.pathname.endsWith('/len');
        res.writeHead(200, withLength ? { 'content-type': MediaType.OciManifest, 'content-length': total } : { 'content-type': MediaType.OciManifest });
        if (withLength && req.method === 'GET') {
          // Send a little, then hang: the client must decide from the header.
          res.write(chunk);
          sent += chunk.length;
          return true;
        }
        const pump = () => {
          while (sent < total * 2) {
            sent += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        pump();
        return true;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      await rejectsKind(rc.resolve(parseReference(`${reg.host}/big/x:len`)), 'InvalidArgument', /limit/);
      sent = 0;
      await rejectsKind(rc.resolve(parseReference(`${reg.host}/big/x:chunked`)), 'InvalidArgument', /limit/);
      assert.ok(sent < MAX_MANIFEST_BYTES * 2, `stopped reading early (server wrote ${sent})`);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('a blob with the wrong content fails verification with a DataLoss naming the digest', async () => {
    const reg = await FakeRegistry.start();
    const rc = new RegistryClient(fast);
    const dir = await mkdtemp(join(tmpdir(), 'berth-dist-'));
    try {
      const good = Buffer.from('the real layer');
      const d = reg.addBlob('x/y', good);
      reg.blobs.set(d.digest, Buffer.from('the fake layer')); // same size, other bytes
      const desc = { mediaType: MediaType.OciLayerGzip, ...d };
      const ref = parseReference(`${reg.host}/x/y`);
      const body = await rc.fetchBlob(ref, desc);
      const sink = collect(body.pipe(verifyingStream(desc)));
      await rejectsKind(sink, 'DataLoss', /digest/);
      // fetchBlobBytes verifies by itself; the content store refuses it too.
      await rejectsKind(rc.fetchBlobBytes(ref, desc), 'DataLoss', /digest/);
      const store = new ContentStore(dir);
      await store.init();
      await rejectsKind(store.ingest(await rc.fetchBlob(ref, desc), { digest: desc.digest, size: desc.size }), 'DataLoss', /digest/);
      assert.equal(await store.has(desc.digest), false);
      // Longer than the descriptor says: refused before the end.
      reg.blobs.set(d.digest, Buffer.concat([good, Buffer.from('more')]));
      await rejectsKind(rc.fetchBlob(ref, desc).then(collect), 'DataLoss', /digest not verified/);
    } finally {
      await rc.close();
      await reg.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('resumes a dropped blob body with Range', async () => {
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    let drops = 0;
    const ranges: string[] = [];
    const reg = await FakeRegistry.start({
      hook: (req, res, url) => {
        if (!url.pathname.includes('/blobs/sha256:')) return false;
        if (req.headers.range) {
          ranges.push(req.headers.range);
          return false; // the fake serves the range
        }
        if (drops < 1) {
          drops++;
          // Promise the whole blob, send a third, then drop the connection.
          res.writeHead(200, { 'content-length': data.length, 'content-type': 'application/octet-stream' });
          res.write(data.subarray(0, 1024 * 1024), () => setTimeout(() => res.socket?.destroy(), 20));
          return true;
        }
        return false;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      const d = reg.addBlob('r/s', data);
      const desc = { mediaType: MediaType.OciLayer, ...d };
      const seen: number[] = [];
      const body = await rc.fetchBlob(parseReference(`${reg.host}/r/s`), desc, { onProgress: (n) => seen.push(n) });
      const got = await collect(body.pipe(verifyingStream(desc)));
      assert.equal(got.length, data.length);
      assert.ok(got.equals(data));
      assert.equal(drops, 1);
      assert.equal(ranges.length, 1);
      assert.match(ranges[0]!, /^bytes=\d+-$/);
      assert.ok(Number(/\d+/.exec(ranges[0]!)![0]) > 0);
      assert.equal(seen.at(-1), data.length);
      assert.ok(seen.every((n, i) => i === 0 || n >= seen[i - 1]!), 'progress is monotonic');
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('a server that ignores Range still yields the right bytes after a drop', async () => {
    const data = Buffer.alloc(2 * 1024 * 1024, 0x61);
    data.write('start', 0);
    data.write('end', data.length - 3);
    let drops = 0;
    const reg = await FakeRegistry.start({
      ranges: false,
      hook: (req, res, url) => {
        if (!url.pathname.includes('/blobs/sha256:') || drops > 0) return false;
        drops++;
        res.writeHead(200, { 'content-length': data.length });
        res.write(data.subarray(0, 700_000), () => setTimeout(() => res.socket?.destroy(), 20));
        return true;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      const d = reg.addBlob('r/t', data);
      const desc = { mediaType: MediaType.OciLayer, ...d };
      const got = await collect((await rc.fetchBlob(parseReference(`${reg.host}/r/t`), desc)).pipe(verifyingStream(desc)));
      assert.ok(got.equals(data));
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('retries transient 503s before the first byte; gives up as Unavailable', async () => {
    let fails = 2;
    const reg = await FakeRegistry.start({
      hook: (_req, res, url) => {
        if (!url.pathname.includes('/manifests/') || fails <= 0) return false;
        fails--;
        res.writeHead(503, { 'content-type': 'application/json' });
        res.end('{"errors":[{"code":"UNAVAILABLE","message":"try later"}]}');
        return true;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      const img = image(reg, 'flaky/x', 'v1');
      const r = await rc.resolve(parseReference(`${reg.host}/flaky/x:v1`));
      assert.equal(r.manifestDigest, img.digest);
      assert.equal(fails, 0);
      fails = 100;
      await rejectsKind(rc.resolve(parseReference(`${reg.host}/flaky/x:v1`)), 'Unavailable', /503/);
      assert.equal(fails, 97, 'three attempts');
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('connection refused is Unavailable naming the host', async () => {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    const rc = new RegistryClient({ retry: { attempts: 2, baseDelayMs: 1 } });
    try {
      await rejectsKind(rc.resolve(parseReference(`127.0.0.1:${port}/x/y:z`)), 'Unavailable', new RegExp(`127\\.0\\.0\\.1:${port}`));
    } finally {
      await rc.close();
    }
  });
});

describe('RegistryClient transport', () => {
  test('keeps connections alive across requests and opens several for parallel blobs', async () => {
    const reg = await FakeRegistry.start();
    let connections = 0;
    reg.server.on('connection', () => connections++);
    const rc = new RegistryClient({ ...fast, connections: 4 });
    try {
      const img = image(reg, 'k/a', 'v1');
      const ref = parseReference(`${reg.host}/k/a:v1`);
      await rc.resolve(ref);
      await rc.fetchBlobBytes(ref, img.configDesc);
      await collect(await rc.fetchBlob(ref, img.layer));
      for (let i = 0; i < 10; i++) await rc.fetchBlobBytes(ref, img.configDesc);
      // undici may open a second one while the first is still finishing a response; never one per request.
      assert.ok(connections <= 2, `13 sequential requests used ${connections} connections`);
      // Parallel fetches of slow blobs spread over several connections.
      const blobs = [0, 1, 2, 3].map((i) => ({ mediaType: MediaType.OciLayer, ...reg.addBlob('k/a', Buffer.alloc(256 * 1024, i)) }));
      reg.opts.hook = (_req, res, url) => {
        if (!url.pathname.includes('/blobs/')) return false;
        const d = url.pathname.slice(url.pathname.lastIndexOf('/') + 1) as Descriptor['digest'];
        const b = reg.blobs.get(d)!;
        res.writeHead(200, { 'content-length': b.length });
        setTimeout(() => res.end(b), 50);
        return true;
      };
      const t = performance.now();
      const got = await Promise.all(blobs.map(async (b) => collect(await rc.fetchBlob(ref, b))));
      const ms = performance.now() - t;
      assert.ok(got.every((g, i) => g.length === blobs[i]!.size));
      assert.ok(connections >= 4, `parallel fetches used ${connections} connections`);
      assert.ok(ms < 190, `four 50 ms responses in parallel took ${ms.toFixed(0)} ms`);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('an aborted download fails as Canceled', async () => {
    const data = Buffer.alloc(1024 * 1024, 1);
    const reg = await FakeRegistry.start({
      hook: (_req, res, url) => {
        if (!url.pathname.includes('/blobs/sha256:')) return false;
        res.writeHead(200, { 'content-length': data.length });
        res.write(data.subarray(0, 1000)); // then stall
        return true;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      const desc = { mediaType: MediaType.OciLayer, ...reg.addBlob('c/x', data) };
      const ac = new AbortController();
      const body = await rc.fetchBlob(parseReference(`${reg.host}/c/x`), desc, { signal: ac.signal, onProgress: () => ac.abort() });
      await rejectsKind(collect(body), 'Canceled');
    } finally {
      await rc.close();
      await reg.close();
    }
  });
});

describe('RegistryClient auth', () => {
  test('bearer token flow: scopes requested and checked, tokens reused, push scope for push', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', users: { alice: 's3cret' }, anonymousPull: false } });
    const rc = new RegistryClient({ ...fast, auth: staticAuth({ username: 'alice', password: 's3cret' }) });
    try {
      const img = image(reg, 'team/app', 'v1');
      const ref = parseReference(`${reg.host}/team/app:v1`);
      const r = await rc.resolve(ref);
      assert.equal(r.manifestDigest, img.digest);
      assert.deepEqual(await rc.fetchBlobBytes(ref, img.configDesc), img.config);
      assert.deepEqual(await collect(await rc.fetchBlob(ref, img.layer)), img.layerBytes);
      assert.equal(reg.tokenRequests.length, 1, 'one token for the whole pull');
      const tr = reg.tokenRequests[0]!;
      assert.deepEqual(tr.query.getAll('scope'), ['repository:team/app:pull']);
      assert.equal(tr.query.get('service'), 'fake-registry');
      assert.equal(tr.authorization, 'Basic ' + Buffer.from('alice:s3cret').toString('base64'));
      // Push needs pull,push: a new token, then reused for the whole push.
      const layer = Buffer.from('pushed layer');
      const desc = { mediaType: MediaType.OciLayer, digest: sha256(layer), size: layer.length };
      assert.equal(await rc.blobExists(ref, desc.digest), false);
      await rc.uploadBlob(ref, desc, () => Readable.from([layer]));
      assert.equal(await rc.blobExists(ref, desc.digest), true);
      assert.equal(reg.tokenRequests.length, 2);
      assert.deepEqual(reg.tokenRequests[1]!.query.getAll('scope'), ['repository:team/app:pull,push']);
      // Mount asks for pull on the source repository as well.
      assert.equal(await rc.mountBlob(parseReference(`${reg.host}/team/other`), desc.digest, 'team/app'), true);
      const mountScopes = reg.tokenRequests.at(-1)!.query.getAll('scope').sort();
      assert.deepEqual(mountScopes, ['repository:team/app:pull', 'repository:team/other:pull,push']);
      assert.ok(reg.repos.get('team/other')!.blobs.has(desc.digest));
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('anonymous token when no credentials; unauthorized without pull rights', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', users: { alice: 's3cret' }, anonymousPull: true } });
    const anon = new RegistryClient(fast);
    try {
      image(reg, 'pub/x', 'v1');
      await anon.resolve(parseReference(`${reg.host}/pub/x:v1`));
      assert.equal(reg.tokenRequests[0]!.authorization, undefined);
      const layer = Buffer.from('nope');
      await rejectsKind(
        anon.uploadBlob(parseReference(`${reg.host}/pub/x`), { mediaType: MediaType.OciLayer, digest: sha256(layer), size: layer.length }, () => Readable.from([layer])),
        'Unauthorized',
        /^unauthorized: authentication required/,
      );
      // Wrong password: the token server refuses.
      const bad = anon.withAuth(staticAuth({ username: 'alice', password: 'wrong' }));
      await rejectsKind(bad.resolve(parseReference(`${reg.host}/pub/x:v1`)), 'Unauthorized', /incorrect username or password/);
    } finally {
      await anon.close();
      await reg.close();
    }
  });

  test('an expired token is refreshed after a 401', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', anonymousPull: true } });
    const rc = new RegistryClient(fast);
    try {
      const img = image(reg, 'exp/x', 'v1');
      const ref = parseReference(`${reg.host}/exp/x:v1`);
      await rc.resolve(ref);
      reg.tokens.clear(); // the registry forgets every token
      assert.deepEqual(await rc.fetchBlobBytes(ref, img.configDesc), img.config);
      assert.equal(reg.tokenRequests.length, 2);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('parallel first requests share one token fetch', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', anonymousPull: true } });
    const rc = new RegistryClient(fast);
    try {
      const blobs = [0, 1, 2, 3, 4].map((i) => ({ mediaType: MediaType.OciLayer, ...reg.addBlob('par/x', Buffer.alloc(1000, i)) }));
      const ref = parseReference(`${reg.host}/par/x`);
      await Promise.all(blobs.map(async (b) => collect(await rc.fetchBlob(ref, b))));
      assert.equal(reg.tokenRequests.length, 1);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('tokens are renewed when they expire (expires_in)', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', anonymousPull: true, expiresIn: 60 } });
    const dispatcher = createAgent();
    let now = 1_000_000;
    const auth = new Authenticator({ dispatcher, now: () => now });
    try {
      const ep = endpointFor(reg.host);
      auth.learn(ep, ['Bearer realm="' + reg.url + '/token",service="fake-registry"']);
      const scopes = ['repository:a/b:pull'];
      const t1 = await auth.authorize(ep, scopes);
      assert.match(t1.header ?? '', /^Bearer tok-/);
      now += 30_000;
      assert.equal((await auth.authorize(ep, scopes)).header, t1.header, 'reused while fresh');
      now += 30_000;
      const t3 = await auth.authorize(ep, scopes);
      assert.notEqual(t3.header, t1.header, 'renewed after expiry');
      assert.equal(reg.tokenRequests.length, 2);
      // Another scope set is another token.
      await auth.authorize(ep, ['repository:a/c:pull']);
      assert.equal(reg.tokenRequests.length, 3);
    } finally {
      await dispatcher.close();
      await reg.close();
    }
  });

  test('an upload interrupted by a transient failure restarts in a new session', async () => {
    let failPuts = 1;
    const reg = await FakeRegistry.start({
      hook: (req, res, url) => {
        if (req.method !== 'PUT' || !url.pathname.includes('/uploads/') || failPuts <= 0) return false;
        failPuts--;
        req.resume();
        req.on('end', () => {
          res.writeHead(502);
          res.end();
        });
        return true;
      },
    });
    const rc = new RegistryClient(fast);
    try {
      const layer = Buffer.from('retried layer');
      const desc = { mediaType: MediaType.OciLayer, digest: sha256(layer), size: layer.length };
      let bodies = 0;
      await rc.uploadBlob(parseReference(`${reg.host}/up/x`), desc, () => {
        bodies++;
        return Readable.from([layer]);
      });
      assert.equal(bodies, 2);
      assert.ok(reg.repos.get('up/x')!.blobs.has(desc.digest));
      assert.equal(reg.requests.filter((q) => q.method === 'POST').length, 2);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('basic auth', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'basic', users: { bob: 'pw' } } });
    const rc = new RegistryClient({ ...fast, auth: staticAuth({ username: 'bob', password: 'pw' }) });
    try {
      const img = image(reg, 'b/x', 'v1');
      const ref = parseReference(`${reg.host}/b/x:v1`);
      assert.equal((await rc.resolve(ref)).manifestDigest, img.digest);
      assert.deepEqual(await rc.fetchBlobBytes(ref, img.configDesc), img.config);
      const auths = reg.requests.map((q) => q.headers.authorization);
      assert.equal(auths[0], undefined, 'first request is anonymous');
      assert.ok(auths.slice(1).every((a) => a === 'Basic ' + Buffer.from('bob:pw').toString('base64')));
      await rejectsKind(rc.withAuth(undefined).resolve(ref), 'Unauthorized', /authentication required/);
    } finally {
      await rc.close();
      await reg.close();
    }
  });

  test('credentials are not sent to a plain-http token realm on another host', async () => {
    const token = await FakeRegistry.start({ auth: { kind: 'bearer', users: { alice: 's3cret' }, anonymousPull: true } });
    // The realm is on "localhost", the registry on 127.0.0.1: another host, plain http.
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', anonymousPull: true, realm: `http://localhost:${token.host.split(':')[1]}/token` }, tokens: token.tokens });
    const rc = new RegistryClient({ ...fast, auth: staticAuth({ username: 'alice', password: 's3cret' }) });
    try {
      image(reg, 'r/x', 'v1');
      await rc.resolve(parseReference(`${reg.host}/r/x:v1`));
      assert.equal(token.tokenRequests.length, 1);
      assert.equal(token.tokenRequests[0]!.authorization, undefined, 'no basic credentials to the foreign realm');
    } finally {
      await rc.close();
      await reg.close();
      await token.close();
    }
  });

  test('redirected blob downloads drop the Authorization header on another origin', async () => {
    const storageSeen: (string | undefined)[] = [];
    const blob = Buffer.from('blob served by storage');
    const storage: Server = createServer((req, res) => {
      storageSeen.push(req.headers.authorization);
      res.writeHead(200, { 'content-length': blob.length });
      res.end(blob);
    });
    await new Promise<void>((r) => storage.listen(0, '127.0.0.1', r));
    const storageUrl = `http://localhost:${(storage.address() as AddressInfo).port}/signed?x=1`;
    const reg = await FakeRegistry.start({
      auth: { kind: 'bearer', users: { alice: 's3cret' } },
      hook: (req, res, url) => {
        if (!url.pathname.includes('/blobs/sha256:') || !req.headers.authorization) return false;
        res.writeHead(307, { location: storageUrl });
        res.end();
        return true;
      },
    });
    const rc = new RegistryClient({ ...fast, auth: staticAuth({ username: 'alice', password: 's3cret' }) });
    try {
      const d = reg.addBlob('s/x', blob);
      const got = await collect(await rc.fetchBlob(parseReference(`${reg.host}/s/x`), { mediaType: MediaType.OciLayer, ...d }));
      assert.deepEqual(got, blob);
      assert.deepEqual(storageSeen, [undefined]);
      assert.ok(reg.requests.some((q) => q.headers.authorization?.startsWith('Bearer ')), 'the registry itself got the token');
    } finally {
      await rc.close();
      await reg.close();
      storage.closeAllConnections();
      await new Promise<void>((r) => storage.close(() => r()));
    }
  });

  test('checkLogin: good and bad credentials, bearer and basic', async () => {
    const bearer = await FakeRegistry.start({ auth: { kind: 'bearer', users: { alice: 's3cret' } } });
    const basic = await FakeRegistry.start({ auth: { kind: 'basic', users: { bob: 'pw' } } });
    const open = await FakeRegistry.start();
    const rc = new RegistryClient(fast);
    try {
      assert.deepEqual(await rc.checkLogin(bearer.host, { username: 'alice', password: 's3cret' }), { status: 'Login Succeeded' });
      await rejectsKind(rc.checkLogin(bearer.host, { username: 'alice', password: 'x' }), 'Unauthorized', /incorrect username or password/);
      await rejectsKind(rc.checkLogin(bearer.host, undefined), 'Unauthorized');
      assert.deepEqual(await rc.checkLogin(`http://${basic.host}/v2/`, { username: 'bob', password: 'pw' }), { status: 'Login Succeeded' });
      await rejectsKind(rc.checkLogin(basic.host, { username: 'bob', password: 'nope' }), 'Unauthorized', /^unauthorized: /);
      assert.deepEqual(await rc.checkLogin(open.host, { username: 'any', password: 'thing' }), { status: 'Login Succeeded' });
      // identity tokens are exchanged with a POST to the realm
      assert.deepEqual(await rc.checkLogin(bearer.host, { identityToken: 'refresh-alice' }), { status: 'Login Succeeded' });
      assert.equal(bearer.tokenRequests.at(-1)!.method, 'POST');
      assert.match(bearer.tokenRequests.at(-1)!.body, /grant_type=refresh_token/);
    } finally {
      await rc.close();
      await Promise.all([bearer.close(), basic.close(), open.close()]);
    }
  });

  test('putManifest returns the digest; push through a ContentStore-backed body', async () => {
    const reg = await FakeRegistry.start({ auth: { kind: 'bearer', users: { alice: 's3cret' } } });
    const rc = new RegistryClient({ ...fast, auth: staticAuth({ username: 'alice', password: 's3cret' }) });
    try {
      const ref = parseReference(`${reg.host}/p/q:v2`);
      const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
      const cdesc = { mediaType: MediaType.OciConfig, digest: sha256(config), size: config.length };
      let progress = 0;
      await rc.uploadBlob(ref, cdesc, () => Readable.from([config]), { onProgress: (n) => (progress = n) });
      assert.equal(progress, config.length);
      const m = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config: cdesc, layers: [] }));
      const digest = await rc.putManifest(ref, 'v2', m, MediaType.OciManifest);
      assert.equal(digest, sha256(m));
      const r = await rc.resolve(ref);
      assert.equal(r.manifestDigest, digest);
      await rejectsKind(rc.putManifest(ref, sha256('other'), m, MediaType.OciManifest), 'InvalidArgument');
      // A body that does not match its digest is refused by the registry.
      await assert.rejects(rc.uploadBlob(ref, cdesc, () => Readable.from([Buffer.from('x'.repeat(config.length))])));
      // Write a pulled blob through the content store, then push it from there.
      const dir = await mkdtemp(join(tmpdir(), 'berth-dist-'));
      try {
        const store = new ContentStore(dir);
        await store.init();
        await store.ingest(await rc.fetchBlob(ref, cdesc), { digest: cdesc.digest, size: cdesc.size });
        assert.deepEqual(await store.readBytes(cdesc.digest), config);
        await rc.uploadBlob(parseReference(`${reg.host}/p/copy`), cdesc, () => store.createReadStream(cdesc.digest));
        assert.ok(reg.repos.get('p/copy')!.blobs.has(cdesc.digest));
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } finally {
      await rc.close();
      await reg.close();
    }
  });
});
