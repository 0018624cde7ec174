//! Evidence of misbehaviour kept across restarts, in the store's `evidence` tree: one item per
//! culprit and kind (the first found), at most [`MAX_STORED_EVIDENCE`] items, so a hostile
//! network cannot grow it without bound. Each item is kept with the time it was found, so an
//! operator's tooling can tell new evidence from old ([`EvidenceSummary`]). Read back as
//! untrusted bytes (an unreadable item is skipped).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError};
use crate::journal::evidence::Evidence;
use crate::time::UnixSeconds;
use crate::trust::PublicKey;

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

/// An item as the store keeps it: the evidence and when this peer found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptEvidence {
    /// When this peer found it (Unix seconds, its clock).
    pub found_at: UnixSeconds,
    /// The evidence.
    pub evidence: Evidence,
}

/// What the evidence kept amounts to: counts and the newest item, for an operator's tooling to
/// notice new evidence cheaply (docs/peer-contract.md).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EvidenceSummary {
    /// Items kept (one per culprit and kind).
    pub items: usize,
    /// Distinct culprits.
    pub culprits: usize,
    /// The item found last (the lowest key among those found in the same second).
    pub newest: Option<KeptEvidence>,
}

impl Store {
    /// Keeps `item`, found at `found_at`, unless its culprit already has evidence of that kind
    /// or the tree is full; whether it was new (durable on return).
    pub fn put_evidence(&self, item: &Evidence, found_at: UnixSeconds) -> Result<bool, StoreError> {
        let tree = self.db.open_tree(TREE)?;
        let key = key(item);
        if tree.contains_key(&key)? || tree.len() >= MAX_STORED_EVIDENCE {
            return Ok(false);
        }
        let kept = KeptEvidence {
            found_at,
            evidence: item.clone(),
        };
        let bytes = serde_ipld_dagcbor::to_vec(&kept).unwrap_or_default();
        tree.insert(key, bytes)?;
        self.db.flush()?;
        Ok(true)
    }

    /// The evidence kept, by culprit, with when each was found.
    pub fn kept_evidence(&self) -> Result<Vec<KeptEvidence>, StoreError> {
        let mut out = vec![];
        for entry in self.db.open_tree(TREE)?.iter() {
            let (_, bytes) = entry?;
            if let Ok(item) = serde_ipld_dagcbor::from_slice(&bytes) {
                out.push(item);
            }
        }
        Ok(out)
    }

    /// The evidence kept, by culprit.
    pub fn evidence(&self) -> Result<Vec<Evidence>, StoreError> {
        Ok(self
            .kept_evidence()?
            .into_iter()
            .map(|kept| kept.evidence)
            .collect())
    }

    /// Counts and the newest item of the evidence kept.
    pub fn evidence_summary(&self) -> Result<EvidenceSummary, StoreError> {
        let kept = self.kept_evidence()?;
        let culprits: HashSet<PublicKey> = kept.iter().map(|k| k.evidence.culprit()).collect();
        let culprits = culprits.len();
        let items = kept.len();
        // Stable for items found in one second: the first in key order wins.
        let newest = kept.into_iter().rev().max_by_key(|k| k.found_at);
        Ok(EvidenceSummary {
            items,
            culprits,
            newest,
        })
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
            assert_eq!(store.evidence_summary().unwrap(), Default::default());
            assert!(store.put_evidence(&votes(b"b"), 100).unwrap());
            assert!(
                !store.put_evidence(&votes(b"c"), 300).unwrap(),
                "one per culprit and kind"
            );
            assert!(store.put_evidence(&blocks, 200).unwrap());
        }
        let store = Store::open(dir.path(), 1024).unwrap();
        let kept = store.evidence().unwrap();
        assert_eq!(kept.len(), 2);
        assert!(kept.contains(&votes(b"b")) && kept.contains(&blocks));
        let summary = store.evidence_summary().unwrap();
        assert_eq!((summary.items, summary.culprits), (2, 1));
        let newest = summary.newest.unwrap();
        assert_eq!((newest.found_at, newest.evidence), (200, blocks));
    }
}
