// CniRunner against a FakeHost: the environment and config JSON berth sends each plugin, result
// and error parsing into berth's error taxonomy; and the FORWARD ordering berth keeps against the
// CNI firewall plugin's jump.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeHost, type RunOptions, type RunResult } from '../../src/host/host.ts';
import { CniRunner, CniError, bridgeConfig, firewallConfig, loopbackConfig, parseCniError, parseCniResult } from '../../src/network/cni.ts';
import { Netfilter } from '../../src/network/netfilter.ts';
import { isKind } from '../../src/core/errors.ts';

class PluginHost extends FakeHost {
  seen: Array<{ file: string; args: readonly string[]; opts?: RunOptions }> = [];
  answer: (file: string) => RunResult = () => ({ code: 0, stdout: '{"cniVersion":"1.0.0"}', stderr: '' });
  override async run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    this.seen.push({ file, args, opts });
    return this.answer(file);
  }
}

const rt = { containerId: 'c0ffee', netns: '/run/x/netns/c0ffee', ifname: 'eth0' };

test('add: plugin binary from CNI_PATH, the spec environment, config on stdin, result parsed', async () => {
  const host = new PluginHost();
  const result = { cniVersion: '1.0.0', interfaces: [{ name: 'br0' }, { name: 'veth1234' }, { name: 'eth0', sandbox: rt.netns }], ips: [{ address: '10.0.0.2/24', gateway: '10.0.0.1', interface: 2 }] };
  host.answer = () => ({ code: 0, stdout: JSON.stringify(result), stderr: '' });
  const cni = new CniRunner(host, '/opt/cni');
  const conf = bridgeConfig({ network: 'n', bridge: 'br0', address: '10.0.0.2/24', gateway: '10.0.0.1', mac: '02:42:0a:00:00:02', defaultRoute: true });
  assert.deepEqual(await cni.add(conf, rt), result);
  const call = host.seen[0]!;
  assert.equal(call.file, '/opt/cni/bridge');
  assert.deepEqual(call.args, []);
  const env = call.opts!.env!;
  assert.deepEqual(
    { c: env.CNI_COMMAND, id: env.CNI_CONTAINERID, ns: env.CNI_NETNS, i: env.CNI_IFNAME, p: env.CNI_PATH },
    { c: 'ADD', id: 'c0ffee', ns: rt.netns, i: 'eth0', p: '/opt/cni' },
  );
  assert.ok(env.PATH, 'PATH passed (the firewall plugin runs iptables)');
  assert.equal(env.HOME, undefined, 'only what the plugin needs');
  assert.equal(call.opts!.allowFailure, true);
  assert.deepEqual(JSON.parse(String(call.opts!.input)), conf);
  // DEL: same shape, nothing parsed from stdout.
  host.answer = () => ({ code: 0, stdout: '', stderr: '' });
  await cni.del({ ...firewallConfig('n', result) }, { ...rt, netns: '' });
  assert.equal(host.seen[1]!.file, '/opt/cni/firewall');
  assert.equal(host.seen[1]!.opts!.env!.CNI_COMMAND, 'DEL');
  assert.equal(host.seen[1]!.opts!.env!.CNI_NETNS, '');
  assert.deepEqual(JSON.parse(String(host.seen[1]!.opts!.input)).prevResult, result);
});

test('configs: bridge with static IPAM (route only for the first network), loopback, firewall chained', () => {
  const b = bridgeConfig({ network: 'berth-u', bridge: 'br-1', address: '10.9.0.5/24', gateway: '10.9.0.1', mac: '02:42:0a:09:00:05', defaultRoute: false });
  assert.deepEqual(b, {
    cniVersion: '1.0.0', name: 'berth-u', type: 'bridge', bridge: 'br-1', isGateway: false, isDefaultGateway: false, ipMasq: false, hairpinMode: true,
    ipam: { type: 'static', addresses: [{ address: '10.9.0.5/24', gateway: '10.9.0.1' }], routes: [] },
    runtimeConfig: { mac: '02:42:0a:09:00:05' },
  });
  assert.deepEqual(loopbackConfig(), { cniVersion: '1.0.0', name: 'berth-loopback', type: 'loopback' });
  const prev = { cniVersion: '1.0.0', ips: [{ address: '10.9.0.5/24' }] };
  assert.deepEqual(firewallConfig('berth-u', prev), { cniVersion: '1.0.0', name: 'berth-u', type: 'firewall', backend: 'iptables', prevResult: prev });
});

