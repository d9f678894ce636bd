//! `examroom doctor`: checks that this host can run examroom, and says what to fix.
//!
//! Each check is `ok`, `warn` or `fail`, with a summary and, unless it is `ok`, the exact fix. `doctor` exits
//! non-zero when any check fails; `serve` runs the same checks at start, logs them, and refuses to start only on the
//! fatal ones (without them no environment could be made at all).
//!
//! The reading ([`read`], the probes) is thin; the verdicts ([`checks`] and the function per check) are pure and take
//! the readings as input.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use examroom_runtime::sandbox::cgroup::{self, Layout, RealOs};
use examroom_runtime::sandbox::sys;
use serde::Serialize;

use crate::capacity::{self, Demand, HostReadings, KernelTable, Sizing, MIB};

/// How a check came out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but something is less than it should be.
    Warn,
    /// Broken, or too small for the configuration.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `fail`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Its name: `user_namespaces`, `idmapped_mounts`, `cgroups`, `file_max`, `pid_max`, `threads_max`, `fuse`,
    /// `memory`, `open_files`.
    pub name: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What was found.
    pub summary: String,
    /// What to do about it (the exact command where there is one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Whether `serve` refuses to start on it.
    pub fatal: bool,
}

impl Check {
    fn ok(name: &'static str, summary: String) -> Check {
        Check { name, verdict: Verdict::Ok, summary, fix: None, fatal: false }
    }

    fn warn(name: &'static str, summary: String, fix: String) -> Check {
        Check { name, verdict: Verdict::Warn, summary, fix: Some(fix), fatal: false }
    }

    fn fail(name: &'static str, summary: String, fix: String) -> Check {
        Check { name, verdict: Verdict::Fail, summary, fix: Some(fix), fatal: false }
    }

    fn fatal(mut self) -> Check {
        self.fatal = true;
        self
    }
}

/// Everything the checks look at.
#[derive(Clone, Debug)]
pub struct Readings {
    /// Whether this process is root.
    pub is_root: bool,
    /// `/proc/sys/user/max_user_namespaces`, if readable.
    pub max_user_namespaces: Option<u64>,
    /// Creating a user namespace.
    pub user_namespace: Result<(), String>,
    /// An idmapped mount of each path of [`Readings::idmap_paths`].
    pub idmapped_mount: Result<(), String>,
    /// The paths the idmapped mount was tried on.
    pub idmap_paths: Vec<PathBuf>,
    /// The cgroup layout.
    pub cgroups: Result<Layout, String>,
    /// On a v2 host: the root's `cgroup.controllers`.
    pub v2_controllers: Option<String>,
    /// Memory and the kernel's tables.
    pub host: Result<HostReadings, String>,
    /// The tables this process may change.
    pub writable: Vec<KernelTable>,
    /// `/dev/fuse` is a character device.
    pub fuse_device: bool,
    /// `fuse` is in `/proc/filesystems`.
    pub fuse_filesystem: bool,
    /// This process's `RLIMIT_NOFILE` (soft, hard).
    pub nofile: (u64, u64),
}

/// What the configuration asks of the host, beside the [`Demand`].
#[derive(Clone, Debug, PartialEq)]
pub struct Wanted {
    /// The admission demand.
    pub demand: Demand,
    /// The exam with the largest memory limit and that limit, if the catalog has exams.
    pub largest_exam: Option<(String, u64)>,
}

/// The v1 controllers an environment's group needs (see `cgroup/v1.rs`).
pub const V1_CONTROLLERS: [&str; 4] = ["memory", "pids", "cpu", "freezer"];

fn mib(bytes: u64) -> String {
    format!("{} MiB", bytes / MIB)
}

