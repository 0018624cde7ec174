//! The HTTP edge under abuse: honest clients' latency while abusive clients attack the same
//! peer, against a quiet run just before. Three processes, so that no client shares a runtime
//! with the peer or with the others: the peer (a real `LocalPeer`: warp behind the edge's own
//! accept loop, sled, the commit loop, the edge's default limits), the abusers, and this process
//! for the honest clients; all on loopback, every simulated client from its own 127.0.0.0/8
//! address so per-client limits apply as they would on a network.
//!
//! Honest: `EDGE_BENCH_HONEST` (default 8) keep-alive readers, each sending `GET
//! /v1/journal/head` and `GET /v1/objects/{cid}` in turn, one every 20 ms, and
//! `EDGE_BENCH_WRITERS` (default 2) keep-alive writers, each uploading a distinct 1 KiB object
//! every 100 ms (their latencies reported apart from the readers'). Abusive
//! (`support/abusers.rs`): slow uploads, stream floods, random paths, upload floods, each
//! reconnecting when the peer closes it. `EDGE_BENCH_ABUSE` chooses the scenarios: `each` (the
//! default: every kind alone, then all together), or a comma-separated list of kinds (`all`: every
//! kind at once) for one scenario. Each scenario gets a fresh peer, 3 s of honest traffic left
//! unmeasured (a fresh peer's first seconds are slower), then a quiet run and an abused run of
//! `EDGE_BENCH_SECONDS` (default 10) back to back. The peer runs with the edge's defaults, or
//! with the `MEDIACHAIN_API_*` settings of the environment as the daemon reads them.
//!
//! Reports, per scenario, the honest readers' and writers' p50/p99 of both runs and their ratios
//! (goal: within 2x), the CPU
//! each process used (two cores are shared by all three and whatever else the machine runs: the
//! load average is reported too, and how long the peer's and the honest clients' threads waited
//! on a run queue per second they ran), what the abusers got, and the peer's open connections, file
//! descriptors and peak RSS; then a summary with one line per scenario.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "support/abusers.rs"]
mod abusers;
#[path = "support/edge_client.rs"]
mod edge_client;
#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/report.rs"]
mod report;
#[path = "support/roles.rs"]
mod roles;

use std::net::SocketAddr;
use std::time::Duration;

use abusers::Kind;
use edge_client::{gauge, honest, percentile, writers, Timings};
use mediachain::api::ApiConfig;
use mediachain::daemon::local::{LocalOptions, LocalPeer};
use roles::{own_niceness, wait_for_parent, Role, ROLE};

/// The abuse kinds an `abusers` process runs (a list [`Kind::parse_list`] reads).
const KINDS: &str = "EDGE_BENCH_KINDS";

/// The honest clients' unmeasured run on a fresh peer, before its quiet run.
const WARM_UP: Duration = Duration::from_secs(3);

/// The bench's settings, from the environment.
struct Settings {
    /// Seconds of each quiet and each abused run (`EDGE_BENCH_SECONDS`).
    seconds: u64,
    /// Honest readers (`EDGE_BENCH_HONEST`).
    clients: usize,
    /// Honest writers (`EDGE_BENCH_WRITERS`).
    writers: usize,
    /// Niceness of the abusers' process (`EDGE_BENCH_ABUSER_NICE`, up to 19; unset: this
    /// process's own, as the peer's).
    abuser_nice: Option<i32>,
}

