// version, info, login, logout, and the `system` group.
import { StatusError, CancelledError, isTerminal, type Command, type Ctx } from '../command.ts';
import { CLIENT_API_VERSION } from '../api-client.ts';
import { compileTemplate, normalizeFormat, unescapeFormat } from '../render/template.ts';
import { bytesSize } from '../render/units.ts';
import { readAll } from '../api-client.ts';
import { readLine } from './util.ts';
import { DOCKER_HUB_AUTH_KEY, authKey, normalizeRegistry } from '../../distribution/credentials.ts';

export const CLI_VERSION = '0.1.0';

function arch(): string {
  return process.arch === 'x64' ? 'amd64' : process.arch;
}

/** `key:\tvalue` lines padded the way the docker CLI's tabwriter (minwidth 20) pads them. */
function kv(indent: string, pairs: Array<[string, string]>): string {
  return pairs.map(([k, v]) => `${indent}${k}:`.padEnd(Math.max(20, indent.length + k.length + 2)) + v + '\n').join('');
}

function runTemplate(ctx: Ctx, format: string, data: unknown): void {
  const { template } = normalizeFormat(unescapeFormat(format));
  ctx.out(compileTemplate(template).execute(data) + '\n');
}

interface VersionResponse {
  Platform?: { Name?: string };
  Components?: Array<{ Name: string; Version: string; Details?: Record<string, string> }>;
  Version?: string;
  ApiVersion?: string;
  MinAPIVersion?: string;
  GitCommit?: string;
  GoVersion?: string;
  Os?: string;
  Arch?: string;
  KernelVersion?: string;
  Experimental?: boolean;
  BuildTime?: string;
}

