//! Backup benchmark: a journal of 1,000,000 entries (blocks of 400 transactions, each an artefact
//! `insert` and its `artefactCreatedBy` update, every one signed, certified and with its proof of
//! work) is
//! - exported to a CAR file (`write_car`, as `mediachain-peer export` does): entries/s, MB/s,
//!   peak RSS;
//! - imported into an empty data directory (`import_car`: every object checked against its CID,
//!   every block verified and applied): entries/s, MB/s, peak RSS;
//! - then the time a new peer takes to be ready at the tip: bootstrapped from the CAR file (import
//!   plus start) versus a full sync from a peer holding the journal (two in-process daemons on
//!   loopback). `MEDIACHAIN_BENCH_SYNC_ENTRIES` (default 200,000) sizes the journal of this
//!   comparison; both ways run on the same journal.
//!
//! Run: `cargo bench -p mediachain-peer --bench backup` (`MEDIACHAIN_BENCH_ENTRIES` overrides the
//! export/import size). Prints a table, then one JSON line.

#[path = "support/report.rs"]
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mediachain::api::ApiConfig;
use mediachain::backup::{import_car, root_at, write_car};
use mediachain::daemon::{Daemon, DaemonSpec, MEMPOOL_BYTES, MEMPOOL_CAPACITY};
use mediachain::journal::{Block, Journal, Rules, Schedule, Transaction};
use mediachain::model::{
    nil_cid, Artefact, CellKind, ChainCell, Entity, JournalEntry, Meta, Object,
};
use mediachain::node::overlay::OverlayConfig;
use mediachain::node::NodeParams;
use mediachain::store::Store;
use mediachain::trust::{Certificate, Chain, Level, SecretKey};

const NETWORK: &str = "bench";
const POW_BITS: u8 = 8;
const TXS_PER_BLOCK: usize = 400;
const MAX_OBJECT: usize = 1 << 20;

fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).map(str::to_string))
        .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mediachain-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A network's trust: root, the peers' keys and chains, the clients' keys and chains.
struct Network {
    root: SecretKey,
    peers: Vec<(SecretKey, Chain)>,
    clients: Vec<(SecretKey, Chain)>,
}

fn network(now: u64) -> Network {
    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let (from, to) = (now - 60, now + 30 * 86_400);
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        from,
        to,
    )]);
    let peers: Vec<(SecretKey, Chain)> = (0..3)
        .map(|_| {
            let k = SecretKey::generate();
            let c = Chain::extend(
                Certificate::issue(&principal, k.public(), Level::Peer, from, to),
                &l0,
            );
            (k, c)
        })
        .collect();
    let clients = (0..100)
        .map(|i| {
            let k = SecretKey::generate();
            let (pk, pc) = &peers[i % peers.len()];
            let c = Chain::extend(
                Certificate::issue(pk, k.public(), Level::Client, from, to),
                pc,
            );
            (k, c)
        })
        .collect();
    Network {
        root,
        peers,
        clients,
    }
}

fn rules(net: &Network) -> Rules {
    Rules::new(NETWORK, net.root.public(), POW_BITS)
}

