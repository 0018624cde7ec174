//! Proof-of-authority rotation and fork choice.
//!
//! The committer schedule is the sorted set of admitted Level-1 peers: at height `h` the in-turn
//! committer is `peers[h mod n]`. Others may commit out of turn after the commit timeout, each
//! after its own back-off (its distance from the in-turn slot), so a crashed committer is
//! replaced without a stampede.
//!
//! Fork choice: an in-turn block weighs 2, an out-of-turn block 1; the heavier chain wins, then
//! the longer one, then the one whose tip CID is lowest (bytewise). Every node computes the same
//! order for the same blocks and schedule. The schedule comes from membership, which the overlay
//! keeps identical on every peer; it only weighs blocks and never decides their validity, so a
//! transient membership difference can delay convergence but not split the chain for good.

use std::cmp::Ordering;
use std::time::Duration;

use crate::model::Cid;
use crate::trust::PublicKey;

/// The committer rotation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule {
    peers: Vec<PublicKey>,
}

impl Schedule {
    /// The rotation over `peers` (deduplicated and sorted).
    pub fn new(mut peers: Vec<PublicKey>) -> Self {
        peers.sort();
        peers.dedup();
        Self { peers }
    }

    /// The peers in rotation order.
    pub fn peers(&self) -> &[PublicKey] {
        &self.peers
    }

    /// The in-turn committer at `height`.
    pub fn in_turn(&self, height: u64) -> Option<PublicKey> {
        let n = self.peers.len() as u64;
        (n > 0).then(|| self.peers[(height % n) as usize])
    }

    /// How many slots after the in-turn committer `peer` comes at `height` (0 = in turn).
    pub fn rank(&self, height: u64, peer: &PublicKey) -> Option<u64> {
        let n = self.peers.len() as u64;
        let position = self.peers.iter().position(|p| p == peer)? as u64;
        Some((position + n - height % n) % n)
    }

    /// How long after its parent `peer` may commit the block at `height`: in turn after
    /// `interval`; out of turn after `timeout` plus `step` per rank.
    pub fn commit_delay(
        &self,
        height: u64,
        peer: &PublicKey,
        interval: Duration,
        timeout: Duration,
        step: Duration,
    ) -> Option<Duration> {
        match self.rank(height, peer)? {
            0 => Some(interval),
            rank => Some(timeout + step * rank as u32),
        }
    }

    /// The fork-choice weight of a block at `height` committed by `committer`.
    pub fn weight(&self, height: u64, committer: Option<PublicKey>) -> u64 {
        match committer {
            None => 0,
            Some(c) if self.in_turn(height) == Some(c) => 2,
            Some(_) => 1,
        }
    }
}

/// What fork choice compares: a tip with its chain's total weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TipScore {
    /// Sum of block weights from genesis.
    pub weight: u64,
    /// Tip height.
    pub height: u64,
    /// Tip CID.
    pub cid: Cid,
}

impl TipScore {
    /// Orders tips: `Greater` means `self` is the better chain.
    pub fn compare(&self, other: &TipScore) -> Ordering {
        self.weight
            .cmp(&other.weight)
            .then(self.height.cmp(&other.height))
            .then_with(|| other.cid.to_bytes().cmp(&self.cid.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;
    use crate::trust::SecretKey;

    fn peers(n: usize) -> Vec<PublicKey> {
        (0..n).map(|_| SecretKey::generate().public()).collect()
    }

    #[test]
    fn rotation_walks_the_sorted_peers_by_height() {
        let schedule = Schedule::new(peers(3));
        let sorted = schedule.peers().to_vec();
        for h in 0..9u64 {
            assert_eq!(schedule.in_turn(h), Some(sorted[(h % 3) as usize]));
            assert_eq!(schedule.rank(h, &sorted[(h % 3) as usize]), Some(0));
        }
        assert_eq!(schedule.rank(0, &sorted[2]), Some(2));
        assert_eq!(schedule.rank(1, &sorted[0]), Some(2));
        let stranger = SecretKey::generate().public();
        assert_eq!(schedule.rank(0, &stranger), None);
    }

    #[test]
    fn out_of_turn_committers_wait_for_the_timeout_then_their_rank() {
        let schedule = Schedule::new(peers(4));
        let p = schedule.peers().to_vec();
        let (i, t) = (Duration::from_secs(1), Duration::from_secs(5));
        let step = Duration::from_millis(700);
        assert_eq!(schedule.commit_delay(4, &p[0], i, t, step), Some(i));
        assert_eq!(schedule.commit_delay(4, &p[1], i, t, step), Some(t + step));
        assert_eq!(
            schedule.commit_delay(4, &p[3], i, t, step),
            Some(t + 3 * step)
        );
    }

    #[test]
    fn heavier_then_longer_then_lowest_cid_wins() {
        let a = dag_cbor_cid(b"a");
        let b = dag_cbor_cid(b"b");
        let score = |weight, height, cid| TipScore {
            weight,
            height,
            cid,
        };
        assert_eq!(score(5, 3, a).compare(&score(4, 4, b)), Ordering::Greater);
        assert_eq!(score(4, 4, a).compare(&score(4, 3, b)), Ordering::Greater);
        let (low, high) = if a.to_bytes() < b.to_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(
            score(4, 4, low).compare(&score(4, 4, high)),
            Ordering::Greater
        );
        assert_eq!(score(4, 4, high).compare(&score(4, 4, low)), Ordering::Less);
    }
}
