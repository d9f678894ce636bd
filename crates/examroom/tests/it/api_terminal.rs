//! The terminal WebSocket, end to end: a real server over the real session service, SQLite and sandbox, and a real
//! WebSocket client. Replay then live, resize, notices, takeover, the ends (submit, proctor, expiry), the refusals and
//! their close codes, stalled clients, isolation under load, and a SIGKILL of the real server. The timing assertions
//! are floors with margin, never the measured figures.

use std::path::Path;
use std::time::{Duration, Instant};

use examroom_core::Role;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::server::{
    create, events, is_final, real_get, session_path, sid, standard_exams, state, wait_for, wait_state, write_exam,
    Client, Options, RealServer, TestServer, SESSIONS,
};

const READY: Duration = Duration::from_secs(60);
const INACCESSIBLE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------------------------------------------
// Session helpers
// ---------------------------------------------------------------------------------------------------------------

/// Creates a session and waits until it is ready; returns its id.
async fn ready_session(c: &Client, s: &TestServer, token: &str, exam: &str) -> String {
    let v = create(c, s, token, exam).await;
    let id = sid(&v);
    wait_state(c, s, token, &id, READY, "ready").await;
    id
}

async fn get(c: &Client, s: &TestServer, token: &str, id: &str) -> Value {
    let a = c.get(&s.url(&session_path(id)), token).await;
    assert_eq!(a.status, 200, "GET {id}: {}", a.text);
    a.body
}

// ---------------------------------------------------------------------------------------------------------------
// WebSocket helpers
// ---------------------------------------------------------------------------------------------------------------

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The credentials of an upgrade request.
#[derive(Clone, Copy)]
enum Cred<'a> {
    None,
    Bearer(&'a str),
    Cookie { cookie: &'a str, origin: Option<&'a str> },
}

fn terminal_url(base: &str, id: &str) -> String {
    format!("{}{}/terminal", base.replacen("http", "ws", 1), session_path(id))
}

/// Opens the terminal WebSocket. The upgrade itself must succeed: refusals are close codes, not HTTP statuses.
async fn open(base: &str, id: &str, cred: Cred<'_>) -> Term {
    open_url(terminal_url(base, id), id, cred).await
}

/// Opens the WebSocket of one of the session's terminals (`?terminal=NAME`; `query` as written).
async fn open_query(base: &str, id: &str, query: &str, token: &str) -> Term {
    open_url(format!("{}?{query}", terminal_url(base, id)), id, Cred::Bearer(token)).await
}

async fn open_url(url: String, id: &str, cred: Cred<'_>) -> Term {
    let mut req = url.into_client_request().unwrap();
    let h = req.headers_mut();
    match cred {
        Cred::None => {}
        Cred::Bearer(t) => {
            h.insert("authorization", HeaderValue::from_str(&format!("Bearer {t}")).unwrap());
        }
        Cred::Cookie { cookie, origin } => {
            h.insert("cookie", HeaderValue::from_str(cookie).unwrap());
            if let Some(o) = origin {
                h.insert("origin", HeaderValue::from_str(o).unwrap());
            }
        }
    }
    let ws = match tokio::time::timeout(Duration::from_secs(15), tokio_tungstenite::connect_async(req)).await {
        Err(_) => panic!("the WebSocket upgrade for {id} took more than 15 s"),
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(resp))) => {
            let body = resp.body().as_ref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default();
            panic!("the upgrade for {id} was refused with HTTP {} instead of a close code: {body}", resp.status())
        }
        Ok(Err(e)) => panic!("the WebSocket upgrade for {id} failed: {e}"),
        Ok(Ok((ws, _))) => ws,
    };
    Term { ws, out: Vec::new(), texts: Vec::new(), close: None, gone: false, log: Vec::new(), flow: None }
}

/// What arrived, in order (binary frames by length; the fields show in failure messages).
#[allow(dead_code)]
#[derive(Debug, Clone)]
enum Ev {
    Bin(usize),
    Text(Value),
    Close(u16, String),
}

/// A terminal connection and everything it has received.
struct Term {
    ws: Ws,
    /// All binary bytes received.
    out: Vec<u8>,
    /// All text frames received (parsed).
    texts: Vec<Value>,
    /// The close frame's code and reason, once received (1005 for a close without a code).
    close: Option<(u16, String)>,
    /// The stream ended (close frame, error or EOF).
    gone: bool,
    log: Vec<Ev>,
    /// With flow control: whether to acknowledge what arrives at once, and the binary bytes received and
    /// acknowledged since the connection opened.
    flow: Option<Acking>,
}

#[derive(Clone, Copy, Debug, Default)]
struct Acking {
    auto: bool,
    received: u64,
    acked: u64,
}

enum Got {
    Msg,
    Quiet,
    Gone,
}

impl Term {
    /// Reads one message (bounded).
    async fn recv(&mut self, within: Duration) -> Got {
        if self.gone {
            return Got::Gone;
        }
        match tokio::time::timeout(within, self.ws.next()).await {
            Err(_) => Got::Quiet,
            Ok(None) | Ok(Some(Err(_))) => {
                self.gone = true;
                Got::Gone
            }
            Ok(Some(Ok(m))) => {
                match m {
                    Message::Binary(b) => {
                        self.log.push(Ev::Bin(b.len()));
                        self.out.extend_from_slice(&b);
                        if let Some(f) = &mut self.flow {
                            f.received += b.len() as u64;
                            if f.auto {
                                self.ack_all().await;
                            }
                        }
                    }
                    Message::Text(t) => {
                        let v: Value = serde_json::from_str(t.as_str())
                            .unwrap_or_else(|e| panic!("a server text frame that is not JSON ({e}): {t}"));
                        self.log.push(Ev::Text(v.clone()));
                        self.texts.push(v);
                    }
                    Message::Close(f) => {
                        let (code, reason) =
                            f.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                        self.log.push(Ev::Close(code, reason.clone()));
                        self.close = Some((code, reason));
                        self.gone = true;
                        return Got::Gone;
                    }
                    _ => {}
                }
                Got::Msg
            }
        }
    }

    async fn send(&mut self, keys: &str) {
        self.send_bytes(keys.as_bytes()).await
    }