/// User namespaces: enabled and creatable. The runtime uses them when `max_user_namespaces` is above 0, so a
/// namespace that cannot be created then is fatal; with 0 it falls back to an unprivileged host uid.
pub fn user_namespaces(max: Option<u64>, probe: &Result<(), String>) -> Check {
    const NAME: &str = "user_namespaces";
    match (max, probe) {
        (None, _) => Check::warn(
            NAME,
            "cannot read /proc/sys/user/max_user_namespaces: environments run without a user namespace (the \
             unprivileged-uid fallback)"
                .into(),
            "mount /proc, and use a kernel with user namespaces (CONFIG_USER_NS)".into(),
        ),
        (Some(0), _) => Check::warn(
            NAME,
            "user namespaces are disabled (max_user_namespaces = 0): candidates run as an unprivileged host uid, \
             without root inside their environment"
                .into(),
            "sysctl -w user.max_user_namespaces=15000".into(),
        ),
        (Some(n), Ok(())) => Check::ok(NAME, format!("max_user_namespaces = {n}; creating one worked")),
        (Some(n), Err(e)) => Check::fail(
            NAME,
            format!("max_user_namespaces = {n}, but creating one failed ({e}): every environment would fail"),
            "run examroom where root may create user namespaces (not in a container that forbids them), or \
             `sysctl -w user.max_user_namespaces=0` to use the fallback without them"
                .into(),
        )
        .fatal(),
    }
}

/// Idmapped mounts: needed (and so fatal when missing) only with user namespaces.
pub fn idmapped_mounts(userns_in_use: bool, is_root: bool, paths: &[PathBuf], probe: &Result<(), String>) -> Check {
    const NAME: &str = "idmapped_mounts";
    let on = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" and ");
    match probe {
        _ if !userns_in_use => Check::ok(NAME, "not needed: environments run without a user namespace".into()),
        Ok(()) => Check::ok(NAME, format!("an idmapped mount of {on} worked")),
        Err(e) if !is_root => Check::fail(
            NAME,
            format!("an idmapped mount of {on} failed ({e}); this needs root"),
            "run `examroom doctor` (and `examroom serve`) as root".into(),
        )
        .fatal(),
        Err(e) => Check::fail(
            NAME,
            format!("an idmapped mount of {on} failed ({e}): every environment would fail"),
            "use a kernel 5.12 or newer, with /usr and the data directory on filesystems that support idmapped mounts \
             (ext4, xfs, btrfs; tmpfs from 6.3)"
                .into(),
        )
        .fatal(),
    }
}

/// The cgroup layout and the controllers environments need.
pub fn cgroups(layout: &Result<Layout, String>, v2_controllers: Option<&str>) -> Check {
    const NAME: &str = "cgroups";
    match layout {
        Err(e) => Check::fail(
            NAME,
            format!("no usable cgroup hierarchy: {e}"),
            "mount cgroup2: `mount -t cgroup2 none /sys/fs/cgroup`".into(),
        )
        .fatal(),
        Ok(Layout::V1 { controllers, unified }) => {
            let missing: Vec<&str> = V1_CONTROLLERS.iter().copied().filter(|c| !controllers.contains_key(*c)).collect();
            let kind = match unified {
                Some(u) => format!("hybrid (v1 controllers, cgroup2 at {})", u.display()),
                None => "v1 (legacy)".to_string(),
            };
            match missing.first() {
                None => Check::ok(NAME, format!("{kind}; {} mounted", V1_CONTROLLERS.join(", "))),
                Some(c) => Check::fail(
                    NAME,
                    format!("{kind}, but no hierarchy has {}", missing.join(", ")),
                    format!("mkdir -p /sys/fs/cgroup/{c} && mount -t cgroup -o {c} cgroup /sys/fs/cgroup/{c}"),
                )
                .fatal(),
            }
        }
        Ok(Layout::V2 { root }) => {
            let have: Vec<&str> = v2_controllers.unwrap_or("").split_whitespace().collect();
            let missing: Vec<&str> = cgroup::v2::CONTROLLERS.iter().copied().filter(|c| !have.contains(c)).collect();
            if missing.is_empty() {
                Check::ok(NAME, format!("v2 at {}; {} available", root.display(), cgroup::v2::CONTROLLERS.join(", ")))
            } else {
                Check::fail(
                    NAME,
                    format!("v2 at {}, but {} missing from cgroup.controllers", root.display(), missing.join(", ")),
                    format!(
                        "enable {} (check /proc/cgroups, `cgroup_disable=` on the kernel command line, and that no v1 \
                         hierarchy holds them)",
                        missing.join(", ")
                    ),
                )
                .fatal()
            }
        }
    }
}

