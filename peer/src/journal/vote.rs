//! Finality votes (docs/consensus.md, "Finality"): a seated member's signed Casper FFG vote
//! linking a justified checkpoint (`source`) to a later checkpoint (`target`) of the chain it
//! follows. Votes name their network, so a vote of one network is worth nothing on another.
//! Nothing here decides what a vote counts for ([`super::finality`] does).

use serde::{Deserialize, Serialize};

use super::transaction::canonical;
use crate::model::Cid;
use crate::trust::{PublicKey, SecretKey};

/// Signature context of finality votes.
pub const VOTE_CONTEXT: &[u8] = b"mediachain/vote/v1";

/// A block a vote names: its CID and height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Its height.
    pub height: u64,
    /// Its CID.
    pub cid: Cid,
}

/// What a voter signs.
#[derive(Serialize)]
struct Signed<'a> {
    network: &'a str,
    voter: &'a PublicKey,
    source: &'a Checkpoint,
    target: &'a Checkpoint,
}

/// A member's vote for the link `source -> target`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vote {
    /// The member that signed it.
    pub voter: PublicKey,
    /// The justified checkpoint it votes from.
    pub source: Checkpoint,
    /// The checkpoint it votes for.
    pub target: Checkpoint,
    /// The voter's signature over network, voter, source and target.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl Vote {
    /// `key`'s signed vote on `network` for `source -> target`.
    pub fn sign(key: &SecretKey, network: &str, source: Checkpoint, target: Checkpoint) -> Self {
        let voter = key.public();
        let signed = Signed {
            network,
            voter: &voter,
            source: &source,
            target: &target,
        };
        let signature = key.sign(VOTE_CONTEXT, &canonical(&signed)).to_vec();
        Self {
            voter,
            source,
            target,
            signature,
        }
    }

    /// Whether the voter's signature verifies for `network`.
    pub fn signature_valid(&self, network: &str) -> bool {
        let Ok(signature) = <[u8; 64]>::try_from(self.signature.as_slice()) else {
            return false;
        };
        let signed = Signed {
            network,
            voter: &self.voter,
            source: &self.source,
            target: &self.target,
        };
        self.voter
            .verify(VOTE_CONTEXT, &canonical(&signed), &signature)
    }

    /// Canonical DAG-CBOR of the vote.
    pub fn to_bytes(&self) -> Vec<u8> {
        canonical(self)
    }

    /// Decodes a vote from untrusted bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        serde_ipld_dagcbor::from_slice(bytes).map_err(|e| format!("not a vote: {e}"))
    }

    /// Whether `self` and `other` (of one voter) break a rule together: two targets at one
    /// height (a double vote) or one link surrounding the other (a surround vote).
    pub fn conflicts_with(&self, other: &Vote) -> bool {
        let double = self.target.height == other.target.height && self.target != other.target;
        let surrounds = |a: &Vote, b: &Vote| {
            a.source.height < b.source.height && b.target.height < a.target.height
        };
        self.voter == other.voter && (double || surrounds(self, other) || surrounds(other, self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::codec::dag_cbor_cid;

    fn point(height: u64, name: &[u8]) -> Checkpoint {
        Checkpoint {
            height,
            cid: dag_cbor_cid(name),
        }
    }

    #[test]
    fn a_vote_verifies_on_its_network_only_and_survives_encoding() {
        let key = SecretKey::generate();
        let vote = Vote::sign(&key, "net", point(0, b"g"), point(4, b"a"));
        assert!(vote.signature_valid("net"));
        assert!(!vote.signature_valid("other"));
        let back = Vote::from_bytes(&vote.to_bytes()).unwrap();
        assert_eq!(back, vote);
        let mut forged = vote.clone();
        forged.target = point(4, b"b");
        assert!(!forged.signature_valid("net"));
    }

    #[test]
    fn double_and_surround_votes_conflict_and_honest_sequences_do_not() {
        let key = SecretKey::generate();
        let v = |s: (u64, &[u8]), t: (u64, &[u8])| {
            Vote::sign(&key, "net", point(s.0, s.1), point(t.0, t.1))
        };
        let first = v((0, b"g"), (4, b"a"));
        assert!(
            first.conflicts_with(&v((0, b"g"), (4, b"b"))),
            "double vote"
        );
        let long = v((0, b"g"), (12, b"c"));
        let inner = v((4, b"a"), (8, b"b"));
        assert!(
            long.conflicts_with(&inner) && inner.conflicts_with(&long),
            "surround"
        );
        assert!(!first.conflicts_with(&v((4, b"a"), (8, b"b"))));
        assert!(!first.conflicts_with(&first.clone()));
        let other = Vote::sign(
            &SecretKey::generate(),
            "net",
            point(0, b"g"),
            point(4, b"b"),
        );
        assert!(!first.conflicts_with(&other), "two voters never conflict");
    }
}
