// Kernel network plumbing through the Host interface (`ip`, `unshare`, `nsenter`, `umount`).
//
// Speed matters on the `run` path, so each step is one process: the namespace is made by
// `unshare --net=<file>` whose command (`ip -batch`) runs INSIDE the new namespace and creates
// the veth there with its peer already in berthd's namespace (`peer ... netns /proc/<pid>/ns/net`):
// both ends are born where they live, nothing is moved. A second `ip` puts the host end on the
// bridge. Teardown is one `umount`: the kernel destroys the namespace and its veth
// asynchronously, off the caller's clock.
import { open, rm, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Host } from '../host/host.ts';

export interface VethSpec {
  /** Interface name inside the container (eth0, eth1...). */
  ifname: string;
  /** Host-side name (<= 15 chars). */
  hostVeth: string;
  mac: string;
  /** "10.1.2.3/24" */
  cidr: string;
  /** Default route via this address (the first network only). */
  defaultGateway?: string;
  bridge: string;
}

const SELF_NETNS = `/proc/${process.pid}/ns/net`;

function vethBatch(v: VethSpec): string[] {
  const lines = [
    `link add ${v.ifname} address ${v.mac} type veth peer name ${v.hostVeth} netns ${SELF_NETNS}`,
    `addr add ${v.cidr} dev ${v.ifname}`,
    `link set ${v.ifname} up`,
  ];
  if (v.defaultGateway) lines.push(`route add default via ${v.defaultGateway} dev ${v.ifname}`);
  return lines;
}

export class LinkOps {
  #host: Host;

  constructor(host: Host) {
    this.#host = host;
  }

  /** Create the bridge with its gateway address, or make sure an existing one has it. */
  async ensureBridge(name: string, gatewayCidr: string): Promise<void> {
    const r = await this.#host.run('ip', ['-o', '-4', 'addr', 'show', 'dev', name], { allowFailure: true });
    if (r.code !== 0) {
      await this.#host.run('ip', ['-batch', '-'], {
        input: [`link add name ${name} type bridge`, `addr add ${gatewayCidr} dev ${name}`, `link set ${name} up`].join('\n') + '\n',
      });
      return;
    }
    const cmds: string[] = [];
    if (!r.stdout.includes(` ${gatewayCidr} `)) cmds.push(`addr add ${gatewayCidr} dev ${name}`);
    cmds.push(`link set ${name} up`);
    await this.#host.run('ip', ['-batch', '-'], { input: cmds.join('\n') + '\n' });
  }

  async deleteLink(name: string): Promise<void> {
    await this.#host.run('ip', ['link', 'del', name], { allowFailure: true });
  }

  /** A new network namespace bind-mounted at `path`, lo up, plus veths created in place. */
  async createNetns(path: string, veths: VethSpec[]): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fh = await open(path, 'wx', 0o444);
    await fh.close();
    try {
      const lines = ['link set lo up', ...veths.flatMap(vethBatch)];
      await this.#host.run('unshare', [`--net=${path}`, 'ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
      await this.#attachHostEnds(veths);
    } catch (err) {
      await this.destroyNetns(path);
      throw err;
    }
  }

  /** More veths in an existing namespace (connect on a running container). */
  async addVeths(path: string, veths: VethSpec[]): Promise<void> {
    await this.#host.run('nsenter', [`--net=${path}`, 'ip', '-batch', '-'], { input: veths.flatMap(vethBatch).join('\n') + '\n' });
    try {
      await this.#attachHostEnds(veths);
    } catch (err) {
      await this.removeIfaces(path, veths.map((v) => v.ifname));
      throw err;
    }
  }

  async #attachHostEnds(veths: VethSpec[]): Promise<void> {
    if (!veths.length) return;
    await this.#host.run('ip', ['-batch', '-'], { input: veths.map((v) => `link set ${v.hostVeth} master ${v.bridge} up`).join('\n') + '\n' });
  }

  async removeIfaces(path: string, ifnames: string[]): Promise<void> {
    if (!ifnames.length) return;
    await this.#host.run('nsenter', [`--net=${path}`, 'ip', '-batch', '-'], { input: ifnames.map((i) => `link del ${i}`).join('\n') + '\n', allowFailure: true });
  }

  /** Unmount and remove the namespace file. The kernel frees the namespace (and its veths) once
   *  nothing else holds it. */
  async destroyNetns(path: string): Promise<void> {
    if (await isMountpoint(path)) await this.#host.unmount(path).catch(() => this.#host.unmount(path, { lazy: true }));
    await rm(path, { force: true });
  }
}

/** Whether `path` is a mount point right now (for nsfs files: a live namespace handle). */
export async function isMountpoint(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp && mp.replace(/\\040/g, ' ') === path) return true;
  }
  return false;
}
