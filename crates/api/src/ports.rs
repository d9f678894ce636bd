//! The ports origin: what a candidate serves inside their environment (a task "make the app answer on port 8000"),
//! proxied to their own browser, from an origin that is never examroom's.
//!
//! What a candidate serves is hostile content. On examroom's origin it could overwrite the sign-in cookie, register a
//! service worker that outlives the session on a shared exam-centre computer, or run script in a proctor's browser.
//! So each session's port is served from a host of its own, `p<port>-<session id>.<domain>` ([`PortsConfig`]), on a
//! listener of its own ([`serve`]), and:
//! - the way in is `GET /api/v1/sessions/{id}/ports/{port}/…` on examroom's origin ([`enter`]): it checks the owner
//!   (the sign-in cookie or token) and that the exam lists the port, then redirects to the port's host with a grant
//!   that expires in [`GRANT_TTL`]; the port's host turns it into a cookie of its own (`examroom_port`, HttpOnly,
//!   host-only), which every later request there must carry, and which is never passed to the candidate's server;
//! - every request is checked again (the session is the owner's, `ready` or `active`, the port listed) and dialled
//!   afresh through the shim (`Dial`): access stops the moment the session ends, and long-lived answers (a WebSocket,
//!   a stream) are cut then;
//! - `Set-Cookie` and `Service-Worker-Allowed` are removed from every answer, and a service worker's script is never
//!   served (browsers mark its fetch with `Service-Worker: script`): nothing the candidate serves can persist in the
//!   browser beyond the session;
//! - after the end, the port's host answers with `Clear-Site-Data`, so a browser that comes back wipes what the
//!   candidate's pages stored there;
//! - proctors get nothing here (the owner's browser only), so a proctor's page never renders it.
//!
//! The host must not share a registrable domain with examroom's own (a page on `a.example.org` can set cookies for
//! `example.org`): use a domain of its own, or `localhost` when examroom is served on an IP address (as `make run`
//! does). See `docs/SECURITY.md`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use examroom_core::{DomainError, SessionState};
use examroom_sessions::Caller;
use hyper_util::rt::TokioIo;

use crate::auth::PortGrant;
use crate::error::ApiError;
use crate::identity::authenticate;
use crate::AppState;

/// How long the grant in the redirect may take to be used.
pub const GRANT_TTL: Duration = Duration::from_secs(60);
/// How long the ports origin's own cookie lasts (each request is checked against the session anyway).
pub const COOKIE_TTL: Duration = Duration::from_secs(12 * 3600);
/// The ports origin's cookie.
pub const COOKIE: &str = "examroom_port";
/// The path on a port's host that takes a grant and sets the cookie.
pub const ENTER_PATH: &str = "/__examroom/enter";

/// Where ports are served.
#[derive(Clone, Debug)]
pub struct PortsConfig {
    /// The URL of a port's host, with `{name}` where its name (`p8000-<session id>`) goes: for example
    /// `https://{name}.ports.example.net`, or `http://{name}.localhost:8081`.
    pub url_template: String,
    /// The cookie is `Secure` (the ports origin is served over TLS).
    pub secure: bool,
}

impl PortsConfig {
    /// A template is valid when it is an http(s) URL with `{name}` as the first label of its host.
    pub fn new(url_template: &str) -> Result<PortsConfig, String> {
        let rest = url_template
            .strip_prefix("https://")
            .map(|r| (r, true))
            .or_else(|| url_template.strip_prefix("http://").map(|r| (r, false)));
        let Some((rest, secure)) = rest else {
            return Err(format!("the ports URL {url_template:?} must start with http:// or https://"));
        };
        if !rest.starts_with("{name}.") || rest.matches("{name}").count() != 1 || rest.contains('/') {
            return Err(format!(
                "the ports URL {url_template:?} must be SCHEME://{{name}}.DOMAIN[:PORT], with nothing after the host"
            ));
        }
        Ok(PortsConfig { url_template: url_template.to_string(), secure })
    }

    /// The URL of a session's port.
    pub fn url_for(&self, session: &str, port: u16) -> String {
        self.url_template.replace("{name}", &host_name(session, port))
    }
}

/// The first label of a port's host: `p<port>-<session id>`.
pub fn host_name(session: &str, port: u16) -> String {
    format!("p{port}-{session}")
}

