//! Sessions: start, list, read, the audit trail, tasks, start the clock, submit, terminate.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use examroom_core::{DomainError, Role, SessionState};
use serde::Deserialize;

use super::{json, json_body, SessionIdPath};
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::views::{EventView, SessionView};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    exam_id: String,
}

pub async fn create(
    State(st): State<AppState>,
    who: Authed,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let body: CreateBody = json_body(body)?;
    let rec = st.svc.create(&who.caller, &body.exam_id).await?;
    let mut r = json(StatusCode::CREATED, &SessionView::of(&rec, st.svc.now_ms(), who.caller.role));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/sessions/{}", rec.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
pub struct ListQuery {
    state: Option<String>,
}

pub async fn list(
    State(st): State<AppState>,
    who: Authed,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) =
        q.map_err(|_| ApiError(DomainError::invalid_request("the query string is not valid; use ?state=<one state>")))?;
    let state = match q.state.as_deref() {
        None => None,
        Some(s) => Some(
            s.parse::<SessionState>()
                .map_err(|e| ApiError(DomainError::invalid_request(format!("?state= must name a state: {e}"))))?,
        ),
    };
    let now = st.svc.now_ms();
    let list = st.svc.list(&who.caller, state).await?;
    let views: Vec<SessionView> = list.iter().map(|r| SessionView::of(r, now, who.caller.role)).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "sessions": views })))
}

pub async fn get(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    let rec = st.svc.get(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &SessionView::of(&rec, st.svc.now_ms(), who.caller.role)))
}

pub async fn events(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    let events = st.svc.events(&who.caller, &id).await?;
    let views: Vec<EventView> = events.iter().map(EventView::of).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "events": views })))
}

pub async fn tasks(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    let rec = st.svc.get(&who.caller, &id).await?;
    if who.caller.role == Role::Candidate && matches!(rec.state, SessionState::Created | SessionState::Provisioning) {
        return Err(ApiError(DomainError::SessionNotReady));
    }
    // Prompts only: check scripts and their answers never leave the server.
    // The session's own version of the exam, kept across reloads of the catalog.
    let tasks: Vec<serde_json::Value> = st
        .svc
        .exam_of(&rec)
        .map(|exam| {
            exam.tasks
                .iter()
                .map(|t| {
                    serde_json::json!({
                        "id": t.id,
                        "title": t.title,
                        "prompt": t.prompt,
                        "points": t.checks.iter().map(|c| c.weight).sum::<u32>(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(json(StatusCode::OK, &serde_json::json!({ "tasks": tasks })))
}

pub async fn start(
    State(st): State<AppState>,
    who: Authed,
    id: Result<SessionIdPath, ApiError>,
) -> ApiResult<Response> {
    // Candidates only; the role decides before the id is read.
    if who.caller.role != Role::Candidate {
        return Err(ApiError(DomainError::Forbidden));
    }
    let SessionIdPath(id) = id?;
    let rec = st.svc.start_exam(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &SessionView::of(&rec, st.svc.now_ms(), who.caller.role)))
}

pub async fn submit(
    State(st): State<AppState>,
    who: Authed,
    id: Result<SessionIdPath, ApiError>,
) -> ApiResult<Response> {
    // Candidates only; the role decides before the id is read.
    if who.caller.role != Role::Candidate {
        return Err(ApiError(DomainError::Forbidden));
    }
    let SessionIdPath(id) = id?;
    let rec = st.svc.submit(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &SessionView::of(&rec, st.svc.now_ms(), who.caller.role)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TerminateBody {
    reason: String,
    #[serde(default = "yes")]
    grade: bool,
}

fn yes() -> bool {
    true
}

pub async fn terminate(
    State(st): State<AppState>,
    who: Authed,
    id: Result<SessionIdPath, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // The role decides before the id is even read, so a refusal never depends on the id.
    if who.caller.role != Role::Proctor {
        return Err(ApiError(DomainError::Forbidden));
    }
    let SessionIdPath(id) = id?;
    let body: TerminateBody = json_body(body)?;
    let rec = st.svc.terminate(&who.caller, &id, &body.reason, body.grade).await?;
    Ok(json(StatusCode::OK, &SessionView::of(&rec, st.svc.now_ms(), who.caller.role)))
}

pub async fn result(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    let r = st.svc.result(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &r))
}
