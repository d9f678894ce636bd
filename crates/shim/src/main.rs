//! # examroom-shim
//!
//! PID 1 of a Docker backend's candidate container. The runtime bind-mounts this static binary read-only at
//! `/.examroom/shim` and makes it the entrypoint. It holds the container's terminals (PTYs, shells, scrollback) and
//! runs commands and dials ports inside it for the server, speaking the shim protocol
//! (`examroom_runtime::protocol`, unchanged) on an abstract unix socket of the container's network namespace, which
//! the server reaches from the host.
//!
//! Start-up, in this order:
//! 1. not dumpable (`PR_SET_DUMPABLE` 0): no process of the candidate's can read its memory or take its descriptors
//!    (they lack `CAP_SYS_PTRACE`);
//! 2. blocks the signals it reads (a SIGTERM during start-up waits for it), and refuses to run unless it is PID 1 (it
//!    kills with `kill(-1)`, which must mean "the container");
//! 3. reads `EXAMROOM_SHIM_*`, wipes them from the environment block `/proc/1/environ` shows and removes them from
//!    its environment (no child sees them);
//! 4. binds `\0<EXAMROOM_SHIM_SOCKET>` before any candidate process exists (see [`listener`]);
//! 5. starts the main terminal's shell and serves ([`serve`]) until `Destroy` or SIGTERM from outside the
//!    container, reaping every orphan meanwhile.
//!
//! Files: [`config`] (the environment), [`listener`] (the socket and the peer check), [`terminal`] (PTYs and
//! shells), [`exec`] (commands), [`dial`] (ports), [`process`] (spawning, reaping, killing), [`serve`] (the loop).

mod config;
mod dial;
mod exec;
mod listener;
mod process;
mod serve;
mod terminal;

fn main() {
    std::process::exit(run());
}

fn run() -> i32 {
    if let Err(e) = process::make_undumpable() {
        eprintln!("examroom-shim: {e}");
        return 1;
    }
    if let Err(e) = serve::block_signals() {
        eprintln!("examroom-shim: {e}");
        return 1;
    }
    if std::process::id() != 1 {
        eprintln!(
            "examroom-shim: this is pid {}, not PID 1: the shim must be the entrypoint of its own container (pid \
             namespace), as it kills every other process of its namespace when it ends",
            std::process::id()
        );
        return 2;
    }
    let cfg = match config::Config::from_process_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("examroom-shim: {e}");
            return 2;
        }
    };
    let listener = match listener::bind(&cfg.socket) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("examroom-shim: {e}");
            return 1;
        }
    };
    let shim = match serve::Shim::new(cfg, listener) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("examroom-shim: starting the main terminal: {e}");
            return 1;
        }
    };
    eprintln!("examroom-shim {}: serving on @{}", env!("CARGO_PKG_VERSION"), shim.socket());
    serve::run(shim)
}