    async fn send_bytes(&mut self, keys: &[u8]) {
        tokio::time::timeout(Duration::from_secs(10), self.ws.send(Message::binary(keys.to_vec())))
            .await
            .expect("a send to the terminal took more than 10 s")
            .expect("send to the terminal");
    }

    /// Asks for flow control with a window; from here on every binary byte must be acknowledged (`auto`: as it
    /// arrives).
    async fn flow_control(&mut self, window: u64, auto: bool) {
        let frame = json!({ "type": "flow_control", "window": window }).to_string();
        self.ws.send(Message::text(frame)).await.expect("send flow_control");
        self.flow = Some(Acking { auto, ..Acking::default() });
    }

    /// Acknowledges every binary byte received so far (counted from the start of the connection).
    async fn ack_all(&mut self) {
        let f = self.flow.as_mut().expect("flow control is on");
        let n = f.received - f.acked;
        f.acked = f.received;
        if n > 0 {
            let frame = json!({ "type": "ack", "bytes": n }).to_string();
            self.ws.send(Message::text(frame)).await.expect("send ack");
        }
    }

    async fn resize(&mut self, cols: u16, rows: u16) {
        let frame = json!({ "type": "resize", "cols": cols, "rows": rows }).to_string();
        self.ws.send(Message::text(frame)).await.expect("send resize");
    }

    /// The output from byte `from` on, as text without carriage returns and escape sequences.
    fn text_from(&self, from: usize) -> String {
        clean(&self.out[from.min(self.out.len())..])
    }

    fn tail(&self, n: usize) -> String {
        let from = self.out.len().saturating_sub(n);
        format!("{:?}", String::from_utf8_lossy(&self.out[from..]))
    }

    /// Reads until the output after `from` contains `needle`; returns that output (without `\r`).
    async fn until_output(&mut self, from: usize, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut searched = from;
        loop {
            // Search only what is new (plus an overlap), so a flood of output stays linear.
            let start = searched.saturating_sub(needle.len() + 64).max(from);
            if self.out.len() > start && String::from_utf8_lossy(&self.out[start..]).replace('\r', "").contains(needle)
            {
                return self.text_from(from);
            }
            searched = self.out.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no {needle:?} in the terminal within {within:?}; texts {:?}; output tail {}",
                    self.texts,
                    self.tail(600)
                );
            }
            if let Got::Gone = self.recv(left).await {
                panic!(
                    "the terminal closed ({:?}) before {needle:?} arrived; texts {:?}; output tail {}",
                    self.close,
                    self.texts,
                    self.tail(600)
                );
            }
        }
    }

    /// Reads until a text frame satisfies `pred`; returns it.
    async fn until_text(&mut self, what: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        let mut seen = 0;
        loop {
            if let Some(v) = self.texts[seen..].iter().find(|v| pred(v)) {
                return v.clone();
            }
            seen = self.texts.len();
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!(
                    "no {what} text frame within {within:?}; texts {:?}; output tail {}",
                    self.texts,
                    self.tail(300)
                );
            }
            if let Got::Gone = self.recv(left).await {
                if let Some(v) = self.texts[seen..].iter().find(|v| pred(v)) {
                    return v.clone();
                }
                panic!("the terminal closed ({:?}) before a {what} text frame; texts {:?}", self.close, self.texts);
            }
        }
    }

    /// Reads until the server closes; returns the close code and reason.
    async fn until_closed(&mut self, within: Duration) -> (u16, String) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                panic!("not closed within {within:?}; texts {:?}; output tail {}", self.texts, self.tail(300));
            }
            if let Got::Gone = self.recv(left).await {
                return self
                    .close
                    .clone()
                    .unwrap_or_else(|| panic!("the connection ended without a close frame; texts {:?}", self.texts));
            }
        }
    }

    /// Reads until nothing arrives for `quiet` (bounded by `max`).
    async fn until_quiet(&mut self, quiet: Duration, max: Duration) {
        let deadline = Instant::now() + max;
        while Instant::now() < deadline {
            match self.recv(quiet).await {
                Got::Msg => {}
                Got::Quiet => return,
                Got::Gone => panic!("the terminal closed ({:?}) while replaying; texts {:?}", self.close, self.texts),
            }
        }
        panic!("the terminal never went quiet within {max:?}");
    }

    /// Sends a command and waits for `needle` in what follows.
    async fn run(&mut self, command: &str, needle: &str, within: Duration) -> String {
        let mark = self.out.len();
        self.send(command).await;
        self.until_output(mark, needle, within).await
    }
}

/// A connection that must be refused with `code`: no binary output, then a close frame. Returns the close reason and
/// the text frames that came before it.
async fn refused(base: &str, id: &str, cred: Cred<'_>, code: u16, what: &str) -> (String, Vec<Value>) {
    let mut t = open(base, id, cred).await;
    let (got, reason) = t.until_closed(Duration::from_secs(15)).await;
    assert_eq!(got, code, "{what}: close code {got} ({reason:?}), expected {code}; texts {:?}", t.texts);
    assert!(t.out.is_empty(), "{what}: a refused connection got terminal output: {}", t.tail(200));
    assert!(!t.texts.iter().any(|v| v["type"] == "status"), "{what}: a refused connection got a status: {:?}", t.texts);
    (reason, t.texts)
}

