import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, mkdir, writeFile, symlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSpec, processArgs, processEnv, processCwd, specToJson, parseSecurityOpts, tmpfsOptions, resolvConf, hostsFile, MASKED_PATHS, READONLY_PATHS, type SpecInput } from '../../src/runtime/spec.ts';
import { ALL_CAPS, capMask, tweakCapabilities, DEFAULT_CAPS } from '../../src/runtime/capabilities.ts';
import { parseProcLimits, RLIM_INFINITY, parseUlimitFlag } from '../../src/runtime/rlimits.ts';
import { resolveUserFrom, resolveUser } from '../../src/runtime/user.ts';
import { defaultSeccomp, seccompFromDockerProfile } from '../../src/runtime/seccomp.ts';

const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max stack size            8388608              unlimited            bytes
Max processes             96365                96365                processes
Max open files            20000                20000                files
Max locked memory         8388608              8388608              bytes
`;

function input(over: Partial<SpecInput> = {}): SpecInput {
  return {
    id: 'a'.repeat(64),
    rootfs: '/c/rootfs',
    image: { Env: ['PATH=/bin', 'FOO=image'], Cmd: ['sh'] },
    create: { Image: 'busybox' },
    user: { uid: 0, gid: 0, additionalGids: [], home: '/root' },
    files: { hostname: '/c/hostname', hosts: '/c/hosts', resolvConf: '/c/resolv.conf' },
    cgroupsPath: '/berth/aaaa',
    cgroupVersion: '1',
    hostRlimits: parseProcLimits(LIMITS),
    hostCaps: [...ALL_CAPS],
    arch: 'amd64',
    ...over,
  };
}

test('default capabilities are Docker\'s: CapEff a80425fb, nothing inheritable or ambient', () => {
  const s = buildSpec(input());
  assert.equal(capMask(s.process.capabilities.effective).toString(16), 'a80425fb');
  assert.equal(capMask(s.process.capabilities.bounding).toString(16), 'a80425fb');
  assert.equal(capMask(s.process.capabilities.permitted).toString(16), 'a80425fb');
  assert.deepEqual(s.process.capabilities.inheritable, []);
  assert.deepEqual(s.process.capabilities.ambient, []);
  assert.equal(s.process.noNewPrivileges, false);
});

test('cap-add and cap-drop, with ALL', () => {
  assert.deepEqual(tweakCapabilities(DEFAULT_CAPS, ['net_admin'], ['CHOWN'], ALL_CAPS).includes('CAP_NET_ADMIN'), true);
  assert.equal(tweakCapabilities(DEFAULT_CAPS, [], ['chown'], ALL_CAPS).includes('CAP_CHOWN'), false);
  assert.deepEqual(tweakCapabilities(DEFAULT_CAPS, ['KILL'], ['ALL'], ALL_CAPS), ['CAP_KILL']);
  assert.equal(tweakCapabilities(DEFAULT_CAPS, ['ALL'], ['SYS_ADMIN'], ALL_CAPS).length, ALL_CAPS.length - 1);
  assert.throws(() => tweakCapabilities(DEFAULT_CAPS, ['BOGUS'], [], ALL_CAPS), (e: any) => e.kind === 'InvalidArgument');
  const s = buildSpec(input({ create: { HostConfig: { CapDrop: ['ALL'], CapAdd: ['NET_BIND_SERVICE'] } } }));
  assert.deepEqual(s.process.capabilities.effective, ['CAP_NET_BIND_SERVICE']);
});

test('capabilities the daemon does not hold are never granted (privileged gets the host set)', () => {
  const host = ALL_CAPS.filter((c) => c !== 'CAP_SYS_RESOURCE');
  const s = buildSpec(input({ hostCaps: host, create: { HostConfig: { Privileged: true } } }));
  assert.equal(s.process.capabilities.bounding.includes('CAP_SYS_RESOURCE'), false);
  assert.equal(s.process.capabilities.bounding.length, host.length);
  assert.equal(s.linux.seccomp, undefined);
  assert.equal(s.linux.maskedPaths, undefined);
  const s2 = buildSpec(input({ hostCaps: host, create: { HostConfig: { CapAdd: ['SYS_RESOURCE'] } } }));
  assert.equal(s2.process.capabilities.effective.includes('CAP_SYS_RESOURCE'), false);
});

test('seccomp: default profile is an EPERM allowlist specialised for caps and arch', () => {
  const s = buildSpec(input());
  const sc = s.linux.seccomp!;
  assert.equal(sc.defaultAction, 'SCMP_ACT_ERRNO');
  assert.equal(sc.defaultErrnoRet, 1);
  assert.deepEqual(sc.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  const allowed = new Set(sc.syscalls!.filter((x) => x.action === 'SCMP_ACT_ALLOW' && !x.args).flatMap((x) => x.names));
  for (const n of ['read', 'write', 'execve', 'arch_prctl', 'chroot', 'ptrace']) assert.ok(allowed.has(n), n);
  for (const n of ['mount', 'unshare', 'setns', 'kexec_load', 'reboot', 'bpf', 'clone', 'open_by_handle_at']) assert.ok(!allowed.has(n), n);
  const clone = sc.syscalls!.find((x) => x.names.includes('clone') && x.args);
  assert.equal(clone?.args?.[0]?.value, 0x7e020000);
  assert.equal(sc.syscalls!.find((x) => x.names.includes('clone3'))?.errnoRet, 38);
  // With CAP_SYS_ADMIN: mount allowed, clone unfiltered, no clone3 ENOSYS.
  const admin = defaultSeccomp([...DEFAULT_CAPS, 'CAP_SYS_ADMIN'], 'amd64');
  const a2 = new Set(admin.syscalls!.filter((x) => x.action === 'SCMP_ACT_ALLOW' && !x.args).flatMap((x) => x.names));
  assert.ok(a2.has('mount') && a2.has('clone'));
  assert.equal(admin.syscalls!.some((x) => x.names.includes('clone3') && x.action === 'SCMP_ACT_ERRNO'), false);
  // Architecture-specific: no arch_prctl on arm64.
  const arm = defaultSeccomp(DEFAULT_CAPS, 'arm64');
  assert.equal(arm.syscalls!.some((x) => x.names.includes('arch_prctl')), false);
  assert.ok(arm.syscalls!.some((x) => x.names.includes('set_tls')));
});

test('seccomp=unconfined and a Docker-format profile', () => {
  assert.equal(buildSpec(input({ create: { HostConfig: { SecurityOpt: ['seccomp=unconfined'] } } })).linux.seccomp, undefined);
  const prof = JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 1 }, { names: ['chroot'], action: 'SCMP_ACT_ERRNO', includes: { caps: ['CAP_SYS_ADMIN'] } }] });
  const s = buildSpec(input({ create: { HostConfig: { SecurityOpt: [`seccomp=${prof}`, 'no-new-privileges'] } } }));
  assert.equal(s.linux.seccomp!.defaultAction, 'SCMP_ACT_ALLOW');
  assert.deepEqual(s.linux.seccomp!.syscalls!.map((x) => x.names), [['mkdir']]);
  assert.equal(s.process.noNewPrivileges, true);
  assert.throws(() => seccompFromDockerProfile('{nope', []), (e: any) => e.kind === 'InvalidArgument');
  assert.throws(() => parseSecurityOpts(['bogus=1']), (e: any) => e.kind === 'InvalidArgument');
});

test('masked and read-only paths, default mounts, no host devices', () => {
  const s = buildSpec(input());
  assert.deepEqual(s.linux.maskedPaths, MASKED_PATHS);
  assert.deepEqual(s.linux.readonlyPaths, READONLY_PATHS);
  assert.ok(s.linux.maskedPaths!.includes('/proc/kcore'));
  const dests = s.mounts.map((m) => m.destination);
  for (const d of ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf']) assert.ok(dests.includes(d), d);
  assert.ok(s.mounts.find((m) => m.destination === '/sys')!.options!.includes('ro'));
  assert.ok(s.mounts.find((m) => m.destination === '/sys/fs/cgroup')!.options!.includes('ro'));
  assert.ok(s.mounts.find((m) => m.destination === '/dev/shm')!.options!.includes(`size=${64 * 1024 * 1024}`));
  assert.deepEqual(s.linux.resources.devices, [{ allow: false, access: 'rwm' }]);
  assert.equal(s.linux.devices, undefined);
  const shm = buildSpec(input({ create: { HostConfig: { ShmSize: 1 << 20 } } }));
  assert.ok(shm.mounts.find((m) => m.destination === '/dev/shm')!.options!.includes('size=1048576'));
});

test('rlimits are clamped to the host hard limits and serialised exactly', () => {
  const s = buildSpec(input({ create: { HostConfig: { Ulimits: [{ Name: 'nproc', Soft: 200000, Hard: 300000 }, { Name: 'core', Soft: -1, Hard: -1 }, { Name: 'memlock', Soft: 1024, Hard: 2048 }] } } }));
  const byType = Object.fromEntries(s.process.rlimits.map((r) => [r.type, r]));
  assert.equal(byType.RLIMIT_NOFILE!.hard, 20000n);
  assert.equal(byType.RLIMIT_NOFILE!.soft, 20000n);
  assert.equal(byType.RLIMIT_NPROC!.hard, 96365n);
  assert.equal(byType.RLIMIT_NPROC!.soft, 96365n);
  assert.equal(byType.RLIMIT_MEMLOCK!.hard, 2048n);
  assert.equal(byType.RLIMIT_CORE!.hard, RLIM_INFINITY);
  const json = specToJson(s);
  assert.match(json, /"hard":18446744073709551615/);
  assert.match(json, /"type":"RLIMIT_NOFILE","soft":20000,"hard":20000/);
  assert.deepEqual(parseUlimitFlag('nofile=1024:2048'), { Name: 'nofile', Soft: 1024, Hard: 2048 });
  assert.throws(() => parseUlimitFlag('nofile=10:5'));
  assert.throws(() => buildSpec(input({ create: { HostConfig: { Ulimits: [{ Name: 'bogus', Soft: 1, Hard: 1 }] } } })));
});

test('entrypoint and cmd follow Docker\'s rules', () => {
  const img = { Entrypoint: ['/ep'], Cmd: ['a', 'b'] };
  assert.deepEqual(processArgs(img, {}), ['/ep', 'a', 'b']);
  assert.deepEqual(processArgs(img, { Cmd: ['x'] }), ['/ep', 'x']);
  assert.deepEqual(processArgs(img, { Entrypoint: ['/other'] }), ['/other']); // image Cmd dropped
  assert.deepEqual(processArgs(img, { Entrypoint: ['/other'], Cmd: ['y'] }), ['/other', 'y']);
  assert.deepEqual(processArgs(img, { Entrypoint: [''], Cmd: ['echo', 'hi'] }), ['echo', 'hi']);
  assert.throws(() => processArgs(img, { Entrypoint: [''] }), /No command specified/);
  assert.throws(() => processArgs({}, {}), (e: any) => e.kind === 'InvalidArgument');
  assert.deepEqual(processArgs({ Cmd: ['sh'] }, { Cmd: 'echo' as unknown as string[] }), ['echo']);
});

test('env: image then -e, PATH default, HOSTNAME, removal by bare key', () => {
  const env = processEnv({ Env: ['FOO=image', 'BAR=1'] }, { Env: ['FOO=user', 'BAR', 'NEW=x=y'] }, 'h1', '/root');
  assert.ok(env.includes('FOO=user'));
  assert.ok(env.includes('NEW=x=y'));
  assert.ok(!env.some((e) => e.startsWith('BAR')));
  assert.ok(env.includes('HOSTNAME=h1'));
  assert.ok(env.includes(`PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`));
  assert.ok(env.includes('HOME=/root'));
  assert.ok(processEnv({ Env: ['PATH=/x'] }, { Tty: true }, 'h', '/').includes('PATH=/x'));
  assert.ok(processEnv({}, { Tty: true }, 'h', '/').includes('TERM=xterm'));
});

test('cwd must be absolute and never inside /proc (CVE-2024-21626)', () => {
  assert.equal(processCwd({ WorkingDir: '/app' }, {}), '/app');
  assert.equal(processCwd({ WorkingDir: '/app' }, { WorkingDir: '/w/../x' }), '/x');
  assert.throws(() => processCwd({}, { WorkingDir: '/proc/self/fd/7' }), (e: any) => e.kind === 'InvalidArgument');
  assert.throws(() => processCwd({ WorkingDir: '/proc/self/fd/8' }, {}), (e: any) => e.kind === 'InvalidArgument');
  assert.throws(() => processCwd({}, { WorkingDir: '/a/../proc/1/cwd' }));
  assert.throws(() => processCwd({}, { WorkingDir: 'relative' }));
});

test('user resolution from passwd and group', async () => {
  const passwd = 'root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n';
  const group = 'root:x:0:\nalice:x:1000:\nstaff:x:50:alice,bob\nwheel:x:10:alice\n';
  assert.deepEqual(resolveUserFrom('', passwd, group), { uid: 0, gid: 0, additionalGids: [], home: '/root' });
  assert.deepEqual(resolveUserFrom('alice', passwd, group), { uid: 1000, gid: 1000, additionalGids: [10, 50], home: '/home/alice' });
  assert.deepEqual(resolveUserFrom('1001', passwd, group), { uid: 1001, gid: 1001, additionalGids: [50], home: '/home/bob' });
  assert.deepEqual(resolveUserFrom('4242:4343', passwd, group), { uid: 4242, gid: 4343, additionalGids: [], home: '/' });
  assert.equal(resolveUserFrom('alice:staff', passwd, group).gid, 50);
  assert.deepEqual(resolveUserFrom('bob', passwd, group, ['wheel', '7']).additionalGids, [7, 10, 50]);
  assert.throws(() => resolveUserFrom('mallory', passwd, group), (e: any) => e.kind === 'InvalidArgument');
  assert.throws(() => resolveUserFrom('alice:nogroup', passwd, group), (e: any) => e.kind === 'InvalidArgument');

  const root = await mkdtemp(join(tmpdir(), 'berth-user-'));
  try {
    await mkdir(join(root, 'etc'));
    await writeFile(join(root, 'etc', 'group'), group);
    // A planted symlink to a host file is not followed: the user is unknown.
    await symlink('/etc/passwd', join(root, 'etc', 'passwd'));
    await assert.rejects(resolveUser(root, 'alice'), (e: any) => e.kind === 'InvalidArgument');
    await rm(join(root, 'etc', 'passwd'));
    await writeFile(join(root, 'etc', 'passwd'), passwd);
    assert.equal((await resolveUser(root, 'alice')).uid, 1000);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('resources: memory, swap, cpus, shares, cpuset, pids', () => {
  const s = buildSpec(input({ create: { HostConfig: { Memory: 64 << 20, MemoryReservation: 32 << 20, NanoCpus: 1.5e9, CpuShares: 512, CpusetCpus: '0', PidsLimit: 100 } } }));
  const r = s.linux.resources as any;
  assert.deepEqual(r.memory, { limit: 64 << 20, swap: 128 << 20, reservation: 32 << 20 });
  assert.deepEqual(r.cpu, { period: 100000, quota: 150000, shares: 512, cpus: '0' });
  assert.deepEqual(r.pids, { limit: 100 });
  assert.equal((buildSpec(input({ create: { HostConfig: { Memory: 64 << 20, MemorySwap: -1 } } })).linux.resources as any).memory.swap, -1);
  assert.throws(() => buildSpec(input({ create: { HostConfig: { Memory: 1 << 20 } } })), /Minimum memory limit/);
  assert.throws(() => buildSpec(input({ create: { HostConfig: { MemorySwap: 1 << 30 } } })));
  assert.equal((buildSpec(input({ create: { HostConfig: { CpusetCpus: '0-1,3', CpusetMems: '0' } } })).linux.resources as any).cpu.cpus, '0-1,3');
  for (const bad of ['x', '1-0', '0,', '-1', '0-'] ) assert.throws(() => buildSpec(input({ create: { HostConfig: { CpusetCpus: bad } } })), new RegExp(`Invalid value ${bad} for cpuset cpus`), bad);
  assert.throws(() => buildSpec(input({ create: { HostConfig: { CpusetMems: 'a' } } })), /Invalid value a for cpuset mems/);
});

test('read-only rootfs, tmpfs, init, network modes, hostname', () => {
  const s = buildSpec(input({ initBinary: '/usr/bin/catatonit', create: { Hostname: 'web', HostConfig: { ReadonlyRootfs: true, Tmpfs: { '/run': 'size=1m' }, Init: true } } }));
  assert.equal(s.root.readonly, true);
  assert.deepEqual(s.mounts.find((m) => m.destination === '/run')!.options, ['noexec', 'nosuid', 'nodev', 'size=1048576']);
  assert.deepEqual(s.process.args.slice(0, 2), ['/sbin/docker-init', '--']);
  assert.equal(s.mounts.find((m) => m.destination === '/sbin/docker-init')!.source, '/usr/bin/catatonit');
  assert.equal(s.hostname, 'web');
  assert.ok(s.linux.namespaces.some((n) => n.type === 'network'));
  const h = buildSpec(input({ create: { HostConfig: { NetworkMode: 'host' } } }));
  assert.ok(!h.linux.namespaces.some((n) => n.type === 'network' || n.type === 'uts'));
  assert.equal(h.hostname, undefined);
  assert.equal(buildSpec(input()).hostname, 'aaaaaaaaaaaa');
  assert.ok(buildSpec(input({ cgroupVersion: '2' })).linux.namespaces.some((n) => n.type === 'cgroup'));
  assert.deepEqual(tmpfsOptions('exec'), ['nosuid', 'nodev', 'exec']);
});

test('devices: only --device entries are added', () => {
  const s = buildSpec(input({ devices: [{ path: '/dev/xvda', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 0, access: 'rwm' }] }));
  assert.deepEqual(s.linux.devices, [{ path: '/dev/xvda', type: 'b', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 0 }]);
  assert.deepEqual(s.linux.resources.devices[1], { allow: true, type: 'b', major: 8, minor: 0, access: 'rwm' });
});

test('resolv.conf drops loopback nameservers; hosts file', () => {
  assert.equal(resolvConf('nameserver 127.0.0.53\nsearch lan\n'), 'search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  assert.equal(resolvConf('nameserver 10.0.0.1\n', ['1.1.1.1'], [], ['ndots:2']), 'nameserver 1.1.1.1\noptions ndots:2\n');
  assert.match(hostsFile('h', ['db:10.0.0.9']), /10\.0\.0\.9\tdb\n$/);
});
