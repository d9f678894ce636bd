//! The environment's init: PID 1 of its pid namespace.
//!
//! It is forked from the shim straight into new namespaces (no exec), builds the root filesystem from inside them, and
//! then serves the shim over a `SOCK_SEQPACKET` socket: it opens PTYs in the sandbox's own devpts, spawns the candidate's
//! shells and commands (each hardened: its own session, a minimal capability set, `no_new_privs` and the seccomp
//! allowlist), kills them on request, reaps every orphan, and reports exits.
//!
//! Init holds no secret and needs no privilege after setup; it is non-dumpable, so the candidate (same uid, without
//! CAP_SYS_PTRACE) cannot ptrace it or read `/proc/1/{mem,fd,environ}`, and the kernel discards any signal that the
//! candidate sends it. If init dies, the kernel kills everything in the namespace and the environment is lost.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::rootfs::{build_root, BaseTrees, RootPlan};
use super::{caps, seccomp, sys};
use crate::types::Base;

/// The largest message between shim and init.
pub const MAX_MSG: usize = 64 * 1024;

/// What the shim tells init.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum ToInit {
    /// Build the root. Descriptors attached: the base trees, in the order of `trees`, then the four filesystems of
    /// [`crate::sandbox::rootfs::Supers`].
    Setup {
        /// Names of the attached trees.
        trees: Vec<String>,
        /// Symlinks at the top of the root.
        links: Vec<(String, PathBuf)>,
        /// Names of the `/proc` views attached after the filesystems (`procviews.rs`).
        views: Vec<String>,
        /// Files bound over these absolute paths of the root, attached after the views (a `system` environment's
        /// execute-only service manager).
        binds: Vec<String>,
    },
    /// A `system` environment: open the console and become its service manager. Answered with `PtyOpened` and two
    /// descriptors, the console's master and the devpts's `ptmx` (`O_PATH`), just before init execs systemd (which
    /// keeps init's pid); a failure before that is answered with `Failed`.
    Boot,
    /// Open a PTY in the sandbox's devpts; the master comes back attached to `PtyOpened`.
    OpenPty,
    /// Spawn a process. Descriptors attached: one (a PTY slave, `tty`) or three (stdin, stdout, stderr).
    Spawn {
        /// Caller's id for this process.
        id: u64,
        /// Program and arguments (empty = the candidate's login shell).
        argv: Vec<String>,
        /// Its whole environment.
        env: Vec<(String, String)>,
        /// Working directory.
        cwd: String,
        /// The single descriptor is a terminal to make the controlling tty.
        tty: bool,
        /// Keep init's OOM score (the desktop's X server) rather than making the process the OOM killer's first
        /// choice, as every candidate process is: a memory hog is killed before the X server.
        #[serde(default)]
        keep_oom_score: bool,
    },
    /// Signal a spawned process's whole process group.
    Kill {
        /// The process.
        id: u64,
        /// The signal.
        signal: i32,
    },
}

/// What init tells the shim.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum FromInit {
    /// The root is built; init serves requests.
    Ready,
    /// Setup failed; init exits.
    SetupFailed {
        /// What failed.
        error: String,
    },
    /// A PTY master is attached.
    PtyOpened,
    /// Spawned (exec succeeded).
    Spawned {
        /// Caller's id.
        id: u64,
        /// Pid inside the namespace.
        pid: i32,
    },
    /// Spawn failed.
    SpawnFailed {
        /// Caller's id.
        id: u64,
        /// Why.
        error: String,
    },
    /// A spawned process ended.
    Exited {
        /// Caller's id.
        id: u64,
        /// Exit code.
        code: Option<i32>,
        /// Signal.
        signal: Option<i32>,
    },
    /// A request failed.
    Failed {
        /// Why.
        error: String,
    },
}

