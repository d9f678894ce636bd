//! The shim's event loop: one thread, one `poll`, every descriptor non-blocking.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use super::exec::Exec;
use crate::protocol::conn::{Conn, Flow, Mode, ATTACHED_QUEUE_LIMIT};
use crate::protocol::{self, ExecSpec, Frame, Kind, Reply, Request, ShimStatus, TerminalStatus};
use crate::ring::Ring;
use crate::sandbox::cgroup::{Cgroups, Group, RealOs};
use crate::sandbox::init::{self, FromInit, ToInit};
use crate::sandbox::state::{ShimConfig, ShimState};
use crate::sandbox::sys;

/// Input for a terminal that the PTY has not taken yet is capped here; beyond it, keystrokes are dropped.
const INPUT_LIMIT: usize = 64 * 1024;
/// A shell that exits again within this time of its start is restarted only after it.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);
/// A PTY master is read at most this much per wake-up (so one busy terminal cannot starve the others).
const READ_BUDGET: usize = 256 * 1024;
/// The PTY hands over at most about 4 KiB per read. In a flood (a read of at least `FLOOD_READ`), the shim waits up to
/// `GATHER_WAIT` for more, up to `GATHER_BYTES` (a quarter of the window with flow control, so that several frames
/// are in flight while the first is acknowledged), and sends one frame rather than one per read: a frame costs a
/// wake-up of the server and of the client, which a flood would otherwise pay for every 4 KiB.
const FLOOD_READ: usize = 2048;
const GATHER_WAIT: Duration = Duration::from_millis(1);
const GATHER_BYTES: usize = 64 * 1024;
/// The notice sent when the candidate's shell exits.
pub(crate) const SHELL_RESTARTED: &str = "shell exited; a new shell was started";

/// One terminal: a PTY master in the sandbox's devpts, its shell and its scrollback.
pub(crate) struct Term {
    pub name: String,
    pub master: OwnedFd,
    pub ring: Ring,
    pub shell: Option<u64>,
    pub shell_started: Instant,
    pub respawn_at: Option<Instant>,
    pub attached: Option<u64>,
    pub cols: u16,
    pub rows: u16,
    pub restarts: u32,
    /// No slave is open (the shell exited): reads would spin on EIO.
    pub hup: bool,
    pub input: VecDeque<u8>,
    /// A machine's console, which has no shell of ours: whoever holds it (a getty) closes and reopens it (`vhangup`),
    /// so after a hangup it is looked at again at `recheck_at`, backing off to [`CONSOLE_RECHECK_MAX`].
    pub console: bool,
    pub recheck_at: Option<Instant>,
    recheck_wait: Duration,
}

/// How often, at most, a hung-up console is looked at again.
const CONSOLE_RECHECK_MAX: Duration = Duration::from_secs(2);
const CONSOLE_RECHECK_MIN: Duration = Duration::from_millis(50);

impl Term {
    pub fn new(name: String, master: OwnedFd, cols: u16, rows: u16, scrollback: usize) -> Term {
        Term {
            name,
            master,
            ring: Ring::new(scrollback),
            shell: None,
            shell_started: Instant::now(),
            respawn_at: None,
            attached: None,
            cols,
            rows,
            restarts: 0,
            hup: false,
            input: VecDeque::new(),
            console: false,
            recheck_at: None,
            recheck_wait: CONSOLE_RECHECK_MIN,
        }
    }
}

pub(crate) struct Shim {
    pub cfg: ShimConfig,
    pub state: ShimState,
    pub cg: Cgroups<RealOs>,
    pub env_group: Group,
    ctl: OwnedFd,
    init_alive: bool,
    lost: Option<String>,
    listener: UnixListener,
    pub terminals: Vec<Term>,
    pub(super) conns: HashMap<u64, Conn>,
    next_conn: u64,
    execs: HashMap<u64, Exec>,
    next_proc: u64,
    /// Messages from init that arrived while waiting for an answer.
    backlog: VecDeque<FromInit>,
    sigfd: SignalFd,
    pub hostname: String,
    /// Set once destroyed: the exit code.
    destroyed: Option<i32>,
    /// Scratch space for PTY reads.
    read_buf: Vec<u8>,
    /// The group trusted commands run in (made on first use, with the environment's limits).
    grade_group: Option<Group>,
    /// The mount namespace init built the root in, before it moved into its nested, locked copy.
    build_mnt: OwnedFd,
    /// A `system` environment whose init became systemd: init's control socket is closed (its liveness is its pid).
    pub booted: bool,
    /// A booted environment: the way in for shells and commands (`enter.rs`), the devpts's `ptmx` its terminals are
    /// opened from, and the processes started so (host pid → process id; they are our children).
    pub entry: Option<super::enter::Entry>,
    pub ptmx: Option<OwnedFd>,
    entered: HashMap<i32, u64>,
    /// The environment's state directory.
    pub dir: std::path::PathBuf,
    /// A detached clone of the writable layer (see `create::Machine::stage`).
    pub stage: Option<OwnedFd>,
    /// The machine was booted again for grading: no shell is started or restarted in it.
    pub graded_boot: bool,
    /// The environment's `/proc` views and when they are next rewritten.
    views: crate::sandbox::procviews::ProcViews,
    views_due: Instant,
    /// The environment's network namespace (a handle taken when init was made), for `Dial`.
    pub netns: Option<super::dial::NetNs>,
    /// Dialled connections, by connection.
    pub dials: HashMap<u64, super::dial::Dial>,
    /// The desktop, once started.
    pub desktop: Option<super::desktop::Desktop>,
}

