//! What one connection of the edge is doing and since when: the phase it is in (idle between
//! requests, reading a head, reading a body, serving a request) and when a byte last moved.
//! [`Tracked`] wraps the socket to record every byte, [`Finished`] returns the connection to
//! idle once a response is written, and [`BodyReading`] lets the body reader mark the body
//! phase. The server derives each connection's deadline from it ([`Activity::deadline`]) and the
//! connection table picks what to evict from it ([`Activity::waiting`]). This module never
//! closes anything itself.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::ApiConfig;

const IDLE: u8 = 0;
const HEAD: u8 = 1;
const REQUEST: u8 = 2;
const BODY: u8 = 3;
const HELD: u8 = 4;

/// What a connection is doing and since when (milliseconds since it opened).
pub struct Activity {
    opened: Instant,
    last_io: AtomicU64,
    phase: AtomicU8,
    since: AtomicU64,
    /// The last write found the socket full (the client is not reading).
    blocked: AtomicBool,
}

impl Activity {
    /// A connection opened now, idle.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            opened: Instant::now(),
            last_io: AtomicU64::new(0),
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
            blocked: AtomicBool::new(false),
        })
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

    /// A request's head is complete: the routes serve it now.
    pub fn serving(&self) {
        self.set(REQUEST);
    }

    /// A refused request's answer is held back (the gate's tarpit): the connection waits on
    /// nothing the client needs, as an idle one, and may be evicted first.
    pub fn held(&self) {
        self.set(HELD);
    }

    /// When a byte last moved either way.
    pub fn last_io(&self) -> Instant {
        self.at(self.last_io.load(Ordering::Relaxed))
    }

    /// The connection waits for its client: idle between requests, or reading a head or a body
    /// (`Some(true)` when idle). `None` while a request is served or its response written.
    pub fn waiting(&self) -> Option<bool> {
        match self.phase.load(Ordering::Relaxed) {
            IDLE | HELD => Some(true),
            HEAD | BODY => Some(false),
            _ => None,
        }
    }

    /// When the connection is to be dropped if nothing changes, and why.
    pub fn deadline(&self, config: &ApiConfig) -> (Instant, &'static str) {
        let last_io = self.last_io.load(Ordering::Relaxed);
        let since = self.since.load(Ordering::Relaxed);
        if self.blocked.load(Ordering::Relaxed) {
            // Responses wait for a client that does not read them, whatever the phase.
            return (self.at(last_io) + config.idle_timeout, "stalled");
        }
        match self.phase.load(Ordering::Relaxed) {
            IDLE | HELD => (
                self.at(since.max(last_io)) + config.idle_timeout,
                "keepalive-expired",
            ),
            HEAD => (self.at(since) + config.header_timeout, "header-timeout"),
            // The body reader enforces the body's deadlines (and answers 408).
            _ => (self.at(last_io) + config.idle_timeout, "stalled"),
        }
    }
}

/// The body phase of a request, for the body reader (a request extension; absent when the
/// routes are served without the edge's server, as in `warp::test`).
#[derive(Clone)]
pub struct BodyReading(pub(crate) Arc<Activity>);

impl BodyReading {
    /// The body is being read: the connection waits for its client.
    pub fn start(&self) {
        self.0.set(BODY);
    }

    /// The body is read (or refused): the request is being served.
    pub fn end(&self) {
        self.0.set(REQUEST);
    }
}

/// A socket that reports every byte moved to its [`Activity`].
pub struct Tracked {
    /// The socket.
    pub inner: TcpStream,
    /// Where its bytes are recorded.
    pub activity: Arc<Activity>,
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
pub struct Finished<B> {
    /// The response body.
    pub inner: B,
    /// The connection's activity.
    pub activity: Arc<Activity>,
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
