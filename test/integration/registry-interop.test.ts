// Interoperability of berth's registry with real clients: skopeo (push and pull with identical
// digests, registry to registry with CNCF Distribution), podman pull, htpasswd and TLS as
// skopeo sees them, and gc while serving. The registry runs as `bin/berth registry serve` in a
// child process (the real CLI path), on a loopback port.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  BERTH, busyboxImage, run, skopeoCopy, startRegistry, tempDir, freePort, waitFor, type LayoutImage,
} from '../helpers/fixtures.ts';


interface BerthRegistry {
  addr: string;
  root: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/** Run `berth registry <args>` (via registryCommand) to completion. */
function registryCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(BERTH, ['registry', ...args]);
}

async function serve(root: string, extra: string[] = [], scheme = 'http'): Promise<BerthRegistry> {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const proc = spawn(BERTH, ['registry', 'serve', '--addr', addr, '--root', root, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  try {
    await waitFor(() => stderr.includes('registry listening'), `berth registry on ${addr}`);
  } catch (err) {
    proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}: ${stderr}`);
  }
  void scheme;
  return {
    addr,
    root,
    proc,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const done = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      await done;
    },
  };
}

async function inspectDigest(ref: string, extra: string[] = []): Promise<string> {
  const r = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', ...extra, `docker://${ref}`]);
  assert.equal(r.code, 0, r.stderr);
  const { createHash } = await import('node:crypto');
  return 'sha256:' + createHash('sha256').update(r.stdout).digest('hex');
}

describe('berth registry with real clients', () => {
  let img: LayoutImage;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let reg: BerthRegistry;

  before(async () => {
    img = await busyboxImage();
    dir = await tempDir('berth-reginterop-');
    reg = await serve(join(dir.path, 'root'), ['--delete']);
  });
  after(async () => {
    await reg?.stop();
    await dir?.cleanup();
  });

  it('skopeo copies an image in and out with identical digests', async () => {
    await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/lib/busybox:latest`);
    assert.equal(await inspectDigest(`${reg.addr}/lib/busybox:latest`), img.manifestDigest);
    const out = join(dir.path, 'pulled');
    await skopeoCopy(`docker://${reg.addr}/lib/busybox:latest`, `oci:${out}:latest`);
    const index = JSON.parse(await readFile(join(out, 'index.json'), 'utf8')) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, img.manifestDigest);
    const manifest = JSON.parse(await readFile(join(out, 'blobs', 'sha256', img.manifestDigest.slice(7)), 'utf8')) as { config: { digest: string } };
    assert.equal(manifest.config.digest, img.configDigest);
    // by digest too
    await skopeoCopy(`docker://${reg.addr}/lib/busybox@${img.manifestDigest}`, `oci:${join(dir.path, 'bydigest')}:x`);
  });

  it('skopeo copies registry to registry, berth <-> Distribution, digests intact', async () => {
    await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/lib/busybox:latest`);
    const dist = await startRegistry();
    try {
      await skopeoCopy(`docker://${reg.addr}/lib/busybox:latest`, `docker://${dist.addr}/from/berth:latest`);
      assert.equal(await inspectDigest(`${dist.addr}/from/berth:latest`), img.manifestDigest);
      await skopeoCopy(`docker://${dist.addr}/from/berth:latest`, `docker://${reg.addr}/from/dist:latest`);
      assert.equal(await inspectDigest(`${reg.addr}/from/dist:latest`), img.manifestDigest);
      // Docker schema 2 conversion on the way in, served back unchanged.
      await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/lib/busybox:v2s2`, ['--format', 'v2s2']);
      const raw = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.addr}/lib/busybox:v2s2`]);
      assert.equal(JSON.parse(raw.stdout).mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
      const tags = await run('skopeo', ['list-tags', '--tls-verify=false', `docker://${reg.addr}/lib/busybox`]);
      assert.deepEqual(JSON.parse(tags.stdout).Tags.sort(), ['latest', 'v2s2']);
    } finally {
      await dist.stop();
    }
  });

  it('podman pulls from it', async () => {
    await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/lib/busybox:latest`);
    const p = join(dir.path, 'podman');
    await mkdir(p, { recursive: true });
    await writeFile(join(p, 'registries.conf'), `[[registry]]\nlocation = "${reg.addr}"\ninsecure = true\n`);
    const args = ['--root', join(p, 'root'), '--runroot', join(p, 'runroot'), '--storage-driver', 'vfs', '--cgroup-manager', 'cgroupfs', '--events-backend', 'none'];
    const env = { ...process.env, CONTAINERS_REGISTRIES_CONF: join(p, 'registries.conf'), TMPDIR: p };
    try {
      const pull = await run('podman', [...args, 'pull', '--tls-verify=false', `${reg.addr}/lib/busybox:latest`], { env, timeoutMs: 120_000 });
      assert.equal(pull.code, 0, pull.stderr);
      const images = await run('podman', [...args, 'images', '--format', '{{.Digest}}'], { env });
      assert.equal(images.stdout.trim(), img.manifestDigest);
      // and pushes to it (podman recompresses layers from its storage: new digests, same content)
      const push = await run('podman', [...args, 'push', '--tls-verify=false', `${reg.addr}/lib/busybox:latest`, `docker://${reg.addr}/lib/repushed:latest`], { env, timeoutMs: 120_000 });
      assert.equal(push.code, 0, push.stderr);
      const raw = await run('skopeo', ['inspect', '--tls-verify=false', `docker://${reg.addr}/lib/repushed:latest`]);
      assert.equal(raw.code, 0, raw.stderr);
      assert.equal(JSON.parse(raw.stdout).Layers.length, 1);
    } finally {
      await run('podman', [...args, 'rmi', '-a', '-f'], { env });
    }
  });

  it('gc while serving keeps every pushed image whole', async () => {
    await skopeoCopy(`oci:${img.dir}:${img.tag}`, `docker://${reg.addr}/gc/busybox:latest`);
    const gc = await registryCli(['gc', '--root', reg.root, '--grace', '0s', '--delete-untagged']);
    assert.equal(gc.code, 0, gc.stderr);
    const report = JSON.parse(gc.stdout) as { blobsMarked: number };
    assert.ok(report.blobsMarked >= 3);
    await skopeoCopy(`docker://${reg.addr}/gc/busybox:latest`, `oci:${join(dir.path, 'aftergc')}:latest`);
    const health = await fetch(`http://${reg.addr}/healthz`);
    assert.equal(health.status, 200);
  });
});

