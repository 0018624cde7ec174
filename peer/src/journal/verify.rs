//! Verification rules (DESIGN section 3): what makes a transaction or a block acceptable.
//!
//! Stateless checks (certificates, signatures, proof of work, sizes) live here; the checks that
//! depend on the index are part of the derivation in `merge`. Certificate chains are verified in
//! two parts: signatures and structure once per distinct chain (cached), validity windows and
//! revocations at the time of use (cheap), so the cache never changes an answer.

use std::collections::{HashMap, HashSet};

use sha2::{Digest, Sha256};

use super::block::Block;
use super::fork::Schedule;
use super::timing::{check_slot, CommitTiming};
use super::transaction::{Transaction, TxId};
use crate::model::{Cid, JournalEntry};
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{pow, CertError, Certificate, Chain, Level, PowError, PublicKey, RevocationSet};

mod batch;
pub use batch::Prepared;

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

/// Why a transaction is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxRejection {
    /// The client's signature does not verify.
    #[error("client signature is invalid")]
    BadSignature,
    /// The client's certificate chain is not an acceptable Level-2 chain.
    #[error("client certificate: {0}")]
    Certificate(#[from] CertError),
    /// The certificate is for another key than the signer.
    #[error("certificate is for {certified}, but the transaction is signed by {client}")]
    CertificateMismatch {
        /// Certified key.
        certified: PublicKey,
        /// Signing key.
        client: PublicKey,
    },
    /// Missing or insufficient proof of work.
    #[error("proof of work: {0}")]
    ProofOfWork(#[from] PowError),
    /// No entries.
    #[error("transaction has no entries")]
    Empty,
    /// Over the entry limit.
    #[error("transaction has {count} entries, the limit is {limit}")]
    TooManyEntries {
        /// Entries.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// Clients may not journal merges.
    #[error("clients may not submit chainMerge entries")]
    ClientMerge,
    /// Timestamped too far in the future.
    #[error("transaction timestamp {timestamp} is ahead of {now}")]
    FromTheFuture {
        /// The transaction's timestamp.
        timestamp: UnixSeconds,
        /// The reference time.
        now: UnixSeconds,
    },
    /// Timestamped too long before its block (or the clock at admission): submit it again.
    #[error("transaction timestamp {timestamp} is more than {window} s before {now}: expired")]
    Expired {
        /// The transaction's timestamp.
        timestamp: UnixSeconds,
        /// The reference time.
        now: UnixSeconds,
        /// The window.
        window: UnixSeconds,
    },
    /// Already committed.
    #[error("transaction {0} is already committed")]
    Duplicate(TxId),
    /// The peer cannot take more transactions right now (retry later).
    #[error("the peer's transaction queue is full; retry later")]
    Busy,
    /// A referenced object is not in the datastore.
    #[error("object {0} is not in the datastore")]
    UnknownObject(Cid),
    /// `insert` of something that is not an entity or artefact.
    #[error("{0} is not an entity or artefact")]
    NotAPrincipal(Cid),
    /// `insert` of a canonical already in the index (admission only; commits collapse these).
    #[error("{0} is already in the index")]
    AlreadyInserted(Cid),
    /// `update` of a canonical not in the index.
    #[error("{0} has not been inserted")]
    NotInserted(Cid),
    /// `update` whose `chain` is not a cell of that canonical on top of `chainPrevious`.
    #[error("{0}")]
    BadCell(Box<BadCell>),
    /// `update` on a head that is not current (admission only; commits merge these).
    #[error("update of {} is based on {}, but the head is {}", .0.reference, .0.previous, .0.head)]
    StaleHead(Box<StaleHead>),
}

/// Details of [`TxRejection::BadCell`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("update cell {cell} does not extend {reference} from {previous}: {detail}")]
pub struct BadCell {
    /// The cell.
    pub cell: Cid,
    /// The canonical.
    pub reference: Cid,
    /// The claimed previous head.
    pub previous: Cid,
    /// What is wrong.
    pub detail: String,
}

/// Details of [`TxRejection::StaleHead`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleHead {
    /// The canonical.
    pub reference: Cid,
    /// The claimed previous head.
    pub previous: Cid,
    /// The current head.
    pub head: Cid,
}

impl TxRejection {
    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            TxRejection::BadSignature => "bad_signature",
            TxRejection::Certificate(_) | TxRejection::CertificateMismatch { .. } => "certificate",
            TxRejection::ProofOfWork(_) => "proof_of_work",
            TxRejection::Empty | TxRejection::TooManyEntries { .. } | TxRejection::ClientMerge => {
                "malformed"
            }
            TxRejection::FromTheFuture { .. } | TxRejection::Expired { .. } => "timestamp",
            TxRejection::Duplicate(_) => "duplicate",
            TxRejection::Busy => "busy",
            TxRejection::UnknownObject(_) => "unknown_object",
            _ => "invalid_entry",
        }
    }
}

