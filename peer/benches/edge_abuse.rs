//! The HTTP edge under abuse: honest clients' latency while abusive clients attack the same
//! peer at once, against a quiet run. A real in-process peer (warp behind the edge's own accept
//! loop, sled, the commit loop) with its default edge limits, on loopback; every simulated
//! client has its own address (sockets bound to distinct 127.0.0.0/8 addresses), so per-client
//! limits apply as they would on a network.
//!
//! Honest: `EDGE_BENCH_HONEST` (default 8) keep-alive clients, each sending `GET
//! /v1/journal/head` and `GET /v1/objects/{cid}` in turn, one every 20 ms. Abusive, all at once:
//! slow uploads (connections that send the headers of an upload and 3 bytes of its body, then
//! nothing), stream floods (event streams from 0 that are never read), random paths (GETs as
//! fast as possible), upload floods (64 KiB blobs as fast as possible). Each run lasts
//! `EDGE_BENCH_SECONDS` (default 10). Reports honest p50/p99 of both runs and their ratio (goal:
//! within 2x), and the process's peak RSS and open file descriptors (peer and load generators:
//! the peer's own connections are its `mediachain_http_connections_open` gauge).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "support/report.rs"]
mod report;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mediachain::api::ApiConfig;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::model::Cid;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A connection from the loopback address `127.0.a.b`.
async fn connect_from(addr: SocketAddr, a: u8, b: u8) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket
        .bind(SocketAddr::from((Ipv4Addr::new(127, 0, a, b), 0)))
        .ok()?;
    let stream = socket.connect(addr).await.ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn handshake(stream: TcpStream) -> Option<Sender> {
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(connection);
    Some(sender)
}

