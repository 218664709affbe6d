// The daemon's services as route modules see them. The composition root (server.ts) builds the
// concrete classes; route modules get only this bag.
import type { DaemonConfig } from './config.ts';
import type { Host } from '../host/host.ts';
import type { ContentStore } from '../content/content-store.ts';
import type { NetworkService, ContainerLookup } from '../core/networks.ts';
import type { VolumeService } from '../core/volumes.ts';
import type { ImageService } from '../core/images.ts';
import type { Snapshotter } from '../core/snapshots.ts';
import type { Digest } from '../core/digest.ts';
import type { Platform } from '../core/oci.ts';

export interface Services {
  config: DaemonConfig;
  daemonId: string;
  cgroupVersion: '1' | '2';
  host: Host;
  content: ContentStore;
  /** Extra fields merged into GET /info (counts from the image and container services). */
  infoProviders?: Array<() => Promise<Record<string, unknown>>>;
  /** Set by the network module (src/network/network-module.ts); read it at request time. */
  networks?: NetworkService;
  /** Set by the volume module (src/volume/volume-module.ts); read it at request time. */
  volumes?: VolumeService;
  /** Set by the container module: how the network routes resolve container references. */
  containerLookup?: ContainerLookup;
  /** Set by the image module (src/image/image-module.ts). */
  images?: ImageService;
  /** Set by the image module: the overlay snapshotter holding image layers and container roots. */
  snapshotter?: Snapshotter;
  /** Set by the image module: pull an image as `docker pull` does (build FROM, run with pull). */
  pullImage?: (ref: string, opts?: { platform?: Platform; signal?: AbortSignal }) => Promise<{ id: Digest }>;
  /**
   * Set by the container module: the containers using an image (rmi/prune refuse with 409 unless
   * forced; a running one even when forced).
   */
  imageInUse?: (imageId: Digest) => Promise<Array<{ id: string; running: boolean }>> | Array<{ id: string; running: boolean }>;
}
