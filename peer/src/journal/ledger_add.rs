//! The journal's side of receiving blocks: the checks a block from anywhere passes before it is
//! stored, its header in the block tree (and the evidence of a committer's second block on one
//! parent), and the full verification and application of a block on the tip.

use std::time::Duration;

use tracing::{debug, info_span, warn};

use super::{AddResult, Added, Header, Journal, JournalError};
use crate::journal::block::Block;
use crate::journal::evidence::Equivocation;
use crate::journal::index::{delta_with, Index};
use crate::journal::merge::{derive, Derivation, Mode};
use crate::journal::objects::Objects;
use crate::journal::timing::check_not_ahead;
use crate::journal::verify::{check_block, BlockRejection};
use crate::model::Cid;
use crate::time::UnixMillis;

impl<I: Index, O: Objects> Journal<I, O> {
    /// Adds a block received from anywhere at `now_ms` on the receiver's clock: verifies it and
    /// updates the chain.
    pub fn add_block(&mut self, block: &Block, now_ms: UnixMillis) -> AddResult {
        self.add_encoded_block(block, &block.to_bytes(), now_ms)
    }

    /// [`Journal::add_block`] for a block whose canonical encoding is at hand (`bytes`, e.g.
    /// what [`Block::from_bytes`] decoded, which accepts only canonical encodings).
    pub fn add_encoded_block(
        &mut self,
        block: &Block,
        bytes: &[u8],
        now_ms: UnixMillis,
    ) -> AddResult {
        let cid = crate::model::codec::dag_cbor_cid(bytes);
        let _span = info_span!("add_block", %cid, height = block.height).entered();
        if self.headers.contains_key(&cid) {
            return Ok(Ok(Added::Known));
        }
        if block.is_genesis() {
            return Ok(Err(BlockRejection::WrongGenesis(cid)));
        }
        if self.invalid.contains(&cid) || self.invalid.contains(&block.chain) {
            return Ok(Err(BlockRejection::InvalidParent(block.chain)));
        }
        // Not stored, not marked invalid: the same block may be taken once the clock caught up.
        let skew = Duration::from_secs(self.rules.max_clock_skew);
        if let Err(reason) = check_not_ahead(block, now_ms, skew) {
            return Ok(Err(reason));
        }
        let Some(parent) = self.headers.get(&block.chain).copied() else {
            return Ok(Err(BlockRejection::UnknownParent(block.chain)));
        };
        let membership = match self.child_membership(&block.chain, block) {
            Some(Err(reason)) => {
                warn!(%reason, "block refused");
                return Ok(Err(reason));
            }
            Some(Ok(membership)) => Some(membership),
            None => None,
        };
        let schedule = membership
            .as_ref()
            .map_or_else(|| self.schedule.clone(), |m| m.seats().clone());
        if let Err(reason) = check_block(
            block,
            bytes,
            (parent.height, parent.timestamp_ms),
            &self.rules_after(&block.chain),
            &self.cache,
            &schedule,
        ) {
            warn!(%reason, "block refused");
            return Ok(Err(reason));
        }
        let (tip, _) = self.tip()?;
        self.store_block_bytes(&cid, bytes)?;
        if let Some(membership) = membership {
            self.remember_membership(cid, membership);
        }
        self.take_certificate_votes(block);
        if block.chain == tip {
            if let Err(reason) = self.apply_verified(cid, block)? {
                // A block refused for an object this store lacks may be taken once it arrives.
                if reason.missing_object().is_none() {
                    self.invalid.insert(cid);
                }
                self.forget_membership(&cid);
                return Ok(Err(reason));
            }
            return Ok(Ok(Added::Extended));
        }
        self.insert_header(cid, block, parent);
        if !self.prefer(cid, tip) {
            debug!("kept on a side branch");
            return Ok(Ok(Added::SideBranch));
        }
        self.reorganize(cid)
    }

    pub(super) fn insert_header(&mut self, cid: Cid, block: &Block, parent: Header) {
        if let Some(committer) = block.committer_key() {
            let first = *self.by_slot.entry((block.chain, committer)).or_insert(cid);
            if first != cid {
                let found = Equivocation {
                    culprit: committer,
                    height: block.height,
                    parent: block.chain,
                    blocks: [first, cid],
                };
                if self.evidence.record(found) {
                    warn!(culprit = %committer, height = block.height, first = %first, second = %cid,
                        "evidence: the committer signed two blocks on one parent");
                }
            }
        }
        let weight = parent.weight + self.weigh(&cid, block.height, block.committer_key());
        self.headers.insert(cid, Header::of(block, weight));
    }

    /// Verifies `block` (whose parent is the tip) against the index and applies it.
    pub(super) fn apply_verified(
        &mut self,
        cid: Cid,
        block: &Block,
    ) -> Result<Result<(), BlockRejection>, JournalError> {
        let derivation = derive(
            &self.index,
            &self.objects,
            &block.transactions,
            Mode::Commit,
        )?;
        if let Some((id, reason)) = derivation.rejected.first() {
            let index = block
                .transactions
                .iter()
                .position(|t| t.id() == *id)
                .unwrap_or(0);
            return Ok(Err(BlockRejection::Transaction {
                index,
                id: *id,
                reason: Box::new(reason.clone()),
            }));
        }
        if derivation.entries != block.entries {
            let at = derivation
                .entries
                .iter()
                .zip(&block.entries)
                .position(|(a, b)| a != b)
                .unwrap_or(derivation.entries.len().min(block.entries.len()));
            return Ok(Err(BlockRejection::WrongEntries { at }));
        }
        self.apply_derived(cid, block, derivation)?;
        Ok(Ok(()))
    }

    /// Applies a derived block whose bytes are already stored.
    pub(super) fn apply_derived(
        &mut self,
        cid: Cid,
        block: &Block,
        mut derivation: Derivation,
    ) -> Result<(), JournalError> {
        for link in &derivation.link_cells {
            self.objects
                .put_encoded(&link.cid, &link.bytes)
                .map_err(JournalError::Objects)?;
        }
        let txs = std::mem::take(&mut derivation.accepted_ids);
        let index = &self.index;
        let delta = delta_with(
            |canonical| derivation.head_before(index, canonical),
            cid,
            block.height,
            &block.entries,
            txs,
        )?;
        self.index.apply(&delta)?;
        if !self.headers.contains_key(&cid) {
            if let Some(parent) = self.headers.get(&block.chain).copied() {
                self.insert_header(cid, block, parent);
            }
        }
        Ok(())
    }
}
