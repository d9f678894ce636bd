//! What confines a candidate container: capabilities, `no-new-privileges`, a seccomp profile derived from the
//! sandbox's shell allowlist, the limits, and the bound on its writable layer.
//!
//! # Capabilities
//! `CapDrop: ALL`, then [`capabilities_added`]: Docker's default set without `NET_RAW` (raw sockets, ARP/ICMP
//! spoofing on the session's network), `MKNOD`, `AUDIT_WRITE`, `SETFCAP` and `SETPCAP`. `SYS_PTRACE` is never
//! granted: together with the shim's `PR_SET_DUMPABLE 0` it keeps root inside away from the shim's memory.
//!
//! # Seccomp
//! [`seccomp_profile`] is Docker's JSON form of the sandbox's shell filter (`sandbox/seccomp.rs`): an allowlist by
//! name, everything else `EPERM`, `clone3` `ENOSYS` (glibc then falls back to `clone`, whose flags a filter can
//! inspect), `clone` without namespace flags, `socket` for `AF_UNIX`, `AF_INET`, `AF_INET6` and `AF_NETLINK`,
//! `socketpair` for `AF_UNIX`, Docker's `personality` values, the uid setters never to the checks' reserved uid, and
//! `ioctl` with any request but `TIOCSTI` and `TIOCLINUX` (compared on the low 32 bits, which is all the kernel reads).
//! Unlike the sandbox, `ptrace`, `process_vm_readv` and `process_vm_writev` are refused too ([`REFUSED_HERE`]): the
//! shim shares the candidate's uid inside the container, and only its non-dumpable flag would stand between them.
//! runc turns two conditions on one argument into two rules that are OR-ed, so "neither TIOCSTI nor TIOCLINUX" is
//! spelled as a union of single-condition masked compares ([`ioctl_rules`]). runc answers `ENOSYS` for system calls
//! newer than the profile knows.

use std::collections::HashMap;
use std::path::Path;

use bollard::models::{HostConfig, HostConfigLogConfig};
use bollard::Docker;
use serde_json::{json, Value};

use super::{engine_error, SHIM_IN_CONTAINER};
use crate::error::RuntimeError;
use crate::sandbox::seccomp::{allowed_syscall_names, RESERVED_CHECK_ID};
use crate::types::Limits;

/// The capabilities a candidate container gets (after dropping all).
pub fn capabilities_added() -> &'static [&'static str] {
    &["CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE", "SYS_CHROOT"]
}

/// `TIOCSTI` and `TIOCLINUX` (asm-generic values, x86_64 and aarch64 alike).
const TIOCSTI: u64 = 0x5412;
const TIOCLINUX: u64 = 0x541C;

/// Allowed by the sandbox, refused here (see the module documentation).
pub const REFUSED_HERE: &[&str] = &["ptrace", "process_vm_readv", "process_vm_writev"];

/// The syscalls the sandbox allows only with conditions; each has its rules here.
const CONDITIONAL: &[&str] =
    &["clone", "ioctl", "personality", "socket", "socketpair", "setuid", "setreuid", "setresuid", "setfsuid"];

/// `personality(2)` values allowed (the sandbox's, which are Docker's).
const PERSONALITIES: &[u64] = &[0x0, 0x0008, 0x2_0000, 0x2_0008, 0x4_0000, 0x4_0008, 0xffff_ffff];

#[cfg(target_arch = "x86_64")]
const ARCH: &str = "SCMP_ARCH_X86_64";
#[cfg(target_arch = "aarch64")]
const ARCH: &str = "SCMP_ARCH_AARCH64";
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
const ARCH: &str = "SCMP_ARCH_NATIVE";

fn arg(index: u32, op: &str, value: u64, value_two: u64) -> Value {
    json!({ "index": index, "value": value, "valueTwo": value_two, "op": op })
}

fn allow(name: &str, args: Vec<Value>) -> Value {
    json!({ "names": [name], "action": "SCMP_ACT_ALLOW", "args": args })
}

