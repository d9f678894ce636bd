//! The server's own accept loop: how many connections it holds, and for how long (issue 9).
//!
//! `axum::serve` holds every connection for as long as the client likes: no header-read timeout, no limit. Here:
//!
//! - **Header-read timeout** ([`EdgeLimits::header_read_timeout`], HTTP/1 through hyper's timer): a client has this
//!   long to send a request's headers, counted from when the server starts waiting for them. On a kept-alive
//!   connection that is the end of the previous answer, so an idle keep-alive connection is closed after this long
//!   too.
//! - **Idle timeout** ([`EdgeLimits::idle_timeout`]): a connection that moves no byte either way for this long is
//!   closed (a request body that stopped coming, a client that went silent mid-request). A status stream sends a
//!   heartbeat every 2 s, so it is never idle; a WebSocket, once upgraded, is the terminal relay's (it has its own
//!   bounds) and is not subject to it.
//! - **Caps** ([`Gate`]): at most [`EdgeLimits::max_connections`] connections at once (derive it from the
//!   descriptor limit, leaving a reserve for shims and the database: [`max_connections_for`]), and at most
//!   [`EdgeLimits::max_connections_per_address`] from one address (a generous ceiling: an exam room behind one NAT or
//!   one reverse proxy shares an address). A connection over a cap is answered `503 too_many_connections` with
//!   `Retry-After` and closed at once; if too many refusals are already being written, it is closed without an
//!   answer. Upgraded WebSockets count until they close.
//! - **Status streams per user** ([`StreamSlots`]): at most [`EdgeLimits::max_streams_per_user`] open SSE streams per
//!   user; the next one is `429 too_many_streams`.
//! - **Out of descriptors on accept** (`EMFILE`, `ENFILE`, ...): the loop waits 100 ms and tries again, rather than
//!   spinning; the pending connections wait in the kernel's backlog.
//!
//! Shutdown is graceful as before: stop accepting, let in-flight requests finish, close whatever is still open after
//! [`SHUTDOWN_GRACE`](crate::SHUTDOWN_GRACE).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use examroom_core::{DomainError, UserId};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Gauge: HTTP connections open (upgraded WebSockets included).
pub const METRIC_CONNECTIONS: &str = "examroom_http_connections";
/// Counter: connections refused over a cap, by `reason` (`total`, `address`).
pub const METRIC_REFUSED: &str = "examroom_http_connections_refused_total";
/// Counter: connections closed by a timeout, by `reason` (`header_read`, `idle`).
pub const METRIC_TIMED_OUT: &str = "examroom_http_connections_timed_out_total";
/// Counter: failed accepts, by `kind` (`out_of_resources`, `other`).
pub const METRIC_ACCEPT_ERRORS: &str = "examroom_http_accept_errors_total";
/// Counter: status streams refused because the user holds as many as they may.
pub const METRIC_STREAMS_REFUSED: &str = "examroom_status_streams_refused_total";

/// Refusals being written at once, beyond which an over-cap connection is closed without an answer.
const MAX_REFUSALS_IN_FLIGHT: usize = 64;

/// How long writing a refusal may take.
const REFUSAL_BUDGET: Duration = Duration::from_secs(2);

/// How the server limits its connections.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once from one IP address.
    pub max_connections_per_address: usize,
    /// The most a client may take to send a request's headers (also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// A connection that moves no byte for this long is closed.
    pub idle_timeout: Duration,
    /// Status (SSE) streams one user may hold open.
    pub max_streams_per_user: usize,
    /// `Retry-After` of a refused connection, in seconds.
    pub retry_after_secs: u32,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_connections: 4096,
            max_connections_per_address: 1000,
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_streams_per_user: 8,
            retry_after_secs: 5,
        }
    }
}

/// Descriptors kept back from HTTP connections for everything else: the database, logs, the listener, the runtime's
/// own, plus four per live session (its terminal's shim socket, an exec or status connection, a create's pipes).
pub fn descriptor_reserve(max_live_sessions: usize) -> usize {
    256 + 4 * max_live_sessions
}

/// The default connection cap for a process allowed `nofile` descriptors: what is left after
/// [`descriptor_reserve`], and never less than 64 (a process with fewer descriptors than that is misconfigured, and
/// `serve` says so).
pub fn max_connections_for(nofile: u64, max_live_sessions: usize) -> usize {
    let nofile = usize::try_from(nofile).unwrap_or(usize::MAX);
    nofile.saturating_sub(descriptor_reserve(max_live_sessions)).max(64)
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// [`EdgeLimits::max_connections`] are open.
    Total,
    /// [`EdgeLimits::max_connections_per_address`] are open from this address.
    Address,
}

impl Refusal {
    fn as_str(self) -> &'static str {
        match self {
            Refusal::Total => "total",
            Refusal::Address => "address",
        }
    }
}