/// Everything init needs, prepared by the shim before the fork.
pub struct InitConfig {
    /// The writable layer's size.
    pub disk_bytes: u64,
    /// `/dev/shm` size.
    pub shm_bytes: u64,
    /// Hostname.
    pub hostname: String,
    /// Paths never visible inside.
    pub hidden: Vec<PathBuf>,
    /// The base.
    pub base: Base,
    /// Without a user namespace, the unprivileged host uid candidates run as.
    pub unprivileged_uid: Option<u32>,
    /// The candidate filter, built before the fork.
    pub filter: seccomp::BpfProgram,
    /// What kind of machine.
    pub profile: crate::types::Profile,
    /// A `system` environment's filter (for its service manager and everything under it).
    pub system_filter: Option<seccomp::BpfProgram>,
    /// A machine booted again from its writable layer: what is in it stays (its `/etc/hostname` above all).
    pub rebooted: bool,
}

/// Sends one message, with descriptors.
pub fn send<T: Serialize>(sock: RawFd, msg: &T, fds: &[RawFd]) -> io::Result<()> {
    let data = serde_json::to_vec(msg).map_err(io::Error::other)?;
    sys::send_with_fds(sock, &data, fds)
}

/// Receives one message and its descriptors; `Ok(None)` when the peer is gone.
pub fn recv<T: for<'de> Deserialize<'de>>(sock: RawFd, buf: &mut [u8]) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    match sys::recv_with_fds(sock, buf)? {
        None => Ok(None),
        Some((n, fds)) => {
            let msg = serde_json::from_slice(&buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            Ok(Some((msg, fds)))
        }
    }
}

/// Init's entry point, in the child of the namespace clone. Never returns.
pub fn main(ctl: OwnedFd, cfg: InitConfig) -> ! {
    // SAFETY: plain prctl; makes the kernel kill us (and so the whole pid namespace) if the shim dies.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    set_title();
    let ctl = isolate_fds(ctl);
    let code = match run(ctl, &cfg) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    // SAFETY: leaving without running the shim's destructors or atexit handlers (we are a fork of it).
    unsafe { libc::_exit(code) }
}

/// Overwrites the command line inherited from the shim (which names host paths), so that `/proc/1/cmdline` inside
/// says only `examroom-init`.
fn set_title() {
    const TITLE: &[u8] = b"examroom-init\0";
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return };
    let Some((_, rest)) = stat.rsplit_once(')') else { return };
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 48 and 49 (arg_start, arg_end); `rest` starts at field 3.
    let (Some(start), Some(end)) =
        (f.get(45).and_then(|v| v.parse::<usize>().ok()), f.get(46).and_then(|v| v.parse::<usize>().ok()))
    else {
        return;
    };
    if end <= start || end - start < TITLE.len() {
        return;
    }
    // SAFETY: [arg_start, arg_end) is our own argument area, mapped and writable (it is on our stack); nothing reads
    // the arguments after this point.
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(TITLE.as_ptr(), p, TITLE.len());
        libc::prctl(libc::PR_SET_NAME, c"examroom-init".as_ptr(), 0, 0, 0);
    }
}

/// Puts /dev/null on 0, 1, 2, moves the control socket to 3 and closes everything else inherited from the shim.
fn isolate_fds(ctl: OwnedFd) -> OwnedFd {
    // SAFETY: raw descriptor juggling in a freshly forked, single-threaded child.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        let raw = ctl.as_raw_fd();
        // close_range below closes the original descriptor, so it must not be closed again on drop.
        std::mem::forget(ctl);
        let moved = if raw == 3 { 3 } else { libc::dup3(raw, 3, libc::O_CLOEXEC) };
        libc::syscall(libc::SYS_close_range, 4u32, u32::MAX, 0u32);
        OwnedFd::from_raw_fd(moved)
    }
}