/// `ioctl` rules whose union is "the low 32 bits of the request are neither TIOCSTI nor TIOCLINUX", each a single
/// masked compare on argument 1 (see the module documentation). A request differs from both when it differs from
/// them in a bit where they agree, or when its bits where they differ (bits 1 to 3 here) take neither one's pattern.
pub(crate) fn ioctl_rules() -> Vec<(u64, u64)> {
    let differ = (TIOCSTI ^ TIOCLINUX) & 0xffff_ffff;
    let mut rules = Vec::new();
    for bit in 0..32 {
        let m = 1u64 << bit;
        if differ & m == 0 {
            rules.push((m, !TIOCSTI & m));
        }
    }
    // Every pattern of the differing bits but the two values'.
    let bits: Vec<u64> = (0..32).map(|b| 1u64 << b).filter(|m| differ & m != 0).collect();
    for combo in 0..(1u64 << bits.len()) {
        let datum: u64 = bits.iter().enumerate().filter(|(i, _)| combo & (1 << i) != 0).map(|(_, m)| *m).sum();
        if datum != TIOCSTI & differ && datum != TIOCLINUX & differ {
            rules.push((differ, datum));
        }
    }
    rules
}

/// The seccomp profile of candidate containers, in Docker's JSON form (see the module documentation).
pub fn seccomp_profile() -> Value {
    let names: Vec<&str> = allowed_syscall_names()
        .iter()
        .copied()
        .filter(|n| !CONDITIONAL.contains(n) && !REFUSED_HERE.contains(n))
        .collect();
    let mut syscalls = vec![
        json!({ "names": names, "action": "SCMP_ACT_ALLOW" }),
        json!({ "names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": libc::ENOSYS }),
    ];
    let namespaces = (libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWCGROUP
        | libc::CLONE_NEWTIME) as u64;
    syscalls.push(allow("clone", vec![arg(0, "SCMP_CMP_MASKED_EQ", namespaces, 0)]));
    for (mask, datum) in ioctl_rules() {
        syscalls.push(allow("ioctl", vec![arg(1, "SCMP_CMP_MASKED_EQ", mask, datum)]));
    }
    for p in PERSONALITIES {
        syscalls.push(allow("personality", vec![arg(0, "SCMP_CMP_EQ", *p, 0)]));
    }
    for family in [libc::AF_UNIX, libc::AF_INET, libc::AF_INET6, libc::AF_NETLINK] {
        syscalls.push(allow("socket", vec![arg(0, "SCMP_CMP_EQ", family as u64, 0)]));
    }
    syscalls.push(allow("socketpair", vec![arg(0, "SCMP_CMP_EQ", libc::AF_UNIX as u64, 0)]));
    let reserved = u64::from(RESERVED_CHECK_ID);
    for (name, args) in [("setuid", 1), ("setfsuid", 1), ("setreuid", 2), ("setresuid", 3)] {
        syscalls.push(allow(name, (0..args).map(|i| arg(i, "SCMP_CMP_NE", reserved, 0)).collect()));
    }
    json!({ "defaultAction": "SCMP_ACT_ERRNO", "architectures": [ARCH], "syscalls": syscalls })
}

/// Whether the Engine bounds a container's writable layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiskBound {
    /// `StorageOpt size` works: overlay2 on XFS with project quotas.
    Bounded,
    /// It does not; why (the storage driver and its backing filesystem).
    Unbounded(String),
}

