//! Journal benchmarks (one thread, so one core):
//! - verified entries applied per second: a replica verifies and applies blocks of 500
//!   transactions (1,000 entries: an artefact `insert` and its `artefactCreatedBy` update each),
//!   checking every client signature, certificate chain (cached per chain) and proof of work,
//!   deriving the entries and writing the sled index; reported per wall second and per CPU
//!   second of the applying thread (its own clock: what it does on an idle core however busy the
//!   machine is);
//! - index rebuild of 1,000,000 journal entries from the newest block alone, with the peak RSS
//!   of the rebuild.
//!
//! Run: `cargo bench -p mediachain-peer --bench journal` (MEDIACHAIN_BENCH_ENTRIES overrides the
//! rebuild size, 0 leaves the rebuild out; MEDIACHAIN_BENCH_BLOCKS the number of blocks
//! verified, default 20). Prints a table, then one JSON line.

#[path = "support/report.rs"]
mod report;
#[path = "support/thread_cpu.rs"]
mod thread_cpu;

use std::time::Instant;

use mediachain::journal::{rebuild, Block, Journal, Rules, Schedule, Transaction};
use mediachain::model::{
    codec, nil_cid, Artefact, CellKind, ChainCell, Entity, JournalEntry, Meta, Object,
};
use mediachain::store::Store;
use mediachain::trust::{Certificate, Chain, Level, SecretKey};

