// `berth`: a docker-compatible client of berthd's Docker Engine API (the entry is main.ts).
//
//   berth [-H unix:///x.sock] [--config DIR] [-D] VERB [FLAGS] [ARGS]
//
// Daemon selection: -H/--host, then $BERTH_HOST, then $DOCKER_HOST, then the default socket.
// Exit statuses are docker's: 125 for usage and engine errors before a container runs, the
// container's own status for `run`, 126/127 when the command cannot be invoked / is not found,
// 1 for other errors (which print "Error response from daemon: ..." like docker).
import { fstatSync } from 'node:fs';
import { parseFlags, formatFlagHelp, UsageError, type FlagDef } from './flags.ts';
import { Ctx, StatusError, CancelledError, findCommand, type CliIO, type Command, type GlobalOptions, type InStream, type OutStream } from './command.ts';
import { ConnectError, DEFAULT_HOST } from './api-client.ts';
import { JsonMessageError } from './render/jsonmessage.ts';
import { TemplateError } from './render/template.ts';
import { configDir } from '../distribution/credentials.ts';
import { commands } from './commands/index.ts';
import { CLI_VERSION } from './commands/system.ts';

export { CLI_VERSION };

const GLOBAL_FLAGS: FlagDef[] = [
  { name: 'config', kind: 'string', help: 'Location of client config files', valueName: 'string' },
  { name: 'context', short: 'c', kind: 'string', help: 'Name of the context to use (only "default")', valueName: 'string' },
  { name: 'debug', short: 'D', kind: 'bool', help: 'Enable debug mode' },
  { name: 'host', short: 'H', kind: 'list', help: 'Daemon socket to connect to' },
  { name: 'log-level', short: 'l', kind: 'string', default: 'info', help: 'Set the logging level ("debug", "info", "warn", "error", "fatal")', valueName: 'string' },
  { name: 'tls', kind: 'bool', help: 'Use TLS; implied by --tlsverify', hidden: true },
  { name: 'tlsverify', kind: 'bool', help: 'Use TLS and verify the remote', hidden: true },
  { name: 'version', short: 'v', kind: 'bool', help: 'Print version information and quit' },
];

function commandPath(path: Command[]): string {
  return ['berth', ...path.map((c) => c.name)].join(' ');
}

function useLine(path: Command[]): string {
  const cmd = path[path.length - 1];
  if (!cmd) return 'berth [OPTIONS] COMMAND';
  return `${commandPath(path)}${cmd.usage ? ' ' + cmd.usage : ''}`;
}

function pluralArgs(n: number): string {
  return n === 1 ? 'argument' : 'arguments';
}

export function helpText(path: Command[], list: Command[]): string {
  const cmd = path[path.length - 1];
  let s = `\nUsage:  ${useLine(path)}\n\n${cmd ? cmd.short : 'A docker-compatible client of berthd, the berth container engine'}\n`;
  if (cmd?.aliases?.length) {
    s += `\nAliases:\n  ${[cmd.name, ...cmd.aliases].map((a) => commandPath([...path.slice(0, -1), { ...cmd, name: a }])).join(', ')}\n`;
  }
  const subs = (cmd ? cmd.sub ?? [] : list).filter((c) => !c.hidden);
  if (subs.length) {
    s += `\nCommands:\n`;
    const w = Math.max(...subs.map((c) => c.name.length));
    for (const c of subs) s += `  ${c.name.padEnd(Math.max(w, 10))}  ${c.short}\n`;
  }
  const flags = cmd ? cmd.flags ?? [] : GLOBAL_FLAGS;
  if (flags.some((f) => !f.hidden)) s += `\n${cmd ? 'Options' : 'Global Options'}:\n${formatFlagHelp(flags)}\n`;
  if (subs.length) s += `\nRun '${commandPath(path)} COMMAND --help' for more information on a command.\n`;
  return s;
}

function argError(path: Command[], args: string[]): string | undefined {
  const cmd = path[path.length - 1]!;
  const { min, max } = cmd.args ?? {};
  const name = `'${commandPath(path)}'`;
  let msg: string | undefined;
  let see = 'Run';
  if (min !== undefined && max !== undefined && min === max && args.length !== min) {
    msg = min === 0 ? `${name} accepts no arguments` : `${name} requires ${min} ${pluralArgs(min)}`;
  } else if (min !== undefined && args.length < min) {
    msg = `${name} requires at least ${min} ${pluralArgs(min)}`;
    see = 'See';
  } else if (max !== undefined && args.length > max) {
    msg = max === 0 ? `${name} accepts no arguments` : `${name} requires at most ${max} ${pluralArgs(max)}`;
  }
  if (msg === undefined) return undefined;
  return `berth: ${msg}\n\nUsage:  ${useLine(path)}\n\n${see} '${commandPath(path)} --help' for more information\n`;
}

/** Select the daemon: -H, then BERTH_HOST, then DOCKER_HOST, then the default socket. */
export function resolveHost(flagHosts: string[], env: Record<string, string | undefined>): string {
  if (flagHosts.length > 1) throw new UsageError('Specify only one -H');
  return flagHosts[0] || env.BERTH_HOST || env.DOCKER_HOST || DEFAULT_HOST;
}

