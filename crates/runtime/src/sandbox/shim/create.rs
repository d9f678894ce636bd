//! Making the environment. Every step that allocates something records it in memory, so that a failure halfway
//! removes what was made ([`Made::undo`]). `state.json` is written once, when the environment is ready: a janitor that
//! finds a shim dead before that still finds everything, by name (the cgroups) and by owner (the uid claim).

use std::io::{self, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::serve::{Shim, Term};
use crate::sandbox::cgroup::{self, Cgroups, CpuWeight, RealOs};
use crate::sandbox::idmap::RANGE;
use crate::sandbox::init::{self, FromInit, InitConfig, ToInit};
use crate::sandbox::procviews::ProcViews;
use crate::sandbox::rootfs::{userns_of, BaseTrees, Supers};
use crate::sandbox::state::{self, ShimConfig, ShimState};
use crate::sandbox::{seccomp, sys};
use crate::types::Profile;

/// The line a shim prints on its standard output once the environment is ready, or has failed.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ready {
    /// Ready.
    pub ok: bool,
    /// The shim's pid.
    pub shim_pid: i32,
    /// Init's host pid.
    pub init_pid: i32,
    /// Why it failed.
    pub error: Option<String>,
}

impl Ready {
    pub(crate) fn ok(shim_pid: i32, init_pid: i32) -> Self {
        Ready { ok: true, shim_pid, init_pid, error: None }
    }
    pub(crate) fn failed(error: String) -> Self {
        Ready { ok: false, shim_pid: std::process::id() as i32, init_pid: 0, error: Some(error) }
    }
}

/// Prints the ready line, then points standard output at /dev/null so that a later write can never block or fail on
/// a pipe whose reader (the server) is gone.
pub(crate) fn report(r: &Ready) {
    let mut out = io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, r);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
    drop(out);
    // SAFETY: plain descriptor calls.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if null >= 0 {
            libc::dup2(null, 1);
            libc::close(null);
        }
    }
}

/// Waits this long for init to answer during create.
const INIT_TIMEOUT: Duration = Duration::from_secs(20);

fn ctx<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> io::Error + '_ {
    move |e| io::Error::other(format!("{what}: {e}"))
}

/// Makes the environment and returns a shim ready to serve.
pub(crate) fn create(dir: &Path) -> io::Result<Shim> {
    let cfg: ShimConfig = state::read_json(&dir.join(state::CONFIG))?;
    let mut made = Made { dir: dir.to_path_buf(), ..Made::default() };
    match build(dir, &cfg, &mut made) {
        Ok(shim) => Ok(shim),
        Err(e) => {
            made.undo(&cfg);
            Err(e)
        }
    }
}

#[derive(Default)]
struct Made {
    dir: PathBuf,
    state: ShimState,
    init: Option<i32>,
}

impl Made {
    fn save(&self) -> io::Result<()> {
        state::write_json(&self.dir.join(state::STATE), &self.state)
    }

    /// Removes what was made, in reverse.
    fn undo(&mut self, cfg: &ShimConfig) {
        let cg = layout().ok().map(|l| Cgroups::new(RealOs, l, &cfg.cgroup_root, &cfg.label));
        if let (Some(cg), Some(g)) = (&cg, &self.state.env_group) {
            let _ = cg.kill_all(g, Duration::from_secs(5));
        }
        if let Some(pid) = self.init.take() {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            reap_until(pid);
        }
        if let (Some(cg), Some(g)) = (&cg, self.state.env_group.take()) {
            let _ = cg.remove(&g, Duration::from_secs(5));
        }
        // The shim's own cgroup and the state directory are removed by the runtime once this process has exited.
        if let Some(slot) = self.state.uid.take() {
            let _ = cfg.uid_pool.release(slot.slot, &self.dir);
        }
        let _ = self.save();
    }
}

/// Waits for `init` to exit, reaping every other child of the shim meanwhile. Processes started by entering a machine
/// are the shim's children (`CLONE_PARENT`) in init's pid namespace, and an exiting init waits until every process of
/// that namespace has been reaped: waiting for init alone would wait forever.
pub(crate) fn reap_until(init: i32) -> Option<WaitStatus> {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(st) if st.pid() == Some(Pid::from_raw(init)) => return Some(st),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        }
    }
}

