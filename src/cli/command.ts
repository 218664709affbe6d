// The CLI's command model: a tree of commands (verbs and groups such as `image`, `container`),
// each with its flags, argument count and a run function over a Ctx that holds the I/O streams
// and a lazily created API client. Commands never call process.exit: they return an exit status
// or throw (StatusError for a chosen status, UsageError for 125, anything else for 1).
import type { Writable } from 'node:stream';
import type { FlagDef, Flags } from './flags.ts';
import { ApiClient } from './api-client.ts';
import { CredentialStore, encodeRegistryAuthHeader, normalizeRegistry } from '../distribution/credentials.ts';
import { parseReference } from '../core/reference.ts';

export interface InStream extends NodeJS.ReadableStream {
  isTTY?: boolean;
  setRawMode?(mode: boolean): unknown;
}

export interface OutStream extends Writable {
  isTTY?: boolean;
  columns?: number;
  rows?: number;
}

export interface CliIO {
  stdin: InStream;
  stdout: OutStream;
  stderr: OutStream;
  env: Record<string, string | undefined>;
  /** Whether stdout is a terminal, found without making the stream where that is cheaper. */
  stdoutIsTerminal?(): boolean;
  /** Register a handler for a process signal; returns the unregister function. */
  onSignal?(signal: NodeJS.Signals, handler: () => void): () => void;
}

export interface GlobalOptions {
  host: string;
  configDir: string;
  debug: boolean;
}

/** Exit with a chosen status, printing `message` (if any) to stderr. */
export class StatusError extends Error {
  readonly status: number;
  constructor(status: number, message = '') {
    super(message);
    this.status = status;
    this.name = 'StatusError';
  }
}

/** The user declined (a prompt): exit 0 silently, as docker does for errdefs.Cancelled. */
export class CancelledError extends Error {}

export class Ctx {
  readonly io: CliIO;
  readonly globals: GlobalOptions;
  /** "berth image ls": for usage messages. */
  commandPath = 'berth';
  #client?: ApiClient;

  constructor(io: CliIO, globals: GlobalOptions) {
    this.io = io;
    this.globals = globals;
  }

  get client(): ApiClient {
    this.#client ??= new ApiClient(this.globals.host, {
      debug: this.globals.debug ? (msg) => this.io.stderr.write(`DEBU[0000] ${msg}\n`) : undefined,
    });
    return this.#client;
  }

  out(s: string): void {
    this.io.stdout.write(s);
  }

  err(s: string): void {
    this.io.stderr.write(s);
  }

  get credentials(): CredentialStore {
    return new CredentialStore(this.globals.configDir);
  }

  /** X-Registry-Auth for an image reference, from the stored credentials of its registry. */
  async registryAuthFor(image: string): Promise<Record<string, string>> {
    let domain: string;
    try {
      domain = parseReference(image).domain;
    } catch {
      return {};
    }
    return this.registryAuthForServer(domain);
  }

  async registryAuthForServer(server: string): Promise<Record<string, string>> {
    const creds = await this.credentials.credentials(normalizeRegistry(server));
    return creds ? { 'X-Registry-Auth': encodeRegistryAuthHeader(creds) } : {};
  }
}

export interface ArgSpec {
  min?: number;
  max?: number;
}

export interface Command {
  name: string;
  aliases?: string[];
  /** After the command path: "[OPTIONS] IMAGE [IMAGE...]". */
  usage: string;
  short: string;
  flags?: FlagDef[];
  /** false: flags stop at the first positional (run, exec, create). */
  interspersed?: boolean;
  args?: ArgSpec;
  run?: (ctx: Ctx, flags: Flags, args: string[]) => Promise<number | void>;
  /** Subcommands (a group such as `image`). */
  sub?: Command[];
  hidden?: boolean;
  /** Pass argv through untouched (no flag parsing, no --help): a delegated command tree. */
  rawArgs?: boolean;
}

export function findCommand(list: Command[], name: string): Command | undefined {
  return list.find((c) => c.name === name || c.aliases?.includes(name));
}

/** Output for humans: a terminal gets bars and colors, a pipe gets plain lines. */
export function isTerminal(s: { isTTY?: boolean }): boolean {
  return s.isTTY === true;
}
