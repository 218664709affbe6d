// The network service contract, as the container part and the API routes use it.
//
// Lifecycle of a container's networking (one "sandbox" per container start):
//
//   create container ......... nothing here (the create body is the container part's record)
//   start  ................... setUp(req)       -> netnsPath for the OCI spec + /etc files
//   runc create/start ........ the OCI spec joins `netnsPath` ({type: 'network', path})
//   running .................. connect/disconnect (POST /networks/{id}/connect) work live
//   process exited ........... tearDown(id)     -> resolves once published ports are free and
//                                                  DNS names gone; netns unmount, rules and the
//                                                  lease follow in the background (under the
//                                                  container's lock: a new setUp waits for them)
//   rm ....................... forget(id)       -> the remembered endpoint config is dropped
//
// The network service CREATES the network namespace itself (a bind-mounted nsfs file under
// `<execRoot>/netns/<containerId>`, made by `unshare --net=<file>`), then creates the veth pair
// IN PLACE with one end already inside it (`ip link add ... peer name eth0 netns <file>`): no
// device is ever moved between namespaces. Teardown only unmounts that file once the container
// is dead: the kernel then destroys the namespace and its veth asynchronously, so the ~17 ms a
// veth deletion costs is never paid by `run --rm`.
//
// Network modes (HostConfig.NetworkMode):
//   'none'              netns with lo only; netnsPath set, no endpoints.
//   'host'              no netns: netnsPath undefined, the OCI spec must NOT add a network
//                       namespace; /etc/hosts and /etc/resolv.conf are copies of the host's.
//   'container:<ref>'   <ref> is a full ID (names and prefixes are resolved too); netnsPath is
//                       that container's netns (FailedPrecondition if it does not run); its /etc
//                       files are copied.
//   '', 'default', 'bridge'  the default bridge network.
//   anything else       a network name or ID (user-defined bridge network).

/** Docker's PortBinding (HostConfig.PortBindings values). */
export interface PortBinding {
  HostIp?: string;
  HostPort?: string;
}

/** Docker's PortMap: "80/tcp" -> bindings (null = exposed but not published). */
export type PortMap = Record<string, PortBinding[] | null>;

/** Docker's EndpointSettings as it appears in NetworkingConfig.EndpointsConfig and inspect. */
export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string; LinkLocalIPs?: string[] } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  DriverOpts?: Record<string, string> | null;
  NetworkID?: string;
  EndpointID?: string;
  Gateway?: string;
  IPAddress?: string;
  IPPrefixLen?: number;
  IPv6Gateway?: string;
  GlobalIPv6Address?: string;
  GlobalIPv6PrefixLen?: number;
  DNSNames?: string[] | null;
}

/** Docker's NetworkSettings for GET /containers/{id}/json. */
export interface NetworkSettings {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  HairpinMode: boolean;
  LinkLocalIPv6Address: string;
  LinkLocalIPv6PrefixLen: number;
  Ports: PortMap;
  SecondaryIPAddresses: null;
  SecondaryIPv6Addresses: null;
  EndpointID: string;
  Gateway: string;
  GlobalIPv6Address: string;
  GlobalIPv6PrefixLen: number;
  IPAddress: string;
  IPPrefixLen: number;
  IPv6Gateway: string;
  MacAddress: string;
  Networks: Record<string, EndpointSettings>;
}