/// A connection to an ended session: the ended frame with `reason`, then 4410.
async fn refused_as_ended(base: &str, id: &str, token: &str, reason: &str, what: &str) {
    let (_, texts) = refused(base, id, Cred::Bearer(token), 4410, what).await;
    let ended =
        texts.iter().find(|v| v["type"] == "ended").unwrap_or_else(|| panic!("{what}: no ended frame: {texts:?}"));
    assert_eq!(ended["reason"], reason, "{what}: {ended}");
    assert!(ended["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {ended}");
}

/// Connects, checks the status frame, makes the terminal wide (no readline wrapping) and waits until a probe
/// command answers, so that the shell is known to be reading.
async fn attach(base: &str, id: &str, token: &str) -> Term {
    let mut t = open(base, id, Cred::Bearer(token)).await;
    t.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
    t.resize(250, 50).await;
    t.run("echo probe-$((20+3))\n", "probe-23", Duration::from_secs(30)).await;
    t
}

fn ended_with(t: &Term, reason: &str, what: &str) {
    let ended = t
        .texts
        .iter()
        .find(|v| v["type"] == "ended")
        .unwrap_or_else(|| panic!("{what}: no ended frame: {:?}", t.texts));
    assert_eq!(ended["reason"], reason, "{what}: {ended}");
    assert!(ended["message"].as_str().is_some_and(|m| !m.is_empty()), "{what}: {ended}");
    // The ended frame comes before the close.
    let at_ended = t.log.iter().position(|e| matches!(e, Ev::Text(v) if v["type"] == "ended")).unwrap();
    let at_close = t.log.iter().position(|e| matches!(e, Ev::Close(..))).unwrap();
    assert!(at_ended < at_close, "{what}: ended frame after the close: {:?}", t.log);
}

/// Terminal output as text: without `\r` and without CSI escape sequences (e.g. bracketed paste's `ESC [ ? 2004 l`).
fn clean(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\r' => {}
            '\u{1b}' if chars.peek() == Some(&'[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            _ => out.push(ch),
        }
    }
    out
}

/// Lines of terminal output (split on both `\r` and `\n`).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.split(['\r', '\n']).filter(|l| !l.is_empty())
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Echo, and the first attach starts the clock
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn echo_round_trip_and_first_attach_starts_the_clock() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let before = get(&c, &s, &alice, &id).await;
    assert!(before["started_at"].is_null() && before["deadline"].is_null(), "{before}");

    let mut t = open(&s.base, &id, Cred::Bearer(&alice)).await;
    let status = t.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
    assert_eq!(status["state"], "active", "the first attach made the session active: {status}");
    assert!(status["remaining_seconds"].as_u64().is_some_and(|r| r > 0 && r <= 300), "{status}");
    // The status frame is the first thing on the wire.
    assert!(matches!(t.log.first(), Some(Ev::Text(v)) if v["type"] == "status"), "first frames: {:?}", t.log);

    let v = get(&c, &s, &alice, &id).await;
    assert_eq!(state(&v), "active", "{v}");
    assert!(v["started_at"].is_string() && v["deadline"].is_string(), "the clock runs: {v}");
    let evs = events(&c, &s, &alice, &id).await;
    assert!(evs.iter().any(|e| e["kind"] == "attach"), "the attach is in the trail: {evs:#?}");
    assert!(
        evs.iter().any(|e| e["kind"] == "transition" && e["from"] == "ready" && e["to"] == "active"),
        "ready → active is in the trail: {evs:#?}"
    );

    let out = t.run("echo $((6*7))-ok\n", "42-ok", Duration::from_secs(30)).await;
    assert!(out.contains("42-ok"), "{out}");
    drop(t);
    s.teardown().await;
}

