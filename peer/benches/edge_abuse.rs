//! The HTTP edge under abuse: honest clients' latency while abusive clients attack the same
//! peer at once, against a quiet run just before. Three processes, so that no client shares a
//! runtime with the peer or with the others: the peer (a real `LocalPeer`: warp behind the edge's
//! own accept loop, sled, the commit loop, the edge's default limits), the abusers, and this
//! process for the honest clients; all on loopback, every simulated client from its own
//! 127.0.0.0/8 address so per-client limits apply as they would on a network.
//!
//! Honest: `EDGE_BENCH_HONEST` (default 8) keep-alive clients, each sending `GET
//! /v1/journal/head` and `GET /v1/objects/{cid}` in turn, one every 20 ms. Abusive, all at once
//! (`support/abusers.rs`): slow uploads, stream floods, random paths, upload floods, each
//! reconnecting when the peer closes it. Each run lasts `EDGE_BENCH_SECONDS` (default 10).
//! Reports honest p50/p99 of both runs and their ratio (goal: within 2x), the CPU each process
//! used in each run (two cores are shared by all three and whatever else the machine runs: the
//! load average is reported too), what the abusers got, and the peer's open connections, file
//! descriptors and peak RSS.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "support/abusers.rs"]
mod abusers;
#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/report.rs"]
mod report;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mediachain::api::ApiConfig;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use tokio::net::{TcpSocket, TcpStream};

/// The role of a process of the bench (`EDGE_BENCH_ROLE`): `peer`, `abusers`, or (unset) the
/// honest clients, which start the other two.
const ROLE: &str = "EDGE_BENCH_ROLE";

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

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

/// The honest clients for `duration`: latencies in µs and non-2xx answers.
async fn honest(
    addr: SocketAddr,
    clients: usize,
    duration: Duration,
    cid: &str,
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

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// Blocks until this process's standard input closes (the parent ended the run).
fn wait_for_parent() {
    let mut sink = vec![];
    let _ = std::io::stdin().read_to_end(&mut sink);
}

/// The peer's process: prints `ADDR CID` (a stored blob), serves until its input closes.
fn peer_process() {
    let runtime = runtime(2);
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
    let cid = peer.node.store().put_blob(&[7u8; 4096]).unwrap();
    println!("{} {cid}", peer.addr);
    wait_for_parent();
    runtime.block_on(peer.stop());
}

/// A process of the bench, its input held open until it is told to stop.
struct Role {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Role {
    fn start(role: &str, addr: Option<SocketAddr>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .env(ROLE, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if let Some(addr) = addr {
            command.env("EDGE_BENCH_ADDR", addr.to_string());
        }
        let mut child = command.spawn().unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Closes its input and waits; what it printed last.
    fn stop(mut self) -> String {
        drop(self.stdin.take());
        let last = self.line();
        self.child.wait().unwrap();
        last
    }
}

/// CPU seconds of the peer, the abusers (if running) and this process, now.
fn cpu(peer: u32, abusers: Option<u32>) -> [f64; 3] {
    [
        procstat::cpu_seconds(Some(peer)),
        abusers.map_or(0.0, |pid| procstat::cpu_seconds(Some(pid))),
        procstat::cpu_seconds(None),
    ]
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// A gauge of the peer's `/metrics`, read over HTTP.
async fn gauge(addr: SocketAddr, name: &str) -> f64 {
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

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("peer") => return peer_process(),
        Ok("abusers") => {
            let addr = std::env::var("EDGE_BENCH_ADDR").unwrap().parse().unwrap();
            return abusers::process(addr, wait_for_parent);
        }
        _ => {}
    }
    let seconds = setting("EDGE_BENCH_SECONDS", 10) as u64;
    let clients = setting("EDGE_BENCH_HONEST", 8);
    let duration = Duration::from_secs(seconds);
    let runtime = runtime(1);
    let mut peer = Role::start("peer", None);
    let started = peer.line();
    let (addr, cid) = started.split_once(' ').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let load_before = load_average();

    eprintln!("quiet run ({seconds} s, {clients} honest clients)...");
    let before = cpu(peer.pid(), None);
    let (quiet, quiet_failures) = runtime.block_on(honest(addr, clients, duration, cid));
    let quiet_cpu: Vec<f64> = cpu(peer.pid(), None)
        .iter()
        .zip(before)
        .map(|(a, b)| a - b)
        .collect();

    eprintln!("abused run ({seconds} s)...");
    let abuse = Role::start("abusers", Some(addr));
    // Let the abusers take what they can before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu(peer.pid(), Some(abuse.pid()));
    let (abused, abused_failures) = runtime.block_on(honest(addr, clients, duration, cid));
    let after = cpu(peer.pid(), Some(abuse.pid()));
    let abused_cpu: Vec<f64> = after.iter().zip(before).map(|(a, b)| a - b).collect();
    let connections = runtime.block_on(gauge(addr, "mediachain_http_connections_open"));
    let streams = runtime.block_on(gauge(addr, "mediachain_event_streams_open"));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", peer.pid())).map_or(0, |d| d.count());
    let rss = procstat::peak_rss_mib(peer.pid());
    let load_after = load_average();
    let counts: serde_json::Value = serde_json::from_str(&abuse.stop()).unwrap();
    drop(peer.stdin.take());
    peer.child.wait().unwrap();

    let (q50, q99) = (percentile(&quiet, 0.5), percentile(&quiet, 0.99));
    let (a50, a99) = (percentile(&abused, 0.5), percentile(&abused, 0.99));
    let n = |v: usize| v as f64;
    let per_second = |v: f64| v / seconds as f64;
    let mut rows = vec![
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
        ("peer CPU quiet".into(), per_second(quiet_cpu[0]), "cores"),
        (
            "honest clients CPU quiet".into(),
            per_second(quiet_cpu[2]),
            "cores",
        ),
        ("peer CPU abused".into(), per_second(abused_cpu[0]), "cores"),
        (
            "abusers CPU abused".into(),
            per_second(abused_cpu[1]),
            "cores",
        ),
        (
            "honest clients CPU abused".into(),
            per_second(abused_cpu[2]),
            "cores",
        ),
        ("load average before".into(), load_before, "1-min"),
        ("load average after".into(), load_after, "1-min"),
        ("peer connections open".into(), connections, "connections"),
        ("peer event streams open".into(), streams, "streams"),
        ("peer open fds".into(), n(fds), "fds"),
        ("peer peak RSS".into(), rss, "MiB"),
    ];
    if let Some(counts) = counts.as_object() {
        for (name, value) in counts {
            rows.push((
                format!("abusers: {name}"),
                value.as_f64().unwrap_or(0.0),
                "total",
            ));
        }
    }
    report::print(&rows);
}
