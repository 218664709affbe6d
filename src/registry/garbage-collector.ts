// Mark-and-sweep garbage collection of a registry root, safe to run while the server serves.
//
// Mark: every manifest revision of every repository (or, with deleteUntagged, only the tagged
// ones plus what they reach: index children and referrers whose subject is kept) marks itself,
// its config and its layers.
// Sweep: blobs nobody marked AND not modified within the grace period are deleted. The server
// touches a blob whenever it commits, links or references it (registry-store.ts), so a push
// running during the collection (blobs first, manifest last) never loses its blobs; untagged
// manifests younger than the grace period are kept for the same reason. Uploads idle longer than
// the upload expiry are removed; links to blobs that are gone are dropped.
import { isDigest, type Digest } from '../core/digest.ts';
import { isKind } from '../core/errors.ts';
import type { Logger } from '../pkg/log.ts';
import { paths, REPO_META_DIRS } from './paths.ts';
import type { StorageDriver } from './storage-driver.ts';

export interface GcOptions {
  deleteUntagged?: boolean;
  /** Unreferenced blobs and untagged manifests younger than this are kept. Default 1 h. */
  graceMs?: number;
  /** Uploads idle for longer are removed. Default 24 h. */
  uploadExpiryMs?: number;
  dryRun?: boolean;
  now?: () => number;
  log?: Logger;
}

export interface GcReport {
  repositories: number;
  manifestsDeleted: number;
  blobsMarked: number;
  blobsDeleted: number;
  bytesFreed: number;
  uploadsDeleted: number;
  linksDeleted: number;
}

const ALGS = ['sha256', 'sha512'] as const;
const MAX_MANIFEST = 4 * 1024 * 1024;

interface ParsedManifest {
  blobs: Digest[];
  children: Digest[];
  subject?: Digest;
}

function parseManifest(body: Buffer): ParsedManifest {
  const out: ParsedManifest = { blobs: [], children: [] };
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    return out;
  }
  const digestOf = (d: unknown): Digest | undefined => {
    const v = (d as { digest?: unknown } | null)?.digest;
    return typeof v === 'string' && isDigest(v) ? v : undefined;
  };
  const cfg = digestOf(doc.config);
  if (cfg) out.blobs.push(cfg);
  if (Array.isArray(doc.layers)) for (const l of doc.layers) { const d = digestOf(l); if (d) out.blobs.push(d); }
  if (Array.isArray(doc.manifests)) for (const m of doc.manifests) { const d = digestOf(m); if (d) out.children.push(d); }
  const s = digestOf(doc.subject);
  if (s) out.subject = s;
  return out;
}

/** Every repository directory (holding any of the reserved sub-directories). */
export async function listRepositories(driver: StorageDriver): Promise<string[]> {
  const out: string[] = [];
  const walk = async (prefix: string): Promise<void> => {
    const children = await driver.list(prefix ? `${paths.repositoriesRoot}/${prefix}` : paths.repositoriesRoot);
    if (prefix && children.some((c) => (REPO_META_DIRS as readonly string[]).includes(c))) out.push(prefix);
    for (const c of children) if (!c.startsWith('_')) await walk(prefix ? `${prefix}/${c}` : c);
  };
  await walk('');
  return out.sort();
}

