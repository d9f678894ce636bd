//! Unit tests against [`FakeOs`], and real tests against this host's cgroups.

use std::cell::Cell;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::fake::{FakeOs, Op, HYBRID_MOUNTINFO};
use super::*;

const MIB: u64 = 1024 * 1024;
const LIMITS: Limits = Limits { memory_bytes: 64 * MIB, pids: 32, cpu_millicores: 500 };
const T: Duration = Duration::from_millis(100);

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn cg(os: FakeOs, label: &str) -> Cgroups<FakeOs> {
    let layout = detect_layout(&os).expect("layout");
    Cgroups::new(os, layout, DEFAULT_ROOT, label)
}

fn w(path: &str, data: &str) -> (PathBuf, String) {
    (p(path), data.to_string())
}

fn pos(log: &[Op], op: &Op) -> usize {
    log.iter().position(|o| o == op).unwrap_or_else(|| panic!("{op:?} not in log {log:#?}"))
}

// ---------------------------------------------------------------- layout

#[test]
fn detects_hybrid_layout() {
    let layout = detect_layout(&FakeOs::hybrid()).expect("layout");
    let Layout::V1 { controllers, unified } = &layout else {
        panic!("expected v1, got {layout:?}");
    };
    for c in ["memory", "pids", "cpu", "cpuacct", "cpuset", "freezer", "devices", "blkio"] {
        assert_eq!(controllers[c], p(&format!("/sys/fs/cgroup/{c}")), "{c}");
    }
    assert_eq!(controllers["name=systemd"], p("/sys/fs/cgroup/systemd"));
    assert!(!controllers.contains_key("rw"));
    assert!(!controllers.contains_key("xattr"));
    assert_eq!(controllers.len(), 9);
    assert_eq!(unified.as_deref(), Some(Path::new("/sys/fs/cgroup/unified")));
}

#[test]
fn detects_this_hosts_mountinfo_without_optional_fields() {
    let text = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    let layout = parse_mountinfo(text).expect("layout");
    assert_eq!(layout.v1_controller("freezer"), Some(Path::new("/sys/fs/cgroup/freezer")));
    assert_eq!(layout.v1_controller("name=systemd"), Some(Path::new("/sys/fs/cgroup/systemd")));
    assert_eq!(layout.v2_mount(), Some(Path::new("/sys/fs/cgroup/unified")));
}

#[test]
fn detects_pure_v2_layout() {
    let layout = detect_layout(&FakeOs::v2()).expect("layout");
    assert_eq!(layout, Layout::V2 { root: p("/sys/fs/cgroup") });
}

#[test]
fn layout_and_group_round_trip_through_json() {
    let c = cg(FakeOs::hybrid(), "t");
    let layout: Layout = serde_json::from_str(&serde_json::to_string(c.layout()).expect("ser")).expect("de");
    assert_eq!(&layout, c.layout());
    let group = c.create_env("e", &LIMITS).expect("create");
    let back: Group = serde_json::from_str(&serde_json::to_string(&group).expect("ser")).expect("de");
    assert_eq!(back, group);
}

#[test]
fn unreadable_mountinfo_names_the_file() {
    let os = FakeOs::hybrid();
    os.remove_file(MOUNTINFO);
    let err = detect_layout(&os).expect_err("must fail");
    assert!(err.to_string().contains("/proc/self/mountinfo"), "{err}");
}

// ---------------------------------------------------------------- limits

#[test]
fn cpu_quota_from_millicores() {
    let l = |m| Limits { memory_bytes: 0, pids: 0, cpu_millicores: m };
    assert_eq!(l(0).cfs_quota_us(), None);
    assert_eq!(l(5).cfs_quota_us(), Some(MIN_CFS_QUOTA_US));
    assert_eq!(l(500).cfs_quota_us(), Some(50_000));
    assert_eq!(l(2500).cfs_quota_us(), Some(250_000));
}

// ---------------------------------------------------------------- v1 create

