//! Fleet benchmark: 4 release `mediachain-peer` processes on loopback, every peer verifying every
//! transaction (gossip admission and block verification). Transactions are prepared first (one
//! artefact `insert` each, the object uploaded to the peer that will take the transaction), then
//! offered open-loop at a fixed rate, round-robin over the peers. Each peer's view-update stream
//! (`GET /v1/events`) timestamps every transaction as its block joins that peer's chain, and as
//! an `event: final` reaches its block's height there.
//!
//! By default the peers run under network parameters naming all four initial members (the
//! rotation and Casper FFG finality of docs/consensus.md, epoch of 4 blocks); with
//! `FLEET_BENCH_FINALITY=off` without parameters (a network of one organisation: no finality).
//!
//! Reports: committed tx/s (transactions in a block on all 4 peers, divided by the time from the
//! first submission to the last of them), submit->commit and submit->final latency p50/p99 at
//! the submitting peer, block count and size, CPU seconds per committed transaction (peers and
//! load generator) and peak RSS (VmHWM) per peer. Prints a table, then one JSON line.
//!
//! Phases run one after the other on the same fleet, one per offered rate (by default 1,000 and
//! 1,500 tx/s, about what this 2-core machine sustains, then the 5,000 tx/s target).
//!
//! Run: `cargo bench -p mediachain-peer --bench fleet`. Settings (environment):
//! `FLEET_BENCH_RATES` offered tx/s per phase (default `1000,1500,5000`), `FLEET_BENCH_SECONDS` per
//! phase (default 10), `FLEET_BENCH_INTERVAL` block interval (default 300ms, as the fleet
//! tests), `FLEET_BENCH_CONCURRENCY` in-flight
//! submissions (default 64), `FLEET_BENCH_LOGS` a directory to copy the peers' logs to,
//! `FLEET_BENCH_LOG` the peers' log filter (`MEDIACHAIN_LOG`), `FLEET_BENCH_FINALITY` `on`
//! (default) or `off`, `FLEET_BENCH_EPOCH` blocks per finality epoch (default 4),
//! `FLEET_BENCH_SEARCH` `on` (default) or `off`: the peers' query index (`MEDIACHAIN_SEARCH`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "../tests/support/fleet.rs"]
mod fleet;
#[path = "../tests/support/listening.rs"]
mod listening;
#[path = "../tests/support/params.rs"]
mod params;
#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/report.rs"]
mod report;
#[path = "support/views.rs"]
mod views;
#[path = "../tests/support/work.rs"]
mod work;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mediachain::client::Client;
use mediachain::journal::Transaction;
use mediachain::model::{Artefact, Cid, JournalEntry, Object};
use mediachain::trust::SecretKey;
use views::{explain_missing, watch, Seen};
use work::TX_BITS;

const PEERS: usize = 4;
/// How long the fleet may take to commit everything after the last submission.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
/// How long, after the drain, every accepted transaction may take to become final.
const FINAL_TIMEOUT: Duration = Duration::from_secs(60);
/// Objects per batch upload while preparing.
const UPLOAD_BATCH: usize = 1000;
/// Bound on one HTTP request of the load generator.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

fn setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn number(name: &str, default: usize) -> usize {
    setting(name, &default.to_string())
        .parse()
        .unwrap_or_else(|_| panic!("{name} must be a whole number"))
}

/// One registered client per peer, one signed transaction per uploaded object (named by the
/// process and `phase`, so every phase inserts new artefacts; uploaded in batches). The transactions are signed once
/// every object is uploaded, so their timestamps are those of the offer, not of the (slower)
/// uploads: a transaction expires when its block comes more than the transaction window
/// (10 minutes) after its timestamp.
async fn prepare(clients: &[Client], total: usize, phase: usize) -> Vec<(usize, Transaction)> {
    let mut keys = vec![];
    for c in clients {
        let key = SecretKey::generate();
        let (chain, _) = c.register(&key).await.expect("register a client");
        keys.push((key, chain));
    }
    let tag = std::process::id();
    let objects: Vec<(usize, Object)> = (0..total)
        .map(|n| {
            let name = format!("fleet bench work {tag}-{phase}-{n}");
            (n % PEERS, Object::Artefact(Artefact::named(&name)))
        })
        .collect();
    // Batch uploads to each peer (one flush per batch).
    let mut stored: Vec<std::collections::VecDeque<Cid>> = vec![Default::default(); PEERS];
    for (peer, client) in clients.iter().enumerate() {
        let encoded: Vec<Vec<u8>> = objects
            .iter()
            .filter(|(p, _)| *p == peer)
            .map(|(_, o)| o.encode().expect("an object").bytes)
            .collect();
        for chunk in encoded.chunks(UPLOAD_BATCH) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            for s in client.put_objects(&refs).await.expect("upload objects") {
                stored[peer].push_back(s.cid.parse().expect("a CID"));
            }
        }
        eprintln!("  uploaded {} objects to peer {peer}", encoded.len());
    }
    let now = mediachain::time::now();
    (0..total)
        .map(|n| {
            let peer = n % PEERS;
            let cid = stored[peer].pop_front().expect("an uploaded object");
            let (key, chain) = &keys[peer];
            let entries = vec![JournalEntry::Insert {
                reference: cid,
                timestamp: now,
            }];
            let tx = Transaction::create(key, chain, entries, now, TX_BITS).expect("a transaction");
            (peer, tx)
        })
        .collect()
}