export async function collectGarbage(driver: StorageDriver, opts: GcOptions = {}): Promise<GcReport> {
  const now = opts.now ?? Date.now;
  const grace = opts.graceMs ?? 60 * 60 * 1000;
  const uploadExpiry = opts.uploadExpiryMs ?? 24 * 60 * 60 * 1000;
  const log = opts.log;
  const report: GcReport = { repositories: 0, manifestsDeleted: 0, blobsMarked: 0, blobsDeleted: 0, bytesFreed: 0, uploadsDeleted: 0, linksDeleted: 0 };
  const marked = new Set<string>();
  const cache = new Map<string, ParsedManifest | undefined>();
  const readManifest = async (d: Digest): Promise<ParsedManifest | undefined> => {
    if (cache.has(d)) return cache.get(d);
    let parsed: ParsedManifest | undefined;
    try {
      parsed = parseManifest(await driver.getContent(paths.blob(d), MAX_MANIFEST));
    } catch (err) {
      if (!isKind(err, 'NotFound') && !isKind(err, 'InvalidArgument')) throw err;
    }
    cache.set(d, parsed);
    return parsed;
  };

  const repos = await listRepositories(driver);
  report.repositories = repos.length;
  for (const name of repos) {
    const revisions: Digest[] = [];
    for (const alg of ALGS) {
      for (const hex of await driver.list(paths.revisionsDir(name, alg))) {
        const d = `${alg}:${hex}`;
        if (isDigest(d)) revisions.push(d);
      }
    }
    let keep: Set<Digest>;
    if (opts.deleteUntagged) {
      keep = new Set();
      for (const tag of await driver.list(paths.tagsDir(name))) {
        try {
          const d = (await driver.getContent(paths.tag(name, tag), 1024)).toString('utf8').trim();
          if (isDigest(d)) keep.add(d);
        } catch (err) {
          if (!isKind(err, 'NotFound')) throw err;
        }
      }
      // Closure: index children, and referrers of kept manifests, until nothing changes.
      let grew = true;
      while (grew) {
        grew = false;
        for (const d of revisions) {
          if (keep.has(d)) {
            for (const c of (await readManifest(d))?.children ?? []) if (!keep.has(c)) { keep.add(c); grew = true; }
          } else {
            const subject = (await readManifest(d))?.subject;
            if (subject && keep.has(subject)) { keep.add(d); grew = true; }
          }
        }
      }
      for (const d of revisions) {
        if (keep.has(d)) continue;
        const st = await driver.stat(paths.revisionLink(name, d));
        if (!st || now() - st.modTime < grace) { keep.add(d); continue; }
        report.manifestsDeleted++;
        log?.info({ repository: name, digest: d }, 'gc: delete untagged manifest');
        if (!opts.dryRun) {
          const subject = (await readManifest(d))?.subject;
          if (subject) await driver.delete(paths.referrer(name, subject, d));
          await driver.delete(paths.revisionLink(name, d));
        }
      }
    } else {
      keep = new Set(revisions);
    }
    for (const d of keep) {
      marked.add(d);
      const m = await readManifest(d);
      for (const b of m?.blobs ?? []) marked.add(b);
    }
  }
  report.blobsMarked = marked.size;

  // Sweep blobs.
  for (const alg of ALGS) {
    const algDir = `${paths.blobsRoot}/${alg}`;
    for (const prefix of await driver.list(algDir)) {
      for (const hex of await driver.list(`${algDir}/${prefix}`)) {
        const d = `${alg}:${hex}`;
        if (!isDigest(d) || marked.has(d)) continue;
        const path = paths.blob(d);
        // Re-stat right before deleting: a blob touched since the mark is in use again.
        const st = await driver.stat(path);
        if (!st || st.isDir || now() - st.modTime < grace) continue;
        report.blobsDeleted++;
        report.bytesFreed += st.size;
        log?.info({ digest: d, size: st.size }, 'gc: delete blob');
        if (!opts.dryRun) await driver.delete(path);
      }
    }
  }

  // Links to blobs that are gone, and expired uploads.
  for (const name of repos) {
    for (const alg of ALGS) {
      for (const hex of await driver.list(paths.layersDir(name, alg))) {
        const d = `${alg}:${hex}`;
        if (!isDigest(d)) continue;
        if (!opts.dryRun && !(await driver.stat(paths.blob(d)))) {
          await driver.delete(paths.layerLink(name, d));
          report.linksDeleted++;
        }
      }
    }
    for (const uuid of await driver.list(paths.uploadsDir(name))) {
      const st = (await driver.stat(paths.uploadData(name, uuid))) ?? (await driver.stat(paths.upload(name, uuid)));
      if (!st || now() - st.modTime < uploadExpiry) continue;
      report.uploadsDeleted++;
      if (!opts.dryRun) await driver.delete(paths.upload(name, uuid));
    }
  }
  return report;
}