#[test]
fn v1_create_env_writes_limits() {
    let c = cg(FakeOs::hybrid(), "t1");
    let g = c.create_env("e1", &LIMITS).expect("create");
    let leaf = |h: &str| p(&format!("/sys/fs/cgroup/{h}/examroom/t1/envs/e1"));
    assert_eq!(g.paths, vec![leaf("memory"), leaf("pids"), leaf("cpu"), leaf("freezer"), leaf("cpuacct")]);
    assert_eq!(g, c.env_group("e1").expect("env_group"));
    for d in &g.paths {
        assert!(c.os().is_dir(d), "{d:?}");
    }
    assert_eq!(
        c.os().writes(),
        vec![
            w("/sys/fs/cgroup/cpu/examroom/t1/envs/cpu.shares", "128"),
            w("/sys/fs/cgroup/memory/examroom/t1/envs/e1/memory.limit_in_bytes", "67108864"),
            w("/sys/fs/cgroup/memory/examroom/t1/envs/e1/memory.memsw.limit_in_bytes", "67108864"),
            w("/sys/fs/cgroup/pids/examroom/t1/envs/e1/pids.max", "32"),
            w("/sys/fs/cgroup/cpu/examroom/t1/envs/e1/cpu.cfs_period_us", "100000"),
            w("/sys/fs/cgroup/cpu/examroom/t1/envs/e1/cpu.cfs_quota_us", "50000"),
        ]
    );
    // No shim tree for an env, and the OOM killer is left alone.
    assert!(!c.os().is_dir("/sys/fs/cgroup/cpu/examroom/t1/shims"));
    assert_eq!(
        c.os().file("/sys/fs/cgroup/memory/examroom/t1/envs/e1/memory.oom_control").as_deref(),
        Some("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    );
}

#[test]
fn v1_create_env_without_memsw_skips_it() {
    let os = FakeOs::hybrid();
    os.drop_template_file("/sys/fs/cgroup/memory", "memory.memsw.limit_in_bytes");
    let c = cg(os, "t");
    c.create_env("e", &LIMITS).expect("create");
    assert!(c.os().writes().iter().all(|(path, _)| !path.ends_with("memory.memsw.limit_in_bytes")));
    assert!(c.os().writes().contains(&w("/sys/fs/cgroup/memory/examroom/t/envs/e/memory.limit_in_bytes", "67108864")));
}

#[test]
fn v1_zero_limits_mean_unlimited() {
    let c = cg(FakeOs::hybrid(), "t");
    let zero = Limits { memory_bytes: 0, pids: 0, cpu_millicores: 0 };
    c.create_env("e", &zero).expect("create");
    let writes = c.os().writes();
    assert!(writes.contains(&w("/sys/fs/cgroup/memory/examroom/t/envs/e/memory.limit_in_bytes", "-1")));
    assert!(writes.contains(&w("/sys/fs/cgroup/pids/examroom/t/envs/e/pids.max", "max")));
    assert!(writes.contains(&w("/sys/fs/cgroup/cpu/examroom/t/envs/e/cpu.cfs_quota_us", "-1")));
}

#[test]
fn v1_parents_are_shared_and_leaves_are_not() {
    let c = cg(FakeOs::hybrid(), "t");
    let a = c.create_env("a", &LIMITS).expect("a");
    c.create_env("b", &LIMITS).expect("b (parents already exist)");
    let err = c.create_env("a", &LIMITS).expect_err("a again");
    assert!(matches!(err, CgroupError::AlreadyExists { .. }), "{err}");
    // The failed attempt did not remove the existing group or the parents.
    for d in &a.paths {
        assert!(c.os().is_dir(d), "{d:?}");
    }
    assert!(c.os().is_dir("/sys/fs/cgroup/pids/examroom/t/envs/b"));
}

#[test]
fn v1_create_shim_joins_systemd_and_unified() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_shim("e").expect("create");
    let leaf = |h: &str| p(&format!("/sys/fs/cgroup/{h}/examroom/t/shims/e"));
    assert_eq!(g.paths, vec![leaf("memory"), leaf("pids"), leaf("cpu"), leaf("systemd"), leaf("unified")]);
    assert_eq!(g, c.shim_group("e").expect("shim_group"));
    assert_eq!(c.os().writes(), vec![w("/sys/fs/cgroup/cpu/examroom/t/shims/cpu.shares", "1024")]);
}

#[test]
fn a_system_environment_is_in_every_hierarchy_and_delegated() {
    let os = FakeOs::hybrid();
    let c = cg(os, "t");
    let g = c.create_system_env("e", &LIMITS).expect("create");
    let leaf = |h: &str| p(&format!("/sys/fs/cgroup/{h}/examroom/t/envs/e"));
    for h in ["memory", "pids", "cpu", "freezer", "cpuacct", "cpuset", "devices", "blkio", "systemd", "unified"] {
        assert!(g.paths.contains(&leaf(h)), "{h} missing from {:?}", g.paths);
        assert!(c.os().is_dir(leaf(h)), "{h}");
    }
    // The cpuset group can hold processes: it has its parent's CPUs and nodes.
    assert_eq!(c.os().file("/sys/fs/cgroup/cpuset/examroom/t/envs/e/cpuset.cpus").as_deref(), Some("0-1"));
    assert_eq!(c.os().file("/sys/fs/cgroup/cpuset/examroom/t/envs/e/cpuset.mems").as_deref(), Some("0"));
    c.delegate(&g, 4242).expect("delegate");
    let chowned: Vec<PathBuf> = c
        .os()
        .log()
        .into_iter()
        .filter_map(|op| match op {
            super::fake::Op::Chown(path, 4242) => Some(path),
            _ => None,
        })
        .collect();
    assert!(chowned.contains(&leaf("memory")));
    assert!(chowned.contains(&leaf("memory").join("cgroup.procs")));
    assert!(chowned.contains(&leaf("unified").join("cgroup.subtree_control")));
    // Never a limit file.
    assert!(chowned.iter().all(|f| !f.to_string_lossy().contains("limit") && !f.ends_with("pids.max")), "{chowned:?}");
}

#[test]
fn the_shims_processes_in_a_system_environment_go_into_a_leaf_of_their_own() {
    // Hybrid: a leaf in every hierarchy, the cpuset one able to hold processes; made twice, kept.
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_system_env("e", &LIMITS).expect("create");
    let leaf = c.create_entry_leaf(&g).expect("leaf");
    assert_eq!(leaf.paths.len(), g.paths.len());
    for (l, d) in leaf.paths.iter().zip(&g.paths) {
        assert_eq!(l, &d.join(ENTRY_LEAF));
        assert!(c.os().is_dir(l), "{l:?}");
    }
    assert_eq!(c.os().file("/sys/fs/cgroup/cpuset/examroom/t/envs/e/.examroom/cpuset.cpus").as_deref(), Some("0-1"));
    // It repeats the environment's limits, for programs that read their own group's.
    assert_eq!(
        c.os().file("/sys/fs/cgroup/memory/examroom/t/envs/e/.examroom/memory.limit_in_bytes"),
        c.os().file("/sys/fs/cgroup/memory/examroom/t/envs/e/memory.limit_in_bytes")
    );
    assert_eq!(
        c.os().file("/sys/fs/cgroup/pids/examroom/t/envs/e/.examroom/pids.max").as_deref(),
        Some(LIMITS.pids.to_string().as_str())
    );
    assert_eq!(c.create_entry_leaf(&g).expect("again"), leaf);
    // Its processes are the environment's: counted and killed with it.
    c.os().add_pid(&leaf.paths[0], 77);
    assert_eq!(c.procs(&g).expect("procs"), vec![77]);

    // Pure v2: the service manager inside enables controllers for its own groups in the environment's group, which
    // then cannot hold processes; the leaf can.
    let c = cg(FakeOs::v2(), "t2");
    let g = c.create_system_env("e", &LIMITS).expect("create");
    c.delegate(&g, 4242).expect("delegate");
    let top = p("/sys/fs/cgroup/examroom/t2/envs/e");
    c.os().set_file(top.join("cgroup.subtree_control"), "memory pids");
    let leaf = c.create_entry_leaf(&g).expect("leaf");
    assert_eq!(leaf.paths, vec![top.join(ENTRY_LEAF)]);
    assert_eq!(c.os().file(top.join(ENTRY_LEAF).join("cgroup.subtree_control")).as_deref(), Some(""));
    // Not handed to the environment: only the shim moves processes into it.
    assert!(!c
        .os()
        .log()
        .iter()
        .any(|op| matches!(op, super::fake::Op::Chown(path, _) if path.starts_with(&leaf.paths[0]))));
    // A foreign group is refused.
    let foreign = Group { paths: vec![p("/sys/fs/cgroup/other/e")] };
    assert!(matches!(c.create_entry_leaf(&foreign), Err(CgroupError::ForeignPath { .. })));
}

#[test]
fn v1_oom_kills_count_the_groups_below() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_system_env("e", &LIMITS).expect("create");
    let leaf = c.create_entry_leaf(&g).expect("leaf");
    let mem = |d: &Path| d.join("memory.oom_control");
    let top = g.paths.iter().find(|p| p.starts_with("/sys/fs/cgroup/memory")).unwrap().clone();
    let low = leaf.paths.iter().find(|p| p.starts_with("/sys/fs/cgroup/memory")).unwrap().clone();
    c.os().set_file(mem(&top), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
    c.os().set_file(mem(&low), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
    assert_eq!(c.oom_kills(&g), Some(3));
}

#[test]
fn a_starting_shim_yields_its_cpu_weight_and_takes_it_back() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_shim("e").expect("create");
    c.set_cpu_weight(&g, CpuWeight::Starting).expect("starting");
    assert_eq!(c.os().file("/sys/fs/cgroup/cpu/examroom/t/shims/e/cpu.shares").as_deref(), Some("64"));
    c.set_cpu_weight(&g, CpuWeight::Normal).expect("normal");
    assert_eq!(c.os().file("/sys/fs/cgroup/cpu/examroom/t/shims/e/cpu.shares").as_deref(), Some("1024"));
    // Only the cpu hierarchy has the file; a foreign group is refused.
    assert!(c.os().file("/sys/fs/cgroup/memory/examroom/t/shims/e/cpu.shares").is_none());
    let foreign = Group { paths: vec![p("/sys/fs/cgroup/cpu/other/shims/e")] };
    assert!(matches!(c.set_cpu_weight(&foreign, CpuWeight::Normal), Err(CgroupError::ForeignPath { .. })));
}

#[test]
fn v1_failing_write_rolls_back_everything_made() {
    let os = FakeOs::hybrid();
    os.fail_write("/sys/fs/cgroup/pids/examroom/t/envs/e/pids.max");
    let c = cg(os, "t");
    let err = c.create_env("e", &LIMITS).expect_err("must fail");
    assert!(err.to_string().contains("/sys/fs/cgroup/pids/examroom/t/envs/e/pids.max"), "{err}");
    assert!(matches!(err, CgroupError::Write { .. }), "{err}");
    // Everything including the parents it made is gone.
    assert_eq!(c.os().dirs_named("examroom"), Vec::<PathBuf>::new());
    assert!(c.label_groups().expect("groups").is_empty());
}

#[test]
fn v1_rollback_keeps_parents_it_did_not_make() {
    let c = cg(FakeOs::hybrid(), "t");
    c.create_env("old", &LIMITS).expect("old");
    c.os().fail_write("/sys/fs/cgroup/cpu/examroom/t/envs/new/cpu.cfs_quota_us");
    c.create_env("new", &LIMITS).expect_err("must fail");
    assert_eq!(c.label_groups().expect("groups"), vec!["old".to_string()]);
    assert!(c.os().is_dir("/sys/fs/cgroup/freezer/examroom/t/envs/old"));
    assert!(!c.os().is_dir("/sys/fs/cgroup/freezer/examroom/t/envs/new"));
}

#[test]
fn v1_missing_controller_is_an_error_and_creates_nothing() {
    let text: String = HYBRID_MOUNTINFO.lines().filter(|l| !l.contains("freezer")).map(|l| format!("{l}\n")).collect();
    let os = FakeOs::hybrid();
    let layout = parse_mountinfo(&text).expect("layout");
    let c = Cgroups::new(os, layout, DEFAULT_ROOT, "t");
    let err = c.create_env("e", &LIMITS).expect_err("must fail");
    assert!(matches!(&err, CgroupError::MissingController { controller, .. } if controller == "freezer"), "{err}");
    assert!(c.os().dirs_named("examroom").is_empty());
}

#[test]
fn invalid_names_are_refused_before_touching_anything() {
    let c = cg(FakeOs::hybrid(), "t");
    for env in ["", "..", ".hidden", "a/b", "a b", "x\0"] {
        let err = c.create_env(env, &LIMITS).expect_err(env);
        assert!(matches!(err, CgroupError::InvalidName { .. }), "{env:?}: {err}");
    }
    let bad = cg(FakeOs::hybrid(), "Bad_Label");
    assert!(matches!(bad.create_shim("e"), Err(CgroupError::InvalidName { what: "label", .. })));
    let bad_root = Cgroups::new(FakeOs::hybrid(), c.layout().clone(), "../etc", "t");
    assert!(matches!(bad_root.create_shim("e"), Err(CgroupError::InvalidName { what: "root", .. })));
    assert!(c.os().log().iter().all(|op| !matches!(op, Op::Mkdir(_))));
}

/// Wraps the fake; the first mkdir of `victim` finds its parent gone (a
/// concurrent `remove_label_if_empty` of another process).
struct VanishingParent<'a> {
    inner: &'a FakeOs,
    victim: PathBuf,
    done: Cell<bool>,
}