test('errors: the plugin error JSON becomes a classified BerthError; text and bad results too', async () => {
  const e = parseCniError('bridge', 'ADD', 1, '{"cniVersion":"1.0.0","code":7,"msg":"invalid bridge name","details":"too long"}', '');
  assert.ok(e instanceof CniError);
  assert.equal(e.kind, 'InvalidArgument');
  assert.equal(e.code, 7);
  assert.equal(e.message, 'cni plugin bridge add failed: invalid bridge name (too long)');
  assert.equal(parseCniError('bridge', 'DEL', 1, '{"code":3,"msg":"no such container"}', '').kind, 'NotFound');
  assert.equal(parseCniError('bridge', 'ADD', 1, '{"code":11,"msg":"busy"}', '').kind, 'Unavailable');
  assert.equal(parseCniError('firewall', 'ADD', 1, '{"code":999,"msg":"x"}', '').kind, 'Internal');
  const text = parseCniError('loopback', 'ADD', 2, 'panic: boom', 'more');
  assert.equal(text.kind, 'Internal');
  assert.match(text.message, /^cni plugin loopback add failed: panic: boom$/);
  assert.match(parseCniError('loopback', 'ADD', 2, '', 'only stderr').message, /only stderr/);
  assert.match(parseCniError('loopback', 'ADD', 139, '', '').message, /exit 139/);

  const host = new PluginHost();
  const cni = new CniRunner(host);
  host.answer = () => ({ code: 1, stdout: '{"cniVersion":"1.0.0","code":4,"msg":"required env variables [CNI_NETNS] missing"}', stderr: '' });
  await assert.rejects(cni.add(loopbackConfig(), rt), (err: unknown) => isKind(err, 'InvalidArgument') && /CNI_NETNS/.test((err as Error).message));
  await assert.rejects(cni.del(loopbackConfig(), rt), (err: unknown) => isKind(err, 'InvalidArgument'));
  host.answer = () => ({ code: 0, stdout: 'not json', stderr: '' });
  await assert.rejects(cni.add(loopbackConfig(), rt), (err: unknown) => isKind(err, 'Internal') && /not JSON/.test((err as Error).message));
  assert.throws(() => parseCniResult('bridge', '{"ips":[]}'), /without cniVersion/);
  assert.throws(() => parseCniResult('bridge', '{"cniVersion":"1.0.0","ips":[{"gateway":"1.2.3.4"}]}'), /malformed ips/);
  await assert.rejects(cni.add({ cniVersion: '1.0.0', name: 'n', type: '../../bin/sh' }, rt), (err: unknown) => isKind(err, 'Internal'));
  assert.equal(host.seen.some((s) => s.file.includes('..')), false, 'a type is never a path');
});

