//! Orphaned transactions at a node (docs/consensus.md, "Nothing lost on reorganisation"):
//! transactions a reorganisation took off this node's chain wait in the mempool whatever its
//! fill and in the store across restarts, until a block of the chain
//! commits them or they are refused (they conflict, or left the transaction window: the client
//! then sees `rejected` with the reason and submits again). Never touches the network.

use std::time::Instant;

use tracing::info;

use super::{Node, NodeError, State};
use crate::journal::{IndexRead, Transaction, TxId};
use crate::store::Store;

/// Puts the orphans the store kept back into the mempool (those not committed meanwhile).
pub(super) fn restore(state: &mut State, store: &Store, now: Instant) -> Result<(), NodeError> {
    let mut done = vec![];
    for tx in store.orphans()? {
        let id = tx.id();
        if state.journal.index().tx_height(&id)?.is_some() {
            done.push(id);
        } else {
            state.orphans.insert(id);
            state.mempool.insert_orphan(id, tx, now);
        }
    }
    store.remove_orphans(done.iter())?;
    if !state.orphans.is_empty() {
        info!(
            orphans = state.orphans.len(),
            "orphaned transactions restored"
        );
    }
    Ok(())
}

impl Node {
    /// Keeps `txs`, orphaned by a reorganisation, durably and pending, the mempool full or not
    /// (they were on this node's chain, so they are bounded by what it held); those the chain
    /// holds again are skipped.
    pub(super) fn keep_orphans(
        &self,
        state: &mut State,
        txs: Vec<Transaction>,
        now: Instant,
    ) -> Result<(), NodeError> {
        let mut kept = Vec::with_capacity(txs.len());
        for tx in txs {
            let id = tx.id();
            if state.orphans.contains(&id) || state.journal.index().tx_height(&id)?.is_some() {
                continue;
            }
            kept.push(tx);
        }
        if kept.is_empty() {
            return Ok(());
        }
        self.store.put_orphans(&kept)?;
        for tx in kept {
            let id = tx.id();
            state.orphans.insert(id);
            state.mempool.insert_orphan(id, tx, now);
        }
        Ok(())
    }

    /// Forgets the orphans among `ids` (committed, or refused).
    pub(super) fn settle_orphans<'a>(
        &self,
        state: &mut State,
        ids: impl IntoIterator<Item = &'a TxId>,
    ) -> Result<(), NodeError> {
        if state.orphans.is_empty() {
            return Ok(());
        }
        let done: Vec<TxId> = ids
            .into_iter()
            .filter(|id| state.orphans.remove(id))
            .copied()
            .collect();
        if !done.is_empty() {
            self.store.remove_orphans(done.iter())?;
        }
        Ok(())
    }
}
