//! Making an environment: the image is checked, then the session's internal network and the candidate container
//! (labels, names, the shim as entrypoint, confinement), which is started; then the shim's hello, bounded. On any
//! error everything made is removed before the error is returned.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, NetworkCreateRequest};
use bollard::query_parameters::CreateContainerOptions;

use super::confinement::{self, DiskBound};
use super::{
    bounded, engine_error, is_not_found, object_name, shim_link, DockerRuntime, LABEL_CREATE, LABEL_ENVIRONMENT,
    LABEL_IMAGE_DIGEST, LABEL_ROLE, LABEL_RUN, SHIM_IN_CONTAINER, SHIM_SOCKET_NAME,
};
use crate::error::RuntimeError;
use crate::types::*;

/// How long the shim may take to answer its first hello once the container runs.
const HELLO_WAIT: Duration = Duration::from_secs(10);

impl DockerRuntime {
    /// Sets `making` once it starts making objects (after the checks that none of this id exists).
    pub(super) async fn create_environment(
        &self,
        spec: EnvironmentSpec,
        making: &std::sync::atomic::AtomicBool,
        attempt: &str,
    ) -> Result<(), RuntimeError> {
        validate(&spec)?;
        // The shim may have gone (or been replaced) since the runtime was made.
        super::shim_file::check(&self.shim)?;
        let image = spec.image.clone().unwrap_or_default();
        let docker = self.client()?;
        let sock = self.cfg.socket.clone();
        let limit = self.cfg.request_timeout;
        // The image: never pulled.
        let inspected = match bounded(&sock, "inspect an image", limit, docker.inspect_image(&image)).await? {
            Ok(i) => i,
            Err(e) if is_not_found(&e) => {
                return Err(RuntimeError::invalid(
                    "base",
                    format!(
                    "image {image} is not in the Docker Engine's store; build it with `make images` or `docker load`"
                ),
                ))
            }
            Err(e) => return Err(engine_error(&sock, &format!("inspect image {image}"), e)),
        };
        let digest = inspected
            .repo_digests
            .as_ref()
            .and_then(|d| d.first())
            .and_then(|d| d.rsplit_once('@').map(|(_, h)| h.to_string()))
            .or(inspected.id.clone())
            .unwrap_or_default();
        let disk = self.disk_bound().await?;
        if let DiskBound::Unbounded(why) = &disk {
            if !self.cfg.accept_unbounded_disk {
                return Err(RuntimeError::Backend(format!(
                    "{why}; move dockerd's data root to such a filesystem, or accept unbounded disks in the server's \
                     configuration (one candidate could then fill that filesystem)"
                )));
            }
        }
        let name = object_name(&spec.id);
        // Never another environment's objects: an existing container or network of this name is an error.
        match bounded(&sock, "inspect a container", limit, docker.inspect_container(&name, None)).await? {
            Ok(_) => return Err(RuntimeError::AlreadyExists),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(&sock, "look for the environment's container", e)),
        }
        match bounded(&sock, "inspect a network", limit, docker.inspect_network(&name, None)).await? {
            Ok(_) => return Err(RuntimeError::AlreadyExists),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(engine_error(&sock, "look for the environment's network", e)),
        }
        making.store(true, std::sync::atomic::Ordering::SeqCst);
        let made = self.make(&spec, &image, &digest, &disk, attempt).await;
        match made {
            Ok(()) => {
                self.remember_digest(spec.id, digest);
                Ok(())
            }
            Err(e) => match self.remove_everything(&spec.id).await {
                Ok(()) => Err(e),
                Err(c) => {
                    tracing::error!(error = %c, "cleanup after a failed docker create");
                    Err(RuntimeError::Backend(format!("{e}; cleaning up after it failed too: {c}")))
                }
            },
        }
    }

    /// The network, the container, its start and the shim's hello.
    async fn make(
        &self,
        spec: &EnvironmentSpec,
        image: &str,
        digest: &str,
        disk: &DiskBound,
        attempt: &str,
    ) -> Result<(), RuntimeError> {
        let docker = self.client()?;
        let sock = self.cfg.socket.clone();
        let limit = self.cfg.request_timeout;
        let name = object_name(&spec.id);
        let mut labels = HashMap::from([
            (LABEL_ENVIRONMENT.to_string(), spec.id.to_string()),
            (LABEL_RUN.to_string(), self.cfg.label.clone()),
            (LABEL_CREATE.to_string(), attempt.to_string()),
        ]);
        let network = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone()),
            ..Default::default()
        };
        bounded(&sock, "create a network", limit, docker.create_network(network)).await?.map_err(
            |e| match engine_error(&sock, "create the environment's internal network", e) {
                // Docker's default address pools hold about 30 bridge networks, one per live environment here.
                RuntimeError::Backend(m) if m.contains("address pool") => RuntimeError::Backend(format!(
                    "{m}: every Docker environment has a network of its own; give dockerd more address pools \
                     (default-address-pools in /etc/docker/daemon.json, docs/DEPLOY.md)"
                )),
                other => other,
            },
        )?;
        labels.insert(LABEL_ROLE.to_string(), "candidate".into());
        labels.insert(LABEL_IMAGE_DIGEST.to_string(), digest.to_string());
        let body = ContainerCreateBody {
            image: Some(image.to_string()),
            hostname: Some("exam".into()),
            // The shim runs as root and starts the candidate's shells; the image's USER does not apply.
            user: Some("0:0".into()),
            entrypoint: Some(vec![SHIM_IN_CONTAINER.to_string()]),
            cmd: None,
            env: Some(vec![
                format!("EXAMROOM_SHIM_SOCKET={SHIM_SOCKET_NAME}"),
                format!("EXAMROOM_SHIM_COLS={}", spec.cols),
                format!("EXAMROOM_SHIM_ROWS={}", spec.rows),
            ]),
            labels: Some(labels),
            tty: Some(false),
            open_stdin: Some(false),
            attach_stdin: Some(false),
            attach_stdout: Some(false),
            attach_stderr: Some(false),
            network_disabled: Some(false),
            host_config: Some(confinement::host_config(&spec.limits, &self.shim, &name, disk)),
            ..Default::default()
        };
        let options = CreateContainerOptions { name: Some(name.clone()), ..Default::default() };
        bounded(&sock, "create a container", limit, docker.create_container(Some(options), body))
            .await?
            .map_err(|e| engine_error(&sock, "create the environment's container", e))?;
        bounded(&sock, "start a container", limit, docker.start_container(&name, None))
            .await?
            .map_err(|e| engine_error(&sock, "start the environment's container", e))?;
        match shim_link::connect(&docker, &sock, &name, HELLO_WAIT).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let logs = self.log_tail(&name).await;
                Err(RuntimeError::Backend(format!(
                    "the shim in the environment's container did not answer: {e}{}",
                    if logs.is_empty() { String::new() } else { format!("; it printed: {logs}") }
                )))
            }
        }
    }

    /// The last lines the container printed (the shim's errors), for messages.
    pub(super) async fn log_tail(&self, container: &str) -> String {
        use futures::StreamExt;
        let Ok(docker) = self.client() else { return String::new() };
        let options = bollard::query_parameters::LogsOptions {
            stdout: true,
            stderr: true,
            tail: "5".into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        let mut logs = docker.logs(container, Some(options));
        let read = async {
            while let Some(Ok(chunk)) = logs.next().await {
                out.extend_from_slice(&chunk.into_bytes());
                if out.len() > 4096 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(3), read).await;
        String::from_utf8_lossy(&out).lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" | ")
    }
}

