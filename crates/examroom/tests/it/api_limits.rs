//! Limits (issue 9): header-read and idle timeouts, connection caps in all and per address, status streams per user,
//! a server out of descriptors never losing an environment, attempts at an exam and their grants, the create rate,
//! and signing out revoking the browser's cookie (also across a restart).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use examroom_api::connections::EdgeLimits;
use examroom_core::Role;
use examroom_sessions::ServiceConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::server::{
    create, is_final, session_path, sid, standard_exams, state, wait_for, wait_state, write_exam, Client, Options,
    RealServer, TestServer, SESSIONS,
};

const READY: Duration = Duration::from_secs(30);

fn addr(s: &TestServer) -> SocketAddr {
    s.base.trim_start_matches("http://").parse().unwrap()
}

/// A TCP connection to the server from `from` (any address of 127.0.0.0/8).
async fn connect_from(s: &TestServer, from: &str) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
    sock.connect(addr(s)).await.unwrap()
}

/// Whether the server closed `conn` within `within` (a read gives EOF or an error), discarding what it sent.
async fn closed_within(conn: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// Everything the server sends until it closes `conn` (bounded).
async fn read_to_close(conn: &mut TcpStream, within: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(within, conn.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP/1.1 GET of `path` on an open connection; returns the answer's head and body once complete.
async fn get_on(conn: &mut TcpStream, path: &str) -> String {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf)).await.expect("an answer").unwrap();
        assert!(n > 0, "closed before answering: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return text;
            }
        }
    }
}

/// The JSON body of a raw HTTP answer.
fn body_of(answer: &str) -> Value {
    answer.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null)
}

