//! Why a transaction or a block is refused: the typed reasons every check returns, and the
//! metrics label of each.

use crate::journal::transaction::TxId;
use crate::model::Cid;
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{CertError, PowError, PublicKey};

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
        reason: crate::journal::membership::RecordRejection,
    },
    /// The finality certificate is refused.
    #[error("finality certificate: {0}")]
    Finality(crate::journal::certificate::CertificateRejection),
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
