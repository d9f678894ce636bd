//! Killing every process of a group.
//!
//! Strategies, best first:
//! 1. `cgroup.kill` (cgroup2, Linux >= 5.14; also in the controller-less
//!    unified hierarchy of a hybrid host, which shim groups live in):
//!    the kernel kills the whole group atomically, forks included.
//! 2. Freezer rounds: freeze the group (v1 `freezer.state`, or v2
//!    `cgroup.freeze`), SIGKILL every pid in it while nothing can fork or
//!    exit (so the pid list is exact and no pid can be reused under us),
//!    thaw so the signals are delivered, and wait for the group to empty.
//! 3. No freezer at all: the same rounds without freezing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::layout::Layout;
use super::os::{is_no_such_process, is_not_found, CgroupOs};
use super::{CgroupError, Group, POLL_STEP};

/// How long one round waits for the group to empty before re-killing.
const ROUND: Duration = Duration::from_millis(250);
/// How long to wait for `FREEZING` to become `FROZEN` before killing anyway
/// (a task in uninterruptible sleep can hold the freeze up indefinitely).
const FREEZE_WAIT: Duration = Duration::from_millis(1000);

/// Time spent, counted as the sum of the sleeps requested from the OS.
struct Clock {
    waited: Duration,
    timeout: Duration,
}

impl Clock {
    fn sleep(&mut self, os: &impl CgroupOs) {
        os.sleep(POLL_STEP);
        self.waited += POLL_STEP;
    }
    fn expired(&self) -> bool {
        self.waited >= self.timeout
    }
}

/// How a group can be frozen.
#[derive(Debug)]
enum Freezer {
    /// v1 `freezer.state` file.
    V1(PathBuf),
    /// v2 group directory (`cgroup.freeze`, `cgroup.events`).
    V2(PathBuf),
    None,
}

