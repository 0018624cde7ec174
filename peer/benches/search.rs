//! The query index at scale (`peer/src/search`): building it from a chain of `SEARCH_BENCH_DOCS`
//! artefacts (default 1,000,000), then searching it while new blocks are indexed.
//!
//! The chain is synthetic but goes through the same code as a peer's: the follower
//! (`search::sync`, steps of at most `STEP_BYTES` held, one atomic commit each, as a peer's
//! `SearchService::catch_up`) reads blocks of 1,000 inserts and the artefacts they name through
//! the `ChainSource` trait, derives each record and writes it with the engine. The artefacts are
//! generated on demand from their number (a name of three words and a description of twelve,
//! drawn from 20,000 words), so the process's memory is the indexer's: peak RSS is `VmHWM` of
//! this process. Reported: build docs/s, peak RSS, index size
//! on disk; then `SEARCH_BENCH_QPS` (default 200) queries a second (one or two words; open loop,
//! latency from each query's scheduled time, so a stall counts against every query it delays)
//! from 4 threads for `SEARCH_BENCH_SECONDS` (default 10) while a committer adds and indexes a
//! block of 100 artefacts every 100 ms, as a peer's follower does: p50/p99 (goal: build >= 20,000
//! docs/s, p99 < 50 ms).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly

#[path = "support/procstat.rs"]
mod procstat;
#[path = "support/report.rs"]
mod report;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mediachain::journal::Block;
use mediachain::model::codec::cid_of;
use mediachain::model::{Artefact, Cid, JournalEntry, Meta, Object, RAW};
use mediachain::search::service::STEP_BYTES;
use mediachain::search::{search, sync, ChainSource, Engine, SearchError, SearchQuery};

