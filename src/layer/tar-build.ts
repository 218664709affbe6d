// Build a small tar in memory from entry descriptions (tests, fixtures, tiny synthetic layers
// such as an empty layer). Not for large content: bodies are buffers. Xattrs go in as
// `xattrs: { name: Buffer | string }` and are written as byte-exact SCHILY.xattr PAX records.
import { binaryPaxPack, XATTR_PREFIX } from './tar-pax.ts';

export interface TarEntrySpec {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link' | 'character-device' | 'block-device' | 'fifo';
  body?: string | Uint8Array;
  linkname?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: Date;
  devmajor?: number;
  devminor?: number;
  xattrs?: Record<string, string | Uint8Array>;
  /** Extra raw PAX records (forces a PAX header, e.g. to carry a name ustar cannot). */
  pax?: Record<string, string>;
}

export async function buildTar(entries: readonly TarEntrySpec[]): Promise<Buffer> {
  const pack = binaryPaxPack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const c of pack as AsyncIterable<Buffer>) chunks.push(c);
  })();
  for (const e of entries) {
    const type = e.type ?? 'file';
    const body = e.body === undefined ? Buffer.alloc(0) : Buffer.from(e.body);
    let pax: Record<string, string> | undefined = e.pax ? { ...e.pax } : undefined;
    for (const [k, v] of Object.entries(e.xattrs ?? {})) {
      pax ??= {};
      pax[XATTR_PREFIX + k] = Buffer.from(v).toString('latin1');
    }
    const header = {
      name: e.name,
      type,
      size: type === 'file' ? body.length : 0,
      mode: e.mode ?? (type === 'directory' ? 0o755 : 0o644),
      uid: e.uid ?? 0,
      gid: e.gid ?? 0,
      mtime: e.mtime ?? new Date(1_700_000_000_000),
      ...(e.linkname !== undefined ? { linkname: e.linkname } : {}),
      ...(e.devmajor !== undefined ? { devmajor: e.devmajor } : {}),
      ...(e.devminor !== undefined ? { devminor: e.devminor } : {}),
      ...(pax ? { pax } : {}),
    };
    await new Promise<void>((resolve, reject) => {
      pack.entry(header, type === 'file' ? body : null as unknown as Buffer, (err) => (err ? reject(err) : resolve()));
    });
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}
