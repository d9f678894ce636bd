//! The values that cross the [`crate::ExecutionRuntime`] boundary.

use std::path::PathBuf;
use std::time::Duration;

use examroom_core::EnvironmentId;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

/// What an environment's read-only base is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Base {
    /// The host's `/usr` (and `/bin`, `/sbin`, `/lib*`) plus a curated `/etc`, read-only; everything else fresh.
    Host,
    /// A root filesystem directory, for example one built with debootstrap.
    Rootfs(PathBuf),
}

impl Base {
    /// Parses `host` or `rootfs:PATH` (PATH absolute). Existence is checked by the backend.
    pub fn parse(s: &str) -> Result<Base, RuntimeError> {
        match s {
            "host" => Ok(Base::Host),
            _ => match s.strip_prefix("rootfs:") {
                Some(p) if p.starts_with('/') && !p.split('/').any(|c| c == "..") => Ok(Base::Rootfs(PathBuf::from(p))),
                Some(_) => Err(RuntimeError::invalid("base", "rootfs:PATH needs an absolute path without `..`")),
                None => {
                    Err(RuntimeError::invalid("base", format!("unknown base {s:?}; use \"host\" or \"rootfs:/PATH\"")))
                }
            },
        }
    }
}

impl std::fmt::Display for Base {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Base::Host => f.write_str("host"),
            Base::Rootfs(p) => write!(f, "rootfs:{}", p.display()),
        }
    }
}

/// Resource limits of one environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Memory, swap included, in bytes.
    pub memory_bytes: u64,
    /// Processes and threads.
    pub pids: u64,
    /// CPU, in thousandths of a core.
    pub cpu_millicores: u32,
    /// The writable layer (a tmpfs), in bytes. Kept below `memory_bytes`, so that filling it gives ENOSPC, not an OOM
    /// kill.
    pub disk_bytes: u64,
}

impl Limits {
    /// Memory bounds accepted.
    pub const MEMORY: (u64, u64) = (32 << 20, 64 << 30);
    /// Pids bounds accepted.
    pub const PIDS: (u64, u64) = (16, 65_536);
    /// CPU bounds accepted.
    pub const CPU: (u32, u32) = (50, 64_000);
    /// Smallest writable layer.
    pub const DISK_MIN: u64 = 4 << 20;

    /// Checks every limit, naming the one out of range.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        fn range<T: PartialOrd + std::fmt::Display>(field: &str, v: T, lo: T, hi: T) -> Result<(), RuntimeError> {
            if v < lo || v > hi {
                return Err(RuntimeError::invalid(field, format!("{v} is out of range ({lo}..={hi})")));
            }
            Ok(())
        }
        range("memory", self.memory_bytes, Self::MEMORY.0, Self::MEMORY.1)?;
        range("pids", self.pids, Self::PIDS.0, Self::PIDS.1)?;
        range("cpu", self.cpu_millicores, Self::CPU.0, Self::CPU.1)?;
        if self.disk_bytes < Self::DISK_MIN || self.disk_bytes >= self.memory_bytes {
            return Err(RuntimeError::invalid(
                "disk",
                format!(
                    "{} is out of range: at least {} and below the memory limit ({}), so that a full disk gives ENOSPC \
                     rather than an out-of-memory kill",
                    self.disk_bytes,
                    Self::DISK_MIN,
                    self.memory_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits { memory_bytes: 512 << 20, pids: 512, cpu_millicores: 1000, disk_bytes: 256 << 20 }
    }
}

/// What kind of machine an environment is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// A shell in a tight jail: our own init as PID 1, no service manager, the candidate's capability set.
    #[default]
    Shell,
    /// A whole machine: systemd as PID 1, delegated cgroups, and `CAP_SYS_ADMIN`, `CAP_NET_ADMIN` and `CAP_NET_RAW`
    /// in the environment's own user namespace (services, sudo, ssh, mounts, networking). Needs a user namespace.
    System,
}

impl Profile {
    /// Parses `shell` or `system`.
    pub fn parse(s: &str) -> Result<Profile, RuntimeError> {
        match s {
            "shell" => Ok(Profile::Shell),
            "system" => Ok(Profile::System),
            _ => Err(RuntimeError::invalid("profile", format!("unknown profile {s:?}; use \"shell\" or \"system\""))),
        }
    }
}

impl std::fmt::Display for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Profile::Shell => "shell",
            Profile::System => "system",
        })
    }
}

/// Which backend makes an environment (the exam's `[environment] backend`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Namespaces, cgroups and seccomp on this host, no daemon.
    #[default]
    Sandbox,
    /// A Docker Engine, one container per environment (plus its services) on a network of its own.
    Docker,
}

impl BackendKind {
    /// Every backend, in the order a server reports them.
    pub const ALL: [BackendKind; 2] = [BackendKind::Sandbox, BackendKind::Docker];

    /// Parses `sandbox` or `docker`.
    pub fn parse(s: &str) -> Result<BackendKind, RuntimeError> {
        match s {
            "sandbox" => Ok(BackendKind::Sandbox),
            "docker" => Ok(BackendKind::Docker),
            _ => Err(RuntimeError::invalid("backend", format!("unknown backend {s:?}; use \"sandbox\" or \"docker\""))),
        }
    }

    /// Its name, as exams and the configuration spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Sandbox => "sandbox",
            BackendKind::Docker => "docker",
        }
    }
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to create.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentSpec {
    /// Its id, chosen by the caller (the session's `execution_environment_id`).
    pub id: EnvironmentId,
    /// The read-only base.
    pub base: Base,
    /// Its limits.
    pub limits: Limits,
    /// Initial terminal size.
    pub cols: u16,
    /// Initial terminal size.
    pub rows: u16,
    /// What kind of machine (`shell` when absent, as state written before profiles existed).
    #[serde(default)]
    pub profile: Profile,
    /// An image of the image store (`NAME:TAG` or a manifest digest `sha256:…`): when set, the runtime makes the base
    /// the image's tree (a [`Base::Rootfs`]) at create, in place of `base`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Which backend makes it ([`Backends`](crate::Backends) routes on it; a backend itself ignores it).
    #[serde(default)]
    pub backend: BackendKind,
}

