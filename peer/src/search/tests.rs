//! The index against a model: random block sequences on up to three forks, delivered in random
//! orders (so the chain reorganises), healed by a merge; after every block the index is caught
//! up (in steps of random memory budgets, reopened from disk at random) and compared with what the journal
//! itself says: every canonical's standing, and which canonicals each cell's words find.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tokio::sync::{broadcast, watch};

use super::record::derive;
use super::*;
use crate::journal::tests::{
    build_forks, commit, net, ops, replica, shuffled, world, Replica, CLOCK, NOW,
};
use crate::journal::{BlockRejection, IndexRead, Objects};
use crate::model::{Cid, Object};
use crate::node::NodeEvent;

/// Where every canonical of the journal stands, as the journal's own index and blocks say.
fn model(r: &Replica) -> Vec<(Cid, Standing)> {
    let (_, tip) = r.tip().unwrap();
    let mut out = std::collections::BTreeMap::new();
    for height in 0..=tip {
        let cid = r.index().block_at(height).unwrap().unwrap();
        let block = r.load_block(&cid).unwrap();
        for entry in &block.entries {
            let canonical = entry.reference();
            let head = r.index().head(&canonical).unwrap().unwrap();
            out.insert(
                canonical,
                Standing {
                    head,
                    height,
                    block: cid,
                    time_ms: block.timestamp_ms,
                },
            );
        }
    }
    out.into_iter().collect()
}

/// Canonicals whose record holds the text `label`, per the model.
fn holding(r: &Replica, label: &str) -> BTreeSet<Cid> {
    model(r)
        .into_iter()
        .filter_map(|(canonical, standing)| {
            derive(canonical, standing, |c| r.objects().object(c))
                .filter(|record| record.text.iter().any(|t| t == label))
                .map(|_| canonical)
        })
        .collect()
}

fn found(engine: &Engine, text: &str) -> BTreeSet<Cid> {
    let query = SearchQuery {
        text: Some(text.to_string()),
        limit: 100,
        ..SearchQuery::default()
    };
    search(engine, &query)
        .unwrap()
        .hits
        .into_iter()
        .map(|hit| hit.canonical)
        .collect()
}

/// Follows `r` to its tip in steps of at most `entries` entries' memory (at least one block).
fn catch_up(engine: &Engine, r: &Replica, entries: usize) {
    while sync(engine, r, entries * follow::HELD_PER_ENTRY)
        .unwrap()
        .behind
    {}
}

