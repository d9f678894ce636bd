//! Seccomp allowlist for candidate processes.
//!
//! # Threat
//!
//! The exam candidate is the attacker. Inside the sandbox they are root of
//! their own user namespace, so every capability check that is scoped to a
//! namespace the candidate owns succeeds. What stands between them and the
//! host kernel is (a) the capability bounding set (see [`super::caps`]), (b)
//! the user namespace (without one, `PR_SET_NO_NEW_PRIVS` as well), and (c) this filter, which shrinks the reachable
//! kernel surface to the system calls a normal interactive Linux session
//! needs. Most container escapes and local privilege escalations of recent
//! years start with a system call that an exam never needs: `io_uring_*`,
//! `bpf`, `userfaultfd`, `keyctl`, the (new) mount API, `unshare`/`setns` or
//! `clone` with namespace flags (nested user namespaces re-grant every
//! capability), `perf_event_open`, … These are all refused.
//!
//! # Shape of the filter
//!
//! * It is an **allowlist by syscall number**: anything not listed answers
//!   `EPERM` ([`SeccompAction::Errno`]). New kernel system calls are therefore
//!   refused until someone reviews and adds them.
//! * Numbers greater than [`LAST_REVIEWED_SYSCALL`] answer `ENOSYS` instead of
//!   `EPERM` (the same trick runc uses): libraries probe brand-new system calls
//!   and only fall back to the old path on `ENOSYS`. It is a refusal either
//!   way.
//! * `clone3` answers `ENOSYS`, so glibc (≥ 2.34 uses `clone3` for
//!   `pthread_create`/`posix_spawn`) falls back to `clone`. `clone3` passes its
//!   flags in memory, which a seccomp filter cannot inspect, so it cannot be
//!   allowed safely.
//! * `clone` is allowed only when none of the `CLONE_NEW*` namespace flags
//!   are set (64-bit masked compare of arg 0).
//! * `ioctl` is allowed except for `TIOCSTI` (push characters into another
//!   process' terminal input) and `TIOCLINUX` (which has a similar selection
//!   paste sub-command). The kernel only looks at the low 32 bits of the
//!   request, so the comparison is done on the low 32 bits: setting high bits
//!   does not bypass it.
//! * `socket` is allowed for `AF_UNIX`, `AF_INET`, `AF_INET6` and
//!   `AF_NETLINK` only (netlink is needed by `ip`, `ss`, glibc's
//!   `getaddrinfo(AI_ADDRCONFIG)` and by libaudit in `su`/`useradd`; the
//!   network namespace is private and `CAP_NET_ADMIN` is dropped). All the
//!   rarely used protocol families (`AF_ALG`, `AF_VSOCK`, `AF_PACKET`, TIPC,
//!   RDS, …), a traditional source of kernel bugs, are refused.
//!   `socketpair` is restricted to `AF_UNIX` because it creates sockets of the
//!   given family too.
//! * `personality` is allowed only for the values Docker allows: the query
//!   `0xffffffff` and `PER_LINUX` (0), `PER_LINUX32` (8), `UNAME26`
//!   (0x20000) and `PER_LINUX32|UNAME26` (0x20008), plus `ADDR_NO_RANDOMIZE`
//!   (0x40000, and with `PER_LINUX32`), which debuggers and `setarch -R` use.
//!   `READ_IMPLIES_EXEC` stays out.
//! * `ptrace`, `process_vm_readv/writev` and `chroot` are allowed: `strace`,
//!   `gdb` and sshd's privilege separation need them. The kernel's own checks
//!   keep them to the candidate's own processes: init is not dumpable and its
//!   memory belongs to the host's user namespace, and `CAP_SYS_PTRACE` is not
//!   in the candidate's set.
//!
//! # Architectures
//!
//! The filter is built for the architecture the crate is compiled for
//! (x86_64; aarch64 is supported as well). seccompiler prepends an
//! architecture check that **kills the process** when the syscall comes from
//! another ABI, e.g. i386 system calls made with `int 0x80` from a 64-bit
//! x86 process (those have different numbers, so an allowlist for x86_64
//! numbers would be meaningless for them). The x32 ABI shares
//! `AUDIT_ARCH_X86_64` but sets bit `0x4000_0000` in the syscall number; such
//! numbers match no entry of the list and are above
//! [`LAST_REVIEWED_SYSCALL`], so they get `ENOSYS`.
//!
//! # Deliberately refused (Docker allows some of these)
//!
//! `io_uring_*`, `name_to_handle_at` (the counterpart of `open_by_handle_at`),
//! `adjtimex`/`clock_adjtime`, `mount` and `pivot_root`, `sethostname`,
//! `setdomainname`, `modify_ldt`, `set_thread_area`, `memfd_secret`, NUMA
//! policy calls, `fanotify_*`, `quotactl*`, `pidfd_getfd`, `kcmp`,
//! `process_madvise`. `seccomp` and `landlock_*` stay allowed: they can only
//! restrict the caller further.
//!
//! # Usage
//!
//! Build the program once with [`candidate_filter`] (this allocates), then in
//! the forked child call [`apply_keeping_setuid`] while it still holds
//! `CAP_SYS_ADMIN` in its user namespace (then drop capabilities), or, without
//! a user namespace, [`apply`] (which sets `PR_SET_NO_NEW_PRIVS`) right before
//! `execve`. Neither allocates.

use std::collections::BTreeMap;
use std::io;

use seccompiler::{
    sock_filter, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    TargetArch,
};

pub use seccompiler::BpfProgram;

