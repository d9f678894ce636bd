//! `examroom sandbox shell|list`: a person's way into the sandbox backend, without the server.
//!
//! `sandbox shell` attaches the host terminal to an environment's shell, as `ssh` or `docker run -it` do:
//! - the host terminal is in raw mode while attached; its settings, and the modes that programs inside switched on
//!   (alternate screen, mouse reporting, bracketed paste, application keys, a hidden cursor...), are put back on every
//!   way out: leaving, the environment ending, an error, SIGTERM, SIGINT or SIGHUP, a panic;
//! - the environment's terminal takes the host terminal's size, at the start and on every SIGWINCH;
//! - ssh's escapes, recognised only right after Enter (and at the start), are the way out: `~.` leaves (destroys the
//!   environment, or with `--keep` detaches and leaves it running), `~?` lists the escapes, `~~` types one `~`. Every
//!   other key, Ctrl-] and Ctrl-C included, goes to the environment: editors and shells lose none of theirs.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{
    Base, EnvironmentSpec, EnvironmentState, ExecutionRuntime, RuntimeError, Terminal, TerminalEvent,
};
use futures::FutureExt;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncWriteExt, Interest};
use tokio::signal::unix::{signal, Signal, SignalKind};

/// A line on standard error that never panics: the terminal may have hung up, and what follows must still run (the
/// environment is destroyed after a hangup too).
macro_rules! note {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The attached terminal of an environment.
const TERMINAL: &str = "main";

/// What `sandbox shell` was asked to do.
pub struct ShellArgs {
    /// Where environments keep their state.
    pub state_dir: PathBuf,
    /// The runtime instance's label.
    pub label: String,
    /// `host` or `rootfs:/PATH` (for a new environment).
    pub base: String,
    /// Leave the environment running when this command ends (instead of destroying it).
    pub keep: bool,
    /// Attach to this existing environment instead of creating one.
    pub attach: Option<EnvironmentId>,
}

pub async fn run(args: ShellArgs) -> Result<()> {
    // SAFETY: isatty only inspects a descriptor.
    if unsafe { libc::isatty(libc::STDIN_FILENO) } != 1 {
        bail!(
            "standard input is not a terminal: `examroom sandbox shell` attaches your terminal to the environment's \
             shell, so run it from an interactive terminal (with ssh, use `ssh -t`)"
        );
    }
    let state_dir = std::path::absolute(&args.state_dir).context("--state-dir")?;
    let rt = SandboxRuntime::new(SandboxConfig::new(&state_dir, &args.label))?;
    // Caught from now on (and answered once the environment exists): a signal must not leave one behind.
    let mut signals = Signals::new()?;
    let id = match args.attach {
        Some(id) => {
            let where_ = format!("under label {} in {}", args.label, state_dir.display());
            match rt.status(&id).await {
                Ok(st) => match st.state {
                    EnvironmentState::Lost { reason } => {
                        bail!("environment {id} {where_} is lost ({reason}); `examroom sandbox list --reap` removes it")
                    }
                    _ => id,
                },
                Err(RuntimeError::NotFound) => {
                    bail!("no environment {id} {where_}; `examroom sandbox list` shows those there are")
                }
                Err(e) => return Err(anyhow::Error::new(e).context(format!("environment {id}"))),
            }
        }
        None => {
            let id = EnvironmentId::new_v4();
            let (cols, rows) = host_size(libc::STDIN_FILENO).unwrap_or((80, 24));
            let mut spec = EnvironmentSpec::new(id);
            spec.base = Base::parse(&args.base)?;
            spec.cols = cols;
            spec.rows = rows;
            let t0 = std::time::Instant::now();
            rt.create(spec).await.context("create the environment")?;
            note!("environment {id} ready in {} ms", t0.elapsed().as_millis());
            id
        }
    };
    let leave =
        if args.keep { "detaches (the environment keeps running)" } else { "leaves and destroys the environment" };
    note!("Enter ~ . {leave}; Enter ~ ? lists the escapes; every other key goes to the environment.");

    let exit = match signals.stop.pending() {
        Some(sig) => Exit::Signal(sig),
        None => attached(&rt, &id, &mut signals, args.keep).await,
    };

    let reattach =
        format!("examroom sandbox shell --state-dir {} --label {} --attach {id}", state_dir.display(), args.label);
    let destroy = match &exit {
        Exit::Leave => {
            note!();
            !args.keep
        }
        Exit::Replaced => {
            note!("\nanother client attached to environment {id}; it keeps running");
            return Ok(());
        }
        Exit::Ended => {
            note!("\nenvironment {id} ended");
            match rt.destroy(&id).await {
                Ok(_) | Err(RuntimeError::NotFound) => return Ok(()),
                Err(e) => bail!("clean up environment {id}: {e}"),
            }
        }
        Exit::HostGone => !args.keep,
        Exit::Signal(sig) => {
            note!("\n{}", signal_name(*sig));
            !args.keep
        }
        Exit::Failed(_) => !args.keep,
    };
    let done = if destroy {
        destroy_environment(&rt, &id, &mut signals, &state_dir, &args.label).await
    } else {
        note!(
            "detached; environment {id} keeps running. Back to it (where Enter ~ . destroys it; add --keep to detach"
        );
        note!("again):\n  {reattach}");
        Ok(())
    };
    let code = match exit {
        Exit::Failed(e) => {
            if let Err(d) = done {
                note!("examroom: {d:#}");
            }
            return Err(e);
        }
        Exit::Signal(sig) => 128 + sig,
        Exit::HostGone => 128 + libc::SIGHUP,
        _ => return done,
    };
    if let Err(d) = done {
        note!("examroom: {d:#}");
    }
    std::process::exit(code)
}

/// Why the host terminal was let go.
enum Exit {
    /// `~.` was typed.
    Leave,
    /// A newer attach took the terminal over.
    Replaced,
    /// The environment ended (destroyed elsewhere, or lost).
    Ended,
    /// The host terminal hung up.
    HostGone,
    /// SIGTERM, SIGINT or SIGHUP.
    Signal(i32),
    /// Attaching or relaying failed, or a panic.
    Failed(anyhow::Error),
}

/// Attaches, puts the host terminal in raw mode, relays until something ends it, and puts the host terminal back as
/// it was (also when the relay panics).
async fn attached(rt: &SandboxRuntime, id: &EnvironmentId, signals: &mut Signals, keep: bool) -> Exit {
    let mut term = match rt.attach(id, TERMINAL).await {
        Ok(t) => t,
        Err(e) => return Exit::Failed(anyhow::Error::new(e).context(format!("attach to environment {id}"))),
    };
    let input = match HostInput::open() {
        Ok(i) => i,
        Err(e) => return Exit::Failed(e),
    };
    let raw = match RawMode::enter(libc::STDIN_FILENO) {
        Ok(r) => r,
        Err(e) => return Exit::Failed(anyhow::Error::new(e).context("put the terminal in raw mode")),
    };
    let mut modes = Modes::default();
    let relay = relay(rt, id, &mut term, &input, signals, &mut modes, keep);
    let exit = match std::panic::AssertUnwindSafe(relay).catch_unwind().await {
        Ok(exit) => exit,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Exit::Failed(anyhow::anyhow!("internal error: {what}"))
        }
    };
    // Switch off what the programs inside switched on, then give the terminal its settings back.
    let mut out = std::io::stdout();
    let _ = out.write_all(&modes.reset());
    let _ = out.flush();
    drop(raw);
    exit
}

