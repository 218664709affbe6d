// The image service's on-disk layout. No other code joins paths into these directories.
//
//   <dataRoot>/
//     content/                    ContentStore (owned by the daemon): blobs/sha256/<hex>, ingest/
//     snapshots/                  OverlaySnapshotter: committed layers by chain ID, active roots
//     image/
//       images.json               the image index: every ImageRecord, written atomically
//                                 (tmp + fsync + rename + fsync dir); one file, so a tag move
//                                 (two records) is one atomic write
//       tmp/                      scratch space for imports and loads; swept at start
import { join } from 'node:path';

export interface ImagePaths {
  root: string;
  index: string;
  tmp: string;
  snapshots: string;
}

export function imagePaths(dataRoot: string): ImagePaths {
  const root = join(dataRoot, 'image');
  return {
    root,
    index: join(root, 'images.json'),
    tmp: join(root, 'tmp'),
    snapshots: join(dataRoot, 'snapshots'),
  };
}
