// run, create, start, attach, exec: the verbs that create processes and stream their I/O.
// The call sequence is docker's (cli/command/container/run.go):
//   create (on 404 "No such image": pull, then create again) -> attach (hijacked) ->
//   wait?condition=next-exit|removed (headers awaited, so the daemon has registered the
//   waiter before the container can exit) -> start -> resize -> stream -> exit status.
import { writeFile } from 'node:fs/promises';
import { StatusError, isTerminal, type Command, type Ctx } from '../command.ts';
import { ApiError, readAll } from '../api-client.ts';
import { parseReference, familiarString } from '../../core/reference.ts';
import { CREATE_FLAGS, RUN_ONLY_FLAGS, buildCreateRequest, type CreateRequest } from './container-opts.ts';
import { pullImage } from './image.ts';
import { streamHijacked } from '../attach-streams.ts';
import type { Flags } from '../flags.ts';

/** Signals a non-TTY `run`/`attach` forwards to the container (docker's --sig-proxy). */
const PROXIED_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'];

function usageFailure(ctx: Ctx, err: unknown): StatusError {
  return new StatusError(125, `berth: ${(err as Error).message}\n\nRun '${ctx.commandPath} --help' for more information`);
}

/** docker's runStartContainerErr: 127 not found, 126 cannot invoke, else 125. */
export function startErrorStatus(message: string): number {
  const m = message.replace(/^Error response from daemon: /, '');
  if (m.includes('executable file not found') || m.includes('no such file or directory') || m.includes('system cannot find the file specified')) return 127;
  if (m.includes('permission denied') || m.includes('is a directory')) return 126;
  return 125;
}

function createEnv(ctx: Ctx) {
  const tty = ctx.io.stdoutIsTerminal ? ctx.io.stdoutIsTerminal() : isTerminal(ctx.io.stdout);
  return {
    tty: tty ? { rows: ctx.io.stdout.rows ?? 0, columns: ctx.io.stdout.columns ?? 0 } : undefined,
    cwd: process.cwd(),
    env: ctx.io.env,
  };
}

/** POST /containers/create, pulling the image when the daemon does not have it (--pull). */
async function createContainer(ctx: Ctx, req: CreateRequest, f: Flags): Promise<string> {
  const pull = f.string('pull');
  if (!['always', 'missing', 'never'].includes(pull)) throw new Error(`invalid pull option: '${pull}': must be one of "always", "missing" or "never"`);
  const quiet = f.bool('quiet');
  const doPull = async () => {
    if (!quiet) {
      // Docker's message names the image with its default tag.
      let shown = req.image;
      try {
        shown = familiarString(parseReference(req.image));
      } catch {
        // the daemon reports invalid references
      }
      if (pull !== 'always') ctx.err(`Unable to find image '${shown}' locally\n`);
    }
    await pullImage(ctx, req.image, { platform: req.query.platform, quiet, toStderr: !quiet });
  };
  if (pull === 'always') await doPull();
  const create = () => ctx.client.json<{ Id: string; Warnings?: string[] | null }>('POST', '/containers/create', { query: req.query, body: req.body });
  let res: { Id: string; Warnings?: string[] | null };
  try {
    res = await create();
  } catch (err) {
    if (err instanceof ApiError && err.status === 404 && /no such image/i.test(err.daemonMessage) && pull === 'missing') {
      await doPull();
      res = await create();
    } else {
      throw err;
    }
  }
  for (const w of res.Warnings ?? []) ctx.err(`WARNING: ${w}\n`);
  if (req.cidfile) await writeFile(req.cidfile, res.Id, { flag: 'wx', mode: 0o644 });
  return res.Id;
}

interface WaitResult {
  StatusCode: number;
  Error?: { Message?: string } | null;
}

/**
 * Send wait and return once the daemon has answered with headers; `status` settles with the
 * exit. (Wrapped in an object: an async function returning a bare promise would wait for it.)
 */
async function waitExitOrRemoved(ctx: Ctx, id: string, removed: boolean): Promise<{ status: Promise<number> }> {
  const res = await ctx.client.request('POST', `/containers/${id}/wait`, { query: { condition: removed ? 'removed' : 'next-exit' } });
  const status = (async () => {
    try {
      const body = JSON.parse((await readAll(res)).toString('utf8')) as WaitResult & { message?: string; error?: string };
      const streamErr = body.error ?? body.message;
      if (typeof streamErr === 'string' || typeof body.StatusCode !== 'number') {
        ctx.err(`Error waiting for container: ${streamErr ?? 'no exit status in response'}\n`);
        return 125;
      }
      if (body.Error?.Message) {
        ctx.err(`Error waiting for container: ${body.Error.Message}\n`);
        return 125;
      }
      return body.StatusCode;
    } catch (err) {
      ctx.err(`Error waiting for container: ${(err as Error).message}\n`);
      return 125;
    }
  })();
  return { status };
}