/// The pids in `paths/cgroup.procs`, union, sorted; a missing group has none.
pub(super) fn read_procs(os: &impl CgroupOs, paths: &[PathBuf]) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    // Groups below count too: a service manager inside a delegated group makes its own.
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(dir) = pending.pop() {
        let file = dir.join("cgroup.procs");
        match os.read(&file) {
            Ok(text) => pids.extend(text.split_whitespace().filter_map(|s| s.parse::<i32>().ok()).filter(|p| *p > 0)),
            Err(e) if is_not_found(&e) => continue,
            Err(source) => return Err(CgroupError::Read { path: file, source }),
        }
        if let Ok(children) = os.list_dirs(&dir) {
            pending.extend(children.into_iter().map(|c| dir.join(c)));
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// See [`super::Cgroups::kill_all`].
pub(super) fn kill_all(
    os: &impl CgroupOs,
    layout: &Layout,
    group: &Group,
    timeout: Duration,
) -> Result<(), CgroupError> {
    let Some(first) = group.paths.first() else {
        return Ok(());
    };
    let pids = read_procs(os, &group.paths)?;
    if pids.is_empty() {
        return Ok(());
    }
    let me = os.self_pid();
    if pids.contains(&me) {
        return Err(CgroupError::ContainsSelf { path: first.clone(), pid: me });
    }
    let mut clock = Clock { waited: Duration::ZERO, timeout };

    let kill_file =
        group.paths.iter().filter(|p| layout.is_v2_path(p)).map(|p| p.join("cgroup.kill")).find(|f| os.exists(f));
    if let Some(kill_file) = kill_file {
        return cgroup_kill(os, group, &kill_file, &mut clock);
    }
    let freezer = find_freezer(os, layout, group);
    tracing::debug!(group = %first.display(), ?freezer, "killing cgroup processes");
    freeze_kill_rounds(os, group, &freezer, &mut clock)
}

fn find_freezer(os: &impl CgroupOs, layout: &Layout, group: &Group) -> Freezer {
    if let Some(mount) = layout.v1_controller("freezer") {
        if let Some(state) =
            group.paths.iter().filter(|p| p.starts_with(mount)).map(|p| p.join("freezer.state")).find(|f| os.exists(f))
        {
            return Freezer::V1(state);
        }
    }
    if let Some(dir) = group.paths.iter().find(|p| layout.is_v2_path(p) && os.exists(&p.join("cgroup.freeze"))) {
        return Freezer::V2(dir.clone());
    }
    Freezer::None
}

fn still_alive(group: &Group, pids: Vec<i32>, clock: &Clock) -> CgroupError {
    CgroupError::StillAlive {
        path: group.paths.first().cloned().unwrap_or_default(),
        alive: pids.len(),
        pids,
        waited_ms: clock.waited.as_millis(),
    }
}

/// Polls for up to `ROUND` (or until the clock runs out) for the group to
/// empty; returns the pids still there.
fn wait_round(os: &impl CgroupOs, group: &Group, clock: &mut Clock) -> Result<Vec<i32>, CgroupError> {
    let start = clock.waited;
    loop {
        let pids = read_procs(os, &group.paths)?;
        if pids.is_empty() || clock.expired() || clock.waited - start >= ROUND {
            return Ok(pids);
        }
        clock.sleep(os);
    }
}

fn cgroup_kill(os: &impl CgroupOs, group: &Group, kill_file: &Path, clock: &mut Clock) -> Result<(), CgroupError> {
    loop {
        match os.write(kill_file, "1") {
            Ok(()) => {}
            // The group went away (with its processes).
            Err(e) if is_not_found(&e) => {}
            Err(source) => return Err(CgroupError::Write { path: kill_file.to_path_buf(), data: "1".into(), source }),
        }
        let left = wait_round(os, group, clock)?;
        if left.is_empty() {
            return Ok(());
        }
        if clock.expired() {
            return Err(still_alive(group, left, clock));
        }
    }
}

fn freeze_kill_rounds(
    os: &impl CgroupOs,
    group: &Group,
    freezer: &Freezer,
    clock: &mut Clock,
) -> Result<(), CgroupError> {
    loop {
        freeze(os, freezer, clock);
        // Read while frozen: the list is exact, and no pid can exit and be
        // reused before the signal is sent.
        let killed = read_procs(os, &group.paths).and_then(|pids| kill_each(os, group, &pids));
        // Always thaw, even when killing failed: frozen processes would
        // never act on the SIGKILL, nor could anything else use them.
        let thawed = thaw(os, freezer);
        killed?;
        thawed?;
        let left = wait_round(os, group, clock)?;
        if left.is_empty() {
            return Ok(());
        }
        if clock.expired() {
            return Err(still_alive(group, left, clock));
        }
    }
}

/// SIGKILLs every pid (already-gone ones are fine); returns the first error
/// after trying them all.
fn kill_each(os: &impl CgroupOs, group: &Group, pids: &[i32]) -> Result<(), CgroupError> {
    let mut first_err = None;
    for &pid in pids {
        match os.kill(pid, libc::SIGKILL) {
            Ok(()) => {}
            Err(e) if is_no_such_process(&e) => {}
            Err(source) => {
                first_err.get_or_insert(CgroupError::Kill {
                    pid,
                    path: group.paths.first().cloned().unwrap_or_default(),
                    source,
                });
            }
        }
    }
    first_err.map_or(Ok(()), Err)
}

/// Freezes and waits (bounded) for the freeze to complete. Never fails:
/// if freezing does not work, killing unfrozen is still the right move.
fn freeze(os: &impl CgroupOs, freezer: &Freezer, clock: &mut Clock) {
    let (file, data) = match freezer {
        Freezer::V1(state) => (state.clone(), "FROZEN"),
        Freezer::V2(dir) => (dir.join("cgroup.freeze"), "1"),
        Freezer::None => return,
    };
    if let Err(e) = os.write(&file, data) {
        if !is_not_found(&e) {
            tracing::warn!(file = %file.display(), error = %e, "cannot freeze cgroup; killing unfrozen");
        }
        return;
    }
    let start = clock.waited;
    loop {
        if is_frozen(os, freezer) {
            return;
        }
        if clock.expired() || clock.waited - start >= FREEZE_WAIT {
            tracing::warn!(file = %file.display(), "cgroup did not finish freezing; killing anyway");
            return;
        }
        clock.sleep(os);
    }
}

fn is_frozen(os: &impl CgroupOs, freezer: &Freezer) -> bool {
    match freezer {
        Freezer::V1(state) => os.read(state).is_ok_and(|s| s.trim() == "FROZEN"),
        Freezer::V2(dir) => {
            os.read(&dir.join("cgroup.events")).is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1"))
        }
        Freezer::None => true,
    }
}

fn thaw(os: &impl CgroupOs, freezer: &Freezer) -> Result<(), CgroupError> {
    let (file, data) = match freezer {
        Freezer::V1(state) => (state.clone(), "THAWED"),
        Freezer::V2(dir) => (dir.join("cgroup.freeze"), "0"),
        Freezer::None => return Ok(()),
    };
    match os.write(&file, data) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(source) => Err(CgroupError::Write { path: file, data: data.into(), source }),
    }
}

/// Freezes every process of a group (for grading: nothing of the candidate's may run or fork while checks read the
/// environment). Returns whether the freeze completed within `timeout`; a group with no freezer is an error.
pub(super) fn freeze_group(
    os: &impl CgroupOs,
    layout: &Layout,
    group: &Group,
    timeout: Duration,
) -> Result<bool, CgroupError> {
    let freezer = find_freezer(os, layout, group);
    if matches!(freezer, Freezer::None) {
        return Err(CgroupError::MissingController {
            controller: "freezer".into(),
            detail: "the group has no freezer".into(),
        });
    }
    let mut clock = Clock { waited: Duration::ZERO, timeout };
    freeze(os, &freezer, &mut clock);
    Ok(is_frozen(os, &freezer))
}
