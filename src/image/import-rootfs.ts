// `docker import` (POST /images/create?fromSrc=-): a root filesystem tar (plain, gzip or zstd) as
// a one-layer image. The tar is spooled once to scratch space while its diffID is hashed (the
// snapshot's chain ID must be known before the unpack starts), then stored as the layer blob
// and unpacked. Config: empty, plus `changes`; history: one entry with the message.
import { createReadStream, createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes, createHash } from 'node:crypto';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Digest } from '../core/digest.ts';
import { MediaType, type ImageConfig, type Platform } from '../core/oci.ts';
import { formatReference, parseReference } from '../core/reference.ts';
import { invalidArgument } from '../core/errors.ts';
import { autoDecompress, LAYER_CHUNK } from '../layer/compression.ts';
import { applyChanges } from './image-changes.ts';
import type { ImageService } from './image-service.ts';
import type { StoredImage } from './image-store.ts';

export interface ImportOptions {
  /** "repo" or "repo:tag" (Docker's `repo` parameter); with `tag` separately. */
  repo?: string;
  tag?: string;
  changes?: string[];
  message?: string;
  platform?: Platform;
  /** Shown in the default history comment ("Imported from -"). */
  source?: string;
  signal?: AbortSignal;
}

class Sha256 extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/** The tag to record for Docker's repo/tag parameters, or undefined for an untagged import. */
export function importTag(repo: string | undefined, tag: string | undefined): string | undefined {
  if (!repo) return undefined;
  let ref;
  try {
    ref = parseReference(repo, { defaultTag: false });
  } catch {
    throw invalidArgument('invalid reference format');
  }
  if (ref.digest) throw invalidArgument('cannot import digest reference');
  if (tag) {
    try {
      ref = parseReference(`${formatReference({ domain: ref.domain, path: ref.path })}:${tag}`);
    } catch {
      throw invalidArgument('invalid reference format');
    }
  }
  return formatReference({ ...ref, tag: ref.tag ?? 'latest' });
}

export async function importRootfs(images: ImageService, body: Readable, opts: ImportOptions = {}): Promise<StoredImage> {
  const tag = importTag(opts.repo, opts.tag);
  const platform = opts.platform ?? images.defaultPlatform();
  const tmp = join(images.paths.tmp, `import-${randomBytes(8).toString('hex')}.tar`);
  try {
    const hasher = new Sha256();
    const sig = opts.signal ? { signal: opts.signal } : {};
    await pipeline(body, autoDecompress({ chunkSize: LAYER_CHUNK }), hasher, createWriteStream(tmp, { mode: 0o600 }), sig);
    const diffId = `sha256:${hasher.hash.digest('hex')}` as Digest;
    const size = hasher.bytes;
    const lease = await images.lease([diffId]);
    try {
      if (!(await images.content.has(diffId))) await images.content.ingest(createReadStream(tmp), { digest: diffId, size }, opts.signal);
      if (!(await images.snapshotter.stat(diffId))) {
        await images.snapshotter.unpack(diffId, undefined, createReadStream(tmp), opts.signal ? { signal: opts.signal } : {});
      }
      const created = new Date().toISOString();
      const comment = opts.message || `Imported from ${opts.source ?? '-'}`;
      const config: ImageConfig & { comment?: string } = {
        created,
        architecture: platform.architecture,
        os: platform.os,
        ...(platform.variant ? { variant: platform.variant } : {}),
        comment,
        config: applyChanges({}, opts.changes ?? []),
        rootfs: { type: 'layers', diff_ids: [diffId] },
        history: [{ created, comment }],
      };
      return await images.createImage(config, [{ diffId, blob: { digest: diffId, size, mediaType: MediaType.OciLayer } }], tag ? [tag] : []);
    } finally {
      lease.release();
    }
  } finally {
    await rm(tmp, { force: true });
  }
}
