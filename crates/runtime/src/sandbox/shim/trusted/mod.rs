//! Trusted execution, for grading: a check runs inside the environment's namespaces, sees the candidate's files as
//! data, and loads code only from the pristine base.
//!
//! The shim forks the **grader** into the grading group `<env>.grade` (the environment's limits; the candidate's own
//! group is frozen). The grader stays host root in the host's user namespace, in its own copy of the host's mount
//! namespace; it clones the candidate's whole tree from inside their mount namespace, joins their network, uts, ipc
//! and pid namespaces, and stages (on a tmpfs over its `/proc`): the candidate's tree, the pristine base (freshly
//! cloned from the host by the shim), the check's view ([`view`]) and a socket for `examroom-run` ([`run`],
//! [`client`]). It then forks the check, which mounts the environment's `/proc`, pivots into the view, enters the
//! environment's user namespace as the checks' uid with `CAP_DAC_READ_SEARCH` only, and execs; meanwhile the grader serves `examroom-run` requests, each in a throwaway copy
//! of the candidate's environment. When the check ends, the grader kills every run and exits with the check's status,
//! and the shim kills whatever is left in the grading group before it answers, so nothing outlives a check and no
//! check can watch another.

mod client;
pub(crate) mod etc;
mod run;
mod view;

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

pub use client::main as run_client;

use crate::protocol::ExecSpec;
use crate::sandbox::cgroup::Group;
use crate::sandbox::rootfs::{m, mkdir, BaseTrees};
use crate::sandbox::state::ShimConfig;
use crate::sandbox::{seccomp, sys};

/// Named detached mounts of host files.
type Helpers = Vec<(String, OwnedFd)>;

/// At most this many `examroom-run` programs at once per check.
const MAX_RUNS: usize = 16;

/// Everything the grader needs, opened by the shim (host side) before the fork.
struct Grader {
    /// The user namespace the candidate's processes run in (init's: nested in the environment's, see `init.rs`);
    /// runs of their programs join it.
    userns: Option<OwnedFd>,
    /// The environment's own user namespace, the parent of `userns`: the check joins this one, so that no process of
    /// the candidate's, whatever capabilities it holds in its own namespace, may signal or trace it (a machine's
    /// services run while it is graded).
    check_userns: Option<OwnedFd>,
    /// The mount namespace the root was built in (its mounts are not locked).
    build_mnt: RawFd,
    others: [OwnedFd; 5],
    trees: BaseTrees,
    helpers: Helpers,
    loader: Option<String>,
    filter: seccomp::BpfProgram,
    argv: Vec<CString>,
    env: Vec<CString>,
    cwd: String,
    fds: [RawFd; 3],
    unprivileged_uid: Option<u32>,
}

/// Starts a trusted command. Returns the pid of the process the shim waits for (the grader; its exit status is the
/// check's). `fds` are the command's stdin, stdout and stderr. `unprivileged_uid` is the candidate's host uid when the
/// environment has no user namespace.
pub(crate) fn spawn(
    cfg: &ShimConfig,
    init_pid: i32,
    build_mnt: &OwnedFd,
    group: &Group,
    spec: &ExecSpec,
    fds: [&OwnedFd; 3],
    unprivileged_uid: Option<u32>,
) -> io::Result<i32> {
    let procs: Vec<PathBuf> = group.paths.iter().map(|p| p.join("cgroup.procs")).collect();
    let ns = |name: &str| -> io::Result<OwnedFd> {
        Ok(OwnedFd::from(std::fs::File::open(format!("/proc/{init_pid}/ns/{name}"))?))
    };
    let userns = if cfg.userns { Some(ns("user")?) } else { None };
    let check_userns = userns
        .as_ref()
        .map(|u| {
            sys::parent_userns(u)
                .map_err(|e| io::Error::other(format!("the environment's user namespace (the parent of init's): {e}")))
        })
        .transpose()?;
    let others = [ns("mnt")?, ns("net")?, ns("uts")?, ns("ipc")?, ns("pid")?];
    let raw_userns = userns.as_ref().map(|f| f.as_raw_fd());
    let trees = BaseTrees::open(&cfg.spec.base, &cfg.base_etc, raw_userns)?;
    let (helpers, loader) = helper_files(raw_userns)?;
    let filter = seccomp::candidate_filter().map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    let argv: Vec<CString> = spec.argv.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>()?;
    let env: Vec<CString> =
        view::check_env(&spec.env).iter().map(|(k, v)| CString::new(format!("{k}={v}"))).collect::<Result<_, _>>()?;
    let g = Grader {
        userns,
        check_userns,
        build_mnt: build_mnt.as_raw_fd(),
        others,
        trees,
        helpers,
        loader,
        filter,
        argv,
        env,
        cwd: spec.cwd.clone(),
        fds: [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()],
        unprivileged_uid,
    };
    // SAFETY: the shim is single-threaded; the child never returns (it exits).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    // Join the grading group before anything else runs or forks here.
    let me = std::process::id().to_string();
    for p in &procs {
        if let Err(e) = sys::write_file(p, &me) {
            die(g.fds[2], &format!("join {}: {e}", p.display()));
        }
    }
    // Keep only what the grader needs: the shim's other descriptors (its end of the stdin pipe above all, which
    // would keep the command's stdin from ever reaching end of file) must not live on in this process.
    let mut keep: Vec<RawFd> = g.fds.to_vec();
    keep.push(g.build_mnt);
    keep.extend(g.userns.iter().chain(g.check_userns.iter()).map(|f| f.as_raw_fd()));
    keep.extend(g.others.iter().map(|f| f.as_raw_fd()));
    keep.extend(g.trees.trees.iter().map(|(_, f)| f.as_raw_fd()));
    keep.extend(g.helpers.iter().map(|(_, f)| f.as_raw_fd()));
    close_all_except(&keep);
    let err = g.fds[2];
    match grade(cfg, g) {
        Ok(code) => {
            // SAFETY: leaving the fork without the shim's destructors.
            unsafe { libc::_exit(code) }
        }
        Err(e) => die(err, &e.to_string()),
    }
}

