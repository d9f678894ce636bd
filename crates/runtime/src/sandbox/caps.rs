//! Capability set for candidate processes.
//!
//! # Threat
//!
//! The candidate is root (uid 0) inside their own user namespace. Capabilities
//! held there only act on objects that namespace owns, but many kernel paths
//! guarded by `ns_capable()` are large and historically buggy attack surface
//! (`CAP_NET_ADMIN` → nf_tables, `CAP_SYS_ADMIN` → mounting filesystems, …).
//! So candidate processes keep only what an ordinary root session needs:
//! Docker's default set minus `CAP_MKNOD` ([`CANDIDATE_CAPS`]; `CAP_NET_RAW`
//! is kept but acts on nothing, see there).
//!
//! # What is changed, and why this way
//!
//! * **Bounding set**: reduced to [`CANDIDATE_CAPS`]. This is the set uid 0
//!   regains on every `execve`, so it is the one that really limits the
//!   candidate. It is walked by *kernel index* (`PR_CAPBSET_READ` from 0 until
//!   the kernel answers `EINVAL`, i.e. past `cap_last_cap`) rather than over
//!   the `caps` crate's list, so a capability newer than the crate is dropped
//!   too, and capabilities the host did not grant (absent from the bounding
//!   set) are simply skipped.
//! * **Permitted / effective**: set to `CANDIDATE_CAPS ∩ current permitted`
//!   (capabilities cannot be added, only removed).
//! * **Inheritable**: cleared, and **ambient**: cleared. Inheritable
//!   capabilities serve no purpose for root (it gets the bounding set on exec)
//!   and letting them through lets a non-root user inside the sandbox gain
//!   capabilities from file capabilities (CVE-2022-24769, the reason Docker
//!   stopped setting them). A candidate who really wants them can raise them
//!   again with `CAP_SETPCAP`, within the bounding set.
//! * A **non-root caller without `CAP_SETPCAP`** cannot shrink its bounding
//!   set at all. Then the bounding set is left alone and
//!   `PR_SET_NO_NEW_PRIVS` is set right away: with it, `execve` honours neither
//!   set-user-ID bits nor file capabilities, so the leftover bounding set is
//!   unreachable. A root caller that cannot shrink the bounding set gets an
//!   error instead (it would regain the whole set on exec).
//!
//! Everything here is raw `capget`/`capset`/`prctl`: no allocation, so it can
//! run in a forked child before `execve`.

use std::io;

use caps::Capability;

