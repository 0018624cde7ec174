//! The journal's documents: the head, blocks summarised (what the view-update stream sends),
//! the index and a canonical's history.

use serde::{Deserialize, Serialize};

use crate::journal::Block;
use crate::model::{Cid, JournalEntry};

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
