//! The JSON documents of the peer's HTTP API, shared by the server (`api`) and the client.
//!
//! CIDs are strings (CIDv1, base32), transaction ids 64 hex digits, keys libp2p PeerIds and
//! certificate chains PEM text. This module only describes shapes: it never does I/O. The
//! documents of the journal (head, blocks, index, history), of evidence and of search are in
//! its files `journal.rs`, `evidence.rs` and `search.rs`, re-exported here.

use serde::{Deserialize, Serialize};

mod evidence;
mod journal;
mod search;

pub use evidence::{EvidenceItem, EvidenceList, EvidenceSummary, SignedVote};
pub use journal::{
    BlockSummary, Blocks, Entry, FinalizedBlock, Head, History, IndexEntry, RecordSummary, Resolved,
};
pub use search::{SearchHit, SearchPage};

/// Media type of problem documents (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";
/// Media type of DAG-CBOR bodies (objects, transactions).
pub const CBOR: &str = "application/cbor";
/// Media type of a batch upload to `POST /v1/objects`: a DAG-CBOR array of byte strings, each
/// one Mediachain object in canonical DAG-CBOR.
pub const OBJECTS_BATCH: &str = "application/vnd.mediachain.objects+cbor";

/// `GET /v1/info`: who the peer is and what it requires.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Info {
    /// Network name.
    pub network: String,
    /// The peer's key (PeerId).
    pub peer: String,
    /// CID of the network's genesis block.
    pub genesis: String,
    /// Proof-of-work bits a registration needs.
    pub registration_pow_bits: u8,
    /// Proof-of-work bits a transaction needs.
    pub transaction_pow_bits: u8,
    /// Largest object accepted, in bytes.
    pub max_object_size: usize,
    /// Most entries in one transaction.
    pub max_entries_per_transaction: usize,
}

/// `GET /v1/registration/challenge`: a fresh challenge to solve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Challenge {
    /// The challenge (hex); the proof of work covers `client key bytes || challenge bytes`.
    pub challenge: String,
    /// Required proof-of-work bits.
    pub bits: u8,
    /// Seconds the challenge stays valid.
    pub expires_in: u64,
}

/// A proof-of-work stamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pow {
    /// Difficulty the stamp was solved for.
    pub bits: u8,
    /// The solution.
    pub nonce: u64,
}

/// `POST /v1/registration`: a client key with its proof of work on a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RegistrationRequest {
    /// The client's public key (PeerId or hex).
    pub client: String,
    /// The challenge, as received (hex).
    pub challenge: String,
    /// The proof of work.
    pub pow: Pow,
}

/// The answer to a registration: the client's Level-2 chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    /// The certified key (PeerId).
    pub client: String,
    /// The issuing peer (PeerId).
    pub issuer: String,
    /// Level of the leaf certificate (always 2).
    pub level: u8,
    /// End of validity (Unix seconds).
    pub not_after: u64,
    /// The whole chain, leaf first, as PEM.
    pub certificate: String,
}

/// `POST /v1/objects`: where the object was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    /// The object's CID.
    pub cid: String,
    /// Its size in bytes.
    pub size: usize,
    /// Whether it was new to this peer.
    pub created: bool,
}

/// `POST /v1/objects` of a batch: where each object was stored, in the order sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredBatch {
    /// One entry per object sent.
    pub stored: Vec<Stored>,
}

/// Where a transaction stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TxState {
    /// The transaction id (hex).
    pub id: String,
    /// `pending`, `committed`, `merged` (committed, and some of its updates were reconciled
    /// with a concurrent update by a chainMerge), `final` (in a final block: never reverted;
    /// `merged` says whether it was merged), `rejected` or `unknown`.
    pub state: String,
    /// Height of the block that committed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// CID of that block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<String>,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Committed or final, and some of its updates were reconciled by a chainMerge.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub merged: bool,
}

impl TxState {
    /// Whether the transaction is in a block (committed, merged or final).
    pub fn is_committed(&self) -> bool {
        self.state == "committed" || self.state == "merged" || self.is_final()
    }

    /// Whether the transaction is in a final block (never reverted).
    pub fn is_final(&self) -> bool {
        self.state == "final"
    }
}

/// `POST /v1/revocations`: what became of the lists sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevocationsQueued {
    /// Lists waiting for a block (new here, or waiting already).
    pub queued: usize,
    /// Lists whose every revocation is on the chain already.
    pub known: usize,
}

/// `application/problem+json` (RFC 9457).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// URI naming the problem kind.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the kind.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong here, and how to fix it.
    pub detail: String,
    /// Machine-readable reason label (the metrics label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}
