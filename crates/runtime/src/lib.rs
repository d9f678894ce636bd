//! # examroom-runtime
//!
//! The [`ExecutionRuntime`] boundary, which the session service drives, and its backends.
//!
//! # Layout
//! - [`types`]: what crosses the boundary (specs, limits, exec requests and outputs, statuses, terminal events).
//! - [`error`]: the runtime's error type, `RuntimeError`.
//! - [`protocol`]: the versioned, transport-independent protocol between a runtime and the shim that holds one
//!   environment; [`protocol::client`] is its async client side, [`protocol::conn`] the shim's side of one
//!   connection (for a `poll` loop).
//! - [`ring`]: a terminal's scrollback, which a shim keeps per terminal and replays on attach.
//! - [`sandbox`] (feature `sandbox`, default): the Linux isolation engine. `sandbox::runtime` is the client
//!   that the server uses; `sandbox::shim` is the per-environment host process; `sandbox::init` is PID 1 inside;
//!   `rootfs`, `cgroup`, `seccomp`, `caps`, `idmap` and `sys` are the mechanisms.
//! - [`docker`] (feature `docker`): the Docker Engine backend, one container per environment with the static shim as
//!   its PID 1 (it needs the `sandbox` feature for the seccomp allowlist it derives its profile from).
//!
//! - [`backends`]: [`Backends`], the runtimes one server runs and which of them holds each environment.
//!
//! The container shim (crate `examroom-shim`, PID 1 of a Docker backend's container) builds this crate without its
//! default features, for `protocol` and `ring` alone.
//!
//! Backends are dispatched through the [`Runtime`] enum (one variant per backend), in the manner of youki.

pub mod backends;
pub mod error;
pub mod protocol;
pub mod ring;
pub mod types;

#[cfg(feature = "sandbox")]
pub mod sandbox;

#[cfg(feature = "docker")]
pub mod docker;

pub use backends::Backends;
pub use error::RuntimeError;
pub use types::*;

use examroom_core::EnvironmentId;
use tokio::io::{AsyncRead, AsyncWrite};

/// The read side of an attached terminal, whatever carries it.
pub type TerminalOutput = protocol::client::TerminalReader<Box<dyn AsyncRead + Send + Unpin>>;
/// The write side of an attached terminal, whatever carries it.
pub type TerminalInput = protocol::client::TerminalWriter<Box<dyn AsyncWrite + Send + Unpin>>;

/// A connection to a port inside an environment (see [`ExecutionRuntime::dial`]).
pub type PortStream = tokio::io::DuplexStream;
pub use protocol::{DesktopSpec, DesktopStatus};

/// An attached terminal: output (scrollback replay first, then live) and input.
pub struct Terminal {
    /// Output and notices.
    pub output: TerminalOutput,
    /// Keystrokes and resizes.
    pub input: TerminalInput,
}

