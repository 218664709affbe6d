// berthd entry point: flags, signals, start.
import { parseArgs } from 'node:util';
import { Daemon } from './server.ts';
import { defaultConfig } from './config.ts';
import { errorMessage } from '../core/errors.ts';
import { BERTH_VERSION } from './routes/system.ts';

// libuv's thread pool (fs calls, fsyncs) has 4 threads by default: a few slow fsyncs of records
// and snapshots would hold up every other file operation of the daemon behind them. Read by
// libuv when the pool first starts, which no module above does at load.
process.env.UV_THREADPOOL_SIZE ??= '16';

const USAGE = `Usage: berthd [OPTIONS]

A container engine that speaks the Docker Engine API.

Options:
      --data-root string           Root of persistent state (default "/var/lib/berth")
      --exec-root string           Root of runtime state (default "/run/berth")
  -H, --host list                  Daemon socket(s) to listen on (default unix:///run/berth/berth.sock)
      --insecure-registry list     Registries reachable over plain HTTP (127.0.0.0/8 always is)
      --default-runtime string     Default OCI runtime (default "runc")
      --add-runtime name=path      Register an OCI runtime
  -b, --bridge string              Device of the default bridge network (default "berth0")
      --bip string                 Gateway address and prefix of the default bridge (default "172.17.0.1/16")
  -D, --debug                      Debug logging
      --no-prepare-ahead           Do not create a container's runtime task ahead of its start
      --prepare-ahead-ttl ms       How long such a task waits for the start (default 10000)
  -v, --version                    Print version and exit
`;

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        'data-root': { type: 'string' },
        'exec-root': { type: 'string' },
        host: { type: 'string', short: 'H', multiple: true },
        'insecure-registry': { type: 'string', multiple: true },
        'default-runtime': { type: 'string' },
        'add-runtime': { type: 'string', multiple: true },
        bridge: { type: 'string', short: 'b' },
        bip: { type: 'string' },
        debug: { type: 'boolean', short: 'D' },
        'no-prepare-ahead': { type: 'boolean' },
        'prepare-ahead-ttl': { type: 'string' },
        version: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`berthd: ${errorMessage(err)}\n\n${USAGE}`);
    process.exit(125);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (values.version) {
    process.stdout.write(`berthd version ${BERTH_VERSION}\n`);
    return;
  }
  const config = defaultConfig();
  if (values['data-root']) config.dataRoot = values['data-root'];
  if (values['exec-root']) config.execRoot = values['exec-root'];
  if (values.host?.length) config.hosts = values.host.map((h) => (h.startsWith('/') ? `unix://${h}` : h));
  if (values['insecure-registry']) config.insecureRegistries = values['insecure-registry'];
  if (values['default-runtime']) config.defaultRuntime = values['default-runtime'];
  for (const r of values['add-runtime'] ?? []) {
    const i = r.indexOf('=');
    if (i < 1) {
      process.stderr.write(`berthd: --add-runtime wants name=path, got ${r}\n`);
      process.exit(125);
    }
    config.runtimes[r.slice(0, i)] = r.slice(i + 1);
  }
  if (values.bridge) config.bridge = values.bridge;
  if (values.bip) config.bip = values.bip;
  config.debug = values.debug ?? false;
  if (values['no-prepare-ahead']) config.prepareAhead = false;
  if (values['prepare-ahead-ttl'] !== undefined) {
    const ms = Number(values['prepare-ahead-ttl']);
    if (!Number.isInteger(ms) || ms < 0) {
      process.stderr.write(`berthd: --prepare-ahead-ttl wants milliseconds, got ${values['prepare-ahead-ttl']}\n`);
      process.exit(125);
    }
    config.prepareAheadTtlMs = ms;
  }
  if (process.getuid?.() !== 0) process.stderr.write('berthd: warning: not running as root; containers will not start\n');

  const daemon = new Daemon(config);
  let stopping = false;
  const stop = (sig: string) => {
    if (stopping) return;
    stopping = true;
    daemon.log.info({ signal: sig }, 'shutting down; containers keep running');
    daemon.stop().then(() => process.exit(0), () => process.exit(1));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await daemon.start();
}

main().catch((err: unknown) => {
  process.stderr.write(`berthd: ${errorMessage(err)}\n`);
  process.exit(1);
});