impl CgroupOs for VanishingParent<'_> {
    fn read(&self, path: &Path) -> io::Result<String> {
        self.inner.read(path)
    }
    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        self.inner.write(path, data)
    }
    fn mkdir(&self, path: &Path) -> io::Result<()> {
        if path == self.victim && !self.done.replace(true) {
            if let Some(parent) = path.parent() {
                self.inner.rmdir(parent)?;
            }
        }
        self.inner.mkdir(path)
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.inner.rmdir(path)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dirs(path)
    }
    fn kill(&self, pid: i32, sig: i32) -> io::Result<()> {
        self.inner.kill(pid, sig)
    }
    fn chown(&self, path: &Path, uid: u32) -> io::Result<()> {
        self.inner.chown(path, uid)
    }
    fn sleep(&self, d: Duration) {
        self.inner.sleep(d)
    }
}

#[test]
fn create_retries_when_a_parent_vanishes_concurrently() {
    let fake = FakeOs::hybrid();
    let layout = detect_layout(&fake).expect("layout");
    let os =
        VanishingParent { inner: &fake, victim: p("/sys/fs/cgroup/pids/examroom/t/envs/e"), done: Cell::new(false) };
    let c = Cgroups::new(os, layout, DEFAULT_ROOT, "t");
    let g = c.create_env("e", &LIMITS).expect("second attempt succeeds");
    for d in &g.paths {
        assert!(fake.is_dir(d), "{d:?}");
    }
    assert!(fake.is_dir("/sys/fs/cgroup/pids/examroom/t/envs/e"));
}

