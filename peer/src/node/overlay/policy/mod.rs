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
//! transactions), and [`transfer`] with its books: block [`requests`] de-duplicated, the
//! [`verifier`]'s queue and backlog, blocks waiting for a parent ([`blocks`]) and the parents
//! their senders left unanswered ([`withheld`]), [`objects`]
//! fetched for submissions and blocks, and block [`announcements`] relayed once the block is
//! held.

pub mod admission;
pub mod announcements;
pub mod batching;
pub mod blame;
pub mod blocks;
pub mod certificates;
pub mod connectivity;
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

mod handle;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transfer_tests;

use std::sync::Arc;
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};

use crate::model::Cid;
use crate::node::TxBundle;
use crate::time::UnixSeconds;
use crate::trust::{Chain, PublicKey, RevocationSet};
use announcements::Announcements;
use batching::Batcher;
use blocks::Parked;
use certificates::Certificates;
use heights::Heights;
use objects::{FetchId, ObjectFetches};
use peers::PeerBook;
use readiness::{Health, Readiness};
use requests::BlockRequests;
pub use transfer::Transfer;
use verifier::{Job, Verifier};
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

/// The verdict on a gossip message, for gossipsub's validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acceptance {
    /// Valid: forward it.
    Accept,
    /// Invalid: drop it and penalise the forwarder.
    Reject,
    /// Not judged (dropped unforwarded, no penalty).
    Ignore,
}

