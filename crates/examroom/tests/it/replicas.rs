//! Several replicas behind one address (issue 17): two real servers in this process, each with its own data
//! directory, sandbox and label, on one PostgreSQL (a fresh database of the test process's throwaway cluster). A
//! candidate's status stream on replica B sees the transitions made on replica A, and after B's notification
//! connection is cut, B reconnects and its open streams resync from the store.
//!
//! Until sessions have owning nodes (not built yet), only the replica that made a session may reconcile it: B's
//! periodic reconcile is pushed out of the test's way, and B runs no sessions of its own.

use std::time::{Duration, Instant};

use examroom_sessions::ServiceConfig;
use serde_json::json;

use crate::api_sessions::{next_sse, open_status_stream, Sse};
use crate::server::{session_path, sid, state, wait_state, Client, Options, TestServer, SESSIONS};

/// The status events of a stream until one has state `want` (at most `within`); returns when it arrived.
async fn until_state(sse: &mut tokio::sync::mpsc::UnboundedReceiver<Sse>, want: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next_sse(sse, left.max(Duration::from_millis(1))).await {
            Sse::Event { event, data, at } if event == "status" && state(&data) == want => return at,
            Sse::Event { .. } => {}
            Sse::End { clean } => panic!("the stream ended (clean: {clean}) before {want}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transition_on_one_replica_reaches_a_stream_on_another_and_streams_resync_after_a_reconnect() {
    let url = examroom_store::postgres::test_cluster::cluster().fresh_database().await;
    let a = TestServer::start_with(Options { database: Some(url.clone()), ..Options::default() }).await;
    let quiet = ServiceConfig { reconcile_interval: Duration::from_secs(3600), ..ServiceConfig::default() };
    let b = TestServer::start_with(Options { database: Some(url.clone()), service: quiet, ..Options::default() }).await;
    let c = Client::default();
    let alice = a.candidate("alice");

    // Created on A; B answers for it too (same store, same token keys).
    let created = c.post(&a.url(SESSIONS), &alice, json!({ "exam_id": "quick" })).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = sid(&created.body);
    let on_b = c.get(&b.url(&session_path(&id)), &alice).await;
    assert_eq!((on_b.status, sid(&on_b.body)), (200, id.clone()), "{}", on_b.text);

    // A stream on B follows A's provisioning to ready.
    let mut sse = open_status_stream(b.url(&format!("{}/status", session_path(&id))), alice.clone()).await;
    until_state(&mut sse, "ready", Duration::from_secs(60)).await;
    wait_state(&c, &a, &alice, &id, Duration::from_secs(5), "ready").await;

    // The start, made on A, reaches B's stream promptly (the spec's 150 ms, with margin for a busy machine).
    let sent = Instant::now();
    let st = c.post(&a.url(&format!("{}/start", session_path(&id))), &alice, json!({})).await;
    assert_eq!((st.status, state(&st.body)), (200, "active"), "{}", st.text);
    let heard = until_state(&mut sse, "active", Duration::from_secs(5)).await;
    let latency = heard.saturating_duration_since(sent);
    eprintln!("start on replica A → status event on replica B: {latency:?} (including the start itself)");
    assert!(latency < Duration::from_secs(1), "B heard A's start after {latency:?}");

    // Cut every notification connection (both replicas'), and change the session at once on A: the notification may
    // be lost while B reconnects, and the resync after the reconnect brings the stream up to date anyway.
    let cut = examroom_store::postgres::test_cluster::cluster().cut_listeners(&url).await;
    assert!(cut >= 2, "both replicas' listeners were cut ({cut})");
    let sub = c.post(&a.url(&format!("{}/submit", session_path(&id))), &alice, json!({})).await;
    assert_eq!(sub.status, 200, "{}", sub.text);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
        match next_sse(&mut sse, left).await {
            Sse::Event { event, data, .. } if event == "status" && state(&data) == "terminated" => break,
            Sse::Event { .. } => {}
            // The stream ends after the final state's event.
            Sse::End { clean } => panic!("the stream on B ended (clean: {clean}) before it showed terminated"),
        }
    }
    // And B serves the final record.
    let done = c.get(&b.url(&session_path(&id)), &alice).await;
    assert_eq!(state(&done.body), "terminated", "{}", done.text);
    b.teardown().await;
    a.teardown().await;
}

/// The real `examroom serve` with `EXAMROOM_DATABASE=postgres://…`: sessions are in PostgreSQL (not in a SQLite file
/// of the data directory), a session made there reaches ready, and a restarted server finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_server_keeps_its_sessions_in_postgresql_across_a_restart() {
    use crate::server::{real_get, standard_exams, RealServer};
    use examroom_core::Role;
    use examroom_store::SessionStore;

    let url = examroom_store::postgres::test_cluster::cluster().fresh_database().await;
    let tmp = tempfile::Builder::new().prefix("er-pg-").tempdir_in("/tmp").unwrap();
    let (exams, logs) = (tmp.path().join("exams"), tmp.path().join("logs"));
    std::fs::create_dir_all(&exams).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    standard_exams(&exams);
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams,
        logs,
        label: crate::common::unique_label("pg"),
        secret: "postgres-test-secret-0123456789-abcdefgh".into(),
        base: String::new(),
        runs: 0,
    };
    srv.start_with_env(&[("EXAMROOM_DATABASE", url.as_str())]).await;
    let c = Client::default();
    let alice = srv.token("alice", Role::Candidate);
    let a = c.post(&srv.url(SESSIONS), &alice, json!({ "exam_id": "quick" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    let deadline = Instant::now() + Duration::from_secs(60);
    while state(&real_get(&c, &srv, &alice, &id).await) != "ready" {
        assert!(Instant::now() < deadline, "not ready within 60 s: {}", srv.stderr_tail());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!srv.data.join("examroom.db").exists(), "no SQLite store in the data directory");
    assert!(!srv.stderr().contains("postgres-test-secret"), "the token secret is not logged");
    let store = examroom_store::postgres::PgStore::connect(&url).await.unwrap();
    let stored = store.get(&id.parse().unwrap()).await.unwrap().expect("the session is in PostgreSQL");
    assert_eq!(stored.state.as_str(), "ready");
    store.close().await;

    // Restarted, the server finds it (and its environment) and serves it.
    assert!(srv.terminate().await.success());
    srv.start_with_env(&[("EXAMROOM_DATABASE", url.as_str())]).await;
    let view = real_get(&c, &srv, &alice, &id).await;
    assert_eq!(state(&view), "ready", "{view}");
    let sub = c.post(&srv.url(&format!("{}/start", session_path(&id))), &alice, json!({})).await;
    assert_eq!((sub.status, state(&sub.body)), (200, "active"), "{}", sub.text);
    srv.kill();
    srv.destroy_all();
}
