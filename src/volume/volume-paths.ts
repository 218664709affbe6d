// Where the volume service keeps its state. No other code joins paths into this root.
//
//   <dataRoot>/volumes/
//     <name>/
//       meta.json        the record: driver, options, labels, created, anonymous
//       _data/           the content (or the mount point of a tmpfs/device volume)
//     .refs/<containerId>.json   volumes a container uses (names; which ones are anonymous)
//
// Volume names match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (Docker's rule), so `.refs` cannot clash.
import { join } from 'node:path';
import { invalidArgument } from '../core/errors.ts';

export const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;
const CONTAINER_ID = /^[0-9a-zA-Z][0-9a-zA-Z_.-]{0,127}$/;

export function validateVolumeName(name: string): void {
  if (!VOLUME_NAME.test(name) || name.length > 255) {
    throw invalidArgument(`create ${name}: "${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
}

export class VolumePaths {
  readonly root: string;
  readonly refsDir: string;

  constructor(dataRoot: string) {
    this.root = join(dataRoot, 'volumes');
    this.refsDir = join(this.root, '.refs');
  }

  dir(name: string): string {
    validateVolumeName(name);
    return join(this.root, name);
  }

  data(name: string): string {
    return join(this.dir(name), '_data');
  }

  meta(name: string): string {
    return join(this.dir(name), 'meta.json');
  }

  refs(containerId: string): string {
    if (!CONTAINER_ID.test(containerId)) throw invalidArgument(`invalid container id ${JSON.stringify(containerId)}`);
    return join(this.refsDir, `${containerId}.json`);
  }
}
