// Content digests (OCI image-spec descriptor.md). A digest is validated before it is ever used
// in a path or a URL (CVE-2024-3727): algorithm and hex length are checked here, nowhere else.
import { createHash, type Hash } from 'node:crypto';
import { invalidArgument } from './errors.ts';

export type Digest = `sha256:${string}` | `sha512:${string}`;

const DIGEST_RE = /^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

export function isDigest(s: string): s is Digest {
  return DIGEST_RE.test(s);
}

export function parseDigest(s: string): Digest {
  if (!isDigest(s)) throw invalidArgument(`invalid digest ${JSON.stringify(s)}: want sha256:<64 hex> or sha512:<128 hex>`);
  return s;
}

export function digestAlgorithm(d: Digest): 'sha256' | 'sha512' {
  return d.startsWith('sha512:') ? 'sha512' : 'sha256';
}

export function digestHex(d: Digest): string {
  return d.slice(d.indexOf(':') + 1);
}

export function sha256(data: string | Uint8Array): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function hasherFor(d: Digest): Hash {
  return createHash(digestAlgorithm(d));
}

/** Docker's short ID: the first 12 hex characters. */
export function shortId(d: string): string {
  const hex = d.includes(':') ? d.slice(d.indexOf(':') + 1) : d;
  return hex.slice(0, 12);
}