/// Offers `txs` at `rate` per second from `concurrency` workers; returns the accepted ones with
/// their submission instants, and the time the last submission finished.
async fn submit_all(
    clients: &[Client],
    txs: Vec<(usize, Transaction)>,
    rate: usize,
    concurrency: usize,
    start: Instant,
) -> (Vec<(usize, String, Instant)>, Instant) {
    let txs = Arc::new(txs);
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(Mutex::new(Vec::with_capacity(txs.len())));
    let mut workers = vec![];
    for _ in 0..concurrency {
        let (txs, next, accepted) = (txs.clone(), next.clone(), accepted.clone());
        let clients = clients.to_vec();
        workers.push(tokio::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some((peer, tx)) = txs.get(n) else { break };
                let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let at = Instant::now();
                match tokio::time::timeout(REQUEST_TIMEOUT, clients[*peer].submit(tx)).await {
                    Ok(Ok(_)) => accepted
                        .lock()
                        .unwrap()
                        .push((*peer, tx.id().to_string(), at)),
                    Ok(Err(e)) => eprintln!("submission to peer {peer} refused: {e}"),
                    Err(_) => {
                        eprintln!("submission to peer {peer}: no answer in {REQUEST_TIMEOUT:?}")
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let done = Instant::now();
    let accepted = std::mem::take(&mut *accepted.lock().unwrap());
    (accepted, done)
}

/// CPU seconds used so far by the peers (together) and by this process (the load generator).
struct Cpu {
    peers: f64,
    generator: f64,
}

fn cpu_now(fleet: &fleet::Fleet) -> Cpu {
    Cpu {
        peers: fleet
            .pids()
            .into_iter()
            .flatten()
            .map(|pid| procstat::cpu_seconds(Some(pid)))
            .sum(),
        generator: procstat::cpu_seconds(None),
    }
}

/// Latencies, sorted.
struct Percentiles(Vec<f64>);

impl Percentiles {
    fn of(mut values: Vec<f64>) -> Self {
        values.sort_by(f64::total_cmp);
        Self(values)
    }

    /// The `p` quantile (NaN when empty: the JSON line then says null).
    fn at(&self, p: f64) -> f64 {
        let i = ((self.0.len() as f64 * p).ceil() as usize).saturating_sub(1);
        self.0.get(i).copied().unwrap_or(f64::NAN)
    }

    fn count(&self) -> usize {
        self.0.len()
    }
}

/// Polls `done` every 20 ms until it holds (true) or `limit` passed (false).
async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Figures of one load phase.
struct Phase {
    rate: usize,
    rows: Vec<(String, f64, &'static str)>,
}

/// The bench's settings (environment).
struct Settings {
    rates: Vec<usize>,
    seconds: usize,
    concurrency: usize,
    interval: String,
    interval_ms: f64,
    /// Blocks per finality epoch under network parameters; `None`: no parameters, no finality.
    epoch: Option<u64>,
}

fn main() {
    let rates: Vec<usize> = setting("FLEET_BENCH_RATES", "1000,1500,5000")
        .split(',')
        .map(|r| {
            r.trim()
                .parse()
                .expect("FLEET_BENCH_RATES: offered tx/s, comma-separated")
        })
        .collect();
    let interval = setting("FLEET_BENCH_INTERVAL", "300ms");
    let interval_ms = humantime::parse_duration(&interval)
        .expect("FLEET_BENCH_INTERVAL: a duration such as 300ms")
        .as_secs_f64()
        * 1000.0;
    let epoch = match setting("FLEET_BENCH_FINALITY", "on").as_str() {
        "on" => Some(number("FLEET_BENCH_EPOCH", 4) as u64),
        "off" => None,
        other => panic!("FLEET_BENCH_FINALITY: on or off, not {other}"),
    };
    let settings = Settings {
        rates,
        seconds: number("FLEET_BENCH_SECONDS", 10),
        concurrency: number("FLEET_BENCH_CONCURRENCY", 64),
        interval,
        interval_ms,
        epoch,
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(settings));
}

async fn run(settings: Settings) {
    let mut fleet = fleet::Fleet::new(PEERS);
    fleet.block_interval = settings.interval.clone();
    if let Some(epoch) = settings.epoch {
        params::use_network_params(&mut fleet, epoch);
    }
    // One load generator sends everything from one address: lift the per-client rate limit and
    // connection cap.
    fleet.lift_client_limits();
    let search = setting("FLEET_BENCH_SEARCH", "on");
    assert!(
        matches!(search.as_str(), "on" | "off"),
        "FLEET_BENCH_SEARCH: on or off, not {search}"
    );
    fleet.env.push(("MEDIACHAIN_SEARCH".into(), search));
    if let Ok(filter) = std::env::var("FLEET_BENCH_LOG") {
        fleet.env.push(("MEDIACHAIN_LOG".into(), filter));
    }
    fleet.start_all();
    let all: Vec<usize> = (0..PEERS).collect();
    fleet.wait_ready(&all).await;
    let clients: Vec<Client> = fleet.peers.iter().map(fleet::Peer::client).collect();

    let mut phases = vec![];
    for rate in &settings.rates {
        phases.push(run_phase(&fleet, &clients, *rate, &settings).await);
    }
    let rss: Vec<f64> = fleet
        .pids()
        .into_iter()
        .map(|pid| pid.map_or(0.0, procstat::peak_rss_mib))
        .collect();

    let mut rows: Vec<(String, f64, &str)> = vec![
        ("block interval".into(), settings.interval_ms, "ms"),
        (
            "finality epoch (0: no network parameters, no finality)".into(),
            settings.epoch.unwrap_or(0) as f64,
            "blocks",
        ),
    ];
    for phase in phases {
        for (name, value, unit) in phase.rows {
            rows.push((format!("@{} tx/s: {name}", phase.rate), value, unit));
        }
    }
    for (i, mib) in rss.iter().enumerate() {
        rows.push((format!("peak RSS peer {i}"), *mib, "MiB"));
    }
    report::print(&rows);
    if let Ok(dir) = std::env::var("FLEET_BENCH_LOGS") {
        std::fs::create_dir_all(&dir).unwrap();
        for (i, p) in fleet.peers.iter().enumerate() {
            std::fs::copy(p.log(), format!("{dir}/peer{i}.log")).unwrap();
        }
        eprintln!("peer logs copied to {dir}");
    }
}

/// Offers `rate` tx/s for `seconds`, waits (bounded) until every peer has committed
/// everything accepted, and measures.
async fn run_phase(
    fleet: &fleet::Fleet,
    clients: &[Client],
    rate: usize,
    settings: &Settings,
) -> Phase {
    let Settings {
        seconds,
        concurrency,
        interval_ms,
        ..
    } = *settings;
    let finality = settings.epoch.is_some();
    let total = rate * seconds;
    eprintln!("preparing {total} transactions ({rate} tx/s offered for {seconds} s)");
    let prepared_at = Instant::now();
    let txs = prepare(clients, total, rate).await;
    eprintln!("prepared in {:.1?}", prepared_at.elapsed());

    let seen = Arc::new(Mutex::new(Seen::new(PEERS)));
    let mut watchers = vec![];
    for (peer, c) in clients.iter().enumerate() {
        let from = c.head().await.expect("head").height + 1;
        watchers.push(tokio::spawn(watch(peer, c.clone(), from, seen.clone())));
    }

    let cpu_before = cpu_now(fleet);
    let start = Instant::now();
    let (accepted, submitted_at) = submit_all(clients, txs, rate, concurrency, start).await;
    let submit_secs = submitted_at.duration_since(start).as_secs_f64();
    eprintln!(
        "{} of {total} accepted in {submit_secs:.1} s; waiting for commits on every peer",
        accepted.len()
    );

    // Drain: until every peer's stream has seen every accepted transaction (bounded).
    let drained = wait_until(DRAIN_TIMEOUT, || {
        seen.lock()
            .unwrap()
            .count
            .iter()
            .all(|c| *c >= accepted.len())
    })
    .await;
    let cpu_after = cpu_now(fleet);
    let elapsed = start.elapsed().as_secs_f64();
    if !drained {
        let counts = seen.lock().unwrap().count.clone();
        eprintln!(
            "gave up after {DRAIN_TIMEOUT:?}: committed per peer {counts:?} of {} accepted\n{}",
            accepted.len(),
            fleet.logs()
        );
        let missing: Vec<(usize, usize, String)> = {
            let seen = seen.lock().unwrap();
            (0..PEERS)
                .flat_map(|p| accepted.iter().map(move |(to, id, _)| (p, *to, id)))
                .filter(|(p, _, id)| !seen.at.contains_key(&(*p, (*id).clone())))
                .map(|(p, to, id)| (p, to, id.clone()))
                .collect()
        };
        explain_missing(clients, missing).await;
    }
    // Finality (under network parameters): until every accepted transaction is final at the
    // peer it was submitted to (bounded).
    if finality {
        let finalised = wait_until(FINAL_TIMEOUT, || {
            let seen = seen.lock().unwrap();
            accepted
                .iter()
                .all(|(peer, id, _)| seen.final_at.contains_key(&(*peer, id.clone())))
        })
        .await;
        if !finalised {
            eprintln!(
                "gave up waiting for finality after {FINAL_TIMEOUT:?}: final per peer {:?}",
                seen.lock().unwrap().final_count
            );
        }
    }
    for w in &watchers {
        w.abort();
    }

    let seen = seen.lock().unwrap();
    let mut everywhere = 0usize;
    let mut last_commit = start;
    let mut latencies = Vec::with_capacity(accepted.len());
    let mut final_latencies = Vec::with_capacity(accepted.len());
    for (peer, id, at) in &accepted {
        let times: Vec<Instant> = (0..PEERS)
            .filter_map(|p| seen.at.get(&(p, id.clone())).copied())
            .collect();
        if times.len() == PEERS {
            everywhere += 1;
            last_commit = last_commit.max(times.iter().copied().max().unwrap());
        }
        let key = (*peer, id.clone());
        if let Some(t) = seen.at.get(&key) {
            latencies.push(t.duration_since(*at).as_secs_f64() * 1000.0);
        }
        if let Some(t) = seen.final_at.get(&key) {
            final_latencies.push(t.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    let commit_ms = Percentiles::of(latencies);
    let final_ms = Percentiles::of(final_latencies);
    let blocks = seen.blocks.len();
    let per_block = seen.blocks.iter().sum::<usize>() as f64 / blocks.max(1) as f64;
    let window = last_commit.duration_since(start).as_secs_f64();
    let peers_cpu = cpu_after.peers - cpu_before.peers;
    let generator_cpu = cpu_after.generator - cpu_before.generator;
    let per_tx_us = |cpu: f64| cpu / everywhere.max(1) as f64 * 1e6;
    let rows = vec![
        ("offered rate".into(), total as f64 / submit_secs, "tx/s"),
        ("accepted".into(), accepted.len() as f64, "tx"),
        ("committed on all 4 peers".into(), everywhere as f64, "tx"),
        (
            "committed tx/s (first submit to last commit)".into(),
            everywhere as f64 / window,
            "tx/s",
        ),
        ("submit->commit p50".into(), commit_ms.at(0.50), "ms"),
        ("submit->commit p99".into(), commit_ms.at(0.99), "ms"),
        (
            "p99 in block intervals".into(),
            commit_ms.at(0.99) / interval_ms,
            "intervals",
        ),
        (
            "final at the submitting peer".into(),
            final_ms.count() as f64,
            "tx",
        ),
        ("submit->final p50".into(), final_ms.at(0.50), "ms"),
        ("submit->final p99".into(), final_ms.at(0.99), "ms"),
        ("blocks".into(), blocks as f64, "blocks"),
        ("transactions per block (mean)".into(), per_block, "tx"),
        (
            "CPU per committed tx: 4 peers".into(),
            per_tx_us(peers_cpu),
            "µs",
        ),
        (
            "CPU per committed tx: load generator".into(),
            per_tx_us(generator_cpu),
            "µs",
        ),
        (
            "CPU busy (peers + generator) of 2 cores".into(),
            (peers_cpu + generator_cpu) / elapsed / 2.0 * 100.0,
            "%",
        ),
    ];
    Phase { rate, rows }
}
