//! Finality: Casper FFG vote accounting over the journal's checkpoints (docs/consensus.md,
//! "Finality"; Buterin and Griffith, arXiv:1710.09437). Pure and deterministic: votes come in,
//! the chain is read through [`Ancestry`], and what became justified or final comes out.
//!
//! Checkpoints are genesis and the blocks at multiples of the epoch length. Genesis is justified
//! and final. A checkpoint is justified when votes of more than two thirds of the seats link a
//! justified ancestor to it (a supermajority link); a justified checkpoint is final when a
//! supermajority link goes from it to the checkpoint of the next epoch. A supermajority link
//! between adjacent checkpoints also proves its source justified (more than two thirds of the
//! seats hold at least one honest member when fewer than a third are Byzantine, and honest
//! members vote only from justified sources), so a peer that missed earlier votes verifies
//! finality from that one link: the finality certificate a peer stores and shares.
//!
//! Bounded against a hostile network: only seated members' votes are kept, at most
//! [`MAX_VOTES_PER_VOTER`] each (the lowest targets go first) once counted, only above the final
//! checkpoint; a vote breaking a rule with another of the same voter counts like any other and
//! the pair is kept once per culprit as evidence. Every vote taken is counted before the bound
//! can evict it (votes taken together, e.g. one message, are counted together, at most
//! [`MAX_UNCOUNTED_VOTES`] per voter): evicting first made views that received a link's votes
//! after newer ones never count it, so they justified less than others and their members voted
//! from other sources.
//!
//! The votes of the link that justified each checkpoint above the final one are kept apart from
//! that bound and shared ([`MAX_JUSTIFICATIONS`] of them, the highest): members who keep voting
//! from a justified checkpoint push the very votes that justified it out of their newest 16, and
//! a member that missed them then never learns the checkpoint is justified, votes from a lower
//! source, and no link ever gathers two thirds again (simulator, N = 4 with a Byzantine voter,
//! seed 150: two members voting 6 -> t, one 4 -> t, finality stalled at 2 for good).

use std::collections::{BTreeMap, BTreeSet};

use super::vote::{Checkpoint, Vote};
use crate::model::Cid;
use crate::trust::PublicKey;

/// Votes kept per voter once counted (its highest targets).
pub const MAX_VOTES_PER_VOTER: usize = 16;
/// Votes held per voter between two counts, at most (beyond, the lowest targets go uncounted).
pub const MAX_UNCOUNTED_VOTES: usize = 1024;
/// Justified checkpoints above the final one whose link's votes are kept and shared (the
/// highest).
pub const MAX_JUSTIFICATIONS: usize = 16;
/// Culprits whose conflicting votes are kept as evidence.
pub const MAX_VOTE_EVIDENCE: usize = 1024;

/// Most voters admitted (every seat ever seen): beyond, new seats' votes wait.
pub const MAX_VOTERS: usize = 4096;

/// The chain as finality reads it.
pub trait Ancestry {
    /// The block at `height` on the chain that ends at `cid` (`None`: `cid` is unknown or lower).
    fn ancestor_at(&self, cid: &Cid, height: u64) -> Option<Cid>;

    /// The seats that vote on the checkpoint `cid` when membership is on the chain (`None`:
    /// the accounting's own seats).
    fn seats_at(&self, _cid: &Cid) -> Option<BTreeSet<PublicKey>> {
        None
    }
}

/// Why a vote is not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoteRejection {
    /// The signature does not verify for this network.
    #[error("vote signature does not verify")]
    BadSignature,
    /// The voter holds no seat.
    #[error("voter {0} holds no seat")]
    NotSeated(PublicKey),
    /// Source or target is not a checkpoint, or the target is not above the source.
    #[error("vote {source_height} -> {target_height} does not link two checkpoints upwards")]
    Malformed {
        /// The source's height.
        source_height: u64,
        /// The target's height.
        target_height: u64,
    },
}

/// What taking a valid vote did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// New: held until it counts.
    New,
    /// Held already, or at or below the final checkpoint (nothing to count).
    Known,
}

