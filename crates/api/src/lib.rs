//! # examroom-api
//!
//! The HTTP edge: it translates requests into calls on the session service, and answers in the contract's shapes.
//! Identity comes only from a verified token (a Bearer header or the browser's cookie), never from the request's
//! content.
//!
//! # Layout
//! - [`auth`]: tokens, cookies, the `Origin` rule.
//! - [`identity`]: the extractor that turns a request into a verified caller (401/403 otherwise).
//! - [`error`]: every error as the contract's envelope.
//! - [`views`]: sessions and events as the API shows them (server-clock `remaining_seconds`, RFC 3339 times).
//! - [`routes`]: one file per resource; `routes/terminal.rs` is the terminal WebSocket.
//! - [`openapi`]: the OpenAPI document served at `/api/v1/openapi.json`.
//! - [`connections`]: the accept loop: header-read and idle timeouts, connection caps, status streams per user.
//! - [`headers`]: the security headers every answer gets, and which answers are compressed.
//! - [`telemetry`]: the Prometheus recorder, request and WebSocket metrics.
//! - [`ports`]: the ports origin, a listener of its own that serves what a candidate serves inside their environment
//!   to their browser, from a host per session and port.

pub mod auth;
pub mod connections;
pub mod error;
pub mod headers;
pub mod identity;
pub mod openapi;
pub mod ports;
pub mod routes;
pub mod telemetry;
pub mod tls;
pub mod views;

use std::sync::Arc;

use axum::Router;
use examroom_sessions::SessionService;
use metrics_exporter_prometheus::PrometheusHandle;

/// How the edge behaves.
#[derive(Clone, Debug, Default)]
pub struct ApiConfig {
    /// The origin browsers see (`https://exams.example.org`); when unset, the request's `Host` is used.
    pub public_origin: Option<String>,
    /// The server is behind TLS: the cookie is `Secure`, and without `public_origin` a browser's `Origin` must be
    /// `https://` (otherwise `http://`, the listener's own scheme).
    pub secure_cookies: bool,
    /// Connection caps and timeouts, status streams per user.
    pub limits: connections::EdgeLimits,
    /// Where the ports origin is, when this server serves ports (see [`ports`]).
    pub ports: Option<ports::PortsConfig>,
    /// Serve HTTPS (`serve --tls-cert/--tls-key`), see [`tls`].
    pub tls: Option<tls::Tls>,
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The lifecycle driver.
    pub svc: SessionService,
    /// Token verification.
    pub keys: Arc<auth::TokenKeys>,
    /// Edge settings.
    pub config: Arc<ApiConfig>,
    /// The Prometheus recorder, when installed.
    pub metrics: Option<PrometheusHandle>,
    /// Open status streams per user.
    pub streams: Arc<connections::StreamSlots>,
}

impl AppState {
    /// The state for a service, keys and settings.
    pub fn new(
        svc: SessionService,
        keys: auth::TokenKeys,
        config: ApiConfig,
        metrics: Option<PrometheusHandle>,
    ) -> AppState {
        let streams = connections::StreamSlots::new(config.limits.max_streams_per_user);
        AppState { svc, keys: Arc::new(keys), config: Arc::new(config), metrics, streams }
    }
}

/// The whole HTTP surface. Around every route and fallback, innermost first: the security headers, the request
/// metrics (which see the matched route), and compression.
pub fn router(state: AppState) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn(headers::security_headers))
        .layer(axum::middleware::from_fn(telemetry::count_requests))
        .layer(tower_http::compression::CompressionLayer::new().compress_when(headers::compress_when()))
        .with_state(state)
}

/// After shutdown begins, open connections (status streams, terminals) get this long to finish before they are
/// closed.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Serves until `shutdown` resolves, then stops accepting, lets in-flight requests finish, and closes whatever is
/// still open (status streams and terminals never finish by themselves) after [`SHUTDOWN_GRACE`]. Environments are
/// never touched: clients reconnect to the next server. Connections are held within the state's
/// [`ApiConfig::limits`] (see [`connections`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let limits = state.config.limits.clone();
    let tls = state.config.tls.clone();
    connections::serve_with(listener, router(state), limits, tls, shutdown, SHUTDOWN_GRACE).await
}
