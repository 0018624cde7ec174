//! The adversarial fleet (issue 14, item 7): three honest `mediachain-peer` processes and a
//! rogue seated member (`super::rogue`) under network parameters, with the waits the adversarial
//! tests share: run the rogue until a check holds, finalise a transaction everywhere, the
//! resting tip, the rogue's blocks at its slot, rejections counted by every honest peer.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use mediachain::client::Client;
use mediachain::journal::{Block, Schedule, Transaction, TxId};
use mediachain::model::Cid;
use mediachain::network::NetworkParams;
use mediachain::node::overlay::protocol::{encode, Announce};
use mediachain::trust::SecretKey;

use super::fleet::{metric_sum, Fleet};
use super::params::use_network_params;
use super::rogue::Rogue;
use super::states::final_at;
use super::work::submit_insert;

/// The honest peers' indices.
pub const HONEST: [usize; 3] = [0, 1, 2];

/// Three honest peers and the rogue, all four seated (epochs of 4 blocks); the rogue admitted
/// by every honest peer.
pub async fn network() -> (Fleet, Rogue, NetworkParams) {
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
pub async fn serve_until<F, Fut>(
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

/// Clients of the honest peers.
pub fn clients(fleet: &Fleet) -> Vec<Client> {
    HONEST.iter().map(|i| fleet.peers[*i].client()).collect()
}

/// Whether every one of `ids` is final at every honest peer.
pub async fn final_everywhere(fleet: &Fleet, ids: &[TxId]) -> bool {
    final_at(fleet, &HONEST, ids).await
}

/// Submits an insert at peer `at` and waits (running the rogue) until it is final everywhere
/// along with every one of `before`, which must stay final.
pub async fn finalise(
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
pub async fn resting_tip(fleet: &Fleet, rogue: &mut Rogue) -> (Cid, u64, u64) {
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

/// The wall clock in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// The earliest time (ms) the rogue's block on a parent at `height` timestamped `parent_ms` may
/// carry under the slot rule, or now if that is later; runs the rogue until then.
pub async fn rogue_slot(
    rogue: &mut Rogue,
    params: &NetworkParams,
    height: u64,
    parent_ms: u64,
) -> u64 {
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
    at
}

/// The rogue's block on `parent` (CID and height) carrying `transactions` (their entries as
/// they are), timestamped `at` (ms).
pub fn block_with(
    rogue: &Rogue,
    parent: (Cid, u64),
    at: u64,
    transactions: Vec<Transaction>,
) -> Block {
    let entries = transactions
        .iter()
        .flat_map(|tx| tx.body.entries.clone())
        .collect();
    Block::commit(
        parent,
        "fleet",
        at,
        (&rogue.key, &rogue.chain),
        transactions,
        entries,
    )
}

/// The rogue's empty block on `parent` (CID and height), timestamped `at` (ms).
pub fn block(rogue: &Rogue, parent: (Cid, u64), at: u64) -> Block {
    block_with(rogue, parent, at, vec![])
}

/// Serves `blocks` and announces the last one.
pub fn offer(rogue: &mut Rogue, blocks: Vec<Block>) {
    let last = blocks.last().unwrap();
    let announce = Announce {
        cid: last.cid(),
        height: last.height,
    };
    rogue.served.extend(blocks);
    rogue.publish("blocks", encode(&announce));
}

/// What each honest peer counts in `mediachain_rejected_total` for `kind` and `reason`.
pub async fn rejected_each(fleet: &Fleet, kind: &str, reason: &str) -> Vec<f64> {
    let prefix = format!("mediachain_rejected_total{{kind=\"{kind}\",reason=\"{reason}\"}}");
    let mut out = vec![];
    for i in HONEST {
        out.push(metric_sum(&fleet.metrics(i).await, &prefix));
    }
    out
}

/// What the honest peers together count in `mediachain_rejected_total` for `kind` and
/// `reason`.
pub async fn rejected_total(fleet: &Fleet, kind: &str, reason: &str) -> f64 {
    rejected_each(fleet, kind, reason).await.iter().sum()
}