const NOW: u64 = 1_700_000_000;
const POW_BITS: u8 = 8;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.to_string())
        })
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mediachain-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn main() {
    let mut rows: Vec<(String, f64, &str)> = vec![];

    // A network: root -> principal -> 3 peers -> 100 clients.
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        NOW - 10,
        NOW + 1_000_000,
    )]);
    let peers: Vec<(SecretKey, Chain)> = (0..3)
        .map(|_| {
            let k = SecretKey::generate();
            let c = Chain::extend(
                Certificate::issue(
                    &principal,
                    k.public(),
                    Level::Peer,
                    NOW - 10,
                    NOW + 1_000_000,
                ),
                &l0,
            );
            (k, c)
        })
        .collect();
    let clients: Vec<(SecretKey, Chain)> = (0..100)
        .map(|i| {
            let k = SecretKey::generate();
            let (pk, pc) = &peers[i % 3];
            let c = Chain::extend(
                Certificate::issue(pk, k.public(), Level::Client, NOW - 10, NOW + 1_000_000),
                pc,
            );
            (k, c)
        })
        .collect();
    let rules = Rules::new("bench", root.public(), POW_BITS);
    let schedule = Schedule::new(peers.iter().map(|(k, _)| k.public()).collect());
    let genesis = Block::genesis("bench", vec![]);
    let author = Object::Entity(Entity::named("bench author"));

    let (dc, dv) = (temp("committer"), temp("verifier"));
    let open = |dir: &std::path::Path| {
        let store = Store::open(dir, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let index = store.index().unwrap_or_else(|e| panic!("{e}"));
        Journal::open(rules.clone(), schedule.clone(), index, store, &genesis)
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let mut committer = open(&dc);
    let mut verifier = open(&dv);
    let author_cid = author.cid().unwrap_or_else(|e| panic!("{e}"));

    let blocks: usize = std::env::var("MEDIACHAIN_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let per_block = 500usize;
    let prep = Instant::now();
    let mut built = vec![];
    let mut objects = vec![author.clone()];
    for b in 0..blocks {
        let mut txs = Vec::with_capacity(per_block);
        for t in 0..per_block {
            let n = b * per_block + t;
            let artefact = Object::Artefact(Artefact::named(&format!("work {n}")));
            let art = artefact.cid().unwrap_or_else(|e| panic!("{e}"));
            let cell = Object::Cell(
                ChainCell::new(
                    CellKind::ArtefactCreatedBy { entity: author_cid },
                    art,
                    nil_cid(),
                )
                .with_meta(Meta::default().with("note", "bench")),
            );
            let chain = cell.cid().unwrap_or_else(|e| panic!("{e}"));
            objects.push(artefact);
            objects.push(cell);
            let (ck, cc) = &clients[n % clients.len()];
            let entries = vec![
                JournalEntry::Insert {
                    reference: art,
                    timestamp: NOW,
                },
                JournalEntry::Update {
                    reference: art,
                    chain,
                    chain_previous: nil_cid(),
                    timestamp: NOW,
                },
            ];
            txs.push(
                Transaction::create(ck, cc, entries, NOW, POW_BITS)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
        }
        for o in &objects {
            committer
                .objects()
                .put_object(o)
                .unwrap_or_else(|e| panic!("{e}"));
            verifier
                .objects()
                .put_object(o)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        objects.clear();
        let height = committer.tip().unwrap_or_else(|e| panic!("{e}")).1 + 1;
        let in_turn = schedule.in_turn(height);
        let (pk, pc) = peers
            .iter()
            .find(|(k, _)| Some(k.public()) == in_turn)
            .unwrap_or(&peers[0]);
        let (block, rejected) = committer
            .commit((pk, pc), txs, (NOW + b as u64) * 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(rejected.is_empty(), "bench transactions are valid");
        built.push(block);
    }
    eprintln!("prepared {blocks} blocks in {:.1?}", prep.elapsed());

    let start = Instant::now();
    let cpu_start = thread_cpu::seconds();
    for block in &built {
        let outcome = verifier
            .add_block(block, (NOW + blocks as u64) * 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(outcome.is_ok(), "{outcome:?}");
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = thread_cpu::seconds() - cpu_start;
    let entries = (blocks * per_block * 2) as f64;
    rows.push((
        "verify+apply entries (sled index)".into(),
        entries / secs,
        "entries/s",
    ));
    rows.push((
        "verify+apply entries per CPU second of the thread".into(),
        entries / cpu,
        "entries/cpu-s",
    ));
    rows.push((
        "verify+apply transactions".into(),
        (blocks * per_block) as f64 / secs,
        "tx/s",
    ));
    drop((committer, verifier));
    let _ = std::fs::remove_dir_all(&dc);
    let _ = std::fs::remove_dir_all(&dv);

    // Rebuild: a chain of blocks holding `total` insert entries.
    let total: usize = std::env::var("MEDIACHAIN_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per_block = 1000usize;
    let dir = temp("rebuild");
    let store = Store::open(&dir, 64 << 20).unwrap_or_else(|e| panic!("{e}"));
    let (pk, pc) = &peers[0];
    let mut parent = (genesis.cid(), 0u64);
    store
        .put(&genesis.cid(), &genesis.to_bytes())
        .unwrap_or_else(|e| panic!("{e}"));
    let mut written = 0usize;
    while written < total {
        let n = per_block.min(total - written);
        let entries = (written..written + n)
            .map(|i| JournalEntry::Insert {
                reference: codec::cid_of(codec::RAW, &(i as u64).to_le_bytes()),
                timestamp: NOW,
            })
            .collect();
        let block = Block::commit(parent, "bench", NOW, (pk, pc), vec![], entries);
        let bytes = block.to_bytes();
        let cid = codec::dag_cbor_cid(&bytes);
        store.put(&cid, &bytes).unwrap_or_else(|e| panic!("{e}"));
        parent = (cid, parent.1 + 1);
        written += n;
    }
    let mut index = store.index().unwrap_or_else(|e| panic!("{e}"));
    reset_peak_rss();
    let rss_before = rss_kib("VmRSS:");
    let start = Instant::now();
    let mut last = Instant::now();
    let report = rebuild::rebuild(&mut index, &store, parent.0, |p| {
        if last.elapsed().as_secs() >= 5 {
            eprintln!(
                "rebuild: {}/{} blocks, {} entries",
                p.blocks, p.total_blocks, p.entries
            );
            last = Instant::now();
        }
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let secs = start.elapsed().as_secs_f64();
    let peak = rss_kib("VmHWM:");
    assert_eq!(report.entries as usize, total);
    rows.push((format!("index rebuild of {total} entries"), secs, "s"));
    rows.push(("rebuild rate".into(), total as f64 / secs, "entries/s"));
    rows.push(("rebuild peak RSS".into(), peak as f64 / 1024.0, "MiB"));
    rows.push((
        "rebuild RSS growth".into(),
        peak.saturating_sub(rss_before) as f64 / 1024.0,
        "MiB",
    ));
    drop((index, store));
    let _ = std::fs::remove_dir_all(&dir);

    report::print(&rows);
}