/** Resize the container's (or exec's) TTY now and whenever our terminal changes size. */
function monitorTtySize(ctx: Ctx, path: string): () => void {
  const out = ctx.io.stdout;
  const resize = () => {
    if (!out.rows || !out.columns) return;
    ctx.client.call('POST', path, { query: { h: out.rows, w: out.columns } }).catch(() => {});
  };
  resize();
  if (typeof out.on === 'function') out.on('resize', resize);
  const off = ctx.io.onSignal?.('SIGWINCH', resize);
  return () => {
    out.off?.('resize', resize);
    off?.();
  };
}

function proxySignals(ctx: Ctx, id: string): () => void {
  const offs = PROXIED_SIGNALS.map((s) =>
    ctx.io.onSignal?.(s, () => {
      ctx.client.call('POST', `/containers/${id}/kill`, { query: { signal: s.replace(/^SIG/, '') } }).catch(() => {});
    }),
  );
  return () => offs.forEach((o) => o?.());
}

const run: Command = {
  name: 'run',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  short: 'Create and run a new container from an image',
  args: { min: 1 },
  interspersed: false,
  flags: [...CREATE_FLAGS, ...RUN_ONLY_FLAGS],
  async run(ctx, f, args) {
    const detach = f.bool('detach');
    let req: CreateRequest;
    try {
      req = buildCreateRequest(f, args, createEnv(ctx), { detach });
      if (req.tty && req.attachStdin && !isTerminal(ctx.io.stdin)) throw new Error('the input device is not a TTY');
    } catch (err) {
      throw usageFailure(ctx, err);
    }
    let id: string;
    try {
      id = await createContainer(ctx, req, f);
    } catch (err) {
      throw usageFailure(ctx, err);
    }
    const attach = req.attachStdin || req.attachStdout || req.attachStderr;
    let streamDone: Promise<'ended' | 'detached'> | undefined;
    let attached: import('node:stream').Duplex | undefined;
    if (attach) {
      const query: Record<string, boolean | string | undefined> = { stream: true, stdin: req.attachStdin, stdout: req.attachStdout, stderr: req.attachStderr };
      if (f.string('detach-keys')) query.detachKeys = f.string('detach-keys');
      const { socket } = await ctx.client.hijack('POST', `/containers/${id}/attach`, { query });
      attached = socket;
      streamDone = streamHijacked(ctx, socket, { tty: req.tty, stdin: req.attachStdin, detachKeys: f.string('detach-keys') });
    }
    const { status } = await waitExitOrRemoved(ctx, id, req.autoRemove);
    try {
      await ctx.client.call('POST', `/containers/${id}/start`);
    } catch (err) {
      // The daemon need not end an attach to a container that never started: hang up first.
      attached?.destroy();
      if (streamDone) await streamDone.catch(() => {});
      if (req.autoRemove) await status;
      throw new StatusError(startErrorStatus((err as Error).message), `berth: ${(err as Error).message}\n\nRun '${ctx.commandPath} --help' for more information`);
    }
    if (!attach) {
      ctx.out(`${id}\n`);
      return 0;
    }
    const stopResize = req.tty && isTerminal(ctx.io.stdout) ? monitorTtySize(ctx, `/containers/${id}/resize`) : () => {};
    const stopSignals = !req.tty && f.bool('sig-proxy') ? proxySignals(ctx, id) : () => {};
    let how: 'ended' | 'detached' | undefined;
    try {
      how = await streamDone;
    } finally {
      stopResize();
      stopSignals();
    }
    // Detached with the escape keys: the container keeps running; docker exits 0 at once.
    if (how === 'detached') return 0;
    return status;
  },
};

const create: Command = {
  name: 'create',
  usage: '[OPTIONS] IMAGE [COMMAND] [ARG...]',
  short: 'Create a new container',
  args: { min: 1 },
  interspersed: false,
  flags: CREATE_FLAGS,
  async run(ctx, f, args) {
    let req: CreateRequest;
    try {
      req = buildCreateRequest(f, args, createEnv(ctx));
    } catch (err) {
      throw usageFailure(ctx, err);
    }
    // Unlike run, create reports daemon errors plainly with status 1 (as docker does).
    const id = await createContainer(ctx, req, f);
    ctx.out(`${id}\n`);
  },
};