/// Copies keystrokes in and output out; answers escapes, resizes and signals.
async fn relay(
    rt: &SandboxRuntime,
    id: &EnvironmentId,
    term: &mut Terminal,
    input: &HostInput,
    signals: &mut Signals,
    modes: &mut Modes,
    keep: bool,
) -> Exit {
    let mut stdout = tokio::io::stdout();
    let mut escapes = Escapes::new();
    let mut size = None;
    let mut buf = [0u8; 4096];
    // The host terminal may have changed size since the environment was made (or this is a re-attach).
    let mut resize_now = true;
    loop {
        if std::mem::take(&mut resize_now) {
            let now = host_size(libc::STDIN_FILENO);
            if let Some((cols, rows)) = now.filter(|_| now != size) {
                size = now;
                if let Err(e) = rt.resize(id, TERMINAL, cols, rows).await {
                    return Exit::Failed(anyhow::Error::new(e).context("resize the environment's terminal"));
                }
            }
        }
        tokio::select! {
            biased;
            sig = signals.stop.next() => return Exit::Signal(sig),
            _ = signals.winch.recv() => resize_now = true,
            n = input.read(&mut buf) => match n {
                Ok(0) | Err(_) => return Exit::HostGone,
                Ok(n) => {
                    for step in escapes.feed(&buf[..n]) {
                        match step {
                            Step::Send(bytes) => {
                                if let Err(e) = term.input.write(&bytes).await {
                                    return Exit::Failed(anyhow::Error::new(e).context("send keys"));
                                }
                            }
                            Step::Help => say(&help(keep)),
                            Step::Leave => return Exit::Leave,
                        }
                    }
                }
            },
            ev = term.output.next() => match ev {
                Ok(Some(TerminalEvent::Output(b))) => {
                    modes.feed(&b);
                    if stdout.write_all(&b).await.is_err() || stdout.flush().await.is_err() {
                        return Exit::HostGone;
                    }
                }
                Ok(Some(TerminalEvent::Notice(m))) => {
                    say(&format!("[examroom] {m} (Enter ~ . {})", if keep { "detaches" } else { "leaves" }))
                }
                Ok(Some(TerminalEvent::Replaced)) => return Exit::Replaced,
                Ok(Some(TerminalEvent::Ended)) | Ok(None) => return Exit::Ended,
                Err(e) => return Exit::Failed(anyhow::Error::new(e).context("read the terminal")),
            },
        }
    }
}

