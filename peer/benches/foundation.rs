//! Foundation benchmarks: encode+CID, decode, certificate-chain verification, datastore put/get,
//! and proof-of-work solve time. Prints a table, then one JSON line with every figure.
//!
//! Run: `cargo bench -p mediachain-peer --bench foundation`

#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use mediachain::model::{codec, nil_cid, Artefact, CellKind, ChainCell, Meta, Object, RAW};
use mediachain::store::Store;
use mediachain::trust::{pow, Certificate, Chain, Level, Purpose, RevocationSet, SecretKey};

/// Runs `f` repeatedly for about `budget` and returns operations per second.
fn rate(budget: Duration, mut f: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..64 {
            f(n);
            n += 1;
        }
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_millis(1500);
    let mut rows: Vec<(String, f64, &str)> = vec![];

    let artefact = Object::Artefact(Artefact {
        meta: Meta::named("Notes on the Analytical Engine")
            .with("created", "1843")
            .with("description", "Note G"),
        data: Some(codec::cid_of(RAW, b"blob")),
        meta_source: None,
        signatures: None,
    });
    let cell = Object::Cell(
        ChainCell::new(
            CellKind::ArtefactCreatedBy { entity: nil_cid() },
            nil_cid(),
            nil_cid(),
        )
        .with_meta(Meta::default().with("note", "created")),
    );
    let artefact_bytes = artefact.encode().map(|e| e.bytes).unwrap_or_default();
    rows.push((
        "encode+CID artefact".into(),
        rate(budget, |_| drop(artefact.encode())),
        "ops/s",
    ));
    rows.push((
        "encode+CID chain cell".into(),
        rate(budget, |_| drop(cell.encode())),
        "ops/s",
    ));
    rows.push((
        "decode artefact (strict)".into(),
        rate(budget, |_| drop(Object::decode(&artefact_bytes))),
        "ops/s",
    ));

    let root = SecretKey::generate();
    let principal = SecretKey::generate();
    let peer = SecretKey::generate();
    let client = SecretKey::generate();
    let now = mediachain::time::now();
    let l0 = Chain(vec![Certificate::issue(
        &root,
        principal.public(),
        Level::Principal,
        now,
        now + 3600,
    )]);
    let l1 = Chain::extend(
        Certificate::issue(&principal, peer.public(), Level::Peer, now, now + 3600),
        &l0,
    );
    let l2 = Chain::extend(
        Certificate::issue(&peer, client.public(), Level::Client, now, now + 3600),
        &l1,
    );
    let revocations = RevocationSet::new(root.public());
    let verify = rate(budget, |_| {
        assert!(l2
            .verify(&root.public(), &revocations, now, Level::Client)
            .is_ok());
    });
    rows.push(("verify Level-2 chain (3 sigs)".into(), verify, "chains/s"));

    let dir = tempfile_dir();
    let store = match Store::open(&dir, 1 << 20) {
        Ok(store) => store,
        Err(e) => panic!("cannot open bench store: {e}"),
    };
    let blob = |i: u64| format!("benchmark object {i:012} {}", "m".repeat(200)).into_bytes();
    let durable_put = rate(Duration::from_millis(3000), |i| {
        drop(store.put_blob(&blob(i)))
    });
    rows.push((
        "store put, durable each (~260 B)".into(),
        durable_put,
        "puts/s",
    ));
    let start = Instant::now();
    let bulk: Vec<_> = (1_000_000..1_100_000u64)
        .map(|i| (codec::cid_of(RAW, &blob(i)), blob(i)))
        .collect();
    let count = bulk.len() as f64;
    let prep = start.elapsed();
    let start = Instant::now();
    if let Err(e) = store.import(bulk, 1000, |_| {}) {
        panic!("import failed: {e}");
    }
    rows.push((
        "store bulk import (batch 1000)".into(),
        count / (start.elapsed() + prep).as_secs_f64(),
        "objects/s",
    ));
    let cids: Vec<_> = (1_000_000..1_100_000u64)
        .map(|i| codec::cid_of(RAW, &blob(i)))
        .collect();
    let get = rate(budget, |i| {
        drop(store.get(&cids[(i as usize * 7919) % cids.len()]))
    });
    rows.push(("store get (random, 100k objects)".into(), get, "gets/s"));
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);

    for bits in [8u8, 12, 16, 20] {
        let rounds = if bits >= 20 { 8 } else { 32 };
        let start = Instant::now();
        for r in 0..rounds {
            let resource = format!("resource-{r}");
            drop(pow::solve(Purpose::Transaction, resource.as_bytes(), bits));
        }
        let ms = start.elapsed().as_secs_f64() * 1000.0 / rounds as f64;
        rows.push((
            format!("pow solve {bits} bits (mean of {rounds})"),
            ms,
            "ms",
        ));
    }
    let stamp =
        pow::solve(Purpose::Transaction, b"r", 16).unwrap_or(pow::PowStamp { bits: 16, nonce: 0 });
    let check = rate(budget, |_| {
        drop(pow::verify(&stamp, Purpose::Transaction, b"r", 16))
    });
    rows.push(("pow verify".into(), check, "ops/s"));

    report::print(&rows);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mediachain-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}
