//! Evidence of misbehaviour kept across restarts, in the store's `evidence` tree: one item per
//! culprit and kind (the first found), at most [`MAX_STORED_EVIDENCE`] items, so a hostile
//! network cannot grow it without bound. Read back as untrusted bytes (an unreadable item is
//! skipped).

use super::{Store, StoreError};
use crate::journal::evidence::Evidence;

const TREE: &str = "evidence";
/// Most evidence items kept.
pub const MAX_STORED_EVIDENCE: usize = 4096;

fn key(item: &Evidence) -> Vec<u8> {
    let kind: u8 = match item {
        Evidence::DoubleBlock { .. } => 0,
        Evidence::ConflictingVotes { .. } => 1,
    };
    let mut key = item.culprit().as_bytes().to_vec();
    key.push(kind);
    key
}

impl Store {
    /// Keeps `item` unless its culprit already has evidence of that kind or the tree is full;
    /// whether it was new (durable on return).
    pub fn put_evidence(&self, item: &Evidence) -> Result<bool, StoreError> {
        let tree = self.db.open_tree(TREE)?;
        let key = key(item);
        if tree.contains_key(&key)? || tree.len() >= MAX_STORED_EVIDENCE {
            return Ok(false);
        }
        let bytes = serde_ipld_dagcbor::to_vec(item).unwrap_or_default();
        tree.insert(key, bytes)?;
        self.db.flush()?;
        Ok(true)
    }

    /// The evidence kept, by culprit.
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        let mut out = vec![];
        for entry in self.db.open_tree(TREE)?.iter() {
            let (_, bytes) = entry?;
            if let Ok(item) = serde_ipld_dagcbor::from_slice(&bytes) {
                out.push(item);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use crate::journal::evidence::Evidence;
    use crate::journal::vote::{Checkpoint, Vote};
    use crate::model::codec::dag_cbor_cid;
    use crate::store::Store;
    use crate::trust::SecretKey;

    #[test]
    fn evidence_is_kept_once_per_culprit_and_kind_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let key = SecretKey::generate();
        let point = |h: u64, name: &[u8]| Checkpoint {
            height: h,
            cid: dag_cbor_cid(name),
        };
        let votes = |t: &[u8]| Evidence::ConflictingVotes {
            culprit: key.public(),
            votes: Box::new([
                Vote::sign(&key, "net", point(0, b"g"), point(4, b"a")),
                Vote::sign(&key, "net", point(0, b"g"), point(4, t)),
            ]),
        };
        let blocks = Evidence::DoubleBlock {
            culprit: key.public(),
            height: 3,
            parent: dag_cbor_cid(b"p"),
            blocks: [dag_cbor_cid(b"x"), dag_cbor_cid(b"y")],
        };
        {
            let store = Store::open(dir.path(), 1024).unwrap();
            assert!(store.put_evidence(&votes(b"b")).unwrap());
            assert!(
                !store.put_evidence(&votes(b"c")).unwrap(),
                "one per culprit and kind"
            );
            assert!(store.put_evidence(&blocks).unwrap());
        }
        let store = Store::open(dir.path(), 1024).unwrap();
        let kept = store.evidence().unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.contains(&votes(b"b")) && kept.contains(&blocks));
    }
}
