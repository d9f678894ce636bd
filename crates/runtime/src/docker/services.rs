//! Service containers beside an environment (`[[environment.services]]`): `examroom-<env>-svc-<name>` on the
//! session's network `examroom-<env>` (a bridge with `Internal: true`, made by the environment's create), reachable
//! there by its name (a network alias) and from nowhere else: no route out, no published port, no other network.
//!
//! Confinement, as for the candidate's container: never privileged, Docker's default capabilities minus `NET_RAW`,
//! `no-new-privileges`, memory (no swap beyond it), pids and CPU limits. A service's writable layer is not bounded
//! (the exam's `disk` limit is not applied to it), and it runs Docker's default seccomp profile.
//!
//! [`start_service`] waits, bounded by the spec's `ready_timeout`, until the service is ready ([`Readiness`]); a
//! service that exits or does not become ready in time is removed, and the error names it and carries the last
//! [`LOG_TAIL_LINES`] lines of its log, for the proctor.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig, RestartPolicy};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use examroom_core::EnvironmentId;
use futures::StreamExt;
use tokio::time::{sleep, timeout, Instant};

use crate::error::RuntimeError;
use crate::types::{Readiness, ServiceSpec};

/// How many lines of a failed service's log its error carries.
pub const LOG_TAIL_LINES: usize = 20;

/// Each Docker API call of a service's start (other than the readiness wait itself) is bounded by this.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The label keys every examroom object carries (see the issue 14 contract).
pub(super) const LABEL_ENVIRONMENT: &str = "examroom.environment";
/// The run label (the runtime's configured label; tests use their own).
pub(super) const LABEL_RUN: &str = "examroom.label";
/// `candidate`, `grading` or `service`.
pub(super) const LABEL_ROLE: &str = "examroom.role";
/// The service's name, on service containers.
pub(super) const LABEL_SERVICE: &str = "examroom.service";

/// The session's network (and the candidate's container): `examroom-<env>`.
pub(super) fn session_name(env: &EnvironmentId) -> String {
    format!("examroom-{env}")
}

/// A service's container: `examroom-<env>-svc-<name>`.
pub(super) fn service_container(env: &EnvironmentId, name: &str) -> String {
    format!("examroom-{env}-svc-{name}")
}

/// The labels of an object of `role` in environment `env`, for run `label`.
pub(super) fn labels(label: &str, env: &EnvironmentId, role: &str) -> HashMap<String, String> {
    HashMap::from([
        (LABEL_ENVIRONMENT.to_string(), env.to_string()),
        (LABEL_RUN.to_string(), label.to_string()),
        (LABEL_ROLE.to_string(), role.to_string()),
    ])
}

/// Whether a Docker API error is an HTTP `status` answer.
pub(super) fn is_status(e: &bollard::errors::Error, status: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// A Docker API error as a [`RuntimeError`], saying what was being done.
pub(super) fn api_error(what: &str, e: bollard::errors::Error) -> RuntimeError {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, message } => {
            RuntimeError::Backend(format!("{what}: the Docker Engine answered {status_code}: {message}"))
        }
        other => RuntimeError::Backend(format!(
            "{what}: the Docker Engine could not be reached or answered unexpectedly ({other}); check that dockerd \
             runs and that its socket is the configured one"
        )),
    }
}

/// Runs a Docker call within [`CALL_TIMEOUT`].
pub(super) async fn bounded<T>(
    what: &str,
    fut: impl std::future::Future<Output = Result<T, bollard::errors::Error>>,
) -> Result<T, RuntimeError> {
    match timeout(CALL_TIMEOUT, fut).await {
        Ok(r) => r.map_err(|e| api_error(what, e)),
        Err(_) => Err(RuntimeError::Timeout {
            what: format!("the Docker Engine to {what}"),
            ms: CALL_TIMEOUT.as_millis() as u64,
        }),
    }
}

