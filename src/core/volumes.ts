// The volume service contract, as the container part and the API routes use it.
//
// Layout (drawn in src/volume/volume-paths.ts): `<dataRoot>/volumes/<name>/_data` holds the
// data, `<name>/meta.json` the record; which containers use which volumes is remembered per
// container so `volume rm` of a volume in use (even by a stopped container) is refused (409).
//
// The container part calls `mountsFor` at start, after the rootfs is mounted (copy-up of image
// content into empty named volumes reads from it) and puts the returned OCI mounts in the spec,
// in order. It calls `release` at `rm` (with removeAnonymous for `rm -v` and for `--rm`).

/** An OCI runtime-spec mount. */
export interface OciMount {
  destination: string;
  type: string;
  source: string;
  options: string[];
}

/** Docker's MountPoint in GET /containers/{id}/json `Mounts`. */
export interface MountPoint {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

/** Docker's HostConfig.Mounts entry (`--mount`). */
export interface MountConfig {
  Type?: 'bind' | 'volume' | 'tmpfs' | string;
  Source?: string;
  Target?: string;
  ReadOnly?: boolean;
  Consistency?: string;
  BindOptions?: { Propagation?: string; NonRecursive?: boolean; CreateMountpoint?: boolean } | null;
  VolumeOptions?: { NoCopy?: boolean; Labels?: Record<string, string>; DriverConfig?: { Name?: string; Options?: Record<string, string> }; Subpath?: string } | null;
  TmpfsOptions?: { SizeBytes?: number; Mode?: number } | null;
}

export interface MountRequest {
  containerId: string;
  /** HostConfig.Binds: "host:ctr[:opts]", "name:ctr[:opts]", "/ctr" (anonymous). */
  binds?: string[] | null;
  /** HostConfig.Mounts (`--mount`). */
  mounts?: MountConfig[] | null;
  /** HostConfig.Tmpfs: {"/ctr": "size=64m,mode=1777"}. */
  tmpfs?: Record<string, string> | null;
  /** Volume paths from the image config and Config.Volumes: each gets an anonymous volume
   *  unless something else is mounted there. */
  imageVolumes?: string[] | null;
  /** HostConfig.VolumesFrom, already resolved by the caller: the other container's mount
   *  points (from its inspect) and the mode suffix ("ro"/"rw", "" = same as the source). */
  volumesFrom?: Array<{ mounts: MountPoint[]; mode: string }> | null;
  /** The mounted rootfs of this container, for copy-up (undefined: no copy-up). */
  rootfs?: string;
}

export interface ResolvedMounts {
  /** OCI mounts to append to the spec, in order. */
  oci: OciMount[];
  /** For inspect `Mounts`. */
  mountPoints: MountPoint[];
}

/** Docker's volume object (GET /volumes/{name}). */
export interface VolumeResource {
  Name: string;
  Driver: string;
  Mountpoint: string;
  CreatedAt: string;
  Status?: Record<string, unknown>;
  Labels: Record<string, string>;
  Scope: 'local';
  Options: Record<string, string>;
  UsageData?: { Size: number; RefCount: number } | null;
}

export interface VolumeCreateRequest {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

export interface VolumeService {
  /** Creating an existing name returns it unchanged (Docker's behaviour). */
  create(req: VolumeCreateRequest): Promise<VolumeResource>;
  list(filters?: Map<string, string[]>): Promise<VolumeResource[]>;
  inspect(name: string): Promise<VolumeResource>;
  /** FailedPrecondition (409) while any container uses it, unless force and no container runs. */
  remove(name: string, force?: boolean): Promise<void>;
  /** Unused volumes; anonymous only unless filters all=true (Docker >= 23). */
  prune(filters?: Map<string, string[]>): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }>;
  /** Resolve a container's mounts into OCI mounts; creates named/anonymous volumes as needed and
   *  records the container as a user of each. Validates names and bind sources. */
  mountsFor(req: MountRequest): Promise<ResolvedMounts>;
  /** The container is removed: drop its references; remove its anonymous volumes if asked. */
  release(containerId: string, opts?: { removeAnonymous?: boolean }): Promise<void>;
}