/// The session and port named by a `Host` header, if it names one.
pub fn parse_host(host: &str) -> Option<(String, u16)> {
    let name = host.split('.').next()?;
    let (port, session) = name.strip_prefix('p')?.split_once('-')?;
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    let session = session.to_ascii_lowercase();
    (session.len() == 36 && session.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')).then_some((session, port))
}

/// `GET /api/v1/sessions/{id}/ports/{port}[/{*rest}]` on examroom's origin: the owner's way in.
pub async fn enter(State(st): State<AppState>, Path(params): Path<Vec<(String, String)>>, req: Request) -> Response {
    let (parts, _) = req.into_parts();
    let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let id = get("id").unwrap_or_default().to_string();
    let who = match authenticate(&parts, &st).await {
        Ok(w) => w,
        Err(e) => return ApiError(e).into_response(),
    };
    let Some(port) = get("port").and_then(|p| p.parse::<u16>().ok()).filter(|p| *p > 0) else {
        return ApiError(DomainError::NotFound).into_response();
    };
    if parts.headers.contains_key(header::UPGRADE) {
        return ApiError(DomainError::invalid_request(
            "a port's WebSockets are served from the port's own address; open the port's page first",
        ))
        .into_response();
    }
    // The same checks as every request on the port's host, so that a refusal is shown here, on examroom's page.
    let rec = match st.svc.dial_port(&who.caller, &id, port).await {
        Ok((rec, _stream)) => rec,
        Err(e) => return ApiError(e).into_response(),
    };
    // Only a session whose exam lists the port gets this far; its server may have been started again without ports.
    let Some(ports) = st.config.ports.clone() else {
        tracing::warn!(session_id = %rec.id, port, "a port was asked for, but this server serves no ports (--ports-listen)");
        return ApiError(DomainError::ServiceUnavailable { incident: None }).into_response();
    };
    let rest = get("rest").unwrap_or_default();
    let mut path = format!("/{rest}");
    if let Some(q) = parts.uri.query() {
        path.push('?');
        path.push_str(q);
    }
    let grant = PortGrant { sid: rec.id.to_string(), port };
    let token = st.keys.mint_port_grant(&rec.user_id, grant, GRANT_TTL, now_unix());
    let location = format!(
        "{}{ENTER_PATH}?grant={token}&path={}",
        ports.url_for(&rec.id.to_string(), port),
        percent_encode(&path)
    );
    redirect(&location)
}

fn redirect(location: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Percent-encodes everything but unreserved characters and `/`.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// A path to go to after the grant: on the same host only (never `//other` or `/\other`).
fn safe_path(p: &str) -> Option<&str> {
    let ok = p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.bytes().any(|b| b < 0x20);
    ok.then_some(p)
}

/// The ports origin's router: every request goes to [`proxy`].
pub fn router(state: AppState) -> Router {
    Router::new().fallback(proxy).with_state(state)
}

/// Serves the ports origin on its own listener until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.limits.clone();
    crate::connections::serve(listener, router(state), limits, shutdown, crate::SHUTDOWN_GRACE).await
}

/// An error answer on a port's host: the contract's envelope, plus `Clear-Site-Data` once the session has ended.
fn refuse(e: DomainError) -> Response {
    let ended = matches!(e, DomainError::SessionEnded);
    let mut r = ApiError(e).into_response();
    if ended {
        r.headers_mut().insert("clear-site-data", HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""));
    }
    r
}

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|v| {
        v.split(';').filter_map(|p| p.split_once('=')).find(|(n, _)| n.trim() == name).map(|(_, v)| v.trim())
    })
}