/// Something that happened, as the driver saw it.
#[derive(Debug)]
pub enum Input {
    /// A first connection with `peer` opened.
    Connected(PeerId),
    /// The last connection with `peer` closed.
    Disconnected(PeerId),
    /// `peer`'s hello verified: its certificate is for `key`, its tip is `tip` at `height`
    /// (`tip_known`: this peer holds that block).
    Admitted {
        /// The peer.
        peer: PeerId,
        /// Its certified key.
        key: PublicKey,
        /// Its Level-1 chain (checked again by [`Input::Certificates`]).
        chain: Chain,
        /// Its claimed tip.
        tip: Cid,
        /// Its claimed height.
        height: u64,
        /// Whether this peer holds the tip already.
        tip_known: bool,
    },
    /// The revocations in force at this peer's tip (the chain's and those given at start) at
    /// `unix`: an admitted peer whose chain no longer verifies is cut off (`certificates`).
    Certificates {
        /// The revocations.
        revocations: RevocationSet,
        /// The members whose seat still runs at the tip (under network parameters): a
        /// revocation cuts one off only once its seat ended.
        seated: Vec<PublicKey>,
        /// The time, in Unix seconds.
        unix: UnixSeconds,
    },
    /// `peer`'s hello was refused.
    Refused {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
    /// `peer` sent something invalid for every honest receiver.
    Misbehaved {
        /// The peer.
        peer: PeerId,
        /// What it sent: `block`, `transaction`, `message`, `object`.
        kind: &'static str,
        /// The short reason.
        reason: &'static str,
    },
    /// A verified identity record of `peer` (gossip), with the tip it claims.
    Record {
        /// The record's author.
        peer: PeerId,
        /// Its certified key.
        key: PublicKey,
        /// Where to dial it.
        addrs: Vec<Multiaddr>,
        /// Its claimed tip.
        tip: Cid,
        /// Its claimed height.
        height: u64,
        /// Whether this peer holds the tip already.
        tip_known: bool,
    },
    /// `origin` announced a block `tip` at `height`, received from `via` as gossip message
    /// `message` (relayed once this peer holds the block: `announcements`).
    Announced {
        /// The announcement's author (signed by gossipsub).
        origin: PeerId,
        /// The peer that forwarded it.
        via: PeerId,
        /// Its gossip id.
        message: MessageId,
        /// The block.
        tip: Cid,
        /// Its claimed height.
        height: u64,
        /// Whether this peer holds the block already.
        tip_known: bool,
    },
    /// The header of block `cid` verified at `height`: its claims count, until the journal
    /// holds it (`held`).
    HeaderVerified {
        /// The block.
        cid: Cid,
        /// Its real height.
        height: u64,
        /// Whether the journal took it.
        held: bool,
    },
    /// Block `cid` cannot be verified (invalid, or its claimer lacks it or its ancestors);
    /// `blame`: the claimers are at fault (for every honest receiver), else the claims just go.
    Unverifiable {
        /// The block.
        cid: Cid,
        /// Whether its claimers are struck.
        blame: bool,
    },
    /// This peer's tip is now at `height`.
    Tip(u64),
    /// This peer admitted a client's transaction: gossip it.
    TxAdmitted(Arc<TxBundle>, usize),
    /// Time to gossip the batched transactions.
    Flush,
    /// Periodic maintenance; `seeds` is how many seeds other than this peer are configured.
    Tick {
        /// Seeds other than this peer.
        seeds: usize,
    },
    /// Blocks, objects and transaction batches moving between peers.
    Transfer(Transfer),
}

/// What the driver must do.
#[must_use]
#[derive(Debug, Clone)]
pub enum Effect {
    /// Send our hello to `peer` (admission).
    SendHello(PeerId),
    /// Close every connection with `peer`.
    Disconnect {
        /// The peer.
        peer: PeerId,
        /// Why (for the log).
        reason: &'static str,
    },
    /// Block every connection with `peer` (`on`: close them and deny new ones) or lift it.
    Block {
        /// The peer.
        peer: PeerId,
        /// Block or unblock.
        on: bool,
    },
    /// A bounded structure evicted an entry (counted in the metrics).
    Evicted(&'static str),
    /// Make `peer` a direct gossip peer (`on`) or stop.
    DirectGossip {
        /// The peer.
        peer: PeerId,
        /// On or off.
        on: bool,
    },
    /// Dial `peer` at `addrs`.
    Dial {
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// Dial the configured seeds.
    DialSeeds,
    /// Ask `peer` for canonical block CIDs from `from`.
    RequestRange {
        /// The peer.
        peer: PeerId,
        /// First height.
        from: u64,
    },
    /// Fetch block `cid` from `peer`.
    FetchBlock {
        /// The peer.
        peer: PeerId,
        /// The block.
        cid: Cid,
    },
    /// The committer rotation is now these keys (and this peer's).
    Rotation(Vec<PublicKey>),
    /// Count a rejection (`kind`, `reason`) in the metrics.
    Count {
        /// What was rejected.
        kind: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A strike against `peer` (for the log), with its count; `banned` when it reached the
    /// threshold.
    Struck {
        /// The peer.
        peer: PeerId,
        /// Why (the rejection's label).
        reason: &'static str,
        /// Strikes so far.
        strikes: u32,
        /// Whether it is now banned.
        banned: bool,
    },
    /// Readiness and the commit gate are now this.
    Health(Health),
    /// Gossip these transactions as one message.
    GossipTxs(Vec<Arc<TxBundle>>),
    /// Give this job to the verification worker.
    Verify(Job),
    /// Tell gossipsub whether `source`'s message `message` is valid.
    Validate {
        /// The forwarder.
        source: PeerId,
        /// The message.
        message: libp2p::gossipsub::MessageId,
        /// The verdict.
        accept: Acceptance,
    },
    /// Ask `peer` for `object` (fetch `fetch`; answer with [`Transfer::ObjectAnswer`]).
    AskObject {
        /// The fetch.
        fetch: FetchId,
        /// Whom to ask.
        peer: PeerId,
        /// The object.
        object: Cid,
    },
    /// A submission's object fetch (`token`) ended: `found` if it is stored now.
    ObjectFetched {
        /// The submission.
        token: u64,
        /// Whether the object is stored.
        found: bool,
    },
}

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
