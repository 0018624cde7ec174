//! Block announcements: held back from relay until this peer holds their block, and relayed
//! once per block. Pure.
//!
//! An announcement names a block; a receiver that does not hold it fetches it from the peer the
//! announcement came from (its author when admitted, else the forwarder). So a peer relays an
//! announcement (gossipsub's `Accept`) only once its journal took the block: whoever it reaches
//! can fetch the block from it. Relayed at once, announcements outran their blocks: at 200
//! peers most first fetches were answered "not found" by forwarders that had not got the block
//! yet, peers stayed behind, and the claims they could not sync struck the honest committers.
//! An announcement of a block that is never taken is dropped (`Ignore`, or `Reject` when the
//! block is invalid for every receiver) once its block is judged or after [`HOLD_FOR`]; at
//! most [`MAX_HELD`] are held (the oldest go first, ignored).
//!
//! A flood stops where a copy is lost or a fetch fails, and the block then spreads a hop per
//! identity-record round (5 s: a neighbour's record names it): at 200 peers on a sparse overlay,
//! a block committed at the same height as another reached 46 peers by announcement and the
//! rest only in the next 35 s. So a peer whose tip became a block that no announcement brought
//! announces it itself ([`Announcements::taken`] says when), restarting the flood where it
//! stopped. Gossipsub names a message by its author and sequence number, so those copies are
//! new messages: a peer relays one announcement per block and height ([`RELAYED_FOR`], at most
//! [`MAX_RELAYED`] remembered) and ignores the rest, so the re-announcements cost one flood per
//! block, not one per re-announcer.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use crate::model::Cid;

/// How long an announcement waits for its block before it is dropped unrelayed.
pub const HOLD_FOR: Duration = Duration::from_secs(10);
/// Announcements held, at most.
pub const MAX_HELD: usize = 1024;
/// How long a block's relayed announcement is remembered (others of it are ignored meanwhile).
pub const RELAYED_FOR: Duration = Duration::from_secs(120);
/// Relayed announcements remembered, at most (the oldest are forgotten first).
pub const MAX_RELAYED: usize = 1024;

/// One held announcement: its forwarder and gossip id.
pub type Held = (PeerId, MessageId);

/// What becomes of a block's announcements once the journal took it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Taken {
    /// The announcement to relay (the first naming the block's real height, unless one was
    /// relayed already).
    pub relay: Option<Held>,
    /// The others: ignored (their news travels with the relayed one, or they lied about the
    /// height: the claims' check strikes their authors).
    pub ignore: Vec<Held>,
    /// Whether this peer should announce the block itself: nothing here relayed an
    /// announcement of it (none came, or it expired) and it became this peer's tip.
    pub announce: bool,
}

/// Announcements waiting for their block, by block, and the blocks whose announcement was
/// relayed.
#[derive(Debug, Default)]
pub struct Announcements {
    /// Held announcements with the height each names.
    by_block: BTreeMap<Cid, Vec<(u64, Held)>>,
    /// Blocks in the order their first announcement was held, with when.
    order: VecDeque<(Instant, Cid)>,
    held: usize,
    /// Blocks (with height) whose announcement left this peer.
    relayed: BTreeSet<(Cid, u64)>,
    /// The same, in the order they were relayed, with when.
    relayed_order: VecDeque<(Instant, (Cid, u64))>,
}

impl Announcements {
    /// Holds the announcement `message` of block `cid` at `height` from `source` until the
    /// block is judged; returns the announcements dropped to stay within [`MAX_HELD`].
    pub fn hold(
        &mut self,
        cid: Cid,
        height: u64,
        (source, message): Held,
        now: Instant,
    ) -> Vec<Held> {
        let waiting = self.by_block.entry(cid).or_default();
        if waiting.is_empty() {
            self.order.push_back((now, cid));
        }
        waiting.push((height, (source, message)));
        self.held += 1;
        let mut dropped = vec![];
        while self.held > MAX_HELD {
            match self.order.pop_front() {
                Some((_, oldest)) => dropped.extend(self.release(&oldest)),
                None => break,
            }
        }
        dropped
    }

    /// The announcements of block `cid` (its block is refused now, or given up).
    pub fn release(&mut self, cid: &Cid) -> Vec<Held> {
        self.take(cid).into_iter().map(|(_, held)| held).collect()
    }

    /// The held announcements of block `cid`, with the heights they name, no longer held.
    fn take(&mut self, cid: &Cid) -> Vec<(u64, Held)> {
        let Some(taken) = self.by_block.remove(cid) else {
            return vec![];
        };
        self.order.retain(|(_, c)| c != cid);
        self.held -= taken.len();
        taken
    }

    /// The journal took block `cid` at `height` (`tip`: it became this peer's tip).
    pub fn taken(&mut self, cid: &Cid, height: u64, tip: bool, now: Instant) -> Taken {
        let mut taken = Taken::default();
        let fresh = !self.was_relayed(*cid, height, now);
        for (named, announcement) in self.take(cid) {
            if fresh && named == height && taken.relay.is_none() {
                taken.relay = Some(announcement);
            } else {
                taken.ignore.push(announcement);
            }
        }
        taken.announce = fresh && tip && taken.relay.is_none();
        if fresh && (taken.relay.is_some() || taken.announce) {
            self.remember(*cid, height, now);
        }
        taken
    }

