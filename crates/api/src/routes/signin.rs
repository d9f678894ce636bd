//! `/signin#token=<JWT>`: the token stays in the fragment (never sent to a server, never logged); the page sends it
//! once as a Bearer token, gets the HttpOnly cookie, and removes the fragment from history.
//!
//! The page's script is served on its own (`/signin.js`) so that the page's policy can forbid every inline script:
//! [`CSP`] lets it load that one script from this origin, call this origin, and nothing else; nobody may frame it.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The sign-in page's policy.
pub const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; base-uri 'none'; \
                       form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>examroom: signing in</title>
<meta name="referrer" content="no-referrer">
<script src="/signin.js" defer></script></head>
<body><main><h1>Signing you in…</h1><p id="msg">One moment.</p></main></body></html>"#;

const SCRIPT: &str = r#"(async () => {
  const msg = document.getElementById('msg');
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  history.replaceState(null, '', location.pathname);
  if (!m) { msg.textContent = 'This sign-in link has no token. Ask for a new link.'; return; }
  try {
    const r = await fetch('/api/v1/auth/session', { method: 'POST', headers: { 'Authorization': 'Bearer ' + decodeURIComponent(m[1]) } });
    if (!r.ok) { msg.textContent = 'This sign-in link is not valid or has expired. Ask for a new link.'; return; }
    msg.textContent = 'Signed in.';
    location.replace('/');
  } catch (e) { msg.textContent = 'The server could not be reached. Check your connection and open the link again.'; }
})();
"#;

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, CSP),
        ],
        PAGE,
    )
        .into_response()
}

/// `/signin.js`: the page's script.
pub async fn script() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], SCRIPT)
        .into_response()
}
