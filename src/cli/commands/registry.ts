// `berth registry ...`: the registry server's own command tree (src/registry/cli.ts), loaded
// only when used so the rest of the CLI does not pay for it.
import type { Command } from '../command.ts';

type RegistryCommand = (argv: string[]) => Promise<number | void> | number | void;

export const registry: Command = {
  name: 'registry',
  usage: 'COMMAND',
  short: 'Run and manage an OCI distribution registry',
  rawArgs: true,
  async run(_ctx, _f, args) {
    // A computed specifier: the module belongs to another part and may not exist in every build.
    const spec = '../../registry/cli.ts';
    let mod: { registryCommand?: RegistryCommand };
    try {
      mod = (await import(spec)) as { registryCommand?: RegistryCommand };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new Error('berth registry is not available in this build');
      throw err;
    }
    if (typeof mod.registryCommand !== 'function') throw new Error('berth registry is not available in this build');
    return (await mod.registryCommand(args)) ?? 0;
  },
};
