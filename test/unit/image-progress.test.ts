import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { isKind } from '../../src/core/errors.ts';
import { encodeJsonMessage, humanSize, progressMessage, progressText } from '../../src/image/progress.ts';
import { applyChanges } from '../../src/image/image-changes.ts';
import { autoDecompress, LAYER_CHUNK } from '../../src/layer/compression.ts';

const inflate = (opts: { maxBytes?: number } = {}) => autoDecompress({ ...opts, chunkSize: LAYER_CHUNK });
import { pullReference } from '../../src/image/image-routes.ts';
import { importTag } from '../../src/image/import-rootfs.ts';

test("humanSize is go-units' HumanSize (decimal, 4 significant digits)", () => {
  assert.equal(humanSize(0), '0B');
  assert.equal(humanSize(5), '5B');
  assert.equal(humanSize(32768), '32.77kB');
  assert.equal(humanSize(2215742), '2.216MB');
  assert.equal(humanSize(1000), '1kB');
  assert.equal(humanSize(1_500_000_000), '1.5GB');
});

test('progress text and messages match dockerd', () => {
  assert.equal(progressText(32768, 2215742), '[>                                                  ]  32.77kB/2.216MB');
  assert.equal(progressText(2215742, 2215742), '[==================================================>]  2.216MB/2.216MB');
  assert.equal(progressText(0, 0), '');
  assert.equal(encodeJsonMessage(progressMessage('abc', 'Pulling fs layer')), '{"status":"Pulling fs layer","progressDetail":{},"id":"abc"}');
  assert.equal(
    encodeJsonMessage(progressMessage('abc', 'Downloading', 32768, 2215742)),
    '{"status":"Downloading","progressDetail":{"current":32768,"total":2215742},"progress":"[\\u003e                                                  ]  32.77kB/2.216MB","id":"abc"}',
  );
  assert.equal(encodeJsonMessage({ id: 'latest', status: 'Pulling from library/busybox' }), '{"status":"Pulling from library/busybox","id":"latest"}');
  assert.equal(encodeJsonMessage({ error: 'a<b', errorDetail: { message: 'a<b' } }), '{"errorDetail":{"message":"a\\u003cb"},"error":"a\\u003cb"}');
});

test('import changes: Dockerfile instructions edit the config', () => {
  const c = applyChanges({ Env: ['A=0'] }, ['CMD echo hi', 'ENV A=1 B=2', 'ENV C three words', 'EXPOSE 80 53/udp', 'LABEL "a b"=c d=e', 'VOLUME ["/v1", "/v2"]', 'WORKDIR /w', 'USER u:g', 'ENTRYPOINT ["/e"]', 'STOPSIGNAL SIGINT']);
  assert.deepEqual(c.Cmd, ['/bin/sh', '-c', 'echo hi']);
  assert.deepEqual(c.Env, ['A=1', 'B=2', 'C=three words']);
  assert.deepEqual(c.ExposedPorts, { '80/tcp': {}, '53/udp': {} });
  assert.deepEqual(c.Labels, { 'a b': 'c', d: 'e' });
  assert.deepEqual(c.Volumes, { '/v1': {}, '/v2': {} });
  assert.equal(c.WorkingDir, '/w');
  assert.equal(c.User, 'u:g');
  assert.deepEqual(c.Entrypoint, ['/e']);
  assert.equal(c.StopSignal, 'SIGINT');
  assert.throws(() => applyChanges({}, ['RUN rm -rf /']), (e: unknown) => isKind(e, 'InvalidArgument'));
  assert.throws(() => applyChanges({}, ['EXPOSE http']), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('pull and import references from Docker query parameters', () => {
  assert.equal(pullReference('busybox', 'latest'), 'docker.io/library/busybox:latest');
  assert.equal(pullReference('busybox', null), 'docker.io/library/busybox:latest');
  assert.equal(pullReference('127.0.0.1:5000/a/b', '1'), '127.0.0.1:5000/a/b:1');
  assert.equal(pullReference('busybox', `sha256:${'a'.repeat(64)}`), `docker.io/library/busybox@sha256:${'a'.repeat(64)}`);
  assert.throws(() => pullReference('Bad', 'x'), (e: unknown) => isKind(e, 'InvalidArgument') && /invalid reference format/.test((e as Error).message));
  assert.equal(importTag('me/app', undefined), 'docker.io/me/app:latest');
  assert.equal(importTag('me/app', '2'), 'docker.io/me/app:2');
  assert.equal(importTag('me/app:3', undefined), 'docker.io/me/app:3');
  assert.equal(importTag(undefined, '2'), undefined);
});

async function collect(s: NodeJS.ReadableStream): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const c of s) out.push(c as Buffer);
  return Buffer.concat(out);
}

test('inflate: gzip, zstd and plain, in big chunks, bounded', async () => {
  const data = Buffer.concat([randomBytes(3 << 20), Buffer.alloc(2 << 20)]);
  const pieces = (b: Buffer) => Readable.from(Array.from({ length: Math.ceil(b.length / 10000) }, (_, i) => b.subarray(i * 10000, (i + 1) * 10000)));
  for (const enc of [gzipSync(data), zstdCompressSync(data), data]) {
    const d = inflate();
    const out = collect(pieces(enc).pipe(d));
    assert.deepEqual(await out, data);
  }
  const tiny = inflate();
  assert.deepEqual(await collect(Readable.from([Buffer.from('ab')]).pipe(tiny)), Buffer.from('ab'));
  const bounded = inflate({ maxBytes: 1 << 20 });
  await assert.rejects(collect(pieces(gzipSync(data)).pipe(bounded)), (e: unknown) => isKind(e, 'InvalidArgument') && /limit/.test((e as Error).message));
  const corrupt = gzipSync(data);
  corrupt[corrupt.length >> 1]! ^= 0xff;
  await assert.rejects(collect(pieces(corrupt).pipe(inflate())), (e: unknown) => isKind(e, 'InvalidArgument'));
});
