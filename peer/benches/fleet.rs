//! Fleet benchmark: 4 release `mediachain-peer` processes on loopback, every peer verifying every
//! transaction. Clients submit pre-built transactions (one artefact `insert` each, objects
//! uploaded beforehand) round-robin to all peers with bounded concurrency; the view-update streams
//! of all peers timestamp each transaction's commit. Reports committed tx/s (first submit to last
//! commit seen on every peer), submit->commit latency p50/p99 at the submitting peer, and peak
//! RSS per peer. Prints a table, then one JSON line.
//!
//! Run: `cargo bench -p mediachain-peer --bench fleet` (MEDIACHAIN_BENCH_TXS, default 6000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "../tests/support/fleet.rs"]
mod fleet;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use mediachain::journal::{Transaction, TxId};
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::trust::SecretKey;

const PEERS: usize = 4;
const CONCURRENCY: usize = 32;
const TX_BITS: u8 = 4;

fn vm_hwm_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<f64>().ok())
        })
        .unwrap_or(0.0)
        / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let total: usize = std::env::var("MEDIACHAIN_BENCH_TXS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000);
    // One client address sends everything here: lift the API's per-address rate limit.
    std::env::set_var("MEDIACHAIN_API_RATE_LIMIT", "0");
    let mut fleet = fleet::Fleet::new(PEERS);
    fleet.start_all();
    let all: Vec<usize> = (0..PEERS).collect();
    fleet.wait_ready(&all).await;
    let clients: Vec<_> = fleet.peers.iter().map(|p| p.client()).collect();

    // Prepare: one registered key per peer, objects uploaded, transactions signed and proved.
    let prep = Instant::now();
    let mut keys = vec![];
    for c in &clients {
        let key = SecretKey::generate();
        let (chain, _) = c.register(&key).await.unwrap();
        keys.push((key, chain));
    }
    let mut txs: Vec<(usize, Transaction)> = Vec::with_capacity(total);
    for n in 0..total {
        let peer = n % PEERS;
        let object = Object::Artefact(Artefact::named(&format!(
            "bench work {n} {}",
            std::process::id()
        )));
        let cid = clients[peer]
            .put_object(&object)
            .await
            .unwrap()
            .cid
            .parse()
            .unwrap();
        let now = mediachain::time::now();
        let (key, chain) = &keys[peer];
        let tx = Transaction::create(
            key,
            chain,
            vec![JournalEntry::Insert {
                reference: cid,
                timestamp: now,
            }],
            now,
            TX_BITS,
        )
        .unwrap();
        txs.push((peer, tx));
    }
    eprintln!("prepared {total} transactions in {:.1?}", prep.elapsed());

    // Watch every peer's view updates.
    let seen: Arc<Mutex<HashMap<(usize, String), Instant>>> = Arc::default();
    let blocks_seen: Arc<Mutex<Vec<usize>>> = Arc::default();
    let mut watchers = vec![];
    for (i, c) in clients.iter().enumerate() {
        let (tip_height, c, seen) = (c.head().await.unwrap().height, c.clone(), seen.clone());
        let blocks_seen = blocks_seen.clone();
        watchers.push(tokio::spawn(async move {
            let mut stream = c.events(Some(tip_height + 1), &[], &[]).await.unwrap();
            while let Some(Ok(block)) = stream.next().await {
                let now = Instant::now();
                if i == 0 {
                    blocks_seen.lock().unwrap().push(block.transactions.len());
                }
                let mut seen = seen.lock().unwrap();
                for id in block.transactions {
                    seen.entry((i, id)).or_insert(now);
                }
            }
        }));
    }

    let submitted: Arc<Mutex<HashMap<TxId, (usize, Instant)>>> = Arc::default();
    let start = Instant::now();
    let txs = Arc::new(Mutex::new(txs));
    let mut workers = vec![];
    for _ in 0..CONCURRENCY {
        let (txs, clients, submitted) = (txs.clone(), clients.clone(), submitted.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let Some((peer, tx)) = txs.lock().unwrap().pop() else {
                    break;
                };
                let at = Instant::now();
                match clients[peer].submit(&tx).await {
                    Ok(_) => {
                        submitted.lock().unwrap().insert(tx.id(), (peer, at));
                    }
                    Err(e) => eprintln!("submit failed: {e}"),
                }
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let submit_secs = start.elapsed().as_secs_f64();
    let accepted = submitted.lock().unwrap().len();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let done = seen.lock().unwrap().len();
        if done >= accepted * PEERS || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = seen.lock().unwrap().clone();
    let submitted = submitted.lock().unwrap().clone();
    let last_commit = seen.values().max().copied().unwrap_or(start);
    let committed_everywhere = submitted
        .keys()
        .filter(|id| (0..PEERS).all(|p| seen.contains_key(&(p, id.to_string()))))
        .count();
    let mut latencies: Vec<f64> = submitted
        .iter()
        .filter_map(|(id, (peer, at))| {
            seen.get(&(*peer, id.to_string()))
                .map(|t| t.duration_since(*at).as_secs_f64() * 1000.0)
        })
        .collect();
    latencies.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    let rss: Vec<f64> = fleet
        .peers
        .iter()
        .map(|p| p.child.as_ref().map(|c| vm_hwm_mib(c.id())).unwrap_or(0.0))
        .collect();
    for w in watchers {
        w.abort();
    }
    let rows: Vec<(String, f64, &str)> = vec![
        (
            "transactions submitted (accepted)".into(),
            accepted as f64,
            "tx",
        ),
        (
            "committed on all 4 peers".into(),
            committed_everywhere as f64,
            "tx",
        ),
        ("submit rate".into(), accepted as f64 / submit_secs, "tx/s"),
        (
            "committed throughput (all peers)".into(),
            committed_everywhere as f64 / last_commit.duration_since(start).as_secs_f64(),
            "tx/s",
        ),
        ("submit->commit latency p50".into(), pct(0.5), "ms"),
        ("submit->commit latency p99".into(), pct(0.99), "ms"),
        ("block interval".into(), 300.0, "ms"),
        (
            "blocks".into(),
            blocks_seen.lock().unwrap().len() as f64,
            "blocks",
        ),
        (
            "transactions per block (mean)".into(),
            blocks_seen.lock().unwrap().iter().sum::<usize>() as f64
                / blocks_seen.lock().unwrap().len().max(1) as f64,
            "tx",
        ),
        (
            "peak RSS, max over peers".into(),
            rss.iter().copied().fold(0.0, f64::max),
            "MiB",
        ),
    ];
    println!("{:<40} {:>12}  unit", "benchmark", "value");
    for (name, value, unit) in &rows {
        println!("{name:<40} {value:>12.1}  {unit}");
    }
    let json: serde_json::Map<String, serde_json::Value> = rows
        .iter()
        .map(|(name, value, unit)| {
            (
                format!("{name} [{unit}]"),
                serde_json::json!((value * 10.0).round() / 10.0),
            )
        })
        .collect();
    println!("{}", serde_json::Value::Object(json));
}