interface ContainerJson {
  Id: string;
  Config?: { Tty?: boolean; OpenStdin?: boolean };
  HostConfig?: { AutoRemove?: boolean };
  State?: { Running?: boolean; Paused?: boolean; Restarting?: boolean; ExitCode?: number };
}

const start: Command = {
  name: 'start',
  usage: '[OPTIONS] CONTAINER [CONTAINER...]',
  short: 'Start one or more stopped containers',
  args: { min: 1 },
  flags: [
    { name: 'attach', short: 'a', kind: 'bool', help: 'Attach STDOUT/STDERR and forward signals' },
    { name: 'checkpoint', kind: 'string', valueName: 'string', help: 'Restore from this checkpoint', hidden: true },
    { name: 'detach-keys', kind: 'string', valueName: 'string', help: 'Override the key sequence for detaching a container' },
    { name: 'interactive', short: 'i', kind: 'bool', help: "Attach container's STDIN" },
  ],
  async run(ctx, f, args) {
    if (f.bool('attach') || f.bool('interactive')) {
      if (args.length > 1) throw new Error('you cannot start and attach multiple containers at once');
      const c = await ctx.client.json<ContainerJson>('GET', `/containers/${args[0]}/json`);
      const tty = c.Config?.Tty === true;
      const stdin = f.bool('interactive') && c.Config?.OpenStdin === true;
      if (tty && stdin && !isTerminal(ctx.io.stdin)) throw new Error('the input device is not a TTY');
      const { socket } = await ctx.client.hijack('POST', `/containers/${c.Id}/attach`, {
        query: { stream: true, stdin, stdout: true, stderr: true, detachKeys: f.string('detach-keys') || undefined },
      });
      const done = streamHijacked(ctx, socket, { tty, stdin, detachKeys: f.string('detach-keys') });
      const { status } = await waitExitOrRemoved(ctx, c.Id, c.HostConfig?.AutoRemove === true);
      await ctx.client.call('POST', `/containers/${c.Id}/start`);
      const stopResize = tty && isTerminal(ctx.io.stdout) ? monitorTtySize(ctx, `/containers/${c.Id}/resize`) : () => {};
      const stopSignals = !tty ? proxySignals(ctx, c.Id) : () => {};
      let how: 'ended' | 'detached' | undefined;
      try {
        how = await done;
      } finally {
        stopResize();
        stopSignals();
      }
      return how === 'detached' ? 0 : status;
    }
    const errs: string[] = [];
    const failed: string[] = [];
    for (const name of args) {
      try {
        await ctx.client.call('POST', `/containers/${name}/start`);
        ctx.out(`${name}\n`);
      } catch (err) {
        errs.push((err as Error).message);
        failed.push(name);
      }
    }
    if (errs.length) throw new StatusError(1, `${errs.join('\n')}\nError: failed to start containers: ${failed.join(', ')}`);
  },
};

const attach: Command = {
  name: 'attach',
  usage: '[OPTIONS] CONTAINER',
  short: 'Attach local standard input, output, and error streams to a running container',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'detach-keys', kind: 'string', valueName: 'string', help: 'Override the key sequence for detaching a container' },
    { name: 'no-stdin', kind: 'bool', help: 'Do not attach STDIN' },
    { name: 'sig-proxy', kind: 'bool', default: true, help: 'Proxy all received signals to the process' },
  ],
  async run(ctx, f, [name]) {
    const c = await ctx.client.json<ContainerJson>('GET', `/containers/${name}/json`);
    if (!c.State?.Running) throw new Error('You cannot attach to a stopped container, start it first');
    if (c.State.Paused) throw new Error('You cannot attach to a paused container, unpause it first');
    if (c.State.Restarting) throw new Error('You cannot attach to a restarting container, wait until it is running');
    const tty = c.Config?.Tty === true;
    const stdin = !f.bool('no-stdin') && c.Config?.OpenStdin === true;
    if (tty && stdin && !isTerminal(ctx.io.stdin)) throw new Error('the input device is not a TTY');
    const { socket } = await ctx.client.hijack('POST', `/containers/${c.Id}/attach`, {
      query: { stream: true, stdin, stdout: true, stderr: true, detachKeys: f.string('detach-keys') || undefined },
    });
    const stopResize = tty && isTerminal(ctx.io.stdout) ? monitorTtySize(ctx, `/containers/${c.Id}/resize`) : () => {};
    const stopSignals = !tty && f.bool('sig-proxy') ? proxySignals(ctx, c.Id) : () => {};
    let how: 'ended' | 'detached' | undefined;
    try {
      how = await streamHijacked(ctx, socket, { tty, stdin, detachKeys: f.string('detach-keys') });
    } finally {
      stopResize();
      stopSignals();
    }
    if (how === 'detached') return 0;
    const after = await ctx.client.json<ContainerJson>('GET', `/containers/${c.Id}/json`).catch(() => undefined);
    const code = after?.State?.Running ? 0 : after?.State?.ExitCode ?? 0;
    return code;
  },
};

