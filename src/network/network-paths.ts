// Where the network service keeps its state. No other code joins paths into these roots.
//
//   <dataRoot>/networks/
//     <networkId>.json            network records (bridge, host, none and user-defined)
//     containers/<containerId>.json   endpoint config changed by connect/disconnect (else the
//                                 container's create body is the source)
//   <execRoot>/network/           runtime state: gone after a reboot, like the namespaces
//     sandboxes/<containerId>.json   live endpoints: IP leases, veths, published ports
//   <execRoot>/netns/<containerId>    nsfs bind mount of the container's network namespace
import { join } from 'node:path';
import { invalidArgument } from '../core/errors.ts';

const ID = /^[0-9a-f]{64}$/;
const CONTAINER_ID = /^[0-9a-zA-Z][0-9a-zA-Z_.-]{0,127}$/;

export class NetworkPaths {
  readonly networksDir: string;
  readonly containersDir: string;
  readonly sandboxesDir: string;
  readonly netnsDir: string;

  constructor(dataRoot: string, execRoot: string) {
    this.networksDir = join(dataRoot, 'networks');
    this.containersDir = join(this.networksDir, 'containers');
    this.sandboxesDir = join(execRoot, 'network', 'sandboxes');
    this.netnsDir = join(execRoot, 'netns');
  }

  network(id: string): string {
    if (!ID.test(id)) throw invalidArgument(`invalid network id ${JSON.stringify(id)}`);
    return join(this.networksDir, `${id}.json`);
  }

  #cid(id: string): string {
    if (!CONTAINER_ID.test(id)) throw invalidArgument(`invalid container id ${JSON.stringify(id)}`);
    return id;
  }

  containerConfig(containerId: string): string {
    return join(this.containersDir, `${this.#cid(containerId)}.json`);
  }

  sandbox(containerId: string): string {
    return join(this.sandboxesDir, `${this.#cid(containerId)}.json`);
  }

  netns(containerId: string): string {
    return join(this.netnsDir, this.#cid(containerId));
  }
}
