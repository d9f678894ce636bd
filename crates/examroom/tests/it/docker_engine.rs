//! The Docker Engine of the Docker tests (one `dockerd` on a socket of its own, started when it does not answer:
//! crates/runtime/tests/docker/dockerd.rs), with the sample exams' image imported (`make images` built its rootfs;
//! scripts/docker-images.sh imports it, nothing is pulled).

use std::path::PathBuf;
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
