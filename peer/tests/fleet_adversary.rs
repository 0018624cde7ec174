//! Adversarial members on the real wire (issue 14, item 7): three honest `mediachain-peer`
//! processes and a rogue member under network parameters. The rogue holds a real Level-1
//! certificate and one of the four seats (an initial member), runs a real libp2p swarm
//! (`support/rogue.rs`) and sends messages crafted with the overlay's real codec and the
//! journal's real block and vote types: two blocks on one parent, conflicting and surround
//! votes, a block from the far future, a cheap long chain of out-of-turn blocks, and a claim of
//! a height it does not have. Each test asserts that the honest peers keep finalising, that no
//! final transaction is lost, and that the rogue is found out: signed evidence at
//! `GET /v1/evidence` and `mediachain_evidence_culprits`, or rejections counted in
//! `mediachain_rejected_total` and strikes in the log.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

mod support;

use std::time::Duration;

use mediachain::journal::vote::{Checkpoint, Vote};
use mediachain::journal::Block;
use mediachain::model::codec::dag_cbor_cid;
use mediachain::node::overlay::protocol::{encode, Announce, Votes};
use support::adversary::{
    block, clients, final_everywhere, finalise, network, now_ms, offer, rejected_total,
    resting_tip, rogue_slot, serve_until, HONEST,
};
use support::fleet::{metric_sum, Fleet};

/// The evidence peer `i` lists at `GET /v1/evidence` against `culprit`, by kind.
async fn evidence_kinds(fleet: &Fleet, i: usize, culprit: &str) -> Vec<String> {
    let url = format!("{}/v1/evidence", fleet.peers[i].api());
    let list: serde_json::Value = reqwest::get(url).await.unwrap().json().await.unwrap();
    let items = list["evidence"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|e| e["culprit"] == culprit)
        .map(|e| e["kind"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether every honest peer lists evidence of `kind` against `culprit`.
async fn accused_everywhere(fleet: &Fleet, culprit: &str, kind: &str) -> bool {
    for i in HONEST {
        if !evidence_kinds(fleet, i, culprit)
            .await
            .iter()
            .any(|k| k == kind)
        {
            return false;
        }
    }
    true
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_equivocating_as_committer_and_as_voter_is_accused_by_every_honest_peer_which_keep_finalising(
) {
    let (fleet, mut rogue, params) = network().await;
    let culprit = rogue.key.public().to_string();
    let first = finalise(&fleet, &mut rogue, 1, "before the equivocations", &[]).await;

    // Two blocks on one parent, both valid: the rogue's seat, timestamped as its slot allows.
    let (tip, height, parent_ms) = resting_tip(&fleet, &mut rogue).await;
    let at = rogue_slot(&mut rogue, &params, height, parent_ms).await;
    for stamp in [at, at + 1] {
        let twin = block(&rogue, (tip, height), stamp);
        offer(&mut rogue, vec![twin]);
    }
    serve_until(
        &fleet,
        &mut rogue,
        "every honest peer to list the rogue's two blocks as evidence",
        Duration::from_secs(60),
        || accused_everywhere(&fleet, &culprit, "doubleBlock"),
    )
    .await;

    // A double vote and a surround vote, on checkpoints above the final one.
    let head = fleet.peers[0].client().head().await.unwrap();
    let finalized = head.finalized.unwrap();
    let source = Checkpoint {
        height: finalized.height,
        cid: finalized.cid.parse().unwrap(),
    };
    let epoch = params.consensus.epoch_length;
    let target = |height: u64, name: &str| Checkpoint {
        height,
        cid: dag_cbor_cid(name.as_bytes()),
    };
    let next = (head.height / epoch + 1) * epoch;
    let genesis = Checkpoint {
        height: 0,
        cid: params.genesis().cid(),
    };
    let votes = vec![
        Vote::sign(&rogue.key, "fleet", source, target(next, "one")),
        Vote::sign(&rogue.key, "fleet", source, target(next, "another")),
        Vote::sign(&rogue.key, "fleet", genesis, target(next + epoch, "around")),
    ];
    rogue.publish("votes", encode(&Votes { votes }));
    serve_until(
        &fleet,
        &mut rogue,
        "every honest peer to list the rogue's conflicting votes as evidence",
        Duration::from_secs(60),
        || accused_everywhere(&fleet, &culprit, "conflictingVotes"),
    )
    .await;

    finalise(&fleet, &mut rogue, 2, "after the equivocations", &[first]).await;
    for i in HONEST {
        let culprits = metric_sum(&fleet.metrics(i).await, "mediachain_evidence_culprits");
        assert!(culprits >= 1.0, "peer {i} counts {culprits} culprits");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_minting_a_cheap_long_chain_from_the_future_and_lying_about_heights_is_refused_while_the_others_finalise(
) {
    let (fleet, mut rogue, _) = network().await;
    let first = finalise(&fleet, &mut rogue, 1, "before the attacks", &[]).await;
    let (tip, height, _) = resting_tip(&fleet, &mut rogue).await;
    let now = now_ms();

    // A block an hour ahead of every honest clock.
    let ahead = block(&rogue, (tip, height), now + 3_600_000);
    offer(&mut rogue, vec![ahead]);
    // Forty blocks in forty milliseconds: all but an in-turn first are out of turn too early.
    let mut chain: Vec<Block> = vec![];
    for k in 0..40 {
        let parent = chain.last().map_or((tip, height), |b| (b.cid(), b.height));
        chain.push(block(&rogue, parent, now + k));
    }
    offer(&mut rogue, chain);
    // A claim far above the network's height, of a block that does not exist.
    let lie = Announce {
        cid: dag_cbor_cid(b"no such block"),
        height: height + 1_000_000,
    };
    rogue.publish("blocks", encode(&lie));

    let rejected = |reason: &'static str| {
        let fleet = &fleet;
        async move { rejected_total(fleet, "block", reason).await >= 1.0 }
    };
    serve_until(
        &fleet,
        &mut rogue,
        "the future block refused",
        Duration::from_secs(60),
        || rejected("from_the_future"),
    )
    .await;
    serve_until(
        &fleet,
        &mut rogue,
        "the cheap chain refused",
        Duration::from_secs(60),
        || rejected("too_early"),
    )
    .await;
    let second = finalise(&fleet, &mut rogue, 2, "after the attacks", &[first]).await;

    // Nothing of the rogue's long chain or its lie moved an honest peer: they stay ready, on
    // one chain far below the claimed height, and the rogue was struck for what it sent.
    let rogue_id = format!("peer={}", rogue.key.public());
    let mut heads = vec![];
    for (i, client) in clients(&fleet).into_iter().enumerate() {
        assert!(
            client.ready().await,
            "peer {i} is not ready\n{}",
            fleet.logs()
        );
        heads.push(client.head().await.unwrap());
    }
    assert!(heads.iter().all(|h| h.height < height + 40), "{heads:?}");
    let struck = HONEST.iter().any(|i| {
        let log = std::fs::read_to_string(fleet.peers[*i].log()).unwrap();
        log.lines()
            .any(|l| l.contains("peer misbehaved") && l.contains(&rogue_id))
    });
    assert!(struck, "no honest peer struck the rogue\n{}", fleet.logs());
    assert!(final_everywhere(&fleet, &[first, second]).await);
}
