//! The index against a model: random block sequences on up to three forks, delivered in random
//! orders (so the chain reorganises), healed by a merge; after every block the index is caught
//! up (in random batch sizes, reopened from disk at random) and compared with what the journal
//! itself says: every canonical's standing, and which canonicals each cell's words find.

use std::collections::BTreeSet;

use proptest::prelude::*;

use super::record::derive;
use super::*;
use crate::journal::tests::{
    build_forks, commit, net, ops, replica, shuffled, world, Replica, CLOCK, NOW,
};
use crate::journal::{BlockRejection, IndexRead, Objects};
use crate::model::Cid;

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

fn catch_up(engine: &Engine, r: &Replica, batch: u64) {
    while sync(engine, r, batch).unwrap().behind {}
}

fn agrees(engine: &Engine, r: &Replica, labels: &[String]) -> Result<(), TestCaseError> {
    let expected = model(r);
    for (canonical, standing) in &expected {
        prop_assert_eq!(engine.standing(canonical).unwrap(), Some(*standing));
    }
    let all = SearchQuery {
        limit: 100,
        ..SearchQuery::default()
    };
    prop_assert_eq!(search(engine, &all).unwrap().total, expected.len());
    prop_assert_eq!(engine.tip().unwrap(), Some(r.tip().unwrap().1));
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
        batches in proptest::collection::vec(1u64..4, 32),
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
        catch_up(&engine, &r, 1);
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
                        catch_up(&engine, &r, batches[step % batches.len()]);
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