/// A line on the host terminal (in raw mode: `\r\n`), never sent inside.
fn say(text: &str) {
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\n{}\r\n", text.replace('\n', "\r\n"));
    let _ = err.flush();
}

fn help(keep: bool) -> String {
    let dot = if keep { "detach; the environment keeps running" } else { "leave and destroy the environment" };
    format!(
        "[examroom] escapes, recognised right after Enter:\n  ~.  {dot}\n  ~?  this help\n  ~~  type a single ~\n\
         Everything else (Ctrl-C, Ctrl-], Ctrl-Z...) goes to the environment."
    )
}

/// Destroys the environment. SIGTERM and SIGHUP no longer interrupt (a hangup often brings both, and twice); SIGINT
/// does, for a person who will not wait.
async fn destroy_environment(
    rt: &SandboxRuntime,
    id: &EnvironmentId,
    signals: &mut Signals,
    state_dir: &Path,
    label: &str,
) -> Result<()> {
    note!("destroying environment {id}...");
    tokio::select! {
        r = rt.destroy(id) => {
            let report = r.with_context(|| format!("destroy environment {id}"))?;
            note!("destroyed {id}: {} processes killed, verified in {} ms", report.killed, report.duration_ms);
            Ok(())
        }
        _ = signals.stop.int.recv() => {
            let (dir, label) = (state_dir.display(), label);
            bail!(
                "SIGINT while destroying environment {id}: it may be left. `examroom sandbox list --state-dir {dir} \
                 --label {label}` shows it; `examroom sandbox shell --state-dir {dir} --label {label} --attach {id}` \
                 then Enter ~ . destroys it, or `sandbox list ... --reap` if it is lost"
            )
        }
    }
}

/// The signals `sandbox shell` answers. Once made, their default action (ending the process at once) is replaced.
struct Signals {
    winch: Signal,
    stop: Stops,
}

