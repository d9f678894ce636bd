//! The Docker Engine backend: each environment is a container of the exam's image, on a private internal network of
//! its own, with the static shim (crates/shim) bind-mounted read-only as its PID 1. The server talks to dockerd through
//! `bollard` (API 1.41: dockerd 20.10 refuses newer clients) and to the shim through an abstract unix socket in the
//! container's network namespace, reached from the host (`shim_link.rs`), never through a path inside the container.
//!
//! # Files
//! - this file: [`DockerConfig`], [`DockerRuntime`], its [`ExecutionRuntime`] methods that go through the shim, and
//!   the names and labels of the Docker objects;
//! - `shim_file.rs`: the check that the shim on the host is a static ELF;
//! - `confinement.rs`: the container's capabilities, seccomp profile, limits and disk bound;
//! - `create.rs`, `destroy.rs`, `list.rs`: making, removing (and verifying) and finding environments;
//! - `shim_link.rs`: reaching the shim inside a container;
//! - `events.rs`: [`DockerRuntime::losses`] from the Engine's event stream;
//! - `grading.rs`, `services.rs`: the grading container and the session's service containers.
//!
//! # What holds, and by what (for SECURITY.md's table)
//! - Processes: the container's own pid namespace (tested: one environment's `ps` shows none of another's).
//! - Network: each environment's own bridge with `Internal: true` (no route out; Docker's isolation rules drop
//!   traffic between bridges; tested: one environment cannot reach another's listener, nor 1.1.1.1).
//! - The shim cannot be impersonated: its socket is an abstract name in the container's network namespace, bound
//!   before any candidate process exists, reached from the host (`shim_link.rs`); the shim accepts only peers outside
//!   its pid namespace, is not dumpable, `CAP_SYS_PTRACE` is never granted and `ptrace` is refused by seccomp; its
//!   file is a read-only bind mount.
//! - System calls and capabilities: see `confinement.rs` (tested inside: TIOCSTI, keyctl, bpf, unshare, mount,
//!   ptrace refused). `no-new-privileges`: setuid programs gain nothing (as in the sandbox's shell profile).
//! - Memory (swap included), pids and CPU: cgroup limits set by dockerd. The writable layer: `StorageOpt size` on
//!   overlay2 over XFS with project quotas; elsewhere create is refused unless the operator accepts unbounded disks.
//! - Gap: without dockerd's `userns-remap` (daemon-wide: every environment shares one host uid range) root inside is
//!   host root, confined only by the above; the sandbox gives each environment its own user namespace and range.
//!
//! # Docker objects (the contract in issue 14)
//! Labels on everything: [`LABEL_ENVIRONMENT`], [`LABEL_RUN`], [`LABEL_ROLE`] (and [`LABEL_SERVICE`] on services).
//! Names: network and candidate container `examroom-<env id>` ([`object_name`]).

mod confinement;
mod create;
mod destroy;
mod events;
pub(crate) mod grading;
mod list;
pub(crate) mod services;
mod shim_file;
mod shim_link;
#[doc(hidden)]
pub mod testing;

pub use confinement::{capabilities_added, seccomp_profile, DiskBound};

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use examroom_core::EnvironmentId;
use tokio::net::UnixStream;

use crate::error::RuntimeError;
use crate::protocol::client::{ShimClient, TerminalReader, TerminalWriter, REQUEST_TIMEOUT};
use crate::protocol::{ExecSpec, Reply, Request};
use crate::types::*;
use crate::{ExecutionRuntime, Terminal};

/// Label: the environment id of every object of an environment.
pub const LABEL_ENVIRONMENT: &str = "examroom.environment";
/// Label: the run label of the runtime that made the object ([`DockerConfig::label`]).
pub const LABEL_RUN: &str = "examroom.label";
/// Label: `candidate`, `grading` or `service`.
pub const LABEL_ROLE: &str = "examroom.role";
/// Label: a service container's service name.
pub const LABEL_SERVICE: &str = "examroom.service";
/// Label: the digest of the image a candidate container was made from (its RepoDigest, or its Id).
pub const LABEL_IMAGE_DIGEST: &str = "examroom.image-digest";
/// Label: the create attempt that made the object (a nonce), so that the cleanup after a dropped create removes only
/// what that attempt made, never a later create's of the same environment id.
pub const LABEL_CREATE: &str = "examroom.create";
/// Where the shim is bind-mounted inside the container (its entrypoint).
pub const SHIM_IN_CONTAINER: &str = "/.examroom/shim";
/// The abstract unix socket name the shim binds in the container's network namespace.
pub const SHIM_SOCKET_NAME: &str = "examroom-shim";
/// The Engine API version this backend's client is pinned to (dockerd 20.10 answers up to 1.41). bollard 0.21 sends
/// its requests without a version prefix (its URL join drops `/v1.41`), which dockerd answers in its own version: the
/// requests used here mean the same from API 1.41 on.
pub const API_VERSION: bollard::ClientVersion = bollard::ClientVersion { major_version: 1, minor_version: 41 };

