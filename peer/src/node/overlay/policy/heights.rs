//! Heights other peers claim, and what is verified of them. Pure.
//!
//! A claim (a hello, a peer record, a block announcement) names a tip block and its height and
//! is recorded under its **originator** (the peer that made it, not the peer that forwarded
//! it), one claim per originator. It counts towards the best height (and so towards readiness
//! and the commit gate) only once the claimed block has been fetched and its header verified
//! (decoded, signed by a certified peer, at the claimed height), and only until the journal
//! holds the block: then fork choice has judged it (a claimed tip on a lighter branch must not
//! stop this peer from committing on the heavier one). A claim whose block turns out
//! invalid or whose height differs from the claim is dropped and its originator named for a
//! strike; so is a claim above this peer's height whose tip was never obtained from anyone when
//! neither the claim is younger than [`CLAIM_DEADLINE`] nor this peer's height grew within it.
//! A verified claim that overstays that deadline is dropped without blame (a header can be
//! signed on a parent that does not exist, but a busy or lagging path looks the same: the
//! parent's requests judge that, see `withheld`).
//! Claims go with their peer when it disconnects or is banned.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

use crate::model::Cid;

/// How long a claim above this peer's height may go without sync progress before its
/// originator is struck.
pub const CLAIM_DEADLINE: Duration = Duration::from_secs(30);

/// One peer's claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The claimed tip.
    pub tip: Cid,
    /// Its claimed height.
    pub height: u64,
    /// Whether the tip's header was verified at that height.
    pub verified: bool,
    /// Whether the journal holds the tip (fork choice has judged it).
    pub held: bool,
    /// When the claim was made.
    pub since: Instant,
}

/// What a new claim needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Nothing: the claim is verified or not above what we know.
    Nothing,
    /// Fetch the claimed tip from the originator.
    FetchTip,
}

/// Claims by originator.
#[derive(Debug, Default)]
pub struct Heights {
    claims: BTreeMap<PeerId, Claim>,
}

impl Heights {
    /// Records `peer`'s claim of `tip` at `height`; `held` when this peer's journal already
    /// holds the tip (its height is real and fork choice judged it). A newer claim replaces an
    /// older one. Every claim of a tip the journal lacks asks for it (the caller's requests are
    /// de-duplicated, so this is bounded by the claims' cadence).
    pub fn claim(&mut self, peer: PeerId, tip: Cid, height: u64, held: bool, now: Instant) -> Need {
        let verified = held;
        if let Some(old) = self.claims.get_mut(&peer) {
            if old.tip == tip {
                // Repeated (records come every few seconds): while the journal lacks the tip,
                // it is fetched again, verified header or not. A header verified on a parent
                // this peer lacks waits for that parent, and a parent request that failed is
                // not asked again by anyone else: without this, an equal-height branch (never
                // above us, so never synced by range) would stay unjudged until a new block.
                if held {
                    old.verified = true;
                    old.held = true;
                    return Need::Nothing;
                }
                return Need::FetchTip;
            }
            // A verified claim is not replaced by a lower unverified one (a reordered older
            // claim). Another tip at the same height is the peer's new tip after fork choice
            // moved it to an equal-height branch: it is fetched, so that fork choice here
            // judges both (else two equal-height branches stay split until a new block).
            if old.verified && !verified && height < old.height {
                return Need::Nothing;
            }
        }
        self.claims.insert(
            peer,
            Claim {
                tip,
                height,
                verified,
                held,
                since: now,
            },
        );
        if verified {
            Need::Nothing
        } else {
            Need::FetchTip
        }
    }

    /// The header of `tip` verified at `height` (`held`: the journal took the block): the
    /// claims on it count until it is held. Returns the originators whose claimed height
    /// differs (they lied; their claims are dropped).
    pub fn verified(&mut self, tip: &Cid, height: u64, held: bool) -> Vec<PeerId> {
        let mut liars = vec![];
        for (peer, claim) in &mut self.claims {
            if claim.tip == *tip {
                if claim.height == height {
                    claim.verified = true;
                    claim.held |= held;
                } else {
                    liars.push(*peer);
                }
            }
        }
        for peer in &liars {
            self.claims.remove(peer);
        }
        liars
    }

