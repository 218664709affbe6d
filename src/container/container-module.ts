// Plugs the container service into berthd: `services.containers`, `services.events`,
// `services.containerLookup` (for the network routes), the image service's in-use hook, the
// container/exec/events routes, and live restore of containers that outlived the last daemon.
import { existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import type { DaemonModule, Daemon } from '../daemon/server.ts';
import type { Router } from '../daemon/http.ts';
import type { Services } from '../daemon/services.ts';
import type { ImageService } from '../core/images.ts';
import type { Snapshotter } from '../core/snapshots.ts';
import type { NetworkService, ContainerLookup } from '../core/networks.ts';
import type { VolumeService } from '../core/volumes.ts';
import { ContainerService } from './container-service.ts';
import { EventBus } from './event-bus.ts';
import { registerContainerRoutes } from './container-routes.ts';

/** What this module reads from and adds to the services bag. */
type Bag = Services & {
  images?: ImageService & { inUse?: (id: string) => Promise<Array<{ id: string; running: boolean }>> | Array<{ id: string; running: boolean }> };
  snapshotter?: Snapshotter;
  networks?: NetworkService;
  volumes?: VolumeService;
  events?: EventBus;
  containers?: ContainerService;
  containerLookup?: ContainerLookup;
};

export function createModule(): DaemonModule {
  let svc: ContainerService | undefined;
  return {
    async register(router: Router, services: Services, daemon: Daemon) {
      const s = services as Bag;
      const events = s.events ?? new EventBus();
      s.events = events;
      const test = process.env.BERTH_TEST === '1';
      svc = new ContainerService({
        config: s.config,
        log: daemon.log,
        host: s.host,
        images: () => s.images,
        snapshotter: () => s.snapshotter ?? (s.images as unknown as { snapshotter?: Snapshotter } | undefined)?.snapshotter,
        networks: () => s.networks,
        volumes: () => s.volumes,
        events,
        // Test daemons run side by side: each gets its own cgroup parent, named after its data
        // root so that a restarted daemon finds its containers' cgroups again.
        cgroupParent: process.env.BERTH_CGROUP_PARENT ?? (test ? `berth-test-${createHash('sha256').update(s.config.dataRoot).digest('hex').slice(0, 12)}` : 'berth'),
      });
      await svc.init();
      const c = svc;
      // Before the API serves: a create in flight would look like a crash leftover.
      await c.sweepOrphans();
      s.containers = c;
      s.containerLookup = {
        async resolve(ref: string) {
          const rec = c.store.get(ref);
          return { id: rec.id, name: rec.name.slice(1), running: rec.state.status === 'running' || rec.state.status === 'paused' };
        },
      };
      if (s.images && 'inUse' in s.images) {
        s.images.inUse = (imageId: string) => c.store.all().filter((r) => r.image === imageId).map((r) => ({ id: r.id, running: r.state.status === 'running' || r.state.status === 'paused' }));
      }
      s.infoProviders ??= [];
      s.infoProviders.push(async () => {
        const all = c.store.all();
        const n = (st: string[]) => all.filter((r) => st.includes(r.state.status)).length;
        return { Containers: all.length, ContainersRunning: n(['running', 'restarting']), ContainersPaused: n(['paused']), ContainersStopped: n(['exited', 'created', 'dead']), ...(c.initBinary ? { InitBinary: c.initBinary } : {}) };
      });
      registerContainerRoutes(router, daemon, {
        svc: c,
        host: s.host,
        networks: () => s.networks,
        imageIdOf: () => undefined,
      });
      // Restore once the modules registered after this one (networks, volumes) are in place:
      // restarting a container needs them.
      const later = ['../network/network-module.ts', '../volume/volume-module.ts'].filter((m) => existsSync(new URL(m, import.meta.url)));
      const ready = async () => {
        const deadline = Date.now() + 10_000;
        while (Date.now() < deadline) {
          if ((!later.some((m) => m.includes('network')) || s.networks) && (!later.some((m) => m.includes('volume')) || s.volumes)) return;
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      if (later.length === 0) await c.restore();
      else void ready().then(() => c.restore()).catch((err: unknown) => daemon.log.error({ err: String(err) }, 'container restore failed'));
    },
    async close() {
      await svc?.close();
    },
  };
}
