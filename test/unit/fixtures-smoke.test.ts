// The fixtures themselves: a layout written by writeOciLayout is internally consistent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { tempDir, writeOciLayout } from '../helpers/fixtures.ts';

test('writeOciLayout writes blobs that match their digests', async () => {
  await using dir = await tempDir();
  const img = await writeOciLayout(dir.path, { layers: [Buffer.alloc(1024)] });
  const blob = await readFile(join(dir.path, 'blobs', 'sha256', img.manifestDigest.slice(7)));
  assert.equal('sha256:' + createHash('sha256').update(blob).digest('hex'), img.manifestDigest);
  const manifest = JSON.parse(blob.toString());
  assert.equal(manifest.config.digest, img.configDigest);
  assert.equal(manifest.layers.length, 1);
});
