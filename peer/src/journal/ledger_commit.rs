//! The journal's side of making blocks: admission of a client's transaction against the tip,
//! and the committer's next block built from candidates, signed and applied.

use super::{Journal, JournalError};
use crate::journal::block::Block;
use crate::journal::index::Index;
use crate::journal::membership::Record;
use crate::journal::merge::{derive, Mode};
use crate::journal::objects::Objects;
use crate::journal::transaction::{Transaction, TxId};
use crate::journal::verify::{check_transaction, TxRejection};
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{Chain, PublicKey, SecretKey};

impl<I: Index, O: Objects> Journal<I, O> {
    /// Checks a transaction for admission: stateless rules at `now`, then the DESIGN entry rules
    /// against the current index (no merging).
    pub fn admit(
        &mut self,
        tx: &Transaction,
        now: UnixSeconds,
    ) -> Result<Result<(), TxRejection>, JournalError> {
        if let Err(reason) = check_transaction(tx, &self.rules, &self.cache, now) {
            return Ok(Err(reason));
        }
        self.admit_checked(tx)
    }

    /// The index-dependent half of [`Journal::admit`], for a transaction whose stateless checks
    /// (`verify::check_transaction`) the caller already ran.
    pub fn admit_checked(&self, tx: &Transaction) -> Result<Result<(), TxRejection>, JournalError> {
        if let Some(revoked) = self.revoked_on_tip(&tx.certificate)? {
            return Ok(Err(TxRejection::Certificate(revoked)));
        }
        let derivation = derive(
            &self.index,
            &self.objects,
            std::slice::from_ref(tx),
            Mode::Admission,
        )?;
        Ok(match derivation.rejected.into_iter().next() {
            Some((_, reason)) => Err(reason),
            None => Ok(()),
        })
    }

    /// The earliest timestamp (ms) `committer` may give the next block on the tip: under the
    /// network's commit timing its slot after the tip's timestamp (`None`: it holds no seat),
    /// otherwise just after the tip's.
    pub fn earliest_commit(
        &self,
        committer: &PublicKey,
    ) -> Result<Option<UnixMillis>, JournalError> {
        let (tip, height) = self.tip()?;
        let parent_ms = self.headers.get(&tip).map_or(0, |h| h.timestamp_ms);
        Ok(match &self.rules.timing {
            Some(timing) => timing.earliest(&self.schedule(), height + 1, committer, parent_ms),
            None => Some(parent_ms + 1),
        })
    }

    /// Builds and signs the next block from `candidates` (invalid or duplicate ones are left
    /// out and returned with their reason; those that do not fit the block size are neither
    /// included nor rejected: the caller keeps them for the next block), applies it, and
    /// returns it. The block is timestamped `timestamp_ms`, or just after its parent if that is
    /// later.
    pub fn commit(
        &mut self,
        committer: (&SecretKey, &Chain),
        candidates: Vec<Transaction>,
        timestamp_ms: UnixMillis,
    ) -> Result<(Block, Vec<(TxId, TxRejection)>), JournalError> {
        self.commit_with_records(committer, candidates, vec![], timestamp_ms)
    }

    /// [`Journal::commit`] of a block that also carries those of the membership `records`
    /// that hold on the tip (the others are left out), and this node's finality certificate
    /// when the tip's chain does not record its final checkpoint yet.
    pub fn commit_with_records(
        &mut self,
        committer: (&SecretKey, &Chain),
        candidates: Vec<Transaction>,
        records: Vec<Record>,
        timestamp_ms: UnixMillis,
    ) -> Result<(Block, Vec<(TxId, TxRejection)>), JournalError> {
        let (tip, height) = self.tip()?;
        let parent_ms = self.headers.get(&tip).map_or(0, |h| h.timestamp_ms);
        let timestamp_ms = timestamp_ms.max(parent_ms + 1);
        let timestamp: UnixSeconds = timestamp_ms / 1000;
        let records = self.records_for(&tip, height + 1, timestamp, records);
        let finality = self.certificate_for(&tip);
        let rules = self.rules_after(&tip);
        let mut rejected = vec![];
        let mut valid = Vec::with_capacity(candidates.len());
        let budget = self.rules.tx_budget();
        let mut used = 0;
        for tx in candidates.into_iter().take(self.rules.max_txs_per_block) {
            let size = tx.to_bytes().len();
            if used + size > budget {
                break; // the rest waits for the next block
            }
            match check_transaction(&tx, &rules, &self.cache, timestamp) {
                Ok(()) => {
                    used += size;
                    valid.push(tx);
                }
                Err(reason) => rejected.push((tx.id(), reason)),
            }
        }
        let (block, derivation) = loop {
            let derivation = derive(&self.index, &self.objects, &valid, Mode::Commit)?;
            let block = Block::commit_with_records(
                (tip, height),
                &self.rules.network,
                timestamp_ms,
                committer,
                (records.clone(), finality.clone()),
                derivation
                    .accepted
                    .iter()
                    .filter_map(|&at| valid.get(at).cloned())
                    .collect(),
                derivation.entries.clone(),
            );
            if block.to_bytes().len() <= self.rules.max_block_bytes || valid.len() <= 1 {
                break (block, derivation);
            }
            valid.truncate(valid.len() / 2);
        };
        rejected.extend(derivation.rejected.iter().cloned());
        let cid = self.store_block(&block)?;
        if let Some(Ok(membership)) = self.child_membership(&tip, &block) {
            self.remember_membership(cid, membership);
        }
        self.apply_derived(cid, &block, derivation)?;
        Ok((block, rejected))
    }
}
