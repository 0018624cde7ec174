//! Evidence of misbehaviour (docs/consensus.md, "Evidence"), and [`Evidence`], the form a peer
//! keeps and lists (with conflicting finality votes, found by `super::finality`). Found in
//! blocks: a committer that
//! signed two different blocks on the same parent. No honest committer does (after a
//! reorganisation it builds on another parent), and both blocks carry its signature, so the pair
//! is proof an operator can act on (revoke the culprit). Pure and bounded: one item per culprit,
//! at most [`EVIDENCE_CAPACITY`] culprits.

use std::collections::BTreeMap;

use crate::model::Cid;
use crate::trust::PublicKey;

/// Most culprits whose evidence is kept (the first found are kept; later ones are counted).
pub const EVIDENCE_CAPACITY: usize = 1024;

/// Two signed blocks of one committer on one parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// The committer that signed both.
    pub culprit: PublicKey,
    /// Their height.
    pub height: u64,
    /// Their common parent.
    pub parent: Cid,
    /// The two blocks (both stored), in the order they arrived.
    pub blocks: [Cid; 2],
}

/// The evidence a journal holds.
#[derive(Debug, Clone, Default)]
pub struct EvidenceBook {
    by_culprit: BTreeMap<PublicKey, Equivocation>,
    /// Evidence found while the book was full (not kept).
    pub overflow: u64,
}

impl EvidenceBook {
    /// Keeps `found` unless its culprit already has evidence; whether it was new.
    pub fn record(&mut self, found: Equivocation) -> bool {
        if self.by_culprit.contains_key(&found.culprit) {
            return false;
        }
        if self.by_culprit.len() >= EVIDENCE_CAPACITY {
            self.overflow += 1;
            return false;
        }
        self.by_culprit.insert(found.culprit, found);
        true
    }

    /// Every item, by culprit.
    pub fn items(&self) -> impl Iterator<Item = &Equivocation> {
        self.by_culprit.values()
    }

    /// Culprits with evidence.
    pub fn len(&self) -> usize {
        self.by_culprit.len()
    }

    /// Whether no evidence is held.
    pub fn is_empty(&self) -> bool {
        self.by_culprit.is_empty()
    }

    /// The evidence against `culprit`, if any.
    pub fn against(&self, culprit: &PublicKey) -> Option<&Equivocation> {
        self.by_culprit.get(culprit)
    }
}

/// Evidence as a peer keeps and lists it: the signed proof that a member broke the protocol.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[allow(clippy::large_enum_variant)] // a few bounded items, never on a hot path
pub enum Evidence {
    /// Two blocks of one committer on one parent (both blocks are in the store).
    DoubleBlock {
        /// The committer.
        culprit: PublicKey,
        /// The blocks' height.
        height: u64,
        /// Their parent.
        parent: Cid,
        /// The two blocks.
        blocks: [Cid; 2],
    },
    /// Two finality votes of one member that break a rule together (a double or a surround
    /// vote), both signed by it.
    ConflictingVotes {
        /// The voter.
        culprit: PublicKey,
        /// The two votes.
        votes: Box<[super::vote::Vote; 2]>,
    },
}

impl Evidence {
    /// The member it accuses.
    pub fn culprit(&self) -> PublicKey {
        match self {
            Evidence::DoubleBlock { culprit, .. } | Evidence::ConflictingVotes { culprit, .. } => {
                *culprit
            }
        }
    }
}

impl From<&Equivocation> for Evidence {
    fn from(e: &Equivocation) -> Self {
        Evidence::DoubleBlock {
            culprit: e.culprit,
            height: e.height,
            parent: e.parent,
            blocks: e.blocks,
        }
    }
}

impl From<&super::finality::VoteConflict> for Evidence {
    fn from(c: &super::finality::VoteConflict) -> Self {
        Evidence::ConflictingVotes {
            culprit: c.first.voter,
            votes: Box::new([c.first.clone(), c.second.clone()]),
        }
    }
}
