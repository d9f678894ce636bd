//! The browser UI: the files Vite builds into `web/dist`, served for `/`, `/sessions/*`, `/proctor` (all three answer
//! `index.html`; the page routes on `location.pathname`) and `/assets/*` (hashed names, cached for a year).
//!
//! Release builds embed `web/dist`; debug builds read it from disk at run time (rust-embed's default), so `npm run
//! build` is picked up without rebuilding the server. The build never needs node: when `web/dist` holds no
//! `index.html`, these routes answer a plain page that says how to build the UI.
//!
//! `web/dist/.gitkeep` is committed (and `web/public/.gitkeep` puts it back after every Vite build) so that the folder
//! always exists when the server is compiled: rust-embed's debug reader compares paths against the folder's canonical
//! path as it was at compile time, and a folder missing then would never serve anything until the next compile.
//! `allow_missing` only keeps the build working if someone deletes the folder anyway.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Dist;

/// What the pages may load: only this origin (scripts, styles, the status stream and the terminal WebSocket).
/// xterm.js sets inline styles, hence `'unsafe-inline'` for styles only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                   font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
                   frame-ancestors 'none'; form-action 'self'";

const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>examroom</title></head>
<body><main><h1>The web UI is not built</h1>
<p>Run <code>make web</code> (or <code>cd web &amp;&amp; npm ci &amp;&amp; npm run build</code>) and reload this page.
The API works without it: see <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p></main></body></html>"#;

/// The content type for a file name.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "ttf" => "font/ttf",
        "txt" => "text/plain; charset=utf-8",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

fn with_headers(mut r: Response, content_type: &'static str, cache: &'static str) -> Response {
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// `index.html` for every page of the UI, never cached (it names the current hashed assets).
pub async fn index() -> Response {
    match Dist::get("index.html") {
        Some(f) => {
            let mut r = with_headers(f.data.into_owned().into_response(), "text/html; charset=utf-8", "no-cache");
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            r.headers_mut().insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            r
        }
        None => with_headers(
            (StatusCode::SERVICE_UNAVAILABLE, NOT_BUILT).into_response(),
            "text/html; charset=utf-8",
            "no-store",
        ),
    }
}

/// `/sessions/{id}` and anything below it: the same page.
pub async fn index_under(_rest: Path<String>) -> Response {
    index().await
}

/// `/assets/{path}`: Vite's hashed files, immutable.
pub async fn asset(Path(path): Path<String>) -> Response {
    let name = format!("assets/{path}");
    if path.split('/').any(|seg| seg.is_empty() || seg == "." || seg == "..") {
        return super::not_found().await.into_response();
    }
    match Dist::get(&name) {
        Some(f) => with_headers(
            f.data.into_owned().into_response(),
            content_type(&name),
            "public, max-age=31536000, immutable",
        ),
        None => super::not_found().await.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("assets/index-abc.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("assets/index-abc.CSS"), "text/css; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("assets/x"), "application/octet-stream");
    }
}
