//! Resource limits for environments with cgroups: cgroup v1 (legacy or
//! hybrid hosts) and pure cgroup v2, behind an OS trait.
//!
//! # Tree
//!
//! In every hierarchy a group lives in, the tree is
//!
//! ```text
//! <mount>/<root>/<label>/envs/<env>    an environment's sandbox processes (limited)
//! <mount>/<root>/<label>/shims/<env>   that environment's shim (not limited)
//! ```
//!
//! `root` defaults to [`DEFAULT_ROOT`]; `label` names one examroom instance
//! (so tests and parallel instances never see each other's groups). `envs/`
//! gets a low CPU weight and `shims/` a high one (v1 `cpu.shares` 128 vs
//! 1024, v2 `cpu.weight` 10 vs 100), so candidates can never starve the
//! control plane.
//!
//! # Layouts
//!
//! * **v1 / hybrid** ([`Layout::V1`]): each controller is its own
//!   hierarchy (`/sys/fs/cgroup/memory`, `/sys/fs/cgroup/pids`, ...), so a
//!   group is one directory per hierarchy. An environment's group is in
//!   memory, pids, cpu, freezer (and cpuacct when mounted separately); a
//!   shim's group is in memory, pids, cpu, and also in `name=systemd` and
//!   the controller-less unified (cgroup2) hierarchy when mounted, which
//!   takes it out of the server's service so a service manager restarting
//!   the server neither tracks nor kills the shims.
//! * **v2** ([`Layout::V2`]): one directory in the unified hierarchy;
//!   controllers are delegated down through `cgroup.subtree_control`.
//!
//! The layout is detected from `/proc/self/mountinfo` ([`detect_layout`]).
//! A [`Group`] is just its directories, serializable, so a different
//! process (the server, after a shim died) can kill and remove it later.
//!
//! # Killing
//!
//! Killing a group's processes one by one races with them forking. cgroup2
//! has `cgroup.kill`, which kills a group atomically. v1 has nothing of the
//! kind, so there the freezer does it: freeze the group (nothing in it can
//! fork or exit any more), SIGKILL every pid in `cgroup.procs` (the list is
//! now exact and no pid can be recycled under us), thaw (the pending
//! SIGKILLs are delivered; nobody returns to user space to fork), and wait
//! for the group to empty, repeating the round if anything is left.
//!
//! All waiting goes through [`CgroupOs::sleep`], and timeouts are measured
//! as the sum of those sleeps, so the fake OS of the unit tests is fully
//! deterministic.

mod kill;
mod layout;
mod os;
mod plan;
pub mod v1;
pub mod v2;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

pub use layout::{detect_layout, parse_mountinfo, Layout, MOUNTINFO};
pub use os::{CgroupOs, RealOs};

use os::{is_busy, is_not_found};

/// Default first path component below each mount.
pub const DEFAULT_ROOT: &str = "examroom";
/// CFS bandwidth period (µs) used for CPU limits.
pub const CFS_PERIOD_US: u64 = 100_000;
/// The smallest CFS quota (µs) the kernel accepts.
pub const MIN_CFS_QUOTA_US: u64 = 1_000;
/// Polling interval of every wait loop.
pub const POLL_STEP: Duration = Duration::from_millis(10);

