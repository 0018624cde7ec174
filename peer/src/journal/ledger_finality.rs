//! The journal's side of finality (docs/consensus.md, "Finality"): votes taken into the
//! accounting against the journal's block tree, and fork choice that never leaves the final
//! checkpoint and follows the chain holding the highest justified one (then the weights).
//! Without network parameters there is no accounting and fork choice is the weights alone.

use std::cmp::Ordering;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use tracing::info;

use super::{Added, Header, Journal, JournalError};
use crate::journal::block::Block;
use crate::journal::certificate;
use crate::journal::finality::{Ancestry, Counted, Finality, FinalityEvent, VoteRejection};
use crate::journal::index::{Index, IndexRead};
use crate::journal::membership::Membership;
use crate::journal::objects::Objects;
use crate::journal::vote::{Checkpoint, Vote};
use crate::model::Cid;
use crate::trust::PublicKey;

/// Most blocks walked down from the tip looking for a transaction not yet final.
const MAX_UNFINAL_WALK: usize = 100_000;

/// The block tree as finality reads it: headers for side branches, the index for the
/// canonical chain.
pub(super) struct ChainView<'a, I> {
    headers: &'a HashMap<Cid, Header>,
    index: &'a I,
    book: Option<&'a HashMap<Cid, Arc<Membership>>>,
}

impl<I: IndexRead> Ancestry for ChainView<'_, I> {
    fn ancestor_at(&self, cid: &Cid, height: u64) -> Option<Cid> {
        let mut cursor = *cid;
        loop {
            let header = self.headers.get(&cursor)?;
            if header.height == height {
                return Some(cursor);
            }
            if header.height < height {
                return None;
            }
            if self.index.block_at(header.height).ok()? == Some(cursor) {
                return self.index.block_at(height).ok()?;
            }
            cursor = header.parent;
        }
    }

    fn seats_at(&self, cid: &Cid) -> Option<BTreeSet<PublicKey>> {
        let membership = self.book?.get(cid)?;
        Some(membership.seats().peers().iter().copied().collect())
    }
}

/// What taking a vote did.
#[derive(Debug)]
pub struct VoteAdded {
    /// Whether the vote was taken.
    pub counted: Result<Counted, VoteRejection>,
    /// Checkpoints it made justified or final.
    pub events: Vec<FinalityEvent>,
    /// How the chain moved (to the branch of a new justified or final checkpoint), if it did.
    pub moved: Option<Added>,
}

/// What taking votes together did.
#[derive(Debug)]
pub struct VotesAdded {
    /// Whether each vote was taken, in order.
    pub counted: Vec<Result<Counted, VoteRejection>>,
    /// Checkpoints they made justified or final.
    pub events: Vec<FinalityEvent>,
    /// How the chain moved, if it did.
    pub moved: Option<Added>,
}

