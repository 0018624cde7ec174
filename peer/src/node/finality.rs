//! Finality at a node (docs/consensus.md, "Finality"): votes from peers and this peer's own,
//! counted by the journal; what became final is kept in the store (the certificate) and
//! published as a [`NodeEvent::Finalized`]; a chain moved by a justification replays its
//! orphans. This peer votes only as a seated member, persists each vote before it is sent, and
//! never votes against the rules (the journal's choice). Never touches the network.

use tracing::{debug, info, warn};

use super::{blocks, Node, NodeError, NodeEvent, State};
use crate::journal::evidence::Evidence;
use crate::journal::finality::{Counted, FinalityEvent, VoteRejection};
use crate::journal::vote::{Checkpoint, Vote};
use crate::journal::Added;
use crate::store::Store;

/// Most votes taken from one message (the rest are ignored).
pub const MAX_VOTES_PER_MESSAGE: usize = 1024;

/// What a peer's votes were worth, for gossip validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VotesVerdict {
    /// At least one vote was valid and none invalid for every receiver.
    Accepted,
    /// Nothing to judge (no vote, none seated here, or none new).
    Ignored,
    /// A vote no honest peer would send: a forged signature or a malformed link.
    Invalid,
}

/// Turns finality on for a journal under network parameters and restores what the store kept:
/// the certificate (verified again) and this peer's last vote.
pub(super) fn restore(state: &mut State, store: &Store, epoch: u64) -> Result<(), NodeError> {
    let genesis = state.journal.genesis();
    let seats = state
        .journal
        .seats_of(&genesis)
        .unwrap_or_else(|| state.journal.schedule());
    state.journal.enable_finality(epoch, seats.peers());
    for vote in store.finality_certificate()? {
        state.journal.add_vote(vote)?;
    }
    state.journal.recount()?;
    state.last_vote = store.last_vote()?;
    if let Some(final_point) = state.journal.finalized() {
        info!(height = final_point.height, cid = %final_point.cid, "final checkpoint restored");
    }
    Ok(())
}

impl Node {
    /// Takes votes a peer sent.
    pub fn receive_votes(&self, votes: Vec<Vote>) -> Result<VotesVerdict, NodeError> {
        let mut state = self.state();
        let mut verdict = VotesVerdict::Ignored;
        // Counted together: a link whose votes come in one message counts.
        let votes: Vec<Vote> = votes.into_iter().take(MAX_VOTES_PER_MESSAGE).collect();
        let added = state.journal.add_votes(votes)?;
        for counted in added.counted {
            match counted {
                Ok(Counted::New) if verdict == VotesVerdict::Ignored => {
                    verdict = VotesVerdict::Accepted;
                }
                Err(VoteRejection::BadSignature | VoteRejection::Malformed { .. }) => {
                    verdict = VotesVerdict::Invalid;
                }
                Err(reason) => debug!(%reason, "vote not counted"),
                Ok(_) => {}
            }
        }
        self.keep_evidence(&mut state)?;
        self.settle(state, added.events, added.moved)?;
        Ok(verdict)
    }

    /// Keeps in the store the evidence found since the last call (the journal's double blocks,
    /// finality's conflicting votes), logging each new item.
    fn keep_evidence(&self, state: &mut State) -> Result<(), NodeError> {
        let blocks = state.journal.evidence().items().map(Evidence::from);
        let votes: Vec<Evidence> = state
            .journal
            .finality()
            .map(|f| f.evidence().map(Evidence::from).collect())
            .unwrap_or_default();
        let found: Vec<Evidence> = blocks.chain(votes).collect();
        if found.len() == state.evidence_kept {
            return Ok(());
        }
        let now = self.clock.unix_ms() / 1000;
        for item in &found {
            if self.store.put_evidence(item, now)? {
                warn!(culprit = %item.culprit(), ?item, "evidence kept");
            }
        }
        state.evidence_kept = found.len();
        Ok(())
    }

    /// This peer's vote, if one is due: its chain reached a checkpoint it has not voted for.
    /// Kept in the store before it is returned (to be sent).
    pub fn vote(&self) -> Result<Option<Vote>, NodeError> {
        let mut state = self.state();
        let me = self.key.public();
        if state.journal.finality().is_none() {
            return Ok(None);
        }
        let Some((source, target)) = state.journal.choose_vote(state.last_vote.as_ref())? else {
            return Ok(None);
        };
        // Only the seats that produced the target vote on it.
        let seats = state
            .journal
            .seats_of(&target.cid)
            .unwrap_or_else(|| state.journal.schedule());
        if !seats.peers().contains(&me) {
            return Ok(None);
        }
        let network = state.journal.rules().network.clone();
        let vote = Vote::sign(&self.key, &network, source, target);
        self.store.put_last_vote(&vote)?;
        state.last_vote = Some(vote.clone());
        debug!(source = source.height, target = target.height, "voting");
        let added = state.journal.add_vote(vote.clone())?;
        self.settle(state, added.events, added.moved)?;
        Ok(Some(vote))
    }

    /// The votes this peer holds, to re-send: the certificate of its final checkpoint and the
    /// votes above it.
    pub fn shared_votes(&self) -> Vec<Vote> {
        self.state()
            .journal
            .finality()
            .map(|f| f.shared())
            .unwrap_or_default()
    }

    /// The highest final checkpoint (`None`: no finality without network parameters).
    pub fn finalized(&self) -> Option<Checkpoint> {
        self.state().journal.finalized()
    }

    /// Counts again after a block arrived (votes may name it), and keeps new evidence.
    pub(super) fn recount(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
    ) -> Result<(), NodeError> {
        self.keep_evidence(&mut state)?;
        let (events, moved) = state.journal.recount()?;
        self.settle(state, events, moved)
    }

    /// What follows a count: the certificate kept, a moved chain's orphans replayed and its
    /// blocks published, then the new final checkpoint published.
    fn settle(
        &self,
        mut state: std::sync::MutexGuard<'_, State>,
        events: Vec<FinalityEvent>,
        moved: Option<Added>,
    ) -> Result<(), NodeError> {
        let finalized = events.iter().rev().find_map(|e| match e {
            FinalityEvent::Finalized(c) => Some(*c),
            FinalityEvent::Justified(_) => None,
        });
        if finalized.is_some() {
            if let Some(finality) = state.journal.finality() {
                self.store
                    .put_finality_certificate(finality.certificate())?;
            }
        }
        let mut joined = vec![];
        if let Some(Added::Reorganized {
            orphans,
            ancestor,
            old_tip,
        }) = moved
        {
            info!(
                orphans = orphans.len(),
                "justification moved the chain to another branch"
            );
            let now = self.clock.instant();
            state.last_block_at = now;
            self.keep_orphans(&mut state, orphans, now)?;
            let unix = self.clock.unix();
            super::membership::requeue_abandoned(
                &mut state,
                &self.store,
                (old_tip, ancestor),
                unix,
            );
            joined = blocks::joined(&state, ancestor + 1, None)?;
        }
        drop(state);
        for (cid, block) in joined {
            self.emit(NodeEvent::ChainExtended { cid, block });
        }
        if let Some(checkpoint) = finalized {
            self.emit(NodeEvent::Finalized { checkpoint });
        }
        Ok(())
    }
}
