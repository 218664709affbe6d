// The default seccomp profile: an allowlist equivalent to Docker's default (moby
// profiles/seccomp/default.json): everything not listed fails with EPERM; some syscalls are
// allowed only for certain architectures or when the container holds a capability; `clone` is
// allowed without namespace flags unless CAP_SYS_ADMIN is held; `clone3` fails with ENOSYS so
// libcs fall back to `clone` (whose flags can be filtered).
//
// Also converts a user profile in Docker's format (`--security-opt seccomp=FILE`; the docker CLI
// sends the file's JSON content) to the OCI form runc reads.
import { invalidArgument } from '../core/errors.ts';

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface OciSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

export interface OciSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  syscalls?: OciSyscall[];
}

interface Rule {
  names: string[];
  action?: string; // default SCMP_ACT_ALLOW
  errnoRet?: number;
  args?: SeccompArg[];
  /** Only on these Go-style architectures. */
  arches?: string[];
  /** Not on these architectures. */
  notArches?: string[];
  /** Only when the container holds one of these capabilities. */
  caps?: string[];
  /** Not when the container holds one of these capabilities. */
  notCaps?: string[];
}

const words = (s: string) => s.trim().split(/\s+/);

/** Allowed for every container, every architecture. */
const BASE = words(`
accept accept4 access adjtimex alarm bind brk capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2 dup3
epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old
eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate
fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr
flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
ftruncate64 futex futex_time64 futex_waitv futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit get_robust_list
getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr
inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents
io_pgetevents io_pgetevents_time64 ioprio_get ioprio_set io_setup io_submit io_uring_enter
io_uring_register io_uring_setup ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek
lremovexattr lseek lsetxattr lstat lstat64 madvise membarrier memfd_create memfd_secret mincore mkdir
mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr mq_notify mq_open
mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink mremap msgctl msgget
msgrcv msgsnd msync munlock munlockall munmap name_to_handle_at nanosleep newfstatat _newselect open
openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll
ppoll ppoll_time64 prctl pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64
pwrite64 pwritev pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg
recvmmsg_time64 recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir
rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity sched_getattr
sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler sched_rr_get_interval
sched_rr_get_interval_time64 sched_setaffinity sched_setattr sched_setparam sched_setscheduler
sched_yield seccomp select semctl semget semop semtimedop semtimedop_time64 send sendfile sendfile64
sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32 setgroups setgroups32
setitimer setpgid setpriority setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid
setreuid32 setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask sigreturn
socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat sync sync_file_range
syncfs sysinfo tee tgkill time timer_create timer_delete timer_getoverrun timer_gettime timer_gettime64
timer_settime timer_settime64 timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime
timerfd_settime64 times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
`);

/** Namespace flags clone may not carry without CAP_SYS_ADMIN (CLONE_NEWNS|UTS|IPC|USER|PID|NET|CGROUP). */
const CLONE_NS_MASK = 0x7e020000;
const ERRNO_EPERM = 1;
const ERRNO_ENOSYS = 38;

const RULES: Rule[] = [
  { names: BASE },
  // ptrace is safe from kernel 4.8 on (seccomp is re-checked after a tracer changes a syscall).
  { names: ['process_vm_readv', 'process_vm_writev', 'ptrace'] },
  // AF_VSOCK (40) stays closed.
  { names: ['socket'], args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] },
  // personality(2): only the harmless personas (PER_LINUX, UNAME26, PER_LINUX32, ..., query).
  ...[0, 8, 0x20000, 0x20008, 0xffffffff].map((v) => ({ names: ['personality'], args: [{ index: 0, value: v, op: 'SCMP_CMP_EQ' }] })),
  { names: ['sync_file_range2', 'swapcontext'], arches: ['ppc64le'] },
  { names: ['arm_fadvise64_64', 'arm_sync_file_range', 'sync_file_range2', 'breakpoint', 'cacheflush', 'set_tls'], arches: ['arm', 'arm64'] },
  { names: ['arch_prctl'], arches: ['amd64', 'x32'] },
  { names: ['modify_ldt'], arches: ['amd64', 'x32', 'x86'] },
  { names: ['s390_pci_mmio_read', 's390_pci_mmio_write', 's390_runtime_instr'], arches: ['s390', 's390x'] },
  { names: ['riscv_flush_icache'], arches: ['riscv64'] },
  { names: ['open_by_handle_at'], caps: ['CAP_DAC_READ_SEARCH'] },
  {
    names: words(`bpf clone clone3 fanotify_init fsconfig fsmount fsopen fspick lookup_dcookie mount mount_setattr
      move_mount open_tree perf_event_open quotactl quotactl_fd setdomainname sethostname setns syslog umount
      umount2 unshare`),
    caps: ['CAP_SYS_ADMIN'],
  },
  { names: ['clone'], args: [{ index: 0, value: CLONE_NS_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], notCaps: ['CAP_SYS_ADMIN'], notArches: ['s390', 's390x'] },
  // s390 passes clone's flags second.
  { names: ['clone'], args: [{ index: 1, value: CLONE_NS_MASK, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }], notCaps: ['CAP_SYS_ADMIN'], arches: ['s390', 's390x'] },
  // clone3 passes flags in a struct seccomp cannot read: ENOSYS makes glibc fall back to clone.
  { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ERRNO_ENOSYS, notCaps: ['CAP_SYS_ADMIN'] },
  { names: ['reboot'], caps: ['CAP_SYS_BOOT'] },
  { names: ['chroot'], caps: ['CAP_SYS_CHROOT'] },
  { names: ['delete_module', 'init_module', 'finit_module'], caps: ['CAP_SYS_MODULE'] },
  { names: ['acct'], caps: ['CAP_SYS_PACCT'] },
  { names: ['kcmp', 'pidfd_getfd', 'process_madvise', 'process_vm_readv', 'process_vm_writev', 'ptrace'], caps: ['CAP_SYS_PTRACE'] },
  { names: ['iopl', 'ioperm'], caps: ['CAP_SYS_RAWIO'] },
  { names: ['settimeofday', 'stime', 'clock_settime', 'clock_settime64'], caps: ['CAP_SYS_TIME'] },
  { names: ['vhangup'], caps: ['CAP_SYS_TTY_CONFIG'] },
  { names: ['get_mempolicy', 'mbind', 'set_mempolicy', 'set_mempolicy_home_node'], caps: ['CAP_SYS_NICE'] },
  { names: ['syslog'], caps: ['CAP_SYSLOG'] },
  { names: ['bpf'], caps: ['CAP_BPF'] },
  { names: ['perf_event_open'], caps: ['CAP_PERFMON'] },
];

