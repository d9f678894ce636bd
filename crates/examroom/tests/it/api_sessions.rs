//! The session lifecycle over the HTTP API, end to end: a real server (axum on an ephemeral port) over the real
//! session service, a real SQLite store and the real sandbox runtime. The timing assertions are the specification's
//! floors with margin (ready within 60 s, a failure visible within 10 s, inaccessible within 30 s), never the
//! measured figures.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use examroom_core::{EnvironmentId, Role};
use examroom_runtime::sandbox::{SandboxConfig, SandboxRuntime};
use examroom_runtime::{EnvironmentSpec, ExecutionRuntime};
use examroom_sessions::ServiceConfig;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::server::{
    create, events, is_final, real_get, session_path, sid, standard_exams, state, wait_for, wait_state, write_exam,
    Client, Options, RealServer, TestServer, SESSIONS,
};

const READY: Duration = Duration::from_secs(60);
const FAILURE_VISIBLE: Duration = Duration::from_secs(10);
const INACCESSIBLE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

fn env_id(v: &Value) -> String {
    v["execution_environment_id"].as_str().unwrap_or_else(|| panic!("no execution_environment_id in {v}")).to_string()
}

/// Creates a session and waits until it is ready.
async fn ready_session(c: &Client, s: &TestServer, token: &str, exam: &str) -> Value {
    let v = create(c, s, token, exam).await;
    wait_state(c, s, token, &sid(&v), READY, "ready").await
}

/// Creates a session, waits for ready, starts it; returns the `active` view.
async fn active_session(c: &Client, s: &TestServer, token: &str, exam: &str) -> Value {
    let v = ready_session(c, s, token, exam).await;
    let a = c.post(&s.url(&format!("{}/start", session_path(&sid(&v)))), token, json!({})).await;
    assert_eq!(a.status, 200, "start: {}", a.text);
    assert_eq!(state(&a.body), "active", "{}", a.text);
    a.body
}

/// Unix milliseconds from the API's RFC 3339 times (`2025-11-29T07:06:40.123Z`).
fn unix_ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    let num = |r: std::ops::Range<usize>| -> i64 {
        s.get(r.clone()).and_then(|x| x.parse().ok()).unwrap_or_else(|| panic!("bad time {s:?} at {r:?}"))
    };
    assert!(s.len() >= 20 && s.ends_with('Z') && &s[10..11] == "T", "not RFC 3339 UTC: {s:?}");
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    let frac = &s[19..s.len() - 1];
    let millis = if let Some(f) = frac.strip_prefix('.') {
        let digits: String = f.chars().chain(std::iter::repeat('0')).take(3).collect();
        digits.parse::<i64>().unwrap_or_else(|_| panic!("bad fraction in {s:?}"))
    } else {
        assert!(frac.is_empty(), "bad time {s:?}");
        0
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1000) + millis
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The environment's directory in the runtime's state directory.
fn env_dir_in(sandbox_dir: &Path, label: &str, env: &str) -> PathBuf {
    sandbox_dir.join(label).join(env)
}

/// The shim's pid, from the environment's `state.json`.
fn shim_pid(env_dir: &Path) -> i32 {
    let text = std::fs::read_to_string(env_dir.join("state.json"))
        .unwrap_or_else(|e| panic!("read {}/state.json: {e}", env_dir.display()));
    let v: Value = serde_json::from_str(&text).unwrap();
    let pid = v["shim_pid"].as_i64().unwrap_or(0) as i32;
    assert!(pid > 0, "no shim_pid in {text}");
    pid
}

/// Whether a process exists and is not a zombie.
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Waits (bounded) until a process is gone; true if it went.
async fn gone_within(pid: i32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while alive(pid) {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The transitions in an events list, as (from, to).
fn transitions(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter(|e| e["kind"] == "transition")
        .map(|e| (e["from"].as_str().unwrap_or("").to_string(), e["to"].as_str().unwrap_or("").to_string()))
        .collect()
}

// --- Server-Sent Events ----------------------------------------------------------------------------------------

#[derive(Debug)]
pub(crate) enum Sse {
    Event {
        at: Instant,
        event: String,
        data: Value,
    },
    /// The stream ended (`clean`: without a transport error).
    End {
        clean: bool,
    },
}

/// Opens the status stream and reads it in a task; events arrive on the channel, then `End`.
pub(crate) async fn open_status_stream(url: String, token: String) -> tokio::sync::mpsc::UnboundedReceiver<Sse> {
    // No total timeout: the stream lives longer than a request.
    let http = reqwest::Client::builder().build().unwrap();
    let resp = http.get(&url).bearer_auth(&token).send().await.expect("open the status stream");
    assert_eq!(resp.status().as_u16(), 200, "status stream");
    let ct = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(ct.starts_with("text/event-stream"), "content-type {ct:?}");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        let clean = loop {
            match body.next().await {
                None => break true,
                Some(Err(_)) => break false,
                Some(Ok(chunk)) => {
                    buf.extend_from_slice(&chunk);
                    while let Some(pos) = buf.windows(2).position(|w| w == b"\n\n") {
                        let block: Vec<u8> = buf.drain(..pos + 2).collect();
                        let block = String::from_utf8_lossy(&block[..pos]).into_owned();
                        let (mut event, mut data) = (String::new(), String::new());
                        for line in block.lines() {
                            if let Some(v) = line.strip_prefix("event:") {
                                event = v.trim().to_string();
                            } else if let Some(v) = line.strip_prefix("data:") {
                                if !data.is_empty() {
                                    data.push('\n');
                                }
                                data.push_str(v.strip_prefix(' ').unwrap_or(v));
                            }
                        }
                        if event.is_empty() && data.is_empty() {
                            continue; // a comment or keep-alive
                        }
                        let data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                        if tx.send(Sse::Event { at: Instant::now(), event, data }).is_err() {
                            return;
                        }
                    }
                }
            }
        };
        let _ = tx.send(Sse::End { clean });
    });
    rx
}