/// The terminal and the desktop connect in the same instant: both first attaches succeed (one starts the clock, the
/// other finds it started), and neither is told that the session has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_first_attaches_at_once_both_find_the_session_active() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let svc = &s.state.svc;
    let caller = examroom_sessions::Caller::candidate(examroom_core::UserId::parse("alice").unwrap());
    let stale = svc.get(&caller, &id).await.unwrap();
    assert_eq!(stale.state, examroom_core::SessionState::Ready);
    let (a, b) = tokio::join!(svc.first_attach(&stale, "candidate:alice"), svc.first_attach(&stale, "candidate:alice"));
    for r in [a, b] {
        let r = r.expect("a first attach that lost the race still attaches");
        assert_eq!(r.state, examroom_core::SessionState::Active, "{r:?}");
    }
    let evs = events(&c, &s, &alice, &id).await;
    let starts = evs.iter().filter(|e| e["kind"] == "transition" && e["to"] == "active").count();
    assert_eq!(starts, 1, "the clock started once: {evs:#?}");
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Resize
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resize_reaches_stty() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let mut t = attach(&s.base, &id, &alice).await;

    t.resize(120, 40).await;
    let out = t.run("stty size; echo size-$((1+1))\n", "size-2", Duration::from_secs(30)).await;
    assert!(lines(&out).any(|l| l.trim() == "40 120"), "stty size after a 120x40 resize: {out:?}");
    // And again, to another size.
    t.resize(91, 33).await;
    let out = t.run("stty size; echo size-$((2+1))\n", "size-3", Duration::from_secs(30)).await;
    assert!(lines(&out).any(|l| l.trim() == "33 91"), "stty size after a 91x33 resize: {out:?}");
    // An unknown control frame is answered with a notice, and the connection stays.
    t.ws.send(Message::text("{\"type\":\"bogus\"}")).await.unwrap();
    t.until_text("notice", Duration::from_secs(10), |v| v["type"] == "notice").await;
    t.run("echo still-$((3+1))\n", "still-4", Duration::from_secs(30)).await;

    drop(t);
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 3. exit: a new shell, with a notice
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exit_gives_a_new_shell_with_a_notice() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let mut t = attach(&s.base, &id, &alice).await;

    t.send("exit\n").await;
    let notice = t.until_text("notice", Duration::from_secs(15), |v| v["type"] == "notice").await;
    let msg = notice["message"].as_str().unwrap_or("");
    assert!(msg.contains("new shell"), "the notice mentions a new shell: {notice}");
    assert!(t.close.is_none(), "the connection stays open: {:?}", t.close);
    let out = t.run("echo again-$((1+1))\n", "again-2", Duration::from_secs(30)).await;
    assert!(out.contains("again-2"));
    let v = get(&c, &s, &alice, &id).await;
    assert_eq!(state(&v), "active", "an exited shell does not end the session: {v}");

    drop(t);
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 4. Reconnect: replay, and the program still runs
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reconnect_replays_and_the_program_is_still_running() {
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let mut t = attach(&s.base, &id, &alice).await;

    t.run("sleep 3600 & echo BG-$((4+4))\n", "BG-8", Duration::from_secs(30)).await;
    // About 310 KB of output (base64 of zeros: lines of 'A'), then a marker.
    let mark = t.out.len();
    t.run("head -c 230000 /dev/zero | base64 -w 100; echo MARK-$((7*6))\n", "MARK-42", Duration::from_secs(30)).await;
    assert!(t.out.len() - mark >= 300 * 1024, "the output was {} bytes", t.out.len() - mark);
    // Disconnect: drop the socket without a close.
    drop(t);

    let mut t = open(&s.base, &id, Cred::Bearer(&alice)).await;
    t.until_quiet(Duration::from_millis(1500), Duration::from_secs(20)).await;
    let replay = t.out.len();
    assert!(replay >= 256 * 1024, "the replay was {replay} bytes, less than 256 KiB");
    assert!(
        matches!(t.log.first(), Some(Ev::Text(v)) if v["type"] == "status"),
        "the status frame comes first: {:?}",
        &t.log[..t.log.len().min(3)]
    );
    let text = t.text_from(0);
    let at = text.rfind("MARK-42").unwrap_or_else(|| panic!("no MARK-42 in the replay; tail {}", t.tail(400)));
    let after = &text[at + "MARK-42".len()..];
    assert!(
        after.len() < 300 && !after.contains("AAAAAAAAAA"),
        "the replay ends with the marker (and a prompt): {after:?}"
    );
    assert!(text[..at].contains(&"A".repeat(100)), "the replay holds the base64 output");

    let out = t.run("jobs; echo JOBS-$((2+3))\n", "JOBS-5", Duration::from_secs(30)).await;
    assert!(out.contains("sleep 3600") && out.contains("Running"), "the background job still runs: {out:?}");

    drop(t);
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 5. Takeover
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_connection_takes_over() {
    const ROUNDS: usize = 5;
    let s = TestServer::start().await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let mut a = attach(&s.base, &id, &alice).await;

    for round in 1..=ROUNDS {
        let mut b = open(&s.base, &id, Cred::Bearer(&alice)).await;
        // The older one: a notice, then 4412.
        let (code, reason) = a.until_closed(Duration::from_secs(15)).await;
        assert_eq!(code, 4412, "round {round}: the replaced connection's close ({reason:?}); log {:?}", a.log);
        let notice = a.log.iter().rposition(|e| matches!(e, Ev::Text(v) if v["type"] == "notice"));
        let close = a.log.iter().position(|e| matches!(e, Ev::Close(..)));
        assert!(notice.is_some() && notice < close, "round {round}: a notice before the close: {:?}", a.log);
        // The newer one works.
        b.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
        let n = round * 10 + 1;
        b.run(&format!("echo took-$(({n}+0))\n"), &format!("took-{n}"), Duration::from_secs(30)).await;
        a = b;
    }

    let evs = events(&c, &s, &alice, &id).await;
    let takeovers = evs.iter().filter(|e| e["kind"] == "takeover").count();
    let attaches = evs.iter().filter(|e| e["kind"] == "attach").count();
    assert_eq!(attaches, ROUNDS + 1, "every attach is in the trail: {evs:#?}");
    assert_eq!(
        takeovers,
        ROUNDS,
        "each of the {ROUNDS} takeovers is in the trail (found {takeovers}): {:#?}",
        evs.iter().filter(|e| e["kind"] != "progress").collect::<Vec<_>>()
    );

    drop(a);
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 6. Ending closes attached sockets
// ---------------------------------------------------------------------------------------------------------------

fn ending_exams(catalog: &Path) {
    standard_exams(catalog);
    write_exam(
        catalog,
        "four",
        "title = \"Four\"\ndescription = \"f\"\nduration = \"4s\"\n[environment]\nbase = \"host\"\n",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ending_closes_attached_sockets() {
    let s = TestServer::start_with(Options { exams: ending_exams, ..Default::default() }).await;
    let c = Client::default();
    let (alice, bob, carol) = (s.candidate("alice"), s.candidate("bob"), s.candidate("carol"));
    let proctor = s.proctor("p");
    let (a, b, cc) = tokio::join!(
        ready_session(&c, &s, &alice, "quick"),
        ready_session(&c, &s, &bob, "quick"),
        ready_session(&c, &s, &carol, "four"),
    );

    // Expiry: the first attach starts carol's 4-second clock.
    let mut tc = attach(&s.base, &cc, &carol).await;
    let carol_started = Instant::now();

    // Submit.
    let mut ta = attach(&s.base, &a, &alice).await;
    let r = c.post(&s.url(&format!("{}/submit", session_path(&a))), &alice, json!({})).await;
    assert_eq!(r.status, 200, "submit: {}", r.text);
    let t0 = Instant::now();
    let (code, _) = ta.until_closed(INACCESSIBLE).await;
    assert!(t0.elapsed() < INACCESSIBLE);
    assert_eq!(code, 4410, "after the submit: {:?}", ta.log);
    ended_with(&ta, "submitted", "submit");

    // A proctor's terminate.
    let mut tb = attach(&s.base, &b, &bob).await;
    let r = c
        .post(&s.url(&format!("{}/terminate", session_path(&b))), &proctor, json!({ "reason": "test", "grade": false }))
        .await;
    assert_eq!(r.status, 200, "terminate: {}", r.text);
    let t0 = Instant::now();
    let (code, _) = tb.until_closed(INACCESSIBLE).await;
    assert!(t0.elapsed() < INACCESSIBLE);
    assert_eq!(code, 4410, "after the proctor's terminate: {:?}", tb.log);
    ended_with(&tb, "terminated_by_proctor", "terminate");

    // Expiry: closed within the floor after the deadline.
    let (code, _) = tc.until_closed(Duration::from_secs(4) + INACCESSIBLE).await;
    assert!(
        carol_started.elapsed() >= Duration::from_secs(3),
        "closed before the deadline: {:?}",
        carol_started.elapsed()
    );
    assert_eq!(code, 4410, "after the expiry: {:?}", tc.log);
    ended_with(&tc, "expired", "expiry");

    // New attempts: the ended frame with the reason, then 4410 (while terminating and once terminated).
    for (id, token, reason) in
        [(&a, &alice, "submitted"), (&b, &bob, "terminated_by_proctor"), (&cc, &carol, "expired")]
    {
        refused_as_ended(&s.base, id, token, reason, &format!("a new attempt after {reason}")).await;
        wait_for(&c, &s, token, id, INACCESSIBLE, is_final).await;
        refused_as_ended(&s.base, id, token, reason, &format!("a new attempt after {reason}, once final")).await;
    }

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 7. Refusals and their close codes
// ---------------------------------------------------------------------------------------------------------------

fn slow_exams(catalog: &Path) {
    write_exam(
        catalog,
        "slow",
        "title = \"Slow\"\ndescription = \"s\"\nduration = \"5m\"\nprovisioning_timeout = \"20s\"\n[environment]\nbase = \"host\"\n",
    );
}

/// `examroom_session=<token>` from a sign-in answer.
fn cookie_pair(a: &crate::server::Answer) -> String {
    let sc = a.headers.get("set-cookie").and_then(|v| v.to_str().ok()).unwrap_or("");
    let pair = sc.split(';').next().unwrap_or("").trim().to_string();
    assert!(pair.starts_with("examroom_session=") && pair.len() > "examroom_session=".len(), "set-cookie: {sc:?}");
    pair
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_have_their_close_codes() {
    // --- Not ready yet: a session still provisioning (a shim that never answers). ---
    let tmp = tempfile::Builder::new().prefix("er-shim-").tempdir_in("/tmp").unwrap();
    let pids = tmp.path().join("pids");
    let script = tmp.path().join("mute-shim");
    std::fs::write(&script, format!("#!/bin/sh\necho $$ >> {}\nexec sleep 60\n", pids.display())).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let slow = TestServer::start_with(Options {
        exams: slow_exams,
        shim_program: Some(script.clone()),
        create_timeout: Duration::from_secs(30),
        ..Default::default()
    })
    .await;
    let c = Client::default();
    let alice = slow.candidate("alice");
    let v = create(&c, &slow, &alice, "slow").await;
    let id = sid(&v);
    let now = get(&c, &slow, &alice, &id).await;
    assert!(matches!(state(&now), "created" | "provisioning"), "{now}");
    refused(&slow.base, &id, Cred::Bearer(&alice), 4409, "a session still provisioning").await;
    let still = get(&c, &slow, &alice, &id).await;
    assert!(matches!(state(&still), "created" | "provisioning"), "the refused attach changed nothing: {still}");
    // Once it has failed: ended, with the failure's code as the reason.
    let failed = wait_for(&c, &slow, &alice, &id, Duration::from_secs(35), is_final).await;
    assert_eq!(state(&failed), "failed", "{failed}");
    refused_as_ended(&slow.base, &id, &alice, "provisioning_timeout", "a failed session").await;
    // Our fake shims: end them by pid.
    for pid in std::fs::read_to_string(&pids).unwrap_or_default().lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
        let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"));
        if ours {
            // SAFETY: kill has no memory preconditions; the pid is the fake shim this test started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    slow.teardown().await;

    // --- The rest, on a normal server. ---
    let s = TestServer::start().await;
    let alice = s.candidate("alice");
    let bob = s.candidate("bob");
    let id = ready_session(&c, &s, &alice, "quick").await;
    let bobs = ready_session(&c, &s, &bob, "quick").await;

    refused(&s.base, &id, Cred::None, 4401, "no credentials").await;
    refused(&s.base, &id, Cred::Bearer("not-a-token"), 4401, "a bad token").await;
    let forged = format!("{}x", &alice[..alice.len() - 1]);
    refused(&s.base, &id, Cred::Bearer(&forged), 4401, "a bad signature").await;
    refused(
        &s.base,
        &id,
        Cred::Cookie { cookie: "examroom_session=garbage", origin: Some(&s.base) },
        4401,
        "a bad cookie",
    )
    .await;

    let (r1, t1) = refused(&s.base, &bobs, Cred::Bearer(&alice), 4404, "another candidate's session").await;
    let (r2, t2) = refused(&s.base, &uuid_like(), Cred::Bearer(&alice), 4404, "a random id").await;
    let (r3, t3) = refused(&s.base, "not-a-uuid", Cred::Bearer(&alice), 4404, "a malformed id").await;
    assert!(r1 == r2 && r2 == r3, "identical reasons: {r1:?} {r2:?} {r3:?}");
    assert!(t1 == t2 && t2 == t3, "identical frames: {t1:?} {t2:?} {t3:?}");

    let proctor = s.proctor("p");
    refused(&s.base, &id, Cred::Bearer(&proctor), 4403, "a proctor").await;

    // Cookies: the Origin must match.
    let signin = c.send(c.http.post(s.url("/api/v1/auth/session")).bearer_auth(&alice)).await;
    assert!((200..300).contains(&signin.status), "sign-in: {}", signin.text);
    let cookie = cookie_pair(&signin);
    refused(
        &s.base,
        &id,
        Cred::Cookie { cookie: &cookie, origin: Some("http://evil.example") },
        4403,
        "a foreign Origin",
    )
    .await;
    refused(&s.base, &id, Cred::Cookie { cookie: &cookie, origin: None }, 4403, "a cookie without Origin").await;
    // The server's host and port over another scheme: this listener speaks plain http.
    let https = s.base.replacen("http://", "https://", 1);
    refused(&s.base, &id, Cred::Cookie { cookie: &cookie, origin: Some(&https) }, 4403, "an https Origin").await;
    // None of the refusals touched the sessions.
    for (tok, sess) in [(&alice, &id), (&bob, &bobs)] {
        let v = get(&c, &s, tok, sess).await;
        assert_eq!(state(&v), "ready", "a refused attach starts no clock: {v}");
    }
    let mut t = open(&s.base, &id, Cred::Cookie { cookie: &cookie, origin: Some(&s.base) }).await;
    t.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
    t.run("echo cookie-$((2*4))\n", "cookie-8", Duration::from_secs(30)).await;
    drop(t);

    s.teardown().await;
}

fn uuid_like() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let h = format!("{:032x}", n ^ 0x5a5a_1234_9876_abcd_0000_1111_2222_3333);
    format!("{}-{}-4{}-8{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

// ---------------------------------------------------------------------------------------------------------------
// 8. A stalled client blocks nobody
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stalled_client_does_not_block_anyone() {
    let s = TestServer::start().await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let (a, b) = tokio::join!(ready_session(&c, &s, &alice, "quick"), ready_session(&c, &s, &bob, "quick"));

    let mut ta = attach(&s.base, &a, &alice).await;
    ta.send("yes\n").await;
    let stalled_since = Instant::now();
    // From here on, nobody reads `ta`.

    let mut tb = attach(&s.base, &b, &bob).await;
    let health = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    let mut i = 0u32;
    while i < 5 || stalled_since.elapsed() < Duration::from_secs(10) {
        i += 1;
        let t0 = Instant::now();
        tb.run(&format!("echo rt{i}-$(({i}+100))\n"), &format!("rt{i}-{}", i + 100), Duration::from_secs(5)).await;
        assert!(t0.elapsed() < Duration::from_secs(5), "round trip {i} took {:?}", t0.elapsed());
        let t0 = Instant::now();
        let h = health
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("/healthz with a stalled client: {e}"));
        assert!(h.status().is_success(), "/healthz: {}", h.status());
        assert!(t0.elapsed() < Duration::from_secs(5), "/healthz took {:?}", t0.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // A new connection to A works; its replay is `y` lines; the shell was never blocked.
    let mut t2 = open(&s.base, &a, Cred::Bearer(&alice)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while t2.out.len() < 64 * 1024 {
        assert!(Instant::now() < deadline, "no 64 KiB of replay within 20 s; got {}", t2.out.len());
        if let Got::Gone = t2.recv(Duration::from_secs(5)).await {
            panic!("the new connection closed: {:?}; texts {:?}", t2.close, t2.texts);
        }
    }
    let head = t2.text_from(0);
    let ys = head.lines().filter(|l| *l == "y").count();
    assert!(ys > 10_000, "the replay is `y` lines ({ys} of them): {:?}", &head[..head.len().min(200)]);
    let odd: Vec<&str> = head.lines().skip(1).take(ys).filter(|l| !l.is_empty() && *l != "y").take(3).collect();
    assert!(odd.is_empty(), "only `y` lines in the replay: {odd:?}");
    t2.send_bytes(b"\x03").await;
    let mark = t2.out.len();
    t2.send("echo alive-$((1+2))\n").await;
    t2.until_output(mark, "alive-3", Duration::from_secs(30)).await;
    // Bob's terminal still works too.
    tb.run("echo bob-$((9+9))\n", "bob-18", Duration::from_secs(10)).await;

    // The stalled socket was closed by the server, replaced, or is still open: all fine. Drop it.
    drop(ta);
    drop((t2, tb));
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 9. No cross-talk under load
// ---------------------------------------------------------------------------------------------------------------

/// Every `S<digits>-<digits>` in the text, as (session, line).
fn tagged(text: &str) -> Vec<(u64, u64)> {
    let b = text.as_bytes();
    let mut found = Vec::new();
    let digits = |mut i: usize| -> (usize, Option<u64>) {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        (i, if i > start { text[start..i].parse().ok() } else { None })
    };
    for (at, &ch) in b.iter().enumerate() {
        if ch != b'S' {
            continue;
        }
        let (after, Some(k)) = digits(at + 1) else { continue };
        if after < b.len() && b[after] == b'-' {
            if let (_, Some(n)) = digits(after + 1) {
                found.push((k, n));
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cross_talk_under_load() {
    const N: usize = 50;
    let s = TestServer::start().await;
    let c = Client::default();
    let proctor = s.proctor("p");
    let t0 = Instant::now();

    let ids: Vec<(usize, String, String)> = futures::future::join_all((0..N).map(|k| {
        let (c, s) = (&c, &s);
        async move {
            let token = s.candidate(&format!("load-{k:02}"));
            let id = sid(&create(c, s, &token, "quick").await);
            (k, token, id)
        }
    }))
    .await;
    // All ready.
    let deadline = Instant::now() + READY;
    loop {
        let a = c.get(&s.url(SESSIONS), &proctor).await;
        let list = a.body["sessions"].as_array().cloned().unwrap_or_default();
        let ready = list.iter().filter(|v| state(v) == "ready").count();
        if ready == N {
            break;
        }
        assert!(!list.iter().any(is_final), "a session ended: {}", a.text);
        assert!(Instant::now() < deadline, "{ready} of {N} ready within {READY:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!("{N} sessions ready after {:?}", t0.elapsed());

    let base = s.base.clone();
    let tasks: Vec<_> = ids
        .into_iter()
        .map(|(k, token, id)| {
            let base = base.clone();
            tokio::spawn(async move {
                let mut t = open(&base, &id, Cred::Bearer(&token)).await;
                t.resize(250, 50).await;
                let mark = t.out.len();
                t.send(&format!("for i in $(seq 1 200); do echo S{k}-$i; done; echo DONE-$(({k}+0))\n")).await;
                let done = format!("\nDONE-{k}\n");
                let out = t.until_output(mark, &done, Duration::from_secs(60)).await;
                let all = t.text_from(0);
                (k, out, all)
            })
        })
        .collect();
    let started = Instant::now();
    for task in tasks {
        let (k, out, all) = task.await.expect("a terminal task panicked");
        let foreign: Vec<(u64, u64)> = tagged(&all).into_iter().filter(|(j, _)| *j != k as u64).take(5).collect();
        assert!(foreign.is_empty(), "socket {k} got another session's output: {foreign:?}");
        let mut seen = std::collections::BTreeSet::new();
        for l in lines(&out) {
            let l = l.trim();
            if let Some(n) = l.strip_prefix(&format!("S{k}-")).and_then(|n| n.parse::<u64>().ok()) {
                seen.insert(n);
            } else if l.starts_with('S') && l[1..].starts_with(|ch: char| ch.is_ascii_digit()) {
                panic!("socket {k}: a foreign line {l:?}");
            }
        }
        let missing: Vec<u64> = (1..=200).filter(|n| !seen.contains(n)).collect();
        assert!(missing.is_empty(), "socket {k} lost lines {missing:?}");
    }
    assert!(started.elapsed() < Duration::from_secs(60), "the load took {:?}", started.elapsed());

    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 10. Flow control: a flood is paused, never dropped, and blocks nobody
// ---------------------------------------------------------------------------------------------------------------

/// The lines of terminal output that are numbers, in order.
fn numbers(bytes: &[u8]) -> Vec<u64> {
    String::from_utf8_lossy(bytes).split(['\r', '\n']).filter_map(|l| l.trim().parse().ok()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flow_control_pauses_a_flood_keeps_every_byte_and_blocks_nobody() {
    // The window the page asks for.
    const WINDOW: u64 = 128 * 1024;
    let s = TestServer::start().await;
    let c = Client::default();
    let (alice, bob) = (s.candidate("alice"), s.candidate("bob"));
    let (a, b) = tokio::join!(ready_session(&c, &s, &alice, "quick"), ready_session(&c, &s, &bob, "quick"));
    let mut ta = attach(&s.base, &a, &alice).await;
    ta.flow_control(WINDOW, false).await;
    let mut tb = attach(&s.base, &b, &bob).await;

    // 1. Alice floods and acknowledges nothing: she gets the window (give or take the prompt that came around the
    //    request), then nothing more; the connection stays open.
    ta.run("echo flow-$((2+3))\n", "flow-5", Duration::from_secs(30)).await;
    let mark = ta.out.len();
    ta.send("yes\n").await;
    ta.until_quiet(Duration::from_millis(1500), Duration::from_secs(30)).await;
    let got = (ta.out.len() - mark) as u64;
    assert!(got.abs_diff(WINDOW) <= 1024, "{got} bytes of a flood without acknowledgements (the window is {WINDOW})");
    assert!(ta.close.is_none() && !ta.gone, "the paused client is not dropped: {:?}", ta.close);

    // 2. Alice now acknowledges as she reads: the flood flows, and Bob's terminal stays fast.
    ta.ack_all().await;
    ta.flow.as_mut().unwrap().auto = true;
    let flood = tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(5);
        let mut bytes = 0;
        while Instant::now() < until {
            let before = ta.flow.unwrap().received;
            if let Got::Gone = ta.recv(Duration::from_secs(5)).await {
                panic!("alice's terminal closed during the flood: {:?}", ta.close);
            }
            bytes += ta.flow.unwrap().received - before;
            ta.out.clear();
        }
        (ta, bytes)
    });
    let mut worst = Duration::ZERO;
    let mut i = 0;
    while !flood.is_finished() {
        i += 1;
        let t0 = Instant::now();
        tb.run(&format!("echo bob{i}-$(({i}+100))\n"), &format!("bob{i}-{}", i + 100), Duration::from_secs(10)).await;
        worst = worst.max(t0.elapsed());
    }
    let (mut ta, bytes) = flood.await.unwrap();
    assert!(bytes > 1_000_000, "the acknowledged flood moved only {bytes} bytes in 5 s");
    assert!(i >= 3 && worst < Duration::from_secs(2), "Bob's slowest of {i} round trips took {worst:?}");

    // 3. Ctrl-C during the flood: the shell answers after at most the window and what the kernel held.
    let mark = ta.out.len();
    ta.send_bytes(b"\x03").await;
    ta.send("echo alive-$((1+2))\n").await;
    ta.until_output(mark, "alive-3", Duration::from_secs(10)).await;
    let between = (ta.out.len() - mark) as u64;
    assert!(between <= WINDOW + 64 * 1024, "{between} bytes between Ctrl-C and the answer");

    // 4. Every byte of a large output arrives, in order.
    let mark = ta.out.len();
    ta.run("seq 1 200000; echo SEQ-$((100+1))\n", "\nSEQ-101", Duration::from_secs(120)).await;
    let n = numbers(&ta.out[mark..]);
    let first = n.iter().position(|&k| k == 1).expect("the first number");
    assert_eq!(n.len() - first, 200_000, "every number arrived once");
    assert!(n[first..].iter().enumerate().all(|(i, &k)| k == i as u64 + 1), "in order");

    // 5. The scrollback holds the end of it: a new connection replays it. (That connection offers compression, and
    //    the server declines: terminal output is never compressed.)
    drop(ta);
    let mut req = terminal_url(&s.base, &a).into_client_request().unwrap();
    req.headers_mut().insert("authorization", HeaderValue::from_str(&format!("Bearer {alice}")).unwrap());
    req.headers_mut().insert("sec-websocket-extensions", HeaderValue::from_static("permessage-deflate"));
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.expect("the upgrade");
    assert!(resp.headers().get("sec-websocket-extensions").is_none(), "no compression: {:?}", resp.headers());
    let mut t2 = Term { ws, out: Vec::new(), texts: Vec::new(), close: None, gone: false, log: Vec::new(), flow: None };
    t2.until_output(0, "SEQ-101", Duration::from_secs(30)).await;
    let n = numbers(&t2.out);
    assert_eq!(n.last(), Some(&200_000), "the replay ends with the last number");
    let tail = &n[n.len() - 1000..];
    assert!(tail.iter().enumerate().all(|(i, &k)| k == 199_001 + i as u64), "the replay has no gap");

    drop((t2, tb));
    s.teardown().await;
}

// ---------------------------------------------------------------------------------------------------------------
// 11. Shells survive a SIGKILL of the real server
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shells_survive_a_server_restart() {
    crate::common::require_root();
    let tmp = tempfile::Builder::new().prefix("er-termkill-").tempdir_in("/tmp").unwrap();
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
        label: crate::common::unique_label("termkill"),
        secret: "term-kill-secret-0123456789-abcdefghijkl".into(),
        base: String::new(),
        runs: 0,
    };
    let c = Client::default();
    let alice = srv.token("alice", Role::Candidate);

    srv.start().await;
    let a = c.post(&srv.url(SESSIONS), &alice, json!({ "exam_id": "quick" })).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = sid(&a.body);
    let deadline = Instant::now() + READY;
    loop {
        let v = real_get(&c, &srv, &alice, &id).await;
        if state(&v) == "ready" {
            break;
        }
        assert!(!is_final(&v) && Instant::now() < deadline, "not ready: {v}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut t = attach(&srv.base, &id, &alice).await;
    assert_eq!(state(&real_get(&c, &srv, &alice, &id).await), "active");
    t.run("sleep 3600 & echo BEFORE-$((5*5))\n", "BEFORE-25", Duration::from_secs(30)).await;

    srv.kill();
    // The old socket ends with the server.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !t.gone {
        assert!(Instant::now() < deadline, "the socket outlived the server by 10 s");
        t.recv(Duration::from_secs(1)).await;
    }
    drop(t);

    srv.start().await;
    let v = real_get(&c, &srv, &alice, &id).await;
    assert_eq!(state(&v), "active", "the session survived the restart: {v}");
    let mut t = open(&srv.base, &id, Cred::Bearer(&alice)).await;
    t.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
    t.until_output(0, "BEFORE-25", Duration::from_secs(15)).await;
    let out = t.run("jobs; echo JOBS-$((3*3))\n", "JOBS-9", Duration::from_secs(30)).await;
    assert!(
        out.contains("sleep 3600") && out.contains("Running"),
        "the job started before the kill still runs: {out:?}"
    );
    let out = t.run("ps -eo args; echo PS-$((3*4))\n", "PS-12", Duration::from_secs(30)).await;
    assert!(lines(&out).any(|l| l.trim() == "sleep 3600"), "ps shows sleep 3600: {out:?}");
    drop(t);

    srv.kill();
    srv.destroy_all();
    crate::common::assert_no_leaks(&srv.label, &srv.sandbox_dir()).await;
}

// ---------------------------------------------------------------------------------------------------------------
// Several terminals
// ---------------------------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_terminals_each_with_its_own_shell_up_to_the_exams_limit() {
    fn exams(dir: &Path) {
        standard_exams(dir);
        write_exam(
            dir,
            "two",
            "title = \"Two\"\ndescription = \"t\"\nduration = \"5m\"\n[environment]\nbase = \"host\"\nmemory = \"256M\"\nterminals = 2\n",
        );
    }
    let s = TestServer::start_with(Options { exams, ..Options::default() }).await;
    let c = Client::default();
    let alice = s.candidate("alice");
    let bob = s.candidate("bob");
    let proctor = s.proctor("pat");
    let id = ready_session(&c, &s, &alice, "two").await;
    let terminals = s.url(&format!("{}/terminals", session_path(&id)));

    let a = c.get(&terminals, &alice).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body, json!({ "terminals": [{ "name": "main" }], "limit": 2 }));
    // Opening one does not start the clock.
    let a = c.post(&terminals, &alice, json!({})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    let name = a.body["name"].as_str().unwrap().to_owned();
    assert_ne!(name, "main");
    assert_eq!(a.body["terminals"], json!([{ "name": "main" }, { "name": name }]));
    assert_eq!(state(&get(&c, &s, &alice, &id).await), "ready");
    // The limit (main included), someone else's session, a proctor's open.
    let a = c.post(&terminals, &alice, json!({})).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (409, Some("too_many_terminals")), "{}", a.text);
    let a = c.post(&terminals, &bob, json!({})).await;
    assert_eq!(a.status, 404, "{}", a.text);
    assert_eq!(c.get(&terminals, &bob).await.status, 404);
    let a = c.post(&terminals, &proctor, json!({})).await;
    assert_eq!(a.status, 403, "{}", a.text);
    assert_eq!(c.get(&terminals, &proctor).await.body["terminals"].as_array().map(Vec::len), Some(2));

    // Each has its own shell: a variable set in one is not in the other; each resumes with its own scrollback.
    let mut main = attach(&s.base, &id, &alice).await;
    let mut second = open_query(&s.base, &id, &format!("terminal={name}"), &alice).await;
    second.until_text("status", Duration::from_secs(10), |v| v["type"] == "status").await;
    second.resize(250, 50).await;
    main.run("export WHO=main-$((1+1)); echo $WHO\n", "main-2", Duration::from_secs(30)).await;
    second.run("echo second-$((3+3)) \"[$WHO]\"\n", "second-6 []", Duration::from_secs(30)).await;
    drop(second);
    let mut again = open_query(&s.base, &id, &format!("terminal={name}"), &alice).await;
    again.until_output(0, "second-6 []", Duration::from_secs(15)).await;
    assert!(!clean(&again.out).contains("main-2"), "the second terminal replays only its own output");
    drop(again);

    // Refusals: a terminal that was never opened, a malformed name, an unknown parameter.
    for q in ["terminal=t9", "terminal=..%2Fmain", "terminal=", "term=main", "terminal=main&terminal=t1"] {
        let mut t = open_query(&s.base, &id, q, &alice).await;
        let (code, _) = t.until_closed(Duration::from_secs(15)).await;
        assert_eq!(code, 4404, "?{q}");
        assert!(t.out.is_empty(), "?{q}: {}", t.tail(200));
    }

    // Closing: main stays; a closed terminal is gone from the list and cannot be attached; another can be opened.
    let del = |n: &str| c.http.delete(s.url(&format!("{}/terminals/{n}", session_path(&id)))).bearer_auth(&alice);
    let a = c.send(del("main")).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (400, Some("invalid_request")), "{}", a.text);
    let a = c.send(del("t9")).await;
    assert_eq!((a.status, a.body["error"]["code"].as_str()), (404, Some("terminal_not_found")), "{}", a.text);
    let a = c.send(c.http.delete(s.url(&format!("{}/terminals/{name}", session_path(&id)))).bearer_auth(&bob)).await;
    assert_eq!(a.status, 404, "{}", a.text);
    let a = c.send(del(&name)).await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(c.get(&terminals, &alice).await.body["terminals"], json!([{ "name": "main" }]));
    let mut t = open_query(&s.base, &id, &format!("terminal={name}"), &alice).await;
    assert_eq!(t.until_closed(Duration::from_secs(15)).await.0, 4404);
    let a = c.post(&terminals, &alice, json!({})).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_ne!(a.body["name"].as_str(), Some(name.as_str()), "a closed name is not given again");
    main.run("echo still-$((5+5))\n", "still-10", Duration::from_secs(30)).await;

    // After the end nothing opens.
    let a = c.post(&s.url(&format!("{}/submit", session_path(&id))), &alice, json!({})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = c.post(&terminals, &alice, json!({})).await;
    assert_eq!(a.status, 410, "{}", a.text);
    drop(main);
    s.teardown().await;
}
