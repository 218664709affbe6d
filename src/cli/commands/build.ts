// `build`: the classic builder API (POST /build, version=1), as `DOCKER_BUILDKIT=0 docker build`
// calls it: the context directory packed as a tar (.dockerignore applied, by src/build's packer)
// or a tar on stdin ("-"), or a remote URL; flags as query parameters; the JSON message stream
// rendered like docker; `aux.ID` is the image ID (-q prints only that, --iidfile writes it).
import { writeFile, stat } from 'node:fs/promises';
import { relative, resolve, sep } from 'node:path';
import { Transform, Writable } from 'node:stream';
import { randomHex } from '../../pkg/random-hex.ts';
import type { Command } from '../command.ts';
import { isTerminal } from '../command.ts';
import { displayJsonMessages } from '../render/jsonmessage.ts';
import { humanSize, parseRamSize } from '../render/units.ts';
import { deletedList, pruneCommand } from './util.ts';

function kvJson(list: string[], env?: Record<string, string | undefined>): string | undefined {
  if (list.length === 0) return undefined;
  const o: Record<string, string | null> = {};
  for (const kv of list) {
    const i = kv.indexOf('=');
    if (i !== -1) o[kv.slice(0, i)] = kv.slice(i + 1);
    else if (env) o[kv] = env[kv] ?? null; // --build-arg NAME takes the client's value, or null
    else o[kv] = '';
  }
  return JSON.stringify(o);
}

function ulimitsJson(list: string[]): string | undefined {
  if (list.length === 0) return undefined;
  return JSON.stringify(
    list.map((u) => {
      const [name = '', v = ''] = u.split('=');
      const [soft = '0', hard] = v.split(':');
      return { Name: name, Hard: Number(hard ?? soft), Soft: Number(soft) };
    }),
  );
}

