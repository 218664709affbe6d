// Protocol tests of berth's registry: every endpoint and error case of the OCI distribution spec
// 1.1 / Docker Registry API v2 it implements, over real HTTP on 127.0.0.1:0, for both drivers.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { paths } from '../../src/registry/paths.ts';
import {
  DRIVERS, makeDriver, startTestRegistry, sha256, errorCode, pushBlob, pushImage, type TestRegistry,
  OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST,
} from './registry-harness.ts';

/** Send raw bytes, return the raw response text (the server may close early). */
function raw(url: string, request: string | Buffer, opts: { end?: boolean; waitMs?: number } = {}): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), '127.0.0.1');
    let out = '';
    sock.on('data', (d) => (out += d.toString()));
    sock.on('error', () => resolve(out));
    sock.on('close', () => resolve(out));
    sock.on('connect', () => {
      sock.write(request);
      if (opts.end) sock.end();
    });
    setTimeout(() => {
      sock.destroy();
      resolve(out);
    }, opts.waitMs ?? 2000).unref();
    void reject;
  });
}

for (const kind of DRIVERS) {
  describe(`registry protocol (${kind})`, () => {
    let r: TestRegistry;
    before(async () => {
      r = await startTestRegistry(kind, { allowDelete: true }, { maxBlobBytes: 8 << 20 });
    });
    after(async () => r.stop());

    it('GET /v2/ answers 200 with the API version header', async () => {
      const res = await fetch(`${r.url}/v2/`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('docker-distribution-api-version'), 'registry/2.0');
      assert.deepEqual(await res.json(), {});
      const h = await fetch(`${r.url}/healthz`);
      assert.equal(h.status, 200);
    });

    it('unknown paths and methods get spec errors', async () => {
      const res = await fetch(`${r.url}/v2/a/b/unknown/x`);
      assert.equal(res.status, 404);
      assert.equal(await errorCode(res), 'NOT_FOUND');
      const outside = await fetch(`${r.url}/v1/_ping`);
      assert.equal(outside.status, 404);
      const post = await fetch(`${r.url}/v2/a/tags/list`, { method: 'POST' });
      assert.equal(post.status, 405);
    });

    describe('blobs', () => {
      it('monolithic POST with digest, then HEAD and GET with headers', async () => {
        const data = 'hello blob';
        const digest = sha256(data);
        const res = await fetch(`${r.url}/v2/lib/one/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
        assert.equal(res.status, 201);
        assert.equal(res.headers.get('location'), `/v2/lib/one/blobs/${digest}`);
        assert.equal(res.headers.get('docker-content-digest'), digest);
        const head = await fetch(`${r.url}/v2/lib/one/blobs/${digest}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-length'), String(data.length));
        assert.equal(head.headers.get('docker-content-digest'), digest);
        const get = await fetch(`${r.url}/v2/lib/one/blobs/${digest}`);
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('content-type'), 'application/octet-stream');
        assert.equal(get.headers.get('etag'), `"${digest}"`);
        assert.equal(await get.text(), data);
      });

      it('serves byte ranges and refuses unsatisfiable ones', async () => {
        const { digest } = await pushBlob(r.url, 'lib/range', '0123456789');
        const part = await fetch(`${r.url}/v2/lib/range/blobs/${digest}`, { headers: { Range: 'bytes=2-5' } });
        assert.equal(part.status, 206);
        assert.equal(part.headers.get('content-range'), 'bytes 2-5/10');
        assert.equal(await part.text(), '2345');
        const suffix = await fetch(`${r.url}/v2/lib/range/blobs/${digest}`, { headers: { Range: 'bytes=-3' } });
        assert.equal(await suffix.text(), '789');
        const open = await fetch(`${r.url}/v2/lib/range/blobs/${digest}`, { headers: { Range: 'bytes=8-' } });
        assert.equal(await open.text(), '89');
        const bad = await fetch(`${r.url}/v2/lib/range/blobs/${digest}`, { headers: { Range: 'bytes=10-20' } });
        assert.equal(bad.status, 416);
        assert.equal(bad.headers.get('content-range'), 'bytes */10');
      });

      it('a blob is visible only in repositories that link it', async () => {
        const { digest } = await pushBlob(r.url, 'lib/linked', 'only here');
        const other = await fetch(`${r.url}/v2/lib/other/blobs/${digest}`);
        assert.equal(other.status, 404);
        assert.equal(await errorCode(other), 'BLOB_UNKNOWN');
      });

      it('HEAD by a pusher links a blob the registry already holds (implicit mount); GET stays strict', async () => {
        const { digest, size } = await pushBlob(r.url, 'lib/holder', 'shared bytes');
        assert.equal((await fetch(`${r.url}/v2/lib/strict/blobs/${digest}`)).status, 404);
        const head = await fetch(`${r.url}/v2/lib/implicit/blobs/${digest}`, { method: 'HEAD' });
        assert.equal(head.status, 200);
        assert.equal(head.headers.get('content-length'), String(size));
        assert.equal(await (await fetch(`${r.url}/v2/lib/implicit/blobs/${digest}`)).text(), 'shared bytes');
        assert.equal((await fetch(`${r.url}/v2/lib/implicit/blobs/${sha256('never pushed')}`, { method: 'HEAD' })).status, 404);
        // deleted from a repository: gone there, also for HEAD, until pushed again
        assert.equal((await fetch(`${r.url}/v2/lib/implicit/blobs/${digest}`, { method: 'DELETE' })).status, 202);
        assert.equal((await fetch(`${r.url}/v2/lib/implicit/blobs/${digest}`, { method: 'HEAD' })).status, 404);
        await pushBlob(r.url, 'lib/implicit', 'shared bytes');
        assert.equal((await fetch(`${r.url}/v2/lib/implicit/blobs/${digest}`, { method: 'HEAD' })).status, 200);
      });

      it('a wrong digest is refused with DIGEST_INVALID and nothing becomes visible', async () => {
        const wrong = sha256('something else');
        const res = await fetch(`${r.url}/v2/lib/bad/blobs/uploads/?digest=${wrong}`, { method: 'POST', body: 'actual bytes' });
        assert.equal(res.status, 400);
        assert.equal(await errorCode(res), 'DIGEST_INVALID');
        assert.equal((await fetch(`${r.url}/v2/lib/bad/blobs/${wrong}`, { method: 'HEAD' })).status, 404);
        assert.equal((await fetch(`${r.url}/v2/lib/bad/blobs/${sha256('actual bytes')}`, { method: 'HEAD' })).status, 404);
        assert.deepEqual(await r.driver.list('repositories/lib/bad/_uploads'), []);
      });

      it('malformed digests are DIGEST_INVALID', async () => {
        for (const d of ['sha256:abc', 'md5:00', 'sha256:' + 'G'.repeat(64), '..%2F..%2Fetc']) {
          const res = await fetch(`${r.url}/v2/lib/one/blobs/${d}`);
          assert.equal(res.status, 400, d);
          assert.equal(await errorCode(res), 'DIGEST_INVALID');
        }
        const post = await fetch(`${r.url}/v2/lib/one/blobs/uploads/?digest=sha256:xyz`, { method: 'POST', body: 'x' });
        assert.equal(post.status, 400);
      });

      it('POST then PUT with the body', async () => {
        const start = await fetch(`${r.url}/v2/lib/two/blobs/uploads/`, { method: 'POST' });
        assert.equal(start.status, 202);
        const loc = start.headers.get('location')!;
        assert.match(loc, /^\/v2\/lib\/two\/blobs\/uploads\/[0-9a-f-]{36}$/);
        assert.equal(start.headers.get('range'), '0-0');
        assert.equal(start.headers.get('docker-upload-uuid'), loc.split('/').pop());
        const data = 'put body';
        const put = await fetch(`${r.url}${loc}?digest=${sha256(data)}`, { method: 'PUT', body: data });
        assert.equal(put.status, 201);
        assert.equal(put.headers.get('location'), `/v2/lib/two/blobs/${sha256(data)}`);
        assert.equal(await (await fetch(`${r.url}/v2/lib/two/blobs/${sha256(data)}`)).text(), data);
      });

      it('chunked PATCH with Content-Range, status, out-of-order 416, and finish', async () => {
        const start = await fetch(`${r.url}/v2/lib/chunks/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        const uuid = start.headers.get('docker-upload-uuid')!;
        const p1 = await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'abcde', headers: { 'Content-Range': '0-4', 'Content-Type': 'application/octet-stream' } });
        assert.equal(p1.status, 202);
        assert.equal(p1.headers.get('range'), '0-4');
        assert.equal(p1.headers.get('location'), loc);
        const status = await fetch(`${r.url}${loc}`);
        assert.equal(status.status, 204);
        assert.equal(status.headers.get('range'), '0-4');
        assert.equal(status.headers.get('docker-upload-uuid'), uuid);
        // A chunk that skips ahead, and one that rewrites old bytes, are out of order.
        for (const range of ['10-14', '2-6']) {
          const bad = await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'zzzzz', headers: { 'Content-Range': range } });
          assert.equal(bad.status, 416, range);
          assert.equal(bad.headers.get('range'), '0-4');
          assert.equal(bad.headers.get('location'), loc);
          assert.equal(await errorCode(bad), 'RANGE_INVALID');
        }
        // Content-Range that disagrees with the body length.
        const mismatch = await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'fgh', headers: { 'Content-Range': '5-9' } });
        assert.equal(mismatch.status, 416);
        const p2 = await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'fghij', headers: { 'Content-Range': '5-9' } });
        assert.equal(p2.status, 202);
        assert.equal(p2.headers.get('range'), '0-9');
        const last = await fetch(`${r.url}${loc}?digest=${sha256('abcdefghijKL')}`, { method: 'PUT', body: 'KL', headers: { 'Content-Range': '10-11' } });
        assert.equal(last.status, 201);
        assert.equal(await (await fetch(`${r.url}/v2/lib/chunks/blobs/${sha256('abcdefghijKL')}`)).text(), 'abcdefghijKL');
        const gone = await fetch(`${r.url}${loc}`);
        assert.equal(gone.status, 404);
        assert.equal(await errorCode(gone), 'BLOB_UPLOAD_UNKNOWN');
      });

      it('a refused small body keeps the connection; a refused large one closes it', async () => {
        const start = await fetch(`${r.url}/v2/lib/keep/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        // Two requests on one connection: the first is refused (416), the second still answered.
        const out = await raw(r.url, `PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Range: 7-11\r\n\r\nabcde` +
          `GET ${loc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`, { waitMs: 1500 });
        assert.match(out, /^HTTP\/1\.1 416/);
        assert.match(out, /HTTP\/1\.1 204/);
        const big = await raw(r.url, `PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\nContent-Range: 7-50000006\r\n\r\nabcde`, { waitMs: 1500 });
        assert.match(big, /^HTTP\/1\.1 416/);
        assert.match(big, /connection: close/i);
      });

      it('streamed PATCH without Content-Range appends everything', async () => {
        const start = await fetch(`${r.url}/v2/lib/stream/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        const parts = ['one-', 'two-', 'three'];
        const body = new ReadableStream({
          start(c) {
            for (const p of parts) c.enqueue(new TextEncoder().encode(p));
            c.close();
          },
        });
        const p = await fetch(`${r.url}${loc}`, { method: 'PATCH', body, duplex: 'half' } as RequestInit);
        assert.equal(p.status, 202);
        assert.equal(p.headers.get('range'), `0-${'one-two-three'.length - 1}`);
        const fin = await fetch(`${r.url}${loc}?digest=${sha256('one-two-three')}`, { method: 'PUT' });
        assert.equal(fin.status, 201);
      });

      it('sha512 digests are verified too', async () => {
        const { createHash } = await import('node:crypto');
        const data = 'five-twelve';
        const d = `sha512:${createHash('sha512').update(data).digest('hex')}`;
        const res = await fetch(`${r.url}/v2/lib/sha512/blobs/uploads/?digest=${d}`, { method: 'POST', body: data });
        assert.equal(res.status, 201);
        assert.equal(await (await fetch(`${r.url}/v2/lib/sha512/blobs/${d}`)).text(), data);
      });

      it('a finishing PUT with the wrong digest discards the upload', async () => {
        const start = await fetch(`${r.url}/v2/lib/wrong/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'data' });
        const fin = await fetch(`${r.url}${loc}?digest=${sha256('other')}`, { method: 'PUT' });
        assert.equal(fin.status, 400);
        assert.equal(await errorCode(fin), 'DIGEST_INVALID');
        assert.equal((await fetch(`${r.url}${loc}`)).status, 404);
        const noDigest = await fetch(`${r.url}/v2/lib/wrong/blobs/uploads/`, { method: 'POST' });
        const fin2 = await fetch(`${r.url}${noDigest.headers.get('location')}`, { method: 'PUT' });
        assert.equal(fin2.status, 400);
        assert.equal(await errorCode(fin2), 'DIGEST_INVALID');
      });

      it('cancel with DELETE; unknown and malformed upload ids are BLOB_UPLOAD_UNKNOWN', async () => {
        const start = await fetch(`${r.url}/v2/lib/cancel/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        assert.equal((await fetch(`${r.url}${loc}`, { method: 'DELETE' })).status, 204);
        const after = await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'x' });
        assert.equal(after.status, 404);
        assert.equal(await errorCode(after), 'BLOB_UPLOAD_UNKNOWN');
        for (const id of ['00000000-0000-0000-0000-000000000000', 'not-a-uuid', 'ABCDEF00-0000-0000-0000-000000000000']) {
          const res = await fetch(`${r.url}/v2/lib/cancel/blobs/uploads/${id}`);
          assert.equal(res.status, 404, id);
        }
        // An upload belongs to its repository.
        const other = await fetch(`${r.url}/v2/lib/elsewhere/blobs/uploads/`, { method: 'POST' });
        const uuid = other.headers.get('docker-upload-uuid');
        assert.equal((await fetch(`${r.url}/v2/lib/cancel/blobs/uploads/${uuid}`)).status, 404);
      });

      it('cross-repository mount: 201 when the source has the blob, else 202 upload', async () => {
        const { digest } = await pushBlob(r.url, 'src/repo', 'mount me');
        const ok = await fetch(`${r.url}/v2/dst/repo/blobs/uploads/?mount=${digest}&from=src/repo`, { method: 'POST' });
        assert.equal(ok.status, 201);
        assert.equal(ok.headers.get('location'), `/v2/dst/repo/blobs/${digest}`);
        assert.equal(ok.headers.get('docker-content-digest'), digest);
        assert.equal((await fetch(`${r.url}/v2/dst/repo/blobs/${digest}`, { method: 'HEAD' })).status, 200);
        for (const from of ['nothere/repo', 'INVALID', 'dst/repo2']) {
          const miss = await fetch(`${r.url}/v2/dst/repo2/blobs/uploads/?mount=${sha256('absent')}&from=${from}`, { method: 'POST' });
          assert.equal(miss.status, 202, from);
          assert.match(miss.headers.get('location')!, /\/v2\/dst\/repo2\/blobs\/uploads\//);
        }
      });

      it('concurrent pushes of the same blob all succeed and store it once', async () => {
        const data = Buffer.alloc(300_000, 7);
        const digest = sha256(data);
        const results = await Promise.all(Array.from({ length: 12 }, async (_, i) => {
          const name = `conc/r${i % 3}`;
          if (i % 2 === 0) {
            return (await fetch(`${r.url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data })).status;
          }
          const s = await fetch(`${r.url}/v2/${name}/blobs/uploads/`, { method: 'POST' });
          const loc = s.headers.get('location')!;
          await fetch(`${r.url}${loc}`, { method: 'PATCH', body: data.subarray(0, 1000), headers: { 'Content-Range': '0-999' } });
          await fetch(`${r.url}${loc}`, { method: 'PATCH', body: data.subarray(1000), headers: { 'Content-Range': `1000-${data.length - 1}` } });
          return (await fetch(`${r.url}${loc}?digest=${digest}`, { method: 'PUT' })).status;
        }));
        assert.deepEqual(results, Array(12).fill(201));
        for (let i = 0; i < 3; i++) {
          const got = Buffer.from(await (await fetch(`${r.url}/v2/conc/r${i}/blobs/${digest}`)).arrayBuffer());
          assert.ok(got.equals(data));
        }
        if (r.root) assert.equal((await readdir(join(r.root, '_tmp'))).length, 0);
      });

      it('a truncated upload body changes nothing', async () => {
        const start = await fetch(`${r.url}/v2/lib/trunc/blobs/uploads/`, { method: 'POST' });
        const loc = start.headers.get('location')!;
        await fetch(`${r.url}${loc}`, { method: 'PATCH', body: 'first' });
        await raw(r.url, `PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nContent-Range: 5-1004\r\n\r\n${'y'.repeat(300)}`, { end: true, waitMs: 500 });
        // give the server a moment to notice the cut and roll back
        for (let i = 0; i < 20; i++) {
          const st = await fetch(`${r.url}${loc}`);
          if (st.headers.get('range') === '0-4') break;
          await new Promise((res) => setTimeout(res, 25));
        }
        const st = await fetch(`${r.url}${loc}`);
        assert.equal(st.headers.get('range'), '0-4');
        const fin = await fetch(`${r.url}${loc}?digest=${sha256('first!')}`, { method: 'PUT', body: '!' });
        assert.equal(fin.status, 201);
        // A truncated monolithic upload leaves no blob and no upload behind.
        const digest = sha256('z'.repeat(1000));
        await raw(r.url, `POST /v2/lib/trunc2/blobs/uploads/?digest=${digest} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'z'.repeat(10)}`, { end: true, waitMs: 500 });
        await new Promise((res) => setTimeout(res, 100));
        assert.equal((await fetch(`${r.url}/v2/lib/trunc2/blobs/${digest}`, { method: 'HEAD' })).status, 404);
        assert.deepEqual(await r.driver.list('repositories/lib/trunc2/_uploads'), []);
      });

      it('oversized blobs are refused with 413', async () => {
        const big = Buffer.alloc((8 << 20) + 10, 1);
        const res = await fetch(`${r.url}/v2/lib/big/blobs/uploads/?digest=${sha256(big)}`, { method: 'POST', body: big });
        assert.equal(res.status, 413);
        assert.equal(await errorCode(res), 'PAYLOAD_TOO_LARGE');
        assert.equal((await fetch(`${r.url}/v2/lib/big/blobs/${sha256(big)}`, { method: 'HEAD' })).status, 404);
      });

      it('DELETE unlinks a blob from the repository', async () => {
        const { digest } = await pushBlob(r.url, 'lib/delblob', 'delete me');
        const del = await fetch(`${r.url}/v2/lib/delblob/blobs/${digest}`, { method: 'DELETE' });
        assert.equal(del.status, 202);
        assert.equal((await fetch(`${r.url}/v2/lib/delblob/blobs/${digest}`, { method: 'HEAD' })).status, 404);
        const again = await fetch(`${r.url}/v2/lib/delblob/blobs/${digest}`, { method: 'DELETE' });
        assert.equal(again.status, 404);
        assert.equal(await errorCode(again), 'BLOB_UNKNOWN');
      });
    });

    describe('manifests', () => {
      it('PUT by tag, GET and HEAD by tag and digest with identical bytes and headers', async () => {
        const { digest, body, res } = await pushImage(r.url, 'img/app', 'v1');
        assert.equal(res.headers.get('location'), `/v2/img/app/manifests/${digest}`);
        assert.equal(res.headers.get('docker-content-digest'), digest);
        for (const ref of ['v1', digest]) {
          const get = await fetch(`${r.url}/v2/img/app/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
          assert.equal(get.status, 200);
          assert.equal(get.headers.get('content-type'), OCI_MANIFEST);
          assert.equal(get.headers.get('docker-content-digest'), digest);
          assert.equal(get.headers.get('etag'), `"${digest}"`);
          assert.equal(get.headers.get('content-length'), String(body.length));
          assert.ok(Buffer.from(await get.arrayBuffer()).equals(body));
          const head = await fetch(`${r.url}/v2/img/app/manifests/${ref}`, { method: 'HEAD' });
          assert.equal(head.status, 200);
          assert.equal(head.headers.get('docker-content-digest'), digest);
          assert.equal(head.headers.get('content-length'), String(body.length));
        }
        const cached = await fetch(`${r.url}/v2/img/app/manifests/v1`, { headers: { 'If-None-Match': `"${digest}"` } });
        assert.equal(cached.status, 304);
      });

      it('re-tagging moves the tag', async () => {
        const a = await pushImage(r.url, 'img/retag', 'latest', { layers: ['a'] });
        const b = await pushImage(r.url, 'img/retag', 'latest', { layers: ['b'] });
        assert.notEqual(a.digest, b.digest);
        const get = await fetch(`${r.url}/v2/img/retag/manifests/latest`);
        assert.equal(get.headers.get('docker-content-digest'), b.digest);
        assert.equal((await fetch(`${r.url}/v2/img/retag/manifests/${a.digest}`)).status, 200);
      });

      it('Docker schema 2 manifests and manifest lists round-trip', async () => {
        const m = await pushImage(r.url, 'img/docker', 'amd64', { mediaType: DOCKER_MANIFEST });
        const list = Buffer.from(JSON.stringify({
          schemaVersion: 2,
          mediaType: DOCKER_LIST,
          manifests: [{ mediaType: DOCKER_MANIFEST, digest: m.digest, size: m.body.length, platform: { architecture: 'amd64', os: 'linux' } }],
        }));
        const put = await fetch(`${r.url}/v2/img/docker/manifests/multi`, { method: 'PUT', body: list, headers: { 'Content-Type': DOCKER_LIST } });
        assert.equal(put.status, 201);
        const get = await fetch(`${r.url}/v2/img/docker/manifests/multi`);
        assert.equal(get.headers.get('content-type'), DOCKER_LIST);
        assert.equal((await fetch(`${r.url}/v2/img/docker/manifests/amd64`)).headers.get('content-type'), DOCKER_MANIFEST);
      });

      it('OCI index: children must exist in the repository', async () => {
        const child = await pushImage(r.url, 'img/index', 'child');
        const missing = sha256('no such manifest');
        const mk = (d: string, size: number) => Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: d, size }] }));
        const bad = await fetch(`${r.url}/v2/img/index/manifests/idx`, { method: 'PUT', body: mk(missing, 10), headers: { 'Content-Type': OCI_INDEX } });
        assert.equal(bad.status, 404);
        assert.equal(await errorCode(bad), 'MANIFEST_BLOB_UNKNOWN');
        const good = await fetch(`${r.url}/v2/img/index/manifests/idx`, { method: 'PUT', body: mk(child.digest, child.body.length), headers: { 'Content-Type': OCI_INDEX } });
        assert.equal(good.status, 201);
        assert.equal((await fetch(`${r.url}/v2/img/index/manifests/idx`)).headers.get('content-type'), OCI_INDEX);
      });

      it('manifests referencing missing blobs are MANIFEST_BLOB_UNKNOWN', async () => {
        const cfg = await pushBlob(r.url, 'img/missing', 'cfg');
        const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('absent'), size: 6 }] });
        const res = await fetch(`${r.url}/v2/img/missing/manifests/t`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(res.status, 404);
        assert.equal(await errorCode(res), 'MANIFEST_BLOB_UNKNOWN');
        // A blob of another repository does not count.
        const elsewhere = await pushBlob(r.url, 'img/elsewhere', 'layer elsewhere');
        const body2 = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...cfg }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...elsewhere }] });
        assert.equal((await fetch(`${r.url}/v2/img/missing/manifests/t`, { method: 'PUT', body: body2, headers: { 'Content-Type': OCI_MANIFEST } })).status, 404);
        assert.equal((await fetch(`${r.url}/v2/img/missing/manifests/t`)).status, 404);
      });

      it('invalid manifests are MANIFEST_INVALID', async () => {
        const cfg = await pushBlob(r.url, 'img/invalid', 'cfg2');
        const cases: [string, string][] = [
          ['not json', OCI_MANIFEST],
          ['[1,2]', OCI_MANIFEST],
          [JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+json'],
          // ambiguous: both manifests and config/layers (CVE-2021-41190)
          [JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', ...cfg }, layers: [], manifests: [] }), OCI_MANIFEST],
          // mediaType field disagrees with Content-Type
          [JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_MANIFEST, config: { mediaType: 'x/y', ...cfg }, layers: [] }), OCI_MANIFEST],
          // descriptor size lies about the blob
          [JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', digest: cfg.digest, size: 999 }, layers: [] }), OCI_MANIFEST],
          // bad descriptor digest
          [JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', digest: 'sha256:zz', size: 1 }, layers: [] }), OCI_MANIFEST],
          // no media type anywhere
          [JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x/y', ...cfg }, layers: [] }), 'application/json'],
        ];
        for (const [body, ct] of cases) {
          const res = await fetch(`${r.url}/v2/img/invalid/manifests/t`, { method: 'PUT', body, headers: { 'Content-Type': ct } });
          assert.equal(res.status, 400, body);
          assert.equal(await errorCode(res), 'MANIFEST_INVALID', body);
        }
        // the mediaType field may be absent when Content-Type names the type (OCI)
        const ok = JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x/y', ...cfg }, layers: [] });
        assert.equal((await fetch(`${r.url}/v2/img/invalid/manifests/t`, { method: 'PUT', body: ok, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
      });

      it('PUT by digest must hash to that digest', async () => {
        const cfg = await pushBlob(r.url, 'img/bydigest', 'cfg3');
        const body = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', ...cfg }, layers: [] });
        const wrong = await fetch(`${r.url}/v2/img/bydigest/manifests/${sha256('nope')}`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(wrong.status, 400);
        assert.equal(await errorCode(wrong), 'DIGEST_INVALID');
        const right = await fetch(`${r.url}/v2/img/bydigest/manifests/${sha256(body)}`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(right.status, 201);
        // pushed by digest only: no tag appears
        assert.deepEqual(((await (await fetch(`${r.url}/v2/img/bydigest/tags/list`)).json()) as { tags: string[] }).tags, []);
      });

      it('unknown manifests and invalid tags', async () => {
        const res = await fetch(`${r.url}/v2/img/app/manifests/nope`);
        assert.equal(res.status, 404);
        assert.equal(await errorCode(res), 'MANIFEST_UNKNOWN');
        const head = await fetch(`${r.url}/v2/img/app/manifests/${sha256('x')}`, { method: 'HEAD' });
        assert.equal(head.status, 404);
        const bad = await fetch(`${r.url}/v2/img/app/manifests/-bad-tag`, { method: 'PUT', body: '{}', headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(bad.status, 400);
        assert.equal(await errorCode(bad), 'TAG_INVALID');
      });

      it('manifests over 4 MiB are refused with 413, also when streamed without length', async () => {
        const big = Buffer.alloc(4 * 1024 * 1024 + 1, 0x20);
        const res = await fetch(`${r.url}/v2/img/big/manifests/t`, { method: 'PUT', body: big, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(res.status, 413);
        assert.equal(await errorCode(res), 'PAYLOAD_TOO_LARGE');
        // An endless chunked body: the server answers 413 and closes once the limit is hit.
        const chunk = 'x'.repeat(65536);
        const { port } = new URL(r.url);
        const answer = await new Promise<string>((resolve) => {
          const sock = connect(Number(port), '127.0.0.1');
          let out = '';
          let stop = false;
          sock.on('data', (d) => {
            out += d.toString();
            stop = true;
          });
          sock.on('error', () => resolve(out));
          sock.on('close', () => resolve(out));
          sock.on('connect', () => {
            sock.write('PUT /v2/img/big/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n');
            const pump = () => {
              if (stop || sock.destroyed) return;
              sock.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`, () => setImmediate(pump));
            };
            pump();
          });
          setTimeout(() => { sock.destroy(); resolve(out); }, 10_000).unref();
        });
        assert.match(answer, /^HTTP\/1\.1 413/);
        assert.match(answer, /PAYLOAD_TOO_LARGE/);
      });

      it('DELETE by digest removes the manifest and its tags; DELETE by tag removes the tag', async () => {
        const a = await pushImage(r.url, 'img/del', 'one');
        await fetch(`${r.url}/v2/img/del/manifests/two`, { method: 'PUT', body: a.body, headers: { 'Content-Type': OCI_MANIFEST } });
        const b = await pushImage(r.url, 'img/del', 'three', { layers: ['other'] });
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/${a.digest}`, { method: 'DELETE' })).status, 202);
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/${a.digest}`)).status, 404);
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/one`)).status, 404);
        const tags = (await (await fetch(`${r.url}/v2/img/del/tags/list`)).json()) as { tags: string[] };
        assert.deepEqual(tags.tags, ['three']);
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/three`, { method: 'DELETE' })).status, 202);
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/three`)).status, 404);
        assert.equal((await fetch(`${r.url}/v2/img/del/manifests/${b.digest}`)).status, 200);
        const again = await fetch(`${r.url}/v2/img/del/manifests/${a.digest}`, { method: 'DELETE' });
        assert.equal(again.status, 404);
        assert.equal(await errorCode(again), 'MANIFEST_UNKNOWN');
      });
    });

    describe('artifacts and referrers', () => {
      it('PUT with subject answers OCI-Subject; referrers lists and filters by artifactType', async () => {
        const subject = await pushImage(r.url, 'art/repo', 'v1');
        const empty = await pushBlob(r.url, 'art/repo', '{}');
        const sig = await pushBlob(r.url, 'art/repo', 'signature bytes');
        const mkArtifact = (artifactType: string, blob: { digest: string; size: number }, annotations: Record<string, string>) => Buffer.from(JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_MANIFEST,
          artifactType,
          config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
          layers: [{ mediaType: 'application/octet-stream', ...blob }],
          subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.body.length },
          annotations,
        }));
        const a1 = mkArtifact('application/vnd.example.sig', sig, { 'org.example': 'one' });
        const put = await fetch(`${r.url}/v2/art/repo/manifests/${sha256(a1)}`, { method: 'PUT', body: a1, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(put.status, 201);
        assert.equal(put.headers.get('oci-subject'), subject.digest);
        const a2 = mkArtifact('application/vnd.example.sbom', sig, { 'org.example': 'two' });
        await fetch(`${r.url}/v2/art/repo/manifests/${sha256(a2)}`, { method: 'PUT', body: a2, headers: { 'Content-Type': OCI_MANIFEST } });

        const all = await fetch(`${r.url}/v2/art/repo/referrers/${subject.digest}`);
        assert.equal(all.status, 200);
        assert.equal(all.headers.get('content-type'), OCI_INDEX);
        assert.equal(all.headers.get('oci-filters-applied'), null);
        const idx = (await all.json()) as { schemaVersion: number; mediaType: string; manifests: { digest: string; artifactType: string; size: number; annotations: Record<string, string>; mediaType: string }[] };
        assert.equal(idx.schemaVersion, 2);
        assert.equal(idx.mediaType, OCI_INDEX);
        assert.equal(idx.manifests.length, 2);
        const byType = Object.fromEntries(idx.manifests.map((m) => [m.artifactType, m]));
        assert.equal(byType['application/vnd.example.sig']!.digest, sha256(a1));
        assert.equal(byType['application/vnd.example.sig']!.size, a1.length);
        assert.equal(byType['application/vnd.example.sig']!.mediaType, OCI_MANIFEST);
        assert.deepEqual(byType['application/vnd.example.sig']!.annotations, { 'org.example': 'one' });

        const filtered = await fetch(`${r.url}/v2/art/repo/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
        assert.equal(filtered.headers.get('oci-filters-applied'), 'artifactType');
        const f = (await filtered.json()) as { manifests: { digest: string }[] };
        assert.deepEqual(f.manifests.map((m) => m.digest), [sha256(a2)]);

        const none = await fetch(`${r.url}/v2/art/repo/referrers/${sha256('nothing refers to me')}`);
        assert.equal(none.status, 200);
        assert.deepEqual(((await none.json()) as { manifests: unknown[] }).manifests, []);
        const bad = await fetch(`${r.url}/v2/art/repo/referrers/sha256:nothex`);
        assert.equal(bad.status, 400);

        // Deleting a referrer removes it from the list.
        assert.equal((await fetch(`${r.url}/v2/art/repo/manifests/${sha256(a2)}`, { method: 'DELETE' })).status, 202);
        const after = (await (await fetch(`${r.url}/v2/art/repo/referrers/${subject.digest}`)).json()) as { manifests: unknown[] };
        assert.equal(after.manifests.length, 1);
      });

      it('a subject need not exist yet; the config mediaType is the artifactType fallback', async () => {
        const cfg = await pushBlob(r.url, 'art/early', JSON.stringify({ kind: 'cfg' }));
        const absent = sha256('future subject');
        const body = Buffer.from(JSON.stringify({
          schemaVersion: 2, mediaType: OCI_MANIFEST,
          config: { mediaType: 'application/vnd.example.config+json', ...cfg }, layers: [],
          subject: { mediaType: OCI_MANIFEST, digest: absent, size: 123 },
        }));
        const put = await fetch(`${r.url}/v2/art/early/manifests/${sha256(body)}`, { method: 'PUT', body, headers: { 'Content-Type': OCI_MANIFEST } });
        assert.equal(put.status, 201);
        assert.equal(put.headers.get('oci-subject'), absent);
        const idx = (await (await fetch(`${r.url}/v2/art/early/referrers/${absent}`)).json()) as { manifests: { artifactType: string }[] };
        assert.equal(idx.manifests[0]!.artifactType, 'application/vnd.example.config+json');
      });
    });

    describe('listings', () => {
      it('tags list in lexical order with n/last pagination and Link', async () => {
        const img = await pushImage(r.url, 'list/tags', 'c');
        for (const t of ['a', 'B', 'b', 'd', 'e']) {
          assert.equal((await fetch(`${r.url}/v2/list/tags/manifests/${t}`, { method: 'PUT', body: img.body, headers: { 'Content-Type': OCI_MANIFEST } })).status, 201);
        }
        const all = (await (await fetch(`${r.url}/v2/list/tags/tags/list`)).json()) as { name: string; tags: string[] };
        assert.equal(all.name, 'list/tags');
        assert.deepEqual(all.tags, ['B', 'a', 'b', 'c', 'd', 'e']);
        const p1 = await fetch(`${r.url}/v2/list/tags/tags/list?n=2`);
        assert.deepEqual(((await p1.json()) as { tags: string[] }).tags, ['B', 'a']);
        const link = p1.headers.get('link')!;
        assert.match(link, /^<\/v2\/list\/tags\/tags\/list\?n=2&last=a>; rel="next"$/);
        const next = link.slice(1, link.indexOf('>'));
        const p2 = await fetch(`${r.url}${next}`);
        assert.deepEqual(((await p2.json()) as { tags: string[] }).tags, ['b', 'c']);
        const p3 = await fetch(`${r.url}/v2/list/tags/tags/list?n=2&last=c`);
        assert.deepEqual(((await p3.json()) as { tags: string[] }).tags, ['d', 'e']);
        assert.equal(p3.headers.get('link'), null);
        const zero = await fetch(`${r.url}/v2/list/tags/tags/list?n=0`);
        assert.deepEqual(((await zero.json()) as { tags: string[] }).tags, []);
        // CVE-2023-2253: a huge n is clamped, not allocated.
        const huge = await fetch(`${r.url}/v2/list/tags/tags/list?n=999999999999`);
        assert.equal(huge.status, 200);
        assert.equal(((await huge.json()) as { tags: string[] }).tags.length, 6);
        for (const n of ['-1', 'abc', '1e9']) {
          const bad = await fetch(`${r.url}/v2/list/tags/tags/list?n=${n}`);
          assert.equal(bad.status, 400, n);
          assert.equal(await errorCode(bad), 'PAGINATION_NUMBER_INVALID');
        }
        const unknown = await fetch(`${r.url}/v2/list/none/tags/list`);
        assert.equal(unknown.status, 404);
        assert.equal(await errorCode(unknown), 'NAME_UNKNOWN');
      });

      it('catalog lists repositories in lexical order with pagination', async () => {
        for (const n of ['cat/b', 'cat/a/deep', 'cat/a', 'cat/a-z']) await pushImage(r.url, n, 't');
        const all = (await (await fetch(`${r.url}/v2/_catalog`)).json()) as { repositories: string[] };
        const cats = all.repositories.filter((x) => x.startsWith('cat/'));
        assert.deepEqual(cats, ['cat/a', 'cat/a-z', 'cat/a/deep', 'cat/b']);
        assert.deepEqual([...all.repositories].sort(), all.repositories);
        const p = await fetch(`${r.url}/v2/_catalog?n=2&last=cat/a`);
        assert.deepEqual(((await p.json()) as { repositories: string[] }).repositories, ['cat/a-z', 'cat/a/deep']);
        assert.match(p.headers.get('link')!, /^<\/v2\/_catalog\?n=2&last=cat%2Fa%2Fdeep>; rel="next"$/);
        const huge = await fetch(`${r.url}/v2/_catalog?n=99999999999999`);
        assert.equal(huge.status, 200);
      });
    });

    describe('names', () => {
      it('invalid repository names are NAME_INVALID', async () => {
        for (const name of ['UPPER/case', 'a//b', '-lead', 'a/_layers', 'a/.hidden', 'x'.repeat(256)]) {
          const res = await fetch(`${r.url}/v2/${name}/tags/list`);
          assert.equal(res.status, 400, name);
          assert.equal(await errorCode(res), 'NAME_INVALID');
        }
        // Traversal that fetch would normalise away: send it raw.
        const out = await raw(r.url, 'GET /v2/a/../../etc/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { waitMs: 1000 });
        assert.match(out, /^HTTP\/1\.1 400/);
        assert.match(out, /NAME_INVALID/);
        const enc = await fetch(`${r.url}/v2/a%2F..%2F..%2Fetc/tags/list`);
        assert.equal(enc.status, 400);
      });

      it('names may contain the route keywords', async () => {
        const img = await pushImage(r.url, 'a/blobs/manifests', 'tags');
        const get = await fetch(`${r.url}/v2/a/blobs/manifests/manifests/tags`);
        assert.equal(get.status, 200);
        assert.equal(get.headers.get('docker-content-digest'), img.digest);
      });
    });
  });
}

