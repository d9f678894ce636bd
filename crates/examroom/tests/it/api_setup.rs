//! Setup scripts run during provisioning as visible steps; a failing one fails the session with a clear message for
//! the candidate and, for the proctor, the step, the exit code and the tail of stderr.

use std::path::Path;
use std::time::Duration;

use crate::server::{state, wait_for, write_exam, Client, Options, TestServer};

fn setup_exams(catalog: &Path) {
    let env = "[environment]\nbase = \"host\"\nmemory = \"256M\"\n";
    let task = |id: &str, setup: &str| {
        format!(
            "[[tasks]]\nid = \"{id}\"\ntitle = \"T {id}\"\nprompt = \"Do {id}.\"\nsetup = \"setup/{id}.sh\"\n\
             [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"checks/{id}.sh\"\n{setup}"
        )
    };
    for (exam, scripts) in [
        (
            "good-setup",
            vec![("one", "#!/bin/sh\necho prepared > /root/one.txt\n"), ("two", "#!/bin/sh\nmkdir -p /srv/two\n")],
        ),
        (
            "bad-setup",
            vec![("one", "#!/bin/sh\ntrue\n"), ("two", "#!/bin/sh\necho 'cannot find the widget' >&2\nexit 7\n")],
        ),
    ] {
        let dir = catalog.join(exam);
        std::fs::create_dir_all(dir.join("setup")).unwrap();
        std::fs::create_dir_all(dir.join("checks")).unwrap();
        let mut body = format!("title = \"{exam}\"\ndescription = \"d\"\nduration = \"5m\"\n{env}");
        for (id, script) in &scripts {
            std::fs::write(dir.join(format!("setup/{id}.sh")), script).unwrap();
            std::fs::write(dir.join(format!("checks/{id}.sh")), "#!/bin/sh\nexit 1\n").unwrap();
            body.push_str(&task(id, ""));
        }
        write_exam(catalog, exam, &body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_scripts_run_as_steps_and_a_failure_names_its_step() {
    let s = TestServer::start_with(Options { exams: setup_exams, ..Options::default() }).await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let a = c.post(&s.url("/api/v1/sessions"), &alice, serde_json::json!({"exam_id": "good-setup"})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["id"].as_str().unwrap().to_string();
    wait_for(&c, &s, &alice, &id, Duration::from_secs(60), |v| state(v) == "ready").await;
    let ev = c.get(&s.url(&format!("/api/v1/sessions/{id}/events")), &alice).await;
    let reasons: Vec<&str> =
        ev.body["events"].as_array().unwrap().iter().filter_map(|e| e["reason"].as_str()).collect();
    assert!(reasons.contains(&"Preparing task 1 of 2") && reasons.contains(&"Preparing task 2 of 2"), "{reasons:?}");
    let tasks = c.get(&s.url(&format!("/api/v1/sessions/{id}/tasks")), &alice).await;
    assert_eq!(tasks.status, 200);
    assert_eq!(tasks.body["tasks"].as_array().unwrap().len(), 2);
    assert_eq!(tasks.body["tasks"][0]["prompt"], "Do one.");
    assert!(!tasks.text.contains("exit 1"), "a check script leaked: {}", tasks.text);
    // The setup really ran inside the environment.
    let env: examroom_core::EnvironmentId = a.body["execution_environment_id"].as_str().unwrap().parse().unwrap();
    let rt = examroom_runtime::sandbox::SandboxRuntime::new({
        let mut cfg = examroom_runtime::sandbox::SandboxConfig::new(s.sandbox_dir(), &s.label);
        cfg.shim_program = crate::common::shim_program();
        cfg
    })
    .unwrap();
    use examroom_runtime::ExecutionRuntime;
    let out = rt
        .exec(&env, examroom_runtime::ExecRequest::shell("cat /root/one.txt; test -d /srv/two && echo dir"))
        .await
        .unwrap();
    assert_eq!(out.stdout_text(), "prepared\ndir\n");

    let bob = s.candidate("bob");
    let b = c.post(&s.url("/api/v1/sessions"), &bob, serde_json::json!({"exam_id": "bad-setup"})).await;
    let bid = b.body["id"].as_str().unwrap().to_string();
    let v = wait_for(&c, &s, &bob, &bid, Duration::from_secs(10), |v| state(v) == "failed").await;
    assert_eq!(v["failure"]["code"], "provisioning_failed");
    assert!(v["failure"]["detail"].is_null(), "the candidate sees no detail: {v}");
    assert!(v["resources_released_at"].is_string());
    let p = c.get(&s.url(&format!("/api/v1/sessions/{bid}")), &s.proctor("p")).await;
    let detail = p.body["failure"]["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.contains("task 2") && detail.contains("status 7") && detail.contains("cannot find the widget"),
        "{detail}"
    );
    s.teardown().await;
}
