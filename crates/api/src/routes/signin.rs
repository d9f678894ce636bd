//! `/signin#token=<JWT>`: the token stays in the fragment (never sent to a server, never logged); the page sends it
//! once as a Bearer token, gets the HttpOnly cookie, and removes the fragment from history.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>examroom: signing in</title>
<meta name="referrer" content="no-referrer"></head>
<body><main><h1>Signing you in…</h1><p id="msg">One moment.</p></main>
<script>
(async () => {
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
</script></body></html>"#;

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        PAGE,
    )
        .into_response()
}
