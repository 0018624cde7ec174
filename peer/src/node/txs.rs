//! Transactions at a node: a client's submission, a peer's gossiped batch, admission into the
//! mempool and the status a client may ask for. Never touches the network.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use serde_bytes::ByteBuf;
use tracing::{info_span, warn};

use super::{remember_rejection, Node, NodeError, TxBundle, TxStatus};
use crate::journal::verify::check_transaction;
use crate::journal::{IndexRead, Transaction, TxId, TxRejection};
use crate::model::{Cid, JournalEntry, Object};
use crate::store::Store;

/// The objects `bundle`'s transaction references (those its entries name and those they link
/// to), each named object read from the bundle, else from the store, and decoded once.
fn bundled_references(store: &Store, bundle: &TxBundle) -> Vec<Cid> {
    let carried: HashMap<&Cid, &[u8]> = bundle
        .objects
        .iter()
        .map(|(cid, bytes)| (cid, bytes.as_ref()))
        .collect();
    super::uploads::references_in(&bundle.tx.body.entries, |cid| match carried.get(cid) {
        Some(bytes) => Some(Cow::Borrowed(*bytes)),
        None => store.get(cid).ok().flatten().map(Cow::Owned),
    })
}

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

    /// Takes transactions gossiped by a peer. A transaction's objects are stored only once its
    /// own checks (signature, certificate, proof of work) passed, and only those it references
    /// (its entries' objects and what they link to); all of them with one flush.
    pub fn receive_txs(
        &self,
        bundles: Vec<TxBundle>,
    ) -> Vec<Result<Result<TxId, TxRejection>, NodeError>> {
        let mut checked = Vec::with_capacity(bundles.len());
        self.preverify_signatures(bundles.iter().map(|b| &b.tx));
        for bundle in bundles {
            // What the transaction references, worked out once: the objects to store and the
            // uploads to keep fresh.
            let mut references = vec![];
            let verdict = self.stateless(&bundle.tx).and_then(|()| {
                references = bundled_references(&self.store, &bundle);
                let wanted: HashSet<&Cid> = references.iter().collect();
                let invalid = bundle
                    .objects
                    .iter()
                    .filter(|(cid, _)| wanted.contains(cid))
                    .find_map(|(cid, bytes)| {
                        let outcome = self.store.put_unflushed(cid, bytes);
                        outcome.err().map(|e| (*cid, e))
                    });
                match invalid {
                    Some((cid, e)) => {
                        warn!(%cid, error = %e, "peer sent an invalid object");
                        Err(TxRejection::UnknownObject(cid))
                    }
                    None => Ok(()),
                }
            });
            checked.push((bundle.tx, verdict, references));
        }
        if let Err(e) = self.store.flush() {
            return vec![Err(NodeError::from(e))];
        }
        checked
            .into_iter()
            .map(|(tx, verdict, references)| match verdict {
                // A bad object: the transaction is not judged (another peer may send it right).
                Err(reason @ TxRejection::UnknownObject(_)) => Ok(Err(reason)),
                Err(reason) => self.admit_checked(tx, Err(reason)),
                Ok(()) => {
                    self.touch_references(&references)?;
                    self.admit_checked(tx, Ok(()))
                }
            })
            .collect()
    }

    /// Checks the client signatures of `txs` as one batch, filling the verification cache so
    /// that each transaction's own checks find its signature (only warms the cache: the verdict
    /// stays `check_transaction`'s, and a bad signature is found there, alone).
    pub(super) fn preverify_signatures<'a>(&self, txs: impl IntoIterator<Item = &'a Transaction>) {
        if let Ok(rules) = self.admission.read() {
            self.admission_cache
                .preverify_signatures(txs, rules.tx_pow_bits);
        }
    }

    /// The checks of a transaction that need no state: signature, certificate, proof of work.
    fn stateless(&self, tx: &Transaction) -> Result<(), TxRejection> {
        match self.admission.read() {
            Ok(rules) => check_transaction(tx, &rules, &self.admission_cache, self.clock.unix()),
            Err(_) => Ok(()), // a poisoned snapshot: the journal's own check below still runs
        }
    }

    fn admit(&self, tx: Transaction) -> Result<Result<TxId, TxRejection>, NodeError> {
        self.touch_uploads(&tx.body.entries)?;
        // The expensive, stateless checks run concurrently, outside the state lock.
        let stateless = self.stateless(&tx);
        self.admit_checked(tx, stateless)
    }

    /// Admits `tx` whose stateless checks gave `stateless`.
    fn admit_checked(
        &self,
        tx: Transaction,
        stateless: Result<(), TxRejection>,
    ) -> Result<Result<TxId, TxRejection>, NodeError> {
        let id = tx.id();
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
            // Fork choice never leaves the final checkpoint: below it the chain is final.
            if state
                .journal
                .finalized()
                .is_some_and(|f| f.height >= height)
            {
                return Ok(TxStatus::Final { height, block });
            }
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
