// Classifying and validating manifest/index documents as they come off the wire, before anything
// else reads them. Refused here:
//   - schema 1 (Docker's deprecated signed manifests), with a clear message;
//   - ambiguous documents with both "manifests" and "layers"/"config" (CVE-2021-41190), and a
//     "mediaType" field that contradicts the Content-Type;
//   - descriptors with invalid digests or sizes (CVE-2024-3727: digests end up in URLs and paths).
// Platform selection from an index follows Docker: the first entry matching the wanted platform,
// an exact variant match preferred; no match is NotFound listing what the index offers.
import { parseDigest } from '../core/digest.ts';
import { invalidArgument, notFound, notImplemented } from '../core/errors.ts';
import {
  MediaType, MANIFEST_TYPES, INDEX_TYPES, formatPlatform, platformMatches,
  type Descriptor, type ImageIndex, type ImageManifest, type Platform,
} from '../core/oci.ts';

export const SCHEMA1_TYPES: readonly string[] = [
  'application/vnd.docker.distribution.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
];

/** Accept header for manifest GETs: every type we read, schema 1 last so it can be named in the error. */
export const MANIFEST_ACCEPT = [
  MediaType.OciIndex, MediaType.DockerManifestList, MediaType.OciManifest, MediaType.DockerManifest,
  ...SCHEMA1_TYPES.map((t) => `${t};q=0.1`),
].join(', ');

export type ManifestDocument =
  | { kind: 'manifest'; mediaType: string; document: ImageManifest }
  | { kind: 'index'; mediaType: string; document: ImageIndex };

export const SCHEMA1_MESSAGE =
  'unsupported manifest format: Docker Image manifest version 2, schema 1 is deprecated and not supported; push the image as OCI or Docker schema 2';

function checkDescriptor(d: unknown, where: string): Descriptor {
  if (typeof d !== 'object' || d === null) throw invalidArgument(`invalid manifest: ${where} is not a descriptor`);
  const o = d as Record<string, unknown>;
  if (typeof o.mediaType !== 'string' || o.mediaType === '') throw invalidArgument(`invalid manifest: ${where} has no mediaType`);
  if (typeof o.digest !== 'string') throw invalidArgument(`invalid manifest: ${where} has no digest`);
  parseDigest(o.digest);
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0) throw invalidArgument(`invalid manifest: ${where} has an invalid size`);
  return d as Descriptor;
}

/** Bare media type of a Content-Type value ("application/json; charset=utf-8" -> "application/json"). */
export function bareMediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Parse and validate a manifest or index. `contentType` is the response's Content-Type, if any. */
export function classifyManifest(bytes: Uint8Array, contentType?: string): ManifestDocument {
  const ct = bareMediaType(contentType);
  if (SCHEMA1_TYPES.includes(ct)) throw notImplemented(SCHEMA1_MESSAGE);
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch {
    throw invalidArgument('invalid manifest: not JSON');
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw invalidArgument('invalid manifest: not a JSON object');
  const o = doc as Record<string, unknown>;
  if (o.schemaVersion === 1) throw notImplemented(SCHEMA1_MESSAGE);
  if (o.schemaVersion !== 2) throw invalidArgument(`invalid manifest: unsupported schemaVersion ${JSON.stringify(o.schemaVersion)}`);
  const hasManifests = 'manifests' in o;
  const hasImageParts = 'layers' in o || 'config' in o;
  if (hasManifests && hasImageParts) {
    throw invalidArgument('invalid manifest: ambiguous document has both "manifests" and "layers"/"config"');
  }
  const known = [...MANIFEST_TYPES, ...INDEX_TYPES];
  let mt: string | undefined;
  if (o.mediaType !== undefined) {
    if (typeof o.mediaType !== 'string') throw invalidArgument('invalid manifest: mediaType is not a string');
    mt = o.mediaType;
    if (known.includes(ct) && ct !== mt) throw invalidArgument(`invalid manifest: mediaType ${mt} does not match Content-Type ${ct}`);
  } else if (known.includes(ct)) {
    mt = ct;
  } else {
    // OCI documents may omit mediaType; the structure then decides (no ambiguity, checked above).
    mt = hasManifests ? MediaType.OciIndex : MediaType.OciManifest;
  }
  if (INDEX_TYPES.includes(mt)) {
    if (hasImageParts) throw invalidArgument(`invalid manifest: ${mt} with "layers"/"config"`);
    if (!Array.isArray(o.manifests)) throw invalidArgument('invalid index: "manifests" is not a list');
    o.manifests.forEach((d, i) => checkDescriptor(d, `manifests[${i}]`));
    return { kind: 'index', mediaType: mt, document: o as unknown as ImageIndex };
  }
  if (MANIFEST_TYPES.includes(mt)) {
    if (hasManifests) throw invalidArgument(`invalid manifest: ${mt} with "manifests"`);
    checkDescriptor(o.config, 'config');
    if (!Array.isArray(o.layers)) throw invalidArgument('invalid manifest: "layers" is not a list');
    o.layers.forEach((d, i) => checkDescriptor(d, `layers[${i}]`));
    return { kind: 'manifest', mediaType: mt, document: o as unknown as ImageManifest };
  }
  throw notImplemented(`unsupported manifest media type ${mt}`);
}

/**
 * Pick the manifest for `want` from an index. Entries for other platforms and attestation
 * manifests (platform unknown/unknown) never match.
 */
export function selectPlatform(index: ImageIndex, want: Platform): Descriptor {
  const candidates = index.manifests.filter((d) => MANIFEST_TYPES.includes(d.mediaType) && platformMatches(want, d.platform));
  const exact = candidates.find((d) => (d.platform?.variant ?? '') === (want.variant ?? ''));
  const pick = exact ?? candidates[0];
  if (pick) return pick;
  const available = [...new Set(index.manifests.filter((d) => d.platform && d.platform.os !== 'unknown').map((d) => formatPlatform(d.platform!)))];
  throw notFound(
    `no matching manifest for ${formatPlatform(want)} in the manifest list entries` +
      (available.length ? ` (available: ${available.join(', ')})` : ''),
  );
}
