//! Environments made, used and removed through the runtime, with the static shim as their PID 1.

use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_runtime::{EnvironmentSpec, EnvironmentState, ExecRequest, ExecutionRuntime, Limits, TerminalEvent};

use crate::dockerd::{busybox_image, docker};
use crate::harness::{inspect, objects, runtime};

fn spec() -> EnvironmentSpec {
    let mut s = EnvironmentSpec::new(EnvironmentId::new_v4());
    s.image = Some(busybox_image().to_string());
    s.limits = Limits { memory_bytes: 256 << 20, pids: 128, cpu_millicores: 500, disk_bytes: 128 << 20 };
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn create_confines_and_destroy_leaves_nothing() {
    let Some((rt, cleanup)) = runtime() else { return };
    let s = spec();
    let id = s.id;
    let t0 = std::time::Instant::now();
    rt.create(s.clone()).await.expect("create");
    eprintln!("create (network, container, start, shim hello) took {:?}", t0.elapsed());
    let name = format!("examroom-{id}");
    // Limits and confinement, as the Engine recorded them.
    assert_eq!(inspect(&name, "{{.HostConfig.Memory}}"), (256u64 << 20).to_string());
    assert_eq!(inspect(&name, "{{.HostConfig.MemorySwap}}"), (256u64 << 20).to_string());
    assert_eq!(inspect(&name, "{{.HostConfig.PidsLimit}}"), "128");
    assert_eq!(inspect(&name, "{{.HostConfig.NanoCpus}}"), "500000000");
    assert_eq!(inspect(&name, "{{.HostConfig.Privileged}}"), "false");
    assert_eq!(inspect(&name, "{{json .HostConfig.CapDrop}}"), r#"["ALL"]"#);
    let caps = inspect(&name, "{{json .HostConfig.CapAdd}}");
    assert!(caps.contains("CHOWN") && !caps.contains("PTRACE") && !caps.contains("NET_RAW"), "{caps}");
    let secopt = inspect(&name, "{{json .HostConfig.SecurityOpt}}");
    assert!(
        secopt.contains("no-new-privileges:true") && secopt.contains("seccomp=") && secopt.contains("SCMP_ACT_ERRNO"),
        "{secopt}"
    );
    assert_eq!(inspect(&name, "{{json .Config.Entrypoint}}"), r#"["/.examroom/shim"]"#);
    assert_eq!(inspect(&name, "{{.Config.Hostname}}"), "exam");
    assert_eq!(inspect(&name, "{{index .Config.Labels \"examroom.role\"}}"), "candidate");
    assert_eq!(inspect(&name, "{{.NetworkSettings.Networks | len}}"), "1");
    assert_eq!(docker(&["network", "inspect", "-f", "{{.Internal}}", &name]).trim(), "true");
    // The shim's mount is read-only.
    let mounts = inspect(&name, "{{json .Mounts}}");
    assert!(mounts.contains(r#""Destination":"/.examroom/shim""#) && mounts.contains(r#""RW":false"#), "{mounts}");
    // Inside: the limits hold.
    let out = rt
        .exec(&id, ExecRequest::shell("cat /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/pids.max 2>/dev/null; hostname"))
        .await
        .unwrap();
    assert!(out.stdout_text().contains("128") && out.stdout_text().contains("exam"), "{out:?}");
    // Status and list.
    let st = rt.status(&id).await.unwrap();
    assert_eq!(st.state, EnvironmentState::Running, "{st:?}");
    assert!(st.protocol_version >= 1);
    let listed = rt.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, id);
    assert!(rt.image_digest_of(&id).is_some_and(|d| d.starts_with("sha256:")));
    assert!(matches!(rt.create(s).await, Err(examroom_runtime::RuntimeError::AlreadyExists)));
    // Frozen: paused, still there.
    rt.freeze(&id).await.unwrap();
    rt.freeze(&id).await.unwrap();
    assert_eq!(inspect(&name, "{{.State.Paused}}"), "true");
    assert_eq!(rt.status(&id).await.unwrap().state, EnvironmentState::Running);
    let report = rt.destroy(&id).await.expect("destroy");
    assert!(report.verified);
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
    assert!(matches!(rt.destroy(&id).await, Err(examroom_runtime::RuntimeError::NotFound)));
    assert!(matches!(rt.status(&id).await, Err(examroom_runtime::RuntimeError::NotFound)));
    assert!(rt.list().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn losses_fire_when_the_container_is_killed_from_outside() {
    let Some((rt, cleanup)) = runtime() else { return };
    let mut losses = rt.losses();
    let s = spec();
    let id = s.id;
    rt.create(s).await.expect("create");
    // The event stream is followed by then.
    tokio::time::sleep(Duration::from_millis(300)).await;
    docker(&["kill", &format!("examroom-{id}")]);
    let got = tokio::time::timeout(Duration::from_secs(10), losses.recv()).await.expect("a loss within 10 s").unwrap();
    assert_eq!(got, id);
    match rt.status(&id).await.unwrap().state {
        EnvironmentState::Lost { reason } => assert!(reason.contains("exited"), "{reason}"),
        other => panic!("expected lost, got {other:?}"),
    }
    let listed = rt.list().await.unwrap();
    assert!(
        matches!(listed.as_slice(), [s] if s.id == id && matches!(s.state, EnvironmentState::Lost { .. })),
        "{listed:?}"
    );
    assert!(rt.destroy(&id).await.unwrap().verified);
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
    // A destroy on purpose is no loss.
    let s = spec();
    let id2 = s.id;
    rt.create(s).await.expect("create");
    rt.destroy(&id2).await.unwrap();
    let none = tokio::time::timeout(Duration::from_secs(2), losses.recv()).await;
    assert!(none.is_err(), "a notice for a destroy on purpose: {none:?}");
}

/// Reads terminal output until `want` appears (bounded).
async fn read_until(output: &mut examroom_runtime::TerminalOutput, want: &str) -> String {
    let mut seen = String::new();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(want) {
        match tokio::time::timeout_at(until, output.next()).await {
            Ok(Ok(Some(TerminalEvent::Output(b)))) => seen.push_str(&String::from_utf8_lossy(&b)),
            Ok(Ok(Some(_))) => {}
            other => panic!("no {want:?} in the terminal ({other:?}); saw {seen:?}"),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn terminal_exec_and_isolation_between_two_environments() {
    let Some((rt, cleanup)) = runtime() else { return };
    let (a, b) = (spec(), spec());
    let (ida, idb) = (a.id, b.id);
    let (ra, rb) = tokio::join!(rt.create(a), rt.create(b));
    ra.expect("create a");
    rb.expect("create b");
    // Terminal: type, see it.
    let mut term = rt.attach(&ida, "main").await.unwrap();
    term.input.write(b"echo hi-$((40+2))\n").await.unwrap();
    read_until(&mut term.output, "hi-42").await;
    rt.resize(&ida, "main", 100, 30).await.unwrap();
    // Exec: stdin, env, cwd, exit code.
    let mut req = ExecRequest::shell("cat; echo \"$X\"; pwd; exit 3");
    req.stdin = b"from-stdin\n".to_vec();
    req.env = vec![("X".into(), "from-env".into())];
    req.cwd = "/tmp".into();
    let out = rt.exec(&ida, req).await.unwrap();
    assert_eq!(out.exit_code, Some(3), "{out:?}");
    assert_eq!(out.stdout_text(), "from-stdin\nfrom-env\n/tmp\n");
    // B: a marker process and a listener, started from its terminal.
    let mut tb = rt.attach(&idb, "main").await.unwrap();
    tb.input.write(b"sleep 4242 & nc -l -p 8080 -e echo from-b & echo started-$((1+1))\n").await.unwrap();
    read_until(&mut tb.output, "started-2").await;
    let ps_b = rt.exec(&idb, ExecRequest::shell("ps")).await.unwrap().stdout_text();
    assert!(ps_b.contains("sleep 4242"), "{ps_b}");
    let ps_a = rt.exec(&ida, ExecRequest::shell("ps")).await.unwrap().stdout_text();
    assert!(!ps_a.contains("sleep 4242") && !ps_a.contains("dockerd"), "A sees B's or the host's processes: {ps_a}");
    // A cannot reach B's listener; B reaches it on its own address.
    let ip_b = inspect(&format!("examroom-{idb}"), "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}");
    assert!(!ip_b.is_empty());
    let from_a = rt
        .exec(&ida, ExecRequest::shell(&format!("nc -w 2 {ip_b} 8080 </dev/null; echo rc=$?")))
        .await
        .unwrap()
        .stdout_text();
    assert!(!from_a.contains("from-b") && !from_a.contains("rc=0"), "A reached B: {from_a}");
    let from_b = rt
        .exec(&idb, ExecRequest::shell(&format!("nc -w 2 {ip_b} 8080 </dev/null; echo rc=$?")))
        .await
        .unwrap()
        .stdout_text();
    assert!(from_b.contains("from-b"), "B could not reach its own listener: {from_b}");
    // No route out either.
    let out =
        rt.exec(&ida, ExecRequest::shell("nc -w 2 1.1.1.1 53 </dev/null; echo rc=$?")).await.unwrap().stdout_text();
    assert!(!out.contains("rc=0"), "{out}");
    drop((term, tb));
    for id in [ida, idb] {
        assert!(rt.destroy(&id).await.unwrap().verified);
    }
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn tiocsti_and_the_sandboxs_refusals_hold_inside_an_environment() {
    let Some((rt, cleanup)) = runtime() else { return };
    let Some(image) = crate::confinement::probe_image() else { return };
    let mut s = spec();
    s.image = Some(image.to_string());
    let id = s.id;
    rt.create(s).await.expect("create");
    let out = rt.exec(&id, ExecRequest::shell("/probe")).await.unwrap();
    let got: std::collections::HashMap<String, String> = out
        .stdout_text()
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    for refused in
        ["tiocsti", "tiocsti_high_bits", "tioclinux", "unshare_user", "keyctl", "bpf", "ptrace_traceme", "mount"]
    {
        assert_eq!(got.get(refused).map(String::as_str), Some("EPERM"), "{refused}: {out:?}");
    }
    assert_eq!(got.get("tiocgwinsz").map(String::as_str), Some("0"), "{out:?}");
    // The shim is out of reach: not traceable, its environment unreadable, its file read-only.
    let out = rt
        .exec(&id, ExecRequest::shell("cat /proc/1/environ; echo rc=$?; echo x >> /.examroom/shim; echo rc=$?"))
        .await
        .unwrap();
    let text = out.stdout_text();
    assert!(!text.contains("EXAMROOM_SHIM") && !text.contains("rc=0"), "{out:?}");
    assert!(rt.destroy(&id).await.unwrap().verified);
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_runtime_finds_environments_again_and_dials_inside() {
    let Some((rt, cleanup)) = runtime() else { return };
    let s = spec();
    let id = s.id;
    rt.create(s).await.expect("create");
    // A server restart: a new runtime of the same label.
    let mut cfg = examroom_runtime::docker::DockerConfig::new(
        crate::dockerd::socket(),
        &cleanup.0,
        crate::harness::shim().unwrap(),
    );
    cfg.accept_unbounded_disk = true;
    let again = examroom_runtime::docker::DockerRuntime::new(cfg).unwrap();
    let listed = again.list().await.unwrap();
    assert!(matches!(listed.as_slice(), [s] if s.id == id && s.state == EnvironmentState::Running), "{listed:?}");
    assert_eq!(again.image_digest_of(&id), rt.image_digest_of(&id));
    // A port inside, from the host, through the shim.
    let mut t = again.attach(&id, "main").await.unwrap();
    t.input.write(b"nc -l -p 9000 -e echo hello-from-inside & echo listening-$((2+2))\n").await.unwrap();
    read_until(&mut t.output, "listening-4").await;
    let mut got = String::new();
    for _ in 0..50 {
        match again.dial(&id, 9000).await {
            Ok(mut stream) => {
                use tokio::io::AsyncReadExt;
                let mut buf = Vec::new();
                let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
                got = String::from_utf8_lossy(&buf).into_owned();
                break;
            }
            Err(examroom_runtime::RuntimeError::Refused(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("dial: {e}"),
        }
    }
    assert!(got.contains("hello-from-inside"), "{got:?}");
    assert!(matches!(again.dial(&id, 9001).await, Err(examroom_runtime::RuntimeError::Refused(_))));
    assert!(matches!(
        again.start_desktop(&id, examroom_runtime::DesktopSpec { width: 800, height: 600, port: 5900 }).await,
        Err(examroom_runtime::RuntimeError::Unsupported(m)) if m.contains("no desktop")
    ));
    assert!(again.destroy(&id).await.unwrap().verified);
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn terminals_replay_take_over_and_get_a_fresh_shell() {
    let Some((rt, cleanup)) = runtime() else { return };
    let s = spec();
    let id = s.id;
    rt.create(s).await.expect("create");
    let mut first = rt.attach(&id, "main").await.unwrap();
    first.input.write(b"echo marker-$((6*7))\n").await.unwrap();
    read_until(&mut first.output, "marker-42").await;
    // A newer attach replays the scrollback and replaces the first.
    let mut second = rt.attach(&id, "main").await.unwrap();
    read_until(&mut second.output, "marker-42").await;
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(until, first.output.next()).await {
            Ok(Ok(Some(TerminalEvent::Replaced))) => break,
            Ok(Ok(Some(_))) => {}
            other => panic!("the first attach was not replaced: {other:?}"),
        }
    }
    // A shell that exits is replaced by a fresh one, with a notice.
    second.input.write(b"exit\n").await.unwrap();
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(until, second.output.next()).await {
            Ok(Ok(Some(TerminalEvent::Notice(n)))) => {
                assert!(n.contains("new shell"), "{n}");
                break;
            }
            Ok(Ok(Some(_))) => {}
            other => panic!("no notice of a new shell: {other:?}"),
        }
    }
    second.input.write(b"echo again-$((1+1))\n").await.unwrap();
    read_until(&mut second.output, "again-2").await;
    // Another terminal.
    let name = rt.open_terminal(&id, 80, 24).await.unwrap();
    assert_ne!(name, "main");
    let mut other = rt.attach(&id, &name).await.unwrap();
    other.input.write(b"echo other-$((2+3))\n").await.unwrap();
    read_until(&mut other.output, "other-5").await;
    assert!(rt.status(&id).await.unwrap().shell_restarts >= 1);
    drop((first, second, other));
    assert!(rt.destroy(&id).await.unwrap().verified);
    assert_eq!(objects(&cleanup.0), Vec::<String>::new());
}
