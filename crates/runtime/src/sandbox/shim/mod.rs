//! The shim: the small host-side process that makes one environment and holds it for its whole life.
//!
//! It is started by the runtime as `examroom __shim <state dir>`, puts itself in its own session and cgroup, makes the
//! environment (uid range, cgroups, namespaces through [`super::init`], base trees), starts the candidate's shell, and
//! reports one JSON line on its standard output. From then on it serves the [`crate::protocol`] on `shim.sock` with a
//! single-threaded `poll` loop, holding the PTY masters and their scrollback rings, so the server can die and restart
//! without any environment noticing.

mod create;
mod desktop;
mod dial;
mod enter;
mod exec;
mod reboot;
mod serve;
pub mod trusted;

use std::path::Path;

pub use create::Ready;

/// Runs a shim for the environment in `state_dir`. Returns the process exit code.
pub fn main(state_dir: &Path) -> i32 {
    // Our own session: no terminal, no signals from the server's process group.
    let _ = nix::unistd::setsid();
    match create::create(state_dir) {
        Ok(shim) => {
            create::report(&Ready::ok(shim.state.shim_pid, shim.state.init_pid));
            shim.started();
            serve::run(shim)
        }
        Err(e) => {
            eprintln!("examroom shim: create failed: {e}");
            create::report(&Ready::failed(e.to_string()));
            1
        }
    }
}
