// berthd's configuration: every path configurable, so tests run side by side with temp roots.
export interface DaemonConfig {
  /** Persistent state: content, snapshots, images, containers, volumes. */
  dataRoot: string;
  /** Runtime state (sockets, runc state, conmon pid files); tmpfs in production. */
  execRoot: string;
  /** Listen addresses: unix:///path.sock */
  hosts: string[];
  /** Registries reachable over plain HTTP besides 127.0.0.0/8 (Docker's --insecure-registry). */
  insecureRegistries: string[];
  /** Default OCI runtime name and the known runtimes (name -> binary path). */
  defaultRuntime: string;
  runtimes: Record<string, string>;
  debug: boolean;
  /** Default bridge network: device name (Docker's --bridge) and gateway/prefix (--bip). */
  bridge?: string;
  bip?: string;
  /**
   * Create a container's runtime task right after its create, ahead of the start (see
   * ContainerService#createAhead); berthd's --no-prepare-ahead turns it off.
   */
  prepareAhead?: boolean;
  /** How long such a task waits for its start before it is undone (ms; default 10 s). */
  prepareAheadTtlMs?: number;
}

export function defaultConfig(): DaemonConfig {
  return {
    dataRoot: '/var/lib/berth',
    execRoot: '/run/berth',
    hosts: ['unix:///run/berth/berth.sock'],
    insecureRegistries: [],
    defaultRuntime: 'runc',
    runtimes: { runc: 'runc', crun: 'crun', youki: 'youki', runsc: 'runsc', 'kata-runtime': 'kata-runtime' },
    debug: false,
  };
}
