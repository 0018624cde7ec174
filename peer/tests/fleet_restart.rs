//! A peer restarted mid-run (issue 14, item 7; docs/consensus.md, "Fork choice"): four seated
//! `mediachain-peer` processes under network parameters (one started late, so the chain holds
//! in-turn and out-of-turn blocks), one killed (SIGKILL) while transactions flow and started
//! again from its sled files while the others go on finalising without it. Read over HTTP, it then weighs every block of the chain as the others do
//! (`weight` of each block and of the head) and holds the same final block.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use mediachain::client::wire::BlockSummary;
use mediachain::journal::TxId;
use support::fleet::Fleet;
use support::params::use_network_params;
use support::states::{final_at, same_head};
use support::work::submit_insert;

const ALL: [usize; 4] = [0, 1, 2, 3];

/// Submits `n` inserts at `at`, named after `what`; their ids.
async fn submit_some(fleet: &Fleet, at: usize, what: &str, n: usize) -> Vec<TxId> {
    let client = fleet.peers[at].client();
    let mut ids = vec![];
    for k in 0..n {
        ids.push(submit_insert(&client, &format!("{what} {k}")).await);
    }
    ids
}

/// Peer `i`'s canonical chain up to `height`, every block with its weight.
async fn chain_of(fleet: &Fleet, i: usize, height: u64) -> Vec<BlockSummary> {
    let client = fleet.peers[i].client();
    let mut out = vec![];
    while (out.len() as u64) <= height {
        let from = out.len() as u64;
        let page = client.blocks(from, 100).await.unwrap().blocks;
        assert!(!page.is_empty(), "peer {i} has no block at {from}");
        out.extend(page);
    }
    out.truncate(height as usize + 1);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_killed_mid_run_weighs_every_block_and_finalises_as_the_others_once_restarted() {
    let mut fleet = Fleet::new(4);
    use_network_params(&mut fleet, 2);
    // Peer 2 starts late: its turns meanwhile are taken out of turn, so the chain peer 3 keeps
    // in its store holds blocks of both weights.
    for i in [0, 1, 3] {
        fleet.start(i);
    }
    fleet.wait_ready(&[0, 1, 3]).await;
    let mut ids = vec![];
    for at in [0, 1, 3] {
        ids.extend(submit_some(&fleet, at, &format!("through peer {at}"), 2).await);
    }
    fleet
        .wait_for(
            "the first transactions final without peer 2",
            Duration::from_secs(90),
            || final_at(&fleet, &[0, 1, 3], &ids),
        )
        .await;
    fleet.start(2);
    fleet.wait_ready(&ALL).await;
    ids.extend(submit_some(&fleet, 2, "through peer 2", 2).await);
    fleet
        .wait_for(
            "every transaction final at peer 3",
            Duration::from_secs(90),
            || final_at(&fleet, &[3], &ids),
        )
        .await;

    // Transactions flow; peer 3 dies while some are still pending.
    let stored = fleet.peers[3].client().head().await.unwrap().height;
    ids.extend(submit_some(&fleet, 0, "while peer 3 dies", 2).await);
    fleet.kill(3);

    // The three go on and finalise without it (three of four seats).
    ids.extend(submit_some(&fleet, 1, "without peer 3", 3).await);
    fleet
        .wait_for(
            "the three to finalise every transaction",
            Duration::from_secs(120),
            || final_at(&fleet, &[0, 1, 2], &ids),
        )
        .await;

    // Peer 3 starts again from its store, catches up and takes transactions again.
    fleet.start(3);
    fleet.wait_ready(&ALL).await;
    ids.extend(submit_some(&fleet, 3, "through the restarted peer 3", 2).await);
    fleet
        .wait_for(
            "every transaction final on every peer",
            Duration::from_secs(120),
            || final_at(&fleet, &ALL, &ids),
        )
        .await;
    fleet
        .wait_for("one head on every peer", Duration::from_secs(60), || {
            same_head(&fleet, &ALL)
        })
        .await;

    // The same weights and the same final block everywhere.
    let heads: Vec<_> = futures::future::join_all(ALL.map(|i| {
        let client = fleet.peers[i].client();
        async move { client.head().await.unwrap() }
    }))
    .await;
    let height = heads[0].height;
    let reference = chain_of(&fleet, 0, height).await;
    let weights: Vec<u64> = reference.iter().map(|b| b.weight.unwrap()).collect();
    // Peer 3 weighed both kinds of block again from its store.
    let kept = &weights[..=stored as usize];
    assert!(
        kept.contains(&1) && kept.contains(&2),
        "weights {weights:?}"
    );
    assert_eq!(heads[0].weight, Some(weights.iter().sum::<u64>()));
    for i in 1..4 {
        assert_eq!(
            (heads[i].weight, &heads[i].finalized),
            (heads[0].weight, &heads[0].finalized),
            "peer {i}: {:?} against peer 0: {:?}",
            heads[i],
            heads[0]
        );
        let theirs = chain_of(&fleet, i, height).await;
        for (mine, other) in reference.iter().zip(&theirs) {
            assert_eq!(
                (&other.cid, other.weight),
                (&mine.cid, mine.weight),
                "peer {i} at height {}",
                mine.height
            );
        }
    }
}
