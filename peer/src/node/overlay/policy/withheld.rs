//! Parents withheld: a request for the parent of a block a peer sent that went unanswered.
//! One silence proves nothing (a peer under load answers after the request timed out), so a
//! silence is only noted; it is forgiven as soon as the parent arrives from anyone (it exists,
//! so its sender may simply have been slow), and a sender is struck only once
//! [`WITHHELD_STRIKE`] distinct parents it left unanswered stayed unobtainable from every peer
//! for [`WITHHELD_GRACE`] after the silence: a peer that sends orphans forever and never serves
//! their parents. Bounded ([`MAX_WITHHELD`]: the oldest silences are forgotten). Pure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::model::Cid;

/// Distinct parents a sender must leave unanswered, each unobtainable from anyone, for a strike.
pub const WITHHELD_STRIKE: usize = 3;
/// How long after a silence the parent may still arrive from anyone (forgiving it).
pub const WITHHELD_GRACE: Duration = Duration::from_secs(10);
/// Silences kept, at most.
pub const MAX_WITHHELD: usize = 4096;

/// Silences about parents, by (sender, parent): when the first went unanswered.
#[derive(Debug, Default)]
pub struct Withheld {
    silences: BTreeMap<(PeerId, Cid), Instant>,
}

impl Withheld {
    /// `peer` left the request for `parent` (of a block it sent) unanswered at `now`; whether
    /// the book had to forget its oldest silence to stay bounded.
    pub fn silent(&mut self, peer: PeerId, parent: Cid, now: Instant) -> bool {
        self.silences.entry((peer, parent)).or_insert(now);
        if self.silences.len() <= MAX_WITHHELD {
            return false;
        }
        let oldest = self
            .silences
            .iter()
            .min_by_key(|(_, at)| **at)
            .map(|(key, _)| *key);
        if let Some(oldest) = oldest {
            self.silences.remove(&oldest);
        }
        true
    }

    /// `parent` arrived: whoever was silent about it is forgiven.
    pub fn supplied(&mut self, parent: &Cid) {
        self.silences.retain(|(_, p), _| p != parent);
    }

    /// The senders with [`WITHHELD_STRIKE`] silences older than [`WITHHELD_GRACE`] at `now`
    /// (their silences are then forgotten: each strike needs new ones).
    pub fn due(&mut self, now: Instant) -> Vec<PeerId> {
        let mut overdue: BTreeMap<PeerId, usize> = BTreeMap::new();
        for ((peer, _), at) in &self.silences {
            if now.saturating_duration_since(*at) >= WITHHELD_GRACE {
                *overdue.entry(*peer).or_default() += 1;
            }
        }
        let due: Vec<PeerId> = overdue
            .into_iter()
            .filter(|(_, n)| *n >= WITHHELD_STRIKE)
            .map(|(peer, _)| peer)
            .collect();
        self.silences.retain(|(peer, _), _| !due.contains(peer));
        due
    }

    /// Silences kept.
    pub fn len(&self) -> usize {
        self.silences.len()
    }

    /// Whether none is kept.
    pub fn is_empty(&self) -> bool {
        self.silences.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    #[test]
    fn only_parents_left_unanswered_and_unobtainable_past_the_grace_strike() {
        let mut withheld = Withheld::default();
        let (slow, silent) = (PeerId::random(), PeerId::random());
        let t0 = Instant::now();
        for n in 0..WITHHELD_STRIKE as u8 {
            let parent = dag_cbor_cid(&[n]);
            withheld.silent(slow, parent, t0);
            withheld.silent(silent, dag_cbor_cid(&[100 + n]), t0);
            // The slow sender's parents arrive from someone else: they exist.
            withheld.supplied(&parent);
        }
        assert!(withheld.due(t0).is_empty(), "within the grace");
        assert_eq!(withheld.due(t0 + WITHHELD_GRACE), vec![silent]);
        assert!(withheld.is_empty(), "forgotten once struck");
    }

    #[test]
    fn fewer_silences_than_the_strike_are_no_strike_and_the_book_is_bounded() {
        let mut withheld = Withheld::default();
        let peer = PeerId::random();
        let t0 = Instant::now();
        for n in 0..(WITHHELD_STRIKE - 1) as u8 {
            withheld.silent(peer, dag_cbor_cid(&[n]), t0);
        }
        assert!(withheld.due(t0 + WITHHELD_GRACE * 10).is_empty());
        let mut evicted = 0;
        for n in 0..MAX_WITHHELD as u32 + 1 {
            let later = t0 + Duration::from_millis(n as u64 + 1);
            evicted += usize::from(withheld.silent(peer, dag_cbor_cid(&n.to_be_bytes()), later));
        }
        assert_eq!(withheld.len(), MAX_WITHHELD);
        assert!(evicted >= 1);
    }
}
