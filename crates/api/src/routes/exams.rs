//! The catalog: title, description and duration of each exam (never its tasks or checks), and whether it can be
//! started here now (an exam on an image that is not in the image store cannot).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use examroom_core::{DomainError, ExamId, Role};
use examroom_exams::Exam;
use examroom_sessions::provision;
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
    /// Whether a session of it can be started on this server now (its environment's image is there).
    available: bool,
    /// Why not, when it is not (for a proctor: the cause and the command that fixes it).
    #[serde(skip_serializing_if = "Option::is_none")]
    unavailable_reason: Option<String>,
    /// The environment has a graphical desktop (`GET /api/v1/sessions/{id}/desktop`), of this size.
    desktop: Option<DesktopView>,
    /// Ports inside the environment that the owner's browser may open (`GET /api/v1/sessions/{id}/ports/{port}/`).
    ports: Vec<u16>,
    /// The version of the definition new sessions start on (`Exam::version`).
    version: String,
    /// Documentation links candidates may open during the exam.
    resources: Vec<ResourceView>,
    /// When the exam page warns that time runs out: seconds before the deadline, longest first.
    warnings_seconds: Vec<u64>,
    /// How many terminals a candidate may have open at once.
    terminals: u32,
}

/// A documentation link.
#[derive(Serialize)]
pub struct ResourceView {
    title: String,
    url: String,
}

/// An exam's desktop.
#[derive(Serialize)]
pub struct DesktopView {
    width: u16,
    height: u16,
}

/// What a candidate is told about an exam whose image is missing.
const UNAVAILABLE_FOR_CANDIDATES: &str =
    "This exam's environment is not installed on this server yet. Ask your proctor.";

fn view(st: &AppState, e: &Exam, version: String, role: Role) -> ExamView {
    let reason = provision::unavailable(&st.svc, e).map(|why| match role {
        Role::Proctor => why,
        Role::Candidate => UNAVAILABLE_FOR_CANDIDATES.to_string(),
    });
    ExamView {
        id: e.id.to_string(),
        title: e.title.clone(),
        description: e.description.clone(),
        duration_seconds: e.duration.as_secs(),
        attempts: e.attempts.limit(),
        available: reason.is_none(),
        unavailable_reason: reason,
        desktop: e
            .environment
            .desktop
            .then_some(DesktopView { width: e.environment.resolution.0, height: e.environment.resolution.1 }),
        ports: e.environment.ports.clone(),
        version,
        resources: e.resources.iter().map(|r| ResourceView { title: r.title.clone(), url: r.url.clone() }).collect(),
        warnings_seconds: e.warnings.iter().map(|d| d.as_secs()).collect(),
        terminals: e.environment.terminals,
    }
}

pub async fn list(State(st): State<AppState>, who: Authed) -> Response {
    let exams: Vec<ExamView> = st
        .svc
        .catalog()
        .exams()
        .filter_map(|e| st.svc.current_exam(&e.id))
        .map(|(version, e)| view(&st, &e, version, who.caller.role))
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "exams": exams }))
}

pub async fn get(State(st): State<AppState>, who: Authed, ExamIdPath(id): ExamIdPath) -> ApiResult<Response> {
    let id = ExamId::parse(&id).map_err(|_| ApiError(DomainError::ExamNotFound))?;
    let (version, exam) = st.svc.current_exam(&id).ok_or(ApiError(DomainError::ExamNotFound))?;
    Ok(json(StatusCode::OK, &view(&st, &exam, version, who.caller.role)))
}
