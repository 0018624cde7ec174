//! Orphaned transactions kept across restarts, in the store's `orphans` tree: transactions a
//! reorganisation took off the chain, kept until a block of the chain commits them again or
//! they are refused (they conflict, or their timestamp left the transaction window). Bounded by
//! what blocks held. Read back as untrusted bytes (an unreadable entry is skipped).

use super::{Store, StoreError};
use crate::journal::{Transaction, TxId};

const TREE: &str = "orphans";

impl Store {
    /// Keeps `txs` (durable on return).
    pub fn put_orphans(&self, txs: &[Transaction]) -> Result<(), StoreError> {
        let tree = self.db.open_tree(TREE)?;
        let mut batch = sled::Batch::default();
        for tx in txs {
            batch.insert(tx.id().0.to_vec(), tx.to_bytes());
        }
        tree.apply_batch(batch)?;
        self.db.flush()?;
        Ok(())
    }

    /// Forgets the orphans `ids` (committed again, or refused). Not flushed: after a crash a
    /// forgotten orphan comes back as pending and is dropped again when found committed.
    pub fn remove_orphans<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a TxId>,
    ) -> Result<(), StoreError> {
        let tree = self.db.open_tree(TREE)?;
        let mut batch = sled::Batch::default();
        for id in ids {
            batch.remove(id.0.to_vec());
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    /// The orphans kept.
    pub fn orphans(&self) -> Result<Vec<Transaction>, StoreError> {
        let mut out = vec![];
        for entry in self.db.open_tree(TREE)?.iter() {
            let (_, bytes) = entry?;
            if let Ok(tx) = Transaction::from_bytes(&bytes) {
                out.push(tx);
            }
        }
        Ok(out)
    }
}
