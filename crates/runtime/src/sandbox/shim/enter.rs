//! Starting processes in a `system` environment by entering it, as `lxc-attach` and `nsenter` do: its PID 1 is the
//! service manager, not our init, so there is no one inside to ask.
//!
//! The shim forks an **enterer**, which drops every descriptor it does not need, makes itself not dumpable, joins the
//! environment's leaf cgroup ([`crate::sandbox::cgroup::ENTRY_LEAF`]) and then, as host root, its namespaces: pid
//! (owned by the environment's first user namespace, where root inside has no capability), ipc, uts, net, mount and
//! cgroup (owned by its second, nested one, see `init::setup`), and last that user namespace, where it becomes root
//! of the environment. It then clones the **process** with
//! `CLONE_PARENT`, so that the process's parent is the shim (which reaps it and reports its exit), and exits. The
//! process, born in the environment's pid namespace, starts its session and controlling terminal, moves its
//! descriptors into place, installs the environment's seccomp filter while it still holds `CAP_SYS_ADMIN`, drops to
//! the environment's capability set and execs the program, looked up on its `PATH` inside.
//!
//! Until it execs, the process runs the shim's own code: it is not dumpable (its memory and `/proc/<pid>/exe` belong
//! to the host's user namespace, out of reach of root inside) and holds no descriptor of the host's but the
//! command's own standard streams and one pipe that closes on exec.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::sandbox::seccomp::{self, BpfProgram};
use crate::sandbox::{caps, init};

/// How long the shim waits for an enterer to report.
const ANSWER: Duration = Duration::from_secs(10);

/// The way into a running `system` environment, opened once, at boot, from our own init before it became the
/// service manager (nothing inside can have moved it yet).
pub(crate) struct Entry {
    userns: OwnedFd,
    /// pid, ipc, uts, net, mnt, cgroup: in the order they are joined (as host root, who may join them all).
    ns: Vec<(OwnedFd, &'static str)>,
    /// `cgroup.procs` of the leaf group in every hierarchy.
    procs: Vec<PathBuf>,
    filter: BpfProgram,
    /// The machine's open-file limit (as its PID 1's), set while still host root.
    nofile: libc::rlimit,
}

/// What to start.
pub(crate) struct Command<'a> {
    /// Program and arguments.
    pub argv: &'a [String],
    /// Its whole environment.
    pub env: &'a [(String, String)],
    /// Working directory (`/` when it does not exist).
    pub cwd: &'a str,
    /// One descriptor, a terminal to make the controlling tty, or three: stdin, stdout, stderr.
    pub fds: &'a [RawFd],
}

const NAMESPACES: [&str; 6] = ["pid", "ipc", "uts", "net", "mnt", "cgroup"];

impl Entry {
    /// Opens the namespaces of `pid` (our init, still ours) and names the leaf group.
    pub fn open(
        pid: i32,
        leaf: &crate::sandbox::cgroup::Group,
        filter: BpfProgram,
        nofile: libc::rlimit,
    ) -> io::Result<Entry> {
        let ns = |name: &str| -> io::Result<OwnedFd> {
            std::fs::File::open(format!("/proc/{pid}/ns/{name}"))
                .map(OwnedFd::from)
                .map_err(|e| io::Error::new(e.kind(), format!("{name} namespace of {pid}: {e}")))
        };
        Ok(Entry {
            userns: ns("user")?,
            ns: NAMESPACES.iter().map(|n| ns(n).map(|f| (f, *n))).collect::<io::Result<_>>()?,
            procs: leaf.paths.iter().map(|p| p.join("cgroup.procs")).collect(),
            filter,
            nofile,
        })
    }

