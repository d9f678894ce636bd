//! What fails, fails at once and clearly, and leaves nothing: no socket, no image, no shim, an unbounded disk.

use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::docker::{DockerConfig, DockerRuntime};
use examroom_runtime::{EnvironmentSpec, ExecutionRuntime};

use crate::dockerd::{busybox_image, socket};
use crate::harness::{config, objects, Cleanup};

fn spec(image: &str) -> EnvironmentSpec {
    let mut s = EnvironmentSpec::new(EnvironmentId::new_v4());
    s.image = Some(image.to_string());
    s
}

/// Debian's busybox-static stands in for the shim where the shim never starts: it is a static ELF.
fn static_stand_in() -> std::path::PathBuf {
    std::path::PathBuf::from("/bin/busybox")
}

#[tokio::test]
async fn a_missing_socket_fails_at_once_and_health_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("docker.sock");
    let rt = DockerRuntime::new(DockerConfig::new(&sock, "t-nosock", static_stand_in())).expect("made without dockerd");
    let t0 = Instant::now();
    let e = rt.create(spec("examroom-test/busybox:1")).await.unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(2), "took {:?}", t0.elapsed());
    assert!(e.contains("does not exist") && e.contains(&sock.display().to_string()) && e.contains("dockerd"), "{e}");
    let h = rt.health().await.unwrap_err();
    assert!(h.contains("does not exist"), "{h}");
    assert!(rt.list().await.is_err());
    // A socket nobody answers on: also at once.
    let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    drop(_listener);
    let t0 = Instant::now();
    let h = rt.health().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(6), "took {:?}", t0.elapsed());
    assert!(h.contains("does not answer") || h.contains("refused"), "{h}");
}

#[test]
fn a_missing_or_dynamic_shim_is_refused_naming_make_shim() {
    let dir = tempfile::tempdir().unwrap();
    let missing = DockerRuntime::new(DockerConfig::new(socket(), "t-noshim", dir.path().join("examroom-shim")));
    let e = missing.err().expect("refused").to_string();
    assert!(e.contains("missing") && e.contains("make shim"), "{e}");
    // A dynamically linked program (this test binary) is refused too.
    let dynamic = DockerRuntime::new(DockerConfig::new(socket(), "t-noshim", std::env::current_exe().unwrap()));
    let e = dynamic.err().expect("refused").to_string();
    assert!(e.contains("dynamically linked") && e.contains("make shim"), "{e}");
}

#[tokio::test]
async fn a_shim_removed_after_start_fails_the_create_clearly_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("examroom-shim");
    std::fs::copy(static_stand_in(), &shim).unwrap();
    let (cfg, cleanup) = config(shim.clone());
    let rt = DockerRuntime::new(cfg).unwrap();
    std::fs::remove_file(&shim).unwrap();
    let e = rt.create(spec(busybox_image())).await.unwrap_err().to_string();
    assert!(e.contains("examroom-shim") && e.contains("make shim"), "{e}");
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test]
async fn a_missing_image_names_the_command_and_leaves_nothing() {
    let (cfg, cleanup) = config(static_stand_in());
    let rt = DockerRuntime::new(cfg).unwrap();
    let e = rt.create(spec("examroom-test/absent:1")).await.unwrap_err().to_string();
    assert!(
        e.contains("image examroom-test/absent:1 is not in the Docker Engine's store")
            && e.contains("make images")
            && e.contains("docker load"),
        "{e}"
    );
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test]
async fn an_unbounded_disk_is_refused_unless_accepted() {
    let (mut cfg, cleanup) = config(static_stand_in());
    cfg.accept_unbounded_disk = false;
    let rt = DockerRuntime::new(cfg).unwrap();
    match rt.disk_bound().await.unwrap() {
        examroom_runtime::docker::DiskBound::Bounded => {
            eprintln!("skipped: the test daemon's data root bounds disks (XFS with pquota)");
        }
        examroom_runtime::docker::DiskBound::Unbounded(why) => {
            assert!(why.contains("XFS"), "{why}");
            let e = rt.create(spec(busybox_image())).await.unwrap_err().to_string();
            assert!(e.contains("cannot bound") && e.contains("accept unbounded disks"), "{e}");
            assert_eq!(objects(&cleanup.0), Vec::<String>::new());
        }
    }
    let _: &Cleanup = &cleanup;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shim_that_does_not_answer_fails_the_create_with_its_output_and_leaves_nothing() {
    // busybox as PID 1 under the shim's name: "shim: applet not found", exit 127.
    let (cfg, cleanup) = config(static_stand_in());
    let rt = DockerRuntime::new(cfg).unwrap();
    let t0 = Instant::now();
    let e = rt.create(spec(busybox_image())).await.unwrap_err().to_string();
    assert!(t0.elapsed() < Duration::from_secs(20), "took {:?}", t0.elapsed());
    assert!(e.contains("did not answer") && e.contains("applet not found"), "{e}");
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_dropped_by_its_caller_leaves_nothing() {
    let Some(shim) = crate::harness::shim() else { return };
    let (cfg, cleanup) = config(shim);
    let rt = DockerRuntime::new(cfg).unwrap();
    let mut removed = false;
    // Dropped at several points of its way: before the network, during the container's start, at the hello.
    for after_ms in [5u64, 60, 150, 300] {
        let s = spec(busybox_image());
        let _ = tokio::time::timeout(Duration::from_millis(after_ms), rt.create(s)).await;
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            let left = objects(&cleanup.0);
            if left.is_empty() {
                removed = true;
                break;
            }
            assert!(Instant::now() < until, "left after a create dropped at {after_ms} ms: {left:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert!(removed);
}
