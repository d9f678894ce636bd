//! Host capacity: how big the host's tables must be for the environments `serve` may admit, and what to admit when
//! they cannot be made that big.
//!
//! # The budget
//!
//! Sessions are admitted while the memory limits of the live ones stay within the **memory budget**:
//! `B = share × H`, where `H` is the host's memory (`MemTotal`, or `host_memory` from the config) and `share` is
//! `--memory-share` (default 0.8; the rest is for the host, the server and the shims).
//!
//! # What the environments can charge
//!
//! Everything an environment holds is charged to its memory cgroup: pages, its tmpfs, and kernel objects such as
//! open files (`struct file`, charged since kernel 4.5 on v1 and v2 alike) and process kernel stacks. While an end is
//! graded, the checks run in a second group with the environment's limits (`<env>.grade`), so one session can charge
//! up to twice its limit for a while. So all environments together can charge at most `C = min(2B, H)` bytes: twice
//! the budget, and never more memory than the host has.
//!
//! # Open files: `fs.file-max`
//!
//! The cheapest open file is one `struct file` from the `filp` slab (`F` bytes: the object size in `/proc/slabinfo`,
//! 192 on 6.x kernels; opening the same file again shares the dentry and inode, so nothing else is needed per file).
//! The environments can thus hold at most `C / F` open files, and
//!
//! `file-max ≥ ⌈C / F⌉ + files open now + 65536`
//!
//! leaves the host what it uses now plus room to grow. (The table was exhausted at 2.47 million files: one 512 MiB
//! environment held 1.3 million, about 410 bytes each, above the floor `F`, as the formula requires.) `file-max` is
//! only a limit; raising it reserves no memory.
//!
//! # Processes: `kernel.pid_max` and `kernel.threads-max`
//!
//! Every task (process or thread) of an environment counts against its `pids` limit, and the grading group has the
//! same limit, so one session has at most `T = 2 × pids + 1` tasks (the `+ 1` is its shim), with `pids` the largest
//! limit in the catalog. At most `N = min(max_live_sessions, B / m)` sessions are live, with `m` the smallest memory
//! limit in the catalog (each admitted session holds at least `m` of the budget). So
//!
//! `threads-max ≥ N × T + tasks now + 16384` and `pid_max ≥ that + 300`
//!
//! (pids below 300 are not reused once pid numbers wrap). The kernel caps `pid_max` at 4194304 on 64-bit hosts.
//!
//! # When a table is too small
//!
//! `serve` raises a table that is too small when it can (as root, with `/proc/sys` writable) and logs the change; it
//! never lowers one. When it cannot, it starts **degraded**: it admits only what fits the table as it is (a smaller
//! memory budget for `file-max`, fewer live sessions for `pid_max` and `threads-max`) and logs the exact `sysctl -w`
//! lines that would lift the limit. Refusing to start would take every exam down for a limit that only lowers
//! capacity; admitting what fits keeps the invariant: the host's tables can hold everything the admitted environments
//! can reach.

use std::path::Path;

use serde::Serialize;

/// One mebibyte.
pub const MIB: u64 = 1 << 20;
/// `--memory-share` when not configured.
pub const DEFAULT_MEMORY_SHARE: f64 = 0.8;
/// The size of a `struct file` when `/proc/slabinfo` does not say (it is 192 bytes on 6.x kernels, more on older
/// ones, so this errs on the side of more files).
pub const FILE_COST_FALLBACK: u64 = 192;
/// Open files left to the host beyond what it uses at start.
pub const HOST_FILE_HEADROOM: u64 = 65_536;
/// Tasks left to the host beyond what it runs at start.
pub const HOST_TASK_HEADROOM: u64 = 16_384;
/// Pids below this are not reused after pid numbers wrap (`RESERVED_PIDS` in the kernel).
pub const RESERVED_PIDS: u64 = 300;
/// The largest `kernel.pid_max` on 64-bit hosts (`PID_MAX_LIMIT`).
pub const PID_MAX_LIMIT: u64 = 4_194_304;
/// The largest `kernel.threads-max` (`FUTEX_TID_MASK`).
pub const THREADS_MAX_LIMIT: u64 = 0x3fff_ffff;
/// The largest `fs.file-max` (`LONG_MAX`).
pub const FILE_MAX_LIMIT: u64 = i64::MAX as u64;
/// Descriptors the server needs beyond its sessions (store, listeners, logs, libraries).
pub const SERVER_FDS_BASE: u64 = 1024;
/// Descriptors per live session in the server, with margin: a terminal WebSocket and its shim connection, status
/// streams, exec connections during provisioning and grading, the proctor's views.
pub const SERVER_FDS_PER_SESSION: u64 = 16;

