//! The shim's event loop: one thread, one `poll`, every descriptor non-blocking (as the sandbox backend's shim).
//!
//! Each request is answered as the sandbox's shim answers it (same replies, error codes, flow-control watermarks,
//! scrollback and output gathering). What a container has no use for is refused with `unsupported`: `Freeze` (the
//! Docker backend freezes with `docker pause`), `TrustedExec` (grading never runs in the candidate's container) and
//! `StartDesktop` (no desktop).

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use examroom_runtime::protocol::conn::{Conn, Flow, Mode, ATTACHED_QUEUE_LIMIT};
use examroom_runtime::protocol::{self, ExecSpec, Frame, Kind, Reply, Request, ShimStatus, TerminalStatus};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

use crate::config::Config;
use crate::dial::Dial;
use crate::exec::{self, Exec};
use crate::listener::{self, Peer};
use crate::process::{self, Exit};
use crate::terminal::Term;

/// Input for a terminal that the PTY has not taken yet is capped here; beyond it, keystrokes are dropped.
const INPUT_LIMIT: usize = 64 * 1024;
/// A shell that exits again within this time of its start is restarted only after it.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);
/// A PTY master is read at most this much per wake-up (so one busy terminal cannot starve the others).
const READ_BUDGET: usize = 256 * 1024;
/// In a flood (a read of at least `FLOOD_READ`), the shim waits up to `GATHER_WAIT` for more, up to `GATHER_BYTES`
/// (a quarter of the window with flow control), and sends one frame rather than one per 4 KiB read.
const FLOOD_READ: usize = 2048;
const GATHER_WAIT: Duration = Duration::from_millis(1);
const GATHER_BYTES: usize = 64 * 1024;
/// The notice sent when a terminal's shell exits (the sandbox backend's).
pub const SHELL_RESTARTED: &str = "shell exited; a new shell was started";
/// How long killing everything may take (destroy, SIGTERM).
const KILL_WITHIN: Duration = Duration::from_secs(10);

/// The shim's whole state.
pub struct Shim {
    cfg: Config,
    listener: UnixListener,
    sigfd: SignalFd,
    terminals: Vec<Term>,
    pub(crate) conns: HashMap<u64, Conn>,
    next_conn: u64,
    /// Running commands, by their pid.
    execs: HashMap<i32, Exec>,
    /// Dialled connections, by connection.
    pub(crate) dials: HashMap<u64, Dial>,
    /// The shells' environment and working directory.
    shell_env: Vec<(std::ffi::OsString, std::ffi::OsString)>,
    shell_cwd: String,
    hostname: String,
    created_unix_ms: u64,
    /// Set once the shim is to exit: the exit code.
    exit: Option<i32>,
    /// Scratch space for PTY reads.
    read_buf: Vec<u8>,
    /// What processes inside tried (connections refused, signals ignored), for a bounded log.
    refused: Tally,
    ignored_signals: Tally,
}

/// Counts something a process inside can repeat at will, and says when to log it: the first ten times, then at each
/// power of two, so that a loop inside cannot fill the host's disk with the container's log.
#[derive(Default)]
struct Tally(u64);

impl Tally {
    /// Counts one more; `Some(total)` when this one should be logged.
    fn count(&mut self) -> Option<u64> {
        self.0 += 1;
        (self.0 <= 10 || self.0.is_power_of_two()).then_some(self.0)
    }
}

enum Src {
    Listener,
    Signal,
    Master(usize),
    Conn(u64),
    Out(i32, usize),
    Stdin(i32),
    Dial(u64),
}