/// Errors from building or installing the candidate seccomp filter.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// seccompiler refused the rule set (a bug in this module, not a runtime condition).
    #[error("building the seccomp filter failed: {0}")]
    Build(#[from] seccompiler::BackendError),
    /// The crate was compiled for an architecture this module has no syscall list for.
    #[error("no seccomp allowlist for target architecture {0}")]
    UnsupportedArch(&'static str),
    /// `apply` was handed an empty program.
    #[error("refusing to install an empty seccomp program")]
    EmptyProgram,
    /// The program is longer than the kernel accepts (`BPF_MAXINSNS`).
    #[error("seccomp program has {0} instructions, the kernel accepts at most {BPF_MAXINSNS}")]
    ProgramTooLong(usize),
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS) failed: {0}")]
    NoNewPrivs(#[source] io::Error),
    /// The `seccomp(SECCOMP_SET_MODE_FILTER)` system call failed.
    #[error("installing the seccomp filter failed: {0}")]
    Install(#[source] io::Error),
}

/// Highest syscall number that was reviewed when this list was written
/// (`file_setattr`, Linux 6.17). Larger numbers answer `ENOSYS`, see the
/// module documentation. Since Linux 5.1 new system calls get the same number
/// on every architecture, so this bound is shared by x86_64 and aarch64.
pub const LAST_REVIEWED_SYSCALL: u32 = 469;

/// Largest BPF program the kernel accepts (`BPF_MAXINSNS`).
const BPF_MAXINSNS: usize = 4096;

/// `TIOCSTI`: fake terminal input. Same value on x86_64 and aarch64 (asm-generic).
const TIOCSTI: u64 = 0x5412;
/// `TIOCLINUX`: virtual console sub-commands (selection paste, …).
const TIOCLINUX: u64 = 0x541C;

/// Every `CLONE_NEW*` flag; `clone` is only allowed when none is set.
const CLONE_NAMESPACE_FLAGS: u64 = (libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWTIME) as u64;

/// Socket families candidates may create (arg 0 of `socket`).
const ALLOWED_SOCKET_FAMILIES: &[libc::c_int] = &[libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK];

/// Socket families a `system` environment gets on top of those.
pub const SYSTEM_SOCKET_FAMILIES: &[libc::c_int] = &[libc::AF_PACKET];

/// `personality(2)` arguments that are allowed (same set as Docker's default profile).
const ALLOWED_PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x2_0000, 0x2_0008, 0x4_0000, 0x4_0008, 0xffff_ffff];

/// Syscall numbers: libc's `SYS_*` constants plus a few newer ones libc does not know yet.
#[allow(non_upper_case_globals)]
mod nr {
    pub(super) use libc::*;

    /// `map_shadow_stack` (Linux 6.6); glibc uses it when x86 shadow stacks are enabled.
    #[cfg(target_arch = "x86_64")]
    pub(super) const SYS_map_shadow_stack: libc::c_long = 453;
    /// `io_pgetevents` (Linux 4.18), missing from libc's x86_64/aarch64 tables.
    #[cfg(target_arch = "x86_64")]
    pub(super) const SYS_io_pgetevents: libc::c_long = 333;
    /// `io_pgetevents` (Linux 4.18), asm-generic number.
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_io_pgetevents: libc::c_long = 292;
    // arm64 has these (asm-generic with __ARCH_WANT_RENAMEAT and
    // __ARCH_WANT_SET_GET_RLIMIT), but libc's glibc table for aarch64 lacks them.
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_renameat: libc::c_long = 38;
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_getrlimit: libc::c_long = 163;
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_setrlimit: libc::c_long = 164;
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_sync_file_range: libc::c_long = 84;
    /// `fchmodat2` (Linux 6.6), same number on every architecture.
    #[cfg(target_arch = "aarch64")]
    pub(super) const SYS_fchmodat2: libc::c_long = 452;
}

/// `"SYS_read"` → `"read"`, evaluated at compile time.
const fn strip_sys_prefix(name: &'static str) -> &'static str {
    match name.as_bytes() {
        [b'S', b'Y', b'S', b'_', rest @ ..] => match core::str::from_utf8(rest) {
            Ok(stripped) => stripped,
            Err(_) => name,
        },
        _ => name,
    }
}

/// Defines the unconditionally allowed syscalls: the common list plus the
/// architecture specific ones passed as arguments.
macro_rules! unconditional_allowlist {
    ($($arch_specific:ident),* $(,)?) => {
        define_allowlist!(
            // --- file descriptors, files, directories ---
            SYS_read, SYS_write, SYS_readv, SYS_writev, SYS_pread64, SYS_pwrite64,
            SYS_preadv, SYS_pwritev, SYS_preadv2, SYS_pwritev2, SYS_lseek,
            SYS_close, SYS_close_range, SYS_openat, SYS_openat2,
            SYS_fstat, SYS_newfstatat, SYS_statx, SYS_statfs, SYS_fstatfs,
            SYS_faccessat, SYS_faccessat2, SYS_fcntl, SYS_flock,
            SYS_fsync, SYS_fdatasync, SYS_sync, SYS_syncfs, SYS_sync_file_range,
            SYS_truncate, SYS_ftruncate, SYS_fallocate, SYS_fadvise64, SYS_readahead,
            SYS_getdents64, SYS_getcwd, SYS_chdir, SYS_fchdir,
            SYS_mkdirat, SYS_mknodat, SYS_linkat, SYS_symlinkat, SYS_unlinkat,
            SYS_renameat, SYS_renameat2, SYS_readlinkat,
            SYS_fchmod, SYS_fchmodat, SYS_fchmodat2, SYS_fchown, SYS_fchownat,
            SYS_umask, SYS_utimensat,
            SYS_setxattr, SYS_lsetxattr, SYS_fsetxattr,
            SYS_getxattr, SYS_lgetxattr, SYS_fgetxattr,
            SYS_listxattr, SYS_llistxattr, SYS_flistxattr,
            SYS_removexattr, SYS_lremovexattr, SYS_fremovexattr,
            SYS_dup, SYS_dup3, SYS_pipe2,
            SYS_sendfile, SYS_splice, SYS_tee, SYS_vmsplice, SYS_copy_file_range,
            SYS_inotify_init1, SYS_inotify_add_watch, SYS_inotify_rm_watch,
            SYS_memfd_create, SYS_eventfd2, SYS_signalfd4,
            SYS_timerfd_create, SYS_timerfd_settime, SYS_timerfd_gettime,
            SYS_epoll_create1, SYS_epoll_ctl, SYS_epoll_pwait, SYS_epoll_pwait2,
            SYS_ppoll, SYS_pselect6,
            // --- legacy (libaio) asynchronous I/O; io_uring is refused ---
            SYS_io_setup, SYS_io_destroy, SYS_io_submit, SYS_io_cancel,
            SYS_io_getevents, SYS_io_pgetevents,
            // --- memory ---
            SYS_brk, SYS_mmap, SYS_munmap, SYS_mprotect, SYS_mremap, SYS_madvise,
            SYS_msync, SYS_mincore, SYS_mlock, SYS_mlock2, SYS_munlock,
            SYS_mlockall, SYS_munlockall, SYS_membarrier,
            SYS_pkey_alloc, SYS_pkey_free, SYS_pkey_mprotect, SYS_mseal,
            // --- processes, threads, credentials ---
            SYS_execve, SYS_execveat, SYS_exit, SYS_exit_group, SYS_wait4, SYS_waitid,
            SYS_kill, SYS_tkill, SYS_tgkill, SYS_pidfd_open, SYS_pidfd_send_signal,
            SYS_getpid, SYS_getppid, SYS_gettid,
            SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
            SYS_getresuid, SYS_getresgid, SYS_getgroups,
            SYS_setgid, SYS_setregid, SYS_setresgid, SYS_setgroups, SYS_setfsgid,
            SYS_getpgid, SYS_setpgid, SYS_getsid, SYS_setsid,
            SYS_getpriority, SYS_setpriority, SYS_ioprio_get, SYS_ioprio_set,
            SYS_capget, SYS_capset, SYS_prctl,
            // Debuggers and tracers (strace, gdb): the kernel's own checks keep them to the candidate's processes
            // (init is not dumpable, its memory belongs to the host's user namespace); sshd's privilege separation.
            SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev, SYS_chroot,
            SYS_set_tid_address, SYS_set_robust_list, SYS_get_robust_list,
            SYS_rseq, SYS_futex, SYS_futex_waitv, SYS_restart_syscall,
            SYS_sched_yield, SYS_sched_getaffinity, SYS_sched_setaffinity,
            SYS_sched_getparam, SYS_sched_setparam,
            SYS_sched_getscheduler, SYS_sched_setscheduler,
            SYS_sched_get_priority_max, SYS_sched_get_priority_min,
            SYS_sched_rr_get_interval, SYS_sched_getattr, SYS_sched_setattr, SYS_getcpu,
            SYS_getrlimit, SYS_setrlimit, SYS_prlimit64, SYS_getrusage, SYS_times,
            SYS_uname, SYS_sysinfo, SYS_getrandom,
            SYS_seccomp, SYS_landlock_create_ruleset, SYS_landlock_add_rule,
            SYS_landlock_restrict_self,
            // --- signals and timers ---
            SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_rt_sigreturn, SYS_rt_sigpending,
            SYS_rt_sigtimedwait, SYS_rt_sigsuspend, SYS_rt_sigqueueinfo,
            SYS_rt_tgsigqueueinfo, SYS_sigaltstack,
            SYS_getitimer, SYS_setitimer,
            SYS_timer_create, SYS_timer_settime, SYS_timer_gettime,
            SYS_timer_getoverrun, SYS_timer_delete,
            SYS_nanosleep, SYS_clock_nanosleep, SYS_clock_gettime, SYS_clock_getres,
            SYS_gettimeofday,
            // --- sockets (socket/socketpair are conditional) ---
            SYS_bind, SYS_listen, SYS_accept, SYS_accept4, SYS_connect,
            SYS_getsockname, SYS_getpeername, SYS_getsockopt, SYS_setsockopt,
            SYS_sendto, SYS_recvfrom, SYS_sendmsg, SYS_recvmsg,
            SYS_sendmmsg, SYS_recvmmsg, SYS_shutdown,
            // --- SysV IPC and POSIX message queues (own IPC namespace) ---
            SYS_shmget, SYS_shmat, SYS_shmdt, SYS_shmctl,
            SYS_semget, SYS_semop, SYS_semtimedop, SYS_semctl,
            SYS_msgget, SYS_msgsnd, SYS_msgrcv, SYS_msgctl,
            SYS_mq_open, SYS_mq_unlink, SYS_mq_timedsend, SYS_mq_timedreceive,
            SYS_mq_notify, SYS_mq_getsetattr,
            $($arch_specific),*
        );
    };
}

/// Emits `UNCONDITIONAL_NUMBERS` and `UNCONDITIONAL_NAMES` from one list of `SYS_*` names.
macro_rules! define_allowlist {
    ($($sys:ident),* $(,)?) => {
        /// Syscall numbers allowed whatever their arguments.
        const UNCONDITIONAL_NUMBERS: &[libc::c_long] = &[$(nr::$sys),*];
        /// Names of [`UNCONDITIONAL_NUMBERS`], same order.
        const UNCONDITIONAL_NAMES: &[&str] = &[$(strip_sys_prefix(stringify!($sys))),*];
    };
}

#[cfg(target_arch = "x86_64")]
#[rustfmt::skip]
unconditional_allowlist!(
    // Legacy x86_64 entry points that aarch64 never had; glibc and static
    // binaries (Go, musl) still use many of them.
    SYS_open, SYS_creat, SYS_stat, SYS_lstat, SYS_access, SYS_pipe, SYS_dup2,
    SYS_poll, SYS_select, SYS_epoll_create, SYS_epoll_wait, SYS_getdents,
    SYS_mkdir, SYS_rmdir, SYS_link, SYS_unlink, SYS_symlink, SYS_rename,
    SYS_readlink, SYS_chmod, SYS_chown, SYS_lchown, SYS_mknod,
    SYS_utime, SYS_utimes, SYS_futimesat,
    SYS_inotify_init, SYS_eventfd, SYS_signalfd, SYS_alarm, SYS_pause,
    SYS_getpgrp, SYS_time, SYS_fork, SYS_vfork, SYS_arch_prctl,
    SYS_map_shadow_stack,
);

#[cfg(target_arch = "aarch64")]
unconditional_allowlist!();

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
define_allowlist!();

/// Syscalls allowed only with certain arguments (see [`conditional_rules`]).
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const CONDITIONAL_NAMES: &[&str] =
    &["clone", "ioctl", "personality", "socket", "socketpair", "setuid", "setreuid", "setresuid", "setfsuid"];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const CONDITIONAL_NAMES: &[&str] = &[];

const ALLOWED_COUNT: usize = UNCONDITIONAL_NAMES.len() + CONDITIONAL_NAMES.len();

/// All allowed names, built at compile time (no allocation at run time).
static ALLOWED_NAMES: [&str; ALLOWED_COUNT] = concat_names(UNCONDITIONAL_NAMES, CONDITIONAL_NAMES);

const fn concat_names<const N: usize>(first: &[&'static str], second: &[&'static str]) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < first.len() {
        out[i] = first[i];
        i += 1;
    }
    let mut j = 0;
    while j < second.len() {
        out[i + j] = second[j];
        j += 1;
    }
    out
}

/// Names of the system calls the candidate filter allows, either
/// unconditionally or with argument conditions (`clone`, `ioctl`,
/// `personality`, `socket`, `socketpair`, and the uid setters, which may not name
/// [`RESERVED_CHECK_ID`]). `clone3` is not in the list: it
/// answers `ENOSYS`.
pub fn allowed_syscall_names() -> &'static [&'static str] {
    &ALLOWED_NAMES
}