/// Writes a message to the check's stderr and leaves the fork with status 126.
fn die(stderr: RawFd, msg: &str) -> ! {
    let msg = format!("examroom: trusted exec: {msg}\n");
    // SAFETY: writing to our stderr pipe, then leaving the fork.
    unsafe {
        libc::write(stderr, msg.as_ptr().cast(), msg.len());
        libc::_exit(126)
    }
}

/// The host files `examroom-run` runs on, as detached mounts: this very binary (`examroom`) and, when it is
/// dynamically linked, the loader and libraries it has mapped, so that the helper runs whatever the base is.
/// Returns them and the loader's name.
fn helper_files(userns: Option<RawFd>) -> io::Result<(Helpers, Option<String>)> {
    let attrs = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
    let mut out =
        vec![("examroom".to_string(), sys::detached_idmapped_tree(Path::new("/proc/self/exe"), userns, attrs)?)];
    let mut loader = None;
    let maps = std::fs::read_to_string("/proc/self/maps")?;
    let mut seen: Vec<String> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else { continue };
        let name = match Path::new(path).file_name().and_then(|n| n.to_str()) {
            Some(n) if path.starts_with('/') && n.contains(".so") && !line.ends_with("(deleted)") => n.to_string(),
            _ => continue,
        };
        if seen.contains(&name) || name == "examroom" {
            continue;
        }
        seen.push(name.clone());
        if name.starts_with("ld-linux") || name.starts_with("ld64") || name.starts_with("ld-musl") {
            loader = Some(name.clone());
        }
        out.push((name, sys::detached_idmapped_tree(Path::new(path), userns, attrs)?));
    }
    Ok((out, loader))
}

/// Closes every descriptor of this process but `keep` (and 0, 1, 2).
fn close_all_except(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(d) => d.flatten().filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok())).collect(),
        Err(_) => return,
    };
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing a descriptor of this freshly forked process; nothing else uses it.
            unsafe { libc::close(fd) };
        }
    }
}

fn setns(fd: &OwnedFd, what: &str) -> io::Result<()> {
    // SAFETY: setns on a namespace descriptor we opened.
    if unsafe { libc::setns(fd.as_raw_fd(), 0) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("join {what} namespace: {e}")));
    }
    Ok(())
}

