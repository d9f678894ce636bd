//! What an environment keeps in its state directory, so that a restarted server (or a janitor after a crash) can find
//! it again: `config.json` (written by the runtime before the shim starts), `state.json` (written by the shim),
//! `shim.sock` (the shim's socket) and `shim.log` (the shim's standard error).

use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::cgroup::Group;
use super::idmap::{UidPool, UidSlot};
use crate::types::EnvironmentSpec;

/// The runtime's instructions to a shim.
pub const CONFIG: &str = "config.json";
/// What the shim made.
pub const STATE: &str = "state.json";
/// The shim's socket.
pub const SOCKET: &str = "shim.sock";
/// The shim's log.
pub const LOG: &str = "shim.log";
/// The shim's pid, written by the runtime when it starts the shim.
pub const PID: &str = "shim.pid";

/// Everything a shim needs to make and hold one environment.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ShimConfig {
    /// What to create.
    pub spec: EnvironmentSpec,
    /// The runtime instance's label (scopes cgroups and leak checks).
    pub label: String,
    /// The top cgroup name.
    pub cgroup_root: String,
    /// Host uid ranges.
    pub uid_pool: UidPool,
    /// Use a user namespace (else the candidate runs as an unprivileged host uid).
    pub userns: bool,
    /// The curated `/etc` of the host base.
    pub base_etc: PathBuf,
    /// Host paths never visible inside.
    pub hidden: Vec<PathBuf>,
    /// Scrollback per terminal, in bytes.
    pub scrollback_bytes: usize,
}

/// What a shim made, for rediscovery and cleanup.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ShimState {
    /// The shim's host pid.
    pub shim_pid: i32,
    /// Init's host pid (0 until started).
    pub init_pid: i32,
    /// The claimed uid range.
    pub uid: Option<UidSlot>,
    /// The environment's cgroup.
    pub env_group: Option<Group>,
    /// The shim's cgroup.
    pub shim_group: Option<Group>,
    /// Creation time.
    pub created_unix_ms: u64,
}

/// Reads a JSON file.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> io::Result<T> {
    let bytes = std::fs::read(path)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
}

/// Writes a JSON file atomically (write then rename).
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(value).map_err(io::Error::other)?)?;
    std::fs::rename(&tmp, path)
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