/// Every request on a port's host.
async fn proxy(State(st): State<AppState>, mut req: Request) -> Response {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default().to_string();
    let Some((sid, port)) = parse_host(&host) else {
        return refuse(DomainError::NotFound);
    };
    let Some(ports) = st.config.ports.clone() else {
        return refuse(DomainError::NotFound);
    };
    let now = now_unix();
    if req.uri().path() == ENTER_PATH {
        return take_grant(&st, &ports, &sid, port, req.uri().query().unwrap_or_default(), now);
    }
    let Some(token) = cookie_value(req.headers(), COOKIE) else {
        return refuse(DomainError::Unauthenticated);
    };
    let user = match st.keys.verify_port_grant(token, now) {
        Ok((user, g)) if g.sid == sid && g.port == port => user,
        _ => return refuse(DomainError::Unauthenticated),
    };
    if req.headers().get("service-worker").is_some_and(|v| v.as_bytes() == b"script") {
        return refuse(DomainError::Forbidden);
    }
    let caller = Caller::candidate(user);
    let (rec, stream) = match st.svc.dial_port(&caller, &sid, port).await {
        Ok(x) => x,
        Err(e) => return refuse(e),
    };

    // The request as the candidate's server sees it: its own path, `Host: localhost:PORT`, no examroom cookie, no
    // hop-by-hop headers (an upgrade is kept).
    let upgrade = req.headers().get(header::UPGRADE).cloned();
    let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/".into());
    parts.uri = match path.parse() {
        Ok(u) => u,
        Err(_) => return refuse(DomainError::invalid_request("the path is not valid")),
    };
    strip_hop_by_hop(&mut parts.headers);
    if let Some(u) = &upgrade {
        parts.headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        parts.headers.insert(header::UPGRADE, u.clone());
    }
    let cookies: Vec<String> = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';').map(str::trim).filter(|c| !c.starts_with(&format!("{COOKIE}="))).map(String::from))
        .filter(|c| !c.is_empty())
        .collect();
    parts.headers.remove(header::COOKIE);
    if !cookies.is_empty() {
        if let Ok(v) = HeaderValue::from_str(&cookies.join("; ")) {
            parts.headers.insert(header::COOKIE, v);
        }
    }
    if let Ok(v) = HeaderValue::from_str(&format!("localhost:{port}")) {
        parts.headers.insert(header::HOST, v);
    }
    let outgoing = axum::http::Request::from_parts(parts, body);

    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
        Ok(x) => x,
        Err(_) => return refuse(DomainError::PortNotListening { port }),
    };
    // The connection to the candidate's server lives until it is done or the session ends, whichever is first.
    let ended = session_ended(st.clone(), rec.clone());
    let driver = tokio::spawn(async move {
        tokio::select! {
            _ = conn.with_upgrades() => {}
            _ = ended => {}
        }
    });
    let mut answer = match sender.send_request(outgoing).await {
        Ok(a) => a,
        Err(e) => {
            driver.abort();
            tracing::info!(session_id = %rec.id, port, error = %e, "the candidate's server did not answer");
            return refuse(DomainError::PortNotListening { port });
        }
    };
    if answer.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            let server_upgrade = hyper::upgrade::on(&mut answer);
            let ended = session_ended(st.clone(), rec.clone());
            tokio::spawn(async move {
                let (Ok(client), Ok(server)) = (client_upgrade.await, server_upgrade.await) else { return };
                let (mut client, mut server) = (TokioIo::new(client), TokioIo::new(server));
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = ended => {}
                }
            });
        }
    }
    let (mut parts, body) = answer.into_parts();
    if parts.status != StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(&mut parts.headers);
    }
    parts.headers.remove(header::SET_COOKIE);
    parts.headers.remove("service-worker-allowed");
    parts.headers.remove("clear-site-data");
    Response::from_parts(parts, Body::new(body))
}