fn agrees(engine: &Engine, r: &Replica, labels: &[String]) -> Result<(), TestCaseError> {
    let expected = model(r);
    for (canonical, standing) in &expected {
        prop_assert_eq!(engine.standing(canonical).unwrap(), Some(*standing));
    }
    // The follower's look-up of many at once says the same, and nothing of a canonical that
    // has no record.
    let mut asked: Vec<Cid> = expected.iter().map(|(canonical, _)| *canonical).collect();
    asked.push(
        Object::Artefact(crate::model::Artefact::named("never inserted"))
            .cid()
            .unwrap(),
    );
    prop_assert_eq!(
        engine.standings(&asked).unwrap(),
        expected
            .iter()
            .copied()
            .collect::<std::collections::HashMap<_, _>>()
    );
    let all = SearchQuery {
        limit: 100,
        ..SearchQuery::default()
    };
    prop_assert_eq!(search(engine, &all).unwrap().total, expected.len());
    prop_assert_eq!(engine.tip().unwrap(), Some(r.tip().unwrap().1));
    // The common-ancestor search reads each followed block's CID without its undo record.
    for height in 0..=r.tip().unwrap().1 {
        let followed = engine.followed_at(height).unwrap();
        prop_assert_eq!(followed, r.index().block_at(height).unwrap());
        prop_assert_eq!(
            followed,
            engine.block_at(height).unwrap().map(|(cid, _)| cid)
        );
    }
    for label in labels {
        prop_assert_eq!(
            found(engine, &format!("\"{label}\"")),
            holding(r, label),
            "{}",
            label
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn the_index_follows_the_chain_through_reorganisations_and_merges(
        (forks, ops, seeds) in ops(),
        budgets in proptest::collection::vec(0usize..8, 32),
        reopen in proptest::collection::vec(any::<bool>(), 32),
    ) {
        let (net, world) = (net(), world());
        let (blocks, _, extra) = build_forks(&net, &world, forks, &ops);
        let labels: Vec<String> = (0..ops.len()).map(|i| format!("op {i}")).collect();
        let mut r = replica(&net, &world);
        for o in &extra {
            r.objects().insert(o);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut engine = Engine::open(dir.path()).unwrap().0;
        catch_up(&engine, &r, 0);
        agrees(&engine, &r, &labels)?;
        let mut queue = shuffled(&blocks, &seeds);
        let mut step = 0;
        while !queue.is_empty() {
            let before = queue.len();
            let mut waiting = vec![];
            for block in queue {
                match r.add_block(&block, CLOCK).unwrap() {
                    Ok(_) => {
                        if reopen[step % reopen.len()] {
                            drop(engine);
                            engine = Engine::open(dir.path()).unwrap().0;
                        }
                        catch_up(&engine, &r, budgets[step % budgets.len()]);
                        step += 1;
                        agrees(&engine, &r, &labels)?;
                    }
                    Err(BlockRejection::UnknownParent(_)) => waiting.push(block),
                    Err(other) => panic!("valid block refused: {other}"),
                }
            }
            prop_assert!(waiting.len() < before, "delivery made no progress");
            queue = waiting;
        }
        // Healing merges the transactions the reorganisations left off: both branches' cells.
        let side = r.side_transactions().unwrap();
        if !side.is_empty() {
            commit(&net, &mut r, side, NOW + 500);
            catch_up(&engine, &r, 2);
            agrees(&engine, &r, &labels)?;
        }
    }
}

#[test]
fn an_unreadable_index_is_replaced_and_built_again_from_the_journal() {
    let (net, world) = (net(), world());
    let r = replica(&net, &world);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("search");
    std::fs::create_dir_all(&path).unwrap();
    std::fs::write(path.join("meta.json"), b"{not an index").unwrap();
    let service = SearchService::open(&path).unwrap();
    assert_eq!(service.height().unwrap(), None);
    service.catch_up(&r).unwrap();
    assert_eq!(service.height().unwrap(), Some(r.tip().unwrap().1));
    let all = SearchQuery {
        limit: 10,
        ..SearchQuery::default()
    };
    let total = service.search(&all).unwrap().total;
    assert_eq!(total, world.artefacts.len());
    let rebuilt = service.rebuild(&r).unwrap();
    assert_eq!(rebuilt.applied, r.tip().unwrap().1 + 1);
    assert_eq!(service.search(&all).unwrap().total, total);
}

/// A chain of blocks of `per_block` artefact inserts each (artefact `n` named `work n`), made
/// up without a journal (the follower only reads it), that grows on demand and announces it.
struct Uniform {
    blocks: AtomicU64,
    per_block: u64,
    events: broadcast::Sender<NodeEvent>,
}

impl Uniform {
    fn new(blocks: u64, per_block: u64) -> Self {
        Self {
            blocks: AtomicU64::new(blocks),
            per_block,
            events: broadcast::channel(16).0,
        }
    }

    fn artefact(n: u64) -> Object {
        Object::Artefact(crate::model::Artefact::named(&format!("work {n}")))
    }

    fn block_cid(height: u64) -> Cid {
        crate::model::codec::cid_of(crate::model::RAW, format!("block {height}").as_bytes())
    }

    fn blocks(&self) -> u64 {
        self.blocks.load(Ordering::SeqCst)
    }

    /// Adds a block and announces it.
    fn grow(&self) {
        let height = self.blocks.fetch_add(1, Ordering::SeqCst);
        let block = self.block(&Self::block_cid(height)).unwrap();
        let _ = self.events.send(NodeEvent::ChainExtended {
            cid: Self::block_cid(height),
            block: Arc::new(block),
        });
    }
}

impl ChainSource for Uniform {
    fn tip_height(&self) -> Result<u64, SearchError> {
        Ok(self.blocks() - 1)
    }

    fn block_at(&self, height: u64) -> Result<Option<Cid>, SearchError> {
        Ok((height < self.blocks()).then(|| Self::block_cid(height)))
    }

    fn block(&self, cid: &Cid) -> Result<crate::journal::Block, SearchError> {
        let height = (0..self.blocks())
            .find(|h| Self::block_cid(*h) == *cid)
            .ok_or_else(|| SearchError::Chain(format!("no block {cid}")))?;
        let entries = (height * self.per_block..(height + 1) * self.per_block)
            .map(|n| crate::model::JournalEntry::Insert {
                reference: Self::artefact(n).encode().unwrap().cid,
                timestamp: 1_700_000_000,
            })
            .collect();
        let mut block = crate::journal::Block::genesis("uniform", entries);
        if height > 0 {
            block.chain = Self::block_cid(height - 1);
        }
        block.height = height;
        Ok(block)
    }

    fn object(&self, cid: &Cid) -> Option<Object> {
        (0..self.blocks() * self.per_block)
            .map(Self::artefact)
            .find(|o| o.encode().unwrap().cid == *cid)
    }
}

impl service::Followed for Uniform {
    fn changes(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }
}

#[test]
fn a_step_holds_no_more_entries_than_its_budget_unless_one_block_alone_is_over() {
    let chain = Uniform::new(12, 10);
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::open(dir.path()).unwrap().0;
    let entries = |n: usize| n * follow::HELD_PER_ENTRY;
    // 25 entries' worth: two blocks of 10 fit, a third would not.
    let step = sync(&engine, &chain, entries(25)).unwrap();
    assert_eq!((step.applied, step.height, step.behind), (2, 1, true));
    // A budget under one block still applies one.
    let step = sync(&engine, &chain, entries(3)).unwrap();
    assert_eq!((step.applied, step.height, step.behind), (1, 2, true));
    // Exactly three blocks' worth.
    let step = sync(&engine, &chain, entries(30)).unwrap();
    assert_eq!((step.applied, step.height, step.behind), (3, 5, true));
    let step = sync(&engine, &chain, usize::MAX).unwrap();
    assert_eq!((step.applied, step.height, step.behind), (6, 11, false));
    assert_eq!(engine.tip().unwrap(), Some(11));
    assert_eq!(engine.commits(), 4);
    let all = SearchQuery {
        limit: 10,
        ..SearchQuery::default()
    };
    assert_eq!(search(&engine, &all).unwrap().total, 120);
    assert_eq!(found(&engine, "\"work 117\"").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_commits_at_most_once_a_second_and_once_more_at_stop() {
    let chain = Arc::new(Uniform::new(1, 5));
    let dir = tempfile::tempdir().unwrap();
    let search = SearchService::open(&dir.path().join("search")).unwrap();
    let (stop, stopped) = watch::channel(false);
    let began = std::time::Instant::now();
    let follower = tokio::spawn(search.clone().follow(chain.clone(), stopped));
    // 30 blocks, each announced, one every 100 ms.
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        chain.grow();
    }
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(60), follower)
        .await
        .expect("the follower stops")
        .unwrap();
    let elapsed = began.elapsed().as_secs();
    // Caught up at stop, though the last block came within a second of the last catch-up.
    assert_eq!(search.height().unwrap(), Some(30));
    // One commit at start (the genesis), at most one a second while blocks came (a loaded
    // machine only makes them rarer), one at stop: never one per block.
    let commits = search.commits();
    assert!(
        (2..=elapsed + 2).contains(&commits),
        "{commits} commits for 30 blocks in {elapsed} s"
    );
}