fn validate(spec: &EnvironmentSpec) -> Result<(), RuntimeError> {
    spec.limits.validate()?;
    if spec.profile == Profile::System {
        return Err(RuntimeError::invalid(
            "profile",
            "the docker backend runs shell environments only; run system exams on the sandbox backend",
        ));
    }
    match spec.image.as_deref() {
        None | Some("") => {
            return Err(RuntimeError::invalid("base", "a docker environment needs an image: base = \"image:REF\""))
        }
        Some(r) if r.len() > 255 || r.chars().any(|c| c.is_whitespace() || c.is_control()) => {
            return Err(RuntimeError::invalid("base", format!("{r:?} is not an image reference")))
        }
        Some(_) => {}
    }
    if !(2..=1000).contains(&spec.cols) || !(2..=1000).contains(&spec.rows) {
        return Err(RuntimeError::invalid("size", "terminal columns and rows must be 2..=1000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_are_checked_before_the_engine_is_asked() {
        let id = examroom_core::EnvironmentId::new_v4();
        let mut spec = EnvironmentSpec::new(id);
        assert!(validate(&spec).unwrap_err().to_string().contains("image:REF"));
        spec.image = Some("a b".into());
        assert!(validate(&spec).is_err());
        spec.image = Some("examroom/debian:1".into());
        assert!(validate(&spec).is_ok());
        spec.profile = Profile::System;
        assert!(validate(&spec).unwrap_err().to_string().contains("sandbox"));
    }
}
