// `berth registry serve|gc`: a thin shell over RegistryServer and collectGarbage.
import { parseArgs } from 'node:util';
import { readFile } from 'node:fs/promises';
import { errorMessage } from '../core/errors.ts';
import { createLogger } from '../pkg/log.ts';
import { FilesystemDriver } from './filesystem-driver.ts';
import { collectGarbage } from './garbage-collector.ts';
import { HtpasswdAuth } from './htpasswd-auth.ts';
import { RegistryServer } from './registry-server.ts';
import { RegistryStore } from './registry-store.ts';

const DEFAULT_ROOT = '/var/lib/berth/registry';

const USAGE = `Usage: berth registry COMMAND

Run an OCI distribution (Docker Registry HTTP API v2) registry.

Commands:
  serve       Serve a registry
  gc          Delete unreferenced blobs (safe while serving)

Run 'berth registry COMMAND --help' for more information on a command.
`;

const SERVE_USAGE = `Usage: berth registry serve [OPTIONS]

Serve an OCI distribution spec 1.1 / Docker Registry HTTP API v2 registry.

Options:
      --addr string          Address to listen on (default "127.0.0.1:5000")
      --root string          Storage root (default "${DEFAULT_ROOT}")
      --htpasswd string      Require Basic auth from this htpasswd file (bcrypt entries)
      --anonymous-pull       With --htpasswd: allow pulls without credentials
      --tls-cert string      Serve HTTPS with this certificate (PEM)
      --tls-key string       Private key for --tls-cert (PEM)
      --read-only            Refuse all writes
      --delete               Allow deleting manifests, tags and blobs
      --max-blob-size bytes  Largest accepted blob (default 64 GiB)
  -D, --debug                Debug logging
  -h, --help                 Print usage
`;

const GC_USAGE = `Usage: berth registry gc [OPTIONS]

Mark every manifest's blobs and delete the rest. Safe while the registry serves: blobs and
untagged manifests younger than the grace period are kept, so in-flight pushes are not lost.

Options:
      --root string          Storage root (default "${DEFAULT_ROOT}")
      --delete-untagged      Also delete manifests no tag reaches (index children and
                             referrers of kept manifests are kept)
      --grace duration       Keep unreferenced content younger than this (default 1h)
      --upload-expiry dur    Remove uploads idle longer than this (default 24h)
      --dry-run              Report only
  -h, --help                 Print usage
`;

/** "90s", "15m", "1h", "2d" or plain milliseconds. */
export function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(s.trim());
  if (!m) throw new Error(`invalid duration ${JSON.stringify(s)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Number(m[1]) * unit;
}

export function parseAddr(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m) throw new Error(`invalid --addr ${JSON.stringify(addr)}: want host:port`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`invalid port ${port}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function registryCommand(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case 'serve': return await serve(rest);
      case 'gc': return await gc(rest);
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return cmd === undefined ? 1 : 0;
      default:
        process.stderr.write(`berth registry: unknown command ${JSON.stringify(cmd)}\n${USAGE}`);
        return 125;
    }
  } catch (err) {
    process.stderr.write(`berth registry ${cmd}: ${errorMessage(err)}\n`);
    return 125;
  }
}

async function serve(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      addr: { type: 'string', default: '127.0.0.1:5000' },
      root: { type: 'string', default: DEFAULT_ROOT },
      htpasswd: { type: 'string' },
      'anonymous-pull': { type: 'boolean' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'read-only': { type: 'boolean' },
      delete: { type: 'boolean' },
      'max-blob-size': { type: 'string' },
      debug: { type: 'boolean', short: 'D' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(SERVE_USAGE);
    return 0;
  }
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new Error('--tls-cert and --tls-key go together');
  const { host, port } = parseAddr(values.addr);
  const log = createLogger({ debug: values.debug });
  const driver = new FilesystemDriver(values.root);
  await driver.init();
  await driver.sweepTmp();
  const maxBlob = values['max-blob-size'] === undefined ? undefined : Number(values['max-blob-size']);
  if (maxBlob !== undefined && !(Number.isSafeInteger(maxBlob) && maxBlob > 0)) throw new Error('invalid --max-blob-size');
  const store = new RegistryStore(driver, maxBlob ? { maxBlobBytes: maxBlob, log } : { log });
  const tls = values['tls-cert'] ? { cert: await readFile(values['tls-cert']), key: await readFile(values['tls-key']!) } : undefined;
  const server = new RegistryServer({
    store,
    auth: values.htpasswd ? await HtpasswdAuth.load(values.htpasswd) : undefined,
    anonymousPull: values['anonymous-pull'],
    readOnly: values['read-only'],
    allowDelete: values.delete,
    tls,
    log,
  });
  const addr = await server.listen(port, host);
  const shown = addr.family === 'IPv6' ? `[${addr.address}]:${addr.port}` : `${addr.address}:${addr.port}`;
  log.info({ addr: shown, root: values.root, tls: Boolean(tls), auth: Boolean(values.htpasswd) }, 'registry listening');
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

async function gc(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      root: { type: 'string', default: DEFAULT_ROOT },
      'delete-untagged': { type: 'boolean' },
      grace: { type: 'string', default: '1h' },
      'upload-expiry': { type: 'string', default: '24h' },
      'dry-run': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(GC_USAGE);
    return 0;
  }
  const driver = new FilesystemDriver(values.root);
  const report = await collectGarbage(driver, {
    deleteUntagged: values['delete-untagged'],
    graceMs: parseDuration(values.grace),
    uploadExpiryMs: parseDuration(values['upload-expiry']),
    dryRun: values['dry-run'],
  });
  process.stdout.write(JSON.stringify(report) + '\n');
  return 0;
}
