//! Journal entries: the cells of the Journal that index the datastore.
//!
//! Replaying entries in order over the store rebuilds the index (canonical -> chain head).

use ipld_core::cid::Cid;
use ipld_core::ipld::Ipld;

use super::fields::{map_of, Fields};
use super::ModelError;
use crate::time::UnixSeconds;

/// One journal entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum JournalEntry {
    /// `insert`: a new entity or artefact enters the index.
    Insert {
        /// `ref`: the new canonical.
        reference: Cid,
        /// When the client wrote it.
        timestamp: UnixSeconds,
    },
    /// `update`: a canonical's chain head moves from `chain_previous` to `chain`.
    Update {
        /// `ref`: the canonical.
        reference: Cid,
        /// `chain`: the new head cell.
        chain: Cid,
        /// `chainPrevious`: the head the update was written on top of.
        chain_previous: Cid,
        /// When the client wrote it.
        timestamp: UnixSeconds,
    },
    /// `chainMerge`: a conflicting head was merged by a `*ChainLink` cell.
    ChainMerge {
        /// `ref`: the canonical.
        reference: Cid,
        /// `chain`: the new head (the `*ChainLink` cell).
        chain: Cid,
        /// `chainPrevious`: the base head the link cell was written on.
        chain_previous: Cid,
        /// `chainMerge`: the merged orphan head.
        chain_merge: Cid,
        /// When the merge was made.
        timestamp: UnixSeconds,
    },
}

impl JournalEntry {
    /// The canonical the entry is about.
    pub fn reference(&self) -> Cid {
        match *self {
            JournalEntry::Insert { reference, .. }
            | JournalEntry::Update { reference, .. }
            | JournalEntry::ChainMerge { reference, .. } => reference,
        }
    }

    /// The `type` string of the entry.
    pub fn type_name(&self) -> &'static str {
        match self {
            JournalEntry::Insert { .. } => "insert",
            JournalEntry::Update { .. } => "update",
            JournalEntry::ChainMerge { .. } => "chainMerge",
        }
    }

    /// The entry's IPLD form.
    pub fn to_ipld(&self) -> Ipld {
        let link = |c: Cid| Some(Ipld::Link(c));
        let int = |t: UnixSeconds| Some(Ipld::Integer(i128::from(t)));
        match *self {
            JournalEntry::Insert {
                reference,
                timestamp,
            } => map_of(
                "insert",
                [("ref", link(reference)), ("timestamp", int(timestamp))],
            ),
            JournalEntry::Update {
                reference,
                chain,
                chain_previous,
                timestamp,
            } => map_of(
                "update",
                [
                    ("ref", link(reference)),
                    ("chain", link(chain)),
                    ("chainPrevious", link(chain_previous)),
                    ("timestamp", int(timestamp)),
                ],
            ),
            JournalEntry::ChainMerge {
                reference,
                chain,
                chain_previous,
                chain_merge,
                timestamp,
            } => map_of(
                "chainMerge",
                [
                    ("ref", link(reference)),
                    ("chain", link(chain)),
                    ("chainPrevious", link(chain_previous)),
                    ("chainMerge", link(chain_merge)),
                    ("timestamp", int(timestamp)),
                ],
            ),
        }
    }

    /// Reads an entry if `kind` names an entry type; `None` otherwise.
    pub(crate) fn read(kind: &str, f: &mut Fields<'_>) -> Result<Option<Self>, ModelError> {
        Ok(Some(match kind {
            "insert" => JournalEntry::Insert {
                reference: f.link("ref")?,
                timestamp: f.u64("timestamp")?,
            },
            "update" => JournalEntry::Update {
                reference: f.link("ref")?,
                chain: f.link("chain")?,
                chain_previous: f.link("chainPrevious")?,
                timestamp: f.u64("timestamp")?,
            },
            "chainMerge" => JournalEntry::ChainMerge {
                reference: f.link("ref")?,
                chain: f.link("chain")?,
                chain_previous: f.link("chainPrevious")?,
                chain_merge: f.link("chainMerge")?,
                timestamp: f.u64("timestamp")?,
            },
            _ => return Ok(None),
        }))
    }
}