// ---------------------------------------------------------------- v2 create

#[test]
fn v2_create_env_delegates_controllers_and_writes_limits() {
    let c = cg(FakeOs::v2(), "t2");
    let g = c.create_env("e1", &LIMITS).expect("create");
    assert_eq!(g.paths, vec![p("/sys/fs/cgroup/examroom/t2/envs/e1")]);
    assert_eq!(g, c.env_group("e1").expect("env_group"));
    let all = "+memory +pids +cpu";
    assert_eq!(
        c.os().writes(),
        vec![
            // The root already delegated memory and pids: only cpu is added.
            w("/sys/fs/cgroup/cgroup.subtree_control", "+cpu"),
            w("/sys/fs/cgroup/examroom/cgroup.subtree_control", all),
            w("/sys/fs/cgroup/examroom/t2/cgroup.subtree_control", all),
            w("/sys/fs/cgroup/examroom/t2/envs/cpu.weight", "10"),
            w("/sys/fs/cgroup/examroom/t2/envs/cgroup.subtree_control", all),
            w("/sys/fs/cgroup/examroom/t2/envs/e1/memory.max", "67108864"),
            w("/sys/fs/cgroup/examroom/t2/envs/e1/memory.swap.max", "0"),
            w("/sys/fs/cgroup/examroom/t2/envs/e1/pids.max", "32"),
            w("/sys/fs/cgroup/examroom/t2/envs/e1/cpu.max", "50000 100000"),
        ]
    );
    // The leaf delegates nothing (processes live there).
    assert_eq!(c.os().file("/sys/fs/cgroup/examroom/t2/envs/e1/cgroup.subtree_control").as_deref(), Some(""));

    // A second env finds everything delegated and writes only its own limits.
    c.os().clear_log();
    c.create_env("e2", &LIMITS).expect("create");
    let writes = c.os().writes();
    assert!(writes.iter().all(|(path, _)| !path.ends_with("cgroup.subtree_control")));
    assert_eq!(writes.len(), 5, "{writes:#?}"); // cpu.weight + 4 limits
}

