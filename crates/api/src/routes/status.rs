//! `GET /api/v1/sessions/{id}/status`: Server-Sent Events. One `status` event per change (pushed as it is stored),
//! a `heartbeat` every 2 s (state and `remaining_seconds` by the server's clock), and a final `status` event once the
//! session is in a final state, after which the stream ends. One user holds at most `max_streams_per_user` streams at
//! once; the next is `429 too_many_streams`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;

use super::SessionIdPath;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use examroom_store::SessionRecord;
use tokio::sync::broadcast::error::RecvError;
use tokio_stream::wrappers::ReceiverStream;

use crate::error::ApiResult;
use crate::identity::Authed;
use crate::views::{remaining_seconds, SessionView};
use crate::AppState;

/// Heartbeats come at least this often.
pub const HEARTBEAT: Duration = Duration::from_secs(2);

fn status_event(rec: &SessionRecord, st: &AppState, who: &Authed) -> Event {
    let view = SessionView::of(rec, st.svc.now_ms(), who.caller.role);
    Event::default().event("status").json_data(view).unwrap_or_else(|_| Event::default().event("status"))
}

pub async fn stream(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    // Subscribe before reading, so that no change between the read and the subscription is missed.
    let mut updates = st.svc.subscribe();
    let mut rec = st.svc.get(&who.caller, &id).await?;
    // At most so many open streams per user (issue 9); the slot is freed when the stream's task ends.
    let slot = st.streams.acquire(&who.caller.user)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(32);
    tokio::spawn(async move {
        let _slot = slot;
        if tx.send(Ok(status_event(&rec, &st, &who))).await.is_err() {
            return;
        }
        let mut beat = tokio::time::interval(HEARTBEAT);
        beat.tick().await;
        while !rec.state.is_final() {
            tokio::select! {
                u = updates.recv() => match u {
                    Ok(new) if new.id == rec.id => {
                        rec = (*new).clone();
                        if tx.send(Ok(status_event(&rec, &st, &who))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        // Missed some changes: read the session again.
                        if let Ok(fresh) = st.svc.get(&who.caller, &rec.id.to_string()).await {
                            rec = fresh;
                            if tx.send(Ok(status_event(&rec, &st, &who))).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = beat.tick() => {
                    let data = serde_json::json!({
                        "state": rec.state,
                        "remaining_seconds": remaining_seconds(&rec, st.svc.now_ms()),
                    });
                    let ev = Event::default().event("heartbeat").data(data.to_string());
                    if tx.send(Ok(ev)).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
            }
        }
    });
    let mut resp = Sse::new(ReceiverStream::new(rx)).into_response();
    resp.headers_mut().insert("cache-control", axum::http::HeaderValue::from_static("no-store"));
    Ok(resp)
}