impl Settings {
    fn from_env() -> Self {
        Self {
            seconds: setting("EDGE_BENCH_SECONDS", 10) as u64,
            clients: setting("EDGE_BENCH_HONEST", 8),
            writers: setting("EDGE_BENCH_WRITERS", 2),
            abuser_nice: std::env::var("EDGE_BENCH_ABUSER_NICE")
                .ok()
                .map(|v| v.parse::<i32>().unwrap().clamp(-20, 19)),
        }
    }
}

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// The peer's process: prints `ADDR CID` (a stored blob), serves until its input closes.
fn peer_process() {
    let runtime = runtime(2);
    let dir = tempfile::tempdir().unwrap();
    let options = LocalOptions {
        max_object_size: 1024 * 1024,
        // The edge's defaults (caps, timeouts, rates, quotas), or the `MEDIACHAIN_API_*`
        // settings the daemon reads, to compare one with another.
        api: ApiConfig::from_env().unwrap(),
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

/// CPU seconds of the peer, the abusers (if running) and this process, now.
fn cpu(peer: u32, abusers: Option<u32>) -> [f64; 3] {
    [
        procstat::cpu_seconds(Some(peer)),
        abusers.map_or(0.0, |pid| procstat::cpu_seconds(Some(pid))),
        procstat::cpu_seconds(None),
    ]
}

/// Run-queue wait per second run of the threads of the peer and of this process since
/// `before` ([`procstat::sched_seconds`] of each, then now).
fn waits_since(before: [(f64, f64); 2], peer: u32) -> [f64; 2] {
    let after = [
        procstat::sched_seconds(Some(peer)),
        procstat::sched_seconds(None),
    ];
    [0, 1].map(|i| (after[i].1 - before[i].1) / (after[i].0 - before[i].0).max(1e-6))
}

/// [`procstat::sched_seconds`] of the peer and of this process, now.
fn sched(peer: u32) -> [(f64, f64); 2] {
    [
        procstat::sched_seconds(Some(peer)),
        procstat::sched_seconds(None),
    ]
}

/// The CPU each process used since `before`, in cores over `seconds`.
fn cores_since(before: [f64; 3], after: [f64; 3], seconds: u64) -> [f64; 3] {
    [0, 1, 2].map(|i| (after[i] - before[i]) / seconds as f64)
}

fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// The honest readers and writers at once for `seconds`; `run` tells the runs apart.
async fn honest_run(
    addr: SocketAddr,
    setting: &Settings,
    cid: &str,
    run: u8,
    duration: Duration,
) -> [Timings; 2] {
    let (read, written) = tokio::join!(
        honest(addr, setting.clients, duration, cid),
        writers(addr, setting.writers, duration, run)
    );
    [read, written]
}

/// p50 and p99 of `timings`.
fn p50_p99(timings: &Timings) -> (f64, f64) {
    (percentile(&timings.0, 0.5), percentile(&timings.0, 0.99))
}

/// The scenarios `EDGE_BENCH_ABUSE` asks for.
fn scenarios() -> Vec<Vec<Kind>> {
    match std::env::var("EDGE_BENCH_ABUSE").as_deref() {
        Err(_) | Ok("each") => {
            let mut all: Vec<Vec<Kind>> = Kind::ALL.iter().map(|k| vec![*k]).collect();
            all.push(Kind::ALL.to_vec());
            all
        }
        Ok(list) => vec![Kind::parse_list(list).unwrap()],
    }
}

/// The figures of one scenario: its report rows and its summary line.
struct Outcome {
    rows: Vec<(String, f64, &'static str)>,
    summary: String,
}

/// A fresh peer, a quiet run, then an abused run with the abusers of `kinds`.
fn scenario(kinds: &[Kind], setting: &Settings) -> Outcome {
    let (seconds, clients) = (setting.seconds, setting.clients);
    let name = Kind::list_name(kinds);
    let runtime = runtime(1);
    let mut peer = Role::start("peer", &[], None);
    let started = peer.line();
    let (addr, cid) = started.split_once(' ').unwrap();
    let addr: SocketAddr = addr.parse().unwrap();
    let load_before = load_average();

    eprintln!(
        "{name}: quiet run ({seconds} s, {clients} honest readers, {} writers)...",
        setting.writers
    );
    let duration = Duration::from_secs(seconds);
    // A fresh peer's first seconds (its first sled segments, the honest clients' first
    // connections) are not the quiet baseline: warm it up, unmeasured.
    runtime.block_on(honest_run(addr, setting, cid, 2, WARM_UP));
    let before = cpu(peer.pid(), None);
    let waited = sched(peer.pid());
    let [quiet, quiet_written] = runtime.block_on(honest_run(addr, setting, cid, 0, duration));
    let quiet_cpu = cores_since(before, cpu(peer.pid(), None), seconds);
    let quiet_waits = waits_since(waited, peer.pid());

    eprintln!("{name}: abused run ({seconds} s)...");
    let env = [
        ("EDGE_BENCH_ADDR", addr.to_string()),
        (KINDS, Kind::list_name(kinds)),
    ];
    let abuse = Role::start("abusers", &env, setting.abuser_nice);
    // Let the abusers take what they can before measuring.
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu(peer.pid(), Some(abuse.pid()));
    let waited = sched(peer.pid());
    let [abused, abused_written] = runtime.block_on(honest_run(addr, setting, cid, 1, duration));
    let abused_cpu = cores_since(before, cpu(peer.pid(), Some(abuse.pid())), seconds);
    let abused_waits = waits_since(waited, peer.pid());
    let connections = runtime.block_on(gauge(addr, "mediachain_http_connections_open"));
    let streams = runtime.block_on(gauge(addr, "mediachain_event_streams_open"));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", peer.pid())).map_or(0, |d| d.count());
    let rss = procstat::peak_rss_mib(peer.pid());
    let load_after = load_average();
    let counts: serde_json::Value = serde_json::from_str(&abuse.stop()).unwrap();
    drop(peer.stdin.take());
    peer.child.wait().unwrap();

    let ((q50, q99), (a50, a99)) = (p50_p99(&quiet), p50_p99(&abused));
    let ((wq50, wq99), (wa50, wa99)) = (p50_p99(&quiet_written), p50_p99(&abused_written));
    let (ratio, wratio) = (a99 / q99.max(1.0), wa99 / wq99.max(1.0));
    let n = |v: usize| v as f64;
    let mut rows: Vec<(String, f64, &str)> = vec![];
    for (who, quiet, abused) in [
        ("honest readers", &quiet, &abused),
        ("honest writers", &quiet_written, &abused_written),
    ] {
        let ((q50, q99), (a50, a99)) = (p50_p99(quiet), p50_p99(abused));
        rows.extend([
            (format!("{who} p50 quiet"), q50, "µs"),
            (format!("{who} p99 quiet"), q99, "µs"),
            (format!("{who} p50 abused"), a50, "µs"),
            (format!("{who} p99 abused"), a99, "µs"),
            (format!("{who} p99 abused / quiet"), a99 / q99.max(1.0), "x"),
            (
                format!("{who} requests quiet"),
                n(quiet.0.len()),
                "requests",
            ),
            (
                format!("{who} requests abused"),
                n(abused.0.len()),
                "requests",
            ),
            (
                format!("{who} failures (quiet + abused)"),
                n(quiet.1 + abused.1),
                "requests",
            ),
        ]);
    }
    rows.extend([
        ("peer CPU quiet".into(), quiet_cpu[0], "cores"),
        ("honest clients CPU quiet".into(), quiet_cpu[2], "cores"),
        ("peer CPU abused".into(), abused_cpu[0], "cores"),
        ("abusers CPU abused".into(), abused_cpu[1], "cores"),
        ("honest clients CPU abused".into(), abused_cpu[2], "cores"),
        (
            "peer run-queue wait per s run quiet".into(),
            quiet_waits[0],
            "s/s",
        ),
        (
            "peer run-queue wait per s run abused".into(),
            abused_waits[0],
            "s/s",
        ),
        (
            "honest clients run-queue wait per s run quiet".into(),
            quiet_waits[1],
            "s/s",
        ),
        (
            "honest clients run-queue wait per s run abused".into(),
            abused_waits[1],
            "s/s",
        ),
        ("load average before".into(), load_before, "1-min"),
        ("load average after".into(), load_after, "1-min"),
        ("peer connections open".into(), connections, "connections"),
        ("peer event streams open".into(), streams, "streams"),
        ("peer open fds".into(), n(fds), "fds"),
        ("peer peak RSS".into(), rss, "MiB"),
    ]);
    if let Some(counts) = counts.as_object() {
        for (counter, value) in counts {
            let value = value.as_f64().unwrap_or(0.0);
            if value > 0.0 {
                rows.push((format!("abusers: {counter}"), value, "total"));
            }
        }
    }
    let rows = rows
        .into_iter()
        .map(|(row, value, unit)| (format!("{name}: {row}"), value, unit))
        .collect();
    let summary = format!(
        "{name:<14} {q50:>7.0} {q99:>7.0} {a50:>7.0} {a99:>8.0} {ratio:>6.1} {wq50:>7.0} \
         {wq99:>7.0} {wa50:>7.0} {wa99:>8.0} {wratio:>6.1} {:>5.2} {:>5.2} {fds:>5} {rss:>6.0} \
         {load_before:>5.1}",
        abused_cpu[0], abused_cpu[1]
    );
    Outcome { rows, summary }
}

fn main() {
    match std::env::var(ROLE).as_deref() {
        Ok("peer") => return peer_process(),
        Ok("abusers") => {
            let addr = std::env::var("EDGE_BENCH_ADDR").unwrap().parse().unwrap();
            let kinds = Kind::parse_list(&std::env::var(KINDS).unwrap()).unwrap();
            return abusers::process(addr, &kinds, wait_for_parent);
        }
        _ => {}
    }
    let settings = Settings::from_env();
    let outcomes: Vec<Outcome> = scenarios()
        .iter()
        .map(|kinds| scenario(kinds, &settings))
        .collect();
    println!(
        "{:<14} {:>7} {:>7} {:>7} {:>8} {:>6} {:>7} {:>7} {:>7} {:>8} {:>6} {:>5} {:>5} {:>5} \
         {:>6} {:>5}",
        "abuse",
        "q p50",
        "q p99",
        "a p50",
        "a p99",
        "p99 x",
        "wq p50",
        "wq p99",
        "wa p50",
        "wa p99",
        "w x",
        "peer",
        "abus",
        "fds",
        "RSS",
        "load"
    );
    for outcome in &outcomes {
        println!("{}", outcome.summary);
    }
    println!(
        "(µs; q/a: readers quiet/abused, wq/wa: writers; CPU in cores during the abused run; \
         peer at nice {}, abusers at nice {}; peak RSS in MiB; 1-min load before)\n",
        own_niceness(),
        settings.abuser_nice.unwrap_or_else(own_niceness)
    );
    let rows: Vec<_> = outcomes.into_iter().flat_map(|o| o.rows).collect();
    report::print(&rows);
}