/** What the container part knows at start and hands to setUp. Docker spelling where it is Docker's. */
export interface SandboxRequest {
  containerId: string;
  /** Container name without the leading '/'. Resolvable by DNS on user-defined networks. */
  name: string;
  hostname: string;
  domainname?: string;
  /** HostConfig.NetworkMode (see the table above). For 'container:<x>', x must be a full ID. */
  networkMode: string;
  /** NetworkingConfig.EndpointsConfig from the create body (aliases, static IPs). Used on the
   *  first setUp only; later connect/disconnect calls change what the service remembers. */
  endpointsConfig?: Record<string, EndpointSettings> | null;
  /** HostConfig.PortBindings. */
  portBindings?: PortMap | null;
  /** HostConfig.PublishAllPorts (-P): every exposed port gets a random host port. */
  publishAllPorts?: boolean;
  /** Config.ExposedPorts keys ("80/tcp") from the image and the create body. */
  exposedPorts?: string[];
  /** HostConfig.Dns, DnsSearch, DnsOptions, ExtraHosts ("name:ip", "name=ip"; "host-gateway"). */
  dns?: string[] | null;
  dnsSearch?: string[] | null;
  dnsOptions?: string[] | null;
  extraHosts?: string[] | null;
  /** Compose service aliases etc. are passed as endpointsConfig[net].Aliases, as compose does. */
  /** A directory owned by the container part (e.g. `<dataRoot>/containers/<id>`): the service
   *  writes `hosts`, `resolv.conf` and `hostname` there. Bind-mount them into the container at
   *  /etc/hosts, /etc/resolv.conf, /etc/hostname. They are rewritten IN PLACE (never renamed) on
   *  connect/disconnect, so the bind mounts see the change. */
  filesDir: string;
}

export interface Sandbox {
  /** Path of the nsfs bind mount to put in the OCI spec; undefined in host mode. */
  netnsPath?: string;
  hostsPath: string;
  resolvConfPath: string;
  hostnamePath: string;
  /** For inspect (also available later from settings()). */
  settings: NetworkSettings;
}

export interface EndpointInfo {
  networkId: string;
  networkName: string;
  ipAddress: string;
  prefixLen: number;
  gateway: string;
  macAddress: string;
  aliases: string[];
  dns: { nameservers: string[]; search: string[] };
}

/** Docker's network object (GET /networks/{id}). */
export interface NetworkResource {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: Array<{ Subnet: string; Gateway?: string; IPRange?: string }> };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, { Name: string; EndpointID: string; MacAddress: string; IPv4Address: string; IPv6Address: string }>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** POST /networks/create body (the fields berth acts on). */
export interface NetworkCreateRequest {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  CheckDuplicate?: boolean;
  IPAM?: { Driver?: string; Config?: Array<{ Subnet?: string; Gateway?: string; IPRange?: string }> | null; Options?: Record<string, string> | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** How the network routes find containers by name (the container part provides it). */
export interface ContainerLookup {
  /** Full ID, name (with or without '/') or unique ID prefix -> ID and whether it runs. NotFound otherwise. */
  resolve(ref: string): Promise<{ id: string; name: string; running: boolean }>;
}

export interface NetworkService {
  /** Give the service a way to resolve container references (POST /networks/{id}/connect). */
  useContainers(lookup: ContainerLookup): void;

  // ---- networks
  create(req: NetworkCreateRequest): Promise<{ Id: string; Warning: string }>;
  list(filters?: Map<string, string[]>): Promise<NetworkResource[]>;
  /** By full name, full ID or unique ID prefix. NotFound otherwise. */
  inspect(ref: string): Promise<NetworkResource>;
  /** FailedPrecondition if containers are attached; Forbidden for the predefined networks. */
  remove(ref: string): Promise<void>;
  prune(filters?: Map<string, string[]>): Promise<string[]>;

  // ---- containers
  /** Build the sandbox for a starting container. On failure nothing is left behind. */
  setUp(req: SandboxRequest): Promise<Sandbox>;
  /** Undo setUp once the container's processes are gone. Idempotent; safe to call without a
   *  prior setUp. Never throws (errors are logged); resolves after the fast part (see above). */
  tearDown(containerId: string): Promise<void>;
  /** Drop what the service remembers about a removed container (tears down first if needed).
   *  Resolves once the teardown has fully finished (namespace, rules, leases), or with
   *  `background` once the fast part has (the `run --rm` removal: the rest follows). */
  forget(containerId: string, opts?: { background?: boolean }): Promise<void>;
  /** Attach a container to a network. Running containers get a live interface; stopped ones
   *  get it at their next setUp. */
  connect(containerRef: string, network: string, endpoint?: EndpointSettings): Promise<EndpointInfo | undefined>;
  disconnect(containerRef: string, network: string, force?: boolean): Promise<void>;
  /** NetworkSettings for inspect: live values while running, the configured networks otherwise. */
  settings(containerId: string): NetworkSettings;
  /** The netns of a running container (for `container:<id>` mode), undefined if none. */
  netnsPathOf(containerId: string): string | undefined;
}