#[test]
fn v2_create_env_without_swap_file_skips_it() {
    let os = FakeOs::v2();
    os.drop_template_file("/sys/fs/cgroup", "memory.swap.max");
    let c = cg(os, "t");
    c.create_env("e", &LIMITS).expect("create");
    assert!(c.os().writes().iter().all(|(path, _)| !path.ends_with("memory.swap.max")));
}

#[test]
fn v2_create_shim() {
    let c = cg(FakeOs::v2(), "t");
    let g = c.create_shim("e").expect("create");
    assert_eq!(g.paths, vec![p("/sys/fs/cgroup/examroom/t/shims/e")]);
    let writes = c.os().writes();
    assert!(writes.contains(&w("/sys/fs/cgroup/examroom/t/shims/cpu.weight", "100")));
    assert!(!writes.contains(&w("/sys/fs/cgroup/examroom/t/shims/cgroup.subtree_control", "+memory +pids +cpu")));
}

#[test]
fn v2_missing_controller_creates_nothing() {
    let os = FakeOs::v2();
    os.set_file("/sys/fs/cgroup/cgroup.controllers", "cpu memory io\n");
    let c = cg(os, "t");
    let err = c.create_env("e", &LIMITS).expect_err("must fail");
    assert!(matches!(&err, CgroupError::MissingController { controller, .. } if controller == "pids"), "{err}");
    assert!(c.os().dirs_named("examroom").is_empty());
}

#[test]
fn v2_failing_write_rolls_back() {
    let os = FakeOs::v2();
    os.fail_write("/sys/fs/cgroup/examroom/t/envs/e/cpu.max");
    let c = cg(os, "t");
    let err = c.create_env("e", &LIMITS).expect_err("must fail");
    assert!(err.to_string().contains("cpu.max"), "{err}");
    assert!(c.os().dirs_named("examroom").is_empty());
}

#[test]
fn v2_enable_failure_explains_the_no_internal_process_rule() {
    let os = FakeOs::v2();
    os.fail_write("/sys/fs/cgroup/cgroup.subtree_control");
    let c = cg(os, "t");
    let err = c.create_env("e", &LIMITS).expect_err("must fail");
    assert!(matches!(err, CgroupError::EnableControllers { .. }), "{err}");
    assert!(err.to_string().contains("cannot delegate"), "{err}");
}

// ---------------------------------------------------------------- procs

#[test]
fn add_process_and_procs_union() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 100).expect("add");
    for d in &g.paths {
        assert_eq!(c.os().file(d.join("cgroup.procs")).as_deref(), Some("100\n"));
    }
    // A process seen in one hierarchy only still counts.
    c.os().add_pid("/sys/fs/cgroup/pids/examroom/t/envs/e", 7);
    assert_eq!(c.procs(&g).expect("procs"), vec![7, 100]);
    assert!(matches!(c.add_process(&g, 0), Err(CgroupError::InvalidPid { pid: 0, .. })));
    assert!(matches!(c.add_process(&g, -1), Err(CgroupError::InvalidPid { .. })));
}

#[test]
fn procs_of_missing_group_is_empty() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.env_group("never-made").expect("group");
    assert_eq!(c.procs(&g).expect("procs"), Vec::<i32>::new());
}

#[test]
fn foreign_paths_are_refused() {
    let c = cg(FakeOs::hybrid(), "t");
    c.os().add_pid("/sys/fs/cgroup/memory", 1);
    for bad in [
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/memory/examroom",
        "/sys/fs/cgroup/memory/examroom/t/envs",
        "/sys/fs/cgroup/memory/examroom/other/envs/e",
        "/sys/fs/cgroup/memory/examroom/t/envs/e/../../../..",
        "/sys/fs/cgroup/memory/examroom/t/other/e",
        "/tmp/examroom/t/envs/e",
    ] {
        let g = Group { paths: vec![p(bad)] };
        assert!(matches!(c.kill_all(&g, T), Err(CgroupError::ForeignPath { .. })), "{bad}");
        assert!(matches!(c.remove(&g, T), Err(CgroupError::ForeignPath { .. })), "{bad}");
        assert!(matches!(c.add_process(&g, 5), Err(CgroupError::ForeignPath { .. })));
    }
    assert!(c.os().log().iter().all(|op| !matches!(op, Op::Kill(..) | Op::Rmdir(_) | Op::Write(..))));
}

// ---------------------------------------------------------------- kill_all

#[test]
fn v1_kill_all_freezes_kills_thaws_in_order() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 100).expect("add");
    c.add_process(&g, 101).expect("add");
    c.os().freezing_reads(1);
    c.os().clear_log();

    c.kill_all(&g, Duration::from_secs(5)).expect("kill_all");

    let state = p("/sys/fs/cgroup/freezer/examroom/t/envs/e/freezer.state");
    let log = c.os().log();
    let frozen = pos(&log, &Op::Write(state.clone(), "FROZEN".into()));
    let k100 = pos(&log, &Op::Kill(100, libc::SIGKILL));
    let k101 = pos(&log, &Op::Kill(101, libc::SIGKILL));
    let thawed = pos(&log, &Op::Write(state.clone(), "THAWED".into()));
    assert!(frozen < k100 && k100 < thawed && k101 < thawed, "{log:#?}");
    // It waited for FREEZING to become FROZEN before killing.
    let state_reads: Vec<usize> =
        log.iter().enumerate().filter(|(_, op)| **op == Op::Read(state.clone())).map(|(i, _)| i).collect();
    assert!(state_reads.len() >= 2, "{log:#?}");
    assert!(state_reads[1] < k100, "{log:#?}");
    assert!(log[frozen..k100].iter().any(|op| matches!(op, Op::Sleep(_))));
    assert!(c.procs(&g).expect("procs").is_empty());
    assert_eq!(c.os().file(&state).as_deref(), Some("THAWED\n"));
    c.remove(&g, T).expect("remove");
}

