// Image verbs: pull, push, images (image ls), image inspect, rmi, tag, image prune, history,
// save, load, import. Each sends the requests the docker CLI sends for the same flags.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { StatusError, isTerminal, type Command, type Ctx } from '../command.ts';
import { parseReference, repositoryName, familiarName, type Reference } from '../../core/reference.ts';
import { formatList } from '../render/list.ts';
import { truncateId, ellipsis } from '../render/table.ts';
import { humanSizeWithPrecision, humanSize, timeAgo, goTimeString, rfc3339 } from '../render/units.ts';
import { FORMAT_FLAG, FILTER_FLAG, filtersJson, copyToFile, showJsonStream, ErrorList, deletedList, pruneCommand } from './util.ts';
import { inspectObjects } from './inspect.ts';

// ---- pull / push ------------------------------------------------------------------------------

/** The API's tag parameter for a reference: its digest, else its tag, else "latest". */
function apiTag(ref: Reference): string {
  return ref.digest ?? ref.tag ?? 'latest';
}

/** X-Registry-Auth for a pull/push/create: stored credentials, else "{}" as the docker CLI sends. */
export async function authHeader(ctx: Ctx, image: string): Promise<Record<string, string>> {
  const h = await ctx.registryAuthFor(image);
  return h['X-Registry-Auth'] ? h : { 'X-Registry-Auth': 'e30=' };
}

/**
 * POST /images/create?fromImage=..&tag=.. and render the progress. Used by `pull` and by
 * `run`/`create` when the image is missing (those print to stderr, like docker).
 */
export async function pullImage(ctx: Ctx, image: string, opts: { platform?: string; quiet?: boolean; allTags?: boolean; toStderr?: boolean } = {}): Promise<void> {
  const ref = parseReference(image, { defaultTag: false });
  const res = await ctx.client.request('POST', '/images/create', {
    query: {
      fromImage: repositoryName(ref),
      tag: opts.allTags ? undefined : apiTag(ref),
      platform: opts.platform || undefined,
    },
    headers: await authHeader(ctx, image),
  });
  if (opts.toStderr) {
    const { displayJsonMessages } = await import('../render/jsonmessage.ts');
    await displayJsonMessages(res as AsyncIterable<Buffer>, ctx.io.stderr, { isTerminal: isTerminal(ctx.io.stderr), width: ctx.io.stderr.columns });
  } else {
    await showJsonStream(ctx, res, opts.quiet);
  }
}

const pull: Command = {
  name: 'pull',
  usage: '[OPTIONS] NAME[:TAG|@DIGEST]',
  short: 'Download an image from a registry',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'all-tags', short: 'a', kind: 'bool', help: 'Download all tagged images in the repository' },
    { name: 'disable-content-trust', kind: 'bool', default: true, help: 'Skip image verification', hidden: true },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Set platform if server is multi-platform capable' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress verbose output' },
  ],
  async run(ctx, f, [name]) {
    const ref = parseReference(name!, { defaultTag: false });
    const all = f.bool('all-tags');
    if (all && (ref.tag !== undefined || ref.digest !== undefined)) throw new Error("tag can't be used with --all-tags/-a");
    const quiet = f.bool('quiet');
    if (!all && ref.tag === undefined && ref.digest === undefined) {
      ref.tag = 'latest';
      if (!quiet) ctx.out('Using default tag: latest\n');
    }
    await pullImage(ctx, name!, { platform: f.string('platform'), quiet, allTags: all });
    let full = repositoryName(ref);
    if (!all) {
      if (ref.tag !== undefined && ref.digest === undefined) full += `:${ref.tag}`;
      if (ref.digest !== undefined) full += `@${ref.digest}`;
    }
    ctx.out(full + '\n');
  },
};