/// Errors from changing the capability sets.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// `capget(2)` failed.
    #[error("capget failed: {0}")]
    Capget(#[source] io::Error),
    /// `capset(2)` failed.
    #[error("capset failed: {0}")]
    Capset(#[source] io::Error),
    /// `prctl(PR_CAPBSET_READ)` failed for a reason other than "no such capability".
    #[error("reading capability #{cap} of the bounding set failed: {source}")]
    BoundingRead {
        /// Kernel capability index.
        cap: u32,
        /// The OS error.
        source: io::Error,
    },
    /// `prctl(PR_CAPBSET_DROP)` failed.
    #[error("dropping capability #{cap} from the bounding set failed: {source}")]
    BoundingDrop {
        /// Kernel capability index.
        cap: u32,
        /// The OS error.
        source: io::Error,
    },
    /// uid 0 without `CAP_SETPCAP` cannot shrink its bounding set and would
    /// regain it on `execve`.
    #[error(
        "cannot shrink the bounding set (no CAP_SETPCAP) while running as uid 0; \
         capabilities {extra:#x} would come back on exec"
    )]
    BoundingSetLocked {
        /// Bitmask of the bounding-set capabilities that should have been dropped.
        extra: u64,
    },
    /// `prctl(PR_SET_NO_NEW_PRIVS)` failed.
    #[error("prctl(PR_SET_NO_NEW_PRIVS) failed: {0}")]
    NoNewPrivs(#[source] io::Error),
    /// `prctl(PR_CAP_AMBIENT_CLEAR_ALL)` failed.
    #[error("clearing the ambient capability set failed: {0}")]
    Ambient(#[source] io::Error),
    /// A capability was still present after dropping (should not happen).
    #[error("capabilities {extra:#x} are still in the {set} set after dropping them")]
    StillPresent {
        /// Which set: "bounding", "permitted", "effective" or "inheritable".
        set: &'static str,
        /// Bitmask of the capabilities that are still there.
        extra: u64,
    },
}

/// The capabilities a candidate keeps (inside its own user namespace):
/// Docker's default set minus `CAP_MKNOD`.
///
/// Notably absent: `CAP_SYS_ADMIN`, `CAP_SYS_PTRACE`, `CAP_NET_ADMIN`,
/// `CAP_MKNOD`, `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`,
/// `CAP_SYS_TIME`, `CAP_SYSLOG`, `CAP_DAC_READ_SEARCH`,
/// `CAP_LINUX_IMMUTABLE`, `CAP_IPC_LOCK`, `CAP_IPC_OWNER`, `CAP_SYS_BOOT`,
/// `CAP_SYS_NICE`, `CAP_SYS_RESOURCE`, `CAP_SYS_PACCT`, `CAP_SYS_TTY_CONFIG`,
/// `CAP_LEASE`, `CAP_AUDIT_CONTROL`, `CAP_AUDIT_READ`, `CAP_MAC_*`,
/// `CAP_WAKE_ALARM`, `CAP_BLOCK_SUSPEND`, `CAP_PERFMON`, `CAP_BPF`,
/// `CAP_CHECKPOINT_RESTORE`, `CAP_NET_BROADCAST`.
pub const CANDIDATE_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FOWNER,
    Capability::CAP_FSETID,
    Capability::CAP_KILL,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    // Held in the candidate's own (nested) user namespace, it grants nothing over the environment's network
    // namespace, which the environment's user namespace owns: raw and packet sockets stay refused. It is here because
    // programs shipped with the file capability `cap_net_raw=ep` (Debian's ping) fail to execute unless it is in the
    // bounding set; ping then uses an ICMP echo socket (`ping_group_range`).
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_AUDIT_WRITE,
    Capability::CAP_SETFCAP,
];

/// Capabilities kept out of a `system` environment altogether (its service manager's bounding set), so that no
/// process inside holds them even in its own user namespace: the ones that reach the host or a device
/// (`SYS_MODULE`, `SYS_RAWIO`, `SYS_TIME`, `SYS_BOOT`, `SYSLOG`, `MAC_*`, `BPF`, `PERFMON`, `WAKE_ALARM`,
/// `BLOCK_SUSPEND`, `AUDIT_CONTROL`, `SYS_PACCT`, `CHECKPOINT_RESTORE`, `MKNOD`), and `SYS_PTRACE`, without which no
/// process inside can read or trace PID 1 (systemd, started from an execute-only copy, is not dumpable).
pub const SYSTEM_DENIED: &[Capability] = &[
    Capability::CAP_SYS_MODULE,
    Capability::CAP_SYS_RAWIO,
    Capability::CAP_SYS_PTRACE,
    Capability::CAP_SYS_PACCT,
    Capability::CAP_SYS_BOOT,
    Capability::CAP_SYS_TIME,
    Capability::CAP_SYSLOG,
    Capability::CAP_MAC_OVERRIDE,
    Capability::CAP_MAC_ADMIN,
    Capability::CAP_WAKE_ALARM,
    Capability::CAP_BLOCK_SUSPEND,
    Capability::CAP_AUDIT_CONTROL,
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_CHECKPOINT_RESTORE,
    Capability::CAP_MKNOD,
];

/// Reduces the calling thread to every capability but [`SYSTEM_DENIED`] (bounding, permitted, effective; inheritable
/// and ambient cleared). For a `system` environment's PID 1 and the processes the shim starts in it. Raw calls only.
pub fn drop_to_system_set() -> Result<(), CapsError> {
    let denied = SYSTEM_DENIED.iter().fold(0u64, |m, c| m | c.bitmask());
    drop_to(!denied)
}

/// Reduces the calling thread to [`CANDIDATE_CAPS`]: bounding set to
/// `CANDIDATE_CAPS`, permitted and effective to `CANDIDATE_CAPS ∩ permitted`,
/// inheritable and ambient cleared (see the module docs for why inheritable
/// is not set).
///
/// Call after fork, before exec (it does not allocate). Works for uid 0 (root
/// in the user namespace, who regains only the bounding set on exec) and for
/// a non-root uid (whose bounding set may be unchangeable; then
/// `PR_SET_NO_NEW_PRIVS` is set instead, see the module docs).
pub fn drop_to_candidate_set() -> Result<(), CapsError> {
    drop_to(candidate_mask())
}

