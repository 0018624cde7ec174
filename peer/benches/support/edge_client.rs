//! The HTTP clients of the edge_abuse bench: connections from chosen loopback addresses (so that
//! per-client limits apply as on a network), the honest readers' and writers' timed requests, and
//! a gauge of the peer's `/metrics`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};

/// A connection from the loopback address `127.0.a.b`.
pub async fn connect_from(addr: SocketAddr, a: u8, b: u8) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, a, b), 0)))
        .ok()?;
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// A client connection's request sender.
pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An HTTP/1.1 client over `stream`.
pub async fn handshake(stream: TcpStream) -> Option<Sender> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

/// `GET path`.
pub fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(path)
        .header("host", "peer")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// `POST /v1/objects` of the raw blob `blob`.
pub fn upload(blob: Vec<u8>) -> hyper::Request<Full<Bytes>> {
    hyper::Request::post("/v1/objects")
        .header("host", "peer")
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(blob)))
        .unwrap()
}

/// The latencies (µs, sorted) of every attempt of some honest clients, and the attempts not
/// answered with a 2xx.
pub type Timings = (Vec<u32>, usize);

/// The honest readers for `duration`, each on its own keep-alive connection from `127.0.1.x`
/// sending `GET /v1/journal/head` and `GET /v1/objects/{cid}` in turn, one every 20 ms.
pub async fn honest(addr: SocketAddr, clients: usize, duration: Duration, cid: &str) -> Timings {
    let object = format!("/v1/objects/{cid}");
    let clients = (0..clients).map(|i| {
        let object = object.clone();
        let request = move |n: usize| {
            if n % 2 == 0 {
                get("/v1/journal/head")
            } else {
                get(&object)
            }
        };
        (1 + i as u8, request)
    });
    timed(addr, 1, clients, Duration::from_millis(20), duration).await
}

/// The honest writers for `duration`, each on its own keep-alive connection from `127.0.4.x`
/// uploading one distinct 1 KiB object (`POST /v1/objects`) every 100 ms: `run` tells the runs
/// of the bench apart, so no upload repeats one already stored.
pub async fn writers(addr: SocketAddr, clients: usize, duration: Duration, run: u8) -> Timings {
    let clients = (0..clients).map(|i| {
        let request = move |n: usize| {
            let mut blob = vec![0u8; 1024];
            blob[..8].copy_from_slice(&(n as u64).to_le_bytes());
            blob[8] = i as u8;
            blob[9] = run;
            upload(blob)
        };
        (1 + i as u8, request)
    });
    timed(addr, 4, clients, Duration::from_millis(100), duration).await
}

/// Clients from `127.0.a.b`, one per `(b, request)`, each sending `request(n)` for n = 0, 1...
/// one every `period` on its own keep-alive connection until `duration` has passed.
async fn timed<F>(
    addr: SocketAddr,
    a: u8,
    clients: impl Iterator<Item = (u8, F)>,
    period: Duration,
    duration: Duration,
) -> Timings
where
    F: Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync + 'static,
{
    let deadline = Instant::now() + duration;
    let mut workers = vec![];
    for (b, request) in clients {
        workers.push(tokio::spawn(async move {
            let stream = connect_from(addr, a, b).await.unwrap();
            let mut sender = handshake(stream).await.unwrap();
            let (mut latencies, mut failures) = (vec![], 0);
            let mut tick = tokio::time::interval(period);
            for n in 0usize.. {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let t0 = Instant::now();
                let ok = async {
                    sender.ready().await.ok()?;
                    let response = sender.send_request(request(n)).await.ok()?;
                    let status = response.status();
                    response.into_body().collect().await.ok()?;
                    Some(status.is_success())
                }
                .await;
                latencies.push(t0.elapsed().as_micros() as u32);
                if ok != Some(true) {
                    failures += 1;
                }
            }
            (latencies, failures)
        }));
    }
    let mut all = (vec![], 0);
    for worker in workers {
        let (latencies, failures) = worker.await.unwrap();
        all.0.extend(latencies);
        all.1 += failures;
    }
    all.0.sort_unstable();
    all
}

/// The `p` quantile of `sorted` (0 when empty).
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)])
}

/// A gauge of the peer's `/metrics`, read over HTTP (0 when absent).
pub async fn gauge(addr: SocketAddr, name: &str) -> f64 {
    let stream = connect_from(addr, 2, 1).await.unwrap();
    let mut sender = handshake(stream).await.unwrap();
    let response = sender.send_request(get("/metrics")).await.unwrap();
    let text = response.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
