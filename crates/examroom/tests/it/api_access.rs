//! The HTTP API's access rules, against a real server: who may call what ("not yours is not found", roles, token
//! refusals, the cookie's CSRF rules), the sign-in cookie, error envelopes, the OpenAPI snapshot and the health
//! endpoints. See the contract's "Identity", "Not yours is not found", "Errors" and "Endpoints".
//!
//! The big matrix collects every mismatch and reports them all at once, so that one run shows the whole picture.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use examroom_core::Role;
use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

use crate::server::{state, wait_for, Answer, Client, TestServer, SECRET};

// ---------------------------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------------------------

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The signature of `input` with `alg` (`HS256`, `HS512`; anything else: empty, as for `alg: none`).
fn signature(alg: &str, secret: &[u8], input: &str) -> String {
    match alg {
        "HS256" => {
            let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            b64(m.finalize().into_bytes())
        }
        "HS512" => {
            let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
            m.update(input.as_bytes());
            b64(m.finalize().into_bytes())
        }
        _ => String::new(),
    }
}

/// A JWT built by hand: `header` and `claims` as given, signed with `sign_alg` and `secret`.
fn jwt(header: &Value, claims: &Value, sign_alg: &str, secret: &[u8]) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let sig = signature(sign_alg, secret, &input);
    format!("{input}.{sig}")
}

fn hs256_header() -> Value {
    json!({ "alg": "HS256", "typ": "JWT" })
}

fn claims(user: &str, role: &str, exp: u64) -> Value {
    json!({ "sub": user, "role": role, "exp": exp, "iat": now_unix() })
}

/// How a request authenticates.
#[derive(Clone, Debug)]
enum Auth {
    None,
    Bearer(String),
    /// The `examroom_session` cookie (`name=value`), with an optional `Origin` and optional `X-Examroom: 1`.
    Cookie {
        cookie: String,
        origin: Option<String>,
        x_examroom: bool,
    },
}

impl Auth {
    fn bearer(t: &str) -> Auth {
        Auth::Bearer(t.to_string())
    }

    fn apply(&self, rb: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Auth::None => rb,
            Auth::Bearer(t) => rb.bearer_auth(t),
            Auth::Cookie { cookie, origin, x_examroom } => {
                let mut rb = rb.header("cookie", cookie);
                if let Some(o) = origin {
                    rb = rb.header("origin", o);
                }
                if *x_examroom {
                    rb = rb.header("x-examroom", "1");
                }
                rb
            }
        }
    }
}

/// Sends a request. An SSE answer (`text/event-stream`) is not read: its status and headers are kept and the body is
/// dropped, which closes the stream.
async fn call(c: &Client, method: &Method, url: &str, auth: &Auth, body: Option<&Value>) -> Answer {
    let mut rb = auth.apply(c.http.request(method.clone(), url));
    if let Some(b) = body {
        rb = rb.json(b);
    }
    let r = rb.send().await.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let sse = is_sse(&headers);
    let text = if sse {
        drop(r);
        String::new()
    } else {
        r.text().await.unwrap_or_default()
    };
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Answer { status, headers, body, text }
}

fn is_sse(h: &HeaderMap) -> bool {
    h.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"))
}

fn header<'a>(a: &'a Answer, name: &str) -> &'a str {
    a.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn code(a: &Answer) -> &str {
    a.body["error"]["code"].as_str().unwrap_or("")
}

/// The headers of an answer without `date` (the only header allowed to differ between identical answers).
fn headers_without_date(a: &Answer) -> HeaderMap {
    let mut h = a.headers.clone();
    h.remove("date");
    h
}

/// Why an error answer is not the contract's envelope, if it is not.
fn envelope_problem(a: &Answer) -> Option<String> {
    let Some(obj) = a.body.as_object() else {
        return Some(format!("the body is not a JSON object: {:?}", a.text));
    };
    if obj.keys().collect::<Vec<_>>() != ["error"] {
        return Some(format!("the top-level keys are not exactly [\"error\"]: {}", a.text));
    }
    let Some(inner) = obj["error"].as_object() else {
        return Some(format!("`error` is not an object: {}", a.text));
    };
    for k in ["code", "message", "guidance"] {
        if inner.get(k).and_then(Value::as_str).is_none_or(str::is_empty) {
            return Some(format!("`error.{k}` is missing or empty: {}", a.text));
        }
    }
    if let Some(k) =
        inner.keys().find(|k| !["code", "message", "guidance", "incident", "session_id"].contains(&k.as_str()))
    {
        return Some(format!("unexpected key `error.{k}`: {}", a.text));
    }
    let code = inner["code"].as_str().unwrap_or("");
    if !code.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Some(format!("the code {code:?} is not snake_case"));
    }
    for bad in ["/tmp", "/var", "/sys", "panicked"] {
        if a.text.contains(bad) {
            return Some(format!("the body contains {bad:?}: {}", a.text));
        }
    }
    if !header(a, "content-type").starts_with("application/json") {
        return Some(format!("content-type is {:?}, not application/json", header(a, "content-type")));
    }
    None
}

/// A client that collects mismatches instead of stopping at the first, and checks every error answer's envelope.
struct Probe<'a> {
    s: &'a TestServer,
    c: Client,
    problems: Vec<String>,
}

impl<'a> Probe<'a> {
    fn new(s: &'a TestServer) -> Self {
        Probe { s, c: Client::default(), problems: Vec::new() }
    }