/** `iptables -S FORWARD` and the edits to it, on a list. */
class ForwardHost extends FakeHost {
  forward: string[];
  constructor(forward: string[]) {
    super();
    this.forward = forward;
  }
  override async run(file: string, args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    await super.run(file, args, opts);
    const a = args.filter((x) => x !== '-w');
    const i = a.indexOf('FORWARD');
    if (file !== 'iptables' || i < 0 || a[i - 1] === undefined) return { code: 0, stdout: '', stderr: '' };
    const op = a[i - 1];
    const spec = a.slice(i + 1);
    const rule = (s: string[]) => `-A FORWARD ${s.map((x) => (x.includes(' ') ? `"${x}"` : x)).join(' ')}`;
    if (op === '-S') return { code: 0, stdout: ['-P FORWARD ACCEPT', ...this.forward].join('\n') + '\n', stderr: '' };
    if (op === '-C') return { code: this.forward.includes(rule(spec)) ? 0 : 1, stdout: '', stderr: '' };
    if (op === '-A') this.forward.push(rule(spec));
    if (op === '-I') this.forward.splice(Number(spec[0]) - 1, 0, rule(spec.slice(1)));
    if (op === '-D') {
      const k = this.forward.indexOf(rule(spec));
      if (k < 0) return { code: 1, stdout: '', stderr: '' };
      this.forward.splice(k, 1);
    }
    return { code: 0, stdout: '', stderr: '' };
  }
}

test('FORWARD: berth\'s chain decides before CNI-FORWARD (the plugin\'s accept would cross networks)', async () => {
  const cniJump = '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD';
  // No CNI jump yet: berth appends it (the plugin then leaves it where it is) and puts its own first.
  const fresh = new ForwardHost(['-A FORWARD -j OTHER']);
  await new Netfilter(fresh, 'BT').apply([], []);
  assert.deepEqual(fresh.forward, ['-A FORWARD -j BT-FWD', '-A FORWARD -j OTHER', cniJump]);
  // The plugin's jump was inserted on top (berth's was there first): berth moves its own above it.
  const below = new ForwardHost([cniJump, '-A FORWARD -j BT-FWD']);
  const nf = new Netfilter(below, 'BT');
  await nf.apply([], []);
  assert.deepEqual(below.forward, ['-A FORWARD -j BT-FWD', cniJump]);
  // The periodic check notices the order being lost again.
  assert.equal(await nf.intact(), true);
  below.forward = [cniJump, '-A FORWARD -j BT-FWD'];
  assert.equal(await nf.intact(), false);
  await nf.apply([], []);
  assert.deepEqual(below.forward, ['-A FORWARD -j BT-FWD', cniJump]);
});

test('sweepOrphans: a killed test daemon\'s CNI-FORWARD rules (its subnets only) are deleted with it', async () => {
  const { mkdtemp, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { sweepOrphans } = await import('../../src/network/bridge-network-service.ts');
  const dir = await mkdtemp(join(tmpdir(), 'berth-sweep-'));
  try {
    await writeFile(join(dir, 'btdead.json'), JSON.stringify({ dataRoot: join(dir, 'gone'), chainPrefix: 'BT-dead', bridges: ['btdead'], subnets: ['10.124.7.0/24'] }));
    const host = new PluginHost();
    // (removeAll deletes its jumps until iptables says there are none left: answer 1 there.)
    host.answer = (file) => ({
      code: host.seen.at(-1)!.args.includes('-D') && !host.seen.at(-1)!.args.includes('CNI-FORWARD') ? 1 : 0, stderr: '',
      stdout: file === 'iptables' && host.seen.at(-1)!.args.includes('-S') ? [
        '-N CNI-FORWARD',
        '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
        '-A CNI-FORWARD -d 10.124.7.9/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
        '-A CNI-FORWARD -s 10.124.7.9/32 -j ACCEPT',
        '-A CNI-FORWARD -s 10.88.0.4/32 -j ACCEPT',
      ].join('\n') : '',
    });
    assert.deepEqual(await sweepOrphans(host, dir), ['btdead']);
    const deletes = host.seen.filter((s) => s.file === 'iptables' && s.args.includes('CNI-FORWARD') && s.args.includes('-D')).map((s) => s.args.join(' '));
    assert.deepEqual(deletes, [
      '-w -t filter -D CNI-FORWARD -d 10.124.7.9/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT',
      '-w -t filter -D CNI-FORWARD -s 10.124.7.9/32 -j ACCEPT',
    ], 'podman\'s rule and the admin jump untouched');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