/// Drops every capability from every set (bounding, permitted, effective,
/// inheritable, ambient). For the no-user-namespace fallback where the shell
/// runs as an unprivileged host uid. Call after fork, before exec (it does
/// not allocate). Same non-root rule as [`drop_to_candidate_set`].
pub fn drop_all() -> Result<(), CapsError> {
    drop_to(0)
}

/// Keeps only CAP_SETUID and CAP_SETGID, in every set including the bounding set. For the no-user-namespace fallback:
/// called as root just before switching to the unprivileged uid (which then clears the rest), so that even the bounding
/// set that survives the switch holds nothing else.
pub fn drop_for_setuid() -> Result<(), CapsError> {
    drop_to(Capability::CAP_SETUID.bitmask() | Capability::CAP_SETGID.bitmask())
}

/// Turns a process that holds CAP_SETUID, CAP_SETGID and CAP_SETPCAP (root of its user namespace) into a grading
/// check: uid `uid` and gid `gid`, no supplementary groups, and one capability, `CAP_DAC_READ_SEARCH`, which reads
/// every file and searches every directory but writes nothing, executes nothing and reaches no other process (a
/// different uid without `CAP_SYS_PTRACE` passes no ptrace access check, so `/proc/<pid>/{root,cwd,fd,mem,environ}`
/// of the candidate's processes are refused). The capability is put in the permitted, effective, inheritable and
/// ambient sets, so that it survives `execve` for a non-root uid; the bounding set keeps nothing else.
///
/// Raw calls only: safe between fork and exec.
pub fn become_checker(uid: u32, gid: u32) -> Result<(), CapsError> {
    let drs = Capability::CAP_DAC_READ_SEARCH.bitmask();
    let needed =
        Capability::CAP_SETPCAP.bitmask() | Capability::CAP_SETUID.bitmask() | Capability::CAP_SETGID.bitmask();
    let current = capget()?;
    if current.permitted & (needed | drs) != needed | drs {
        return Err(CapsError::StillPresent {
            set: "missing from permitted",
            extra: (needed | drs) & !current.permitted,
        });
    }
    capset(CapSets { effective: current.permitted, ..current })?;
    for cap in bits(read_bounding()? & !drs) {
        // SAFETY: prctl with integer arguments.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), Z, Z, Z) } != 0 {
            return Err(CapsError::BoundingDrop { cap, source: io::Error::last_os_error() });
        }
    }
    clear_ambient()?;
    // SAFETY: plain prctl and credential calls; results checked.
    unsafe {
        if libc::prctl(libc::PR_SET_KEEPCAPS, 1 as libc::c_ulong, Z, Z, Z) != 0
            || libc::setgroups(0, std::ptr::null()) != 0
            || libc::setresgid(gid, gid, gid) != 0
            || libc::setresuid(uid, uid, uid) != 0
        {
            return Err(CapsError::Capset(io::Error::last_os_error()));
        }
        libc::prctl(libc::PR_SET_KEEPCAPS, Z, Z, Z, Z);
    }
    capset(CapSets { effective: drs, permitted: drs, inheritable: drs })?;
    // SAFETY: prctl with integer arguments.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
            libc::c_ulong::from(Capability::CAP_DAC_READ_SEARCH.index()),
            Z,
            Z,
        )
    };
    if rc != 0 {
        return Err(CapsError::Ambient(io::Error::last_os_error()));
    }
    let after = capget()?;
    for (set, value) in [("permitted", after.permitted), ("effective", after.effective)] {
        if value != drs {
            return Err(CapsError::StillPresent { set, extra: value & !drs });
        }
    }
    let left = read_bounding()? & !drs;
    if left != 0 {
        return Err(CapsError::StillPresent { set: "bounding", extra: left });
    }
    Ok(())
}

/// Zero as `unsigned long`: `prctl` is variadic and glibc reads every
/// argument as `unsigned long`; some options reject non-zero unused arguments.
const Z: libc::c_ulong = 0;

