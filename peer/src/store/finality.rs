//! What finality keeps across restarts, in the store's `finality` tree: the certificate of the
//! highest final checkpoint (from which a restarted peer verifies finality again) and this
//! peer's last vote (so a restart never makes it vote twice at one height). Both are read back
//! as untrusted bytes: the certificate's votes are verified again, an unreadable entry is
//! treated as absent.

use super::{Store, StoreError};
use crate::journal::vote::Vote;

const TREE: &str = "finality";
const CERTIFICATE: &[u8] = b"certificate";
const LAST_VOTE: &[u8] = b"last-vote";

impl Store {
    fn finality_tree(&self) -> Result<sled::Tree, StoreError> {
        Ok(self.db.open_tree(TREE)?)
    }

    /// Keeps the votes that made the highest final checkpoint final (durable on return).
    pub fn put_finality_certificate(&self, votes: &[Vote]) -> Result<(), StoreError> {
        let bytes = serde_ipld_dagcbor::to_vec(votes).unwrap_or_default();
        self.finality_tree()?.insert(CERTIFICATE, bytes)?;
        self.db.flush()?;
        Ok(())
    }

    /// The votes kept by [`Store::put_finality_certificate`] (none if nothing readable is kept).
    pub fn finality_certificate(&self) -> Result<Vec<Vote>, StoreError> {
        let bytes = self.finality_tree()?.get(CERTIFICATE)?;
        Ok(bytes
            .and_then(|b| serde_ipld_dagcbor::from_slice(&b).ok())
            .unwrap_or_default())
    }

    /// Keeps this peer's last vote (durable on return, before the vote is sent).
    pub fn put_last_vote(&self, vote: &Vote) -> Result<(), StoreError> {
        self.finality_tree()?.insert(LAST_VOTE, vote.to_bytes())?;
        self.db.flush()?;
        Ok(())
    }

    /// This peer's last vote, if one is kept.
    pub fn last_vote(&self) -> Result<Option<Vote>, StoreError> {
        let bytes = self.finality_tree()?.get(LAST_VOTE)?;
        Ok(bytes.and_then(|b| Vote::from_bytes(&b).ok()))
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::vote::{Checkpoint, Vote};
    use crate::model::codec::dag_cbor_cid;
    use crate::store::Store;
    use crate::trust::SecretKey;

    #[test]
    fn the_certificate_and_last_vote_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let point = |h: u64| Checkpoint {
            height: h,
            cid: dag_cbor_cid(&h.to_be_bytes()),
        };
        let vote = Vote::sign(&key, "net", point(0), point(4));
        {
            let store = Store::open(dir.path(), 1024).unwrap();
            assert!(store.finality_certificate().unwrap().is_empty());
            assert_eq!(store.last_vote().unwrap(), None);
            store
                .put_finality_certificate(std::slice::from_ref(&vote))
                .unwrap();
            store.put_last_vote(&vote).unwrap();
        }
        let store = Store::open(dir.path(), 1024).unwrap();
        assert_eq!(store.finality_certificate().unwrap(), vec![vote.clone()]);
        assert_eq!(store.last_vote().unwrap(), Some(vote));
    }
}
