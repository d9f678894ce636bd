//! Trusted execution, for grading: a command that runs inside the environment's namespaces but sees a toolset the
//! candidate could not change.
//!
//! The shim forks a process that joins the environment's user, mount, network, uts, ipc and pid namespaces and the
//! group `<env>.grade`, which has the environment's limits but is not frozen with the candidate's processes. Its child builds a
//! private mount namespace: a fresh tmpfs root with the pristine base (`/usr` freshly cloned from the host,
//! idmapped, read-only; the top-level `bin`/`lib*` links are ours), the candidate's other top-level directories bound
//! read-only, the candidate's `/etc` with `ld.so.preload` masked and the trusted `ld.so.cache` over theirs, a fresh
//! writable `/tmp` and a fresh `/proc`. Replacing `/usr/bin/grep`, `/lib64/ld-linux-x86-64.so.2` or adding an `ld.so.preload` inside the
//! environment therefore changes nothing for the check. The command's environment is fixed (`PATH` of the base
//! only), its script comes on stdin, and it runs with the candidate's capability set, `no_new_privs` and seccomp.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};

use crate::protocol::ExecSpec;
use crate::sandbox::cgroup::Group;
use crate::sandbox::rootfs::{m, mkdir, BaseTrees};
use crate::sandbox::state::ShimConfig;
use crate::sandbox::{caps, seccomp, sys};

/// The environment of a trusted command.
const TRUSTED_PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";

/// Top-level directories of the candidate's root that the trusted view does not take from the candidate.
const NOT_FROM_CANDIDATE: &[&str] =
    &["usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "proc", "sys", "etc", "tmp"];

/// Starts a trusted command. Returns the pid of the process the shim waits for (its exit status is the command's).
/// `fds` are the command's stdin, stdout and stderr.
pub(crate) fn spawn(
    cfg: &ShimConfig,
    init_pid: i32,
    group: &Group,
    spec: &ExecSpec,
    fds: [&OwnedFd; 3],
) -> io::Result<i32> {
    // The command (and whatever it starts: a check may run the candidate's programs) is held to the environment's
    // limits, in its own group: the environment's own group is frozen while grading.
    let procs: Vec<std::path::PathBuf> = group.paths.iter().map(|p| p.join("cgroup.procs")).collect();
    let ns = |name: &str| -> io::Result<OwnedFd> {
        Ok(OwnedFd::from(std::fs::File::open(format!("/proc/{init_pid}/ns/{name}"))?))
    };
    let userns = if cfg.userns { Some(ns("user")?) } else { None };
    let others = [ns("mnt")?, ns("net")?, ns("uts")?, ns("ipc")?, ns("pid")?];
    let trees = BaseTrees::open(&cfg.spec.base, &cfg.base_etc, userns.as_ref().map(|f| f.as_raw_fd()))?;
    let filter = seccomp::candidate_filter().map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    let argv: Vec<CString> = spec.argv.iter().map(|a| CString::new(a.as_bytes())).collect::<Result<_, _>>()?;
    let mut env: Vec<(String, String)> =
        spec.env.iter().filter(|(k, _)| k != "PATH" && !k.starts_with("LD_")).cloned().collect();
    env.push(("PATH".into(), TRUSTED_PATH.into()));
    let env: Vec<CString> = env.iter().map(|(k, v)| CString::new(format!("{k}={v}"))).collect::<Result<_, _>>()?;
    let raw = [fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()];
    // SAFETY: the shim is single-threaded; the child never returns (it execs or exits).
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
            let msg = format!("examroom: trusted exec: join {}: {e}\n", p.display());
            // SAFETY: writing to our stderr pipe, then leaving the fork.
            unsafe {
                libc::write(raw[2], msg.as_ptr().cast(), msg.len());
                libc::_exit(126);
            }
        }
    }
    // Keep only what the command needs: the shim's other descriptors (its end of the stdin pipe above all, which
    // would keep the command's stdin from ever reaching end of file) must not live on in this process.
    let mut keep: Vec<RawFd> = raw.to_vec();
    keep.extend(userns.iter().map(|f| f.as_raw_fd()));
    keep.extend(others.iter().map(|f| f.as_raw_fd()));
    keep.extend(trees.trees.iter().map(|(_, f)| f.as_raw_fd()));
    close_all_except(&keep);
    let code = match child(cfg, userns.as_ref(), &others, &trees, &filter, &argv, &env, raw, &spec.cwd) {
        Ok(code) => code,
        Err(e) => {
            // SAFETY: writing to our own stderr pipe.
            let msg = format!("examroom: trusted exec: {e}\n");
            unsafe { libc::write(raw[2], msg.as_ptr().cast(), msg.len()) };
            126
        }
    };
    // SAFETY: leaving the fork without the shim's destructors.
    unsafe { libc::_exit(code) }
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
        return Err(io::Error::new(
            io::Error::last_os_error().kind(),
            format!("join {what} namespace: {}", io::Error::last_os_error()),
        ));
    }
    Ok(())
}