const push: Command = {
  name: 'push',
  usage: '[OPTIONS] NAME[:TAG]',
  short: 'Upload an image to a registry',
  args: { min: 1, max: 1 },
  flags: [
    { name: 'all-tags', short: 'a', kind: 'bool', help: 'Push all tags of an image to the repository' },
    { name: 'disable-content-trust', kind: 'bool', default: true, help: 'Skip image signing', hidden: true },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Push a platform-specific manifest as a single-platform image' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress verbose output' },
  ],
  async run(ctx, f, [name]) {
    const ref = parseReference(name!, { defaultTag: false });
    const all = f.bool('all-tags');
    if (all && ref.tag !== undefined) throw new Error("tag can't be used with --all-tags/-a");
    if (!all && ref.tag === undefined && ref.digest === undefined) {
      ref.tag = 'latest';
      if (!f.bool('quiet')) ctx.out('Using default tag: latest\n');
    }
    if (ref.digest !== undefined) throw new Error('cannot push a digest reference');
    const res = await ctx.client.request('POST', `/images/${repositoryName(ref)}/push`, {
      query: { tag: all ? undefined : ref.tag, platform: f.string('platform') || undefined },
      headers: await authHeader(ctx, name!),
    });
    await showJsonStream(ctx, res, f.bool('quiet'));
    if (f.bool('quiet')) ctx.out(`${repositoryName(ref)}${all ? '' : ':' + ref.tag}\n`);
  },
};

// ---- images -----------------------------------------------------------------------------------

interface ImageSummary {
  Id: string;
  ParentId?: string;
  RepoTags?: string[] | null;
  RepoDigests?: string[] | null;
  Created: number;
  Size: number;
  SharedSize?: number;
  VirtualSize?: number;
  Containers?: number;
  Labels?: Record<string, string> | null;
}

const IMAGE_HEADERS = {
  ID: 'IMAGE ID',
  Repository: 'REPOSITORY',
  Tag: 'TAG',
  Digest: 'DIGEST',
  CreatedSince: 'CREATED',
  CreatedAt: 'CREATED AT',
  Size: 'SIZE',
  Containers: 'CONTAINERS',
  SharedSize: 'SHARED SIZE',
  UniqueSize: 'UNIQUE SIZE',
  VirtualSize: 'VIRTUAL SIZE',
};

function familiarOf(s: string): Reference | undefined {
  try {
    return parseReference(s, { defaultTag: false });
  } catch {
    return undefined;
  }
}

/** One row per (repository, tag[, digest]) as the docker CLI's image formatter builds them. */
export function imageRows(images: ImageSummary[], opts: { trunc: boolean; digests: boolean; now?: number }): object[] {
  const rows: object[] = [];
  for (const img of images) {
    const repoTags = new Map<string, string[]>();
    const repoDigests = new Map<string, string[]>();
    for (const t of img.RepoTags ?? []) {
      const r = familiarOf(t);
      if (!r?.tag) continue;
      const n = familiarName(r);
      repoTags.set(n, [...(repoTags.get(n) ?? []), r.tag]);
    }
    for (const d of img.RepoDigests ?? []) {
      const r = familiarOf(d);
      if (!r?.digest) continue;
      const n = familiarName(r);
      repoDigests.set(n, [...(repoDigests.get(n) ?? []), r.digest]);
    }
    const mk = (repo: string, tag: string, digest: string) => imageRow(img, repo, tag, digest, opts);
    const before = rows.length;
    for (const [repo, tags] of repoTags) {
      const digests = opts.digests ? repoDigests.get(repo) ?? [] : [];
      repoDigests.delete(repo);
      for (const tag of tags) {
        if (digests.length === 0) rows.push(mk(repo, tag, '<none>'));
        else for (const d of digests) rows.push(mk(repo, tag, d));
      }
    }
    for (const [repo, digests] of repoDigests) {
      if (opts.digests) for (const d of digests) rows.push(mk(repo, '<none>', d));
      else rows.push(mk(repo, '<none>', ''));
    }
    if (rows.length === before) rows.push(mk('<none>', '<none>', '<none>'));
  }
  return rows;
}

function imageRow(img: ImageSummary, repo: string, tag: string, digest: string, opts: { trunc: boolean; now?: number }): object {
  const na = (n: number | undefined) => (n === undefined || n < 0 ? 'N/A' : humanSize(n));
  return {
    ID: opts.trunc ? truncateId(img.Id) : img.Id,
    Repository: repo,
    Tag: tag,
    Digest: digest,
    CreatedSince: timeAgo(img.Created, opts.now),
    CreatedAt: goTimeString(img.Created),
    Size: humanSizeWithPrecision(img.Size, 3),
    Containers: img.Containers === undefined || img.Containers < 0 ? 'N/A' : String(img.Containers),
    SharedSize: na(img.SharedSize),
    UniqueSize: img.SharedSize === undefined || img.SharedSize < 0 ? 'N/A' : humanSize(img.Size - img.SharedSize),
    VirtualSize: humanSize(img.VirtualSize ?? img.Size),
  };
}