/// Reaps every child of the shim that has exited, without waiting. Returns init's status if init was among them.
pub(crate) fn reap_exited(init: i32) -> Option<WaitStatus> {
    let mut status = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return status,
            Ok(st) if st.pid() == Some(Pid::from_raw(init)) => status = Some(st),
            Ok(_) => continue,
        }
    }
}

/// The host's cgroup layout.
pub(crate) fn layout() -> io::Result<cgroup::Layout> {
    cgroup::detect_layout(&RealOs).map_err(ctx("cgroup layout"))
}

/// Records how long each create step took, for the shim's log (`shim.log`).
pub(crate) struct Steps {
    at: Instant,
    pub line: String,
}

impl Steps {
    pub fn new() -> Steps {
        Steps { at: Instant::now(), line: String::new() }
    }
    pub fn mark(&mut self, step: &str) {
        let now = Instant::now();
        self.line.push_str(&format!(" {step}={:.1}ms", (now - self.at).as_secs_f64() * 1000.0));
        self.at = now;
    }
}

fn build(dir: &Path, cfg: &ShimConfig, made: &mut Made) -> io::Result<Shim> {
    let mut steps = Steps::new();
    let spec = &cfg.spec;
    let id = spec.id.to_string();
    made.state.shim_pid = std::process::id() as i32;
    made.state.created_unix_ms = state::now_ms();

    let seed = spec.id.short().chars().fold(0u64, |h, c| h.wrapping_mul(31).wrapping_add(c as u64));
    let slot = cfg.uid_pool.allocate(dir, seed).map_err(ctx("claim a uid range"))?;
    made.state.uid = Some(slot);
    steps.mark("uid");

    let cg = Cgroups::new(RealOs, layout()?, &cfg.cgroup_root, &cfg.label);
    let shim_group = cg.create_shim(&id).map_err(ctx("shim cgroup"))?;
    made.state.shim_group = Some(shim_group.clone());
    cg.add_process(&shim_group, made.state.shim_pid).map_err(ctx("join shim cgroup"))?;
    // Making an environment yields to the shims that already relay candidates' keystrokes (back to normal once
    // ready, in `shim::main`).
    if let Err(e) = cg.set_cpu_weight(&shim_group, CpuWeight::Starting) {
        eprintln!("examroom shim: lowering the CPU weight while starting: {e}");
    }
    let lim = &spec.limits;
    let limits = cgroup::Limits { memory_bytes: lim.memory_bytes, pids: lim.pids, cpu_millicores: lim.cpu_millicores };
    let system = spec.profile == Profile::System;
    let env_group = if system {
        let g = cg.create_system_env(&id, &limits).map_err(ctx("environment cgroup"))?;
        made.state.env_group = Some(g.clone());
        // Its service manager makes and fills its own groups below (never a limit file).
        cg.delegate(&g, slot.base).map_err(ctx("delegate the environment cgroup"))?;
        g
    } else {
        cg.create_env(&id, &limits).map_err(ctx("environment cgroup"))?
    };
    made.state.env_group = Some(env_group.clone());
    steps.mark("cgroups");

    let hostname = format!("exam-{}", spec.id.short());
    let host = Host { slot_base: slot.base, cg: &cg, env_group: &env_group, hostname: &hostname };
    let machine = start_init(cfg, &host, made.state.created_unix_ms, None, &mut made.init, &mut steps)?;
    made.state.init_pid = machine.pid;
    steps.mark("rootfs");
    let sock_path = dir.join(state::SOCKET);
    let _ = std::fs::remove_file(&sock_path);
    let listener = UnixListener::bind(&sock_path).map_err(ctx("bind shim socket"))?;
    listener.set_nonblocking(true)?;
    let mut shim = Shim::new(
        cfg.clone(),
        made.state.clone(),
        cg,
        env_group,
        machine.sock,
        listener,
        hostname,
        machine.build_mnt,
        machine.views,
    )?;
    shim.dir = dir.to_path_buf();
    shim.stage = Some(machine.stage);
    // The environment's network namespace, for `Dial`: taken now, from our own just-made child.
    shim.netns = Some(super::dial::NetNs::open(machine.pid).map_err(ctx("open the environment's network namespace"))?);
    if system {
        boot_machine(&mut shim, true, &mut steps)?;
    } else {
        let term = open_terminal(&mut shim, spec.cols, spec.rows)?;
        shim.terminals.push(term);
        steps.mark("shell");
    }
    eprintln!("examroom shim: created{}", steps.line);
    made.init = None; // from here on the shim owns init
    made.save()?;
    Ok(shim)
}