/// The boundary between the session service and whatever makes environments.
///
/// Every method is bounded in time and answers with a [`RuntimeError`] that says what happened.
#[allow(async_fn_in_trait)]
pub trait ExecutionRuntime {
    /// The backend's name.
    fn name(&self) -> &'static str;
    /// Makes an environment and starts its shell. On error, nothing of it remains.
    async fn create(&self, spec: EnvironmentSpec) -> Result<(), RuntimeError>;
    /// Attaches to a terminal ("main" is the one made at create); a newer attach replaces this one.
    async fn attach(&self, id: &EnvironmentId, terminal: &str) -> Result<Terminal, RuntimeError>;
    /// Opens another terminal with a fresh shell; returns its name.
    async fn open_terminal(&self, id: &EnvironmentId, cols: u16, rows: u16) -> Result<String, RuntimeError>;
    /// Resizes a terminal.
    async fn resize(&self, id: &EnvironmentId, terminal: &str, cols: u16, rows: u16) -> Result<(), RuntimeError>;
    /// Runs a command to completion (or its timeout).
    async fn exec(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError>;
    /// Runs a command with a trusted view of the environment: the pristine base's tools over the candidate's files,
    /// read-only, a fixed `PATH`, nothing the candidate could have changed on its path (for grading).
    async fn exec_trusted(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError>;
    /// Freezes every process of the environment; only trusted commands run after it.
    async fn freeze(&self, id: &EnvironmentId) -> Result<(), RuntimeError>;
    /// One environment's status.
    async fn status(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError>;
    /// Every environment this runtime instance holds (including lost ones).
    async fn list(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError>;
    /// Destroys an environment and verifies that nothing of it remains.
    async fn destroy(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError>;
    /// Opens a TCP connection to `port` on the environment's own loopback, from inside it; a byte stream both ways
    /// ([`RuntimeError::Refused`] when nothing listens there).
    async fn dial(&self, id: &EnvironmentId, port: u16) -> Result<PortStream, RuntimeError>;
    /// Starts the environment's desktop (or finds it running, starting again what of it ended) and returns once its
    /// VNC server answers, bounded; a desktop that does not come up is an error that says why.
    async fn start_desktop(&self, id: &EnvironmentId, spec: DesktopSpec) -> Result<DesktopStatus, RuntimeError>;
}

/// The backends, for dispatch without trait objects.
pub enum Runtime {
    /// Linux namespaces, cgroups and seccomp, no daemon.
    #[cfg(feature = "sandbox")]
    Sandbox(sandbox::SandboxRuntime),
    /// Never made: keeps the enum and its matches well-formed in a build without any backend (the container shim's,
    /// which uses only [`protocol`]).
    #[doc(hidden)]
    #[cfg(not(feature = "sandbox"))]
    NoBackend(std::convert::Infallible),
    /// Containers of a Docker Engine, the static shim as their PID 1.
    #[cfg(feature = "docker")]
    Docker(docker::DockerRuntime),
}

// Without a backend the dispatchers' arguments have nowhere to go.
#[cfg_attr(not(feature = "sandbox"), allow(unused_variables))]
impl Runtime {
    /// Where this runtime's image store is (`examroom image import` puts images there), if it has one.
    pub fn images_dir(&self) -> Option<std::path::PathBuf> {
        match self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox(rt) => Some(rt.images_dir()),
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
            // Images live in the Engine's store.
            #[cfg(feature = "docker")]
            Runtime::Docker(_) => None,
        }
    }

    /// Environments whose shim or init died, as they die: a hint to look again at once (see the sandbox's
    /// `losses`). A backend without such notices gives a receiver that never yields.
    pub fn losses(&self) -> tokio::sync::broadcast::Receiver<EnvironmentId> {
        match self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox(rt) => rt.losses(),
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
            #[cfg(feature = "docker")]
            Runtime::Docker(rt) => rt.losses(),
        }
    }

    /// Starts a service beside environment `id` on its private network and waits (bounded by the service's own
    /// readiness timeout) until it is ready. The sandbox runs no services.
    pub async fn start_service(&self, id: &EnvironmentId, service: &ServiceSpec) -> Result<(), RuntimeError> {
        match self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox(_) => {
                let _ = (id, service);
                Err(RuntimeError::Unsupported("the sandbox backend runs no services; use the docker backend".into()))
            }
            #[cfg(feature = "docker")]
            Runtime::Docker(rt) => rt.start_service(id, service).await,
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
        }
    }

    /// `Ok` when this backend can make environments now, else why not (a daemon it needs is down). The sandbox
    /// needs no daemon: it answers when it can read its own state.
    ///
    /// `Ok(Some(note))`: it can, with a caveat the operator should see (Docker's writable layers unbounded because
    /// the operator accepted it).
    pub async fn health(&self) -> Result<Option<String>, RuntimeError> {
        match self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox(rt) => rt.list().await.map(|_| None),
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
            #[cfg(feature = "docker")]
            Runtime::Docker(rt) => {
                rt.health().await.map_err(RuntimeError::Unavailable)?;
                match rt.disk_bound().await? {
                    docker::DiskBound::Bounded => Ok(None),
                    docker::DiskBound::Unbounded(why) if rt.accepts_unbounded_disk() => Ok(Some(format!(
                        "writable layers are not bounded ({why}); the operator accepted it (docker_unbounded_disk)"
                    ))),
                    docker::DiskBound::Unbounded(why) => Err(RuntimeError::Backend(format!(
                        "writable layers cannot be bounded here ({why}): Docker environments are refused; give \
                         dockerd a data root on XFS with project quotas, or set docker_unbounded_disk (docs/DEPLOY.md)"
                    ))),
                }
            }
        }
    }

    /// The manifest digest of the image an environment was made from, if it was made from one.
    pub fn image_digest_of(&self, id: &EnvironmentId) -> Option<String> {
        match self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox(rt) => rt.image_digest_of(id),
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
            #[cfg(feature = "docker")]
            Runtime::Docker(rt) => rt.image_digest_of(id),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $rt:ident => $e:expr) => {
        match $self {
            #[cfg(feature = "sandbox")]
            Runtime::Sandbox($rt) => $e,
            #[cfg(not(feature = "sandbox"))]
            Runtime::NoBackend(never) => match *never {},
            #[cfg(feature = "docker")]
            Runtime::Docker($rt) => $e,
        }
    };
}

#[cfg_attr(not(feature = "sandbox"), allow(unused_variables))]
impl ExecutionRuntime for Runtime {
    fn name(&self) -> &'static str {
        dispatch!(self, rt => rt.name())
    }
    async fn create(&self, spec: EnvironmentSpec) -> Result<(), RuntimeError> {
        dispatch!(self, rt => rt.create(spec).await)
    }
    async fn attach(&self, id: &EnvironmentId, terminal: &str) -> Result<Terminal, RuntimeError> {
        dispatch!(self, rt => rt.attach(id, terminal).await)
    }
    async fn open_terminal(&self, id: &EnvironmentId, cols: u16, rows: u16) -> Result<String, RuntimeError> {
        dispatch!(self, rt => rt.open_terminal(id, cols, rows).await)
    }
    async fn resize(&self, id: &EnvironmentId, terminal: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        dispatch!(self, rt => rt.resize(id, terminal, cols, rows).await)
    }
    async fn exec(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        dispatch!(self, rt => rt.exec(id, req).await)
    }
    async fn exec_trusted(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        dispatch!(self, rt => rt.exec_trusted(id, req).await)
    }
    async fn freeze(&self, id: &EnvironmentId) -> Result<(), RuntimeError> {
        dispatch!(self, rt => rt.freeze(id).await)
    }
    async fn status(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError> {
        dispatch!(self, rt => rt.status(id).await)
    }
    async fn list(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError> {
        dispatch!(self, rt => rt.list().await)
    }
    async fn destroy(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError> {
        dispatch!(self, rt => rt.destroy(id).await)
    }
    async fn dial(&self, id: &EnvironmentId, port: u16) -> Result<PortStream, RuntimeError> {
        dispatch!(self, rt => rt.dial(id, port).await)
    }
    async fn start_desktop(&self, id: &EnvironmentId, spec: DesktopSpec) -> Result<DesktopStatus, RuntimeError> {
        dispatch!(self, rt => rt.start_desktop(id, spec).await)
    }
}