/// Errors of this module. Each names the path and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// Reading a file failed.
    #[error("cgroup: cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Writing a control file failed.
    #[error("cgroup: cannot write {data:?} to {path}: {source}")]
    Write {
        /// The control file.
        path: PathBuf,
        /// What was written.
        data: String,
        /// The OS error.
        source: io::Error,
    },
    /// Enabling controllers in `cgroup.subtree_control` failed.
    #[error(
        "cgroup: cannot enable controllers {data:?} in {path}: {source} \
         (a non-root cgroup holding processes itself cannot delegate controllers)"
    )]
    EnableControllers {
        /// The `cgroup.subtree_control` file.
        path: PathBuf,
        /// What was written.
        data: String,
        /// The OS error.
        source: io::Error,
    },
    /// Creating a directory failed.
    #[error("cgroup: cannot create directory {path}: {source}")]
    Mkdir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Removing a directory failed (other than by being busy).
    #[error("cgroup: cannot remove directory {path}: {source}")]
    Rmdir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Listing a directory failed.
    #[error("cgroup: cannot list directory {path}: {source}")]
    ListDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// Sending SIGKILL failed (other than because the process was gone).
    #[error("cgroup: cannot kill pid {pid} of {path}: {source}")]
    Kill {
        /// The process.
        pid: i32,
        /// The group it was in.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// The group's own directory already exists.
    #[error(
        "cgroup: {path} already exists (left over from an earlier environment \
         with the same name? kill and remove it first)"
    )]
    AlreadyExists {
        /// The directory.
        path: PathBuf,
    },
    /// `/proc/self/mountinfo` lists no cgroup filesystem.
    #[error("cgroup: no cgroup filesystem is mounted (according to {MOUNTINFO})")]
    NoCgroupMount,
    /// A controller this module needs is not available.
    #[error("cgroup: controller {controller:?} is not available: {detail}")]
    MissingController {
        /// The controller.
        controller: String,
        /// Why.
        detail: String,
    },
    /// A root, label or environment name that is not a safe path component.
    #[error("cgroup: invalid {what} {value:?}: {reason}")]
    InvalidName {
        /// "root", "label" or "environment name".
        what: &'static str,
        /// The name.
        value: String,
        /// Why.
        reason: &'static str,
    },
    /// A group path outside this instance's tree (refused, so a corrupt
    /// state file cannot make us kill or remove anything else).
    #[error(
        "cgroup: refusing to touch {path}: not <mount>/{root}/{label}/{{envs,shims}}/<name> \
         of a known hierarchy"
    )]
    ForeignPath {
        /// The path.
        path: PathBuf,
        /// This instance's root.
        root: String,
        /// This instance's label.
        label: String,
    },
    /// A pid that cannot be a process (zero or negative).
    #[error("cgroup: refusing to add pid {pid} to {path}")]
    InvalidPid {
        /// The pid.
        pid: i32,
        /// The group.
        path: PathBuf,
    },
    /// The group to kill contains the calling process.
    #[error("cgroup: refusing to kill {path}: it contains the calling process (pid {pid})")]
    ContainsSelf {
        /// The group.
        path: PathBuf,
        /// Our pid.
        pid: i32,
    },
    /// `kill_all` timed out.
    #[error("cgroup: killing {path}: {alive} processes still alive after {waited_ms}ms (pids {pids:?})")]
    StillAlive {
        /// The group (its first directory).
        path: PathBuf,
        /// How many processes are left.
        alive: usize,
        /// Which.
        pids: Vec<i32>,
        /// How long we waited.
        waited_ms: u128,
    },
    /// `remove` timed out on a busy group.
    #[error("cgroup: cannot remove directory {path}: still busy after {waited_ms}ms")]
    Busy {
        /// The directory.
        path: PathBuf,
        /// How long we retried.
        waited_ms: u128,
    },
}

/// Resource limits of one environment. A zero field means "no limit".
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Limits {
    /// Memory limit in bytes; swap adds nothing on top (v1 memsw = same
    /// value, v2 `memory.swap.max` = 0).
    pub memory_bytes: u64,
    /// Maximum number of processes/threads (`pids.max`).
    pub pids: u64,
    /// CPU bandwidth, 1000 = one core: a CFS quota of `millicores * 100` µs
    /// per 100000 µs period (at least 1000 µs, the kernel's minimum).
    pub cpu_millicores: u32,
}

impl Limits {
    /// The CFS quota in µs per [`CFS_PERIOD_US`], `None` for no limit.
    pub fn cfs_quota_us(&self) -> Option<u64> {
        match self.cpu_millicores {
            0 => None,
            m => Some((u64::from(m) * (CFS_PERIOD_US / 1000)).max(MIN_CFS_QUOTA_US)),
        }
    }
}

