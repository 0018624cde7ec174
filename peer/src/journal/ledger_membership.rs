//! The journal's side of membership on the chain (docs/consensus.md, "Members and seats"): the
//! [`Membership`] after every known block, computed from its parent's and its records; the
//! seats that check and weigh each block (a change waits for a block's finality certificate to
//! record its block final); the rules (with the chain's revocations) its
//! certificates are checked under. Without network parameters the rotation is each node's view
//! of its peers and blocks may carry no records.

use std::borrow::Cow;
use std::sync::Arc;

use tracing::debug;

use super::{Journal, JournalError};
use crate::journal::block::Block;
use crate::journal::certificate::{self, CertificateRejection};
use crate::journal::fork::Schedule;
use crate::journal::index::Index;
use crate::journal::membership::{Membership, Record, RecordRejection};
use crate::journal::objects::Objects;
use crate::journal::verify::{BlockRejection, Rules};
use crate::model::Cid;
use crate::time::UnixSeconds;
use crate::trust::{CertError, Certificate, PublicKey};

impl<I: Index, O: Objects> Journal<I, O> {
    /// The membership after the block `cid` (`None`: unknown block, or no network parameters).
    pub fn membership_after(&self, cid: &Cid) -> Option<Arc<Membership>> {
        self.book.as_ref()?.get(cid).cloned()
    }

    /// The membership after the tip (`None` without network parameters).
    pub fn membership(&self) -> Option<Arc<Membership>> {
        let (tip, _) = self.tip().ok()?;
        self.membership_after(&tip)
    }

    /// The seats of the block at `height` on the block `parent`: its parent's membership with
    /// the changes due by `height` in force.
    fn seats_on(&self, parent: &Cid, height: u64) -> Option<Schedule> {
        let m = self.membership_after(parent)?;
        Some(if m.changes_at(height) {
            m.advanced(height).seats().clone()
        } else {
            m.seats().clone()
        })
    }

    /// The rotation of the next block on the tip: under network parameters the seats the chain
    /// defines there, otherwise each node's view of its peers.
    pub fn schedule(&self) -> Schedule {
        let seats = self
            .tip()
            .ok()
            .and_then(|(tip, height)| self.seats_on(&tip, height + 1));
        seats.unwrap_or_else(|| self.schedule.clone())
    }

    /// The seats that produced the block `cid` (and vote on it when it is a checkpoint).
    pub fn seats_of(&self, cid: &Cid) -> Option<Schedule> {
        self.membership_after(cid).map(|m| m.seats().clone())
    }

    /// The weight of the block `cid` at `height` by `committer`, under the seats of its own
    /// membership (or the node's rotation without parameters).
    pub(super) fn weigh(&self, cid: &Cid, height: u64, committer: Option<PublicKey>) -> u64 {
        match self.membership_after(cid) {
            Some(m) => m.seats().weight(height, committer),
            None => self.schedule.weight(height, committer),
        }
    }

    /// The membership after `block`, a child of `parent`, its records checked (`None` without
    /// network parameters; a block carrying records then is refused).
    pub(super) fn child_membership(
        &self,
        parent: &Cid,
        block: &Block,
    ) -> Option<Result<Membership, BlockRejection>> {
        let Some(book) = &self.book else {
            if !block.finality.is_empty() {
                let reason = CertificateRejection::NoMembership;
                return Some(Err(BlockRejection::Finality(reason)));
            }
            return (!block.records.is_empty()).then_some(Err(BlockRejection::Record {
                index: 0,
                reason: RecordRejection::NoMembership,
            }));
        };
        let parent = book.get(parent)?;
        let mut next = if parent.changes_at(block.height) {
            parent.advanced(block.height)
        } else {
            Membership::clone(parent)
        };
        if let Err((index, reason)) = next.take_block(
            &block.records,
            block.height,
            block.time(),
            &self.rules.revocations,
        ) {
            return Some(Err(BlockRejection::Record { index, reason }));
        }
        let recorded = certificate::check(
            &block.finality,
            &self.rules.network,
            next.epoch(),
            next.recorded_final(),
            &self.chain_view(),
            &block.chain,
        );
        match recorded {
            Ok(Some(checkpoint)) => next.record_finality(checkpoint.height, block.height),
            Ok(None) => {}
            Err(reason) => return Some(Err(BlockRejection::Finality(reason))),
        }
        Some(Ok(next))
    }

