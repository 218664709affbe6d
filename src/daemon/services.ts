// The daemon's services as route modules see them. The composition root (server.ts) builds the
// concrete classes; route modules get only this bag.
import type { DaemonConfig } from './config.ts';
import type { Host } from '../host/host.ts';
import type { ContentStore } from '../content/content-store.ts';
import type { NetworkService, ContainerLookup } from '../core/networks.ts';
import type { VolumeService } from '../core/volumes.ts';

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
}
