//! The edge's metrics, and the Prometheus recorder that `/metrics` renders.
//!
//! - [`install_recorder`]: the process-wide recorder, with bucketed histograms for every latency (never summaries:
//!   their quantiles over few samples are estimates that need not even be monotonic), and HELP text for every
//!   metric ([`describe`]).
//! - [`count_requests`]: a middleware around every route recording [`HTTP_REQUESTS`] and [`HTTP_DURATION`]. Labels are
//!   bounded: `route` is the matched route template (`/api/v1/sessions/{id}`), never the raw path, and `unmatched`
//!   for the fallback; `method` is a standard method or `other`; `status` is what the server answered.
//! - [`WsConnection`]: one WebSocket connection, for [`WS_OPENED`], [`WS_CLOSED`] and [`WS_LIVE`].
//!
//! The durations are to the answer's head: a status stream or a terminal lasts as long as it stays open, which the
//! WebSocket metrics count instead.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Counter: requests answered, by `route`, `method` and `status`.
pub const HTTP_REQUESTS: &str = "examroom_http_requests_total";
/// Histogram (seconds): from a request to its answer's head, by `route`.
pub const HTTP_DURATION: &str = "examroom_http_request_duration_seconds";
/// Counter: WebSocket connections accepted, by `endpoint` (`terminal`).
pub const WS_OPENED: &str = "examroom_websocket_connections_opened_total";
/// Counter: WebSocket connections closed, by `endpoint` and `code`: the close code the server sent, or `client` when
/// the client closed the connection or went away.
pub const WS_CLOSED: &str = "examroom_websocket_connections_closed_total";
/// Gauge: WebSocket connections open now, by `endpoint`.
pub const WS_LIVE: &str = "examroom_websocket_connections";

/// Buckets (seconds) for answers that should take milliseconds.
const FAST: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
/// Buckets (seconds) for provisioning and teardown, which take from a fraction of a second to minutes.
const SLOW: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0];

/// Installs the process-wide recorder and describes every metric. Call it once; a second call fails.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    use examroom_sessions::metrics as sessions;
    let handle = PrometheusBuilder::new()
        .set_buckets(FAST)?
        .set_buckets_for_metric(Matcher::Full(sessions::START_LATENCY.into()), SLOW)?
        .set_buckets_for_metric(Matcher::Full(sessions::RELEASE_LATENCY.into()), SLOW)?
        .set_buckets_for_metric(Matcher::Full(sessions::POOL_FILL_DURATION.into()), SLOW)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

/// HELP text (and units) for every metric the server records: the session service's and the edge's.
pub fn describe() {
    examroom_sessions::metrics::describe();
    describe_counter!(HTTP_REQUESTS, Unit::Count, "HTTP requests answered, by route template, method and status.");
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time from an HTTP request to its answer's head, by route template."
    );
    describe_counter!(WS_OPENED, Unit::Count, "WebSocket connections accepted, by endpoint.");
    describe_counter!(
        WS_CLOSED,
        Unit::Count,
        "WebSocket connections closed, by endpoint and the close code the server sent (client: the client closed \
         or went away)."
    );
    describe_gauge!(WS_LIVE, Unit::Count, "WebSocket connections open now, by endpoint.");
    use crate::connections as c;
    describe_gauge!(c::METRIC_CONNECTIONS, Unit::Count, "HTTP connections open now (upgraded WebSockets included).");
    describe_counter!(c::METRIC_REFUSED, Unit::Count, "Connections refused over a cap, by reason (total, address).");
    describe_counter!(
        c::METRIC_TIMED_OUT,
        Unit::Count,
        "Connections closed by a timeout, by reason (header_read, idle)."
    );
    describe_counter!(c::METRIC_ACCEPT_ERRORS, Unit::Count, "Failed accepts, by kind (out_of_resources, other).");
    describe_counter!(
        c::METRIC_STREAMS_REFUSED,
        Unit::Count,
        "Status streams refused because the user holds as many as they may."
    );
}

/// The `method` label: a standard method, or `other` (a client may send any token as a method).
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Records [`HTTP_REQUESTS`] and [`HTTP_DURATION`] for one request.
pub async fn count_requests(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(req.method());
    let t0 = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    histogram!(HTTP_DURATION, "route" => route.clone()).record(t0.elapsed().as_secs_f64());
    counter!(HTTP_REQUESTS, "route" => route, "method" => method, "status" => status).increment(1);
    resp
}

/// One open WebSocket connection: counted as opened when made, and as closed (with the code the server sent, or
/// `client`) when dropped.
#[derive(Debug)]
pub struct WsConnection {
    endpoint: &'static str,
    code: Option<u16>,
}

impl WsConnection {
    /// A connection to `endpoint` was accepted.
    pub fn open(endpoint: &'static str) -> WsConnection {
        counter!(WS_OPENED, "endpoint" => endpoint).increment(1);
        gauge!(WS_LIVE, "endpoint" => endpoint).increment(1.0);
        WsConnection { endpoint, code: None }
    }

    /// The server closed the connection with `code` (the first close counts).
    pub fn closed_by_server(&mut self, code: u16) {
        self.code.get_or_insert(code);
    }
}

impl Drop for WsConnection {
    fn drop(&mut self) {
        let code = self.code.map_or_else(|| "client".to_owned(), |c| c.to_string());
        counter!(WS_CLOSED, "endpoint" => self.endpoint, "code" => code).increment(1);
        gauge!(WS_LIVE, "endpoint" => self.endpoint).decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_a_bounded_set() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"X-ANYTHING-AT-ALL").unwrap()), "other");
    }

    #[test]
    fn buckets_ascend() {
        for b in [FAST, SLOW] {
            assert!(b.windows(2).all(|w| w[0] < w[1]), "{b:?}");
        }
    }
}
