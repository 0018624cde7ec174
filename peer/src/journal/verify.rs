//! Verification rules (DESIGN section 3): what makes a transaction or a block acceptable.
//!
//! Stateless checks (certificates, signatures, proof of work, sizes) live here; the checks that
//! depend on the index are part of the derivation in `merge`. Certificate chains are verified in
//! two parts: signatures and structure once per distinct chain (cached), validity windows and
//! revocations at the time of use (cheap), so the cache never changes an answer.

use super::block::Block;
use super::fork::Schedule;
use super::timing::{check_slot, CommitTiming};
use super::transaction::Transaction;
use crate::model::JournalEntry;
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{pow, Level, PublicKey, RevocationSet};

mod batch;
mod cache;
mod rejection;
pub use batch::Prepared;
pub use cache::ChainCache;
pub use rejection::{BadCell, BlockRejection, StaleHead, TxRejection};

/// The network's verification parameters.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Network name (blocks of other networks are refused).
    pub network: String,
    /// The pinned root key.
    pub root: PublicKey,
    /// Known revocations.
    pub revocations: RevocationSet,
    /// Required proof-of-work bits per transaction.
    pub tx_pow_bits: u8,
    /// Most entries in one transaction.
    pub max_entries_per_tx: usize,
    /// Most transactions in one block.
    pub max_txs_per_block: usize,
    /// How far a transaction's timestamp may be ahead of its block's (or of the clock at
    /// admission), and a block's timestamp ahead of its receiver's clock.
    pub max_clock_skew: UnixSeconds,
    /// How far a transaction's timestamp may lie before its block's (or the clock at admission).
    pub transaction_window: UnixSeconds,
    /// Under network parameters: the commit timing every receiver enforces, with seats that are
    /// a function of the chain. `None`: the development mode, where the rotation is each node's
    /// view of its admitted peers and neither seats nor back-off are checked.
    pub timing: Option<CommitTiming>,
    /// Largest encoded block (it must also fit the datastore's object limit).
    pub max_block_bytes: usize,
}

impl Rules {
    /// Rules with the usual limits.
    pub fn new(network: &str, root: PublicKey, tx_pow_bits: u8) -> Self {
        Self {
            network: network.into(),
            root,
            revocations: RevocationSet::new(root),
            tx_pow_bits,
            max_entries_per_tx: 64,
            max_txs_per_block: 10_000,
            max_clock_skew: 15,
            transaction_window: 600,
            timing: None,
            max_block_bytes: 1024 * 1024,
        }
    }

    /// Bytes of transactions a committer puts in one block: three quarters of the block
    /// limit (the entries they produce and the header take the rest).
    pub fn tx_budget(&self) -> usize {
        self.max_block_bytes / 4 * 3
    }
}

/// Stateless checks of a transaction: shape, a timestamp within the window around `now` (a
/// block's time, or the clock at admission), the client certificate valid at `now` (so
/// backdating cannot bypass revocation or expiry), signature and proof of work.
pub fn check_transaction(
    tx: &Transaction,
    rules: &Rules,
    cache: &ChainCache,
    now: UnixSeconds,
) -> Result<(), TxRejection> {
    check_prepared(&Prepared::new(tx), rules, cache, now)
}

/// [`check_transaction`] of a transaction whose body was encoded and id derived already.
fn check_prepared(
    prepared: &Prepared<'_>,
    rules: &Rules,
    cache: &ChainCache,
    now: UnixSeconds,
) -> Result<(), TxRejection> {
    let Prepared { tx, body, id } = prepared;
    let entries = &tx.body.entries;
    if entries.is_empty() {
        return Err(TxRejection::Empty);
    }
    if entries.len() > rules.max_entries_per_tx {
        return Err(TxRejection::TooManyEntries {
            count: entries.len(),
            limit: rules.max_entries_per_tx,
        });
    }
    if entries
        .iter()
        .any(|e| matches!(e, JournalEntry::ChainMerge { .. }))
    {
        return Err(TxRejection::ClientMerge);
    }
    if tx.body.timestamp > now.saturating_add(rules.max_clock_skew) {
        return Err(TxRejection::FromTheFuture {
            timestamp: tx.body.timestamp,
            now,
        });
    }
    if tx.body.timestamp < now.saturating_sub(rules.transaction_window) {
        return Err(TxRejection::Expired {
            timestamp: tx.body.timestamp,
            now,
            window: rules.transaction_window,
        });
    }
    pow::verify(&tx.pow, pow::Purpose::Transaction, &id.0, rules.tx_pow_bits)?;
    let certified = cache.verify(rules, &tx.certificate, Level::Client, now)?;
    if certified != tx.body.client {
        return Err(TxRejection::CertificateMismatch {
            certified,
            client: tx.body.client,
        });
    }
    if !cache.transaction_signature_valid(tx, id, body) {
        return Err(TxRejection::BadSignature);
    }
    Ok(())
}

/// Checks of a non-genesis block against its parent's height and timestamp (ms) and the seats
/// at its height (`schedule`, enforced when the rules carry the network's commit timing).
/// `bytes` is the block's canonical encoding (its size is bounded, its signature checked over it).
pub fn check_block(
    block: &Block,
    bytes: &[u8],
    parent: (u64, UnixMillis),
    rules: &Rules,
    cache: &ChainCache,
    schedule: &Schedule,
) -> Result<(), BlockRejection> {
    if block.network != rules.network {
        return Err(BlockRejection::WrongNetwork(block.network.clone()));
    }
    if block.parameters.is_some() {
        return Err(BlockRejection::Malformed(
            "only the genesis block carries network parameters".into(),
        ));
    }
    if block.height != parent.0 + 1 {
        return Err(BlockRejection::WrongHeight {
            expected: parent.0 + 1,
            found: block.height,
        });
    }
    if block.timestamp_ms <= parent.1 {
        return Err(BlockRejection::TimeTravel {
            timestamp_ms: block.timestamp_ms,
            parent_ms: parent.1,
        });
    }
    cache
        .verify(rules, &block.committer, Level::Peer, block.time())
        .map_err(BlockRejection::Committer)?;
    if !block.signature_valid_encoded(bytes) {
        return Err(BlockRejection::BadSignature);
    }
    if let Some(timing) = &rules.timing {
        check_slot(block, parent.1, schedule, timing)?;
    }
    if block.transactions.len() > rules.max_txs_per_block {
        return Err(BlockRejection::TooManyTransactions {
            count: block.transactions.len(),
            limit: rules.max_txs_per_block,
        });
    }
    if bytes.len() > rules.max_block_bytes {
        return Err(BlockRejection::TooLarge {
            size: bytes.len(),
            limit: rules.max_block_bytes,
        });
    }
    // The signatures not yet known valid (a block mostly carries transactions its receiver
    // admitted already) are checked as one batch; the loop below then finds them cached and
    // checks alone only those the batch did not vouch for, so it names the culprit.
    // Each body is encoded and its id derived once for both.
    let prepared: Vec<Prepared<'_>> = block.transactions.iter().map(Prepared::new).collect();
    cache.preverify_prepared(&prepared, rules.tx_pow_bits);
    for (index, tx) in prepared.iter().enumerate() {
        check_prepared(tx, rules, cache, block.time()).map_err(|reason| {
            BlockRejection::Transaction {
                index,
                id: tx.id,
                reason: Box::new(reason),
            }
        })?;
    }
    Ok(())
}