export const build: Command = {
  name: 'build',
  usage: '[OPTIONS] PATH | URL | -',
  short: 'Build an image from a Dockerfile',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'add-host', kind: 'list', help: 'Add a custom host-to-IP mapping ("host:ip")' },
    { name: 'build-arg', kind: 'list', help: 'Set build-time variables' },
    { name: 'cache-from', kind: 'list', valueName: 'strings', help: 'Images to consider as cache sources' },
    { name: 'cgroup-parent', kind: 'string', valueName: 'string', help: 'Set the parent cgroup for the "RUN" instructions during build' },
    { name: 'cpu-period', kind: 'int', help: 'Limit the CPU CFS (Completely Fair Scheduler) period' },
    { name: 'cpu-quota', kind: 'int', help: 'Limit the CPU CFS (Completely Fair Scheduler) quota' },
    { name: 'cpu-shares', short: 'c', kind: 'int', help: 'CPU shares (relative weight)' },
    { name: 'cpuset-cpus', kind: 'string', valueName: 'string', help: 'CPUs in which to allow execution (0-3, 0,1)' },
    { name: 'cpuset-mems', kind: 'string', valueName: 'string', help: 'MEMs in which to allow execution (0-3, 0,1)' },
    { name: 'file', short: 'f', kind: 'string', valueName: 'string', help: "Name of the Dockerfile (Default is 'PATH/Dockerfile')" },
    { name: 'force-rm', kind: 'bool', help: 'Always remove intermediate containers' },
    { name: 'iidfile', kind: 'string', valueName: 'string', help: 'Write the image ID to the file' },
    { name: 'isolation', kind: 'string', valueName: 'string', help: 'Container isolation technology' },
    { name: 'label', kind: 'list', help: 'Set metadata for an image' },
    { name: 'memory', short: 'm', kind: 'string', valueName: 'bytes', help: 'Memory limit' },
    { name: 'memory-swap', kind: 'string', valueName: 'bytes', help: "Swap limit equal to memory plus swap: -1 to enable unlimited swap" },
    { name: 'network', kind: 'string', valueName: 'string', help: 'Set the networking mode for the RUN instructions during build' },
    { name: 'no-cache', kind: 'bool', help: 'Do not use cache when building the image' },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Set platform if server is multi-platform capable' },
    { name: 'pull', kind: 'bool', help: 'Always attempt to pull a newer version of the image' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the build output and print image ID on success' },
    { name: 'rm', kind: 'bool', default: true, help: 'Remove intermediate containers after a successful build' },
    { name: 'security-opt', kind: 'list', valueName: 'strings', help: 'Security options' },
    { name: 'shm-size', kind: 'string', valueName: 'bytes', help: 'Size of "/dev/shm"' },
    { name: 'tag', short: 't', kind: 'list', help: 'Name and optionally a tag in the "name:tag" format' },
    { name: 'target', kind: 'string', valueName: 'string', help: 'Set the target build stage to build.' },
    { name: 'ulimit', kind: 'list', valueName: 'ulimit', help: 'Ulimit options' },
  ],
  async run(ctx, f, [src]) {
    const bytes = (n: string) => (f.string(n) === '' ? undefined : f.string(n) === '-1' ? -1 : parseRamSize(f.string(n)));
    let body: NodeJS.ReadableStream | undefined;
    let remote: string | undefined;
    let dockerfile = f.string('file') || 'Dockerfile';
    if (src === '-') {
      if (isTerminal(ctx.io.stdin)) throw new Error('"-" requires a context on stdin (a tar archive)');
      body = ctx.io.stdin;
    } else if (/^(https?:\/\/|git@|git:\/\/|github\.com\/)/.test(src!)) {
      remote = src;
    } else {
      const dir = resolve(src!);
      const st = await stat(dir).catch(() => undefined);
      if (!st?.isDirectory()) throw new Error(`unable to prepare context: path "${src}" not found`);
      let dockerfileData: Buffer | undefined;
      if (f.string('file') === '-') {
        // -f - PATH: the Dockerfile comes from stdin and travels as an extra entry of the
        // context under a random name, as the docker CLI sends it.
        if (isTerminal(ctx.io.stdin)) throw new Error('"-f -" requires a Dockerfile on stdin');
        const chunks: Buffer[] = [];
        for await (const c of ctx.io.stdin as AsyncIterable<Buffer | string>) chunks.push(Buffer.isBuffer(c) ? c : Buffer.from(c));
        dockerfileData = Buffer.concat(chunks);
        dockerfile = `.dockerfile.${randomHex(10)}`;
      } else if (f.string('file')) {
        // -f is relative to the current directory, and must lie inside the context.
        const rel = relative(dir, resolve(f.string('file')));
        if (rel.startsWith('..') || rel.startsWith(sep)) throw new Error(`the Dockerfile (${f.string('file')}) must be within the build context`);
        dockerfile = rel.split(sep).join('/');
      }
      const { packContext } = await import('../../build/context-tar.ts');
      body = packContext(dir, dockerfileData ? { dockerfile, dockerfileData } : { dockerfile });
    }
    let sent = 0;
    const counted = body?.pipe(
      new Transform({
        transform(chunk: Buffer, _e, cb) {
          sent += chunk.length;
          cb(null, chunk);
        },
      }),
    );
    const quiet = f.bool('quiet');
    const res = await ctx.client.request('POST', '/build', {
      query: {
        t: f.list('tag').length ? f.list('tag') : undefined,
        remote,
        dockerfile,
        q: quiet,
        nocache: f.bool('no-cache'),
        pull: f.bool('pull'),
        rm: f.bool('rm') ? undefined : '0',
        forcerm: f.bool('force-rm'),
        memory: bytes('memory'),
        memswap: bytes('memory-swap'),
        cpushares: f.int('cpu-shares') || undefined,
        cpuquota: f.int('cpu-quota') || undefined,
        cpuperiod: f.int('cpu-period') || undefined,
        cpusetcpus: f.string('cpuset-cpus') || undefined,
        cpusetmems: f.string('cpuset-mems') || undefined,
        cgroupparent: f.string('cgroup-parent') || undefined,
        shmsize: bytes('shm-size'),
        buildargs: kvJson(f.list('build-arg'), ctx.io.env),
        labels: kvJson(f.list('label')),
        cachefrom: f.list('cache-from').length ? JSON.stringify(f.list('cache-from')) : undefined,
        securityopt: f.list('security-opt').length ? f.list('security-opt') : undefined,
        ulimits: ulimitsJson(f.list('ulimit')),
        extrahosts: f.list('add-host').length ? f.list('add-host') : undefined,
        target: f.string('target') || undefined,
        networkmode: f.string('network') || undefined,
        platform: f.string('platform') || undefined,
        isolation: f.string('isolation') || undefined,
        version: '1',
      },
      body: counted as NodeJS.ReadableStream | undefined,
      contentType: 'application/x-tar',
      headers: { 'X-Registry-Config': 'e30=' },
    });
    if (!quiet && body) ctx.out(`Sending build context to Docker daemon  ${humanSize(sent)}\n`);
    let imageId = '';
    const out = ctx.io.stdout;
    // -q: collect the (daemon-quieted) stream and print it on success, to stderr on failure.
    const chunks: Buffer[] = [];
    const sink = quiet ? new Writable({ write: (c: Buffer, _e, cb) => (chunks.push(Buffer.from(c)), cb()) }) : out;
    try {
      await displayJsonMessages(res as AsyncIterable<Buffer>, sink, {
        isTerminal: !quiet && isTerminal(out),
        width: out.columns,
        onAux: (m) => {
          const id = (m.aux as { ID?: string } | undefined)?.ID;
          if (id) imageId = id;
        },
      });
    } catch (err) {
      if (quiet) ctx.err(Buffer.concat(chunks).toString());
      throw err;
    }
    if (quiet) ctx.out(Buffer.concat(chunks).toString() || (imageId ? `${imageId}\n` : ''));
    if (f.string('iidfile') && imageId) await writeFile(f.string('iidfile'), imageId);
  },
};

// ---- builder: docker's build management group (`builder build`, `builder prune`) -------------

interface BuildCachePruneReport {
  CachesDeleted?: string[] | null;
  SpaceReclaimed?: number;
}

const builderPrune = pruneCommand<BuildCachePruneReport>({
  short: 'Remove build cache',
  path: '/build/prune',
  allHelp: 'Remove all unused build cache, not just dangling ones',
  filterHelp: 'Provide filter values (e.g. "until=24h")',
  extraFlags: [{ name: 'keep-storage', kind: 'string', valueName: 'bytes', help: 'Amount of disk space to keep for cache' }],
  prompt: (all) => all
    ? 'WARNING! This will remove all build cache. Are you sure you want to continue?'
    : 'WARNING! This will remove all dangling build cache. Are you sure you want to continue?',
  query: (f, all) => ({
    all: all ? '1' : undefined,
    'keep-storage': f.string('keep-storage') ? String(parseRamSize(f.string('keep-storage'))) : undefined,
  }),
  deleted: (r) => deletedList('Deleted build cache objects', r.CachesDeleted),
  space: true,
});

export const builderGroup: Command = {
  name: 'builder',
  usage: 'COMMAND',
  short: 'Manage builds',
  sub: [{ ...build, name: 'build' }, builderPrune],
};