    async fn call(&mut self, method: Method, path: &str, auth: &Auth, body: Option<&Value>) -> Answer {
        let a = call(&self.c, &method, &self.s.url(path), auth, body).await;
        if a.status >= 400 {
            if let Some(p) = envelope_problem(&a) {
                self.problems.push(format!("{method} {path} ({}): not an error envelope: {p}", a.status));
            }
        }
        a
    }

    async fn get(&mut self, path: &str, auth: &Auth) -> Answer {
        self.call(Method::GET, path, auth, None).await
    }

    async fn post(&mut self, path: &str, auth: &Auth, body: Value) -> Answer {
        self.call(Method::POST, path, auth, Some(&body)).await
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.problems.push(what());
        }
    }

    /// Expects `status` and, for errors, the error `code`.
    fn expect(&mut self, what: &str, a: &Answer, status: u16, want_code: Option<&str>) {
        let ok = a.status == status && want_code.is_none_or(|w| code(a) == w);
        self.check(ok, || {
            format!("{what}: expected {status} {}, got {} {}", want_code.unwrap_or(""), a.status, trunc(&a.text))
        });
    }

    fn finish(mut self, test: &str) {
        // One cause often shows up more than once (for example an envelope problem seen by two callers).
        let mut seen = std::collections::HashSet::new();
        self.problems.retain(|p| seen.insert(p.clone()));
        assert!(
            self.problems.is_empty(),
            "{test}: {} problem(s):\n  - {}",
            self.problems.len(),
            self.problems.join("\n  - ")
        );
    }
}

fn trunc(s: &str) -> String {
    if s.len() > 300 {
        format!("{}…", &s[..s.char_indices().take_while(|(i, _)| *i < 300).last().map_or(0, |(i, c)| i + c.len_utf8())])
    } else {
        s.to_string()
    }
}

/// Every endpoint that takes a session id: (method, suffix after `/api/v1/sessions/{id}`, body).
fn id_endpoints() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "", None),
        (Method::GET, "/status", None),
        (Method::GET, "/events", None),
        (Method::GET, "/tasks", None),
        (Method::POST, "/start", None),
        (Method::POST, "/submit", None),
        (Method::POST, "/terminate", Some(json!({ "reason": "x", "grade": false }))),
    ]
}

/// The endpoints without a session id: (method, path, body).
fn idless_endpoints() -> Vec<(Method, &'static str, Option<Value>)> {
    vec![
        (Method::GET, "/api/v1/sessions", None),
        (Method::POST, "/api/v1/sessions", Some(json!({ "exam_id": "quick" }))),
        (Method::GET, "/api/v1/exams", None),
        (Method::GET, "/api/v1/exams/quick", None),
        (Method::POST, "/api/v1/auth/session", None),
        (Method::GET, "/api/v1/auth/session", None),
        (Method::DELETE, "/api/v1/auth/session", None),
    ]
}

fn session_path(id: &str, suffix: &str) -> String {
    format!("/api/v1/sessions/{id}{suffix}")
}

/// Creates a session of `quick` for the holder of `token` and waits until it is ready; returns its id.
async fn ready_session(s: &TestServer, c: &Client, token: &str) -> String {
    let a = c.post(&s.url("/api/v1/sessions"), token, json!({ "exam_id": "quick" })).await;
    assert_eq!(a.status, 201, "create: {}", a.text);
    let id = a.body["exam_session_id"].as_str().expect("exam_session_id").to_string();
    assert_eq!(header(&a, "location"), format!("/api/v1/sessions/{id}"));
    id
}

/// `examroom_session=<token>` from a sign-in answer's `Set-Cookie`.
fn cookie_pair(a: &Answer) -> String {
    let sc = header(a, "set-cookie");
    let pair = sc.split(';').next().unwrap_or("").trim().to_string();
    assert!(pair.starts_with("examroom_session=") && pair.len() > "examroom_session=".len(), "set-cookie: {sc:?}");
    pair
}

