//! What the peers of a fleet report, for the multi-process tests' waits: one head on every
//! peer, transactions committed or final at each.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use mediachain::journal::TxId;

use super::fleet::Fleet;

/// Whether the given peers report one head (CID and height).
pub async fn same_head(fleet: &Fleet, peers: &[usize]) -> bool {
    let mut heads = HashSet::new();
    for &i in peers {
        match fleet.peers[i].client().head().await {
            Ok(h) => heads.insert((h.cid, h.height)),
            Err(_) => return false,
        };
    }
    heads.len() == 1
}

/// Whether each of `ids` is committed (or final) at each of `peers`.
pub async fn committed_at(fleet: &Fleet, peers: &[usize], ids: &[TxId]) -> bool {
    for &i in peers {
        let client = fleet.peers[i].client();
        for id in ids {
            if !client.status(id).await.is_ok_and(|s| s.is_committed()) {
                return false;
            }
        }
    }
    true
}

/// Whether each of `ids` is final at each of `peers`.
pub async fn final_at(fleet: &Fleet, peers: &[usize], ids: &[TxId]) -> bool {
    for &i in peers {
        let client = fleet.peers[i].client();
        for id in ids {
            if !client.status(id).await.is_ok_and(|s| s.is_final()) {
                return false;
            }
        }
    }
    true
}
