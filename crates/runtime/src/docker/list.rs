//! Finding environments: every candidate container of this run label, and each one's status (its container's state,
//! then its shim's answer).

use bollard::query_parameters::ListContainersOptions;
use examroom_core::EnvironmentId;

use super::{
    bounded, engine_error, is_not_found, label_filter, object_name, shim_link, DockerRuntime, LABEL_ENVIRONMENT,
    LABEL_IMAGE_DIGEST,
};
use crate::error::RuntimeError;
use crate::protocol::{client::REQUEST_TIMEOUT, Reply, Request};
use crate::types::*;

fn lost(id: &EnvironmentId, reason: String) -> EnvironmentStatus {
    EnvironmentStatus {
        id: *id,
        state: EnvironmentState::Lost { reason },
        processes: 0,
        shell_restarts: 0,
        oom_kills: 0,
        protocol_version: 0,
    }
}

impl DockerRuntime {
    pub(super) async fn status_of(&self, id: &EnvironmentId) -> Result<EnvironmentStatus, RuntimeError> {
        let docker = self.client()?;
        let sock = self.cfg.socket.clone();
        let name = object_name(id);
        let c = match bounded(
            &sock,
            "inspect a container",
            self.cfg.request_timeout,
            docker.inspect_container(&name, None),
        )
        .await?
        {
            Ok(c) => c,
            Err(e) if is_not_found(&e) => return Err(RuntimeError::NotFound),
            Err(e) => return Err(engine_error(&sock, "inspect the environment's container", e)),
        };
        let state = c.state.unwrap_or_default();
        let oom = u64::from(state.oom_killed == Some(true));
        if state.paused == Some(true) {
            // Frozen for grading: its shim is frozen too, and the environment is still there.
            return Ok(EnvironmentStatus {
                id: *id,
                state: EnvironmentState::Running,
                processes: 0,
                shell_restarts: 0,
                oom_kills: oom,
                protocol_version: 0,
            });
        }
        if state.running != Some(true) {
            return Ok(lost(id, shim_link::stopped_reason(&state)));
        }
        let mut client = match shim_link::connect(&docker, &sock, &name, std::time::Duration::ZERO).await {
            Ok(c) => c,
            Err(RuntimeError::Lost(reason)) => return Ok(lost(id, reason)),
            Err(RuntimeError::NotFound) => return Err(RuntimeError::NotFound),
            Err(e) => return Err(e),
        };
        match client.call(&Request::Status, REQUEST_TIMEOUT).await {
            Ok(Reply::Status(s)) => Ok(EnvironmentStatus {
                id: *id,
                state: match s.lost_reason {
                    Some(reason) => EnvironmentState::Lost { reason },
                    None => EnvironmentState::Running,
                },
                processes: s.processes,
                shell_restarts: s.terminals.iter().map(|t| t.shell_restarts).sum(),
                oom_kills: s.oom_kills.max(oom),
                protocol_version: client.version(),
            }),
            Ok(other) => Err(super::reply_error(other)),
            Err(RuntimeError::Io { source, .. }) => Ok(lost(id, format!("its shim went away ({source})"))),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn list_environments(&self) -> Result<Vec<EnvironmentStatus>, RuntimeError> {
        let docker = self.client()?;
        let sock = self.cfg.socket.clone();
        let options = ListContainersOptions {
            all: true,
            filters: Some(label_filter(&self.cfg.label, None, Some("candidate"))),
            ..Default::default()
        };
        let containers =
            bounded(&sock, "list containers", self.cfg.request_timeout, docker.list_containers(Some(options)))
                .await?
                .map_err(|e| engine_error(&sock, "list the environments' containers", e))?;
        let mut out = Vec::new();
        for c in containers {
            let labels = c.labels.unwrap_or_default();
            let Some(id) = labels.get(LABEL_ENVIRONMENT).and_then(|v| v.parse::<EnvironmentId>().ok()) else {
                continue;
            };
            if let Some(d) = labels.get(LABEL_IMAGE_DIGEST).filter(|d| !d.is_empty()) {
                self.remember_digest(id, d.clone());
            }
            match self.status_of(&id).await {
                Ok(s) => out.push(s),
                // Removed between the listing and now.
                Err(RuntimeError::NotFound) => {}
                // The server itself is out of descriptors: the whole answer would be a guess.
                Err(e) if e.is_out_of_resources() => return Err(e),
                Err(e) => out.push(lost(&id, e.to_string())),
            }
        }
        Ok(out)
    }
}