enum Src {
    Listener,
    Ctl,
    Signal,
    Master(usize),
    Conn(u64),
    Out(u64, usize),
    Stdin(u64),
    Dial(u64),
    DesktopLog,
}

impl Shim {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        cfg: ShimConfig,
        state: ShimState,
        cg: Cgroups<RealOs>,
        env_group: Group,
        ctl: OwnedFd,
        listener: UnixListener,
        hostname: String,
        build_mnt: OwnedFd,
        views: crate::sandbox::procviews::ProcViews,
    ) -> io::Result<Shim> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGCHLD);
        mask.add(Signal::SIGTERM);
        mask.add(Signal::SIGHUP);
        mask.add(Signal::SIGINT);
        mask.thread_block().map_err(io::Error::from)?;
        let sigfd =
            SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).map_err(io::Error::from)?;
        Ok(Shim {
            cfg,
            state,
            cg,
            env_group,
            ctl,
            init_alive: true,
            lost: None,
            listener,
            terminals: Vec::new(),
            conns: HashMap::new(),
            next_conn: 1,
            execs: HashMap::new(),
            next_proc: 1,
            backlog: VecDeque::new(),
            sigfd,
            hostname,
            destroyed: None,
            read_buf: Vec::new(),
            grade_group: None,
            build_mnt,
            views,
            views_due: Instant::now(),
            booted: false,
            entry: None,
            ptmx: None,
            entered: HashMap::new(),
            dir: std::path::PathBuf::new(),
            stage: None,
            graded_boot: false,
            netns: None,
            dials: HashMap::new(),
            desktop: None,
        })
    }

    /// Why the environment is lost, if it is.
    pub fn lost_reason(&self) -> Option<String> {
        self.lost.clone()
    }

    /// The protocol version of a connection.
    pub fn conn_version(&self, id: u64) -> u32 {
        self.conns.get(&id).map_or(0, |c| c.version)
    }

    /// Answers with an error; the connection stays open for further requests.
    pub fn reply_error(&mut self, id: u64, code: &str, message: &str) {
        self.reply(id, Reply::Error { code: code.into(), message: message.into() });
    }

    pub(super) fn set_mode(&mut self, id: u64, mode: Mode) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.mode = mode;
        }
    }

    /// A new id for a process the shim starts.
    pub fn next_proc_id(&mut self) -> u64 {
        let id = self.next_proc;
        self.next_proc += 1;
        id
    }

    /// Init's control socket.
    pub fn ctl_fd(&self) -> RawFd {
        self.ctl.as_raw_fd()
    }

    /// The environment of the candidate's processes (as a login shell sees it).
    pub fn candidate_env(&self) -> Vec<(String, String)> {
        self.shell_env()
    }

    /// A new init (a machine booted again): its control socket, the mount namespace it built in, its `/proc` views.
    pub fn set_init(&mut self, ctl: OwnedFd, build_mnt: OwnedFd, views: crate::sandbox::procviews::ProcViews) {
        self.ctl = ctl;
        self.build_mnt = build_mnt;
        self.views = views;
        self.init_alive = true;
        self.booted = false;
        self.backlog.clear();
    }

    /// The old init is gone on purpose (a machine stopped to boot again): nothing is lost.
    pub fn mark_init_stopped(&mut self) {
        self.init_alive = false;
    }

    /// The environment is made: this shim gets the normal CPU weight back (see `create.rs`).
    pub fn started(&self) {
        if let Some(g) = &self.state.shim_group {
            if let Err(e) = self.cg.set_cpu_weight(g, crate::sandbox::cgroup::CpuWeight::Normal) {
                eprintln!("examroom shim: restoring the CPU weight: {e}");
            }
        }
    }

    /// Sends a request to init and waits (bounded) for its answer, keeping exit reports that arrive meanwhile.
    pub fn init_call(&mut self, msg: &ToInit, fds: &[RawFd]) -> io::Result<(FromInit, Vec<OwnedFd>)> {
        if !self.init_alive {
            return Err(io::Error::other("the environment's init is gone"));
        }
        init::send(self.ctl.as_raw_fd(), msg, fds)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = vec![0u8; init::MAX_MSG];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "init did not answer within 10 s"));
            }
            let mut p = [PollFd::new(self.ctl.as_fd(), PollFlags::POLLIN)];
            let t = PollTimeout::from(left.as_millis().min(10_000) as u16);
            match poll(&mut p, t) {
                Err(nix::errno::Errno::EINTR) | Ok(0) => continue,
                Err(e) => return Err(e.into()),
                Ok(_) => {}
            }
            match init::recv::<FromInit>(self.ctl.as_raw_fd(), &mut buf)? {
                None => {
                    self.init_gone("init closed its control socket");
                    return Err(io::Error::other("the environment's init is gone"));
                }
                Some((m @ FromInit::Exited { .. }, _)) => self.backlog.push_back(m),
                Some(answer) => return Ok(answer),
            }
        }
    }

    /// The environment seen from a login shell.
    fn shell_env(&self) -> Vec<(String, String)> {
        let (user, home) = if self.cfg.userns { ("root", "/root") } else { ("candidate", "/root") };
        [
            ("TERM", "xterm-256color"),
            ("HOME", home),
            ("USER", user),
            ("LOGNAME", user),
            ("SHELL", "/bin/bash"),
            ("LANG", "C.UTF-8"),
            ("HOSTNAME", self.hostname.as_str()),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// Starts a login shell on a terminal (a fresh slave opened from its master).
    pub fn start_shell(&mut self, term: &mut Term) -> io::Result<()> {
        let slave = sys::pty_peer(&term.master)?;
        let id = self.next_proc;
        self.next_proc += 1;
        if let Some(entry) = &self.entry {
            let env = self.shell_env();
            let cmd = super::enter::Command { argv: &[], env: &env, cwd: "/root", fds: &[slave.as_raw_fd()] };
            let hp = entry.spawn(&cmd).map_err(|e| io::Error::new(e.kind(), format!("start the shell: {e}")))?;
            self.entered.insert(hp, id);
            term.shell = Some(id);
            term.shell_started = Instant::now();
            term.hup = false;
            return Ok(());
        }
        let msg = ToInit::Spawn {
            id,
            argv: vec![],
            env: self.shell_env(),
            cwd: "/root".into(),
            tty: true,
            keep_oom_score: false,
        };
        match self.init_call(&msg, &[slave.as_raw_fd()])? {
            (FromInit::Spawned { .. }, _) => {
                term.shell = Some(id);
                term.shell_started = Instant::now();
                term.hup = false;
                Ok(())
            }
            (FromInit::SpawnFailed { error, .. }, _) => Err(io::Error::other(format!("start the shell: {error}"))),
            (other, _) => Err(io::Error::other(format!("unexpected answer from init: {other:?}"))),
        }
    }

    /// The last `bytes` a machine's console printed (what is pending on it read first), if it has one.
    pub(crate) fn console_tail(&mut self, bytes: usize) -> Option<String> {
        let console = self.terminals.iter_mut().find(|t| t.name == "console")?;
        let mut buf = [0u8; 4096];
        while let Ok(n) = nix::unistd::read(console.master.as_raw_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            console.ring.push(&buf[..n]);
        }
        let (a, b) = console.ring.slices();
        let all = [a, b].concat();
        Some(String::from_utf8_lossy(&all[all.len().saturating_sub(bytes)..]).into_owned())
    }

    fn init_gone(&mut self, why: &str) {
        if !self.init_alive {
            return;
        }
        self.init_alive = false;
        self.lost = Some(why.to_string());
        eprintln!("examroom shim: environment lost: {why}");
        // A machine's service manager says why on its console: keep the end of it in the log.
        if let Some(tail) = self.console_tail(4096) {
            eprintln!("examroom shim: the console's last output:\n{tail}");
        }
        let _ = self.cg.kill_all(&self.env_group, Duration::from_secs(5));
        let ids: Vec<u64> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                if matches!(c.mode, Mode::Attached(_)) {
                    c.reply(&Reply::Notice { message: format!("the environment was lost: {why}") });
                    c.reply(&Reply::Ended);
                    c.closing = true;
                }
            }
        }
        self.end_dials();
        for (_, e) in self.execs.iter_mut() {
            if e.exit.is_none() {
                e.exit = Some((None, Some(libc::SIGKILL)));
                e.exited_at = Some(Instant::now());
            }
        }
    }

    fn status(&self) -> ShimStatus {
        ShimStatus {
            id: self.cfg.spec.id.to_string(),
            state: if self.lost.is_some() { "lost".into() } else { "running".into() },
            lost_reason: self.lost.clone(),
            shim_pid: self.state.shim_pid,
            init_pid: self.state.init_pid,
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
            processes: self.cg.procs(&self.env_group).map(|p| p.len() as u32).unwrap_or(0),
            oom_kills: self.cg.oom_kills(&self.env_group).unwrap_or(0),
            created_unix_ms: self.state.created_unix_ms,
            desktop: self.desktop.as_ref().map(|d| d.status()),
        }
    }
}

