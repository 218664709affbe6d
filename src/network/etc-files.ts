// /etc/hosts, /etc/resolv.conf and /etc/hostname as Docker writes them for a container, and the
// host's upstream resolvers for the embedded DNS server.
import { readFile, open } from 'node:fs/promises';
import { invalidArgument } from '../core/errors.ts';
import { isIpv4 } from './ipv4.ts';

const HOSTS_HEADER = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

export interface HostsEntry {
  ip: string;
  names: string[];
}

/** `--add-host name:ip` (or `name=ip`); `host-gateway` becomes `gatewayIp`. */
export function parseExtraHost(spec: string, gatewayIp?: string): HostsEntry {
  const m = /^([^:=]+)[:=](.+)$/.exec(spec);
  if (!m) throw invalidArgument(`invalid argument "${spec}" for "--add-host" flag: bad format for add-host`);
  let ip = m[2]!.replace(/^\[(.*)\]$/, '$1');
  if (ip === 'host-gateway') {
    if (!gatewayIp) throw invalidArgument('host-gateway is not available on this network');
    ip = gatewayIp;
  }
  if (!isIpv4(ip) && !/^[0-9a-fA-F:]+$/.test(ip)) throw invalidArgument(`invalid IP address in add-host: "${ip}"`);
  return { ip, names: [m[1]!] };
}

/** Docker's container hosts file: the fixed header, extra hosts, then the container's own names. */
export function hostsFile(own: HostsEntry[], extra: HostsEntry[]): string {
  const lines = [...HOSTS_HEADER];
  for (const e of extra) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  for (const e of own) lines.push(`${e.ip}\t${e.names.join(' ')}`);
  return lines.join('\n') + '\n';
}

export interface ResolvConf {
  nameservers: string[];
  search: string[];
  options: string[];
}

export function parseResolvConf(text: string): ResolvConf {
  const out: ResolvConf = { nameservers: [], search: [], options: [] };
  for (const raw of text.split('\n')) {
    const line = raw.replace(/[#;].*$/, '').trim();
    const [key, ...rest] = line.split(/\s+/);
    if (key === 'nameserver' && rest[0]) out.nameservers.push(rest[0]);
    else if ((key === 'search' || key === 'domain') && rest.length) out.search = rest;
    else if (key === 'options') out.options.push(...rest);
  }
  return out;
}

export function formatResolvConf(rc: ResolvConf): string {
  const lines: string[] = [];
  if (rc.search.length) lines.push(`search ${rc.search.join(' ')}`);
  for (const ns of rc.nameservers) lines.push(`nameserver ${ns}`);
  if (rc.options.length) lines.push(`options ${rc.options.join(' ')}`);
  return lines.join('\n') + '\n';
}

const isLoopback = (ip: string) => ip.startsWith('127.') || ip === '::1';

/**
 * The host's real resolvers. When /etc/resolv.conf names only a local stub (systemd-resolved's
 * 127.0.0.53, a local dnsmasq), containers cannot reach it from their namespace: use the
 * upstreams systemd-resolved lists in /run/systemd/resolve/resolv.conf instead.
 */
export async function hostResolvConf(paths = ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']): Promise<ResolvConf> {
  let first: ResolvConf | undefined;
  for (const p of paths) {
    let rc: ResolvConf;
    try {
      rc = parseResolvConf(await readFile(p, 'utf8'));
    } catch {
      continue;
    }
    first ??= rc;
    const real = rc.nameservers.filter((n) => !isLoopback(n));
    if (real.length) return { ...rc, nameservers: real };
  }
  // Docker falls back to Google DNS; berth prefers no resolver over a surprising one.
  return { nameservers: [], search: first?.search ?? [], options: first?.options ?? [] };
}

/** Rewrite a file in place (truncate + write), keeping its inode: bind mounts of it see the change. */
export async function writeInPlace(path: string, data: string): Promise<void> {
  const fh = await open(path, 'w', 0o644);
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}