/// A kernel table against what the configuration needs. Too small is a warning when `serve` can raise it at start,
/// and a failure when it cannot (it then admits less: `fit`).
pub fn table(t: KernelTable, host: &HostReadings, demand: &Demand, s: &Sizing, writable: bool) -> Check {
    let name = match t {
        KernelTable::Files => "file_max",
        KernelTable::Pids => "pid_max",
        KernelTable::Threads => "threads_max",
    };
    let current = t.current(host);
    let needed = t.needed(s);
    let why = match t {
        KernelTable::Files => {
            format!("for {} of environment memory at {} bytes per open file", mib(s.chargeable), s.file_cost)
        }
        _ => format!("for {} sessions of up to {} tasks", s.max_sessions, s.tasks_per_session),
    };
    if current >= needed {
        return Check::ok(name, format!("{} = {current}, at least the {needed} needed {why}", t.name()));
    }
    let sf = capacity::Shortfall { table: t, current, needed };
    let persist =
        format!("{} (persist it as `{} = {}` in /etc/sysctl.d/90-examroom.conf)", sf.command(), t.name(), sf.target());
    if writable {
        return Check::warn(
            name,
            format!("{} = {current}, below the {needed} needed {why}; `examroom serve` raises it at start", t.name()),
            persist,
        );
    }
    let fit = capacity::fit(host, demand, s);
    let admits = match t {
        KernelTable::Files => {
            format!("a memory budget of {} instead of {}", mib(fit.memory_budget), mib(s.memory_budget))
        }
        _ => format!("{} live sessions instead of {}", fit.max_live_sessions, demand.max_live_sessions),
    };
    Check::fail(
        name,
        format!(
            "{} = {current}, below the {needed} needed {why}, and this process cannot change it: `examroom serve` \
             would admit only {admits}",
            t.name()
        ),
        persist,
    )
}

/// Memory: the budget against the host's free memory and the largest exam.
pub fn memory(host: &HostReadings, demand: &Demand, s: &Sizing, largest_exam: Option<&(String, u64)>) -> Check {
    const NAME: &str = "memory";
    let configured = if demand.host_memory.is_some() { " (configured)" } else { "" };
    let budget = format!(
        "a budget of {} ({} × {}{configured} host memory)",
        mib(s.memory_budget),
        demand.memory_share,
        mib(s.host_memory)
    );
    if let Some((exam, need)) = largest_exam.filter(|(_, need)| *need > s.memory_budget) {
        return Check::fail(
            NAME,
            format!("exam {exam} needs {}, more than {budget}: it can never start", mib(*need)),
            format!("raise --memory-share, or lower the memory of exam {exam}"),
        );
    }
    if host.mem_available < s.memory_budget {
        let share = ((host.mem_available as f64 / s.host_memory.max(1) as f64) * 20.0).floor() / 20.0;
        return Check::warn(
            NAME,
            format!(
                "{} available of {} total, less than {budget}: other processes hold memory, and environments may \
                 meet the host's out-of-memory killer before their own limits",
                mib(host.mem_available),
                mib(host.mem_total)
            ),
            format!("free memory, or start with --memory-share {share:.2}"),
        );
    }
    Check::ok(NAME, format!("{} available of {} total; {budget}", mib(host.mem_available), mib(host.mem_total)))
}

/// FUSE: not needed by the sandbox today; LXCFS (environment-sized `free` and `top`) needs it.
pub fn fuse(device: bool, filesystem: bool) -> Check {
    const NAME: &str = "fuse";
    if device && filesystem {
        return Check::ok(NAME, "/dev/fuse exists and fuse is in /proc/filesystems".into());
    }
    let what = match (device, filesystem) {
        (false, false) => "no /dev/fuse and no fuse in /proc/filesystems",
        (false, true) => "no /dev/fuse",
        _ => "fuse is not in /proc/filesystems",
    };
    Check::warn(
        NAME,
        format!("{what}: examroom runs without it, but LXCFS (which needs it) cannot"),
        "modprobe fuse".into(),
    )
}

/// The server's open-file limit for its sessions' connections.
pub fn open_files(soft: u64, hard: u64, max_sessions: usize) -> Check {
    const NAME: &str = "open_files";
    let needed = capacity::server_nofile_needed(max_sessions);
    let now = format!("RLIMIT_NOFILE of this process is {soft} (hard {hard})");
    if soft >= needed {
        return Check::ok(NAME, format!("{now}, at least the {needed} needed for {max_sessions} sessions"));
    }
    let fix = if hard >= needed {
        format!("start the server with `ulimit -n {needed}`, or LimitNOFILE={needed} in its systemd unit")
    } else {
        format!("as root, `ulimit -Hn {needed} && ulimit -n {needed}` before starting the server, or LimitNOFILE={needed} in its systemd unit")
    };
    Check::fail(NAME, format!("{now}, below the {needed} needed for {max_sessions} sessions"), fix)
}

