//! The candidate's workspace (flags, visited tasks, notepad) on a real server: owner-only, checked against the
//! exam's tasks, bounded, read by the proctor after the end, refused after the end; and the exam's resources,
//! warnings and terminal limit in the catalog.

use std::path::Path;
use std::time::Duration;

use serde_json::json;

use crate::server::{create, sid, standard_exams, wait_state, write_exam, Answer, Client, Options, TestServer};

fn exams(catalog: &Path) {
    standard_exams(catalog);
    let dir = catalog.join("tasks");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("check.sh"), "#!/bin/sh\nexit 1\n").unwrap();
    write_exam(
        catalog,
        "tasks",
        "title = \"Tasks\"\ndescription = \"d\"\nduration = \"5m\"\nwarnings = [\"2m\", \"30s\"]\n\
         [[resources]]\ntitle = \"Kubernetes documentation\"\nurl = \"https://kubernetes.io/docs/\"\n\
         [environment]\nbase = \"host\"\nmemory = \"128M\"\ncpu = \"500m\"\nterminals = 3\n\
         [[tasks]]\nid = \"one\"\ntitle = \"One\"\nprompt = \"p\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"check.sh\"\n\
         [[tasks]]\nid = \"two\"\ntitle = \"Two\"\nprompt = \"p\"\n\
         [[tasks.checks]]\nid = \"c\"\ndescription = \"d\"\nscript = \"check.sh\"\n",
    );
}

async fn patch(c: &Client, url: &str, token: &str, body: serde_json::Value) -> Answer {
    c.send(c.http.patch(url).bearer_auth(token).json(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workspace_is_the_owners_checked_bounded_and_read_by_the_proctor_after_the_end() {
    let s = TestServer::start_with(Options { exams, ..Options::default() }).await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let bob = s.candidate("bob");
    let proctor = s.proctor("pat");

    // The exam says what the page needs.
    let e = c.get(&s.url("/api/v1/exams/tasks"), &alice).await;
    assert_eq!(e.status, 200, "{}", e.text);
    assert_eq!(
        e.body["resources"],
        json!([{ "title": "Kubernetes documentation", "url": "https://kubernetes.io/docs/" }])
    );
    assert_eq!(e.body["warnings_seconds"], json!([120, 30]));
    assert_eq!(e.body["terminals"], 3);
    let q = c.get(&s.url("/api/v1/exams/quick"), &alice).await;
    assert_eq!((q.body["resources"].clone(), q.body["warnings_seconds"].clone()), (json!([]), json!([600, 60])));

    let id = sid(&create(&c, &s, &alice, "tasks").await);
    let url = s.url(&format!("/api/v1/sessions/{id}/workspace"));
    wait_state(&c, &s, &alice, &id, Duration::from_secs(60), "ready").await;

    let a = c.get(&url, &alice).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({ "flagged": [], "visited": [], "notepad": "" }));

    // Each field given replaces the stored one; the others stay; duplicates are kept once.
    let a = patch(&c, &url, &alice, json!({ "flagged": ["two"], "visited": ["one", "two", "one"] })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({ "flagged": ["two"], "visited": ["one", "two"], "notepad": "" }));
    let note = "check the PVC later — ünïcode\nsecond line";
    let a = patch(&c, &url, &alice, json!({ "notepad": note })).await;
    assert_eq!(a.body, json!({ "flagged": ["two"], "visited": ["one", "two"], "notepad": note }), "{}", a.text);
    assert_eq!(c.get(&url, &alice).await.body["notepad"], note);

    // Bad input: an unknown task, an unknown field, a notepad over 32 KiB, not an object.
    for (body, what) in [
        (json!({ "flagged": ["nope"] }), "not a task of this exam"),
        (json!({ "flags": ["one"] }), "unknown field"),
        (json!({ "notepad": "x".repeat(32 * 1024 + 1) }), "32 KiB"),
        (json!({ "visited": "one" }), "does not fit"),
        (json!({ "visited": null }), "does not fit"),
        (json!({ "notepad": null }), "does not fit"),
        (json!(["one"]), "JSON object"),
    ] {
        let a = patch(&c, &url, &alice, body).await;
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{what}: {}", a.text);
        assert!(a.text.contains(what), "{what}: {}", a.text);
    }
    let a = patch(&c, &url, &alice, json!({ "notepad": "x".repeat(32 * 1024) })).await;
    assert_eq!(a.status, 200, "exactly 32 KiB fits: {}", &a.text[..a.text.len().min(200)]);
    let a = patch(&c, &url, &alice, json!({ "notepad": note })).await;
    assert_eq!(a.status, 200, "{}", a.text);

    // Owner-only: another candidate gets 404 (as for a random id); a proctor reads but does not write.
    assert_eq!(c.get(&url, &bob).await.status, 404);
    assert_eq!(patch(&c, &url, &bob, json!({ "notepad": "mine" })).await.status, 404);
    let random = s.url(&format!("/api/v1/sessions/{}/workspace", uuid_like()));
    assert_eq!(c.get(&random, &alice).await.status, 404);
    let a = patch(&c, &url, &proctor, json!({ "notepad": "proctor" })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("forbidden")), "{}", a.text);

    // After the end: the proctor (and the candidate) read it; nobody changes it.
    let a = c.post(&s.url(&format!("/api/v1/sessions/{id}/start")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.post(&s.url(&format!("/api/v1/sessions/{id}/submit")), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = patch(&c, &url, &alice, json!({ "notepad": "late" })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (410, Some("session_ended")), "{}", a.text);
    // A request that is wrong in itself says so first, whatever the state.
    let a = patch(&c, &url, &alice, json!({ "notepad": "x".repeat(32 * 1024 + 1) })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{}", a.text);
    let main = s.url(&format!("/api/v1/sessions/{id}/terminals/main"));
    let a = c.send(c.http.delete(&main).bearer_auth(&alice)).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{}", a.text);
    assert_eq!(c.send(c.http.delete(&main).bearer_auth(&bob)).await.status, 404);
    wait_state(&c, &s, &alice, &id, Duration::from_secs(60), "terminated").await;
    let a = c.get(&url, &proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({ "flagged": ["two"], "visited": ["one", "two"], "notepad": note }));
    assert_eq!(c.get(&url, &alice).await.body["notepad"], note);
    s.teardown().await;
}

fn uuid_like() -> String {
    "0b0e9f4c-6f1e-4d0a-9a7c-3f2b1e0d9c8a".to_owned()
}
