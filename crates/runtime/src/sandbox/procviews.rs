//! What `/proc` says about memory, CPUs, time and load, seen from inside an environment: its own limits and use, not
//! the host's. `free`, `top`, `uptime`, `nproc` and a JVM without cgroup support size themselves from these files.
//!
//! The shim keeps one small tmpfs of its own (made on the host side, so nothing inside names a host uid) with
//! `meminfo`, `cpuinfo`, `stat`, `uptime`, `loadavg` and `swaps`; init binds each over its `/proc` entry while it
//! builds the root (locked there like every other mount), and the shim rewrites the changing ones twice a second
//! from the environment's cgroup. There is no daemon to die: these files live exactly as long as the shim, which is
//! the environment. A rewrite is one `pwrite` of the whole file at offset 0 with every number in a fixed width, so the
//! file never changes length and a reader racing a rewrite still gets well-formed lines.
//!
//! The formatting is pure ([`meminfo`], [`cpuinfo`], [`stat`], [`loadavg`]) and unit-tested; [`ProcViews`] reads
//! the cgroup and writes.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::sys;

/// How often the changing files are rewritten.
pub const REFRESH: Duration = Duration::from_millis(500);

/// The entries of `/proc` an environment gets its own view of.
pub const VIEWS: &[&str] = &["meminfo", "cpuinfo", "stat", "uptime", "loadavg", "swaps"];

/// Width of every number in the files that change, so that a rewrite never changes their length.
const W: usize = 12;

/// Clock ticks per second, as `/proc/stat` counts (`USER_HZ`).
const USER_HZ: u64 = 100;

/// What the views show, read from the environment's cgroup.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    /// Bytes in use (v1 `memory.usage_in_bytes`, v2 `memory.current`).
    pub memory_bytes: u64,
    /// Of which page cache that could be reclaimed (inactive + active file).
    pub reclaimable_bytes: u64,
    /// Shared memory (tmpfs, /dev/shm) in use.
    pub shmem_bytes: u64,
    /// CPU time used, user and system, in nanoseconds.
    pub cpu_user_ns: u64,
    pub cpu_system_ns: u64,
    /// Processes in the environment, and how many of them are running.
    pub tasks: u64,
    pub running: u64,
    /// The last pid made (for `loadavg`'s last field).
    pub last_pid: u64,
}

/// The environment's `/proc` views: the write ends, and what they need between rewrites.
pub struct ProcViews {
    files: Vec<(&'static str, std::fs::File)>,
    memory_limit: u64,
    cpus: usize,
    started: Instant,
    started_unix: u64,
    group_dirs: Vec<PathBuf>,
    load: [f64; 3],
    last: Instant,
}

impl ProcViews {
    /// Makes the files (host side) and returns the views and, for init, a detached mount of each file by name.
    pub fn make(
        memory_limit: u64,
        cpu_millicores: u64,
        group_dirs: Vec<PathBuf>,
        started_unix: u64,
    ) -> io::Result<(ProcViews, Vec<(String, OwnedFd)>)> {
        let fs = sys::detached_tmpfs(&[("size", "64k"), ("nr_inodes", "16"), ("mode", "0555")], 0)?;
        let host_cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let cpus = (cpu_millicores.div_ceil(1000) as usize).clamp(1, host_cpus);
        let mut files = Vec::new();
        let mut mounts = Vec::new();
        for name in VIEWS {
            let c = CString::new(*name).map_err(io::Error::other)?;
            // SAFETY: plain openat on the detached tmpfs; the descriptor is owned right away.
            let fd = unsafe {
                libc::openat(fs.as_raw_fd(), c.as_ptr(), libc::O_CREAT | libc::O_RDWR | libc::O_CLOEXEC, 0o444)
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: the kernel just returned this descriptor.
            files.push((*name, unsafe { std::fs::File::from_raw_fd(fd) }));
            let mount = sys::clone_mount_at(fs.as_raw_fd(), &c, false)?;
            sys::set_mount_attrs(
                &mount,
                sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
                0,
                false,
            )?;
            mounts.push((name.to_string(), mount));
        }
        let mut views = ProcViews {
            files,
            memory_limit,
            cpus,
            started: Instant::now(),
            started_unix,
            group_dirs,
            load: [0.0; 3],
            last: Instant::now(),
        };
        let host_cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let host_meminfo_total = host_memory();
        views.memory_limit = views.memory_limit.min(host_meminfo_total.max(1));
        views.write("cpuinfo", &cpuinfo(&host_cpuinfo, views.cpus))?;
        views.write("swaps", "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n")?;
        views.refresh()?;
        Ok((views, mounts))
    }

    /// Rewrites the changing files from the cgroup's figures now.
    pub fn refresh(&mut self) -> io::Result<()> {
        let usage = read_usage(&self.group_dirs);
        let now = Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.load = next_load(self.load, usage.running as f64, dt);
        let up = self.started.elapsed().as_secs_f64();
        self.write("meminfo", &meminfo(self.memory_limit, &usage))?;
        self.write("stat", &stat(&usage, self.cpus, self.started_unix))?;
        self.write("uptime", &format!("{:<W$.2} {:<W$.2}\n", up, (up * self.cpus as f64 - cpu_secs(&usage)).max(0.0)))?;
        self.write("loadavg", &loadavg(self.load, &usage))
    }

    fn write(&self, name: &str, text: &str) -> io::Result<()> {
        let Some((_, f)) = self.files.iter().find(|(n, _)| *n == name) else { return Ok(()) };
        use std::os::unix::fs::FileExt;
        f.write_all_at(text.as_bytes(), 0)?;
        f.set_len(text.len() as u64)
    }
}

fn cpu_secs(u: &Usage) -> f64 {
    (u.cpu_user_ns + u.cpu_system_ns) as f64 / 1e9
}

/// The host's memory in bytes.
fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?.trim().parse().ok())
        })
        .map_or(u64::MAX, |kb: u64| kb * 1024)
}

