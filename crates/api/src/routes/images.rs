//! The image store (issue 12), for proctors: `GET /api/v1/images` (every image: its names, manifest digest, size and
//! the exams that run on it; and the images exams ask for that are not there).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use examroom_core::{DomainError, IncidentId, Role};
use examroom_sessions::provision;
use serde::Serialize;

use super::json;
use crate::error::{ApiError, ApiResult};
use crate::identity::Authed;
use crate::AppState;

/// One image of the store.
#[derive(Serialize)]
struct ImageView {
    names: Vec<String>,
    digest: String,
    size_bytes: u64,
    layers: usize,
    exams: Vec<String>,
}

/// An image that exams ask for and the store does not have.
#[derive(Serialize)]
struct MissingView {
    reference: String,
    exams: Vec<String>,
}

/// Logs an unexpected error under a fresh incident id and returns the error to answer with.
fn incident(err: &dyn std::fmt::Display) -> ApiError {
    let incident = IncidentId::new_v4();
    tracing::error!(%incident, error = %err, "list the images");
    ApiError(DomainError::Internal { incident })
}

pub async fn list(State(st): State<AppState>, who: Authed) -> ApiResult<Response> {
    // The role decides before anything else is read.
    if who.caller.role != Role::Proctor {
        return Err(ApiError(DomainError::Forbidden));
    }
    let Some(store) = provision::image_store(&st.svc) else {
        return Ok(json(StatusCode::OK, &serde_json::json!({ "images": [], "missing": [] })));
    };
    let wanted: Vec<(String, String)> = st
        .svc
        .catalog()
        .exams()
        .filter_map(|e| Some((provision::image_reference(e)?.to_string(), e.id.to_string())))
        .collect();
    let (images, resolved) = tokio::task::spawn_blocking(move || {
        let images = store.list();
        let resolved: Vec<(String, String, Option<String>)> = wanted
            .into_iter()
            .map(|(reference, exam)| {
                let digest = store.resolve(&reference).ok().map(|i| i.digest);
                (reference, exam, digest)
            })
            .collect();
        (images, resolved)
    })
    .await
    .map_err(|e| incident(&e))?;
    let images = images.map_err(|e| incident(&e))?;
    let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut using: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (reference, exam, digest) in resolved {
        match digest {
            Some(d) => using.entry(d).or_default().push(exam),
            None => missing.entry(reference).or_default().push(exam),
        }
    }
    let images: Vec<ImageView> = images
        .into_iter()
        .map(|i| ImageView {
            exams: using.remove(&i.digest).unwrap_or_default(),
            names: i.names,
            size_bytes: i.size_bytes,
            layers: i.layers.len(),
            digest: i.digest,
        })
        .collect();
    let missing: Vec<MissingView> =
        missing.into_iter().map(|(reference, exams)| MissingView { reference, exams }).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "images": images, "missing": missing })))
}
