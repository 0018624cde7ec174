//! The index: canonical -> current chain head, plus what the canonical chain has journaled
//! (cells and transaction ids) and the block at every height.
//!
//! Every block changes the index by one [`Delta`], applied atomically and kept as the block's undo
//! record so a reorganisation can roll back to a common ancestor. [`MemIndex`] is the in-memory
//! implementation used by the pure protocol tests; the sled one lives in `store`.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::transaction::TxId;
use crate::model::{nil_cid, Cid, JournalEntry};

/// A head change of one canonical.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadChange {
    /// The canonical.
    pub canonical: Cid,
    /// Its head before the block (`None`: not yet inserted).
    pub before: Option<Cid>,
    /// Its head after the block.
    pub after: Cid,
}

/// What one block changes in the index (and how to undo it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The block.
    pub block: Cid,
    /// Its height.
    pub height: u64,
    /// Head changes, in entry order (a canonical may appear more than once).
    pub heads: Vec<HeadChange>,
    /// Cells journaled by the block (update heads, merged orphan heads and link cells).
    pub cells: Vec<Cid>,
    /// Transactions the block committed.
    pub txs: Vec<TxId>,
}

/// Why the index could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The storage engine failed.
    #[error("index storage error: {0}")]
    Storage(String),
    /// A delta does not fit the index (a bug or corrupted storage).
    #[error("index is inconsistent: {0}")]
    Inconsistent(String),
}

/// Read access to the index.
pub trait IndexRead {
    /// The current head of `canonical` (`None`: not inserted).
    fn head(&self, canonical: &Cid) -> Result<Option<Cid>, IndexError>;
    /// Whether the canonical chain has journaled `cell`.
    fn cell_journaled(&self, cell: &Cid) -> Result<bool, IndexError>;
    /// The height of the block that committed `tx` on the canonical chain.
    fn tx_height(&self, tx: &TxId) -> Result<Option<u64>, IndexError>;
    /// The canonical chain's block at `height`.
    fn block_at(&self, height: u64) -> Result<Option<Cid>, IndexError>;
    /// The tip: newest block of the canonical chain and its height.
    fn tip(&self) -> Result<Option<(Cid, u64)>, IndexError>;
}

/// Write access: whole blocks at a time.
pub trait Index: IndexRead {
    /// Applies a block's delta atomically on top of the tip and keeps it as undo record.
    fn apply(&mut self, delta: &Delta) -> Result<(), IndexError>;
    /// Rolls back the tip block; returns its delta. The tip becomes its parent.
    fn revert_tip(&mut self) -> Result<Delta, IndexError>;
    /// Number of canonicals in the index.
    fn canonical_count(&self) -> Result<u64, IndexError>;
}

/// Computes the delta of `entries` (a block's) against `index`, committing `txs`.
pub fn delta_of(
    index: &impl IndexRead,
    block: Cid,
    height: u64,
    entries: &[JournalEntry],
    txs: Vec<TxId>,
) -> Result<Delta, IndexError> {
    delta_with(
        |canonical| index.head(canonical),
        block,
        height,
        entries,
        txs,
    )
}

/// [`delta_of`] with the heads before the block given by `head_before` (e.g. what a
/// derivation already read of the index, so the index is not read twice).
pub fn delta_with(
    mut head_before: impl FnMut(&Cid) -> Result<Option<Cid>, IndexError>,
    block: Cid,
    height: u64,
    entries: &[JournalEntry],
    txs: Vec<TxId>,
) -> Result<Delta, IndexError> {
    let mut heads: Vec<HeadChange> = Vec::with_capacity(entries.len());
    let mut pending: HashMap<Cid, Cid> = HashMap::new();
    let mut cells = Vec::new();
    for entry in entries {
        let canonical = entry.reference();
        let before = match pending.get(&canonical) {
            Some(head) => Some(*head),
            None => head_before(&canonical)?,
        };
        let after = match *entry {
            JournalEntry::Insert { .. } => nil_cid(),
            JournalEntry::Update { chain, .. } => {
                cells.push(chain);
                chain
            }
            JournalEntry::ChainMerge {
                chain, chain_merge, ..
            } => {
                cells.push(chain_merge);
                cells.push(chain);
                chain
            }
        };
        pending.insert(canonical, after);
        heads.push(HeadChange {
            canonical,
            before,
            after,
        });
    }
    Ok(Delta {
        block,
        height,
        heads,
        cells,
        txs,
    })
}

/// The in-memory index.
#[derive(Debug, Clone, Default)]
pub struct MemIndex {
    heads: HashMap<Cid, Cid>,
    cells: HashSet<Cid>,
    txs: HashMap<TxId, u64>,
    chain: Vec<Delta>,
}

impl MemIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every canonical with its head (for comparing replicas).
    pub fn heads(&self) -> &HashMap<Cid, Cid> {
        &self.heads
    }
}

impl IndexRead for MemIndex {
    fn head(&self, canonical: &Cid) -> Result<Option<Cid>, IndexError> {
        Ok(self.heads.get(canonical).copied())
    }
    fn cell_journaled(&self, cell: &Cid) -> Result<bool, IndexError> {
        Ok(self.cells.contains(cell))
    }
    fn tx_height(&self, tx: &TxId) -> Result<Option<u64>, IndexError> {
        Ok(self.txs.get(tx).copied())
    }
    fn block_at(&self, height: u64) -> Result<Option<Cid>, IndexError> {
        Ok(usize::try_from(height)
            .ok()
            .and_then(|h| self.chain.get(h))
            .map(|d| d.block))
    }
    fn tip(&self) -> Result<Option<(Cid, u64)>, IndexError> {
        Ok(self.chain.last().map(|d| (d.block, d.height)))
    }
}

impl Index for MemIndex {
    fn apply(&mut self, delta: &Delta) -> Result<(), IndexError> {
        if delta.height != self.chain.len() as u64 {
            return Err(IndexError::Inconsistent(format!(
                "block at height {} applied on a chain of {} blocks",
                delta.height,
                self.chain.len()
            )));
        }
        for change in &delta.heads {
            self.heads.insert(change.canonical, change.after);
        }
        self.cells.extend(delta.cells.iter().copied());
        for tx in &delta.txs {
            self.txs.insert(*tx, delta.height);
        }
        self.chain.push(delta.clone());
        Ok(())
    }

    fn revert_tip(&mut self) -> Result<Delta, IndexError> {
        let delta = self
            .chain
            .pop()
            .ok_or_else(|| IndexError::Inconsistent("revert on an empty chain".into()))?;
        for change in delta.heads.iter().rev() {
            match change.before {
                Some(before) => self.heads.insert(change.canonical, before),
                None => self.heads.remove(&change.canonical),
            };
        }
        for cell in &delta.cells {
            self.cells.remove(cell);
        }
        for tx in &delta.txs {
            self.txs.remove(tx);
        }
        Ok(delta)
    }

    fn canonical_count(&self) -> Result<u64, IndexError> {
        Ok(self.heads.len() as u64)
    }
}
