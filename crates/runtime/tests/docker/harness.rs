//! What every Docker test shares: a runtime with a run label of its own, and a guard that removes every container,
//! network and volume of that label when the test ends, passed or failed.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use examroom_runtime::docker::{DockerConfig, DockerRuntime};

use crate::dockerd::{docker, socket};

/// The static shim (`make shim`), or `None` with a printed reason.
pub fn shim() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/shim/examroom-shim"));
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: {} is absent (run `make shim`)", p.display());
        None
    }
}

/// A fresh run label: `t-<pid>-<n>`.
pub fn label() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("t-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes everything of its label on drop.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let filter = format!("label=examroom.label={}", self.0);
        let run = |args: &[&str]| {
            Command::new("docker").arg("-H").arg(format!("unix://{}", socket().display())).args(args).output()
        };
        if let Ok(out) = run(&["ps", "-aq", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = run(&["rm", "-f", "-v", id]);
            }
        }
        if let Ok(out) = run(&["network", "ls", "-q", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = run(&["network", "rm", id]);
            }
        }
        if let Ok(out) = run(&["volume", "ls", "-q", "--filter", &filter]) {
            for id in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = run(&["volume", "rm", "-f", id]);
            }
        }
    }
}

/// Containers, networks and volumes of `label` that exist now.
pub fn objects(label: &str) -> Vec<String> {
    let filter = format!("label=examroom.label={label}");
    let mut all = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-aq", "--filter", &filter]),
        ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        all.extend(docker(&args).split_whitespace().map(|id| format!("{kind} {id}")));
    }
    all
}

/// A configuration for the test daemon with a fresh label; unbounded disks accepted (the test data root is ext4).
pub fn config(shim: PathBuf) -> (DockerConfig, Cleanup) {
    let label = label();
    let mut cfg = DockerConfig::new(socket(), &label, shim);
    cfg.accept_unbounded_disk = true;
    cfg.create_timeout = Duration::from_secs(60);
    (cfg, Cleanup(label))
}

/// A runtime with the shim, or `None` (printed) when the shim is absent.
pub fn runtime() -> Option<(DockerRuntime, Cleanup)> {
    let shim = shim()?;
    let (cfg, cleanup) = config(shim);
    Some((DockerRuntime::new(cfg).expect("docker runtime"), cleanup))
}

/// `docker inspect -f FORMAT NAME`, trimmed.
pub fn inspect(name: &str, format: &str) -> String {
    docker(&["inspect", "-f", format, name]).trim().to_string()
}