const imageList: Command = {
  name: 'ls',
  aliases: ['list'],
  usage: '[OPTIONS] [REPOSITORY[:TAG]]',
  short: 'List images',
  args: { max: 1 },
  flags: [
    { name: 'all', short: 'a', kind: 'bool', help: 'Show all images (default hides intermediate images)' },
    { name: 'digests', kind: 'bool', help: 'Show digests' },
    FILTER_FLAG,
    FORMAT_FLAG,
    { name: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Only show image IDs' },
    { name: 'tree', kind: 'bool', help: 'List multi-platform images as a tree (EXPERIMENTAL)', hidden: true },
  ],
  async run(ctx, f, args) {
    const filters = filtersJson(f.list('filter'), args[0] ? [['reference', args[0]]] : []);
    const images = await ctx.client.json<ImageSummary[]>('GET', '/images/json', { query: { all: f.bool('all'), filters } });
    const digests = f.bool('digests');
    let format = f.optString('format');
    if (format === undefined || format === 'table') {
      if (f.bool('quiet')) format = '{{.ID}}';
    }
    const defaultTable = digests
      ? 'table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}'
      : 'table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}';
    const rows = imageRows(images ?? [], { trunc: !f.bool('no-trunc'), digests: digests || /\.Digest/.test(format ?? '') });
    ctx.out(formatList(rows, { format: format === 'table' ? undefined : format, defaultTable, headers: IMAGE_HEADERS }));
  },
};

// ---- image inspect ----------------------------------------------------------------------------

const imageInspect: Command = {
  name: 'inspect',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  short: 'Display detailed information on one or more images',
  args: { min: 1 },
  flags: [
    { name: 'format', short: 'f', kind: 'string', valueName: 'string', help: 'Format output using a custom template' },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Inspect a specific platform of the multi-platform image' },
  ],
  async run(ctx, f, args) {
    await inspectObjects(ctx, args, f.string('format'), async (name) =>
      ctx.client.json('GET', `/images/${name}/json`, { query: { platform: f.string('platform') ? JSON.stringify(platformObject(f.string('platform'))) : undefined } }),
    );
  },
};

function platformObject(p: string): Record<string, string> {
  const [os = '', architecture = '', variant] = p.split('/');
  return variant ? { os, architecture, variant } : { os, architecture };
}

// ---- rmi / tag / prune ------------------------------------------------------------------------

interface DeleteItem {
  Untagged?: string;
  Deleted?: string;
}

const imageRemove: Command = {
  name: 'rm',
  aliases: ['remove', 'rmi'],
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  short: 'Remove one or more images',
  args: { min: 1 },
  flags: [
    { name: 'force', short: 'f', kind: 'bool', help: 'Force removal of the image' },
    { name: 'no-prune', kind: 'bool', help: 'Do not delete untagged parents' },
    { name: 'platform', kind: 'list', help: 'Remove only the given platform variant', hidden: true },
  ],
  async run(ctx, f, args) {
    const errs = new ErrorList();
    for (const name of args) {
      try {
        const items = await ctx.client.json<DeleteItem[]>('DELETE', `/images/${name}`, {
          query: { force: f.bool('force'), noprune: f.bool('no-prune') },
        });
        for (const it of items ?? []) {
          if (it.Deleted) ctx.out(`Deleted: ${it.Deleted}\n`);
          else if (it.Untagged) ctx.out(`Untagged: ${it.Untagged}\n`);
        }
      } catch (err) {
        errs.add(err);
      }
    }
    if (errs.failed) throw new StatusError(1, errs.messages.join('\n'));
  },
};

const imageTag: Command = {
  name: 'tag',
  usage: 'SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]',
  short: 'Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE',
  args: { min: 2, max: 2 },
  async run(ctx, _f, [source, target]) {
    const ref = parseReference(target!, { defaultTag: false });
    if (ref.digest !== undefined) throw new Error('refusing to create a tag with a digest reference');
    await ctx.client.call('POST', `/images/${source}/tag`, { query: { repo: repositoryName(ref), tag: ref.tag ?? 'latest' } });
  },
};

interface PruneReport {
  ImagesDeleted?: DeleteItem[] | null;
  SpaceReclaimed?: number;
}

const imagePrune = pruneCommand<PruneReport>({
  short: 'Remove unused images',
  path: '/images/prune',
  allHelp: 'Remove all unused images, not just dangling ones',
  filterHelp: 'Provide filter values (e.g. "until=<timestamp>")',
  prompt: (all) => all
    ? 'WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?'
    : 'WARNING! This will remove all dangling images.\nAre you sure you want to continue?',
  filters: (all) => [['dangling', all ? 'false' : 'true']],
  deleted: (r) => deletedList('Deleted Images', (r.ImagesDeleted ?? []).map((d) => (d.Untagged ? `untagged: ${d.Untagged}` : `deleted: ${d.Deleted ?? ''}`))),
  space: true,
});

// ---- history ----------------------------------------------------------------------------------

interface HistoryItem {
  Id: string;
  Created: number;
  CreatedBy: string;
  Tags?: string[] | null;
  Size: number;
  Comment: string;
}

export function historyRows(items: HistoryItem[], opts: { trunc: boolean; human: boolean; now?: number }): object[] {
  return items.map((h) => {
    const createdBy = h.CreatedBy.replaceAll('\t', ' ');
    return {
      ID: h.Id === '<missing>' ? h.Id : opts.trunc ? truncateId(h.Id) : h.Id,
      CreatedSince: opts.human ? timeAgo(h.Created, opts.now) : rfc3339(h.Created),
      CreatedAt: rfc3339(h.Created),
      CreatedBy: opts.trunc ? ellipsis(createdBy, 45) : createdBy,
      Size: opts.human ? humanSizeWithPrecision(h.Size, 3) : String(h.Size),
      Comment: h.Comment,
    };
  });
}

const history: Command = {
  name: 'history',
  usage: '[OPTIONS] IMAGE',
  short: 'Show the history of an image',
  args: { min: 1, max: 1 },
  flags: [
    FORMAT_FLAG,
    { name: 'human', short: 'H', kind: 'bool', default: true, help: 'Print sizes and dates in human readable format' },
    { name: 'no-trunc', kind: 'bool', help: "Don't truncate output" },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Show history for the given platform' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Only show image IDs' },
  ],
  async run(ctx, f, [name]) {
    const items = await ctx.client.json<HistoryItem[]>('GET', `/images/${name}/history`, {
      query: { platform: f.string('platform') ? JSON.stringify(platformObject(f.string('platform'))) : undefined },
    });
    let format = f.optString('format');
    if ((format === undefined || format === 'table') && f.bool('quiet')) format = '{{.ID}}';
    const rows = historyRows(items ?? [], { trunc: !f.bool('no-trunc'), human: f.bool('human') });
    ctx.out(
      formatList(rows, {
        format: format === 'table' ? undefined : format,
        defaultTable: 'table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}',
        headers: { ID: 'IMAGE', CreatedSince: 'CREATED', CreatedAt: 'CREATED AT', CreatedBy: 'CREATED BY', Size: 'SIZE', Comment: 'COMMENT' },
      }),
    );
  },
};

