//! Removing an environment: its grading and service containers, the candidate container (and its volumes), the
//! network; then a listing by label and environment id verifies that no container, network or volume of it remains.

use std::time::{Duration, Instant};

use bollard::query_parameters::{
    ListContainersOptions, ListNetworksOptions, ListVolumesOptions, RemoveContainerOptions,
};

use super::{
    bounded, connect_engine, engine_error, is_not_found, label_filter, object_name, DockerConfig, DockerRuntime,
};
use crate::error::RuntimeError;
use crate::protocol::{client::REQUEST_TIMEOUT, Reply, Request};
use crate::types::DestroyReport;
use examroom_core::EnvironmentId;

impl DockerRuntime {
    pub(super) async fn destroy_environment(&self, id: &EnvironmentId) -> Result<DestroyReport, RuntimeError> {
        let t0 = Instant::now();
        let docker = self.client()?;
        if self.objects_of(id).await?.is_empty() {
            return Err(RuntimeError::NotFound);
        }
        // Its end is on purpose: no notice of a loss.
        self.losses.forget(*id);
        // Processes inside, from its shim, when it answers at once (a frozen one does not: then 0).
        let mut killed = 0;
        if let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(2), self.connect(id)).await {
            if let Ok(Reply::Status(s)) = c.call(&Request::Status, REQUEST_TIMEOUT.min(Duration::from_secs(2))).await {
                killed = s.processes;
            }
        }
        for r in [super::grading::remove(&docker, id).await, super::services::remove_all(&docker, id).await] {
            match r {
                Ok(()) | Err(RuntimeError::Unsupported(_)) => {}
                Err(e) => return Err(e),
            }
        }
        self.remove_everything(id).await?;
        self.forget_digest(id);
        Ok(DestroyReport { killed, verified: true, duration_ms: t0.elapsed().as_millis() as u64 })
    }

    /// Removes every container, network and volume of environment `id` made by this run label (whatever their role),
    /// then verifies that none remains.
    pub(super) async fn remove_everything(&self, id: &EnvironmentId) -> Result<(), RuntimeError> {
        remove_everything(&self.cfg, id, None).await
    }

    /// Every container, network and volume of environment `id` and this run label, named for a person.
    pub(super) async fn objects_of(&self, id: &EnvironmentId) -> Result<Vec<String>, RuntimeError> {
        objects_of(&self.cfg, id, None).await
    }
}

/// See [`DockerRuntime::remove_everything`]; needs only the configuration (a create's guard runs it after the create
/// was dropped).
/// With `attempt`, only the objects of that create attempt ([`super::LABEL_CREATE`]).
pub(super) async fn remove_everything(
    cfg: &DockerConfig,
    id: &EnvironmentId,
    attempt: Option<&str>,
) -> Result<(), RuntimeError> {
    let docker = connect_engine(&cfg.socket, cfg.request_timeout)?;
    let sock = cfg.socket.clone();
    let limit = cfg.request_timeout;
    let filters = attempt_filter(&cfg.label, id, attempt);
    // Containers: the candidate (by name too, in case its create stopped before the labels were set) and any
    // other of the environment's.
    let listed = bounded(
        &sock,
        "list containers",
        limit,
        docker.list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        })),
    )
    .await?
    .map_err(|e| engine_error(&sock, "list the environment's containers", e))?;
    let mut names: Vec<String> = listed.into_iter().filter_map(|c| c.id).collect();
    if attempt.is_none() {
        names.push(object_name(id));
    }
    for c in names {
        let options = RemoveContainerOptions { force: true, v: true, link: false };
        match bounded(&sock, "remove a container", limit, docker.remove_container(&c, Some(options))).await? {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            // Removal already under way (a concurrent destroy, or dockerd's own).
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, message })
                if message.contains("already in progress") => {}
            Err(e) => return Err(engine_error(&sock, "remove the environment's container", e)),
        }
    }
    // Networks: the environment's, by label (and by name, when it has ours).
    let networks = bounded(
        &sock,
        "list networks",
        limit,
        docker.list_networks(Some(ListNetworksOptions { filters: Some(filters.clone()) })),
    )
    .await?
    .map_err(|e| engine_error(&sock, "list the environment's networks", e))?;
    for n in networks.into_iter().filter_map(|n| n.id) {
        match bounded(&sock, "remove a network", limit, docker.remove_network(&n)).await? {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(&sock, "remove the environment's network", e)),
        }
    }
    // Volumes.
    let volumes = bounded(
        &sock,
        "list volumes",
        limit,
        docker.list_volumes(Some(ListVolumesOptions { filters: Some(filters.clone()) })),
    )
    .await?
    .map_err(|e| engine_error(&sock, "list the environment's volumes", e))?;
    for v in volumes.volumes.unwrap_or_default() {
        let options = bollard::query_parameters::RemoveVolumeOptions { force: true };
        match bounded(&sock, "remove a volume", limit, docker.remove_volume(&v.name, Some(options))).await? {
            Ok(()) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(&sock, "remove the environment's volume", e)),
        }
    }
    let left = objects_of(cfg, id, attempt).await?;
    if !left.is_empty() {
        return Err(RuntimeError::Backend(format!("teardown left {}", left.join(", "))));
    }
    Ok(())
}