    /// Starts `cmd` inside. Returns the process's host pid once it has exec'd (it is the shim's child: reap it).
    pub fn spawn(&self, cmd: &Command<'_>) -> io::Result<i32> {
        let tty = match cmd.fds.len() {
            1 => true,
            3 => false,
            n => return Err(io::Error::other(format!("{n} descriptors for a process"))),
        };
        let argv = if cmd.argv.is_empty() { login_shell() } else { cmd.argv.to_vec() };
        let mut env: Vec<(String, String)> = cmd.env.to_vec();
        if !env.iter().any(|(k, _)| k == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        // Where to look for the program, inside: tried in order by the process, as execvp does.
        let progs: Vec<CString> = if argv[0].contains('/') {
            vec![cstring(&argv[0])?]
        } else {
            let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
            path.split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstring(&format!("{d}/{}", argv[0])))
                .collect::<io::Result<_>>()?
        };
        let argv_c: Vec<CString> = argv.iter().map(|a| cstring(a)).collect::<io::Result<_>>()?;
        let env_c: Vec<CString> = env.iter().map(|(k, v)| cstring(&format!("{k}={v}"))).collect::<io::Result<_>>()?;
        let cwd = cstring(cmd.cwd)?;
        let procs: Vec<CString> =
            self.procs.iter().map(|p| cstring(&p.to_string_lossy())).collect::<io::Result<_>>()?;
        let mut argv_p: Vec<*const libc::c_char> = argv_c.iter().map(|c| c.as_ptr()).collect();
        argv_p.push(std::ptr::null());
        let mut env_p: Vec<*const libc::c_char> = env_c.iter().map(|c| c.as_ptr()).collect();
        env_p.push(std::ptr::null());
        let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let mut keep: Vec<RawFd> = cmd.fds.to_vec();
        keep.push(report_w.as_raw_fd());
        keep.push(self.userns.as_raw_fd());
        keep.extend(self.ns.iter().map(|(f, _)| f.as_raw_fd()));
        let child = Child {
            entry: self,
            tty,
            fds: cmd.fds,
            cwd: &cwd,
            progs: &progs,
            argv: &argv_p,
            env: &env_p,
            procs: &procs,
            report: report_w.as_raw_fd(),
            keep: &keep,
        };
        // SAFETY: the shim is single-threaded; the enterer makes raw calls only and leaves with _exit.
        let enterer = unsafe { libc::fork() };
        if enterer < 0 {
            return Err(io::Error::last_os_error());
        }
        if enterer == 0 {
            // SAFETY: in the forked enterer.
            unsafe { child.enter() }
        }
        drop(report_w);
        let answer = read_report(&report_r, enterer);
        // The enterer exits right after the clone (or on failure); reap it. A stuck one is killed first.
        if answer.is_err() {
            // SAFETY: our own child.
            unsafe { libc::kill(enterer, libc::SIGKILL) };
        }
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(enterer), None);
        answer
    }
}

impl Entry {
    /// Runs `argv` inside to its end (bounded by `within`, then killed), as the shim's own business (no candidate's
    /// terminal or request): returns its exit code (`None` if killed) and its output, stdout and stderr together.
    pub fn run(&self, argv: &[&str], within: Duration) -> io::Result<(Option<i32>, String)> {
        let flags = nix::fcntl::OFlag::O_CLOEXEC;
        let (in_r, in_w) = nix::unistd::pipe2(flags).map_err(io::Error::from)?;
        let (out_r, out_w) = nix::unistd::pipe2(flags).map_err(io::Error::from)?;
        drop(in_w);
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        let env = [("LANG".to_string(), "C.UTF-8".to_string())];
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), out_w.as_raw_fd()];
        let pid = self.spawn(&Command { argv: &argv, env: &env, cwd: "/", fds: &fds })?;
        drop((in_r, out_w));
        nix::fcntl::fcntl(out_r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
        let deadline = Instant::now() + within;
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        let status = loop {
            loop {
                match nix::unistd::read(out_r.as_raw_fd(), &mut buf) {
                    Ok(n) if n > 0 && out.len() < 64 * 1024 => out.extend_from_slice(&buf[..n]),
                    Ok(n) if n > 0 => {}
                    _ => break,
                }
            }
            use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
            match waitpid(nix::unistd::Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => break Some(code),
                Ok(WaitStatus::Signaled(..)) => break None,
                Err(e) => return Err(e.into()),
                Ok(_) if Instant::now() >= deadline => {
                    // SAFETY: our own unreaped child, and its group.
                    unsafe {
                        libc::kill(-pid, libc::SIGKILL);
                        libc::kill(pid, libc::SIGKILL);
                    }
                    let _ = waitpid(nix::unistd::Pid::from_raw(pid), None);
                    break None;
                }
                Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        };
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }
}