/// The name of an environment's network and candidate container: `examroom-<env id>`.
pub fn object_name(id: &EnvironmentId) -> String {
    format!("examroom-{id}")
}

/// How the Docker backend is set up.
#[derive(Clone, Debug)]
pub struct DockerConfig {
    /// The Engine's unix socket (`/var/run/docker.sock` by default).
    pub socket: PathBuf,
    /// This runtime's run label ([`LABEL_RUN`] on everything it makes): 1 to 32 of `[a-z0-9-]`. Tests use their own.
    pub label: String,
    /// The static shim on the host (`make shim` builds `target/shim/examroom-shim`).
    pub shim: PathBuf,
    /// Whether to run containers whose writable layer cannot be bounded (overlay2 on anything but XFS with project
    /// quotas): one candidate could then fill the data root's filesystem.
    pub accept_unbounded_disk: bool,
    /// How long a create may take: the container's start and the shim's hello.
    pub create_timeout: Duration,
    /// How long one Engine request may take.
    pub request_timeout: Duration,
}

impl DockerConfig {
    /// Defaults for a socket, a label and a shim: disks must be bounded, 30 s to create, 30 s per request.
    pub fn new(socket: impl Into<PathBuf>, label: &str, shim: impl Into<PathBuf>) -> Self {
        DockerConfig {
            socket: socket.into(),
            label: label.to_string(),
            shim: shim.into(),
            accept_unbounded_disk: false,
            create_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// The Docker Engine backend.
pub struct DockerRuntime {
    cfg: DockerConfig,
    /// The shim's absolute path.
    shim: PathBuf,
    /// The image digest of each environment this runtime made or listed.
    digests: Mutex<HashMap<EnvironmentId, String>>,
    /// Whether the Engine can bound a container's writable layer (asked once).
    disk: tokio::sync::OnceCell<DiskBound>,
    losses: Arc<events::Losses>,
}

impl DockerRuntime {
    /// Checks the configuration and the shim (it must exist and be a static ELF). The Engine is not asked here: a
    /// dockerd that is down or whose socket is missing makes each operation fail at once with the reason, and
    /// [`DockerRuntime::health`] says it.
    pub fn new(cfg: DockerConfig) -> Result<Self, RuntimeError> {
        validate_label(&cfg.label)?;
        if !cfg.socket.is_absolute() {
            return Err(RuntimeError::invalid("docker socket", "must be an absolute path"));
        }
        let shim = shim_file::check(&cfg.shim)?;
        let losses = events::Losses::new(cfg.socket.clone(), cfg.label.clone());
        Ok(DockerRuntime { cfg, shim, digests: Mutex::new(HashMap::new()), disk: Default::default(), losses })
    }

    /// The run label.
    pub fn label(&self) -> &str {
        &self.cfg.label
    }

    /// A client of the Engine. Fails at once, with what to do, when the socket does not exist.
    pub(crate) fn client(&self) -> Result<Docker, RuntimeError> {
        connect_engine(&self.cfg.socket, self.cfg.request_timeout)
    }

    /// Ok when the Engine answers a ping (within 5 s); otherwise why not, for `/readyz` and the catalog.
    pub async fn health(&self) -> Result<(), String> {
        let docker = self.client().map_err(|e| e.to_string())?;
        match tokio::time::timeout(Duration::from_secs(5), docker.ping()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(engine_error(&self.cfg.socket, "answer a ping", e).to_string()),
            Err(_) => {
                Err(format!("the Docker Engine at {} did not answer a ping within 5 s", self.cfg.socket.display()))
            }
        }
    }

    /// Starts one of environment `id`'s services on its network (after its create), and waits until it is ready,
    /// bounded by the service's readiness timeout (see `services.rs`).
    pub async fn start_service(&self, id: &EnvironmentId, service: &ServiceSpec) -> Result<(), RuntimeError> {
        let docker = self.client()?;
        services::start_service(&docker, &self.cfg.label, id, service).await
    }

    /// Whether this runtime starts environments although their writable layer cannot be bounded.
    pub fn accepts_unbounded_disk(&self) -> bool {
        self.cfg.accept_unbounded_disk
    }

    /// Whether the Engine bounds a container's writable layer (`StorageOpt size`), asked once; see
    /// [`DockerConfig::accept_unbounded_disk`] for what happens when it cannot.
    pub async fn disk_bound(&self) -> Result<DiskBound, RuntimeError> {
        let docker = self.client()?;
        self.disk.get_or_try_init(|| async { confinement::disk_bound(&docker, &self.cfg.socket).await }).await.cloned()
    }

    /// Environments whose candidate container died (killed, OOM-killed, removed from outside), as they die: a hint
    /// to look again at once ([`ExecutionRuntime::status`] says the truth). Follows the Engine's event stream and
    /// reconnects with a backoff when dockerd restarts. Needs a tokio runtime.
    pub fn losses(&self) -> tokio::sync::broadcast::Receiver<EnvironmentId> {
        self.losses.subscribe()
    }

    /// The digest of the image environment `id` was made from (its RepoDigest, or its Id), if this runtime made or
    /// listed it.
    pub fn image_digest_of(&self, id: &EnvironmentId) -> Option<String> {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn remember_digest(&self, id: EnvironmentId, digest: String) {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).insert(id, digest);
    }

    fn forget_digest(&self, id: &EnvironmentId) {
        self.digests.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }

    /// A connection to the shim of environment `id`, after its hello.
    async fn connect(&self, id: &EnvironmentId) -> Result<ShimClient<UnixStream>, RuntimeError> {
        let docker = self.client()?;
        shim_link::connect(&docker, &self.cfg.socket, &object_name(id), Duration::ZERO).await
    }

    async fn run(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        if req.argv.is_empty() {
            return Err(RuntimeError::invalid("argv", "empty"));
        }
        let client = self.connect(id).await?;
        let spec = ExecSpec {
            argv: req.argv,
            env: req.env,
            cwd: req.cwd,
            timeout_ms: req.timeout.as_millis() as u64,
            output_limit: req.output_limit,
        };
        // The shim enforces the command's timeout; ours only covers a shim that stops answering.
        let (st, stdout, stderr) = client.exec(spec, false, &req.stdin, req.timeout + Duration::from_secs(10)).await?;
        Ok(ExecOutput {
            exit_code: st.exit_code,
            signal: st.signal,
            timed_out: st.timed_out,
            stdout,
            stderr,
            truncated: st.truncated,
            duration: Duration::from_millis(st.duration_ms),
        })
    }
}

/// Removes what a create made when the caller drops the create before it settled (its own deadline): the removal
/// runs on as a task of its own.
struct CreateGuard {
    cfg: DockerConfig,
    id: EnvironmentId,
    /// The attempt's nonce ([`LABEL_CREATE`]).
    attempt: String,
    /// Set once the create started making objects (after the checks that they are not another's).
    making: Arc<std::sync::atomic::AtomicBool>,
    settled: bool,
}

impl Drop for CreateGuard {
    fn drop(&mut self) {
        if self.settled || !self.making.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        sweep_after_drop(self.cfg.clone(), self.id, std::mem::take(&mut self.attempt));
    }
}

/// After a create was dropped: dockerd finishes the requests that were under way (a network or container may appear
/// after the first removal), so the objects of that create `attempt` are removed now and again after 0.5, 1, 2, 4 and
/// 8 s. Runs as a task of its own (needs a tokio runtime).
fn sweep_after_drop(cfg: DockerConfig, id: EnvironmentId, attempt: String) {
    let Ok(rt) = tokio::runtime::Handle::try_current() else { return };
    rt.spawn(async move {
        let mut last = None;
        for pause_ms in [0u64, 500, 1000, 2000, 4000, 8000] {
            tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            last = destroy::remove_everything(&cfg, &id, Some(&attempt)).await.err();
        }
        if let Some(e) = last {
            tracing::error!(error = %e, environment = %id, "cleanup after a dropped docker create");
        }
    });
}

/// Checks a run label: 1 to 32 of `[a-z0-9-]`, not starting with `-`.
pub fn validate_label(label: &str) -> Result<(), RuntimeError> {
    let ok = !label.is_empty()
        && label.len() <= 32
        && !label.starts_with('-')
        && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::invalid(
            "label",
            format!("{label:?} must be 1 to 32 of a-z, 0-9 and '-', not starting with '-'"),
        ))
    }
}

/// A client of the Engine at `socket`, pinned to [`API_VERSION`].
pub(crate) fn connect_engine(socket: &Path, timeout: Duration) -> Result<Docker, RuntimeError> {
    let path = socket.to_str().ok_or_else(|| RuntimeError::invalid("docker socket", "not UTF-8"))?;
    match Docker::connect_with_unix(path, timeout.as_secs().max(1), &API_VERSION) {
        Ok(d) => Ok(d),
        Err(bollard::errors::Error::SocketNotFoundError(_)) => Err(RuntimeError::Unavailable(format!(
            "the Docker Engine's socket {} does not exist: start dockerd (docs/DEPLOY.md), or point the \
             server at its socket",
            socket.display()
        ))),
        Err(e) => Err(engine_error(socket, "connect", e)),
    }
}

/// Whether an Engine error is a 404 (no such container, network, image or volume).
pub(crate) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code: 404, .. })
}