/// Bitmask (bit = kernel capability index) of [`CANDIDATE_CAPS`].
fn candidate_mask() -> u64 {
    CANDIDATE_CAPS.iter().fold(0, |mask, cap| mask | cap.bitmask())
}

fn drop_to(keep: u64) -> Result<(), CapsError> {
    let setpcap = Capability::CAP_SETPCAP.bitmask();
    let current = capget()?;

    // Shrinking the bounding set needs CAP_SETPCAP in the effective set.
    let can_shrink_bounding = current.permitted & setpcap != 0;
    if can_shrink_bounding && current.effective & setpcap == 0 {
        capset(CapSets { effective: current.effective | setpcap, ..current })?;
    }

    let extra_bounding = read_bounding()? & !keep;
    if extra_bounding != 0 {
        if can_shrink_bounding {
            for cap in bits(extra_bounding) {
                // SAFETY: prctl with integer arguments.
                let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), Z, Z, Z) };
                if rc != 0 {
                    return Err(CapsError::BoundingDrop { cap, source: io::Error::last_os_error() });
                }
            }
        } else if is_root() {
            return Err(CapsError::BoundingSetLocked { extra: extra_bounding });
        } else {
            // Non-root and unable to touch the bounding set: make it unreachable.
            set_no_new_privs()?;
        }
    }

    clear_ambient()?;

    let target = keep & current.permitted;
    capset(CapSets { effective: target, permitted: target, inheritable: 0 })?;

    // Verify: cheap, and a silent failure here would be a sandbox escape.
    let after = capget()?;
    for (set, value) in [("permitted", after.permitted), ("effective", after.effective)] {
        if value & !keep != 0 {
            return Err(CapsError::StillPresent { set, extra: value & !keep });
        }
    }
    if after.inheritable != 0 {
        return Err(CapsError::StillPresent { set: "inheritable", extra: after.inheritable });
    }
    if can_shrink_bounding {
        let left = read_bounding()? & !keep;
        if left != 0 {
            return Err(CapsError::StillPresent { set: "bounding", extra: left });
        }
    }
    Ok(())
}

/// Indices of the set bits of `mask`.
fn bits(mask: u64) -> impl Iterator<Item = u32> {
    (0..64).filter(move |i| mask & (1u64 << i) != 0)
}

fn is_root() -> bool {
    // SAFETY: getuid/geteuid cannot fail.
    unsafe { libc::getuid() == 0 || libc::geteuid() == 0 }
}

fn set_no_new_privs() -> Result<(), CapsError> {
    // SAFETY: prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1 as libc::c_ulong, Z, Z, Z) };
    if rc != 0 {
        return Err(CapsError::NoNewPrivs(io::Error::last_os_error()));
    }
    Ok(())
}

fn clear_ambient() -> Result<(), CapsError> {
    // SAFETY: prctl with integer arguments.
    let rc = unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, Z, Z, Z) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // EINVAL: kernel older than 4.3 has no ambient set, nothing to clear.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(CapsError::Ambient(err));
        }
    }
    Ok(())
}

/// The bounding set as a bitmask, for every capability the kernel knows.
fn read_bounding() -> Result<u64, CapsError> {
    let mut mask = 0u64;
    for cap in 0..64u32 {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), Z, Z, Z) };
        match rc {
            1 => mask |= 1u64 << cap,
            0 => {}
            _ => {
                let err = io::Error::last_os_error();
                if err.raw_os_error() == Some(libc::EINVAL) {
                    break; // past cap_last_cap
                }
                return Err(CapsError::BoundingRead { cap, source: err });
            }
        }
    }
    Ok(mask)
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets split in two 32-bit halves.
const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The three per-thread sets as 64-bit masks.
#[derive(Clone, Copy, Debug)]
struct CapSets {
    effective: u64,
    permitted: u64,
    inheritable: u64,
}

fn join(low: u32, high: u32) -> u64 {
    u64::from(low) | (u64::from(high) << 32)
}

fn split(mask: u64) -> (u32, u32) {
    // Truncation intended: low and high halves.
    ((mask & 0xffff_ffff) as u32, (mask >> 32) as u32)
}

fn capget() -> Result<CapSets, CapsError> {
    let mut header = CapUserHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let mut data = [CapUserData::default(); 2];
    // SAFETY: header and a 2-element data array, as capget(2) v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header as *mut CapUserHeader, data.as_mut_ptr()) };
    if rc != 0 {
        return Err(CapsError::Capget(io::Error::last_os_error()));
    }
    Ok(CapSets {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
    })
}