/// Reads the enterer's and the process's reports until the pipe closes (the enterer has exited and the process has
/// exec'd or died): `P<pid>` from the enterer, `E<errno><where>` from either on failure.
fn read_report(r: &OwnedFd, enterer: i32) -> io::Result<i32> {
    let deadline = Instant::now() + ANSWER;
    let mut got: Vec<u8> = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("entering the environment did not finish within {} s (enterer {enterer})", ANSWER.as_secs()),
            ));
        }
        let mut p = [PollFd::new(std::os::fd::AsFd::as_fd(r), PollFlags::POLLIN)];
        match poll(&mut p, PollTimeout::from(left.as_millis().min(10_000) as u16)) {
            Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let mut buf = [0u8; 256];
        match nix::unistd::read(r.as_raw_fd(), &mut buf) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let mut pid = None;
    let mut rest = &got[..];
    while !rest.is_empty() {
        match rest[0] {
            b'P' if rest.len() >= 5 => {
                pid = Some(i32::from_ne_bytes([rest[1], rest[2], rest[3], rest[4]]));
                rest = &rest[5..];
            }
            b'E' if rest.len() >= 6 => {
                let errno = i32::from_ne_bytes([rest[1], rest[2], rest[3], rest[4]]);
                let step = STEPS.get(rest[5] as usize).copied().unwrap_or("?");
                let e = io::Error::from_raw_os_error(errno);
                return Err(io::Error::new(e.kind(), format!("{step}: {e}")));
            }
            _ => return Err(io::Error::other("a garbled report from the enterer")),
        }
    }
    pid.ok_or_else(|| io::Error::other("the enterer ended without starting the process"))
}

/// What a failure report's step byte means.
const STEPS: &[&str] = &[
    "join the environment's cgroup",
    "join the pid namespace",
    "join the ipc namespace",
    "join the uts namespace",
    "join the network namespace",
    "join the mount namespace",
    "join the cgroup namespace",
    "join the user namespace",
    "become root of the environment",
    "clone",
    "start a session",
    "take the terminal",
    "set up standard streams",
    "seccomp",
    "capabilities",
    "oom score",
    "command not found",
    "exec",
    "set the file limit",
];
const STEP_CGROUP: u8 = 0;
const STEP_NS: u8 = 1;
const STEP_USERNS: u8 = 7;
const STEP_ROOT: u8 = 8;
const STEP_CLONE: u8 = 9;
const STEP_SESSION: u8 = 10;
const STEP_TTY: u8 = 11;
const STEP_STDIO: u8 = 12;
const STEP_SECCOMP: u8 = 13;
const STEP_CAPS: u8 = 14;
const STEP_OOM: u8 = 15;
const STEP_NOT_FOUND: u8 = 16;
const STEP_EXEC: u8 = 17;
const STEP_RLIMIT: u8 = 18;

/// Everything the forked side needs, prepared before the fork (it allocates nothing).
struct Child<'a> {
    entry: &'a Entry,
    tty: bool,
    fds: &'a [RawFd],
    cwd: &'a CString,
    progs: &'a [CString],
    argv: &'a [*const libc::c_char],
    env: &'a [*const libc::c_char],
    procs: &'a [CString],
    report: RawFd,
    keep: &'a [RawFd],
}