/// A group: one directory per hierarchy it lives in.
///
/// Together with the [`Layout`] this is all the state there is, so a group
/// can be saved (e.g. in an environment's state file) and killed or
/// removed later by another process.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Group {
    /// The group's directories, one per hierarchy.
    pub paths: Vec<PathBuf>,
}

/// The leaf group inside a `system` environment's group for the processes the shim starts there (shells, commands).
pub const ENTRY_LEAF: &str = ".examroom";

/// The child group of an environment's group that holds its desktop's X server (with its VNC server), beside the
/// candidate's processes: the environment's limits and freeze cover it, and the shim can tell it apart.
pub const DESKTOP_LEAF: &str = "desktop";

/// The limit files [`ENTRY_LEAF`] repeats from the environment's group, in the order they can be written (v1's
/// `memsw` after the memory limit, a CFS quota after its period).
const ENTRY_LEAF_LIMITS: &[&str] = &[
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "pids.max",
    "cpu.cfs_period_us",
    "cpu.cfs_quota_us",
    "memory.max",
    "memory.swap.max",
    "cpu.max",
];

/// A group's CPU weight among its siblings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuWeight {
    /// The kernel's default (v1 `cpu.shares` 1024, v2 `cpu.weight` 100).
    Normal,
    /// A sixteenth of that (64, 6): a shim that is still making its environment yields to the shims that relay
    /// candidates' keystrokes.
    Starting,
}

impl CpuWeight {
    fn shares(self) -> u64 {
        match self {
            CpuWeight::Normal => 1024,
            CpuWeight::Starting => 64,
        }
    }
    fn weight(self) -> u64 {
        match self {
            CpuWeight::Normal => 100,
            CpuWeight::Starting => 6,
        }
    }
}

/// Which subtree of `<root>/<label>` a group is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Env,
    Shim,
}

impl Kind {
    fn dir(self) -> &'static str {
        match self {
            Kind::Env => "envs",
            Kind::Shim => "shims",
        }
    }
}

/// The names that make up this instance's paths.
#[derive(Clone, Debug)]
pub(crate) struct Tree {
    root: String,
    label: String,
}

impl Tree {
    fn label_dir(&self, mount: &Path) -> PathBuf {
        mount.join(&self.root).join(&self.label)
    }

    fn kind_dir(&self, mount: &Path, kind: Kind) -> PathBuf {
        self.label_dir(mount).join(kind.dir())
    }

    fn leaf(&self, mount: &Path, kind: Kind, env: &str) -> PathBuf {
        self.kind_dir(mount, kind).join(env)
    }

    /// Every directory from `<mount>/<root...>` down to `<kind>/`, top first.
    fn parents(&self, mount: &Path, kind: Kind) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut p = mount.to_path_buf();
        for seg in self.root.split('/') {
            p.push(seg);
            out.push(p.clone());
        }
        p.push(&self.label);
        out.push(p.clone());
        p.push(kind.dir());
        out.push(p);
        out
    }

    fn validate(&self) -> Result<(), CgroupError> {
        if self.root.is_empty() {
            return Err(invalid("root", &self.root, "empty"));
        }
        for seg in self.root.split('/') {
            check_component("root", &self.root, seg)?;
        }
        if self.label.is_empty() || self.label.len() > 64 {
            return Err(invalid("label", &self.label, "must be 1 to 64 characters"));
        }
        if !self.label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') {
            return Err(invalid("label", &self.label, "allowed characters are [a-z0-9-]"));
        }
        Ok(())
    }

    /// Whether `path` is `<mount>/<root>/<label>/{envs,shims}/<valid name>`, or one of an environment's leaves.
    fn owns(&self, mounts: &[PathBuf], path: &Path) -> bool {
        mounts.iter().any(|m| {
            let Ok(rest) = path.strip_prefix(self.label_dir(m)) else {
                return false;
            };
            let parts: Vec<Component<'_>> = rest.components().collect();
            match parts.as_slice() {
                [Component::Normal(kind), Component::Normal(name)] => {
                    (*kind == "envs" || *kind == "shims") && name.to_str().is_some_and(|n| check_env_name(n).is_ok())
                }
                [Component::Normal(kind), Component::Normal(name), Component::Normal(leaf)] => {
                    *kind == "envs"
                        && name.to_str().is_some_and(|n| check_env_name(n).is_ok())
                        && (*leaf == ENTRY_LEAF || *leaf == DESKTOP_LEAF)
                }
                _ => false,
            }
        })
    }
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> CgroupError {
    CgroupError::InvalidName { what, value: value.to_string(), reason }
}

