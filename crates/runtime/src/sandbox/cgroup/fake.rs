//! An in-memory cgroupfs for unit tests.
//!
//! Directories and files live in maps; `mkdir` below a known mount creates
//! that hierarchy's control files. Every operation is recorded in a log.
//! Knobs simulate: failing writes, `EBUSY` once on rmdir, a freezer that
//! reports `FREEZING` some times before `FROZEN`, processes that ignore
//! SIGKILL. Killed processes disappear from every `cgroup.procs` (at thaw
//! if their freezer group is frozen, like the real thing).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::os::CgroupOs;

/// A recorded operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Read(PathBuf),
    Write(PathBuf, String),
    Mkdir(PathBuf),
    Rmdir(PathBuf),
    Kill(i32, i32),
    Sleep(Duration),
    Chown(PathBuf, u32),
}

#[derive(Default)]
struct State {
    dirs: BTreeSet<PathBuf>,
    files: BTreeMap<PathBuf, String>,
    /// mount -> control files (name, initial content) of a new group there.
    templates: Vec<(PathBuf, Vec<(String, String)>)>,
    log: Vec<Op>,
    fail_writes: BTreeSet<PathBuf>,
    busy_once: BTreeSet<PathBuf>,
    freezing_reads: u32,
    immortal: BTreeSet<i32>,
    /// Killed while frozen: they die at thaw.
    pending_death: BTreeSet<i32>,
    slept: Duration,
}

pub struct FakeOs {
    st: RefCell<State>,
}

pub const HYBRID_MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:3 - tmpfs tmpfs ro,mode=755
28 25 0:26 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate
29 25 0:27 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,name=systemd
30 25 0:28 / /sys/fs/cgroup/cpu rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,cpu
31 25 0:29 / /sys/fs/cgroup/cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpuacct
32 25 0:30 / /sys/fs/cgroup/cpuset rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpuset
35 25 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,memory
36 25 0:32 / /sys/fs/cgroup/devices rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,devices
37 25 0:33 / /sys/fs/cgroup/freezer rw,nosuid,nodev,noexec,relatime shared:18 - cgroup cgroup rw,freezer
38 25 0:34 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:19 - cgroup cgroup rw,blkio
39 25 0:35 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:20 - cgroup cgroup rw,pids
40 22 0:36 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
";

pub const V2_MOUNTINFO: &str = "\
22 1 253:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 24 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
27 24 0:25 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700
";

fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(n, c)| ((*n).to_string(), (*c).to_string())).collect()
}

fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

impl FakeOs {
    fn empty() -> Self {
        FakeOs { st: RefCell::new(State::default()) }
    }

    /// Adds a mount: its root directory, its root files, and what a new
    /// group below it gets.
    fn mount(&self, mount: &str, root_files: &[(&str, &str)], group_files: &[(&str, &str)]) {
        let mut st = self.st.borrow_mut();
        let m = PathBuf::from(mount);
        let mut p = m.clone();
        loop {
            st.dirs.insert(p.clone());
            if !p.pop() {
                break;
            }
        }
        for (n, c) in root_files {
            st.files.insert(m.join(n), (*c).to_string());
        }
        st.templates.push((m, files(group_files)));
    }

