// Parsing of Docker's mount flags into one list of mount requests (pure; unit-tested):
// HostConfig.Binds (`-v`), HostConfig.Mounts (`--mount`), HostConfig.Tmpfs (`--tmpfs`),
// image VOLUMEs and `--volumes-from`, with Docker's precedence: explicit mounts win over
// --volumes-from, which wins over image volumes; two explicit mounts on one path are an error.
import { posix } from 'node:path';
import { invalidArgument } from '../core/errors.ts';
import type { MountConfig, MountPoint } from '../core/volumes.ts';
import { validateVolumeName } from './volume-paths.ts';

export type Propagation = 'private' | 'rprivate' | 'shared' | 'rshared' | 'slave' | 'rslave';
const PROPAGATIONS = new Set(['private', 'rprivate', 'shared', 'rshared', 'slave', 'rslave']);

export type PlannedMount =
  | { kind: 'bind'; source: string; destination: string; readOnly: boolean; propagation: Propagation; createSource: boolean; mode: string }
  | { kind: 'volume'; name?: string; destination: string; readOnly: boolean; noCopy: boolean; driverOpts?: Record<string, string>; labels?: Record<string, string>; mode: string; subpath?: string }
  | { kind: 'tmpfs'; destination: string; options: string };

function cleanDest(d: string, spec: string): string {
  if (!d || !posix.isAbsolute(d)) throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${d}' mount path must be absolute`);
  const n = posix.normalize(d);
  if (n === '/') throw invalidArgument(`invalid volume specification: '${spec}': invalid mount config: destination can't be '/'`);
  return n.replace(/\/$/, '');
}

/** `-v` syntax: "/host:/ctr[:opts]", "name:/ctr[:opts]", "/ctr". */
export function parseBind(spec: string): PlannedMount {
  const parts = spec.split(':');
  if (parts.length === 1) {
    return { kind: 'volume', destination: cleanDest(parts[0]!, spec), readOnly: false, noCopy: false, mode: '' };
  }
  if (parts.length > 3 || parts.some((p, i) => p === '' && i < 2)) throw invalidArgument(`invalid volume specification: '${spec}'`);
  const [src, dst, mode = ''] = parts as [string, string, string?];
  const opts = mode ? mode.split(',') : [];
  let readOnly = false;
  let propagation: Propagation = 'rprivate';
  let noCopy = false;
  for (const o of opts) {
    if (o === 'ro') readOnly = true;
    else if (o === 'rw') readOnly = false;
    else if (o === 'z' || o === 'Z') continue; // SELinux relabel: no SELinux here
    else if (o === 'nocopy') noCopy = true;
    else if (PROPAGATIONS.has(o)) propagation = o as Propagation;
    else throw invalidArgument(`invalid mode: ${mode}`);
  }
  const destination = cleanDest(dst, spec);
  if (src.startsWith('/')) {
    if (noCopy) throw invalidArgument(`invalid mode: ${mode}`);
    return { kind: 'bind', source: posix.normalize(src), destination, readOnly, propagation, createSource: true, mode };
  }
  if (src.startsWith('.') || src.includes('/')) throw invalidArgument(`invalid volume specification: '${spec}': bind source must be an absolute path`);
  validateVolumeName(src);
  return { kind: 'volume', name: src, destination, readOnly, noCopy, mode };
}