/// The uid (and gid) that grading's checks run as inside an environment's user namespace
/// (`shim/trusted`): mapped like every uid below 65536, but no candidate process may take it. Not 65535: systemd and
/// D-Bus refuse that one as the 16-bit `(uid_t) -1`, and a check asks a machine's services (`systemctl is-active`).
/// Not 65534 (`nobody`, which a candidate's processes may run as) nor in systemd's dynamic range (61184..=65519).
pub const RESERVED_CHECK_ID: u32 = 65533;

/// One condition on a syscall argument.
fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, SeccompError> {
    Ok(SeccompCondition::new(arg, len, op, value)?)
}

/// A rule matching when arg `arg` (low 32 bits) equals one of `values`:
/// one rule per value, rules of a syscall are ORed.
fn dword_one_of(arg: u8, values: &[u64]) -> Result<Vec<SeccompRule>, SeccompError> {
    values
        .iter()
        .map(|&v| Ok(SeccompRule::new(vec![cond(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, v)?])?))
        .collect()
}

/// The argument-filtered syscalls, keyed by number.
fn conditional_rules() -> Result<Vec<(libc::c_long, Vec<SeccompRule>)>, SeccompError> {
    // clone(flags, ...): no namespace flag may be set. Compared on all 64 bits.
    let clone = vec![SeccompRule::new(vec![cond(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::MaskedEq(CLONE_NAMESPACE_FLAGS),
        0,
    )?])?];
    // ioctl(fd, request, ...): the kernel truncates request to 32 bits, so compare
    // the low 32 bits. Conditions within one rule are ANDed.
    let ioctl = vec![SeccompRule::new(vec![
        cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, TIOCSTI)?,
        cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, TIOCLINUX)?,
    ])?];
    // The uid setters: any uid but the one grading's checks run as, so that no candidate process ever shares the
    // checks' uid (which would let a check reach into it through /proc). Conditions within one rule are ANDed.
    let not_reserved = |args: &[u8]| -> Result<Vec<SeccompRule>, SeccompError> {
        let conds = args
            .iter()
            .map(|&a| cond(a, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, u64::from(RESERVED_CHECK_ID)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(vec![SeccompRule::new(conds)?])
    };
    let families: Vec<u64> = ALLOWED_SOCKET_FAMILIES.iter().filter_map(|&f| u64::try_from(f).ok()).collect();
    let unix = u64::try_from(libc::AF_UNIX).map_or_else(|_| Vec::new(), |f| vec![f]);
    Ok(vec![
        (libc::SYS_clone, clone),
        (libc::SYS_ioctl, ioctl),
        (libc::SYS_personality, dword_one_of(0, ALLOWED_PERSONALITIES)?),
        (libc::SYS_socket, dword_one_of(0, &families)?),
        (libc::SYS_socketpair, dword_one_of(0, &unix)?),
        (libc::SYS_setuid, not_reserved(&[0])?),
        (libc::SYS_setfsuid, not_reserved(&[0])?),
        (libc::SYS_setreuid, not_reserved(&[0, 1])?),
        (libc::SYS_setresuid, not_reserved(&[0, 1, 2])?),
    ])
}

#[cfg(target_arch = "x86_64")]
fn target() -> Result<(TargetArch, u32), SeccompError> {
    Ok((TargetArch::x86_64, AUDIT_ARCH_X86_64))
}
#[cfg(target_arch = "aarch64")]
fn target() -> Result<(TargetArch, u32), SeccompError> {
    Ok((TargetArch::aarch64, AUDIT_ARCH_AARCH64))
}
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn target() -> Result<(TargetArch, u32), SeccompError> {
    Err(SeccompError::UnsupportedArch(std::env::consts::ARCH))
}

/// `EM_X86_64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH_X86_64: u32 = 62 | 0x8000_0000 | 0x4000_0000;
/// `EM_AARCH64 | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE`.
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH_AARCH64: u32 = 183 | 0x8000_0000 | 0x4000_0000;

// Classic BPF opcodes (linux/bpf_common.h).
/// `BPF_LD | BPF_W | BPF_ABS`
const BPF_LD_W_ABS: u16 = 0x20;
/// `BPF_JMP | BPF_JEQ | BPF_K`
const BPF_JMP_JEQ_K: u16 = 0x05 | 0x10;
/// `BPF_JMP | BPF_JGT | BPF_K` (unsigned compare)
const BPF_JMP_JGT_K: u16 = 0x05 | 0x20;
/// `BPF_RET | BPF_K`
const BPF_RET_K: u16 = 0x06;
// Offsets in `struct seccomp_data`.
const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

/// Hand-written prologue placed before seccompiler's program. seccompiler has
/// a single match action per filter (Allow), so the two `ENOSYS` answers are
/// done here. For a foreign architecture it jumps straight to seccompiler's
/// own arch check, which kills the process.
fn enosys_prologue(audit_arch: u32) -> [sock_filter; 6] {
    let enosys = u32::from(SeccompAction::Errno(libc::ENOSYS as u32));
    // Relative jumps: target = index + 1 + jt/jf. Index 6 is seccompiler's
    // program (its arch check, the allowlist, default EPERM).
    [
        // 0: A = arch
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_ARCH),
        // 1: foreign arch -> 6 (seccompiler kills it)
        insn(BPF_JMP_JEQ_K, 0, 4, audit_arch),
        // 2: A = syscall number
        insn(BPF_LD_W_ABS, 0, 0, SECCOMP_DATA_NR),
        // 3: clone3 -> 5
        insn(BPF_JMP_JEQ_K, 1, 0, libc::SYS_clone3 as u32),
        // 4: above LAST_REVIEWED_SYSCALL -> 5, else -> 6
        insn(BPF_JMP_JGT_K, 0, 1, LAST_REVIEWED_SYSCALL),
        // 5: ENOSYS
        insn(BPF_RET_K, 0, 0, enosys),
    ]
}