/// SIGTERM, SIGINT and SIGHUP.
struct Stops {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn new() -> Result<Signals> {
        let on = |k: SignalKind| signal(k).context("install signal handlers");
        Ok(Signals {
            winch: on(SignalKind::window_change())?,
            stop: Stops {
                term: on(SignalKind::terminate())?,
                int: on(SignalKind::interrupt())?,
                hup: on(SignalKind::hangup())?,
            },
        })
    }
}

impl Stops {
    /// The next SIGTERM, SIGINT or SIGHUP. Cancel-safe.
    async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.term.recv() => libc::SIGTERM,
            _ = self.int.recv() => libc::SIGINT,
            _ = self.hup.recv() => libc::SIGHUP,
        }
    }

    /// One that already came.
    fn pending(&mut self) -> Option<i32> {
        self.next().now_or_never()
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGTERM => "SIGTERM",
        libc::SIGINT => "SIGINT",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The host terminal's size as (columns, rows).
fn host_size(fd: RawFd) -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills a winsize.
    if unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 1 && ws.ws_row > 1 {
        Some((ws.ws_col, ws.ws_row))
    } else {
        None
    }
}

/// Keystrokes from the host terminal, read without blocking a thread (so leaving never waits for a key). The
/// terminal is opened again, with its own non-blocking open file: the shell that started us shares standard input's,
/// and must not find it non-blocking afterwards.
struct HostInput(AsyncFd<File>);

impl HostInput {
    fn open() -> Result<HostInput> {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open("/proc/self/fd/0")
            .context("open the terminal of standard input")?;
        // SAFETY: the descriptor is the `File`'s own, open, and stays so while the `AsyncFd` owns the `File`.
        let fd = unsafe { AsyncFd::register_with_interest(tty, Interest::READABLE) };
        Ok(HostInput(fd.map_err(std::io::Error::from).context("watch the terminal")?))
    }

    /// Cancel-safe.
    async fn read(&self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let mut ready = self.0.readable().await?;
            match ready.try_io(|f| f.get_ref().read(buf)) {
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Ok(r) => return r,
                Err(_would_block) => continue,
            }
        }
    }
}

/// The host terminal's settings, saved when raw mode was entered, for `RawMode`'s drop and for the panic hook.
static SAVED: Mutex<Option<(RawFd, libc::termios)>> = Mutex::new(None);

/// The host terminal in raw mode; dropping this (or a panic, through the hook) puts its settings back.
struct RawMode;

impl RawMode {
    fn enter(fd: RawFd) -> std::io::Result<RawMode> {
        // SAFETY: a zeroed termios is a valid value for tcgetattr to fill.
        let mut saved: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: tcgetattr fills the termios it is given.
        if unsafe { libc::tcgetattr(fd, &mut saved) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        *SAVED.lock().unwrap_or_else(|p| p.into_inner()) = Some((fd, saved));
        static HOOK: std::sync::Once = std::sync::Once::new();
        HOOK.call_once(|| {
            let next = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                // Before the message, so that it is readable; the relay then cleans up as for any error.
                restore_saved();
                next(info)
            }));
        });
        let mut raw = saved;
        // SAFETY: cfmakeraw edits the termios it is given.
        unsafe { libc::cfmakeraw(&mut raw) };
        raw.c_cc[libc::VMIN] = 1;
        raw.c_cc[libc::VTIME] = 0;
        // SAFETY: tcsetattr reads the termios it is given.
        if unsafe { libc::tcsetattr(fd, libc::TCSANOW, &raw) } != 0 {
            let e = std::io::Error::last_os_error();
            restore_saved();
            return Err(e);
        }
        Ok(RawMode)
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore_saved();
    }
}

fn restore_saved() {
    let saved = match SAVED.try_lock() {
        Ok(mut g) => g.take(),
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().take(),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some((fd, t)) = saved {
        // SAFETY: tcsetattr reads the termios it is given.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &t) };
    }
}

/// What a chunk of keystrokes asks for.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Keys for the environment.
    Send(Vec<u8>),
    /// `~?`: the escapes, on the host terminal.
    Help,
    /// `~.`: leave (what follows it is dropped).
    Leave,
}

