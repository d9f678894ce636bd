//! [`Backends`]: the runtimes one server runs, and which of them holds each environment.
//!
//! A server runs the sandbox, Docker, or both; each exam names its backend (`[environment] backend`). The session
//! service talks to `Backends` as to any [`ExecutionRuntime`]: `create` goes to the backend the spec names, and every
//! other call to the backend that holds the environment. Which one that is, is learnt at `create` and by `list`;
//! after a restart, the sandbox recognises its own environments by their state directories, and the rest are
//! Docker's.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use examroom_core::EnvironmentId;
use tokio::sync::broadcast;

use crate::{
    BackendKind, DestroyReport, EnvironmentSpec, EnvironmentStatus, ExecOutput, ExecRequest, ExecutionRuntime,
    PortStream, Runtime, RuntimeError, Terminal,
};
use crate::{DesktopSpec, DesktopStatus};

/// The runtimes of one server, by backend.
pub struct Backends {
    sandbox: Option<Runtime>,
    docker: Option<Runtime>,
    /// Environment → the backend that holds it, as far as known.
    placed: Mutex<HashMap<EnvironmentId, BackendKind>>,
    /// Every backend's losses, forwarded into one channel (started on the first [`Backends::losses`]).
    losses: OnceLock<broadcast::Sender<EnvironmentId>>,
}

impl Backends {
    /// The backends of a server: at least one.
    pub fn new(sandbox: Option<Runtime>, docker: Option<Runtime>) -> Result<Self, RuntimeError> {
        if sandbox.is_none() && docker.is_none() {
            return Err(RuntimeError::invalid("backends", "enable at least one backend (sandbox or docker)"));
        }
        Ok(Backends { sandbox, docker, placed: Mutex::new(HashMap::new()), losses: OnceLock::new() })
    }

    /// A server with only the sandbox.
    pub fn sandbox(rt: Runtime) -> Self {
        Backends { sandbox: Some(rt), docker: None, placed: Mutex::new(HashMap::new()), losses: OnceLock::new() }
    }

    /// The runtime of a backend, if this server runs it.
    pub fn get(&self, kind: BackendKind) -> Option<&Runtime> {
        match kind {
            BackendKind::Sandbox => self.sandbox.as_ref(),
            BackendKind::Docker => self.docker.as_ref(),
        }
    }

    /// Whether this server runs a backend.
    pub fn enabled(&self, kind: BackendKind) -> bool {
        self.get(kind).is_some()
    }

    /// The backends this server runs.
    pub fn kinds(&self) -> Vec<BackendKind> {
        BackendKind::ALL.into_iter().filter(|k| self.enabled(*k)).collect()
    }

    /// Each enabled backend's health: `Ok` (with a caveat, if any) when it can make environments now, else why not
    /// (Docker down, its socket missing, its disks unbounded and not accepted).
    pub async fn health(&self) -> Vec<(BackendKind, Result<Option<String>, String>)> {
        let mut out = Vec::new();
        for kind in self.kinds() {
            if let Some(rt) = self.get(kind) {
                out.push((kind, rt.health().await.map_err(|e| e.to_string())));
            }
        }
        out
    }

    /// Where the sandbox's image store is, if this server runs the sandbox.
    pub fn images_dir(&self) -> Option<std::path::PathBuf> {
        self.sandbox.as_ref().and_then(Runtime::images_dir)
    }

    /// The image an environment was made from, by manifest digest (sandbox) or image id (Docker).
    pub fn image_digest_of(&self, id: &EnvironmentId) -> Option<String> {
        self.route(id).ok().and_then(|rt| rt.image_digest_of(id))
    }

