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

use std::time::{Duration, Instant};

use mediachain::client::Client;
use mediachain::journal::vote::{Checkpoint, Vote};
use mediachain::journal::{Block, Schedule, TxId};
use mediachain::model::codec::dag_cbor_cid;
use mediachain::model::Cid;
use mediachain::network::NetworkParams;
use mediachain::node::overlay::protocol::{encode, Announce, Votes};
use mediachain::trust::SecretKey;
use support::fleet::{metric_sum, Fleet};
use support::params::use_network_params;
use support::rogue::Rogue;
use support::work::submit_insert;

const HONEST: [usize; 3] = [0, 1, 2];

/// Three honest peers and the rogue, all four seated; the rogue admitted by every honest peer.
async fn network() -> (Fleet, Rogue, NetworkParams) {
    let mut fleet = Fleet::new(3);
    let key = SecretKey::generate();
    let chain = fleet.certify(&key);
    // The rogue's seat: a member of the parameters whose process never runs.
    fleet.add_peer_with(key.clone(), chain.clone());
    let params = use_network_params(&mut fleet, 4);
    for i in HONEST {
        fleet.start(i);
    }
    fleet.wait_ready(&HONEST).await;
    let mut rogue = Rogue::member(key, chain, &params);
    rogue
        .join(&fleet.peers[0].addr(), Duration::from_secs(60))
        .await;
    for i in 1..3 {
        rogue.dial(&fleet.peers[i].addr());
    }
    rogue.run_for(Duration::from_secs(2)).await;
    (fleet, rogue, params)
}

/// Runs the rogue until `check` holds, failing with `what` and the logs after `timeout`.
async fn serve_until<F, Fut>(
    fleet: &Fleet,
    rogue: &mut Rogue,
    what: &str,
    timeout: Duration,
    check: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        rogue.run_for(Duration::from_millis(300)).await;
    }
    panic!(
        "timed out after {timeout:?} waiting for {what}\n{}",
        fleet.logs()
    );
}

fn clients(fleet: &Fleet) -> Vec<Client> {
    HONEST.iter().map(|i| fleet.peers[*i].client()).collect()
}

/// Whether every one of `ids` is final at every honest peer.
async fn final_everywhere(fleet: &Fleet, ids: &[TxId]) -> bool {
    for client in clients(fleet) {
        for id in ids {
            if !client.status(id).await.is_ok_and(|s| s.is_final()) {
                return false;
            }
        }
    }
    true
}

/// Submits an insert at peer `at` and waits (running the rogue) until it is final everywhere
/// along with every one of `before`, which must stay final.
async fn finalise(
    fleet: &Fleet,
    rogue: &mut Rogue,
    at: usize,
    name: &str,
    before: &[TxId],
) -> TxId {
    let id = submit_insert(&fleet.peers[at].client(), name).await;
    let mut all = before.to_vec();
    all.push(id);
    let what = format!("{name} and every earlier transaction final at every honest peer");
    serve_until(fleet, rogue, &what, Duration::from_secs(90), || {
        final_everywhere(fleet, &all)
    })
    .await;
    id
}

/// Peer 0's tip: CID, height and the block's timestamp (ms), once the chain has rested for a
/// second (nothing left to finalise, so honest committers make no block).
async fn resting_tip(fleet: &Fleet, rogue: &mut Rogue) -> (Cid, u64, u64) {
    let client = fleet.peers[0].client();
    let mut last = client.head().await.unwrap();
    loop {
        rogue.run_for(Duration::from_secs(1)).await;
        let head = client.head().await.unwrap();
        if head.cid == last.cid {
            let cid: Cid = head.cid.parse().unwrap();
            let block = Block::from_bytes(&client.get_object(&cid).await.unwrap()).unwrap();
            return (cid, head.height, block.timestamp_ms);
        }
        last = head;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

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

/// The rogue's block on `parent` (CID and height), empty, timestamped `at` (ms).
fn block(rogue: &Rogue, parent: (Cid, u64), at: u64) -> Block {
    Block::commit(
        parent,
        "fleet",
        at,
        (&rogue.key, &rogue.chain),
        vec![],
        vec![],
    )
}

/// Serves `blocks` and announces the last one.
fn offer(rogue: &mut Rogue, blocks: Vec<Block>) {
    let last = blocks.last().unwrap();
    let announce = Announce {
        cid: last.cid(),
        height: last.height,
    };
    rogue.served.extend(blocks);
    rogue.publish("blocks", encode(&announce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_equivocating_as_committer_and_as_voter_is_accused_by_every_honest_peer_which_keep_finalising(
) {
    let (fleet, mut rogue, params) = network().await;
    let culprit = rogue.key.public().to_string();
    let first = finalise(&fleet, &mut rogue, 1, "before the equivocations", &[]).await;

    // Two blocks on one parent, both valid: the rogue's seat, timestamped as its slot allows.
    let (tip, height, parent_ms) = resting_tip(&fleet, &mut rogue).await;
    let rank = Schedule::new(params.seated_members())
        .rank(height + 1, &rogue.key.public())
        .unwrap();
    let c = &params.consensus;
    let gap = if rank == 0 {
        1
    } else {
        (c.commit_timeout + c.commit_backoff * rank as u32).as_millis() as u64
    };
    let at = (parent_ms + gap).max(now_ms());
    rogue
        .run_for(Duration::from_millis(at.saturating_sub(now_ms())))
        .await;
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
    let epoch = c.epoch_length;
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
        async move {
            let mut total = 0.0;
            for i in HONEST {
                let prefix =
                    format!("mediachain_rejected_total{{kind=\"block\",reason=\"{reason}\"}}");
                total += metric_sum(&fleet.metrics(i).await, &prefix);
            }
            total >= 1.0
        }
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
