//! What an export holds, in order: the root block, the objects its entries reference, then its
//! parent and its objects, down to genesis, and last the `nil` object that ends every chain.
//!
//! Pure over [`Objects`]: it reads a store and yields `(cid, bytes)` pairs; it writes nothing.
//! Memory stays bounded whatever the journal's size: one block's objects at a time, plus a set of
//! recently emitted CIDs (at most [`RECENT`]) that keeps most objects from appearing twice (an
//! object linked from many blocks may appear more than once; CAR v1 readers accept that).

use std::collections::{HashSet, VecDeque};

use crate::journal::{Block, Objects};
use crate::model::{codec, nil_cid, Cid, JournalEntry, Object, DAG_CBOR};

/// CIDs remembered to skip duplicates (emptied when full).
pub const RECENT: usize = 1 << 16;

/// Why an export stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// A block of the chain is not in the datastore, or is not a block.
    #[error("block {cid} is missing or corrupt in the datastore")]
    Block {
        /// The block.
        cid: Box<Cid>,
    },
    /// An object a block's entries reference is not in the datastore.
    #[error(
        "object {object}, referenced by block {block} (height {height}), is not in the datastore"
    )]
    Object {
        /// The object.
        object: Box<Cid>,
        /// The block.
        block: Box<Cid>,
        /// Its height.
        height: u64,
    },
}

/// The CIDs an entry names directly: `ref`, and `chain`, `chainPrevious`, `chainMerge` if any.
fn entry_cids(entry: &JournalEntry, out: &mut Vec<Cid>) {
    match *entry {
        JournalEntry::Insert { reference, .. } => out.push(reference),
        JournalEntry::Update {
            reference,
            chain,
            chain_previous,
            ..
        } => out.extend([reference, chain, chain_previous]),
        JournalEntry::ChainMerge {
            reference,
            chain,
            chain_previous,
            chain_merge,
            ..
        } => out.extend([reference, chain, chain_previous, chain_merge]),
    }
}

/// The objects a block's entries and transactions name, in first-seen order without repeats.
pub fn referenced(block: &Block) -> Vec<Cid> {
    let mut cids = vec![];
    for entry in block
        .entries
        .iter()
        .chain(block.transactions.iter().flat_map(|t| &t.body.entries))
    {
        entry_cids(entry, &mut cids);
    }
    let mut seen = HashSet::with_capacity(cids.len());
    cids.retain(|c| seen.insert(*c));
    cids
}

/// Iterator over an export's `(cid, bytes)`, root block first.
pub struct Walk<'a, O> {
    objects: &'a O,
    next_block: Option<Cid>,
    pending: VecDeque<(Cid, Vec<u8>)>,
    recent: HashSet<Cid>,
    nil: Cid,
    done: bool,
}

impl<'a, O: Objects> Walk<'a, O> {
    /// A walk from the block `root` down to genesis.
    pub fn new(objects: &'a O, root: Cid) -> Self {
        Self {
            objects,
            next_block: Some(root),
            pending: VecDeque::new(),
            recent: HashSet::new(),
            nil: nil_cid(),
            done: false,
        }
    }

    /// Records `cid` as emitted; false if it was emitted recently.
    fn first_time(&mut self, cid: Cid) -> bool {
        if self.recent.len() >= RECENT {
            self.recent.clear();
        }
        self.recent.insert(cid)
    }

    /// Queues `cid`'s block and the objects it references; moves the cursor to its parent.
    fn visit(&mut self, cid: Cid) -> Result<(), WalkError> {
        let bytes = self
            .objects
            .get_bytes(&cid)
            .ok_or(WalkError::Block { cid: cid.into() })?;
        let block = Block::from_bytes(&bytes).map_err(|_| WalkError::Block { cid: cid.into() })?;
        self.next_block = (block.chain != self.nil).then_some(block.chain);
        self.pending.push_back((cid, bytes));
        for object in referenced(&block) {
            if object == self.nil || !self.first_time(object) {
                continue;
            }
            let bytes = self.objects.get_bytes(&object).ok_or(WalkError::Object {
                object: object.into(),
                block: cid.into(),
                height: block.height,
            })?;
            let links = direct_links(&object, &bytes);
            self.pending.push_back((object, bytes));
            // One level of links (a cell's previous cell, the entity a cell names, a link in
            // `meta`): IPFS tools resolving an object find what it points to. Optional: a link
            // may point outside the datastore.
            for link in links {
                if link == self.nil || !self.first_time(link) {
                    continue;
                }
                if let Some(bytes) = self.objects.get_bytes(&link) {
                    self.pending.push_back((link, bytes));
                }
            }
        }
        Ok(())
    }
}

