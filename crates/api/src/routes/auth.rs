//! Browser sign-in: the page sends its token once as a Bearer token; the answer sets the HttpOnly cookie, which holds
//! a random sign-in id (never the token). Signing out ends that sign-in in the store: the old cookie is refused from
//! then on, also after a restart.

use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use examroom_core::DomainError;

use crate::auth::{clear_cookie, is_sign_in_id, new_sign_in_id, session_cookie, sign_in_id_hash};
use crate::error::{ApiError, ApiResult};
use crate::identity::{bearer, now_unix, sign_in_cookie, Authed};
use crate::AppState;

/// `POST /api/v1/auth/session` with `Authorization: Bearer <JWT>`: sets `examroom_session`.
pub async fn sign_in(State(st): State<AppState>, parts: Parts) -> ApiResult<Response> {
    let token = bearer(&parts).ok_or(ApiError(DomainError::Unauthenticated))?;
    let now = now_unix();
    let identity = st.keys.verify(token, now).map_err(|_| ApiError(DomainError::Unauthenticated))?;
    let exp = st.keys.expiry(token).unwrap_or(now);
    let id = new_sign_in_id();
    let ms = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000;
    let rec = examroom_store::SignInRecord {
        id_hash: sign_in_id_hash(&id),
        user_id: identity.user.clone(),
        role: identity.role,
        key_fingerprint: st.keys.fingerprint().to_string(),
        created_at: ms(now),
        expires_at: ms(exp),
        signed_out_at: None,
    };
    st.svc.record_sign_in(&rec).await?;
    tracing::info!(user_id = %identity.user, role = identity.role.as_str(), "browser signed in");
    let cookie = session_cookie(&id, exp, now, st.config.secure_cookies);
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

/// `DELETE /api/v1/auth/session`: ends the sign-in the cookie names (so that cookie is refused from now on) and
/// clears the cookie. A bearer token stays valid: it is the operator's, and expires on its own.
pub async fn sign_out(State(st): State<AppState>, who: Authed, parts: Parts) -> ApiResult<Response> {
    if let Some(id) = sign_in_cookie(&parts).filter(|id| is_sign_in_id(id)) {
        if st.svc.end_sign_in(&sign_in_id_hash(id)).await? {
            tracing::info!(user_id = %who.caller.user, "browser signed out");
        }
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    if let Ok(v) = HeaderValue::from_str(&clear_cookie(st.config.secure_cookies)) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(r)
}