    /// Environments whose shim or container died, from every backend, as they die (a hint to look again).
    pub fn losses(&self) -> broadcast::Receiver<EnvironmentId> {
        self.losses
            .get_or_init(|| {
                let (tx, _) = broadcast::channel(256);
                for rt in [&self.sandbox, &self.docker].into_iter().flatten() {
                    let mut rx = rt.losses();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        loop {
                            match rx.recv().await {
                                Ok(id) => {
                                    let _ = tx.send(id);
                                }
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => break,
                            }
                        }
                    });
                }
                tx
            })
            .subscribe()
    }

    /// Starts one of an environment's services beside it, and waits (bounded) until it is ready (Docker only).
    pub async fn start_service(&self, id: &EnvironmentId, service: &crate::ServiceSpec) -> Result<(), RuntimeError> {
        self.route(id)?.start_service(id, service).await
    }

    /// Says which backend environment `id` is (or is to be) on, before anything of it exists: a destroy of an
    /// earlier attempt, ahead of its create, then goes to that backend and no other.
    pub fn assign(&self, id: &EnvironmentId, kind: BackendKind) {
        self.place(id, kind);
    }

    fn place(&self, id: &EnvironmentId, kind: BackendKind) {
        self.placed.lock().unwrap_or_else(|e| e.into_inner()).insert(*id, kind);
    }

    fn placed(&self, id: &EnvironmentId) -> Option<BackendKind> {
        self.placed.lock().unwrap_or_else(|e| e.into_inner()).get(id).copied()
    }

    fn forget(&self, id: &EnvironmentId) {
        self.placed.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    }

    /// The backend that holds `id`: the one that made or listed it; else the sandbox when its state directory is
    /// there; else Docker (which answers `NotFound` for what it does not hold either).
    fn route(&self, id: &EnvironmentId) -> Result<&Runtime, RuntimeError> {
        if let Some(rt) = self.placed(id).and_then(|k| self.get(k)) {
            return Ok(rt);
        }
        #[cfg(feature = "sandbox")]
        if let Some(Runtime::Sandbox(sb)) = &self.sandbox {
            if sb.holds(id) || self.docker.is_none() {
                return Ok(self.sandbox.as_ref().expect("checked"));
            }
        }
        self.docker.as_ref().or(self.sandbox.as_ref()).ok_or(RuntimeError::NotFound)
    }

    /// Every backend's environments, from each backend that answered, and the backends that did not (Docker down):
    /// the reconciler judges only the environments of backends that answered.
    pub async fn list_each(&self) -> (Vec<EnvironmentStatus>, Vec<(BackendKind, RuntimeError)>) {
        let (mut all, mut failed) = (Vec::new(), Vec::new());
        for kind in self.kinds() {
            let rt = self.get(kind).expect("enabled");
            match rt.list().await {
                Ok(list) => {
                    for st in list {
                        self.place(&st.id, kind);
                        all.push(st);
                    }
                }
                Err(e) => failed.push((kind, e)),
            }
        }
        (all, failed)
    }

    /// The backend that holds (or would hold) environment `id`, as [`ExecutionRuntime`] calls are routed.
    pub fn backend_holding(&self, id: &EnvironmentId) -> Option<BackendKind> {
        let rt = self.route(id).ok()?;
        self.kinds().into_iter().find(|k| self.get(*k).is_some_and(|r| std::ptr::eq(r, rt)))
    }

    fn backend_of(&self, spec: &EnvironmentSpec) -> Result<&Runtime, RuntimeError> {
        self.get(spec.backend).ok_or_else(|| {
            RuntimeError::invalid("backend", format!("the {} backend is not enabled on this server", spec.backend))
        })
    }
}

impl ExecutionRuntime for Backends {
    fn name(&self) -> &'static str {
        match (&self.sandbox, &self.docker) {
            (Some(_), Some(_)) => "sandbox+docker",
            (Some(rt), None) | (None, Some(rt)) => rt.name(),
            (None, None) => "none",
        }
    }
    async fn create(&self, spec: EnvironmentSpec) -> Result<(), RuntimeError> {
        let rt = self.backend_of(&spec)?;
        let (id, kind) = (spec.id, spec.backend);
        self.place(&id, kind);
        let r = rt.create(spec).await;
        if r.is_err() {
            self.forget(&id);
        }
        r
    }
    async fn attach(&self, id: &EnvironmentId, terminal: &str) -> Result<Terminal, RuntimeError> {
        self.route(id)?.attach(id, terminal).await
    }
    async fn open_terminal(&self, id: &EnvironmentId, cols: u16, rows: u16) -> Result<String, RuntimeError> {
        self.route(id)?.open_terminal(id, cols, rows).await
    }
    async fn resize(&self, id: &EnvironmentId, terminal: &str, cols: u16, rows: u16) -> Result<(), RuntimeError> {
        self.route(id)?.resize(id, terminal, cols, rows).await
    }
    async fn exec(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.route(id)?.exec(id, req).await
    }
    async fn exec_trusted(&self, id: &EnvironmentId, req: ExecRequest) -> Result<ExecOutput, RuntimeError> {
        self.route(id)?.exec_trusted(id, req).await
    }
    async fn freeze(&self, id: &EnvironmentId) -> Result<(), RuntimeError> {
        self.route(id)?.freeze(id).await
    }
    async fn status(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError> {
        self.route(id)?.status(id).await
    }
    /// Every backend's environments. A backend that cannot answer (Docker down) fails the whole list, so that the
    /// reconciler never mistakes a backend it cannot see for one that holds nothing.
    async fn list(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError> {
        let mut all = Vec::new();
        for kind in self.kinds() {
            let rt = self.get(kind).expect("enabled");
            for st in rt.list().await? {
                self.place(&st.id, kind);
                all.push(st);
            }
        }
        Ok(all)
    }
    async fn destroy(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError> {
        let r = self.route(id)?.destroy(id).await;
        if r.as_ref().is_ok_and(|rep| rep.verified) {
            self.forget(id);
        }
        r
    }
    async fn dial(&self, id: &EnvironmentId, port: u16) -> Result<PortStream, RuntimeError> {
        self.route(id)?.dial(id, port).await
    }
    async fn start_desktop(&self, id: &EnvironmentId, spec: DesktopSpec) -> Result<DesktopStatus, RuntimeError> {
        self.route(id)?.start_desktop(id, spec).await
    }
}
