//! Block announcements held back from relay until this peer holds their block. Pure.
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

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;

use crate::model::Cid;

/// How long an announcement waits for its block before it is dropped unrelayed.
pub const HOLD_FOR: Duration = Duration::from_secs(10);
/// Announcements held, at most.
pub const MAX_HELD: usize = 1024;

/// One held announcement: its forwarder and gossip id.
pub type Held = (PeerId, MessageId);

/// Announcements waiting for their block, by block.
#[derive(Debug, Default)]
pub struct Announcements {
    by_block: BTreeMap<Cid, Vec<Held>>,
    /// Blocks in the order their first announcement was held, with when.
    order: VecDeque<(Instant, Cid)>,
    held: usize,
}

impl Announcements {
    /// Holds the announcement `message` of block `cid` from `source` until the block is
    /// judged; returns the announcements dropped to stay within [`MAX_HELD`].
    pub fn hold(
        &mut self,
        cid: Cid,
        source: PeerId,
        message: MessageId,
        now: Instant,
    ) -> Vec<Held> {
        let waiting = self.by_block.entry(cid).or_default();
        if waiting.is_empty() {
            self.order.push_back((now, cid));
        }
        waiting.push((source, message));
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

    /// The announcements of block `cid` (its block is taken or refused now).
    pub fn release(&mut self, cid: &Cid) -> Vec<Held> {
        let Some(released) = self.by_block.remove(cid) else {
            return vec![];
        };
        self.order.retain(|(_, c)| c != cid);
        self.held -= released.len();
        released
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
        assert!(held.hold(a, peer, id(1), t0).is_empty());
        assert!(held.hold(a, peer, id(2), t0).is_empty());
        assert!(held
            .hold(b, peer, id(3), t0 + Duration::from_secs(1))
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
            assert!(held.hold(cid, peer, id(n), t0).is_empty());
        }
        let extra = dag_cbor_cid(b"extra");
        assert_eq!(held.hold(extra, peer, id(9999), t0), vec![(peer, id(0))]);
        assert_eq!(held.len(), MAX_HELD);
    }
}
