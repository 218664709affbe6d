// Plugs the network service into berthd: `services.networks` and the /networks routes.
import { createHash, randomBytes } from 'node:crypto';
import type { DaemonModule, Daemon } from '../daemon/server.ts';
import type { Router } from '../daemon/http.ts';
import type { Services } from '../daemon/services.ts';
import { BridgeNetworkService, sweepOrphans } from './bridge-network-service.ts';
import { registerNetworkRoutes } from './network-routes.ts';

export function createModule(): DaemonModule {
  let svc: BridgeNetworkService | undefined;
  return {
    async register(router: Router, services: Services, daemon: Daemon) {
      const test = process.env.BERTH_TEST === '1';
      const cfg = services.config;
      // Test daemons run side by side: unless told otherwise each gets its own bridge device,
      // subnet and iptables chains, and removes them when it stops with no container left. The
      // names come from the data root, so a test daemon restarted on the same root (live
      // restore) takes over its predecessor's bridge and chains instead of orphaning them.
      const tag = createHash('sha256').update(cfg.dataRoot).digest('hex').slice(0, 6);
      const bridgeName = cfg.bridge ?? (test ? `bt${tag}` : 'berth0');
      const bridgeCidr = cfg.bip ?? (test ? await freeTestSubnet(services) : '172.17.0.1/16');
      const ownerDir = '/run/berth-test-networks';
      if (test) await sweepOrphans(services.host, ownerDir);
      svc = new BridgeNetworkService({
        host: services.host,
        dataRoot: cfg.dataRoot,
        execRoot: cfg.execRoot,
        log: daemon.log,
        bridgeName,
        bridgeCidr,
        chainPrefix: bridgeName === 'berth0' ? 'BERTH' : `BERTH-${bridgeName}`,
        cleanupOnClose: test,
        ownerFile: test ? `${ownerDir}/${bridgeName}.json` : undefined,
      });
      await svc.start();
      const s = svc;
      // The container module registers first; its lookup is read when a request needs it.
      s.useContainers({ resolve: (ref) => (services.containerLookup ? services.containerLookup.resolve(ref) : s.resolveLocal(ref)) });
      services.networks = s;
      // Docker events go to the container module's bus when it is loaded (read at emit time).
      const bus = () => (services as Services & { events?: { emit(t: string, a: string, id: string, attrs: Record<string, string>): unknown } }).events;
      registerNetworkRoutes(router, s, (t, a, id, attrs) => void bus()?.emit(t, a, id, attrs));
    },
    async close() {
      await svc?.close();
    },
  };
}

/** A 10.124.x.0/24 no route on this host uses yet (test daemons side by side). */
async function freeTestSubnet(services: Services): Promise<string> {
  const routes = (await services.host.run('ip', ['-o', '-4', 'route', 'show', 'table', 'all'], { allowFailure: true })).stdout;
  for (let i = 0; i < 64; i++) {
    const x = randomBytes(1)[0]!;
    if (!routes.includes(`10.124.${x}.`)) return `10.124.${x}.1/24`;
  }
  return `10.124.${randomBytes(1)[0]}.1/24`;
}