fn read_num(p: &Path) -> Option<u64> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// Reads what the views show from the group's directories (v1: one per hierarchy; v2: one).
pub fn read_usage(dirs: &[PathBuf]) -> Usage {
    let mut u = Usage::default();
    for d in dirs {
        if let Some(v) = read_num(&d.join("memory.usage_in_bytes")).or_else(|| read_num(&d.join("memory.current"))) {
            u.memory_bytes = v;
            let stat = std::fs::read_to_string(d.join("memory.stat")).unwrap_or_default();
            let field = |names: &[&str]| -> u64 {
                stat.lines()
                    .filter_map(|l| l.split_once(' '))
                    .filter(|(k, _)| names.contains(k))
                    .filter_map(|(_, v)| v.trim().parse::<u64>().ok())
                    .sum()
            };
            u.reclaimable_bytes = field(&["total_inactive_file", "total_active_file"])
                .max(field(&["inactive_file", "active_file"]))
                .min(u.memory_bytes);
            u.shmem_bytes = field(&["total_shmem"]).max(field(&["shmem"]));
        }
        if let Ok(s) = std::fs::read_to_string(d.join("cpuacct.stat")) {
            for l in s.lines() {
                match l.split_once(' ') {
                    Some(("user", v)) => u.cpu_user_ns = v.trim().parse::<u64>().unwrap_or(0) * 1_000_000_000 / USER_HZ,
                    Some(("system", v)) => {
                        u.cpu_system_ns = v.trim().parse::<u64>().unwrap_or(0) * 1_000_000_000 / USER_HZ
                    }
                    _ => {}
                }
            }
        } else if let Ok(s) = std::fs::read_to_string(d.join("cpu.stat")) {
            for l in s.lines() {
                match l.split_once(' ') {
                    Some(("user_usec", v)) => u.cpu_user_ns = v.trim().parse::<u64>().unwrap_or(0) * 1000,
                    Some(("system_usec", v)) => u.cpu_system_ns = v.trim().parse::<u64>().unwrap_or(0) * 1000,
                    _ => {}
                }
            }
        }
        if u.tasks == 0 {
            if let Ok(procs) = std::fs::read_to_string(d.join("cgroup.procs")) {
                let pids: Vec<u64> = procs.lines().filter_map(|p| p.trim().parse().ok()).collect();
                if !pids.is_empty() {
                    u.tasks = pids.len() as u64;
                    u.last_pid = pids.iter().copied().max().unwrap_or(0);
                    u.running = pids.iter().filter(|p| running(**p)).count() as u64;
                }
            }
        }
    }
    u
}

/// Whether a host pid is running (state `R`).
fn running(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().starts_with('R')))
        .unwrap_or(false)
}

