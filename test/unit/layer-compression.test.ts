import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { pipeline } from 'node:stream/promises';
import { gzipSync, zstdCompressSync } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import { autoDecompress, compressionOf, sniffCompression } from '../../src/layer/compression.ts';
import { MediaType } from '../../src/core/oci.ts';
import { isKind } from '../../src/core/errors.ts';

const payload = Buffer.concat([randomBytes(100_000), Buffer.alloc(300_000, 7)]);

/** The first 8 bytes in chunks of `head` bytes (the sniffing must cope), the rest in 64 KiB. */
function chunked(b: Buffer, head: number): Readable {
  const parts: Buffer[] = [];
  let i = 0;
  for (; i < Math.min(8, b.length); i += head) parts.push(b.subarray(i, Math.min(i + head, 8)));
  i = Math.min(8, b.length);
  for (; i < b.length; i += 65536) parts.push(b.subarray(i, i + 65536));
  return Readable.from(parts);
}

async function inflate(input: Buffer, chunk = 1, maxBytes?: number): Promise<Buffer> {
  const d = autoDecompress(maxBytes === undefined ? {} : { maxBytes });
  const out = buffer(d);
  out.catch(() => {}); // the pipeline reports the error
  await pipeline(chunked(input, chunk), d);
  return out;
}

test('gzip, zstd and plain are recognised from the magic bytes, even split in 1-byte chunks', async () => {
  assert.ok((await inflate(gzipSync(payload), 1)).equals(payload));
  assert.ok((await inflate(zstdCompressSync(payload), 3)).equals(payload));
  assert.ok((await inflate(payload, 65536)).equals(payload));
  assert.deepEqual(await inflate(Buffer.alloc(0)), Buffer.alloc(0));
  assert.ok((await inflate(Buffer.from('ab'))).equals(Buffer.from('ab')));
});

test('concatenated gzip members are all inflated', async () => {
  const two = Buffer.concat([gzipSync(Buffer.from('one ')), gzipSync(Buffer.from('two'))]);
  assert.equal((await inflate(two, 5)).toString(), 'one two');
});

test('output above maxBytes fails with InvalidArgument (gzip and zstd bombs)', async () => {
  const zeros = Buffer.alloc(64 * 1024 * 1024);
  for (const bomb of [gzipSync(zeros), zstdCompressSync(zeros)]) {
    assert.ok(bomb.length * 1000 < zeros.length);
    await assert.rejects(inflate(bomb, 65536, 1024 * 1024), (e: unknown) => isKind(e, 'InvalidArgument') && /layer/.test(String(e)));
  }
});

test('corrupt gzip is InvalidArgument', async () => {
  const gz = gzipSync(payload);
  gz[gz.length - 5] ^= 0xff; // breaks the CRC/size trailer
  await assert.rejects(inflate(gz, 4096), (e: unknown) => isKind(e, 'InvalidArgument'));
});

test('compressionOf and sniffCompression', () => {
  assert.equal(compressionOf(MediaType.OciLayerGzip), 'gzip');
  assert.equal(compressionOf(MediaType.DockerLayerGzip), 'gzip');
  assert.equal(compressionOf(MediaType.OciLayerZstd), 'zstd');
  assert.equal(compressionOf(MediaType.OciLayer), 'none');
  assert.equal(compressionOf('application/json'), undefined);
  assert.equal(sniffCompression(Buffer.from([0x1f, 0x8b, 8, 0])), 'gzip');
  assert.equal(sniffCompression(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  assert.equal(sniffCompression(Buffer.from('ustar')), 'none');
});

test('a zstd frame declaring a huge window is refused', async () => {
  const { constants: zc, createZstdCompress } = await import('node:zlib');
  // Streamed, so the frame carries no content size and declares the full 1 GiB window.
  const enc = createZstdCompress({ params: { [zc.ZSTD_c_windowLog]: 30, [zc.ZSTD_c_enableLongDistanceMatching]: 1 } });
  const out = buffer(enc);
  const parts = Array.from({ length: 100 }, () => randomBytes(1000));
  await pipeline(Readable.from(parts), enc);
  const frame = await out;
  await assert.rejects(inflate(frame, 4096), (e: unknown) => isKind(e, 'InvalidArgument') && /layer/.test(String(e)));
});
