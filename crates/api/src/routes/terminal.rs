//! `GET /api/v1/sessions/{id}/terminal`: the candidate's terminal over a WebSocket.
//!
//! Binary frames carry raw bytes both ways. The client may send `{"type":"resize","cols":N,"rows":N}`; the server
//! sends `{"type":"status",…}`, `{"type":"notice","message":…}` and `{"type":"ended","reason":…,"message":…}`. On
//! connect the scrollback is replayed, then the stream is live. Refusals and ends are close codes: 4401
//! unauthenticated, 4403 `Origin` refused (or not the candidate's role), 4404 not found, 4409 not ready yet, 4410
//! ended, 4412 replaced by a newer connection.
//!
//! **Flow control** (opt-in): a client that sends `{"type":"flow_control"}` (once, best first; optionally with
//! `"window":N`, 16 KiB to 1 MiB, default 256 KiB) then acknowledges the output it has consumed with
//! `{"type":"ack","bytes":N}` (N = bytes of binary frames consumed since its previous ack, counted from the start of
//! the connection). The relay passes the acknowledgements to the shim (protocol version 2), which stops reading the
//! PTY while a window is unacknowledged: a flood (`yes`, `cat` of a large file) is paused, never dropped, and never
//! queues more than the window in front of the prompt. A client that does not opt in (an old page, a script) is never
//! held back: it keeps the rule below. Against a shim of version 1 the request is ignored.
//!
//! A slow client never blocks anyone: each send to the client is bounded in time, and a client without flow control
//! that stops reading is dropped (the shim keeps the output in its ring for the reconnect).

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use examroom_core::{DomainError, EndReason, Role, SessionState};
use examroom_runtime::{Terminal, TerminalEvent};
use examroom_store::{EventKind, SessionRecord};
use futures::FutureExt;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ApiError;
use crate::identity::authenticate;
use crate::telemetry::WsConnection;
use crate::views::remaining_seconds;
use crate::AppState;

/// Close codes of the contract.
pub mod close {
    /// Unauthenticated.
    pub const UNAUTHENTICATED: u16 = 4401;
    /// `Origin` refused.
    pub const FORBIDDEN: u16 = 4403;
    /// Not found.
    pub const NOT_FOUND: u16 = 4404;
    /// Not ready yet.
    pub const NOT_READY: u16 = 4409;
    /// Ended.
    pub const ENDED: u16 = 4410;
    /// Replaced by a newer connection.
    pub const REPLACED: u16 = 4412;
    /// The environment could not be reached.
    pub const UNAVAILABLE: u16 = 1011;
}

/// A send to the client that takes longer than this drops the client.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The upgrade. A request that is not a WebSocket upgrade gets the same checks as any endpoint, in the same order
/// (401 without credentials, 403 for a role other than the candidate's, 404 for a session that is not the caller's),
/// and then 400 `invalid_request`: every refusal is the contract's envelope, and none says more than the caller may
/// know. A real upgrade is always accepted and refusals are close codes, which browsers can read (an HTTP status on
/// a failed upgrade is invisible to a page).
pub async fn upgrade(
    State(st): State<AppState>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    super::SessionIdPath(id): super::SessionIdPath,
    parts: Parts,
) -> Response {
    let who = authenticate(&parts, &st).await;
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return not_an_upgrade(&st, who, &id, rejection).await.into_response(),
    };
    let terminal = terminal_named(&parts.uri);
    ws.max_message_size(64 * 1024).on_upgrade(move |ws| async move {
        let mut socket = Peer { ws, metrics: WsConnection::open("terminal") };
        let who = match who {
            Ok(w) => w,
            Err(e) => return close_with(&mut socket, code_for(&e), &e.message()).await,
        };
        let Some(terminal) = terminal else {
            let e = DomainError::TerminalNotFound;
            return close_with(&mut socket, code_for(&e), &e.message()).await;
        };
        match st.svc.attach_terminal(&who.caller, &id, &terminal).await {
            Ok((rec, term)) => relay(&mut socket, st, rec, term, &terminal, &who.caller.actor()).await,
            Err(DomainError::SessionEnded) => {
                // Say how it ended, then close.
                if let Ok(rec) = st.svc.get(&who.caller, &id).await {
                    let _ = send(&mut socket, Message::Text(ended_frame(&rec))).await;
                }
                close_with(&mut socket, close::ENDED, "the exam session has ended").await
            }
            Err(e) => close_with(&mut socket, code_for(&e), &e.message()).await,
        }
    })
}

