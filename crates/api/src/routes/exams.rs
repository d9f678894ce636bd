//! The catalog: title, description and duration of each exam (never its tasks or checks).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use examroom_core::{DomainError, ExamId};
use examroom_exams::Exam;
use serde::Serialize;

use super::{json, ExamIdPath};
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::AppState;

/// An exam as the catalog shows it.
#[derive(Serialize)]
pub struct ExamView {
    id: String,
    title: String,
    description: String,
    duration_seconds: u64,
    /// Attempts a candidate has (before grants); `null`: no limit.
    attempts: Option<u32>,
}

fn view(e: &Exam) -> ExamView {
    ExamView {
        id: e.id.to_string(),
        title: e.title.clone(),
        description: e.description.clone(),
        duration_seconds: e.duration.as_secs(),
        attempts: e.attempts.limit(),
    }
}

pub async fn list(State(st): State<AppState>, _who: Authed) -> Response {
    let exams: Vec<ExamView> = st.svc.catalog().exams().map(view).collect();
    json(StatusCode::OK, &serde_json::json!({ "exams": exams }))
}

pub async fn get(State(st): State<AppState>, _who: Authed, ExamIdPath(id): ExamIdPath) -> ApiResult<Response> {
    let id = ExamId::parse(&id).map_err(|_| ApiError(DomainError::ExamNotFound))?;
    let exam = st.svc.catalog().get(&id).ok_or(ApiError(DomainError::ExamNotFound))?;
    Ok(json(StatusCode::OK, &view(exam)))
}
