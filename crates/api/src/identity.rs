//! The verified caller of a request.
//!
//! A request is authenticated by `Authorization: Bearer <JWT>` or, for browsers, by the `examroom_session` cookie,
//! which names a browser sign-in kept in the store (valid until its token's `exp`, until it is signed out, and only
//! under the token keys it was made with). A cookie-authenticated request that changes state must also carry a
//! matching `Origin` and `X-Examroom: 1`, which a cross-site form cannot send. Nothing else identifies anyone.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, Method};
use examroom_core::DomainError;
use examroom_sessions::Caller;

use crate::auth::{self, bearer_token, check_origin, cookie_token, is_sign_in_id, sign_in_id_hash};
use crate::error::ApiError;
use crate::AppState;

/// A verified caller.
#[derive(Clone, Debug)]
pub struct Authed {
    /// Who.
    pub caller: Caller,
    /// Authenticated by the browser cookie (so the CSRF rules apply).
    pub via_cookie: bool,
}

/// Seconds since the epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn header<'a>(parts: &'a Parts, name: &header::HeaderName) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a cookie-authenticated request may go ahead: state-changing methods need the `Origin` and `X-Examroom`
/// checks; a WebSocket upgrade needs the `Origin` check.
pub fn csrf_ok(parts: &Parts, state: &AppState) -> bool {
    let origin_ok = check_origin(
        header(parts, &header::ORIGIN),
        header(parts, &header::HOST),
        state.config.public_origin.as_deref(),
        state.config.secure_cookies,
    );
    let upgrade = header(parts, &header::UPGRADE).is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    if upgrade {
        return origin_ok;
    }
    if matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    origin_ok && parts.headers.get("x-examroom").is_some_and(|v| v.as_bytes() == b"1")
}

/// Authenticates a request: `Unauthenticated` without valid credentials, `Forbidden` when a cookie request fails the
/// CSRF rules. The WebSocket routes turn these into close codes 4401 and 4403.
pub async fn authenticate(parts: &Parts, state: &AppState) -> Result<Authed, DomainError> {
    if let Some(h) = header(parts, &header::AUTHORIZATION) {
        let token = bearer_token(h).ok_or(DomainError::Unauthenticated)?;
        let identity = state.keys.verify(token, now_unix()).map_err(|e| {
            tracing::info!(reason = %e, "refused credentials");
            DomainError::Unauthenticated
        })?;
        return Ok(Authed { caller: Caller { user: identity.user, role: identity.role }, via_cookie: false });
    }
    let Some(id) = sign_in_cookie(parts) else {
        return Err(DomainError::Unauthenticated);
    };
    let caller = signed_in(state, id).await?;
    if !csrf_ok(parts, state) {
        return Err(DomainError::Forbidden);
    }
    Ok(Authed { caller, via_cookie: true })
}

/// The value of the request's `examroom_session` cookie, if it has one.
pub fn sign_in_cookie(parts: &Parts) -> Option<&str> {
    header(parts, &header::COOKIE).and_then(cookie_token)
}

/// Who a sign-in cookie stands for: its sign-in must be in the store, not signed out, not past its token's `exp`,
/// and made under the server's current token keys.
async fn signed_in(state: &AppState, id: &str) -> Result<Caller, DomainError> {
    if !is_sign_in_id(id) {
        tracing::info!("refused credentials: the cookie is not a sign-in id");
        return Err(DomainError::Unauthenticated);
    }
    let now_ms = i64::try_from(now_unix()).unwrap_or(i64::MAX / 1000) * 1000;
    match state.svc.find_sign_in(&sign_in_id_hash(id)).await? {
        Some(rec) if rec.is_valid(now_ms, state.keys.fingerprint()) => Ok(Caller { user: rec.user_id, role: rec.role }),
        Some(rec) => {
            let why = if rec.signed_out_at.is_some() {
                "signed out"
            } else if now_ms >= rec.expires_at {
                "expired"
            } else {
                "made under other token keys"
            };
            tracing::info!(user_id = %rec.user_id, reason = why, "refused credentials: the sign-in is not valid");
            Err(DomainError::Unauthenticated)
        }
        None => {
            tracing::info!("refused credentials: unknown sign-in");
            Err(DomainError::Unauthenticated)
        }
    }
}

impl FromRequestParts<AppState> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        authenticate(parts, state).await.map_err(ApiError)
    }
}

/// The raw token of a Bearer request (for `POST /api/v1/auth/session`, which turns it into a cookie).
pub fn bearer(parts: &Parts) -> Option<&str> {
    header(parts, &header::AUTHORIZATION).and_then(auth::bearer_token)
}