/** `--mount` (HostConfig.Mounts). */
export function parseMount(m: MountConfig): PlannedMount {
  const type = m.Type ?? 'volume';
  const spec = JSON.stringify(m);
  if (!m.Target) throw invalidArgument('invalid mount config: Target must not be empty');
  const destination = cleanDest(m.Target, spec);
  switch (type) {
    case 'bind': {
      if (!m.Source || !posix.isAbsolute(m.Source)) throw invalidArgument(`invalid mount config for type "bind": invalid mount path: '${m.Source ?? ''}' mount path must be absolute`);
      if (m.VolumeOptions || m.TmpfsOptions) throw invalidArgument('invalid mount config for type "bind": options for another mount type given');
      const prop = m.BindOptions?.Propagation || 'rprivate';
      if (!PROPAGATIONS.has(prop)) throw invalidArgument(`invalid propagation mode: ${prop}`);
      return { kind: 'bind', source: posix.normalize(m.Source), destination, readOnly: m.ReadOnly === true, propagation: prop as Propagation, createSource: m.BindOptions?.CreateMountpoint === true, mode: '' };
    }
    case 'volume': {
      if (m.BindOptions || m.TmpfsOptions) throw invalidArgument('invalid mount config for type "volume": options for another mount type given');
      if (m.Source) validateVolumeName(m.Source);
      const sub = m.VolumeOptions?.Subpath;
      if (sub !== undefined && sub !== '') {
        if (posix.isAbsolute(sub) || posix.normalize(sub).split('/').includes('..')) throw invalidArgument(`invalid volume subpath: ${sub}`);
      }
      return {
        kind: 'volume', name: m.Source || undefined, destination, readOnly: m.ReadOnly === true, noCopy: m.VolumeOptions?.NoCopy === true,
        driverOpts: m.VolumeOptions?.DriverConfig?.Options, labels: m.VolumeOptions?.Labels, mode: '', subpath: sub || undefined,
      };
    }
    case 'tmpfs': {
      if (m.Source) throw invalidArgument('invalid mount config for type "tmpfs": Source must not be specified');
      const o: string[] = [];
      if (m.TmpfsOptions?.SizeBytes) o.push(`size=${m.TmpfsOptions.SizeBytes}`);
      if (m.TmpfsOptions?.Mode) o.push(`mode=${m.TmpfsOptions.Mode.toString(8)}`);
      if (m.ReadOnly) o.push('ro');
      return { kind: 'tmpfs', destination, options: o.join(',') };
    }
    default:
      throw invalidArgument(`invalid mount config: mount type unknown: "${type}"`);
  }
}

export interface PlanInput {
  binds?: string[] | null;
  mounts?: MountConfig[] | null;
  tmpfs?: Record<string, string> | null;
  imageVolumes?: string[] | null;
  volumesFrom?: Array<{ mounts: MountPoint[]; mode: string }> | null;
}

/** All mounts of a container, one per destination, in Docker's precedence. */
export function planMounts(input: PlanInput): PlannedMount[] {
  const explicit: PlannedMount[] = [
    ...(input.binds ?? []).map(parseBind),
    ...(input.mounts ?? []).map(parseMount),
    ...Object.entries(input.tmpfs ?? {}).map(([d, o]): PlannedMount => ({ kind: 'tmpfs', destination: cleanDest(d, d), options: o })),
  ];
  const byDest = new Map<string, PlannedMount>();
  for (const m of explicit) {
    if (byDest.has(m.destination)) throw invalidArgument(`Duplicate mount point: ${m.destination}`);
    byDest.set(m.destination, m);
  }
  for (const vf of input.volumesFrom ?? []) {
    if (vf.mode && !/^(ro|rw)(,z|,Z)?$|^(z|Z)$/.test(vf.mode)) throw invalidArgument(`invalid mode for volumes-from: ${vf.mode}`);
    for (const mp of vf.mounts) {
      if (byDest.has(mp.Destination) || mp.Type === 'tmpfs') continue;
      const readOnly = vf.mode.startsWith('ro') ? true : vf.mode.startsWith('rw') ? false : !mp.RW;
      if (mp.Type === 'volume' && mp.Name) {
        byDest.set(mp.Destination, { kind: 'volume', name: mp.Name, destination: mp.Destination, readOnly, noCopy: true, mode: readOnly ? 'ro' : '' });
      } else {
        byDest.set(mp.Destination, { kind: 'bind', source: mp.Source, destination: mp.Destination, readOnly, propagation: (mp.Propagation || 'rprivate') as Propagation, createSource: false, mode: readOnly ? 'ro' : '' });
      }
    }
  }
  for (const v of input.imageVolumes ?? []) {
    const d = cleanDest(v, v);
    if (!byDest.has(d)) byDest.set(d, { kind: 'volume', destination: d, readOnly: false, noCopy: false, mode: '' });
  }
  // Parents before children, so a mount inside another volume lands on top of it.
  return [...byDest.values()].sort((a, b) => a.destination.split('/').length - b.destination.split('/').length);
}
