// The command tree: top-level verbs, docker's management groups, and their aliases.
import type { Command } from '../command.ts';
import { imageGroup, imageTopLevel } from './image.ts';
import { inspect } from './inspect.ts';
import { systemTopLevel, systemGroupBase } from './system.ts';
import { registry } from './registry.ts';
import { build, builderGroup } from './build.ts';
import { networkGroup, volumeGroup } from './network-volume.ts';
import { containerGroup, containerTopLevel, events } from './container.ts';

export const commands: Command[] = [
  ...containerTopLevel,
  ...imageTopLevel,
  build,
  inspect,
  ...systemTopLevel,
  containerGroup,
  imageGroup,
  networkGroup,
  volumeGroup,
  builderGroup,
  { ...systemGroupBase, sub: [...(systemGroupBase.sub ?? []), events] },
  registry,
];