const version: Command = {
  name: 'version',
  usage: '[OPTIONS]',
  short: 'Show the berth version information',
  args: { max: 0 },
  flags: [{ name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' }],
  async run(ctx, f) {
    const client = {
      Platform: { Name: '' },
      Version: CLI_VERSION,
      ApiVersion: CLIENT_API_VERSION,
      DefaultAPIVersion: CLIENT_API_VERSION,
      GoVersion: `node${process.versions.node}`,
      GitCommit: 'berth',
      BuildTime: '',
      Os: 'linux',
      Arch: arch(),
      Context: 'default',
    };
    let server: VersionResponse | undefined;
    let serverErr: unknown;
    try {
      server = await ctx.client.json<VersionResponse>('GET', '/version');
      client.ApiVersion = ctx.client.version;
    } catch (err) {
      serverErr = err;
    }
    const format = f.string('format');
    if (format) {
      runTemplate(ctx, format, { Client: client, Server: server ?? null });
    } else {
      let s = 'Client:\n';
      s += kv(' ', [
        ['Version', client.Version],
        ['API version', client.ApiVersion + (client.ApiVersion !== client.DefaultAPIVersion ? ` (downgraded from ${client.DefaultAPIVersion})` : '')],
        ['Go version', client.GoVersion],
        ['Git commit', client.GitCommit],
        ['Built', client.BuildTime],
        ['OS/Arch', `${client.Os}/${client.Arch}`],
        ['Context', client.Context],
      ]);
      if (server) {
        s += `\nServer:${server.Platform?.Name ? ' ' + server.Platform.Name : ''}\n`;
        const components = server.Components?.length
          ? server.Components
          : [{ Name: 'Engine', Version: server.Version ?? '', Details: {} as Record<string, string> }];
        for (const c of components) {
          s += ` ${c.Name}:\n`;
          const d = c.Details ?? {};
          if (c.Name === 'Engine') {
            s += kv('  ', [
              ['Version', c.Version],
              ['API version', `${d.ApiVersion ?? server.ApiVersion ?? ''} (minimum version ${d.MinAPIVersion ?? server.MinAPIVersion ?? ''})`],
              ['Go version', d.GoVersion ?? server.GoVersion ?? ''],
              ['Git commit', d.GitCommit ?? server.GitCommit ?? ''],
              ['Built', d.BuildTime ?? server.BuildTime ?? ''],
              ['OS/Arch', `${d.Os ?? server.Os ?? ''}/${d.Arch ?? server.Arch ?? ''}`],
              ['Experimental', d.Experimental ?? String(server.Experimental ?? false)],
            ]);
          } else {
            s += kv('  ', [['Version', c.Version], ...Object.keys(d).sort().map((k): [string, string] => [k, d[k]!])]);
          }
        }
      }
      ctx.out(s);
    }
    if (serverErr) throw serverErr;
  },
};

type Info = Record<string, unknown> & {
  Containers?: number;
  ContainersRunning?: number;
  ContainersPaused?: number;
  ContainersStopped?: number;
  Images?: number;
  DriverStatus?: Array<[string, string]>;
  Runtimes?: Record<string, unknown>;
  SecurityOptions?: string[];
  RegistryConfig?: { InsecureRegistryCIDRs?: string[]; Mirrors?: string[] };
  Labels?: string[];
  Warnings?: string[] | null;
};

const info: Command = {
  name: 'info',
  usage: '[OPTIONS]',
  short: 'Display system-wide information',
  args: { max: 0 },
  flags: [{ name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' }],
  async run(ctx, f) {
    const clientInfo = { Version: CLI_VERSION, Context: 'default', Debug: ctx.globals.debug, Plugins: [], Warnings: null };
    const format = f.string('format');
    let i: Info;
    try {
      i = await ctx.client.json<Info>('GET', '/info');
    } catch (err) {
      if (format) throw err;
      ctx.out(`Client:\n Version:    ${CLI_VERSION}\n Context:    default\n Debug Mode: ${ctx.globals.debug}\n\nServer:\n`);
      throw new StatusError(1, `ERROR: ${(err as Error).message}\nerrors pretty printing info`);
    }
    if (format) {
      runTemplate(ctx, format, { ...i, ClientInfo: clientInfo });
      return;
    }
    const v = (k: string) => (i[k] === undefined || i[k] === null ? '' : String(i[k]));
    let s = `Client:\n Version:    ${CLI_VERSION}\n Context:    default\n Debug Mode: ${ctx.globals.debug}\n\nServer:\n`;
    s += ` Containers: ${i.Containers ?? 0}\n  Running: ${i.ContainersRunning ?? 0}\n  Paused: ${i.ContainersPaused ?? 0}\n  Stopped: ${i.ContainersStopped ?? 0}\n`;
    s += ` Images: ${i.Images ?? 0}\n Server Version: ${v('ServerVersion')}\n Storage Driver: ${v('Driver')}\n`;
    for (const [k, val] of i.DriverStatus ?? []) s += `  ${k}: ${val}\n`;
    if (i.LoggingDriver) s += ` Logging Driver: ${v('LoggingDriver')}\n`;
    s += ` Cgroup Driver: ${v('CgroupDriver')}\n Cgroup Version: ${v('CgroupVersion')}\n`;
    if (i.Runtimes) s += ` Runtimes: ${Object.keys(i.Runtimes).join(' ')}\n`;
    s += ` Default Runtime: ${v('DefaultRuntime')}\n`;
    if (i.SecurityOptions?.length) {
      s += ' Security Options:\n';
      for (const o of i.SecurityOptions) {
        const parts = o.split(',').map((p) => p.split('='));
        const name = parts.find(([k]) => k === 'name')?.[1] ?? o;
        s += `  ${name}\n`;
        for (const [k, val] of parts) if (k !== 'name') s += `   ${k![0]!.toUpperCase()}${k!.slice(1)}: ${val}\n`;
      }
    }
    s += ` Kernel Version: ${v('KernelVersion')}\n Operating System: ${v('OperatingSystem')}\n OSType: ${v('OSType')}\n Architecture: ${v('Architecture')}\n`;
    s += ` CPUs: ${v('NCPU')}\n Total Memory: ${bytesSize(Number(i.MemTotal ?? 0))}\n Name: ${v('Name')}\n ID: ${v('ID')}\n Docker Root Dir: ${v('DockerRootDir')}\n`;
    s += ` Debug Mode: ${Boolean(i.Debug)}\n Experimental: ${Boolean(i.ExperimentalBuild)}\n`;
    const insecure = i.RegistryConfig?.InsecureRegistryCIDRs ?? [];
    if (insecure.length) s += ` Insecure Registries:\n${insecure.map((r) => `  ${r}\n`).join('')}`;
    if (i.Labels?.length) s += ` Labels:\n${i.Labels.map((l) => `  ${l}\n`).join('')}`;
    s += ` Live Restore Enabled: ${Boolean(i.LiveRestoreEnabled)}\n`;
    ctx.out(s + '\n');
    for (const w of i.Warnings ?? []) ctx.err(w + '\n');
  },
};

/** Read a password from a terminal without echo. */
async function readPassword(ctx: Ctx): Promise<string> {
  const stdin = ctx.io.stdin;
  if (!stdin.setRawMode) return readLine(ctx);
  stdin.setRawMode(true);
  try {
    return await new Promise<string>((resolve, reject) => {
      let buf = '';
      const onData = (c: Buffer | string) => {
        for (const ch of c.toString()) {
          if (ch === '\r' || ch === '\n') {
            stdin.off('data', onData);
            stdin.pause();
            resolve(buf);
            return;
          }
          if (ch === '\x03') {
            stdin.off('data', onData);
            stdin.pause();
            reject(new CancelledError('interrupted'));
            return;
          }
          if (ch === '\x7f' || ch === '\b') buf = buf.slice(0, -1);
          else buf += ch;
        }
      };
      stdin.on('data', onData);
      stdin.resume();
    });
  } finally {
    stdin.setRawMode(false);
    ctx.out('\n');
  }
}

const login: Command = {
  name: 'login',
  usage: '[OPTIONS] [SERVER]',
  short: 'Authenticate to a registry',
  args: { max: 1 },
  flags: [
    { name: 'password', short: 'p', kind: 'string', valueName: 'string', help: 'Password or Personal Access Token (PAT)' },
    { name: 'password-stdin', kind: 'bool', help: 'Take the Password or Personal Access Token (PAT) from stdin' },
    { name: 'username', short: 'u', kind: 'string', valueName: 'string', help: 'Username' },
  ],
  async run(ctx, f, args) {
    const server = args[0] ?? DOCKER_HUB_AUTH_KEY;
    let username = f.string('username');
    let password = f.string('password');
    if (f.bool('password-stdin')) {
      if (password) throw new Error('conflicting options: cannot specify both --password and --password-stdin');
      if (!username) throw new Error('Must provide --username with --password-stdin');
      password = (await readAll(ctx.io.stdin)).toString('utf8').replace(/[\r\n]+$/, '');
    } else if (password) {
      ctx.err('WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n');
    }
    const interactive = isTerminal(ctx.io.stdin);
    if (!username) {
      if (!interactive) throw new Error('Error: Cannot perform an interactive login from a non TTY device');
      ctx.out('Username: ');
      username = (await readLine(ctx)).trim();
      if (!username) throw new Error('Error: Non-null Username Required');
    }
    if (!password) {
      if (!interactive) throw new Error('Error: Cannot perform an interactive login from a non TTY device');
      ctx.out('Password: ');
      password = await readPassword(ctx);
      if (!password) throw new Error('Error: Password Required');
    }
    const res = await ctx.client.json<{ Status?: string; IdentityToken?: string }>('POST', '/auth', {
      body: { username, password, serveraddress: server },
    });
    const registry = normalizeRegistry(server);
    await ctx.credentials.store(registry, res?.IdentityToken ? { username, identityToken: res.IdentityToken } : { username, password });
    ctx.out(`${res?.Status || 'Login Succeeded'}\n`);
  },
};

const logout: Command = {
  name: 'logout',
  usage: '[SERVER]',
  short: 'Log out from a registry',
  args: { max: 1 },
  async run(ctx, _f, args) {
    const server = args[0] ?? DOCKER_HUB_AUTH_KEY;
    const key = authKey(server);
    const removed = await ctx.credentials.erase(normalizeRegistry(server));
    ctx.out(removed ? `Removing login credentials for ${key}\n` : `Not logged in to ${key}\n`);
  },
};

export const systemTopLevel: Command[] = [version, info, login, logout];

export const systemGroupBase: Command = {
  name: 'system',
  usage: 'COMMAND',
  short: 'Manage berth',
  sub: [info],
};

