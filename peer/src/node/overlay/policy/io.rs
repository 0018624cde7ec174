//! What the policy takes and returns: the [`Input`]s the driver reports (with the current time),
//! the [`Effect`]s it executes, and gossipsub's [`Acceptance`] verdicts.

use std::sync::Arc;

use libp2p::gossipsub::MessageId;
use libp2p::{Multiaddr, PeerId};

use super::objects::FetchId;
use super::readiness::Health;
use super::transfer::Transfer;
use super::verifier::Job;
use crate::model::Cid;
use crate::node::TxBundle;
use crate::time::UnixSeconds;
use crate::trust::{Chain, PublicKey, RevocationSet};

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
    /// This peer committed block `cid` at `height`: announce it (its tip is now that height).
    Committed {
        /// The block.
        cid: Cid,
        /// Its height.
        height: u64,
    },
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
        /// Without the objects its transactions reference (this peer should hold them).
        lean: bool,
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
    /// Publish an announcement of block `cid` at `height` (this peer committed it, or it
    /// became this peer's tip without an announcement to relay: `announcements.rs`).
    Announce {
        /// The block.
        cid: Cid,
        /// Its height.
        height: u64,
    },
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