    /// Records the membership after `block` (stored, verified when it was taken) on restart.
    pub(super) fn replay_membership(&mut self, cid: Cid, block: &Block) {
        let Some(book) = &self.book else { return };
        let Some(parent) = book.get(&block.chain) else {
            return;
        };
        let mut next = if parent.changes_at(block.height) {
            parent.advanced(block.height)
        } else {
            Membership::clone(parent)
        };
        for record in &block.records {
            next.record(record, block.height, block.time());
        }
        if let Some(vote) = block.finality.first() {
            next.record_finality(vote.source.height, block.height);
        }
        self.remember_membership(cid, next);
    }

    /// Keeps the membership after the block `cid`; its seats may vote.
    pub(super) fn remember_membership(&mut self, cid: Cid, membership: Membership) {
        if let Some(finality) = self.finality.as_mut() {
            finality.admit_voters(membership.seats().peers());
        }
        if let Some(book) = self.book.as_mut() {
            book.insert(cid, Arc::new(membership));
        }
    }

    /// Forgets the membership after a block found invalid.
    pub(super) fn forget_membership(&mut self, cid: &Cid) {
        if let Some(book) = self.book.as_mut() {
            book.remove(cid);
        }
    }

    /// The rules a child of `parent` is checked under: with the revocations recorded on the
    /// chain up to `parent`.
    pub(super) fn rules_after(&self, parent: &Cid) -> Cow<'_, Rules> {
        match self.membership_after(parent) {
            Some(m) if !m.revocations().is_empty() => {
                let mut rules = self.rules.clone();
                rules.revocations.extend(m.revocations());
                Cow::Owned(rules)
            }
            _ => Cow::Borrowed(&self.rules),
        }
    }

    /// The rules with the revocations recorded on the chain up to the tip: what a peer's
    /// certificate is checked under when it connects or gossips its identity record, so a peer
    /// revoked on the chain is refused there too (docs/consensus.md, "Revocation").
    pub fn rules_at_tip(&self) -> Rules {
        match self.tip() {
            Ok((tip, _)) => self.rules_after(&tip).into_owned(),
            Err(_) => self.rules.clone(),
        }
    }

    /// Those of `records` that hold, in order, for the block at `height` on `parent`
    /// timestamped `at` (the others are left out).
    pub(super) fn records_for(
        &self,
        parent: &Cid,
        height: u64,
        at: UnixSeconds,
        records: Vec<Record>,
    ) -> Vec<Record> {
        let Some(m) = self.membership_after(parent) else {
            return vec![];
        };
        let mut scratch = Membership::clone(&m);
        let mut out = vec![];
        for record in records {
            if out.len() == crate::journal::membership::MAX_RECORDS_PER_BLOCK {
                break;
            }
            match scratch.check(&record, at, &self.rules.revocations) {
                Ok(()) => {
                    scratch.record(&record, height, at);
                    out.push(record);
                }
                Err(reason) => debug!(%reason, "membership record left out"),
            }
        }
        out
    }

    /// Whether `record` would be taken in the next block on the tip at `at`.
    pub fn check_record(&self, record: &Record, at: UnixSeconds) -> Result<(), RecordRejection> {
        match self.membership() {
            Some(m) => m.check(record, at, &self.rules.revocations),
            None => Err(RecordRejection::NoMembership),
        }
    }

    /// Whether a certificate of `chain` is revoked on the chain up to the block `cid`.
    pub fn revoked_after(&self, cid: &Cid, chain: &[Certificate]) -> bool {
        self.membership_after(cid)
            .is_some_and(|m| m.revoked_in(chain).is_some())
    }

    /// A certificate of `chain` revoked on the chain at the tip, if any.
    pub(super) fn revoked_on_tip(
        &self,
        chain: &[Certificate],
    ) -> Result<Option<CertError>, JournalError> {
        let (tip, _) = self.tip()?;
        Ok(self
            .membership_after(&tip)
            .and_then(|m| m.revoked_in(chain)))
    }
}