/// An Engine error as a runtime error that says what was being done and what the Engine said.
pub(crate) fn engine_error(socket: &Path, what: &str, e: bollard::errors::Error) -> RuntimeError {
    use bollard::errors::Error as E;
    match e {
        E::DockerResponseServerError { status_code, message } => {
            RuntimeError::Backend(format!("the Docker Engine refused to {what}: {message} (HTTP {status_code})"))
        }
        E::RequestTimeoutError => RuntimeError::Timeout { what: format!("the Docker Engine to {what}"), ms: 0 },
        E::SocketNotFoundError(_) => RuntimeError::Unavailable(format!(
            "the Docker Engine's socket {} does not exist: start dockerd, or point the server at its socket",
            socket.display()
        )),
        E::HyperResponseError { .. } | E::HyperLegacyError { .. } | E::IOError { .. } => {
            RuntimeError::Unavailable(format!(
                "the Docker Engine at {} does not answer ({e}) while trying to {what}: is dockerd running?",
                socket.display()
            ))
        }
        other => RuntimeError::Backend(format!("the Docker Engine failed to {what}: {other}")),
    }
}

/// Runs an Engine request bounded by `limit`.
pub(crate) async fn bounded<T>(
    socket: &Path,
    what: &str,
    limit: Duration,
    fut: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<Result<T, bollard::errors::Error>, RuntimeError> {
    tokio::time::timeout(limit, fut).await.map_err(|_| RuntimeError::Timeout {
        what: format!("the Docker Engine at {} to {what}", socket.display()),
        ms: limit.as_millis() as u64,
    })
}

/// The label filter that selects this run's objects (and one environment's, with `env`).
pub(crate) fn label_filter(
    label: &str,
    env: Option<&EnvironmentId>,
    role: Option<&str>,
) -> HashMap<String, Vec<String>> {
    let mut labels = vec![format!("{LABEL_RUN}={label}")];
    if let Some(env) = env {
        labels.push(format!("{LABEL_ENVIRONMENT}={env}"));
    }
    if let Some(role) = role {
        labels.push(format!("{LABEL_ROLE}={role}"));
    }
    HashMap::from([("label".to_string(), labels)])
}

pub(crate) fn reply_error(r: Reply) -> RuntimeError {
    match r {
        Reply::Error { code, message } if code == "environment_lost" => RuntimeError::Lost(message),
        Reply::Error { code, message } if code == "no_such_terminal" => RuntimeError::invalid("terminal", message),
        Reply::Error { code, message } => RuntimeError::Backend(format!("{code}: {message}")),
        other => RuntimeError::Protocol(format!("unexpected answer {other:?}")),
    }
}

impl ExecutionRuntime for DockerRuntime {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn create(&self, spec: EnvironmentSpec) -> Result<(), RuntimeError> {
        let id = spec.id;
        let limit = self.cfg.create_timeout;
        let making = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let attempt = EnvironmentId::new_v4().to_string();
        let mut guard =
            CreateGuard { cfg: self.cfg.clone(), id, attempt: attempt.clone(), making: making.clone(), settled: false };
        let result = tokio::time::timeout(limit, self.create_environment(spec, &making, &attempt)).await;
        guard.settled = true;
        match result {
            // A failed create has removed what it made.
            Ok(r) => r,
            Err(_) => {
                if making.load(std::sync::atomic::Ordering::SeqCst) {
                    if let Err(e) = self.remove_everything(&id).await {
                        tracing::error!(error = %e, "cleanup after a docker create that timed out");
                    }
                    // A request of the dropped create may still be under way in dockerd.
                    sweep_after_drop(self.cfg.clone(), id, attempt);
                }
                Err(RuntimeError::Timeout { what: "environment create".into(), ms: limit.as_millis() as u64 })
            }
        }
    }

    async fn attach(&self, id: &EnvironmentId, terminal: &str) -> Result<Terminal, RuntimeError> {
        let (stream, version) = self.connect(id).await?.attach(terminal, true).await?;
        let (r, w) = stream.into_split();
        Ok(Terminal {
            output: TerminalReader::new(Box::new(r)),
            input: TerminalWriter::new(Box::new(w), terminal, version),
        })
    }

    async fn open_terminal(&self, id: &EnvironmentId, cols: u16, rows: u16) -> Result<String, RuntimeError> {
        match self.connect(id).await?.call(&Request::OpenTerminal { cols, rows }, REQUEST_TIMEOUT).await? {
            Reply::Opened { terminal } => Ok(terminal),
            other => Err(reply_error(other)),
        }
    }

    async fn resize(&self, id: &EnvironmentId, terminal: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        match self
            .connect(id)
            .await?
            .call(&Request::Resize { terminal: terminal.into(), cols, rows }, REQUEST_TIMEOUT)
            .await?
        {
            Reply::Ok => Ok(()),
            other => Err(reply_error(other)),
        }
    }

    async fn exec(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.run(id, req).await
    }

    async fn exec_trusted(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        let docker = self.client()?;
        grading::exec_trusted(&docker, &self.cfg.label, id, req).await
    }

    async fn freeze(&self, id: &EnvironmentId) -> Result<(), RuntimeError> {
        let docker = self.client()?;
        let sock = &self.cfg.socket;
        match bounded(sock, "pause a container", self.cfg.request_timeout, docker.pause_container(&object_name(id)))
            .await?
        {
            Ok(()) => Ok(()),
            Err(e) if is_not_found(&e) => Err(RuntimeError::NotFound),
            // Frozen already.
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, message })
                if message.contains("already paused") =>
            {
                Ok(())
            }
            Err(e) => Err(engine_error(sock, "pause the environment's container", e)),
        }
    }

    async fn status(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError> {
        self.status_of(id).await
    }

    async fn list(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError> {
        self.list_environments().await
    }

    async fn destroy(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError> {
        self.destroy_environment(id).await
    }

    async fn dial(&self, id: &EnvironmentId, port: u16) -> Result<crate::PortStream, RuntimeError> {
        let stream = self.connect(id).await?.dial(port).await?;
        Ok(crate::protocol::client::relay(stream))
    }

    async fn start_desktop(
        &self,
        _id: &EnvironmentId,
        _spec: crate::DesktopSpec,
    ) -> Result<crate::DesktopStatus, RuntimeError> {
        Err(RuntimeError::Unsupported(
            "the docker backend has no desktop; run exams with a desktop on the sandbox backend".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_checked_and_filters_name_the_run() {
        assert!(validate_label("t-1").is_ok());
        assert!(validate_label("A").is_err());
        let id: EnvironmentId = "00000000-0000-4000-8000-000000000001".parse().unwrap();
        let f = label_filter("run", Some(&id), Some("candidate"));
        assert_eq!(
            f["label"],
            vec![
                "examroom.label=run".to_string(),
                format!("examroom.environment={id}"),
                "examroom.role=candidate".to_string()
            ]
        );
        assert_eq!(object_name(&id), format!("examroom-{id}"));
    }
}