/// Two votes of one voter that break a rule together: proof signed by the culprit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoteConflict {
    /// The vote held first.
    pub first: Vote,
    /// The vote that conflicts with it.
    pub second: Vote,
}

/// What a count found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalityEvent {
    /// This checkpoint is now justified.
    Justified(Checkpoint),
    /// This checkpoint (and every block below it) is now final.
    Finalized(Checkpoint),
}

/// The vote accounting of one node.
#[derive(Debug, Clone)]
pub struct Finality {
    network: String,
    epoch: u64,
    seats: BTreeSet<PublicKey>,
    /// Whose votes are held: the seats and every seat the chain's membership admitted since.
    voters: BTreeSet<PublicKey>,
    /// Each voter's votes, by target.
    votes: BTreeMap<PublicKey, BTreeMap<(u64, Cid), Vote>>,
    justified: BTreeSet<Checkpoint>,
    /// The votes of the link that justified each checkpoint above the final one (the highest
    /// [`MAX_JUSTIFICATIONS`]), shared so others can count it.
    justifications: BTreeMap<Checkpoint, Vec<Vote>>,
    finalized: Checkpoint,
    certificate: Vec<Vote>,
    evidence: BTreeMap<PublicKey, VoteConflict>,
}

impl Finality {
    /// Accounting for `network` with checkpoints every `epoch` blocks, `seats` voting, from
    /// `genesis` (justified and final).
    pub fn new(network: &str, epoch: u64, seats: &[PublicKey], genesis: Cid) -> Self {
        let genesis = Checkpoint {
            height: 0,
            cid: genesis,
        };
        Self {
            network: network.into(),
            epoch: epoch.max(1),
            seats: seats.iter().copied().collect(),
            voters: seats.iter().copied().collect(),
            votes: BTreeMap::new(),
            justified: BTreeSet::from([genesis]),
            justifications: BTreeMap::new(),
            finalized: genesis,
            certificate: vec![],
            evidence: BTreeMap::new(),
        }
    }

    /// Blocks per epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The highest final checkpoint.
    pub fn finalized(&self) -> Checkpoint {
        self.finalized
    }

    /// The votes of the link that made [`Finality::finalized`] final (empty for genesis).
    pub fn certificate(&self) -> &[Vote] {
        &self.certificate
    }

    /// The evidence of conflicting votes, by culprit.
    pub fn evidence(&self) -> impl Iterator<Item = &VoteConflict> {
        self.evidence.values()
    }

    /// Admits the votes of `seats` (seats of a membership the chain defines), up to
    /// [`MAX_VOTERS`].
    pub fn admit_voters(&mut self, seats: &[PublicKey]) {
        for seat in seats {
            if self.voters.len() >= MAX_VOTERS {
                return;
            }
            self.voters.insert(*seat);
        }
    }

    /// Whether `votes` hold more than two thirds of `seats`.
    pub(crate) fn supermajority(votes: &[&Vote], seats: &BTreeSet<PublicKey>) -> bool {
        let count = votes.iter().filter(|v| seats.contains(&v.voter)).count();
        3 * count > 2 * seats.len()
    }

    /// Whether `votes` for `source -> target` are a supermajority link: more than two thirds of
    /// the seats voting on the target, and of those on the source where the seats changed
    /// between them (FFG with dynamic validator sets: both the old and the new seats).
    fn supermajority_link(
        &self,
        chain: &impl Ancestry,
        source: &Checkpoint,
        target: &Checkpoint,
        votes: &[&Vote],
    ) -> bool {
        let at_target = chain.seats_at(&target.cid);
        let target_seats = at_target.as_ref().unwrap_or(&self.seats);
        if !Self::supermajority(votes, target_seats) {
            return false;
        }
        match chain.seats_at(&source.cid) {
            Some(source_seats) if source_seats != *target_seats => {
                Self::supermajority(votes, &source_seats)
            }
            _ => true,
        }
    }