/// The forked child: joins the namespaces, forks into the pid namespace, waits and passes on the exit status.
#[allow(clippy::too_many_arguments)]
fn child(
    cfg: &ShimConfig,
    userns: Option<&OwnedFd>,
    others: &[OwnedFd; 5],
    trees: &BaseTrees,
    filter: &seccomp::BpfProgram,
    argv: &[CString],
    env: &[CString],
    fds: [RawFd; 3],
    cwd: &str,
) -> io::Result<i32> {
    // SAFETY: plain calls in a freshly forked, single-threaded child.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        libc::setsid();
    }
    // Signals the shim blocked for its signalfd must not stay blocked in the command.
    let mut none: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
    }
    if let Some(u) = userns {
        setns(u, "user")?;
    }
    for (fd, what) in others.iter().zip(["mount", "network", "uts", "ipc", "pid"]) {
        setns(fd, what)?;
    }
    if cfg.userns {
        sys::become_namespace_root()?;
    }
    // SAFETY: as above; the grandchild is the one in the pid namespace.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
        let e = grandchild(cfg, trees, filter, argv, env, fds, cwd).unwrap_or_else(|e| e);
        let msg = format!("examroom: trusted exec: {e}\n");
        unsafe {
            libc::write(fds[2], msg.as_ptr().cast(), msg.len());
            libc::_exit(126);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0 {
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Ok(125);
        }
    }
    Ok(if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) })
}

