//! Transactions at a node: a client's submission, a peer's gossiped batch, admission into the
//! mempool and the status a client may ask for. Never touches the network.

use std::sync::Arc;

use serde_bytes::ByteBuf;
use tracing::{info_span, warn};

use super::{remember_rejection, Node, NodeError, TxBundle, TxStatus};
use crate::journal::verify::check_transaction;
use crate::journal::{IndexRead, Transaction, TxId, TxRejection};
use crate::model::{Cid, JournalEntry, Object};

impl Node {
    /// Objects the entries of `tx` reference that are in the store.
    pub fn referenced_objects(&self, tx: &Transaction) -> Vec<(Cid, ByteBuf)> {
        let mut cids = vec![];
        for entry in &tx.body.entries {
            match *entry {
                JournalEntry::Insert { reference, .. } => cids.push(reference),
                JournalEntry::Update {
                    reference, chain, ..
                }
                | JournalEntry::ChainMerge {
                    reference, chain, ..
                } => {
                    cids.push(reference);
                    cids.push(chain);
                    if let Some(Object::Cell(cell)) = self.store.get_object(&chain).ok().flatten() {
                        cids.extend(cell.kind.links());
                    }
                }
            }
        }
        cids.sort_by_key(|c| c.to_bytes());
        cids.dedup();
        cids.into_iter()
            .filter_map(|c| {
                self.store
                    .get(&c)
                    .ok()
                    .flatten()
                    .map(|b| (c, ByteBuf::from(b)))
            })
            .collect()
    }

    /// Admits a client's transaction: verifies it and queues it. Returns it with the objects
    /// it references, for the overlay to gossip.
    pub fn submit(&self, tx: Transaction) -> Result<Result<Arc<TxBundle>, TxRejection>, NodeError> {
        let id = tx.id();
        let _span = info_span!("submit", tx = %id).entered();
        Ok(match self.admit(tx.clone())? {
            Ok(_) => {
                let objects = self.referenced_objects(&tx);
                Ok(Arc::new(TxBundle { tx, objects }))
            }
            Err(reason) => Err(reason),
        })
    }

    /// Takes transactions gossiped by a peer (with their objects, stored with one flush).
    pub fn receive_txs(
        &self,
        bundles: Vec<TxBundle>,
    ) -> Vec<Result<Result<TxId, TxRejection>, NodeError>> {
        let mut stored = Vec::with_capacity(bundles.len());
        for bundle in bundles {
            let invalid = bundle.objects.iter().find_map(|(cid, bytes)| {
                let outcome = self.store.put_unflushed(cid, bytes);
                outcome.err().map(|e| (*cid, e))
            });
            stored.push((bundle.tx, invalid));
        }
        if let Err(e) = self.store.flush() {
            return vec![Err(NodeError::from(e))];
        }
        stored
            .into_iter()
            .map(|(tx, invalid)| match invalid {
                Some((cid, e)) => {
                    warn!(%cid, error = %e, "peer sent an invalid object");
                    Ok(Err(TxRejection::UnknownObject(cid)))
                }
                None => self.admit(tx),
            })
            .collect()
    }

    fn admit(&self, tx: Transaction) -> Result<Result<TxId, TxRejection>, NodeError> {
        let id = tx.id();
        // The expensive, stateless checks run concurrently, outside the state lock.
        let stateless = match self.admission.read() {
            Ok(rules) => check_transaction(&tx, &rules, &self.admission_cache, self.clock.unix()),
            Err(_) => Ok(()), // a poisoned snapshot: the journal's own check below still runs
        };
        let mut state = self.state();
        if let Err(reason) = stateless {
            remember_rejection(&mut state, id, &reason);
            return Ok(Err(reason));
        }
        if state.mempool.contains(&id) {
            return Ok(Ok(id));
        }
        if state.journal.index().tx_height(&id)?.is_some() {
            return Ok(Err(TxRejection::Duplicate(id)));
        }
        let outcome = match self.admission.read() {
            Ok(_) => state.journal.admit_checked(&tx)?,
            Err(_) => state.journal.admit(&tx, self.clock.unix())?,
        };
        match outcome {
            Ok(()) => {
                if !state.mempool.insert(id, tx, self.clock.instant()) {
                    return Ok(Err(TxRejection::Busy));
                }
                Ok(Ok(id))
            }
            Err(reason) => {
                remember_rejection(&mut state, id, &reason);
                Ok(Err(reason))
            }
        }
    }

    /// Where a transaction stands.
    pub fn tx_status(&self, id: &TxId) -> Result<TxStatus, NodeError> {
        let state = self.state();
        if let Some(height) = state.journal.index().tx_height(id)? {
            let block = state
                .journal
                .index()
                .block_at(height)?
                .map(|c| c.to_string())
                .unwrap_or_default();
            return Ok(TxStatus::Committed { height, block });
        }
        if state.mempool.contains(id) {
            return Ok(TxStatus::Pending);
        }
        Ok(match state.rejected.get(id) {
            Some(reason) => TxStatus::Rejected {
                reason: reason.clone(),
            },
            None => TxStatus::Unknown,
        })
    }
}