/// Commits `entries` journal entries into a new store at `dir` (peer 0 commits every block).
fn build_journal(net: &Network, dir: &Path, entries: usize, now: u64) -> Store {
    let store = Store::open(dir, MAX_OBJECT).unwrap_or_else(|e| panic!("{e}"));
    let index = store.index().unwrap_or_else(|e| panic!("{e}"));
    let genesis = Block::genesis(NETWORK, vec![]);
    let (pk, pc) = &net.peers[0];
    let mut journal = Journal::open(
        rules(net),
        Schedule::new(vec![pk.public()]),
        index,
        store.clone(),
        &genesis,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let author = Object::Entity(Entity::named("bench author"));
    let author_cid = store.put_object(&author).unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut n = 0usize;
    while n * 2 < entries {
        let mut objects = Vec::with_capacity(TXS_PER_BLOCK * 2);
        let mut txs = Vec::with_capacity(TXS_PER_BLOCK);
        for _ in 0..TXS_PER_BLOCK.min((entries - n * 2).div_ceil(2)) {
            let artefact = Object::Artefact(Artefact::named(&format!("work {n}")));
            let art = artefact.encode().unwrap_or_else(|e| panic!("{e}"));
            let cell = Object::Cell(
                ChainCell::new(
                    CellKind::ArtefactCreatedBy { entity: author_cid },
                    art.cid,
                    nil_cid(),
                )
                .with_meta(Meta::named(&format!("work {n}"))),
            );
            let cell = cell.encode().unwrap_or_else(|e| panic!("{e}"));
            let (ck, cc) = &net.clients[n % net.clients.len()];
            let entries = vec![
                JournalEntry::Insert {
                    reference: art.cid,
                    timestamp: now,
                },
                JournalEntry::Update {
                    reference: art.cid,
                    chain: cell.cid,
                    chain_previous: nil_cid(),
                    timestamp: now,
                },
            ];
            txs.push(
                Transaction::create(ck, cc, entries, now, POW_BITS)
                    .unwrap_or_else(|e| panic!("{e}")),
            );
            objects.push((art.cid, art.bytes));
            objects.push((cell.cid, cell.bytes));
            n += 1;
        }
        store
            .import(objects, 4096, |_| {})
            .unwrap_or_else(|e| panic!("{e}"));
        let count = txs.len();
        let (block, rejected) = journal
            .commit((pk, pc), txs, now * 1000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            rejected.is_empty() && block.transactions.len() == count,
            "bench blocks hold every transaction"
        );
    }
    let (_, height) = journal.tip().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "built {} entries in {height} blocks in {:.1?}",
        n * 2,
        started.elapsed()
    );
    store
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn free_addr() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("{e}"))
}

