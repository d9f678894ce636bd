//! One running exec: its pipes, output accounting, timeout and completion.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::protocol::ExecStatus;

/// After the process exits, output still in the pipes is read for at most this long (a daemonized grandchild may hold
/// them open forever).
pub(crate) const DRAIN: Duration = Duration::from_millis(200);

pub(crate) struct Exec {
    pub conn: u64,
    pub stdin: Option<OwnedFd>,
    pub stdin_buf: Vec<u8>,
    pub stdin_eof: bool,
    /// stdout, stderr read ends; `None` once at EOF.
    pub out: [Option<OwnedFd>; 2],
    pub sent: [u64; 2],
    pub limit: u64,
    pub truncated: bool,
    pub started: Instant,
    pub deadline: Instant,
    pub timed_out: bool,
    pub exit: Option<(Option<i32>, Option<i32>)>,
    pub exited_at: Option<Instant>,
    /// A trusted command is the shim's own child (host pid); others are init's.
    pub host_pid: Option<i32>,
}

impl Exec {
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
}
