//! The HTTP/1.1 server of the API: warp's filter served by hyper through this module's own
//! accept loop, so that every connection is bounded in number and in time.
//!
//! - At most [`ApiConfig::max_connections`] connections, and
//!   [`ApiConfig::max_connections_per_client`] from one client address (trusted proxies are
//!   exempt: they carry many clients). A connection past either cap is answered `503` with
//!   `Retry-After` and closed at once.
//! - A connection moves through phases — idle (between requests), reading a head, serving a
//!   request — and each has a deadline: the head must be complete within
//!   [`ApiConfig::header_timeout`] of its first byte, a connection where no byte moved either way
//!   for [`ApiConfig::idle_timeout`] is closed (a keep-alive that expired, or a client that
//!   stopped reading its response). The body deadline is enforced where bodies are read
//!   ([`super::body`], `408`).
//!
//! Every connection the edge drops is counted by reason in `mediachain_http_connections_dropped`.
//! This module never looks at what a request asks for: that is the routes' job.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tower_service::Service;
use tracing::{debug, warn};
use warp::http::StatusCode;

use super::origin::{bucket, Remote};
use super::problem::ApiError;
use super::slots::{Slot, Slots};
use super::{ApiConfig, Routes};
use crate::node::metrics::Metrics;

/// Largest request head (request line and headers), as nginx's `large_client_header_buffers`.
const MAX_HEAD_BYTES: usize = 64 * 1024;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const REQUEST: u8 = 2;

/// What a connection is doing and since when (milliseconds since it opened).
struct Activity {
    opened: Instant,
    last_io: AtomicU64,
    phase: AtomicU8,
    since: AtomicU64,
    /// The last write found the socket full (the client is not reading).
    blocked: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
            blocked: AtomicBool::new(false),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, millis: u64) -> Instant {
        self.opened + Duration::from_millis(millis)
    }

    /// Bytes moved; the first byte read while idle starts a request head.
    fn moved(&self, read: bool) {
        let now = self.now();
        self.last_io.store(now, Ordering::Relaxed);
        if read
            && self
                .phase
                .compare_exchange(IDLE, HEAD, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.since.store(now, Ordering::Relaxed);
        }
    }

    /// A write attempt: bytes moved, or the socket is full.
    fn wrote(&self, result: &Poll<std::io::Result<usize>>) {
        match result {
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.blocked.store(false, Ordering::Relaxed);
                self.moved(false);
            }
            Poll::Pending => self.blocked.store(true, Ordering::Relaxed),
            _ => {}
        }
    }

    fn set(&self, phase: u8) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Relaxed);
    }

    /// When the connection is to be dropped if nothing changes, and why.
    fn deadline(&self, config: &ApiConfig) -> (Instant, &'static str) {
        let last_io = self.last_io.load(Ordering::Relaxed);
        let since = self.since.load(Ordering::Relaxed);
        if self.blocked.load(Ordering::Relaxed) {
            // Responses wait for a client that does not read them, whatever the phase.
            return (self.at(last_io) + config.idle_timeout, "stalled");
        }
        match self.phase.load(Ordering::Relaxed) {
            IDLE => (
                self.at(since.max(last_io)) + config.idle_timeout,
                "keepalive-expired",
            ),
            HEAD => (self.at(since) + config.header_timeout, "header-timeout"),
            _ => (self.at(last_io) + config.idle_timeout, "stalled"),
        }
    }
}

/// A socket that reports every byte moved to its [`Activity`].
struct Tracked {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.moved(true);
        }
        result
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.activity.wrote(&result);
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.activity.wrote(&result);
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A response body that returns the connection to idle once written (or abandoned).
struct Finished<B> {
    inner: B,
    activity: Arc<Activity>,
}

impl<B: http_body::Body + Unpin> http_body::Body for Finished<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for Finished<B> {
    fn drop(&mut self) {
        self.activity.set(IDLE);
    }
}

/// Answers a connection the edge will not serve with `503` and closes it (best effort: the
/// answer is written only if the socket takes it at once).
fn refuse(stream: TcpStream, metrics: &Metrics, reason: &'static str) {
    metrics.edge.drop_connection(reason);
    let problem = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        reason,
        "too many open connections; retry later",
    )
    .problem();
    let body = serde_json::to_vec(&problem).unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: {}\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        crate::client::wire::PROBLEM_JSON,
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let _ = stream.try_write(&answer);
}

/// Serves `routes` on an already bound listener until `shutdown` completes, then lets the open
/// requests finish (callers bound that wait).
pub fn serve_listener(
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send {
    tracing::info!(addr = ?listener.local_addr().ok(), "HTTP API listening");
    async move {
        let Routes {
            filter,
            config,
            metrics,
        } = routes;
        let service = warp::service(filter);
        let graceful = GracefulShutdown::new();
        let slots = Slots::new(config.max_connections, config.max_connections_per_client);
        let mut shutdown = pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, remote) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors (or similar): let connections close first.
                    warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            // Trusted proxies carry many clients: they count in the total only.
            let client =
                (!config.trusted_proxies.contains(&remote.ip())).then(|| bucket(remote.ip()));
            let slot = match slots.enter(client) {
                Ok(slot) => slot,
                Err(reason) => {
                    refuse(stream, &metrics, reason);
                    continue;
                }
            };
            let connection = Connection {
                service: service.clone(),
                config: config.clone(),
                metrics: metrics.clone(),
                remote,
            };
            tokio::spawn(connection.run(stream, graceful.watcher(), slot));
        }
        drop(listener);
        graceful.shutdown().await;
    }
}

/// One accepted connection, served by `S` (warp's filter as a service).
struct Connection<S> {
    service: S,
    config: Arc<ApiConfig>,
    metrics: Arc<Metrics>,
    remote: SocketAddr,
}

impl<S> Connection<S>
where
    S: Service<hyper::Request<Incoming>, Response = warp::reply::Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    async fn run(self, stream: TcpStream, watcher: Watcher, _slot: Slot) {
        let Self {
            service,
            config,
            metrics,
            remote,
        } = self;
        metrics.edge.connections_open.inc();
        let activity = Arc::new(Activity::new());
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let handler = {
            let activity = activity.clone();
            hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                activity.set(REQUEST);
                request.extensions_mut().insert(Remote(remote));
                let mut service = service.clone();
                let activity = activity.clone();
                async move {
                    let response = service.call(request).await?;
                    Ok::<_, Infallible>(response.map(|inner| Finished { inner, activity }))
                }
            })
        };
        let mut http = hyper::server::conn::http1::Builder::new();
        http.header_read_timeout(None).max_buf_size(MAX_HEAD_BYTES);
        let mut conn = pin!(watcher.watch(http.serve_connection(io, handler)));
        let dropped = loop {
            let (deadline, _) = activity.deadline(&config);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(error) = result {
                        debug!(%remote, %error, "connection ended with an error");
                    }
                    break None;
                }
                () = tokio::time::sleep_until(deadline) => {
                    let (deadline, reason) = activity.deadline(&config);
                    if deadline <= Instant::now() {
                        break Some(reason);
                    }
                }
            }
        };
        if let Some(reason) = dropped {
            debug!(%remote, reason, "connection dropped");
            metrics.edge.drop_connection(reason);
        }
        metrics.edge.connections_open.dec();
    }
}