fn capset(sets: CapSets) -> Result<(), CapsError> {
    let mut header = CapUserHeader { version: LINUX_CAPABILITY_VERSION_3, pid: 0 };
    let (e0, e1) = split(sets.effective);
    let (p0, p1) = split(sets.permitted);
    let (i0, i1) = split(sets.inheritable);
    let data = [
        CapUserData { effective: e0, permitted: p0, inheritable: i0 },
        CapUserData { effective: e1, permitted: p1, inheritable: i1 },
    ];
    // SAFETY: header and a 2-element data array, as capset(2) v3 expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapUserHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(CapsError::Capset(io::Error::last_os_error()));
    }
    Ok(())
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::ffi::CString;
    use std::ptr;

    /// Docker's default set is 0xa80425fb; minus MKNOD (27).
    const EXPECTED_MASK: u64 = 0xa804_25fb & !(1 << 27);

    #[test]
    fn candidate_set_is_docker_default_minus_mknod() {
        assert_eq!(candidate_mask(), EXPECTED_MASK);
        for cap in [
            Capability::CAP_SYS_ADMIN,
            Capability::CAP_SYS_PTRACE,
            Capability::CAP_NET_ADMIN,
            Capability::CAP_MKNOD,
            Capability::CAP_SYS_MODULE,
            Capability::CAP_SYS_RAWIO,
            Capability::CAP_SYS_TIME,
            Capability::CAP_SYSLOG,
            Capability::CAP_DAC_READ_SEARCH,
            Capability::CAP_LINUX_IMMUTABLE,
            Capability::CAP_IPC_LOCK,
            Capability::CAP_SYS_BOOT,
            Capability::CAP_SYS_NICE,
            Capability::CAP_SYS_RESOURCE,
            Capability::CAP_SYS_PACCT,
            Capability::CAP_SYS_TTY_CONFIG,
            Capability::CAP_LEASE,
            Capability::CAP_AUDIT_CONTROL,
            Capability::CAP_MAC_ADMIN,
            Capability::CAP_MAC_OVERRIDE,
            Capability::CAP_WAKE_ALARM,
            Capability::CAP_BLOCK_SUSPEND,
            Capability::CAP_PERFMON,
            Capability::CAP_BPF,
            Capability::CAP_CHECKPOINT_RESTORE,
        ] {
            assert!(!CANDIDATE_CAPS.contains(&cap), "{cap} must be dropped");
        }
        assert_eq!(split(0x1234_5678_9abc_def0), (0x9abc_def0, 0x1234_5678));
        assert_eq!(join(0x9abc_def0, 0x1234_5678), 0x1234_5678_9abc_def0);
    }

    /// The capability masks of /proc/self/status, read with raw syscalls.
    #[derive(Default)]
    struct Status {
        inh: u64,
        prm: u64,
        eff: u64,
        bnd: u64,
        amb: u64,
        no_new_privs: u64,
    }

    fn read_status() -> Option<Status> {
        let mut buf = [0u8; 8192];
        // SAFETY: open/read/close on a stack buffer.
        let len = unsafe {
            let fd = libc::open(c"/proc/self/status".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return None;
            }
            let mut len = 0usize;
            loop {
                let n = libc::read(fd, buf[len..].as_mut_ptr().cast(), buf.len() - len);
                if n <= 0 {
                    break;
                }
                len += n as usize;
            }
            libc::close(fd);
            len
        };
        let mut status = Status::default();
        for line in buf[..len].split(|&b| b == b'\n') {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let (key, value) = (&line[..colon], &line[colon + 1..]);
            let value = std::str::from_utf8(value).ok()?.trim();
            let slot = match key {
                b"CapInh" => &mut status.inh,
                b"CapPrm" => &mut status.prm,
                b"CapEff" => &mut status.eff,
                b"CapBnd" => &mut status.bnd,
                b"CapAmb" => &mut status.amb,
                b"NoNewPrivs" => {
                    status.no_new_privs = value.parse().ok()?;
                    continue;
                }
                _ => continue,
            };
            *slot = u64::from_str_radix(value, 16).ok()?;
        }
        Some(status)
    }

    /// Forks; the child runs `f` and `_exit`s with its result; returns the
    /// child's exit code (1000 + signal if killed).
    fn in_child(f: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only runs `f` and `_exit`s.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let code = f();
            // SAFETY: leave the child without running destructors.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waiting for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            1000 + libc::WTERMSIG(status)
        }
    }

    fn host_bounding() -> u64 {
        read_status().expect("/proc/self/status").bnd
    }

    const SYS_ADMIN: u64 = 1 << 21;
    const CHOWN: u64 = 1;

    #[test]
    fn drop_to_candidate_set_as_root() {
        assert_eq!(unsafe { libc::geteuid() }, 0, "test needs root");
        let expected = EXPECTED_MASK & host_bounding();
        let code = in_child(|| {
            if drop_to_candidate_set().is_err() {
                return 1;
            }
            let Some(s) = read_status() else { return 2 };
            if s.bnd & SYS_ADMIN != 0 || s.eff & SYS_ADMIN != 0 || s.prm & SYS_ADMIN != 0 {
                return 3;
            }
            if s.bnd & CHOWN == 0 || s.eff & CHOWN == 0 {
                return 4;
            }
            if s.bnd != expected || s.eff != expected || s.prm != expected {
                return 5;
            }
            if s.inh != 0 || s.amb != 0 {
                return 6;
            }
            // Idempotent.
            if drop_to_candidate_set().is_err() {
                return 7;
            }
            0
        });
        assert_eq!(code, 0, "child check #{code} failed");
    }

    #[test]
    fn root_regains_only_the_candidate_set_on_exec() {
        let expected = EXPECTED_MASK & host_bounding();
        let script = format!(
            "grep -qx 'CapEff:\t{expected:016x}' /proc/self/status && \
             grep -qx 'CapPrm:\t{expected:016x}' /proc/self/status && \
             grep -qx 'CapBnd:\t{expected:016x}' /proc/self/status && \
             grep -qx 'CapInh:\t0000000000000000' /proc/self/status"
        );
        let script = CString::new(script).expect("script");
        let sh = c"/bin/sh";
        let argv = [sh.as_ptr(), c"-c".as_ptr(), script.as_ptr(), ptr::null()];
        let envp = [c"PATH=/usr/bin:/bin".as_ptr(), ptr::null()];
        let code = in_child(|| {
            if drop_to_candidate_set().is_err() {
                return 100;
            }
            // SAFETY: NUL-terminated argv/envp that outlive the call.
            unsafe { libc::execve(sh.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
            101
        });
        assert_eq!(code, 0, "exec'd shell saw unexpected capabilities");
    }

    #[test]
    fn drop_all_as_root() {
        let code = in_child(|| {
            if drop_all().is_err() {
                return 1;
            }
            let Some(s) = read_status() else { return 2 };
            if s.bnd != 0 || s.eff != 0 || s.prm != 0 || s.inh != 0 || s.amb != 0 {
                return 3;
            }
            0
        });
        assert_eq!(code, 0, "child check #{code} failed");
    }

    #[test]
    fn works_for_a_non_root_uid() {
        let code = in_child(|| {
            // Become nobody with raw syscalls (this thread only; the child is
            // single-threaded). Without KEEPCAPS this empties permitted/effective.
            // SAFETY: plain syscalls with integer arguments.
            unsafe {
                let id: libc::c_long = 65534;
                if libc::syscall(libc::SYS_setgroups, 0 as libc::c_long, ptr::null::<u32>()) != 0
                    || libc::syscall(libc::SYS_setresgid, id, id, id) != 0
                    || libc::syscall(libc::SYS_setresuid, id, id, id) != 0
                {
                    return 1;
                }
            }
            if drop_to_candidate_set().is_err() {
                return 2;
            }
            let Some(s) = read_status() else { return 3 };
            if s.eff != 0 || s.prm != 0 || s.inh != 0 || s.amb != 0 {
                return 4;
            }
            // The bounding set could not be shrunk, so NO_NEW_PRIVS must be on.
            if s.bnd & !EXPECTED_MASK != 0 && s.no_new_privs != 1 {
                return 5;
            }
            if drop_all().is_err() {
                return 6;
            }
            0
        });
        assert_eq!(code, 0, "child check #{code} failed");
    }
}
