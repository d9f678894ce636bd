//! What third-party clients see, against a real server: errors that are always the envelope (the terminal's address
//! without an upgrade, a wrong method), the security headers on every kind of answer, compression (but never of the
//! status stream), the `Origin` rule's scheme, and `/metrics` after real traffic, checked by `promtool`.

use std::io::Read;
use std::time::{Duration, Instant};

use examroom_core::Role;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{
    create, is_final, real_get, session_path, sid, standard_exams, state, wait_state, Answer, Client, RealServer,
    TestServer, SESSIONS,
};

const READY: Duration = Duration::from_secs(60);
const RANDOM_ID: &str = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Asserts `a` is the contract's error envelope with `status` and `code`.
fn assert_envelope(what: &str, a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.text);
    assert!(header(a, "content-type").starts_with("application/json"), "{what}: content-type {:?}", a.headers);
    assert_eq!(a.body["error"]["code"], code, "{what}: {}", a.text);
    for k in ["message", "guidance"] {
        assert!(a.body["error"][k].as_str().is_some_and(|s| !s.is_empty()), "{what}: no {k}: {}", a.text);
    }
}

/// A session of `quick`, ready.
async fn ready_session(c: &Client, s: &TestServer, token: &str) -> String {
    let id = sid(&create(c, s, token, "quick").await);
    wait_state(c, s, token, &id, READY, "ready").await;
    id
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Errors are envelopes: the terminal without an upgrade, wrong methods, `?state=`
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_terminal_without_an_upgrade_answers_envelopes() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice).await;
    let term = |id: &str| s.url(&format!("{}/terminal", session_path(id)));

    // Without credentials: 401, before anything else is looked at.
    let a = c.send(c.http.get(term(&id))).await;
    assert_envelope("no credentials", &a, 401, "unauthenticated");
    assert_eq!(header(&a, "www-authenticate"), "Bearer");
    // A proctor: the terminal is the candidate's.
    let a = c.get(&term(&id), &s.proctor("p")).await;
    assert_envelope("a proctor", &a, 403, "forbidden");
    // Not the caller's, or no such session: 404, the same for both.
    let bob = s.candidate("bob");
    let a = c.get(&term(&id), &bob).await;
    assert_envelope("another candidate's session", &a, 404, "session_not_found");
    let b = c.get(&term(RANDOM_ID), &bob).await;
    assert_envelope("a random id", &b, 404, "session_not_found");
    assert_eq!(a.text, b.text);
    // The owner, without an upgrade: 400, saying what to do.
    let a = c.get(&term(&id), &alice).await;
    assert_envelope("the owner without an upgrade", &a, 400, "invalid_request");
    assert!(a.text.contains("WebSocket"), "{}", a.text);
    // Nothing was attached: the clock has not started.
    let v = c.get(&s.url(&session_path(&id)), &alice).await;
    assert_eq!(state(&v.body), "ready", "{}", v.text);
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_is_405_with_allow() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let cases: [(reqwest::Method, String, &[&str]); 6] = [
        (reqwest::Method::PUT, SESSIONS.to_string(), &["GET", "POST"]),
        (reqwest::Method::DELETE, session_path(RANDOM_ID), &["GET"]),
        (reqwest::Method::GET, format!("{}/start", session_path(RANDOM_ID)), &["POST"]),
        (reqwest::Method::PATCH, "/api/v1/auth/session".into(), &["DELETE", "GET", "POST"]),
        (reqwest::Method::POST, "/healthz".into(), &["GET"]),
        (reqwest::Method::TRACE, "/metrics".into(), &["GET"]),
    ];
    for (method, path, allowed) in cases {
        let what = format!("{method} {path}");
        // With and without credentials: the method is refused before anything else.
        for token in [Some(&alice), None] {
            let mut rb = c.http.request(method.clone(), s.url(&path));
            if let Some(t) = token {
                rb = rb.bearer_auth(t);
            }
            let a = c.send(rb).await;
            assert_envelope(&what, &a, 405, "method_not_allowed");
            let allow: Vec<String> = header(&a, "allow").split(',').map(|m| m.trim().to_string()).collect();
            for m in allowed {
                assert!(allow.iter().any(|x| x == m), "{what}: Allow {allow:?} lacks {m}");
            }
            assert!(!allow.iter().any(|x| *x == method.as_str()), "{what}: Allow {allow:?}");
        }
    }
    // An address that does not exist is still 404.
    let a = c.send(c.http.put(s.url("/api/v1/nope")).bearer_auth(&alice)).await;
    assert_envelope("PUT /api/v1/nope", &a, 404, "not_found");
    s.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_state_filter_is_refused() {
    let s = TestServer::start().await;
    let c = Client::default();
    let proctor = s.proctor("p");
    for q in ["?state=", "?state=running", "?state=READY"] {
        let a = c.get(&s.url(&format!("{SESSIONS}{q}")), &proctor).await;
        assert_envelope(q, &a, 400, "invalid_request");
    }
    for q in ["", "?state=ready"] {
        let a = c.get(&s.url(&format!("{SESSIONS}{q}")), &proctor).await;
        assert_eq!(a.status, 200, "{q}: {}", a.text);
    }
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Security headers and compression
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_carries_the_security_headers() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let get = |path: &str, token: Option<&String>| {
        let rb = c.http.get(s.url(path));
        match token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    };
    let answers = [
        ("the sign-in page", c.send(get("/signin", None)).await),
        ("the sign-in script", c.send(get("/signin.js", None)).await),
        ("API JSON", c.send(get("/api/v1/exams", Some(&alice))).await),
        ("a session list", c.send(get(SESSIONS, Some(&alice))).await),
        ("the OpenAPI document", c.send(get("/api/v1/openapi.json", None)).await),
        ("health", c.send(get("/healthz", None)).await),
        ("readiness", c.send(get("/readyz", None)).await),
        ("metrics (none in this server: 404)", c.send(get("/metrics", None)).await),
        ("401", c.send(get("/api/v1/exams", None)).await),
        ("404", c.send(get("/nope", Some(&alice))).await),
        ("405", c.send(c.http.delete(s.url("/healthz"))).await),
        ("the terminal without an upgrade", c.send(get(&format!("{}/terminal", session_path(RANDOM_ID)), None)).await),
    ];
    for (what, a) in &answers {
        assert_eq!(header(a, "x-content-type-options"), "nosniff", "{what}: {:?}", a.headers);
        assert_eq!(header(a, "x-frame-options"), "DENY", "{what}: {:?}", a.headers);
        assert!(header(a, "content-security-policy").contains("frame-ancestors 'none'"), "{what}: {:?}", a.headers);
        assert_eq!(header(a, "referrer-policy"), "no-referrer", "{what}: {:?}", a.headers);
        assert!(!header(a, "cache-control").is_empty(), "{what}: {:?}", a.headers);
    }
    // JSON answers are never stored by a cache; an API answer may load nothing.
    for (what, a) in answers.iter().filter(|(_, a)| header(a, "content-type").starts_with("application/json")) {
        assert_eq!(header(a, "cache-control"), "no-store", "{what}: {:?}", a.headers);
        assert!(header(a, "content-security-policy").starts_with("default-src 'none'"), "{what}: {:?}", a.headers);
    }
    // The sign-in page: its one script from this origin, no inline script, no framing.
    let (_, page) = &answers[0];
    let csp = header(page, "content-security-policy");
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "/signin CSP: {csp}");
    assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"), "/signin CSP: {csp}");
    assert!(!page.text.contains("<script>"), "/signin has an inline script: {}", page.text);
    assert!(page.text.contains(r#"<script src="/signin.js""#), "{}", page.text);
    let (_, script) = &answers[1];
    assert_eq!(script.status, 200);
    assert!(header(script, "content-type").starts_with("text/javascript"), "{:?}", script.headers);
    assert!(script.text.contains("/api/v1/auth/session") && script.text.contains("history.replaceState"));
    s.teardown().await;
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).expect("a gzip body");
    out
}