/// Counts open connections, in all and per address, against the caps.
#[derive(Debug)]
pub struct Gate {
    max_total: usize,
    max_per_address: usize,
    open: AtomicUsize,
    by_address: Mutex<HashMap<IpAddr, usize>>,
    refusing: AtomicUsize,
}

/// An admitted connection: it counts until this is dropped.
#[derive(Debug)]
pub struct Admitted {
    gate: Arc<Gate>,
    address: IpAddr,
}

impl Gate {
    /// A gate with these caps.
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Gate> {
        Arc::new(Gate {
            max_total,
            max_per_address,
            open: AtomicUsize::new(0),
            by_address: Mutex::new(HashMap::new()),
            refusing: AtomicUsize::new(0),
        })
    }

    /// Admits a connection from `address`, or says which cap it is over.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Result<Admitted, Refusal> {
        let mut by_address = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if self.open.load(Ordering::Relaxed) >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = by_address.entry(address).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Refusal::Address);
        }
        *n += 1;
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        ::metrics::gauge!(METRIC_CONNECTIONS).set(open as f64);
        Ok(Admitted { gate: self.clone(), address })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut by_address = self.gate.by_address.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                by_address.remove(&self.address);
            }
        }
        let open = self.gate.open.fetch_sub(1, Ordering::Relaxed) - 1;
        ::metrics::gauge!(METRIC_CONNECTIONS).set(open as f64);
    }
}

/// Open status streams per user, against [`EdgeLimits::max_streams_per_user`].
#[derive(Debug)]
pub struct StreamSlots {
    limit: usize,
    held: Mutex<HashMap<UserId, usize>>,
}

/// One open status stream; the slot is free again when this is dropped.
#[derive(Debug)]
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    user: UserId,
}

impl StreamSlots {
    /// At most `limit` streams per user.
    pub fn new(limit: usize) -> Arc<StreamSlots> {
        Arc::new(StreamSlots { limit, held: Mutex::new(HashMap::new()) })
    }