/// `ENTER_PATH?grant=…&path=…`: a valid grant for this host becomes the host's cookie, then the path.
fn take_grant(st: &AppState, ports: &PortsConfig, sid: &str, port: u16, query: &str, now: u64) -> Response {
    let param =
        |k: &str| query.split('&').filter_map(|p| p.split_once('=')).find(|(n, _)| *n == k).map(|(_, v)| v.to_string());
    let grant = param("grant").unwrap_or_default();
    let user = match st.keys.verify_port_grant(&grant, now) {
        Ok((user, g)) if g.sid == sid && g.port == port => user,
        _ => return refuse(DomainError::Unauthenticated),
    };
    let path = param("path").and_then(|p| percent_decode(&p)).unwrap_or_else(|| "/".into());
    let Some(path) = safe_path(&path) else {
        return refuse(DomainError::invalid_request("the path to open is not on this host"));
    };
    let cookie = st.keys.mint_port_grant(&user, PortGrant { sid: sid.to_string(), port }, COOKIE_TTL, now);
    let mut r = redirect(path);
    let secure = if ports.secure { "; Secure" } else { "" };
    let set = format!("{COOKIE}={cookie}; HttpOnly; SameSite=Lax; Path=/; Max-Age={}{secure}", COOKIE_TTL.as_secs());
    if let Ok(v) = HeaderValue::from_str(&set) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// Resolves once the session is no longer `ready` or `active`.
async fn session_ended(st: AppState, rec: examroom_store::SessionRecord) {
    let mut updates = st.svc.subscribe();
    let caller = Caller::candidate(rec.user_id.clone());
    let open = |s: SessionState| matches!(s, SessionState::Ready | SessionState::Active);
    match st.svc.get(&caller, &rec.id.to_string()).await {
        Ok(r) if open(r.state) => {}
        _ => return,
    }
    loop {
        match updates.recv().await {
            Ok(new) if new.id == rec.id && !open(new.state) => return,
            Ok(_) => {}
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                match st.svc.get(&caller, &rec.id.to_string()).await {
                    Ok(r) if open(r.state) => {}
                    _ => return,
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Removes the hop-by-hop headers (RFC 9110 §7.6.1), and those the `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in ["connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade"] {
        headers.remove(n);
    }
    headers.remove(header::PROXY_AUTHORIZATION);
    headers.remove(header::PROXY_AUTHENTICATE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_a_session_and_a_port() {
        let sid = "0b9a7c1e-3f2d-4c55-9e0a-1234567890ab";
        assert_eq!(parse_host(&format!("p8000-{sid}.localhost:8081")), Some((sid.to_string(), 8000)));
        assert_eq!(parse_host(&format!("P8000-{}.ports.example.net", sid.to_uppercase())), None);
        assert_eq!(parse_host(&format!("p8000-{}.x", sid.to_uppercase())), Some((sid.to_string(), 8000)));
        assert_eq!(parse_host(&format!("p0-{sid}.localhost")), None);
        assert_eq!(parse_host(&format!("p70000-{sid}.localhost")), None);
        assert_eq!(parse_host("p8000-short.localhost"), None);
        assert_eq!(parse_host("localhost:8081"), None);
        assert_eq!(parse_host(""), None);
        let c = PortsConfig::new("http://{name}.localhost:8081").unwrap();
        assert_eq!(c.url_for(sid, 8000), format!("http://p8000-{sid}.localhost:8081"));
        assert!(!c.secure);
        assert!(PortsConfig::new("https://{name}.ports.example.net").unwrap().secure);
        assert!(PortsConfig::new("ftp://{name}.x").is_err());
        assert!(PortsConfig::new("http://x.{name}.y").is_err());
        assert!(PortsConfig::new("http://{name}.x/path").is_err());
    }

    #[test]
    fn the_path_after_a_grant_stays_on_the_host() {
        assert_eq!(safe_path("/a/b?c=1"), Some("/a/b?c=1"));
        assert_eq!(safe_path("//evil.example"), None);
        assert_eq!(safe_path("/\\evil.example"), None);
        assert_eq!(safe_path("https://evil.example"), None);
        assert_eq!(safe_path("/a\r\nSet-Cookie: x"), None);
        let p = "/app/index.html?q=a b&x=1";
        assert_eq!(percent_decode(&percent_encode(p)).as_deref(), Some(p));
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key(header::CONTENT_TYPE));
    }
}

/// Hostile input (issue 16): any `Host`, path or grant is answered, never a panic, and a path after a grant never
/// leaves the host.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_host_names_a_port_or_nothing(host in ".{0,120}") {
            if let Some((sid, port)) = parse_host(&host) {
                prop_assert!(port > 0 && sid.len() == 36);
            }
        }

        #[test]
        fn a_decoded_path_is_on_the_host_or_refused(raw in ".{0,200}") {
            if let Some(p) = percent_decode(&raw) {
                if let Some(safe) = safe_path(&p) {
                    prop_assert!(safe.starts_with('/') && !safe.starts_with("//") && !safe.starts_with("/\\"));
                    prop_assert!(!safe.bytes().any(|b| b < 0x20));
                }
            }
        }

        #[test]
        fn any_grant_is_checked_not_trusted(token in "[A-Za-z0-9_.-]{0,400}") {
            let keys = crate::auth::TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef-property");
            prop_assert!(keys.verify_port_grant(&token, 1_700_000_000).is_err());
            prop_assert!(keys.verify(&token, 1_700_000_000).is_err());
        }
    }
}
