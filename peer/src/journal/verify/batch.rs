//! Transaction signatures checked as a batch (a block's transactions, a gossiped batch): one
//! batch equation for all of them instead of one verification each, under the same rule as
//! single verification (ZIP-215, `trust::keys`), so the verdicts never depend on the batching.

use super::cache::signature_key;
use super::ChainCache;
use crate::journal::transaction::{Transaction, TxId, TX_CONTEXT};
use crate::trust::keys::{verify_batch, SignatureCheck};
use crate::trust::pow;

/// A transaction with its body's canonical encoding and its id, derived once for every check
/// that needs them.
#[derive(Debug)]
pub struct Prepared<'a> {
    /// The transaction.
    pub tx: &'a Transaction,
    /// Its body's canonical encoding (what the client signed).
    pub body: Vec<u8>,
    /// Its id (the hash of `body`).
    pub id: TxId,
}

impl<'a> Prepared<'a> {
    /// Encodes `tx`'s body and derives its id.
    pub fn new(tx: &'a Transaction) -> Self {
        let body = tx.body.to_bytes();
        let id = TxId::of_body_bytes(&body);
        Self { tx, body, id }
    }
}

impl ChainCache {
    /// Checks the client signatures of `txs` not yet known to be valid as one batch and
    /// remembers the valid ones, so that `check_transaction` then finds each cached; an invalid
    /// signature is not remembered, and `check_transaction` refuses that transaction alone. A
    /// transaction whose proof of work (at `pow_bits`) fails is left out: the work is what makes
    /// a signature check cost its sender. Returns how many signatures were checked.
    pub fn preverify_signatures<'a>(
        &self,
        txs: impl IntoIterator<Item = &'a Transaction>,
        pow_bits: u8,
    ) -> usize {
        let prepared: Vec<Prepared<'_>> = txs.into_iter().map(Prepared::new).collect();
        self.preverify_prepared(&prepared, pow_bits)
    }

    /// [`Self::preverify_signatures`] of transactions prepared already.
    pub fn preverify_prepared(&self, txs: &[Prepared<'_>], pow_bits: u8) -> usize {
        let mut pending = vec![];
        for Prepared { tx, body, id } in txs {
            let Ok(signature) = <[u8; 64]>::try_from(tx.signature.as_slice()) else {
                continue;
            };
            let key = signature_key(id, &tx.signature);
            if self.signature_known(&key)
                || pow::verify(&tx.pow, pow::Purpose::Transaction, &id.0, pow_bits).is_err()
            {
                continue;
            }
            pending.push((key, tx.body.client, body, signature));
        }
        let checks: Vec<SignatureCheck<'_>> = pending
            .iter()
            .map(|(_, client, body, signature)| SignatureCheck {
                key: *client,
                context: TX_CONTEXT,
                message: body,
                signature,
            })
            .collect();
        let verdicts = verify_batch(&checks);
        for ((key, ..), valid) in pending.iter().zip(verdicts) {
            if valid {
                self.remember_signature(*key);
            }
        }
        pending.len()
    }
}