fn run(ctl: OwnedFd, cfg: &InitConfig) -> io::Result<()> {
    let sock = ctl.as_raw_fd();
    let mut buf = vec![0u8; MAX_MSG];
    let Some((ToInit::Setup { trees, links, views, binds }, fds)) = recv::<ToInit>(sock, &mut buf)? else {
        return Err(io::Error::other("expected setup"));
    };
    if let Err(e) = setup(cfg, trees, links, views, binds, fds) {
        let _ = send(sock, &FromInit::SetupFailed { error: e.to_string() }, &[]);
        return Err(e);
    }
    // Signals: SIGCHLD through a signalfd; nothing else has a handler, so the kernel drops every signal that a process
    // inside the namespace sends to us.
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().map_err(io::Error::from)?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)?;
    // A shell environment's /dev/log (a machine has journald's). Without a user namespace init is host root: no
    // sink then, rather than host root writing in the candidate's files.
    let mut log_sink = (cfg.profile == crate::types::Profile::Shell && cfg.unprivileged_uid.is_none())
        .then(|| crate::sandbox::syslog::LogSink::open(&cfg.hostname).ok())
        .flatten();
    send(sock, &FromInit::Ready, &[])?;
    let mut spawned: HashMap<i32, u64> = HashMap::new();
    let mut by_id: HashMap<u64, i32> = HashMap::new();
    loop {
        let mut fds = vec![PollFd::new(ctl.as_fd(), PollFlags::POLLIN), PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(l) = &log_sink {
            fds.push(PollFd::new(l.fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ctl_ready = fds[0].revents().unwrap_or(PollFlags::empty());
        let sig_ready = fds[1].revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        let log_ready = fds.get(2).and_then(|f| f.revents()).is_some_and(|r| r.contains(PollFlags::POLLIN));
        drop(fds);
        if log_ready {
            if let Some(l) = &mut log_sink {
                l.drain();
            }
        }
        if sig_ready {
            while let Ok(Some(_)) = sfd.read_signal() {}
            reap(sock, &mut spawned, &mut by_id);
        }
        if ctl_ready.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            match recv::<ToInit>(sock, &mut buf) {
                Ok(Some((msg, fds))) => handle(sock, cfg, msg, fds, &mut spawned, &mut by_id)?,
                Ok(None) => return Ok(()), // the shim is gone: exiting takes the namespace down with us
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    send(sock, &FromInit::Failed { error: e.to_string() }, &[])?;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn setup(
    cfg: &InitConfig,
    names: Vec<String>,
    links: Vec<(String, PathBuf)>,
    views: Vec<String>,
    binds: Vec<String>,
    mut fds: Vec<OwnedFd>,
) -> io::Result<()> {
    if names.len() + 5 + views.len() + binds.len() != fds.len() {
        return Err(io::Error::other("base trees and descriptors disagree"));
    }
    let bind_fds = fds.split_off(names.len() + 5 + views.len());
    let view_fds = fds.split_off(names.len() + 5);
    let supers = crate::sandbox::rootfs::Supers::from_fds(fds.split_off(names.len()))?;
    let views: Vec<(String, OwnedFd)> = views.into_iter().zip(view_fds).collect();
    if cfg.unprivileged_uid.is_none() {
        // We were cloned as host root, which the user namespace's map does not cover: become its root (host uid
        // `base`), so that what we create is owned by a mapped uid.
        sys::become_namespace_root()?;
        // A change of credentials clears the parent-death signal: set it again. Should the shim have died in
        // between, the closed control socket ends us anyway.
        // SAFETY: plain prctl.
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    // `ping` without CAP_NET_RAW: ICMP echo sockets for every group of the environment (a per-network-namespace
    // setting; written now, while a writable /proc/sys is still reachable).
    sys::write_file(Path::new("/proc/sys/net/ipv4/ping_group_range"), "0 65535")
        .map_err(|e| io::Error::other(format!("ping_group_range: {e}")))?;
    let trees = BaseTrees { trees: names.into_iter().zip(fds).collect(), links };
    let plan = RootPlan {
        disk_bytes: cfg.disk_bytes,
        shm_bytes: cfg.shm_bytes,
        hostname: &cfg.hostname,
        hidden: &cfg.hidden,
        base: &cfg.base,
        unprivileged_owner: cfg.unprivileged_uid,
        system: cfg.profile == crate::types::Profile::System,
        rebooted: cfg.rebooted,
    };
    let binds: Vec<(String, OwnedFd)> = binds.into_iter().zip(bind_fds).collect();
    build_root(&plan, &trees, &supers, &views, &binds)?;
    drop((views, binds));
    drop(trees);
    nix::unistd::sethostname(&cfg.hostname).map_err(|e| io::Error::other(format!("sethostname: {e}")))?;
    sys::loopback_up().map_err(|e| io::Error::other(format!("loopback up: {e}")))?;
    // A cgroup namespace rooted at the environment's own cgroup (the shim moved us there before setup).
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP)
        .map_err(|e| io::Error::other(format!("cgroup namespace: {e}")))?;
    let system = cfg.profile == crate::types::Profile::System;
    if cfg.unprivileged_uid.is_none() && !system {
        crate::sandbox::rootfs::mount_cgroups(&supers.cgroup)
            .map_err(|e| io::Error::other(format!("cgroups under /sys: {e}")))?;
    }
    if cfg.unprivileged_uid.is_none() {
        lock_mounts().map_err(|e| io::Error::other(format!("lock the mounts: {e}")))?;
    }
    if system {
        // The environment's own network, hostname and IPC, owned by the candidate's user namespace: an
        // administrator's `ip addr add`, `iptables`, `sysctl net.*` and `hostnamectl` act on them and nothing else.
        // And its own cgroup namespace, rooted at the same group but owned by that user namespace, where its
        // service manager may mount the cgroup hierarchies.
        nix::sched::unshare(
            nix::sched::CloneFlags::CLONE_NEWNET
                | nix::sched::CloneFlags::CLONE_NEWUTS
                | nix::sched::CloneFlags::CLONE_NEWIPC
                | nix::sched::CloneFlags::CLONE_NEWCGROUP,
        )
        .map_err(|e| io::Error::other(format!("the machine's namespaces: {e}")))?;
        sys::loopback_up().map_err(|e| io::Error::other(format!("loopback up: {e}")))?;
        sys::write_file(Path::new("/proc/sys/net/ipv4/ping_group_range"), "0 65535")
            .map_err(|e| io::Error::other(format!("ping_group_range: {e}")))?;
        crate::sandbox::rootfs::mount_split_cpu_cgroups()
            .map_err(|e| io::Error::other(format!("cgroups under /sys/fs/cgroup: {e}")))?;
    }
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    Ok(())
}

/// Moves init (and so every process it will start) into a user namespace nested in the environment's, with a copy of
/// its mount namespace. The kernel marks every mount copied into a mount namespace owned by a less privileged user
/// namespace `MNT_LOCKED` (and locks its read-only, nosuid, nodev and noexec flags): the root, the masks over `/proc`
/// and the hidden paths can then never be unmounted, moved or revealed from inside, whatever capabilities a process
/// there holds in its own namespace. The nested namespace maps its 0..65535 onto the environment's 0..65535, so ids and
/// files are unchanged.
///
/// Only a process of the parent namespace may write the new one's maps: a helper forked before the `unshare` does,
/// while init is briefly dumpable (its `/proc` files then belong to it; nothing of the candidate's exists yet).
fn lock_mounts() -> io::Result<()> {
    use nix::unistd::{pipe2, read, write};
    let flags = nix::fcntl::OFlag::O_CLOEXEC;
    let (go_r, go_w) = pipe2(flags).map_err(io::Error::from)?;
    let (done_r, done_w) = pipe2(flags).map_err(io::Error::from)?;
    let me = std::process::id();
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) };
    // SAFETY: init is single-threaded; the child only makes plain calls and exits.
    let helper = unsafe { libc::fork() };
    if helper < 0 {
        return Err(io::Error::last_os_error());
    }
    if helper == 0 {
        drop((go_w, done_r));
        let mut b = [0u8; 1];
        let ok = matches!(read(go_r.as_raw_fd(), &mut b), Ok(1))
            && sys::write_file(Path::new(&format!("/proc/{me}/uid_map")), "0 0 65536\n").is_ok()
            && sys::write_file(Path::new(&format!("/proc/{me}/gid_map")), "0 0 65536\n").is_ok();
        let _ = write(&done_w, if ok { b"1" } else { b"0" });
        // SAFETY: leaving the fork.
        unsafe { libc::_exit(0) }
    }
    drop((go_r, done_w));
    let entered = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER | nix::sched::CloneFlags::CLONE_NEWNS)
        .map_err(|e| io::Error::other(format!("unshare: {e}")));
    let _ = write(&go_w, b"g");
    let mut b = [0u8; 1];
    let answer = read(done_r.as_raw_fd(), &mut b);
    let _ = waitpid(Pid::from_raw(helper), None);
    entered?;
    if !matches!(answer, Ok(1)) || b[0] != b'1' {
        return Err(io::Error::other("the nested user namespace's maps could not be written"));
    }
    sys::become_namespace_root()?;
    // SAFETY: plain prctl; a change of credentials cleared it.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    Ok(())
}

fn reap(sock: RawFd, spawned: &mut HashMap<i32, u64>, by_id: &mut HashMap<u64, i32>) {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => report(sock, spawned, by_id, pid.as_raw(), Some(code), None),
            Ok(WaitStatus::Signaled(pid, sig, _)) => report(sock, spawned, by_id, pid.as_raw(), None, Some(sig as i32)),
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

fn report(
    sock: RawFd,
    spawned: &mut HashMap<i32, u64>,
    by_id: &mut HashMap<u64, i32>,
    pid: i32,
    code: Option<i32>,
    signal: Option<i32>,
) {
    if let Some(id) = spawned.remove(&pid) {
        by_id.remove(&id);
        let _ = send(sock, &FromInit::Exited { id, code, signal }, &[]);
    }
}

fn handle(
    sock: RawFd,
    cfg: &InitConfig,
    msg: ToInit,
    fds: Vec<OwnedFd>,
    spawned: &mut HashMap<i32, u64>,
    by_id: &mut HashMap<u64, i32>,
) -> io::Result<()> {
    match msg {
        ToInit::Setup { .. } => send(sock, &FromInit::Failed { error: "already set up".into() }, &[]),
        ToInit::Boot => {
            let e = boot(sock, cfg);
            send(sock, &FromInit::Failed { error: format!("boot: {e}") }, &[])
        }
        ToInit::OpenPty => match open_pty() {
            Ok(master) => send(sock, &FromInit::PtyOpened, &[master.as_raw_fd()]),
            Err(e) => send(sock, &FromInit::Failed { error: format!("open pty: {e}") }, &[]),
        },
        ToInit::Kill { id, signal } => {
            if let Some(pid) = by_id.get(&id) {
                // SAFETY: signalling a process group we created.
                unsafe { libc::kill(-pid, signal) };
            }
            Ok(())
        }
        ToInit::Spawn { id, argv, env, cwd, tty, keep_oom_score } => {
            let wanted = if tty { 1 } else { 3 };
            if fds.len() != wanted {
                return send(sock, &FromInit::SpawnFailed { id, error: "wrong number of descriptors".into() }, &[]);
            }
            match spawn(cfg, &argv, &env, &cwd, tty, keep_oom_score, &fds) {
                Ok(pid) => {
                    spawned.insert(pid, id);
                    by_id.insert(id, pid);
                    send(sock, &FromInit::Spawned { id, pid }, &[])
                }
                Err(e) => send(sock, &FromInit::SpawnFailed { id, error: e.to_string() }, &[]),
            }
        }
    }
}

fn open_pty() -> io::Result<OwnedFd> {
    use nix::pty::{grantpt, posix_openpt, unlockpt};
    let master = posix_openpt(nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(io::Error::from)?;
    grantpt(&master).map_err(io::Error::from)?;
    unlockpt(&master).map_err(io::Error::from)?;
    // SAFETY: we take the descriptor out of the PtyMaster wrapper, which would close it.
    Ok(unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(master)) })
}

fn cstrings(v: &[String]) -> io::Result<Vec<CString>> {
    v.iter().map(|s| CString::new(s.as_bytes()).map_err(|_| io::Error::other("NUL byte in argument"))).collect()
}

/// The login shell: bash when the base has it, else sh.
fn login_shell() -> Vec<String> {
    if Path::new("/bin/bash").exists() {
        vec!["/bin/bash".into(), "-l".into()]
    } else {
        vec!["/bin/sh".into(), "-l".into()]
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn spawn(
    cfg: &InitConfig,
    argv: &[String],
    env: &[(String, String)],
    cwd: &str,
    tty: bool,
    keep_oom_score: bool,
    fds: &[OwnedFd],
) -> io::Result<i32> {
    let argv = if argv.is_empty() { login_shell() } else { argv.to_vec() };
    let mut env: Vec<(String, String)> = env.to_vec();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    // Resolve the program before forking, from the command's own PATH.
    let prog = if argv[0].contains('/') {
        argv[0].clone()
    } else {
        let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH);
        path.split(':')
            .map(|d| format!("{d}/{}", argv[0]))
            .find(|p| Path::new(p).is_file())
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{}: command not found", argv[0])))?
    };
    let prog_c = CString::new(prog).map_err(|_| io::Error::other("NUL byte in program"))?;
    let argv_c = cstrings(&argv)?;
    let env_c = cstrings(&env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>())?;
    let cwd_c = CString::new(cwd).map_err(|_| io::Error::other("NUL byte in cwd"))?;
    let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
    env_p.push(std::ptr::null());
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    // SAFETY: init is single-threaded; the child only makes raw calls (and the capability and seccomp calls, which do
    // not take locks that another thread could hold) before execve or _exit.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        // Child.
        let errno = unsafe { child_exec(cfg, &raw, tty, keep_oom_score, &cwd_c, &prog_c, &argv_p, &env_p) };
        let bytes = errno.to_ne_bytes();
        unsafe {
            libc::write(err_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
    }
    drop(err_w);
    let mut b = [0u8; 4];
    let n = loop {
        match nix::unistd::read(err_r.as_raw_fd(), &mut b) {
            Err(nix::errno::Errno::EINTR) => continue,
            r => break r.unwrap_or(0),
        }
    };
    if n == 4 {
        let e = i32::from_ne_bytes(b);
        let _ = waitpid(Pid::from_raw(pid), None);
        return Err(io::Error::from_raw_os_error(e));
    }
    Ok(pid)
}

/// In the forked child: becomes the candidate's process. Returns only on failure, with an errno.
#[allow(clippy::too_many_arguments)]
unsafe fn child_exec(
    cfg: &InitConfig,
    fds: &[RawFd],
    tty: bool,
    keep_oom_score: bool,
    cwd: &CString,
    prog: &CString,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
) -> i32 {
    let errno = || *libc::__errno_location();
    let mut all: libc::sigset_t = std::mem::zeroed();
    libc::sigemptyset(&mut all);
    libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    if libc::setsid() < 0 {
        return errno();
    }
    let (i, o, e) = if tty { (fds[0], fds[0], fds[0]) } else { (fds[0], fds[1], fds[2]) };
    if tty && libc::ioctl(i, libc::TIOCSCTTY, 0) < 0 {
        return errno();
    }
    // Move the sources above 2 first so that dup2 cannot clobber one with another.
    let (i, o, e) = (
        libc::fcntl(i, libc::F_DUPFD_CLOEXEC, 10),
        libc::fcntl(o, libc::F_DUPFD_CLOEXEC, 10),
        libc::fcntl(e, libc::F_DUPFD_CLOEXEC, 10),
    );
    if i < 0 || o < 0 || e < 0 || libc::dup2(i, 0) < 0 || libc::dup2(o, 1) < 0 || libc::dup2(e, 2) < 0 {
        return errno();
    }
    if libc::chdir(cwd.as_ptr()) < 0 && libc::chdir(c"/".as_ptr()) < 0 {
        return errno();
    }
    libc::umask(0o022);
    if let Some(uid) = cfg.unprivileged_uid {
        // No user namespace: the base is not idmapped, so a set-user-ID root program would mean host root. Keep
        // no_new_privs (set by `apply`), after giving up every capability.
        if caps::drop_for_setuid().is_err() {
            return libc::EPERM;
        }
        if libc::setgroups(0, std::ptr::null()) < 0 || libc::setgid(uid) < 0 || libc::setuid(uid) < 0 {
            return errno();
        }
        if caps::drop_all().is_err() {
            return libc::EPERM;
        }
        if seccomp::apply(&cfg.filter).is_err() {
            return libc::EPERM;
        }
    } else {
        // The filter goes in while this process still holds CAP_SYS_ADMIN in the namespace, so that no_new_privs is
        // not needed: sudo, su, passwd and crontab work, and can grant no more than root of this namespace with the
        // candidate's bounding set (the base is idmapped).
        if seccomp::apply_keeping_setuid(&cfg.filter).is_err() || caps::drop_to_candidate_set().is_err() {
            return libc::EPERM;
        }
    }
    if !keep_oom_score && !lower_oom_priority() {
        return libc::EPERM;
    }
    libc::execve(prog.as_ptr(), argv.as_ptr(), env.as_ptr());
    errno()
}

/// Makes the calling process (a candidate's, about to exec) the OOM killer's first choice, ahead of init:
/// `oom_score_adj` 500. Raw calls only.
///
/// A fork of init is not dumpable (init is not), so its `/proc/self` files belong to host root and even root of the
/// namespace cannot write them. It becomes dumpable here, after its capabilities are dropped and its seccomp filter is
/// installed, so that for the instant before exec it is exactly as reachable as any other candidate process (exec
/// makes it dumpable anyway). Returns whether the score was set.
pub fn lower_oom_priority() -> bool {
    // SAFETY: plain prctl, open, write and close with valid arguments.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0);
        let adj = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if adj < 0 {
            return false;
        }
        let ok = libc::write(adj, b"500".as_ptr().cast(), 3) == 3;
        libc::close(adj);
        ok
    }
}

/// A `system` environment's boot: init writes what systemd needs to run in a container, opens the console (a PTY of
/// the environment's own devpts, whose master goes to the shim), and execs systemd, which becomes PID 1 with the
/// `system` capability set and filter. Returns only on failure.
///
/// systemd is executed from the execute-only copy the shim bound over its path, so it is not dumpable: with
/// `CAP_SYS_PTRACE` kept out of the environment, no process inside can trace it or read its memory. It keeps init's
/// parent-death signal, so it dies with the shim.
fn boot(sock: RawFd, cfg: &InitConfig) -> io::Error {
    let prepared = (|| -> io::Result<(OwnedFd, CString)> {
        configure_systemd()?;
        let master = open_pty()?;
        let name = pts_name(&master)?;
        std::fs::File::create("/dev/console")?;
        crate::sandbox::rootfs::m(Some(&name), "/dev/console", None, nix::mount::MsFlags::MS_BIND, None)?;
        let slave = CString::new(name).map_err(io::Error::other)?;
        Ok((master, slave))
    })();
    let (master, slave) = match prepared {
        Ok(p) => p,
        Err(e) => return e,
    };
    // With the console, the environment's ptmx (`O_PATH`): the shim opens further terminals from it, in this devpts.
    let ptmx = match std::fs::File::options().read(true).custom_flags(libc::O_PATH).open("/dev/pts/ptmx") {
        Ok(f) => OwnedFd::from(f),
        Err(e) => return e,
    };
    if let Err(e) = send(sock, &FromInit::PtyOpened, &[master.as_raw_fd(), ptmx.as_raw_fd()]) {
        return e;
    }
    drop((master, ptmx));
    let Some(filter) = &cfg.system_filter else { return io::Error::other("no filter for the system profile") };
    let argv = [c"/sbin/init".as_ptr(), std::ptr::null()];
    let env = [
        c"container=examroom".as_ptr(),
        c"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".as_ptr(),
        c"TERM=linux".as_ptr(),
        c"LANG=C.UTF-8".as_ptr(),
        std::ptr::null(),
    ];
    // SAFETY: raw calls in our own single-threaded process, then exec.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::setsid();
        let tty = libc::open(slave.as_ptr(), libc::O_RDWR);
        if tty < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) < 0 {
            return io::Error::last_os_error();
        }
        for fd in 0..3 {
            libc::dup2(tty, fd);
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    }
    if let Err(e) = seccomp::apply_keeping_setuid(filter) {
        return io::Error::other(format!("seccomp: {e}"));
    }
    if let Err(e) = caps::drop_to_system_set() {
        return io::Error::other(format!("capabilities: {e}"));
    }
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(c"/usr/lib/systemd/systemd".as_ptr(), argv.as_ptr(), env.as_ptr()) };
    io::Error::last_os_error()
}

/// The path of the slave of a PTY master.
fn pts_name(master: &OwnedFd) -> io::Result<String> {
    let mut buf = [0 as libc::c_char; 64];
    // SAFETY: a valid descriptor and a buffer of the stated length.
    let rc = unsafe { libc::ptsname_r(master.as_raw_fd(), buf.as_mut_ptr(), buf.len()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into buf.
    Ok(unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned())
}

/// What systemd needs to boot cleanly in a user namespace (written into the environment's own `/etc`):
/// `sys-kernel-debug.mount` masked (debugfs cannot be mounted there), and, where sshd is installed, an ed25519 host
/// key made at first boot and sshd told to use only it.
fn configure_systemd() -> io::Result<()> {
    let units = Path::new("/etc/systemd/system");
    std::fs::create_dir_all(units)?;
    for masked in ["sys-kernel-debug.mount", "sys-kernel-tracing.mount", "systemd-journald-audit.socket"] {
        let p = units.join(masked);
        if std::fs::symlink_metadata(&p).is_err() {
            std::os::unix::fs::symlink("/dev/null", &p)?;
        }
    }
    // The journal lives in the machine's memory (its /run, or its /var on the writable tmpfs), and journald grows its
    // files in 8 MiB steps: small files and a small cap keep an idle machine's journal to a few hundred KiB.
    std::fs::create_dir_all("/etc/systemd/journald.conf.d")?;
    let journald = Path::new("/etc/systemd/journald.conf.d/examroom.conf");
    if std::fs::symlink_metadata(journald).is_err() {
        std::fs::write(
            journald,
            "# Written by examroom: this machine's journal is kept in its memory.
[Journal]
             RuntimeMaxUse=16M
RuntimeMaxFileSize=1M
SystemMaxUse=16M
SystemMaxFileSize=1M
",
        )?;
    }
    if Path::new("/usr/sbin/sshd").exists() {
        std::fs::write(
            units.join("examroom-ssh-host-key.service"),
            "[Unit]\nDescription=SSH host key for this exam machine\n\
             ConditionPathExists=!/etc/ssh/ssh_host_ed25519_key\nBefore=ssh.service\n\n\
             [Service]\nType=oneshot\nExecStart=/usr/bin/ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key\n\n\
             [Install]\nWantedBy=multi-user.target\n",
        )?;
        let wants = units.join("multi-user.target.wants");
        std::fs::create_dir_all(&wants)?;
        let link = wants.join("examroom-ssh-host-key.service");
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink("../examroom-ssh-host-key.service", &link)?;
        }
        std::fs::create_dir_all("/etc/ssh/sshd_config.d")?;
        std::fs::write("/etc/ssh/sshd_config.d/examroom.conf", "HostKey /etc/ssh/ssh_host_ed25519_key\n")?;
    }
    Ok(())
}