/// Asks the Engine whether `StorageOpt size` can bound a container's writable layer.
pub(super) async fn disk_bound(docker: &Docker, socket: &Path) -> Result<DiskBound, RuntimeError> {
    let info = match tokio::time::timeout(std::time::Duration::from_secs(10), docker.info()).await {
        Ok(Ok(i)) => i,
        Ok(Err(e)) => return Err(engine_error(socket, "describe itself", e)),
        Err(_) => {
            return Err(RuntimeError::Timeout { what: "the Docker Engine to describe itself".into(), ms: 10_000 })
        }
    };
    let driver = info.driver.unwrap_or_default();
    let backing = info
        .driver_status
        .unwrap_or_default()
        .into_iter()
        .find(|kv| kv.first().is_some_and(|k| k == "Backing Filesystem"))
        .and_then(|kv| kv.get(1).cloned())
        .unwrap_or_else(|| "unknown".into());
    let root = info.docker_root_dir.unwrap_or_default();
    if driver == "overlay2" && backing == "xfs" {
        // Project quotas: seen in the data root's mount options when dockerd shares this host's mounts (a unix
        // socket: it does, as a rule); otherwise dockerd itself refuses `size` without them when a container is made.
        return Ok(match project_quotas(Path::new(&root)) {
            Some(false) => DiskBound::Unbounded(format!(
                "the Docker Engine's data root {root} is overlay2 on XFS mounted without project quotas, which cannot \
                 bound a container's writable layer (mount it with pquota)"
            )),
            Some(true) | None => DiskBound::Bounded,
        });
    }
    Ok(DiskBound::Unbounded(format!(
        "the Docker Engine's data root {root} is {driver} on {backing}, which cannot bound a container's writable layer \
         (`--storage-opt size` needs overlay2 on XFS mounted with pquota)"
    )))
}

/// Whether the filesystem holding `path` is mounted with project quotas (`prjquota`), from this process's mount
/// table; `None` when `path` is on no mount listed there.
fn project_quotas(path: &Path) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mount_has_project_quotas(&table, path)
}

/// [`project_quotas`] on a given mount table: the longest mount point that holds `path` decides.
pub(crate) fn mount_has_project_quotas(mountinfo: &str, path: &Path) -> Option<bool> {
    let mut best: Option<(usize, bool)> = None;
    for line in mountinfo.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(dash)) = (fields.get(4), fields.iter().position(|f| *f == "-")) else { continue };
        let point = point.replace("\\040", " ");
        if !path.starts_with(&point) {
            continue;
        }
        let super_opts = fields.get(dash + 3).copied().unwrap_or("");
        let quotas = super_opts.split(',').any(|o| matches!(o, "prjquota" | "pquota" | "pqnoenforce"));
        if best.is_none_or(|(len, _)| point.len() >= len) {
            best = Some((point.len(), quotas));
        }
    }
    best.map(|(_, q)| q)
}

