//! The candidate's processes as PID 1 sees them: starting one, reaping every child and orphan, killing them all.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::config::DEFAULT_PATH;

/// Makes this process not dumpable: its `/proc/<pid>/environ`, `mem`, `fd/` and the rest belong to root and need
/// `CAP_SYS_PTRACE` to read, which the candidate's processes lack; none can trace it or take its descriptors.
/// A child is not dumpable either until it executes its program, so it never exposes the shim's descriptors or memory.
pub fn make_undumpable() -> io::Result<()> {
    // SAFETY: plain prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("prctl(PR_SET_DUMPABLE, 0): {e}")));
    }
    Ok(())
}

/// The login shell: bash when the image has it, else sh (as the sandbox backend's).
pub fn login_shell() -> Vec<String> {
    if Path::new("/bin/bash").exists() {
        vec!["/bin/bash".into(), "-l".into()]
    } else {
        vec!["/bin/sh".into(), "-l".into()]
    }
}

/// Finds a program in the `PATH` of the environment it will run with (before anything is started, so that a missing
/// program is an error of the request, as in the sandbox backend).
pub fn resolve(argv0: &str, env: &[(OsString, OsString)]) -> io::Result<PathBuf> {
    if argv0.contains('/') {
        return Ok(PathBuf::from(argv0));
    }
    let path = env.iter().find(|(k, _)| k == "PATH").and_then(|(_, v)| v.to_str()).unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|d| Path::new(d).join(argv0))
        .find(|p| p.is_file())
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{argv0}: command not found")))
}

/// What to start.
pub struct Spawn<'a> {
    /// Program and arguments (not empty).
    pub argv: &'a [String],
    /// The whole environment (nothing is inherited); `PATH` is added when missing.
    pub env: &'a [(OsString, OsString)],
    /// Working directory; `/` when it does not exist.
    pub cwd: &'a str,
    /// Standard input, output and error.
    pub stdio: [OwnedFd; 3],
    /// The descriptors are a terminal's slave, which becomes the controlling terminal.
    pub tty: bool,
}

/// Starts a process in a session (and process group) of its own. Returns its pid.
pub fn spawn(s: Spawn<'_>) -> io::Result<i32> {
    let (argv0, args) = s.argv.split_first().ok_or_else(|| io::Error::other("argv is empty"))?;
    let mut env = s.env.to_vec();
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.push(("PATH".into(), DEFAULT_PATH.into()));
    }
    let program = resolve(argv0, &env)?;
    let cwd = CString::new(s.cwd.as_bytes()).map_err(|_| io::Error::other("NUL byte in cwd"))?;
    let [stdin, stdout, stderr] = s.stdio;
    let tty = s.tty;
    let mut cmd = Command::new(&program);
    cmd.arg0(argv0).args(args).env_clear().envs(env).stdin(Stdio::from(stdin)).stdout(Stdio::from(stdout));
    cmd.stderr(Stdio::from(stderr));
    // SAFETY: the closure runs in the forked child of this single-threaded process before exec, and makes raw calls
    // only.
    unsafe {
        cmd.pre_exec(move || {
            // The shim blocks the signals it reads through its signalfd, and may have been started with some ignored;
            // its children start with none blocked and none ignored.
            for sig in 1..libc::SIGRTMAX() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if tty && libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::chdir(cwd.as_ptr()) < 0 && libc::chdir(c"/".as_ptr()) < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::umask(0o022);
            raise_oom_score();
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", program.display())))?;
    // The child is reaped by `reap` (PID 1 waits for everything), never through `Child`.
    Ok(child.id() as i32)
}

/// Makes the calling process (a child about to exec) the OOM killer's first choice, ahead of the shim: a shim killed
/// for memory would end the container. Best effort (raw calls; it stays non-dumpable until exec, so the file is
/// root's, which the shim is).
fn raise_oom_score() {
    // SAFETY: open, write and close with valid arguments.
    unsafe {
        let fd = libc::open(c"/proc/self/oom_score_adj".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            libc::write(fd, b"500".as_ptr().cast(), 3);
            libc::close(fd);
        }
    }
}

/// How a process ended: its exit code, or the signal that ended it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// The exit code, when it exited.
    pub code: Option<i32>,
    /// The signal, when one ended it.
    pub signal: Option<i32>,
}

/// Reaps every child that has ended, without waiting: the shim's own and the orphans the kernel gave PID 1.
pub fn reap() -> Vec<(i32, Exit)> {
    let mut ended = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => ended.push((pid.as_raw(), Exit { code: Some(code), signal: None })),
            Ok(WaitStatus::Signaled(pid, sig, _)) => {
                ended.push((pid.as_raw(), Exit { code: None, signal: Some(sig as i32) }))
            }
            Ok(WaitStatus::StillAlive) | Err(nix::errno::Errno::ECHILD) => return ended,
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("examroom-shim: waitpid: {e}");
                return ended;
            }
        }
    }
}

/// Kills every other process of the pid namespace and reaps them, waiting at most `within`. Returns whether none is
/// left. Only PID 1 may call it: `kill(-1)` reaches every process this one may signal.
pub fn kill_everything(within: Duration) -> bool {
    debug_assert_eq!(std::process::id(), 1);
    let deadline = Instant::now() + within;
    loop {
        // SAFETY: plain kill; as PID 1 of its own pid namespace, -1 means every other process of that namespace.
        unsafe { libc::kill(-1, libc::SIGKILL) };
        reap();
        if count_processes() <= 1 {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes in the container's pid namespace (the shim included, as the sandbox counts its init), from its `/proc`.
pub fn count_processes() -> u32 {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().as_bytes().iter().all(u8::is_ascii_digit)).count() as u32
        })
        .unwrap_or(0)
}

/// OOM kills in the container's memory cgroup, as far as the container sees it (cgroup v2's `memory.events`, or
/// v1's `memory.oom_control`); 0 when neither is readable.
pub fn oom_kills() -> u64 {
    let field = |path: &str| -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines().find_map(|l| l.strip_prefix("oom_kill ")).and_then(|v| v.trim().parse().ok())
    };
    field("/sys/fs/cgroup/memory.events").or_else(|| field("/sys/fs/cgroup/memory/memory.oom_control")).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_commands_own_path() {
        let env = vec![(OsString::from("PATH"), OsString::from("/nonexistent:/bin"))];
        assert_eq!(resolve("sh", &env).unwrap(), PathBuf::from("/bin/sh"));
        assert_eq!(resolve("./x", &env).unwrap(), PathBuf::from("./x"), "a path is taken as it is");
        let e = resolve("no-such-program-here", &env).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(e.to_string(), "no-such-program-here: command not found");
        let none = vec![(OsString::from("PATH"), OsString::from("/nonexistent"))];
        assert!(resolve("sh", &none).is_err(), "the shim's own PATH is not used");
    }
}
