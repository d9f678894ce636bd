//! Grading through the API: checks run after access stops, on a frozen environment, with a trusted toolset; the
//! result follows the contract (`pending`, `graded`, `not_graded`) and its access rules.

use std::path::Path;
use std::time::Duration;

use examroom_core::EnvironmentId;
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{ExecRequest, ExecutionRuntime};
use serde_json::{json, Value};

use crate::server::{state, wait_for, write_exam, Client, Options, TestServer};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// The repository's sample exams, plus a quick ungraded-case exam.
fn sample_exams(catalog: &Path) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../exams");
    for name in ["linux-basics", "processes-and-logs"] {
        copy_dir(&samples.join(name), &catalog.join(name));
    }
    std::fs::create_dir_all(catalog.join("graceful/checks")).unwrap();
    std::fs::write(catalog.join("graceful/checks/c.sh"), "#!/bin/sh\nexit 0\n").unwrap();
    write_exam(
        catalog,
        "graceful",
        "title = \"G\"\ndescription = \"d\"\nduration = \"5m\"\nstart_grace = \"2s\"\n[environment]\nbase = \"host\"\n\
         [[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"p\"\n[[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"checks/c.sh\"\n",
    );
}

fn runtime(s: &TestServer) -> SandboxRuntime {
    let mut cfg = SandboxConfig::new(s.sandbox_dir(), &s.label);
    cfg.shim_program = crate::common::shim_program();
    SandboxRuntime::new(cfg).unwrap()
}

async fn start(c: &Client, s: &TestServer, token: &str, exam: &str) -> Value {
    let a = c.post(&s.url("/api/v1/sessions"), token, json!({ "exam_id": exam })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    wait_for(c, s, token, &id, Duration::from_secs(60), |v| state(v) == "ready").await;
    let b = c.post(&s.url(&format!("/api/v1/sessions/{id}/start")), token, json!({})).await;
    assert_eq!(b.status, 200, "{}", b.text);
    b.body
}

async fn solve_all(s: &TestServer, view: &Value, exam: &str) {
    let env: EnvironmentId = view["execution_environment_id"].as_str().unwrap().parse().unwrap();
    let rt = runtime(s);
    let dir = s.catalog_dir.join(exam).join("solutions");
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let body = std::fs::read(e.path()).unwrap();
        let mut req = ExecRequest::shell("");
        req.argv = vec!["/bin/sh".into()];
        req.stdin = body;
        let out = rt.exec(&env, req).await.unwrap();
        assert_eq!(out.exit_code, Some(0), "solution {:?}: {}", e.path(), String::from_utf8_lossy(&out.stderr));
    }
}

async fn submit_and_result(c: &Client, s: &TestServer, token: &str, id: &str) -> Value {
    let a = c.post(&s.url(&format!("/api/v1/sessions/{id}/submit")), token, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    wait_for(c, s, token, id, Duration::from_secs(60), |v| state(v) == "terminated").await;
    let r = c.get(&s.url(&format!("/api/v1/sessions/{id}/result")), token).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn solved_scores_full_marks_unsolved_scores_zero_and_access_follows_the_rules() {
    let s = TestServer::start_with(Options { exams: sample_exams, ..Options::default() }).await;
    let c = Client::default();
    let (alice, bob, proctor) = (s.candidate("alice"), s.candidate("bob"), s.proctor("p"));

    let a = start(&c, &s, &alice, "linux-basics").await;
    let aid = a["id"].as_str().unwrap().to_string();
    // Before the end: the candidate may not see a result; the proctor sees it pending; another candidate sees nothing.
    let early = c.get(&s.url(&format!("/api/v1/sessions/{aid}/result")), &alice).await;
    assert_eq!(
        (early.status, early.body["error"]["code"].as_str()),
        (409, Some("session_not_ended")),
        "{}",
        early.text
    );
    let p = c.get(&s.url(&format!("/api/v1/sessions/{aid}/result")), &proctor).await;
    assert_eq!(p.body["status"], "pending");
    let other = c.get(&s.url(&format!("/api/v1/sessions/{aid}/result")), &bob).await;
    assert_eq!((other.status, other.body["error"]["code"].as_str()), (404, Some("session_not_found")));

    solve_all(&s, &a, "linux-basics").await;
    let r = submit_and_result(&c, &s, &alice, &aid).await;
    assert_eq!(r["status"], "graded", "{r}");
    assert!(r["max_score"].as_u64().unwrap() > 0);
    assert_eq!(r["score"], r["max_score"], "full marks when solved: {r}");
    assert!(r["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true && c.get("output_tail").is_none()));
    let pr = c.get(&s.url(&format!("/api/v1/sessions/{aid}/result")), &proctor).await;
    assert!(pr.body["checks"].as_array().unwrap().iter().all(|c| c.get("output_tail").is_some()), "{}", pr.text);
    // The trail shows grading as a step of the end.
    let ev = c.get(&s.url(&format!("/api/v1/sessions/{aid}/events")), &alice).await;
    assert!(ev.text.contains("Grading your work"), "{}", ev.text);

    // Unsolved: zero, on a score-only exam (the candidate sees no checks, the proctor does).
    let b = start(&c, &s, &bob, "processes-and-logs").await;
    let bid = b["id"].as_str().unwrap().to_string();
    let r = submit_and_result(&c, &s, &bob, &bid).await;
    assert_eq!((r["status"].as_str(), r["score"].as_u64()), (Some("graded"), Some(0)), "{r}");
    assert!(r["checks"].as_array().unwrap().is_empty(), "score only: {r}");
    let pr = c.get(&s.url(&format!("/api/v1/sessions/{bid}/result")), &proctor).await;
    assert!(!pr.body["checks"].as_array().unwrap().is_empty());
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ends_that_are_not_graded_say_so() {
    let s = TestServer::start_with(Options { exams: sample_exams, ..Options::default() }).await;
    let c = Client::default();
    let (alice, bob, proctor) = (s.candidate("alice"), s.candidate("bob"), s.proctor("p"));
    // Never started: the start grace ends it, ungraded.
    let a = c.post(&s.url("/api/v1/sessions"), &alice, json!({ "exam_id": "graceful" })).await;
    let aid = a.body["id"].as_str().unwrap().to_string();
    wait_for(&c, &s, &alice, &aid, Duration::from_secs(30), |v| state(v) == "terminated").await;
    let r = c.get(&s.url(&format!("/api/v1/sessions/{aid}/result")), &alice).await;
    assert_eq!(r.body["status"], "not_graded", "{}", r.text);
    // A proctor's end without grading.
    let b = start(&c, &s, &bob, "linux-basics").await;
    let bid = b["id"].as_str().unwrap().to_string();
    let t = c
        .post(&s.url(&format!("/api/v1/sessions/{bid}/terminate")), &proctor, json!({"reason": "r", "grade": false}))
        .await;
    assert_eq!(t.status, 200, "{}", t.text);
    wait_for(&c, &s, &bob, &bid, Duration::from_secs(30), |v| state(v) == "terminated").await;
    let r = c.get(&s.url(&format!("/api/v1/sessions/{bid}/result")), &bob).await;
    assert_eq!(r.body["status"], "not_graded", "{}", r.text);
    assert!(r.body["reason"].as_str().unwrap_or_default().contains("without grading"), "{}", r.text);
    s.teardown().await;
}