/// Receives one answer from init during create, bounded by [`INIT_TIMEOUT`].
fn call(sock: &OwnedFd) -> io::Result<(FromInit, Vec<OwnedFd>)> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    use std::os::fd::AsFd;
    let deadline = Instant::now() + INIT_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "init did not answer within 20 s"));
        }
        let mut fds = [PollFd::new(sock.as_fd(), PollFlags::POLLIN)];
        let ms = PollTimeout::from(left.as_millis().min(u16::MAX as u128) as u16);
        match poll(&mut fds, ms) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let mut buf = vec![0u8; init::MAX_MSG];
        return match init::recv::<FromInit>(sock.as_raw_fd(), &mut buf)? {
            Some(m) => Ok(m),
            None => Err(io::Error::other("init exited during setup")),
        };
    }
}

/// What an environment's init is started in: made once per environment, kept across a machine's reboot.
pub(crate) struct Host<'a> {
    /// The host uid of the environment's root.
    pub slot_base: u32,
    pub cg: &'a Cgroups<RealOs>,
    pub env_group: &'a cgroup::Group,
    pub hostname: &'a str,
}

/// A started init, its root built.
pub(crate) struct Machine {
    pub pid: i32,
    /// The control socket to init.
    pub sock: OwnedFd,
    /// The mount namespace init built the root in.
    pub build_mnt: OwnedFd,
    pub views: ProcViews,
    /// A detached clone of the writable layer (its tmpfs lives as long as the shim): a machine boots from it again.
    pub stage: OwnedFd,
}