/// Why a block is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockRejection {
    /// The bytes are not a block.
    #[error("malformed block: {0}")]
    Malformed(String),
    /// Not a block of this network.
    #[error("block belongs to network `{0}`")]
    WrongNetwork(String),
    /// The parent is unknown (fetch it first).
    #[error("parent block {0} is unknown")]
    UnknownParent(Cid),
    /// The parent was found invalid.
    #[error("parent block {0} is invalid")]
    InvalidParent(Cid),
    /// Height is not parent + 1.
    #[error("block height {found} should be {expected}")]
    WrongHeight {
        /// Expected height.
        expected: u64,
        /// Found height.
        found: u64,
    },
    /// Timestamp not after the parent's.
    #[error("block timestamp {timestamp_ms} ms is not after its parent's {parent_ms} ms")]
    TimeTravel {
        /// Block timestamp.
        timestamp_ms: UnixMillis,
        /// Parent timestamp.
        parent_ms: UnixMillis,
    },
    /// Timestamped further ahead of this receiver's clock than the allowed skew (it may be taken
    /// later; the sender is not to blame).
    #[error(
        "block timestamp {timestamp_ms} ms is too far ahead of this peer's clock ({now_ms} ms)"
    )]
    FromTheFuture {
        /// Block timestamp.
        timestamp_ms: UnixMillis,
        /// The receiver's clock.
        now_ms: UnixMillis,
    },
    /// The committer holds no seat at the block's height.
    #[error("{committer} holds no seat at height {height}")]
    NotAMember {
        /// The committer.
        committer: PublicKey,
        /// The block's height.
        height: u64,
    },
    /// An out-of-turn block timestamped before its back-off allowed.
    #[error("block of rank {rank} is timestamped {timestamp_ms} ms, before its slot at {earliest_ms} ms")]
    TooEarly {
        /// The committer's rank from the in-turn slot.
        rank: u64,
        /// Block timestamp.
        timestamp_ms: UnixMillis,
        /// The earliest its rank allows.
        earliest_ms: UnixMillis,
    },
    /// A genesis block other than the network's.
    #[error("genesis block {0} is not this network's genesis")]
    WrongGenesis(Cid),
    /// The committer is not an admitted peer.
    #[error("committer certificate: {0}")]
    Committer(CertError),
    /// Bad committer signature.
    #[error("committer signature is invalid")]
    BadSignature,
    /// Over the transaction limit.
    #[error("block has {count} transactions, the limit is {limit}")]
    TooManyTransactions {
        /// Transactions.
        count: usize,
        /// Limit.
        limit: usize,
    },
    /// Over the size limit.
    #[error("block is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// A transaction is invalid.
    #[error("transaction {index} ({id}): {reason}")]
    Transaction {
        /// Position in the block.
        index: usize,
        /// Its id.
        id: TxId,
        /// Why.
        reason: Box<TxRejection>,
    },
    /// The entries are not what the transactions produce.
    #[error("block entries differ from what its transactions produce (at entry {at})")]
    WrongEntries {
        /// First differing position.
        at: usize,
    },
    /// A membership record is refused.
    #[error("membership record {index}: {reason}")]
    Record {
        /// Position in the block.
        index: usize,
        /// Why.
        reason: super::membership::RecordRejection,
    },
    /// The finality certificate is refused.
    #[error("finality certificate: {0}")]
    Finality(super::certificate::CertificateRejection),
    /// The index could not be read.
    #[error("{0}")]
    Index(String),
}

impl BlockRejection {
    /// The object whose absence from this receiver's store refused the block, if that is why:
    /// the block is not invalid (once the object is fetched it may be taken).
    pub fn missing_object(&self) -> Option<Cid> {
        match self {
            BlockRejection::Transaction { reason, .. } => match **reason {
                TxRejection::UnknownObject(cid) => Some(cid),
                _ => None,
            },
            _ => None,
        }
    }

