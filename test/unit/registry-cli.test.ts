// `berth registry` command shell: flags, help, errors, and gc on a root.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, mkdir, writeFile, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAddr, parseDuration, registryCommand } from '../../src/registry/cli.ts';

/** Capture process.stdout/stderr writes during fn. */
async function capture(fn: () => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = process.stdout.write.bind(process.stdout);
  const e = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => ((out += s), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string) => ((err += s), true)) as typeof process.stderr.write;
  try {
    return { code: await fn(), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

describe('berth registry CLI', () => {
  it('parses addresses and durations', () => {
    assert.deepEqual(parseAddr('127.0.0.1:5000'), { host: '127.0.0.1', port: 5000 });
    assert.deepEqual(parseAddr(':5000'), { host: '0.0.0.0', port: 5000 });
    assert.deepEqual(parseAddr('[::1]:0'), { host: '::1', port: 0 });
    assert.throws(() => parseAddr('5000'));
    assert.throws(() => parseAddr('host:99999'));
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('2d'), 172_800_000);
    assert.equal(parseDuration('250'), 250);
    assert.throws(() => parseDuration('soon'));
  });

  it('prints help and refuses unknown commands and flags with exit 125', async () => {
    const help = await capture(() => registryCommand(['--help']));
    assert.equal(help.code, 0);
    assert.match(help.out, /serve/);
    assert.match(help.out, /gc/);
    const serveHelp = await capture(() => registryCommand(['serve', '--help']));
    assert.equal(serveHelp.code, 0);
    for (const flag of ['--addr', '--root', '--htpasswd', '--anonymous-pull', '--tls-cert', '--tls-key', '--read-only', '--delete']) assert.ok(serveHelp.out.includes(flag), flag);
    const gcHelp = await capture(() => registryCommand(['gc', '--help']));
    assert.match(gcHelp.out, /--delete-untagged/);
    const unknown = await capture(() => registryCommand(['frobnicate']));
    assert.equal(unknown.code, 125);
    assert.match(unknown.err, /unknown command/);
    const badFlag = await capture(() => registryCommand(['serve', '--no-such-flag']));
    assert.equal(badFlag.code, 125);
    const halfTls = await capture(() => registryCommand(['serve', '--tls-cert', '/nonexistent']));
    assert.equal(halfTls.code, 125);
    assert.match(halfTls.err, /--tls-cert and --tls-key/);
  });

  it('gc reports and deletes an old orphan blob on a root', async () => {
    const root = await mkdtemp(join(tmpdir(), 'berth-regcli-'));
    try {
      const hex = 'a'.repeat(64);
      const blob = join(root, 'blobs', 'sha256', 'aa', hex);
      await mkdir(join(blob, '..'), { recursive: true });
      await writeFile(blob, 'orphan');
      const old = new Date(Date.now() - 2 * 3_600_000);
      await utimes(blob, old, old);
      const dry = await capture(() => registryCommand(['gc', '--root', root, '--dry-run']));
      assert.equal(dry.code, 0);
      assert.equal(JSON.parse(dry.out).blobsDeleted, 1);
      const real = await capture(() => registryCommand(['gc', '--root', root, '--grace', '1h']));
      assert.equal(real.code, 0);
      assert.deepEqual(JSON.parse(real.out).bytesFreed, 6);
      const again = await capture(() => registryCommand(['gc', '--root', root]));
      assert.equal(JSON.parse(again.out).blobsDeleted, 0);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
