//! `examroom sandbox shell|list`: a person's way into the sandbox backend, without the server.

use std::path::PathBuf;

use anyhow::{Context, Result};
use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{Base, EnvironmentSpec, ExecutionRuntime, TerminalEvent};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Restores the terminal mode when dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> RawMode {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let stdin = std::io::stdin();
        match tcgetattr(&stdin) {
            Ok(orig) => {
                let mut raw = orig.clone();
                cfmakeraw(&mut raw);
                let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
                RawMode(Some(orig))
            }
            Err(_) => RawMode(None),
        }
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(std::io::stdin(), nix::sys::termios::SetArg::TCSANOW, t);
        }
    }
}

fn term_size() -> (u16, u16) {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ fills a winsize.
    if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 1 && ws.ws_row > 1 {
        (ws.ws_col, ws.ws_row)
    } else {
        (80, 24)
    }
}

pub async fn run(state_dir: PathBuf, label: &str, base: &str) -> Result<()> {
    let rt = SandboxRuntime::new(SandboxConfig::new(state_dir, label))?;
    let id = EnvironmentId::new_v4();
    let (cols, rows) = term_size();
    let mut spec = EnvironmentSpec::new(id);
    spec.base = Base::parse(base)?;
    spec.cols = cols;
    spec.rows = rows;
    let t0 = std::time::Instant::now();
    rt.create(spec).await.context("create the environment")?;
    eprintln!("environment {id} ready in {} ms; Ctrl-] detaches and destroys it\r", t0.elapsed().as_millis());
    let mut term = rt.attach(&id, "main").await?;
    let raw = RawMode::enter();
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            n = stdin.read(&mut buf) => {
                let n = n?;
                if n == 0 || buf[..n].contains(&0x1d) {
                    break;
                }
                term.input.write(&buf[..n]).await?;
            }
            ev = term.output.next() => match ev? {
                Some(TerminalEvent::Output(b)) => {
                    stdout.write_all(&b).await?;
                    stdout.flush().await?;
                }
                Some(TerminalEvent::Notice(m)) => eprint!("\r\n[examroom] {m}\r\n"),
                Some(TerminalEvent::Replaced) | Some(TerminalEvent::Ended) | None => break,
            }
        }
    }
    drop(raw);
    let report = rt.destroy(&id).await?;
    eprintln!("\ndestroyed {id}: {} processes killed, verified in {} ms", report.killed, report.duration_ms);
    Ok(())
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