/// What is read from the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HostReadings {
    /// `MemTotal`, in bytes.
    pub mem_total: u64,
    /// `MemAvailable`, in bytes.
    pub mem_available: u64,
    /// `fs.file-max`.
    pub file_max: u64,
    /// Open files now (the first field of `/proc/sys/fs/file-nr`).
    pub files_open: u64,
    /// The `filp` slab's object size, if `/proc/slabinfo` could be read.
    pub file_cost: Option<u64>,
    /// `kernel.pid_max`.
    pub pid_max: u64,
    /// `kernel.threads-max`.
    pub threads_max: u64,
    /// Tasks (processes and threads) now (from `/proc/loadavg`).
    pub tasks: u64,
}

/// What `serve` is configured to admit.
#[derive(Clone, Debug, PartialEq)]
pub struct Demand {
    /// The share of the host's memory that environments may have, in (0, 1].
    pub memory_share: f64,
    /// The host's memory in bytes when configured (tests); else `MemTotal`.
    pub host_memory: Option<u64>,
    /// The limit on live sessions.
    pub max_live_sessions: usize,
    /// The largest `pids` limit among the catalog's exams.
    pub max_exam_pids: u64,
    /// The smallest memory limit among the catalog's exams, in bytes.
    pub min_exam_memory: u64,
}

/// What the host must hold for a [`Demand`] (see the module docs for the formulas).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sizing {
    /// `H`: the host's memory, in bytes.
    pub host_memory: u64,
    /// `B`: the memory budget of live sessions, in bytes.
    pub memory_budget: u64,
    /// `C`: what all environments and their grading groups can charge, in bytes.
    pub chargeable: u64,
    /// `F`: the bytes of one open file.
    pub file_cost: u64,
    /// `T`: the tasks of one session at most.
    pub tasks_per_session: u64,
    /// `N`: live sessions at most: `max_live_sessions`, or fewer when not even that many of the smallest exam fit
    /// the budget.
    pub max_sessions: u64,
    /// The `fs.file-max` needed.
    pub file_max: u64,
    /// The `kernel.pid_max` needed.
    pub pid_max: u64,
    /// The `kernel.threads-max` needed.
    pub threads_max: u64,
}

/// The budget: `share × host memory`, rounded down.
pub fn memory_budget(host_memory: u64, share: f64) -> u64 {
    (host_memory as f64 * share.clamp(0.0, 1.0)).floor() as u64
}

/// What the host must hold for `demand`, given what it holds now.
pub fn size(r: &HostReadings, d: &Demand) -> Sizing {
    let host_memory = d.host_memory.unwrap_or(r.mem_total);
    let memory_budget = memory_budget(host_memory, d.memory_share);
    let chargeable = memory_budget.saturating_mul(2).min(host_memory);
    let file_cost = r.file_cost.filter(|c| *c > 0).unwrap_or(FILE_COST_FALLBACK);
    let file_max = chargeable.div_ceil(file_cost).saturating_add(r.files_open).saturating_add(HOST_FILE_HEADROOM);
    let tasks_per_session = d.max_exam_pids.saturating_mul(2).saturating_add(1);
    let max_sessions = (d.max_live_sessions as u64).min(memory_budget / d.min_exam_memory.max(1));
    let threads_max =
        max_sessions.saturating_mul(tasks_per_session).saturating_add(r.tasks).saturating_add(HOST_TASK_HEADROOM);
    Sizing {
        host_memory,
        memory_budget,
        chargeable,
        file_cost,
        tasks_per_session,
        max_sessions,
        file_max,
        pid_max: threads_max.saturating_add(RESERVED_PIDS),
        threads_max,
    }
}

