// Plugs the volume service into berthd: `services.volumes` and the /volumes routes.
import type { DaemonModule, Daemon } from '../daemon/server.ts';
import type { Router } from '../daemon/http.ts';
import type { Services } from '../daemon/services.ts';
import { LocalVolumeService } from './local-volume-service.ts';
import { registerVolumeRoutes } from './volume-routes.ts';

export function createModule(): DaemonModule {
  let svc: LocalVolumeService | undefined;
  return {
    async register(router: Router, services: Services, daemon: Daemon) {
      svc = new LocalVolumeService({ host: services.host, dataRoot: services.config.dataRoot, log: daemon.log });
      await svc.start();
      services.volumes = svc;
      const bus = () => (services as Services & { events?: { emit(t: string, a: string, id: string, attrs: Record<string, string>): unknown } }).events;
      registerVolumeRoutes(router, svc, (t, a, id, attrs) => void bus()?.emit(t, a, id, attrs));
    },
    async close() {
      await svc?.close();
      // Test daemons must not leave tmpfs/device volumes mounted under their temp roots.
      if (process.env.BERTH_TEST === '1') await svc?.unmountAll();
    },
  };
}