fn check_component(what: &'static str, whole: &str, seg: &str) -> Result<(), CgroupError> {
    if seg.is_empty() || seg.len() > 128 {
        return Err(invalid(what, whole, "components must be 1 to 128 characters"));
    }
    if seg.starts_with('.') {
        return Err(invalid(what, whole, "must not start with '.'"));
    }
    if !seg.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) {
        return Err(invalid(what, whole, "allowed characters are [A-Za-z0-9._-]"));
    }
    Ok(())
}

/// Environment names: 1 to 128 characters of `[A-Za-z0-9._-]`, not
/// starting with `.`.
fn check_env_name(env: &str) -> Result<(), CgroupError> {
    check_component("environment name", env, env)
}

/// The cgroups of one examroom instance (`<root>/<label>`).
pub struct Cgroups<O: CgroupOs> {
    os: O,
    layout: Layout,
    tree: Tree,
}

impl<O: CgroupOs> Cgroups<O> {
    /// Manages `<root>/<label>` in every hierarchy of `layout`.
    ///
    /// The names are checked by every operation (invalid ones make them
    /// fail with [`CgroupError::InvalidName`]): `root` is one or more
    /// `/`-separated components of `[A-Za-z0-9._-]`, `label` is
    /// `[a-z0-9-]{1,64}`.
    pub fn new(os: O, layout: Layout, root: &str, label: &str) -> Self {
        Cgroups { os, layout, tree: Tree { root: root.trim_matches('/').to_string(), label: label.to_string() } }
    }

    /// [`detect_layout`] then [`Cgroups::new`].
    pub fn detect(os: O, root: &str, label: &str) -> Result<Self, CgroupError> {
        let layout = detect_layout(&os)?;
        Ok(Self::new(os, layout, root, label))
    }

    /// The OS this works through.
    pub fn os(&self) -> &O {
        &self.os
    }

    /// The layout this works with.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// `<mount>/<root>/<label>` in every hierarchy of the layout (whether
    /// it exists or not), e.g. for leak checks.
    pub fn label_dirs(&self) -> Vec<PathBuf> {
        self.layout.mounts().iter().map(|m| self.tree.label_dir(m)).collect()
    }

    /// The group `create_env(env, ..)` makes, computed without touching
    /// the filesystem (to rediscover a group by name).
    pub fn env_group(&self, env: &str) -> Result<Group, CgroupError> {
        self.tree.validate()?;
        check_env_name(env)?;
        let mounts = match &self.layout {
            Layout::V1 { controllers, .. } => v1::env_mounts(controllers)?,
            Layout::V2 { root } => vec![root.clone()],
        };
        Ok(Group { paths: mounts.iter().map(|m| self.tree.leaf(m, Kind::Env, env)).collect() })
    }

    /// The group `create_shim(env)` makes, computed without touching the
    /// filesystem.
    pub fn shim_group(&self, env: &str) -> Result<Group, CgroupError> {
        self.tree.validate()?;
        check_env_name(env)?;
        let mounts = match &self.layout {
            Layout::V1 { controllers, unified } => v1::shim_mounts(controllers, unified.as_ref()),
            Layout::V2 { root } => vec![root.clone()],
        };
        Ok(Group { paths: mounts.iter().map(|m| self.tree.leaf(m, Kind::Shim, env)).collect() })
    }