/// Builds the allowlist filter for candidate processes (for the architecture
/// the crate is compiled for). Call once, before forking; the result is
/// installed with [`apply`].
pub fn candidate_filter() -> Result<BpfProgram, SeccompError> {
    filter_for(false)
}

/// The filter of a `system` environment: the candidate allowlist plus what a service manager and an administrator
/// need inside their own user namespace ([`SYSTEM_EXTRA`]: the mount API, `unshare`/`setns` and `clone` with
/// namespace flags but `CLONE_NEWUSER`, `sethostname`, `name_to_handle_at`). Everything [`candidate_filter`] refuses beyond that stays
/// refused: modules, kexec, `bpf`, `perf_event_open`, `io_uring_*`, `keyctl`, `open_by_handle_at`, the clock,
/// `syslog`, `reboot`, `swapon`, TIOCSTI and TIOCLINUX, foreign ABIs.
pub fn system_filter() -> Result<BpfProgram, SeccompError> {
    filter_for(true)
}

/// System calls a `system` environment gets on top of the candidate allowlist.
pub const SYSTEM_EXTRA: &[(&str, libc::c_long)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("sethostname", libc::SYS_sethostname),
    ("setdomainname", libc::SYS_setdomainname),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
];

fn filter_for(system: bool) -> Result<BpfProgram, SeccompError> {
    let (arch, audit_arch) = target()?;

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = UNCONDITIONAL_NUMBERS.iter().map(|&nr| (nr, Vec::new())).collect();
    for (nr, chain) in conditional_rules()? {
        rules.insert(nr, chain);
    }
    if system {
        for (_, nr) in SYSTEM_EXTRA {
            rules.insert(*nr, Vec::new());
        }
        // clone and unshare with namespace flags (services' sandboxes: PrivateTmp, PrivateNetwork,
        // ProtectHostname), but never a user namespace: in one, the machine's root could map any uid of its own,
        // the checks' reserved uid included (a uid_map write is no uid setter), and reach into a running check.
        let no_new_user = || -> Result<Vec<SeccompRule>, SeccompError> {
            Ok(vec![SeccompRule::new(vec![cond(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(libc::CLONE_NEWUSER as u64),
                0,
            )?])?])
        };
        rules.insert(libc::SYS_clone, no_new_user()?);
        rules.insert(libc::SYS_unshare, no_new_user()?);
        // Packet sockets, on the machine's own interfaces only (its network namespace): systemd-networkd's LLDP
        // client, tcpdump, a DHCP client.
        let families: Vec<u64> = ALLOWED_SOCKET_FAMILIES
            .iter()
            .chain(SYSTEM_SOCKET_FAMILIES)
            .filter_map(|&f| u64::try_from(f).ok())
            .collect();
        rules.insert(libc::SYS_socket, dword_one_of(0, &families)?);
    }

    let filter = SeccompFilter::new(rules, SeccompAction::Errno(libc::EPERM as u32), SeccompAction::Allow, arch)?;
    let body = BpfProgram::try_from(filter)?;

    let prologue = enosys_prologue(audit_arch);
    let mut program = Vec::with_capacity(prologue.len() + body.len());
    program.extend(prologue);
    program.extend(body);
    if program.len() > BPF_MAXINSNS {
        return Err(SeccompError::ProgramTooLong(program.len()));
    }
    Ok(program)
}