/// The terminal a connection names: `?terminal=NAME` ("main" when absent). `None` for a query that names none
/// properly (an unknown parameter, a name of the wrong shape, a name given twice): such a connection is closed with
/// 4404, like a terminal that is not open.
fn terminal_named(uri: &axum::http::Uri) -> Option<String> {
    if uri.query().is_none_or(str::is_empty) {
        return Some("main".to_owned());
    }
    let axum::extract::Query(pairs) = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri).ok()?;
    match pairs.as_slice() {
        [(k, v)] if k == "terminal" && examroom_sessions::workspace::valid_terminal_name(v) => Some(v.clone()),
        _ => None,
    }
}

pub(crate) async fn not_an_upgrade(
    st: &AppState,
    who: Result<crate::identity::Authed, DomainError>,
    id: &str,
    rejection: WebSocketUpgradeRejection,
) -> ApiError {
    let who = match who {
        Ok(w) => w,
        Err(e) => return ApiError(e),
    };
    if who.caller.role != Role::Candidate {
        return ApiError(DomainError::Forbidden);
    }
    if let Err(e) = st.svc.get(&who.caller, id).await {
        return ApiError(e);
    }
    ApiError(DomainError::invalid_request(format!(
        "this address is a WebSocket (the terminal's or the desktop's); connect with a WebSocket client ({})",
        rejection.body_text().trim_end_matches('.')
    )))
}

pub(crate) fn code_for(e: &DomainError) -> u16 {
    e.close_code().unwrap_or(close::UNAVAILABLE)
}

/// The client's end of the connection, and its metrics (closed by the server with a code, or by the client).
pub(crate) struct Peer {
    pub(crate) ws: WebSocket,
    pub(crate) metrics: WsConnection,
}

pub(crate) async fn send(socket: &mut Peer, m: Message) -> bool {
    matches!(tokio::time::timeout(SEND_TIMEOUT, socket.ws.send(m)).await, Ok(Ok(())))
}

pub(crate) async fn close_with(socket: &mut Peer, code: u16, reason: &str) {
    socket.metrics.closed_by_server(code);
    // A close reason is at most 123 bytes.
    let mut r = reason.to_string();
    while r.len() > 120 {
        r.pop();
    }
    let frame = CloseFrame { code, reason: Utf8Bytes::from(r) };
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.ws.send(Message::Close(Some(frame)))).await;
}