/// See [`DockerRuntime::objects_of`] (containers also by the candidate's name).
async fn objects_of(
    cfg: &DockerConfig,
    id: &EnvironmentId,
    attempt: Option<&str>,
) -> Result<Vec<String>, RuntimeError> {
    let docker = connect_engine(&cfg.socket, cfg.request_timeout)?;
    let sock = cfg.socket.clone();
    let limit = cfg.request_timeout;
    let filters = attempt_filter(&cfg.label, id, attempt);
    let mut left = Vec::new();
    let containers = bounded(
        &sock,
        "list containers",
        limit,
        docker.list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters.clone()),
            ..Default::default()
        })),
    )
    .await?
    .map_err(|e| engine_error(&sock, "list the environment's containers", e))?;
    for c in containers {
        let n = c.names.unwrap_or_default().join(",");
        left.push(format!("container {}", n.trim_start_matches('/')));
    }
    let by_name = match attempt {
        None => bounded(&sock, "inspect a container", limit, docker.inspect_container(&object_name(id), None)).await?,
        Some(_) => Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message: String::new() }),
    };
    match by_name {
        Ok(c) if left.is_empty() => {
            left.push(format!("container {}", c.name.unwrap_or_default().trim_start_matches('/')))
        }
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(engine_error(&sock, "look for the environment's container", e)),
    }
    let networks = bounded(
        &sock,
        "list networks",
        limit,
        docker.list_networks(Some(ListNetworksOptions { filters: Some(filters.clone()) })),
    )
    .await?
    .map_err(|e| engine_error(&sock, "list the environment's networks", e))?;
    left.extend(networks.into_iter().map(|n| format!("network {}", n.name.unwrap_or_default())));
    let volumes =
        bounded(&sock, "list volumes", limit, docker.list_volumes(Some(ListVolumesOptions { filters: Some(filters) })))
            .await?
            .map_err(|e| engine_error(&sock, "list the environment's volumes", e))?;
    left.extend(volumes.volumes.unwrap_or_default().into_iter().map(|v| format!("volume {}", v.name)));
    Ok(left)
}

/// The environment's objects of this run label, and of one create attempt when given.
fn attempt_filter(
    label: &str,
    id: &EnvironmentId,
    attempt: Option<&str>,
) -> std::collections::HashMap<String, Vec<String>> {
    let mut f = label_filter(label, Some(id), None);
    if let Some(a) = attempt {
        f.entry("label".into()).or_default().push(format!("{}={a}", super::LABEL_CREATE));
    }
    f
}