const PASTE_START: &[u8; 6] = b"\x1b[200~";
const PASTE_END: &[u8; 6] = b"\x1b[201~";

/// ssh's escapes: a `~` right after Enter (or first of all) is held until the next key says what it is. Text pasted
/// into a program that asked for bracketed paste never holds an escape.
struct Escapes {
    line_start: bool,
    tilde: bool,
    in_paste: bool,
    recent: [u8; 6],
}

impl Escapes {
    fn new() -> Escapes {
        Escapes { line_start: true, tilde: false, in_paste: false, recent: [0; 6] }
    }

    fn feed(&mut self, bytes: &[u8]) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut send = Vec::new();
        let flush = |send: &mut Vec<u8>, steps: &mut Vec<Step>| {
            if !send.is_empty() {
                steps.push(Step::Send(std::mem::take(send)));
            }
        };
        for &b in bytes {
            self.recent.rotate_left(1);
            self.recent[5] = b;
            if std::mem::take(&mut self.tilde) {
                match b {
                    b'.' => {
                        flush(&mut send, &mut steps);
                        steps.push(Step::Leave);
                        return steps;
                    }
                    b'?' => {
                        flush(&mut send, &mut steps);
                        steps.push(Step::Help);
                        self.line_start = true;
                        continue;
                    }
                    b'~' => {
                        send.push(b'~');
                        self.line_start = false;
                        continue;
                    }
                    // Not an escape: the `~` goes in, and this key is an ordinary one.
                    _ => send.push(b'~'),
                }
            } else if b == b'~' && self.line_start && !self.in_paste {
                self.tilde = true;
                continue;
            }
            send.push(b);
            self.line_start = b == b'\r' || b == b'\n';
            if &self.recent == PASTE_START {
                self.in_paste = true;
            } else if &self.recent == PASTE_END {
                self.in_paste = false;
            }
        }
        flush(&mut send, &mut steps);
        steps
    }
}

/// DEC private modes that are off until a program switches them on: application cursor keys, reverse video,
/// origin mode, the alternate screens, mouse reporting, focus events, bracketed paste.
const OFF_BY_DEFAULT: &[u16] = &[1, 5, 6, 47, 1047, 1049, 9, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1015, 2004];
/// DEC private modes that are on until a program switches them off: autowrap, the visible cursor.
const ON_BY_DEFAULT: &[u16] = &[7, 25];

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum Parse {
    #[default]
    Ground,
    Esc,
    Csi,
}

/// Follows the output for the terminal modes that programs inside change, so that leaving puts the host terminal
/// back even when the program that changed them never ran its own cleanup (it was killed with its environment).
#[derive(Default)]
struct Modes {
    /// DEC private modes away from their default.
    changed: BTreeSet<u16>,
    keypad: bool,
    insert: bool,
    scroll_region: bool,
    parse: Parse,
    private: bool,
    params: Vec<u16>,
}

