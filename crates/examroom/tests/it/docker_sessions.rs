//! Sessions on the Docker backend through the whole server (issue 14): a server running the sandbox and Docker side
//! by side, on the tests' Docker Engine (`docker_engine.rs`) with the sample image.

use std::path::Path;
use std::time::{Duration, Instant};

use examroom_core::EnvironmentId;
use examroom_runtime::{ExecRequest, ExecutionRuntime};
use serde_json::{json, Value};

use crate::common::{expect_output, type_line};
use crate::server::{create, events, sid, state, wait_for, wait_state, write_exam, Client, Options, TestServer};

/// The sample `docker-postgres` (a candidate container and a `db` service), a service-less Docker exam, and a
/// sandbox exam beside them.
fn docker_exams(catalog: &Path) {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams/docker-postgres");
    let st = std::process::Command::new("cp").arg("-a").arg(&sample).arg(catalog.join("docker-postgres")).status();
    assert!(st.unwrap().success(), "copy the sample exam");
    std::fs::create_dir_all(catalog.join("docker-plain/checks")).unwrap();
    std::fs::write(catalog.join("docker-plain/checks/c.sh"), "#!/bin/sh\ntest -f /root/done\n").unwrap();
    write_exam(
        catalog,
        "docker-plain",
        "title = \"D\"\ndescription = \"d\"\nduration = \"5m\"\n[environment]\nbackend = \"docker\"\n\
         base = \"image:examroom/debian:1\"\nmemory = \"256M\"\n[[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"p\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"checks/c.sh\"\n",
    );
    std::fs::create_dir_all(catalog.join("sandboxed/checks")).unwrap();
    std::fs::write(catalog.join("sandboxed/checks/c.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    write_exam(
        catalog,
        "sandboxed",
        "title = \"S\"\ndescription = \"d\"\nduration = \"5m\"\n[environment]\nbase = \"host\"\n[[tasks]]\nid = \"t\"\n\
         title = \"T\"\nprompt = \"p\"\n[[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"checks/c.sh\"\n",
    );
}

async fn server() -> TestServer {
    let sock = crate::docker_engine::with_sample_image();
    TestServer::start_with(Options { exams: docker_exams, docker: Some(sock), ..Options::default() }).await
}

fn env_of(v: &Value) -> EnvironmentId {
    v["execution_environment_id"].as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_docker_session_gets_its_database_its_terminal_and_a_grade_and_leaves_nothing() {
    let s = server().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = sid(&create(&c, &s, &alice, "docker-postgres").await);
    let v = wait_state(&c, &s, &alice, &id, Duration::from_secs(60), "ready").await;
    let env = env_of(&v);
    let trail = events(&c, &s, &s.proctor("p"), &id).await;
    assert!(
        trail
            .iter()
            .any(|e| e["reason"].as_str().is_some_and(|r| r.starts_with("Environment image examroom/debian:1"))),
        "the image the environment ran on is in the trail: {trail:#?}"
    );
    assert!(
        s.docker_objects().iter().any(|o| o.ends_with(&format!("{env}-svc-db"))),
        "the db service runs: {:?}",
        s.docker_objects()
    );

    // The candidate's terminal reaches the database by name (the setup made `shop` there).
    let rt = s.state.svc.runtime();
    let mut term = rt.attach(&env, "main").await.unwrap();
    type_line(
        &mut term,
        "psql -h db -U postgres shop -c 'CREATE TABLE inventory (item text PRIMARY KEY, qty integer)'",
    )
    .await;
    expect_output(&mut term, "CREATE TABLE", Duration::from_secs(20)).await;
    type_line(&mut term, "hostname; id -u").await;
    expect_output(&mut term, "exam", Duration::from_secs(10)).await;

    let a = c.post(&s.url(&format!("/api/v1/sessions/{id}/start")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.post(&s.url(&format!("/api/v1/sessions/{id}/submit")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let v = wait_for(&c, &s, &alice, &id, Duration::from_secs(60), |v| state(v) == "terminated").await;
    assert!(v["resources_released_at"].is_string(), "the release is verified: {v}");
    let r = c.get(&s.url(&format!("/api/v1/sessions/{id}/result")), &s.proctor("p")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let checks: Vec<(String, bool)> = r.body["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["check_id"].as_str().unwrap_or_default().to_string(), c["passed"] == true))
        .collect();
    assert!(checks.contains(&("columns".to_string(), true)), "the table is found by grading: {}", r.text);
    assert!(checks.contains(&("widgets".to_string(), false)), "no widgets were recorded: {}", r.text);
    assert!(s.docker_objects().is_empty(), "nothing of the session is left: {:?}", s.docker_objects());
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_and_sandbox_sessions_run_side_by_side_and_a_killed_container_fails_its_session_at_once() {
    let s = server().await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let a = sid(&create(&c, &s, &alice, "docker-plain").await);
    let b = sid(&create(&c, &s, &bob, "sandboxed").await);
    let va = wait_state(&c, &s, &alice, &a, Duration::from_secs(60), "ready").await;
    wait_state(&c, &s, &bob, &b, Duration::from_secs(60), "ready").await;
    let ready = c.get(&s.url("/readyz"), "").await;
    assert_eq!(ready.body["backends"]["sandbox"], "ok", "{}", ready.text);
    let docker = ready.body["backends"]["docker"].as_str().unwrap_or_default();
    // The tests' Engine keeps its data on ext4: the caveat says so.
    assert!(docker.starts_with("ok; writable layers are not bounded"), "{}", ready.text);

    // Killed from outside: the Engine's event reaches the server, which fails the session and releases it.
    let env = env_of(&va);
    let sock = s.docker.clone().unwrap();
    let killed = Instant::now();
    let st = std::process::Command::new("docker")
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .args(["kill", &format!("examroom-{env}")])
        .output()
        .unwrap();
    assert!(st.status.success(), "docker kill: {}", String::from_utf8_lossy(&st.stderr));
    let v = wait_for(&c, &s, &alice, &a, Duration::from_secs(20), |v| state(v) == "failed").await;
    assert_eq!(state(&v), "failed", "{v}");
    assert_eq!(v["failure"]["code"], "environment_lost", "{v}");
    assert!(killed.elapsed() < Duration::from_secs(10), "noticed in {:?}", killed.elapsed());
    let v = wait_for(&c, &s, &alice, &a, Duration::from_secs(20), |v| v["resources_released_at"].is_string()).await;
    assert!(v["resources_released_at"].is_string(), "{v}");

    // The sandbox session beside it did not notice.
    let vb = c.get(&s.url(&format!("/api/v1/sessions/{b}")), &bob).await;
    assert_eq!(state(&vb.body), "ready", "{}", vb.text);
    let out = s.state.svc.runtime().exec(&env_of(&vb.body), ExecRequest::shell("echo fine")).await.unwrap();
    assert_eq!(out.stdout_text().trim(), "fine");
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_removes_a_docker_environment_no_session_owns() {
    let s = server().await;
    let rt = s.state.svc.runtime();
    let mut spec = examroom_runtime::EnvironmentSpec::new(EnvironmentId::new_v4());
    spec.backend = examroom_runtime::BackendKind::Docker;
    spec.image = Some("examroom/debian:1".into());
    spec.limits.memory_bytes = 128 << 20;
    spec.limits.disk_bytes = 64 << 20;
    rt.create(spec.clone()).await.unwrap();
    assert!(!s.docker_objects().is_empty());
    let report = s.state.svc.reconcile_once().await;
    assert_eq!(report.orphans, 1, "{report:?}");
    assert!(s.docker_objects().is_empty(), "the orphan is gone: {:?}", s.docker_objects());
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_docker_down_readyz_says_so_docker_sessions_fail_at_once_and_sandbox_ones_work() {
    let missing = std::path::PathBuf::from("/run/examroom-test-docker/no-such-engine.sock");
    let s = TestServer::start_with(Options { exams: docker_exams, docker: Some(missing), ..Options::default() }).await;
    let c = Client::default();
    let ready = c.get(&s.url("/readyz"), "").await;
    assert_eq!(ready.status, 200, "the sandbox still makes environments: {}", ready.text);
    assert_eq!(ready.body["backends"]["sandbox"], "ok", "{}", ready.text);
    let why = ready.body["backends"]["docker"].as_str().unwrap_or_default();
    assert!(why.contains("no-such-engine.sock"), "readyz names the Engine that is down: {}", ready.text);

    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let started = Instant::now();
    let a = sid(&create(&c, &s, &alice, "docker-plain").await);
    let v = wait_for(&c, &s, &alice, &a, Duration::from_secs(10), |v| state(v) == "failed").await;
    assert_eq!(state(&v), "failed", "{v}");
    assert!(started.elapsed() < Duration::from_secs(5), "failed in {:?}", started.elapsed());
    let proctor_view = c.get(&s.url(&format!("/api/v1/sessions/{a}")), &s.proctor("p")).await;
    let detail = proctor_view.body["failure"]["detail"].as_str().unwrap_or_default().to_string();
    assert!(detail.contains("no-such-engine.sock"), "the proctor sees the cause: {}", proctor_view.text);
    let b = sid(&create(&c, &s, &bob, "sandboxed").await);
    wait_state(&c, &s, &bob, &b, Duration::from_secs(60), "ready").await;
    s.teardown().await;
}