#[test]
fn v1_kill_all_times_out_on_unkillable_process_and_thaws() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 100).expect("add");
    c.add_process(&g, 101).expect("add");
    c.os().immortal(101);
    let err = c.kill_all(&g, T).expect_err("must time out");
    assert!(err.to_string().contains("1 processes still alive after 100ms"), "{err}");
    assert!(matches!(&err, CgroupError::StillAlive { pids, .. } if pids == &vec![101]));
    assert_eq!(c.os().slept(), T);
    assert_eq!(c.os().file("/sys/fs/cgroup/freezer/examroom/t/envs/e/freezer.state").as_deref(), Some("THAWED\n"));
    assert_eq!(c.procs(&g).expect("procs"), vec![101]);
}

#[test]
fn v1_kill_all_of_empty_group_does_nothing() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.os().clear_log();
    c.kill_all(&g, T).expect("kill_all");
    assert!(c.os().writes().is_empty());
    // Also for a group that no longer exists at all.
    c.remove(&g, T).expect("remove");
    c.kill_all(&g, T).expect("kill_all of removed group");
}

#[test]
fn kill_all_refuses_group_containing_caller() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, c.os().self_pid()).expect("add");
    assert!(matches!(c.kill_all(&g, T), Err(CgroupError::ContainsSelf { .. })));
    assert!(c.os().log().iter().all(|op| !matches!(op, Op::Kill(..))));
}

#[test]
fn v1_shim_kill_all_uses_unified_cgroup_kill() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_shim("e").expect("create");
    c.add_process(&g, 200).expect("add");
    c.os().clear_log();
    c.kill_all(&g, T).expect("kill_all");
    assert_eq!(c.os().writes(), vec![w("/sys/fs/cgroup/unified/examroom/t/shims/e/cgroup.kill", "1")]);
    assert!(c.procs(&g).expect("procs").is_empty());
}

#[test]
fn v1_shim_kill_all_without_freezer_kills_directly() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_shim("e").expect("create");
    c.os().remove_file("/sys/fs/cgroup/unified/examroom/t/shims/e/cgroup.kill");
    c.os().remove_file("/sys/fs/cgroup/unified/examroom/t/shims/e/cgroup.freeze");
    c.add_process(&g, 200).expect("add");
    c.os().clear_log();
    c.kill_all(&g, T).expect("kill_all");
    assert!(c.os().log().contains(&Op::Kill(200, libc::SIGKILL)));
    assert!(c.os().writes().is_empty());
}

