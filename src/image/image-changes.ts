// `docker import --change` / `docker commit --change`: the Dockerfile instructions that only edit
// an image's runtime config (Docker's allowed set: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
// STOPSIGNAL, USER, VOLUME, WORKDIR). Applied in order on top of `base`.
import { invalidArgument } from '../core/errors.ts';
import type { ContainerConfig } from '../core/oci.ts';

const ALLOWED = new Set(['CMD', 'ENTRYPOINT', 'ENV', 'EXPOSE', 'LABEL', 'ONBUILD', 'STOPSIGNAL', 'USER', 'VOLUME', 'WORKDIR']);

/** A JSON array of strings (exec form), or undefined when `s` is not one. */
function jsonArray(s: string): string[] | undefined {
  if (!s.startsWith('[')) return undefined;
  try {
    const v: unknown = JSON.parse(s);
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    /* shell form */
  }
  return undefined;
}

/** Split `a=b "c d"=e f='g h'` into words, honouring quotes and backslash escapes. */
function words(s: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  let inWord = false;
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < s.length) cur += s[++i];
      else cur += c;
    } else if (c === '"' || c === "'") {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < s.length) {
      cur += s[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw invalidArgument(`unterminated quote in ${JSON.stringify(s)}`);
  if (inWord) out.push(cur);
  return out;
}

/** `k=v` pairs, or the legacy single `k v...` form. */
function pairs(args: string, what: string): Array<[string, string]> {
  const ws = words(args);
  if (ws.length === 0) throw invalidArgument(`${what} requires at least one argument`);
  if (!ws[0]!.includes('=')) {
    const m = /^\s*(\S+)\s+([\s\S]*)$/.exec(args);
    if (!m) throw invalidArgument(`${what} requires at least two arguments`);
    return [[m[1]!, m[2]!.trim()]];
  }
  return ws.map((w) => {
    const i = w.indexOf('=');
    if (i < 1) throw invalidArgument(`${what} names can not be blank`);
    return [w.slice(0, i), w.slice(i + 1)];
  });
}

function commandForm(args: string): string[] {
  return jsonArray(args) ?? ['/bin/sh', '-c', args];
}

export function applyChanges(base: ContainerConfig, changes: readonly string[]): ContainerConfig {
  const cfg: ContainerConfig = structuredClone(base);
  for (const raw of changes) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s*([\s\S]*)$/.exec(line)!;
    const instr = m[1]!.toUpperCase();
    const args = m[2]!.trim();
    if (!ALLOWED.has(instr)) throw invalidArgument(`${instr} is not a valid change command`);
    switch (instr) {
      case 'CMD':
        cfg.Cmd = commandForm(args);
        break;
      case 'ENTRYPOINT':
        cfg.Entrypoint = args === '' ? null : commandForm(args);
        break;
      case 'ENV': {
        const env = [...(cfg.Env ?? [])];
        for (const [k, v] of pairs(args, 'ENV')) {
          const i = env.findIndex((e) => e.split('=')[0] === k);
          if (i === -1) env.push(`${k}=${v}`);
          else env[i] = `${k}=${v}`;
        }
        cfg.Env = env;
        break;
      }
      case 'LABEL': {
        const labels = { ...(cfg.Labels ?? {}) };
        for (const [k, v] of pairs(args, 'LABEL')) labels[k] = v;
        cfg.Labels = labels;
        break;
      }
      case 'EXPOSE': {
        const ports = { ...(cfg.ExposedPorts ?? {}) };
        for (const p of words(args)) {
          if (!/^\d+(-\d+)?(\/(tcp|udp|sctp))?$/i.test(p)) throw invalidArgument(`invalid containerPort: ${p}`);
          ports[p.includes('/') ? p.toLowerCase() : `${p}/tcp`] = {};
        }
        cfg.ExposedPorts = ports;
        break;
      }
      case 'VOLUME': {
        const vols = { ...(cfg.Volumes ?? {}) };
        for (const v of jsonArray(args) ?? words(args)) {
          if (v === '') throw invalidArgument('VOLUME specified can not be an empty string');
          vols[v] = {};
        }
        cfg.Volumes = vols;
        break;
      }
      case 'WORKDIR':
        cfg.WorkingDir = args;
        break;
      case 'USER':
        cfg.User = args;
        break;
      case 'STOPSIGNAL':
        cfg.StopSignal = args;
        break;
      case 'ONBUILD':
        cfg.OnBuild = [...(cfg.OnBuild ?? []), args];
        break;
    }
  }
  return cfg;
}
