//! HTTP API load benchmark: GET object and POST transaction requests per second and latency,
//! over loopback against a real in-process peer (warp, sled, the commit loop), driven by a Rust
//! load generator (hyper HTTP/1.1 keep-alive connections). Ends with one JSON line of figures.
//!
//! Settings (environment): `API_BENCH_SECONDS` (default 5) per GET run, `API_BENCH_CONNECTIONS`
//! (default 32), `API_BENCH_TXS` (default 20000) transactions submitted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use mediachain::journal::Transaction;
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::trust::{pow, SecretKey};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One keep-alive connection.
async fn connect(
    addr: std::net::SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

/// What a run measured.
struct Run {
    requests: usize,
    errors: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
    fn percentile(&mut self, p: f64) -> u32 {
        self.latencies_us.sort_unstable();
        let n = self.latencies_us.len();
        if n == 0 {
            return 0;
        }
        self.latencies_us[((n as f64 * p) as usize).min(n - 1)]
    }
}

/// Runs `connections` workers; each sends the request `make(i)` for i taken from a shared
/// counter until `limit` requests or `deadline`, and checks the status.
async fn drive(
    addr: std::net::SocketAddr,
    connections: usize,
    limit: usize,
    duration: Duration,
    expect: u16,
    make: Arc<dyn Fn(usize) -> hyper::Request<Full<Bytes>> + Send + Sync>,
) -> Run {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = vec![];
    for _ in 0..connections {
        let next = next.clone();
        let make = make.clone();
        workers.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            let mut latencies = Vec::with_capacity(100_000);
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= limit || Instant::now() >= deadline {
                    break;
                }
                let request = make(i);
                let t0 = Instant::now();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                let status = response.status().as_u16();
                let _ = response.into_body().collect().await.unwrap();
                latencies.push(t0.elapsed().as_micros() as u32);
                if status != expect {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = Run {
        requests: 0,
        errors: 0,
        seconds: 0.0,
        latencies_us: vec![],
    };
    for worker in workers {
        let (latencies, errors) = worker.await.unwrap();
        run.requests += latencies.len();
        run.errors += errors;
        run.latencies_us.extend(latencies);
    }
    run.seconds = started.elapsed().as_secs_f64();
    run
}

fn main() {
    let seconds = setting("API_BENCH_SECONDS", 5) as u64;
    let connections = setting("API_BENCH_CONNECTIONS", 32);
    let tx_count = setting("API_BENCH_TXS", 20_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        transaction_pow_bits: 8,
        max_object_size: 1024 * 1024,
        mempool_capacity: 1_000_000,
        ..LocalOptions::default()
    };
    let peer = runtime
        .block_on(LocalPeer::start(dir.path(), options))
        .unwrap();
    let addr = peer.addr;

    // Objects: 1,000 artefacts to GET, and one artefact per transaction to insert.
    eprintln!("preparing {tx_count} transactions...");
    let artefacts: Vec<(mediachain::model::Cid, Vec<u8>)> = (0..1_000 + tx_count)
        .map(|i| {
            let encoded = Object::Artefact(Artefact::named(&format!("bench artefact {i}")))
                .encode()
                .unwrap();
            (encoded.cid, encoded.bytes)
        })
        .collect();
    peer.node
        .store()
        .import(artefacts.iter().cloned(), 5_000, |_| {})
        .unwrap();
    let client = SecretKey::generate();
    let registrar = peer.node.registrar();
    let challenge = registrar.challenge(mediachain::time::now());
    let resource =
        mediachain::node::registration::Registrar::resource(&client.public(), &challenge);
    let stamp = pow::solve(pow::Purpose::Registration, &resource, registrar.bits()).unwrap();
    let chain = registrar
        .register(
            client.public(),
            &challenge,
            &stamp,
            mediachain::time::now(),
            |_| false,
        )
        .unwrap();
    let now = mediachain::time::now();
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        artefacts[1_000..]
            .iter()
            .map(|(cid, _)| {
                let entry = JournalEntry::Insert {
                    reference: *cid,
                    timestamp: now,
                };
                Bytes::from(
                    Transaction::create(&client, &chain, vec![entry], now, 8)
                        .unwrap()
                        .to_bytes(),
                )
            })
            .collect(),
    );
    let paths: Arc<Vec<String>> = Arc::new(
        artefacts[..1_000]
            .iter()
            .map(|(cid, _)| format!("/v1/objects/{cid}"))
            .collect(),
    );

    let host = addr.to_string();
    let get = {
        let paths = paths.clone();
        let host = host.clone();
        Arc::new(move |i: usize| {
            hyper::Request::get(paths[i % paths.len()].as_str())
                .header("host", host.as_str())
                .body(Full::new(Bytes::new()))
                .unwrap()
        })
    };
    // Warm-up, then the measured GET run.
    runtime.block_on(drive(
        addr,
        connections,
        usize::MAX,
        Duration::from_secs(1),
        200,
        get.clone(),
    ));
    let mut gets = runtime.block_on(drive(
        addr,
        connections,
        usize::MAX,
        Duration::from_secs(seconds),
        200,
        get,
    ));

    let post = {
        let bodies = bodies.clone();
        Arc::new(move |i: usize| {
            hyper::Request::post("/v1/transactions")
                .header("host", host.as_str())
                .header("content-type", "application/cbor")
                .body(Full::new(bodies[i].clone()))
                .unwrap()
        })
    };
    let mut txs = runtime.block_on(drive(
        addr,
        connections,
        tx_count,
        Duration::from_secs(120),
        202,
        post,
    ));
    // Every admitted transaction is committed in the end.
    let committed_at = Instant::now();
    while peer.node.pending() > 0 && committed_at.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let drain_seconds = committed_at.elapsed().as_secs_f64();
    let height = peer.node.tip().unwrap().1;

    println!("| benchmark | value | unit |");
    println!("| --- | ---: | --- |");
    println!(
        "| GET /v1/objects/{{cid}} | {:.0} | requests/s |",
        gets.rps()
    );
    println!("| GET latency p50 | {} | µs |", gets.percentile(0.50));
    println!("| GET latency p99 | {} | µs |", gets.percentile(0.99));
    println!(
        "| POST /v1/transactions (202) | {:.0} | requests/s |",
        txs.rps()
    );
    println!("| POST latency p50 | {} | µs |", txs.percentile(0.50));
    println!("| POST latency p99 | {} | µs |", txs.percentile(0.99));
    println!("| commit backlog drained after the run | {drain_seconds:.1} | s |");
    println!(
        "(connections {connections}; GET errors {}, POST errors {}; {} transactions in {height} blocks)",
        gets.errors, txs.errors, txs.requests
    );
    let json = serde_json::json!({
        "benchmark": "api",
        "connections": connections,
        "get_rps": gets.rps().round(),
        "get_p50_us": gets.percentile(0.50),
        "get_p99_us": gets.percentile(0.99),
        "get_errors": gets.errors,
        "tx_rps": txs.rps().round(),
        "tx_p50_us": txs.percentile(0.50),
        "tx_p99_us": txs.percentile(0.99),
        "tx_errors": txs.errors,
        "tx_submitted": txs.requests,
        "commit_drain_s": (drain_seconds * 10.0).round() / 10.0,
        "blocks": height,
    });
    println!("{json}");
    runtime.block_on(peer.stop());
}