/// Inserts per block of the initial chain.
const PER_BLOCK: u64 = 1000;
/// Inserts per block committed during the query run.
const PER_LIVE_BLOCK: u64 = 100;
const VOCABULARY: u64 = 20_000;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A deterministic pseudo-random number from `n` (splitmix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Word `n` of the vocabulary: pronounceable, 2 to 4 syllables.
fn word(n: u64) -> String {
    const SYLLABLES: [&str; 24] = [
        "ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "da", "pe", "zu", "gri", "fla", "mor",
        "sen", "tal", "bru", "chi", "dor", "ven", "lys", "qua", "nim", "sto",
    ];
    let mut z = mix(n ^ 0xABCD);
    let count = 2 + (z % 3);
    let mut out = String::new();
    for _ in 0..count {
        z = mix(z);
        out.push_str(SYLLABLES[(z % 24) as usize]);
    }
    out.push_str(&(n % 97).to_string());
    out
}

fn words(seed: u64, count: u64) -> String {
    (0..count)
        .map(|k| word(mix(seed * 31 + k) % VOCABULARY))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The chain: `blocks` blocks; block `h` inserts the artefacts numbered by [`Chain::range`].
struct Chain {
    blocks: AtomicU64,
    initial_blocks: u64,
    /// Canonical CIDs' first 8 digest bytes with the artefact number, sorted: the way back
    /// from a CID to the artefact it names.
    numbers: std::sync::RwLock<Vec<(u64, u64)>>,
}

fn canonical(n: u64) -> Cid {
    cid_of(RAW, format!("artefact {n}").as_bytes())
}

fn key(cid: &Cid) -> u64 {
    let digest = cid.hash().digest();
    u64::from_le_bytes(digest[..8].try_into().unwrap())
}

fn block_cid(height: u64) -> Cid {
    cid_of(RAW, format!("block {height}").as_bytes())
}

impl Chain {
    fn new(docs: u64) -> Self {
        let initial_blocks = docs.div_ceil(PER_BLOCK);
        let mut numbers: Vec<(u64, u64)> = (0..docs).map(|n| (key(&canonical(n)), n)).collect();
        numbers.sort_unstable();
        Self {
            blocks: AtomicU64::new(initial_blocks),
            initial_blocks,
            numbers: std::sync::RwLock::new(numbers),
        }
    }

    /// The artefacts block `height` inserts.
    fn range(&self, height: u64) -> std::ops::Range<u64> {
        if height < self.initial_blocks {
            height * PER_BLOCK..(height + 1) * PER_BLOCK
        } else {
            let start =
                self.initial_blocks * PER_BLOCK + (height - self.initial_blocks) * PER_LIVE_BLOCK;
            start..start + PER_LIVE_BLOCK
        }
    }

    /// Commits one more block of [`PER_LIVE_BLOCK`] artefacts.
    fn grow(&self) {
        let height = self.blocks.load(Ordering::SeqCst);
        let mut numbers = self.numbers.write().unwrap();
        for n in self.range(height) {
            let at = numbers.partition_point(|&(k, _)| k < key(&canonical(n)));
            numbers.insert(at, (key(&canonical(n)), n));
        }
        drop(numbers);
        self.blocks.fetch_add(1, Ordering::SeqCst);
    }
}

impl ChainSource for Chain {
    fn tip_height(&self) -> Result<u64, SearchError> {
        Ok(self.blocks.load(Ordering::SeqCst) - 1)
    }

    fn block_at(&self, height: u64) -> Result<Option<Cid>, SearchError> {
        Ok((height < self.blocks.load(Ordering::SeqCst)).then(|| block_cid(height)))
    }

    fn block(&self, cid: &Cid) -> Result<Block, SearchError> {
        let height = (0..self.blocks.load(Ordering::SeqCst))
            .rev()
            .find(|h| block_cid(*h) == *cid)
            .ok_or_else(|| SearchError::Chain(format!("no block {cid}")))?;
        let timestamp_ms = 1_700_000_000_000 + height * 1000;
        let entries = self
            .range(height)
            .map(|n| JournalEntry::Insert {
                reference: canonical(n),
                timestamp: timestamp_ms / 1000,
            })
            .collect();
        let mut block = Block::genesis("bench", entries);
        if height > 0 {
            block.chain = block_cid(height - 1);
        }
        block.height = height;
        block.timestamp_ms = timestamp_ms;
        Ok(block)
    }

    fn object(&self, cid: &Cid) -> Option<Object> {
        let numbers = self.numbers.read().unwrap();
        let k = key(cid);
        let at = numbers.partition_point(|&(x, _)| x < k);
        let &(found, n) = numbers.get(at)?;
        (found == k).then(|| {
            let meta = Meta::named(&words(n, 3)).with("description", &words(n + (1 << 40), 12));
            Object::Artefact(Artefact {
                meta,
                ..Artefact::named("")
            })
        })
    }
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0.0)
}

fn main() {
    let docs = setting("SEARCH_BENCH_DOCS", 1_000_000);
    let qps = setting("SEARCH_BENCH_QPS", 200);
    let seconds = setting("SEARCH_BENCH_SECONDS", 10);
    let dir = tempfile::tempdir().unwrap();
    eprintln!("generating the chain of {docs} artefacts...");
    let chain = Arc::new(Chain::new(docs));
    let (engine, _) = Engine::open(dir.path()).unwrap();
    let engine = Arc::new(engine);

    eprintln!("building the index...");
    let cpu0 = procstat::cpu_seconds(None);
    let t0 = Instant::now();
    while sync(&engine, chain.as_ref(), STEP_BYTES).unwrap().behind {}
    let build = t0.elapsed().as_secs_f64();
    let build_cpu = procstat::cpu_seconds(None) - cpu0;
    let rss = procstat::peak_rss_mib(std::process::id());
    let size = dir_size(dir.path()) as f64 / (1024.0 * 1024.0);

    eprintln!("searching at {qps} queries/s for {seconds} s while blocks commit...");
    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let committer = {
        let (engine, chain, stop, committed) = (
            engine.clone(),
            chain.clone(),
            stop.clone(),
            committed.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                chain.grow();
                while sync(&engine, chain.as_ref(), STEP_BYTES).unwrap().behind {}
                committed.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let start = Instant::now() + Duration::from_millis(100);
    let total = qps * seconds;
    let threads = 4;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let engine = engine.clone();
            std::thread::spawn(move || {
                let mut latencies = vec![];
                let mut hits = 0usize;
                for i in (t..total).step_by(threads as usize) {
                    let due = start + Duration::from_secs_f64(i as f64 / qps as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let text = words(mix(i) % docs, 1 + i % 2);
                    let query = SearchQuery {
                        text: Some(text),
                        limit: 20,
                        ..SearchQuery::default()
                    };
                    hits += search(&engine, &query).unwrap().hits.len();
                    latencies.push(due.elapsed().as_secs_f64() * 1000.0);
                }
                (latencies, hits)
            })
        })
        .collect();
    let mut latencies = vec![];
    let mut hits = 0;
    for worker in workers {
        let (l, h) = worker.join().unwrap();
        latencies.extend(l);
        hits += h;
    }
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    committer.join().unwrap();
    latencies.sort_by(f64::total_cmp);

    report::print(&[
        ("artefacts indexed".into(), docs as f64, "docs"),
        ("build rate".into(), docs as f64 / build, "docs/s"),
        ("build time".into(), build, "s"),
        ("build CPU".into(), build_cpu, "s"),
        ("peak RSS".into(), rss, "MiB"),
        ("index size on disk".into(), size, "MiB"),
        ("queries".into(), latencies.len() as f64, "queries"),
        (
            "query rate achieved".into(),
            latencies.len() as f64 / elapsed,
            "queries/s",
        ),
        (
            "hits returned per query".into(),
            hits as f64 / latencies.len().max(1) as f64,
            "hits",
        ),
        ("query p50".into(), percentile(&latencies, 0.5), "ms"),
        ("query p99".into(), percentile(&latencies, 0.99), "ms"),
        (
            "blocks committed while querying".into(),
            committed.load(Ordering::Relaxed) as f64,
            "blocks",
        ),
    ]);
}