/// Clones init into fresh namespaces, maps its uids, moves it into the environment's group and has it build the root
/// from the base and the writable layer: a fresh one, or `stage` (a machine's disk, booted again). `init` records
/// the pid as soon as there is one, for the caller's undo.
pub(crate) fn start_init(
    cfg: &ShimConfig,
    host: &Host<'_>,
    created_unix_ms: u64,
    stage: Option<OwnedFd>,
    init: &mut Option<i32>,
    steps: &mut Steps,
) -> io::Result<Machine> {
    let spec = &cfg.spec;
    let lim = &spec.limits;
    let system = spec.profile == Profile::System;
    let filter = seccomp::candidate_filter().map_err(ctx("seccomp filter"))?;
    let (init_disk, init_shm) = (lim.disk_bytes, (lim.memory_bytes / 4).min(64 << 20));
    let init_cfg = InitConfig {
        disk_bytes: init_disk,
        shm_bytes: init_shm,
        hostname: host.hostname.to_string(),
        hidden: cfg.hidden.clone(),
        base: spec.base.clone(),
        unprivileged_uid: (!cfg.userns).then_some(host.slot_base),
        filter,
        profile: spec.profile,
        system_filter: if system { Some(seccomp::system_filter().map_err(ctx("seccomp filter"))?) } else { None },
        rebooted: stage.is_some(),
    };
    let (parent_sock, child_sock) =
        socketpair(AddressFamily::Unix, SockType::SeqPacket, None, SockFlag::SOCK_CLOEXEC).map_err(io::Error::from)?;
    let mut flags =
        libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWNET | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    if cfg.userns {
        flags |= libc::CLONE_NEWUSER;
    }
    // SAFETY: the shim is single-threaded; the child runs init::main and never returns.
    let pid = unsafe { sys::clone_into_namespaces(flags) }.map_err(ctx("clone into namespaces"))?;
    if pid == 0 {
        drop(parent_sock);
        init::main(child_sock, init_cfg);
    }
    drop(child_sock);
    steps.mark("clone");
    *init = Some(pid);
    // The mount namespace init builds the root in. Init later moves into a copy of it where every mount is locked;
    // grading clones the candidate's layers from this one, where they are not (see `trusted::run`).
    let build_mnt = OwnedFd::from(std::fs::File::open(format!("/proc/{pid}/ns/mnt")).map_err(ctx("open mount ns"))?);

    let userns = if cfg.userns {
        let map = format!("0 {} {}\n", host.slot_base, RANGE);
        sys::write_file(Path::new(&format!("/proc/{pid}/uid_map")), &map).map_err(ctx("uid_map"))?;
        sys::write_file(Path::new(&format!("/proc/{pid}/gid_map")), &map).map_err(ctx("gid_map"))?;
        Some(userns_of(pid)?)
    } else {
        None
    };
    host.cg.add_process(host.env_group, pid).map_err(ctx("join environment cgroup"))?;
    // The OOM killer must pick the candidate's processes, never init. Lowering a score needs CAP_SYS_RESOURCE, which
    // some hosts withhold even from root; init then keeps 0 while every candidate process starts at +500.
    // The legacy `oom_adj` file is used on purpose: a privileged write to `oom_score_adj` would also set the floor
    // that init's children inherit, letting a candidate lower their own score to -1000.
    let _ = sys::write_file(Path::new(&format!("/proc/{pid}/oom_adj")), "-17");

    let trees = BaseTrees::open(&spec.base, &cfg.base_etc, userns.as_ref().map(|f| f.as_raw_fd()))
        .map_err(ctx("open the base"))?;
    drop(userns);
    let names: Vec<String> = trees.trees.iter().map(|(n, _)| n.clone()).collect();
    let mut supers =
        Supers::make(init_disk, init_shm, cfg.userns.then_some(host.slot_base)).map_err(ctx("make filesystems"))?;
    if let Some(disk) = stage {
        supers.stage = disk;
    }
    let kept = sys::clone_mount_at(supers.stage.as_raw_fd(), c"", false).map_err(ctx("keep the writable layer"))?;
    let mut fds: Vec<RawFd> = trees.trees.iter().map(|(_, f)| f.as_raw_fd()).collect();
    fds.extend(supers.fds());
    let (views, view_mounts) = ProcViews::make(
        lim.memory_bytes,
        u64::from(lim.cpu_millicores),
        host.env_group.paths.clone(),
        created_unix_ms / 1000,
    )
    .map_err(ctx("/proc views"))?;
    fds.extend(view_mounts.iter().map(|(_, f)| f.as_raw_fd()));
    let view_names: Vec<String> = view_mounts.iter().map(|(n, _)| n.clone()).collect();
    // A system environment's service manager runs from an execute-only copy (see `init::boot`).
    let service_manager = if system { Some(execute_only_systemd(&spec.base).map_err(ctx("systemd"))?) } else { None };
    let binds: Vec<String> = service_manager.iter().map(|(path, _)| path.clone()).collect();
    fds.extend(service_manager.iter().map(|(_, f)| f.as_raw_fd()));
    steps.mark("idmap");
    init::send(
        parent_sock.as_raw_fd(),
        &ToInit::Setup { trees: names, links: trees.links.clone(), views: view_names, binds },
        &fds,
    )?;
    drop((view_mounts, service_manager));
    drop((trees, supers));
    match call(&parent_sock)? {
        (FromInit::Ready, _) => {}
        (FromInit::SetupFailed { error }, _) => return Err(io::Error::other(format!("environment setup: {error}"))),
        (other, _) => return Err(io::Error::other(format!("unexpected answer from init: {other:?}"))),
    }
    Ok(Machine { pid, sock: parent_sock, build_mnt, views, stage: kept })
}

