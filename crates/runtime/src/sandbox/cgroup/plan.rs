//! Creating groups as a list of steps, executed with rollback.
//!
//! The v1 and v2 code ([`super::v1`], [`super::v2`]) only decide *what* to
//! create and write; this module does it, and on any failure removes every
//! directory it made (newest first) before returning the error.

use std::path::{Path, PathBuf};

use super::os::{is_busy, is_exists, is_not_found, CgroupOs};
use super::{CgroupError, Group};

/// How many times a plan is attempted when a parent directory vanished
/// under it (a concurrent `remove_label_if_empty` in another process).
const ATTEMPTS: usize = 3;

/// One step of creating a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Create a shared parent directory; `EEXIST` is fine (concurrent
    /// creators, earlier groups).
    Parent(PathBuf),
    /// Create the group's own directory; `EEXIST` is an error.
    Leaf(PathBuf),
    /// Write `data` to the control file `file`. With `optional`, a missing
    /// file is skipped instead of being an error.
    Write { file: PathBuf, data: String, optional: bool },
    /// Fail unless `dir/cgroup.controllers` lists every controller (v2).
    Require { dir: PathBuf, controllers: &'static [&'static str] },
    /// Give `dir` the values of its parent's `files` where its own are empty (a new v1 cpuset group has no CPUs
    /// and no memory nodes until told, and then can hold no process).
    Inherit { dir: PathBuf, files: &'static [&'static str] },
    /// Give `dir` its parent's values of those `files` both have, in order (limits a group below repeats, so that
    /// programs reading their own group's limit find it).
    Repeat { dir: PathBuf, files: &'static [&'static str] },
    /// Make sure `dir/cgroup.subtree_control` enables the controllers (v2);
    /// writes only the ones missing, so an already-delegated parent that
    /// holds processes (no-internal-process rule) is left alone.
    Enable { dir: PathBuf, controllers: &'static [&'static str] },
}

impl Step {
    pub(super) fn write(file: PathBuf, data: impl Into<String>) -> Self {
        Step::Write { file, data: data.into(), optional: false }
    }

    pub(super) fn write_if_exists(file: PathBuf, data: impl Into<String>) -> Self {
        Step::Write { file, data: data.into(), optional: true }
    }
}

/// What to do, and the group that results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    pub steps: Vec<Step>,
    pub group: Group,
}

/// Executes `plan`; on failure removes what it made and returns the error.
pub(super) fn run(os: &impl CgroupOs, plan: &Plan) -> Result<Group, CgroupError> {
    let mut attempt = 1;
    loop {
        let mut made: Vec<PathBuf> = Vec::new();
        let res = plan.steps.iter().try_for_each(|step| exec(os, step, &mut made));
        match res {
            Ok(()) => return Ok(plan.group.clone()),
            Err(err) => {
                rollback(os, &made);
                if attempt < ATTEMPTS && parent_vanished(os, &err) {
                    tracing::debug!(error = %err, attempt, "cgroup parent vanished while creating; retrying");
                    attempt += 1;
                    continue;
                }
                return Err(err);
            }
        }
    }
}

fn exec(os: &impl CgroupOs, step: &Step, made: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    match step {
        Step::Parent(path) => match os.mkdir(path) {
            Ok(()) => {
                made.push(path.clone());
                Ok(())
            }
            Err(e) if is_exists(&e) => Ok(()),
            Err(source) => Err(CgroupError::Mkdir { path: path.clone(), source }),
        },
        Step::Leaf(path) => match os.mkdir(path) {
            Ok(()) => {
                made.push(path.clone());
                Ok(())
            }
            Err(e) if is_exists(&e) => Err(CgroupError::AlreadyExists { path: path.clone() }),
            Err(source) => Err(CgroupError::Mkdir { path: path.clone(), source }),
        },
        Step::Write { file, data, optional } => {
            if *optional && !os.exists(file) {
                tracing::debug!(file = %file.display(), "optional cgroup file missing; skipped");
                return Ok(());
            }
            os.write(file, data).map_err(|source| CgroupError::Write { path: file.clone(), data: data.clone(), source })
        }
        Step::Require { dir, controllers } => {
            let file = dir.join("cgroup.controllers");
            let text = os.read(&file).map_err(|source| CgroupError::Read { path: file.clone(), source })?;
            let have: Vec<&str> = text.split_whitespace().collect();
            match controllers.iter().find(|c| !have.contains(c)) {
                None => Ok(()),
                Some(c) => Err(CgroupError::MissingController {
                    controller: (*c).to_string(),
                    detail: format!("not listed in {} ({:?})", file.display(), text.trim()),
                }),
            }
        }
        Step::Inherit { dir, files } => {
            let Some(parent) = dir.parent() else { return Ok(()) };
            for f in *files {
                let (own, from) = (dir.join(f), parent.join(f));
                let mine = os.read(&own).map_err(|source| CgroupError::Read { path: own.clone(), source })?;
                if !mine.trim().is_empty() {
                    continue;
                }
                let data = os.read(&from).map_err(|source| CgroupError::Read { path: from.clone(), source })?;
                let data = data.trim().to_string();
                os.write(&own, &data).map_err(|source| CgroupError::Write { path: own.clone(), data, source })?;
            }
            Ok(())
        }
        Step::Repeat { dir, files } => {
            let Some(parent) = dir.parent() else { return Ok(()) };
            for f in *files {
                let (own, from) = (dir.join(f), parent.join(f));
                if !os.exists(&own) || !os.exists(&from) {
                    continue;
                }
                let data = os.read(&from).map_err(|source| CgroupError::Read { path: from.clone(), source })?;
                let data = data.trim().to_string();
                os.write(&own, &data).map_err(|source| CgroupError::Write { path: own.clone(), data, source })?;
            }
            Ok(())
        }
        Step::Enable { dir, controllers } => {
            let file = dir.join("cgroup.subtree_control");
            let text = os.read(&file).map_err(|source| CgroupError::Read { path: file.clone(), source })?;
            let have: Vec<&str> = text.split_whitespace().collect();
            let missing: Vec<String> =
                controllers.iter().filter(|c| !have.contains(c)).map(|c| format!("+{c}")).collect();
            if missing.is_empty() {
                return Ok(());
            }
            let data = missing.join(" ");
            os.write(&file, &data).map_err(|source| CgroupError::EnableControllers { path: file.clone(), data, source })
        }
    }
}

/// Removes the directories made so far, newest first (best effort).
fn rollback(os: &impl CgroupOs, made: &[PathBuf]) {
    for dir in made.iter().rev() {
        match os.rmdir(dir) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "rolled back cgroup directory"),
            Err(e) if is_not_found(&e) => {}
            // A shared parent another creator has started using meanwhile.
            Err(e) if is_busy(&e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cgroup directory in use; left in place")
            }
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "could not roll back cgroup directory")
            }
        }
    }
}

/// Whether `err` is a directory or file that vanished because a parent was
/// removed concurrently (worth another attempt).
fn parent_vanished(os: &impl CgroupOs, err: &CgroupError) -> bool {
    let (path, source) = match err {
        CgroupError::Mkdir { path, source } => (path, source),
        CgroupError::Write { path, source, .. } => (path, source),
        _ => return false,
    };
    is_not_found(source) && path.parent().is_some_and(|p: &Path| !os.exists(p))
}
