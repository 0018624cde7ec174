//! The query index survives kill -9 (issue 20): a real `mediachain-peer` process whose index is
//! missing starts rebuilding it from its journal, is killed with SIGKILL before the rebuild is
//! done (checked on a copy of the index directory: it holds less than the chain), restarts, and
//! then answers every question exactly as the same peer does after a fresh rebuild — and as the
//! chain says.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mediachain::client::Client;
use mediachain::journal::Transaction;
use mediachain::model::{Artefact, Cid, JournalEntry, Object};
use mediachain::search::Engine;
use mediachain::trust::SecretKey;

use support::fleet::Fleet;

/// Artefacts in the chain: enough that a debug build's rebuild takes a while.
const WORKS: usize = 3000;
/// Inserts per transaction (the journal's limit is 64).
const PER_TX: usize = 60;

/// The name of work `n`: a word of its own, and a word shared by a tenth of the works.
fn name(n: usize) -> String {
    format!("Opus{n} Cycle{} Nocturne", n % 10)
}

/// Writes [`WORKS`] artefacts through `client` and commits them; the chain's height after.
async fn write_works(client: &Client) -> u64 {
    let key = SecretKey::generate();
    let (chain, _) = client.register(&key).await.unwrap();
    let cids: Vec<Cid> = futures::stream::iter(0..WORKS)
        .map(|n| async move {
            let object = Object::Artefact(Artefact::named(&name(n)));
            client
                .put_object(&object)
                .await
                .unwrap()
                .cid
                .parse::<Cid>()
                .unwrap()
        })
        // At most the uploads in progress the peer allows one client (8 by default).
        .buffered(8)
        .collect()
        .await;
    let bits = client.info().await.unwrap().transaction_pow_bits;
    let from = client.head().await.unwrap().height;
    let mut ids = vec![];
    for batch in cids.chunks(PER_TX) {
        let now = mediachain::time::now();
        let entries = batch
            .iter()
            .map(|&reference| JournalEntry::Insert {
                reference,
                timestamp: now,
            })
            .collect();
        let tx = Transaction::create(&key, &chain, entries, now, bits).unwrap();
        client.submit(&tx).await.unwrap();
        ids.push(tx.id());
    }
    for id in &ids {
        support::wait::within("a confirmation", client.await_confirmation(id, from))
            .await
            .unwrap();
    }
    client.head().await.unwrap().height
}

/// The questions asked, with every hit's canonical and head (all pages, sorted).
async fn answers(client: &Client, height: u64) -> Vec<(String, Vec<String>)> {
    // Wait (bounded) until the index has followed the whole chain.
    let deadline = Instant::now() + Duration::from_secs(120);
    while client.search(&[]).await.map_or(true, |p| p.height < height) {
        assert!(
            Instant::now() < deadline,
            "the index did not reach {height}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut questions: Vec<String> = (0..10).map(|c| format!("cycle{c}")).collect();
    questions.extend(
        [
            "opus7",
            "opus2999",
            "nocturne AND cycle3",
            "opus1500 OR opus1501",
        ]
        .map(String::from),
    );
    let mut out = vec![];
    for q in questions {
        let mut hits = vec![];
        let mut cursor: Option<String> = None;
        loop {
            let mut params = vec![("q", q.clone()), ("limit", "100".to_string())];
            if let Some(c) = &cursor {
                params.push(("cursor", c.clone()));
            }
            let page = client.search(&params).await.unwrap();
            hits.extend(
                page.hits
                    .iter()
                    .map(|h| format!("{} {}", h.canonical, h.head)),
            );
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        // Equal scores may come in another order from another segment layout: compare sets.
        hits.sort();
        out.push((q, hits));
    }
    out
}

/// The height a copy of the index directory `dir` holds (`None`: nothing committed).
fn copied_index_height(dir: &Path, scratch: &Path) -> Option<u64> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).unwrap();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.map(Result::unwrap) {
            if entry.file_type().unwrap().is_file() {
                std::fs::copy(entry.path(), scratch.join(entry.file_name())).unwrap();
            }
        }
    }
    let (engine, _) = Engine::open(scratch).unwrap();
    engine.tip().unwrap()
}

#[test]
fn a_peer_killed_while_rebuilding_its_index_answers_as_a_fresh_rebuild() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut fleet = Fleet::new(1);
    fleet
        .env
        .push(("MEDIACHAIN_API_RATE_LIMIT".into(), "0".into()));
    fleet.start(0);
    let client = fleet.peers[0].client();
    let height = runtime.block_on(write_works(&client));
    let expected = runtime.block_on(answers(&client, height));
    assert_eq!(
        expected[0].1.len(),
        WORKS / 10,
        "cycle0 finds a tenth of the works"
    );
    assert_eq!(expected[10].1.len(), 1, "opus7 finds one work");

    let index = fleet.peers[0].dir.join("data/search");
    let scratch = fleet.dir.path().join("index-copy");
    fleet.stop(0);
    // Kill the peer while it rebuilds its missing index: sooner each time until a kill lands
    // before the rebuild is done.
    let mut killed_midway = false;
    for attempt in 0..8u64 {
        std::fs::remove_dir_all(&index).unwrap();
        fleet.start(0);
        std::thread::sleep(Duration::from_millis(400 / (attempt + 1)));
        fleet.kill(0);
        let held = copied_index_height(&index, &scratch);
        eprintln!("attempt {attempt}: killed with the index at {held:?} of {height}");
        if held.is_none_or(|h| h < height) {
            killed_midway = true;
            break;
        }
    }
    assert!(killed_midway, "every kill came after the rebuild was done");

    fleet.start(0);
    let after_kill = runtime.block_on(answers(&client, height));
    assert_eq!(after_kill, expected, "answers after the kill differ");

    fleet.stop(0);
    std::fs::remove_dir_all(&index).unwrap();
    fleet.start(0);
    let fresh = runtime.block_on(answers(&client, height));
    assert_eq!(fresh, expected, "a fresh rebuild answers otherwise");
    fleet.stop(0);
}
