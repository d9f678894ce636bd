//! The `system` profile: systemd as PID 1 in the environment's own user namespace, and a real machine's tools.

use std::time::Duration;

use examroom_runtime::{ExecOutput, ExecutionRuntime, Profile};

use crate::common::*;

fn show(o: &ExecOutput) -> String {
    format!("exit {:?} stdout {:?} stderr {:?}", o.exit_code, o.stdout_text(), String::from_utf8_lossy(&o.stderr))
}

/// Creates a `system` environment and waits (bounded) until its service manager has booted.
async fn booted(h: &Harness) -> examroom_core::EnvironmentId {
    let id = h.create_spec(|s| s.profile = Profile::System).await;
    // The bus appears a moment after the shell; `--wait` then waits for the boot to finish.
    let out = h
        .sh(&id, "for i in $(seq 100); do [ -S /run/systemd/private ] && break; sleep 0.1; done; timeout 30 systemctl is-system-running --wait")
        .await;
    let state = out.stdout_text();
    assert!(state.trim() == "running", "the machine did not boot cleanly: {}", show(&out));
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_boots_and_a_shell_is_root_of_the_machine() {
    let h = Harness::new();
    let id = booted(&h).await;
    let out = h.sh_ok(&id, "systemctl --failed --no-legend | wc -l; cat /proc/1/comm; id -u; echo $container_uuid; cat /run/systemd/container").await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "0", "failed units: {out}");
    assert_eq!(lines[1], "systemd");
    assert_eq!(lines[2], "0");
    assert_eq!(lines.last().copied(), Some("examroom"), "{out}");
    // The candidate's terminal is a login shell of root inside, started by entering the machine.
    let mut term = h.rt.attach(&id, "main").await.expect("attach");
    type_line(&mut term, "echo hello-$((6*7)) $(tty) $(cat /proc/self/cgroup | grep -c examroom)").await;
    let seen = expect_output(&mut term, "hello-42 /dev/pts/", Duration::from_secs(10)).await;
    assert!(!seen.contains("not a tty"), "{seen}");
    // Destroying ends the service manager and everything under it, promptly.
    let r = h.rt.destroy(&id).await.expect("destroy");
    assert!(r.verified && r.killed >= 3, "{r:?}");
    assert!(r.duration_ms < 10_000, "{r:?}");
    h.teardown().await;
}
