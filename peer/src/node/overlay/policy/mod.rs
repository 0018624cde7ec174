//! The overlay's peer policy: every decision about peers, as a pure state machine. The driver
//! (`super::driver`) feeds it [`Input`]s with the current time and executes the [`Effect`]s it
//! returns (`fn handle(&mut self, input, now) -> Vec<Effect>`); the policy reads no clock, opens
//! no socket, spawns no task and never touches the node.
//!
//! Deterministic: the same inputs at the same times give the same effects in the same order
//! (ordered maps only), so a simulation driven by a seed replays exactly.
//!
//! Its parts, one concern each: [`admission`] (what a hello must prove), the [`peers`] book
//! (admission state, records, strikes, bans), [`certificates`] (admitted peers' chains checked
//! again as revocations and time move on), [`heights`] (claimed heights and what is verified
//! of them), [`readiness`] (the probe and the commit gate), [`connectivity`] (the N-cut
//! neighbour selection), [`seeds`] (what a seeds file means), [`batching`] (gossip of admitted
//! transactions), and [`transfer`] with its books: block [`requests`] de-duplicated (and hedged
//! when overdue), the [`verifier`]'s queue and backlog, blocks waiting for a parent ([`blocks`])
//! and the parents their senders left unanswered ([`withheld`]), [`objects`] fetched for
//! submissions and blocks ([`object_fetches`]), gossiped transaction batches ([`tx_gossip`]),
//! and block [`announcements`] relayed once the block is held. The inputs and effects are in
//! `io`; `handle` dispatches each input, `tick` is the periodic step and `discipline` what
//! strikes, bans and refusals cost a peer.

pub mod admission;
pub mod announcements;
pub mod batching;
pub mod blame;
pub mod blocks;
pub mod certificates;
pub mod connectivity;
mod discipline;
pub mod heights;
pub mod object_fetches;
pub mod objects;
pub mod peers;
pub mod readiness;
pub mod requests;
pub mod seeds;
pub mod transfer;
pub mod tx_gossip;
pub mod verifier;
pub mod withheld;

#[cfg(test)]
mod announcement_tests;
#[cfg(test)]
mod discipline_tests;
mod handle;
mod io;
#[cfg(test)]
mod tests;
mod tick;
#[cfg(test)]
mod transfer_tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::model::Cid;
use crate::node::TxBundle;
use crate::trust::PublicKey;
use announcements::Announcements;
use batching::Batcher;
use blocks::Parked;
use certificates::Certificates;
use heights::Heights;
pub use io::{Acceptance, Effect, Input};
use objects::{FetchId, ObjectFetches};
use peers::PeerBook;
use readiness::{Health, Readiness};
use requests::BlockRequests;
pub use transfer::Transfer;
use verifier::Verifier;
use withheld::Withheld;

/// How often seeds are dialled while this peer lacks admitted peers.
pub const SEED_INTERVAL: Duration = Duration::from_secs(5);
/// How long a connection outside the neighbour selection is kept after admission.
pub const RELAX_GRACE: Duration = Duration::from_secs(30);
/// Blocks waiting for their parent: the children of this many parents at most (the oldest are
/// evicted).
pub const MAX_WAITING_BLOCKS: usize = 512;
/// Blocks waiting for their parent: this many bytes of blocks and their objects at most (a
/// bundle weighs up to the codec's 10 MiB, so 512 parents' children could hold gigabytes).
pub const MAX_WAITING_BYTES: usize = 128 << 20;

/// The peer policy's state.
#[derive(Debug)]
pub struct Policy {
    me: PeerId,
    key: PublicKey,
    /// k = N + 1: connections each peer keeps for N-cut connectivity.
    k: usize,
    height: u64,
    /// When `height` last grew.
    progress: Instant,
    seeds: usize,
    last_seed_dial: Option<Instant>,
    book: PeerBook,
    heights: Heights,
    readiness: Readiness,
    batcher: Batcher<Arc<TxBundle>>,
    requests: BlockRequests,
    verifier: Verifier,
    parked: Parked,
    withheld: Withheld,
    objects: ObjectFetches,
    announcements: Announcements,
    certificates: Certificates,
    /// The committer rotation last given to the node.
    rotation: Vec<PublicKey>,
    /// The peer sync repair asked last when no admitted peer claimed more (the next is asked
    /// next time).
    repair_cursor: Option<PeerId>,
}

impl Policy {
    /// The policy of peer `key` at `height` at `now`, for N-cut connectivity
    /// `target_connectivity`.
    pub fn new(key: PublicKey, height: u64, target_connectivity: usize, now: Instant) -> Self {
        Self {
            me: key.peer_id(),
            key,
            k: target_connectivity + 1,
            height,
            progress: now,
            seeds: 0,
            last_seed_dial: None,
            book: PeerBook::default(),
            heights: Heights::default(),
            readiness: Readiness::default(),
            batcher: Batcher::default(),
            requests: BlockRequests::default(),
            verifier: Verifier::default(),
            parked: Parked::new(MAX_WAITING_BLOCKS, MAX_WAITING_BYTES),
            withheld: Withheld::default(),
            objects: ObjectFetches::default(),
            announcements: Announcements::default(),
            certificates: Certificates::default(),
            rotation: vec![],
            repair_cursor: None,
        }
    }

    /// The peer book.
    pub fn book(&self) -> &PeerBook {
        &self.book
    }

    /// Claimed heights.
    pub fn heights(&self) -> &Heights {
        &self.heights
    }

    /// The last readiness evaluation.
    pub fn health(&self) -> Health {
        self.readiness.health()
    }

    /// Whether `peer` passed admission and is connected.
    pub fn is_admitted(&self, peer: &PeerId) -> bool {
        self.book.is_admitted(peer)
    }

    /// Jobs at the verification worker, and blocks waiting for it.
    pub fn verifying(&self) -> (usize, usize) {
        (self.verifier.busy(), self.verifier.waiting())
    }

    /// The object fetch `fetch` asks for, while it is in flight.
    pub fn fetching(&self, fetch: FetchId) -> Option<Cid> {
        self.objects.object(fetch)
    }

    /// Whether `peer` was cut off for a certificate that stopped verifying (revoked,
    /// expired) and its ban still runs at `now`: what it authors is not relayed.
    pub fn is_cut_off(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.certificates.is_cut_off(peer, now)
    }

    /// Whether `peer` is banned at `now`.
    pub fn is_banned(&mut self, peer: &PeerId, now: Instant) -> bool {
        self.book.is_banned(peer, now)
    }
}
