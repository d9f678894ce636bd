//! Service containers: ready before `start_service` returns, reachable by name from their own session's candidate
//! only, and gone without a trace when they fail.

use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::docker::testing::{remove_services, start_service};
use examroom_runtime::{Limits, Readiness, RuntimeError, ServiceSpec};

use crate::{dockerd, Run};

fn service(name: &str, command: &[&str], ready: Readiness, timeout: Duration) -> ServiceSpec {
    ServiceSpec {
        name: name.into(),
        image: dockerd::busybox_image().into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        env: vec![("ROLE".into(), name.into())],
        limits: Limits { memory_bytes: 64 << 20, pids: 64, cpu_millicores: 500, disk_bytes: 0 },
        ready,
        ready_timeout: timeout,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_reachable_by_name_from_their_own_session_only() {
    let run = Run::new("services-reach");
    let (a, b) = (EnvironmentId::new_v4(), EnvironmentId::new_v4());
    let net_a = run.network(&a).await;
    let net_b = run.network(&b).await;

    // A TCP readiness, and a command readiness on a service that takes a moment.
    let db = service("db", &["httpd", "-f", "-p", "5432", "-h", "/tmp"], Readiness::Tcp(5432), Duration::from_secs(20));
    start_service(&run.docker, &run.label, &a, &db).await.expect("db starts");
    let cache = service(
        "cache",
        &["sh", "-c", "sleep 1; touch /tmp/ready; exec httpd -f -p 6379 -h /tmp"],
        Readiness::Command(vec!["test".into(), "-f".into(), "/tmp/ready".into()]),
        Duration::from_secs(20),
    );
    let t = Instant::now();
    start_service(&run.docker, &run.label, &a, &cache).await.expect("cache starts");
    assert!(t.elapsed() >= Duration::from_millis(900), "ready before its command could pass: {:?}", t.elapsed());

    let db_name = format!("examroom-{a}-svc-db");
    let info = run.docker.inspect_container(&db_name, None).await.unwrap();
    let labels = info.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(labels.get("examroom.role").map(String::as_str), Some("service"));
    assert_eq!(labels.get("examroom.service").map(String::as_str), Some("db"));
    let host = info.host_config.unwrap_or_default();
    assert_eq!((host.privileged, host.memory, host.pids_limit), (Some(false), Some(64 << 20), Some(64)));
    assert_eq!(host.cap_drop, Some(vec!["NET_RAW".to_string()]));
    let ip = info
        .network_settings
        .and_then(|n| n.networks)
        .and_then(|mut n| n.remove(&net_a))
        .and_then(|e| e.ip_address)
        .unwrap();

    let cand_a = run.candidate(&a, dockerd::busybox_image(), Some(&net_a)).await;
    let (code, out) = run
        .sh(
            &cand_a,
            "echo | nc -w 5 db 5432 >/dev/null && echo db-ok; echo | nc -w 5 cache 6379 >/dev/null && echo cache-ok",
        )
        .await;
    assert_eq!((code, out.as_str()), (0, "db-ok\ncache-ok\n"));

    let cand_b = run.candidate(&b, dockerd::busybox_image(), Some(&net_b)).await;
    let (_, out) = run.sh(&cand_b, "nslookup db >/dev/null 2>&1 && echo resolved; echo | nc -w 3 db 5432 >/dev/null 2>&1 && echo reached-by-name").await;
    assert_eq!(out, "", "another session's candidate found the database");
    let (_, out) =
        run.sh(&cand_b, &format!("echo | nc -w 3 {ip} 5432 >/dev/null 2>&1 && echo reached-by-address")).await;
    assert_eq!(out, "", "another session's candidate reached the database at {ip}");

    remove_services(&run.docker, &a).await.expect("remove the services");
    assert_eq!(run.objects(&a, "service"), Vec::<String>::new());
    remove_services(&run.docker, &a).await.expect("removing none is fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_never_becomes_ready_fails_in_time_with_its_name_and_log_tail_and_leaves_nothing() {
    let run = Run::new("services-fail");
    let env = EnvironmentId::new_v4();
    run.network(&env).await;

    let stuck = service(
        "stuck",
        &["sh", "-c", "i=1; while [ $i -le 30 ]; do echo line-$i; i=$((i+1)); done; sleep 3600"],
        Readiness::Tcp(5432),
        Duration::from_secs(3),
    );
    let t = Instant::now();
    let err = start_service(&run.docker, &run.label, &env, &stuck).await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    let msg = err.to_string();
    assert!(msg.contains("\"stuck\"") && msg.contains("did not become ready within 3000 ms"), "{msg}");
    assert!(msg.contains("line-11\n") && msg.ends_with("line-30"), "{msg}");
    assert!(!msg.contains("line-10\n"), "more than the last 20 lines: {msg}");
    assert_eq!(run.objects(&env, "service"), Vec::<String>::new());

    let crash = service(
        "crash",
        &["sh", "-c", "echo boom >&2; exit 3"],
        Readiness::Command(vec!["test".into(), "-f".into(), "/tmp/never".into()]),
        Duration::from_secs(10),
    );
    let err = start_service(&run.docker, &run.label, &env, &crash).await.unwrap_err().to_string();
    assert!(err.contains("\"crash\"") && err.contains("exited with status 3") && err.contains("boom"), "{err}");
    assert_eq!(run.objects(&env, "service"), Vec::<String>::new());

    let mut missing = service("gone", &[], Readiness::None, Duration::from_secs(5));
    missing.image = "examroom-test/no-such-image:1".into();
    let err = start_service(&run.docker, &run.label, &env, &missing).await.unwrap_err().to_string();
    assert!(err.contains("examroom-test/no-such-image:1") && err.contains("make images"), "{err}");

    let bad = service("Bad_Name", &[], Readiness::None, Duration::from_secs(5));
    let err = start_service(&run.docker, &run.label, &env, &bad).await.unwrap_err();
    assert!(matches!(err, RuntimeError::InvalidSpec { .. }), "{err}");
    assert_eq!(run.objects(&env, "service"), Vec::<String>::new());
}