    /// A short label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            BlockRejection::WrongNetwork(_) | BlockRejection::WrongGenesis(_) => "wrong_network",
            BlockRejection::UnknownParent(_) => "unknown_parent",
            BlockRejection::InvalidParent(_) => "invalid_parent",
            BlockRejection::Malformed(_)
            | BlockRejection::WrongHeight { .. }
            | BlockRejection::TimeTravel { .. } => "malformed",
            BlockRejection::FromTheFuture { .. } => "from_the_future",
            BlockRejection::NotAMember { .. } => "not_a_member",
            BlockRejection::TooEarly { .. } => "too_early",
            BlockRejection::Committer(_) => "committer_certificate",
            BlockRejection::BadSignature => "bad_signature",
            BlockRejection::TooManyTransactions { .. } | BlockRejection::TooLarge { .. } => {
                "too_large"
            }
            BlockRejection::Transaction { .. } => "invalid_transaction",
            BlockRejection::WrongEntries { .. } => "wrong_entries",
            BlockRejection::Record { .. } => "invalid_record",
            BlockRejection::Finality(_) => "invalid_finality",
            BlockRejection::Index(_) => "storage",
        }
    }
}

/// Cache of verification results that depend only on the bytes checked: certificate chains
/// whose signatures and structure were verified, and transaction signatures found valid (a
/// transaction is checked at admission and again in every block that carries it). Shared by
/// threads: verification itself runs outside the locks. Bounded: each map is emptied when full.
#[derive(Debug, Default)]
pub struct ChainCache {
    verified: std::sync::RwLock<HashMap<[u8; 32], PublicKey>>,
    signatures: std::sync::RwLock<HashSet<[u8; 32]>>,
}

/// Entries each map of a [`ChainCache`] holds before it is emptied.
const CACHE_CAPACITY: usize = 100_000;

impl ChainCache {
    /// Forgets everything (the rules changed).
    pub fn clear(&self) {
        if let Ok(mut verified) = self.verified.write() {
            verified.clear();
        }
        if let Ok(mut signatures) = self.signatures.write() {
            signatures.clear();
        }
    }

    /// Whether `tx`'s signature over its body (canonical bytes `body`, id `id`) is valid,
    /// remembering valid ones (the key covers the body's hash, which names the signer, and the
    /// signature).
    fn transaction_signature_valid(&self, tx: &Transaction, id: &TxId, body: &[u8]) -> bool {
        let key = signature_key(id, &tx.signature);
        if self.signature_known(&key) {
            return true;
        }
        if !tx.signature_valid_over(body) {
            return false;
        }
        self.remember_signature(key);
        true
    }

    /// Whether the transaction signature under `key` ([`signature_key`]) was found valid.
    fn signature_known(&self, key: &[u8; 32]) -> bool {
        self.signatures.read().is_ok_and(|s| s.contains(key))
    }

    /// Remembers a transaction signature found valid.
    fn remember_signature(&self, key: [u8; 32]) {
        if let Ok(mut signatures) = self.signatures.write() {
            if signatures.len() >= CACHE_CAPACITY {
                signatures.clear();
            }
            signatures.insert(key);
        }
    }

    /// Verifies `chain` as a `level` chain at time `at`, reusing earlier signature checks.
    pub fn verify(
        &self,
        rules: &Rules,
        chain: &[Certificate],
        level: Level,
        at: UnixSeconds,
    ) -> Result<PublicKey, CertError> {
        let mut hasher = Sha256::new();
        hasher.update([level.number()]);
        // Every field of every certificate (fixed-width, so no two chains hash alike).
        for cert in chain {
            let b = &cert.body;
            hasher.update([b.level.number()]);
            hasher.update(b.subject.as_bytes());
            hasher.update(b.issuer.as_bytes());
            hasher.update(b.not_before.to_be_bytes());
            hasher.update(b.not_after.to_be_bytes());
            hasher.update((cert.signature.len() as u64).to_be_bytes());
            hasher.update(&cert.signature);
        }
        let key: [u8; 32] = hasher.finalize().into();
        let chain = Chain(chain.to_vec());
        let cached = self.verified.read().ok().and_then(|v| v.get(&key).copied());
        if let Some(subject) = cached {
            chain.verify_validity(&rules.revocations, at)?;
            return Ok(subject);
        }
        let subject = chain.verify(&rules.root, &rules.revocations, at, level)?;
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= CACHE_CAPACITY {
                verified.clear();
            }
            verified.insert(key, subject);
        }
        Ok(subject)
    }
}

/// The signature cache's key of a transaction: its id (the body's hash, which names the signer)
/// and its signature.
fn signature_key(id: &TxId, signature: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(id.0);
    hasher.update(signature);
    hasher.finalize().into()
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