/// Boots a `system` environment whose init is ready: the way in (opened while init is still ours), then init becomes
/// systemd, and its console a terminal of its own ("console": boot messages and a login prompt); with `main`, the
/// candidate's shell is started by entering; ready once the machine has booted.
pub(crate) fn boot_machine(shim: &mut Shim, main: bool, steps: &mut Steps) -> io::Result<()> {
    let started = Instant::now();
    let (cols, rows) = (shim.cfg.spec.cols, shim.cfg.spec.rows);
    let leaf = shim.cg.create_entry_leaf(&shim.env_group).map_err(ctx("the shim's leaf cgroup"))?;
    let filter = seccomp::system_filter().map_err(ctx("seccomp filter"))?;
    // A machine's file limit, as a Debian host's (soft 1024; services such as dbus raise theirs up to the hard
    // limit, which root inside cannot raise): set from outside, where raising it is allowed, and never above the
    // shim's own hard limit (raising one needs CAP_SYS_RESOURCE, which some hosts withhold).
    let own = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).map_or(1024, |(_, h)| h);
    let nofile = libc::rlimit { rlim_cur: 1024.min(own), rlim_max: SYSTEM_NOFILE.min(own) };
    let entry = super::enter::Entry::open(shim.state.init_pid, &leaf, filter, nofile)?;
    // SAFETY: prlimit on our own child with a valid struct.
    if unsafe { libc::prlimit(shim.state.init_pid, libc::RLIMIT_NOFILE, &nofile, std::ptr::null_mut()) } < 0 {
        return Err(ctx("file limit")(io::Error::last_os_error()));
    }
    let (msg, mut fds) = shim.init_call(&ToInit::Boot, &[])?;
    let (ptmx, console) = match (msg, fds.pop(), fds.pop()) {
        (FromInit::PtyOpened, Some(ptmx), Some(console)) => (ptmx, console),
        (FromInit::Failed { error }, _, _) => return Err(io::Error::other(error)),
        (other, _, _) => return Err(io::Error::other(format!("boot: {other:?}"))),
    };
    shim.booted = true;
    shim.entry = Some(entry);
    shim.ptmx = Some(ptmx);
    if main {
        let term = open_terminal(shim, cols, rows)?;
        shim.terminals.push(term);
    }
    sys::set_winsize(console.as_raw_fd(), cols, rows)?;
    nix::fcntl::fcntl(console.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(io::Error::from)?;
    let mut console = Term::new("console".to_string(), console, cols, rows, shim.cfg.scrollback_bytes);
    console.console = true;
    shim.terminals.push(console);
    steps.mark("shell");
    // Ready once the machine has booted: setup scripts and the candidate find its services up.
    let left = BOOT_TIMEOUT.saturating_sub(started.elapsed()).max(Duration::from_secs(1));
    let entry = shim.entry.as_ref().ok_or_else(|| io::Error::other("no way into the machine"))?;
    let (code, out) = match entry.run(&["/bin/sh", "-c", BOOT_WAIT], left) {
        Ok(r) => r,
        Err(e) => {
            // Most often its PID 1 died: what it said last is on the console.
            let tail = shim.console_tail(1500).unwrap_or_default();
            return Err(io::Error::other(format!("wait for the machine to boot: {e}; its console: {}", tail.trim())));
        }
    };
    let state = out.lines().last().unwrap_or("").trim().to_string();
    match (code, state.as_str()) {
        (_, "running") => {}
        (_, "degraded") => eprintln!("examroom shim: the machine booted degraded:\n{out}"),
        // Booted again for grading: the checks grade the machine as it came up, even if it never finished booting
        // (a unit of the candidate's that hangs at boot is theirs to have fixed).
        _ if !main => eprintln!("examroom shim: the machine did not finish booting for grading ({state:?}):\n{out}"),
        _ => {
            let tail = shim.console_tail(1500).unwrap_or_default();
            return Err(io::Error::other(format!(
                "the machine did not boot within {} s (systemctl is-system-running: {:?}): {}; its console: {}",
                left.as_secs(),
                state,
                out.trim(),
                tail.trim()
            )));
        }
    }
    steps.mark("boot");
    Ok(())
}