/// Checks that a raw answer is the refusal of a connection over a cap.
fn assert_refused(answer: &str, what: &str) {
    assert!(answer.starts_with("HTTP/1.1 503"), "{what}: {answer:?}");
    let lower = answer.to_ascii_lowercase();
    assert!(lower.contains("\r\nretry-after: 5\r\n"), "{what}: Retry-After in {answer:?}");
    let body = body_of(answer);
    assert_eq!(body["error"]["code"], "too_many_connections", "{what}: {answer:?}");
    assert!(body["error"]["guidance"].as_str().is_some_and(|g| g.contains("5 seconds")), "{what}: {answer:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Timeouts
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_and_idle_connections_are_closed_but_status_streams_are_not() {
    let limits = EdgeLimits {
        header_read_timeout: Duration::from_secs(1),
        // Longer than the status stream's heartbeat (2 s), as the server's settings insist.
        idle_timeout: Duration::from_secs(3),
        ..EdgeLimits::default()
    };
    let s = TestServer::start_with(Options { limits, ..Options::default() }).await;

    // Headers that never end: closed by the header-read timeout (1 s), not at once.
    let mut half = connect_from(&s, "127.0.0.1").await;
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t0 = Instant::now();
    assert!(!closed_within(&mut half, Duration::from_millis(300)).await, "closed before the timeout");
    assert!(closed_within(&mut half, Duration::from_secs(8)).await, "half-sent headers are held forever");
    assert!(t0.elapsed() >= Duration::from_millis(900), "closed after {:?}", t0.elapsed());

    // A connection that never sends anything: the same.
    let mut silent = connect_from(&s, "127.0.0.1").await;
    assert!(closed_within(&mut silent, Duration::from_secs(8)).await, "a silent connection is held forever");

    // A kept-alive connection after its answer: closed once idle.
    let mut kept = connect_from(&s, "127.0.0.1").await;
    let answer = get_on(&mut kept, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let answer = get_on(&mut kept, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "keep-alive works: {answer}");
    assert!(closed_within(&mut kept, Duration::from_secs(8)).await, "an idle keep-alive connection is held forever");

    // A request whose body stops coming: closed by the idle timeout (3 s), and nothing is created.
    let alice = s.candidate("alice");
    let mut stalled = connect_from(&s, "127.0.0.1").await;
    let head = format!(
        "POST {SESSIONS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {alice}\r\nContent-Type: application/json\r\n\
         Content-Length: 100\r\n\r\n{{\"exam_id\""
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut stalled, Duration::from_secs(10)).await;
    assert!(!answer.contains("201"), "a stalled body created a session: {answer}");
    let c = Client::default();
    let list = c.get(&s.url(SESSIONS), &alice).await;
    assert_eq!(list.body["sessions"].as_array().map(Vec::len), Some(0), "{}", list.text);

    // A status stream lives well past both timeouts: its heartbeats keep it busy.
    let v = create(&c, &s, &alice, "quick").await;
    let id = sid(&v);
    let http = reqwest::Client::new();
    let mut stream =
        http.get(s.url(&format!("{}/status", session_path(&id)))).bearer_auth(&alice).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    let t0 = Instant::now();
    let mut heartbeats = 0;
    while t0.elapsed() < Duration::from_secs(8) {
        let chunk = tokio::time::timeout(Duration::from_secs(5), stream.chunk()).await.expect("an event").unwrap();
        let chunk = chunk.expect("the stream was closed");
        heartbeats += String::from_utf8_lossy(&chunk).matches("event: heartbeat").count();
    }
    assert!(heartbeats >= 3, "heartbeats kept coming: {heartbeats}");
    drop(stream);
    wait_state(&c, &s, &alice, &id, READY, "ready").await;
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Connection caps
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_cap_are_answered_503_and_places_free_up() {
    let limits = EdgeLimits {
        max_connections: 6,
        max_connections_per_address: 3,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_secs(60),
        ..EdgeLimits::default()
    };
    let s = TestServer::start_with(Options { limits, ..Options::default() }).await;

    // Three idle connections from one address; the fourth from it is refused.
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(connect_from(&s, "127.0.0.1").await);
    }
    // The server admits connections as it accepts them: let it see these before the next.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from(&s, "127.0.0.1").await;
    let _ = over.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_refused(&read_to_close(&mut over, Duration::from_secs(5)).await, "the fourth from one address");

    // Another address still gets in, up to the total of six; then every address is refused.
    let mut second = Vec::new();
    for _ in 0..3 {
        second.push(connect_from(&s, "127.0.0.2").await);
    }
    let answer = get_on(&mut second[0], "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 200"), "another address is served: {answer}");
    let mut over = connect_from(&s, "127.0.0.3").await;
    assert_refused(&read_to_close(&mut over, Duration::from_secs(5)).await, "the seventh in all");

    // Closing connections frees their places.
    drop(first.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut again = connect_from(&s, "127.0.0.1").await;
        let _ = again.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
        let mut buf = [0u8; 12];
        let ok =
            tokio::time::timeout(Duration::from_secs(2), again.read_exact(&mut buf)).await.is_ok_and(|r| r.is_ok())
                && &buf == b"HTTP/1.1 200";
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the closed connection's place was not freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop((first, second));
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Status streams per user
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_holds_at_most_so_many_status_streams() {
    let limits = EdgeLimits { max_streams_per_user: 2, ..EdgeLimits::default() };
    let s = TestServer::start_with(Options { limits, ..Options::default() }).await;
    let c = Client::default();
    let (alice, proctor) = (s.candidate("alice"), s.proctor("pat"));
    let id = sid(&create(&c, &s, &alice, "quick").await);
    wait_state(&c, &s, &alice, &id, READY, "ready").await;
    let url = s.url(&format!("{}/status", session_path(&id)));
    let http = reqwest::Client::new();
    let open = |token: &str| http.get(&url).bearer_auth(token.to_string()).send();

    let one = open(&alice).await.unwrap();
    let two = open(&alice).await.unwrap();
    assert_eq!((one.status().as_u16(), two.status().as_u16()), (200, 200));
    let third = open(&alice).await.unwrap();
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("at most 2")), "{body}");
    assert!(body["error"]["guidance"].as_str().is_some_and(|g| g.contains("Close the other tabs")), "{body}");
    // Someone else is not affected.
    let theirs = open(&proctor).await.unwrap();
    assert_eq!(theirs.status(), 200);
    // A closed stream frees its place (the server sees it close at the latest with the next heartbeat).
    drop(one);
    let deadline = Instant::now() + Duration::from_secs(10);
    let again = loop {
        let r = open(&alice).await.unwrap();
        if r.status() == 200 {
            break r;
        }
        assert_eq!(r.status(), 429);
        assert!(Instant::now() < deadline, "the closed stream's place was not freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop((two, again, theirs));
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Out of descriptors: unknown, never lost
// ---------------------------------------------------------------------------------------------------------------

/// `examroom sandbox list` on the harness's environments with the descriptor limit set to `nofile`.
fn list_with_nofile(state_dir: &Path, label: &str, nofile: u64) -> (bool, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_examroom"));
    cmd.args(["sandbox", "list", "--state-dir"]).arg(state_dir).args(["--label", label]);
    // SAFETY: setrlimit is async-signal-safe and touches only the child's own limits.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit { rlim_cur: nofile, rlim_max: nofile };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().expect("run examroom sandbox list");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_out_of_descriptors_never_calls_an_environment_lost() {
    let h = crate::common::Harness::new();
    let id = h.create().await;
    let (ok, text) = list_with_nofile(&h.state_dir, &h.label, 1024);
    assert!(ok && text.contains(&id.to_string()) && text.contains("Running"), "with descriptors to spare: {text}");

    // From too few descriptors to start at all, up to enough: the answer is "running" or "out of resources",
    // never "lost".
    let mut out_of_resources = 0;
    for nofile in 3..=48 {
        let (ok, text) = list_with_nofile(&h.state_dir, &h.label, nofile);
        assert!(!text.contains("Lost"), "with {nofile} descriptors the environment was called lost: {text}");
        if text.contains("out of resources") {
            assert!(!ok, "{text}");
            out_of_resources += 1;
        }
        if ok {
            assert!(text.contains("Running"), "{nofile}: {text}");
        }
    }
    assert!(out_of_resources > 0, "no descriptor limit made the connect to the shim fail; the test proves nothing");
    // The environment itself never noticed.
    let st = examroom_runtime::ExecutionRuntime::status(&h.rt, &id).await.unwrap();
    assert_eq!(st.state, examroom_runtime::EnvironmentState::Running);
    h.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Attempts
// ---------------------------------------------------------------------------------------------------------------

fn attempts_exams(catalog: &Path) {
    standard_exams(catalog);
    let env = "[environment]\nbase = \"host\"\nmemory = \"256M\"\n";
    let task = "[[tasks]]\nid = \"t\"\ntitle = \"T\"\nprompt = \"Do it.\"\n\n[[tasks.checks]]\nid = \"c\"\n\
                description = \"done\"\nscript = \"check.sh\"\n";
    for (id, base) in [("graded", env), ("graded-broken", "[environment]\nbase = \"rootfs:/nonexistent/rootfs\"\n")] {
        write_exam(catalog, id, &format!("title = \"G\"\ndescription = \"g\"\nduration = \"5m\"\n{base}\n{task}"));
        std::fs::write(catalog.join(id).join("check.sh"), "#!/bin/sh\ntrue\n").unwrap();
    }
}

async fn attempts_of(c: &Client, s: &TestServer, token: &str, exam: &str, user: Option<&str>) -> Value {
    let q = user.map(|u| format!("?user_id={u}")).unwrap_or_default();
    let a = c.get(&s.url(&format!("/api/v1/exams/{exam}/attempts{q}")), token).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// Creates a session of `exam`, starts it, submits it and waits until it is terminated.
async fn one_attempt(c: &Client, s: &TestServer, token: &str, exam: &str) {
    let id = sid(&create(c, s, token, exam).await);
    wait_state(c, s, token, &id, READY, "ready").await;
    let a = c.post(&s.url(&format!("{}/start", session_path(&id))), token, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.post(&s.url(&format!("{}/submit", session_path(&id))), token, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    wait_state(c, s, token, &id, READY, "terminated").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn attempts_are_counted_and_a_proctor_grants_another() {
    let s = TestServer::start_with(Options { exams: attempts_exams, ..Options::default() }).await;
    let c = Client::default();
    let (alice, bob, proctor) = (s.candidate("alice"), s.candidate("bob"), s.proctor("pat"));

    // The catalog says how many attempts each exam allows.
    let a = c.get(&s.url("/api/v1/exams/graded"), &alice).await;
    assert_eq!(a.body["attempts"], 1, "{}", a.text);
    let a = c.get(&s.url("/api/v1/exams/quick"), &alice).await;
    assert_eq!(a.body["attempts"], Value::Null, "an exam without checks has no limit: {}", a.text);

    // One attempt, used: the next create is refused, saying who to ask.
    one_attempt(&c, &s, &alice, "graded").await;
    let a = c.post(&s.url(SESSIONS), &alice, json!({ "exam_id": "graded" })).await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "attempts_exhausted", "{}", a.text);
    assert_eq!(a.body["error"]["message"], "You have used 1 of 1 allowed attempts at this exam.", "{}", a.text);
    assert!(a.body["error"]["guidance"].as_str().is_some_and(|g| g.contains("proctor")), "{}", a.text);
    let mine = attempts_of(&c, &s, &alice, "graded", None).await;
    assert_eq!(
        (mine["used"].clone(), mine["allowed"].clone(), mine["remaining"].clone()),
        (json!(1), json!(1), json!(0))
    );
    assert!(mine.get("grants").is_none(), "candidates do not see the grants' trail: {mine}");

    // Candidates neither grant nor look at someone else; a proctor must name the candidate.
    let grant = json!({ "user_id": "alice", "extra": 1, "reason": "the network went down in room 2" });
    let a = c.post(&s.url("/api/v1/exams/graded/attempts"), &alice, grant.clone()).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("forbidden")), "{}", a.text);
    let a = c.get(&s.url("/api/v1/exams/graded/attempts?user_id=bob"), &alice).await;
    assert_eq!(a.status, 403, "{}", a.text);
    let a = c.get(&s.url("/api/v1/exams/graded/attempts"), &proctor).await;
    assert_eq!(a.status, 400, "{}", a.text);
    // Bad grants are refused with the reason.
    for (body, status, what) in [
        (json!({ "user_id": "alice", "extra": 0, "reason": "x" }), 400, "extra"),
        (json!({ "user_id": "alice", "reason": " " }), 400, "reason"),
        (json!({ "user_id": "not a user id!", "reason": "x" }), 400, "user_id"),
        (json!({ "user_id": "alice", "reason": "x", "more": 1 }), 400, "more"),
    ] {
        let a = c.post(&s.url("/api/v1/exams/graded/attempts"), &proctor, body).await;
        assert_eq!(a.status, status, "{what}: {}", a.text);
        assert!(a.body["error"]["message"].as_str().is_some_and(|m| m.contains(what)), "{what}: {}", a.text);
    }
    let a = c.post(&s.url("/api/v1/exams/nope/attempts"), &proctor, grant.clone()).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("exam_not_found")), "{}", a.text);
    let a = c.post(&s.url("/api/v1/exams/quick/attempts"), &proctor, grant.clone()).await;
    assert_eq!(a.status, 400, "nothing to grant on an exam without a limit: {}", a.text);

    // The proctor grants one more: recorded with who and why; alice can start again.
    let a = c.post(&s.url("/api/v1/exams/graded/attempts"), &proctor, grant).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!((a.body["allowed"].clone(), a.body["remaining"].clone()), (json!(2), json!(1)), "{}", a.text);
    let seen = attempts_of(&c, &s, &proctor, "graded", Some("alice")).await;
    let grants = seen["grants"].as_array().unwrap_or_else(|| panic!("{seen}"));
    assert_eq!(grants.len(), 1, "{seen}");
    assert_eq!(grants[0]["actor"], "proctor:pat");
    assert_eq!(grants[0]["reason"], "the network went down in room 2");
    assert_eq!(grants[0]["extra"], 1);
    one_attempt(&c, &s, &alice, "graded").await;
    let a = c.post(&s.url(SESSIONS), &alice, json!({ "exam_id": "graded" })).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (403, Some("attempts_exhausted")), "{}", a.text);
    assert_eq!(a.body["error"]["message"], "You have used 2 of 2 allowed attempts at this exam.", "{}", a.text);

    // A session that failed on our side does not use an attempt.
    for _ in 0..2 {
        let id = sid(&create(&c, &s, &bob, "graded-broken").await);
        let v = wait_for(&c, &s, &bob, &id, READY, is_final).await;
        assert_eq!(state(&v), "failed", "{v}");
    }
    let theirs = attempts_of(&c, &s, &proctor, "graded-broken", Some("bob")).await;
    assert_eq!((theirs["used"].clone(), theirs["remaining"].clone()), (json!(0), json!(1)), "{theirs}");
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creating_sessions_is_rate_limited_per_candidate() {
    let service = ServiceConfig { max_creates_per_minute: 2, ..ServiceConfig::default() };
    let s = TestServer::start_with(Options { service, ..Options::default() }).await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    // Two sessions that fail at once (their base does not exist), then the third within the minute is refused.
    for _ in 0..2 {
        let id = sid(&create(&c, &s, &alice, "broken-base").await);
        wait_for(&c, &s, &alice, &id, READY, is_final).await;
    }
    let a = c.post(&s.url(SESSIONS), &alice, json!({ "exam_id": "broken-base" })).await;
    assert_eq!(a.status, 429, "{}", a.text);
    assert_eq!(a.body["error"]["code"], "rate_limited", "{}", a.text);
    let retry: u64 = a.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok()).unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert!(a.body["error"]["guidance"].as_str().is_some_and(|g| g.contains(&format!("Wait {retry} seconds"))));
    // Other candidates are not affected, and refusals for other reasons do not count: bob makes two sessions
    // around five refused creates.
    let a = c.post(&s.url(SESSIONS), &bob, json!({ "exam_id": "nope" })).await;
    assert_eq!(a.status, 404, "{}", a.text);
    let id = sid(&create(&c, &s, &bob, "quick").await);
    for _ in 0..4 {
        let a = c.post(&s.url(SESSIONS), &bob, json!({ "exam_id": "quick" })).await;
        assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("active_session_exists")), "{}", a.text);
    }
    wait_state(&c, &s, &bob, &id, READY, "ready").await;
    for step in ["start", "submit"] {
        let a = c.post(&s.url(&format!("{}/{step}", session_path(&id))), &bob, json!({})).await;
        assert_eq!(a.status, 200, "{step}: {}", a.text);
    }
    wait_state(&c, &s, &bob, &id, READY, "terminated").await;
    let id = sid(&create(&c, &s, &bob, "quick").await);
    // Provisioning runs in the background: let it finish before the teardown destroys everything.
    wait_state(&c, &s, &bob, &id, READY, "ready").await;
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Signing out revokes the cookie
// ---------------------------------------------------------------------------------------------------------------

/// Signs in with `token` and returns the `examroom_session=<id>` pair.
async fn sign_in(http: &reqwest::Client, base: &str, token: &str) -> String {
    let r = http.post(format!("{base}/api/v1/auth/session")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let sc = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let pair = sc.split(';').next().unwrap_or("").trim().to_string();
    assert!(pair.starts_with("examroom_session=") && pair.len() > 20, "{sc}");
    assert!(!sc.contains(token), "the cookie must not hold the token: {sc}");
    pair
}

async fn whoami(http: &reqwest::Client, base: &str, cookie: &str) -> u16 {
    let r = http.get(format!("{base}/api/v1/auth/session")).header("cookie", cookie).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_revokes_the_cookie_also_after_a_restart() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-signout-").tempdir_in("/tmp").unwrap();
    let (exams, logs) = (tmp.path().join("exams"), tmp.path().join("logs"));
    std::fs::create_dir_all(&exams).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    standard_exams(&exams);
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams,
        logs,
        label: crate::common::unique_label("signout"),
        secret: "signout-test-secret-0123456789-abcdefgh".into(),
        base: String::new(),
        runs: 0,
    };
    srv.start().await;
    let http = reqwest::Client::new();
    let token = srv.token("carol", Role::Candidate);
    let (a, b) = (sign_in(&http, &srv.base, &token).await, sign_in(&http, &srv.base, &token).await);
    assert_ne!(a, b, "each sign-in is its own");
    assert_eq!(whoami(&http, &srv.base, &a).await, 200);

    // Sign out with cookie A (a cookie request that changes state carries Origin and X-Examroom).
    let r = http
        .delete(format!("{}/api/v1/auth/session", srv.base))
        .header("cookie", &a)
        .header("origin", &srv.base)
        .header("x-examroom", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let sc = r.headers().get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(sc.starts_with("examroom_session=;"), "{sc}");
    // The old cookie no longer works, for anything; the other sign-in and the token itself still do.
    assert_eq!(whoami(&http, &srv.base, &a).await, 401);
    let r = http.get(srv.url(SESSIONS)).header("cookie", &a).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated", "{body}");
    assert_eq!(whoami(&http, &srv.base, &b).await, 200);
    let r = http.get(srv.url("/api/v1/auth/session")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Signing in again with the same token works.
    let c = sign_in(&http, &srv.base, &token).await;
    assert_eq!(whoami(&http, &srv.base, &c).await, 200);

    // After a restart: still revoked; the others still signed in.
    srv.kill();
    srv.start().await;
    assert_eq!(whoami(&http, &srv.base, &a).await, 401, "the sign-out did not survive the restart");
    assert_eq!(whoami(&http, &srv.base, &b).await, 200);
    assert_eq!(whoami(&http, &srv.base, &c).await, 200);
    // A forged or stale value is refused the same way.
    assert_eq!(whoami(&http, &srv.base, &format!("examroom_session={}", "A".repeat(43))).await, 401);
    assert_eq!(whoami(&http, &srv.base, &format!("examroom_session={token}")).await, 401);

    // A new secret signs every browser out.
    srv.kill();
    srv.secret = "signout-test-secret-9876543210-zyxwvuts".into();
    srv.start().await;
    assert_eq!(whoami(&http, &srv.base, &b).await, 401, "a sign-in outlived the secret that verified it");
    srv.kill();
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Settings
// ---------------------------------------------------------------------------------------------------------------

#[test]
fn bad_limit_settings_are_refused_naming_the_setting() {
    let tmp = tempfile::tempdir().unwrap();
    for (var, value, want) in [
        ("EXAMROOM_HEADER_READ_TIMEOUT", "soon", "EXAMROOM_HEADER_READ_TIMEOUT"),
        ("EXAMROOM_IDLE_TIMEOUT", "0s", "EXAMROOM_IDLE_TIMEOUT"),
        ("EXAMROOM_MAX_CONNECTIONS", "0", "EXAMROOM_MAX_CONNECTIONS"),
        ("EXAMROOM_MAX_CONNECTIONS_PER_ADDRESS", "-3", "EXAMROOM_MAX_CONNECTIONS_PER_ADDRESS"),
        ("EXAMROOM_MAX_STREAMS_PER_USER", "many", "EXAMROOM_MAX_STREAMS_PER_USER"),
        ("EXAMROOM_MAX_CREATES_PER_MINUTE", "1.5", "EXAMROOM_MAX_CREATES_PER_MINUTE"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .arg("--exams")
            .arg(tmp.path())
            .env(var, value)
            .env_remove("EXAMROOM_CONFIG")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value} was accepted");
        assert!(err.contains(want) && err.contains(value), "{var}={value}: {err}");
    }
    // The config file's values are checked too.
    let config = tmp.path().join("examroom.toml");
    std::fs::write(&config, "idle_timeout = \"never\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_examroom"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .env_remove("EXAMROOM_IDLE_TIMEOUT")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("idle_timeout") && err.contains("never"), "{err}");
}
