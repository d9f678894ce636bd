//! What every answer carries, and which answers are compressed.
//!
//! [`security_headers`] runs around every route and the fallbacks, so API JSON, health, metrics, error and page
//! answers all get the same floor; a route that sets one of these headers itself (the pages' `Content-Security-Policy`,
//! the assets' `Cache-Control`) keeps its own value:
//!
//! | header | value | why |
//! |---|---|---|
//! | `X-Content-Type-Options` | `nosniff` | a browser never guesses a script or a page out of JSON or text |
//! | `X-Frame-Options` | `DENY` | no page of this origin can be framed (clickjacking); older browsers |
//! | `Content-Security-Policy` | [`API_CSP`] unless the route set one | nothing loads from an API answer, and `frame-ancestors 'none'` for newer browsers |
//! | `Referrer-Policy` | `no-referrer` | addresses (session ids) never leak to another site |
//! | `Cache-Control` | `no-store` unless the route set one | answers name a person's session; assets and pages set their own |
//!
//! The WebSocket handshake (101) is left as it is.
//!
//! [`compress_when`] is the compression rule (gzip or brotli, as the client asks): text and JSON above a few bytes,
//! the script bundle included, but never a Server-Sent Events stream (compression would buffer its events), a
//! WebSocket handshake, images or fonts that are compressed already.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};

/// The policy of answers that are not pages: nothing may load, nothing may frame them.
pub const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Adds the headers of the table above to an answer that does not have them.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        return resp;
    }
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, API_CSP),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    resp
}

/// Which answers the compression layer may compress.
pub fn compress_when() -> impl Predicate {
    SizeAbove::new(256)
        .and(NotForContentType::SSE)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::const_new("font/"))
        .and(NotForContentType::const_new("application/octet-stream"))
        .and(NotForContentType::const_new("application/wasm"))
        .and(|status: StatusCode, _: axum::http::Version, _: &axum::http::HeaderMap, _: &axum::http::Extensions| {
            status != StatusCode::SWITCHING_PROTOCOLS
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn answer(status: StatusCode, content_type: &str, len: usize) -> Response {
        let mut r = Response::new(Body::from(vec![b'a'; len]));
        *r.status_mut() = status;
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        r
    }

    #[test]
    fn what_is_compressed() {
        let p = compress_when();
        assert!(p.should_compress(&answer(StatusCode::OK, "text/javascript; charset=utf-8", 400_000)));
        assert!(p.should_compress(&answer(StatusCode::OK, "application/json", 4096)));
        assert!(p.should_compress(&answer(StatusCode::NOT_FOUND, "text/html; charset=utf-8", 4096)));
        assert!(!p.should_compress(&answer(StatusCode::OK, "application/json", 100)), "too small to gain");
        assert!(!p.should_compress(&answer(StatusCode::OK, "text/event-stream", 4096)), "SSE is never buffered");
        assert!(!p.should_compress(&answer(StatusCode::OK, "font/woff2", 4096)));
        assert!(!p.should_compress(&answer(StatusCode::OK, "image/png", 4096)));
        assert!(p.should_compress(&answer(StatusCode::OK, "image/svg+xml", 4096)));
        let mut upgrade = answer(StatusCode::SWITCHING_PROTOCOLS, "text/plain", 0);
        upgrade.headers_mut().remove(header::CONTENT_TYPE);
        assert!(!p.should_compress(&upgrade));
    }
}