/// A kernel table's size, as a sysctl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KernelTable {
    /// `fs.file-max`: open files, host-wide.
    Files,
    /// `kernel.pid_max`: the largest pid, so the number of tasks.
    Pids,
    /// `kernel.threads-max`: tasks, host-wide.
    Threads,
}

impl KernelTable {
    /// All of them.
    pub const ALL: [KernelTable; 3] = [KernelTable::Files, KernelTable::Pids, KernelTable::Threads];

    /// The sysctl name.
    pub const fn name(self) -> &'static str {
        match self {
            KernelTable::Files => "fs.file-max",
            KernelTable::Pids => "kernel.pid_max",
            KernelTable::Threads => "kernel.threads-max",
        }
    }

    /// Its file under `/proc/sys`.
    pub const fn path(self) -> &'static str {
        match self {
            KernelTable::Files => "/proc/sys/fs/file-max",
            KernelTable::Pids => "/proc/sys/kernel/pid_max",
            KernelTable::Threads => "/proc/sys/kernel/threads-max",
        }
    }

    /// The largest value the kernel accepts.
    pub const fn kernel_max(self) -> u64 {
        match self {
            KernelTable::Files => FILE_MAX_LIMIT,
            KernelTable::Pids => PID_MAX_LIMIT,
            KernelTable::Threads => THREADS_MAX_LIMIT,
        }
    }

    /// Its value in `r`.
    pub fn current(self, r: &HostReadings) -> u64 {
        match self {
            KernelTable::Files => r.file_max,
            KernelTable::Pids => r.pid_max,
            KernelTable::Threads => r.threads_max,
        }
    }

    /// Sets its value in `r`.
    pub fn set(self, r: &mut HostReadings, value: u64) {
        match self {
            KernelTable::Files => r.file_max = value,
            KernelTable::Pids => r.pid_max = value,
            KernelTable::Threads => r.threads_max = value,
        }
    }

    /// The value needed by `s`.
    pub fn needed(self, s: &Sizing) -> u64 {
        match self {
            KernelTable::Files => s.file_max,
            KernelTable::Pids => s.pid_max,
            KernelTable::Threads => s.threads_max,
        }
    }
}

/// A table smaller than needed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Shortfall {
    /// Which.
    pub table: KernelTable,
    /// Its value now.
    pub current: u64,
    /// The value needed.
    pub needed: u64,
}

impl Shortfall {
    /// What to set it to: the value needed, within what the kernel accepts.
    pub fn target(&self) -> u64 {
        self.needed.min(self.table.kernel_max())
    }

    /// The command that sets it.
    pub fn command(&self) -> String {
        format!("sysctl -w {}={}", self.table.name(), self.target())
    }
}

/// The tables that are smaller than `s` needs.
pub fn shortfalls(r: &HostReadings, s: &Sizing) -> Vec<Shortfall> {
    KernelTable::ALL
        .into_iter()
        .map(|t| Shortfall { table: t, current: t.current(r), needed: t.needed(s) })
        .filter(|sf| sf.current < sf.needed)
        .collect()
}

/// What to admit on a host whose tables are as in `r`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Fit {
    /// The memory budget, in bytes (below [`Sizing::memory_budget`] when `fs.file-max` is too small).
    pub memory_budget: u64,
    /// The limit on live sessions (below the configured one when `pid_max` or `threads-max` is too small).
    pub max_live_sessions: usize,
    /// The tables that made it smaller.
    pub limited_by: Vec<Shortfall>,
}

impl Fit {
    /// Whether anything is admitted below the configuration.
    pub fn degraded(&self) -> bool {
        !self.limited_by.is_empty()
    }
}

