//! Uploads at a node: which objects a transaction references (its entries' objects and what
//! they link to), releasing the uploads each canonical block references, keeping those of
//! admitted transactions fresh, and collecting the stale rest in bounded passes. The store keeps
//! the records (`store::uploads`); this module decides what counts as referenced. It never
//! deletes an object a committed or pending transaction references.

use std::borrow::Cow;
use std::collections::HashSet;

use tracing::{debug, info, warn};

use super::{Node, NodeError};
use crate::journal::{Block, IndexRead};
use crate::model::{codec, Cid, Ipld, JournalEntry};
use crate::store::Store;

/// The objects `entries` name directly (reference, new head, merged head).
pub(super) fn named(entries: &[JournalEntry]) -> impl Iterator<Item = Cid> + '_ {
    entries.iter().flat_map(|entry| match *entry {
        JournalEntry::Insert { reference, .. } => vec![reference],
        JournalEntry::Update {
            reference, chain, ..
        } => vec![reference, chain],
        JournalEntry::ChainMerge {
            reference,
            chain,
            chain_merge,
            ..
        } => vec![reference, chain, chain_merge],
    })
}

pub(super) fn links(ipld: &Ipld, out: &mut Vec<Cid>) {
    match ipld {
        Ipld::Link(cid) => out.push(*cid),
        Ipld::List(items) => items.iter().for_each(|i| links(i, out)),
        Ipld::Map(map) => map.values().for_each(|v| links(v, out)),
        _ => {}
    }
}

/// The objects `entries` name and every object those link to (a cell's entity, an artefact's
/// data blob or metadata source), as far as the store holds them.
pub fn references(store: &Store, entries: &[JournalEntry]) -> Vec<Cid> {
    references_in(entries, |cid| store.get(cid).ok().flatten().map(Cow::Owned))
}

/// [`references`] reading each named object with `bytes` (e.g. a gossiped bundle's copy before
/// the store's), so that a caller that holds the bytes decodes each object once.
pub(super) fn references_in<'a>(
    entries: &[JournalEntry],
    mut bytes: impl FnMut(&Cid) -> Option<Cow<'a, [u8]>>,
) -> Vec<Cid> {
    let mut out: Vec<Cid> = named(entries).collect();
    for i in 0..out.len() {
        let cid = out[i];
        if cid.codec() != crate::model::DAG_CBOR {
            continue;
        }
        if let Some(ipld) = bytes(&cid).and_then(|b| codec::decode(&b).ok()) {
            links(&ipld, &mut out);
        }
    }
    out.sort_by_key(|c| c.to_bytes());
    out.dedup();
    out
}

impl Node {
    /// Releases the uploads the canonical block at its height references (called for every
    /// block joining the canonical chain, in height order).
    pub(super) fn release_uploads(&self, block: &Block) {
        let cids = if self.store.has_uploads() {
            references(&self.store, &block.entries)
        } else {
            vec![]
        };
        match self.store.release_uploads(&cids, block.height) {
            Ok(0) => {}
            Ok(n) => debug!(height = block.height, released = n, "uploads committed"),
            Err(error) => warn!(%error, height = block.height, "releasing uploads failed"),
        }
    }

    /// Releases the uploads of canonical blocks above the height released before a restart
    /// (a crash between a block's commit and its release).
    pub(super) fn release_since_restart(&self) -> Result<(), NodeError> {
        let (_, tip) = self.tip()?;
        let from = match self.store.uploads_released_through()? {
            Some(height) => height.saturating_add(1),
            None => tip,
        };
        for height in from..=tip {
            let block = self.with_journal(|journal| -> Result<Option<Block>, NodeError> {
                match journal.index().block_at(height)? {
                    Some(cid) => Ok(Some(journal.load_block(&cid)?)),
                    None => Ok(None),
                }
            })?;
            if let Some(block) = block {
                self.release_uploads(&block);
            }
        }
        Ok(())
    }

    /// Marks the uploads `entries` reference as used now (before admitting their transaction,
    /// so that a collection either sees them fresh or has already deleted them and admission
    /// finds them missing).
    pub(super) fn touch_uploads(&self, entries: &[JournalEntry]) -> Result<(), NodeError> {
        if self.store.has_uploads() {
            self.touch_references(&references(&self.store, entries))?;
        }
        Ok(())
    }

    /// [`Node::touch_uploads`] given the references already worked out.
    pub(super) fn touch_references(&self, cids: &[Cid]) -> Result<(), NodeError> {
        if self.store.has_uploads() {
            self.store.touch_uploads(cids, self.clock.unix())?;
        }
        Ok(())
    }

    /// One collection pass: deletes at most `max` uploads unused for `grace_seconds` that
    /// neither the canonical chain nor a pending transaction references. Returns how many.
    pub fn collect_uploads(&self, grace_seconds: u64, max: usize) -> Result<usize, NodeError> {
        if !self.store.has_uploads() {
            return Ok(0);
        }
        let before = self.clock.unix().saturating_sub(grace_seconds);
        let stale = self.store.stale_uploads(before, max)?;
        if stale.is_empty() {
            return Ok(0);
        }
        // Pending transactions' objects, and (defence in depth) canonicals and cells the chain
        // holds: read under the lock once per pass.
        let keep: HashSet<Cid> = {
            let state = self.state();
            let pending: HashSet<Cid> = state
                .mempool
                .transactions()
                .flat_map(|tx| named(&tx.body.entries).collect::<Vec<_>>())
                .collect();
            let index = state.journal.index();
            let mut keep = HashSet::new();
            for cid in &stale {
                if pending.contains(cid)
                    || index.head(cid)?.is_some()
                    || index.cell_journaled(cid)?
                {
                    keep.insert(*cid);
                }
            }
            keep
        };
        let mut collected = 0;
        for cid in stale.iter().filter(|c| !keep.contains(c)) {
            if self.store.collect_upload(cid, before)? {
                collected += 1;
            }
        }
        self.store.flush()?;
        if collected > 0 {
            info!(
                collected,
                kept = keep.len(),
                "unreferenced uploads collected"
            );
        }
        Ok(collected)
    }
}