impl Modes {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match (self.parse, b) {
                (_, 0x1b) => self.parse = Parse::Esc,
                // CAN and SUB abort a sequence.
                (_, 0x18 | 0x1a) => self.parse = Parse::Ground,
                (Parse::Ground, _) => {}
                (Parse::Esc, b'[') => {
                    self.parse = Parse::Csi;
                    self.private = false;
                    self.params.clear();
                }
                (Parse::Esc, b) => {
                    match b {
                        b'=' => self.keypad = true,
                        b'>' => self.keypad = false,
                        // RIS: the terminal is reset to its defaults.
                        b'c' => {
                            self.changed.clear();
                            self.keypad = false;
                            self.insert = false;
                            self.scroll_region = false;
                        }
                        _ => {}
                    }
                    self.parse = Parse::Ground;
                }
                (Parse::Csi, b'?') if self.params.is_empty() => self.private = true,
                (Parse::Csi, b'0'..=b'9') => {
                    if self.params.is_empty() {
                        self.params.push(0);
                    }
                    let p = self.params.last_mut().expect("one parameter at least");
                    *p = p.saturating_mul(10).saturating_add(u16::from(b - b'0'));
                }
                (Parse::Csi, b';') => {
                    if self.params.is_empty() {
                        self.params.push(0);
                    }
                    self.params.push(0);
                }
                // Other parameter and intermediate bytes.
                (Parse::Csi, 0x20..=0x3f) => {}
                (Parse::Csi, 0x40..=0x7e) => {
                    self.dispatch(b);
                    self.parse = Parse::Ground;
                }
                // Control characters inside a sequence are executed, the sequence goes on.
                (Parse::Csi, _) => {}
            }
        }
    }

    fn dispatch(&mut self, fin: u8) {
        let on = match fin {
            b'h' => true,
            b'l' => false,
            b'r' if !self.private => {
                self.scroll_region = self.params.iter().any(|&p| p != 0);
                return;
            }
            _ => return,
        };
        for &p in &self.params {
            if !self.private {
                if p == 4 {
                    self.insert = on;
                }
            } else if OFF_BY_DEFAULT.contains(&p) {
                if on {
                    self.changed.insert(p);
                } else {
                    self.changed.remove(&p);
                }
            } else if ON_BY_DEFAULT.contains(&p) {
                if on {
                    self.changed.remove(&p);
                } else {
                    self.changed.insert(p);
                }
            }
        }
    }

    /// The bytes that put every changed mode back to its default (the alternate screen first), and reset colours.
    fn reset(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let screens = [1049, 1047, 47];
        for m in screens.iter().chain(self.changed.iter().filter(|m| !screens.contains(m))) {
            if self.changed.contains(m) {
                let set = if ON_BY_DEFAULT.contains(m) { 'h' } else { 'l' };
                out.extend_from_slice(format!("\x1b[?{m}{set}").as_bytes());
            }
        }
        if self.keypad {
            out.extend_from_slice(b"\x1b>");
        }
        if self.insert {
            out.extend_from_slice(b"\x1b[4l");
        }
        if self.scroll_region {
            // Setting the margins homes the cursor: keep it where it is.
            out.extend_from_slice(b"\x1b7\x1b[r\x1b8");
        }
        out.extend_from_slice(b"\x1b[0m");
        out
    }
}

