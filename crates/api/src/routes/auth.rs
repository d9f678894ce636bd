//! Browser sign-in: the page sends its token once as a Bearer token; the answer sets the HttpOnly cookie.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use examroom_core::DomainError;

use crate::auth::{clear_cookie, session_cookie};
use crate::error::{ApiError, ApiResult};
use crate::identity::{bearer, now_unix, Authed};
use crate::AppState;

/// `POST /api/v1/auth/session` with `Authorization: Bearer <JWT>`: sets `examroom_session`.
pub async fn sign_in(State(st): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let token = bearer(&parts).ok_or(ApiError(DomainError::Unauthenticated))?;
    let now = now_unix();
    let identity = st.keys.verify(token, now).map_err(|_| ApiError(DomainError::Unauthenticated))?;
    let exp = st.keys.expiry(token).unwrap_or(now);
    let cookie = session_cookie(token, exp, now, st.config.secure_cookies);
    let mut r = super::json(
        StatusCode::OK,
        &serde_json::json!({ "user_id": identity.user.to_string(), "role": identity.role.as_str(), "expires_at": crate::views::rfc3339(exp as i64 * 1000) }),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}

/// `GET /api/v1/auth/session`: who the caller is, `{ "user_id", "role" }` (401 when not signed in).
pub async fn whoami(who: Authed) -> Response {
    super::json(
        StatusCode::OK,
        &serde_json::json!({ "user_id": who.caller.user.to_string(), "role": who.caller.role.as_str() }),
    )
}

/// `DELETE /api/v1/auth/session`: clears the cookie.
pub async fn sign_out(State(st): State<AppState>, _who: Authed) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(st.config.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