/// Opens a PTY in the sandbox and starts a login shell on it.
pub(crate) fn open_terminal(shim: &mut Shim, cols: u16, rows: u16) -> io::Result<Term> {
    let master = match &shim.ptmx {
        Some(ptmx) => open_from_ptmx(ptmx, shim.state.uid.as_ref().map(|s| s.base))?,
        None => {
            let (msg, mut fds) = shim.init_call(&ToInit::OpenPty, &[])?;
            match (msg, fds.pop()) {
                (FromInit::PtyOpened, Some(fd)) => fd,
                (other, _) => return Err(io::Error::other(format!("open a terminal: {other:?}"))),
            }
        }
    };
    sys::set_winsize(master.as_raw_fd(), cols, rows)?;
    nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
        .map_err(io::Error::from)?;
    let name = if shim.terminals.is_empty() { "main".to_string() } else { format!("t{}", shim.terminals.len()) };
    let mut term = Term::new(name, master, cols, rows, shim.cfg.scrollback_bytes);
    shim.start_shell(&mut term)?;
    Ok(term)
}

/// How long a machine may take from the start of create to the end of its boot (the runtime's own create timeout
/// may end it sooner).
const BOOT_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for a machine's service manager: its private socket, then the end of its boot. Prints the state last (and
/// the failed units first when it is degraded).
const BOOT_WAIT: &str = "i=0; while [ ! -S /run/systemd/private ] && [ $i -lt 600 ]; do sleep 0.02; i=$((i+1)); done; \
    s=$(systemctl is-system-running --wait 2>&1); [ \"$s\" = degraded ] && systemctl --failed --no-legend --plain; \
    echo \"$s\"";

/// A `system` environment's hard limit on open files per process (dbus asks for 65536). Kept well below the host's
/// own so that a few hundred processes cannot hold a large part of the host's file table.
const SYSTEM_NOFILE: libc::rlim_t = 65536;

/// Opens a new PTY in a booted environment's devpts, from its `ptmx` (`O_PATH`, reopened), and gives the slave to
/// root and group tty inside (`root`: the host uid of the environment's root), as if opened there.
fn open_from_ptmx(ptmx: &OwnedFd, root: Option<u32>) -> io::Result<OwnedFd> {
    let path = format!("/proc/self/fd/{}", ptmx.as_raw_fd());
    let master = OwnedFd::from(
        std::fs::File::options()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("open the environment's ptmx: {e}")))?,
    );
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK with a pointer to an int, on our own master.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if let Some(uid) = root {
        let slave = sys::pty_peer(&master)?;
        // SAFETY: fchown and fchmod on a descriptor we own.
        unsafe {
            if libc::fchown(slave.as_raw_fd(), uid, uid + 5) < 0 || libc::fchmod(slave.as_raw_fd(), 0o620) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(master)
}

/// A copy of the base's systemd that the environment can execute but not read (host root's, mode 0711, on a tmpfs
/// of the shim's), as a detached mount to bind over its path: a process started from it is not dumpable. Returns the
/// path inside and the mount.
fn execute_only_systemd(base: &crate::types::Base) -> io::Result<(String, OwnedFd)> {
    let root = match base {
        crate::types::Base::Host => std::path::PathBuf::from("/"),
        crate::types::Base::Rootfs(p) => p.clone(),
    };
    let inside = ["usr/lib/systemd/systemd", "lib/systemd/systemd"]
        .into_iter()
        .find(|p| root.join(p).is_file())
        .ok_or_else(|| io::Error::other("the system profile needs systemd in the base (apt install systemd)"))?;
    let bytes = std::fs::read(root.join(inside))?;
    let fs = sys::detached_tmpfs(&[("size", &(bytes.len() + 65536).to_string()), ("mode", "0755")], 0)?;
    // SAFETY: openat on the detached tmpfs; the descriptor is owned right away.
    let fd = unsafe {
        libc::openat(fs.as_raw_fd(), c"systemd".as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC, 0o711)
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor.
    let mut f = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    std::io::Write::write_all(&mut f, &bytes)?;
    f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o711))?;
    drop(f);
    let mount = sys::clone_mount_at(fs.as_raw_fd(), c"systemd", false)?;
    sys::set_mount_attrs(&mount, sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV, 0, false)?;
    Ok((format!("/{inside}"), mount))
}
