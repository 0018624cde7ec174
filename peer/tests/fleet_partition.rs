//! Partitions of real processes in network namespaces under network parameters (issue 14,
//! item 7; docs/consensus.md, "Partitions"): four seated `mediachain-peer` processes, epochs of
//! two blocks, their overlay cut between two namespaces. 2|2: both islands keep committing and
//! neither finalises anything above the chain they shared (two seats of four are not more than
//! two thirds); 3|1: the three finalise, the one (cut from every other peer, so held by the
//! commit gate) neither commits nor finalises. After the heal every peer holds one chain and every transaction submitted on any side is
//! final on every peer (the losing island's are committed again). Skipped with a reason where
//! namespaces cannot be made (`MEDIACHAIN_SKIP_NETNS=1`), as the partition test of `fleet.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::{Duration, Instant};

use mediachain::journal::TxId;
use support::fleet::Fleet;
use support::netns::Partitionable;
use support::params::use_network_params;
use support::partition;
use support::states::{committed_at, final_at, same_head};
use support::work::submit_insert;

const ALL: [usize; 4] = [0, 1, 2, 3];

/// Four seated peers placed on `sides` of `net`, started and ready.
async fn fleet_on(net: &Partitionable, sides: &[usize]) -> Fleet {
    let mut fleet = Fleet::new(4);
    partition::place(&mut fleet, net, sides);
    use_network_params(&mut fleet, 2);
    fleet.start_all();
    fleet.wait_ready(&ALL).await;
    fleet
}

/// A transaction submitted at peer 0 before the split, final everywhere, and the height of
/// the chain every peer then shares (it rests: nothing is left to finalise).
async fn shared_start(fleet: &Fleet) -> (TxId, u64) {
    let first = submit_insert(&fleet.peers[0].client(), "before the split").await;
    fleet
        .wait_for(
            "the first transaction final everywhere",
            Duration::from_secs(90),
            || final_at(fleet, &ALL, std::slice::from_ref(&first)),
        )
        .await;
    // Rests: one head everywhere, unchanged for a second.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    let height = loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let head = fleet.peers[0].client().head().await.unwrap();
        if head.cid == last && same_head(fleet, &ALL).await {
            break head.height;
        }
        last = head.cid;
        assert!(
            Instant::now() < deadline,
            "no resting head on every peer after 60 s\n{}",
            fleet.logs()
        );
    };
    (first, height)
}

/// Waits until every peer is at least `height` high, failing at once if one finalises a block
/// above `shared` meanwhile.
async fn commit_without_finality(fleet: &Fleet, height: u64, shared: u64) {
    let what = format!("every peer at height {height}, finalising nothing above {shared}");
    fleet
        .wait_for(&what, Duration::from_secs(120), || async {
            let mut high = true;
            for i in ALL {
                let head = fleet.peers[i].client().head().await.unwrap();
                let finalized = head.finalized.map_or(0, |f| f.height);
                assert!(
                    finalized <= shared,
                    "peer {i} finalised height {finalized} above the shared {shared} in a \
                     minority island\n{}",
                    fleet.logs()
                );
                high &= head.height >= height;
            }
            high
        })
        .await;
}

/// After the heal: one chain on every peer and every one of `ids` final everywhere.
async fn healed(fleet: &Fleet, ids: &[TxId]) {
    fleet
        .wait_for(
            "every transaction final on every peer after the heal",
            Duration::from_secs(120),
            || final_at(fleet, &ALL, ids),
        )
        .await;
    fleet
        .wait_for(
            "one chain on every peer after the heal",
            Duration::from_secs(60),
            || same_head(fleet, &ALL),
        )
        .await;
    let reference = fleet.peers[0].client().head().await.unwrap();
    for i in ALL {
        let head = fleet.peers[i].client().head().await.unwrap();
        assert_eq!(head.finalized, reference.finalized, "peer {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_two_two_split_commits_on_both_sides_finalises_on_neither_and_heals_to_one_final_chain() {
    let Some(net) = partition::namespaces() else {
        return;
    };
    let fleet = fleet_on(&net, &[0, 0, 1, 1]).await;
    let (first, shared) = shared_start(&fleet).await;

    net.partition().unwrap();
    partition::wait_connected(&fleet, &[1, 1, 1, 1]).await;
    let a = submit_insert(&fleet.peers[0].client(), "island A").await;
    let b = submit_insert(&fleet.peers[2].client(), "island B").await;
    fleet
        .wait_for(
            "each island to commit its own",
            Duration::from_secs(60),
            || async {
                committed_at(&fleet, &[0, 1], &[a]).await
                    && committed_at(&fleet, &[2, 3], &[b]).await
            },
        )
        .await;
    // Four epochs of blocks on each side: enough to finalise twice, had an island the votes.
    commit_without_finality(&fleet, shared + 8, shared).await;
    assert!(!final_at(&fleet, &[0], &[a]).await && !final_at(&fleet, &[2], &[b]).await);

    net.heal().unwrap();
    healed(&fleet, &[first, a, b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_one_split_finalises_on_the_three_only_and_heals_to_one_final_chain() {
    let Some(net) = partition::namespaces() else {
        return;
    };
    let fleet = fleet_on(&net, &[0, 0, 0, 1]).await;
    let (first, shared) = shared_start(&fleet).await;

    net.partition().unwrap();
    partition::wait_connected(&fleet, &[2, 2, 2, 0]).await;
    let three = submit_insert(&fleet.peers[0].client(), "the three").await;
    let one = submit_insert(&fleet.peers[3].client(), "the one").await;
    fleet
        .wait_for(
            "the three to finalise their transaction",
            Duration::from_secs(90),
            || final_at(&fleet, &[0, 1, 2], std::slice::from_ref(&three)),
        )
        .await;
    // The one, cut from every other peer, commits nothing (the commit gate: it cannot tell
    // whether it is behind) and finalises nothing; its client's transaction waits.
    let alone = fleet.peers[3].client().head().await.unwrap();
    assert_eq!(alone.height, shared, "{alone:?}");
    assert!(
        alone.finalized.as_ref().is_some_and(|f| f.height <= shared),
        "{alone:?}"
    );
    let waiting = fleet.peers[3].client().status(&one).await.unwrap();
    assert_eq!(waiting.state, "pending", "{waiting:?}");
    let three_final = fleet.peers[0]
        .client()
        .head()
        .await
        .unwrap()
        .finalized
        .unwrap();
    assert!(three_final.height > shared, "{three_final:?}");

    net.heal().unwrap();
    healed(&fleet, &[first, three, one]).await;
}