// ---- save / load / import ---------------------------------------------------------------------

const save: Command = {
  name: 'save',
  usage: '[OPTIONS] IMAGE [IMAGE...]',
  short: 'Save one or more images to a tar archive (streamed to STDOUT by default)',
  args: { min: 1 },
  flags: [
    { name: 'output', short: 'o', kind: 'string', valueName: 'string', help: 'Write to a file, instead of STDOUT' },
    { name: 'platform', kind: 'list', valueName: 'stringSlice', help: 'Save only the given platform(s)' },
  ],
  async run(ctx, f, args) {
    const output = f.string('output');
    if (!output && isTerminal(ctx.io.stdout)) {
      throw new Error('cowardly refusing to save to a terminal. Use the -o flag or redirect');
    }
    const platforms = f.list('platform');
    const res = await ctx.client.request('GET', '/images/get', {
      query: { names: args, platform: platforms.length ? platforms.map((p) => JSON.stringify(platformObject(p))) : undefined },
    });
    if (output) {
      await copyToFile(output, res);
      return;
    }
    const { pipeline } = process.getBuiltinModule('node:stream/promises') as typeof import('node:stream/promises');
    await pipeline(res, ctx.io.stdout, { end: false });
  },
};

const load: Command = {
  name: 'load',
  usage: '[OPTIONS]',
  short: 'Load an image from a tar archive or STDIN',
  args: { max: 0 },
  flags: [
    { name: 'input', short: 'i', kind: 'string', valueName: 'string', help: 'Read from tar archive file, instead of STDIN' },
    { name: 'platform', kind: 'list', valueName: 'stringSlice', help: 'Load only the given platform(s)' },
    { name: 'quiet', short: 'q', kind: 'bool', help: 'Suppress the load output' },
  ],
  async run(ctx, f) {
    const input = f.string('input');
    let body: NodeJS.ReadableStream;
    if (input) {
      await stat(input);
      body = createReadStream(input);
    } else {
      if (isTerminal(ctx.io.stdin)) throw new Error('requested load from stdin, but stdin is empty');
      body = ctx.io.stdin;
    }
    // Like docker: no progress bars unless stdout is a terminal.
    const quiet = f.bool('quiet') || !isTerminal(ctx.io.stdout);
    const platforms = f.list('platform');
    const res = await ctx.client.request('POST', '/images/load', {
      query: { quiet, platform: platforms.length ? platforms.map((p) => JSON.stringify(platformObject(p))) : undefined },
      body,
      contentType: 'application/x-tar',
    });
    if (String(res.headers['content-type'] ?? '').includes('json')) {
      await showJsonStream(ctx, res);
    } else {
      const { pipeline } = process.getBuiltinModule('node:stream/promises') as typeof import('node:stream/promises');
      await pipeline(res, ctx.io.stdout, { end: false });
    }
  },
};