describe('berth registry with htpasswd and TLS, as skopeo sees it', () => {
  it('refuses anonymous and wrong credentials, accepts the right ones, over HTTPS', async () => {
    const img = await busyboxImage();
    await using dir = await tempDir('berth-regauth-');
    const htpasswd = await run('htpasswd', ['-Bbn', 'alice', 's3cret']);
    assert.equal(htpasswd.code, 0, htpasswd.stderr);
    await writeFile(join(dir.path, 'htpasswd'), htpasswd.stdout);
    const ssl = await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir.path, 'key.pem'), '-out', join(dir.path, 'cert.pem')]);
    assert.equal(ssl.code, 0, ssl.stderr);
    const reg = await serve(join(dir.path, 'root'), ['--htpasswd', join(dir.path, 'htpasswd'), '--tls-cert', join(dir.path, 'cert.pem'), '--tls-key', join(dir.path, 'key.pem')], 'https');
    try {
      const src = `oci:${img.dir}:${img.tag}`;
      const dst = `docker://${reg.addr}/secure/busybox:latest`;
      const anon = await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', src, dst]);
      assert.notEqual(anon.code, 0);
      assert.match(anon.stderr, /unauthorized|authentication required/i);
      const wrong = await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'alice:wrong', src, dst]);
      assert.notEqual(wrong.code, 0);
      assert.match(wrong.stderr, /unauthorized|authentication required/i);
      const ok = await run('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', 'alice:s3cret', src, dst]);
      assert.equal(ok.code, 0, ok.stderr);
      const anonPull = await run('skopeo', ['inspect', '--raw', '--tls-verify=false', `docker://${reg.addr}/secure/busybox:latest`]);
      assert.notEqual(anonPull.code, 0);
      assert.equal(await inspectDigest(`${reg.addr}/secure/busybox:latest`, ['--creds', 'alice:s3cret']), img.manifestDigest);
    } finally {
      await reg.stop();
    }
  });
});
