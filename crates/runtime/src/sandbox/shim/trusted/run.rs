//! Running a candidate's program for a check (`examroom-run PROGRAM ARGS...`).
//!
//! A check never executes anything of the candidate's in its own view (every candidate directory is `noexec` there).
//! When a task asks for a program (a script in `/root/bin`), the check asks the grader, which runs it in a
//! **throwaway copy** of the candidate's environment: every layer of their tree under a fresh overlay whose upper
//! layer is a new tmpfs of the environment's disk size (so the program may change anything and nothing of it stays),
//! the hidden paths and `/proc` masked again, the check's `/tmp` shared (so the check can hand it files and see what it
//! made), its own pid, network (loopback only), IPC and mount namespaces (owned by the host's user namespace, built by
//! the grader as host root), and the candidate's own credentials: root of the environment's user namespace with the
//! candidate's capability set, `no_new_privs` and seccomp filter. It stays in the
//! grading group (the environment's limits) and dies with the check. Whatever it does, it can at most make that check
//! fail.
//!
//! Process tree: the grader forks `R` (which builds the copy in new namespaces), `R` forks `R2` (PID 1 of the copy's
//! pid namespace: mounts `/proc`, pivots, reaps), `R2` forks the program. When the program exits, `R2` exits with its
//! status and the kernel kills whatever the program left behind.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags, MsFlags};
use serde::{Deserialize, Serialize};

use crate::sandbox::rootfs::{hide, m, make_dev, mask_proc, mkdir, DevSource};
use crate::sandbox::{caps, seccomp, sys};
use crate::types::Base;

/// What the check's `examroom-run` asks for.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Request {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: String,
}

/// The grader's one answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub(crate) enum Reply {
    /// The program ran; `code` is its exit status, or 128 + the signal that ended it.
    Exited { code: i32 },
    /// It could not be run.
    Refused { error: String },
}

/// The largest request message.
pub(crate) const MAX_REQUEST: usize = 128 * 1024;

/// What every run needs, prepared by the grader.
pub(super) struct Context<'a> {
    /// An empty directory where a run mounts its copy (each run has its own mount namespace).
    pub stage: &'a Path,
    /// The candidate's tree.
    pub candidate: &'a Path,
    /// The candidate's separate layers below the root (`usr`, `etc`... for the host base).
    pub layers: &'a [String],
    /// The check's `/tmp`.
    pub check_tmp: &'a Path,
    pub disk_bytes: u64,
    pub shm_bytes: u64,
    pub hidden: &'a [PathBuf],
    pub base: &'a Base,
    pub filter: &'a seccomp::BpfProgram,
    /// The environment's user namespace (`None` without one): the program runs there as its root.
    pub userns: Option<RawFd>,
    pub unprivileged_uid: Option<u32>,
}

/// Checks a request before anything is made for it.
pub(super) fn validate(req: &Request, fds: usize) -> Result<(), String> {
    if fds != 3 {
        return Err("the request must carry standard input, output and error".into());
    }
    if req.argv.is_empty() || req.argv[0].is_empty() {
        return Err("usage: examroom-run PROGRAM [ARGUMENT...]".into());
    }
    let nul = |s: &str| s.contains('\0');
    if req.argv.iter().any(|a| nul(a))
        || req.env.iter().any(|(k, v)| nul(k) || nul(v) || k.contains('=') || k.is_empty())
        || nul(&req.cwd)
    {
        return Err("arguments, environment and directory must not contain NUL bytes".into());
    }
    Ok(())
}

/// Forks the run. `close` are the grader's own descriptors, which the run must not keep.
pub(super) fn spawn(ctx: &Context<'_>, req: &Request, fds: Vec<OwnedFd>, close: &[RawFd]) -> io::Result<i32> {
    // SAFETY: the grader is single-threaded; the child exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid > 0 {
        return Ok(pid);
    }
    for fd in close {
        // SAFETY: closing the grader's descriptors in this fresh child; nothing here uses them.
        unsafe { libc::close(*fd) };
    }
    let stderr = fds.get(2).map(|f| f.as_raw_fd());
    let code = match run(ctx, req, fds) {
        Ok(code) => code,
        Err(e) => {
            let msg = format!("examroom-run: could not make a copy of the environment: {e}\n");
            // SAFETY: writing to the check's stderr (still open: `run` failed before handing it on).
            unsafe { libc::write(stderr.unwrap_or(2), msg.as_ptr().cast(), msg.len()) };
            125
        }
    };
    // SAFETY: leaving the fork.
    unsafe { libc::_exit(code) }
}