    /// Creates the group of environment `env` with `limits`.
    ///
    /// Parents are created as needed (an existing parent is fine, so
    /// concurrent creators do not conflict) and get their CPU weight; the
    /// group's own directories must not exist yet
    /// ([`CgroupError::AlreadyExists`]).
    ///
    /// * v1: `memory.limit_in_bytes`, then `memory.memsw.limit_in_bytes`
    ///   with the same value (skipped if the kernel has no swap
    ///   accounting), `pids.max`, `cpu.cfs_period_us` and
    ///   `cpu.cfs_quota_us`; `memory.oom_control` stays default (OOM killer
    ///   on).
    /// * v2: controllers enabled down the tree, then `memory.max`,
    ///   `memory.swap.max` = 0 (if present), `pids.max`, `cpu.max`.
    ///
    /// On any failure everything made is removed and the error returned.
    pub fn create_env(&self, env: &str, limits: &Limits) -> Result<Group, CgroupError> {
        self.tree.validate()?;
        check_env_name(env)?;
        let plan = match &self.layout {
            Layout::V1 { controllers, .. } => v1::env_plan(&self.tree, controllers, env, limits)?,
            Layout::V2 { root } => v2::env_plan(&self.tree, root, env, limits),
        };
        plan::run(&self.os, &plan)
    }

    /// Creates the group of a `system` environment `env` with `limits`: as [`Cgroups::create_env`], and on a v1 or
    /// hybrid host in every hierarchy (see `v1::system_env_plan`). Delegate it with [`Cgroups::delegate`].
    pub fn create_system_env(&self, env: &str, limits: &Limits) -> Result<Group, CgroupError> {
        self.tree.validate()?;
        check_env_name(env)?;
        let plan = match &self.layout {
            Layout::V1 { controllers, unified } => {
                v1::system_env_plan(&self.tree, controllers, unified.as_ref(), env, limits)?
            }
            Layout::V2 { root } => v2::env_plan(&self.tree, root, env, limits),
        };
        plan::run(&self.os, &plan)
    }

