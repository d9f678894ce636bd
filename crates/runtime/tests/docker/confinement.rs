//! The seccomp profile, capabilities and `no-new-privileges` of candidate containers, run by runc itself (`docker run`
//! with the same options) on a static probe program: what a candidate would hit, without needing the shim.

use std::process::Command;

use crate::dockerd::{busybox_image, docker, socket};

/// The probe (fixtures/probe.c) built static, or `None` with a printed reason when gcc cannot build it.
pub fn probe() -> Option<std::path::PathBuf> {
    static BUILT: std::sync::OnceLock<Option<std::path::PathBuf>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            // Cargo's scratch directory for integration tests (inside target/): nothing is left elsewhere.
            let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("docker-probe");
            std::fs::create_dir_all(&dir).unwrap();
            let building = dir.join(format!("probe.{}", std::process::id()));
            let out = dir.join("probe");
            let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/docker/fixtures/probe.c");
            match Command::new("gcc").args(["-static", "-O1", "-o"]).arg(&building).arg(src).output() {
                Ok(o) if o.status.success() => {
                    std::fs::rename(&building, &out).unwrap();
                    Some(out)
                }
                Ok(o) => {
                    eprintln!("skipped: gcc could not build the probe: {}", String::from_utf8_lossy(&o.stderr));
                    None
                }
                Err(e) => {
                    eprintln!("skipped: no gcc to build the probe ({e})");
                    None
                }
            }
        })
        .clone()
}

/// Runs the probe in a container of the busybox image with `options`; its `NAME=RESULT` lines.
fn run_probe(options: &[String]) -> std::collections::HashMap<String, String> {
    let probe = probe().expect("probe");
    let mut args: Vec<String> = vec!["run".into(), "--rm".into(), "--network".into(), "none".into()];
    args.extend(options.iter().cloned());
    args.extend(["-v".into(), format!("{}:/probe:ro", probe.display()), "--entrypoint".into(), "/probe".into()]);
    args.push(busybox_image().into());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    docker(&refs).lines().filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))).collect()
}

#[test]
fn the_seccomp_profile_refuses_what_the_sandbox_refuses_and_tiocsti() {
    let _ = socket();
    if probe().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("seccomp.json");
    std::fs::write(&profile, examroom_runtime::docker::seccomp_profile().to_string()).unwrap();
    let confined = run_probe(&[
        "--security-opt".into(),
        format!("seccomp={}", profile.display()),
        "--security-opt".into(),
        "no-new-privileges:true".into(),
        "--cap-drop".into(),
        "ALL".into(),
    ]);
    // The control: without a seccomp profile the kernel itself allows TIOCSTI on one's own terminal here, so the
    // refusal below is the profile's.
    let unconfined = run_probe(&["--security-opt".into(), "seccomp=unconfined".into()]);
    assert_eq!(unconfined.get("tiocsti").map(String::as_str), Some("0"), "control run: {unconfined:?}");
    for refused in
        ["tiocsti", "tiocsti_high_bits", "unshare_user", "keyctl", "bpf", "userfaultfd", "ptrace_traceme", "mount"]
    {
        assert_eq!(confined.get(refused).map(String::as_str), Some("EPERM"), "{refused}: {confined:?}");
    }
    assert_eq!(confined.get("tioclinux").map(String::as_str), Some("EPERM"), "{confined:?}");
    // Ordinary terminal ioctls and everything else still work.
    assert_eq!(confined.get("tiocgwinsz").map(String::as_str), Some("0"), "{confined:?}");
    assert_eq!(confined.get("getpid").map(String::as_str), Some("0"), "{confined:?}");
}

/// The busybox image with the probe at `/probe` (made once from a container: no build, no pull).
pub fn probe_image() -> Option<&'static str> {
    const TAG: &str = "examroom-test/busybox-probe:1";
    let probe = probe()?;
    static MADE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    MADE.get_or_init(|| {
        let name = format!("examroom-probe-build-{}", std::process::id());
        let _gone = crate::harness::Cleanup(format!("probe-build-{}", std::process::id()));
        docker(&[
            "create",
            "--name",
            &name,
            "--label",
            &format!("examroom.label=probe-build-{}", std::process::id()),
            busybox_image(),
            "true",
        ]);
        docker(&["cp", &probe.display().to_string(), &format!("{name}:/probe")]);
        docker(&["commit", &name, TAG]);
    });
    Some(TAG)
}
