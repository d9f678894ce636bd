//! What to create and write on a cgroup v1 (legacy or hybrid) host.
//!
//! Every controller is its own hierarchy, so a group is one directory per
//! hierarchy and limits go to the directory of the hierarchy that owns the
//! controller.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::plan::{Plan, Step};
use super::{CgroupError, Group, Kind, Limits, Tree, CFS_PERIOD_US};

/// `cpu.shares` of `<root>/<label>/envs`: candidates get 1/9 of the CPU
/// when the control plane is busy.
pub const ENVS_CPU_SHARES: u64 = 128;
/// `cpu.shares` of `<root>/<label>/shims`.
pub const SHIMS_CPU_SHARES: u64 = 1024;

/// The named hierarchy systemd uses for process tracking on v1/hybrid hosts.
pub const SYSTEMD_HIERARCHY: &str = "name=systemd";

fn need<'a>(controllers: &'a BTreeMap<String, PathBuf>, name: &str) -> Result<&'a PathBuf, CgroupError> {
    controllers.get(name).ok_or_else(|| CgroupError::MissingController {
        controller: name.to_string(),
        detail: "no cgroup v1 hierarchy has it mounted".into(),
    })
}

fn push_unique(out: &mut Vec<PathBuf>, p: &PathBuf) {
    if !out.contains(p) {
        out.push(p.clone());
    }
}

/// The hierarchies an environment's group lives in: memory, pids, cpu,
/// freezer (all required) and cpuacct when it is a separate mount.
pub(super) fn env_mounts(controllers: &BTreeMap<String, PathBuf>) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    for c in ["memory", "pids", "cpu", "freezer"] {
        push_unique(&mut out, need(controllers, c)?);
    }
    if let Some(p) = controllers.get("cpuacct") {
        push_unique(&mut out, p);
    }
    Ok(out)
}

/// The hierarchies a shim's group lives in: memory, pids, cpu (those
/// mounted), `name=systemd` and the unified hierarchy, the latter two so a
/// service manager no longer counts the shim as part of the server's service.
pub(super) fn shim_mounts(controllers: &BTreeMap<String, PathBuf>, unified: Option<&PathBuf>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for c in ["memory", "pids", "cpu", SYSTEMD_HIERARCHY] {
        if let Some(p) = controllers.get(c) {
            push_unique(&mut out, p);
        }
    }
    if let Some(u) = unified {
        push_unique(&mut out, u);
    }
    out
}

/// Creates `<root>/<label>/envs/<env>` with `limits`.
pub(super) fn env_plan(
    tree: &Tree,
    controllers: &BTreeMap<String, PathBuf>,
    env: &str,
    limits: &Limits,
) -> Result<Plan, CgroupError> {
    let mounts = env_mounts(controllers)?;
    let memory = need(controllers, "memory")?;
    let pids = need(controllers, "pids")?;
    let cpu = need(controllers, "cpu")?;

    let mut steps = Vec::new();
    for m in &mounts {
        steps.extend(tree.parents(m, Kind::Env).into_iter().map(Step::Parent));
    }
    steps.push(Step::write(tree.kind_dir(cpu, Kind::Env).join("cpu.shares"), ENVS_CPU_SHARES.to_string()));
    let leaves: Vec<PathBuf> = mounts.iter().map(|m| tree.leaf(m, Kind::Env, env)).collect();
    steps.extend(leaves.iter().cloned().map(Step::Leaf));

    // Memory first, then memory+swap at the same value: swap adds nothing.
    // (memsw must never be below limit_in_bytes, hence this order.)
    let mem = tree.leaf(memory, Kind::Env, env);
    let mem_value = match limits.memory_bytes {
        0 => "-1".to_string(),
        n => n.to_string(),
    };
    steps.push(Step::write(mem.join("memory.limit_in_bytes"), mem_value.clone()));
    steps.push(Step::write_if_exists(mem.join("memory.memsw.limit_in_bytes"), mem_value));
    // memory.oom_control is left at its default: the OOM killer stays on.

    steps.push(Step::write(
        tree.leaf(pids, Kind::Env, env).join("pids.max"),
        match limits.pids {
            0 => "max".to_string(),
            n => n.to_string(),
        },
    ));

    let cpu_leaf = tree.leaf(cpu, Kind::Env, env);
    steps.push(Step::write(cpu_leaf.join("cpu.cfs_period_us"), CFS_PERIOD_US.to_string()));
    steps.push(Step::write(
        cpu_leaf.join("cpu.cfs_quota_us"),
        limits.cfs_quota_us().map_or_else(|| "-1".to_string(), |q| q.to_string()),
    ));

    Ok(Plan { steps, group: Group { paths: leaves } })
}

/// Creates `<root>/<label>/envs/<env>` with `limits` for a `system` environment: in every hierarchy the host has
/// (a service manager inside mounts them all, and would otherwise find itself in the host's own groups), the unified
/// tree included, with the cpuset group given its parent's CPUs and memory nodes.
pub(super) fn system_env_plan(
    tree: &Tree,
    controllers: &BTreeMap<String, PathBuf>,
    unified: Option<&PathBuf>,
    env: &str,
    limits: &Limits,
) -> Result<Plan, CgroupError> {
    let mut plan = env_plan(tree, controllers, env, limits)?;
    let mut extra: Vec<PathBuf> = Vec::new();
    for m in controllers.values().chain(unified) {
        if !plan.group.paths.iter().any(|p| p.starts_with(m)) && !extra.contains(m) {
            extra.push(m.clone());
        }
    }
    let mut steps = Vec::new();
    for m in &extra {
        for p in tree.parents(m, Kind::Env) {
            steps.push(Step::Parent(p.clone()));
            if controllers.get("cpuset") == Some(m) {
                steps.push(Step::Inherit { dir: p, files: &["cpuset.cpus", "cpuset.mems"] });
            }
        }
        let leaf = tree.leaf(m, Kind::Env, env);
        steps.push(Step::Leaf(leaf.clone()));
        if controllers.get("cpuset") == Some(m) {
            steps.push(Step::Inherit { dir: leaf.clone(), files: &["cpuset.cpus", "cpuset.mems"] });
        }
        plan.group.paths.push(leaf);
    }
    plan.steps.extend(steps);
    Ok(plan)
}

/// Creates `<root>/<label>/shims/<env>` (no limits).
pub(super) fn shim_plan(
    tree: &Tree,
    controllers: &BTreeMap<String, PathBuf>,
    unified: Option<&PathBuf>,
    env: &str,
) -> Plan {
    let mounts = shim_mounts(controllers, unified);
    let mut steps = Vec::new();
    for m in &mounts {
        steps.extend(tree.parents(m, Kind::Shim).into_iter().map(Step::Parent));
    }
    if let Some(cpu) = controllers.get("cpu") {
        steps.push(Step::write(tree.kind_dir(cpu, Kind::Shim).join("cpu.shares"), SHIMS_CPU_SHARES.to_string()));
    }
    let leaves: Vec<PathBuf> = mounts.iter().map(|m| tree.leaf(m, Kind::Shim, env)).collect();
    steps.extend(leaves.iter().cloned().map(Step::Leaf));
    Plan { steps, group: Group { paths: leaves } }
}