/// `R`: new namespaces, the copy, then `R2`.
fn run(ctx: &Context<'_>, req: &Request, fds: Vec<OwnedFd>) -> io::Result<i32> {
    // The descriptors are dropped only once handed on, so that an error can still be told on the check's stderr.
    let fds = std::mem::ManuallyDrop::new(fds);
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let flags = nix::sched::CloneFlags::CLONE_NEWNS
        | nix::sched::CloneFlags::CLONE_NEWPID
        | nix::sched::CloneFlags::CLONE_NEWNET
        | nix::sched::CloneFlags::CLONE_NEWIPC;
    nix::sched::unshare(flags).map_err(|e| io::Error::other(format!("unshare: {e}")))?;
    m(None, "/", None, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None)?;
    let root = build_copy(ctx)?;
    // SAFETY: single-threaded; the child exits without returning.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    if pid == 0 {
        let code = pid_one(&root, ctx, req, &fds);
        // SAFETY: leaving the fork.
        unsafe { libc::_exit(code) }
    }
    drop(std::mem::ManuallyDrop::into_inner(fds));
    Ok(wait_code(pid))
}

/// The copy: an overlay over each of the candidate's layers, on a fresh tmpfs. Returns the new root.
fn build_copy(ctx: &Context<'_>) -> io::Result<PathBuf> {
    let s = ctx.stage;
    let size = format!("size={},nr_inodes={},mode=0755", ctx.disk_bytes, (ctx.disk_bytes / 4096).max(4096));
    m(Some("examroom-run"), s, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(&size))?;
    let root = s.join("r");
    mkdir(&root, 0o755)?;
    let mut layers: Vec<(String, PathBuf, PathBuf)> = vec![("root".into(), ctx.candidate.to_path_buf(), root.clone())];
    for l in ctx.layers {
        layers.push((l.clone(), ctx.candidate.join(l), root.join(l)));
    }
    for (key, lower, target) in &layers {
        let (u, w) = (s.join("u").join(key), s.join("w").join(key));
        std::fs::create_dir_all(&u)?;
        std::fs::create_dir_all(&w)?;
        let opts =
            format!("lowerdir={},upperdir={},workdir={},userxattr,volatile", lower.display(), u.display(), w.display());
        m(Some("overlay"), target, Some("overlay"), MsFlags::MS_NOSUID | MsFlags::MS_NODEV, Some(&opts))?;
    }
    make_dev(&root, DevSource::Fresh(ctx.shm_bytes))?;
    mkdir(root.join("tmp"), 0o1777)?;
    m(Some(&ctx.check_tmp.to_string_lossy()), root.join("tmp"), None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    mkdir(root.join("proc"), 0o555)?;
    hide(&root, ctx.hidden, ctx.base, None)?;
    Ok(root)
}

/// `R2`: PID 1 of the copy. Mounts `/proc`, brings up loopback, pivots, starts the program and waits for it.
fn pid_one(root: &Path, ctx: &Context<'_>, req: &Request, fds: &[OwnedFd]) -> i32 {
    let prepared = (|| -> io::Result<()> {
        // SAFETY: plain prctl calls: die with the run; nothing in the copy may read this process.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
        m(
            Some("proc"),
            root.join("proc"),
            Some("proc"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            None,
        )?;
        mask_proc(&root.join("proc"), None)?;
        sys::loopback_up().map_err(|e| io::Error::other(format!("loopback up: {e}")))?;
        std::env::set_current_dir(root)?;
        sys::pivot_root_here().map_err(|e| io::Error::other(format!("pivot_root: {e}")))?;
        umount2(".", MntFlags::MNT_DETACH).map_err(|e| io::Error::other(format!("detach the old root: {e}")))?;
        std::env::set_current_dir("/")
    })();
    if let Err(e) = prepared {
        let msg = format!("examroom-run: could not enter the copy: {e}\n");
        let _ = nix::unistd::write(&fds[2], msg.as_bytes());
        return 125;
    }
    // SAFETY: single-threaded; the child execs or exits.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return 125;
    }
    if pid == 0 {
        let code = exec_program(ctx, req, fds);
        // SAFETY: leaving the fork.
        unsafe { libc::_exit(code) }
    }
    for fd in fds {
        // SAFETY: our copies of the check's descriptors; the program has its own.
        unsafe { libc::close(fd.as_raw_fd()) };
    }
    // Reap everything; when the program itself is done, so are we (and the kernel ends the rest of the namespace).
    loop {
        let mut status = 0;
        // SAFETY: waiting for our children.
        let r = unsafe { libc::waitpid(-1, &mut status, 0) };
        if r == pid {
            return decode(status);
        }
        if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The program's process: the candidate's credentials, then exec. Returns an exit code only on failure.
fn exec_program(ctx: &Context<'_>, req: &Request, fds: &[OwnedFd]) -> i32 {
    let say = |msg: String| {
        let line = format!("examroom-run: {msg}\n");
        let _ = nix::unistd::write(&fds[2], line.as_bytes());
    };
    // The check's variables, but the PATH and HOME of a root login in the candidate's environment: the program is the
    // candidate's and runs among their own tools (the check's PATH names the pristine base and /examroom).
    let mut env: Vec<(String, String)> = req.env.iter().filter(|(k, _)| k != "PATH" && k != "HOME").cloned().collect();
    env.push(("PATH".into(), DEFAULT_PATH.into()));
    env.push(("HOME".into(), "/root".into()));
    let prog = &req.argv[0];
    let path = if prog.contains('/') {
        PathBuf::from(prog)
    } else {
        let search = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.as_str()).unwrap_or(DEFAULT_PATH);
        match search.split(':').map(|d| Path::new(d).join(prog)).find(|p| p.is_file()) {
            Some(p) => p,
            None => {
                say(format!("{prog}: command not found"));
                return 127;
            }
        }
    };
    let cstrings = |v: Vec<String>| v.into_iter().map(|s| CString::new(s).unwrap_or_default()).collect::<Vec<_>>();
    let argv = cstrings(req.argv.clone());
    let envp = cstrings(env.iter().map(|(k, v)| format!("{k}={v}")).collect());
    let Ok(prog_c) = CString::new(path.as_os_str().as_encoded_bytes()) else { return 127 };
    let mut argv_p: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_p.push(std::ptr::null());
    let mut env_p: Vec<*const libc::c_char> = envp.iter().map(|a| a.as_ptr()).collect();
    env_p.push(std::ptr::null());
    // SAFETY: raw calls in our own single-threaded process; results checked.
    unsafe {
        libc::setsid();
        let moved: Vec<RawFd> = fds.iter().map(|fd| libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10)).collect();
        for (i, fd) in moved.iter().enumerate() {
            if *fd < 0 || libc::dup2(*fd, i as RawFd) < 0 {
                return 125;
            }
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC);
        let cwd = CString::new(req.cwd.as_bytes()).unwrap_or_default();
        if libc::chdir(cwd.as_ptr()) < 0 {
            libc::chdir(c"/".as_ptr());
        }
        libc::umask(0o022);
    }
    let dropped = match ctx.unprivileged_uid {
        None => {
            // SAFETY: setns on a namespace descriptor the grader opened; we are single-threaded.
            ctx.userns.is_some_and(|ns| unsafe { libc::setns(ns, libc::CLONE_NEWUSER) } == 0)
                && sys::become_namespace_root().is_ok()
                && caps::drop_to_candidate_set().is_ok()
        }
        Some(uid) => {
            caps::drop_for_setuid().is_ok()
                // SAFETY: plain credential calls.
                && unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(uid) == 0 && libc::setuid(uid) == 0 }
                && caps::drop_all().is_ok()
        }
    };
    if !dropped {
        say("could not drop privileges".into());
        return 125;
    }
    if seccomp::apply(ctx.filter).is_err() {
        say("could not install the seccomp filter".into());
        return 125;
    }
    crate::sandbox::init::lower_oom_priority();
    // SAFETY: null-terminated arrays of valid C strings.
    unsafe { libc::execve(prog_c.as_ptr(), argv_p.as_ptr(), env_p.as_ptr()) };
    let e = io::Error::last_os_error();
    say(format!("{prog}: {e}"));
    if e.raw_os_error() == Some(libc::ENOENT) {
        127
    } else {
        126
    }
}

/// Waits for `pid`: its exit code, or 128 + the signal that killed it.
pub(super) fn wait_code(pid: i32) -> i32 {
    let mut status = 0;
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return decode(status);
        }
        if io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return 125;
        }
    }
}

/// An exit status as a shell reports it.
pub(super) fn decode(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        125
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated() {
        let ok = Request { argv: vec!["/root/bin/greet".into(), "Ada".into()], env: vec![], cwd: "/tmp".into() };
        assert_eq!(validate(&ok, 3), Ok(()));
        assert!(validate(&ok, 2).is_err());
        let empty = Request { argv: vec![], env: vec![], cwd: "/".into() };
        assert!(validate(&empty, 3).unwrap_err().contains("usage"));
        let nul = Request { argv: vec!["a\0b".into()], env: vec![], cwd: "/".into() };
        assert!(validate(&nul, 3).is_err());
        let bad_env = Request { argv: vec!["x".into()], env: vec![("A=B".into(), "c".into())], cwd: "/".into() };
        assert!(validate(&bad_env, 3).is_err());
        let wire = serde_json::to_string(&Reply::Exited { code: 3 }).unwrap();
        assert_eq!(wire, r#"{"result":"exited","code":3}"#);
    }
}
