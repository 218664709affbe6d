// `--user` resolution against the container's own /etc/passwd and /etc/group, as Docker does:
// `uid`, `uid:gid`, `name`, `name:group`; the user's supplementary groups from /etc/group plus
// `--group-add`. The files come from an untrusted image: they are opened with O_NOFOLLOW (a
// symlink planted as /etc/passwd is not followed out of the rootfs), /etc must be a real
// directory, and reads are capped.
import { open, lstat } from 'node:fs/promises';
import { constants } from 'node:fs';
import { join } from 'node:path';
import { invalidArgument } from '../core/errors.ts';

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  /** Home directory from passwd ("/" when unknown), for $HOME. */
  home: string;
}

const MAX_DB_BYTES = 1 << 20;
const MAX_ID = 0x7fffffff;

interface PasswdEntry { name: string; uid: number; gid: number; home: string }
interface GroupEntry { name: string; gid: number; members: string[] }

/** Read rootfs/etc/<file>, or '' when absent; never follows a symlink at /etc or at the file. */
export async function readEtcFile(rootfs: string, file: string): Promise<string> {
  const etc = join(rootfs, 'etc');
  try {
    const st = await lstat(etc);
    if (!st.isDirectory()) return '';
  } catch {
    return '';
  }
  let fh;
  try {
    fh = await open(join(etc, file), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return '';
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) return '';
    const buf = Buffer.alloc(Math.min(st.size, MAX_DB_BYTES));
    const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } finally {
    await fh.close();
  }
}

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = parseId(f[2]!);
    const gid = parseId(f[3]!);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0]!, uid, gid, home: f[5] || '/' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = parseId(f[2]!);
    if (gid === undefined) continue;
    out.push({ name: f[0]!, gid, members: (f[3] ?? '').split(',').filter(Boolean) });
  }
  return out;
}

/** Pure resolution given the database contents (unit-tested). */
export function resolveUserFrom(spec: string, passwdText: string, groupText: string, groupAdd: readonly string[] = []): ResolvedUser {
  const passwd = parsePasswd(passwdText);
  const groups = parseGroup(groupText);
  const [userPart = '', groupPart] = spec.split(':', 2) as [string, string?];
  let uid: number;
  let gid = 0;
  let home = '/';
  let name: string | undefined;
  if (userPart === '') {
    uid = 0;
    const root = passwd.find((p) => p.uid === 0);
    if (root) ({ gid, home, name } = root);
  } else {
    const n = parseId(userPart);
    const entry = n !== undefined ? passwd.find((p) => p.uid === n) : passwd.find((p) => p.name === userPart);
    if (entry) {
      uid = entry.uid;
      gid = entry.gid;
      home = entry.home;
      name = entry.name;
    } else if (n !== undefined) {
      uid = n;
      gid = 0; // Docker: a numeric uid absent from passwd gets gid 0
    } else {
      throw invalidArgument(`unable to find user ${userPart}: no matching entries in passwd file`);
    }
  }
  if (groupPart !== undefined && groupPart !== '') {
    const n = parseId(groupPart);
    const g = n !== undefined ? groups.find((x) => x.gid === n) : groups.find((x) => x.name === groupPart);
    if (g) gid = g.gid;
    else if (n !== undefined) gid = n;
    else throw invalidArgument(`unable to find group ${groupPart}: no matching entries in group file`);
  }
  const extra = new Set<number>();
  // Supplementary groups from membership only when the group was not given explicitly (Docker).
  if (name !== undefined && (groupPart === undefined || groupPart === '')) {
    for (const g of groups) if (g.members.includes(name) && g.gid !== gid) extra.add(g.gid);
  }
  for (const a of groupAdd) {
    const n = parseId(a);
    const g = n !== undefined ? n : groups.find((x) => x.name === a)?.gid;
    if (g === undefined) throw invalidArgument(`unable to find group ${a}: no matching entries in group file`);
    extra.add(g);
  }
  return { uid, gid, additionalGids: [...extra].sort((a, b) => a - b), home };
}

/** rootfs/etc/passwd and rootfs/etc/group ('' when absent), as readEtcFile reads them. */
export async function readUserDatabases(rootfs: string): Promise<{ passwd: string; group: string }> {
  const [passwd, group] = await Promise.all([readEtcFile(rootfs, 'passwd'), readEtcFile(rootfs, 'group')]);
  return { passwd, group };
}

export async function resolveUser(rootfs: string, spec: string, groupAdd: readonly string[] = []): Promise<ResolvedUser> {
  // Read even for numeric ids: HOME and supplementary groups come from the databases.
  const { passwd, group } = await readUserDatabases(rootfs);
  return resolveUserFrom(spec, passwd, group, groupAdd);
}

/**
 * Read /etc/<file> through an overlay's layer directories (top first) without mounting it:
 * the first layer that has the file wins; a whiteout (0:0 character device) or a non-directory
 * /etc hides the lower layers. Same no-follow rules as readEtcFile.
 */
export async function readEtcFromLayers(layers: readonly string[], file: string): Promise<string> {
  for (const layer of layers) {
    const etc = join(layer, 'etc');
    let st;
    try {
      st = await lstat(etc);
    } catch {
      continue;
    }
    if (!st.isDirectory()) return '';
    let fst;
    try {
      fst = await lstat(join(etc, file));
    } catch {
      continue;
    }
    if (!fst.isFile()) return '';
    return readEtcFile(layer, file);
  }
  return '';
}

/** resolveUser for a rootfs that is not mounted: its overlay layers, top first. */
export async function resolveUserInLayers(layers: readonly string[], spec: string, groupAdd: readonly string[] = []): Promise<ResolvedUser> {
  const [passwd, group] = await Promise.all([readEtcFromLayers(layers, 'passwd'), readEtcFromLayers(layers, 'group')]);
  return resolveUserFrom(spec, passwd, group, groupAdd);
}