/// The grader: namespaces, the staged trees, the check's view, then the check and the `examroom-run` server.
fn grade(cfg: &ShimConfig, g: Grader) -> io::Result<i32> {
    // SAFETY: plain calls in a freshly forked, single-threaded child.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::setsid();
    }
    // SIGCHLD is read through a signalfd; every other signal the shim blocked is unblocked.
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_set_mask().map_err(io::Error::from)?;
    // Our own copy of the host's mount namespace, owned by the host's user namespace: the views are built here, as
    // host root, so that nothing they stand on is locked and the check's and the runs' roots can be pivoted out. The
    // candidate's tree is cloned from inside their mount namespace (it is frozen), then brought here.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| io::Error::other(format!("unshare: {e}")))?;
    m(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    let home = OwnedFd::from(std::fs::File::open("/proc/self/ns/mnt")?);
    // The host's pid namespace: runs get pid namespaces of their own below it (a pid namespace made by host root cannot
    // nest in the environment's, which the environment's user namespace owns).
    let host_pid = OwnedFd::from(std::fs::File::open("/proc/self/ns/pid")?);
    // Twice: from their own mount namespace (what they see, with their locked masks: the check's view binds it
    // whole), and from the one the root was built in (the same filesystems, not locked: the lower layers of runs).
    setns(&g.others[0], "mount")?;
    let candidate_tree =
        sys::detached_tree(Path::new("/")).map_err(|e| io::Error::other(format!("clone the root: {e}")));
    // SAFETY: setns on a descriptor the shim opened; single-threaded.
    let layers_tree = if unsafe { libc::setns(g.build_mnt, libc::CLONE_NEWNS) } == 0 {
        sys::detached_tree(Path::new("/")).map_err(|e| io::Error::other(format!("clone the built root: {e}")))
    } else {
        Err(io::Error::other(format!("join the building mount namespace: {}", io::Error::last_os_error())))
    };
    setns(&home, "our own mount")?;
    let (candidate_tree, layers_tree) = (candidate_tree?, layers_tree?);
    drop(home);
    for (fd, what) in g.others[1..4].iter().zip(["network", "uts", "ipc"]) {
        setns(fd, what)?;
    }
    // SAFETY: plain prctl: nothing of the candidate's may read this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // The environment's /proc is a fine place to stage on: nothing of it is needed below.
    let s = Path::new("/proc");
    m(
        Some("examroom-grading"),
        s,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("size=1m,mode=0700"),
    )?;
    let (candidate, pristine, view, stage) = (s.join("cand"), s.join("base"), s.join("view"), s.join("run"));
    let built = s.join("built");
    for d in [&candidate, &pristine, &view, &stage, &built] {
        mkdir(d, 0o700)?;
    }
    sys::attach_tree(&candidate_tree, &candidate).map_err(|e| io::Error::other(format!("attach the root: {e}")))?;
    sys::attach_tree(&layers_tree, &built).map_err(|e| io::Error::other(format!("attach the built root: {e}")))?;
    drop((candidate_tree, layers_tree));
    let mut layers = Vec::new();
    for (name, tree) in &g.trees.trees {
        let at = if name.is_empty() {
            pristine.clone()
        } else {
            layers.push(name.clone());
            let at = pristine.join(name);
            std::fs::create_dir_all(&at)?;
            at
        };
        sys::attach_tree(tree, &at).map_err(|e| io::Error::other(format!("attach base {name}: {e}")))?;
    }
    let sources = view::Sources {
        candidate: &candidate,
        pristine: &pristine,
        links: &g.trees.links,
        helpers: &g.helpers,
        loader: g.loader.as_deref(),
        hidden: &cfg.hidden,
        base: &cfg.spec.base,
    };
    view::build(&view, &sources)?;
    let listener = listen(&view.join("examroom/run.sock"))?;
    view::seal(&view)?;
    drop(g.helpers);
    let userns = g.userns.as_ref().map(|f| f.as_raw_fd());
    let check = view::Check {
        userns: g.check_userns.as_ref().map(|f| f.as_raw_fd()),
        view: &view,
        argv: &g.argv,
        env: &g.env,
        cwd: &g.cwd,
        fds: g.fds,
        filter: &g.filter,
        unprivileged_uid: g.unprivileged_uid,
    };
    // The check is born in the environment's pid namespace (it sees the candidate's processes); runs are not.
    setns(&g.others[4], "pid")?;
    // SAFETY: single-threaded; the child execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        setns(&host_pid, "the host's pid")?;
    }
    drop(host_pid);
    if pid == 0 {
        let _ = SigSet::empty().thread_set_mask();
        drop(listener);
        let e = view::exec_check(&check);
        die(g.fds[2], &e.to_string());
    }
    let lim = &cfg.spec.limits;
    let ctx = run::Context {
        stage: &stage,
        candidate: &built,
        layers: &layers,
        check_tmp: &view.join("tmp"),
        disk_bytes: lim.disk_bytes,
        shm_bytes: (lim.memory_bytes / 4).min(64 << 20),
        hidden: &cfg.hidden,
        base: &cfg.spec.base,
        filter: &g.filter,
        userns,
        unprivileged_uid: g.unprivileged_uid,
    };
    serve(listener, pid, &ctx, chld)
}

/// A listening `SOCK_SEQPACKET` socket at `path`, reachable by the check's uid.
fn listen(path: &Path) -> io::Result<OwnedFd> {
    use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, UnixAddr};
    let s = socket(AddressFamily::Unix, SockType::SeqPacket, SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK, None)
        .map_err(io::Error::from)?;
    bind(s.as_raw_fd(), &UnixAddr::new(path).map_err(io::Error::from)?).map_err(io::Error::from)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
    listen(&s, Backlog::new(MAX_RUNS as i32).map_err(io::Error::from)?).map_err(io::Error::from)?;
    Ok(s)
}

