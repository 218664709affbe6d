// `docker save` (GET /images/get, GET /images/{name}/get): a tar that is both a docker-archive
// (manifest.json, repositories) and an OCI image layout (oci-layout, index.json, blobs/), as
// Docker 25+ writes it. Blobs are the stored ones, byte for byte (config, manifest, layers as
// pulled, compressed or not), so the image ID and manifest digest survive a save/load round
// trip. The tar is streamed: nothing is staged on disk.
//
//   blobs/sha256/<hex>      every config, manifest and layer blob, once
//   index.json              OCI index: one entry per (image, tag), annotated with its name
//   manifest.json           [{"Config":"blobs/sha256/..","RepoTags":[..],"Layers":["blobs/sha256/..",..]}]
//   oci-layout              {"imageLayoutVersion":"1.0.0"}
//   repositories            {"busybox":{"latest":"<image id hex>"}}
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pack as tarPack, type Pack } from 'tar-stream';
import { digestHex, type Digest } from '../core/digest.ts';
import { internal, notFound } from '../core/errors.ts';
import { MediaType, type Descriptor, type ImageManifest } from '../core/oci.ts';
import { familiarName, parseReference } from '../core/reference.ts';
import type { ImageService } from './image-service.ts';
import { familiar, repoOf, type StoredImage } from './image-store.ts';

interface SavedImage {
  img: StoredImage;
  /** Normalized tags to record for it. */
  tags: string[];
  manifestDigest: Digest;
  manifest: ImageManifest;
  manifestMediaType: string;
}

/**
 * Which images and tags a list of names means: a tag or digest names one image (with that tag);
 * an ID names an image without tags; a bare repository name ("busybox") every tag of it.
 */
function select(images: ImageService, names: string[]): Map<Digest, Set<string>> {
  const out = new Map<Digest, Set<string>>();
  const add = (id: Digest, tag?: string) => {
    let s = out.get(id);
    if (!s) out.set(id, (s = new Set()));
    if (tag) s.add(tag);
  };
  for (const name of names) {
    let ref;
    try {
      ref = parseReference(name, { defaultTag: false });
    } catch {
      ref = undefined;
    }
    if (ref && ref.tag === undefined && ref.digest === undefined) {
      const repo = `${ref.domain}/${ref.path}`;
      const hits = images.store.all().filter((i) => i.repoTags.some((t) => repoOf(t) === repo));
      if (hits.length) {
        for (const i of hits) for (const t of i.repoTags) if (repoOf(t) === repo) add(i.id, t);
        continue;
      }
    }
    const img = images.get(name);
    if (ref?.tag !== undefined && !ref.digest) add(img.id, `${ref.domain}/${ref.path}:${ref.tag}`);
    else if (ref?.digest) add(img.id, img.repoTags.find((t) => repoOf(t) === `${ref.domain}/${ref.path}`));
    else add(img.id);
  }
  return out;
}

async function ensureManifest(images: ImageService, img: StoredImage): Promise<{ digest: Digest; manifest: ImageManifest; mediaType: string }> {
  if (!img.manifestDigest) throw notFound(`image ${img.id} has no manifest`);
  const manifest = await images.manifest(img.manifestDigest);
  return { digest: img.manifestDigest, manifest, mediaType: manifest.mediaType ?? MediaType.OciManifest };
}

function addEntry(p: Pack, name: string, data: string | Buffer): Promise<void> {
  return new Promise((res, rej) => p.entry({ name, mode: 0o644, mtime: new Date(0) }, data, (err) => (err ? rej(err) : res())));
}

export async function saveImages(images: ImageService, names: string[]): Promise<Readable> {
  const selected = select(images, names);
  const saved: SavedImage[] = [];
  const blobs: Descriptor[] = [];
  const seen = new Set<string>();
  const want = (d: Descriptor) => {
    if (!seen.has(d.digest)) {
      seen.add(d.digest);
      blobs.push(d);
    }
  };
  for (const [id, tags] of selected) {
    const img = images.store.get(id);
    if (!img) throw notFound(`No such image: ${id}`);
    const m = await ensureManifest(images, img);
    for (const l of m.manifest.layers) {
      if (!(await images.content.has(l.digest))) throw notFound(`layer blob ${l.digest} of image ${id} is not stored`);
    }
    saved.push({ img, tags: [...tags], manifestDigest: m.digest, manifest: m.manifest, manifestMediaType: m.mediaType });
    want(m.manifest.config);
    for (const l of m.manifest.layers) want(l);
    const mbytes = await images.content.info(m.digest);
    want({ mediaType: m.mediaType, digest: m.digest, size: mbytes?.size ?? 0 });
  }

  // Hold everything we are about to stream against a concurrent rmi's GC.
  const lease = await images.lease(blobs.map((b) => b.digest));
  const p = tarPack();
  const out = new PassThrough();
  const writing = (async () => {
    try {
      for (const dir of ['blobs/', 'blobs/sha256/']) {
        await new Promise<void>((res, rej) => p.entry({ name: dir, type: 'directory', mode: 0o755, mtime: new Date(0) }, (err) => (err ? rej(err) : res())));
      }
      for (const b of blobs) {
        const info = await images.content.info(b.digest);
        if (!info) throw internal(`blob ${b.digest} vanished during save`);
        const entry = p.entry({ name: `blobs/sha256/${digestHex(b.digest)}`, size: info.size, mode: 0o644, mtime: new Date(0) });
        await pipeline(images.content.createReadStream(b.digest), entry);
      }
      const index = {
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: saved.flatMap((s) => {
          const desc = { mediaType: s.manifestMediaType, digest: s.manifestDigest, size: blobs.find((b) => b.digest === s.manifestDigest)!.size };
          if (s.tags.length === 0) return [desc];
          return s.tags.map((t) => ({ ...desc, annotations: { 'io.containerd.image.name': t, 'org.opencontainers.image.ref.name': t.slice(t.lastIndexOf(':') + 1) } }));
        }),
      };
      await addEntry(p, 'index.json', JSON.stringify(index));
      const manifestJson = saved.map((s) => ({
        Config: `blobs/sha256/${digestHex(s.manifest.config.digest)}`,
        RepoTags: s.tags.length ? s.tags.map(familiar) : null,
        Layers: s.manifest.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`),
      }));
      await addEntry(p, 'manifest.json', JSON.stringify(manifestJson));
      await addEntry(p, 'oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
      const repositories: Record<string, Record<string, string>> = {};
      for (const s of saved) {
        for (const t of s.tags) {
          const ref = parseReference(t);
          (repositories[familiarName(ref)] ??= {})[ref.tag!] = digestHex(s.img.id);
        }
      }
      if (Object.keys(repositories).length) await addEntry(p, 'repositories', JSON.stringify(repositories));
      p.finalize();
    } catch (err) {
      p.destroy(err as Error);
    } finally {
      lease.release();
    }
  })();
  void writing;
  p.on('error', (err) => out.destroy(err));
  p.pipe(out);
  return out;
}