/// Installs `program` on the calling thread. Sets `PR_SET_NO_NEW_PRIVS`
/// first (required for an unprivileged filter install; idempotent).
///
/// Meant to run in a freshly forked child right before `execve`: it makes
/// two system calls and neither allocates nor takes locks. Errors carry the
/// raw `errno` only (no allocation either).
pub fn apply(program: &BpfProgram) -> Result<(), SeccompError> {
    install(program, true)
}

/// Installs `program` on the calling thread **without** `PR_SET_NO_NEW_PRIVS`, so that set-user-ID programs and file
/// capabilities still work after it (within the bounding set). The kernel allows that only to a caller holding
/// `CAP_SYS_ADMIN` in its user namespace: call it before dropping capabilities. For candidate processes in an
/// environment with a user namespace, where the base is idmapped and a set-user-ID file can grant no more than root
/// of that namespace. Raw calls only.
pub fn apply_keeping_setuid(program: &BpfProgram) -> Result<(), SeccompError> {
    install(program, false)
}

fn install(program: &BpfProgram, no_new_privs: bool) -> Result<(), SeccompError> {
    if program.is_empty() {
        return Err(SeccompError::EmptyProgram);
    }
    let len = match u16::try_from(program.len()) {
        Ok(len) if program.len() <= BPF_MAXINSNS => len,
        _ => return Err(SeccompError::ProgramTooLong(program.len())),
    };

    // prctl is variadic and glibc reads `unsigned long`s; the kernel rejects
    // non-zero unused arguments for this option, so pass proper zeros.
    let (one, zero): (libc::c_ulong, libc::c_ulong) = (1, 0);
    if no_new_privs {
        // SAFETY: plain prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, one, zero, zero, zero) };
        if rc != 0 {
            return Err(SeccompError::NoNewPrivs(io::Error::last_os_error()));
        }
    }

    let fprog = libc::sock_fprog {
        len,
        // seccompiler's `sock_filter` is `#[repr(C)]` with the same layout as the
        // kernel's `struct sock_filter`; the kernel only reads through this pointer.
        filter: program.as_ptr().cast::<libc::sock_filter>().cast_mut(),
    };
    // SAFETY: `fprog` points to `len` valid instructions that outlive the call;
    // the kernel copies the program.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::c_ulong::from(libc::SECCOMP_SET_MODE_FILTER),
            0 as libc::c_ulong,
            &fprog as *const libc::sock_fprog,
        )
    };
    if rc != 0 {
        return Err(SeccompError::Install(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux", target_arch = "x86_64"))]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::ptr;

    /// Syscalls that must never be in the allowlist (name, number if libc has it).
    const REFUSED: &[(&str, Option<libc::c_long>)] = &[
        ("mount", Some(libc::SYS_mount)),
        ("umount2", Some(libc::SYS_umount2)),
        ("pivot_root", Some(libc::SYS_pivot_root)),
        ("open_tree", Some(libc::SYS_open_tree)),
        ("move_mount", Some(libc::SYS_move_mount)),
        ("fsopen", Some(libc::SYS_fsopen)),
        ("fsconfig", Some(libc::SYS_fsconfig)),
        ("fsmount", Some(libc::SYS_fsmount)),
        ("fspick", Some(libc::SYS_fspick)),
        ("mount_setattr", Some(libc::SYS_mount_setattr)),
        ("io_uring_setup", Some(libc::SYS_io_uring_setup)),
        ("io_uring_enter", Some(libc::SYS_io_uring_enter)),
        ("io_uring_register", Some(libc::SYS_io_uring_register)),
        ("bpf", Some(libc::SYS_bpf)),
        ("perf_event_open", Some(libc::SYS_perf_event_open)),
        ("kexec_load", Some(libc::SYS_kexec_load)),
        ("kexec_file_load", Some(libc::SYS_kexec_file_load)),
        ("keyctl", Some(libc::SYS_keyctl)),
        ("add_key", Some(libc::SYS_add_key)),
        ("request_key", Some(libc::SYS_request_key)),
        ("init_module", Some(libc::SYS_init_module)),
        ("finit_module", Some(libc::SYS_finit_module)),
        ("delete_module", Some(libc::SYS_delete_module)),
        ("userfaultfd", Some(libc::SYS_userfaultfd)),
        ("reboot", Some(libc::SYS_reboot)),
        ("swapon", Some(libc::SYS_swapon)),
        ("swapoff", Some(libc::SYS_swapoff)),
        ("acct", Some(libc::SYS_acct)),
        ("settimeofday", Some(libc::SYS_settimeofday)),
        ("clock_settime", Some(libc::SYS_clock_settime)),
        ("clock_adjtime", Some(libc::SYS_clock_adjtime)),
        ("adjtimex", Some(libc::SYS_adjtimex)),
        ("syslog", Some(libc::SYS_syslog)),
        ("quotactl", Some(libc::SYS_quotactl)),
        ("quotactl_fd", Some(libc::SYS_quotactl_fd)),
        ("lookup_dcookie", Some(libc::SYS_lookup_dcookie)),
        ("name_to_handle_at", Some(libc::SYS_name_to_handle_at)),
        ("open_by_handle_at", Some(libc::SYS_open_by_handle_at)),
        ("iopl", Some(libc::SYS_iopl)),
        ("ioperm", Some(libc::SYS_ioperm)),
        ("vhangup", Some(libc::SYS_vhangup)),
        ("nfsservctl", Some(libc::SYS_nfsservctl)),
        ("uselib", Some(libc::SYS_uselib)),
        ("create_module", Some(174)),
        ("get_kernel_syms", Some(177)),
        ("query_module", Some(178)),
        ("kcmp", Some(libc::SYS_kcmp)),
        ("fanotify_init", Some(libc::SYS_fanotify_init)),
        ("fanotify_mark", Some(libc::SYS_fanotify_mark)),
        ("setdomainname", Some(libc::SYS_setdomainname)),
        ("sethostname", Some(libc::SYS_sethostname)),
        ("statmount", None),
        ("listmount", None),
        ("unshare", Some(libc::SYS_unshare)),
        ("setns", Some(libc::SYS_setns)),
        ("clone3", Some(libc::SYS_clone3)),
        ("modify_ldt", Some(libc::SYS_modify_ldt)),
        ("pidfd_getfd", Some(libc::SYS_pidfd_getfd)),
        ("process_madvise", Some(libc::SYS_process_madvise)),
        ("memfd_secret", Some(libc::SYS_memfd_secret)),
        ("set_mempolicy", Some(libc::SYS_set_mempolicy)),
        ("mbind", Some(libc::SYS_mbind)),
        ("migrate_pages", Some(libc::SYS_migrate_pages)),
        ("move_pages", Some(libc::SYS_move_pages)),
        ("_sysctl", Some(libc::SYS__sysctl)),
        ("sysfs", Some(libc::SYS_sysfs)),
        ("ustat", Some(libc::SYS_ustat)),
        ("set_thread_area", Some(libc::SYS_set_thread_area)),
    ];
    /// statmount / listmount (Linux 6.8), not in libc yet.
    const SYS_STATMOUNT: libc::c_long = 457;
    const SYS_LISTMOUNT: libc::c_long = 458;

    #[test]
    fn filter_builds() {
        let program = candidate_filter().expect("filter builds");
        assert!(program.len() > 100 && program.len() <= BPF_MAXINSNS);
        assert_eq!(program[..6], enosys_prologue(AUDIT_ARCH_X86_64));
        // seccompiler's own arch check follows the prologue.
        assert_eq!(program[6].k, SECCOMP_DATA_ARCH);
        assert_eq!(program[7].k, AUDIT_ARCH_X86_64);
    }

    #[test]
    fn refused_syscalls_are_not_in_the_allowlist() {
        let names = allowed_syscall_names();
        let conditional: Vec<libc::c_long> =
            conditional_rules().expect("rules").into_iter().map(|(nr, _)| nr).collect();
        for (name, number) in REFUSED {
            assert!(!names.contains(name), "{name} must not be allowed");
            if let Some(number) = number {
                assert!(!UNCONDITIONAL_NUMBERS.contains(number), "{name} ({number}) allowed");
                assert!(!conditional.contains(number), "{name} ({number}) conditional");
            }
        }
        for number in [SYS_STATMOUNT, SYS_LISTMOUNT] {
            assert!(!UNCONDITIONAL_NUMBERS.contains(&number));
        }
    }

    #[test]
    fn allowlist_is_consistent() {
        let names = allowed_syscall_names();
        assert_eq!(names.len(), UNCONDITIONAL_NUMBERS.len() + CONDITIONAL_NAMES.len());
        assert_eq!(UNCONDITIONAL_NAMES.len(), UNCONDITIONAL_NUMBERS.len());
        let mut sorted = names.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "duplicate names");
        let mut numbers = UNCONDITIONAL_NUMBERS.to_vec();
        let conditional = conditional_rules().expect("rules");
        numbers.extend(conditional.iter().map(|(nr, _)| *nr));
        numbers.sort_unstable();
        numbers.dedup();
        assert_eq!(numbers.len(), names.len(), "duplicate numbers");
        assert!(numbers.iter().all(|&n| n <= libc::c_long::from(LAST_REVIEWED_SYSCALL)));
        for expected in [
            "read",
            "execve",
            "fork",
            "vfork",
            "wait4",
            "futex",
            "rseq",
            "statx",
            "getrandom",
            "setresuid",
            "setgroups",
            "capset",
            "memfd_create",
            "openat2",
            "close_range",
            "faccessat2",
            "fchmodat2",
            "pidfd_open",
            "shmget",
            "mq_open",
            "getcpu",
            "membarrier",
        ] {
            assert!(names.contains(&expected), "{expected} missing");
        }
        assert_eq!(strip_sys_prefix("SYS_read"), "read");
        #[allow(clippy::unnecessary_cast)]
        {
            assert_eq!(TIOCSTI, libc::TIOCSTI as u64);
            assert_eq!(TIOCLINUX, libc::TIOCLINUX as u64);
        }
    }

    /// Forks; the child runs `f` and `_exit`s with its result. Returns the
    /// child's exit code (or 1000 + signal number if it was killed).
    /// `f` must stick to async-signal-safe calls (the test binary is threaded).
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` (raw syscalls) and `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = f();
            // SAFETY: terminate the child without running destructors or atexit hooks.
            unsafe { libc::_exit(code) };
        }
        wait_for(pid)
    }

    fn wait_for(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(rc, pid, "waitpid");
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            1000 + libc::WTERMSIG(status)
        }
    }

    fn errno() -> i32 {
        io::Error::last_os_error().raw_os_error().unwrap_or(0)
    }

    /// `rc == -1 && errno == want`.
    fn fails_with(rc: libc::c_long, want: i32) -> bool {
        rc == -1 && errno() == want
    }

    /// The checks run inside the filtered child. Returns 0 or the number of the
    /// first failing check. Raw syscalls only; every call is harmless even if
    /// the filter were missing (bad paths/arguments make them fail differently).
    fn filtered_child_checks(program: &BpfProgram) -> i32 {
        // Variadic `syscall()` reads every argument as a `long`: pass `long`s.
        type L = libc::c_long;
        const Z: L = 0;
        if apply(program).is_err() {
            return 100;
        }
        // SAFETY (whole block): raw system calls with valid or deliberately
        // invalid arguments; no memory is handed out that does not outlive the call.
        unsafe {
            let check = |ok: bool, n: i32| if ok { 0 } else { n };
            let mut first = 0;
            let mut record = |r: i32| {
                if first == 0 {
                    first = r;
                }
            };

            record(check(libc::getpid() > 0, 1));
            let target = c"/proc/self/examroom-does-not-exist".as_ptr();
            let rc = libc::mount(ptr::null(), target, ptr::null(), libc::MS_BIND, ptr::null());
            record(check(rc == -1 && errno() == libc::EPERM, 2));
            let rc = libc::unshare(libc::CLONE_NEWUSER);
            record(check(rc == -1 && errno() == libc::EPERM, 3));
            let rc = libc::syscall(libc::SYS_clone3, ptr::null::<u8>(), 0usize);
            record(check(fails_with(rc, libc::ENOSYS), 4));

            let mut fds = [0; 2];
            record(check(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) == 0, 5));
            let c: u8 = b'x';
            let rc = libc::syscall(libc::SYS_ioctl, L::from(fds[0]), TIOCSTI, &c as *const u8);
            record(check(fails_with(rc, libc::EPERM), 6));
            let high_bits: u64 = 0xFFFF_FFFF_0000_5412;
            let rc = libc::syscall(libc::SYS_ioctl, L::from(fds[0]), high_bits, &c as *const u8);
            record(check(fails_with(rc, libc::EPERM), 7));
            let rc = libc::syscall(libc::SYS_ioctl, Z, TIOCLINUX, &c as *const u8);
            record(check(fails_with(rc, libc::EPERM), 8));
            record(check(libc::write(fds[1], b"abc".as_ptr().cast(), 3) == 3, 9));
            let mut avail: libc::c_int = -1;
            let rc = libc::ioctl(fds[0], libc::FIONREAD, &mut avail as *mut libc::c_int);
            record(check(rc == 0 && avail == 3, 10));

            let rc = libc::syscall(libc::SYS_getpid | 0x4000_0000);
            record(check(fails_with(rc, libc::EPERM) || fails_with(rc, libc::ENOSYS), 11));
            let rc = libc::syscall(libc::SYS_io_uring_setup, 1 as L, ptr::null_mut::<u8>());
            record(check(fails_with(rc, libc::EPERM), 12));
            let rc = libc::syscall(libc::SYS_bpf, 9999 as L, ptr::null_mut::<u8>(), Z);
            record(check(fails_with(rc, libc::EPERM), 13));
            // KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_THREAD_KEYRING (-1), no create.
            let rc = libc::syscall(libc::SYS_keyctl, Z, -1 as L, Z);
            record(check(fails_with(rc, libc::EPERM), 14));
            // ptrace is allowed: an invalid request answers the kernel's own error (ESRCH), not the filter's.
            let rc = libc::syscall(libc::SYS_ptrace, L::from(libc::PTRACE_PEEKDATA), 0 as L, Z, Z);
            record(check(fails_with(rc, libc::ESRCH), 15));

            // clone with a namespace flag is refused…
            let flags = (libc::CLONE_NEWNS | libc::SIGCHLD) as libc::c_ulong;
            let rc = libc::syscall(libc::SYS_clone, flags, Z, Z, Z, Z);
            if rc == 0 {
                libc::_exit(0);
            }
            record(check(fails_with(rc, libc::EPERM), 16));
            // …plain clone (fork-like) works…
            let rc = libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, Z, Z, Z, Z);
            if rc == 0 {
                libc::_exit(7);
            }
            record(check(rc > 0 && child_exit_code(rc as libc::pid_t) == 7, 17));
            // …and so does glibc's fork().
            let pid = libc::fork();
            if pid == 0 {
                libc::_exit(8);
            }
            record(check(pid > 0 && child_exit_code(pid) == 8, 18));

            let rc = libc::setns(-1, 0);
            record(check(rc == -1 && errno() == libc::EPERM, 19));
            let rc = libc::chroot(c"/examroom-does-not-exist".as_ptr());
            record(check(rc == -1 && errno() == libc::ENOENT, 20));
            // Over-long name: EINVAL without the filter, never changes anything.
            let rc = libc::sethostname(b"x".as_ptr().cast(), 4096);
            record(check(rc == -1 && errno() == libc::EPERM, 21));
            let rc = libc::syscall(libc::SYS_userfaultfd, Z);
            record(check(fails_with(rc, libc::EPERM), 22));
            let rc = libc::syscall(libc::SYS_perf_event_open, ptr::null::<u8>(), Z, -1 as L, -1 as L, Z);
            record(check(fails_with(rc, libc::EPERM), 23));

            let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
            record(check(s >= 0, 24));
            let s = libc::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0);
            record(check(s >= 0, 25));
            let s = libc::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE);
            record(check(s >= 0, 26));
            let s = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            record(check(s == -1 && errno() == libc::EPERM, 27));
            let s = libc::socket(libc::AF_ALG, libc::SOCK_SEQPACKET, 0);
            record(check(s == -1 && errno() == libc::EPERM, 28));
            let mut pair = [0; 2];
            let rc = libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, pair.as_mut_ptr());
            record(check(rc == 0, 29));
            let rc = libc::socketpair(libc::AF_INET, libc::SOCK_STREAM, 0, pair.as_mut_ptr());
            record(check(rc == -1 && errno() == libc::EPERM, 30));

            record(check(libc::personality(0xffff_ffff) >= 0, 31));
            // gdb's and setarch -R's ADDR_NO_RANDOMIZE is allowed; other flags are not.
            record(check(libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) >= 0, 32));
            let rc = libc::personality(libc::READ_IMPLIES_EXEC as libc::c_ulong);
            record(check(rc == -1 && errno() == libc::EPERM, 43));
            let rc = libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0);
            record(check(rc == 1, 33));
            // Above LAST_REVIEWED_SYSCALL: ENOSYS, not EPERM.
            let rc = libc::syscall(1000);
            record(check(fails_with(rc, libc::ENOSYS), 34));
            // A known but refused newer syscall: EPERM.
            let rc = libc::syscall(SYS_LISTMOUNT, ptr::null::<u8>(), ptr::null_mut::<u8>(), Z, Z);
            record(check(fails_with(rc, libc::EPERM), 35));
            let rc = libc::syscall(libc::SYS_reboot, Z, Z, Z, ptr::null::<u8>());
            record(check(fails_with(rc, libc::EPERM), 36));
            let mut ts: libc::timespec = std::mem::zeroed();
            let rc = libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts);
            record(check(rc == 0, 37));
            // The checks' uid can be taken by no uid setter; any other uid can (setuid to our own uid is a no-op).
            let reserved = L::from(RESERVED_CHECK_ID);
            let rc = libc::syscall(libc::SYS_setuid, reserved);
            record(check(fails_with(rc, libc::EPERM), 38));
            let rc = libc::syscall(libc::SYS_setresuid, -1 as L, reserved, -1 as L);
            record(check(fails_with(rc, libc::EPERM), 39));
            let rc = libc::syscall(libc::SYS_setreuid, reserved, -1 as L);
            record(check(fails_with(rc, libc::EPERM), 40));
            let rc = libc::syscall(libc::SYS_setfsuid, reserved);
            record(check(fails_with(rc, libc::EPERM), 41));
            let me = L::from(libc::getuid());
            let rc = libc::syscall(libc::SYS_setresuid, me, me, me);
            record(check(rc == 0, 42));
            first
        }
    }

    fn child_exit_code(pid: libc::pid_t) -> i32 {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid && libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        }
    }

    #[test]
    fn filter_is_enforced_in_a_child() {
        let program = candidate_filter().expect("filter builds");
        let code = in_child(|| filtered_child_checks(&program));
        assert_eq!(code, 0, "filtered child: first failing check #{code}");
    }

    #[test]
    fn i386_syscalls_kill_the_process() {
        let program = candidate_filter().expect("filter builds");
        let code = in_child(|| {
            if apply(&program).is_err() {
                return 100;
            }
            // SAFETY: the legacy 32-bit syscall gate (eax = 20: i386 getpid);
            // clobbers only eax.
            unsafe { std::arch::asm!("int 0x80", inout("eax") 20u32 => _, options(nostack)) };
            1 // still alive: the filter let it through
        });
        if code == 1000 + libc::SIGSEGV {
            eprintln!("kernel without IA-32 emulation: int 0x80 faults, nothing to check");
            return;
        }
        assert_eq!(code, 1000 + libc::SIGSYS, "int 0x80 must be killed by the arch check");
    }

    /// Shell script exercising ordinary tools under the filter. Tools that are
    /// not installed are skipped.
    const WORKLOAD: &str = r#"
