//! The journal index persisted in sled: every block's delta is written in one atomic batch
//! (heads, journaled cells, transaction ids, the block at its height, the undo record and the
//! tip), and flushed before `apply` returns, so a crash leaves the index at a block boundary.

use sled::{Batch, Db, Tree};

use super::StoreError;
use crate::journal::index::{Delta, Index, IndexError, IndexRead};
use crate::journal::TxId;
use crate::model::Cid;

const HEAD: u8 = b'h';
const CELL: u8 = b'c';
const TX: u8 = b't';
const BLOCK: u8 = b'b';
const DELTA: u8 = b'd';
const TIP: &[u8] = b"m:tip";
const COUNT: &[u8] = b"m:canonicals";

/// The sled-backed index.
#[derive(Clone)]
pub struct SledIndex {
    db: Db,
    tree: Tree,
}

fn key(prefix: u8, bytes: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + bytes.len());
    k.push(prefix);
    k.extend_from_slice(bytes);
    k
}

fn storage(e: impl std::fmt::Display) -> IndexError {
    IndexError::Storage(e.to_string())
}

fn cid_from(bytes: &[u8]) -> Result<Cid, IndexError> {
    Cid::try_from(bytes).map_err(|_| IndexError::Inconsistent("stored value is not a CID".into()))
}

fn u64_from(bytes: &[u8]) -> Result<u64, IndexError> {
    let array: [u8; 8] = bytes
        .try_into()
        .map_err(|_| IndexError::Inconsistent("stored value is not a u64".into()))?;
    Ok(u64::from_be_bytes(array))
}

impl SledIndex {
    pub(super) fn open(db: Db) -> Result<Self, StoreError> {
        let tree = db.open_tree("index")?;
        Ok(Self { db, tree })
    }

    fn count(&self) -> Result<u64, IndexError> {
        match self.tree.get(COUNT).map_err(storage)? {
            Some(v) => u64_from(&v),
            None => Ok(0),
        }
    }

    /// Every canonical with its head, in key order (for comparing replicas).
    pub fn heads(&self) -> Result<Vec<(Cid, Cid)>, IndexError> {
        self.tree
            .scan_prefix([HEAD])
            .map(|entry| {
                let (k, v) = entry.map_err(storage)?;
                Ok((cid_from(&k[1..])?, cid_from(&v)?))
            })
            .collect()
    }

    /// Removes everything (before a rebuild).
    pub fn clear(&self) -> Result<(), IndexError> {
        self.tree.clear().map_err(storage)?;
        self.db.flush().map_err(storage)?;
        Ok(())
    }
}

impl IndexRead for SledIndex {
    fn head(&self, canonical: &Cid) -> Result<Option<Cid>, IndexError> {
        self.tree
            .get(key(HEAD, &canonical.to_bytes()))
            .map_err(storage)?
            .map(|v| cid_from(&v))
            .transpose()
    }
    fn cell_journaled(&self, cell: &Cid) -> Result<bool, IndexError> {
        self.tree
            .contains_key(key(CELL, &cell.to_bytes()))
            .map_err(storage)
    }
    fn tx_height(&self, tx: &TxId) -> Result<Option<u64>, IndexError> {
        self.tree
            .get(key(TX, &tx.0))
            .map_err(storage)?
            .map(|v| u64_from(&v))
            .transpose()
    }
    fn block_at(&self, height: u64) -> Result<Option<Cid>, IndexError> {
        self.tree
            .get(key(BLOCK, &height.to_be_bytes()))
            .map_err(storage)?
            .map(|v| cid_from(&v))
            .transpose()
    }
    fn tip(&self) -> Result<Option<(Cid, u64)>, IndexError> {
        let Some(v) = self.tree.get(TIP).map_err(storage)? else {
            return Ok(None);
        };
        let (height, cid) = v.split_at(8);
        Ok(Some((cid_from(cid)?, u64_from(height)?)))
    }
}

fn tip_value(cid: &Cid, height: u64) -> Vec<u8> {
    let mut v = height.to_be_bytes().to_vec();
    v.extend_from_slice(&cid.to_bytes());
    v
}

impl Index for SledIndex {
    fn apply(&mut self, delta: &Delta) -> Result<(), IndexError> {
        let expected = match self.tip()? {
            Some((_, h)) => h + 1,
            None => 0,
        };
        if delta.height != expected {
            return Err(IndexError::Inconsistent(format!(
                "block at height {} applied on a chain whose next height is {expected}",
                delta.height
            )));
        }
        let mut batch = Batch::default();
        let mut added = 0u64;
        for change in &delta.heads {
            if change.before.is_none() {
                added += 1;
            }
            batch.insert(
                key(HEAD, &change.canonical.to_bytes()),
                change.after.to_bytes(),
            );
        }
        for cell in &delta.cells {
            batch.insert(key(CELL, &cell.to_bytes()), &[][..]);
        }
        let height = delta.height.to_be_bytes();
        for tx in &delta.txs {
            batch.insert(key(TX, &tx.0), &height[..]);
        }
        batch.insert(key(BLOCK, &height), delta.block.to_bytes());
        let undo = serde_ipld_dagcbor::to_vec(delta).map_err(storage)?;
        batch.insert(key(DELTA, &height), undo);
        batch.insert(TIP, tip_value(&delta.block, delta.height));
        batch.insert(COUNT, &(self.count()? + added).to_be_bytes()[..]);
        self.tree.apply_batch(batch).map_err(storage)?;
        self.db.flush().map_err(storage)?;
        Ok(())
    }

    fn revert_tip(&mut self) -> Result<Delta, IndexError> {
        let (_, height) = self
            .tip()?
            .ok_or_else(|| IndexError::Inconsistent("revert on an empty chain".into()))?;
        let h = height.to_be_bytes();
        let undo = self
            .tree
            .get(key(DELTA, &h))
            .map_err(storage)?
            .ok_or_else(|| {
                IndexError::Inconsistent(format!("no undo record for height {height}"))
            })?;
        let delta: Delta = serde_ipld_dagcbor::from_slice(&undo).map_err(storage)?;
        let mut batch = Batch::default();
        let mut removed = 0u64;
        for change in delta.heads.iter().rev() {
            let k = key(HEAD, &change.canonical.to_bytes());
            match change.before {
                Some(before) => batch.insert(k, before.to_bytes()),
                None => {
                    removed += 1;
                    batch.remove(k)
                }
            }
        }
        for cell in &delta.cells {
            batch.remove(key(CELL, &cell.to_bytes()));
        }
        for tx in &delta.txs {
            batch.remove(key(TX, &tx.0));
        }
        batch.remove(key(BLOCK, &h));
        batch.remove(key(DELTA, &h));
        if height == 0 {
            batch.remove(TIP);
        } else {
            let parent = self
                .block_at(height - 1)?
                .ok_or_else(|| IndexError::Inconsistent("missing parent".into()))?;
            batch.insert(TIP, tip_value(&parent, height - 1));
        }
        batch.insert(
            COUNT,
            &self.count()?.saturating_sub(removed).to_be_bytes()[..],
        );
        self.tree.apply_batch(batch).map_err(storage)?;
        self.db.flush().map_err(storage)?;
        Ok(delta)
    }

    fn canonical_count(&self) -> Result<u64, IndexError> {
        self.count()
    }
}
