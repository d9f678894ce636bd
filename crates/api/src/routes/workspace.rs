//! The candidate's workspace and terminals:
//! - `GET /api/v1/sessions/{id}/workspace`: flags, visited tasks and the notepad (the candidate's own session; a
//!   proctor reads anyone's, also after the end); `PATCH` changes them (the candidate, while ready or active);
//! - `GET /api/v1/sessions/{id}/terminals`: the open terminals and the exam's limit; `POST` opens another;
//!   `DELETE …/terminals/{name}` closes one ("main" stays). Attach with `…/terminal?terminal=NAME`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use examroom_core::{DomainError, Role};
use examroom_sessions::{Terminals, WorkspaceChange};
use examroom_store::Workspace;
use serde::Deserialize;

use super::{json, json_body, SessionIdPath};
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::AppState;

/// Each field may be left out (it stays as it is), but not given as null.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeBody {
    #[serde(default, deserialize_with = "present")]
    flagged: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    visited: Option<Vec<String>>,
    #[serde(default, deserialize_with = "present")]
    notepad: Option<String>,
}

/// A field that was given: its value, never null.
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

fn workspace_json(w: &Workspace) -> serde_json::Value {
    serde_json::json!({ "flagged": w.flagged, "visited": w.visited, "notepad": w.notepad })
}

fn terminals_json(t: &Terminals) -> serde_json::Value {
    let list: Vec<serde_json::Value> = t.open.iter().map(|n| serde_json::json!({ "name": n })).collect();
    serde_json::json!({ "terminals": list, "limit": t.limit })
}

pub async fn get(State(st): State<AppState>, who: Authed, SessionIdPath(id): SessionIdPath) -> ApiResult<Response> {
    let (_, w) = st.svc.workspace(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &workspace_json(&w)))
}

pub async fn change(
    State(st): State<AppState>,
    who: Authed,
    id: Result<SessionIdPath, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // Candidates only; the role decides before the id is read.
    if who.caller.role != Role::Candidate {
        return Err(ApiError(DomainError::Forbidden));
    }
    let SessionIdPath(id) = id?;
    let body: ChangeBody = json_body(body)?;
    let change = WorkspaceChange { flagged: body.flagged, visited: body.visited, notepad: body.notepad };
    let w = st.svc.change_workspace(&who.caller, &id, change).await?;
    Ok(json(StatusCode::OK, &workspace_json(&w)))
}

pub async fn terminals(
    State(st): State<AppState>,
    who: Authed,
    SessionIdPath(id): SessionIdPath,
) -> ApiResult<Response> {
    let t = st.svc.terminals(&who.caller, &id).await?;
    Ok(json(StatusCode::OK, &terminals_json(&t)))
}

pub async fn open(State(st): State<AppState>, who: Authed, id: Result<SessionIdPath, ApiError>) -> ApiResult<Response> {
    if who.caller.role != Role::Candidate {
        return Err(ApiError(DomainError::Forbidden));
    }
    let SessionIdPath(id) = id?;
    let (name, t) = st.svc.open_terminal(&who.caller, &id).await?;
    let mut body = terminals_json(&t);
    body["name"] = serde_json::Value::String(name.clone());
    let mut r = json(StatusCode::CREATED, &body);
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/sessions/{id}/terminal?terminal={name}")) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub async fn close(
    State(st): State<AppState>,
    who: Authed,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Response> {
    if who.caller.role != Role::Candidate {
        return Err(ApiError(DomainError::Forbidden));
    }
    let Ok(Path((id, name))) = path else { return Err(ApiError(DomainError::SessionNotFound)) };
    // The session decides first (404 for another's), then the name.
    st.svc.get(&who.caller, &id).await?;
    if !examroom_sessions::workspace::valid_terminal_name(&name) {
        return Err(ApiError(DomainError::TerminalNotFound));
    }
    st.svc.close_terminal(&who.caller, &id, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