/// The host configuration of a candidate container.
pub(super) fn host_config(limits: &Limits, shim: &Path, network: &str, disk: &DiskBound) -> HostConfig {
    let memory = limits.memory_bytes as i64;
    let storage_opt = match disk {
        DiskBound::Bounded => Some(HashMap::from([("size".to_string(), limits.disk_bytes.to_string())])),
        DiskBound::Unbounded(_) => None,
    };
    HostConfig {
        binds: Some(vec![format!("{}:{SHIM_IN_CONTAINER}:ro", shim.display())]),
        network_mode: Some(network.to_string()),
        privileged: Some(false),
        cap_drop: Some(vec!["ALL".into()]),
        cap_add: Some(capabilities_added().iter().map(|c| c.to_string()).collect()),
        security_opt: Some(vec!["no-new-privileges:true".into(), format!("seccomp={}", seccomp_profile())]),
        memory: Some(memory),
        memory_swap: Some(memory),
        pids_limit: Some(limits.pids as i64),
        nano_cpus: Some(i64::from(limits.cpu_millicores) * 1_000_000),
        shm_size: Some((memory / 4).min(64 << 20)),
        storage_opt,
        init: Some(false),
        auto_remove: Some(false),
        // What the shim prints, bounded.
        log_config: Some(HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::from([
                ("max-size".to_string(), "1m".to_string()),
                ("max-file".to_string(), "1".to_string()),
            ])),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ioctl rules allow exactly the requests whose low 32 bits are neither TIOCSTI nor TIOCLINUX.
    #[test]
    fn ioctl_rules_refuse_exactly_tiocsti_and_tioclinux() {
        let rules = ioctl_rules();
        let allowed = |v: u64| rules.iter().any(|(m, d)| v & m == *d);
        for v in [TIOCSTI, TIOCLINUX, TIOCSTI | 1 << 32, TIOCLINUX | 0xffff_ffff_0000_0000] {
            assert!(!allowed(v), "{v:#x} is allowed");
        }
        // TCGETS, TIOCGWINSZ, TIOCSWINSZ, FIONREAD, TIOCGPTPEER, and the neighbours of the two.
        for v in [0x5401, 0x5413, 0x5414, 0x541B, 0x5441, 0x541D, 0x5410, 0x5411, 0x0, 0xffff_ffff, 0x1_0000_0000] {
            if v & 0xffff_ffff != TIOCSTI && v & 0xffff_ffff != TIOCLINUX {
                assert!(allowed(v), "{v:#x} is refused");
            }
        }
        for v in 0x5400u64..0x5500 {
            assert_eq!(allowed(v), v != TIOCSTI && v != TIOCLINUX, "{v:#x}");
        }
    }

    #[test]
    fn the_profile_keeps_the_sandboxs_refusals() {
        let p = seccomp_profile();
        assert_eq!(p["defaultAction"], "SCMP_ACT_ERRNO");
        let allowed: Vec<String> = p["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|s| s["names"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_string()))
            .collect();
        for refused in [
            "keyctl",
            "add_key",
            "bpf",
            "userfaultfd",
            "perf_event_open",
            "mount",
            "umount2",
            "pivot_root",
            "open_tree",
            "move_mount",
            "fsopen",
            "unshare",
            "setns",
            "kexec_load",
            "kexec_file_load",
            "init_module",
            "finit_module",
            "delete_module",
            "io_uring_setup",
            "open_by_handle_at",
            "clone3",
            "reboot",
            "swapon",
            "ptrace",
            "process_vm_readv",
            "process_vm_writev",
        ] {
            assert!(!allowed.iter().any(|a| a == refused), "{refused} is allowed");
        }
        for needed in ["read", "execve", "clone", "ioctl", "socket", "setuid", "prctl", "wait4", "chroot"] {
            assert!(allowed.iter().any(|a| a == needed), "{needed} is not allowed");
        }
        // Every conditional syscall of the sandbox has rules here, and nothing else is conditional.
        for name in allowed_syscall_names().iter().filter(|n| !REFUSED_HERE.contains(n)) {
            assert!(allowed.iter().any(|a| a == name), "{name} of the sandbox's list is missing");
        }
    }

    #[test]
    fn project_quotas_are_read_from_the_longest_mount() {
        let table = "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw\n\
                     30 22 7:0 / /var/lib/docker rw,relatime - xfs /dev/loop0 rw,attr2,inode64,prjquota\n\
                     31 22 7:1 / /srv/plain rw,relatime - xfs /dev/loop1 rw,attr2,inode64,noquota\n";
        assert_eq!(mount_has_project_quotas(table, Path::new("/var/lib/docker")), Some(true));
        assert_eq!(mount_has_project_quotas(table, Path::new("/var/lib/docker/overlay2")), Some(true));
        assert_eq!(mount_has_project_quotas(table, Path::new("/srv/plain/docker")), Some(false));
        assert_eq!(mount_has_project_quotas(table, Path::new("/var/lib")), Some(false));
        assert_eq!(mount_has_project_quotas("", Path::new("/x")), None);
    }

    #[test]
    fn no_ptrace_capability_and_never_privileged() {
        assert!(!capabilities_added().iter().any(|c| c.contains("PTRACE") || *c == "SYS_ADMIN" || *c == "NET_RAW"));
        let hc = host_config(&Limits::default(), Path::new("/s"), "n", &DiskBound::Unbounded("x".into()));
        assert_eq!(hc.privileged, Some(false));
        assert_eq!(hc.cap_drop, Some(vec!["ALL".to_string()]));
        assert_eq!(hc.memory, hc.memory_swap);
        assert!(hc.storage_opt.is_none());
        let hc = host_config(&Limits::default(), Path::new("/s"), "n", &DiskBound::Bounded);
        assert_eq!(hc.storage_opt.unwrap()["size"], (256u64 << 20).to_string());
    }
}
