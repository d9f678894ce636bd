//! The Docker Engine of the Docker tests (one `dockerd` on a socket of its own, started when it does not answer:
//! crates/runtime/tests/docker/dockerd.rs), with the sample exams' image imported (`make images` built its rootfs;
//! scripts/docker-images.sh imports it, nothing is pulled).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

#[path = "../../../runtime/tests/docker/dockerd.rs"]
#[allow(dead_code, clippy::zombie_processes)]
mod dockerd;

/// The test daemon's socket, with `examroom/debian:1` in its store.
pub fn with_sample_image() -> PathBuf {
    static READY: OnceLock<PathBuf> = OnceLock::new();
    READY
        .get_or_init(|| {
            let sock = dockerd::socket();
            let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scripts/docker-images.sh");
            let out = Command::new(&script).arg(&sock).output().expect("run scripts/docker-images.sh");
            assert!(
                out.status.success(),
                "scripts/docker-images.sh (run make images first): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            sock
        })
        .clone()
}

/// Runs the docker CLI on the Engine at `sock`; its standard output (empty when it fails: cleanup never panics).
fn cli(sock: &Path, args: &[&str]) -> String {
    Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The containers, volumes and networks labelled with run label `label`, as "kind name" lines.
pub fn objects_of(sock: &Path, label: &str) -> Vec<String> {
    let filter = format!("label=examroom.label={label}");
    let mut out = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "--format", "{{.Names}}", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
        ("network", vec!["network", "ls", "--format", "{{.Name}}", "--filter", &filter]),
    ] {
        out.extend(cli(sock, &args).lines().filter(|l| !l.trim().is_empty()).map(|l| format!("{kind} {l}")));
    }
    out
}

/// Removes every container, volume and network labelled with run label `label` (a failed test's leftovers).
pub fn remove_all(sock: &Path, label: &str) {
    let filter = format!("label=examroom.label={label}");
    let containers = cli(sock, &["ps", "-aq", "--filter", &filter]);
    let ids: Vec<&str> = containers.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f", "-v"];
        args.extend(ids);
        cli(sock, &args);
    }
    for v in cli(sock, &["volume", "ls", "-q", "--filter", &filter]).split_whitespace() {
        cli(sock, &["volume", "rm", "-f", v]);
    }
    for n in cli(sock, &["network", "ls", "-q", "--filter", &filter]).split_whitespace() {
        cli(sock, &["network", "rm", n]);
    }
}