/** Run one CLI invocation; resolves with the exit status. */
export async function runCli(argv: string[], io: CliIO, list: Command[] = commands): Promise<number> {
  let path: Command[] = [];
  try {
    const g = parseFlags(argv, GLOBAL_FLAGS, { interspersed: false });
    if (g.flags.bool('version')) {
      io.stdout.write(`berth version ${CLI_VERSION}, build berth\n`);
      return 0;
    }
    let rest = g.args;
    if (g.help || rest.length === 0) {
      io.stdout.write(helpText([], list));
      return 0;
    }
    if (rest[0] === 'help') {
      rest = [...rest.slice(1), '--help'];
      if (rest.length === 1) {
        io.stdout.write(helpText([], list));
        return 0;
      }
    }
    // Walk the command tree: `image ls`, `container run`, `registry ...`.
    let level = list;
    while (rest.length > 0) {
      const c = findCommand(level, rest[0]!);
      if (!c) {
        if (path.length === 0 || !path[path.length - 1]!.sub) {
          io.stderr.write(`berth: unknown command: berth ${rest[0]}\n\nRun 'berth --help' for more information\n`);
          return 1;
        }
        if (rest[0]!.startsWith('-')) break;
        io.stderr.write(`berth: unknown command: ${commandPath(path)} ${rest[0]}\n\nUsage:  ${commandPath(path)}\n\nRun '${commandPath(path)} --help' for more information\n`);
        return 1;
      }
      path.push(c);
      rest = rest.slice(1);
      if (!c.sub) break;
      level = c.sub;
    }
    const cmd = path[path.length - 1]!;
    // The config directory is found when a command first needs it (credentials): finding the
    // home directory loads node:os, time on every run that never reads the config.
    let config: string | undefined;
    const globals: GlobalOptions = {
      host: resolveHost(g.flags.list('host'), io.env),
      get configDir() {
        return (config ??= g.flags.string('config') || configDir(io.env as NodeJS.ProcessEnv));
      },
      debug: g.flags.bool('debug') || io.env.DEBUG === '1',
    };
    const ctx = new Ctx(io, globals);
    ctx.commandPath = commandPath(path);
    if (!cmd.run) {
      // A group without a subcommand: its help.
      if (rest.length > 0 && !['--help', '-h'].includes(rest[0]!)) {
        const p = parseFlags(rest, [], {});
        if (p.args.length) throw new UsageError(`unknown command: ${rest[0]}`);
      }
      io.stdout.write(helpText(path, list));
      return 0;
    }
    if (cmd.rawArgs) return (await cmd.run(ctx, parseFlags([], []).flags, rest)) ?? 0;
    const parsed = parseFlags(rest, cmd.flags ?? [], { interspersed: cmd.interspersed ?? true });
    if (parsed.help) {
      io.stdout.write(helpText(path, list));
      return 0;
    }
    const aerr = argError(path, parsed.args);
    if (aerr) {
      io.stderr.write(aerr);
      return 1;
    }
    const status = await cmd.run(ctx, parsed.flags, parsed.args);
    return status ?? 0;
  } catch (err) {
    return reportError(err, path, io);
  }
}

function reportError(err: unknown, path: Command[], io: CliIO): number {
  if (err instanceof UsageError) {
    io.stderr.write(`${err.message}\n\nUsage:  ${useLine(path)}\n\nRun '${path.length ? commandPath(path) : 'berth'} --help' for more information\n`);
    return 125;
  }
  if (err instanceof StatusError) {
    if (err.message) io.stderr.write(err.message.endsWith('\n') ? err.message : err.message + '\n');
    return err.status === 0 ? 1 : err.status;
  }
  if (err instanceof CancelledError) return 0;
  if (err instanceof JsonMessageError) {
    io.stderr.write(err.message + '\n');
    return err.code > 0 ? err.code : 1;
  }
  if (err instanceof TemplateError) {
    io.stderr.write(err.message + '\n');
    return 1;
  }
  if (err instanceof ConnectError) {
    io.stderr.write(err.message + '\n');
    return 1;
  }
  const msg = err instanceof Error ? err.message : String(err);
  io.stderr.write(msg + '\n');
  if (io.env.BERTH_DEBUG_STACK && err instanceof Error) io.stderr.write(String(err.stack) + '\n');
  return 1;
}

/** The process's own I/O (main.ts). */
export interface ProcessIO extends CliIO {
  /** The output streams made so far: the ones to flush before exit. */
  outputs(): OutStream[];
}

/**
 * The process's stdio as a CliIO, each stream made on first use: Node builds process.stdin and
 * friends lazily, and a `run` without -i never needs stdin, which costs ~4 ms when it is a file
 * (an fs.ReadStream loads fs/promises and readline). Broken pipes on stdout (`berth images |
 * head -1`) end the program quietly, as in docker.
 */
export function processIO(): ProcessIO {
  let stdout: OutStream | undefined;
  let stderr: OutStream | undefined;
  return {
    get stdin(): InStream {
      return process.stdin;
    },
    get stdout(): OutStream {
      if (!stdout) {
        stdout = process.stdout;
        stdout.on('error', (err: NodeJS.ErrnoException) => {
          if (err.code === 'EPIPE') process.exit(0);
        });
      }
      return stdout;
    },
    get stderr(): OutStream {
      return (stderr ??= process.stderr);
    },
    env: process.env,
    // A pipe or a file is no terminal, and fstat tells (~0.1 ms) without making process.stdout,
    // which for a pipe is ~1 ms: a run with no output never makes it.
    stdoutIsTerminal() {
      if (!stdout) {
        try {
          if (!fstatSync(1).isCharacterDevice()) return false;
        } catch {
          // fd 1 closed: Node's stdout then stands in
        }
      }
      return this.stdout.isTTY === true;
    },
    onSignal(signal, handler) {
      process.on(signal, handler);
      return () => process.off(signal, handler);
    },
    outputs: () => [stdout, stderr].filter((s) => s !== undefined),
  };
}