const exec: Command = {
  name: 'exec',
  usage: '[OPTIONS] CONTAINER COMMAND [ARG...]',
  short: 'Execute a command in a running container',
  args: { min: 2 },
  interspersed: false,
  flags: [
    { name: 'detach', short: 'd', kind: 'bool', help: 'Detached mode: run command in the background' },
    { name: 'detach-keys', kind: 'string', valueName: 'string', help: 'Override the key sequence for detaching a container' },
    { name: 'env', short: 'e', kind: 'list', help: 'Set environment variables' },
    { name: 'env-file', kind: 'list', help: 'Read in a file of environment variables' },
    { name: 'interactive', short: 'i', kind: 'bool', help: 'Keep STDIN open even if not attached' },
    { name: 'privileged', kind: 'bool', help: 'Give extended privileges to the command' },
    { name: 'tty', short: 't', kind: 'bool', help: 'Allocate a pseudo-TTY' },
    { name: 'user', short: 'u', kind: 'string', valueName: 'string', help: 'Username or UID (format: "<name|uid>[:<group|gid>]")' },
    { name: 'workdir', short: 'w', kind: 'string', valueName: 'string', help: 'Working directory inside the container' },
  ],
  async run(ctx, f, [container, ...cmd]) {
    const detach = f.bool('detach');
    const tty = f.bool('tty');
    const interactive = f.bool('interactive');
    if (tty && interactive && !detach && !isTerminal(ctx.io.stdin)) throw new Error('the input device is not a TTY');
    // A "dummy" inspect first, so "No such container" wins over exec errors (docker does this).
    await ctx.client.json('GET', `/containers/${container}/json`);
    const env = [...f.list('env-file').flatMap((p) => envFileLines(p, ctx)), ...f.list('env').map((e) => (e.includes('=') || ctx.io.env[e] === undefined ? e : `${e}=${ctx.io.env[e]}`))];
    const out = ctx.io.stdout;
    const body: Record<string, unknown> = {
      User: f.string('user'),
      Privileged: f.bool('privileged'),
      Tty: tty,
    };
    if (tty && !detach && isTerminal(out)) body.ConsoleSize = [out.rows ?? 0, out.columns ?? 0];
    Object.assign(body, {
      AttachStdin: interactive && !detach,
      AttachStderr: !detach,
      AttachStdout: !detach,
      Detach: detach,
      DetachKeys: f.string('detach-keys'),
      Env: env.length ? env : null,
      WorkingDir: f.string('workdir'),
      Cmd: cmd,
    });
    const { Id: execId } = await ctx.client.json<{ Id: string }>('POST', `/containers/${container}/exec`, { body });
    if (detach) {
      await ctx.client.call('POST', `/exec/${execId}/start`, { body: { Detach: true, Tty: tty } });
      return 0;
    }
    const startBody: Record<string, unknown> = { Detach: false, Tty: tty };
    if (body.ConsoleSize) startBody.ConsoleSize = body.ConsoleSize;
    const { socket } = await ctx.client.hijack('POST', `/exec/${execId}/start`, { body: startBody });
    const done = streamHijacked(ctx, socket, { tty, stdin: interactive, detachKeys: f.string('detach-keys') });
    const stopResize = tty && isTerminal(out) ? monitorTtySize(ctx, `/exec/${execId}/resize`) : () => {};
    try {
      if ((await done) === 'detached') return 0;
    } finally {
      stopResize();
    }
    const inspect = await ctx.client.json<{ ExitCode?: number | null; Running?: boolean }>('GET', `/exec/${execId}/json`);
    return inspect.ExitCode ?? 0;
  },
};

function envFileLines(path: string, ctx: Ctx): string[] {
  // Same rules as run --env-file.
  const { readFileSync } = process.getBuiltinModule('node:fs');
  return readFileSync(path, 'utf8')
    .split('\n')
    .map((l) => l.replace(/^\s+/, '').replace(/\r$/, ''))
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => (l.includes('=') ? l : ctx.io.env[l] !== undefined ? `${l}=${ctx.io.env[l]}` : l));
}

export const runCommands: Command[] = [run, create, start, attach, exec];
