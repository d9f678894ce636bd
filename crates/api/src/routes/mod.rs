//! The routes, one file per resource.

mod attempts;
mod auth;
mod desktop;
mod exams;
mod health;
mod images;
mod pools;
mod sessions;
mod signin;
mod status;
pub mod terminal;
mod web;
mod workspace;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Path};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::Router;
use examroom_core::DomainError;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// Request bodies are small JSON objects.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Every route.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(crate::openapi::serve))
        .route("/signin", get(signin::page))
        .route("/signin.js", get(signin::script))
        .route("/", get(web::index))
        .route("/proctor", get(web::index))
        .route("/sessions/{*rest}", get(web::index_under))
        .route("/assets/{*path}", get(web::asset))
        .route("/api/v1/auth/session", post(auth::sign_in).get(auth::whoami).delete(auth::sign_out))
        .route("/api/v1/exams", get(exams::list))
        .route("/api/v1/exams/{exam_id}", get(exams::get))
        .route("/api/v1/exams/{exam_id}/attempts", get(attempts::get).post(attempts::grant))
        .route("/api/v1/images", get(images::list))
        .route("/api/v1/pools", get(pools::list))
        .route("/api/v1/pools/{exam_id}/schedule", post(pools::schedule))
        .route("/api/v1/pools/{exam_id}/schedule/{schedule_id}", axum::routing::delete(pools::cancel))
        .route("/api/v1/sessions", post(sessions::create).get(sessions::list))
        .route("/api/v1/sessions/{id}", get(sessions::get))
        .route("/api/v1/sessions/{id}/status", get(status::stream))
        .route("/api/v1/sessions/{id}/terminal", get(terminal::upgrade))
        .route("/api/v1/sessions/{id}/desktop", get(desktop::upgrade))
        .route("/api/v1/sessions/{id}/ports/{port}", get(crate::ports::enter))
        .route("/api/v1/sessions/{id}/ports/{port}/", get(crate::ports::enter))
        .route("/api/v1/sessions/{id}/ports/{port}/{*rest}", get(crate::ports::enter))
        .route("/api/v1/sessions/{id}/workspace", get(workspace::get).patch(workspace::change))
        .route("/api/v1/sessions/{id}/terminals", get(workspace::terminals).post(workspace::open))
        .route("/api/v1/sessions/{id}/terminals/{name}", axum::routing::delete(workspace::close))
        .route("/api/v1/sessions/{id}/events", get(sessions::events))
        .route("/api/v1/sessions/{id}/tasks", get(sessions::tasks))
        .route("/api/v1/sessions/{id}/result", get(sessions::result))
        .route("/api/v1/sessions/{id}/start", post(sessions::start))
        .route("/api/v1/sessions/{id}/submit", post(sessions::submit))
        .route("/api/v1/sessions/{id}/terminate", post(sessions::terminate))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn not_found() -> ApiError {
    ApiError(DomainError::NotFound)
}

/// A known address with another method: 405 with the envelope; axum adds the `Allow` header.
async fn method_not_allowed() -> ApiError {
    ApiError(DomainError::MethodNotAllowed)
}

/// Parses a JSON body (an object) into `T`, answering `invalid_request` with the reason when it does not fit. A body
/// that could not be read (too large) is refused the same way.
pub fn json_body<T: DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let body = body.map_err(|e| {
        ApiError(DomainError::invalid_request(format!("the body could not be read: {}", e.body_text())))
    })?;
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError(DomainError::invalid_request(format!("the body is not JSON: {e}"))))?;
    if !value.is_object() {
        return Err(ApiError(DomainError::invalid_request("the body must be a JSON object")));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError(DomainError::invalid_request(format!("the JSON body does not fit: {e}"))))
}

/// A session id from the path. An id that cannot even be decoded is answered exactly like an unknown one.
pub struct SessionIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(SessionIdPath(id)),
            Err(_) => Err(ApiError(DomainError::SessionNotFound)),
        }
    }
}

/// An exam id from the path; one that cannot be decoded is unknown.
pub struct ExamIdPath(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ExamIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(ExamIdPath(id)),
            Err(_) => Err(ApiError(DomainError::ExamNotFound)),
        }
    }
}

/// A JSON answer with `Cache-Control: no-store`.
pub fn json<T: serde::Serialize>(status: axum::http::StatusCode, value: &T) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    use axum::response::IntoResponse;
    let mut r = (status, serde_json::to_vec(value).unwrap_or_default()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// A JSON value answer (for documents).
pub fn json_value(status: axum::http::StatusCode, v: &serde_json::Value) -> axum::response::Response {
    json(status, v)
}
