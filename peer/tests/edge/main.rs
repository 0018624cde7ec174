//! The HTTP edge under abuse, over real sockets against a real in-process peer: connection
//! limits and timeouts, client addresses behind proxies, stream caps, storage quotas,
//! registration replay, metric labels. Every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod batch_uploads;
mod connections;
mod fair_writes;
mod labels;
mod lanes;
mod origin;
mod registration;
mod replay;
mod slow_uploads;
mod storage;
mod streams;
mod tarpit;
mod upfront;
#[path = "../support/work.rs"]
mod work;

use std::net::SocketAddr;
use std::time::Duration;

use mediachain::api::ApiConfig;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Longest any single wait of these tests may take before the test fails.
const PATIENCE: Duration = Duration::from_secs(20);

/// A peer of these tests with the store it owns: a [`LocalPeer`] (what it dereferences to) and
/// its temporary directory, removed after the peer stops when the fixture is dropped.
struct Edge {
    peer: LocalPeer,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for Edge {
    type Target = LocalPeer;

    fn deref(&self) -> &LocalPeer {
        &self.peer
    }
}

/// A peer with `api` settings, its store in a fresh temporary directory.
async fn peer_with(api: ApiConfig) -> Edge {
    let options = LocalOptions {
        api,
        ..LocalOptions::default()
    };
    peer_with_options(options).await
}

/// A peer with `options`, its store in a fresh temporary directory.
async fn peer_with_options(options: LocalOptions) -> Edge {
    peer_in(tempfile::tempdir().unwrap(), options).await
}

/// A peer with `options`, its store in `dir`.
async fn peer_in(dir: tempfile::TempDir, options: LocalOptions) -> Edge {
    let peer = LocalPeer::start(dir.path(), options).await.unwrap();
    Edge { peer, _dir: dir }
}

/// The value of the sample `name{labels}` in the peer's metrics (0 when absent).
fn metric(peer: &LocalPeer, sample: &str) -> f64 {
    let text = peer.metrics.encode();
    text.lines()
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == sample).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}

/// Waits (bounded) until `sample` reaches `at_least`.
async fn metric_reaches(peer: &LocalPeer, sample: &str, at_least: f64) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(peer, sample) < at_least {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sample} stayed at {} (wanted {at_least}):\n{}",
            metric(peer, sample),
            peer.metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Reads until the peer closes the connection (bounded); what arrived.
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut answer = vec![];
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the peer kept the connection open");
    String::from_utf8_lossy(&answer).to_string()
}

/// Connects and sends `bytes`.
async fn send(addr: SocketAddr, bytes: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// Connects from the loopback address `127.0.0.{host}` (a client address of its own) and sends
/// `bytes`.
async fn send_from(addr: SocketAddr, host: u8, bytes: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from(([127, 0, 0, host], 0)))
        .unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream.write_all(bytes.as_bytes()).await.unwrap();
    stream
}

/// Sends one complete keep-alive request on `stream` and reads its whole response head and
/// body (a `Content-Length` response).
async fn exchange(stream: &mut TcpStream, request: &str) -> String {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buffer = vec![];
    let mut chunk = [0u8; 4096];
    let complete = |buffer: &[u8]| {
        let text = String::from_utf8_lossy(buffer);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(str::to_string)
            })?
            .trim()
            .parse()
            .ok()?;
        (body.len() >= length).then(|| text.to_string())
    };
    loop {
        if let Some(text) = complete(&buffer) {
            return text;
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut chunk))
            .await
            .expect("no response")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
}
