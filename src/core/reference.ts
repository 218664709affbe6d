// Image references as Docker parses them (distribution/reference, normalized):
//   busybox                 -> docker.io/library/busybox:latest
//   host:port/a/b:tag       -> host:port/a/b:tag
//   name@sha256:...         -> digest pinned, no tag
//   name:tag@sha256:...     -> tag kept for display, digest wins for resolution
// Invalid references are refused here, before any network traffic.
import { invalidArgument } from './errors.ts';
import { isDigest, type Digest } from './digest.ts';

export const DEFAULT_DOMAIN = 'docker.io';
export const LEGACY_DEFAULT_DOMAIN = 'index.docker.io';
export const OFFICIAL_REPO_PREFIX = 'library/';
export const DEFAULT_TAG = 'latest';
/** Where docker.io repositories are actually served. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';

// Grammar from distribution/reference/regexp.go.
const ALPHANUM = '[a-z0-9]+';
const SEPARATOR = '(?:[._]|__|[-]+)';
const PATH_COMPONENT = `${ALPHANUM}(?:${SEPARATOR}${ALPHANUM})*`;
export const REPOSITORY_PATH_RE = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN_NAME = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*`;
const IPV6 = '\\[(?:[a-fA-F0-9:]+)\\]';
const DOMAIN_RE = new RegExp(`^(?:${DOMAIN_NAME}|${IPV6})(?::[0-9]+)?$`);
const TAG_RE = /^[\w][\w.-]{0,127}$/;
const NAME_TOTAL_LENGTH_MAX = 255;

export interface Reference {
  /** Registry host, possibly with port: "docker.io", "127.0.0.1:5000". */
  domain: string;
  /** Repository path inside the registry: "library/busybox". */
  path: string;
  tag?: string;
  digest?: Digest;
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

export function isValidRepositoryPath(path: string): boolean {
  return path.length <= NAME_TOTAL_LENGTH_MAX && REPOSITORY_PATH_RE.test(path);
}

function splitDomain(name: string): { domain: string; path: string } {
  const i = name.indexOf('/');
  let domain: string;
  let path: string;
  if (i === -1) {
    domain = DEFAULT_DOMAIN;
    path = name;
  } else {
    const first = name.slice(0, i);
    // A first component is a registry host if it has a '.' or ':' or is "localhost" (Docker's rule),
    // and it may not be all lower-case path syntax otherwise.
    if (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase()) {
      domain = first;
      path = name.slice(i + 1);
    } else {
      domain = DEFAULT_DOMAIN;
      path = name;
    }
  }
  if (domain === LEGACY_DEFAULT_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !path.includes('/')) path = OFFICIAL_REPO_PREFIX + path;
  return { domain, path };
}

/**
 * Parse and normalize a reference. With `defaultTag` (the default), a reference without tag or
 * digest gets ":latest", as `docker pull busybox` does.
 */
export function parseReference(input: string, opts: { defaultTag?: boolean } = {}): Reference {
  const bad = (why: string) => invalidArgument(`invalid reference format: ${why}: ${JSON.stringify(input)}`);
  if (input.length === 0) throw bad('empty');
  if (/\s/.test(input)) throw bad('contains whitespace');
  let rest = input;
  let digest: Digest | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw bad('invalid digest');
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!isValidTag(tag)) throw bad('invalid tag');
  }
  if (rest.length === 0) throw bad('empty name');
  const { domain, path } = splitDomain(rest);
  if (!DOMAIN_RE.test(domain)) throw bad('invalid registry host');
  if (path !== path.toLowerCase()) throw bad('repository name must be lowercase');
  if (!isValidRepositoryPath(path)) throw bad('invalid repository name');
  if (domain.length + 1 + path.length > NAME_TOTAL_LENGTH_MAX) throw bad('repository name too long');
  if (tag === undefined && digest === undefined && opts.defaultTag !== false) tag = DEFAULT_TAG;
  const ref: Reference = { domain, path };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** "docker.io/library/busybox" */
export function repositoryName(ref: Pick<Reference, 'domain' | 'path'>): string {
  return `${ref.domain}/${ref.path}`;
}

/** Fully qualified: "docker.io/library/busybox:latest", "host/a@sha256:..". */
export function formatReference(ref: Reference): string {
  let s = repositoryName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** Docker's short form ("busybox:latest", "me/app:1", "127.0.0.1:5000/x:y"). */
export function familiarName(ref: Pick<Reference, 'domain' | 'path'>): string {
  if (ref.domain === DEFAULT_DOMAIN) {
    return ref.path.startsWith(OFFICIAL_REPO_PREFIX) ? ref.path.slice(OFFICIAL_REPO_PREFIX.length) : ref.path;
  }
  return repositoryName(ref);
}

export function familiarString(ref: Reference): string {
  let s = familiarName(ref);
  if (ref.tag !== undefined) s += `:${ref.tag}`;
  if (ref.digest !== undefined) s += `@${ref.digest}`;
  return s;
}

/** The host to talk to for a reference's domain. */
export function registryHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY : domain;
}