const importCmd: Command = {
  name: 'import',
  usage: '[OPTIONS] file|URL|- [REPOSITORY[:TAG]]',
  short: 'Import the contents from a tarball to create a filesystem image',
  args: { min: 1, max: 2 },
  flags: [
    { name: 'change', short: 'c', kind: 'list', help: 'Apply Dockerfile instruction to the created image' },
    { name: 'message', short: 'm', kind: 'string', valueName: 'string', help: 'Set commit message for imported image' },
    { name: 'platform', kind: 'string', valueName: 'string', help: 'Set platform if server is multi-platform capable' },
  ],
  async run(ctx, f, [src, repo]) {
    if (repo) parseReference(repo);
    let fromSrc = src!;
    let body: NodeJS.ReadableStream | undefined;
    if (src === '-') {
      body = ctx.io.stdin;
    } else if (!/^https?:\/\//.test(src!)) {
      await stat(src!);
      body = createReadStream(src!);
      fromSrc = '-';
    }
    const res = await ctx.client.request('POST', '/images/create', {
      query: {
        fromSrc,
        repo: repo || undefined,
        message: f.string('message') || undefined,
        changes: f.list('change').length ? f.list('change') : undefined,
        platform: f.string('platform') || undefined,
      },
      body,
      contentType: 'text/plain',
    });
    await showJsonStream(ctx, res);
  },
};

// ---- the `image` group and top-level aliases ---------------------------------------------------

export const imageGroup: Command = {
  name: 'image',
  usage: 'COMMAND',
  short: 'Manage images',
  sub: [
    history,
    importCmd,
    imageInspect,
    load,
    imageList,
    imagePrune,
    pull,
    push,
    { ...imageRemove, aliases: ['remove', 'rmi'] },
    save,
    { ...imageTag },
  ],
};

export const imageTopLevel: Command[] = [
  pull,
  push,
  { ...imageList, name: 'images', aliases: [] },
  { ...imageRemove, name: 'rmi', aliases: [] },
  imageTag,
  history,
  save,
  load,
  importCmd,
];