    /// Takes `vote` (checked: signature, seat, shape, conflicts with the voter's other votes).
    pub fn add(&mut self, vote: Vote) -> Result<Counted, VoteRejection> {
        if !self.voters.contains(&vote.voter) {
            return Err(VoteRejection::NotSeated(vote.voter));
        }
        let (s, t) = (vote.source.height, vote.target.height);
        if s % self.epoch != 0 || t % self.epoch != 0 || t <= s {
            return Err(VoteRejection::Malformed {
                source_height: s,
                target_height: t,
            });
        }
        if !vote.signature_valid(&self.network) {
            return Err(VoteRejection::BadSignature);
        }
        let held = self.votes.entry(vote.voter).or_default();
        let key = (t, vote.target.cid);
        if held.get(&key) == Some(&vote) {
            return Ok(Counted::Known);
        }
        // A vote breaking a rule with one held is proof against its voter, and counts all the
        // same: FFG counts every signed vote, so two peers holding the same votes reach the same
        // justification whichever of the pair reached each first (else an equivocator's two
        // votes split the honest peers' views for good).
        if let Some(first) = held.values().find(|v| v.conflicts_with(&vote)) {
            let conflict = VoteConflict {
                first: first.clone(),
                second: vote.clone(),
            };
            if self.evidence.len() < MAX_VOTE_EVIDENCE {
                self.evidence.entry(vote.voter).or_insert(conflict);
            }
        }
        if t <= self.finalized.height {
            return Ok(Counted::Known);
        }
        held.insert(key, vote);
        while held.len() > MAX_VOTES_PER_VOTER + MAX_UNCOUNTED_VOTES {
            held.pop_first();
        }
        Ok(Counted::New)
    }

    /// Keeps each voter's [`MAX_VOTES_PER_VOTER`] highest targets (after a count).
    fn trim(&mut self) {
        for held in self.votes.values_mut() {
            while held.len() > MAX_VOTES_PER_VOTER {
                held.pop_first();
            }
        }
    }

    /// Counts the votes held against `chain`: the checkpoints that became justified and final,
    /// in order. Then each voter keeps its [`MAX_VOTES_PER_VOTER`] highest targets.
    pub fn count(&mut self, chain: &impl Ancestry) -> Vec<FinalityEvent> {
        let events = self.justify(chain);
        self.trim();
        events
    }

    fn justify(&mut self, chain: &impl Ancestry) -> Vec<FinalityEvent> {
        let mut events = vec![];
        loop {
            let mut links: BTreeMap<(Checkpoint, Checkpoint), Vec<&Vote>> = BTreeMap::new();
            for vote in self.votes.values().flat_map(BTreeMap::values) {
                links
                    .entry((vote.source, vote.target))
                    .or_default()
                    .push(vote);
            }
            let mut found = None;
            for ((source, target), votes) in &links {
                if !self.links(chain, source, target)
                    || !self.supermajority_link(chain, source, target, votes)
                {
                    continue;
                }
                let adjacent = target.height == source.height + self.epoch;
                let from_justified = self.justified.contains(source);
                let new_justified = !self.justified.contains(target);
                let new_final = adjacent && source.height > self.finalized.height;
                if (from_justified || adjacent) && (new_justified || new_final) {
                    let votes: Vec<Vote> = votes.iter().map(|v| (*v).clone()).collect();
                    found = Some((*source, *target, adjacent, votes));
                    break;
                }
            }
            let Some((source, target, adjacent, votes)) = found else {
                return events;
            };
            if self.justified.insert(source) {
                events.push(FinalityEvent::Justified(source));
                self.keep_justification(source, &votes);
            }
            if self.justified.insert(target) {
                events.push(FinalityEvent::Justified(target));
                self.keep_justification(target, &votes);
            }
            if adjacent && source.height > self.finalized.height {
                self.finalize(source, votes);
                events.push(FinalityEvent::Finalized(source));
            }
        }
    }

