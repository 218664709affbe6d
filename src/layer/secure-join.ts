// Resolve a path inside a root the way filepath-securejoin (runc, containerd, moby) does: every
// component is looked up with lstat; a symlink is followed, but its target is interpreted with
// the root as "/" and `..` can never climb above the root. The result is a path under root whose
// existing components are all real directories (no symlinks), so using it afterwards does not
// leave the root as long as nobody else changes the tree in between. The trees berth resolves
// in (a layer being applied into a private temp dir, a stopped container's rootfs) have no
// concurrent writer; for live trees, resolve inside the container's mount namespace instead.
import { lstatSync, readlinkSync } from 'node:fs';
import { posix } from 'node:path';
import { invalidArgument } from '../core/errors.ts';

/** Linux's own limit on symlinks followed during one lookup. */
const MAX_SYMLINKS = 40;

export interface SecureJoinOptions {
  /** Do not follow a symlink in the last component (lstat semantics, for create/replace). */
  noFollowLast?: boolean;
}

/**
 * Join `unsafePath` to `root` (an absolute path without symlinks), following symlinks only
 * within root. Missing components are kept lexically. `unsafePath` may be absolute (it is taken
 * relative to root) and may contain `..` (clamped at root).
 */
export async function secureJoin(root: string, unsafePath: string, opts: SecureJoinOptions = {}): Promise<string> {
  return secureJoinSync(root, unsafePath, opts);
}

/** As secureJoin, but returns the resolved path relative to root ('' for the root itself). */
export async function secureResolve(root: string, unsafePath: string, opts: SecureJoinOptions = {}): Promise<string> {
  return secureResolveSync(root, unsafePath, opts);
}

// The lookups are synchronous: each lstat is microseconds, and a thread-pool round trip per
// path component made layer unpacking several times slower on a loaded host.
export function secureJoinSync(root: string, unsafePath: string, opts: SecureJoinOptions = {}): string {
  const rel = secureResolveSync(root, unsafePath, opts);
  return rel === '' ? root : posix.join(root, rel);
}

export function secureResolveSync(root: string, unsafePath: string, opts: SecureJoinOptions = {}): string {
  if (unsafePath.includes('\0')) throw invalidArgument(`path ${JSON.stringify(unsafePath)} contains a NUL byte`);
  const resolved: string[] = [];
  let pending = splitPath(unsafePath);
  let links = 0;
  // Once a component is missing, the rest cannot be symlinks: resolve lexically from there.
  let missing = false;
  while (pending.length > 0) {
    const c = pending.shift() as string;
    if (c === '.') continue;
    if (c === '..') {
      resolved.pop();
      continue;
    }
    if (missing || (opts.noFollowLast && pending.length === 0)) {
      resolved.push(c);
      continue;
    }
    const full = posix.join(root, ...resolved, c);
    let st;
    try {
      st = lstatSync(full);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') {
        missing = true;
        resolved.push(c);
        continue;
      }
      throw err;
    }
    if (!st.isSymbolicLink()) {
      resolved.push(c);
      // A non-directory in the middle: later components cannot exist below it.
      if (!st.isDirectory()) missing = true;
      continue;
    }
    if (++links > MAX_SYMLINKS) throw invalidArgument(`path ${JSON.stringify(unsafePath)}: too many levels of symbolic links`);
    const target = readlinkSync(full);
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...splitPath(target), ...pending];
  }
  return resolved.join('/');
}

function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/**
 * Normalise a tar entry name to a clean root-relative path: leading `/` and `./` removed, `.`
 * and duplicate slashes dropped, `..` resolved lexically. Returns undefined when a relative name
 * climbs out of the root (`../x`, `a/../../x`); '' means the root itself.
 */
export function cleanEntryName(name: string): string | undefined {
  // An absolute name is rooted: `/../x` is `/x`, as filepath.Clean has it (moby confines these).
  const rooted = name.startsWith('/');
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) {
        if (rooted) continue;
        return undefined;
      }
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out.join('/');
}
