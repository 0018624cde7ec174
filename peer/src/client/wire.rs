//! The JSON documents of the peer's HTTP API, shared by the server (`api`) and the client.
//!
//! CIDs are strings (CIDv1, base32), transaction ids 64 hex digits, keys libp2p PeerIds and
//! certificate chains PEM text. This module only describes shapes: it never does I/O.

use serde::{Deserialize, Serialize};

use crate::journal::Block;
use crate::model::{Cid, JournalEntry};

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

/// `GET /v1/journal/head`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// The tip block's CID.
    pub cid: String,
    /// Its height.
    pub height: u64,
    /// The genesis block's CID.
    pub genesis: String,
    /// Transactions waiting for a block on this peer.
    pub pending: usize,
    /// The highest final block (a checkpoint: it and every block below never revert); absent
    /// without finality (no network parameters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalized: Option<FinalizedBlock>,
    /// The tip chain's fork-choice weight: the sum of its blocks' weights (see
    /// [`BlockSummary::weight`]), what a peer compares between branches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
}

/// `GET /v1/evidence`: the signed proof this peer holds that members broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceList {
    /// One item per culprit and kind.
    pub evidence: Vec<EvidenceItem>,
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

/// `GET /v1/evidence/summary`: how much evidence this peer keeps and its newest item, cheap to
/// poll (docs/peer-contract.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceSummary {
    /// Items kept (one per culprit and kind).
    pub items: usize,
    /// Distinct culprits.
    pub culprits: usize,
    /// The item found last; absent when none is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<EvidenceItem>,
}

/// One piece of evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceItem {
    /// When this peer found it (Unix seconds, the peer's clock).
    pub found_at: u64,
    /// `doubleBlock` (two blocks of the culprit on one parent) or `conflictingVotes` (two
    /// finality votes breaking a rule together: a double or a surround vote).
    pub kind: String,
    /// The culprit's key (PeerId form).
    pub culprit: String,
    /// The blocks' height (`doubleBlock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u64>,
    /// Their parent (`doubleBlock`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The two blocks' CIDs, readable at `GET /v1/journal/blocks/{cid}` (`doubleBlock`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<String>,
    /// The two signed votes (`conflictingVotes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub votes: Vec<SignedVote>,
}

/// A finality vote with its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignedVote {
    /// The justified checkpoint it votes from.
    pub source: FinalizedBlock,
    /// The checkpoint it votes for.
    pub target: FinalizedBlock,
    /// The voter's Ed25519 signature (hex).
    pub signature: String,
}

/// A final block, as `GET /v1/journal/head` and `event: final` report it (also a checkpoint a
/// vote names).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FinalizedBlock {
    /// Its CID.
    pub cid: String,
    /// Its height.
    pub height: u64,
}

/// A journal entry in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// `insert`, `update` or `chainMerge`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The canonical.
    #[serde(rename = "ref")]
    pub reference: String,
    /// New head (update, chainMerge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    /// Previous head (update, chainMerge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_previous: Option<String>,
    /// Merged orphan head (chainMerge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_merge: Option<String>,
    /// Timestamp (Unix seconds).
    pub timestamp: u64,
}

impl From<&JournalEntry> for Entry {
    fn from(entry: &JournalEntry) -> Self {
        let s = |c: Cid| Some(c.to_string());
        let (chain, chain_previous, chain_merge, timestamp) = match *entry {
            JournalEntry::Insert { timestamp, .. } => (None, None, None, timestamp),
            JournalEntry::Update {
                chain,
                chain_previous,
                timestamp,
                ..
            } => (s(chain), s(chain_previous), None, timestamp),
            JournalEntry::ChainMerge {
                chain,
                chain_previous,
                chain_merge,
                timestamp,
                ..
            } => (s(chain), s(chain_previous), s(chain_merge), timestamp),
        };
        Self {
            kind: entry.type_name().into(),
            reference: entry.reference().to_string(),
            chain,
            chain_previous,
            chain_merge,
            timestamp,
        }
    }
}

