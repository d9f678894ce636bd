//! Attempts at an exam (issue 9): `GET /api/v1/exams/{exam_id}/attempts` (a candidate: their own; a proctor:
//! `?user_id=`), and `POST` for a proctor to grant a candidate more, with a reason. Grants are append-only and are
//! shown to proctors as the trail.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use examroom_core::{DomainError, Role};
use examroom_sessions::AttemptsStatus;
use serde::{Deserialize, Serialize};

use super::{json, json_body, ExamIdPath};
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::views::rfc3339;
use crate::AppState;

/// A grant as proctors see it.
#[derive(Serialize)]
struct GrantView {
    extra: u32,
    reason: String,
    actor: String,
    at: String,
}

/// A candidate's attempts at an exam.
#[derive(Serialize)]
struct AttemptsView {
    exam_id: String,
    user_id: String,
    /// What the exam allows; `null`: no limit.
    limit: Option<u32>,
    granted: u32,
    /// `limit + granted`; `null`: no limit.
    allowed: Option<u32>,
    used: u32,
    /// `null`: no limit.
    remaining: Option<u32>,
    /// Proctors only.
    #[serde(skip_serializing_if = "Option::is_none")]
    grants: Option<Vec<GrantView>>,
}

fn view(s: &AttemptsStatus, role: Role) -> AttemptsView {
    AttemptsView {
        exam_id: s.exam_id.to_string(),
        user_id: s.user_id.to_string(),
        limit: s.limit,
        granted: s.granted,
        allowed: s.allowed(),
        used: s.used,
        remaining: s.remaining(),
        grants: role.is_proctor().then(|| {
            s.grants
                .iter()
                .map(|g| GrantView {
                    extra: g.extra,
                    reason: g.reason.clone(),
                    actor: g.actor.clone(),
                    at: rfc3339(g.at),
                })
                .collect()
        }),
    }
}

#[derive(Deserialize)]
pub struct AttemptsQuery {
    user_id: Option<String>,
}

pub async fn get(
    State(st): State<AppState>,
    who: Authed,
    ExamIdPath(exam_id): ExamIdPath,
    q: Result<Query<AttemptsQuery>, QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) =
        q.map_err(|_| ApiError(DomainError::invalid_request("the query string is not valid; use ?user_id=<id>")))?;
    let user = q.user_id.as_deref().filter(|u| !u.is_empty());
    let status = st.svc.attempts(&who.caller, &exam_id, user).await?;
    Ok(json(StatusCode::OK, &view(&status, who.caller.role)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantBody {
    user_id: String,
    #[serde(default = "one")]
    extra: u32,
    reason: String,
}

fn one() -> u32 {
    1
}

pub async fn grant(
    State(st): State<AppState>,
    who: Authed,
    ExamIdPath(exam_id): ExamIdPath,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    if who.caller.role != Role::Proctor {
        return Err(ApiError(DomainError::Forbidden));
    }
    let body: GrantBody = json_body(body)?;
    let status = st.svc.grant_attempts(&who.caller, &exam_id, &body.user_id, body.extra, &body.reason).await?;
    Ok(json(StatusCode::CREATED, &view(&status, who.caller.role)))
}