/// What fits the host's tables as they are: the configured budget and session limit, or less (the inverse of
/// [`size`]).
pub fn fit(r: &HostReadings, d: &Demand, s: &Sizing) -> Fit {
    let mut out = Fit { memory_budget: s.memory_budget, max_live_sessions: d.max_live_sessions, limited_by: vec![] };
    for sf in shortfalls(r, s) {
        match sf.table {
            KernelTable::Files => {
                let room = r.file_max.saturating_sub(r.files_open).saturating_sub(HOST_FILE_HEADROOM);
                // min(2B, H) / F must fit the room; it does not unless 2B / F does.
                out.memory_budget = out.memory_budget.min(room.saturating_mul(s.file_cost) / 2);
            }
            KernelTable::Pids | KernelTable::Threads => {
                let tasks = match sf.table {
                    KernelTable::Pids => r.pid_max.saturating_sub(RESERVED_PIDS),
                    _ => r.threads_max,
                };
                let room = tasks.saturating_sub(r.tasks).saturating_sub(HOST_TASK_HEADROOM);
                let sessions = usize::try_from(room / s.tasks_per_session.max(1)).unwrap_or(usize::MAX);
                out.max_live_sessions = out.max_live_sessions.min(sessions);
            }
        }
        out.limited_by.push(sf);
    }
    out
}

/// The soft `RLIMIT_NOFILE` the server needs for `max_live_sessions`.
pub fn server_nofile_needed(max_live_sessions: usize) -> u64 {
    SERVER_FDS_BASE.saturating_add((max_live_sessions as u64).saturating_mul(SERVER_FDS_PER_SESSION))
}

/// Checks a configured memory share.
pub fn validate_share(share: f64) -> Result<f64, String> {
    if share.is_finite() && share > 0.0 && share <= 1.0 {
        Ok(share)
    } else {
        Err(format!("the memory share must be above 0 and at most 1 (for example 0.8), not {share}"))
    }
}

// Reading the host (thin).

/// `MemTotal` and `MemAvailable` in bytes, from the text of `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.trim().trim_end_matches("kB").trim().parse().ok()?;
            Some(kib * 1024)
        })
    };
    let total = field("MemTotal")?;
    Some((total, field("MemAvailable").unwrap_or(total)))
}

/// The object size of slab `name`, from the text of `/proc/slabinfo`.
pub fn parse_slab_objsize(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        (f.next()? == name).then_some(())?;
        f.nth(2)?.parse().ok()
    })
}

/// The number of tasks, from the text of `/proc/loadavg` (`0.15 0.37 0.24 1/88 10518`).
pub fn parse_loadavg_tasks(text: &str) -> Option<u64> {
    text.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok()
}

fn read_u64(path: &str) -> std::io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{path}: not a number")))
}

/// Reads a table's current value.
pub fn read_table(t: KernelTable) -> std::io::Result<u64> {
    read_u64(t.path())
}

/// Reads the host.
pub fn read_host() -> std::io::Result<HostReadings> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("cannot parse {what}"));
    let (mem_total, mem_available) =
        parse_meminfo(&std::fs::read_to_string("/proc/meminfo")?).ok_or_else(|| bad("/proc/meminfo"))?;
    let tasks = parse_loadavg_tasks(&std::fs::read_to_string("/proc/loadavg")?).ok_or_else(|| bad("/proc/loadavg"))?;
    Ok(HostReadings {
        mem_total,
        mem_available,
        file_max: read_table(KernelTable::Files)?,
        files_open: read_u64("/proc/sys/fs/file-nr")?,
        file_cost: std::fs::read_to_string("/proc/slabinfo").ok().and_then(|t| parse_slab_objsize(&t, "filp")),
        pid_max: read_table(KernelTable::Pids)?,
        threads_max: read_table(KernelTable::Threads)?,
        tasks,
    })
}

/// Whether this process may write a table (root, and `/proc/sys` not read-only).
pub fn writable(t: KernelTable) -> bool {
    nix::unistd::access(Path::new(t.path()), nix::unistd::AccessFlags::W_OK).is_ok()
}