/// Creates and starts the service `svc` of environment `env` on the session's network (which must exist), and
/// waits until it is ready, bounded by `svc.ready_timeout`. On any failure nothing of the service remains, and the
/// error names the service (and, once it ran, carries the tail of its log).
pub(crate) async fn start_service(
    docker: &Docker,
    label: &str,
    env: &EnvironmentId,
    svc: &ServiceSpec,
) -> Result<(), RuntimeError> {
    svc.validate()?;
    let name = service_container(env, &svc.name);
    let network = session_name(env);
    match docker.inspect_image(&svc.image).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {
            return Err(RuntimeError::Backend(format!(
                "service {:?}: the image {:?} is not in the Docker Engine's image store, and nothing is pulled; \
                 build or load it first (`make images`, or `docker load -i FILE`)",
                svc.name, svc.image
            )))
        }
        Err(e) => return Err(api_error(&format!("inspect the image of service {:?}", svc.name), e)),
    }
    let mut labels = labels(label, env, "service");
    labels.insert(LABEL_SERVICE.to_string(), svc.name.clone());
    let lim = &svc.limits;
    let memory = i64::try_from(lim.memory_bytes).unwrap_or(i64::MAX);
    let body = ContainerCreateBody {
        image: Some(svc.image.clone()),
        cmd: (!svc.command.is_empty()).then(|| svc.command.clone()),
        env: Some(svc.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
        hostname: Some(svc.name.clone()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.clone()),
            privileged: Some(false),
            cap_drop: Some(vec!["NET_RAW".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            memory: Some(memory),
            memory_swap: Some(memory),
            pids_limit: Some(i64::try_from(lim.pids).unwrap_or(i64::MAX)),
            nano_cpus: Some(i64::from(lim.cpu_millicores) * 1_000_000),
            restart_policy: Some(RestartPolicy {
                name: Some(bollard::models::RestartPolicyNameEnum::NO),
                ..Default::default()
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.clone(),
                EndpointSettings { aliases: Some(vec![svc.name.clone()]), ..Default::default() },
            )])),
        }),
        ..Default::default()
    };
    let opts = CreateContainerOptionsBuilder::default().name(&name).build();
    match timeout(CALL_TIMEOUT, docker.create_container(Some(opts), body)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if is_status(&e, 409) => {
            return Err(RuntimeError::Backend(format!(
                "service {:?}: a container named {name} already exists (a start of this environment that did not \
                 finish?); destroy the environment and create it again",
                svc.name
            )))
        }
        Ok(Err(e)) if is_status(&e, 404) => {
            return Err(RuntimeError::Backend(format!(
                "service {:?}: the session's network {network} does not exist (the environment must be created \
                 before its services): {e}",
                svc.name
            )))
        }
        Ok(Err(e)) => return Err(api_error(&format!("create the container of service {:?}", svc.name), e)),
        Err(_) => {
            remove_container(docker, &name).await;
            return Err(RuntimeError::Timeout {
                what: format!("the Docker Engine to create the container of service {:?}", svc.name),
                ms: CALL_TIMEOUT.as_millis() as u64,
            });
        }
    }
    let started = bounded(&format!("start service {:?}", svc.name), docker.start_container(&name, None)).await;
    let outcome = match started {
        Ok(()) => wait_ready(docker, &name, &network, svc).await,
        Err(e) => Err(e.to_string()),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(why) => {
            let tail = log_tail(docker, &name).await;
            remove_container(docker, &name).await;
            Err(RuntimeError::Backend(format!(
                "service {:?} (image {:?}) {why}; the last lines of its log:\n{tail}",
                svc.name, svc.image
            )))
        }
    }
}