    /// An announcement of block `cid` at `height`, which this peer holds: whether to relay it
    /// (none of that block was relayed here within [`RELAYED_FOR`]). Remembers it if so.
    pub fn relay_once(&mut self, cid: Cid, height: u64, now: Instant) -> bool {
        if self.was_relayed(cid, height, now) {
            return false;
        }
        self.remember(cid, height, now);
        true
    }

    /// Whether an announcement of block `cid` at `height` left this peer within
    /// [`RELAYED_FOR`] of `now`.
    fn was_relayed(&mut self, cid: Cid, height: u64, now: Instant) -> bool {
        self.forget(now);
        self.relayed.contains(&(cid, height))
    }

    /// Remembers that an announcement of `cid` at `height` left this peer (asked only after
    /// [`Self::was_relayed`] said it had not).
    fn remember(&mut self, cid: Cid, height: u64, now: Instant) {
        if self.relayed.insert((cid, height)) {
            self.relayed_order.push_back((now, (cid, height)));
        }
        while self.relayed_order.len() > MAX_RELAYED {
            if let Some((_, oldest)) = self.relayed_order.pop_front() {
                self.relayed.remove(&oldest);
            }
        }
    }

    fn forget(&mut self, now: Instant) {
        while let Some((since, key)) = self.relayed_order.front().copied() {
            if now.saturating_duration_since(since) < RELAYED_FOR {
                break;
            }
            self.relayed_order.pop_front();
            self.relayed.remove(&key);
        }
    }

    /// The announcements held for longer than [`HOLD_FOR`] at `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Held> {
        let mut expired = vec![];
        while let Some((since, cid)) = self.order.front().copied() {
            if now.saturating_duration_since(since) < HOLD_FOR {
                break;
            }
            self.order.pop_front();
            expired.extend(self.release(&cid));
        }
        expired
    }

    /// Announcements held.
    pub fn len(&self) -> usize {
        self.held
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    fn id(n: u32) -> MessageId {
        MessageId::new(&n.to_be_bytes())
    }

    #[test]
    fn announcements_wait_for_their_block_then_expire() {
        let mut held = Announcements::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        let (a, b) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[2]));
        assert!(held.hold(a, 1, (peer, id(1)), t0).is_empty());
        assert!(held.hold(a, 1, (peer, id(2)), t0).is_empty());
        assert!(held
            .hold(b, 2, (peer, id(3)), t0 + Duration::from_secs(1))
            .is_empty());
        assert_eq!(held.release(&a), vec![(peer, id(1)), (peer, id(2))]);
        assert!(held.release(&a).is_empty(), "released once");
        assert!(held.expire(t0 + HOLD_FOR).is_empty());
        assert_eq!(
            held.expire(t0 + Duration::from_secs(1) + HOLD_FOR),
            vec![(peer, id(3))]
        );
        assert!(held.is_empty());
    }

    #[test]
    fn at_most_max_held_announcements_are_held_the_oldest_dropped_first() {
        let mut held = Announcements::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        for n in 0..MAX_HELD as u32 {
            let cid = dag_cbor_cid(&n.to_be_bytes());
            assert!(held.hold(cid, 1, (peer, id(n)), t0).is_empty());
        }
        let extra = dag_cbor_cid(b"extra");
        assert_eq!(
            held.hold(extra, 1, (peer, id(9999)), t0),
            vec![(peer, id(0))]
        );
        assert_eq!(held.len(), MAX_HELD);
    }

    #[test]
    fn a_taken_block_relays_one_announcement_naming_its_height_and_ignores_the_rest() {
        let mut held = Announcements::default();
        let (a, b, t0) = (PeerId::random(), PeerId::random(), Instant::now());
        let block = dag_cbor_cid(&[1]);
        let _ = held.hold(block, 99, (a, id(1)), t0);
        let _ = held.hold(block, 7, (a, id(2)), t0);
        let _ = held.hold(block, 7, (b, id(3)), t0);
        let taken = held.taken(&block, 7, true, t0);
        assert_eq!(
            taken,
            Taken {
                relay: Some((a, id(2))),
                ignore: vec![(a, id(1)), (b, id(3))],
                announce: false,
            }
        );
        assert!(held.is_empty());
        assert!(
            !held.relay_once(block, 7, t0),
            "a later copy (another author's) is not relayed again"
        );
        assert!(
            held.relay_once(block, 7, t0 + RELAYED_FOR),
            "forgotten after a while"
        );
    }

    #[test]
    fn a_tip_no_announcement_brought_is_announced_here_once() {
        let mut held = Announcements::default();
        let t0 = Instant::now();
        let (tip, side) = (dag_cbor_cid(&[1]), dag_cbor_cid(&[2]));
        assert!(
            !held.taken(&side, 7, false, t0).announce,
            "not this peer's tip"
        );
        assert!(held.taken(&tip, 7, true, t0).announce);
        assert!(!held.taken(&tip, 7, true, t0).announce, "once");
        assert!(
            !held.relay_once(tip, 7, t0),
            "its own announcement counts as relayed"
        );
    }

    #[test]
    fn at_most_max_relayed_blocks_are_remembered() {
        let mut held = Announcements::default();
        let t0 = Instant::now();
        for n in 0..=MAX_RELAYED as u64 {
            assert!(held.relay_once(dag_cbor_cid(&n.to_be_bytes()), n, t0));
        }
        assert_eq!(held.relayed.len(), MAX_RELAYED);
        assert!(
            held.relay_once(dag_cbor_cid(&0u64.to_be_bytes()), 0, t0),
            "the oldest went"
        );
    }
}
