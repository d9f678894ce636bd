//! One running command (`Exec`): its pipes, output accounting, timeout and completion, as in the sandbox backend.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use examroom_runtime::protocol::{ExecSpec, ExecStatus};

use crate::process::{self, Spawn};

/// After the process exits, output still in the pipes is read for at most this long (a daemonized grandchild may hold
/// them open forever).
pub const DRAIN: Duration = Duration::from_millis(200);

/// A command's longest timeout.
const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// One running command.
pub struct Exec {
    /// The connection that asked for it.
    pub conn: u64,
    /// Its pid (the leader of its own process group).
    pub pid: i32,
    /// The write end of its stdin, until the client's stdin is written and ended.
    pub stdin: Option<OwnedFd>,
    /// Stdin from the client not written yet.
    pub stdin_buf: Vec<u8>,
    /// The client ended stdin.
    pub stdin_eof: bool,
    /// stdout, stderr read ends; `None` once at EOF.
    pub out: [Option<OwnedFd>; 2],
    /// Bytes sent per stream.
    pub sent: [u64; 2],
    /// Bytes allowed per stream.
    pub limit: u64,
    /// Output was cut.
    pub truncated: bool,
    /// When it started.
    pub started: Instant,
    /// When it is killed.
    pub deadline: Instant,
    /// It ran past its deadline (or its client left) and was killed.
    pub timed_out: bool,
    /// How it ended.
    pub exit: Option<(Option<i32>, Option<i32>)>,
    /// When it ended.
    pub exited_at: Option<Instant>,
}

impl Exec {
    /// Starts a command for connection `conn`: its own session, stdin and output through non-blocking pipes.
    pub fn start(conn: u64, spec: &ExecSpec) -> io::Result<Exec> {
        let flags = nix::fcntl::OFlag::O_CLOEXEC;
        let (in_r, in_w) = nix::unistd::pipe2(flags)?;
        let (out_r, out_w) = nix::unistd::pipe2(flags)?;
        let (err_r, err_w) = nix::unistd::pipe2(flags)?;
        for fd in [&in_w, &out_r, &err_r] {
            nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
        }
        let env: Vec<(OsString, OsString)> = spec.env.iter().map(|(k, v)| (k.into(), v.into())).collect();
        let now = Instant::now();
        let pid = process::spawn(Spawn {
            argv: &spec.argv,
            env: &env,
            cwd: &spec.cwd,
            stdio: [in_r, out_w, err_w],
            tty: false,
        })?;
        let timeout = Duration::from_millis(spec.timeout_ms.max(1)).min(MAX_TIMEOUT);
        Ok(Exec {
            conn,
            pid,
            stdin: Some(in_w),
            stdin_buf: Vec::new(),
            stdin_eof: false,
            out: [Some(out_r), Some(err_r)],
            sent: [0, 0],
            limit: spec.output_limit,
            truncated: false,
            started: now,
            deadline: now + timeout,
            timed_out: false,
            exit: None,
            exited_at: None,
        })
    }

    /// Whether the exec is complete: exited, and its output drained (or the drain time is up).
    pub fn complete(&self, now: Instant) -> bool {
        match self.exited_at {
            Some(t) => self.out.iter().all(Option::is_none) || now >= t + DRAIN,
            None => false,
        }
    }

    /// Its final status.
    pub fn status(&self) -> ExecStatus {
        let (code, signal) = self.exit.unwrap_or((None, None));
        ExecStatus {
            exit_code: code,
            signal,
            timed_out: self.timed_out,
            truncated: self.truncated,
            duration_ms: self.exited_at.unwrap_or_else(Instant::now).duration_since(self.started).as_millis() as u64,
        }
    }

    /// How much of `n` new bytes on stream `i` may still be sent.
    pub fn admit(&mut self, i: usize, n: usize) -> usize {
        let room = self.limit.saturating_sub(self.sent[i]) as usize;
        let take = n.min(room);
        if take < n {
            self.truncated = true;
        }
        self.sent[i] += take as u64;
        take
    }

    /// Kills its process group (timeout, or its client went away).
    pub fn kill(&self) {
        // SAFETY: signalling the process group of our own child (it started its own session).
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_beyond_the_limit_is_cut_per_stream() {
        let spec = ExecSpec { argv: vec![], env: vec![], cwd: "/".into(), timeout_ms: 1, output_limit: 10 };
        let mut e = Exec {
            conn: 1,
            pid: 0,
            stdin: None,
            stdin_buf: Vec::new(),
            stdin_eof: true,
            out: [None, None],
            sent: [0, 0],
            limit: spec.output_limit,
            truncated: false,
            started: Instant::now(),
            deadline: Instant::now(),
            timed_out: false,
            exit: None,
            exited_at: None,
        };
        assert_eq!(e.admit(0, 6), 6);
        assert!(!e.truncated);
        assert_eq!(e.admit(0, 6), 4);
        assert!(e.truncated);
        assert_eq!(e.admit(1, 10), 10, "each stream has its own limit");
        assert!(!e.complete(Instant::now()), "not complete before it exits");
        e.exit = Some((Some(3), None));
        e.exited_at = Some(Instant::now());
        assert!(e.complete(Instant::now()), "complete once exited with its pipes closed");
        assert_eq!((e.status().exit_code, e.status().truncated), (Some(3), true));
    }
}