fn get(path: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(path)
        .header("host", "peer")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// The honest clients for `duration`: latencies in µs and non-2xx answers.
async fn honest(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    cid: Cid,
) -> (Vec<u32>, usize) {
    let deadline = Instant::now() + duration;
    let mut workers = vec![];
    for i in 0..clients {
        let object = format!("/v1/objects/{cid}");
        workers.push(tokio::spawn(async move {
            let stream = connect_from(addr, 1, 1 + i as u8).await.unwrap();
            let mut sender = handshake(stream).await.unwrap();
            let (mut latencies, mut failures) = (vec![], 0);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            for n in 0usize.. {
                tick.tick().await;
                if Instant::now() >= deadline {
                    break;
                }
                let path = if n % 2 == 0 {
                    "/v1/journal/head"
                } else {
                    &object
                };
                let t0 = Instant::now();
                let ok = async {
                    sender.ready().await.ok()?;
                    let response = sender.send_request(get(path)).await.ok()?;
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

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    f64::from(sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)])
}

/// Counts what the abusers got through.
#[derive(Default)]
struct Abuse {
    slow_held: AtomicUsize,
    streams_opened: AtomicUsize,
    random_requests: AtomicUsize,
    uploads_stored: AtomicUsize,
}

/// Starts every abuser; they stop when `stop` turns true.
fn abuse(addr: SocketAddr, stop: Arc<AtomicBool>, counts: Arc<Abuse>) {
    // Slow uploads: 40 addresses x 40 connections (past the per-client and total caps).
    for a in 0..40u8 {
        for _ in 0..40 {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                let Some(mut stream) = connect_from(addr, 10, a + 1).await else {
                    return;
                };
                let head = "POST /v1/objects HTTP/1.1\r\nhost: peer\r\n\
                            content-type: application/octet-stream\r\ncontent-length: 100000\r\n\r\nabc";
                if stream.write_all(head.as_bytes()).await.is_ok() {
                    counts.slow_held.fetch_add(1, Ordering::Relaxed);
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
    }
    // Stream floods: 100 addresses x 10 streams from height 0, never read.
    for a in 0..100u8 {
        for _ in 0..10 {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                let Some(stream) = connect_from(addr, 20, a + 1).await else {
                    return;
                };
                let Some(mut sender) = handshake(stream).await else {
                    return;
                };
                let Ok(response) = sender.send_request(get("/v1/events?from=0")).await else {
                    return;
                };
                if response.status() == 200 {
                    counts.streams_opened.fetch_add(1, Ordering::Relaxed);
                }
                while !stop.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                drop(response);
            });
        }
    }
    // Random paths and upload floods: 4 addresses each, as fast as the peer answers.
    for a in 0..4u8 {
        for kind in [30u8, 40] {
            let (stop, counts) = (stop.clone(), counts.clone());
            tokio::spawn(async move {
                let Some(stream) = connect_from(addr, kind, a + 1).await else {
                    return;
                };
                let Some(mut sender) = handshake(stream).await else {
                    return;
                };
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let request = if kind == 30 {
                        get(&format!("/v1/random-{a}-{n}/x"))
                    } else {
                        let mut blob = vec![0u8; 64 * 1024];
                        blob[..8].copy_from_slice(&n.to_le_bytes());
                        blob[8] = a;
                        hyper::Request::post("/v1/objects")
                            .header("host", "peer")
                            .header("content-type", "application/octet-stream")
                            .body(Full::new(Bytes::from(blob)))
                            .unwrap()
                    };
                    if sender.ready().await.is_err() {
                        return;
                    }
                    let Ok(response) = sender.send_request(request).await else {
                        return;
                    };
                    let status = response.status().as_u16();
                    let _ = response.into_body().collect().await;
                    match (kind, status) {
                        (30, _) => counts.random_requests.fetch_add(1, Ordering::Relaxed),
                        (_, 201) => counts.uploads_stored.fetch_add(1, Ordering::Relaxed),
                        _ => 0,
                    };
                }
            });
        }
    }
}

/// `VmHWM` (peak resident set) of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn open_fds() -> f64 {
    std::fs::read_dir("/proc/self/fd").map_or(0.0, |d| d.count() as f64)
}

fn gauge(peer: &LocalPeer, name: &str) -> f64 {
    peer.metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let seconds = setting("EDGE_BENCH_SECONDS", 10) as u64;
    let clients = setting("EDGE_BENCH_HONEST", 8);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        max_object_size: 1024 * 1024,
        // The edge's defaults: caps, timeouts, rates, quotas.
        api: ApiConfig::default(),
        ..LocalOptions::default()
    };
    let peer = runtime
        .block_on(LocalPeer::start(dir.path(), options))
        .unwrap();
    let addr = peer.addr;
    let cid = peer.node.store().put_blob(&[7u8; 4096]).unwrap();
    let duration = Duration::from_secs(seconds);

    eprintln!("quiet run ({seconds} s, {clients} honest clients)...");
    let (quiet, quiet_failures) = runtime.block_on(honest(addr, clients, duration, cid));
    eprintln!("abused run ({seconds} s)...");
    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(Abuse::default());
    let (abused, abused_failures, connections, streams) = runtime.block_on(async {
        abuse(addr, stop.clone(), counts.clone());
        // Let the abusers take what they can before measuring.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let measured = honest(addr, clients, duration, cid).await;
        let connections = gauge(&peer, "mediachain_http_connections_open");
        let streams = gauge(&peer, "mediachain_event_streams_open");
        (measured.0, measured.1, connections, streams)
    });
    let fds = open_fds();
    stop.store(true, Ordering::Relaxed);
    let rss = peak_rss_mib();

    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (a50, a99) = (percentile(&abused, 0.5), percentile(&abused, 0.99));
    let n = |v: usize| v as f64;
    report::print(&[
        ("honest p50 quiet".into(), q50, "µs"),
        ("honest p99 quiet".into(), q99, "µs"),
        ("honest p50 abused".into(), a50, "µs"),
        ("honest p99 abused".into(), a99, "µs"),
        ("honest p99 abused / quiet".into(), a99 / q99.max(1.0), "x"),
        ("honest requests quiet".into(), n(quiet.len()), "requests"),
        ("honest requests abused".into(), n(abused.len()), "requests"),
        (
            "honest failures (quiet + abused)".into(),
            n(quiet_failures + abused_failures),
            "requests",
        ),
        (
            "slow uploads sent".into(),
            n(counts.slow_held.load(Ordering::Relaxed)),
            "connections",
        ),
        (
            "abusive streams accepted".into(),
            n(counts.streams_opened.load(Ordering::Relaxed)),
            "streams",
        ),
        (
            "random-path requests answered".into(),
            n(counts.random_requests.load(Ordering::Relaxed)),
            "requests",
        ),
        (
            "flood uploads stored".into(),
            n(counts.uploads_stored.load(Ordering::Relaxed)),
            "uploads",
        ),
        ("peer connections open".into(), connections, "connections"),
        ("peer event streams open".into(), streams, "streams"),
        ("process open fds".into(), fds, "fds"),
        ("process peak RSS".into(), rss, "MiB"),
    ]);
    runtime.block_on(peer.stop());
}
