//! Admission by memory through the API (in process and with the real `examroom serve`), and `examroom doctor` run for
//! real.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use examroom_core::Role;
use examroom_sessions::ServiceConfig;

use crate::server::{
    create, is_final, real_get, session_path, sid, state, wait_for, wait_state, write_exam, Answer, Client, Options,
    RealServer, TestServer, SESSIONS,
};

const MIB: u64 = 1 << 20;
const READY: Duration = Duration::from_secs(60);
const ENDED: Duration = Duration::from_secs(30);

/// Every check `examroom doctor` runs, in order.
const CHECKS: [&str; 9] = [
    "user_namespaces",
    "idmapped_mounts",
    "cgroups",
    "file_max",
    "pid_max",
    "threads_max",
    "memory",
    "fuse",
    "open_files",
];

/// A refusal for memory: 503 `capacity_exhausted`, `Retry-After`, and a message that says why.
fn assert_memory_refusal(a: &Answer) {
    assert_eq!(a.status, 503, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "capacity_exhausted", "{}", a.text);
    assert_eq!(
        a.body["error"]["message"], "The exam host has no memory left for another environment right now.",
        "{}",
        a.text
    );
    let guidance = a.body["error"]["guidance"].as_str().unwrap_or("");
    assert!(guidance.starts_with("Try again in 30 seconds"), "{}", a.text);
    let retry = a.headers.get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(retry, "30", "Retry-After: {:?}", a.headers);
}