/// Every check, in order.
pub fn checks(r: &Readings, wanted: &Wanted) -> Vec<Check> {
    let mut out = vec![
        user_namespaces(r.max_user_namespaces, &r.user_namespace),
        idmapped_mounts(r.max_user_namespaces.is_some_and(|n| n > 0), r.is_root, &r.idmap_paths, &r.idmapped_mount),
        cgroups(&r.cgroups, r.v2_controllers.as_deref()),
    ];
    match &r.host {
        Ok(host) => {
            let s = capacity::size(host, &wanted.demand);
            for t in KernelTable::ALL {
                out.push(table(t, host, &wanted.demand, &s, r.writable.contains(&t)));
            }
            out.push(memory(host, &wanted.demand, &s, wanted.largest_exam.as_ref()));
            out.push(fuse(r.fuse_device, r.fuse_filesystem));
            out.push(open_files(r.nofile.0, r.nofile.1, usize::try_from(s.max_sessions).unwrap_or(usize::MAX)));
        }
        Err(e) => {
            for name in ["file_max", "pid_max", "threads_max", "memory"] {
                out.push(Check::fail(name, format!("cannot read the host: {e}"), "mount /proc".into()));
            }
            out.push(fuse(r.fuse_device, r.fuse_filesystem));
            out.push(open_files(r.nofile.0, r.nofile.1, wanted.demand.max_live_sessions));
        }
    }
    out
}

/// The report as text: one line per check, its fix below it, and a count.
pub fn render(checks: &[Check]) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for c in checks {
        out.push_str(&format!("{:<4}  {:<width$}  {}\n", c.verdict.as_str(), c.name, c.summary));
        if let Some(fix) = &c.fix {
            out.push_str(&format!("{:<4}  {:<width$}  fix: {fix}\n", "", ""));
        }
    }
    let count = |v| checks.iter().filter(|c| c.verdict == v).count();
    out.push_str(&format!(
        "{} ok, {} warnings, {} failures\n",
        count(Verdict::Ok),
        count(Verdict::Warn),
        count(Verdict::Fail)
    ));
    out
}

/// The report as JSON: `{"ok": bool, "checks": [...]}`, `ok` when nothing failed.
pub fn render_json(checks: &[Check]) -> serde_json::Value {
    serde_json::json!({ "ok": checks.iter().all(|c| c.verdict != Verdict::Fail), "checks": checks })
}

// Reading the host (thin).

/// A uid just beyond the environments' pool (which ends at `0xF0000000`): the probe's namespace maps to it, and the
/// probe's mount is never attached, so nothing ever belongs to it.
const PROBE_UID_BASE: u32 = 0xF000_0000;

/// A child process in its own user namespace, killed and reaped when dropped.
struct NamespaceHolder(libc::pid_t);

impl Drop for NamespaceHolder {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(pid, None);
    }
}

/// Starts a child in a new user namespace that waits to be killed.
fn hold_user_namespace() -> Result<NamespaceHolder, String> {
    // SAFETY: the child only calls pause(), which is async-signal-safe, until it is killed.
    match unsafe { sys::clone_into_namespaces(libc::CLONE_NEWUSER) } {
        Ok(0) => loop {
            // SAFETY: pause has no preconditions.
            unsafe { libc::pause() };
        },
        Ok(pid) => Ok(NamespaceHolder(pid)),
        Err(e) => Err(format!("clone(CLONE_NEWUSER): {e}")),
    }
}

/// Creates a user namespace (in a child that is then killed).
pub fn probe_user_namespace() -> Result<(), String> {
    hold_user_namespace().map(drop)
}

/// Makes an idmapped, detached mount of each path through a fresh user namespace, as the runtime does for the base
/// trees, and drops it unattached.
pub fn probe_idmapped_mounts(paths: &[PathBuf]) -> Result<(), String> {
    let holder = hold_user_namespace()?;
    let pid = holder.0;
    for map in ["uid_map", "gid_map"] {
        let file = format!("/proc/{pid}/{map}");
        std::fs::write(&file, format!("0 {PROBE_UID_BASE} 65536\n")).map_err(|e| format!("write {file}: {e}"))?;
    }
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/user")).map_err(|e| format!("open the namespace: {e}"))?;
    for p in paths {
        sys::detached_idmapped_tree(p, Some(ns.as_raw_fd()), 0).map_err(|e| format!("{}: {e}", p.display()))?;
    }
    Ok(())
}

