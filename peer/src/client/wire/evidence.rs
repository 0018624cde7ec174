//! The evidence a peer keeps of members that broke the protocol (`GET /v1/evidence`,
//! `GET /v1/evidence/summary`).

use serde::{Deserialize, Serialize};

use super::FinalizedBlock;

/// `GET /v1/evidence`: the signed proof this peer holds that members broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceList {
    /// One item per culprit and kind.
    pub evidence: Vec<EvidenceItem>,
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