/// A proctor ends a session without grading it, and it reaches `terminated` (its environment released).
async fn end_session(c: &Client, s: &TestServer, token: &str, id: &str) {
    wait_state(c, s, token, id, READY, "ready").await;
    let body = json!({ "reason": "make room", "grade": false });
    let t = c.post(&s.url(&format!("{}/terminate", session_path(id))), &s.proctor("proctor"), body).await;
    assert_eq!(t.status, 200, "{}", t.text);
    let ended = wait_for(c, s, token, id, ENDED, is_final).await;
    assert_eq!(state(&ended), "terminated", "{ended}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_never_admit_more_memory_than_the_budget() {
    // Room for three `quick` sessions (256 MiB each), not four.
    let budget = 3 * 256 * MIB + MIB;
    let service = ServiceConfig { memory_budget: Some(budget), ..ServiceConfig::default() };
    let s = TestServer::start_with(Options { service, ..Default::default() }).await;
    let c = Client::default();

    // A session whose provisioning fails gives its memory back (`broken-base`: 512 MiB, a base that does not exist).
    let broken_user = s.candidate("broken");
    let broken = create(&c, &s, &broken_user, "broken-base").await;
    // (It may already have failed here: it holds 512 MiB or, released, nothing.)
    assert!([0, 512 * MIB].contains(&s.state.svc.admitted_memory().0));
    let failed = wait_for(&c, &s, &broken_user, &sid(&broken), ENDED, is_final).await;
    assert_eq!(state(&failed), "failed", "{failed}");
    assert_eq!(s.state.svc.admitted_memory().0, 0);

    // Eight at once: exactly three get in; the others are refused for memory, with Retry-After.
    let tokens: Vec<String> = (0..8).map(|i| s.candidate(&format!("cand{i}"))).collect();
    let url = s.url(SESSIONS);
    let answers =
        futures::future::join_all(tokens.iter().map(|t| c.post(&url, t, json!({ "exam_id": "quick" })))).await;
    let admitted: Vec<usize> = (0..answers.len()).filter(|i| answers[*i].status == 201).collect();
    assert_eq!(admitted.len(), 3, "{:?}", answers.iter().map(|a| a.status).collect::<Vec<_>>());
    for a in answers.iter().filter(|a| a.status != 201) {
        assert_memory_refusal(a);
    }
    assert_eq!(s.state.svc.admitted_memory().0, 3 * 256 * MIB);

    // One ends: its memory is released, and one of the refused candidates gets in.
    let first = admitted[0];
    end_session(&c, &s, &tokens[first], &sid(&answers[first].body)).await;
    assert_eq!(s.state.svc.admitted_memory().0, 2 * 256 * MIB);
    let refused = (0..answers.len()).find(|i| !admitted.contains(i)).unwrap();
    let late = create(&c, &s, &tokens[refused], "quick").await;
    assert_eq!(s.state.svc.admitted_memory().0, 3 * 256 * MIB);
    // Let provisioning finish before the teardown destroys everything.
    wait_state(&c, &s, &tokens[refused], &sid(&late), READY, "ready").await;
    for i in &admitted[1..] {
        wait_state(&c, &s, &tokens[*i], &sid(&answers[*i].body), READY, "ready").await;
    }
    s.teardown().await;
}

async fn post_half(c: &Client, srv: &RealServer, token: &str) -> Answer {
    c.post(&srv.url(SESSIONS), token, json!({ "exam_id": "half" })).await
}

async fn real_wait(c: &Client, srv: &RealServer, token: &str, id: &str, within: Duration, want: &str) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = real_get(c, srv, token, id).await;
        if state(&v) == want {
            return v;
        }
        assert!(!is_final(&v), "session {id} ended as {}: {v}", state(&v));
        assert!(Instant::now() < deadline, "session {id} not {want} within {within:?}: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `examroom_admitted_memory_bytes` from `/metrics`.
async fn admitted_metric(c: &Client, srv: &RealServer) -> u64 {
    let text = c.http.get(srv.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("examroom_admitted_memory_bytes "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no examroom_admitted_memory_bytes in /metrics:\n{text}")) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_third_session_waits_for_memory_and_a_restart_rebuilds_the_sum() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-adm-").tempdir_in("/tmp").unwrap();
    let exams = tmp.path().join("exams");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&exams).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    write_exam(
        &exams,
        "half",
        "title = \"Half\"\ndescription = \"h\"\nduration = \"5m\"\n[environment]\nbase = \"host\"\nmemory = \"512M\"\n",
    );
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams,
        logs,
        label: crate::common::unique_label("adm"),
        secret: "admission-test-secret-0123456789-abcdefg".into(),
        base: String::new(),
        runs: 0,
    };
    let c = Client::default();
    let tok = |u: &str| srv.token(u, Role::Candidate);
    let (alice, bob, carol, dave) = (tok("alice"), tok("bob"), tok("carol"), tok("dave"));
    let proctor = srv.token("proctor", Role::Proctor);
    // 0.8 × 1536 MiB = 1228.8 MiB: two sessions of 512 MiB fit, a third does not.
    let config = [("EXAMROOM_HOST_MEMORY", "1536M"), ("EXAMROOM_MEMORY_SHARE", "0.8")];
    srv.start_with_env(&config).await;

    // `serve` ran the doctor's checks at start and logged every one.
    let log = srv.stderr();
    for name in CHECKS {
        assert!(log.contains(&format!("\"check\":\"{name}\"")), "no {name} check in the start-up log:\n{log}");
    }
    assert!(!log.contains("degraded"), "the host's tables should fit (or be raised) as root:\n{log}");

    let a = post_half(&c, &srv, &alice).await;
    let b = post_half(&c, &srv, &bob).await;
    assert_eq!((a.status, b.status), (201, 201), "{} {}", a.text, b.text);
    assert_memory_refusal(&post_half(&c, &srv, &carol).await);
    assert_eq!(admitted_metric(&c, &srv).await, 1024 * MIB);

    // When one ends (and its environment is released), the next is admitted.
    let aid = sid(&a.body);
    real_wait(&c, &srv, &alice, &aid, READY, "ready").await;
    let t = c
        .post(
            &srv.url(&format!("{}/terminate", session_path(&aid))),
            &proctor,
            json!({ "reason": "make room", "grade": false }),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    real_wait(&c, &srv, &alice, &aid, ENDED, "terminated").await;
    let cs = post_half(&c, &srv, &carol).await;
    assert_eq!(cs.status, 201, "{}", cs.text);

    // A restarted server counts what the live sessions hold: bob's and carol's 1 GiB, so dave waits.
    srv.kill();
    srv.start_with_env(&config).await;
    assert_eq!(admitted_metric(&c, &srv).await, 1024 * MIB);
    assert_memory_refusal(&post_half(&c, &srv, &dave).await);
    let bid = sid(&b.body);
    real_wait(&c, &srv, &bob, &bid, READY, "ready").await;
    let t = c
        .post(
            &srv.url(&format!("{}/terminate", session_path(&bid))),
            &proctor,
            json!({ "reason": "make room", "grade": false }),
        )
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    real_wait(&c, &srv, &bob, &bid, ENDED, "terminated").await;
    let d = post_half(&c, &srv, &dave).await;
    assert_eq!(d.status, 201, "{}", d.text);

    srv.kill();
    srv.destroy_all();
    crate::common::assert_no_leaks(&srv.label, &srv.sandbox_dir()).await;
}

#[test]
fn doctor_runs_for_real_and_names_every_check() {
    let tmp = tempfile::Builder::new().prefix("er-doctor-").tempdir_in("/tmp").unwrap();
    let exams = tmp.path().join("exams");
    std::fs::create_dir_all(&exams).unwrap();
    write_exam(&exams, "one", "title = \"One\"\ndescription = \"o\"\nduration = \"5m\"\n");
    let doctor = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
            .arg("doctor")
            .arg("--data-dir")
            .arg(tmp.path())
            .arg("--exams")
            .arg(&exams)
            .args(extra)
            .env_remove("EXAMROOM_CONFIG")
            .env_remove("EXAMROOM_MEMORY_SHARE")
            .env_remove("EXAMROOM_HOST_MEMORY")
            .output()
            .expect("run examroom doctor")
    };

    // Text: one line per check, starting with its verdict; the exit status says whether one failed.
    let out = doctor(&[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut failed = false;
    for name in CHECKS {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        let verdict = line.split_whitespace().next().unwrap();
        assert!(["ok", "warn", "fail"].contains(&verdict), "{line}");
        failed |= verdict == "fail";
    }
    assert!(text.contains(" ok, ") && text.contains(" failures"), "no count line:\n{text}");
    assert_eq!(out.status.success(), !failed, "exit status {} for:\n{text}", out.status);

    // JSON: the same checks, each with a verdict and a fix unless ok.
    let out = doctor(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).expect("doctor --json prints JSON");
    let checks = v["checks"].as_array().expect("checks");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, CHECKS);
    for ch in checks {
        let verdict = ch["verdict"].as_str().unwrap();
        assert_eq!(ch["fix"].is_string(), verdict != "ok", "{ch}");
        assert!(ch["summary"].as_str().is_some_and(|s| !s.is_empty()), "{ch}");
    }
    assert_eq!(v["ok"], checks.iter().all(|c| c["verdict"] != "fail"));
    assert_eq!(out.status.success(), v["ok"] == true);
    // As root on this kind of host, the probes that need root work.
    if nix::unistd::geteuid().is_root() {
        let by_name = |n: &str| checks.iter().find(|c| c["name"] == n).unwrap()["verdict"].clone();
        assert_eq!(by_name("idmapped_mounts"), "ok", "{v}");
        assert_eq!(by_name("cgroups"), "ok", "{v}");
    }

    // Bad input: a clear error, no report.
    let out = doctor(&["--memory-share", "1.5"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the memory share must be above 0 and at most 1"), "{err}");
}