impl Shim {
    /// Takes the signals (SIGCHLD to reap, SIGTERM to end) and starts the main terminal's shell.
    pub fn new(cfg: Config, listener: UnixListener) -> io::Result<Shim> {
        let mask = block_signals()?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("signalfd: {e}")))?;
        // SAFETY: getuid cannot fail.
        let root = unsafe { libc::getuid() } == 0;
        let shell = process::login_shell().remove(0);
        let shell_env = cfg.shell_env(&shell, root);
        let home = shell_env.iter().find(|(k, _)| k == "HOME").and_then(|(_, v)| v.to_str()).unwrap_or("/");
        let shell_cwd = if std::path::Path::new(home).is_dir() { home.to_string() } else { "/".to_string() };
        let hostname = nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
        let created_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let (cols, rows) = (cfg.cols, cfg.rows);
        let mut shim = Shim {
            cfg,
            listener,
            sigfd,
            terminals: Vec::new(),
            conns: HashMap::new(),
            next_conn: 1,
            execs: HashMap::new(),
            dials: HashMap::new(),
            shell_env,
            shell_cwd,
            hostname,
            created_unix_ms,
            exit: None,
            read_buf: Vec::new(),
            refused: Tally::default(),
            ignored_signals: Tally::default(),
        };
        let main = shim.open_terminal(cols, rows)?;
        shim.terminals.push(main);
        Ok(shim)
    }

    /// The socket's name (for the log).
    pub fn socket(&self) -> &str {
        &self.cfg.socket
    }

    /// The protocol version of a connection.
    pub(crate) fn conn_version(&self, id: u64) -> u32 {
        self.conns.get(&id).map_or(0, |c| c.version)
    }

    /// Answers with an error; the connection stays open for further requests.
    pub(crate) fn reply_error(&mut self, id: u64, code: &str, message: &str) {
        self.reply(id, Reply::Error { code: code.into(), message: message.into() });
    }

    pub(crate) fn set_mode(&mut self, id: u64, mode: Mode) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.mode = mode;
        }
    }

    pub(crate) fn reply(&mut self, id: u64, r: Reply) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&r);
        }
    }

    /// Opens a terminal (`main` first, then `t<n>`) and starts its shell.
    fn open_terminal(&mut self, cols: u16, rows: u16) -> io::Result<Term> {
        let name = if self.terminals.is_empty() { "main".to_string() } else { format!("t{}", self.terminals.len()) };
        let mut term = Term::open(name, cols.clamp(2, 1000), rows.clamp(2, 1000))?;
        term.start_shell(&self.shell_env, &self.shell_cwd)?;
        Ok(term)
    }

    fn status(&self) -> ShimStatus {
        ShimStatus {
            // The shim does not know the environment's id; the runtime does. The container's hostname says which.
            id: self.hostname.clone(),
            state: "running".into(),
            lost_reason: None,
            // Inside the container the shim is init: both are PID 1 of its pid namespace.
            shim_pid: std::process::id() as i32,
            init_pid: std::process::id() as i32,
            terminals: self
                .terminals
                .iter()
                .map(|t| TerminalStatus {
                    name: t.name.clone(),
                    cols: t.cols,
                    rows: t.rows,
                    attached: t.attached.is_some(),
                    shell_restarts: t.restarts,
                    scrollback_bytes: t.ring.len() as u64,
                })
                .collect(),
            processes: process::count_processes(),
            oom_kills: process::oom_kills(),
            created_unix_ms: self.created_unix_ms,
            desktop: None,
        }
    }
}

/// Blocks the signals the shim reads through its signalfd (SIGCHLD to reap, SIGTERM to end; SIGHUP and SIGINT only
/// to be logged). Call it first: a signal that arrives while blocked waits for the signalfd, where PID 1 would
/// otherwise drop it (it has no handler).
pub fn block_signals() -> io::Result<SigSet> {
    let mut mask = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGHUP, Signal::SIGINT] {
        mask.add(s);
    }
    mask.thread_block().map_err(|e| io::Error::new(io::Error::from(e).kind(), format!("block signals: {e}")))?;
    Ok(mask)
}