/// A daemon of peer `peer` over `store`, its overlay on `p2p`, seeded with `seeds`.
async fn daemon(
    net: &Network,
    peer: usize,
    store: Store,
    p2p: SocketAddr,
    seeds: &[SocketAddr],
) -> Daemon {
    let multiaddr = |a: &SocketAddr| {
        format!("/ip4/{}/tcp/{}", a.ip(), a.port())
            .parse()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let (key, chain) = net.peers[peer].clone();
    let spec = DaemonSpec {
        params: NodeParams {
            network: NETWORK.into(),
            block_interval: Duration::from_millis(300),
            commit_timeout: Duration::from_secs(2),
            registration_pow_bits: 8,
            transaction_pow_bits: POW_BITS,
            client_cert_validity: 86_400,
            mempool_capacity: MEMPOOL_CAPACITY,
            mempool_bytes: MEMPOOL_BYTES,
            network_params: None,
        },
        key,
        chain,
        rules: rules(net),
        store,
        overlay: OverlayConfig {
            listen: multiaddr(&p2p),
            external_address: None,
            seeds: seeds.iter().map(multiaddr).collect(),
            seeds_file: None,
            target_connectivity: 3,
            limits: Default::default(),
        },
        api_listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        api: ApiConfig::unlimited(),
        commit: true,
        // What is measured is the journal's transfer, not the query index.
        search_dir: None,
    };
    Daemon::start(spec).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Waits (at most 30 minutes) until `d` is ready at `tip`; returns the seconds since `since`.
async fn ready_at(d: &Daemon, tip: u64, since: Instant) -> f64 {
    let deadline = since + Duration::from_secs(1800);
    loop {
        let height = d.node.tip().map(|(_, h)| h).unwrap_or(0);
        if d.health.is_ready() && height >= tip {
            return since.elapsed().as_secs_f64();
        }
        assert!(
            Instant::now() < deadline,
            "not ready at height {tip} after 30 minutes (at {height})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let mut rows: Vec<(String, f64, &str)> = vec![];
    let now = mediachain::time::now();
    let net = network(now);
    let genesis = Block::genesis(NETWORK, vec![]);

    // Export and import of the large journal.
    let entries = env_usize("MEDIACHAIN_BENCH_ENTRIES", 1_000_000);
    let source = temp("backup-source");
    let store = build_journal(&net, &source, entries, now);
    let car = temp("backup-car").with_extension("car");
    reset_peak_rss();
    let started = Instant::now();
    let report = runtime.block_on(async {
        let root = root_at(&store.index().unwrap_or_else(|e| panic!("{e}")), None)
            .unwrap_or_else(|e| panic!("{e}"));
        let file = tokio::fs::File::create(&car)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let report = write_car(store.clone(), root, &mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        report
    });
    let secs = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&car).map(|m| m.len()).unwrap_or(0) as f64;
    rows.push((format!("export of {entries} entries"), secs, "s"));
    rows.push(("export rate".into(), entries as f64 / secs, "entries/s"));
    rows.push(("export throughput".into(), size / 1e6 / secs, "MB/s"));
    rows.push((
        "export peak RSS".into(),
        rss_kib("VmHWM:") as f64 / 1024.0,
        "MiB",
    ));
    rows.push(("CAR file size".into(), size / 1e6, "MB"));
    rows.push((
        "datastore size".into(),
        dir_bytes(&source) as f64 / 1e6,
        "MB",
    ));
    eprintln!(
        "exported {} sections at height {}",
        report.sections, report.height
    );
    drop(store);

    let imported = temp("backup-imported");
    reset_peak_rss();
    let started = Instant::now();
    let imported_report = runtime.block_on(async {
        let file = tokio::fs::File::open(&car)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        import_car(&imported, reader, rules(&net), &genesis, MAX_OBJECT, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    });
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(imported_report.height, report.height);
    rows.push((format!("import of {entries} entries"), secs, "s"));
    rows.push(("import rate".into(), entries as f64 / secs, "entries/s"));
    rows.push(("import throughput".into(), size / 1e6 / secs, "MB/s"));
    rows.push((
        "import peak RSS".into(),
        rss_kib("VmHWM:") as f64 / 1024.0,
        "MiB",
    ));
    for dir in [&source, &imported] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&car);

    // A new peer ready at the tip: from a CAR file, or by a full sync.
    let sync_entries = env_usize("MEDIACHAIN_BENCH_SYNC_ENTRIES", 200_000);
    let source = temp("sync-source");
    let store = build_journal(&net, &source.join("store"), sync_entries, now);
    let (tip_cid, tip) = root_at(&store.index().unwrap_or_else(|e| panic!("{e}")), None)
        .unwrap_or_else(|e| panic!("{e}"));
    let car = temp("sync-car").with_extension("car");
    runtime.block_on(async {
        let file = tokio::fs::File::create(&car)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let mut out = tokio::io::BufWriter::new(file);
        write_car(store.clone(), (tip_cid, tip), &mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    });
    let (bootstrapped, synced) = (temp("sync-bootstrapped"), temp("sync-full"));
    let (car_secs, sync_secs) = runtime.block_on(async {
        let source_addr = free_addr();
        let seed = daemon(&net, 0, store, source_addr, &[]).await;
        // From the CAR file: import, then start.
        let started = Instant::now();
        let file = tokio::fs::File::open(&car)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        import_car(
            &bootstrapped,
            tokio::io::BufReader::new(file),
            rules(&net),
            &genesis,
            MAX_OBJECT,
            |_| {},
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let store =
            Store::open(&bootstrapped.join("store"), MAX_OBJECT).unwrap_or_else(|e| panic!("{e}"));
        let peer = daemon(&net, 1, store, free_addr(), &[source_addr]).await;
        let car_secs = ready_at(&peer, tip, started).await;
        let _ = peer.stop().await;
        // Full sync from the seed.
        let started = Instant::now();
        let store =
            Store::open(&synced.join("store"), MAX_OBJECT).unwrap_or_else(|e| panic!("{e}"));
        let peer = daemon(&net, 2, store, free_addr(), &[source_addr]).await;
        let sync_secs = ready_at(&peer, tip, started).await;
        let _ = peer.stop().await;
        let _ = seed.stop().await;
        (car_secs, sync_secs)
    });
    rows.push((
        format!("ready from a CAR file ({sync_entries} entries)"),
        car_secs,
        "s",
    ));
    rows.push((
        format!("ready by full sync ({sync_entries} entries)"),
        sync_secs,
        "s",
    ));
    for dir in [&source, &bootstrapped, &synced] {
        let _ = std::fs::remove_dir_all(dir);
    }
    let _ = std::fs::remove_file(&car);
    report::print(&rows);
}
