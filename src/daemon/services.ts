// The daemon's services as route modules see them. The composition root (server.ts) builds the
// concrete classes; route modules get only this bag.
import type { DaemonConfig } from './config.ts';
import type { Host } from '../host/host.ts';
import type { ContentStore } from '../content/content-store.ts';

export interface Services {
  config: DaemonConfig;
  daemonId: string;
  cgroupVersion: '1' | '2';
  host: Host;
  content: ContentStore;
  /** Extra fields merged into GET /info (counts from the image and container services). */
  infoProviders?: Array<() => Promise<Record<string, unknown>>>;
}
