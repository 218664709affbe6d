// Linux capabilities: Docker's default set, --cap-add/--cap-drop (with ALL), masks.
import { readFileSync } from 'node:fs';
import { invalidArgument } from '../core/errors.ts';

/** Index = capability number. */
export const ALL_CAPS = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ',
  'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** Docker's default set: CapEff 00000000a80425fb. */
export const DEFAULT_CAPS: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID', 'CAP_SETUID',
  'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** "net_admin", "NET_ADMIN", "CAP_NET_ADMIN" -> "CAP_NET_ADMIN"; "ALL" stays. */
export function normalizeCap(c: string): string {
  const u = c.trim().toUpperCase();
  if (u === 'ALL') return u;
  const name = u.startsWith('CAP_') ? u : `CAP_${u}`;
  if (!(ALL_CAPS as readonly string[]).includes(name)) throw invalidArgument(`unknown capability: "${c}"`);
  return name;
}

/** Docker's TweakCapabilities: add ALL = everything but the drops; drop ALL = only the adds. */
export function tweakCapabilities(base: readonly string[], add: readonly string[], drop: readonly string[], all: readonly string[]): string[] {
  const a = add.map(normalizeCap);
  const d = drop.map(normalizeCap);
  if (a.includes('ALL')) return all.filter((c) => !d.includes(c));
  if (d.includes('ALL')) return [...new Set(a)];
  const caps = base.filter((c) => !d.includes(c));
  for (const c of a) if (!caps.includes(c)) caps.push(c);
  return caps;
}

export function capMask(caps: readonly string[]): bigint {
  let m = 0n;
  for (const c of caps) {
    const i = (ALL_CAPS as readonly string[]).indexOf(c);
    if (i >= 0) m |= 1n << BigInt(i);
  }
  return m;
}

export function capsFromMask(mask: bigint): string[] {
  return ALL_CAPS.filter((_c, i) => (mask >> BigInt(i)) & 1n);
}

/** The capabilities this process may grant (its bounding set): the ceiling for --privileged. */
export function hostBoundingCaps(): string[] {
  try {
    const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return capsFromMask(BigInt('0x' + m[1]));
  } catch {
    /* not Linux */
  }
  return [...ALL_CAPS];
}