/// Builds the trusted view and execs the command. Returns only on failure.
fn grandchild(
    cfg: &ShimConfig,
    trees: &BaseTrees,
    filter: &seccomp::BpfProgram,
    argv: &[CString],
    env: &[CString],
    fds: [RawFd; 3],
    cwd: &str,
) -> Result<io::Error, io::Error> {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| io::Error::other(format!("unshare: {e}")))?;
    m(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    // A detached copy of the candidate's whole tree, taken before anything is stacked over it.
    let candidate = sys::detached_tree(Path::new("/")).map_err(|e| io::Error::other(format!("clone the root: {e}")))?;
    let stage = Path::new("/proc");
    // The environment's /proc is a fine place to stack the new root on: nothing of it is needed below.
    m(
        Some("examroom-trusted"),
        stage,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,mode=0755"),
    )?;
    let r = stage;
    let c = r.join(".c");
    let t = r.join(".t");
    mkdir(&c, 0o700)?;
    mkdir(&t, 0o700)?;
    sys::attach_tree(&candidate, &c).map_err(|e| io::Error::other(format!("attach the root: {e}")))?;
    for (name, tree) in &trees.trees {
        let at = t.join(if name.is_empty() { "root" } else { name.as_str() });
        mkdir(&at, 0o755)?;
        sys::attach_tree(tree, &at).map_err(|e| io::Error::other(format!("attach base {name}: {e}")))?;
    }
    let (usr, etc, top): (PathBuf, PathBuf, PathBuf) = if t.join("root").is_dir() {
        (t.join("root/usr"), t.join("root/etc"), t.join("root"))
    } else {
        (t.join("usr"), t.join("etc"), PathBuf::from("/nonexistent"))
    };
    // The pristine /usr, and our own top-level links.
    mkdir(r.join("usr"), 0o755)?;
    m(Some(&usr.to_string_lossy()), r.join("usr"), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    let mut links = trees.links.clone();
    if let Ok(entries) = std::fs::read_dir(&top) {
        for e in entries.flatten() {
            if let Ok(target) = std::fs::read_link(e.path()) {
                links.push((e.file_name().to_string_lossy().into_owned(), target));
            }
        }
    }
    for (name, target) in &links {
        if NOT_FROM_CANDIDATE.contains(&name.as_str()) && name != "usr" {
            let _ = std::os::unix::fs::symlink(target, r.join(name));
        }
    }
    // The candidate's /usr/local (what they installed), read-only and outside PATH.
    if c.join("usr/local").is_dir() {
        bind_ro(&c.join("usr/local"), &r.join("usr/local"))?;
    }
    // The candidate's other top-level directories, read-only.
    for e in std::fs::read_dir(&c)?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if NOT_FROM_CANDIDATE.contains(&name.as_str()) || !e.path().is_dir() || e.path().is_symlink() {
            continue;
        }
        mkdir(r.join(&name), 0o755)?;
        bind_ro(&e.path(), &r.join(&name))?;
    }
    // The candidate's /etc, without what could redirect the loader.
    mkdir(r.join("etc"), 0o755)?;
    bind_ro(&c.join("etc"), &r.join("etc"))?;
    if r.join("etc/ld.so.preload").exists() {
        m(Some("/dev/null"), r.join("etc/ld.so.preload"), None, MsFlags::MS_BIND, None)?;
    }
    if etc.join("ld.so.cache").exists() && r.join("etc/ld.so.cache").exists() {
        m(Some(&etc.join("ld.so.cache").to_string_lossy()), r.join("etc/ld.so.cache"), None, MsFlags::MS_BIND, None)?;
    } else if r.join("etc/ld.so.cache").exists() {
        m(Some("/dev/null"), r.join("etc/ld.so.cache"), None, MsFlags::MS_BIND, None)?;
    }
    // A fresh, writable /tmp for the check's own files.
    mkdir(r.join("tmp"), 0o1777)?;
    m(Some("tmp"), r.join("tmp"), Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some("size=64m,mode=1777"))?;
    mkdir(r.join("proc"), 0o555)?;
    m(Some("proc"), r.join("proc"), Some("proc"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC, None)?;
    // The staging trees go; the binds above keep what they need.
    umount2(&c, MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("detach the staged root: {e}")))?;
    for (name, _) in &trees.trees {
        let at = t.join(if name.is_empty() { "root" } else { name.as_str() });
        umount2(&at, MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("detach staged base {name}: {e}")))?;
        let _ = std::fs::remove_dir(&at);
    }
    let _ = std::fs::remove_dir(&c);
    let _ = std::fs::remove_dir(&t);
    m(
        None,
        r,
        None,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("size=1m,mode=0755"),
    )
    .ok();
    std::env::set_current_dir(r)?;
    sys::pivot_root_here().map_err(|e| io::Error::other(format!("pivot_root: {e}")))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("detach the old root: {e}")))?;
    std::env::set_current_dir(if Path::new(cwd).is_dir() { cwd } else { "/" })?;
    // Hand over the descriptors and the hardening, then exec.
    // SAFETY: raw descriptor calls in our own process.
    unsafe {
        let moved: Vec<RawFd> = fds.iter().map(|fd| libc::fcntl(*fd, libc::F_DUPFD_CLOEXEC, 10)).collect();
        for (i, fd) in moved.iter().enumerate() {
            if *fd < 0 || libc::dup2(*fd, i as RawFd) < 0 {
                return Err(io::Error::last_os_error());
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
    }
    if cfg.userns {
        caps::drop_to_candidate_set().map_err(|e| io::Error::other(format!("capabilities: {e}")))?;
    } else {
        caps::drop_all().map_err(|e| io::Error::other(format!("capabilities: {e}")))?;
    }
    seccomp::apply(filter).map_err(|e| io::Error::other(format!("seccomp: {e}")))?;
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = env.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(argv[0].as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    Ok(io::Error::last_os_error())
}

fn bind_ro(src: &Path, dst: &Path) -> io::Result<()> {
    m(Some(&src.to_string_lossy()), dst, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    m(
        None,
        dst,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        None,
    )
}
