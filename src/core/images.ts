// The image service contract, as the container, build and network parts use it.
import type { Digest } from './digest.ts';
import type { ImageConfig, Platform } from './oci.ts';

export interface ImageRecord {
  /** The config digest: Docker's image ID. */
  id: Digest;
  /** Digest of the manifest the image was pulled or loaded with (platform-specific manifest). */
  manifestDigest?: Digest;
  /** Normalized names: "docker.io/library/busybox:latest". */
  repoTags: string[];
  /** "docker.io/library/busybox@sha256:..." (the index digest when pulled through an index). */
  repoDigests: string[];
  /** When the record was made here (Docker's Metadata.LastTagTime analogue). */
  added: string;
  /** Sum of the uncompressed layer sizes. */
  size: number;
}

export interface ResolvedImage {
  record: ImageRecord;
  config: ImageConfig;
  /** Chain IDs of the layers, bottom first; the last is the rootfs parent. */
  chainIds: Digest[];
}

export interface ImageService {
  /** By name ("busybox", "busybox:1", "host/a@sha256:..."), full or short ID. NotFound if absent. */
  resolve(nameOrId: string): Promise<ResolvedImage>;
  /** Pull if absent, as `docker run` does after a 404 (the CLI does it itself; compose too). */
  list(): Promise<ImageRecord[]>;
  /** Store a new image built locally (build, commit): writes config+manifest to content, records it. */
  createImage(config: ImageConfig, layers: Array<{ diffId: Digest; blob: { digest: Digest; size: number; mediaType: string } }>, tags: string[]): Promise<ImageRecord>;
  /** Add a tag to an existing image. */
  tag(nameOrId: string, newRef: string): Promise<void>;
  /** Platform default for pulls. */
  defaultPlatform(): Platform;
}