/// One `examroom-run` connection: waiting for its request, or for its program.
struct Conn {
    sock: OwnedFd,
    run: Option<i32>,
    done: bool,
}

fn reply(sock: &OwnedFd, r: &run::Reply) {
    if let Ok(body) = serde_json::to_vec(r) {
        let _ = sys::send_with_fds(sock.as_raw_fd(), &body, &[]);
    }
}

/// Serves `examroom-run` until the check exits; returns the check's exit status. Every program still running then is
/// killed.
fn serve(listener: OwnedFd, check: i32, ctx: &run::Context<'_>, chld: SigSet) -> io::Result<i32> {
    let sfd = SignalFd::with_flags(&chld, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)?;
    let mut conns: Vec<Conn> = Vec::new();
    let mut orphans: Vec<i32> = Vec::new();
    let mut buf = vec![0u8; run::MAX_REQUEST + 1];
    loop {
        let (sig_ready, listen_ready, ready) = {
            let mut fds =
                vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN), PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
            fds.extend(conns.iter().map(|c| PollFd::new(c.sock.as_fd(), PollFlags::POLLIN)));
            match poll(&mut fds, PollTimeout::NONE) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            let r = |i: usize| fds[i].revents().is_some_and(|r| !r.is_empty());
            let ready: Vec<bool> = (0..conns.len()).map(|i| r(i + 2)).collect();
            (r(0), r(1), ready)
        };
        if sig_ready {
            while let Ok(Some(_)) = sfd.read_signal() {}
            loop {
                let mut status = 0;
                // SAFETY: reaping our own children.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == check {
                    for c in &conns {
                        if let Some(r) = c.run {
                            // SAFETY: killing a run we forked.
                            unsafe { libc::kill(r, libc::SIGKILL) };
                        }
                    }
                    return Ok(run::decode(status));
                }
                orphans.retain(|p| *p != pid);
                if let Some(c) = conns.iter_mut().find(|c| c.run == Some(pid)) {
                    reply(&c.sock, &run::Reply::Exited { code: run::decode(status) });
                    c.run = None;
                    c.done = true;
                }
            }
        }
        for (i, is_ready) in ready.into_iter().enumerate() {
            if !is_ready || conns[i].done {
                continue;
            }
            let received = sys::recv_with_fds(conns[i].sock.as_raw_fd(), &mut buf);
            match received {
                Ok(Some((n, fds))) if conns[i].run.is_none() => {
                    let request = if n > run::MAX_REQUEST {
                        Err("the request is too large".to_string())
                    } else {
                        serde_json::from_slice::<run::Request>(&buf[..n]).map_err(|e| format!("bad request: {e}"))
                    }
                    .and_then(|req| run::validate(&req, fds.len()).map(|()| req));
                    let outcome = match request {
                        Ok(req) => {
                            run::spawn(ctx, &req, fds, &all_fds(&listener, &sfd, &conns)).map_err(|e| e.to_string())
                        }
                        Err(error) => Err(error),
                    };
                    match outcome {
                        Ok(pid) => conns[i].run = Some(pid),
                        Err(error) => {
                            reply(&conns[i].sock, &run::Reply::Refused { error });
                            conns[i].done = true;
                        }
                    }
                }
                Ok(Some(_)) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted => {}
                // The helper went away (its check's timeout, most likely): its program goes too.
                Ok(None) | Err(_) => {
                    if let Some(r) = conns[i].run.take() {
                        // SAFETY: killing a run we forked; it is reaped above.
                        unsafe { libc::kill(r, libc::SIGKILL) };
                        orphans.push(r);
                    }
                    conns[i].done = true;
                }
            }
        }
        conns.retain(|c| !c.done);
        if listen_ready {
            loop {
                match nix::sys::socket::accept4(listener.as_raw_fd(), nix::sys::socket::SockFlag::SOCK_CLOEXEC) {
                    Ok(fd) => {
                        // SAFETY: accept4 returned a fresh descriptor that we now own.
                        let sock = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
                        if conns.len() >= MAX_RUNS {
                            let error = format!("too many programs at once ({MAX_RUNS} at most per check)");
                            reply(&sock, &run::Reply::Refused { error });
                        } else {
                            conns.push(Conn { sock, run: None, done: false });
                        }
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(_) => break,
                }
            }
        }
    }
}

/// The grader's own descriptors, which a run must close.
fn all_fds(listener: &OwnedFd, sfd: &SignalFd, conns: &[Conn]) -> Vec<RawFd> {
    let mut v = vec![listener.as_raw_fd(), sfd.as_raw_fd()];
    v.extend(conns.iter().map(|c| c.sock.as_raw_fd()));
    v
}
