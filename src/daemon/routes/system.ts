// GET|HEAD /_ping, GET /version, GET /info.
import { cpus, totalmem, hostname, release, type } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Router } from '../http.ts';
import { API_VERSION, MIN_API_VERSION, sendJson } from '../http.ts';
import type { Services } from '../services.ts';

export const BERTH_VERSION = '0.1.0';

function osName(): string {
  try {
    const m = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return m?.[1] ?? 'Linux';
  } catch {
    return 'Linux';
  }
}

export function pingHeaders(): Record<string, string> {
  return {
    'API-Version': API_VERSION,
    'OSType': 'linux',
    'Docker-Experimental': 'false',
    'Builder-Version': '1',
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    'Pragma': 'no-cache',
  };
}

export function registerSystemRoutes(r: Router, s: Services): void {
  const ping = (body: boolean) => ({ res }: { res: import('node:http').ServerResponse }) => {
    res.writeHead(200, { ...pingHeaders(), 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': 2 });
    res.end(body ? 'OK' : undefined);
  };
  r.get('/_ping', ping(true));
  r.head('/_ping', ping(false));

  r.get('/version', ({ res }) => {
    const arch = process.arch === 'x64' ? 'amd64' : process.arch;
    sendJson(res, 200, {
      Platform: { Name: 'berth' },
      Components: [
        { Name: 'Engine', Version: BERTH_VERSION, Details: { ApiVersion: API_VERSION, MinAPIVersion: MIN_API_VERSION, Os: 'linux', Arch: arch, KernelVersion: release() } },
      ],
      Version: BERTH_VERSION,
      ApiVersion: API_VERSION,
      MinAPIVersion: MIN_API_VERSION,
      GitCommit: 'berth',
      GoVersion: `node${process.versions.node}`,
      Os: 'linux',
      Arch: arch,
      KernelVersion: release(),
      BuildTime: '',
    });
  });

  r.get('/info', async ({ res }) => {
    const extra = s.infoProviders ? await Promise.all(s.infoProviders.map((p) => p())) : [];
    const arch = process.arch === 'x64' ? 'x86_64' : process.arch;
    sendJson(res, 200, Object.assign(
      {
        ID: s.daemonId,
        Containers: 0,
        ContainersRunning: 0,
        ContainersPaused: 0,
        ContainersStopped: 0,
        Images: 0,
        Driver: 'overlay',
        DriverStatus: [['Backing Filesystem', 'extfs']],
        DockerRootDir: s.config.dataRoot,
        Name: hostname(),
        NCPU: cpus().length,
        MemTotal: totalmem(),
        OperatingSystem: osName(),
        OSType: type() === 'Linux' ? 'linux' : type(),
        Architecture: arch,
        KernelVersion: release(),
        ServerVersion: BERTH_VERSION,
        DefaultRuntime: s.config.defaultRuntime,
        Runtimes: Object.fromEntries(Object.entries(s.config.runtimes).map(([k, v]) => [k, { path: v }])),
        CgroupDriver: 'cgroupfs',
        CgroupVersion: s.cgroupVersion,
        IndexServerAddress: 'https://index.docker.io/v1/',
        RegistryConfig: { InsecureRegistryCIDRs: ['127.0.0.0/8'], IndexConfigs: {}, Mirrors: [] },
        SecurityOptions: ['name=seccomp,profile=builtin'],
        Labels: [],
        ExperimentalBuild: false,
        LiveRestoreEnabled: true,
        Warnings: [],
      },
      ...extra,
    ));
  });
}