fn read_v2_controllers(layout: &Result<Layout, String>) -> Option<String> {
    match layout {
        Ok(Layout::V2 { root }) => std::fs::read_to_string(root.join("cgroup.controllers")).ok(),
        _ => None,
    }
}

/// Reads everything the checks need. The idmapped mount is tried on `/usr` (the host base) and on a temporary
/// directory in `data_dir` (where the curated `/etc` lives) when it exists, else in the system's temporary directory.
pub fn read(data_dir: &Path) -> Readings {
    use std::os::unix::fs::FileTypeExt;
    let max_user_namespaces =
        std::fs::read_to_string("/proc/sys/user/max_user_namespaces").ok().and_then(|s| s.trim().parse().ok());
    let tmp = tempfile::Builder::new().prefix(".examroom-doctor-").tempdir_in(if data_dir.is_dir() {
        data_dir.to_path_buf()
    } else {
        std::env::temp_dir()
    });
    let (idmap_paths, idmapped_mount) = match &tmp {
        Ok(t) => {
            let paths = vec![PathBuf::from("/usr"), t.path().to_path_buf()];
            let probe = probe_idmapped_mounts(&paths);
            (paths, probe)
        }
        Err(e) => (vec![], Err(format!("cannot make a temporary directory: {e}"))),
    };
    drop(tmp);
    let layout = cgroup::detect_layout(&RealOs).map_err(|e| e.to_string());
    let nofile = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap_or((0, 0));
    Readings {
        is_root: nix::unistd::geteuid().is_root(),
        max_user_namespaces,
        user_namespace: probe_user_namespace(),
        idmapped_mount,
        idmap_paths,
        v2_controllers: read_v2_controllers(&layout),
        cgroups: layout,
        host: capacity::read_host().map_err(|e| e.to_string()),
        writable: KernelTable::ALL.into_iter().filter(|t| capacity::writable(*t)).collect(),
        fuse_device: std::fs::metadata("/dev/fuse").is_ok_and(|m| m.file_type().is_char_device()),
        fuse_filesystem: std::fs::read_to_string("/proc/filesystems")
            .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().last() == Some("fuse"))),
        nofile: (nofile.0, nofile.1),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn host() -> HostReadings {
        HostReadings {
            mem_total: 24 << 30,
            mem_available: 23 << 30,
            file_max: 2_466_097,
            files_open: 424,
            file_cost: Some(192),
            pid_max: 32_768,
            threads_max: 192_724,
            tasks: 88,
        }
    }

    fn demand() -> Demand {
        Demand {
            memory_share: 0.8,
            host_memory: None,
            max_live_sessions: 200,
            max_exam_pids: 512,
            min_exam_memory: 256 * MIB,
        }
    }

    fn hybrid() -> Layout {
        let mut controllers = BTreeMap::new();
        for c in ["memory", "pids", "cpu", "cpuacct", "freezer", "name=systemd"] {
            controllers.insert(c.to_string(), PathBuf::from(format!("/sys/fs/cgroup/{c}")));
        }
        Layout::V1 { controllers, unified: Some(PathBuf::from("/sys/fs/cgroup/unified")) }
    }

    fn good() -> Readings {
        Readings {
            is_root: true,
            max_user_namespaces: Some(96_364),
            user_namespace: Ok(()),
            idmapped_mount: Ok(()),
            idmap_paths: vec![PathBuf::from("/usr"), PathBuf::from("/var/lib/examroom/.x")],
            cgroups: Ok(hybrid()),
            v2_controllers: None,
            host: Ok(host()),
            writable: KernelTable::ALL.to_vec(),
            fuse_device: true,
            fuse_filesystem: true,
            nofile: (20_000, 20_000),
        }
    }

    fn wanted() -> Wanted {
        Wanted { demand: demand(), largest_exam: Some(("linux-basics".into(), 512 * MIB)) }
    }

    fn find<'a>(checks: &'a [Check], name: &str) -> &'a Check {
        checks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no check {name}"))
    }

    #[test]
    fn every_check_is_reported_once_in_order() {
        let c = checks(&good(), &wanted());
        let names: Vec<_> = c.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "user_namespaces",
                "idmapped_mounts",
                "cgroups",
                "file_max",
                "pid_max",
                "threads_max",
                "memory",
                "fuse",
                "open_files"
            ]
        );
        // This host as it was before the fix: the tables are too small but serve can raise them.
        for name in ["file_max", "pid_max"] {
            let t = find(&c, name);
            assert_eq!(t.verdict, Verdict::Warn, "{t:?}");
            assert!(t.summary.contains("raises it at start"), "{t:?}");
            assert!(t.fix.as_deref().unwrap().starts_with("sysctl -w "), "{t:?}");
        }
        assert!(c.iter().all(|c| !c.fatal));
    }

    #[test]
    fn a_table_serve_cannot_raise_fails_and_says_what_is_admitted_instead() {
        let r = Readings { writable: vec![], ..good() };
        let c = checks(&r, &wanted());
        let s = capacity::size(&host(), &demand());
        let pid = find(&c, "pid_max");
        assert_eq!(pid.verdict, Verdict::Fail);
        assert!(!pid.fatal, "serve runs degraded rather than refusing");
        assert!(pid.summary.contains("cannot change it"), "{pid:?}");
        assert!(pid.summary.contains("live sessions instead of 200"), "{pid:?}");
        assert!(pid.fix.as_deref().unwrap().starts_with(&format!("sysctl -w kernel.pid_max={}", s.pid_max)));
        let files = find(&c, "file_max");
        assert!(files.summary.contains("a memory budget of"), "{files:?}");
        assert!(files.fix.as_deref().unwrap().starts_with(&format!("sysctl -w fs.file-max={}", s.file_max)));
    }

    #[test]
    fn a_big_enough_table_is_ok() {
        let s = capacity::size(&host(), &demand());
        let mut h = host();
        h.pid_max = s.pid_max;
        let c = table(KernelTable::Pids, &h, &demand(), &s, false);
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
        assert_eq!(c.fix, None);
    }

    #[test]
    fn user_namespaces_verdicts() {
        assert_eq!(user_namespaces(Some(10), &Ok(())).verdict, Verdict::Ok);
        let off = user_namespaces(Some(0), &Ok(()));
        assert_eq!((off.verdict, off.fatal), (Verdict::Warn, false));
        assert_eq!(off.fix.as_deref(), Some("sysctl -w user.max_user_namespaces=15000"));
        let broken = user_namespaces(Some(10), &Err("EPERM".into()));
        assert_eq!((broken.verdict, broken.fatal), (Verdict::Fail, true));
        assert!(broken.summary.contains("EPERM"));
        assert_eq!(user_namespaces(None, &Ok(())).verdict, Verdict::Warn);
    }

    #[test]
    fn idmapped_mounts_matter_only_with_user_namespaces() {
        let paths = [PathBuf::from("/usr")];
        let err: Result<(), String> = Err("/usr: EINVAL".into());
        assert_eq!(idmapped_mounts(false, true, &paths, &err).verdict, Verdict::Ok);
        let c = idmapped_mounts(true, true, &paths, &err);
        assert_eq!((c.verdict, c.fatal), (Verdict::Fail, true));
        assert!(c.fix.unwrap().contains("5.12"));
        let c = idmapped_mounts(true, false, &paths, &err);
        assert!(c.fix.unwrap().contains("as root"));
        assert_eq!(idmapped_mounts(true, true, &paths, &Ok(())).verdict, Verdict::Ok);
    }

    #[test]
    fn cgroup_layouts() {
        let c = cgroups(&Ok(hybrid()), None);
        assert_eq!(c.verdict, Verdict::Ok);
        assert!(c.summary.starts_with("hybrid"), "{c:?}");
        let Layout::V1 { mut controllers, .. } = hybrid() else { unreachable!() };
        controllers.remove("freezer");
        let c = cgroups(&Ok(Layout::V1 { controllers, unified: None }), None);
        assert_eq!((c.verdict, c.fatal), (Verdict::Fail, true));
        assert!(c.summary.starts_with("v1 (legacy)") && c.summary.contains("freezer"), "{c:?}");
        assert_eq!(
            c.fix.as_deref(),
            Some("mkdir -p /sys/fs/cgroup/freezer && mount -t cgroup -o freezer cgroup /sys/fs/cgroup/freezer")
        );
        let v2 = Ok(Layout::V2 { root: PathBuf::from("/sys/fs/cgroup") });
        assert_eq!(cgroups(&v2, Some("cpuset cpu io memory hugetlb pids rdma misc\n")).verdict, Verdict::Ok);
        let c = cgroups(&v2, Some("cpuset io memory\n"));
        assert_eq!((c.verdict, c.fatal), (Verdict::Fail, true));
        assert!(c.summary.contains("pids, cpu"), "{c:?}");
        let c = cgroups(&Err("no cgroup filesystem is mounted".into()), None);
        assert_eq!((c.verdict, c.fatal), (Verdict::Fail, true));
        assert_eq!(c.fix.as_deref(), Some("mount cgroup2: `mount -t cgroup2 none /sys/fs/cgroup`"));
    }

    #[test]
    fn memory_verdicts() {
        let s = capacity::size(&host(), &demand());
        let c = memory(&host(), &demand(), &s, Some(&("big".into(), 512 * MIB)));
        assert_eq!(c.verdict, Verdict::Ok, "{c:?}");
        // An exam larger than the whole budget can never start.
        let c = memory(&host(), &demand(), &s, Some(&("huge".into(), 64 << 30)));
        assert_eq!((c.verdict, c.fatal), (Verdict::Fail, false));
        assert!(c.summary.contains("exam huge needs 65536 MiB"), "{c:?}");
        // Other processes hold memory: the budget does not fit what is free.
        let busy = HostReadings { mem_available: 8 << 30, ..host() };
        let c = memory(&busy, &demand(), &s, None);
        assert_eq!(c.verdict, Verdict::Warn, "{c:?}");
        assert_eq!(c.fix.as_deref(), Some("free memory, or start with --memory-share 0.30"));
        // A configured host memory says so.
        let d = Demand { host_memory: Some(1536 * MIB), ..demand() };
        let c = memory(&host(), &d, &capacity::size(&host(), &d), None);
        assert!(c.summary.contains("1536 MiB (configured) host memory"), "{c:?}");
    }

    #[test]
    fn fuse_and_open_files() {
        assert_eq!(fuse(true, true).verdict, Verdict::Ok);
        let c = fuse(false, false);
        assert_eq!((c.verdict, c.fix.as_deref()), (Verdict::Warn, Some("modprobe fuse")));
        assert_eq!(open_files(20_000, 20_000, 200).verdict, Verdict::Ok);
        let c = open_files(1024, 524_288, 200);
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.fix.unwrap().starts_with("start the server with `ulimit -n 4224`"));
        let c = open_files(1024, 1024, 200);
        assert!(c.fix.unwrap().contains("ulimit -Hn 4224"));
    }

    #[test]
    fn an_unreadable_host_fails_its_checks_but_still_names_them() {
        let r = Readings { host: Err("no /proc".into()), ..good() };
        let c = checks(&r, &wanted());
        assert_eq!(c.len(), 9);
        assert_eq!(find(&c, "file_max").verdict, Verdict::Fail);
    }

    #[test]
    fn renders_text_and_json() {
        let c = vec![
            Check::ok("cgroups", "fine".into()),
            Check::fail("pid_max", "too small".into(), "sysctl -w kernel.pid_max=9".into()),
        ];
        let text = render(&c);
        assert_eq!(
            text,
            "ok    cgroups  fine\nfail  pid_max  too small\n               fix: sysctl -w kernel.pid_max=9\n\
             1 ok, 0 warnings, 1 failures\n"
        );
        let json = render_json(&c);
        assert_eq!(json["ok"], false);
        assert_eq!(json["checks"][1]["verdict"], "fail");
        assert_eq!(json["checks"][1]["fix"], "sysctl -w kernel.pid_max=9");
        assert!(json["checks"][0].get("fix").is_none());
        assert_eq!(render_json(&c[..1])["ok"], true);
    }

    #[test]
    fn the_real_probes_run() {
        // As root on a host with user namespaces (the test host), both probes work; elsewhere they answer an error.
        let r = read(&std::env::temp_dir());
        assert_eq!(r.idmap_paths.len(), 2);
        if r.is_root && r.max_user_namespaces.is_some_and(|n| n > 0) {
            assert_eq!(r.user_namespace, Ok(()));
            assert_eq!(r.idmapped_mount, Ok(()));
        }
        assert!(r.host.is_ok());
    }
}
