//! Docker backend tests (issue 14), against a test dockerd of their own (dockerd.rs). Tests that need the static shim
//! (`target/shim/examroom-shim`, `make shim`) skip with a printed reason when it is absent. The grading and services
//! tests make their objects under a run label of their own ([`Run`]) and remove everything with that label when they
//! end, passed or failed.

#[allow(dead_code, clippy::zombie_processes)]
mod dockerd;

mod confinement;
mod errors;
mod grading;
mod harness;
mod lifecycle;
mod services;
mod xfs;

use std::collections::HashMap;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkCreateRequest, NetworkingConfig};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use bollard::{ClientVersion, Docker};
use examroom_core::EnvironmentId;
use futures::StreamExt;

/// One test's run: its label, a client of the test daemon, and the cleanup of everything labelled with it.
pub struct Run {
    pub label: String,
    pub docker: Docker,
}

impl Run {
    /// A run with a label of its own (`tag` says which test).
    pub fn new(tag: &str) -> Run {
        let sock = dockerd::socket();
        dockerd::busybox_image();
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let label = format!("examroom-test-{tag}-{}-{nanos}", std::process::id());
        let docker = Docker::connect_with_unix(
            sock.to_str().unwrap(),
            120,
            &ClientVersion { major_version: 1, minor_version: 41 },
        )
        .expect("a client of the test dockerd");
        Run { label, docker }
    }

    /// The labels of an object of `role` in `env` for this run.
    pub fn labels(&self, env: &EnvironmentId, role: &str) -> HashMap<String, String> {
        HashMap::from([
            ("examroom.environment".to_string(), env.to_string()),
            ("examroom.label".to_string(), self.label.clone()),
            ("examroom.role".to_string(), role.to_string()),
        ])
    }

    /// The session network `examroom-<env>` (bridge, internal), as the runtime's create makes it.
    pub async fn network(&self, env: &EnvironmentId) -> String {
        let name = format!("examroom-{env}");
        self.docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                driver: Some("bridge".into()),
                internal: Some(true),
                labels: Some(self.labels(env, "network")),
                ..Default::default()
            })
            .await
            .expect("create the session network");
        name
    }

    /// A candidate container `examroom-<env>` from `image`, running `sleep 3600` (tests only), on `network` (or none).
    pub async fn candidate(&self, env: &EnvironmentId, image: &str, network: Option<&str>) -> String {
        let name = format!("examroom-{env}");
        let net = network.unwrap_or("none").to_string();
        let body = ContainerCreateBody {
            image: Some(image.into()),
            entrypoint: Some(vec!["sleep".into(), "3600".into()]),
            labels: Some(self.labels(env, "candidate")),
            host_config: Some(HostConfig {
                network_mode: Some(net.clone()),
                memory: Some(256 << 20),
                memory_swap: Some(256 << 20),
                pids_limit: Some(128),
                ..Default::default()
            }),
            networking_config: network.map(|n| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(n.to_string(), EndpointSettings::default())])),
            }),
            ..Default::default()
        };
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        self.docker.create_container(Some(opts), body).await.expect("create the candidate");
        self.docker.start_container(&name, None).await.expect("start the candidate");
        name
    }

    /// Runs `sh -c script` in a container (as a candidate would); its exit code and output (both streams).
    pub async fn sh(&self, container: &str, script: &str) -> (i64, String) {
        let exec = self
            .docker
            .create_exec(
                container,
                CreateExecOptions::<String> {
                    cmd: Some(vec!["/bin/sh".into(), "-c".into(), script.into()]),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("create exec");
        let mut text = Vec::new();
        if let StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.expect("start exec")
        {
            while let Some(Ok(chunk)) = output.next().await {
                text.extend_from_slice(&chunk.into_bytes());
            }
        }
        let mut code = None;
        for _ in 0..100 {
            let info = self.docker.inspect_exec(&exec.id).await.expect("inspect exec");
            if info.running != Some(true) {
                code = info.exit_code;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        (code.expect("the exec ended"), String::from_utf8_lossy(&text).into_owned())
    }

    /// The names of this run's containers, volumes and networks that are left.
    pub fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=examroom.label={}", self.label);
        let mut out = Vec::new();
        for (kind, args) in [
            ("container", vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
            ("network", vec!["network", "ls", "--format", "{{.Name}}", "--filter", &filter]),
        ] {
            out.extend(cli(&args).lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{kind} {l}")));
        }
        out
    }

    /// This run's objects of `env` with `role`, as "kind name" lines.
    pub fn objects(&self, env: &EnvironmentId, role: &str) -> Vec<String> {
        let (e, r) = (format!("label=examroom.environment={env}"), format!("label=examroom.role={role}"));
        let mut out = Vec::new();
        for (kind, args) in [
            ("container", vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &e, "--filter", &r]),
            ("volume", vec!["volume", "ls", "-q", "--filter", &e, "--filter", &r]),
        ] {
            out.extend(cli(&args).lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{kind} {l}")));
        }
        out
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let filter = format!("label=examroom.label={}", self.label);
        let containers = cli(&["ps", "-aq", "--filter", &filter]);
        let ids: Vec<&str> = containers.split_whitespace().collect();
        if !ids.is_empty() {
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids);
            cli(&args);
        }
        let volumes = cli(&["volume", "ls", "-q", "--filter", &filter]);
        for v in volumes.split_whitespace() {
            cli(&["volume", "rm", "-f", v]);
        }
        let networks = cli(&["network", "ls", "-q", "--filter", &filter]);
        for n in networks.split_whitespace() {
            cli(&["network", "rm", n]);
        }
    }
}

/// Runs the docker CLI against the test daemon; its stdout (empty when it fails: cleanup must never panic).
pub fn cli(args: &[&str]) -> String {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", dockerd::socket_path().display()))
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}