/** Native architecture (Go spelling) -> the seccomp architectures a process may use there. */
const ARCH_MAP: Record<string, string[]> = {
  amd64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
  s390x: ['SCMP_ARCH_S390X', 'SCMP_ARCH_S390'],
  riscv64: ['SCMP_ARCH_RISCV64'],
  ppc64le: ['SCMP_ARCH_PPC64LE'],
};

export function goArch(nodeArch = process.arch): string {
  return ({ x64: 'amd64', ia32: '386', ppc64: 'ppc64le' } as Record<string, string>)[nodeArch] ?? nodeArch;
}

function applies(r: Rule, arch: string, caps: ReadonlySet<string>): boolean {
  if (r.arches && !r.arches.includes(arch)) return false;
  if (r.notArches?.includes(arch)) return false;
  if (r.caps && !r.caps.some((c) => caps.has(c))) return false;
  if (r.notCaps?.some((c) => caps.has(c))) return false;
  return true;
}

/** Docker's default profile, specialised for the architecture and the container's capabilities. */
export function defaultSeccomp(caps: readonly string[], arch = goArch()): OciSeccomp {
  return compile(RULES, ERRNO_EPERM, arch, new Set(caps), ARCH_MAP[arch]);
}

function compile(rules: Rule[], defaultErrno: number | undefined, arch: string, caps: ReadonlySet<string>, architectures: string[] | undefined, defaultAction = 'SCMP_ACT_ERRNO'): OciSeccomp {
  const syscalls: OciSyscall[] = [];
  for (const r of rules) {
    if (!applies(r, arch, caps)) continue;
    const s: OciSyscall = { names: [...r.names], action: r.action ?? 'SCMP_ACT_ALLOW' };
    if (r.errnoRet !== undefined) s.errnoRet = r.errnoRet;
    if (r.args) s.args = r.args.map((a) => ({ ...a, valueTwo: a.valueTwo ?? 0 }));
    syscalls.push(s);
  }
  const out: OciSeccomp = { defaultAction, syscalls };
  if (defaultErrno !== undefined) out.defaultErrnoRet = defaultErrno;
  if (architectures) out.architectures = architectures;
  return out;
}

interface DockerProfile {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] | null }>;
  flags?: string[];
  syscalls?: Array<{
    name?: string;
    names?: string[];
    action?: string;
    errnoRet?: number;
    args?: SeccompArg[] | null;
    includes?: { arches?: string[]; caps?: string[]; minKernel?: string };
    excludes?: { arches?: string[]; caps?: string[] };
  }>;
}

/**
 * A profile in Docker's format (what `--security-opt seccomp=FILE` carries) to OCI form for this
 * architecture and capability set. Throws InvalidArgument on malformed input.
 */
export function seccompFromDockerProfile(json: string, caps: readonly string[], arch = goArch()): OciSeccomp {
  let p: DockerProfile;
  try {
    p = JSON.parse(json) as DockerProfile;
  } catch (err) {
    throw invalidArgument(`decoding seccomp profile failed: ${(err as Error).message}`);
  }
  if (typeof p !== 'object' || p === null || typeof p.defaultAction !== 'string') throw invalidArgument('decoding seccomp profile failed: no defaultAction');
  if (p.architectures && p.archMap) throw invalidArgument(`use either 'architectures' or 'archMap'`);
  let architectures: string[] | undefined = p.architectures;
  if (p.archMap) {
    const native = ARCH_MAP[arch]?.[0];
    const m = p.archMap.find((a) => a.architecture === native);
    if (m) architectures = [m.architecture, ...(m.subArchitectures ?? [])];
  }
  const rules: Rule[] = [];
  for (const s of p.syscalls ?? []) {
    const names = s.names ?? (s.name ? [s.name] : []);
    if (names.length === 0) continue;
    rules.push({
      names,
      action: s.action ?? 'SCMP_ACT_ALLOW',
      errnoRet: s.errnoRet,
      args: s.args ?? undefined,
      arches: s.includes?.arches?.length ? s.includes.arches : undefined,
      caps: s.includes?.caps?.length ? s.includes.caps : undefined,
      notArches: s.excludes?.arches,
      notCaps: s.excludes?.caps,
    });
  }
  const out = compile(rules, p.defaultErrnoRet, arch, new Set(caps), architectures, p.defaultAction);
  if (p.flags?.length) out.flags = p.flags;
  return out;
}
