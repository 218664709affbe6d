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
    // Kept out of the CLI bundle (scripts/build-cli.mjs points this import at src/registry).
    let mod: { registryCommand?: RegistryCommand };
    try {
      mod = (await import('../../registry/cli.ts')) as { registryCommand?: RegistryCommand };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') throw new Error('berth registry is not available in this build');
      throw err;
    }
    if (typeof mod.registryCommand !== 'function') throw new Error('berth registry is not available in this build');
    return (await mod.registryCommand(args)) ?? 0;
  },
};
