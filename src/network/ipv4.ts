// IPv4 arithmetic for berth's own IPAM: addresses as unsigned 32-bit numbers, subnets as
// {network, prefix}. Pure functions, unit-tested.
import { invalidArgument } from '../core/errors.ts';

export interface Subnet {
  /** Network address as a number (host bits zero). */
  network: number;
  prefix: number;
}

export function parseIp(s: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(s.trim());
  if (!m) throw invalidArgument(`invalid IPv4 address: ${s}`);
  let n = 0;
  for (let i = 1; i <= 4; i++) {
    const o = Number(m[i]);
    if (o > 255) throw invalidArgument(`invalid IPv4 address: ${s}`);
    n = n * 256 + o;
  }
  return n;
}

export function isIpv4(s: string): boolean {
  try {
    parseIp(s);
    return true;
  } catch {
    return false;
  }
}

export function formatIp(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "10.1.2.0/24" -> subnet. The host bits must be zero unless `loose` (then they are cleared). */
export function parseCidr(s: string, loose = false): Subnet {
  const [ip, p] = s.split('/');
  const prefix = Number(p);
  if (ip === undefined || p === undefined || !/^\d{1,2}$/.test(p) || prefix > 32) throw invalidArgument(`invalid CIDR address: ${s}`);
  const addr = parseIp(ip);
  const network = (addr & mask(prefix)) >>> 0;
  if (!loose && network !== addr) throw invalidArgument(`invalid subnet ${s}: host bits set (did you mean ${formatIp(network)}/${prefix}?)`);
  return { network, prefix };
}

export function formatCidr(s: Subnet): string {
  return `${formatIp(s.network)}/${s.prefix}`;
}

export function contains(s: Subnet, ip: number): boolean {
  return ((ip & mask(s.prefix)) >>> 0) === s.network;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.network & mask(p)) >>> 0) === ((b.network & mask(p)) >>> 0);
}

export function broadcast(s: Subnet): number {
  return (s.network | (~mask(s.prefix) >>> 0)) >>> 0;
}

/** First usable host address (network + 1): Docker's default gateway. */
export function firstHost(s: Subnet): number {
  return s.network + 1;
}

/**
 * Lowest free host address in the subnet (skipping network, broadcast and `used`), starting
 * after `after` when given so freed addresses are not reused at once (like Docker's IPAM, which
 * rotates). Undefined when the subnet is full.
 */
export function allocate(s: Subnet, used: ReadonlySet<number>, after?: number, range?: Subnet): number | undefined {
  const lo = s.network + 1;
  const hi = broadcast(s) - 1;
  const rlo = range ? Math.max(lo, range.network) : lo;
  const rhi = range ? Math.min(hi, broadcast(range)) : hi;
  if (rhi < rlo) return undefined;
  const span = rhi - rlo + 1;
  const start = after !== undefined && after >= rlo && after < rhi ? after + 1 : rlo;
  for (let i = 0; i < span; i++) {
    const ip = rlo + ((start - rlo + i) % span);
    if (!used.has(ip)) return ip;
  }
  return undefined;
}

/** Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes. */
export function macForIp(ip: number): string {
  return ['02', '42', ...[(ip >>> 24) & 255, (ip >>> 16) & 255, (ip >>> 8) & 255, ip & 255].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