pub(crate) async fn next_sse(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Sse>, within: Duration) -> Sse {
    match tokio::time::timeout(within, rx.recv()).await {
        Ok(Some(m)) => m,
        Ok(None) => panic!("the status stream reader went away"),
        Err(_) => panic!("no server-sent event within {within:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 1. The whole lifecycle
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_session_goes_from_start_to_verified_release() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");

    // Create: 201, a Location, the ids, and an early state.
    let a = c.post(&s.url(SESSIONS), &alice, json!({ "exam_id": "quick" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    let env = env_id(&a.body);
    let location = a.headers.get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert_eq!(location, session_path(&id));
    assert!(matches!(state(&a.body), "created" | "provisioning" | "ready"), "{}", a.text);
    assert_eq!(a.body["user_id"], "alice");
    assert_eq!(a.body["exam_id"], "quick");
    assert!(!env.is_empty() && env != id, "{}", a.text);
    // The Location leads to the session.
    let got = c.get(&s.url(&location), &alice).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(sid(&got.body), id);

    // Ready within the floor; the full duration remains while the clock has not started.
    let ready = wait_state(&c, &s, &alice, &id, READY, "ready").await;
    assert_eq!(ready["remaining_seconds"], 300, "{ready}");
    assert!(ready["ready_at"].is_string() && ready["started_at"].is_null() && ready["deadline"].is_null(), "{ready}");
    assert_eq!(env_id(&ready), env, "the environment id never changes");
    assert!(env_dir_in(&s.sandbox_dir(), &s.label, &env).is_dir(), "the environment exists while ready");

    // The status stream: a status event at connect.
    let mut sse = open_status_stream(s.url(&format!("{}/status", session_path(&id))), alice.clone()).await;
    let connected = Instant::now();
    let mut heartbeats: Vec<Instant> = Vec::new();
    match next_sse(&mut sse, Duration::from_secs(5)).await {
        Sse::Event { event, data, .. } => {
            assert_eq!(event, "status", "{data}");
            assert_eq!(state(&data), "ready", "{data}");
            assert_eq!(sid(&data), id);
        }
        other => panic!("expected a status event at connect, got {other:?}"),
    }

    // Start: active, with the clock.
    let before = now_ms();
    let st = c.post(&s.url(&format!("{}/start", session_path(&id))), &alice, json!({})).await;
    let after = now_ms();
    assert_eq!(st.status, 200, "{}", st.text);
    assert_eq!(state(&st.body), "active", "{}", st.text);
    let started = unix_ms(&st.body["started_at"]);
    let deadline = unix_ms(&st.body["deadline"]);
    assert_eq!(deadline - started, 300_000, "deadline = started_at + 300 s: {}", st.text);
    assert!(started >= before - 2_000 && started <= after + 2_000, "started_at is now: {}", st.text);
    let remaining = st.body["remaining_seconds"].as_u64().unwrap();
    assert!((295..=300).contains(&remaining), "remaining_seconds {remaining}");

    // The change to active comes on the stream (promptly; the spec says 100 ms, we allow 2 s).
    let start_sent = Instant::now();
    loop {
        match next_sse(&mut sse, Duration::from_secs(6)).await {
            Sse::Event { event, at, .. } if event == "heartbeat" => heartbeats.push(at),
            Sse::Event { event, data, at } => {
                assert_eq!(event, "status", "{data}");
                assert_eq!(state(&data), "active", "the next status event is the start: {data}");
                assert!(at - start_sent < Duration::from_secs(2), "status event {:?} after the start", at - start_sent);
                assert!(data["started_at"].is_string() && data["deadline"].is_string(), "{data}");
                break;
            }
            other => panic!("stream ended early: {other:?}"),
        }
    }

    // Heartbeats: listen for more than 5 s while active.
    while connected.elapsed() < Duration::from_millis(6_500) {
        let left = Duration::from_millis(6_500).saturating_sub(connected.elapsed());
        match tokio::time::timeout(left, sse.recv()).await {
            Err(_) => break,
            Ok(Some(Sse::Event { event, data, at })) => {
                assert_eq!(event, "heartbeat", "no change happened, yet: {event} {data}");
                assert_eq!(state(&data), "active", "{data}");
                let r = data["remaining_seconds"].as_u64().unwrap_or_else(|| panic!("heartbeat {data}"));
                assert!((290..=300).contains(&r), "heartbeat remaining_seconds {r}");
                heartbeats.push(at);
            }
            Ok(other) => panic!("stream ended early: {other:?}"),
        }
    }
    assert!(!heartbeats.is_empty(), "no heartbeat within 6.5 s");
    let slack = Duration::from_millis(5_500);
    assert!(heartbeats[0] - connected <= slack, "first heartbeat after {:?}", heartbeats[0] - connected);
    for w in heartbeats.windows(2) {
        assert!(w[1] - w[0] <= slack, "heartbeats {:?} apart", w[1] - w[0]);
    }
    let last_beat = *heartbeats.last().unwrap();
    assert!(last_beat.elapsed() <= slack + Duration::from_millis(500), "heartbeats stopped");

    // Submit: terminating, then terminated within the floor, released.
    let sub = c.post(&s.url(&format!("{}/submit", session_path(&id))), &alice, json!({})).await;
    assert_eq!(sub.status, 200, "{}", sub.text);
    assert!(matches!(state(&sub.body), "terminating" | "terminated"), "{}", sub.text);
    assert_eq!(sub.body["end_reason"], "submitted", "{}", sub.text);
    let submitted = Instant::now();

    // The stream: status events through the end, a final `terminated`, then it ends.
    let mut states = Vec::new();
    let end_clean = loop {
        match next_sse(&mut sse, INACCESSIBLE).await {
            Sse::Event { event, data, .. } => {
                if event == "status" {
                    states.push(state(&data).to_string());
                } else {
                    assert_eq!(event, "heartbeat", "{data}");
                }
            }
            Sse::End { clean } => break clean,
        }
    };
    assert!(end_clean, "the stream ended with an error");
    assert!(submitted.elapsed() < INACCESSIBLE);
    assert_eq!(states.last().map(String::as_str), Some("terminated"), "final status event: {states:?}");
    assert!(states.iter().any(|s| s == "terminating"), "the stream showed terminating: {states:?}");
    assert!(
        states.iter().all(|s| s == "terminating" || s == "terminated"),
        "only the end after the submit: {states:?}"
    );

    let end = wait_for(&c, &s, &alice, &id, INACCESSIBLE, is_final).await;
    assert_eq!(state(&end), "terminated", "{end}");
    assert_eq!(end["end_reason"], "submitted", "{end}");
    assert!(end["resources_released_at"].is_string(), "{end}");
    assert!(end["ended_at"].is_string(), "{end}");
    assert_eq!(end["remaining_seconds"], 0, "{end}");
    assert!(unix_ms(&end["resources_released_at"]) >= unix_ms(&end["ended_at"]), "{end}");
    assert!(end["failure"].is_null(), "{end}");
    assert!(!env_dir_in(&s.sandbox_dir(), &s.label, &env).exists(), "the environment {env} is gone");

    // The audit trail: the transitions in order, with progress events.
    let evs = events(&c, &s, &alice, &id).await;
    let tr = transitions(&evs);
    let to: Vec<&str> = tr.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(to, ["created", "provisioning", "ready", "active", "terminating", "terminated"], "{evs:#?}");
    for (i, (from, _)) in tr.iter().enumerate().skip(1) {
        assert_eq!(from, &tr[i - 1].1, "each transition starts where the last ended: {tr:?}");
    }
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "events are in order: {seqs:?}");
    assert!(evs.iter().any(|e| e["kind"] == "progress"), "progress events: {evs:#?}");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Fifty at once
// ---------------------------------------------------------------------------------------------------------------

/// All sessions, as a proctor sees them.
async fn all_sessions(c: &Client, s: &TestServer, proctor: &str) -> Vec<Value> {
    let a = c.get(&s.url(SESSIONS), proctor).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["sessions"].as_array().unwrap().clone()
}

/// Polls the proctor's list until every session satisfies `pred`.
async fn wait_all(c: &Client, s: &TestServer, proctor: &str, n: usize, within: Duration, pred: fn(&Value) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let list = all_sessions(c, s, proctor).await;
        if list.len() == n && list.iter().all(pred) {
            return;
        }
        if Instant::now() > deadline {
            let mut counts = std::collections::BTreeMap::new();
            for v in &list {
                *counts.entry(state(v).to_string()).or_insert(0) += 1;
            }
            let odd: Vec<&Value> = list.iter().filter(|v| !pred(v)).take(3).collect();
            panic!("not all {n} sessions got there within {within:?}: {counts:?}; e.g. {odd:#?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_candidates_at_once_each_get_their_own_environment() {
    const N: usize = 50;
    let s = TestServer::start().await;
    let c = Client::default();
    let proctor = s.proctor("p");
    let t0 = Instant::now();

    let mut tasks = Vec::new();
    for i in 0..N {
        let http = c.http.clone();
        let url = s.url(SESSIONS);
        let user = format!("cand-{i:02}");
        let token = s.candidate(&user);
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(&token).json(&json!({ "exam_id": "quick" })).send().await.unwrap();
            let status = r.status().as_u16();
            let body: Value = serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null);
            (user, token, status, body)
        }));
    }
    let mut created = Vec::new();
    for t in tasks {
        let (user, token, status, body) = t.await.unwrap();
        assert_eq!(status, 201, "{user}: {body}");
        assert_eq!(body["user_id"], user.as_str());
        created.push((user, token, sid(&body), env_id(&body)));
    }

    wait_all(&c, &s, &proctor, N, READY.saturating_sub(t0.elapsed()), |v| state(v) == "ready").await;
    let envs: std::collections::HashSet<&str> = created.iter().map(|(_, _, _, e)| e.as_str()).collect();
    assert_eq!(envs.len(), N, "every session has its own environment");
    let ids: std::collections::HashSet<&str> = created.iter().map(|(_, _, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), N);
    for (_, _, _, env) in &created {
        assert!(env_dir_in(&s.sandbox_dir(), &s.label, env).is_dir(), "environment {env} exists");
    }
    let dirs = std::fs::read_dir(s.sandbox_dir().join(&s.label)).unwrap().flatten().count();
    assert_eq!(dirs, N, "exactly one environment directory per session");

    // Ready is not active: nobody can submit yet.
    let refused = futures::future::join_all(created.iter().map(|(_, token, id, _)| {
        let c = &c;
        let url = s.url(&format!("{}/submit", session_path(id)));
        async move { c.post(&url, token, json!({})).await }
    }))
    .await;
    for a in &refused {
        assert_eq!(a.status, 409, "{}", a.text);
        assert_eq!(a.body["error"]["code"], "illegal_transition", "{}", a.text);
    }

    // Start, then submit, everyone at once.
    let ended = futures::future::join_all(created.iter().map(|(user, token, id, _)| {
        let c = &c;
        let start = s.url(&format!("{}/start", session_path(id)));
        let submit = s.url(&format!("{}/submit", session_path(id)));
        async move {
            let a = c.post(&start, token, json!({})).await;
            assert_eq!(a.status, 200, "{user} start: {}", a.text);
            c.post(&submit, token, json!({})).await
        }
    }))
    .await;
    for a in &ended {
        assert_eq!(a.status, 200, "submit: {}", a.text);
    }
    wait_all(&c, &s, &proctor, N, Duration::from_secs(60), |v| {
        state(v) == "terminated" && v["end_reason"] == "submitted" && v["resources_released_at"].is_string()
    })
    .await;
    let left = std::fs::read_dir(s.sandbox_dir().join(&s.label)).unwrap().flatten().count();
    assert_eq!(left, 0, "every environment was released");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. One candidate, ten racing creates
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_candidate_racing_ten_creates_gets_one_session() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (http, url, token) = (c.http.clone(), s.url(SESSIONS), alice.clone());
        tasks.push(tokio::spawn(async move {
            let r = http.post(url).bearer_auth(&token).json(&json!({ "exam_id": "quick" })).send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, serde_json::from_str::<Value>(&text).unwrap_or(Value::Null), text)
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    let created: Vec<&Value> = answers.iter().filter(|a| a.0 == 201).map(|a| &a.1).collect();
    assert_eq!(created.len(), 1, "exactly one create succeeds: {answers:#?}");
    let id = sid(created[0]);
    let conflicts: Vec<&(u16, Value, String)> = answers.iter().filter(|a| a.0 != 201).collect();
    assert_eq!(conflicts.len(), 9);
    for (status, body, text) in conflicts {
        assert_eq!(*status, 409, "{text}");
        assert_eq!(body["error"]["code"], "active_session_exists", "{text}");
        assert_eq!(body["error"]["session_id"], id.as_str(), "the conflict names the live session: {text}");
        assert!(body["error"]["message"].is_string() && body["error"]["guidance"].is_string(), "{text}");
    }
    let mine = c.get(&s.url(SESSIONS), &alice).await;
    assert_eq!(mine.body["sessions"].as_array().map(Vec::len), Some(1), "{}", mine.text);

    // Let provisioning finish before the teardown destroys everything.
    wait_state(&c, &s, &alice, &id, READY, "ready").await;
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Expiry by the server's clock
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn expiry_in_real_time() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let active = active_session(&c, &s, &alice, "short").await;
    let started_at = Instant::now();
    let id = sid(&active);
    let env = env_id(&active);
    let deadline = unix_ms(&active["deadline"]);
    assert_eq!(deadline - unix_ms(&active["started_at"]), 5_000, "{active}");

    let end =
        wait_for(&c, &s, &alice, &id, Duration::from_secs(15), |v| state(v) == "terminated" || state(v) == "failed")
            .await;
    assert!(started_at.elapsed() <= Duration::from_secs(15));
    assert_eq!(state(&end), "terminated", "{end}");
    assert_eq!(end["end_reason"], "expired", "{end}");
    assert!(end["resources_released_at"].is_string(), "{end}");
    let ended = unix_ms(&end["ended_at"]);
    assert!(ended >= deadline - 1_000, "it ended {} ms before its deadline: {end}", deadline - ended);
    assert!(!env_dir_in(&s.sandbox_dir(), &s.label, &env).exists(), "the environment is gone");
    let tr = transitions(&events(&c, &s, &alice, &id).await);
    assert!(tr.contains(&("active".into(), "terminating".into())), "{tr:?}");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Start grace
// ---------------------------------------------------------------------------------------------------------------

fn grace_exams(catalog: &Path) {
    standard_exams(catalog);
    write_exam(
        catalog,
        "graceful",
        "title = \"Grace\"\ndescription = \"g\"\nduration = \"5m\"\nstart_grace = \"2s\"\n[environment]\nbase = \"host\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn start_grace_ends_a_session_never_started() {
    let s = TestServer::start_with(Options { exams: grace_exams, ..Default::default() }).await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let ready = ready_session(&c, &s, &alice, "graceful").await;
    let since_ready = Instant::now();
    let id = sid(&ready);
    let ready_at = unix_ms(&ready["ready_at"]);

    let end = wait_for(&c, &s, &alice, &id, Duration::from_secs(12), is_final).await;
    assert!(since_ready.elapsed() <= Duration::from_secs(12));
    assert_eq!(state(&end), "terminated", "{end}");
    assert_eq!(end["end_reason"], "not_started", "{end}");
    assert!(end["started_at"].is_null(), "{end}");
    assert!(end["resources_released_at"].is_string(), "{end}");
    assert!(unix_ms(&end["ended_at"]) >= ready_at + 2_000 - 1_000, "not before the grace ran out: {end}");
    assert!(!env_dir_in(&s.sandbox_dir(), &s.label, &env_id(&end)).exists(), "the environment is gone");
    let tr = transitions(&events(&c, &s, &alice, &id).await);
    assert!(tr.contains(&("ready".into(), "terminating".into())), "{tr:?}");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Provisioning failure
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioning_failure_is_visible_within_ten_seconds() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let proctor = s.proctor("p");
    let v = create(&c, &s, &alice, "broken-base").await;
    let t0 = Instant::now();
    let id = sid(&v);

    let failed = wait_for(&c, &s, &alice, &id, FAILURE_VISIBLE, is_final).await;
    assert!(t0.elapsed() <= FAILURE_VISIBLE);
    assert_eq!(state(&failed), "failed", "{failed}");
    let f = &failed["failure"];
    assert_eq!(f["code"], "provisioning_failed", "{failed}");
    assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    assert!(f["guidance"].as_str().is_some_and(|m| !m.is_empty()), "{failed}");
    assert!(f.get("detail").is_none(), "no detail for the candidate: {failed}");
    assert!(failed["resources_released_at"].is_string(), "{failed}");
    assert!(failed["end_reason"].is_null(), "{failed}");
    // No host path in what the candidate sees.
    assert!(!failed.to_string().contains("/nonexistent"), "{failed}");

    let pv = c.get(&s.url(&session_path(&id)), &proctor).await;
    assert_eq!(pv.status, 200, "{}", pv.text);
    assert!(
        pv.body["failure"]["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "the proctor sees a detail: {}",
        pv.text
    );
    assert_eq!(pv.body["failure"]["code"], "provisioning_failed");

    // The failed session is not live: a new one can start.
    let again = create(&c, &s, &alice, "quick").await;
    assert_ne!(sid(&again), id);
    wait_state(&c, &s, &alice, &sid(&again), READY, "ready").await;

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Provisioning timeout
// ---------------------------------------------------------------------------------------------------------------

fn slow_exams(catalog: &Path) {
    write_exam(
        catalog,
        "slow",
        "title = \"Slow\"\ndescription = \"s\"\nduration = \"5m\"\nprovisioning_timeout = \"2s\"\n[environment]\nbase = \"host\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn provisioning_timeout_ends_in_failed() {
    let tmp = tempfile::Builder::new().prefix("er-shim-").tempdir_in("/tmp").unwrap();
    let pids = tmp.path().join("pids");
    let script = tmp.path().join("mute-shim");
    // A shim that never answers (it records its pid so that this test can check on it and clean up after it).
    std::fs::write(&script, format!("#!/bin/sh\necho $$ >> {}\nexec sleep 60\n", pids.display())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let s = TestServer::start_with(Options {
        exams: slow_exams,
        shim_program: Some(script.clone()),
        create_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let proctor = s.proctor("p");
    let v = create(&c, &s, &alice, "slow").await;
    let t0 = Instant::now();
    let id = sid(&v);

    let failed = wait_for(&c, &s, &alice, &id, Duration::from_secs(12), is_final).await;
    assert!(t0.elapsed() <= Duration::from_secs(12));
    assert_eq!(state(&failed), "failed", "{failed}");
    assert_eq!(failed["failure"]["code"], "provisioning_timeout", "{failed}");
    assert!(failed["failure"]["guidance"].is_string(), "{failed}");
    assert!(failed["failure"].get("detail").is_none(), "{failed}");
    assert!(failed["resources_released_at"].is_string(), "{failed}");
    let pv = c.get(&s.url(&session_path(&id)), &proctor).await;
    assert!(pv.body["failure"]["detail"].is_string(), "{}", pv.text);
    assert!(!env_dir_in(&s.sandbox_dir(), &s.label, &env_id(&failed)).exists(), "the environment dir is gone");

    // The shim the runtime started must not outlive the release of the failed session.
    let started: Vec<i32> =
        std::fs::read_to_string(&pids).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
    assert!(!started.is_empty(), "the fake shim was started");
    let mut survivors = Vec::new();
    for &pid in &started {
        if !gone_within(pid, Duration::from_secs(5)).await {
            survivors.push(pid);
        }
    }
    // Clean up after ourselves whatever the outcome: these are our script's processes, by id.
    for &pid in &survivors {
        let is_ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"));
        if is_ours {
            // SAFETY: kill has no memory preconditions; the pid is the fake shim this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    s.teardown().await;
    assert!(
        survivors.is_empty(),
        "the shim process(es) {survivors:?} that provisioning started were still running after the session failed \
         with provisioning_timeout and its resources were reported released"
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 8. Proctor termination
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_proctor_terminates_with_or_without_grading() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let bob = s.candidate("bob");
    let proctor = s.proctor("p");
    let a = active_session(&c, &s, &alice, "quick").await;
    let b = ready_session(&c, &s, &bob, "quick").await;
    let (aid, bid) = (sid(&a), sid(&b));
    let term = |id: &str| s.url(&format!("{}/terminate", session_path(id)));

    // A reason is required.
    for body in [json!({ "reason": "", "grade": false }), json!({ "reason": "   " }), json!({ "grade": true })] {
        let r = c.post(&term(&aid), &proctor, body.clone()).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.body["error"]["code"], "invalid_request", "{}", r.text);
    }
    // A candidate cannot terminate.
    let r = c.post(&term(&aid), &alice, json!({ "reason": "I quit", "grade": false })).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let still = c.get(&s.url(&session_path(&aid)), &alice).await;
    assert_eq!(state(&still.body), "active", "{}", still.text);

    // Without grading, on an active session.
    let r = c.post(&term(&aid), &proctor, json!({ "reason": "cheating suspected", "grade": false })).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(matches!(state(&r.body), "terminating" | "terminated"), "{}", r.text);
    // With grading (the default), on a ready session.
    let r = c.post(&term(&bid), &proctor, json!({ "reason": "exam cancelled" })).await;
    assert_eq!(r.status, 200, "{}", r.text);

    for (id, token, reason, grade) in
        [(&aid, &alice, "cheating suspected", false), (&bid, &bob, "exam cancelled", true)]
    {
        let end = wait_for(&c, &s, token, id, INACCESSIBLE, is_final).await;
        assert_eq!(state(&end), "terminated", "{end}");
        assert_eq!(end["end_reason"], "terminated_by_proctor", "{end}");
        assert!(end["resources_released_at"].is_string(), "{end}");
        assert!(!env_dir_in(&s.sandbox_dir(), &s.label, &env_id(&end)).exists(), "environment gone");
        let evs = events(&c, &s, &proctor, id).await;
        let action = evs
            .iter()
            .find(|e| e["kind"] == "proctor_action")
            .unwrap_or_else(|| panic!("no proctor_action event: {evs:#?}"));
        assert_eq!(action["reason"], reason, "{action}");
        assert_eq!(action["actor"], "proctor:p", "{action}");
        assert_eq!(action["data"]["grade"], grade, "{action}");
        // The owner sees the same trail.
        let own = events(&c, &s, token, id).await;
        assert!(own.iter().any(|e| e["kind"] == "proctor_action"), "{own:#?}");
    }
    // Terminating an ended session is refused.
    let r = c.post(&term(&aid), &proctor, json!({ "reason": "again", "grade": false })).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.body["error"]["code"], "illegal_transition", "{}", r.text);

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 9. Illegal transitions
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn illegal_transitions_are_refused() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let ready = ready_session(&c, &s, &alice, "quick").await;
    let id = sid(&ready);
    let start = s.url(&format!("{}/start", session_path(&id)));
    let submit = s.url(&format!("{}/submit", session_path(&id)));
    let illegal = |a: &crate::server::Answer, what: &str| {
        assert_eq!(a.status, 409, "{what}: {}", a.text);
        assert_eq!(a.body["error"]["code"], "illegal_transition", "{what}: {}", a.text);
        assert!(a.body["error"]["guidance"].is_string(), "{what}: {}", a.text);
    };

    illegal(&c.post(&submit, &alice, json!({})).await, "submit while ready");
    let still = c.get(&s.url(&session_path(&id)), &alice).await;
    assert_eq!(state(&still.body), "ready", "a refused submit changes nothing: {}", still.text);

    let first = c.post(&start, &alice, json!({})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let second = c.post(&start, &alice, json!({})).await;
    illegal(&second, "start twice");
    let now = c.get(&s.url(&session_path(&id)), &alice).await;
    assert_eq!(now.body["started_at"], first.body["started_at"], "a second start does not move the clock");
    assert_eq!(now.body["deadline"], first.body["deadline"]);

    let sub = c.post(&submit, &alice, json!({})).await;
    assert_eq!(sub.status, 200, "{}", sub.text);
    illegal(&c.post(&submit, &alice, json!({})).await, "submit twice");
    let end = wait_for(&c, &s, &alice, &id, INACCESSIBLE, is_final).await;
    assert_eq!(state(&end), "terminated", "{end}");
    illegal(&c.post(&start, &alice, json!({})).await, "start after the end");
    illegal(&c.post(&submit, &alice, json!({})).await, "submit after the end");
    let after = c.get(&s.url(&session_path(&id)), &alice).await;
    assert_eq!(after.body, end, "nothing changes after the end");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 10. SIGKILL of the real server
// ---------------------------------------------------------------------------------------------------------------

async fn real_wait(
    c: &Client,
    srv: &RealServer,
    token: &str,
    id: &str,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let v = real_get(c, srv, token, id).await;
        if pred(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "session {id}: not there within {within:?}; last {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn real_post(c: &Client, srv: &RealServer, token: &str, path: &str, body: Value, want: u16) -> Value {
    let a = c.post(&srv.url(path), token, body).await;
    assert_eq!(a.status, want, "POST {path}: {}", a.text);
    a.body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_server_survives_sigkill_and_keeps_every_session() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-kill-").tempdir_in("/tmp").unwrap();
    let exams = tmp.path().join("exams");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&exams).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    standard_exams(&exams);
    write_exam(
        &exams,
        "four",
        "title = \"Four\"\ndescription = \"f\"\nduration = \"4s\"\n[environment]\nbase = \"host\"\n",
    );
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams,
        logs,
        label: crate::common::unique_label("kill"),
        secret: "kill-test-secret-0123456789-abcdefghijkl".into(),
        base: String::new(),
        runs: 0,
    };
    assert_eq!(srv.secret.len(), 40);
    let c = Client::default();
    let (alice, bob, carol) =
        (srv.token("alice", Role::Candidate), srv.token("bob", Role::Candidate), srv.token("carol", Role::Candidate));

    srv.start().await;
    // A: active, 4 s. B: ready.
    let a = real_post(&c, &srv, &alice, SESSIONS, json!({ "exam_id": "four" }), 201).await;
    let b = real_post(&c, &srv, &bob, SESSIONS, json!({ "exam_id": "quick" }), 201).await;
    let (aid, bid) = (sid(&a), sid(&b));
    real_wait(&c, &srv, &alice, &aid, READY, |v| state(v) == "ready").await;
    let b_ready = real_wait(&c, &srv, &bob, &bid, READY, |v| state(v) == "ready").await;
    let a_active = real_post(&c, &srv, &alice, &format!("{}/start", session_path(&aid)), json!({}), 200).await;
    assert_eq!(state(&a_active), "active", "{a_active}");
    let a_deadline = unix_ms(&a_active["deadline"]);

    let a_dir = env_dir_in(&srv.sandbox_dir(), &srv.label, &env_id(&a));
    let b_dir = env_dir_in(&srv.sandbox_dir(), &srv.label, &env_id(&b));
    let (a_shim, b_shim) = (shim_pid(&a_dir), shim_pid(&b_dir));

    // SIGKILL: the environments live on without the server.
    srv.kill();
    assert!(alive(a_shim) && alive(b_shim), "the shims survive the server's SIGKILL");
    // A's deadline falls due while the server is down.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(now_ms() > a_deadline, "the deadline passed while the server was down");
    assert!(alive(b_shim), "B's environment still runs");

    srv.start().await;
    let restarted = Instant::now();
    // B: the same session, the same environment, still ready.
    let b_again = real_get(&c, &srv, &bob, &bid).await;
    assert_eq!(state(&b_again), "ready", "{b_again}");
    assert_eq!(env_id(&b_again), env_id(&b));
    assert_eq!(b_again["user_id"], "bob");
    assert_eq!(b_again["ready_at"], b_ready["ready_at"], "{b_again}");
    assert!(b_dir.is_dir() && alive(b_shim), "B's environment is the same one, still running");
    assert_eq!(shim_pid(&b_dir), b_shim);
    // A: expired, soon after the start.
    let a_end =
        real_wait(&c, &srv, &alice, &aid, Duration::from_secs(10), |v| matches!(state(v), "terminated" | "failed"))
            .await;
    assert!(restarted.elapsed() <= Duration::from_secs(10));
    assert_eq!(state(&a_end), "terminated", "{a_end}");
    assert_eq!(a_end["end_reason"], "expired", "{a_end}");
    assert!(a_end["resources_released_at"].is_string(), "{a_end}");
    assert!(unix_ms(&a_end["ended_at"]) >= a_deadline - 1_000, "{a_end}");
    assert!(!a_dir.exists(), "A's environment is released");
    assert!(gone_within(a_shim, Duration::from_secs(5)).await, "A's shim is gone");
    // The candidate's list still holds B, once.
    let list = c.get(&srv.url(SESSIONS), &bob).await;
    assert_eq!(list.body["sessions"].as_array().map(Vec::len), Some(1), "{}", list.text);

    // End B through the API.
    real_post(&c, &srv, &bob, &format!("{}/start", session_path(&bid)), json!({}), 200).await;
    real_post(&c, &srv, &bob, &format!("{}/submit", session_path(&bid)), json!({}), 200).await;
    let b_end = real_wait(&c, &srv, &bob, &bid, INACCESSIBLE, |v| matches!(state(v), "terminated" | "failed")).await;
    assert_eq!(state(&b_end), "terminated", "{b_end}");
    assert_eq!(b_end["end_reason"], "submitted", "{b_end}");
    assert!(!b_dir.exists(), "B's environment is released");

    // SIGTERM stops the server but never its environments: C stays ready through it.
    let cs = real_post(&c, &srv, &carol, SESSIONS, json!({ "exam_id": "quick" }), 201).await;
    let cid = sid(&cs);
    real_wait(&c, &srv, &carol, &cid, READY, |v| state(v) == "ready").await;
    let c_dir = env_dir_in(&srv.sandbox_dir(), &srv.label, &env_id(&cs));
    let c_shim = shim_pid(&c_dir);
    // An open status stream (it never ends by itself) must not hold the shutdown up.
    let stream =
        c.http.get(srv.url(&format!("{}/status", session_path(&cid)))).bearer_auth(&carol).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let st = srv.terminate().await;
    drop(stream);
    assert!(st.success(), "a clean exit on SIGTERM: {st}; {}", srv.stderr_tail());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(c_dir.is_dir() && alive(c_shim), "SIGTERM did not destroy C's environment");
    srv.start().await;
    let c_again = real_get(&c, &srv, &carol, &cid).await;
    assert_eq!(state(&c_again), "ready", "{c_again}");
    assert!(c_dir.is_dir() && alive(c_shim) && shim_pid(&c_dir) == c_shim, "C's environment survived the restart");

    // Clean up: kill the server, destroy what is left, check nothing leaked.
    srv.kill();
    srv.destroy_all();
    crate::common::assert_no_leaks(&srv.label, &srv.sandbox_dir()).await;
}

// ---------------------------------------------------------------------------------------------------------------
// 11. The reconciler
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_reconciler_destroys_orphans_and_fails_lost_sessions() {
    // No periodic pass during the test: every pass is the test's.
    let service = ServiceConfig { reconcile_interval: Duration::from_secs(3600), ..ServiceConfig::default() };
    let s = TestServer::start_with(Options { service, ..Default::default() }).await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let proctor = s.proctor("p");

    // (a) An environment that no session owns.
    let mut cfg = SandboxConfig::new(s.sandbox_dir(), &s.label);
    cfg.shim_program = crate::common::shim_program();
    let other = SandboxRuntime::new(cfg).unwrap();
    let orphan = EnvironmentId::new_v4();
    other.create(EnvironmentSpec::new(orphan)).await.expect("create an orphan");
    let orphan_dir = env_dir_in(&s.sandbox_dir(), &s.label, &orphan.to_string());
    assert!(orphan_dir.is_dir());
    let orphan_shim = shim_pid(&orphan_dir);
    let report = s.state.svc.reconcile_once().await;
    assert_eq!(report.orphans, 1, "{report:?}");
    assert_eq!(report.lost, 0, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    assert!(!orphan_dir.exists(), "the orphan is destroyed");
    assert!(gone_within(orphan_shim, Duration::from_secs(5)).await, "the orphan's shim is gone");

    // (b) A ready session whose environment dies.
    let ready = ready_session(&c, &s, &alice, "quick").await;
    let id = sid(&ready);
    let dir = env_dir_in(&s.sandbox_dir(), &s.label, &env_id(&ready));
    let pid = shim_pid(&dir);
    // SAFETY: kill has no memory preconditions; the pid is this test's environment's shim.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    assert!(gone_within(pid, Duration::from_secs(5)).await, "the shim died");
    // A pass finds it (the provisioning task may still hold the session for a moment after `ready`).
    let mut lost = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while lost == 0 && Instant::now() < deadline {
        let report = s.state.svc.reconcile_once().await;
        assert_eq!(report.orphans, 0, "{report:?}");
        lost += report.lost;
        if lost == 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(lost, 1, "the reconciler failed the session");
    let failed = wait_for(&c, &s, &alice, &id, FAILURE_VISIBLE, is_final).await;
    assert_eq!(state(&failed), "failed", "{failed}");
    assert_eq!(failed["failure"]["code"], "environment_lost", "{failed}");
    assert!(failed["failure"].get("detail").is_none(), "{failed}");
    assert!(failed["resources_released_at"].is_string(), "{failed}");
    assert!(!dir.exists(), "the lost environment's remains are removed");
    let pv = c.get(&s.url(&session_path(&id)), &proctor).await;
    assert!(pv.body["failure"]["detail"].is_string(), "{}", pv.text);
    let tr = transitions(&events(&c, &s, &alice, &id).await);
    assert!(tr.contains(&("ready".into(), "failed".into())), "{tr:?}");
    // The candidate may start again.
    let again = create(&c, &s, &alice, "quick").await;
    wait_state(&c, &s, &alice, &sid(&again), READY, "ready").await;

    s.teardown().await;
}
