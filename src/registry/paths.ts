// The registry's whole storage layout, drawn once; no other module builds a storage key.
//
//   <root>/
//     blobs/<alg>/<hex[0:2]>/<hex>                verified bytes of every blob and manifest,
//                                                 shared by all repositories (content-addressed)
//     repositories/<name>/                        <name> has one or more components: a/b/c
//       _layers/<alg>/<hex>                       link (empty): the blob belongs to the repository
//       _manifests/revisions/<alg>/<hex>          link (empty): the manifest belongs to it
//       _manifests/tags/<tag>                     content: the tagged manifest's digest
//       _referrers/<alg>/<subject-hex>/<alg>-<hex>  content: a referrer's descriptor (JSON)
//       _uploads/<uuid>/data                      bytes received so far; its mtime is the
//                                                 upload's last activity (gc expiry)
//     _tmp/                                       staging for atomic puts (filesystem driver)
//
// Repository name components start with [a-z0-9] (spec grammar), so they can never collide with
// the '_'-prefixed directories, and a validated name can never climb out of repositories/.
// Tags ([A-Za-z0-9_][A-Za-z0-9_.-]*) are single path segments. Digests and upload ids are
// validated before they reach this module.
import { digestAlgorithm, digestHex, type Digest } from '../core/digest.ts';

const hexOf = (d: Digest) => digestHex(d);

export const paths = {
  blobsRoot: 'blobs',
  repositoriesRoot: 'repositories',

  blob(d: Digest): string {
    const hex = hexOf(d);
    return `blobs/${digestAlgorithm(d)}/${hex.slice(0, 2)}/${hex}`;
  },
  repo(name: string): string {
    return `repositories/${name}`;
  },
  layerLink(name: string, d: Digest): string {
    return `repositories/${name}/_layers/${digestAlgorithm(d)}/${hexOf(d)}`;
  },
  layersDir(name: string, alg: string): string {
    return `repositories/${name}/_layers/${alg}`;
  },
  manifestsDir(name: string): string {
    return `repositories/${name}/_manifests`;
  },
  revisionLink(name: string, d: Digest): string {
    return `repositories/${name}/_manifests/revisions/${digestAlgorithm(d)}/${hexOf(d)}`;
  },
  revisionsDir(name: string, alg: string): string {
    return `repositories/${name}/_manifests/revisions/${alg}`;
  },
  tag(name: string, tag: string): string {
    return `repositories/${name}/_manifests/tags/${tag}`;
  },
  tagsDir(name: string): string {
    return `repositories/${name}/_manifests/tags`;
  },
  referrersDir(name: string, subject: Digest): string {
    return `repositories/${name}/_referrers/${digestAlgorithm(subject)}/${hexOf(subject)}`;
  },
  referrer(name: string, subject: Digest, referrer: Digest): string {
    return `${paths.referrersDir(name, subject)}/${digestAlgorithm(referrer)}-${hexOf(referrer)}`;
  },
  uploadsDir(name: string): string {
    return `repositories/${name}/_uploads`;
  },
  uploadData(name: string, uuid: string): string {
    return `repositories/${name}/_uploads/${uuid}/data`;
  },
  upload(name: string, uuid: string): string {
    return `repositories/${name}/_uploads/${uuid}`;
  },
} as const;

/** Reserved directory names inside a repository directory (never name components). */
export const REPO_META_DIRS = ['_layers', '_manifests', '_referrers', '_uploads'] as const;
