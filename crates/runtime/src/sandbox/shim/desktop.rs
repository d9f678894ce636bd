//! `StartDesktop` (protocol version 3): the environment's graphical desktop.
//!
//! Two processes, both started through init like any other (namespaces, capabilities, seccomp filter of the
//! environment):
//! - the **X server with its VNC server**, TigerVNC's `Xvnc`, listening on the environment's own loopback only
//!   (`-localhost`, no X over TCP). It is moved into the environment's [`DESKTOP_LEAF`] group, beside the candidate's
//!   processes, and keeps init's OOM score, while every candidate process is the OOM killer's first choice: a memory
//!   hog in the environment is killed before the X server. What it prints is kept (the last [`LOG_BYTES`]) to say why
//!   it ended.
//! - the **desktop session**, with the candidate's processes: a window manager (openbox) and a terminal emulator
//!   (xterm, opened again when closed). A shell started from it is the candidate's like any other: in the
//!   environment's group, under its limits, frozen at grading.
//!
//! The VNC server has no password: only the shim can reach the environment's loopback from outside (`Dial`), and the
//! server lets only the session's owner through. When the X server ends (the candidate killed it), the session is
//! ended too; the next `StartDesktop` (every desktop connection asks for one) starts both again.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Instant;

use super::serve::Shim;
use crate::protocol::{DesktopSpec, DesktopStatus, Reply};
use crate::ring::Ring;
use crate::sandbox::init::{FromInit, ToInit};

/// What the X server printed last is kept up to this size.
pub(crate) const LOG_BYTES: usize = 4096;

/// The X display the desktop uses.
const DISPLAY: &str = ":0";

/// The desktop session: waits (bounded) for the X server's socket, starts the window manager, and keeps a terminal
/// emulator open.
const SESSION: &str = "i=0; while [ ! -S /tmp/.X11-unix/X0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
openbox >/dev/null 2>&1 &
while :; do xterm -title Terminal -geometry 110x34+40+40 -fa Monospace -fs 11 -bg black -fg white; sleep 1; done";

/// The desktop of one environment.
pub(crate) struct Desktop {
    pub spec: DesktopSpec,
    /// The X server's process id (the shim's numbering), while it runs.
    pub xserver: Option<u64>,
    /// The session's process id, while it runs.
    pub session: Option<u64>,
    /// The read end of the X server's output.
    pub log_fd: Option<OwnedFd>,
    pub log: Ring,
    /// Times the X server was started again after it ended.
    pub restarts: u32,
    /// Why the X server is not running.
    pub error: Option<String>,
    pub started: Instant,
}

impl Desktop {
    pub fn status(&self) -> DesktopStatus {
        DesktopStatus {
            state: if self.xserver.is_some() { "running".into() } else { "exited".into() },
            port: self.spec.port,
            restarts: self.restarts,
            error: self.error.clone(),
        }
    }

    fn log_tail(&self) -> String {
        let (a, b) = self.log.slices();
        let all = [a, b].concat();
        let text = String::from_utf8_lossy(&all).into_owned();
        // The last few lines say why it ended.
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(6)..].join("\n")
    }
}

impl Shim {
    /// `StartDesktop`: starts what is not running of the desktop, and answers with its state.
    pub(super) fn start_desktop(&mut self, spec: DesktopSpec) -> Reply {
        if let Some(why) = self.lost_reason() {
            return Reply::Error { code: "environment_lost".into(), message: why };
        }
        if self.booted || self.graded_boot || self.entry.is_some() {
            return Reply::Error {
                code: "desktop_unsupported".into(),
                message: "a desktop is not available in a `system` environment".into(),
            };
        }
        if spec.width < 320 || spec.height < 200 || spec.width > 4096 || spec.height > 4096 || spec.port == 0 {
            return Reply::Error {
                code: "bad_request".into(),
                message: "the desktop's size must be 320x200 to 4096x4096, on a port other than 0".into(),
            };
        }
        let mut desktop = self.desktop.take().unwrap_or_else(|| Desktop {
            spec: spec.clone(),
            xserver: None,
            session: None,
            log_fd: None,
            log: Ring::new(LOG_BYTES),
            restarts: 0,
            error: None,
            started: Instant::now(),
        });
        let result = self.start_missing(&mut desktop);
        let reply = match result {
            Ok(()) => Reply::Desktop(desktop.status()),
            Err(e) => {
                desktop.error = Some(e.to_string());
                Reply::Error { code: "desktop_failed".into(), message: e.to_string() }
            }
        };
        self.desktop = Some(desktop);
        reply
    }

    fn start_missing(&mut self, d: &mut Desktop) -> io::Result<()> {
        if d.xserver.is_none() {
            let first = d.log_fd.is_none() && d.error.is_none();
            self.start_xserver(d)?;
            if !first {
                d.restarts += 1;
            }
            d.error = None;
        }
        if d.session.is_none() {
            let devnull = open_devnull()?;
            let mut env = self.candidate_env();
            env.push(("DISPLAY".into(), DISPLAY.into()));
            let argv = vec!["/bin/sh".into(), "-c".into(), SESSION.into()];
            let (id, _) = self.spawn_in_init(argv, env, [&devnull, &devnull, &devnull], false)?;
            d.session = Some(id);
        }
        Ok(())
    }