#[test]
fn v2_kill_all_writes_cgroup_kill() {
    let c = cg(FakeOs::v2(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 300).expect("add");
    c.add_process(&g, 301).expect("add");
    c.os().clear_log();
    c.kill_all(&g, T).expect("kill_all");
    assert_eq!(c.os().writes(), vec![w("/sys/fs/cgroup/examroom/t/envs/e/cgroup.kill", "1")]);
    assert!(c.os().log().iter().all(|op| !matches!(op, Op::Kill(..))));
    assert!(c.procs(&g).expect("procs").is_empty());
}

#[test]
fn v2_kill_all_falls_back_to_freeze_when_cgroup_kill_is_missing() {
    let c = cg(FakeOs::v2(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    let dir = p("/sys/fs/cgroup/examroom/t/envs/e");
    c.os().remove_file(dir.join("cgroup.kill"));
    c.add_process(&g, 300).expect("add");
    c.os().clear_log();
    c.kill_all(&g, T).expect("kill_all");
    let log = c.os().log();
    let freeze = pos(&log, &Op::Write(dir.join("cgroup.freeze"), "1".into()));
    let kill = pos(&log, &Op::Kill(300, libc::SIGKILL));
    let thaw = pos(&log, &Op::Write(dir.join("cgroup.freeze"), "0".into()));
    assert!(freeze < kill && kill < thaw, "{log:#?}");
    assert!(c.procs(&g).expect("procs").is_empty());
}

#[test]
fn v2_kill_all_times_out() {
    let c = cg(FakeOs::v2(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 300).expect("add");
    c.os().immortal(300);
    let err = c.kill_all(&g, T).expect_err("must time out");
    assert!(err.to_string().contains("1 processes still alive after 100ms"), "{err}");
}

// ---------------------------------------------------------------- remove

#[test]
fn remove_retries_ebusy() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    let busy = p("/sys/fs/cgroup/memory/examroom/t/envs/e");
    c.os().busy_once(&busy);
    c.os().clear_log();
    c.remove(&g, Duration::from_secs(1)).expect("remove");
    let rmdirs = c.os().log().iter().filter(|op| **op == Op::Rmdir(busy.clone())).count();
    assert_eq!(rmdirs, 2);
    assert_eq!(c.os().slept(), POLL_STEP);
    for d in &g.paths {
        assert!(!c.os().is_dir(d), "{d:?}");
    }
    // Removing again: missing directories are success.
    c.remove(&g, T).expect("remove again");
}

#[test]
fn remove_times_out_while_processes_remain() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.add_process(&g, 100).expect("add");
    let err = c.remove(&g, T).expect_err("must time out");
    assert!(matches!(err, CgroupError::Busy { .. }), "{err}");
    assert!(err.to_string().contains("still busy after 100ms"), "{err}");
    assert_eq!(c.os().slept(), T);
}

#[test]
fn remove_removes_child_groups_deepest_first() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    let leaf = p("/sys/fs/cgroup/memory/examroom/t/envs/e");
    c.os().mkdir(&leaf.join("a")).expect("mkdir");
    c.os().mkdir(&leaf.join("a/b")).expect("mkdir");
    c.remove(&g, T).expect("remove");
    assert!(c.os().dirs_under(&leaf).is_empty());
    let log = c.os().log();
    assert!(pos(&log, &Op::Rmdir(leaf.join("a/b"))) < pos(&log, &Op::Rmdir(leaf.join("a"))));
}

// ---------------------------------------------------------------- label

#[test]
fn label_groups_and_cleanup() {
    let c = cg(FakeOs::hybrid(), "t");
    let other = Cgroups::new(c.os(), c.layout().clone(), DEFAULT_ROOT, "other");
    other.create_env("x", &LIMITS).expect("other");
    let a = c.create_env("a", &LIMITS).expect("a");
    let sa = c.create_shim("a").expect("shim a");
    let b = c.create_env("b", &LIMITS).expect("b");
    assert_eq!(c.label_groups().expect("groups"), vec!["a", "b"]);

    // Not empty yet: nothing is removed.
    c.remove_label_if_empty();
    assert!(c.os().is_dir("/sys/fs/cgroup/memory/examroom/t/envs/a"));

    for g in [&a, &sa, &b] {
        c.remove(g, T).expect("remove");
    }
    assert!(c.label_groups().expect("groups").is_empty());
    c.remove_label_if_empty();
    for d in c.label_dirs() {
        assert!(!c.os().exists(&d), "{d:?}");
    }
    assert!(c.os().dirs_named("t").is_empty());
    // <root> and other labels stay.
    assert!(c.os().is_dir("/sys/fs/cgroup/memory/examroom"));
    assert_eq!(other.label_groups().expect("groups"), vec!["x"]);
}

// ---------------------------------------------------------------- stats

#[test]
fn oom_kills_and_memory_peak() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    assert_eq!(c.oom_kills(&g), Some(0));
    c.os().set_file(
        "/sys/fs/cgroup/memory/examroom/t/envs/e/memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
    );
    assert_eq!(c.oom_kills(&g), Some(3));
    c.os().set_file("/sys/fs/cgroup/memory/examroom/t/envs/e/memory.max_usage_in_bytes", "4096\n");
    assert_eq!(c.memory_peak(&g), Some(4096));
    c.remove(&g, T).expect("remove");
    assert_eq!(c.oom_kills(&g), None);

    let c = cg(FakeOs::v2(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    c.os().set_file("/sys/fs/cgroup/examroom/t/envs/e/memory.events", "low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n");
    assert_eq!(c.oom_kills(&g), Some(2));
}

// ---------------------------------------------------------------- real

/// Cleans up a real test's processes and groups even when it fails.
struct RealGuard<'a> {
    cg: &'a Cgroups<RealOs>,
    groups: Vec<Group>,
    child: Option<std::process::Child>,
}

impl Drop for RealGuard<'_> {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
        for g in &self.groups {
            let _ = self.cg.kill_all(g, Duration::from_secs(2));
            let _ = self.cg.remove(g, Duration::from_secs(2));
        }
        self.cg.remove_label_if_empty();
    }
}

/// `Some` when running as root with writable cgroup mounts.
fn real_cgroups(what: &str) -> Option<Cgroups<RealOs>> {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping real cgroup test ({what}): not root");
        return None;
    }
    let layout = match detect_layout(&RealOs) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("skipping real cgroup test ({what}): {e}");
            return None;
        }
    };
    for m in layout.mounts() {
        if let Err(e) = nix::unistd::access(&m, nix::unistd::AccessFlags::W_OK) {
            eprintln!("skipping real cgroup test ({what}): {} not writable: {e}", m.display());
            return None;
        }
    }
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    let label = format!("cgtest-{what}-{}-{nanos}", std::process::id());
    Some(Cgroups::new(RealOs, layout, DEFAULT_ROOT, &label))
}

fn read_trim(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display())).trim().to_string()
}

