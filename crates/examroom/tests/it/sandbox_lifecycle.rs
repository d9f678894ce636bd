//! The sandbox runtime's lifecycle: terminals, exec, destroy and its verification, faults, restarts, load, bad input,
//! and the shim protocol itself.

use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::protocol::{self, client, Kind, Reply, Request};
use examroom_runtime::sandbox::state;
use examroom_runtime::{
    Base, EnvironmentSpec, EnvironmentState, ExecRequest, ExecutionRuntime, RuntimeError, TerminalEvent,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::common::*;

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminal_echoes_resizes_and_restarts_its_shell() {
    let h = Harness::new();
    let id = h.create().await;
    let mut term = h.rt.attach(&id, "main").await.unwrap();
    type_line(&mut term, "echo $((6*7))-answer").await;
    expect_output(&mut term, "42-answer", T).await;

    term.input.resize(100, 37).await.unwrap();
    type_line(&mut term, "stty size").await;
    expect_output(&mut term, "37 100", T).await;
    // The control path resizes too.
    h.rt.resize(&id, "main", 90, 30).await.unwrap();
    type_line(&mut term, "stty size").await;
    expect_output(&mut term, "30 90", T).await;

    type_line(&mut term, "exit").await;
    expect_output(&mut term, "[notice] shell exited; a new shell was started", T).await;
    type_line(&mut term, "echo again-$((1+1))").await;
    expect_output(&mut term, "again-2", T).await;
    let st = h.rt.status(&id).await.unwrap();
    assert_eq!(st.shell_restarts, 1);
    assert_eq!(st.state, EnvironmentState::Running);
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reattach_replays_the_scrollback_and_a_new_attach_takes_over() {
    let h = Harness::new();
    let id = h.create().await;
    let mut first = h.rt.attach(&id, "main").await.unwrap();
    // 320 KiB of output, then a marker: the replay must hold at least the last 256 KiB, ending with the marker.
    type_line(&mut first, "head -c 245760 /dev/zero | base64 -w 100; echo END-OF-$((100+1))").await;
    expect_output(&mut first, "END-OF-101\r\n", Duration::from_secs(20)).await;

    let mut second = h.rt.attach(&id, "main").await.unwrap();
    // The first attachment is told, and its stream ends.
    let mut replaced = false;
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        match tokio::time::timeout(T, first.output.next()).await.unwrap().unwrap() {
            Some(TerminalEvent::Replaced) => {
                replaced = true;
                break;
            }
            Some(_) => continue,
            None => break,
        }
    }
    assert!(replaced, "the first attachment was not told it was replaced");
    let mut replay = Vec::new();
    while !String::from_utf8_lossy(&replay).contains("END-OF-101\r\n") {
        match tokio::time::timeout(T, second.output.next()).await.unwrap().unwrap() {
            Some(TerminalEvent::Output(b)) => replay.extend_from_slice(&b),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(replay.len() >= 256 * 1024, "replay was only {} bytes", replay.len());
    // Live again on the new attachment.
    type_line(&mut second, "echo live-$((2*21))").await;
    expect_output(&mut second, "live-42", T).await;
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_honours_exit_code_output_stdin_timeout_and_limit() {
    let h = Harness::new();
    let id = h.create().await;
    let out = h.sh(&id, "echo out; echo err >&2; exit 3").await;
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.stdout_text(), "out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.timed_out);

    let mut req = ExecRequest::shell("tr a-z A-Z");
    req.stdin = b"fed from outside".to_vec();
    let out = h.rt.exec(&id, req).await.unwrap();
    assert_eq!(out.stdout_text(), "FED FROM OUTSIDE");

    let t0 = Instant::now();
    let out = h.rt.exec(&id, ExecRequest::shell("sleep 30").with_timeout(Duration::from_millis(500))).await.unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, None);
    assert_eq!(out.signal, Some(libc::SIGKILL));
    assert!(t0.elapsed() < Duration::from_secs(5), "timeout took {:?}", t0.elapsed());

    let mut req = ExecRequest::shell("head -c 100000 /dev/zero");
    req.output_limit = 1000;
    let out = h.rt.exec(&id, req).await.unwrap();
    assert_eq!(out.stdout.len(), 1000);
    assert!(out.truncated);
    assert_eq!(out.exit_code, Some(0));

    let out = h.rt.exec(&id, ExecRequest { argv: vec!["no-such-program".into()], ..ExecRequest::shell("") }).await;
    assert!(matches!(out, Err(RuntimeError::Backend(ref m)) if m.contains("not found")), "{out:?}");
    // A custom environment replaces the inherited one.
    let mut req = ExecRequest::shell("echo $GREETING:$PATH");
    req.env = vec![("GREETING".into(), "hello".into())];
    assert!(h.rt.exec(&id, req).await.unwrap().stdout_text().starts_with("hello:/usr/local/sbin"));
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_removes_everything_and_is_verified() {
    let h = Harness::new();
    let id = h.create().await;
    h.sh_ok(
        &id,
        "setsid sleep 600 >/dev/null 2>&1 < /dev/null & setsid sleep 601 >/dev/null 2>&1 < /dev/null & echo started",
    )
    .await;
    let mut term = h.rt.attach(&id, "main").await.unwrap();
    let st = h.rt.status(&id).await.unwrap();
    assert!(st.processes >= 4, "init, shell and two sleeps: {}", st.processes);
    let report = h.rt.destroy(&id).await.unwrap();
    assert!(report.verified);
    assert!(report.killed >= 4);
    // The attached terminal is told, and access stops.
    let mut ended = false;
    while let Ok(Ok(Some(ev))) = tokio::time::timeout(T, term.output.next()).await {
        if ev == TerminalEvent::Ended {
            ended = true;
        }
    }
    assert!(ended, "the attached terminal was not told the environment ended");
    assert!(matches!(h.rt.status(&id).await, Err(RuntimeError::NotFound)));
    assert!(matches!(h.rt.attach(&id, "main").await, Err(RuntimeError::NotFound)));
    assert!(matches!(h.rt.destroy(&id).await, Err(RuntimeError::NotFound)));
    assert_no_leaks(&h.label, &h.state_dir).await;
    h.teardown().await;
}

fn shim_pid(h: &Harness, id: &EnvironmentId) -> i32 {
    let st: state::ShimState =
        state::read_json(&h.state_dir.join(&h.label).join(id.to_string()).join(state::STATE)).unwrap();
    assert!(st.shim_pid > 0 && st.init_pid > 0);
    st.shim_pid
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shim_loses_its_environment_and_cleanup_leaves_nothing() {
    let h = Harness::new();
    let id = h.create().await;
    let keep = h.create().await;
    h.sh_ok(&id, "setsid sleep 600 >/dev/null 2>&1 < /dev/null & echo ok").await;
    let pid = shim_pid(&h, &id);
    // SAFETY: killing a process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    // Init dies with its shim (PDEATHSIG), and the environment is reported lost.
    let deadline = Instant::now() + T;
    loop {
        let st = h.rt.status(&id).await.unwrap();
        if matches!(st.state, EnvironmentState::Lost { .. }) {
            break;
        }
        assert!(Instant::now() < deadline, "never reported lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lost = h.rt.list().await.unwrap();
    assert_eq!(lost.iter().filter(|s| matches!(s.state, EnvironmentState::Lost { .. })).count(), 1);
    assert_eq!(h.rt.reap_lost().await.unwrap(), 1);
    // The other environment is untouched.
    assert_eq!(h.sh_ok(&keep, "echo fine").await, "fine\n");
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_init_is_reported_as_lost() {
    let h = Harness::new();
    let id = h.create().await;
    let st: state::ShimState =
        state::read_json(&h.state_dir.join(&h.label).join(id.to_string()).join(state::STATE)).unwrap();
    // From the host (an ancestor namespace) SIGKILL reaches init; the kernel then kills everything inside.
    // SAFETY: killing a process this test started.
    assert_eq!(unsafe { libc::kill(st.init_pid, libc::SIGKILL) }, 0);
    let deadline = Instant::now() + T;
    loop {
        let s = h.rt.status(&id).await.unwrap();
        if let EnvironmentState::Lost { reason } = &s.state {
            assert!(reason.contains("init"), "{reason}");
            break;
        }
        assert!(Instant::now() < deadline, "never reported lost");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(matches!(h.rt.exec(&id, ExecRequest::shell("true")).await, Err(RuntimeError::Lost(_))));
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_creates_all_get_their_own_environment() {
    let h = std::sync::Arc::new(Harness::new());
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let id = h.create().await;
            let name = h.sh_ok(&id, "hostname; cat /proc/self/uid_map").await;
            (id, name)
        }));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tasks {
        let (id, out) = t.await.unwrap();
        assert!(out.contains(&id.short()), "{out}");
        assert!(seen.insert(out.clone()), "two environments share hostname or uid range: {out}");
    }
    assert_eq!(h.rt.list().await.unwrap().len(), 20);
    let h = std::sync::Arc::into_inner(h).unwrap();
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_anything_is_created() {
    let h = Harness::new();
    let envs = h.state_dir.join(&h.label);
    let refused = |r: Result<(), RuntimeError>, field: &str| match r {
        Err(RuntimeError::InvalidSpec { field: f, message }) => {
            assert_eq!(f, field, "{message}");
            assert!(!message.is_empty());
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    let spec = |f: &dyn Fn(&mut EnvironmentSpec)| {
        let mut s = EnvironmentSpec::new(EnvironmentId::new_v4());
        f(&mut s);
        s
    };
    refused(h.rt.create(spec(&|s| s.base = Base::Rootfs("/nonexistent/rootfs".into()))).await, "base");
    refused(h.rt.create(spec(&|s| s.base = Base::Rootfs("/etc/passwd".into()))).await, "base");
    refused(h.rt.create(spec(&|s| s.limits.memory_bytes = 1)).await, "memory");
    refused(h.rt.create(spec(&|s| s.limits.pids = 1_000_000)).await, "pids");
    refused(h.rt.create(spec(&|s| s.limits.cpu_millicores = 0)).await, "cpu");
    refused(h.rt.create(spec(&|s| s.limits.disk_bytes = s.limits.memory_bytes)).await, "disk");
    refused(h.rt.create(spec(&|s| s.cols = 0)).await, "size");
    assert!(
        Base::parse("rootfs:relative").is_err()
            && Base::parse("rootfs:/a/../b").is_err()
            && Base::parse("image:x").is_err()
    );
    assert_eq!(std::fs::read_dir(&envs).unwrap().count(), 0, "a refused create left something");
    for label in ["", "UPPER", "a/b", "../x", "-lead", "sp ace", "x\u{301}"] {
        let r = examroom_runtime::sandbox::SandboxRuntime::new(examroom_runtime::sandbox::SandboxConfig::new(
            &h.state_dir,
            label,
        ));
        assert!(matches!(r, Err(RuntimeError::InvalidSpec { .. })), "label {label:?} accepted");
    }
    let id = h.create().await;
    let mut dup = EnvironmentSpec::new(id);
    dup.base = Base::Host;
    assert!(matches!(h.rt.create(dup).await, Err(RuntimeError::AlreadyExists)));
    assert_eq!(h.sh_ok(&id, "echo still-here").await, "still-here\n");
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_create_removes_what_it_made() {
    // A shim program that cannot make the environment: an unusable base makes init's setup fail halfway (after the
    // uid range, cgroups and namespaces were made).
    let h = Harness::new();
    let bad = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(bad.path().join("bin")).unwrap();
    std::os::unix::fs::symlink("/nonexistent-shell", bad.path().join("bin/sh")).unwrap();
    let id = EnvironmentId::new_v4();
    let mut spec = EnvironmentSpec::new(id);
    spec.base = Base::Rootfs(bad.path().to_path_buf());
    let err = h.rt.create(spec).await.unwrap_err();
    assert!(matches!(err, RuntimeError::Backend(_)), "{err:?}");
    assert_no_leaks(&h.label, &h.state_dir).await;
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_runtime_finds_its_environments_with_their_shells() {
    let h = Harness::new();
    let id = h.create().await;
    {
        let mut term = h.rt.attach(&id, "main").await.unwrap();
        type_line(&mut term, "sleep 3600 & echo before-restart-$((3*3))").await;
        expect_output(&mut term, "before-restart-9", T).await;
    }
    // A new runtime on the same state directory: a restarted server.
    let again = h.reopen();
    let list = again.list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].id, id);
    assert_eq!(list[0].state, EnvironmentState::Running);
    assert_eq!(list[0].protocol_version, protocol::VERSION_MAX);
    let mut term = again.attach(&id, "main").await.unwrap();
    let seen = expect_output(&mut term, "before-restart-9", T).await;
    assert!(seen.contains("before-restart-9"));
    type_line(&mut term, "jobs; echo after-$((4*4))").await;
    let seen = expect_output(&mut term, "after-16", T).await;
    assert!(seen.contains("sleep 3600"), "the program started before the restart is gone: {seen}");
    drop(again);
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_terminal_can_be_opened() {
    let h = Harness::new();
    let id = h.create().await;
    let name = h.rt.open_terminal(&id, 80, 24).await.unwrap();
    assert_ne!(name, "main");
    let mut t2 = h.rt.attach(&id, &name).await.unwrap();
    let mut t1 = h.rt.attach(&id, "main").await.unwrap();
    type_line(&mut t2, "echo from-$((2+3))").await;
    expect_output(&mut t2, "from-5", T).await;
    type_line(&mut t1, "echo main-$((2+4))").await;
    expect_output(&mut t1, "main-6", T).await;
    assert!(matches!(h.rt.attach(&id, "nope").await, Err(RuntimeError::InvalidSpec { .. })));
    h.teardown().await;
}

async fn raw_connect(h: &Harness, id: &EnvironmentId) -> UnixStream {
    UnixStream::connect(h.state_dir.join(&h.label).join(id.to_string()).join(state::SOCKET)).await.unwrap()
}

async fn raw_reply(s: &mut UnixStream) -> Option<Reply> {
    let f = tokio::time::timeout(T, client::read_frame(s)).await.unwrap().ok()??;
    assert_eq!(f.kind, Kind::Control);
    Some(serde_json::from_slice(&f.payload).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shim_negotiates_versions_and_survives_hostile_clients() {
    let h = Harness::new();
    let id = h.create().await;
    // A client from the future that shares no version.
    let mut s = raw_connect(&h, &id).await;
    client::write_request(&mut s, &Request::Hello { min: 99, max: 120 }).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Error { code, .. }) if code == "unsupported_version"));
    // A newer client that still speaks ours gets our highest.
    let mut s = raw_connect(&h, &id).await;
    client::write_request(&mut s, &Request::Hello { min: 1, max: 7 }).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Hello { version, .. }) if version == protocol::VERSION_MAX));
    // Requests before hello are refused.
    let mut s = raw_connect(&h, &id).await;
    client::write_request(&mut s, &Request::Status).await.unwrap();
    assert!(matches!(raw_reply(&mut s).await, Some(Reply::Error { code, .. }) if code == "hello_first"));
    // Garbage: an absurd length, an unknown kind, and JSON that is not a request.
    for junk in [vec![0xff, 0xff, 0xff, 0xff, 1], vec![0, 0, 0, 1, 77], {
        let mut b = Vec::new();
        protocol::encode(Kind::Control, br#"{"op":"hello","min":1,"max":1}"#, &mut b);
        protocol::encode(Kind::Control, br#"{"op":"rm_rf"}"#, &mut b);
        b
    }] {
        let mut s = raw_connect(&h, &id).await;
        s.write_all(&junk).await.unwrap();
        let mut sink = Vec::new();
        // The shim answers with an error (or nothing) and closes; it never hangs.
        tokio::time::timeout(T, s.read_to_end(&mut sink)).await.unwrap().unwrap();
    }
    // Many connections that go away without a word.
    for _ in 0..50 {
        drop(raw_connect(&h, &id).await);
    }
    // Still serving.
    assert_eq!(h.sh_ok(&id, "echo serving").await, "serving\n");
    assert_eq!(h.rt.status(&id).await.unwrap().state, EnvironmentState::Running);
    h.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shims_live_outside_the_servers_session_and_cgroups() {
    let h = Harness::new();
    let id = h.create().await;
    let pid = shim_pid(&h, &id);
    // Its own session, so no signal to the server's process group or terminal reaches it.
    // SAFETY: getsid has no preconditions.
    let (shim_sid, our_sid) = unsafe { (libc::getsid(pid), libc::getsid(0)) };
    assert_eq!(shim_sid, pid);
    assert_ne!(shim_sid, our_sid);
    // Its own cgroup in every hierarchy it could be tracked by, the service manager's included.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let own = format!("/examroom/{}/shims/{}", h.label, id);
    for line in cg.lines() {
        let controllers = line.split(':').nth(1).unwrap_or("");
        if ["memory", "pids", "cpu,cpuacct", "cpu", "name=systemd", ""].contains(&controllers) {
            assert!(line.ends_with(&own), "shim not in its own cgroup: {line}");
        }
    }
    // The environment is in its own cgroups, with a namespace rooted there.
    let st: state::ShimState =
        state::read_json(&h.state_dir.join(&h.label).join(id.to_string()).join(state::STATE)).unwrap();
    let init_cg = std::fs::read_to_string(format!("/proc/{}/cgroup", st.init_pid)).unwrap();
    let env_cg = format!("/examroom/{}/envs/{}", h.label, id);
    assert!(init_cg.lines().any(|l| l.contains(":memory:") && l.ends_with(&env_cg)), "{init_cg}");
    assert!(init_cg.lines().any(|l| l.contains(":freezer:") && l.ends_with(&env_cg)), "{init_cg}");
    assert_eq!(h.sh_ok(&id, "cat /proc/self/cgroup | grep -c examroom || true").await.trim(), "0");
    // The shipped service unit restarts only the server.
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../dist/examroom.service")).unwrap();
    assert!(unit.lines().any(|l| l.trim() == "KillMode=process"));
    h.teardown().await;
}