exec >"$T/log" 2>&1
set -eux
cd "$T"
have() { command -v "$1" >/dev/null 2>&1; }
grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status
grep -q '^NoNewPrivs:[[:space:]]*1$' /proc/self/status
echo hello > a.txt
grep -q hello a.txt
sed 's/hello/bye/' a.txt > b.txt
awk '{ print $1 }' b.txt | grep -q bye
ls -la / >/dev/null
mkdir -p d/e && touch d/e/f && ln -s a.txt l && mv b.txt c.txt
chmod 600 c.txt && chown 0:0 c.txt && test -L l && readlink l >/dev/null
tar czf x.tgz d a.txt && mkdir y && tar xzf x.tgz -C y && test -f y/d/e/f
find . -name f | grep -q f
gzip -k a.txt && gunzip -c a.txt.gz | grep -q hello
seq 1 200000 | sort --parallel=2 -S 1M -rn > sorted && head -n 1 sorted | grep -qx 200000
id -u >/dev/null
(sleep 0.05 &) ; wait
ps aux >/dev/null
if have top; then top -b -n 1 >/dev/null; fi
if have python3; then
python3 - <<'EOF'
import os, socket, subprocess, threading, select, mmap, signal, tempfile
from concurrent.futures import ThreadPoolExecutor
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0)); srv.listen(1)
def serve():
    c, _ = srv.accept(); c.sendall(c.recv(16)); c.close()