    /// Delegates the group to `uid` (root of an environment's user namespace), as LXC does: its directories and the
    /// files that move processes and make children (`cgroup.procs`, `tasks`, `cgroup.threads`,
    /// `cgroup.subtree_control`), never a limit file. A service manager inside can then make and fill its own groups
    /// below, which can only be tighter.
    pub fn delegate(&self, group: &Group, uid: u32) -> Result<(), CgroupError> {
        self.check_group(group)?;
        for dir in &group.paths {
            for p in std::iter::once(dir.clone()).chain(
                ["cgroup.procs", "tasks", "cgroup.threads", "cgroup.subtree_control"].iter().map(|f| dir.join(f)),
            ) {
                if !self.os.exists(&p) {
                    continue;
                }
                self.os.chown(&p, uid).map_err(|source| CgroupError::Write {
                    path: p.clone(),
                    data: format!("chown {uid}"),
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Creates [`ENTRY_LEAF`] in every directory of a `system` environment's group (an existing one is kept), and
    /// returns it: where the shim puts what it starts there. On pure v2 the environment's group has controllers
    /// enabled for its service manager's groups and so cannot hold processes itself; the leaf is made on every layout
    /// alike. Owned by host root, so root inside can neither freeze it nor move it.
    pub fn create_entry_leaf(&self, group: &Group) -> Result<Group, CgroupError> {
        self.create_leaf(group, ENTRY_LEAF, true)
    }

    /// Creates [`DESKTOP_LEAF`] in every directory of an environment's group (an existing one is kept) and returns
    /// it. It sets no limit of its own: the environment's apply to it (on pure v2 no controller is enabled below the
    /// environment's group, which holds processes itself, so the leaf only groups; the kernel charges the parent).
    pub fn create_desktop_leaf(&self, group: &Group) -> Result<Group, CgroupError> {
        self.create_leaf(group, DESKTOP_LEAF, false)
    }

    fn create_leaf(&self, group: &Group, name: &str, repeat_limits: bool) -> Result<Group, CgroupError> {
        self.check_group(group)?;
        if group.paths.iter().any(|p| p.file_name().is_some_and(|n| n == ENTRY_LEAF || n == DESKTOP_LEAF)) {
            return Err(invalid("group", &group.paths[0].display().to_string(), "a leaf has no leaves"));
        }
        let cpuset = match &self.layout {
            Layout::V1 { controllers, .. } => controllers.get("cpuset").cloned(),
            Layout::V2 { .. } => None,
        };
        let mut steps = Vec::new();
        let mut paths = Vec::new();
        for dir in &group.paths {
            let leaf = dir.join(name);
            steps.push(plan::Step::Parent(leaf.clone()));
            if cpuset.as_ref().is_some_and(|m| dir.starts_with(m)) {
                steps.push(plan::Step::Inherit { dir: leaf.clone(), files: &["cpuset.cpus", "cpuset.mems"] });
            }
            // The environment's limits again (the parent's apply anyway): a JVM started from a shell reads its own
            // group's limit to size its heap.
            if repeat_limits {
                steps.push(plan::Step::Repeat { dir: leaf.clone(), files: ENTRY_LEAF_LIMITS });
            }
            paths.push(leaf);
        }
        plan::run(&self.os, &plan::Plan { steps, group: Group { paths } })
    }

    /// Creates the group of environment `env`'s shim (no limits). On any
    /// failure everything made is removed and the error returned.
    pub fn create_shim(&self, env: &str) -> Result<Group, CgroupError> {
        self.tree.validate()?;
        check_env_name(env)?;
        let plan = match &self.layout {
            Layout::V1 { controllers, unified } => v1::shim_plan(&self.tree, controllers, unified.as_ref(), env),
            Layout::V2 { root } => v2::shim_plan(&self.tree, root, env),
        };
        plan::run(&self.os, &plan)
    }

    /// Sets the group's CPU weight among its siblings: `cpu.shares` (v1) or `cpu.weight` (v2, where the cpu
    /// controller reaches the group), in every directory that has the file. A group without either is left alone.
    pub fn set_cpu_weight(&self, group: &Group, weight: CpuWeight) -> Result<(), CgroupError> {
        self.check_group(group)?;
        for dir in &group.paths {
            let (file, data) = if self.os.exists(&dir.join("cpu.shares")) {
                (dir.join("cpu.shares"), weight.shares().to_string())
            } else if self.os.exists(&dir.join("cpu.weight")) {
                (dir.join("cpu.weight"), weight.weight().to_string())
            } else {
                continue;
            };
            self.os.write(&file, &data).map_err(|source| CgroupError::Write { path: file, data, source })?;
        }
        Ok(())
    }

    /// Refuses groups outside `<mount>/<root>/<label>/{envs,shims}/<name>`.
    fn check_group(&self, group: &Group) -> Result<(), CgroupError> {
        self.tree.validate()?;
        let mounts = self.layout.mounts();
        match group.paths.iter().find(|p| !self.tree.owns(&mounts, p)) {
            None => Ok(()),
            Some(p) => Err(CgroupError::ForeignPath {
                path: p.clone(),
                root: self.tree.root.clone(),
                label: self.tree.label.clone(),
            }),
        }
    }

    /// Moves process `pid` into the group (writes it to `cgroup.procs` in
    /// every directory; stops at the first failure).
    pub fn add_process(&self, group: &Group, pid: i32) -> Result<(), CgroupError> {
        self.check_group(group)?;
        for dir in &group.paths {
            let file = dir.join("cgroup.procs");
            if pid <= 0 {
                return Err(CgroupError::InvalidPid { pid, path: file });
            }
            let data = pid.to_string();
            self.os.write(&file, &data).map_err(|source| CgroupError::Write { path: file, data, source })?;
        }
        Ok(())
    }

    /// The processes in the group: the union over its directories, sorted
    /// (a missing directory has none).
    pub fn procs(&self, group: &Group) -> Result<Vec<i32>, CgroupError> {
        self.check_group(group)?;
        kill::read_procs(&self.os, &group.paths)
    }

    /// SIGKILLs every process of the group and waits until it is empty.
    ///
    /// Uses `cgroup.kill` where the group has a cgroup2 directory with one
    /// (v2, and shim groups on hybrid hosts); otherwise freezer rounds:
    /// freeze (v1 `freezer.state` = `FROZEN`, waiting boundedly for it to
    /// read `FROZEN`), SIGKILL each pid in `cgroup.procs`, thaw, then poll
    /// in [`POLL_STEP`]s until the group is empty, repeating the round if
    /// needed. Fails with [`CgroupError::StillAlive`] ("N processes still
    /// alive after Xms") once `timeout` is used up, and with
    /// [`CgroupError::ContainsSelf`] if the caller itself is in the group.
    pub fn kill_all(&self, group: &Group, timeout: Duration) -> Result<(), CgroupError> {
        self.check_group(group)?;
        kill::kill_all(&self.os, &self.layout, group, timeout)
    }

    /// Freezes every process of the group; `Ok(true)` once frozen (bounded by `timeout`). Killing later still
    /// works: `kill_all` freezes, kills and thaws.
    pub fn freeze(&self, group: &Group, timeout: Duration) -> Result<bool, CgroupError> {
        self.check_group(group)?;
        kill::freeze_group(&self.os, &self.layout, group, timeout)
    }

    /// Removes the group's directories (and any child groups someone made
    /// in them, deepest first), retrying `EBUSY` every [`POLL_STEP`] until
    /// `timeout`. A missing directory counts as removed. Kill the group
    /// first: a group with processes stays busy.
    pub fn remove(&self, group: &Group, timeout: Duration) -> Result<(), CgroupError> {
        self.check_group(group)?;
        let mut pending: Vec<PathBuf> = group.paths.clone();
        pending.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        let mut waited = Duration::ZERO;
        let mut first_err: Option<CgroupError> = None;
        loop {
            let mut busy = Vec::new();
            for dir in pending {
                match remove_tree(&self.os, &dir) {
                    Ok(true) => {}
                    Ok(false) => busy.push(dir),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            if busy.is_empty() {
                return first_err.map_or(Ok(()), Err);
            }
            if waited >= timeout {
                return Err(first_err.unwrap_or_else(|| CgroupError::Busy {
                    path: busy.swap_remove(0),
                    waited_ms: waited.as_millis(),
                }));
            }
            self.os.sleep(POLL_STEP);
            waited += POLL_STEP;
            pending = busy;
        }
    }

    /// The directory of the group in the memory hierarchy.
    fn memory_dir<'g>(&self, group: &'g Group) -> Option<&'g PathBuf> {
        self.check_group(group).ok()?;
        let mount = match &self.layout {
            Layout::V1 { controllers, .. } => controllers.get("memory")?,
            Layout::V2 { root } => root,
        };
        group.paths.iter().find(|p| p.starts_with(mount))
    }

    /// How many processes the OOM killer killed in the group (v1
    /// `memory.oom_control`, v2 `memory.events`, key `oom_kill`); `None`
    /// when unknown (no memory directory, or a kernel without the counter).
    ///
    /// v2's counter counts the groups below; v1's does not (a kill is counted where the victim was), so on v1 the
    /// groups below are added in: a `system` environment's service manager and the shim's leaf make them.
    pub fn oom_kills(&self, group: &Group) -> Option<u64> {
        let dir = self.memory_dir(group)?;
        let (file, below) = match self.layout {
            Layout::V1 { .. } => ("memory.oom_control", true),
            Layout::V2 { .. } => ("memory.events", false),
        };
        let read = |d: &Path| -> Option<u64> {
            let text = self.os.read(&d.join(file)).ok()?;
            text.lines().find_map(|l| {
                let mut it = l.split_whitespace();
                match (it.next(), it.next()) {
                    (Some("oom_kill"), Some(n)) => n.parse().ok(),
                    _ => None,
                }
            })
        };
        let mut total = read(dir)?;
        if below {
            let mut pending: Vec<PathBuf> =
                self.os.list_dirs(dir).unwrap_or_default().into_iter().map(|c| dir.join(c)).collect();
            while let Some(d) = pending.pop() {
                total += read(&d).unwrap_or(0);
                pending.extend(self.os.list_dirs(&d).unwrap_or_default().into_iter().map(|c| d.join(c)));
            }
        }
        Some(total)
    }

    /// The group's peak memory use in bytes (v1
    /// `memory.max_usage_in_bytes`, v2 `memory.peak`); `None` when unknown.
    pub fn memory_peak(&self, group: &Group) -> Option<u64> {
        let dir = self.memory_dir(group)?;
        let file = match self.layout {
            Layout::V1 { .. } => "memory.max_usage_in_bytes",
            Layout::V2 { .. } => "memory.peak",
        };
        self.os.read(&dir.join(file)).ok()?.trim().parse().ok()
    }

    /// Names of the environments that have an env or shim group under
    /// `<root>/<label>` in any hierarchy (sorted, each once): for leak
    /// checks and for rediscovering groups after a restart.
    pub fn label_groups(&self) -> Result<Vec<String>, CgroupError> {
        self.tree.validate()?;
        let mut names = BTreeSet::new();
        for m in self.layout.mounts() {
            for kind in [Kind::Env, Kind::Shim] {
                let dir = self.tree.kind_dir(&m, kind);
                match self.os.list_dirs(&dir) {
                    Ok(v) => names.extend(v),
                    Err(e) if is_not_found(&e) => {}
                    Err(source) => return Err(CgroupError::ListDir { path: dir, source }),
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    /// Best effort: removes `envs/`, `shims/` and `<label>/` in every
    /// hierarchy if they are empty (never `<root>`, which other instances
    /// share).
    pub fn remove_label_if_empty(&self) {
        if self.tree.validate().is_err() {
            return;
        }
        for m in self.layout.mounts() {
            let label = self.tree.label_dir(&m);
            for dir in [self.tree.kind_dir(&m, Kind::Env), self.tree.kind_dir(&m, Kind::Shim), label] {
                match self.os.rmdir(&dir) {
                    Ok(()) => {}
                    Err(e) if is_not_found(&e) || is_busy(&e) => {}
                    Err(e) => {
                        tracing::debug!(dir = %dir.display(), error = %e, "cannot remove cgroup directory")
                    }
                }
            }
        }
    }
}

/// Removes `dir` and any subdirectories, deepest first. `Ok(false)` when
/// something is still busy; a missing directory is removed.
fn remove_tree(os: &impl CgroupOs, dir: &Path) -> Result<bool, CgroupError> {
    let children = match os.list_dirs(dir) {
        Ok(c) => c,
        Err(e) if is_not_found(&e) => return Ok(true),
        Err(source) => return Err(CgroupError::ListDir { path: dir.to_path_buf(), source }),
    };
    let mut all_gone = true;
    for child in children {
        all_gone &= remove_tree(os, &dir.join(child))?;
    }
    if !all_gone {
        return Ok(false);
    }
    match os.rmdir(dir) {
        Ok(()) => Ok(true),
        Err(e) if is_not_found(&e) => Ok(true),
        Err(e) if is_busy(&e) => Ok(false),
        Err(source) => Err(CgroupError::Rmdir { path: dir.to_path_buf(), source }),
    }
}