/// Serves until destroyed. Returns the exit code.
pub(crate) fn run(mut shim: Shim) -> i32 {
    loop {
        let now = Instant::now();
        // Timers: exec timeouts and completions, shell respawns.
        shim.tick(now);
        if let Some(code) = shim.destroyed.take() {
            return code;
        }
        let (mut fds, srcs) = shim.poll_set();
        let timeout = shim.next_timer(now);
        let t = match timeout {
            None => PollTimeout::NONE,
            Some(d) => PollTimeout::from(d.as_millis().clamp(1, 10_000) as u16),
        };
        match poll(&mut fds, t) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("examroom shim: poll: {e}");
                return 2;
            }
            Ok(_) => {}
        }
        let ready: Vec<(usize, PollFlags)> =
            fds.iter().enumerate().filter_map(|(i, f)| f.revents().filter(|r| !r.is_empty()).map(|r| (i, r))).collect();
        drop(fds);
        for (i, r) in ready {
            shim.on_ready(&srcs[i], r);
        }
        shim.drain_backlog();
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
        if self.init_alive && !self.booted {
            add(self.ctl.as_fd(), PollFlags::POLLIN, Src::Ctl, &mut fds);
        }
        add(self.sigfd.as_fd(), PollFlags::POLLIN, Src::Signal, &mut fds);
        for (i, t) in self.terminals.iter().enumerate() {
            let mut ev = PollFlags::empty();
            // A terminal whose client has too much output unacknowledged is not read (flow control): the program
            // writing to it blocks in the kernel until the client catches up.
            if !t.hup && self.read_room(t) > 0 {
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
        if let Some(fd) = self.desktop.as_ref().and_then(|d| d.log_fd.as_ref()) {
            add(fd.as_fd(), PollFlags::POLLIN, Src::DesktopLog, &mut fds);
        }
        for (id, e) in &self.execs {
            for (k, o) in e.out.iter().enumerate() {
                if let Some(fd) = o {
                    add(fd.as_fd(), PollFlags::POLLIN, Src::Out(*id, k), &mut fds);
                }
            }
            if let Some(fd) = &e.stdin {
                if !e.stdin_buf.is_empty() {
                    add(fd.as_fd(), PollFlags::POLLOUT, Src::Stdin(*id), &mut fds);
                }
            }
        }
        (fds, srcs)
    }

    /// How much of a terminal's output may be read now: the read budget, or less when its client has flow control.
    fn read_room(&self, t: &Term) -> usize {
        self.read_limits(t).0
    }

    /// How much of a terminal's output may be read now, and how much of a flood to gather into one frame.
    fn read_limits(&self, t: &Term) -> (usize, usize) {
        match t.attached.and_then(|c| self.conns.get(&c)).and_then(|c| c.flow) {
            Some(f) => (f.room().min(READ_BUDGET), ((f.high / 4) as usize).min(GATHER_BYTES)),
            None => (READ_BUDGET, GATHER_BYTES),
        }
    }

    fn next_timer(&self, now: Instant) -> Option<Duration> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        if self.init_alive {
            consider(self.views_due);
        }
        for e in self.execs.values() {
            if e.exit.is_none() && !e.timed_out {
                consider(e.deadline);
            }
            if let Some(t) = e.exited_at {
                consider(t + super::exec::DRAIN);
            }
        }
        for t in &self.terminals {
            if let Some(at) = t.respawn_at.or(t.recheck_at) {
                consider(at);
            }
        }
        next.map(|t| t.saturating_duration_since(now))
    }

    fn on_ready(&mut self, src: &Src, r: PollFlags) {
        match *src {
            Src::Listener => self.accept(),
            Src::Ctl => self.read_init(),
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
            Src::Out(id, k) => self.read_exec_output(id, k),
            Src::Stdin(id) => self.write_exec_stdin(id),
            Src::Dial(id) => self.on_dial_ready(
                id,
                r.contains(PollFlags::POLLIN),
                r.contains(PollFlags::POLLOUT),
                r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR),
            ),
            Src::DesktopLog => self.read_desktop_log(),
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    if s.set_nonblocking(true).is_ok() {
                        let id = self.next_conn;
                        self.next_conn += 1;
                        self.conns.insert(id, Conn::new(s));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            }
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(si)) = self.sigfd.read_signal() {
            if si.ssi_signo as i32 == libc::SIGTERM {
                eprintln!("examroom shim: SIGTERM ignored; environments end through the runtime's destroy");
            }
        }
        self.reap_init();
        // Processes started by entering a booted environment are our children.
        let entered: Vec<i32> = self.entered.keys().copied().collect();
        for hp in entered {
            let exit = match waitpid(Pid::from_raw(hp), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
                Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
                Ok(_) => continue,
                Err(_) => (None, None),
            };
            if let Some(id) = self.entered.remove(&hp) {
                self.on_exit(id, exit.0, exit.1);
            }
        }
        // And trusted commands, which are our children too.
        let trusted: Vec<(u64, i32)> = self
            .execs
            .iter()
            .filter(|(_, e)| e.exit.is_none())
            .filter_map(|(id, e)| e.host_pid.map(|p| (*id, p)))
            .collect();
        for (id, hp) in trusted {
            let exit = match waitpid(Pid::from_raw(hp), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(_, code)) => (Some(code), None),
                Ok(WaitStatus::Signaled(_, sig, _)) => (None, Some(sig as i32)),
                _ => continue,
            };
            // Nothing a check started outlives it: everything left in the grading group is killed before the
            // answer, so the next check starts with an empty group.
            if let Some(g) = self.grade_group.clone() {
                if let Err(e) = self.cg.kill_all(&g, Duration::from_secs(5)) {
                    eprintln!("examroom shim: clearing the grading group: {e}");
                }
            }
            self.on_exit(id, exit.0, exit.1);
        }
    }

    fn read_init(&mut self) {
        let mut buf = vec![0u8; init::MAX_MSG];
        match init::recv::<FromInit>(self.ctl.as_raw_fd(), &mut buf) {
            Ok(Some((m, _))) => self.backlog.push_back(m),
            Ok(None) => self.init_gone("init closed its control socket"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => eprintln!("examroom shim: from init: {e}"),
        }
    }

    fn drain_backlog(&mut self) {
        while let Some(m) = self.backlog.pop_front() {
            if let FromInit::Exited { id, code, signal } = m {
                self.on_exit(id, code, signal);
            }
        }
    }

    fn on_exit(&mut self, id: u64, code: Option<i32>, signal: Option<i32>) {
        if self.desktop_exit(id, code, signal) {
            return;
        }
        if let Some(e) = self.execs.get_mut(&id) {
            e.exit = Some((code, signal));
            e.exited_at = Some(Instant::now());
            return;
        }
        if let Some(i) = self.terminals.iter().position(|t| t.shell == Some(id)) {
            let t = &mut self.terminals[i];
            t.shell = None;
            let soon = t.shell_started.elapsed() < RESPAWN_BACKOFF;
            t.respawn_at = Some(if soon { t.shell_started + RESPAWN_BACKOFF } else { Instant::now() });
        }
    }

    fn respawn(&mut self, i: usize) {
        let mut term = self.terminals.remove(i);
        term.respawn_at = None;
        let result = self.start_shell(&mut term);
        let notice = match result {
            Ok(()) => {
                term.restarts += 1;
                SHELL_RESTARTED.to_string()
            }
            Err(e) => {
                term.respawn_at = Some(Instant::now() + RESPAWN_BACKOFF);
                format!("shell exited and could not be restarted yet: {e}")
            }
        };
        if let Some(c) = term.attached.and_then(|c| self.conns.get_mut(&c)) {
            c.reply(&Reply::Notice { message: notice });
        }
        self.terminals.insert(i, term);
    }

    fn read_master(&mut self, i: usize, hangup: bool) {
        // Read a bounded amount per wake-up (so one busy terminal cannot starve the others, and a client with flow
        // control gets no more than its window), and send it to the client as one frame: PTY reads come in small
        // pieces, and a frame per piece would cost more than the copy.
        let (budget, gather) = match self.read_limits(&self.terminals[i]) {
            (0, _) if hangup => (READ_BUDGET, GATHER_BYTES),
            (0, _) => return,
            limits => limits,
        };
        let mut got = std::mem::take(&mut self.read_buf);
        got.clear();
        let mut chunk = [0u8; 16 * 1024];
        let t = &mut self.terminals[i];
        // `got` grows only as far as output comes (a keystroke's echo costs a few bytes, not a 256 KiB buffer).
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
        if t.console {
            if t.hup && t.recheck_at.is_none() {
                t.recheck_at = Some(Instant::now() + t.recheck_wait);
                t.recheck_wait = (t.recheck_wait * 2).min(CONSOLE_RECHECK_MAX);
            } else if n > 0 {
                t.recheck_wait = CONSOLE_RECHECK_MIN;
            }
        }
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

    fn fail(&mut self, id: u64, code: &str, message: &str) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&Reply::Error { code: code.into(), message: message.into() });
            c.closing = true;
        }
    }

    pub(super) fn reply(&mut self, id: u64, r: Reply) {
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&r);
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
            (Mode::Attached(i), Request::Resize { cols, rows, .. }) => self.resize(i, cols, rows),
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
                    self.resize(i, cols, rows);
                    self.reply(id, Reply::Ok);
                }
                None => self.reply(id, no_terminal(&terminal)),
            },
            (Mode::Control, Request::Attach { terminal, replay }) => self.attach(id, &terminal, replay),
            (Mode::Control, Request::OpenTerminal { cols, rows }) => {
                if let Some(why) = self.lost.clone() {
                    return self.reply(id, lost(&why));
                }
                match super::create::open_terminal(self, cols, rows) {
                    Ok(t) => {
                        let name = t.name.clone();
                        self.terminals.push(t);
                        self.reply(id, Reply::Opened { terminal: name });
                    }
                    Err(e) => self.reply(id, Reply::Error { code: "open_failed".into(), message: e.to_string() }),
                }
            }
            (Mode::Control, Request::Exec(spec)) => self.start_exec(id, spec, false),
            (Mode::Control, Request::TrustedExec(spec)) => self.start_exec(id, spec, true),
            (Mode::Control, Request::Freeze) if self.booted || self.graded_boot => {
                // A machine is graded booted again from its disk, not frozen (see `reboot.rs`).
                let r = match self.boot_again_for_grading() {
                    Ok(()) => Reply::Ok,
                    Err(e) => {
                        eprintln!("examroom shim: booting again for grading: {e}");
                        Reply::Error {
                            code: "freeze_failed".into(),
                            message: format!("booting the machine again for grading: {e}"),
                        }
                    }
                };
                self.reply(id, r);
            }
            (Mode::Control, Request::Freeze) => {
                let r = match self.cg.freeze(&self.env_group, Duration::from_secs(10)) {
                    Ok(true) => Reply::Ok,
                    Ok(false) => Reply::Error {
                        code: "freeze_failed".into(),
                        message: "the environment did not freeze within 10 s".into(),
                    },
                    Err(e) => Reply::Error { code: "freeze_failed".into(), message: e.to_string() },
                };
                self.reply(id, r);
            }
            (Mode::Control, Request::Destroy) => self.destroy(id),
            (Mode::Control, Request::Dial { port }) => self.dial(id, port),
            (Mode::Control, Request::StartDesktop(spec)) => {
                if self.conn_version(id) < protocol::VERSION_DIAL {
                    return self.reply_error(id, "bad_request", "start_desktop needs protocol version 3");
                }
                let r = self.start_desktop(spec);
                self.reply(id, r);
            }
            _ => self.fail(id, "bad_request", "that request is not valid in this state of the connection"),
        }
    }

    fn term_index(&self, name: &str) -> Option<usize> {
        self.terminals.iter().position(|t| t.name == name)
    }

    fn resize(&mut self, i: usize, cols: u16, rows: u16) {
        let (cols, rows) = (cols.clamp(2, 1000), rows.clamp(2, 1000));
        let t = &mut self.terminals[i];
        if sys::set_winsize(t.master.as_raw_fd(), cols, rows).is_ok() {
            t.cols = cols;
            t.rows = rows;
        }
    }

    fn attach(&mut self, id: u64, terminal: &str, replay: bool) {
        if let Some(why) = self.lost.clone() {
            return self.reply(id, lost(&why));
        }
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

    /// Reaps init if it died (the environment is then lost).
    fn reap_init(&mut self) {
        if !self.init_alive {
            return;
        }
        match waitpid(Pid::from_raw(self.state.init_pid), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => self.init_gone(&format!("init exited with status {code}")),
            Ok(WaitStatus::Signaled(_, sig, _)) => self.init_gone(&format!("init was killed by {sig}")),
            _ => {}
        }
    }

    fn start_exec(&mut self, id: u64, spec: ExecSpec, trusted: bool) {
        // Init may have died since the last signal was read (a machine's PID 1 just after its boot): say lost, not
        // how entering it failed.
        self.reap_init();
        if let Some(why) = self.lost.clone() {
            return self.reply(id, lost(&why));
        }
        if spec.argv.is_empty() {
            return self.reply(id, Reply::Error { code: "bad_request".into(), message: "argv is empty".into() });
        }
        let pipes = (|| -> io::Result<_> {
            let flags = nix::fcntl::OFlag::O_CLOEXEC;
            let (in_r, in_w) = nix::unistd::pipe2(flags)?;
            let (out_r, out_w) = nix::unistd::pipe2(flags)?;
            let (err_r, err_w) = nix::unistd::pipe2(flags)?;
            for fd in [&in_w, &out_r, &err_r] {
                nix::fcntl::fcntl(fd.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))?;
            }
            Ok(((in_r, in_w), (out_r, out_w), (err_r, err_w)))
        })();
        let ((in_r, in_w), (out_r, out_w), (err_r, err_w)) = match pipes {
            Ok(p) => p,
            Err(e) => return self.reply(id, Reply::Error { code: "exec_failed".into(), message: e.to_string() }),
        };
        let pid = self.next_proc;
        self.next_proc += 1;
        let now = Instant::now();
        let timeout = Duration::from_millis(spec.timeout_ms.clamp(1, 24 * 3600 * 1000));
        let (answer, host_pid) = if trusted {
            // Checks run one at a time: a check must never see another one's processes.
            if self.execs.values().any(|e| e.host_pid.is_some()) {
                let message = "a trusted command is already running in this environment".to_string();
                return self.reply(id, Reply::Error { code: "busy".into(), message });
            }
            let group = match self.grade_group() {
                Ok(g) => g,
                Err(e) => return self.reply(id, Reply::Error { code: "exec_failed".into(), message: e.to_string() }),
            };
            let unprivileged = (!self.cfg.userns).then(|| self.state.uid.as_ref().map(|s| s.base)).flatten();
            match super::trusted::spawn(
                &self.cfg,
                self.state.init_pid,
                &self.build_mnt,
                &group,
                &spec,
                [&in_r, &out_w, &err_w],
                unprivileged,
            ) {
                Ok(hp) => (Ok((FromInit::Spawned { id: pid, pid: 0 }, Vec::new())), Some(hp)),
                Err(e) => (Err(e), None),
            }
        } else if let Some(entry) = &self.entry {
            let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
            let cmd = super::enter::Command { argv: &spec.argv, env: &spec.env, cwd: &spec.cwd, fds: &fds };
            match entry.spawn(&cmd) {
                Ok(hp) => {
                    self.entered.insert(hp, pid);
                    (Ok((FromInit::Spawned { id: pid, pid: 0 }, Vec::new())), None)
                }
                Err(e) => (Ok((FromInit::SpawnFailed { id: pid, error: e.to_string() }, Vec::new())), None),
            }
        } else {
            let msg = ToInit::Spawn {
                id: pid,
                argv: spec.argv,
                env: spec.env,
                cwd: spec.cwd,
                tty: false,
                keep_oom_score: false,
            };
            (self.init_call(&msg, &[in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()]), None)
        };
        drop((in_r, out_w, err_w));
        match answer {
            Ok((FromInit::Spawned { .. }, _)) => {
                self.execs.insert(
                    pid,
                    Exec {
                        conn: id,
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
                        host_pid,
                    },
                );
                if let Some(c) = self.conns.get_mut(&id) {
                    c.mode = Mode::Exec(pid);
                }
            }
            Ok((FromInit::SpawnFailed { error, .. }, _)) => {
                self.reply(id, Reply::Error { code: "exec_failed".into(), message: error })
            }
            Ok((other, _)) => {
                self.reply(id, Reply::Error { code: "exec_failed".into(), message: format!("{other:?}") })
            }
            Err(e) => self.reply(id, Reply::Error { code: "exec_failed".into(), message: e.to_string() }),
        }
    }

    fn read_exec_output(&mut self, pid: u64, k: usize) {
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

    fn write_exec_stdin(&mut self, pid: u64) {
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
        if self.init_alive && now >= self.views_due {
            if let Err(e) = self.views.refresh() {
                eprintln!("examroom shim: /proc views: {e}");
            }
            self.views_due = now + crate::sandbox::procviews::REFRESH;
        }
        let mut kill = Vec::new();
        let mut done = Vec::new();
        for (pid, e) in self.execs.iter_mut() {
            if e.exit.is_none() && !e.timed_out && now >= e.deadline {
                e.timed_out = true;
                kill.push(*pid);
            }
            // A client that went away takes its command with it.
            let gone = self.conns.get(&e.conn).is_none_or(|c| c.dead);
            if gone && e.exit.is_none() && !e.timed_out {
                e.timed_out = true;
                kill.push(*pid);
            }
            if e.complete(now) {
                done.push(*pid);
            }
        }
        for pid in kill {
            match self.execs.get(&pid).and_then(|e| e.host_pid) {
                // SAFETY: signalling the process group of our own child.
                Some(hp) => unsafe {
                    libc::kill(-hp, libc::SIGKILL);
                },
                None => match self.entered.iter().find(|(_, id)| **id == pid) {
                    // SAFETY: signalling the process group of our own child (it started its own session).
                    Some((hp, _)) => unsafe {
                        libc::kill(-*hp, libc::SIGKILL);
                    },
                    None => {
                        let _ = init::send(self.ctl.as_raw_fd(), &ToInit::Kill { id: pid, signal: libc::SIGKILL }, &[]);
                    }
                },
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
        for t in self.terminals.iter_mut().filter(|t| t.recheck_at.is_some_and(|at| at <= now)) {
            t.recheck_at = None;
            t.hup = false;
        }
        let due: Vec<usize> = self
            .terminals
            .iter()
            .enumerate()
            .filter(|(_, t)| t.respawn_at.is_some_and(|at| at <= now))
            .map(|(i, _)| i)
            .collect();
        for i in due {
            if self.init_alive && !self.graded_boot {
                self.respawn(i);
            } else {
                self.terminals[i].respawn_at = None;
            }
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

    /// The group for trusted commands: `<env>.grade`, with the environment's limits.
    fn grade_group(&mut self) -> io::Result<Group> {
        if let Some(g) = &self.grade_group {
            return Ok(g.clone());
        }
        let l = &self.cfg.spec.limits;
        let limits = crate::sandbox::cgroup::Limits {
            memory_bytes: l.memory_bytes,
            pids: l.pids,
            cpu_millicores: l.cpu_millicores,
        };
        let g = self
            .cg
            .create_env(&format!("{}.grade", self.cfg.spec.id), &limits)
            .map_err(|e| io::Error::other(format!("grading cgroup: {e}")))?;
        self.grade_group = Some(g.clone());
        Ok(g)
    }

    /// Kills the processes started by entering a booted environment and reaps them (bounded): they are our
    /// children, and their zombies would keep the environment's cgroup from emptying.
    pub(crate) fn reap_entered(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        for hp in self.entered.keys() {
            // SAFETY: signalling our own unreaped child.
            unsafe { libc::kill(*hp, libc::SIGKILL) };
        }
        while !self.entered.is_empty() && Instant::now() < deadline {
            self.entered.retain(|hp, _| {
                !matches!(
                    waitpid(Pid::from_raw(*hp), Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::Exited(..)) | Ok(WaitStatus::Signaled(..)) | Err(_)
                )
            });
            if !self.entered.is_empty() {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    }

    fn destroy(&mut self, id: u64) {
        let killed = self.cg.procs(&self.env_group).map(|p| p.len() as u32).unwrap_or(0);
        self.end_dials();
        for (cid, c) in self.conns.iter_mut() {
            if *cid != id && matches!(c.mode, Mode::Attached(_)) {
                c.reply(&Reply::Ended);
            }
            c.flush();
        }
        self.reap_entered(Duration::from_secs(2));
        let killed_ok = self.cg.kill_all(&self.env_group, Duration::from_secs(10));
        if let Some(g) = self.grade_group.take() {
            let _ = self.cg.kill_all(&g, Duration::from_secs(10));
            let _ = self.cg.remove(&g, Duration::from_secs(10));
        }
        // Init is our child: reap it (the cgroup kill took it and everything in its pid namespace), and whatever of
        // ours was left in its namespace, for which it waits.
        let _ = super::create::reap_until(self.state.init_pid);
        self.init_alive = false;
        let reply = match killed_ok {
            Ok(()) => Reply::Destroyed { killed },
            Err(e) => Reply::Error { code: "destroy_failed".into(), message: e.to_string() },
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.reply(&reply);
            c.flush_blocking(Duration::from_secs(2));
        }
        // The runtime removes the state directory, the cgroups and the uid claim once this process has exited.
        self.destroyed = Some(0);
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

fn lost(why: &str) -> Reply {
    Reply::Error { code: "environment_lost".into(), message: why.to_string() }
}