/// The raw bytes and headers of a GET with `Accept-Encoding`.
async fn get_encoded(c: &Client, url: &str, encoding: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let r = c.http.get(url).header("accept-encoding", encoding).send().await.expect("request");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.bytes().await.expect("body").to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_compressed_but_status_streams_are_not() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let doc_url = s.url("/api/v1/openapi.json");
    let plain = c.send(c.http.get(&doc_url)).await;
    assert_eq!(plain.status, 200);
    assert!(header(&plain, "content-encoding").is_empty(), "not asked, not compressed: {:?}", plain.headers);

    let (status, h, body) = get_encoded(&c, &doc_url, "gzip").await;
    assert_eq!(status, 200);
    assert_eq!(h.get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"), "{h:?}");
    assert!(h.get("vary").is_some_and(|v| v.to_str().unwrap().to_ascii_lowercase().contains("accept-encoding")));
    assert!(body.len() * 3 < plain.text.len(), "gzip {} vs {} bytes", body.len(), plain.text.len());
    assert_eq!(gunzip(&body), plain.text.as_bytes());
    let (_, h, body) = get_encoded(&c, &doc_url, "br").await;
    assert_eq!(h.get("content-encoding").map(|v| v.to_str().unwrap()), Some("br"), "{h:?}");
    assert!(body.len() * 3 < plain.text.len(), "br {} vs {} bytes", body.len(), plain.text.len());

    // The script bundle, when the UI is built (make test builds it first).
    let dist = concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist");
    let index = std::fs::read_to_string(format!("{dist}/index.html")).unwrap_or_default();
    if let Some(asset) = index.split('"').find(|p| p.starts_with("/assets/") && p.ends_with(".js")) {
        let on_disk = std::fs::read(format!("{dist}{asset}")).unwrap();
        let (status, h, body) = get_encoded(&c, &s.url(asset), "gzip, br").await;
        assert_eq!(status, 200, "{asset}");
        assert!(h.get("content-encoding").is_some(), "{asset} is not compressed: {h:?}");
        assert!(body.len() * 2 < on_disk.len(), "{asset}: {} of {} bytes", body.len(), on_disk.len());
    }

    // The status stream: never compressed, and its events come at once.
    let id = ready_session(&c, &s, &alice).await;
    let t0 = Instant::now();
    let r = c
        .http
        .get(s.url(&format!("{}/status", session_path(&id))))
        .bearer_auth(&alice)
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("content-encoding").is_none(), "SSE compressed: {:?}", r.headers());
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let mut stream = r.bytes_stream();
    let mut seen = String::new();
    let mut first_status = None;
    while !seen.contains("event: heartbeat") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no event within 10 s; so far: {seen:?}"))
            .expect("the stream ended")
            .expect("read");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if first_status.is_none() && seen.contains("event: status") {
            first_status = Some(t0.elapsed());
        }
    }
    let first = first_status.expect("a status event before the first heartbeat");
    assert!(first < Duration::from_secs(5), "the first status event took {first:?}");
    drop(stream);
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. The Origin rule compares the scheme too
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_requests_from_another_scheme_are_refused() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let signin = c.send(c.http.post(s.url("/api/v1/auth/session")).bearer_auth(&alice)).await;
    assert_eq!(signin.status, 200, "{}", signin.text);
    let sc = header(&signin, "set-cookie");
    let cookie = sc.split(';').next().unwrap().trim().to_string();
    let https = s.base.replacen("http://", "https://", 1);
    let create = |origin: &str| {
        c.http
            .post(s.url(SESSIONS))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("x-examroom", "1")
            .json(&json!({ "exam_id": "quick" }))
    };
    // The same host and port over https is another origin: this server listens on plain http.
    let a = c.send(create(&https)).await;
    assert_envelope("an https Origin", &a, 403, "forbidden");
    let a = c.send(c.http.get(s.url(SESSIONS)).bearer_auth(&alice)).await;
    assert_eq!(a.body["sessions"], json!([]), "the refused request created nothing: {}", a.text);
    // Its own origin is accepted.
    let a = c.send(create(&s.base)).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    wait_state(&c, &s, &alice, &id, READY, "ready").await;

    // The terminal's upgrade: the same rule, as close code 4403.
    let ws_url = format!("{}{}/terminal", s.base.replacen("http", "ws", 1), session_path(&id));
    for (origin, want) in [(https.as_str(), Some(4403u16)), (s.base.as_str(), None)] {
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert("cookie", HeaderValue::from_str(&cookie).unwrap());
        req.headers_mut().insert("origin", HeaderValue::from_str(origin).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("the upgrade is accepted");
        let first = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("a first frame");
        match (first, want) {
            (Some(Ok(Message::Close(Some(f)))), Some(code)) => assert_eq!(u16::from(f.code), code, "{origin}: {f:?}"),
            (Some(Ok(Message::Text(t))), None) => assert!(t.as_str().contains("\"status\""), "{origin}: {t}"),
            (other, _) => panic!("Origin {origin}: unexpected first frame {other:?}"),
        }
        let _ = ws.close(None).await;
    }
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Metrics after real traffic, checked by promtool
// ---------------------------------------------------------------------------------------------------------------

/// `promtool check metrics` on `text`: its complaints, or None when it passes.
fn promtool(text: &str) -> Option<String> {
    use std::io::Write;
    let mut child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool ({e}): run ./scripts/install-deps.sh --conformance"));
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (!out.status.success()).then_some(said)
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Problems with the exposition beyond promtool's lint: a family without HELP, a summary, histogram buckets that
/// are not cumulative.
fn exposition_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for l in text.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            if !text.contains(&format!("# HELP {name} ")) {
                problems.push(format!("{name} has no HELP"));
            }
            if kind == "summary" {
                problems.push(format!("{name} is a summary (quantile estimates); it should be a histogram"));
            }
        }
    }
    // Buckets of one series come in ascending `le`, and their counts never go down.
    let mut last: Option<(String, f64)> = None;
    for l in text.lines().filter(|l| l.contains("_bucket{")) {
        let (series, value) = l.rsplit_once(' ').unwrap();
        // The series without its `le` label.
        let at = series.find("le=\"").unwrap_or_else(|| panic!("a bucket without le: {l}"));
        let end = at + 4 + series[at + 4..].find('"').unwrap() + 1;
        let key = format!("{}{}", series[..at].trim_end_matches(','), &series[end..]);
        let value: f64 = value.parse().unwrap();
        if let Some((k, v)) = &last {
            if *k == key && value < *v {
                problems.push(format!("bucket counts go down: {l} after {v}"));
            }
        }
        last = Some((key, value));
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_after_real_traffic_pass_promtool() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-metrics-").tempdir_in("/tmp").unwrap();
    let exams = tmp.path().join("exams");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&exams).unwrap();
    std::fs::create_dir_all(&logs).unwrap();
    standard_exams(&exams);
    let mut srv = RealServer {
        child: None,
        data: tmp.path().join("data"),
        exams,
        logs,
        label: crate::common::unique_label("metrics"),
        secret: "metrics-test-secret-0123456789-abcdefgh".into(),
        base: String::new(),
        runs: 0,
    };
    srv.start().await;
    let c = Client::default();
    let alice = srv.token("alice", Role::Candidate);
    let proctor = srv.token("p", Role::Proctor);

    // Traffic: successes, 401, 404, 405, a session, its terminal, a refused terminal.
    assert_eq!(c.send(c.http.get(srv.url("/api/v1/exams"))).await.status, 401);
    assert_eq!(c.get(&srv.url("/api/v1/exams"), &alice).await.status, 200);
    assert_eq!(c.get(&srv.url("/nope"), &alice).await.status, 404);
    assert_eq!(c.send(c.http.put(srv.url(SESSIONS)).bearer_auth(&alice)).await.status, 405);
    let a = c.post(&srv.url(SESSIONS), &alice, json!({ "exam_id": "quick" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    let deadline = Instant::now() + READY;
    while state(&real_get(&c, &srv, &alice, &id).await) != "ready" {
        assert!(Instant::now() < deadline, "not ready within {READY:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let ws_url = |id: &str| format!("{}{}/terminal", srv.base.replacen("http", "ws", 1), session_path(id));
    for (target, want_close) in [(id.as_str(), None), (RANDOM_ID, Some(4404u16))] {
        let mut req = ws_url(target).into_client_request().unwrap();
        req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {alice}")).unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("upgrade");
        let first = tokio::time::timeout(Duration::from_secs(15), ws.next()).await.expect("a first frame");
        match (first, want_close) {
            (Some(Ok(Message::Close(Some(f)))), Some(code)) => assert_eq!(u16::from(f.code), code),
            (Some(Ok(Message::Text(_))), None) => {}
            (other, _) => panic!("{target}: unexpected first frame {other:?}"),
        }
        let _ = ws.close(None).await;
        // Wait for the server's side to finish.
        let _ = tokio::time::timeout(Duration::from_secs(5), async { while ws.next().await.is_some() {} }).await;
    }

    // The WebSocket counters settle once the server has dropped both connections.
    let ws_series = [
        ("examroom_websocket_connections_opened_total{endpoint=\"terminal\"}", 2.0),
        ("examroom_websocket_connections_closed_total{endpoint=\"terminal\",code=\"client\"}", 1.0),
        ("examroom_websocket_connections_closed_total{endpoint=\"terminal\",code=\"4404\"}", 1.0),
        ("examroom_websocket_connections{endpoint=\"terminal\"}", 0.0),
    ];
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let m = c.send(c.http.get(srv.url("/metrics"))).await;
        assert_eq!(m.status, 200, "{}", m.text);
        assert!(header(&m, "content-type").starts_with("text/plain"), "{:?}", m.headers);
        if ws_series.iter().all(|(s, v)| sample(&m.text, s) == Some(*v)) || Instant::now() > deadline {
            break m.text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (series, want) in ws_series {
        assert_eq!(sample(&text, series), Some(want), "{series} in:\n{text}");
    }
    // Requests by route template (never the raw path), method and status.
    for series in [
        "examroom_http_requests_total{route=\"/api/v1/exams\",method=\"GET\",status=\"401\"}",
        "examroom_http_requests_total{route=\"/api/v1/exams\",method=\"GET\",status=\"200\"}",
        "examroom_http_requests_total{route=\"unmatched\",method=\"GET\",status=\"404\"}",
        "examroom_http_requests_total{route=\"/api/v1/sessions\",method=\"PUT\",status=\"405\"}",
        "examroom_http_requests_total{route=\"/api/v1/sessions\",method=\"POST\",status=\"201\"}",
        "examroom_http_requests_total{route=\"/api/v1/sessions/{id}\",method=\"GET\",status=\"200\"}",
        "examroom_http_requests_total{route=\"/api/v1/sessions/{id}/terminal\",method=\"GET\",status=\"101\"}",
    ] {
        assert!(sample(&text, series).is_some_and(|v| v >= 1.0), "no {series} in:\n{text}");
    }
    assert!(!text.contains(&id) && !text.contains(RANDOM_ID) && !text.contains("/nope"), "a raw path in:\n{text}");
    let route = "examroom_http_request_duration_seconds_bucket{route=\"/api/v1/sessions/{id}\",le=\"+Inf\"}";
    assert!(sample(&text, route).is_some_and(|v| v >= 1.0), "no duration histogram for sessions/{{id}}:\n{text}");
    assert!(sample(&text, "examroom_session_start_seconds_count").is_some_and(|v| v >= 1.0), "{text}");
    let problems = exposition_problems(&text);
    assert!(problems.is_empty(), "{problems:#?}\n{text}");
    if let Some(said) = promtool(&text) {
        panic!("promtool check metrics failed:\n{said}\n{text}");
    }

    // End the session, then leave nothing behind.
    let a = c.post(&srv.url(&format!("{}/terminate", session_path(&id))), &proctor, json!({ "reason": "done" })).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = real_get(&c, &srv, &alice, &id).await;
        if is_final(&v) {
            break;
        }
        assert!(Instant::now() < deadline, "not final within 60 s: {v}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    srv.kill();
    srv.destroy_all();
    crate::common::assert_no_leaks(&srv.label, &srv.sandbox_dir()).await;
}

#[test]
fn the_exposition_check_catches_what_promtool_does_not() {
    let bad = "# TYPE a_seconds summary\na_seconds{quantile=\"0\"} 0.156\na_seconds{quantile=\"0.5\"} 0.1559\n\
               # HELP b b\n# TYPE b histogram\nb_bucket{le=\"1\"} 3\nb_bucket{le=\"+Inf\"} 2\n";
    let p = exposition_problems(bad);
    assert!(p.iter().any(|p| p.contains("a_seconds has no HELP")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("summary")), "{p:?}");
    assert!(p.iter().any(|p| p.contains("go down")), "{p:?}");
    let good = "# HELP b b\n# TYPE b histogram\nb_bucket{r=\"x\",le=\"1\"} 2\nb_bucket{r=\"x\",le=\"+Inf\"} 3\n\
                b_bucket{r=\"y\",le=\"1\"} 0\nb_bucket{r=\"y\",le=\"+Inf\"} 0\n";
    assert!(exposition_problems(good).is_empty(), "{:?}", exposition_problems(good));
}
