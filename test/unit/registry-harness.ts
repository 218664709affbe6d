// Test harness for the registry: an in-process server on 127.0.0.1:0 over either driver, and
// small helpers that push blobs and manifests the way clients do.
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { FilesystemDriver } from '../../src/registry/filesystem-driver.ts';
import { MemoryDriver } from '../../src/registry/memory-driver.ts';
import { RegistryServer, type RegistryServerOptions } from '../../src/registry/registry-server.ts';
import { RegistryStore, type RegistryStoreOptions } from '../../src/registry/registry-store.ts';
import type { StorageDriver } from '../../src/registry/storage-driver.ts';

export const DRIVERS = ['inmemory', 'filesystem'] as const;
export type DriverName = (typeof DRIVERS)[number];

export interface TestRegistry {
  url: string;
  driver: StorageDriver;
  store: RegistryStore;
  server: RegistryServer;
  root?: string;
  [Symbol.asyncDispose](): Promise<void>;
  stop(): Promise<void>;
}

export async function makeDriver(kind: DriverName): Promise<{ driver: StorageDriver; root?: string }> {
  if (kind === 'inmemory') return { driver: new MemoryDriver() };
  const root = await mkdtemp(join(tmpdir(), 'berth-registry-'));
  const driver = new FilesystemDriver(root);
  await driver.init();
  return { driver, root };
}

export async function startTestRegistry(
  kind: DriverName,
  opts: Omit<RegistryServerOptions, 'store'> = {},
  storeOpts: RegistryStoreOptions = {},
  existing?: { driver: StorageDriver; root?: string },
): Promise<TestRegistry> {
  const { driver, root } = existing ?? (await makeDriver(kind));
  const store = new RegistryStore(driver, storeOpts);
  const server = new RegistryServer({ ...opts, store });
  const addr = await server.listen(0, '127.0.0.1');
  const stop = async () => {
    await server.close();
    if (root && !existing) await rm(root, { recursive: true, force: true });
  };
  return { url: `${opts.tls ? 'https' : 'http'}://127.0.0.1:${addr.port}`, driver, store, server, root, stop, [Symbol.asyncDispose]: stop };
}

export function sha256(data: Uint8Array | string): `sha256:${string}` {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Assert the spec's error body and return its first code. */
export async function errorCode(res: Response): Promise<string> {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  assert.ok(Array.isArray(body.errors) && body.errors.length > 0, 'errors array');
  assert.equal(typeof body.errors[0]!.message, 'string');
  return body.errors[0]!.code;
}

export async function pushBlob(url: string, name: string, data: Uint8Array | string): Promise<{ digest: `sha256:${string}`; size: number }> {
  const buf = Buffer.from(data);
  const digest = sha256(buf);
  const res = await fetch(`${url}/v2/${name}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: buf, headers: { 'Content-Type': 'application/octet-stream' } });
  assert.equal(res.status, 201, `push blob: ${await res.text()}`);
  return { digest, size: buf.length };
}

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

/** Push a config and layers, then an image manifest referencing them. */
export async function pushImage(url: string, name: string, ref: string, opts: { layers?: string[]; mediaType?: string; extra?: Record<string, unknown> } = {}): Promise<{ digest: string; body: Buffer<ArrayBuffer>; res: Response }> {
  const mediaType = opts.mediaType ?? OCI_MANIFEST;
  const config = await pushBlob(url, name, JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, n: Math.random() }));
  const layers = [];
  for (const l of opts.layers ?? ['layer-one']) layers.push(await pushBlob(url, name, l));
  const isDocker = mediaType === DOCKER_MANIFEST;
  const manifest = {
    schemaVersion: 2,
    mediaType,
    config: { mediaType: isDocker ? 'application/vnd.docker.container.image.v1+json' : OCI_CONFIG, ...config },
    layers: layers.map((l) => ({ mediaType: isDocker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : OCI_LAYER, ...l })),
    ...opts.extra,
  };
  const body = Buffer.from(JSON.stringify(manifest));
  const res = await fetch(`${url}/v2/${name}/manifests/${ref}`, { method: 'PUT', body, headers: { 'Content-Type': mediaType } });
  assert.equal(res.status, 201, `push manifest: ${res.status} ${await res.clone().text()}`);
  return { digest: sha256(body), body, res };
}
