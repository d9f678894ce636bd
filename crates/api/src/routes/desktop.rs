//! `GET /api/v1/sessions/{id}/desktop`: the candidate's desktop over a WebSocket, carrying RFB (VNC) for noVNC.
//!
//! Binary frames carry the RFB stream both ways, relayed to the VNC server on the environment's own loopback through
//! the shim (`Dial`); the server adds nothing to the stream (no text frames: the close code and its reason say how
//! it ended). It authenticates and closes exactly like the terminal:
//! 4401 unauthenticated, 4403 `Origin` refused (or not the candidate's role), 4404 not found (or the exam has no
//! desktop), 4409 not ready yet, 4410 ended (access stops the moment the session leaves `active`), 1011 when the
//! desktop could not be reached. Attaching activates a `ready` session. Several connections may watch one desktop
//! (a reconnect finds the same desktop with its windows open); none replaces another.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::State;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use examroom_core::{DomainError, SessionState};
use examroom_runtime::PortStream;
use examroom_store::{EventKind, SessionRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::broadcast::error::RecvError;

use super::terminal::{close, close_with, code_for, not_an_upgrade, send, Peer};
use crate::identity::authenticate;
use crate::telemetry::WsConnection;
use crate::AppState;

/// The upgrade; a request that is not one gets the terminal's answers (401, 403, 404, then 400).
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
    // noVNC may ask for the `binary` subprotocol; RFB messages are small, framebuffer updates are not.
    ws.protocols(["binary"]).max_message_size(1 << 20).on_upgrade(move |ws| async move {
        let mut socket = Peer { ws, metrics: WsConnection::open("desktop") };
        let who = match who {
            Ok(w) => w,
            Err(e) => return close_with(&mut socket, code_for(&e), &e.message()).await,
        };
        match st.svc.attach_desktop(&who.caller, &id).await {
            Ok((rec, stream)) => relay(&mut socket, st, rec, stream, &who.caller.actor()).await,
            Err(DomainError::SessionEnded) => {
                close_with(&mut socket, close::ENDED, "the exam session has ended").await;
            }
            Err(e) => close_with(&mut socket, code_for(&e), &e.message()).await,
        }
    })
}

async fn relay(socket: &mut Peer, st: AppState, rec: SessionRecord, stream: PortStream, actor: &str) {
    st.svc.record_event(&rec, EventKind::Attach, "desktop attached", actor).await;
    let mut updates = st.svc.subscribe();
    let mut current = rec;
    let (mut from_vnc, mut to_vnc) = tokio::io::split(stream);
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        tokio::select! {
            n = from_vnc.read(&mut buf) => match n {
                Ok(n) if n > 0 => {
                    if !send(socket, Message::Binary(buf[..n].to_vec().into())).await {
                        break;
                    }
                }
                _ => {
                    // The VNC server went away: the session is ending, or the candidate ended their desktop.
                    let caller = examroom_sessions::Caller::candidate(current.user_id.clone());
                    if let Ok(r) = st.svc.get(&caller, &current.id.to_string()).await {
                        current = r;
                    }
                    if !current.state.is_live() || current.state == SessionState::Terminating {
                        close_with(socket, close::ENDED, "the exam session has ended").await;
                    } else {
                        close_with(socket, close::UNAVAILABLE, "the desktop connection was lost; reconnect").await;
                    }
                    break;
                }
            },
            msg = socket.ws.recv() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    if to_vnc.write_all(&b).await.is_err() {
                        close_with(socket, close::UNAVAILABLE, "the desktop connection was lost; reconnect").await;
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            upd = updates.recv() => match upd {
                Ok(new) if new.id == current.id => {
                    current = (*new).clone();
                    if current.state == SessionState::Terminating || !current.state.is_live() {
                        // Access stops the moment the session leaves `active`.
                        close_with(socket, close::ENDED, "the exam session has ended").await;
                        break;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    let caller = examroom_sessions::Caller::candidate(current.user_id.clone());
                    if let Ok(r) = st.svc.get(&caller, &current.id.to_string()).await {
                        current = r;
                        if current.state == SessionState::Terminating || !current.state.is_live() {
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
    let _ = to_vnc.shutdown().await;
}
