// The image part of berthd: the overlay snapshotter, the image service, the puller and the
// Docker image routes. server.ts loads this module before the container module, so
// `services.images` and `services.snapshotter` are set when later modules register.
import type { Digest } from '../core/digest.ts';
import type { Router } from '../daemon/http.ts';
import type { DaemonModule, Daemon } from '../daemon/server.ts';
import type { Services } from '../daemon/services.ts';
import { RegistryClient } from '../distribution/registry-client.ts';
import { OverlaySnapshotter } from '../snapshot/overlay-snapshotter.ts';
import { SnapshotPaths } from '../snapshot/paths.ts';
import { BERTH_VERSION } from '../daemon/routes/system.ts';
import { ImageService } from './image-service.ts';
import { registerImageRoutes } from './image-routes.ts';
import { imagePaths } from './paths.ts';
import { Puller } from './puller.ts';

/** Docker's GraphDriver.Data for an image's layer chain (bottom first). */
function graphDriverData(snapshotRoot: string, chain: readonly string[]): Record<string, string> {
  if (chain.length === 0) return {};
  const p = new SnapshotPaths(snapshotRoot);
  const dirs = chain.map((c) => p.committed(c as Digest));
  const top = dirs[dirs.length - 1]!;
  const data: Record<string, string> = {
    MergedDir: `${top}/merged`,
    UpperDir: SnapshotPaths.fs(top),
    WorkDir: SnapshotPaths.work(top),
  };
  if (dirs.length > 1) data.LowerDir = dirs.slice(0, -1).reverse().map((d) => SnapshotPaths.fs(d)).join(':');
  return data;
}

/**
 * The start-up GC waits until every module registered: the build module adds its cache as GC
 * roots during its own registration, which comes after this one.
 */
const STARTUP_GC_DELAY_MS = 1500;

export function createModule(): DaemonModule {
  let registry: RegistryClient | undefined;
  let startupGc: NodeJS.Timeout | undefined;
  return {
    async register(router: Router, services: Services, daemon: Daemon): Promise<void> {
      const paths = imagePaths(services.config.dataRoot);
      const snapshotter = new OverlaySnapshotter(paths.snapshots, services.host);
      await snapshotter.init();
      const images = new ImageService({ content: services.content, snapshotter, paths, log: daemon.log });
      // The container module sets services.imageInUse; read it at call time.
      images.inUse = (id) => services.imageInUse?.(id) ?? [];
      await images.init();
      startupGc = setTimeout(() => {
        images.startupGc().catch((err: unknown) => daemon.log.warn({ err: String(err) }, 'image gc at start failed'));
      }, STARTUP_GC_DELAY_MS);
      startupGc.unref();
      registry = new RegistryClient({ insecureRegistries: services.config.insecureRegistries, userAgent: `berth/${BERTH_VERSION}` });
      const puller = new Puller({ images, registry });
      services.images = images;
      services.snapshotter = snapshotter;
      services.pullImage = async (ref, opts = {}) => {
        const o: Parameters<Puller['pull']>[1] = {};
        if (opts.platform) o.platform = opts.platform;
        if (opts.signal) o.signal = opts.signal;
        return { id: (await puller.pull(ref, o)).image.id };
      };
      (services.infoProviders ??= []).push(async () => ({ Images: images.store.size }));
      // Image events go to the container module's event bus when it is loaded (read at emit time).
      const bus = () => (services as typeof services & { events?: { emit(t: string, a: string, id: string, attrs: Record<string, string>): unknown } }).events;
      registerImageRoutes(router, { images, puller, registry, graphDriverData: (chain) => graphDriverData(paths.snapshots, chain), emit: (t, a, id, attrs) => void bus()?.emit(t, a, id, attrs) });
      (await import('./push-routes.ts')).registerPushRoutes(router, { images, registry });
    },
    async close(): Promise<void> {
      if (startupGc) clearTimeout(startupGc);
      await registry?.close();
    },
  };
}