impl Child<'_> {
    /// The enterer. Never returns.
    unsafe fn enter(&self) -> ! {
        let errno = || *libc::__errno_location();
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        close_others(self.keep);
        // The leaf group first, so that the process is born in it ("0": the writer).
        for p in self.procs {
            let fd = libc::open(p.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, c"0".as_ptr().cast(), 1) < 0 {
                self.fail(errno(), STEP_CGROUP);
            }
            libc::close(fd);
        }
        if libc::setrlimit(libc::RLIMIT_NOFILE, &self.entry.nofile) < 0 {
            self.fail(errno(), STEP_RLIMIT);
        }
        for (i, (fd, _)) in self.entry.ns.iter().enumerate() {
            if libc::setns(fd.as_raw_fd(), 0) < 0 {
                self.fail(errno(), STEP_NS + i as u8);
            }
        }
        if libc::setns(self.entry.userns.as_raw_fd(), libc::CLONE_NEWUSER) < 0 {
            self.fail(errno(), STEP_USERNS);
        }
        if libc::setgroups(0, std::ptr::null()) < 0 || libc::setresgid(0, 0, 0) < 0 || libc::setresuid(0, 0, 0) < 0 {
            self.fail(errno(), STEP_ROOT);
        }
        for (fd, _) in &self.entry.ns {
            libc::close(fd.as_raw_fd());
        }
        libc::close(self.entry.userns.as_raw_fd());
        // The process: born in the environment's pid namespace, the shim's child.
        let pid = libc::syscall(libc::SYS_clone, libc::CLONE_PARENT | libc::SIGCHLD, 0, 0, 0, 0) as i32;
        if pid < 0 {
            self.fail(errno(), STEP_CLONE);
        }
        if pid == 0 {
            self.process();
        }
        let mut msg = [0u8; 5];
        msg[0] = b'P';
        msg[1..].copy_from_slice(&pid.to_ne_bytes());
        libc::write(self.report, msg.as_ptr().cast(), msg.len());
        libc::_exit(0)
    }

    /// The process, up to its exec. Never returns.
    unsafe fn process(&self) -> ! {
        let errno = || *libc::__errno_location();
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0);
        if libc::setsid() < 0 {
            self.fail(errno(), STEP_SESSION);
        }
        let (i, o, e) =
            if self.tty { (self.fds[0], self.fds[0], self.fds[0]) } else { (self.fds[0], self.fds[1], self.fds[2]) };
        if self.tty && libc::ioctl(i, libc::TIOCSCTTY, 0) < 0 {
            self.fail(errno(), STEP_TTY);
        }
        let (i, o, e) = (
            libc::fcntl(i, libc::F_DUPFD_CLOEXEC, 10),
            libc::fcntl(o, libc::F_DUPFD_CLOEXEC, 10),
            libc::fcntl(e, libc::F_DUPFD_CLOEXEC, 10),
        );
        if i < 0 || o < 0 || e < 0 || libc::dup2(i, 0) < 0 || libc::dup2(o, 1) < 0 || libc::dup2(e, 2) < 0 {
            self.fail(errno(), STEP_STDIO);
        }
        if libc::chdir(self.cwd.as_ptr()) < 0 {
            libc::chdir(c"/".as_ptr());
        }
        libc::umask(0o022);
        if seccomp::apply_keeping_setuid(&self.entry.filter).is_err() {
            self.fail(libc::EPERM, STEP_SECCOMP);
        }
        if caps::drop_to_system_set().is_err() {
            self.fail(libc::EPERM, STEP_CAPS);
        }
        if !init::lower_oom_priority() {
            self.fail(libc::EPERM, STEP_OOM);
        }
        let mut last = libc::ENOENT;
        for prog in self.progs {
            libc::execve(prog.as_ptr(), self.argv.as_ptr(), self.env.as_ptr());
            last = errno();
            // As execvp: a missing or unusable candidate moves on to the next directory.
            if !matches!(last, libc::ENOENT | libc::ENOTDIR | libc::EACCES) {
                break;
            }
        }
        self.fail(last, if last == libc::ENOENT { STEP_NOT_FOUND } else { STEP_EXEC })
    }

    unsafe fn fail(&self, errno: i32, step: u8) -> ! {
        let mut msg = [0u8; 6];
        msg[0] = b'E';
        msg[1..5].copy_from_slice(&errno.to_ne_bytes());
        msg[5] = step;
        libc::write(self.report, msg.as_ptr().cast(), msg.len());
        libc::_exit(127)
    }
}

/// Closes every descriptor above 2 but `keep`, without allocating (close_range over the gaps).
unsafe fn close_others(keep: &[RawFd]) {
    let mut sorted = [0 as RawFd; 32];
    let n = keep.len().min(sorted.len());
    sorted[..n].copy_from_slice(&keep[..n]);
    sorted[..n].sort_unstable();
    let mut from: u32 = 3;
    for &k in &sorted[..n] {
        let k = k as u32;
        if k < from {
            continue;
        }
        if k > from {
            libc::syscall(libc::SYS_close_range, from, k - 1, 0u32);
        }
        from = k + 1;
    }
    libc::syscall(libc::SYS_close_range, from, u32::MAX, 0u32);
}

fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s.as_bytes()).map_err(|_| io::Error::other("NUL byte in a command"))
}

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The login shell of root inside: bash (the base's own, looked up inside).
fn login_shell() -> Vec<String> {
    vec!["/bin/bash".into(), "-l".into()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_has_a_name() {
        assert_eq!(STEPS.len(), STEP_RLIMIT as usize + 1);
        assert_eq!(STEPS[STEP_USERNS as usize], "join the user namespace");
        for (i, ns) in NAMESPACES.iter().enumerate() {
            let name = STEPS[STEP_NS as usize + i];
            let word = match *ns {
                "net" => "network",
                "mnt" => "mount",
                other => other,
            };
            assert!(name.contains(word), "{name} for {ns}");
        }
    }
}
