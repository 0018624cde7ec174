//! Rebuilding the index from nothing but the newest block's CID and the datastore: walk the
//! parent links back to genesis, then replay every block's entries in order (blocks in the local
//! store were verified when they were accepted). Progress is reported as blocks are applied.

use super::block::Block;
use super::index::{delta_of, Index};
use super::ledger::JournalError;
use super::objects::Objects;
use crate::model::{nil_cid, Cid};

/// Progress of a rebuild.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RebuildProgress {
    /// Blocks applied so far.
    pub blocks: u64,
    /// Blocks in the chain.
    pub total_blocks: u64,
    /// Entries applied so far.
    pub entries: u64,
}

/// Rebuilds `index` (which must be empty) for the chain ending at `tip`.
pub fn rebuild(
    index: &mut impl Index,
    objects: &impl Objects,
    tip: Cid,
    mut progress: impl FnMut(&RebuildProgress),
) -> Result<RebuildProgress, JournalError> {
    let load = |cid: &Cid| -> Result<Block, JournalError> {
        let bytes = objects
            .get_bytes(cid)
            .ok_or(JournalError::MissingBlock(*cid))?;
        Block::from_stored(&bytes).map_err(|_| JournalError::MissingBlock(*cid))
    };
    let mut chain = vec![];
    let mut cursor = tip;
    let nil = nil_cid();
    while cursor != nil {
        let block = load(&cursor)?;
        chain.push(cursor);
        cursor = block.chain;
    }
    chain.reverse();
    let mut report = RebuildProgress {
        total_blocks: chain.len() as u64,
        ..Default::default()
    };
    for cid in chain {
        let block = load(&cid)?;
        let txs = block.transactions.iter().map(|t| t.id()).collect();
        let delta = delta_of(index, cid, block.height, &block.entries, txs)?;
        index.apply(&delta)?;
        report.blocks += 1;
        report.entries += block.entries.len() as u64;
        progress(&report);
    }
    Ok(report)
}
