//! `/healthz`, `/readyz` (the store and the runtime answer), `/metrics` (Prometheus).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use examroom_core::{DomainError, IncidentId};

use super::json;
use crate::error::ApiError;
use crate::AppState;

pub async fn healthz() -> Response {
    json(StatusCode::OK, &serde_json::json!({ "status": "ok" }))
}

pub async fn readyz(State(st): State<AppState>) -> Response {
    match st.svc.ready_check().await {
        Ok(backends) => json(StatusCode::OK, &serde_json::json!({ "status": "ready", "backends": backends })),
        Err(why) => {
            let incident = IncidentId::new_v4();
            tracing::warn!(%incident, %why, "not ready");
            ApiError(DomainError::ServiceUnavailable { incident: Some(incident) }).into_response()
        }
    }
}

pub async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => ([("content-type", "text/plain; version=0.0.4")], h.render()).into_response(),
        None => ApiError(DomainError::NotFound).into_response(),
    }
}