/// The links in a DAG-CBOR object (none for raw blobs or undecodable bytes).
fn direct_links(cid: &Cid, bytes: &[u8]) -> Vec<Cid> {
    if cid.codec() != DAG_CBOR {
        return vec![];
    }
    let mut links = vec![];
    if let Ok(ipld) = codec::decode(bytes) {
        ipld.references(&mut links);
    }
    links
}

impl<O: Objects> Iterator for Walk<'_, O> {
    type Item = Result<(Cid, Vec<u8>), WalkError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.next_block.take() {
                Some(cid) => {
                    if let Err(e) = self.visit(cid) {
                        // The export is incomplete: nothing more, not even what was queued.
                        self.done = true;
                        self.pending.clear();
                        return Some(Err(e));
                    }
                }
                None => {
                    self.done = true;
                    // Every chain (blocks and cells) ends at `nil`: include it so a reader can
                    // resolve every link.
                    let bytes = Object::Nil.encode().ok()?.bytes;
                    return Some(Ok((self.nil, bytes)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::journal::MemObjects;
    use crate::model::{Artefact, CellKind, ChainCell, Entity};
    use crate::trust::{Chain, SecretKey};

    /// Genesis, then a block inserting `artefact` and journaling `cell` on it.
    fn chain(objects: &MemObjects, artefact: Cid, cell: Cid) -> (Block, Block) {
        let genesis = Block::genesis("walk", vec![]);
        let entries = vec![
            JournalEntry::Insert {
                reference: artefact,
                timestamp: 1,
            },
            JournalEntry::Update {
                reference: artefact,
                chain: cell,
                chain_previous: nil_cid(),
                timestamp: 1,
            },
        ];
        let key = SecretKey::generate();
        let block = Block::commit(
            (genesis.cid(), 0),
            "walk",
            1,
            (&key, &Chain(vec![])),
            vec![],
            entries,
        );
        for b in [&genesis, &block] {
            objects.put_bytes(&b.cid(), &b.to_bytes()).unwrap();
        }
        (genesis, block)
    }

    #[test]
    fn the_walk_yields_each_block_then_its_objects_down_to_genesis_then_nil() {
        let objects = MemObjects::new();
        let entity = objects.insert(&Object::Entity(Entity::named("author")));
        let artefact = objects.insert(&Object::Artefact(Artefact::named("work")));
        let cell = objects.insert(&Object::Cell(ChainCell::new(
            CellKind::ArtefactCreatedBy { entity },
            artefact,
            nil_cid(),
        )));
        let (genesis, block) = chain(&objects, artefact, cell);
        let cids: Vec<Cid> = Walk::new(&objects, block.cid())
            .map(|item| item.unwrap().0)
            .collect();
        // The cell's link to its author comes with it (one level), the artefact only once.
        assert_eq!(
            cids,
            vec![
                block.cid(),
                artefact,
                cell,
                entity,
                genesis.cid(),
                nil_cid()
            ]
        );
    }

    #[test]
    fn a_referenced_object_missing_from_the_store_stops_the_walk_naming_it() {
        let objects = MemObjects::new();
        let artefact = objects.insert(&Object::Artefact(Artefact::named("work")));
        let missing = Object::Cell(ChainCell::new(
            CellKind::ArtefactUpdate,
            artefact,
            nil_cid(),
        ))
        .cid()
        .unwrap();
        let (_, block) = chain(&objects, artefact, missing);
        let items: Vec<_> = Walk::new(&objects, block.cid()).collect();
        assert_eq!(
            items.last().unwrap().as_ref().unwrap_err(),
            &WalkError::Object {
                object: missing.into(),
                block: block.cid().into(),
                height: 1
            }
        );
        assert_eq!(
            Walk::new(&objects, artefact).next().unwrap().unwrap_err(),
            WalkError::Block {
                cid: artefact.into()
            },
            "a root that is not a block"
        );
    }
}