/// A block of the journal, summarised: what the view-update stream sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockSummary {
    /// The block's CID.
    pub cid: String,
    /// Its height.
    pub height: u64,
    /// The parent block's CID (Nil for genesis).
    pub parent: String,
    /// When it was committed (Unix seconds).
    pub timestamp: u64,
    /// The committer (PeerId; absent for genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub committer: Option<String>,
    /// Ids of the committed transactions (hex), in order.
    pub transactions: Vec<String>,
    /// The journal entries the block produced, in order.
    pub entries: Vec<Entry>,
    /// Membership records it carries (peers joining, revocations), under network parameters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordSummary>,
    /// The block's fork-choice weight under the seats at its height: 2 in turn, 1 out of
    /// turn, 0 for genesis (absent in the event stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u64>,
    /// The height of the checkpoint this block's finality certificate records final on the
    /// chain (docs/consensus.md, "Finality recorded on the chain"); absent when it carries none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records_final: Option<u64>,
}

/// A membership record of a block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordSummary {
    /// `join` (a peer joins) or `revoke` (keys are revoked from the next block on).
    pub kind: String,
    /// Who signed it: the joining peer, or the revocation list's issuer (PeerId).
    pub signer: String,
    /// The joining peer, or the revoked keys (PeerId).
    pub subjects: Vec<String>,
}

impl RecordSummary {
    /// The summary of `record`.
    pub fn of(record: &crate::journal::membership::Record) -> Self {
        use crate::journal::membership::Record;
        match record {
            Record::Join(join) => {
                let peer = join
                    .body
                    .chain
                    .first()
                    .map(|c| c.body.subject.to_string())
                    .unwrap_or_default();
                Self {
                    kind: "join".into(),
                    signer: peer.clone(),
                    subjects: vec![peer],
                }
            }
            Record::Revoke(list) => Self {
                kind: "revoke".into(),
                signer: list.body.issuer.to_string(),
                subjects: list
                    .body
                    .revoked
                    .iter()
                    .map(|r| r.subject.to_string())
                    .collect(),
            },
        }
    }
}

impl BlockSummary {
    /// The summary of `block` named `cid`.
    pub fn of(cid: &Cid, block: &Block) -> Self {
        Self {
            cid: cid.to_string(),
            height: block.height,
            parent: block.chain.to_string(),
            timestamp: block.time(),
            committer: block.committer_key().map(|k| k.to_string()),
            transactions: block
                .transactions
                .iter()
                .map(|t| t.id().to_string())
                .collect(),
            entries: block.entries.iter().map(Entry::from).collect(),
            records: block.records.iter().map(RecordSummary::of).collect(),
            weight: None,
            records_final: block.finality.first().map(|v| v.source.height),
        }
    }
}

/// `GET /v1/journal/blocks`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Blocks {
    /// The blocks, by increasing height.
    pub blocks: Vec<BlockSummary>,
}

/// `GET /v1/journal/index/{canonical}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The canonical.
    pub canonical: String,
    /// Its current chain head (the Nil CID when no cell was journaled yet).
    pub head: String,
}

/// One hit of `GET /v1/search`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    /// The canonical.
    pub canonical: String,
    /// `entity` or `artefact`.
    pub subject: String,
    /// Its current head (the Nil CID when no cell was journaled yet).
    pub head: String,
    /// Its metadata resolved: each key's value from the newest cell holding it.
    pub meta: serde_json::Map<String, serde_json::Value>,
    /// Entities its `artefactCreatedBy` cells name.
    pub creators: Vec<String>,
    /// The block that committed its current head.
    pub block: String,
    /// That block's height.
    pub height: u64,
    /// That block's time (RFC 3339).
    pub committed: String,
}

/// `GET /v1/search`: a page of hits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchPage {
    /// The hits: by relevance for a text query, else newest commit first.
    pub hits: Vec<SearchHit>,
    /// Matching canonicals in all.
    pub total: u64,
    /// The cursor of the next page (absent on the last one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// The height the index has followed the chain to.
    pub height: u64,
}

/// One object of a chain walk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The object's CID.
    pub cid: String,
    /// The object in DAG-JSON (links are `{"/": cid}`).
    pub object: serde_json::Value,
}

/// `GET /v1/journal/history/{canonical}`: the canonical and its cells, newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct History {
    /// The canonical.
    pub canonical: String,
    /// Its current head.
    pub head: String,
    /// The canonical object itself.
    pub object: serde_json::Value,
    /// Its cells from the head back towards Nil.
    pub cells: Vec<Resolved>,
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