/// The ids of a `{"sessions": [...]}` answer.
fn listed_ids(a: &Answer) -> Vec<String> {
    a.body["sessions"]
        .as_array()
        .map(|v| v.iter().filter_map(|s| s["exam_session_id"].as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Who may call what
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn access_control_matrix() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice_t = s.candidate("alice");
    let bob_t = s.candidate("bob");
    let proctor_t = s.proctor("p");
    let alice = Auth::bearer(&alice_t);
    let bob = Auth::bearer(&bob_t);
    let proctor = Auth::bearer(&proctor_t);

    // Two ready sessions, one per candidate (provisioning runs concurrently).
    let a_id = ready_session(&s, &c, &alice_t).await;
    let b_id = ready_session(&s, &c, &bob_t).await;
    let within = Duration::from_secs(25);
    wait_for(&c, &s, &alice_t, &a_id, within, |v| state(v) == "ready").await;
    wait_for(&c, &s, &bob_t, &b_id, within, |v| state(v) == "ready").await;

    let mut p = Probe::new(&s);

    // --- Sanity: the hand-built tokens are right, so the refusals below are not vacuous. ---
    let handmade = jwt(&hs256_header(), &claims("alice", "candidate", now_unix() + 600), "HS256", SECRET);
    let a = p.get(&session_path(&a_id, ""), &Auth::Bearer(handmade)).await;
    assert_eq!(
        a.status, 200,
        "a hand-built HS256 token must be accepted (the test's JWT builder is wrong?): {}",
        a.text
    );
    let a = p.get(&session_path(&b_id, ""), &bob).await;
    assert_eq!(a.status, 200, "bob reads his own session: {}", a.text);

    // --- Lists. ---
    let a = p.get("/api/v1/sessions", &alice).await;
    p.expect("alice lists", &a, 200, None);
    let ids = listed_ids(&a);
    p.check(ids == vec![a_id.clone()], || format!("alice's list must be exactly her session {a_id}: {ids:?}"));
    p.check(!a.text.contains(&b_id) && !a.text.contains("\"bob\""), || {
        format!("alice's list mentions bob: {}", a.text)
    });
    let a = p.get("/api/v1/sessions", &bob).await;
    let ids = listed_ids(&a);
    p.check(ids == vec![b_id.clone()], || format!("bob's list must be exactly his session {b_id}: {ids:?}"));
    let a = p.get("/api/v1/sessions", &proctor).await;
    p.expect("proctor lists", &a, 200, None);
    let ids = listed_ids(&a);
    p.check(ids.contains(&a_id) && ids.contains(&b_id), || format!("the proctor's list must hold both: {ids:?}"));
    let a = p.get("/api/v1/sessions?state=ready", &proctor).await;
    p.expect("proctor lists ?state=ready", &a, 200, None);
    let ids = listed_ids(&a);
    p.check(ids.contains(&a_id) && ids.contains(&b_id), || format!("?state=ready must hold both: {ids:?}"));
    let all_ready = a.body["sessions"].as_array().is_some_and(|v| v.iter().all(|s| state(s) == "ready"));
    p.check(all_ready, || format!("?state=ready lists a session in another state: {}", a.text));
    let a = p.get("/api/v1/sessions?state=active", &proctor).await;
    p.check(a.status == 200 && listed_ids(&a).is_empty(), || format!("?state=active before any start: {}", a.text));
    let a = p.get("/api/v1/sessions?state=bogus", &proctor).await;
    p.expect("proctor lists ?state=bogus", &a, 400, Some("invalid_request"));
    let a = p.get("/api/v1/sessions?state=bogus", &alice).await;
    p.expect("alice lists ?state=bogus", &a, 400, Some("invalid_request"));

    // --- Refused credentials: 401 `unauthenticated` + `WWW-Authenticate: Bearer` everywhere, all identical. ---
    let exp_future = now_unix() + 600;
    let refused: Vec<(&str, Auth)> = vec![
        ("no credentials", Auth::None),
        (
            "an expired token",
            Auth::Bearer(jwt(&hs256_header(), &claims("alice", "candidate", now_unix() - 60), "HS256", SECRET)),
        ),
        (
            "a token without exp",
            Auth::Bearer(jwt(&hs256_header(), &json!({ "sub": "alice", "role": "candidate" }), "HS256", SECRET)),
        ),
        (
            "a bad signature",
            Auth::Bearer(jwt(
                &hs256_header(),
                &claims("alice", "candidate", exp_future),
                "HS256",
                b"another-secret-another-secret-0123456789",
            )),
        ),
        ("a role changed after signing", {
            let good = s.candidate("alice");
            let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
            parts[1] = b64(claims("alice", "proctor", exp_future).to_string());
            Auth::Bearer(parts.join("."))
        }),
        (
            "alg none",
            Auth::Bearer(jwt(
                &json!({ "alg": "none", "typ": "JWT" }),
                &claims("alice", "proctor", exp_future),
                "none",
                SECRET,
            )),
        ),
        (
            "HS512 with the right secret",
            Auth::Bearer(jwt(
                &json!({ "alg": "HS512", "typ": "JWT" }),
                &claims("alice", "candidate", exp_future),
                "HS512",
                SECRET,
            )),
        ),
        ("a token that is not a JWT", Auth::Bearer("not.a.jwt".to_string())),
        (
            "an expired cookie (with Origin and X-Examroom)",
            Auth::Cookie {
                cookie: format!(
                    "examroom_session={}",
                    jwt(&hs256_header(), &claims("alice", "candidate", now_unix() - 60), "HS256", SECRET)
                ),
                origin: Some(s.base.clone()),
                x_examroom: true,
            },
        ),
    ];
    let mut reference_401: Option<Answer> = None;
    let mut targets: Vec<(Method, String, Option<Value>)> =
        id_endpoints().into_iter().map(|(m, suf, b)| (m, session_path(&a_id, suf), b)).collect();
    targets.extend(idless_endpoints().into_iter().map(|(m, path, b)| (m, path.to_string(), b)));
    for (what, auth) in &refused {
        for (m, path, body) in &targets {
            let a = p.call(m.clone(), path, auth, body.as_ref()).await;
            let ctx = format!("{m} {path} with {what}");
            p.expect(&ctx, &a, 401, Some("unauthenticated"));
            p.check(header(&a, "www-authenticate") == "Bearer", || {
                format!("{ctx}: WWW-Authenticate is {:?}", header(&a, "www-authenticate"))
            });
            p.check(header(&a, "set-cookie").is_empty(), || format!("{ctx}: a refused request sets a cookie"));
            match &reference_401 {
                None => reference_401 = Some(a),
                Some(r) => {
                    p.check(r.text == a.text, || format!("{ctx}: the 401 body differs: {} vs {}", a.text, r.text));
                    p.check(headers_without_date(r) == headers_without_date(&a), || {
                        format!("{ctx}: the 401 headers differ: {:?} vs {:?}", a.headers, r.headers)
                    });
                }
            }
        }
    }
    // None of that changed anything.
    let a = p.get(&session_path(&a_id, ""), &alice).await;
    p.check(state(&a.body) == "ready", || format!("refused requests changed alice's session: {}", a.text));
    let a = p.get("/api/v1/sessions", &alice).await;
    p.check(listed_ids(&a).len() == 1, || format!("a refused create made a session: {}", a.text));

    // --- Not yours is not found: bob's session, a random id and malformed ids answer identically. ---
    let random = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b".to_string();
    let others: Vec<(&str, String)> = vec![
        ("bob's session", b_id.clone()),
        ("bob's session, upper case", b_id.to_uppercase()),
        ("not-a-uuid", "not-a-uuid".to_string()),
        ("../etc", "..%2Fetc".to_string()),
        ("a 300-character id", "a".repeat(300)),
        ("a NUL byte", "%00".to_string()),
        ("a byte that is not UTF-8", "%FF".to_string()),
    ];
    for (m, suffix, body) in id_endpoints() {
        let reference = p.call(m.clone(), &session_path(&random, suffix), &alice, body.as_ref()).await;
        let ctx = format!("alice: {m} /api/v1/sessions/<random uuid>{suffix}");
        if suffix == "/terminate" {
            // A candidate may never terminate: the role is refused before any lookup, so the answer cannot depend
            // on the target. (It is still the same for every target, checked below.)
            p.expect(&ctx, &reference, 403, Some("forbidden"));
        } else {
            p.expect(&ctx, &reference, 404, Some("session_not_found"));
        }
        for (what, id) in &others {
            let a = p.call(m.clone(), &session_path(id, suffix), &alice, body.as_ref()).await;
            let ctx = format!("alice: {m} /api/v1/sessions/{{{what}}}{suffix}");
            p.check(a.status == reference.status && a.text == reference.text, || {
                format!(
                    "{ctx}: differs from a random id: {} {} vs {} {}",
                    a.status,
                    trunc(&a.text),
                    reference.status,
                    trunc(&reference.text)
                )
            });
            p.check(headers_without_date(&a) == headers_without_date(&reference), || {
                format!("{ctx}: headers differ from a random id: {:?} vs {:?}", a.headers, reference.headers)
            });
        }
        // The cookie gets the same answer as the bearer (GETs need no CSRF headers; the rest get them).
        let cookie_auth = |cookie: String| Auth::Cookie { cookie, origin: Some(s.base.clone()), x_examroom: true };
        let signin = p.call(Method::POST, "/api/v1/auth/session", &alice, None).await;
        let a =
            p.call(m.clone(), &session_path(&b_id, suffix), &cookie_auth(cookie_pair(&signin)), body.as_ref()).await;
        p.check(a.text == reference.text && headers_without_date(&a) == headers_without_date(&reference), || {
            format!(
                "alice's cookie: {m} bob's session{suffix}: differs from a random id with a bearer: {} {}",
                a.status, a.text
            )
        });
        // Proctors look up by id: a random or malformed id is not found.
        if m == Method::GET || suffix == "/terminate" {
            let pr = p.call(m.clone(), &session_path(&random, suffix), &proctor, body.as_ref()).await;
            p.expect(&format!("proctor: {m} <random uuid>{suffix}"), &pr, 404, Some("session_not_found"));
            for id in ["not-a-uuid", "..%2Fetc", "%FF"] {
                let a = p.call(m.clone(), &session_path(id, suffix), &proctor, body.as_ref()).await;
                p.check(a.text == pr.text && headers_without_date(&a) == headers_without_date(&pr), || {
                    format!("proctor: {m} {id}{suffix}: differs from a random id: {} {}", a.status, trunc(&a.text))
                });
            }
        }
    }
    // Nothing of that touched bob's session.
    let a = p.get(&session_path(&b_id, ""), &bob).await;
    p.check(state(&a.body) == "ready", || format!("alice's requests changed bob's session: {}", a.text));

    // --- Alice on her own session (ready). ---
    let a = p.get(&session_path(&a_id, ""), &alice).await;
    p.expect("alice GET own", &a, 200, None);
    p.check(a.body["user_id"] == "alice" && a.body["exam_session_id"] == a_id.as_str(), || {
        format!("alice GET own: {}", a.text)
    });
    let a = p.get(&session_path(&a_id.to_uppercase(), ""), &alice).await;
    p.expect("alice GET own (upper-case id)", &a, 200, None);
    let a = p.get(&session_path(&a_id, "/status"), &alice).await;
    p.expect("alice GET own /status", &a, 200, None);
    p.check(is_sse(&a.headers), || format!("alice /status content-type: {:?}", header(&a, "content-type")));
    let a = p.get(&session_path(&a_id, "/events"), &alice).await;
    p.expect("alice GET own /events", &a, 200, None);
    p.check(a.body["events"].as_array().is_some_and(|e| !e.is_empty()), || format!("alice /events: {}", a.text));
    let a = p.get(&session_path(&a_id, "/tasks"), &alice).await;
    p.expect("alice GET own /tasks", &a, 200, None);
    p.check(a.body["tasks"].is_array(), || format!("alice /tasks: {}", a.text));
    let a = p.post(&session_path(&a_id, "/submit"), &alice, json!({})).await;
    p.expect("alice submits a ready session", &a, 409, Some("illegal_transition"));
    let a = p.post(&session_path(&a_id, "/terminate"), &alice, json!({ "reason": "x", "grade": false })).await;
    p.expect("alice terminates her own session", &a, 403, Some("forbidden"));
    let a = p.post("/api/v1/sessions", &alice, json!({ "exam_id": "quick" })).await;
    p.expect("alice creates a second session", &a, 409, Some("active_session_exists"));
    p.check(a.body["error"]["session_id"] == a_id.as_str(), || format!("409 must name the live session: {}", a.text));
    let a = p.get("/api/v1/exams", &alice).await;
    p.expect("alice GET /exams", &a, 200, None);
    let listed = a.body["exams"].as_array().is_some_and(|v| v.iter().any(|e| e["id"] == "quick"));
    p.check(listed, || format!("the catalog lacks quick: {}", a.text));
    let a = p.get("/api/v1/exams/quick", &alice).await;
    p.expect("alice GET /exams/quick", &a, 200, None);
    p.check(a.body["duration_seconds"] == 300 && a.body["title"] == "Quick" && a.body.get("tasks").is_none(), || {
        format!("GET /exams/quick: {}", a.text)
    });
    let a = p.call(Method::POST, "/api/v1/auth/session", &alice, None).await;
    p.expect("alice signs in", &a, 200, None);
    let a = p.get("/api/v1/auth/session", &alice).await;
    p.expect("alice asks who she is", &a, 200, None);
    p.check(a.body["role"] == "candidate" && a.body["user_id"].is_string(), || {
        format!("GET /auth/session: {}", a.text)
    });
    let a = p.get("/api/v1/auth/session", &proctor).await;
    p.expect("the proctor asks who they are", &a, 200, None);
    p.check(a.body["role"] == "proctor", || format!("GET /auth/session as proctor: {}", a.text));
    let a = p.call(Method::DELETE, "/api/v1/auth/session", &alice, None).await;
    p.expect("alice signs out with a bearer (no CSRF rules for bearers)", &a, 204, None);

    // --- The proctor. ---
    for suffix in ["", "/status", "/events", "/tasks"] {
        for id in [&a_id, &b_id] {
            let a = p.get(&session_path(id, suffix), &proctor).await;
            p.expect(&format!("proctor GET {id}{suffix}"), &a, 200, None);
        }
    }
    let a = p.post("/api/v1/sessions", &proctor, json!({ "exam_id": "quick" })).await;
    p.expect("proctor creates a session", &a, 403, Some("forbidden"));
    let a = p.post(&session_path(&a_id, "/start"), &proctor, json!({})).await;
    p.expect("proctor starts alice's session", &a, 403, Some("forbidden"));
    let a = p.post(&session_path(&a_id, "/submit"), &proctor, json!({})).await;
    p.expect("proctor submits alice's session", &a, 403, Some("forbidden"));
    let a = p.get(&session_path(&a_id, ""), &alice).await;
    p.check(state(&a.body) == "ready", || format!("the proctor's refused start changed alice's session: {}", a.text));

    // --- Alice starts (once). ---
    let a = p.post(&session_path(&a_id, "/start"), &alice, json!({})).await;
    p.expect("alice starts", &a, 200, None);
    p.check(state(&a.body) == "active" && a.body["started_at"].is_string() && a.body["deadline"].is_string(), || {
        format!("alice starts: {}", a.text)
    });
    let a = p.post(&session_path(&a_id, "/start"), &alice, json!({})).await;
    p.expect("alice starts again", &a, 409, Some("illegal_transition"));
    let a = p.get("/api/v1/sessions?state=active", &proctor).await;
    let ids = listed_ids(&a);
    p.check(ids == vec![a_id.clone()], || format!("?state=active must be exactly alice's: {ids:?}"));

    // --- The cookie and its CSRF rules. ---
    let signin = p.call(Method::POST, "/api/v1/auth/session", &alice, None).await;
    p.expect("alice signs in", &signin, 200, None);
    let cookie = cookie_pair(&signin);
    let only_cookie = Auth::Cookie { cookie: cookie.clone(), origin: None, x_examroom: false };
    let no_x = Auth::Cookie { cookie: cookie.clone(), origin: Some(s.base.clone()), x_examroom: false };
    let evil = Auth::Cookie { cookie: cookie.clone(), origin: Some("http://evil.example".into()), x_examroom: true };
    let no_origin = Auth::Cookie { cookie: cookie.clone(), origin: None, x_examroom: true };
    let good = Auth::Cookie { cookie: cookie.clone(), origin: Some(s.base.clone()), x_examroom: true };

    let a = p.get(&session_path(&a_id, ""), &only_cookie).await;
    p.expect("GET own session with only the cookie", &a, 200, None);
    let a = p.get("/api/v1/sessions", &only_cookie).await;
    p.expect("GET /sessions with only the cookie", &a, 200, None);
    p.check(listed_ids(&a) == vec![a_id.clone()], || format!("the cookie's list: {}", a.text));
    let a = p.get(&session_path(&a_id, "/status"), &only_cookie).await;
    p.expect("GET own /status with only the cookie", &a, 200, None);

    for (what, auth) in [
        ("no X-Examroom", &no_x),
        ("a foreign Origin", &evil),
        ("no Origin", &no_origin),
        ("only the cookie", &only_cookie),
    ] {
        let a = p.post(&session_path(&a_id, "/submit"), auth, json!({})).await;
        p.expect(&format!("cookie submit with {what}"), &a, 403, Some("forbidden"));
        let a = p.post("/api/v1/sessions", auth, json!({ "exam_id": "quick" })).await;
        p.expect(&format!("cookie create with {what}"), &a, 403, Some("forbidden"));
        let a = p.call(Method::DELETE, "/api/v1/auth/session", auth, None).await;
        p.expect(&format!("cookie sign-out with {what}"), &a, 403, Some("forbidden"));
        p.check(header(&a, "set-cookie").is_empty(), || format!("a refused sign-out ({what}) clears the cookie"));
    }
    let a = p.get(&session_path(&a_id, ""), &alice).await;
    p.check(state(&a.body) == "active", || format!("refused cookie requests changed alice's session: {}", a.text));

    let a = p.post("/api/v1/sessions", &good, json!({ "exam_id": "quick" })).await;
    p.expect("cookie create with both headers (alice has a live session)", &a, 409, Some("active_session_exists"));
    let a = p.post(&session_path(&a_id, "/submit"), &good, json!({})).await;
    p.expect("cookie submit with both headers", &a, 200, None);
    p.check(matches!(state(&a.body), "terminating" | "terminated"), || format!("cookie submit: {}", a.text));
    let a = p.call(Method::DELETE, "/api/v1/auth/session", &good, None).await;
    p.expect("cookie sign-out with both headers", &a, 204, None);
    p.check(header(&a, "set-cookie").starts_with("examroom_session=;"), || {
        format!("sign-out must clear the cookie: {:?}", header(&a, "set-cookie"))
    });

    // --- The proctor terminates bob's session without grading. ---
    let a = p.post(&session_path(&b_id, "/terminate"), &proctor, json!({ "reason": "x", "grade": false })).await;
    p.expect("proctor terminates bob's session", &a, 200, None);
    p.check(matches!(state(&a.body), "terminating" | "terminated"), || format!("terminate: {}", a.text));

    // Both end cleanly.
    let v = wait_for(&c, &s, &alice_t, &a_id, within, |v| state(v) == "terminated").await;
    p.check(v["end_reason"] == "submitted", || format!("alice's end: {v}"));
    let v = wait_for(&c, &s, &proctor_t, &b_id, within, |v| state(v) == "terminated").await;
    p.check(v["end_reason"] == "terminated_by_proctor", || format!("bob's end: {v}"));
    let a = p.get(&session_path(&b_id, "/events"), &proctor).await;
    let acted = a.body["events"].as_array().is_some_and(|v| v.iter().any(|e| e["kind"] == "proctor_action"));
    p.check(acted, || format!("bob's audit trail lacks the proctor's action: {}", a.text));
    // Still not alice's, even once ended.
    let a = p.get(&session_path(&b_id, ""), &alice).await;
    p.expect("alice GET bob's ended session", &a, 404, Some("session_not_found"));

    p.finish("access_control_matrix");
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. The sign-in cookie
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_cookie_is_http_only_and_strict() {
    let s = TestServer::start().await;
    let c = Client::default();
    let ttl = 600u64;
    let token = s.token("carol", Role::Candidate, Duration::from_secs(ttl));

    let a = call(&c, &Method::POST, &s.url("/api/v1/auth/session"), &Auth::bearer(&token), None).await;
    assert_eq!(a.status, 200, "sign-in: {}", a.text);
    assert_eq!(a.body["user_id"], "carol", "{}", a.text);
    assert_eq!(a.body["role"], "candidate", "{}", a.text);
    let all: Vec<&str> = a.headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(all.len(), 1, "exactly one Set-Cookie: {all:?}");
    let sc = all[0];
    let attrs: Vec<&str> = sc.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("examroom_session=") && attrs[0].len() > 20, "{sc}");
    // The cookie names a sign-in kept by the server (so signing out can end it); it never holds the token.
    let value = &attrs[0]["examroom_session=".len()..];
    assert!(!sc.contains(&token) && value.len() == 43, "the cookie holds a sign-in id, not the token: {sc}");
    let has = |want: &str| attrs.iter().any(|a| a.eq_ignore_ascii_case(want));
    assert!(has("HttpOnly"), "HttpOnly: {sc}");
    assert!(has("SameSite=Strict"), "SameSite=Strict: {sc}");
    assert!(has("Path=/"), "Path=/: {sc}");
    assert!(!has("Secure"), "no Secure on plain HTTP (not configured): {sc}");
    assert!(!attrs.iter().any(|a| a.to_ascii_lowercase().starts_with("domain=")), "no Domain: {sc}");
    let max_age: u64 = attrs
        .iter()
        .find_map(|a| a.strip_prefix("Max-Age="))
        .unwrap_or_else(|| panic!("Max-Age: {sc}"))
        .parse()
        .unwrap_or_else(|_| panic!("Max-Age is a number: {sc}"));
    assert!(max_age <= ttl, "Max-Age {max_age} outlives the token ({ttl} s): {sc}");
    assert!(max_age >= ttl - 60, "Max-Age {max_age} is far shorter than the token ({ttl} s): {sc}");
    let pair = cookie_pair(&a);

    // The cookie authenticates a GET by itself.
    let me = Auth::Cookie { cookie: pair.clone(), origin: None, x_examroom: false };
    let a = call(&c, &Method::GET, &s.url("/api/v1/sessions"), &me, None).await;
    assert_eq!(a.status, 200, "GET with the cookie: {}", a.text);

    // Sign-in refuses a bad token and sets nothing.
    let expired = jwt(&hs256_header(), &claims("carol", "candidate", now_unix() - 5), "HS256", SECRET);
    let a = call(&c, &Method::POST, &s.url("/api/v1/auth/session"), &Auth::Bearer(expired), None).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.headers.get("set-cookie").is_none(), "a refused sign-in sets no cookie");

    // Sign-out with the cookie (and the CSRF headers) clears it.
    let good = Auth::Cookie { cookie: pair.clone(), origin: Some(s.base.clone()), x_examroom: true };
    let a = call(&c, &Method::DELETE, &s.url("/api/v1/auth/session"), &good, None).await;
    assert_eq!(a.status, 204, "sign-out: {}", a.text);
    let sc = header(&a, "set-cookie");
    let attrs: Vec<&str> = sc.split(';').map(str::trim).collect();
    assert_eq!(attrs[0], "examroom_session=", "the cleared cookie is empty: {sc}");
    let max_age_zero = attrs.contains(&"Max-Age=0");
    let expired_date = attrs.iter().any(|a| a.starts_with("Expires=") && a.contains("1970"));
    assert!(max_age_zero || expired_date, "the cleared cookie must expire now: {sc}");
    assert!(attrs.contains(&"Path=/"), "the same Path, or the browser keeps the old cookie: {sc}");

    // The sign-in page: HTML, no referrer, and never the token.
    let r = c.http.get(s.url("/signin")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let h = r.headers().clone();
    let text = r.text().await.unwrap();
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    assert!(ct.starts_with("text/html"), "content-type {ct}");
    assert_eq!(h.get("referrer-policy").and_then(|v| v.to_str().ok()), Some("no-referrer"));
    assert!(!text.contains(&token), "the page must not hold the token");
    // Even when a careless link puts the token in the query string, the page does not echo it.
    let r = c.http.get(s.url(&format!("/signin?token={token}"))).send().await.unwrap();
    let text = r.text().await.unwrap();
    assert!(!text.contains(&token), "the page must not echo a token from the query string");
    assert!(text.contains(r#"<script src="/signin.js""#), "the page loads its script: {text}");
    let script = c.http.get(s.url("/signin.js")).send().await.unwrap().text().await.unwrap();
    assert!(script.contains("/api/v1/auth/session"), "the page's script posts to the sign-in endpoint");

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Errors are envelopes
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_envelopes() {
    let s = TestServer::start().await;
    let alice_t = s.candidate("alice");
    let alice = Auth::bearer(&alice_t);
    let mut p = Probe::new(&s);

    let raw = |p: &Probe, body: &'static str| {
        p.c.http
            .post(p.s.url("/api/v1/sessions"))
            .bearer_auth(&alice_t)
            .header("content-type", "application/json")
            .body(body)
    };

    // Malformed JSON.
    let a = p.c.send(raw(&p, r#"{"exam_id": "#)).await;
    p.expect("malformed JSON", &a, 400, Some("invalid_request"));
    p.check(envelope_problem(&a).is_none(), || format!("malformed JSON: {:?}", envelope_problem(&a)));
    // Not JSON at all, an empty body, a wrong type, a missing field.
    for (what, body) in [
        ("not JSON", "exam_id=quick"),
        ("an empty body", ""),
        ("a wrong type", r#"{"exam_id": 5}"#),
        ("a missing field", r#"{}"#),
        ("an array", r#"["quick"]"#),
    ] {
        let a = p.c.send(raw(&p, body)).await;
        p.expect(what, &a, 400, Some("invalid_request"));
        p.check(envelope_problem(&a).is_none(), || format!("{what}: {:?}", envelope_problem(&a)));
    }
    // An unknown field.
    let a = p.post("/api/v1/sessions", &alice, json!({ "exam_id": "quick", "user_id": "bob" })).await;
    p.expect("unknown field", &a, 400, Some("invalid_request"));
    // An unknown exam, and an exam id that is not even valid.
    let a = p.post("/api/v1/sessions", &alice, json!({ "exam_id": "no-such-exam" })).await;
    p.expect("unknown exam", &a, 404, Some("exam_not_found"));
    let a = p.post("/api/v1/sessions", &alice, json!({ "exam_id": "../../etc/passwd" })).await;
    p.expect("an exam id with a path", &a, 404, Some("exam_not_found"));
    let a = p.get("/api/v1/exams/no-such-exam", &alice).await;
    p.expect("GET unknown exam", &a, 404, Some("exam_not_found"));
    let a = p.get("/api/v1/exams/..%2F..%2Fetc", &alice).await;
    p.expect("GET exam ../../etc", &a, 404, Some("exam_not_found"));
    // A terminate body with an unknown field (as a proctor, on a random id: the body is checked first or the id is
    // not found; either way, an envelope).
    let proctor = Auth::bearer(&s.proctor("p"));
    let a = p
        .post("/api/v1/sessions/6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b/terminate", &proctor, json!({ "why": "x" }))
        .await;
    p.check(matches!(a.status, 400 | 404), || format!("terminate with a bad body: {} {}", a.status, a.text));
    // Unknown paths, with and without credentials.
    for path in ["/nope", "/api/v1/nope", "/api/v2/sessions", "/api/v1/sessions/x/y/z", "/api/v1/exams/quick/tasks"] {
        let a = p.get(path, &alice).await;
        p.expect(&format!("GET {path}"), &a, 404, Some("not_found"));
        let a = p.get(path, &Auth::None).await;
        p.check(a.status == 404 || a.status == 401, || format!("GET {path} without a token: {} {}", a.status, a.text));
    }
    // A wrong method on a known path is an error too, and so an envelope (405, or 404 `not_found`).
    let a = p.call(Method::PUT, "/api/v1/sessions", &alice, Some(&json!({}))).await;
    p.check(matches!(a.status, 404 | 405), || format!("PUT /api/v1/sessions: {} {}", a.status, a.text));
    let a = p.get("/api/v1/sessions/6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b/start", &alice).await;
    p.check(matches!(a.status, 404 | 405), || format!("GET …/start: {} {}", a.status, a.text));
    // A query string that does not fit (the same field twice).
    let a = p.get("/api/v1/sessions?state=ready&state=active", &alice).await;
    p.expect("a repeated query field", &a, 400, Some("invalid_request"));
    // A body over the limit.
    let big = json!({ "exam_id": "x".repeat(100 * 1024) });
    let a = p.post("/api/v1/sessions", &alice, big).await;
    p.check(a.status == 413 || a.status == 400, || format!("a 100 KiB body: {} {}", a.status, trunc(&a.text)));
    // Nothing was created by any of it.
    let a = p.get("/api/v1/sessions", &alice).await;
    p.check(listed_ids(&a).is_empty(), || format!("an error created a session: {}", a.text));

    p.finish("errors_are_envelopes");
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. The OpenAPI document and its snapshot
// ---------------------------------------------------------------------------------------------------------------

const SNAPSHOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_snapshot() {
    let s = TestServer::start().await;
    let c = Client::default();
    let a = c.send(c.http.get(s.url("/api/v1/openapi.json"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(header(&a, "content-type").starts_with("application/json"), "{:?}", a.headers);
    let doc = &a.body;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "openapi: {}", doc["openapi"]);

    // Every path of the contract's endpoint table that exists (all but /terminal, /desktop and /result), with its
    // methods.
    let expected: &[(&str, &[&str])] = &[
        ("/api/v1/auth/session", &["post", "get", "delete"]),
        ("/api/v1/exams", &["get"]),
        ("/api/v1/exams/{exam_id}", &["get"]),
        ("/api/v1/exams/{exam_id}/attempts", &["get", "post"]),
        ("/api/v1/sessions", &["post", "get"]),
        ("/api/v1/sessions/{id}", &["get"]),
        ("/api/v1/sessions/{id}/status", &["get"]),
        ("/api/v1/sessions/{id}/events", &["get"]),
        ("/api/v1/sessions/{id}/tasks", &["get"]),
        ("/api/v1/sessions/{id}/desktop", &["get"]),
        ("/api/v1/sessions/{id}/ports/{port}/{path}", &["get"]),
        ("/api/v1/sessions/{id}/start", &["post"]),
        ("/api/v1/sessions/{id}/submit", &["post"]),
        ("/api/v1/sessions/{id}/terminate", &["post"]),
        ("/api/v1/sessions/{id}/workspace", &["get", "patch"]),
        ("/api/v1/sessions/{id}/terminals", &["get", "post"]),
        ("/api/v1/sessions/{id}/terminals/{name}", &["delete"]),
        ("/healthz", &["get"]),
        ("/readyz", &["get"]),
        ("/metrics", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
    ];
    let mut missing = Vec::new();
    for (path, methods) in expected {
        for m in *methods {
            if doc["paths"][path][m].is_null() {
                missing.push(format!("{} {path}", m.to_uppercase()));
            }
        }
    }
    assert!(missing.is_empty(), "the OpenAPI document lacks: {missing:?}");
    // Every session state of the contract.
    let states = doc["components"]["schemas"]["Session"]["properties"]["state"]["enum"].clone();
    for st in ["created", "provisioning", "ready", "active", "terminating", "terminated", "failed"] {
        assert!(states.as_array().is_some_and(|v| v.iter().any(|x| x == st)), "state {st} missing: {states}");
    }
    // The error codes this test file relies on are documented.
    let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"].clone();
    for code in ["session_not_found", "exam_not_found", "unauthenticated", "forbidden", "invalid_request", "not_found"]
    {
        assert!(codes.as_array().is_some_and(|v| v.iter().any(|x| x == code)), "code {code} missing: {codes}");
    }

    // The snapshot.
    let pretty = format!("{}\n", serde_json::to_string_pretty(doc).unwrap());
    if std::env::var("UPDATE_SNAPSHOTS").as_deref() == Ok("1") {
        let path = std::path::Path::new(SNAPSHOT);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, &pretty).unwrap();
        eprintln!("wrote {SNAPSHOT}");
    } else {
        let committed = std::fs::read_to_string(SNAPSHOT).unwrap_or_else(|e| {
            panic!("cannot read the snapshot {SNAPSHOT} ({e}): run with UPDATE_SNAPSHOTS=1 to write it, and review it")
        });
        if committed != pretty {
            let first = committed.lines().zip(pretty.lines()).position(|(a, b)| a != b);
            let hint = match first {
                Some(i) => format!(
                    "first difference at line {}:\n  committed: {}\n  served:    {}",
                    i + 1,
                    committed.lines().nth(i).unwrap_or(""),
                    pretty.lines().nth(i).unwrap_or("")
                ),
                None => format!("lengths differ ({} vs {} lines)", committed.lines().count(), pretty.lines().count()),
            };
            panic!(
                "the served OpenAPI document differs from docs/openapi.json; if the change is intended, run \
                 `UPDATE_SNAPSHOTS=1 cargo test --test it openapi_snapshot` and review the diff (git diff \
                 docs/openapi.json).\n{hint}"
            );
        }
    }
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Health
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness() {
    let s = TestServer::start().await;
    let c = Client::default();
    let a = c.send(c.http.get(s.url("/healthz"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.send(c.http.get(s.url("/readyz"))).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({ "status": "ready", "backends": { "sandbox": "ok" } }), "{}", a.text);
    s.teardown().await;
}
