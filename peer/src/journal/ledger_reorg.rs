//! The journal's side of fork choice moving the chain: headers weighed again under a new
//! rotation, the index rolled back to the common ancestor and the heavier branch applied block
//! by block (restoring the old chain if the branch holds an invalid block), and the
//! transactions left off the canonical chain.

use std::collections::HashSet;

use tracing::{info, info_span, warn};

use super::{AddResult, Added, Journal, JournalError};
use crate::journal::fork::Schedule;
use crate::journal::index::Index;
use crate::journal::objects::Objects;
use crate::journal::transaction::Transaction;
use crate::model::Cid;

impl<I: Index, O: Objects> Journal<I, O> {
    /// Replaces the committer schedule (membership changed).
    ///
    /// Every known header is weighed again under the new rotation (fork choice must not depend
    /// on the rotation a peer happened to hold when each block arrived, or peers that learnt of
    /// each other in another order never agree), and the chain moves to the heaviest tip if that
    /// changed.
    pub fn set_schedule(&mut self, schedule: Schedule) -> AddResult {
        self.schedule = schedule;
        let mut order: Vec<(u64, Cid)> = self.headers.iter().map(|(c, h)| (h.height, *c)).collect();
        order.sort_by_key(|(height, cid)| (*height, cid.to_bytes()));
        for (height, cid) in order {
            if height == 0 {
                continue;
            }
            let Some(header) = self.headers.get(&cid).copied() else {
                continue;
            };
            let parent = self.headers.get(&header.parent).map_or(0, |p| p.weight);
            let weight = parent + self.schedule.weight(height, header.committer);
            if let Some(h) = self.headers.get_mut(&cid) {
                h.weight = weight;
            }
        }
        let (tip, _) = self.tip()?;
        let best = self
            .headers
            .keys()
            .filter_map(|cid| self.score(*cid))
            .max_by(|a, b| a.compare(b))
            .map(|score| score.cid);
        match best {
            Some(best) if best != tip => self.reorganize(best),
            _ => Ok(Ok(Added::Known)),
        }
    }

    /// Branch from the canonical chain to `tip`: the blocks not on the canonical chain, oldest
    /// first, and the height of the common ancestor.
    fn branch_to(&self, tip: Cid) -> Result<(Vec<Cid>, u64), JournalError> {
        let mut branch = vec![];
        let mut cursor = tip;
        loop {
            let header = self
                .headers
                .get(&cursor)
                .ok_or(JournalError::MissingBlock(cursor))?;
            if self.index.block_at(header.height)? == Some(cursor) {
                branch.reverse();
                return Ok((branch, header.height));
            }
            branch.push(cursor);
            cursor = header.parent;
        }
    }

    pub(super) fn reorganize(&mut self, new_tip: Cid) -> AddResult {
        let (old_tip, old_height) = self.tip()?;
        let (branch, ancestor) = self.branch_to(new_tip)?;
        let _span = info_span!("reorganize", %old_tip, %new_tip, ancestor).entered();
        let mut abandoned = vec![];
        for _ in ancestor..old_height {
            let delta = self.index.revert_tip()?;
            abandoned.push(delta.block);
        }
        abandoned.reverse();
        for (i, cid) in branch.iter().enumerate() {
            let block = self.load_block(cid)?;
            if let Err(reason) = self.apply_verified(*cid, &block)? {
                warn!(block = %cid, %reason, "branch holds an invalid block: staying on the old chain");
                for bad in &branch[i..] {
                    if reason.missing_object().is_none() {
                        self.invalid.insert(*bad);
                    }
                    self.headers.remove(bad);
                    self.forget_membership(bad);
                }
                for _ in 0..i {
                    self.index.revert_tip()?;
                }
                for old in &abandoned {
                    let block = self.load_block(old)?;
                    if let Err(reason) = self.apply_verified(*old, &block)? {
                        return Err(JournalError::Genesis(format!(
                            "cannot restore block {old}: {reason}"
                        )));
                    }
                }
                return Ok(Err(reason));
            }
        }
        let mut orphans = vec![];
        for cid in &abandoned {
            for tx in self.load_block(cid)?.transactions {
                if self.index.tx_height(&tx.id())?.is_none() {
                    orphans.push(tx);
                }
            }
        }
        info!(
            abandoned = abandoned.len(),
            applied = branch.len(),
            orphans = orphans.len(),
            "chain reorganised"
        );
        Ok(Ok(Added::Reorganized {
            old_tip,
            ancestor,
            orphans,
        }))
    }

    /// Transactions in known blocks off the canonical chain that the chain has not committed,
    /// oldest first (by timestamp, then id): what partition healing replays.
    pub fn side_transactions(&self) -> Result<Vec<Transaction>, JournalError> {
        let mut seen = HashSet::new();
        let mut out = vec![];
        for (cid, header) in &self.headers {
            if self.index.block_at(header.height)? == Some(*cid) {
                continue;
            }
            for tx in self.load_block(cid)?.transactions {
                let id = tx.id();
                if self.index.tx_height(&id)?.is_none() && seen.insert(id) {
                    out.push(tx);
                }
            }
        }
        out.sort_by_key(|tx| (tx.body.timestamp, tx.id()));
        Ok(out)
    }
}
