// Validation of everything a URL brings into the registry: repository names (the spec grammar,
// via core/reference.ts), tags, digests and upload ids. Nothing reaches paths.ts unchecked.
import { isValidRepositoryPath, isValidTag } from '../core/reference.ts';
import { isDigest, type Digest } from '../core/digest.ts';
import { registryError } from './registry-error.ts';

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function checkName(name: string): string {
  if (!isValidRepositoryPath(name)) throw registryError('NAME_INVALID', 'invalid repository name', { name });
  return name;
}

export function checkDigest(s: string): Digest {
  if (!isDigest(s)) throw registryError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: s, reason: 'invalid digest format' });
  return s;
}

export function isUploadId(s: string): boolean {
  return UUID_RE.test(s);
}

/** A manifest reference from a URL: a digest (has ':') or a tag. */
export type ManifestRef = { digest: Digest; tag?: undefined } | { tag: string; digest?: undefined };

export function parseManifestRef(ref: string): ManifestRef {
  if (ref.includes(':')) return { digest: checkDigest(ref) };
  if (!isValidTag(ref)) throw registryError('TAG_INVALID', 'manifest tag did not match URI', { tag: ref });
  return { tag: ref };
}