/// `/proc/meminfo` of an environment with `limit` bytes: the limit is the total, use counts against it.
pub fn meminfo(limit: u64, u: &Usage) -> String {
    let kb = |b: u64| b / 1024;
    let used = u.memory_bytes.min(limit);
    let free = limit - used;
    let cached = u.reclaimable_bytes.min(used);
    let available = (free + cached).min(limit);
    let line = |k: &str, v: u64| format!("{:<16}{:>W$} kB\n", format!("{k}:"), v);
    let mut s = String::new();
    for (k, v) in [
        ("MemTotal", kb(limit)),
        ("MemFree", kb(free)),
        ("MemAvailable", kb(available)),
        ("Buffers", 0),
        ("Cached", kb(cached + u.shmem_bytes.min(used - cached))),
        ("SwapCached", 0),
        ("Active", kb(used)),
        ("Inactive", 0),
        ("Shmem", kb(u.shmem_bytes.min(used))),
        ("SReclaimable", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
    ] {
        s.push_str(&line(k, v));
    }
    s
}

/// `/proc/cpuinfo` with the host's first `n` processors.
pub fn cpuinfo(host: &str, n: usize) -> String {
    host.split("\n\n")
        .filter(|b| b.trim_start().starts_with("processor"))
        .take(n)
        .map(|b| format!("{}\n\n", b.trim_end()))
        .collect()
}

/// `/proc/stat`: the environment's CPU time over its `n` CPUs, boot time = when it started.
pub fn stat(u: &Usage, n: usize, started_unix: u64) -> String {
    let ticks = |ns: u64| ns / (1_000_000_000 / USER_HZ);
    let (user, system) = (ticks(u.cpu_user_ns), ticks(u.cpu_system_ns));
    let line = |name: &str, user: u64, system: u64| {
        format!(
            "{name:<5}{user:>W$} {:>W$} {system:>W$} {:>W$} {:>W$} {:>W$} {:>W$} {:>W$} {:>W$} {:>W$}\n",
            0, 0, 0, 0, 0, 0, 0, 0
        )
    };
    let mut s = line("cpu", user, system);
    let n = n.max(1) as u64;
    for i in 0..n {
        let share = |t: u64| t / n + u64::from(i < t % n);
        s.push_str(&line(&format!("cpu{i}"), share(user), share(system)));
    }
    s.push_str(&format!(
        "intr {:>W$}\nctxt {:>W$}\nbtime {started_unix}\nprocesses {:>W$}\nprocs_running {:>W$}\nprocs_blocked {:>W$}\n",
        0,
        0,
        u.last_pid,
        u.running.max(1),
        0
    ));
    s
}

/// `/proc/loadavg` from the environment's own load.
pub fn loadavg(load: [f64; 3], u: &Usage) -> String {
    format!(
        "{:<W$.2} {:<W$.2} {:<W$.2} {:<W$} {:<W$}\n",
        load[0],
        load[1],
        load[2],
        format!("{}/{}", u.running.max(1), u.tasks.max(1)),
        u.last_pid
    )
}

/// The 1, 5 and 15 minute load averages after `dt` seconds with `running` tasks (the kernel's exponential decay).
pub fn next_load(load: [f64; 3], running: f64, dt: f64) -> [f64; 3] {
    let mut out = load;
    for (i, minutes) in [1.0f64, 5.0, 15.0].iter().enumerate() {
        let e = (-dt / (minutes * 60.0)).exp();
        out[i] = load[i] * e + running * (1.0 - e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn meminfo_shows_the_limit_as_total_and_use_against_it() {
        let u =
            Usage { memory_bytes: 100 * MIB, reclaimable_bytes: 20 * MIB, shmem_bytes: 4 * MIB, ..Usage::default() };
        let m = meminfo(512 * MIB, &u);
        let field = |k: &str| -> u64 {
            m.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}:"))?.trim().strip_suffix("kB")?.trim().parse().ok())
                .unwrap()
        };
        assert_eq!(field("MemTotal"), 512 * 1024);
        assert_eq!(field("MemFree"), 412 * 1024);
        assert_eq!(field("MemAvailable"), 432 * 1024);
        assert_eq!(field("SwapTotal"), 0);
        // Over the limit (a racing read of usage): never negative, never above the total.
        let over = meminfo(64 * MIB, &Usage { memory_bytes: 80 * MIB, ..Usage::default() });
        assert!(over.contains("MemFree:                   0 kB"), "{over}");
        // Fixed width: every rewrite has the same length.
        assert_eq!(m.len(), meminfo(512 * MIB, &Usage::default()).len());
    }

    #[test]
    fn cpuinfo_keeps_the_first_processors() {
        let host =
            "processor\t: 0\nmodel name\t: X\n\nprocessor\t: 1\nmodel name\t: X\n\nprocessor\t: 2\nmodel name\t: X\n";
        let one = cpuinfo(host, 1);
        assert_eq!(one.matches("processor").count(), 1);
        assert_eq!(cpuinfo(host, 2).matches("processor").count(), 2);
    }

    #[test]
    fn stat_splits_the_time_over_the_cpus_in_a_fixed_width() {
        let u = Usage {
            cpu_user_ns: 3_000_000_000,
            cpu_system_ns: 1_000_000_000,
            tasks: 4,
            running: 1,
            ..Usage::default()
        };
        let s = stat(&u, 2, 1_700_000_000);
        let cpu: Vec<&str> = s.lines().next().unwrap().split_whitespace().collect();
        assert_eq!((cpu[0], cpu[1], cpu[3]), ("cpu", "300", "100"));
        assert!(s.lines().any(|l| l.starts_with("cpu1 ")));
        assert!(s.contains("btime 1700000000"));
        assert_eq!(s.len(), stat(&Usage::default(), 2, 1_700_000_000).len());
    }

    #[test]
    fn load_decays_towards_the_running_count() {
        let mut l = [0.0; 3];
        for _ in 0..600 {
            l = next_load(l, 2.0, 0.5);
        }
        assert!(l[0] > 1.5 && l[0] <= 2.0 && l[2] < l[0], "{l:?}");
        assert!(loadavg(l, &Usage { tasks: 5, running: 2, last_pid: 77, ..Usage::default() }).contains("2/5"));
    }
}