pub async fn list(state_dir: PathBuf, label: &str, reap: bool) -> Result<()> {
    let rt = SandboxRuntime::new(SandboxConfig::new(state_dir, label))?;
    if reap {
        let n = rt.reap_lost().await?;
        println!("removed {n} lost environments");
    }
    for s in rt.list().await? {
        println!("{}\t{:?}\tprocesses={}\tshell_restarts={}", s.id, s.state, s.processes, s.shell_restarts);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(steps: &[Step]) -> Vec<u8> {
        steps
            .iter()
            .flat_map(|s| match s {
                Step::Send(b) => b.clone(),
                _ => Vec::new(),
            })
            .collect()
    }

    #[test]
    fn tilde_dot_after_enter_or_first_leaves() {
        let mut e = Escapes::new();
        assert_eq!(e.feed(b"~."), vec![Step::Leave]);
        let mut e = Escapes::new();
        assert_eq!(e.feed(b"ls\r~.rest"), vec![Step::Send(b"ls\r".to_vec()), Step::Leave]);
        // Split across reads, and after a bare newline.
        let mut e = Escapes::new();
        assert_eq!(e.feed(b"x\n"), vec![Step::Send(b"x\n".to_vec())]);
        assert_eq!(e.feed(b"~"), vec![]);
        assert_eq!(e.feed(b"."), vec![Step::Leave]);
    }

    #[test]
    fn editor_and_shell_keys_pass_through() {
        let mut e = Escapes::new();
        // Ctrl-], Ctrl-C, Ctrl-Z, Ctrl-D, ESC sequences, and a `~.` inside a line.
        let keys = b"\x1d\x03\x1a\x04\x1b[A:s/a~./b/\rvi x~.\r";
        assert_eq!(sent(&e.feed(keys)), keys.to_vec());
    }

    #[test]
    fn tilde_not_followed_by_an_escape_is_typed() {
        let mut e = Escapes::new();
        // `~~` is one `~`; `~/` and `~` then Enter are both kept whole.
        assert_eq!(sent(&e.feed(b"~~.\r~/x\r~\r")), b"~.\r~/x\r~\r".to_vec());
        // After `~~` the line has started: a `~.` later on it is text.
        let mut e = Escapes::new();
        assert_eq!(sent(&e.feed(b"~~~.")), b"~~.".to_vec());
    }

    #[test]
    fn tilde_question_mark_is_help_and_another_escape_may_follow() {
        let mut e = Escapes::new();
        assert_eq!(e.feed(b"a\r~?~."), vec![Step::Send(b"a\r".to_vec()), Step::Help, Step::Leave]);
    }

    #[test]
    fn bracketed_paste_holds_no_escape() {
        let mut e = Escapes::new();
        let paste = b"\x1b[200~one\n~.two\n\x1b[201~";
        assert_eq!(sent(&e.feed(paste)), paste.to_vec());
        // After the paste, escapes work again.
        assert_eq!(e.feed(b"\r~."), vec![Step::Send(b"\r".to_vec()), Step::Leave]);
    }

    #[test]
    fn modes_switched_on_inside_are_switched_off() {
        let mut m = Modes::default();
        // vim-like start: alternate screen, application keys and keypad, bracketed paste, mouse, hidden cursor, a
        // scroll region; split in the middle of a sequence.
        m.feed(b"\x1b[?1049h\x1b[?1h\x1b=\x1b[?20");
        m.feed(b"04h\x1b[?1000;1006h\x1b[?25l\x1b[1;20r\x1b[4h");
        let reset = String::from_utf8(m.reset()).unwrap();
        assert!(reset.starts_with("\x1b[?1049l"), "{reset:?}");
        for part in ["\x1b[?1l", "\x1b[?2004l", "\x1b[?1000l", "\x1b[?1006l", "\x1b[?25h", "\x1b>", "\x1b[4l"] {
            assert!(reset.contains(part), "{part:?} missing from {reset:?}");
        }
        assert!(reset.contains("\x1b7\x1b[r\x1b8"));
        assert!(reset.ends_with("\x1b[0m"));
    }

    #[test]
    fn modes_switched_back_inside_are_left_alone() {
        let mut m = Modes::default();
        m.feed(b"\x1b[?1049h\x1b[?2004h\x1b[?25l\x1b[5;10r");
        m.feed(b"\x1b[r\x1b[?25h\x1b[?2004l\x1b[?1049l");
        assert_eq!(m.reset(), b"\x1b[0m".to_vec());
        // A full reset forgets everything; unknown modes are ignored.
        m.feed(b"\x1b[?1049h\x1b[?12h\x1bc");
        assert_eq!(m.reset(), b"\x1b[0m".to_vec());
    }

    #[test]
    fn raw_mode_is_undone_by_drop_and_by_a_panic() {
        use std::os::fd::AsRawFd;
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let fd = pty.slave.as_raw_fd();
        let get = || {
            let t = nix::sys::termios::tcgetattr(&pty.slave).expect("tcgetattr");
            (t.input_flags, t.output_flags, t.local_flags, t.control_flags, t.control_chars)
        };
        let before = get();
        {
            let _raw = RawMode::enter(fd).expect("raw");
            assert_ne!(get(), before, "raw mode changes the settings");
        }
        assert_eq!(get(), before, "after drop");
        let r = std::panic::catch_unwind(|| {
            let _raw = RawMode::enter(fd).expect("raw");
            panic!("on purpose");
        });
        assert!(r.is_err());
        assert_eq!(get(), before, "after a panic");
    }
}
