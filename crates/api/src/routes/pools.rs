//! Warm pools (issue 10), for proctors: `GET /api/v1/pools` (every pool: its size, target, environments and
//! announcements), `POST /api/v1/pools/{exam_id}/schedule` (announce candidates: the pool fills ahead of their start)
//! and `DELETE /api/v1/pools/{exam_id}/schedule/{schedule_id}` (cancel an announcement).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use examroom_core::{DomainError, Role};
use examroom_sessions::PoolsOverview;
use examroom_store::{PoolSchedule, PoolState};
use serde::{Deserialize, Serialize};

use super::{json, json_body, ExamIdPath};
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::views::rfc3339;
use crate::AppState;

/// One pooled environment.
#[derive(Serialize)]
struct EnvironmentView {
    environment_id: String,
    owner: String,
    state: PoolState,
    created_at: String,
    ready_at: Option<String>,
}

/// One announcement.
#[derive(Serialize)]
pub struct ScheduleView {
    id: i64,
    exam_id: String,
    candidates: u32,
    at: String,
    fill_from: String,
    until: String,
    created_at: String,
    actor: String,
}

impl ScheduleView {
    fn of(s: &PoolSchedule) -> ScheduleView {
        ScheduleView {
            id: s.id,
            exam_id: s.schedule.exam_id.to_string(),
            candidates: s.schedule.candidates,
            at: rfc3339(s.schedule.at),
            fill_from: rfc3339(s.schedule.fill_from),
            until: rfc3339(s.schedule.until),
            created_at: rfc3339(s.schedule.created_at),
            actor: s.schedule.actor.clone(),
        }
    }
}

/// One exam's pool.
#[derive(Serialize)]
struct PoolView {
    exam_id: String,
    size: u32,
    max_age_seconds: u64,
    target: u32,
    ready: usize,
    filling: usize,
    environments: Vec<EnvironmentView>,
    schedules: Vec<ScheduleView>,
}

fn view(o: &PoolsOverview) -> serde_json::Value {
    let pools: Vec<PoolView> = o
        .pools
        .iter()
        .map(|p| PoolView {
            exam_id: p.exam_id.to_string(),
            size: p.size,
            max_age_seconds: p.max_age.as_secs(),
            target: p.target,
            ready: p.entries.iter().filter(|e| e.state == PoolState::Ready).count(),
            filling: p.entries.iter().filter(|e| e.state == PoolState::Filling).count(),
            environments: p
                .entries
                .iter()
                .map(|e| EnvironmentView {
                    environment_id: e.environment_id.to_string(),
                    owner: e.owner.clone(),
                    state: e.state,
                    created_at: rfc3339(e.created_at),
                    ready_at: e.ready_at.map(rfc3339),
                })
                .collect(),
            schedules: p.schedules.iter().map(ScheduleView::of).collect(),
        })
        .collect();
    serde_json::json!({
        "max_environments": o.max_environments,
        "fill_concurrency": o.fill_concurrency,
        "pools": pools,
    })
}

pub async fn list(State(st): State<AppState>, who: Authed) -> ApiResult<Response> {
    let overview = st.svc.pools_overview(&who.caller).await?;
    Ok(json(StatusCode::OK, &view(&overview)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleBody {
    candidates: u32,
    at: String,
}

/// Unix milliseconds from an RFC 3339 time.
fn parse_time(s: &str) -> Result<i64, ApiError> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|_| {
        ApiError(DomainError::invalid_request("at must be an RFC 3339 time, such as \"2026-03-02T09:00:00Z\""))
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| ApiError(DomainError::invalid_request("at is out of range")))
}

pub async fn schedule(
    State(st): State<AppState>,
    who: Authed,
    exam: Result<ExamIdPath, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    // The role decides before anything else is read.
    if who.caller.role != Role::Proctor {
        return Err(ApiError(DomainError::Forbidden));
    }
    let ExamIdPath(exam_id) = exam?;
    let body: ScheduleBody = json_body(body)?;
    let at = parse_time(&body.at)?;
    let s = st.svc.schedule_pool(&who.caller, &exam_id, body.candidates, at).await?;
    let mut r = json(StatusCode::CREATED, &ScheduleView::of(&s));
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/pools/{}/schedule/{}", s.schedule.exam_id, s.id)) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

pub async fn cancel(
    State(st): State<AppState>,
    who: Authed,
    path: Result<Path<(String, String)>, axum::extract::rejection::PathRejection>,
) -> ApiResult<Response> {
    if who.caller.role != Role::Proctor {
        return Err(ApiError(DomainError::Forbidden));
    }
    let Ok(Path((exam_id, id))) = path else { return Err(ApiError(DomainError::NotFound)) };
    let id: i64 = id.parse().map_err(|_| ApiError(DomainError::NotFound))?;
    st.svc.cancel_pool_schedule(&who.caller, &exam_id, id).await?;
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}
