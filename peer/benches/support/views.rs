//! What the fleet benchmark's view-update streams saw: when each transaction joined each peer's
//! chain (`event: block`) and when it became final there (`event: final` at or above its
//! height), and, when a phase does not drain, where a sample of the missing transactions stands.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use futures::StreamExt;
use mediachain::client::{Client, ViewUpdate};

/// Missing (peer, transaction) pairs asked about at most, when a phase does not drain (one
/// request each: asking about tens of thousands took over 15 minutes).
pub const EXPLAIN_SAMPLE: usize = 50;

/// Times seen by `peers` view-update streams.
pub struct Seen {
    /// (peer, transaction id) -> first time seen in a canonical block there.
    pub at: HashMap<(usize, String), Instant>,
    /// (peer, transaction id) -> first time a final block at or above its block was reported.
    pub final_at: HashMap<(usize, String), Instant>,
    /// Per peer, how many distinct transactions it has seen committed.
    pub count: Vec<usize>,
    /// Per peer, how many distinct transactions it has seen final.
    pub final_count: Vec<usize>,
    /// Transactions per block, as seen by peer 0.
    pub blocks: Vec<usize>,
    /// Per peer, the transactions of each canonical height not yet final (a reorganisation
    /// re-sends a height: its new block replaces the old one's).
    unfinal: Vec<BTreeMap<u64, Vec<String>>>,
}

impl Seen {
    /// Nothing seen yet by `peers` streams.
    pub fn new(peers: usize) -> Self {
        Self {
            at: HashMap::new(),
            final_at: HashMap::new(),
            count: vec![0; peers],
            final_count: vec![0; peers],
            blocks: vec![],
            unfinal: vec![BTreeMap::new(); peers],
        }
    }

    fn block(&mut self, peer: usize, height: u64, txs: Vec<String>, now: Instant) {
        if peer == 0 {
            self.blocks.push(txs.len());
        }
        for id in &txs {
            if self.at.insert((peer, id.clone()), now).is_none() {
                self.count[peer] += 1;
            }
        }
        self.unfinal[peer].insert(height, txs);
    }

    fn finalized(&mut self, peer: usize, height: u64, now: Instant) {
        let above = self.unfinal[peer].split_off(&(height + 1));
        let finalized = std::mem::replace(&mut self.unfinal[peer], above);
        for id in finalized.into_values().flatten() {
            if self.final_at.insert((peer, id), now).is_none() {
                self.final_count[peer] += 1;
            }
        }
    }
}

/// Follows peer `peer`'s view updates from `from` until aborted.
pub async fn watch(peer: usize, client: Client, from: u64, seen: Arc<Mutex<Seen>>) {
    let mut stream = client
        .view_updates(Some(from), &[], &[])
        .await
        .unwrap_or_else(|e| panic!("peer {peer}: event stream: {e}"));
    while let Some(update) = stream.next().await {
        let update = update.unwrap_or_else(|e| panic!("peer {peer}: event stream: {e}"));
        let now = Instant::now();
        let mut seen = seen.lock().unwrap();
        match update {
            ViewUpdate::Block(block) => seen.block(peer, block.height, block.transactions, now),
            ViewUpdate::Final(block) => seen.finalized(peer, block.height, now),
        }
    }
    panic!("peer {peer}: the event stream ended");
}

/// For an evenly spread sample of at most [`EXPLAIN_SAMPLE`] of the (peer, submitted to,
/// transaction id) triples the streams missed, asks the peer where the transaction stands
/// (`committed`: the stream missed its block; `pending`: not yet in a block there; `rejected`
/// with the reason; `unknown`: the peer never had it) and prints the tally with a few ids.
pub async fn explain_missing(clients: &[Client], missing: Vec<(usize, usize, String)>) {
    let step = missing.len().div_ceil(EXPLAIN_SAMPLE).max(1);
    let total = missing.len();
    let sample: Vec<_> = missing.into_iter().step_by(step).collect();
    eprintln!(
        "asking where {} of the {total} missing (peer, transaction) pairs stand (every {step}th)",
        sample.len()
    );
    let mut states: BTreeMap<(usize, String), Vec<String>> = BTreeMap::new();
    for (peer, to, id) in sample {
        let state = match id.parse() {
            Ok(tx) => match clients[peer].status(&tx).await {
                Ok(s) => match s.reason {
                    Some(reason) => format!("{} ({reason})", s.state),
                    None => s.state,
                },
                Err(e) => format!("status failed: {e}"),
            },
            Err(_) => "unparsable id".into(),
        };
        states
            .entry((peer, state))
            .or_default()
            .push(format!("{id} (submitted to peer {to})"));
    }
    for ((peer, state), ids) in states {
        eprintln!(
            "peer {peer}: {} sampled missing transactions are {state}, e.g. {:?}",
            ids.len(),
            &ids[..ids.len().min(3)]
        );
    }
}
