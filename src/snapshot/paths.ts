// On-disk layout of the overlay snapshotter. No other module joins paths into this tree.
//
//   <root>/                          e.g. /var/lib/berth/snapshots
//     l/<short>                      -> ../committed/<hex>/fs   6-char links used in lowerdir=,
//                                      so ~100 layers fit the mount data page (4096 bytes)
//     committed/<hex>/               one per committed snapshot, <hex> = chain ID hex
//       fs/                          the layer's diff: an overlay lower dir (whiteouts are
//                                      c 0:0 devices, opaque dirs trusted.overlay.opaque=y)
//       meta.json                    CommittedMeta, written before the dir becomes visible
//     active/<key>/                  one per writable snapshot (container rootfs, build step)
//       fs/                          overlay upperdir
//       work/                        overlay workdir
//       meta.json                    ActiveMeta
//     tmp/<random>/                  unpacks and commits in progress; renamed into committed/
//                                      or active/ when complete; whatever is here at init is
//                                      debris of a crash and is removed
import { join } from 'node:path';
import { digestHex, parseDigest, type Digest } from '../core/digest.ts';
import { invalidArgument } from '../core/errors.ts';

/** Active snapshot keys are caller-chosen names (container IDs, build step keys). */
const KEY_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function isValidKey(key: string): boolean {
  return KEY_RE.test(key);
}

export function validateKey(key: string): string {
  if (!KEY_RE.test(key)) throw invalidArgument(`invalid snapshot key ${JSON.stringify(key)}`);
  return key;
}

export class SnapshotPaths {
  readonly root: string;
  constructor(root: string) {
    this.root = root;
  }
  get links(): string {
    return join(this.root, 'l');
  }
  link(short: string): string {
    return join(this.root, 'l', short);
  }
  /** Target stored in l/<short>: relative, so the tree can be moved. */
  linkTarget(chainId: Digest): string {
    return join('..', 'committed', digestHex(parseDigest(chainId)), 'fs');
  }
  get committedDir(): string {
    return join(this.root, 'committed');
  }
  committed(chainId: Digest): string {
    return join(this.root, 'committed', digestHex(parseDigest(chainId)));
  }
  get activeDir(): string {
    return join(this.root, 'active');
  }
  active(key: string): string {
    return join(this.root, 'active', validateKey(key));
  }
  get tmp(): string {
    return join(this.root, 'tmp');
  }
  static fs(dir: string): string {
    return join(dir, 'fs');
  }
  static work(dir: string): string {
    return join(dir, 'work');
  }
  static meta(dir: string): string {
    return join(dir, 'meta.json');
  }
}
