// Kernel network plumbing through the Host interface (`ip`, `unshare`, `umount`) that is not a
// CNI plugin's job: berth's bridges (and their gateway addresses) and the containers' network
// namespaces. The interfaces inside a namespace are the CNI plugins' (src/network/cni.ts).
//
// A namespace is one process: `unshare --net=<file> true` makes it and bind-mounts it at the
// file. Teardown is one `umount`: the kernel destroys the namespace and whatever interfaces
// are left in it asynchronously, off the caller's clock.
import { open, rm, mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Host } from '../host/host.ts';

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

  /** A new, empty network namespace bind-mounted at `path` (lo is the loopback plugin's). */
  async createNetns(path: string): Promise<void> {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const fh = await open(path, 'wx', 0o444);
    await fh.close();
    try {
      await this.#host.run('unshare', [`--net=${path}`, 'true']);
    } catch (err) {
      await this.destroyNetns(path);
      throw err;
    }
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
