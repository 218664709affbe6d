// Binary-safe PAX records for tar-stream. tar-stream decodes and encodes every PAX value as
// UTF-8, which corrupts binary xattr values (security.capability is a 20-byte struct). Go's
// archive/tar, GNU tar and Docker carry `SCHILY.xattr.<name>` values as raw bytes. berth keeps
// those values as latin1 strings (one char per byte) inside `header.pax`, and these two hooks
// (instance overrides of tar-stream 3.2 internals, pinned by package.json) decode/encode them so.
import tarStream from 'tar-stream';
import type { Extract, Pack } from 'tar-stream';

export const XATTR_PREFIX = 'SCHILY.xattr.';

function isBinaryKey(key: string): boolean {
  return key.startsWith(XATTR_PREFIX);
}

/** Parse PAX extended header records ("<len> <key>=<value>\n"); xattr values stay byte-exact. */
export function decodePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let off = 0;
  while (off < buf.length) {
    const sp = buf.indexOf(0x20, off);
    if (sp < 0) break;
    const len = Number.parseInt(buf.toString('latin1', off, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - off || off + len > buf.length) break;
    const rec = buf.subarray(sp + 1, off + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) break;
    const key = rec.toString('utf8', 0, eq);
    out[key] = rec.toString(isBinaryKey(key) ? 'latin1' : 'utf8', eq + 1);
    off += len;
  }
  return out;
}

function record(key: string, value: string): Buffer {
  const body = Buffer.concat([
    Buffer.from(` ${key}=`, 'utf8'),
    Buffer.from(value, isBinaryKey(key) ? 'latin1' : 'utf8'),
    Buffer.from('\n'),
  ]);
  let digits = String(body.length).length;
  if (body.length + digits >= 10 ** digits) digits++;
  return Buffer.concat([Buffer.from(String(body.length + digits)), body]);
}

export function encodePax(fields: { name?: string; linkname?: string; pax?: Record<string, string> }): Buffer {
  const parts: Buffer[] = [];
  if (fields.name) parts.push(record('path', fields.name));
  if (fields.linkname) parts.push(record('linkpath', fields.linkname));
  for (const [k, v] of Object.entries(fields.pax ?? {})) parts.push(record(k, v));
  return Buffer.concat(parts);
}

interface ExtractInternals {
  _header: { type: string };
  _pax: Record<string, string> | null;
  _paxGlobal: Record<string, string> | null;
  _gnuLongPath: string | null;
  _gnuLongLinkPath: string | null;
  _decodeLongHeader(buf: Buffer): void;
}

/** tar-stream extract whose PAX decoding keeps xattr values byte-exact. */
export function binaryPaxExtract(): Extract {
  const ex = tarStream.extract();
  const inner = ex as unknown as ExtractInternals;
  const original = inner._decodeLongHeader.bind(inner);
  inner._decodeLongHeader = (buf: Buffer) => {
    switch (inner._header.type) {
      case 'pax-global-header':
        inner._paxGlobal = decodePax(buf);
        return;
      case 'pax-header':
        inner._pax = { ...(inner._paxGlobal ?? {}), ...decodePax(buf) };
        return;
      default:
        original(buf);
    }
  };
  return ex;
}

interface PackInternals {
  push(b: Buffer): boolean;
  _encodePax(header: PackHeader): void;
}

interface PackHeader {
  name: string;
  linkname?: string;
  pax?: Record<string, string>;
  size: number;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  uname?: string;
  gname?: string;
  devmajor?: number;
  devminor?: number;
}

/** tar-stream pack whose PAX encoding writes xattr values byte-exact. */
export function binaryPaxPack(): Pack {
  const pack = tarStream.pack();
  const inner = pack as unknown as PackInternals;
  inner._encodePax = (header: PackHeader) => {
    const pax: Record<string, string> = { ...(header.pax ?? {}) };
    // Values the ustar fields cannot hold travel in the PAX record (readers prefer it).
    if (header.size >= 8 ** 11) pax.size = String(header.size);
    if (header.uid >= 8 ** 7) pax.uid = String(header.uid);
    if (header.gid >= 8 ** 7) pax.gid = String(header.gid);
    const paxBody = encodePax({ name: header.name, ...(header.linkname ? { linkname: header.linkname } : {}), pax });
    const base = {
      name: 'PaxHeader',
      mode: header.mode,
      uid: header.uid,
      gid: header.gid,
      mtime: header.mtime,
      uname: header.uname ?? '',
      gname: header.gname ?? '',
      devmajor: header.devmajor ?? 0,
      devminor: header.devminor ?? 0,
    };
    inner.push(ustarHeader({ ...base, size: paxBody.length, type: 'x', linkname: '' }));
    inner.push(paxBody);
    const pad = (512 - (paxBody.length % 512)) % 512;
    if (pad) inner.push(Buffer.alloc(pad));
    inner.push(ustarHeader({ ...base, size: header.size, type: typeflag(header.type), linkname: header.linkname ? 'PaxHeader' : '' }));
  };
  return pack;
}

function typeflag(type: string): string {
  switch (type) {
    case 'file': return '0';
    case 'link': return '1';
    case 'symlink': return '2';
    case 'character-device': return '3';
    case 'block-device': return '4';
    case 'directory': return '5';
    case 'fifo': return '6';
    case 'contiguous-file': return '7';
    default: return '0';
  }
}

function octal(n: number, width: number): string {
  const s = Math.max(0, Math.floor(n)).toString(8);
  return s.length > width ? "7".repeat(width) : s.padStart(width, "0");
}

/** A 512-byte ustar header (the values that do not fit are carried by the PAX record). */
function ustarHeader(h: {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: Date; type: string;
  linkname: string; uname: string; gname: string; devmajor: number; devminor: number;
}): Buffer {
  const b = Buffer.alloc(512);
  b.write(h.name, 0, 100, 'utf8');
  b.write(octal(h.mode & 0o7777, 7) + '\0', 100, 8, 'latin1');
  b.write(octal(h.uid, 7) + '\0', 108, 8, 'latin1');
  b.write(octal(h.gid, 7) + '\0', 116, 8, 'latin1');
  b.write(octal(h.size, 11) + '\0', 124, 12, 'latin1');
  b.write(octal(h.mtime.getTime() / 1000, 11) + '\0', 136, 12, 'latin1');
  b.write(h.type, 156, 1, 'latin1');
  b.write(h.linkname, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'latin1');
  b.write(h.uname, 265, 32, 'utf8');
  b.write(h.gname, 297, 32, 'utf8');
  b.write(octal(h.devmajor, 7) + '\0', 329, 8, 'latin1');
  b.write(octal(h.devminor, 7) + '\0', 337, 8, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const x of b) sum += x;
  b.write(octal(sum, 6) + '\0 ', 148, 8, 'latin1');
  return b;
}