    /// `tip` cannot be verified (invalid, or its originator does not have it): the claims on
    /// it are dropped and their originators returned.
    pub fn unverifiable(&mut self, tip: &Cid) -> Vec<PeerId> {
        let peers: Vec<PeerId> = self
            .claims
            .iter()
            .filter(|(_, claim)| claim.tip == *tip)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in &peers {
            self.claims.remove(peer);
        }
        peers
    }

    /// Drops `peer`'s claim if it names `tip` (the peer does not hold the tip it claimed);
    /// whether it did.
    pub fn withdraw(&mut self, peer: &PeerId, tip: &Cid) -> bool {
        let claimed = self.claims.get(peer).is_some_and(|c| c.tip == *tip);
        if claimed {
            self.claims.remove(peer);
        }
        claimed
    }

    /// Drops the claims above `ours` made, and last progressed towards (`progress`: when our
    /// height last grew), more than [`CLAIM_DEADLINE`] ago; returns the originators of those
    /// whose tip was never obtained from anyone (fetched on every repeat of the claim, so asked
    /// for). A claim whose header was verified is dropped without blame: the header exists at
    /// that height, and not reaching it is slowness (a busy or lagging path), not proof; a
    /// header on a parent that does not exist is judged by the parent's requests (withheld).
    pub fn expire(&mut self, now: Instant, ours: u64, progress: Instant) -> Vec<PeerId> {
        let late: Vec<(PeerId, bool)> = self
            .claims
            .iter()
            .filter(|(_, c)| {
                c.height > ours
                    && !c.held
                    && now.saturating_duration_since(c.since.max(progress)) > CLAIM_DEADLINE
            })
            .map(|(peer, c)| (*peer, c.verified))
            .collect();
        let mut liars = vec![];
        for (peer, verified) in late {
            self.claims.remove(&peer);
            if !verified {
                liars.push(peer);
            }
        }
        liars
    }

    /// Forgets `peer`'s claim (it disconnected or was banned).
    pub fn forget(&mut self, peer: &PeerId) {
        self.claims.remove(peer);
    }

    /// The highest verified claim whose block the journal does not hold yet (0 without any).
    pub fn best(&self) -> u64 {
        self.claims
            .values()
            .filter(|c| c.verified && !c.held)
            .map(|c| c.height)
            .max()
            .unwrap_or(0)
    }

    /// The peer passing `eligible` with the highest claim above `ours`, verified or not (sync
    /// asks it for ranges: what it sends is verified block by block).
    pub fn ahead_of(&self, ours: u64, eligible: impl Fn(&PeerId) -> bool) -> Option<PeerId> {
        self.claims
            .iter()
            .filter(|(peer, c)| c.height > ours && !c.held && eligible(peer))
            .max_by_key(|(_, c)| c.height)
            .map(|(peer, _)| *peer)
    }

    /// `peer`'s claim.
    pub fn get(&self, peer: &PeerId) -> Option<&Claim> {
        self.claims.get(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    fn cid(n: u8) -> Cid {
        dag_cbor_cid(&[n])
    }

    #[test]
    fn an_unverified_claim_never_counts_towards_the_best_height() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let liar = PeerId::random();
        assert_eq!(
            heights.claim(liar, cid(1), u64::MAX / 2, false, now),
            Need::FetchTip
        );
        assert_eq!(heights.best(), 0, "an unverified claim does not count");
        assert_eq!(
            heights.ahead_of(5, |_| true),
            Some(liar),
            "but sync may ask the claimer"
        );
        assert_eq!(heights.ahead_of(5, |p| *p != liar), None);
    }

    #[test]
    fn a_claim_counts_once_its_header_is_verified_at_the_claimed_height() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let honest = PeerId::random();
        let _ = heights.claim(honest, cid(1), 7, false, now);
        assert!(heights.verified(&cid(1), 7, false).is_empty());
        assert_eq!(heights.best(), 7);
    }