    /// Whether `source -> target` is a link on one chain that keeps the final checkpoint.
    fn links(&self, chain: &impl Ancestry, source: &Checkpoint, target: &Checkpoint) -> bool {
        chain.ancestor_at(&target.cid, source.height) == Some(source.cid)
            && chain.ancestor_at(&target.cid, self.finalized.height) == Some(self.finalized.cid)
    }

    /// Keeps the votes that justified `checkpoint` (above the final one, the highest
    /// [`MAX_JUSTIFICATIONS`]).
    fn keep_justification(&mut self, checkpoint: Checkpoint, votes: &[Vote]) {
        if checkpoint.height <= self.finalized.height {
            return;
        }
        self.justifications.insert(checkpoint, votes.to_vec());
        while self.justifications.len() > MAX_JUSTIFICATIONS {
            self.justifications.pop_first();
        }
    }

    fn finalize(&mut self, checkpoint: Checkpoint, certificate: Vec<Vote>) {
        self.finalized = checkpoint;
        self.certificate = certificate;
        self.justified.retain(|j| j.height >= checkpoint.height);
        self.justifications
            .retain(|j, _| j.height > checkpoint.height);
        for held in self.votes.values_mut() {
            held.retain(|(t, _), _| *t > checkpoint.height);
        }
        self.votes.retain(|_, held| !held.is_empty());
    }

    /// The highest justified checkpoint on the chain ending at `tip` (at least genesis, or
    /// `None` when that chain does not keep the final checkpoint).
    pub fn justified_on(&self, chain: &impl Ancestry, tip: &Cid) -> Option<Checkpoint> {
        if chain.ancestor_at(tip, self.finalized.height) != Some(self.finalized.cid) {
            return None;
        }
        self.justified
            .iter()
            .rev()
            .find(|j| chain.ancestor_at(tip, j.height) == Some(j.cid))
            .copied()
    }

    /// The link an honest member votes for with its chain at `tip`, after its last vote `last`:
    /// the checkpoint of the tip's epoch, from the highest justified checkpoint below it on that
    /// chain. `None` when there is nothing to vote for, or when voting would break a rule (a
    /// second target at one height, or a source below the last one's, which could surround).
    pub fn choose(
        &self,
        chain: &impl Ancestry,
        tip: Checkpoint,
        last: Option<&Vote>,
    ) -> Option<(Checkpoint, Checkpoint)> {
        let height = tip.height / self.epoch * self.epoch;
        if height == 0 || last.is_some_and(|l| l.target.height >= height) {
            return None;
        }
        let target = Checkpoint {
            height,
            cid: chain.ancestor_at(&tip.cid, height)?,
        };
        let source = self
            .justified
            .iter()
            .rev()
            .filter(|j| j.height < height)
            .find(|j| chain.ancestor_at(&target.cid, j.height) == Some(j.cid))
            .copied()?;
        if last.is_some_and(|l| source.height < l.source.height) {
            return None;
        }
        Some((source, target))
    }

    /// What this node shares so others can count: the certificate of the final checkpoint,
    /// every vote held above it, and the votes that justified the checkpoints above it.
    pub fn shared(&self) -> Vec<Vote> {
        let mut out = self.certificate.clone();
        out.extend(self.votes.values().flat_map(BTreeMap::values).cloned());
        let held = |v: &Vote| {
            self.votes
                .get(&v.voter)
                .and_then(|votes| votes.get(&(v.target.height, v.target.cid)))
                == Some(v)
        };
        let mut justifying: Vec<&Vote> = self.justifications.values().flatten().collect();
        justifying.retain(|v| !held(v));
        justifying.sort_by_key(|v| (v.voter, v.source, v.target));
        justifying.dedup_by_key(|v| (v.voter, v.source, v.target));
        out.extend(justifying.into_iter().cloned());
        out
    }
}

#[cfg(test)]
#[path = "finality_seats_tests.rs"]
pub(crate) mod seats_tests;
#[cfg(test)]
#[path = "finality_share_tests.rs"]
mod share_tests;
#[cfg(test)]
#[path = "finality_tests.rs"]
mod tests;
