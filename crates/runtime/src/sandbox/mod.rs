//! The sandbox backend: isolated Linux environments on one host, with no daemon.
//!
//! Per environment: a **shim** (host side, own session and cgroup; holds the PTYs and their scrollback and serves the
//! shim protocol on a unix socket), an **init** (PID 1 of the environment's pid namespace; reaps, spawns), and the
//! candidate's **shells** and commands. See `docs/ARCHITECTURE.md` and `docs/SECURITY.md`.

pub mod base_etc;
pub mod caps;
pub mod cgroup;
pub mod idmap;
pub mod init;
pub mod procviews;
pub mod rootfs;
pub mod runtime;
pub mod seccomp;
pub mod shim;
pub mod state;
pub mod sys;
pub mod syslog;
mod watch;

pub use runtime::{validate_label, SandboxConfig, SandboxRuntime};