    #[test]
    fn a_claim_whose_block_has_another_height_names_its_originator() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let (honest, liar) = (PeerId::random(), PeerId::random());
        let _ = heights.claim(honest, cid(1), 7, false, now);
        let _ = heights.claim(liar, cid(1), 1_000, false, now);
        assert_eq!(heights.verified(&cid(1), 7, false), vec![liar]);
        assert_eq!(heights.best(), 7);
        assert!(heights.get(&liar).is_none());
    }

    #[test]
    fn unverifiable_and_overdue_claims_name_their_originators() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let _ = heights.claim(a, cid(1), 10, false, now);
        let _ = heights.claim(b, cid(2), 10, false, now);
        let _ = heights.claim(c, cid(3), 3, true, now);
        assert_eq!(heights.unverifiable(&cid(1)), vec![a]);
        let late = now + CLAIM_DEADLINE + Duration::from_millis(1);
        assert!(heights.expire(now + CLAIM_DEADLINE, 3, now).is_empty());
        assert!(
            heights
                .expire(late, 3, now + Duration::from_secs(1))
                .is_empty(),
            "sync progressed recently: the claim stands"
        );
        assert_eq!(heights.expire(late, 3, now), vec![b]);
        assert!(heights.get(&c).is_some(), "a held claim does not expire");
        assert_eq!(heights.best(), 0, "nor count: fork choice judged it");
        heights.forget(&c);
        assert!(heights.get(&c).is_none());
    }

    #[test]
    fn a_claim_stops_counting_once_the_journal_holds_its_block() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let peer = PeerId::random();
        let _ = heights.claim(peer, cid(4), 9, false, now);
        assert!(heights.verified(&cid(4), 9, false).is_empty());
        assert_eq!(heights.best(), 9, "fetching its ancestors: it counts");
        assert!(heights.verified(&cid(4), 9, true).is_empty());
        assert_eq!(
            heights.best(),
            0,
            "held (say on a lighter branch): it does not"
        );
        assert_eq!(heights.ahead_of(3, |_| true), None);
    }

    #[test]
    fn another_tip_at_the_same_height_replaces_a_verified_claim_and_is_fetched() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let peer = PeerId::random();
        let _ = heights.claim(peer, cid(1), 5, false, now);
        assert!(heights.verified(&cid(1), 5, false).is_empty());
        // The peer moved to an equal-height branch this peer lacks: fetch its tip.
        assert_eq!(heights.claim(peer, cid(2), 5, false, now), Need::FetchTip);
        assert_eq!(heights.get(&peer).map(|c| c.tip), Some(cid(2)));
        assert_eq!(heights.best(), 0, "unverified: it does not count");
        // A lower unverified claim (an older one, reordered) does not replace a verified one.
        assert!(heights.verified(&cid(2), 5, false).is_empty());
        assert_eq!(heights.claim(peer, cid(3), 4, false, now), Need::Nothing);
        assert_eq!(heights.best(), 5);
    }

    #[test]
    fn a_repeated_claim_of_a_tip_the_journal_lacks_is_fetched_again_even_once_verified() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let peer = PeerId::random();
        let _ = heights.claim(peer, cid(1), 5, false, now);
        // Its header verified, but the block waits for a parent whose request failed.
        assert!(heights.verified(&cid(1), 5, false).is_empty());
        assert_eq!(heights.claim(peer, cid(1), 5, false, now), Need::FetchTip);
        // Once the journal holds it, repeating the claim asks for nothing.
        assert_eq!(heights.claim(peer, cid(1), 5, true, now), Need::Nothing);
        assert_eq!(heights.best(), 0, "held: fork choice judged it");
    }

    #[test]
    fn a_verified_header_above_us_expires_without_sync_progress_but_without_blame() {
        let now = Instant::now();
        let mut heights = Heights::default();
        let slow = PeerId::random();
        let _ = heights.claim(slow, cid(9), 1_000_000, false, now);
        assert!(heights.verified(&cid(9), 1_000_000, false).is_empty());
        assert_eq!(heights.best(), 1_000_000);
        let late = now + CLAIM_DEADLINE + Duration::from_millis(1);
        assert!(
            heights.expire(late, 4, now).is_empty(),
            "the header exists: not reaching it is no proof of a lie"
        );
        assert_eq!(heights.best(), 0, "but it stops counting");
        assert!(heights.get(&slow).is_none());
    }
}