    fn start_xserver(&mut self, d: &mut Desktop) -> io::Result<()> {
        let leaf = self
            .cg
            .create_desktop_leaf(&self.env_group)
            .map_err(|e| io::Error::other(format!("the desktop's cgroup: {e}")))?;
        let (log_r, log_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        nix::fcntl::fcntl(log_r.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
        let devnull = open_devnull()?;
        let geometry = format!("{}x{}", d.spec.width, d.spec.height);
        let argv: Vec<String> = [
            "Xvnc",
            DISPLAY,
            "-geometry",
            &geometry,
            "-depth",
            "24",
            "-SecurityTypes",
            "None",
            "-localhost",
            "-rfbport",
            &d.spec.port.to_string(),
            "-nolisten",
            "tcp",
            "-desktop",
            "examroom",
            "-AlwaysShared",
            // Readiness probes (and reconnects) open and close connections without a handshake; the VNC server must
            // never take them for an attack and blacklist the loopback (it then answers "RFB 003.003" and refuses).
            "-BlacklistThreshold",
            "1000000",
            "-BlacklistTimeout",
            "0",
            "-Log",
            "*:stderr:30",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let env = self.candidate_env();
        let (id, ns_pid) = self.spawn_in_init(argv, env, [&devnull, &log_w, &log_w], true).map_err(|e| {
            io::Error::other(format!("start the X server (Xvnc; is TigerVNC installed in the base?): {e}"))
        })?;
        drop(log_w);
        d.xserver = Some(id);
        d.log_fd = Some(log_r);
        d.started = Instant::now();
        // Into the desktop's group: its host pid is found by its pid in the environment's namespace.
        let moved = self
            .host_pid_of(ns_pid)
            .ok_or_else(|| io::Error::other("the X server is not in the environment's group"))
            .and_then(|hp| self.cg.add_process(&leaf, hp).map_err(|e| io::Error::other(e.to_string())));
        if let Err(e) = moved {
            let _ = crate::sandbox::init::send(self.ctl_fd(), &ToInit::Kill { id, signal: libc::SIGKILL }, &[]);
            d.xserver = None;
            return Err(io::Error::other(format!("moving the X server into the desktop's cgroup: {e}")));
        }
        Ok(())
    }

    /// Spawns a process through init with three descriptors; returns its id and its pid in the environment.
    fn spawn_in_init(
        &mut self,
        argv: Vec<String>,
        env: Vec<(String, String)>,
        fds: [&OwnedFd; 3],
        keep_oom_score: bool,
    ) -> io::Result<(u64, i32)> {
        let id = self.next_proc_id();
        let msg = ToInit::Spawn { id, argv, env, cwd: "/root".into(), tty: false, keep_oom_score };
        match self.init_call(&msg, &[fds[0].as_raw_fd(), fds[1].as_raw_fd(), fds[2].as_raw_fd()])? {
            (FromInit::Spawned { pid, .. }, _) => Ok((id, pid)),
            (FromInit::SpawnFailed { error, .. }, _) => Err(io::Error::other(error)),
            (other, _) => Err(io::Error::other(format!("unexpected answer from init: {other:?}"))),
        }
    }

    /// The host pid of the environment's process `ns_pid` (its pid in the environment's own pid namespace, as init
    /// reports it): `NSpid` lists a process's pid in each namespace from the host's inward, so the environment's is
    /// the second (the shim is in the host's). A candidate's process in a namespace nested deeper may have the same
    /// innermost pid, never the same second one.
    fn host_pid_of(&self, ns_pid: i32) -> Option<i32> {
        let pids = self.cg.procs(&self.env_group).ok()?;
        pids.into_iter().find(|hp| {
            std::fs::read_to_string(format!("/proc/{hp}/status")).ok().is_some_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("NSpid:"))
                    .and_then(|v| v.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok()))
                    == Some(ns_pid)
            })
        })
    }

    /// A process of the desktop ended; true if it was one.
    pub(super) fn desktop_exit(&mut self, id: u64, code: Option<i32>, signal: Option<i32>) -> bool {
        let Some(d) = self.desktop.as_mut() else { return false };
        if d.xserver == Some(id) {
            d.xserver = None;
            self.read_desktop_log();
            let Some(d) = self.desktop.as_mut() else { return true };
            let how = match (code, signal) {
                (Some(c), _) => format!("exited with status {c}"),
                (_, Some(s)) => format!("was killed by signal {s}"),
                _ => "ended".into(),
            };
            let tail = d.log_tail();
            d.error = Some(if tail.is_empty() {
                format!("the X server {how}")
            } else {
                format!("the X server {how}: {tail}")
            });
            eprintln!("examroom shim: desktop: {}", d.error.as_deref().unwrap_or_default());
            // The session cannot outlive its display: end it (its terminal's shells get their hang-up).
            if let Some(s) = d.session {
                let _ = crate::sandbox::init::send(self.ctl_fd(), &ToInit::Kill { id: s, signal: libc::SIGKILL }, &[]);
            }
            return true;
        }
        if d.session == Some(id) {
            d.session = None;
            return true;
        }
        false
    }

    /// Reads what the X server printed into its ring.
    pub(super) fn read_desktop_log(&mut self) {
        let Some(d) = self.desktop.as_mut() else { return };
        let Some(fd) = &d.log_fd else { return };
        let mut buf = [0u8; 4096];
        loop {
            match nix::unistd::read(fd.as_raw_fd(), &mut buf) {
                Ok(0) => {
                    d.log_fd = None;
                    return;
                }
                Ok(n) => d.log.push(&buf[..n]),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(nix::errno::Errno::EAGAIN) => return,
                Err(_) => {
                    d.log_fd = None;
                    return;
                }
            }
        }
    }
}

fn open_devnull() -> io::Result<OwnedFd> {
    Ok(OwnedFd::from(std::fs::OpenOptions::new().read(true).write(true).open("/dev/null")?))
}