    /// This host: v1 controllers in separate mounts, `name=systemd`, and a
    /// controller-less cgroup2 at `/sys/fs/cgroup/unified`.
    pub fn hybrid() -> Self {
        let os = Self::empty();
        os.set_file("/proc/self/mountinfo", HYBRID_MOUNTINFO);
        let procs = ("cgroup.procs", "");
        os.mount(
            "/sys/fs/cgroup/memory",
            &[procs],
            &[
                procs,
                ("memory.limit_in_bytes", "9223372036854771712\n"),
                ("memory.memsw.limit_in_bytes", "9223372036854771712\n"),
                ("memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"),
                ("memory.max_usage_in_bytes", "0\n"),
            ],
        );
        os.mount("/sys/fs/cgroup/pids", &[procs], &[procs, ("pids.max", "max\n")]);
        os.mount(
            "/sys/fs/cgroup/cpu",
            &[procs, ("cpu.shares", "1024\n")],
            &[procs, ("cpu.shares", "1024\n"), ("cpu.cfs_period_us", "100000\n"), ("cpu.cfs_quota_us", "-1\n")],
        );
        os.mount("/sys/fs/cgroup/cpuacct", &[procs], &[procs, ("cpuacct.usage", "0\n")]);
        os.mount("/sys/fs/cgroup/freezer", &[procs], &[procs, ("freezer.state", "THAWED\n")]);
        os.mount(
            "/sys/fs/cgroup/cpuset",
            &[procs, ("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")],
            &[procs, ("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        );
        for m in ["devices", "blkio", "systemd"] {
            os.mount(&format!("/sys/fs/cgroup/{m}"), &[procs], &[procs]);
        }
        os.mount(
            "/sys/fs/cgroup/unified",
            &[procs, ("cgroup.controllers", ""), ("cgroup.subtree_control", "")],
            &[
                procs,
                ("cgroup.kill", ""),
                ("cgroup.freeze", "0\n"),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
                ("cgroup.controllers", ""),
                ("cgroup.subtree_control", ""),
            ],
        );
        os
    }

    /// A pure v2 host with `/sys/fs/cgroup` as the unified hierarchy.
    pub fn v2() -> Self {
        let os = Self::empty();
        os.set_file("/proc/self/mountinfo", V2_MOUNTINFO);
        os.mount(
            "/sys/fs/cgroup",
            &[
                ("cgroup.procs", ""),
                ("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n"),
                ("cgroup.subtree_control", "memory pids\n"),
            ],
            &[
                ("cgroup.procs", ""),
                ("cgroup.kill", ""),
                ("cgroup.freeze", "0\n"),
                ("cgroup.events", "populated 0\nfrozen 0\n"),
                ("cgroup.controllers", "cpu memory pids\n"),
                ("cgroup.subtree_control", ""),
                ("cpu.weight", "100\n"),
                ("cpu.max", "max 100000\n"),
                ("memory.max", "max\n"),
                ("memory.swap.max", "max\n"),
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"),
                ("memory.peak", "0\n"),
                ("pids.max", "max\n"),
            ],
        );
        os
    }

    pub fn set_file(&self, path: impl AsRef<Path>, content: &str) {
        self.st.borrow_mut().files.insert(path.as_ref().to_path_buf(), content.to_string());
    }

    pub fn file(&self, path: impl AsRef<Path>) -> Option<String> {
        self.st.borrow().files.get(path.as_ref()).cloned()
    }

    pub fn remove_file(&self, path: impl AsRef<Path>) {
        self.st.borrow_mut().files.remove(path.as_ref());
    }

    /// Stops new groups below `mount` from getting control file `name`.
    pub fn drop_template_file(&self, mount: &str, name: &str) {
        let mut st = self.st.borrow_mut();
        for (m, list) in &mut st.templates {
            if m == Path::new(mount) {
                list.retain(|(n, _)| n != name);
            }
        }
    }

    /// Writes to `path` fail with `EINVAL`.
    pub fn fail_write(&self, path: impl AsRef<Path>) {
        self.st.borrow_mut().fail_writes.insert(path.as_ref().to_path_buf());
    }

    /// The next rmdir of `path` fails with `EBUSY`.
    pub fn busy_once(&self, path: impl AsRef<Path>) {
        self.st.borrow_mut().busy_once.insert(path.as_ref().to_path_buf());
    }

    /// A `FROZEN` freezer reads `FREEZING` this many times first.
    pub fn freezing_reads(&self, n: u32) {
        self.st.borrow_mut().freezing_reads = n;
    }

    /// `pid` survives SIGKILL and `cgroup.kill`.
    pub fn immortal(&self, pid: i32) {
        self.st.borrow_mut().immortal.insert(pid);
    }

    pub fn log(&self) -> Vec<Op> {
        self.st.borrow().log.clone()
    }

    pub fn clear_log(&self) {
        self.st.borrow_mut().log.clear();
    }

    pub fn writes(&self) -> Vec<(PathBuf, String)> {
        self.log()
            .into_iter()
            .filter_map(|op| match op {
                Op::Write(p, d) => Some((p, d)),
                _ => None,
            })
            .collect()
    }

    pub fn slept(&self) -> Duration {
        self.st.borrow().slept
    }

    pub fn is_dir(&self, path: impl AsRef<Path>) -> bool {
        self.st.borrow().dirs.contains(path.as_ref())
    }

    /// Every directory at or below `prefix`.
    pub fn dirs_under(&self, prefix: impl AsRef<Path>) -> Vec<PathBuf> {
        self.st.borrow().dirs.iter().filter(|d| d.starts_with(prefix.as_ref())).cloned().collect()
    }

    /// Every directory whose path contains the component `name`.
    pub fn dirs_named(&self, name: &str) -> Vec<PathBuf> {
        self.st.borrow().dirs.iter().filter(|d| d.components().any(|c| c.as_os_str() == name)).cloned().collect()
    }

    /// Puts `pid` in `dir/cgroup.procs` without logging (a process that
    /// was already there).
    pub fn add_pid(&self, dir: impl AsRef<Path>, pid: i32) {
        let mut st = self.st.borrow_mut();
        let f = dir.as_ref().join("cgroup.procs");
        let entry = st.files.entry(f).or_default();
        entry.push_str(&format!("{pid}\n"));
    }
}

impl State {
    fn procs_files_with(&self, pid: i32) -> Vec<PathBuf> {
        self.files
            .iter()
            .filter(|(p, c)| {
                p.file_name().is_some_and(|n| n == "cgroup.procs") && c.split_whitespace().any(|s| s == pid.to_string())
            })
            .map(|(p, _)| p.clone())
            .collect()
    }

    fn die(&mut self, pid: i32) {
        for f in self.procs_files_with(pid) {
            if let Some(c) = self.files.get_mut(&f) {
                *c = c.split_whitespace().filter(|s| *s != pid.to_string()).map(|s| format!("{s}\n")).collect();
            }
        }
    }

    fn is_frozen_pid(&self, pid: i32) -> bool {
        self.procs_files_with(pid).iter().any(|f| {
            f.parent()
                .map(|d| d.join("freezer.state"))
                .and_then(|s| self.files.get(&s))
                .is_some_and(|s| s.trim() == "FROZEN")
        })
    }

    fn pids_in(&self, dir: &Path) -> Vec<i32> {
        self.files
            .get(&dir.join("cgroup.procs"))
            .map(|c| c.split_whitespace().filter_map(|s| s.parse().ok()).collect())
            .unwrap_or_default()
    }
}

impl CgroupOs for FakeOs {
    fn read(&self, path: &Path) -> io::Result<String> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Read(path.to_path_buf()));
        if st.dirs.contains(path) {
            return Err(errno(libc::EISDIR));
        }
        let content = st.files.get(path).cloned().ok_or_else(|| errno(libc::ENOENT))?;
        if path.file_name().is_some_and(|n| n == "freezer.state") && content.trim() == "FROZEN" && st.freezing_reads > 0
        {
            st.freezing_reads -= 1;
            return Ok("FREEZING\n".into());
        }
        Ok(content)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Write(path.to_path_buf(), data.to_string()));
        if st.fail_writes.contains(path) {
            return Err(errno(libc::EINVAL));
        }
        if !st.files.contains_key(path) {
            return Err(errno(libc::ENOENT));
        }
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        match path.file_name().and_then(|n| n.to_str()) {
            Some("cgroup.procs") => {
                let pid: i32 = data.trim().parse().map_err(|_| errno(libc::EINVAL))?;
                // Moving within a hierarchy: leave the old group.
                let mount = st
                    .templates
                    .iter()
                    .map(|(m, _)| m.clone())
                    .filter(|m| path.starts_with(m))
                    .max_by_key(|m| m.components().count());
                let old: Vec<PathBuf> = st
                    .procs_files_with(pid)
                    .into_iter()
                    .filter(|f| mount.as_ref().is_some_and(|m| f.starts_with(m)))
                    .collect();
                for f in old {
                    if let Some(c) = st.files.get_mut(&f) {
                        *c = c.split_whitespace().filter(|s| *s != pid.to_string()).map(|s| format!("{s}\n")).collect();
                    }
                }
                if let Some(c) = st.files.get_mut(path) {
                    c.push_str(&format!("{pid}\n"));
                }
            }
            Some("cgroup.kill") => {
                if data.trim() == "1" {
                    for pid in st.pids_in(&dir) {
                        if !st.immortal.contains(&pid) {
                            st.die(pid);
                        }
                    }
                }
            }
            Some("cgroup.subtree_control") => {
                let mut on: Vec<String> = st.files[path].split_whitespace().map(String::from).collect();
                for tok in data.split_whitespace() {
                    let (add, name) = tok.split_at(1);
                    on.retain(|c| c != name);
                    match add {
                        "+" => on.push(name.to_string()),
                        "-" => {}
                        _ => return Err(errno(libc::EINVAL)),
                    }
                }
                st.files.insert(path.to_path_buf(), format!("{}\n", on.join(" ")));
            }
            Some("cgroup.freeze") => {
                let frozen = u8::from(data.trim() == "1");
                st.files.insert(path.to_path_buf(), format!("{frozen}\n"));
                st.files.insert(dir.join("cgroup.events"), format!("populated 1\nfrozen {frozen}\n"));
            }
            Some("freezer.state") => {
                st.files.insert(path.to_path_buf(), format!("{}\n", data.trim()));
                if data.trim() == "THAWED" {
                    let in_group = st.pids_in(&dir);
                    let pending: Vec<i32> = st.pending_death.iter().copied().filter(|p| in_group.contains(p)).collect();
                    for pid in pending {
                        st.pending_death.remove(&pid);
                        st.die(pid);
                    }
                }
            }
            _ => {
                st.files.insert(path.to_path_buf(), data.to_string());
            }
        }
        Ok(())
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Mkdir(path.to_path_buf()));
        if st.dirs.contains(path) || st.files.contains_key(path) {
            return Err(errno(libc::EEXIST));
        }
        if !path.parent().is_some_and(|p| st.dirs.contains(p)) {
            return Err(errno(libc::ENOENT));
        }
        st.dirs.insert(path.to_path_buf());
        let template = st
            .templates
            .iter()
            .filter(|(m, _)| path.starts_with(m))
            .max_by_key(|(m, _)| m.components().count())
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        for (name, content) in template {
            st.files.insert(path.join(name), content);
        }
        Ok(())
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Rmdir(path.to_path_buf()));
        if !st.dirs.contains(path) {
            return Err(errno(libc::ENOENT));
        }
        if st.busy_once.remove(path) {
            return Err(errno(libc::EBUSY));
        }
        if st.dirs.iter().any(|d| d.parent() == Some(path)) {
            return Err(errno(libc::EBUSY));
        }
        if !st.pids_in(path).is_empty() {
            return Err(errno(libc::EBUSY));
        }
        st.dirs.remove(path);
        st.files.retain(|f, _| f.parent() != Some(path));
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let st = self.st.borrow();
        st.dirs.contains(path) || st.files.contains_key(path)
    }

    fn list_dirs(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.st.borrow();
        if !st.dirs.contains(path) {
            return Err(errno(libc::ENOENT));
        }
        Ok(st
            .dirs
            .iter()
            .filter(|d| d.parent() == Some(path))
            .filter_map(|d| d.file_name().and_then(|n| n.to_str()).map(String::from))
            .collect())
    }

    fn chown(&self, path: &Path, uid: u32) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Chown(path.to_path_buf(), uid));
        if st.dirs.contains(path) || st.files.contains_key(path) {
            Ok(())
        } else {
            Err(errno(libc::ENOENT))
        }
    }

    fn kill(&self, pid: i32, sig: i32) -> io::Result<()> {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Kill(pid, sig));
        if pid <= 0 {
            return Err(errno(libc::EINVAL));
        }
        if st.procs_files_with(pid).is_empty() {
            return Err(errno(libc::ESRCH));
        }
        if sig == libc::SIGKILL && !st.immortal.contains(&pid) {
            if st.is_frozen_pid(pid) {
                st.pending_death.insert(pid);
            } else {
                st.die(pid);
            }
        }
        Ok(())
    }

    fn sleep(&self, d: Duration) {
        let mut st = self.st.borrow_mut();
        st.log.push(Op::Sleep(d));
        st.slept += d;
    }

    fn self_pid(&self) -> i32 {
        4_000_000
    }
}