impl EnvironmentSpec {
    /// A spec with the default limits on the host base.
    pub fn new(id: EnvironmentId) -> Self {
        EnvironmentSpec {
            id,
            base: Base::Host,
            limits: Limits::default(),
            cols: 80,
            rows: 24,
            profile: Profile::Shell,
            image: None,
            backend: BackendKind::Sandbox,
        }
    }
}

/// A command to run in an environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecRequest {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The environment (nothing is inherited); `PATH` defaults to the standard one when absent.
    pub env: Vec<(String, String)>,
    /// Working directory.
    pub cwd: String,
    /// Bytes fed to stdin, then EOF.
    pub stdin: Vec<u8>,
    /// Killed after this.
    pub timeout: Duration,
    /// Per-stream output cap.
    pub output_limit: u64,
}

impl ExecRequest {
    /// Runs `sh -c script` with a 30 s timeout and 1 MiB of output per stream.
    pub fn shell(script: &str) -> Self {
        ExecRequest {
            argv: vec!["/bin/sh".into(), "-c".into(), script.into()],
            env: Vec::new(),
            cwd: "/root".into(),
            stdin: Vec::new(),
            timeout: Duration::from_secs(30),
            output_limit: 1 << 20,
        }
    }

    /// The same with another timeout.
    pub fn with_timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
}

/// What an exec produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code, when it exited.
    pub exit_code: Option<i32>,
    /// Signal, when a signal ended it.
    pub signal: Option<i32>,
    /// Killed at its timeout.
    pub timed_out: bool,
    /// Standard output (up to the limit).
    pub stdout: Vec<u8>,
    /// Standard error (up to the limit).
    pub stderr: Vec<u8>,
    /// Output was cut at the limit.
    pub truncated: bool,
    /// Wall time.
    pub duration: Duration,
}

impl ExecOutput {
    /// Stdout as text (lossy).
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Whether an environment is usable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EnvironmentState {
    /// Its shim and init are alive.
    Running,
    /// It cannot be used any more (its init or shim died); destroy it.
    Lost {
        /// Why.
        reason: String,
    },
}

/// One environment's status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvironmentStatus {
    /// Its id.
    pub id: EnvironmentId,
    /// Running or lost.
    pub state: EnvironmentState,
    /// Processes inside.
    pub processes: u32,
    /// Shells restarted after an exit.
    pub shell_restarts: u32,
    /// OOM kills inside.
    pub oom_kills: u64,
    /// The shim's protocol version on this connection.
    pub protocol_version: u32,
}

/// What destroy removed and verified.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestroyReport {
    /// Processes killed.
    pub killed: u32,
    /// Everything is verified gone: processes, cgroups, files and the uid range.
    pub verified: bool,
    /// How long it took.
    pub duration_ms: u64,
}

/// Something the terminal stream delivers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TerminalEvent {
    /// Output bytes (the replay first, then live).
    Output(Vec<u8>),
    /// A notice for the person, e.g. that a new shell was started.
    Notice(String),
    /// A newer attach took over; the stream ends.
    Replaced,
    /// The environment is being destroyed; the stream ends.
    Ended,
}

/// When a service container counts as ready (see [`ServiceSpec`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Readiness {
    /// A command, run inside the service (program and arguments), exits 0.
    Command(Vec<String>),
    /// The service accepts TCP connections on this port of its address on the session's network.
    Tcp(u16),
    /// As soon as its container runs.
    None,
}

/// A service container beside an environment (an exam's `[[environment.services]]`): it runs on the session's own
/// network, where the candidate's container reaches it by `name`, and nothing else does. Only the Docker backend
/// runs services.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// Its name: the host name the candidate reaches it by, like a task id (`a-z`, `0-9`, `-`, at most 63, not
    /// starting with `-`).
    pub name: String,
    /// The image it runs (in the Docker Engine's store; nothing is pulled).
    pub image: String,
    /// The command, program and arguments; empty: the image's own.
    pub command: Vec<String>,
    /// Environment variables, added to the image's.
    pub env: Vec<(String, String)>,
    /// Memory (swap included), pids and CPU; `disk_bytes` is ignored (a service's writable layer is not bounded).
    pub limits: Limits,
    /// When it counts as ready.
    pub ready: Readiness,
    /// How long to wait for it to become ready before the session fails.
    pub ready_timeout: Duration,
}

impl ServiceSpec {
    /// The longest service name (a DNS label).
    pub const MAX_NAME: usize = 63;

    /// Checks the name (a host name on the session's network and part of its container's name) and the readiness.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let n = &self.name;
        if n.is_empty()
            || n.len() > Self::MAX_NAME
            || n.starts_with('-')
            || !n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(RuntimeError::invalid(
                "service.name",
                format!("{n:?}: use 1 to {} of a-z, 0-9 and '-', not starting with '-'", Self::MAX_NAME),
            ));
        }
        if self.image.is_empty() {
            return Err(RuntimeError::invalid("service.image", format!("service {n:?} names no image")));
        }
        match &self.ready {
            Readiness::Command(argv) if argv.is_empty() => {
                Err(RuntimeError::invalid("service.ready", format!("service {n:?}: the readiness command is empty")))
            }
            Readiness::Tcp(0) => Err(RuntimeError::invalid("service.ready", format!("service {n:?}: port 0"))),
            _ => Ok(()),
        }
    }
}