    /// A slot for one more stream of `user`, or `too_many_streams`.
    pub fn acquire(self: &Arc<Self>, user: &UserId) -> Result<StreamSlot, DomainError> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(user.clone()).or_insert(0);
        if *n >= self.limit {
            ::metrics::counter!(METRIC_STREAMS_REFUSED).increment(1);
            tracing::info!(user_id = %user, limit = self.limit, "status stream refused: too many open");
            return Err(DomainError::TooManyStreams { limit: u32::try_from(self.limit).unwrap_or(u32::MAX) });
        }
        *n += 1;
        Ok(StreamSlot { slots: self.clone(), user: user.clone() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// When a connection last moved a byte, in milliseconds since `epoch`.
struct Activity {
    epoch: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity { epoch: Instant::now(), last_ms: AtomicU64::new(0) })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// A TCP stream that records its activity and holds its place at the [`Gate`] for as long as it lives (also after
/// a WebSocket upgrade, when hyper hands it to the WebSocket).
struct Tracked<S> {
    io: S,
    activity: Arc<Activity>,
    _admitted: Admitted,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` resolves; then stops accepting, lets in-flight
/// requests finish, and closes what is still open after `grace`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    serve_with(listener, router, limits, None, shutdown, grace).await
}

/// [`serve`], with TLS when `tls` is set: every connection completes a TLS handshake (within the header-read timeout)
/// before HTTP is read; the caps count it from accept.
pub async fn serve_with(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    tls: Option<crate::tls::Tls>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> io::Result<()> {
    let gate = Gate::new(limits.max_connections, limits.max_connections_per_address);
    let (closing_tx, closing_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_accept_warning: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match gate.admit(peer.ip()) {
                    Ok(admitted) => match &tls {
                        None => {
                            let _ = stream.set_nodelay(true);
                            tasks.spawn(connection(stream, admitted, router.clone(), limits.clone(), closing_rx.clone()));
                        }
                        Some(tls) => {
                            let (tls, router, limits, closing) =
                                (tls.clone(), router.clone(), limits.clone(), closing_rx.clone());
                            tasks.spawn(async move {
                                let _ = stream.set_nodelay(true);
                                let handshake = tokio::time::timeout(limits.header_read_timeout, tls.accept(stream));
                                match handshake.await {
                                    Ok(Ok(stream)) => connection(stream, admitted, router, limits, closing).await,
                                    Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                                    Err(_) => {
                                        ::metrics::counter!(METRIC_TIMED_OUT, "reason" => "tls_handshake").increment(1);
                                    }
                                }
                            });
                        }
                    },
                    Err(why) => {
                        ::metrics::counter!(METRIC_REFUSED, "reason" => why.as_str()).increment(1);
                        tracing::debug!(address = %peer.ip(), reason = why.as_str(), open = gate.open(),
                            "connection refused over a cap");
                        if gate.refusing.fetch_add(1, Ordering::Relaxed) < MAX_REFUSALS_IN_FLIGHT {
                            let gate = gate.clone();
                            let retry = limits.retry_after_secs;
                            tasks.spawn(async move {
                                refuse(stream, retry).await;
                                gate.refusing.fetch_sub(1, Ordering::Relaxed);
                            });
                        } else {
                            gate.refusing.fetch_sub(1, Ordering::Relaxed);
                            drop(stream);
                        }
                    }
                },
                Err(e) => {
                    let out_of_resources =
                        matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM));
                    let kind = if out_of_resources { "out_of_resources" } else { "other" };
                    ::metrics::counter!(METRIC_ACCEPT_ERRORS, "kind" => kind).increment(1);
                    if last_accept_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(5)) {
                        tracing::warn!(error = %e, open = gate.open(), "accept failed");
                        last_accept_warning = Some(Instant::now());
                    }
                    if out_of_resources {
                        // The connection waits in the backlog; trying again at once would only spin.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
    drop(listener);
    let _ = closing_tx.send(true);
    let drained = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::info!(open = tasks.len(), "closing the connections still open after the shutdown grace");
        tasks.shutdown().await;
    }
    Ok(())
}

/// Serves one admitted connection: HTTP/1 with the header-read timeout, upgrades allowed, closed when idle, and
/// shut down gracefully when the server closes.
async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    admitted: Admitted,
    router: Router,
    limits: EdgeLimits,
    mut closing: watch::Receiver<bool>,
) {
    let activity = Activity::new();
    let io = TokioIo::new(Tracked { io: stream, activity: activity.clone(), _admitted: admitted });
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(req.map(Body::new)).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout).keep_alive(true);
    let mut conn = std::pin::pin!(builder.serve_connection(io, service).with_upgrades());
    let check_every = (limits.idle_timeout / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
    let mut check = tokio::time::interval(check_every);
    let mut closing_started = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    if e.is_timeout() {
                        ::metrics::counter!(METRIC_TIMED_OUT, "reason" => "header_read").increment(1);
                    }
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            _ = closing.changed(), if !closing_started => {
                closing_started = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = check.tick() => {
                if activity.idle_for() >= limits.idle_timeout {
                    ::metrics::counter!(METRIC_TIMED_OUT, "reason" => "idle").increment(1);
                    tracing::debug!("closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// Answers a connection over a cap with `503 too_many_connections` and `Retry-After`, then closes it. The answer is
/// written before the request is read; what the client sent is drained (within the budget) so that closing does not
/// reset the connection before the client reads the answer.
async fn refuse(mut stream: TcpStream, retry_after_secs: u32) {
    let body = serde_json::to_vec(&DomainError::TooManyConnections { retry_after_secs }.envelope()).unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncache-control: no-store\r\n\
         retry-after: {retry_after_secs}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let _ = tokio::time::timeout(REFUSAL_BUDGET, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_gate_caps_in_all_and_per_address_and_frees_on_drop() {
        let gate = Gate::new(3, 2);
        let a1 = gate.admit(ip("10.0.0.1")).unwrap();
        let a2 = gate.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(gate.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Address);
        let b1 = gate.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(gate.open(), 3);
        assert_eq!(gate.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(gate.open(), 2);
        let a3 = gate.admit(ip("10.0.0.1")).unwrap();
        drop((a2, a3, b1));
        assert_eq!(gate.open(), 0);
        assert!(gate.by_address.lock().unwrap().is_empty(), "no address is remembered once it has no connection");
    }

    #[test]
    fn stream_slots_per_user() {
        let slots = StreamSlots::new(2);
        let (ann, bob) = (UserId::parse("ann").unwrap(), UserId::parse("bob").unwrap());
        let s1 = slots.acquire(&ann).unwrap();
        let _s2 = slots.acquire(&ann).unwrap();
        let e = slots.acquire(&ann).unwrap_err();
        assert_eq!(e, DomainError::TooManyStreams { limit: 2 });
        assert_eq!((e.code(), e.http_status()), ("too_many_streams", 429));
        let _b = slots.acquire(&bob).unwrap();
        drop(s1);
        let _s3 = slots.acquire(&ann).unwrap();
    }

    #[test]
    fn the_default_cap_leaves_a_reserve_for_shims_and_the_database() {
        assert_eq!(descriptor_reserve(200), 1056);
        assert_eq!(max_connections_for(20_000, 200), 18_944);
        assert_eq!(max_connections_for(65_536, 200), 64_480);
        // Too few descriptors: a floor, and serve warns.
        assert_eq!(max_connections_for(1024, 200), 64);
        assert_eq!(max_connections_for(u64::MAX, 0), usize::MAX - 256);
    }
}
