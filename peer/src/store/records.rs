//! Membership records waiting for a block, kept across restarts in the store's `records` tree
//! (docs/consensus.md, "Members and seats"): a revocation or join a peer accepted (from the API,
//! a peer's identity record, or a branch a reorganisation abandoned) survives a crash before a
//! block carries it. Keyed by the SHA-256 of the record's bytes; bounded by the node's queue
//! (`node::membership::MAX_PENDING_RECORDS`). Read back as untrusted bytes (an unreadable entry
//! is skipped).

use sha2::{Digest, Sha256};

use super::{Store, StoreError};
use crate::journal::membership::Record;

const TREE: &str = "records";

fn key(record: &Record) -> Vec<u8> {
    Sha256::digest(record.to_bytes()).to_vec()
}

impl Store {
    /// Keeps `record` (durable on return).
    pub fn put_record(&self, record: &Record) -> Result<(), StoreError> {
        self.db
            .open_tree(TREE)?
            .insert(key(record), record.to_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// Forgets `record` (a block carries it, or it no longer holds). Not flushed: after a crash
    /// it comes back, is checked against the tip and dropped again.
    pub fn remove_record(&self, record: &Record) -> Result<(), StoreError> {
        self.db.open_tree(TREE)?.remove(key(record))?;
        Ok(())
    }

    /// The records kept.
    pub fn records(&self) -> Result<Vec<Record>, StoreError> {
        let mut out = vec![];
        for entry in self.db.open_tree(TREE)?.iter() {
            let (_, bytes) = entry?;
            if let Ok(record) = Record::from_bytes(&bytes) {
                out.push(record);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trust::{Revocation, RevocationList, SecretKey};

    #[test]
    fn a_kept_record_survives_a_reopen_until_it_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = SecretKey::generate();
        let revocation = Revocation {
            subject: SecretKey::generate().public(),
            revoked_at: 10,
            reason: "test".into(),
        };
        let record = Record::Revoke(RevocationList::empty(&root, 10).with(&root, revocation, 10));
        {
            let store = Store::open(dir.path(), 1 << 20).unwrap();
            store.put_record(&record).unwrap();
        }
        let store = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(store.records().unwrap(), vec![record.clone()]);
        store.remove_record(&record).unwrap();
        assert!(store.records().unwrap().is_empty());
    }
}