impl<I: Index, O: Objects> Journal<I, O> {
    /// The block tree as finality reads it.
    pub(super) fn chain_view(&self) -> ChainView<'_, I> {
        ChainView {
            headers: &self.headers,
            index: &self.index,
            book: self.book.as_ref(),
        }
    }

    /// The finality certificate a block on `parent` carries: this node's, when its final
    /// checkpoint is above the one `parent`'s chain records and on that chain (empty otherwise).
    pub(super) fn certificate_for(&self, parent: &Cid) -> Vec<Vote> {
        let (Some(finality), Some(m)) = (&self.finality, self.membership_after(parent)) else {
            return vec![];
        };
        if finality.finalized().height <= m.recorded_final() {
            return vec![];
        }
        certificate::attach(
            finality.certificate(),
            &self.rules.network,
            m.epoch(),
            m.recorded_final(),
            &self.chain_view(),
            parent,
        )
    }

    /// Takes the votes of `block`'s certificate (checked with the block) into the accounting,
    /// so a peer syncing blocks learns their finality from them; counted at the next count.
    pub(super) fn take_certificate_votes(&mut self, block: &Block) {
        if let Some(finality) = self.finality.as_mut() {
            for vote in &block.finality {
                let _ = finality.add(vote.clone());
            }
        }
    }

    /// Turns finality on: checkpoints every `epoch` blocks, `seats` voting.
    pub fn enable_finality(&mut self, epoch: u64, seats: &[PublicKey]) {
        let network = self.rules.network.clone();
        let mut finality = Finality::new(&network, epoch, seats, self.genesis);
        for membership in self.book.iter().flat_map(HashMap::values) {
            finality.admit_voters(membership.seats().peers());
        }
        self.finality = Some(finality);
    }

    /// The vote accounting, when finality is on.
    pub fn finality(&self) -> Option<&Finality> {
        self.finality.as_ref()
    }

    /// The highest final checkpoint, when finality is on.
    pub fn finalized(&self) -> Option<Checkpoint> {
        self.finality.as_ref().map(Finality::finalized)
    }

    /// Takes `vote`, counts, and moves the chain if a new justified or final checkpoint is on
    /// another branch.
    pub fn add_vote(&mut self, vote: Vote) -> Result<VoteAdded, JournalError> {
        let Some(finality) = self.finality.as_mut() else {
            return Ok(VoteAdded {
                counted: Ok(Counted::Known),
                events: vec![],
                moved: None,
            });
        };
        let counted = finality.add(vote);
        let (events, moved) = match counted {
            Ok(Counted::New) => self.recount()?,
            _ => (vec![], None),
        };
        Ok(VoteAdded {
            counted,
            events,
            moved,
        })
    }

    /// Takes `votes` together: each is checked as [`Journal::add_vote`] does, then all are
    /// counted at once (so a link whose votes arrive together counts even where each alone
    /// would fall to the per-voter bound), and the chain moves if a new justified or final
    /// checkpoint is on another branch.
    pub fn add_votes(&mut self, votes: Vec<Vote>) -> Result<VotesAdded, JournalError> {
        let Some(finality) = self.finality.as_mut() else {
            let counted = votes.iter().map(|_| Ok(Counted::Known)).collect();
            return Ok(VotesAdded {
                counted,
                events: vec![],
                moved: None,
            });
        };
        let counted: Vec<_> = votes.into_iter().map(|vote| finality.add(vote)).collect();
        let (events, moved) = if counted.contains(&Ok(Counted::New)) {
            self.recount()?
        } else {
            (vec![], None)
        };
        Ok(VotesAdded {
            counted,
            events,
            moved,
        })
    }

    /// Counts the votes held (a block they name may have arrived) and moves the chain to the
    /// best branch if that changed.
    pub fn recount(&mut self) -> Result<(Vec<FinalityEvent>, Option<Added>), JournalError> {
        // Field by field: the accounting is counted against the block tree beside it.
        let view = ChainView {
            headers: &self.headers,
            index: &self.index,
            book: self.book.as_ref(),
        };
        let Some(finality) = self.finality.as_mut() else {
            return Ok((vec![], None));
        };
        let events = finality.count(&view);
        if events.is_empty() {
            return Ok((events, None));
        }
        for event in &events {
            if let FinalityEvent::Finalized(c) = event {
                info!(height = c.height, cid = %c.cid, "checkpoint final");
            }
        }
        Ok((events, self.rechoose()?))
    }

    /// Moves the chain to the best known branch if it is not on it.
    fn rechoose(&mut self) -> Result<Option<Added>, JournalError> {
        let (tip, _) = self.tip()?;
        let floor = self.finalized().map_or(0, |f| f.height);
        let above: Vec<(&Cid, &Header)> = self
            .headers
            .iter()
            .filter(|(_, h)| h.height > floor)
            .collect();
        let parents: HashSet<Cid> = above.iter().map(|(_, h)| h.parent).collect();
        let mut best = tip;
        for (cid, _) in above {
            if !parents.contains(cid) && self.prefer(*cid, best) {
                best = *cid;
            }
        }
        if best == tip {
            return Ok(None);
        }
        match self.reorganize(best)? {
            Ok(added) => Ok(Some(added)),
            Err(_) => Ok(None),
        }
    }

    /// The fork-choice weight of the chain ending at the known block `cid` (the sum of its
    /// blocks' weights).
    pub fn chain_weight(&self, cid: &Cid) -> Option<u64> {
        self.headers.get(cid).map(|h| h.weight)
    }

    /// The fork-choice weight the known block `cid` adds to its chain under the seats at its
    /// height: 2 in turn, 1 out of turn, 0 for genesis.
    pub fn block_weight(&self, cid: &Cid) -> Option<u64> {
        let header = self.headers.get(cid)?;
        let parent = self.headers.get(&header.parent).map_or(0, |p| p.weight);
        Some(header.weight.saturating_sub(parent))
    }

    /// Fork choice: whether the chain ending at `candidate` is better than the one ending at
    /// `current`. With finality: a chain that leaves the final checkpoint never is; then the
    /// higher justified checkpoint wins; then the weights.
    pub(super) fn prefer(&self, candidate: Cid, current: Cid) -> bool {
        let (Some(a), Some(b)) = (self.score(candidate), self.score(current)) else {
            return false;
        };
        let by_weight = a.compare(&b);
        let Some(finality) = &self.finality else {
            return by_weight == Ordering::Greater;
        };
        let view = self.chain_view();
        match (
            finality.justified_on(&view, &candidate),
            finality.justified_on(&view, &current),
        ) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(x), Some(y)) => x.height.cmp(&y.height).then(by_weight) == Ordering::Greater,
        }
    }

    /// The link this node votes for with its chain at the tip, after its last vote `last`.
    pub fn choose_vote(
        &self,
        last: Option<&Vote>,
    ) -> Result<Option<(Checkpoint, Checkpoint)>, JournalError> {
        let Some(finality) = &self.finality else {
            return Ok(None);
        };
        let (cid, height) = self.tip()?;
        let view = self.chain_view();
        Ok(finality.choose(&view, Checkpoint { height, cid }, last))
    }

    /// Whether a canonical block above the final checkpoint holds transactions, or the tip's
    /// membership holds a change not in force yet (blocks are then due, empty if need be, so the
    /// epochs that make them final, the block recording it and its activation height come).
    pub fn awaits_finality(&self) -> Result<bool, JournalError> {
        let Some(finalized) = self.finalized() else {
            return Ok(false);
        };
        if self.membership().is_some_and(|m| m.awaits_finality()) {
            return Ok(true);
        }
        let (mut cursor, _) = self.tip()?;
        for _ in 0..MAX_UNFINAL_WALK {
            let Some(header) = self.headers.get(&cursor) else {
                return Ok(false);
            };
            if header.height <= finalized.height {
                return Ok(false);
            }
            if !header.empty {
                return Ok(true);
            }
            cursor = header.parent;
        }
        Ok(true)
    }
}