/// Waits until the service is ready, bounded by its `ready_timeout`; `Err` says why not (for the error).
async fn wait_ready(docker: &Docker, name: &str, network: &str, svc: &ServiceSpec) -> Result<(), String> {
    let deadline = Instant::now() + svc.ready_timeout;
    let mut last;
    loop {
        let info = timeout(CALL_TIMEOUT, docker.inspect_container(name, None))
            .await
            .map_err(|_| "could not be inspected: the Docker Engine did not answer".to_string())?
            .map_err(|e| format!("could not be inspected: {e}"))?;
        let state = info.state.unwrap_or_default();
        if !state.running.unwrap_or(false) {
            return Err(format!("exited with status {} before it was ready", state.exit_code.unwrap_or(-1)));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let ready = match &svc.ready {
            Readiness::None => Ok(()),
            Readiness::Command(argv) => probe_command(docker, name, argv, left.min(Duration::from_secs(10))).await,
            Readiness::Tcp(port) => {
                let ip = info
                    .network_settings
                    .and_then(|n| n.networks)
                    .and_then(|mut n| n.remove(network))
                    .and_then(|e| e.ip_address)
                    .filter(|ip| !ip.is_empty());
                match ip {
                    Some(ip) => probe_tcp(&ip, *port, left.min(Duration::from_secs(2))).await,
                    None => Err(format!("it has no address on the network {network}")),
                }
            }
        };
        match ready {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        if Instant::now() + Duration::from_millis(200) >= deadline {
            let what = match &svc.ready {
                Readiness::Command(argv) => format!("its readiness command {argv:?}"),
                Readiness::Tcp(port) => format!("TCP port {port}"),
                Readiness::None => "its start".to_string(),
            };
            return Err(format!(
                "did not become ready within {} ms (waiting for {what}; last attempt: {last})",
                svc.ready_timeout.as_millis()
            ));
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Runs the readiness command in the service; `Ok` when it exits 0 within `limit`.
async fn probe_command(docker: &Docker, name: &str, argv: &[String], limit: Duration) -> Result<(), String> {
    use bollard::exec::{CreateExecOptions, StartExecResults};
    let run = async {
        let exec = docker
            .create_exec(
                name,
                CreateExecOptions::<String> {
                    cmd: Some(argv.to_vec()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("exec failed: {e}"))?;
        if let StartExecResults::Attached { mut output, .. } =
            docker.start_exec(&exec.id, None).await.map_err(|e| format!("exec failed: {e}"))?
        {
            while output.next().await.is_some() {}
        }
        for _ in 0..50 {
            let info = docker.inspect_exec(&exec.id).await.map_err(|e| format!("exec inspect failed: {e}"))?;
            if info.running != Some(true) {
                return match info.exit_code {
                    Some(0) => Ok(()),
                    code => Err(format!("the readiness command exited with {}", code.unwrap_or(-1))),
                };
            }
            sleep(Duration::from_millis(20)).await;
        }
        Err("the readiness command did not end".to_string())
    };
    // A probe cut short here leaves its process running in the service until it ends; the service is removed
    // anyway when it never becomes ready.
    timeout(limit.max(Duration::from_millis(100)), run)
        .await
        .unwrap_or_else(|_| Err(format!("the readiness command did not end within {} ms", limit.as_millis())))
}

/// Connects to `ip:port` from this host (the session's network is a bridge this host is on).
async fn probe_tcp(ip: &str, port: u16, limit: Duration) -> Result<(), String> {
    let addr = format!("{ip}:{port}");
    match timeout(limit.max(Duration::from_millis(100)), tokio::net::TcpStream::connect(&addr)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("connect to {addr}: {e}")),
        Err(_) => Err(format!("connect to {addr}: no answer within {} ms", limit.as_millis())),
    }
}

/// The last [`LOG_TAIL_LINES`] lines of a container's log (stdout and stderr), or a note saying why there are none.
async fn log_tail(docker: &Docker, name: &str) -> String {
    let opts = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&LOG_TAIL_LINES.to_string()).build();
    let collect = async {
        let mut text = Vec::new();
        let mut logs = docker.logs(name, Some(opts));
        while let Some(item) = logs.next().await {
            match item {
                Ok(chunk) => text.extend_from_slice(&chunk.into_bytes()),
                Err(e) => return format!("(its log could not be read: {e})"),
            }
        }
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        if lines.is_empty() {
            "(its log is empty)".to_string()
        } else {
            lines[from..].join("\n")
        }
    };
    timeout(Duration::from_secs(10), collect).await.unwrap_or_else(|_| "(its log could not be read in time)".into())
}

/// Removes a container and its anonymous volumes, whatever its state; a missing one is fine.
async fn remove_container(docker: &Docker, name: &str) -> Option<RuntimeError> {
    let opts = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
    match timeout(CALL_TIMEOUT, docker.remove_container(name, Some(opts))).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) if is_status(&e, 404) => None,
        Ok(Err(e)) => Some(api_error(&format!("remove {name}"), e)),
        Err(_) => Some(RuntimeError::Timeout {
            what: format!("the Docker Engine to remove {name}"),
            ms: CALL_TIMEOUT.as_millis() as u64,
        }),
    }
}

/// Removes every service container of environment `env` (and their anonymous volumes, such as a database image's
/// `VOLUME`). Tries them all; the first failure is returned.
pub(crate) async fn remove_all(docker: &Docker, env: &EnvironmentId) -> Result<(), RuntimeError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_ENVIRONMENT}={env}"), format!("{LABEL_ROLE}=service")],
    )]);
    let opts = ListContainersOptionsBuilder::default().all(true).filters(&filters).build();
    let found = bounded("list the services of an environment", docker.list_containers(Some(opts))).await?;
    let mut first = None;
    for c in found {
        let Some(id) = c.id else { continue };
        if let Some(e) = remove_container(docker, &id).await {
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}
