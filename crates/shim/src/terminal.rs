//! Terminals: a PTY of the container's own devpts, the shell on it, and its scrollback.
//!
//! The shim holds every master, so a shell outlives any client, and the scrollback ring keeps the last output for
//! the replay on attach. A PTY is opened from the container's `/dev/ptmx` (its own devpts instance); its slave is
//! opened from the master (`TIOCGPTPEER`), never by a path.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::time::Instant;

use examroom_runtime::ring::Ring;

use crate::process::{self, Spawn};

/// Scrollback kept per terminal (the sandbox backend's default).
pub const SCROLLBACK_BYTES: usize = 256 * 1024;

/// One terminal.
pub struct Term {
    /// `main`, or `t<n>` for the ones opened later.
    pub name: String,
    /// The PTY's master (non-blocking).
    pub master: OwnedFd,
    /// The last output.
    pub ring: Ring,
    /// The shell's pid, while it runs.
    pub shell: Option<i32>,
    /// When the current shell was started.
    pub shell_started: Instant,
    /// When a new shell is due (the last one exited).
    pub respawn_at: Option<Instant>,
    /// The connection attached to it.
    pub attached: Option<u64>,
    /// Its size.
    pub cols: u16,
    /// Its size.
    pub rows: u16,
    /// Shells started after the first one exited.
    pub restarts: u32,
    /// No slave is open (the shell exited): reads would spin on EIO.
    pub hup: bool,
    /// Keystrokes the PTY has not taken yet.
    pub input: VecDeque<u8>,
}

impl Term {
    /// Opens a PTY of the given size; the shell is started with [`Term::start_shell`].
    pub fn open(name: String, cols: u16, rows: u16) -> io::Result<Term> {
        let master = open_pty().map_err(|e| io::Error::new(e.kind(), format!("open a terminal (/dev/ptmx): {e}")))?;
        set_winsize(master.as_raw_fd(), cols, rows)?;
        nix::fcntl::fcntl(master.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK))
            .map_err(io::Error::from)?;
        Ok(Term {
            name,
            master,
            ring: Ring::new(SCROLLBACK_BYTES),
            shell: None,
            shell_started: Instant::now(),
            respawn_at: None,
            attached: None,
            cols,
            rows,
            restarts: 0,
            hup: false,
            input: VecDeque::new(),
        })
    }

    /// Starts a login shell on a fresh slave of this terminal.
    pub fn start_shell(&mut self, env: &[(OsString, OsString)], cwd: &str) -> io::Result<()> {
        let slave = pty_peer(&self.master)?;
        let stdio = [slave.try_clone()?, slave.try_clone()?, slave];
        let argv = process::login_shell();
        let pid = process::spawn(Spawn { argv: &argv, env, cwd, stdio, tty: true })
            .map_err(|e| io::Error::new(e.kind(), format!("start the shell: {e}")))?;
        self.shell = Some(pid);
        self.shell_started = Instant::now();
        self.hup = false;
        Ok(())
    }

    /// Sets the size (clamped as in the sandbox backend); the shell gets SIGWINCH.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let (cols, rows) = (cols.clamp(2, 1000), rows.clamp(2, 1000));
        if set_winsize(self.master.as_raw_fd(), cols, rows).is_ok() {
            self.cols = cols;
            self.rows = rows;
        }
    }
}

/// Opens a new PTY master from the container's devpts and unlocks its slave.
fn open_pty() -> io::Result<OwnedFd> {
    let f = std::fs::File::options().read(true).write(true).custom_flags(libc::O_NOCTTY).open("/dev/ptmx")?;
    let master = OwnedFd::from(f);
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK with a pointer to an int, on our own master.
    if unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(master)
}

/// `TIOCGPTPEER`: opens the slave of a PTY from its master.
fn pty_peer(master: &OwnedFd) -> io::Result<OwnedFd> {
    const TIOCGPTPEER: libc::c_ulong = 0x5441;
    // SAFETY: ioctl on a descriptor we own; the result is checked.
    let fd = unsafe { libc::ioctl(master.as_raw_fd(), TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("open the terminal's slave: {e}")));
    }
    // SAFETY: the kernel returned a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Sets a terminal's window size.
fn set_winsize(fd: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: ws is a valid winsize.
    if unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &ws) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