describe('registry modes', () => {
  it('deletes are refused unless enabled', async () => {
    await using r = await startTestRegistry('inmemory');
    const img = await pushImage(r.url, 'mode/nodelete', 't');
    const res = await fetch(`${r.url}/v2/mode/nodelete/manifests/${img.digest}`, { method: 'DELETE' });
    assert.equal(res.status, 405);
    assert.equal(await errorCode(res), 'UNSUPPORTED');
    assert.equal((await fetch(`${r.url}/v2/mode/nodelete/manifests/t`)).status, 200);
  });

  it('read-only refuses every write but serves reads', async () => {
    await using rw = await startTestRegistry('inmemory');
    const img = await pushImage(rw.url, 'mode/ro', 't');
    await using ro = await startTestRegistry('inmemory', { readOnly: true }, {}, { driver: rw.driver });
    assert.equal((await fetch(`${ro.url}/v2/mode/ro/manifests/t`)).status, 200);
    const cfg = JSON.parse(img.body.toString()).config.digest as string;
    assert.equal((await fetch(`${ro.url}/v2/mode/other/blobs/${cfg}`, { method: 'HEAD' })).status, 404, 'no implicit mount when read-only');
    for (const [method, path] of [['POST', '/v2/mode/ro/blobs/uploads/'], ['PUT', '/v2/mode/ro/manifests/x'], ['DELETE', `/v2/mode/ro/manifests/${img.digest}`]] as const) {
      const res = await fetch(`${ro.url}${path}`, { method, body: method === 'PUT' ? img.body : undefined });
      assert.equal(res.status, 405, `${method} ${path}`);
      assert.equal(await errorCode(res), 'UNSUPPORTED');
    }
  });

  it('acknowledged blobs are committed to storage when the server closes', async () => {
    const existing = await makeDriver('filesystem');
    try {
      const r = await startTestRegistry('filesystem', {}, {}, existing);
      const blobs = await Promise.all(Array.from({ length: 8 }, (_, i) => pushBlob(r.url, 'flush/me', `blob ${i}`.repeat(10_000))));
      await r.stop();
      for (const b of blobs) {
        assert.equal((await existing.driver.stat(paths.blob(b.digest)))?.size, b.size);
        assert.ok(await existing.driver.stat(paths.layerLink('flush/me', b.digest)));
      }
      assert.deepEqual(await existing.driver.list('repositories/flush/me/_uploads'), []);
    } finally {
      await rm(existing.root!, { recursive: true, force: true });
    }
  });

  it('a stalled upload is dropped after the idle timeout and leaves the upload as it was', async () => {
    await using r = await startTestRegistry('inmemory', { idleTimeoutMs: 300 });
    const start = await fetch(`${r.url}/v2/slow/loris/blobs/uploads/`, { method: 'POST' });
    const loc = start.headers.get('location')!;
    const t0 = Date.now();
    const out = await new Promise<string>((resolve) => {
      const sock = connect(Number(new URL(r.url).port), '127.0.0.1');
      let got = '';
      sock.on('data', (d) => (got += d.toString()));
      sock.on('close', () => resolve(got));
      sock.on('error', () => resolve(got));
      sock.write(`PATCH ${loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a little`);
      setTimeout(() => { sock.destroy(); resolve('still open'); }, 5000).unref();
    });
    assert.notEqual(out, 'still open');
    assert.ok(Date.now() - t0 < 4000);
    const st = await fetch(`${r.url}${loc}`);
    assert.equal(st.status, 204);
    assert.equal(st.headers.get('range'), '0-0');
  });

  it('a manifest deleted by another process disappears after the cache TTL', async () => {
    await using a = await startTestRegistry('inmemory', { allowDelete: true }, { cacheTtlMs: 50 });
    await using b = await startTestRegistry('inmemory', { allowDelete: true }, { cacheTtlMs: 50 }, { driver: a.driver });
    const img = await pushImage(a.url, 'cache/x', 't');
    assert.equal((await fetch(`${b.url}/v2/cache/x/manifests/t`)).status, 200);
    assert.equal((await fetch(`${a.url}/v2/cache/x/manifests/${img.digest}`, { method: 'DELETE' })).status, 202);
    await new Promise((res) => setTimeout(res, 80));
    assert.equal((await fetch(`${b.url}/v2/cache/x/manifests/t`)).status, 404);
    assert.equal((await fetch(`${b.url}/v2/cache/x/manifests/${img.digest}`)).status, 404);
  });
});