fn json_text(v: serde_json::Value) -> Message {
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn status_frame(rec: &SessionRecord, now: i64) -> Message {
    json_text(serde_json::json!({
        "type": "status",
        "state": rec.state,
        "remaining_seconds": remaining_seconds(rec, now),
    }))
}

fn ended_frame(rec: &SessionRecord) -> Utf8Bytes {
    let (reason, message) = match (rec.state, rec.end_reason) {
        (SessionState::Failed, _) => (
            rec.failure.as_ref().map(|f| f.code.as_str()).unwrap_or("failed"),
            rec.failure.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| "The session failed.".into()),
        ),
        (_, Some(EndReason::Submitted)) => ("submitted", "You submitted your exam. The terminal is closed.".into()),
        (_, Some(EndReason::Expired)) => ("expired", "Time is up. The terminal is closed.".into()),
        (_, Some(EndReason::TerminatedByProctor)) => {
            ("terminated_by_proctor", "A proctor ended your exam. The terminal is closed.".into())
        }
        (_, Some(EndReason::NotStarted)) => ("not_started", "The exam was not started in time.".into()),
        _ => ("ended", "The exam session has ended.".into()),
    };
    Utf8Bytes::from(serde_json::json!({ "type": "ended", "reason": reason, "message": message }).to_string())
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientFrame {
    Resize {
        cols: u16,
        rows: u16,
    },
    FlowControl {
        #[serde(default)]
        window: Option<u64>,
    },
    Ack {
        bytes: u64,
    },
}

/// The client's acknowledgements, translated into the shim's count (which starts at the shim's marker, not at the
/// start of the connection).
#[derive(Default)]
struct Acks {
    /// The client asked for flow control and the shim speaks it.
    on: bool,
    /// Bytes of binary frames sent to the client.
    forwarded: u64,
    /// Bytes the client acknowledged (never more than were sent).
    client: u64,
    /// Bytes acknowledged to the shim.
    shim: u64,
}

impl Acks {
    /// The client acknowledged `bytes` more; returns how many more to acknowledge to the shim, whose count starts
    /// after the first `base` bytes of output (`None`: its marker has not been read yet).
    fn client_acked(&mut self, bytes: u64, base: Option<u64>) -> u64 {
        self.client = self.client.saturating_add(bytes).min(self.forwarded);
        let Some(base) = base.filter(|_| self.on) else { return 0 };
        let target = self.client.saturating_sub(base);
        let more = target.saturating_sub(self.shim);
        self.shim = self.shim.max(target);
        more
    }
}

/// Handles a terminal event other than output; false when the connection is over (closed with its code).
async fn handle_event(
    socket: &mut Peer,
    st: &AppState,
    current: &mut SessionRecord,
    ev: Result<Option<TerminalEvent>, examroom_runtime::RuntimeError>,
) -> bool {
    match ev {
        Ok(Some(TerminalEvent::Output(bytes))) => send(socket, Message::Binary(bytes.into())).await,
        Ok(Some(TerminalEvent::Notice(message))) => {
            send(socket, json_text(serde_json::json!({"type": "notice", "message": message}))).await
        }
        Ok(Some(TerminalEvent::Replaced)) => {
            // The shim says this exactly when a newer attach took the terminal over: record it here, once.
            let actor = format!("candidate:{}", current.user_id);
            st.svc.record_event(current, EventKind::Takeover, "a newer terminal connection took over", &actor).await;
            let notice = "This terminal was opened somewhere else; this connection is closed.";
            let _ = send(socket, json_text(serde_json::json!({"type": "notice", "message": notice}))).await;
            close_with(socket, close::REPLACED, "replaced by a newer connection").await;
            false
        }
        Ok(Some(TerminalEvent::Ended)) | Ok(None) | Err(_) => {
            // The environment went away: the session is ending, or its environment was lost.
            let caller = examroom_sessions::Caller::candidate(current.user_id.clone());
            if let Ok(r) = st.svc.get(&caller, &current.id.to_string()).await {
                *current = r;
            }
            if !current.state.is_live() || current.state == SessionState::Terminating {
                let _ = send(socket, Message::Text(ended_frame(current))).await;
                close_with(socket, close::ENDED, "the exam session has ended").await;
            } else {
                close_with(socket, close::UNAVAILABLE, "the terminal connection was lost; reconnect").await;
            }
            false
        }
    }
}

async fn relay(socket: &mut Peer, st: AppState, rec: SessionRecord, term: Terminal, name: &str, actor: &str) {
    let Terminal { mut output, mut input } = term;
    let mut acks = Acks::default();
    let what = if name == "main" { "terminal attached".to_owned() } else { format!("terminal {name} attached") };
    st.svc.record_event(&rec, EventKind::Attach, &what, actor).await;
    let mut updates = st.svc.subscribe();
    let mut current = rec;
    // Replay and status, then live.
    if !send(socket, status_frame(&current, st.svc.now_ms())).await {
        return;
    }
    loop {
        tokio::select! {
            ev = output.next() => match ev {
                Ok(Some(TerminalEvent::Output(mut bytes))) => {
                    // Gather what else is already buffered into one message (bounded), then send once.
                    let mut pending = None;
                    while bytes.len() < 256 * 1024 {
                        match output.next().now_or_never() {
                            Some(Ok(Some(TerminalEvent::Output(more)))) => bytes.extend_from_slice(&more),
                            Some(other) => {
                                pending = Some(other);
                                break;
                            }
                            None => break,
                        }
                    }
                    let n = bytes.len() as u64;
                    if !send(socket, Message::Binary(bytes.into())).await {
                        break;
                    }
                    acks.forwarded += n;
                    if let Some(ev) = pending {
                        if !handle_event(socket, &st, &mut current, ev).await {
                            break;
                        }
                    }
                }
                other => {
                    if !handle_event(socket, &st, &mut current, other).await {
                        break;
                    }
                }
            },
            msg = socket.ws.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if input.write(&b).await.is_err() {
                        close_with(socket, close::UNAVAILABLE, "the terminal connection was lost; reconnect").await;
                        break;
                    }
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<ClientFrame>(t.as_str()) {
                    Ok(ClientFrame::Resize { cols, rows }) => {
                        let _ = input.resize(cols.clamp(2, 1000), rows.clamp(2, 1000)).await;
                    }
                    Ok(ClientFrame::FlowControl { window }) => match input.flow_control(window).await {
                        Ok(on) => acks.on = on,
                        Err(_) => {
                            close_with(socket, close::UNAVAILABLE, "the terminal connection was lost; reconnect").await;
                            break;
                        }
                    },
                    Ok(ClientFrame::Ack { bytes }) => {
                        let more = acks.client_acked(bytes, output.flow_base());
                        if input.ack(more).await.is_err() {
                            close_with(socket, close::UNAVAILABLE, "the terminal connection was lost; reconnect").await;
                            break;
                        }
                    }
                    Err(_) => {
                        let notice = "unknown control frame; expected {\"type\":\"resize\",\"cols\":N,\"rows\":N}, \
                            {\"type\":\"flow_control\"} or {\"type\":\"ack\",\"bytes\":N}";
                        let _ = send(socket, json_text(serde_json::json!({"type": "notice", "message": notice}))).await;
                    }
                },
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            upd = updates.recv() => match upd {
                Ok(new) if new.id == current.id => {
                    current = (*new).clone();
                    if current.state == SessionState::Terminating || !current.state.is_live() {
                        // Access stops the moment the session leaves `active`.
                        let _ = send(socket, Message::Text(ended_frame(&current))).await;
                        close_with(socket, close::ENDED, "the exam session has ended").await;
                        break;
                    }
                    if !send(socket, status_frame(&current, st.svc.now_ms())).await {
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Missed changes: read the session again, and close if it is ending.
                    let caller = examroom_sessions::Caller::candidate(current.user_id.clone());
                    if let Ok(r) = st.svc.get(&caller, &current.id.to_string()).await {
                        current = r;
                        if current.state == SessionState::Terminating || !current.state.is_live() {
                            let _ = send(socket, Message::Text(ended_frame(&current))).await;
                            close_with(socket, close::ENDED, "the exam session has ended").await;
                            break;
                        }
                    }
                }
                Ok(_) => {}
                Err(RecvError::Closed) => break,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse() {
        let f = |s: &str| serde_json::from_str::<ClientFrame>(s);
        assert!(matches!(
            f(r#"{"type":"resize","cols":80,"rows":24}"#),
            Ok(ClientFrame::Resize { cols: 80, rows: 24 })
        ));
        assert!(matches!(f(r#"{"type":"flow_control"}"#), Ok(ClientFrame::FlowControl { window: None })));
        let w = f(r#"{"type":"flow_control","window":131072}"#);
        assert!(matches!(w, Ok(ClientFrame::FlowControl { window: Some(131072) })));
        assert!(f(r#"{"type":"flow_control","window":"big"}"#).is_err());
        assert!(matches!(f(r#"{"type":"ack","bytes":65536}"#), Ok(ClientFrame::Ack { bytes: 65536 })));
        assert!(f(r#"{"type":"ack","bytes":-5}"#).is_err());
        assert!(f(r#"{"type":"ack"}"#).is_err());
    }

    #[test]
    fn acknowledgements_count_from_the_shims_marker() {
        let mut a = Acks { on: true, ..Acks::default() };
        // 100 bytes of replay went out before the marker, then 1000 after it.
        a.forwarded = 1100;
        // Acks before the marker has been read are remembered, not sent.
        assert_eq!(a.client_acked(60, None), 0);
        // The replay is not the shim's to count.
        assert_eq!(a.client_acked(40, Some(100)), 0);
        assert_eq!(a.client_acked(500, Some(100)), 500);
        assert_eq!(a.client_acked(300, Some(100)), 300);
        // A client cannot acknowledge more than it was sent.
        assert_eq!(a.client_acked(10_000, Some(100)), 200);
        assert_eq!(a.client_acked(1, Some(100)), 0);
        a.forwarded += 50;
        assert_eq!(a.client_acked(50, Some(100)), 50);
    }

    #[test]
    fn without_flow_control_nothing_is_acknowledged() {
        let mut a = Acks { forwarded: 1000, ..Acks::default() };
        assert_eq!(a.client_acked(1000, Some(0)), 0);
    }
}