/// Serves until destroyed or sent SIGTERM from outside. Returns the exit code.
pub fn run(mut shim: Shim) -> i32 {
    loop {
        let now = Instant::now();
        // Timers: exec timeouts and completions, shell respawns.
        shim.tick(now);
        if let Some(code) = shim.exit {
            return code;
        }
        let (mut fds, srcs) = shim.poll_set();
        let t = match shim.next_timer(now) {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::from(d.as_millis().clamp(1, 10_000) as u16),
        };
        match poll(&mut fds, t) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("examroom-shim: poll: {e}");
                return 2;
            }
            Ok(_) => {}
        }
        let ready: Vec<(usize, PollFlags)> =
            fds.iter().enumerate().filter_map(|(i, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (i, r))).collect();
        drop(fds);
        for (i, r) in ready {
            shim.on_ready(&srcs[i], r);
            if shim.exit.is_some() {
                break;
            }
        }
        shim.flush_all();
    }
}

impl Shim {
    fn poll_set(&self) -> (Vec<PollFd<'_>>, Vec<Src>) {
        let mut fds = Vec::new();
        let mut srcs = Vec::new();
        let mut add = |fd: BorrowedFd<'_>, ev: PollFlags, s: Src, fds: &mut Vec<PollFd<'_>>| {
            // SAFETY: the descriptor outlives the poll call (it is owned by `self`, borrowed for this iteration).
            let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
            fds.push(PollFd::new(fd, ev));
            srcs.push(s);
        };
        add(self.listener.as_fd(), PollFlags::POLLIN, Src::Listener, &mut fds);
        add(self.sigfd.as_fd(), PollFlags::POLLIN, Src::Signal, &mut fds);
        for (i, t) in self.terminals.iter().enumerate() {
            let mut ev = PollFlags::empty();
            // A terminal whose client has too much output unacknowledged is not read (flow control): the program
            // writing to it blocks in the kernel until the client catches up.
            if !t.hup && self.read_limits(t).0 > 0 {
                ev |= PollFlags::POLLIN;
            }
            if !t.input.is_empty() && !t.hup {
                ev |= PollFlags::POLLOUT;
            }
            if !ev.is_empty() {
                add(t.master.as_fd(), ev, Src::Master(i), &mut fds);
            }
        }
        for (id, c) in &self.conns {
            let mut ev = PollFlags::empty();
            // A dialled connection's client is read only while the socket's queue has room.
            if c.mode != Mode::Dial || self.dials.get(id).is_none_or(|d| d.takes_input()) {
                ev |= PollFlags::POLLIN;
            }
            if c.queued() > 0 {
                ev |= PollFlags::POLLOUT;
            }
            add(c.stream.as_fd(), ev, Src::Conn(*id), &mut fds);
        }
        for (id, d) in &self.dials {
            let mut ev = PollFlags::empty();
            if d.connecting || !d.to_sock.is_empty() {
                ev |= PollFlags::POLLOUT;
            }
            if d.wants_read(self.conns.get(id).map_or(usize::MAX, |c| c.queued())) {
                ev |= PollFlags::POLLIN;
            }
            if !ev.is_empty() {
                add(d.sock.as_fd(), ev, Src::Dial(*id), &mut fds);
            }
        }
        for (pid, e) in &self.execs {
            for (k, o) in e.out.iter().enumerate() {
                if let Some(fd) = o {
                    add(fd.as_fd(), PollFlags::POLLIN, Src::Out(*pid, k), &mut fds);
                }
            }
            if let Some(fd) = &e.stdin {
                if !e.stdin_buf.is_empty() {
                    add(fd.as_fd(), PollFlags::POLLOUT, Src::Stdin(*pid), &mut fds);
                }
            }
        }
        (fds, srcs)
    }

