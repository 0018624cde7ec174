//! Ingestion benchmark: `mediachain ingest` (the release CLI, one process) loading a generated
//! CSV catalogue into a local network of 4 release `mediachain-peer` processes on loopback
//! (every peer verifying every transaction), all on this machine's cores.
//!
//! The catalogue has `INGEST_BENCH_ROWS` rows (default 1,000,000) of title, artist and year,
//! with one artist per 20 rows. Each row is an artefact `insert` and an `artefactCreatedBy` cell
//! `update`, each artist an entity `insert`: about 2.05 committed journal entries per row.
//! Reports the rows and entries committed, committed entries/s (the ingest's wall time, from
//! its start to its last confirmation), and the CPU seconds per committed entry of the peers
//! and of the ingest process, each peer's peak RSS and the disk its data directory uses at the
//! end, and the machine's load average before and after. Prints a table, then one JSON line.
//!
//! Run: `cargo bench -p mediachain-peer --bench ingest`. Settings (environment):
//! `INGEST_BENCH_ROWS`, `INGEST_BENCH_ROWS_PER_TX` (default: the CLI's, as many rows as the
//! peers' limit of entries per transaction takes), `INGEST_BENCH_IN_FLIGHT`
//! (transactions in flight per peer, default: the CLI's), `INGEST_BENCH_INTERVAL` (block
//! interval, default 300ms).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "../tests/support/fleet.rs"]
mod fleet;
#[path = "../tests/support/listening.rs"]
mod listening;
#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/report.rs"]
mod report;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use mediachain::trust::{keyfile, SecretKey};

const PEERS: usize = 4;

fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn main() {
    let rows: usize = setting("INGEST_BENCH_ROWS").map_or(1_000_000, |v| {
        v.parse().expect("INGEST_BENCH_ROWS: a number")
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut fleet = fleet::Fleet::new(PEERS);
    if let Some(interval) = setting("INGEST_BENCH_INTERVAL") {
        fleet.block_interval = interval;
    }
    // One client sends everything from one address: lift the per-client limits.
    fleet.lift_client_limits();
    fleet.start_all();
    let all: Vec<usize> = (0..PEERS).collect();
    let dir = fleet.path().to_path_buf();
    runtime.block_on(async {
        fleet.wait_ready(&all).await;
        let key = SecretKey::generate();
        let (chain, _) = fleet.peers[0].client().register(&key).await.unwrap();
        std::fs::write(
            dir.join("client.key"),
            keyfile::to_plain_pem(&key).unwrap().as_bytes(),
        )
        .unwrap();
        std::fs::write(dir.join("client.chain"), chain.to_pem()).unwrap();
    });

    let catalogue = dir.join("catalogue.csv");
    let mut out = std::io::BufWriter::new(std::fs::File::create(&catalogue).unwrap());
    writeln!(out, "title,artist,year").unwrap();
    let tag = std::process::id();
    for n in 0..rows {
        writeln!(
            out,
            "Work {tag}-{n},Artist {tag}-{},{}",
            n / 20,
            1500 + n % 500
        )
        .unwrap();
    }
    out.flush().unwrap();
    drop(out);
    eprintln!("catalogue of {rows} rows written");

    let peers: Vec<String> = fleet.peers.iter().map(fleet::Peer::api).collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mediachain"));
    cmd.current_dir(&dir)
        .args([
            "ingest",
            "catalogue.csv",
            "--json",
            "--peers",
            &peers.join(","),
        ])
        .args([
            "--map",
            "name=title",
            "--map",
            "creator=artist",
            "--map",
            "created=year",
        ]);
    if let Some(n) = setting("INGEST_BENCH_ROWS_PER_TX") {
        cmd.args(["--rows-per-tx", &n]);
    }
    if let Some(n) = setting("INGEST_BENCH_IN_FLIGHT") {
        cmd.args(["--in-flight", &n]);
    }
    let cpu = |fleet: &fleet::Fleet| -> f64 {
        fleet
            .pids()
            .into_iter()
            .flatten()
            .map(|pid| procstat::cpu_seconds(Some(pid)))
            .sum()
    };
    let load_before = load_average();
    let peers_before = cpu(&fleet);
    let started = Instant::now();
    let mut child = mediachain::lifeline::tie(&mut cmd)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    // The ingest's own CPU, read just before it exits (sampled: it is gone once waited for).
    let sampler = std::thread::spawn(move || {
        let mut last = 0.0;
        while std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let now = procstat::cpu_seconds(Some(pid));
            if now > 0.0 {
                last = now;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        last
    });
    // The child's standard input is its lifeline: `wait` and `wait_with_output` close it (the
    // CLI would take that for this process's exit and stop at once), so it is held until exit.
    let lifeline = child.stdin.take();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let status = child.wait().unwrap();
    drop(lifeline);
    let stdout = reader.join().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let peers_cpu = cpu(&fleet) - peers_before;
    let ingest_cpu = sampler.join().unwrap();
    let load_after = load_average();
    assert!(status.success(), "ingest failed: {stdout}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let n = |key: &str| summary[key].as_f64().unwrap_or(0.0);
    let entries = n("artefacts_committed") + n("cells_committed") + n("entities_committed");
    let rss: Vec<f64> = fleet
        .pids()
        .into_iter()
        .map(|pid| pid.map_or(0.0, procstat::peak_rss_mib))
        .collect();
    let mut rows_out: Vec<(String, f64, &str)> = vec![
        ("rows".into(), rows as f64, "rows"),
        ("rows committed".into(), n("artefacts_committed"), "rows"),
        (
            "rows skipped or failed".into(),
            n("rows_skipped") + n("rows_failed"),
            "rows",
        ),
        (
            "entities committed".into(),
            n("entities_committed"),
            "entities",
        ),
        ("entries committed".into(), entries, "entries"),
        (
            "transactions committed".into(),
            n("transactions_committed"),
            "tx",
        ),
        ("wall time".into(), wall, "s"),
        ("committed entries/s".into(), entries / wall, "entries/s"),
        (
            "committed rows/s".into(),
            n("artefacts_committed") / wall,
            "rows/s",
        ),
        (
            "CPU per committed entry: 4 peers".into(),
            peers_cpu / entries.max(1.0) * 1e6,
            "µs",
        ),
        (
            "CPU per committed entry: ingest".into(),
            ingest_cpu / entries.max(1.0) * 1e6,
            "µs",
        ),
        (
            "CPU busy (peers + ingest) of 2 cores".into(),
            (peers_cpu + ingest_cpu) / wall / 2.0 * 100.0,
            "%",
        ),
    ];
    for (i, mib) in rss.iter().enumerate() {
        rows_out.push((format!("peak RSS peer {i}"), *mib, "MiB"));
    }
    for (i, peer) in fleet.peers.iter().enumerate() {
        let mib = bytes_under(&peer.dir.join("data")) as f64 / (1024.0 * 1024.0);
        rows_out.push((format!("disk used peer {i}"), mib, "MiB"));
    }
    rows_out.push(("load average before (1 min)".into(), load_before, "load"));
    rows_out.push(("load average after (1 min)".into(), load_after, "load"));
    report::print(&rows_out);
}

/// The machine's 1-minute load average (`/proc/loadavg`; 0 when unreadable): the bench shares
/// the cores with whatever else runs.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Bytes of the files under `dir` (a peer's data directory: its datastore, index and search).
fn bytes_under(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_under(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}