/// Raises a table to `value` and reads it back.
pub fn raise(t: KernelTable, value: u64) -> std::io::Result<u64> {
    std::fs::write(t.path(), format!("{value}\n"))?;
    read_table(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    /// This kind of machine before any change: 24 GiB, file-max 2466097, pid_max 32768.
    fn host() -> HostReadings {
        HostReadings {
            mem_total: 24_683_568 * 1024,
            mem_available: 24_237_940 * 1024,
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
            min_exam_memory: 32 * MIB,
        }
    }

    #[test]
    fn the_budget_is_the_share_of_the_hosts_memory() {
        assert_eq!(memory_budget(10 * GIB, 0.8), 8 * GIB);
        assert_eq!(memory_budget(1536 * MIB, 0.8), 1536 * MIB * 4 / 5);
        assert_eq!(memory_budget(GIB, 1.0), GIB);
        let s = size(&host(), &Demand { host_memory: Some(1536 * MIB), ..demand() });
        assert_eq!(s.host_memory, 1536 * MIB);
        assert!(s.memory_budget >= 1024 * MIB && s.memory_budget < 1536 * MIB, "two 512 MiB sessions fit, not three");
    }

    #[test]
    fn file_max_covers_every_file_the_environments_can_pay_for() {
        let r = host();
        let s = size(&r, &demand());
        // 2B exceeds H, so the environments can charge at most the host's memory.
        assert_eq!(s.chargeable, r.mem_total);
        assert_eq!(s.file_max, r.mem_total.div_ceil(192) + 424 + HOST_FILE_HEADROOM);
        // The incident: 2.47 million was too small, by far.
        assert!(s.file_max > 130_000_000);
        // A smaller share: C = 2B.
        let s = size(&r, &Demand { memory_share: 0.25, ..demand() });
        assert_eq!(s.chargeable, 2 * memory_budget(r.mem_total, 0.25));
        // A 512 MiB environment that holds 1.3 million files (410 bytes each) is within the bound.
        let one = size(&r, &Demand { host_memory: Some(1024 * MIB), memory_share: 0.5, ..demand() });
        assert!(one.file_max - 424 - HOST_FILE_HEADROOM >= 2 * 1_300_000);
        // Without /proc/slabinfo, the fallback cost.
        let s = size(&HostReadings { file_cost: None, ..r.clone() }, &demand());
        assert_eq!(s.file_cost, FILE_COST_FALLBACK);
    }

    #[test]
    fn pid_max_covers_every_task_of_every_session_and_its_grading() {
        let r = host();
        let s = size(&r, &demand());
        assert_eq!(s.tasks_per_session, 1025);
        assert_eq!(s.max_sessions, 200);
        assert_eq!(s.threads_max, 200 * 1025 + 88 + HOST_TASK_HEADROOM);
        // Only 37 sessions of 512 MiB fit a budget of 0.8 × 23.5 GiB, so only they need tasks.
        let s = size(&r, &Demand { min_exam_memory: 512 * MIB, ..demand() });
        assert_eq!(s.max_sessions, 37);
        assert_eq!(s.threads_max, 37 * 1025 + 88 + HOST_TASK_HEADROOM);
        assert_eq!(s.pid_max, s.threads_max + RESERVED_PIDS);
        // The figures: 32768 is far below 500 × 256 pids.
        let s = size(&r, &Demand { max_live_sessions: 500, max_exam_pids: 256, ..demand() });
        assert!(s.pid_max > 2 * 500 * 256);
    }

    #[test]
    fn shortfalls_name_the_exact_sysctl_within_the_kernels_limits() {
        let r = host();
        let s = size(&r, &demand());
        let sf = shortfalls(&r, &s);
        assert_eq!(sf.iter().map(|x| x.table).collect::<Vec<_>>(), KernelTable::ALL);
        assert_eq!(sf[0].command(), format!("sysctl -w fs.file-max={}", s.file_max));
        assert_eq!(sf[1].command(), format!("sysctl -w kernel.pid_max={}", s.pid_max));
        // More than the kernel allows: the target is the kernel's maximum.
        let huge = size(&r, &Demand { max_live_sessions: 1000, max_exam_pids: 65_536, ..demand() });
        let sf = shortfalls(&r, &huge);
        let pid = sf.iter().find(|x| x.table == KernelTable::Pids).unwrap();
        assert_eq!(pid.target(), PID_MAX_LIMIT);
        assert_eq!(pid.command(), "sysctl -w kernel.pid_max=4194304");
        // A host already big enough has none.
        let mut big = r.clone();
        for t in KernelTable::ALL {
            t.set(&mut big, t.needed(&s));
        }
        assert!(shortfalls(&big, &s).is_empty());
        big.pid_max += 1_000_000;
        assert!(shortfalls(&big, &s).is_empty(), "more than needed is fine (and never lowered)");
    }

    #[test]
    fn a_host_that_fits_admits_what_is_configured() {
        let mut r = host();
        let s = size(&r, &demand());
        for t in KernelTable::ALL {
            t.set(&mut r, t.needed(&s));
        }
        let f = fit(&r, &demand(), &s);
        assert_eq!(f, Fit { memory_budget: s.memory_budget, max_live_sessions: 200, limited_by: vec![] });
        assert!(!f.degraded());
    }

    #[test]
    fn a_host_too_small_admits_only_what_fits_its_tables() {
        let r = host();
        let d = demand();
        let s = size(&r, &d);
        let f = fit(&r, &d, &s);
        assert!(f.degraded());
        assert_eq!(f.limited_by.len(), 3);
        // file-max 2466097: (2466097 - 424 - 65536) × 192 / 2 bytes of budget.
        assert_eq!(f.memory_budget, (2_466_097 - 424 - HOST_FILE_HEADROOM) * 192 / 2);
        // ... which the table can hold: 2B / F files plus the host's.
        assert!(2 * f.memory_budget / 192 + 424 + HOST_FILE_HEADROOM <= r.file_max);
        // pid_max 32768: (32768 - 300 - 88 - 16384) / 1025 sessions.
        assert_eq!(f.max_live_sessions, (32_768 - 300 - 88 - 16_384) / 1025);
        // Every admitted session's tasks fit.
        assert!(f.max_live_sessions as u64 * 1025 + 88 + HOST_TASK_HEADROOM + RESERVED_PIDS <= r.pid_max);
        // A table smaller than the host's own use admits nothing rather than underflowing.
        let tiny = HostReadings { pid_max: 1000, file_max: 1000, ..r.clone() };
        let f = fit(&tiny, &d, &s);
        assert_eq!((f.memory_budget, f.max_live_sessions), (0, 0));
    }

    #[test]
    fn the_servers_descriptors_grow_with_its_sessions() {
        assert_eq!(server_nofile_needed(0), SERVER_FDS_BASE);
        assert_eq!(server_nofile_needed(200), 1024 + 200 * 16);
    }

    #[test]
    fn shares_outside_zero_to_one_are_refused() {
        assert_eq!(validate_share(0.8), Ok(0.8));
        assert_eq!(validate_share(1.0), Ok(1.0));
        for bad in [0.0, -0.5, 1.01, f64::NAN, f64::INFINITY] {
            assert!(validate_share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn proc_files_parse() {
        let meminfo = "MemTotal:       24683568 kB\nMemFree:        1 kB\nMemAvailable:   24237940 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some((24_683_568 * 1024, 24_237_940 * 1024)));
        assert_eq!(parse_meminfo("MemTotal: 1024 kB\n"), Some((1 << 20, 1 << 20)));
        assert_eq!(parse_meminfo("garbage"), None);
        let slab = "slabinfo - version: 2.1\n\
            eventpoll_epi        192    192    128   32    1 : tunables    0    0    0 : slabdata      6      6      0\n\
            filp                 567    567    192   21    1 : tunables    0    0    0 : slabdata     27     27      0\n";
        assert_eq!(parse_slab_objsize(slab, "filp"), Some(192));
        assert_eq!(parse_slab_objsize(slab, "eventpoll_epi"), Some(128));
        assert_eq!(parse_slab_objsize(slab, "dentry"), None);
        assert_eq!(parse_loadavg_tasks("0.15 0.37 0.24 1/88 10518\n"), Some(88));
        assert_eq!(parse_loadavg_tasks("0.15"), None);
    }

    #[test]
    fn the_real_host_reads() {
        let r = read_host().unwrap();
        assert!(r.mem_total > 0 && r.mem_available <= r.mem_total);
        assert!(r.file_max > 0 && r.pid_max > 0 && r.threads_max > 0 && r.tasks > 0);
    }
}