    /// How much of a terminal's output may be read now (the read budget, or less when its client has flow control),
    /// and how much of a flood to gather into one frame.
    fn read_limits(&self, t: &Term) -> (usize, usize) {
        match t.attached.and_then(|c| self.conns.get(&c)).and_then(|c| c.flow) {
            Some(f) => (f.room().min(READ_BUDGET), ((f.high / 4) as usize).min(GATHER_BYTES)),
            None => (READ_BUDGET, GATHER_BYTES),
        }
    }

    fn next_timer(&self, now: Instant) -> Option<Duration> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for e in self.execs.values() {
            if e.exit.is_none() && !e.timed_out {
                consider(e.deadline);
            }
            if let Some(t) = e.exited_at {
                consider(t + exec::DRAIN);
            }
        }
        for t in &self.terminals {
            if let Some(at) = t.respawn_at {
                consider(at);
            }
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    fn on_ready(&mut self, src: &Src, r: PollFlags) {
        match *src {
            Src::Listener => self.accept(),
            Src::Signal => self.on_signal(),
            Src::Master(i) => {
                if r.contains(PollFlags::POLLOUT) {
                    self.write_input(i);
                }
                if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    // A hang-up is read even while output is paused, so that the end of the shell is noticed.
                    self.read_master(i, r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR));
                }
            }
            Src::Conn(id) => {
                if r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                    self.read_conn(id);
                }
            }
            Src::Out(pid, k) => self.read_exec_output(pid, k),
            Src::Stdin(pid) => self.write_exec_stdin(pid),
            Src::Dial(id) => self.on_dial_ready(
                id,
                r.contains(PollFlags::POLLIN),
                r.contains(PollFlags::POLLOUT),
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
            ),
        }
    }

    /// Accepts every pending connection, keeping only those from outside the container.
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    match listener::peer(&s) {
                        Ok(Peer::Outside) => {
                            if s.set_nonblocking(true).is_ok() {
                                let id = self.next_conn;
                                self.next_conn += 1;
                                self.conns.insert(id, Conn::new(s));
                            }
                        }
                        Ok(Peer::Inside(pid)) => {
                            if let Some(n) = self.refused.count() {
                                eprintln!("examroom-shim: refused a connection from pid {pid} inside the container ({n} so far)");
                            }
                            listener::refuse(s, pid);
                        }
                        Err(e) => eprintln!("examroom-shim: a connection without credentials was dropped: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            let signo = si.ssi_signo as i32;
            if signo == libc::SIGCHLD {
                continue;
            }
            // A signal from outside the container (docker stop, the server) has no sender pid in this namespace.
            if signo == libc::SIGTERM && si.ssi_pid == 0 {
                eprintln!("examroom-shim: SIGTERM from outside the container: killing everything and exiting");
                self.terminate();
                return;
            }
            if let Some(n) = self.ignored_signals.count() {
                eprintln!(
                    "examroom-shim: signal {signo} from pid {} ignored (only SIGTERM from outside the container ends \
                     it; {n} so far)",
                    si.ssi_pid
                );
            }
        }
        for (pid, exit) in process::reap() {
            self.on_exit(pid, exit);
        }
    }

    /// A child ended: a command, a shell, or an orphan (nothing more to do for one of those).
    fn on_exit(&mut self, pid: i32, exit: Exit) {
        if let Some(e) = self.execs.get_mut(&pid) {
            e.exit = Some((exit.code, exit.signal));
            e.exited_at = Some(Instant::now());
            return;
        }
        if let Some(t) = self.terminals.iter_mut().find(|t| t.shell == Some(pid)) {
            t.shell = None;
            let soon = t.shell_started.elapsed() < RESPAWN_BACKOFF;
            t.respawn_at = Some(if soon { t.shell_started + RESPAWN_BACKOFF } else { Instant::now() });
        }
    }

    fn respawn(&mut self, i: usize) {
        let t = &mut self.terminals[i];
        t.respawn_at = None;
        let notice = match t.start_shell(&self.shell_env, &self.shell_cwd) {
            Ok(()) => {
                t.restarts += 1;
                SHELL_RESTARTED.to_string()
            }
            Err(e) => {
                t.respawn_at = Some(Instant::now() + RESPAWN_BACKOFF);
                eprintln!("examroom-shim: terminal {}: {e}", t.name);
                format!("shell exited and could not be restarted yet: {e}")
            }
        };
        if let Some(c) = t.attached.and_then(|c| self.conns.get_mut(&c)) {
            c.reply(&Reply::Notice { message: notice });
        }
    }

    fn read_master(&mut self, i: usize, hangup: bool) {
        // Read a bounded amount per wake-up, and send it to the client as one frame (see the sandbox's shim).
        let (budget, gather) = match self.read_limits(&self.terminals[i]) {
            (0, _) if hangup => (READ_BUDGET, GATHER_BYTES),
            (0, _) => return,
            limits => limits,
        };
        let mut got = std::mem::take(&mut self.read_buf);
        got.clear();
        let mut chunk = [0u8; 16 * 1024];
        let t = &mut self.terminals[i];
        let started = Instant::now();
        while got.len() < budget {
            let want = chunk.len().min(budget - got.len());
            match nix::unistd::read(t.master.as_raw_fd(), &mut chunk[..want]) {
                Ok(0) | Err(nix::errno::Errno::EIO) => {
                    t.hup = true;
                    break;
                }
                Ok(k) => got.extend_from_slice(&chunk[..k]),
                Err(nix::errno::Errno::EINTR) => {}
                Err(nix::errno::Errno::EAGAIN) => {
                    let left = GATHER_WAIT.saturating_sub(started.elapsed());
                    if got.len() < FLOOD_READ || got.len() >= gather || left.is_zero() || !more_soon(t, left) {
                        break;
                    }
                }
                Err(_) => {
                    t.hup = true;
                    break;
                }
            }
        }
        let n = got.len();
        if n > 0 {
            t.ring.push(&got[..n]);
            if let Some(c) = t.attached.and_then(|c| self.conns.get_mut(&c)) {
                if c.flow.is_none() && c.queued() > ATTACHED_QUEUE_LIMIT {
                    // A stalled client without flow control: drop it; the ring keeps the output for its replay.
                    c.dead = true;
                } else {
                    c.output(&got[..n]);
                }
            }
        }
        // Keep the allocation for the next burst; give a large one back once the burst is over.
        got.clear();
        if got.capacity() > 64 * 1024 && n < 4096 {
            got = Vec::new();
        }
        self.read_buf = got;
    }

    fn write_input(&mut self, i: usize) {
        let t = &mut self.terminals[i];
        while !t.input.is_empty() {
            let (a, _) = t.input.as_slices();
            match nix::unistd::write(&t.master, a) {
                Ok(n) => {
                    t.input.drain(..n);
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            }
        }
    }

    fn read_conn(&mut self, id: u64) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        let frames = match c.read_frames() {
            Ok(f) => f,
            Err(e) => {
                c.reply(&Reply::Error { code: "bad_frame".into(), message: e.to_string() });
                c.closing = true;
                return;
            }
        };
        for f in frames {
            self.on_frame(id, f);
            if self.exit.is_some() {
                return;
            }
        }
    }

    fn on_frame(&mut self, id: u64, f: Frame) {
        let Some(mode) = self.conns.get(&id).map(|c| c.mode) else { return };
        match (mode, f.kind) {
            (Mode::Attached(i), Kind::Data) => {
                let t = &mut self.terminals[i];
                if t.input.len() + f.payload.len() <= INPUT_LIMIT {
                    t.input.extend(f.payload);
                    self.write_input(i);
                }
            }
            (Mode::Dial, Kind::Data) => self.dial_input(id, f.payload),
            (Mode::Exec(pid), Kind::Data) => {
                let pid = pid as i32;
                if let Some(e) = self.execs.get_mut(&pid) {
                    if f.payload.is_empty() {
                        e.stdin_eof = true;
                    } else {
                        e.stdin_buf.extend_from_slice(&f.payload);
                    }
                    self.write_exec_stdin(pid);
                }
            }
            (_, Kind::Control) => match serde_json::from_slice::<Request>(&f.payload) {
                Ok(req) => self.on_request(id, mode, req),
                Err(e) => self.fail(id, "bad_request", &format!("not a request: {e}")),
            },
            _ => self.fail(id, "bad_frame", "unexpected frame kind"),
        }
    }

    /// Answers with an error and closes the connection.
    fn fail(&mut self, id: u64, code: &str, message: &str) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&Reply::Error { code: code.into(), message: message.into() });
            c.closing = true;
        }
    }

    fn on_request(&mut self, id: u64, mode: Mode, req: Request) {
        match (mode, req) {
            (Mode::New, Request::Hello { min, max }) => match protocol::negotiate(min, max) {
                Some(v) => {
                    if let Some(c) = self.conns.get_mut(&id) {
                        c.mode = Mode::Control;
                        c.version = v;
                    }
                    self.reply(id, Reply::Hello { version: v, shim: env!("CARGO_PKG_VERSION").into() });
                }
                None => self.fail(
                    id,
                    "unsupported_version",
                    &format!("this shim speaks versions {}..={}", protocol::VERSION_MIN, protocol::VERSION_MAX),
                ),
            },
            (Mode::New, _) => self.fail(id, "hello_first", "every connection starts with hello"),
            (_, Request::Hello { .. }) => self.fail(id, "bad_request", "hello was already said"),
            (Mode::Attached(i), Request::Resize { cols, rows, .. }) => self.terminals[i].resize(cols, rows),
            (Mode::Attached(i), Request::FlowControl { window }) => self.flow_control(id, i, window),
            (Mode::Attached(_), Request::Ack { bytes }) => {
                if let Some(f) = self.conns.get_mut(&id).and_then(|c| c.flow.as_mut()) {
                    f.acked(bytes);
                }
            }
            (Mode::Control, Request::Status) => {
                let s = self.status();
                self.reply(id, Reply::Status(s));
            }
            (Mode::Control, Request::Resize { terminal, cols, rows }) => match self.term_index(&terminal) {
                Some(i) => {
                    self.terminals[i].resize(cols, rows);
                    self.reply(id, Reply::Ok);
                }
                None => self.reply(id, no_terminal(&terminal)),
            },
            (Mode::Control, Request::Attach { terminal, replay }) => self.attach(id, &terminal, replay),
            (Mode::Control, Request::OpenTerminal { cols, rows }) => match self.open_terminal(cols, rows) {
                Ok(t) => {
                    let name = t.name.clone();
                    self.terminals.push(t);
                    self.reply(id, Reply::Opened { terminal: name });
                }
                Err(e) => self.reply(id, Reply::Error { code: "open_failed".into(), message: e.to_string() }),
            },
            (Mode::Control, Request::Exec(spec)) => self.start_exec(id, spec),
            (Mode::Control, Request::TrustedExec(_)) => self.reply_error(
                id,
                "unsupported",
                "trusted commands do not run in the candidate's container: the Docker backend grades in a container \
                 of its own",
            ),
            (Mode::Control, Request::Freeze) => self.reply_error(
                id,
                "unsupported",
                "the container shim cannot freeze its own container: the Docker backend freezes with `docker pause`",
            ),
            (Mode::Control, Request::Destroy) => self.destroy(id),
            (Mode::Control, Request::Dial { port }) => self.dial(id, port),
            (Mode::Control, Request::StartDesktop(_)) => {
                if self.conn_version(id) < protocol::VERSION_DIAL {
                    return self.reply_error(id, "bad_request", "start_desktop needs protocol version 3");
                }
                // The code the runtime's client turns into `RuntimeError::Unsupported`.
                self.reply_error(id, "desktop_unsupported", "the docker backend has no desktop")
            }
            _ => self.fail(id, "bad_request", "that request is not valid in this state of the connection"),
        }
    }

    fn term_index(&self, name: &str) -> Option<usize> {
        self.terminals.iter().position(|t| t.name == name)
    }

    fn attach(&mut self, id: u64, terminal: &str, replay: bool) {
        let Some(i) = self.term_index(terminal) else { return self.reply(id, no_terminal(terminal)) };
        if let Some(old) = self.terminals[i].attached.replace(id) {
            if let Some(c) = self.conns.get_mut(&old) {
                c.reply(&Reply::Replaced);
                c.closing = true;
                c.mode = Mode::Control;
            }
        }
        let t = &self.terminals[i];
        let (a, b) = if replay { t.ring.slices() } else { (&[][..], &[][..]) };
        let Some(c) = self.conns.get_mut(&id) else { return };
        c.mode = Mode::Attached(i);
        c.reply(&Reply::Attached { terminal: terminal.to_string(), replay_bytes: (a.len() + b.len()) as u64 });
        c.data(Kind::Data, a);
        c.data(Kind::Data, b);
    }

    /// Turns on flow control for the client attached to terminal `i` (version 2; once per connection).
    fn flow_control(&mut self, id: u64, i: usize, window: Option<u64>) {
        let Some(c) = self.conns.get_mut(&id) else { return };
        if c.version < protocol::VERSION_FLOW {
            return self.fail(id, "bad_request", "flow control needs protocol version 2");
        }
        // Only the terminal's controlling client holds its output back; and a second request changes nothing.
        if self.terminals[i].attached != Some(id) || c.flow.is_some() {
            return;
        }
        let flow = Flow::new(window);
        c.flow = Some(flow);
        c.reply(&Reply::FlowControl { high: flow.high, low: flow.low });
    }

    fn start_exec(&mut self, id: u64, spec: ExecSpec) {
        if spec.argv.is_empty() {
            return self.reply(id, Reply::Error { code: "bad_request".into(), message: "argv is empty".into() });
        }
        match Exec::start(id, &spec) {
            Ok(e) => {
                let pid = e.pid;
                self.execs.insert(pid, e);
                self.set_mode(id, Mode::Exec(pid as u64));
            }
            Err(e) => self.reply(id, Reply::Error { code: "exec_failed".into(), message: e.to_string() }),
        }
    }

    fn read_exec_output(&mut self, pid: i32, k: usize) {
        let Some(e) = self.execs.get_mut(&pid) else { return };
        let Some(fd) = &e.out[k] else { return };
        let mut buf = [0u8; 64 * 1024];
        match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
            Ok(0) => e.out[k] = None,
            Ok(n) => {
                let take = e.admit(k, n);
                if take > 0 {
                    if let Some(c) = self.conns.get_mut(&e.conn) {
                        c.data(if k == 0 { Kind::Stdout } else { Kind::Stderr }, &buf[..take]);
                    }
                }
            }
            Err(nix::errno::Errno::EAGAIN) | Err(nix::errno::Errno::EINTR) => {}
            Err(_) => e.out[k] = None,
        }
    }

    fn write_exec_stdin(&mut self, pid: i32) {
        let Some(e) = self.execs.get_mut(&pid) else { return };
        if let Some(fd) = &e.stdin {
            while !e.stdin_buf.is_empty() {
                match nix::unistd::write(fd, &e.stdin_buf) {
                    Ok(n) => {
                        e.stdin_buf.drain(..n);
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    Err(nix::errno::Errno::EAGAIN) => break,
                    Err(_) => {
                        e.stdin_buf.clear();
                        e.stdin = None;
                        break;
                    }
                }
            }
        }
        if e.stdin_eof && e.stdin_buf.is_empty() {
            e.stdin = None;
        }
    }

    fn tick(&mut self, now: Instant) {
        let mut done = Vec::new();
        for (pid, e) in self.execs.iter_mut() {
            if e.exit.is_none() && !e.timed_out && now >= e.deadline {
                e.timed_out = true;
                e.kill();
            }
            // A client that went away takes its command with it.
            let gone = self.conns.get(&e.conn).is_none_or(|c| c.dead);
            if gone && e.exit.is_none() && !e.timed_out {
                e.timed_out = true;
                e.kill();
            }
            if e.complete(now) {
                done.push(*pid);
            }
        }
        for pid in done {
            if let Some(e) = self.execs.remove(&pid) {
                if let Some(c) = self.conns.get_mut(&e.conn) {
                    c.reply(&Reply::ExecDone(e.status()));
                    c.mode = Mode::Control;
                }
            }
        }
        let due: Vec<usize> =
            (0..self.terminals.len()).filter(|&i| self.terminals[i].respawn_at.is_some_and(|at| at <= now)).collect();
        for i in due {
            self.respawn(i);
        }
    }

    fn flush_all(&mut self) {
        self.settle_dials();
        let mut gone = Vec::new();
        for (id, c) in self.conns.iter_mut() {
            c.flush();
            if c.finished() {
                gone.push(*id);
            }
        }
        for id in gone {
            self.conns.remove(&id);
            for t in &mut self.terminals {
                if t.attached == Some(id) {
                    t.attached = None;
                }
            }
        }
    }

    /// Ends every attached stream and dialled connection, then kills every process of the container.
    /// Returns the processes there were, the shim included, and whether all are gone.
    fn kill_everything(&mut self, except: Option<u64>) -> (u32, bool) {
        let processes = process::count_processes();
        self.end_dials();
        for (cid, c) in self.conns.iter_mut() {
            if Some(*cid) != except && matches!(c.mode, Mode::Attached(_)) {
                c.reply(&Reply::Ended);
            }
            c.flush();
        }
        let gone = process::kill_everything(KILL_WITHIN);
        (processes, gone)
    }

    /// `Destroy`: kills everything, answers `Destroyed`, and exits (which ends the container).
    fn destroy(&mut self, id: u64) {
        let (killed, gone) = self.kill_everything(Some(id));
        let reply = if gone {
            Reply::Destroyed { killed }
        } else {
            Reply::Error {
                code: "destroy_failed".into(),
                message: format!(
                    "processes were still alive {} s after SIGKILL; the shim exits anyway, which ends the container",
                    KILL_WITHIN.as_secs()
                ),
            }
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&reply);
            c.flush_blocking(Duration::from_secs(2));
        }
        self.exit = Some(0);
    }

    /// SIGTERM from outside: kills everything and exits.
    fn terminate(&mut self) {
        let (_, gone) = self.kill_everything(None);
        if !gone {
            eprintln!("examroom-shim: processes were still alive after SIGKILL; exiting anyway");
        }
        for c in self.conns.values_mut() {
            c.flush_blocking(Duration::from_millis(200));
        }
        self.exit = Some(0);
    }
}

/// Waits up to `left` for more output on a terminal; true when there is some (or a hang-up to read).
fn more_soon(t: &Term, left: Duration) -> bool {
    let mut p = [PollFd::new(t.master.as_fd(), PollFlags::POLLIN)];
    let ts = nix::sys::time::TimeSpec::from_duration(left);
    matches!(nix::poll::ppoll(&mut p, Some(ts), None), Ok(n) if n > 0)
}

fn no_terminal(name: &str) -> Reply {
    Reply::Error { code: "no_such_terminal".into(), message: format!("no terminal named {name:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_logs_the_first_ten_then_at_powers_of_two() {
        let mut t = Tally::default();
        let logged: Vec<u64> = (0..1000).filter_map(|_| t.count()).collect();
        assert_eq!(logged, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 16, 32, 64, 128, 256, 512]);
    }
}