fn real_lifecycle(c: &Cgroups<RealOs>, group: Group) {
    use std::os::unix::process::ExitStatusExt;

    let mut guard = RealGuard { cg: c, groups: vec![group.clone()], child: None };
    let child = std::process::Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let pid = i32::try_from(child.id()).expect("pid");
    guard.child = Some(child);

    c.add_process(&group, pid).expect("add_process");
    assert!(c.procs(&group).expect("procs").contains(&pid));
    c.kill_all(&group, Duration::from_secs(5)).expect("kill_all");
    assert!(c.procs(&group).expect("procs").is_empty());
    let status = guard.child.take().expect("child").wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    c.remove(&group, Duration::from_secs(5)).expect("remove");
    for d in &group.paths {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    assert_eq!(c.label_groups().expect("label_groups"), Vec::<String>::new());
    c.remove_label_if_empty();
    for d in c.label_dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
    drop(guard);
}

#[test]
fn real_env_lifecycle() {
    let Some(c) = real_cgroups("env") else {
        return;
    };
    let limits = Limits { memory_bytes: 64 * MIB, pids: 32, cpu_millicores: 500 };
    let group = match c.create_env("env-1", &limits) {
        Ok(g) => g,
        Err(e) => {
            c.remove_label_if_empty();
            panic!("create_env: {e}");
        }
    };
    match c.layout() {
        Layout::V1 { controllers, .. } => {
            let leaf =
                |ctl: &str| group.paths.iter().find(|p| p.starts_with(&controllers[ctl])).cloned().expect("leaf");
            assert_eq!(read_trim(&leaf("memory").join("memory.limit_in_bytes")), (64 * MIB).to_string());
            let memsw = leaf("memory").join("memory.memsw.limit_in_bytes");
            if memsw.exists() {
                assert_eq!(read_trim(&memsw), (64 * MIB).to_string());
            }
            assert_eq!(read_trim(&leaf("pids").join("pids.max")), "32");
            assert_eq!(read_trim(&leaf("cpu").join("cpu.cfs_quota_us")), "50000");
            assert_eq!(read_trim(&leaf("cpu").join("cpu.cfs_period_us")), "100000");
            let envs = leaf("cpu").parent().map(Path::to_path_buf).expect("envs");
            assert_eq!(read_trim(&envs.join("cpu.shares")), "128");
        }
        Layout::V2 { .. } => {
            let leaf = &group.paths[0];
            assert_eq!(read_trim(&leaf.join("memory.max")), (64 * MIB).to_string());
            assert_eq!(read_trim(&leaf.join("pids.max")), "32");
            assert_eq!(read_trim(&leaf.join("cpu.max")), "50000 100000");
        }
    }
    real_lifecycle(&c, group);
}

#[test]
fn real_shim_lifecycle() {
    let Some(c) = real_cgroups("shim") else {
        return;
    };
    let group = match c.create_shim("env-1") {
        Ok(g) => g,
        Err(e) => {
            c.remove_label_if_empty();
            panic!("create_shim: {e}");
        }
    };
    real_lifecycle(&c, group);
}

/// A group full of forking processes and orphans (not our children): the
/// freezer (v1) / cgroup.kill (v2) must get them all.
#[test]
fn real_kill_all_gets_forking_orphans() {
    use std::io::Write as _;

    let Some(c) = real_cgroups("fork") else {
        return;
    };
    let group = match c.create_env("env-fork", &LIMITS) {
        Ok(g) => g,
        Err(e) => {
            c.remove_label_if_empty();
            panic!("create_env: {e}");
        }
    };
    let mut guard = RealGuard { cg: &c, groups: vec![group.clone()], child: None };
    // Waits for a line on stdin (so it is in the group before it forks),
    // then leaves 10 orphaned sleeps behind and keeps forking more.
    let script = "read go; for i in 1 2 3 4 5 6 7 8 9 10; do (sleep 100 &); done; \
                  while :; do (sleep 100 &); sleep 0.01; done";
    let child = std::process::Command::new("sh")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn sh");
    let pid = i32::try_from(child.id()).expect("pid");
    guard.child = Some(child);
    c.add_process(&group, pid).expect("add_process");
    let stdin = guard.child.as_mut().and_then(|ch| ch.stdin.as_mut()).expect("stdin");
    stdin.write_all(b"go\n").expect("write stdin");

    let mut n = 0;
    for _ in 0..500 {
        n = c.procs(&group).expect("procs").len();
        if n >= 12 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(n >= 12, "only {n} processes in the group");
    c.kill_all(&group, Duration::from_secs(10)).expect("kill_all");
    assert!(c.procs(&group).expect("procs").is_empty());
    let _ = guard.child.take().map(|mut ch| ch.wait());
    c.remove(&group, Duration::from_secs(5)).expect("remove");
    drop(guard);
    for d in c.label_dirs() {
        assert!(!d.exists(), "{} still exists", d.display());
    }
}

#[test]
fn a_desktop_leaf_sits_below_the_environment_with_no_limits_of_its_own() {
    let c = cg(FakeOs::hybrid(), "t");
    let g = c.create_env("e", &LIMITS).expect("create");
    let leaf = c.create_desktop_leaf(&g).expect("leaf");
    assert_eq!(leaf.paths.len(), g.paths.len());
    for (l, d) in leaf.paths.iter().zip(&g.paths) {
        assert_eq!(l, &d.join(DESKTOP_LEAF));
    }
    // No limit is written in it (the environment's apply to it).
    assert!(leaf.paths.iter().any(|p| p.starts_with("/sys/fs/cgroup/memory")), "{leaf:?}");
    let limit = c.os().file("/sys/fs/cgroup/memory/examroom/t/envs/e/desktop/memory.limit_in_bytes");
    assert_ne!(limit.as_deref().map(str::trim), Some(LIMITS.memory_bytes.to_string().as_str()), "{limit:?}");
    // Its processes are the environment's: moved in by the shim, counted and killed with it.
    c.add_process(&leaf, 91).expect("move into the leaf");
    assert_eq!(c.procs(&g).expect("procs"), vec![91]);
    // A leaf has no leaves, and nothing outside the label passes.
    assert!(c.create_desktop_leaf(&leaf).is_err());
    let foreign = Group { paths: vec![p("/sys/fs/cgroup/memory/other/desktop")] };
    assert!(c.add_process(&foreign, 92).is_err());
}
