//! What to create and write on a pure cgroup v2 host.
//!
//! One hierarchy; a controller's files appear in a group only when its
//! parent lists the controller in `cgroup.subtree_control`, which in turn
//! needs the grandparent to, and so on up to the root. The
//! no-internal-process rule says a non-root group that delegates
//! controllers cannot hold processes itself: processes are only ever put in
//! the leaves (`envs/<env>`, `shims/<env>`), and controllers are only
//! *added* where missing, so a parent that already delegates them is never
//! written to.

use std::path::{Path, PathBuf};

use super::plan::{Plan, Step};
use super::{Group, Kind, Limits, Tree, CFS_PERIOD_US};

/// Controllers delegated down to the leaves.
pub const CONTROLLERS: &[&str] = &["memory", "pids", "cpu"];

/// `cpu.weight` of `<root>/<label>/envs`.
pub const ENVS_CPU_WEIGHT: u64 = 10;
/// `cpu.weight` of `<root>/<label>/shims`.
pub const SHIMS_CPU_WEIGHT: u64 = 100;

/// Makes `<root>/<label>` (delegating [`CONTROLLERS`] all the way down),
/// then `<kind>/` with its CPU weight.
fn parents(tree: &Tree, mount: &Path, kind: Kind, steps: &mut Vec<Step>) {
    steps.push(Step::Require { dir: mount.to_path_buf(), controllers: CONTROLLERS });
    steps.push(Step::Enable { dir: mount.to_path_buf(), controllers: CONTROLLERS });
    let chain = tree.parents(mount, kind);
    let (kind_dir, above) = match chain.split_last() {
        Some((last, above)) => (last.clone(), above),
        None => (tree.kind_dir(mount, kind), &[][..]),
    };
    for dir in above {
        steps.push(Step::Parent(dir.clone()));
        steps.push(Step::Enable { dir: dir.clone(), controllers: CONTROLLERS });
    }
    steps.push(Step::Parent(kind_dir.clone()));
    let weight = match kind {
        Kind::Env => ENVS_CPU_WEIGHT,
        Kind::Shim => SHIMS_CPU_WEIGHT,
    };
    steps.push(Step::write(kind_dir.join("cpu.weight"), weight.to_string()));
    if kind == Kind::Env {
        // The env leaves get limits, so envs/ delegates to them.
        steps.push(Step::Enable { dir: kind_dir, controllers: CONTROLLERS });
    }
}

/// Creates `<root>/<label>/envs/<env>` with `limits`.
pub(super) fn env_plan(tree: &Tree, mount: &Path, env: &str, limits: &Limits) -> Plan {
    let mut steps = Vec::new();
    parents(tree, mount, Kind::Env, &mut steps);
    let leaf: PathBuf = tree.leaf(mount, Kind::Env, env);
    steps.push(Step::Leaf(leaf.clone()));
    steps.push(Step::write(
        leaf.join("memory.max"),
        match limits.memory_bytes {
            0 => "max".to_string(),
            n => n.to_string(),
        },
    ));
    // No swap at all (absent without swap accounting: then skipped).
    steps.push(Step::write_if_exists(leaf.join("memory.swap.max"), "0"));
    steps.push(Step::write(
        leaf.join("pids.max"),
        match limits.pids {
            0 => "max".to_string(),
            n => n.to_string(),
        },
    ));
    let quota = limits.cfs_quota_us().map_or_else(|| "max".to_string(), |q| q.to_string());
    steps.push(Step::write(leaf.join("cpu.max"), format!("{quota} {CFS_PERIOD_US}")));
    Plan { steps, group: Group { paths: vec![leaf] } }
}

/// Creates `<root>/<label>/shims/<env>` (no limits).
pub(super) fn shim_plan(tree: &Tree, mount: &Path, env: &str) -> Plan {
    let mut steps = Vec::new();
    parents(tree, mount, Kind::Shim, &mut steps);
    let leaf = tree.leaf(mount, Kind::Shim, env);
    steps.push(Step::Leaf(leaf.clone()));
    Plan { steps, group: Group { paths: vec![leaf] } }
}