t = threading.Thread(target=serve); t.start()
c = socket.create_connection(("127.0.0.1", srv.getsockname()[1]))
c.sendall(b"ping"); assert c.recv(16) == b"ping"; t.join()
socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close()
a, b = socket.socketpair(); a.send(b"x"); assert b.recv(1) == b"x"
with ThreadPoolExecutor(4) as ex:
    assert sum(ex.map(lambda x: x * x, range(10))) == 285
assert subprocess.run(["true"]).returncode == 0
pid = os.fork()
if pid == 0:
    os._exit(3)
assert os.waitpid(pid, 0)[1] >> 8 == 3
m = mmap.mmap(-1, 4096); m[0:1] = b"z"; m.close()
assert len(os.getrandom(8)) == 8
fd = os.memfd_create("x"); os.close(fd)
r, w = os.pipe(); os.write(w, b"q"); assert select.select([r], [], [], 1)[0] == [r]
signal.signal(signal.SIGALRM, lambda *a: None); signal.setitimer(signal.ITIMER_REAL, 0.01); signal.pause()
print("python ok")
EOF
fi
if have gcc; then
printf '#include <pthread.h>\nstatic void *f(void *a){return a;}\nint main(void){pthread_t t; if (pthread_create(&t,0,f,0)) return 1; return pthread_join(t,0);}\n' > t.c
gcc -O0 -pthread t.c -o t && ./t
fi
if have make; then printf 'all:\n\t@true\n' > Makefile && make -s; fi
if have perl; then perl -e 'exit 0'; fi
if have su && id nobody >/dev/null 2>&1; then su -s /bin/sh nobody -c 'id -u' >/dev/null; fi
if have vim; then vim -u NONE -es -c 'normal Ahi' -c 'wq' a.txt && grep -q hellohi a.txt; fi
if have ip; then ip addr >/dev/null; fi
if have ss; then ss -tln >/dev/null; fi
echo done
"#;

    #[test]
    fn ordinary_tools_work_under_the_filter() {
        let program = candidate_filter().expect("filter builds");
        let dir = tempfile::tempdir().expect("tempdir");
        let t = dir.path().to_str().expect("utf-8 tempdir");

        let sh = c"/bin/sh";
        let script = CString::new(WORKLOAD).expect("script");
        let argv = [sh.as_ptr(), c"-c".as_ptr(), script.as_ptr(), ptr::null()];
        let env_t = CString::new(format!("T={t}")).expect("env");
        let envp = [
            c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".as_ptr(),
            c"HOME=/root".as_ptr(),
            c"LC_ALL=C".as_ptr(),
            env_t.as_ptr(),
            ptr::null(),
        ];

        let code = in_child(|| {
            if apply(&program).is_err() {
                return 100;
            }
            // SAFETY: argv/envp are NUL-terminated arrays of C strings that
            // outlive the call (the parent keeps them alive; the child execs).
            unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            101
        });
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
        assert_eq!(code, 0, "workload failed under the filter:\n{log}");
        assert!(log.contains("done"), "{log}");
    }
}
