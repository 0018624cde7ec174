//! What the index holds for one canonical, derived from nothing but its head and the
//! datastore's immutable objects: the same (canonical, head) always gives the same record, so a
//! record never depends on when it was derived. Pure: objects are read through a closure.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use ipld_core::ipld::Ipld;
use serde::{Deserialize, Serialize};

use crate::model::{nil_cid, CellKind, Cid, Meta, Object};

/// Most cells of one canonical read to derive its record (a chain longer than this is indexed
/// by its newest cells).
pub const MAX_CELLS: usize = 1000;

/// Where a canonical stands on the chain the index follows: its head and the block that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    /// The canonical's head (the Nil CID when only inserted).
    pub head: Cid,
    /// Height of the block that set the head.
    pub height: u64,
    /// That block.
    pub block: Cid,
    /// Its timestamp (Unix milliseconds).
    pub time_ms: u64,
}

/// Whether a canonical is an entity or an artefact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Subject {
    /// A person or organisation.
    Entity,
    /// A media work.
    Artefact,
}

/// The searchable record of one canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The canonical.
    pub canonical: Cid,
    /// Entity or artefact.
    pub subject: Subject,
    /// Where it stands.
    pub standing: Standing,
    /// Its metadata resolved: each key's value from the newest cell holding it, else the
    /// canonical object's own.
    pub meta: BTreeMap<String, String>,
    /// Every string of its metadata and of every cell reachable from its head (through `chain`
    /// and `chainMerge` links, so both branches of a merge are searchable).
    pub text: Vec<String>,
    /// Entities named by its `artefactCreatedBy` cells.
    pub creators: BTreeSet<Cid>,
}

fn strings(meta: &Meta) -> impl Iterator<Item = (&String, &String)> {
    meta.0.iter().filter_map(|(key, value)| match value {
        Ipld::String(text) => Some((key, text)),
        _ => None,
    })
}

/// The record of `canonical` standing at `standing`, reading objects with `object`; `None`
/// when the canonical is not an entity or artefact held in the datastore.
pub fn derive(
    canonical: Cid,
    standing: Standing,
    object: impl Fn(&Cid) -> Option<Object>,
) -> Option<Record> {
    let (subject, own) = match object(&canonical)? {
        Object::Entity(entity) => (Subject::Entity, entity.meta),
        Object::Artefact(artefact) => (Subject::Artefact, artefact.meta),
        _ => return None,
    };
    let mut meta = BTreeMap::new();
    let mut text = vec![];
    let mut creators = BTreeSet::new();
    let nil = nil_cid();
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([standing.head]);
    while let Some(cid) = queue.pop_front() {
        if cid == nil || seen.len() >= MAX_CELLS || !seen.insert(cid) {
            continue;
        }
        let Some(Object::Cell(cell)) = object(&cid) else {
            continue;
        };
        if let Some(cell_meta) = &cell.meta {
            for (key, value) in strings(cell_meta) {
                meta.entry(key.clone()).or_insert_with(|| value.clone());
                text.push(value.clone());
            }
        }
        // The base chain before the merged branch: its cells are the newer view.
        queue.push_back(cell.chain);
        match cell.kind {
            CellKind::ArtefactCreatedBy { entity } => {
                creators.insert(entity);
            }
            CellKind::ArtefactChainLink { chain_merge }
            | CellKind::EntityChainLink { chain_merge } => queue.push_back(chain_merge),
            _ => {}
        }
    }
    for (key, value) in strings(&own) {
        meta.entry(key.clone()).or_insert_with(|| value.clone());
        text.push(value.clone());
    }
    Some(Record {
        canonical,
        subject,
        standing,
        meta,
        text,
        creators,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::model::{Artefact, ChainCell, Entity};

    #[test]
    fn cells_override_the_canonical_newest_first_and_both_merge_branches_are_text() {
        let mut store: HashMap<Cid, Object> = HashMap::new();
        let mut put = |o: Object| {
            let cid = o.cid().unwrap();
            store.insert(cid, o);
            cid
        };
        let creator = put(Object::Entity(Entity::named("Ada")));
        let art = put(Object::Artefact(Artefact {
            meta: Meta::named("Sunrise").with("description", "a painting"),
            ..Artefact::named("")
        }));
        let by = put(Object::Cell(ChainCell::new(
            CellKind::ArtefactCreatedBy { entity: creator },
            art,
            nil_cid(),
        )));
        let left = put(Object::Cell(
            ChainCell::new(CellKind::ArtefactUpdate, art, by).with_meta(Meta::named("Dawn")),
        ));
        let right = put(Object::Cell(
            ChainCell::new(CellKind::ArtefactUpdate, art, by).with_meta(Meta::named("Aurora")),
        ));
        let merge = put(Object::Cell(ChainCell::new(
            CellKind::ArtefactChainLink { chain_merge: right },
            art,
            left,
        )));
        let standing = Standing {
            head: merge,
            height: 3,
            block: creator,
            time_ms: 9,
        };
        let record = derive(art, standing, |c| store.get(c).cloned()).unwrap();
        assert_eq!(record.subject, Subject::Artefact);
        assert_eq!(record.meta["name"], "Dawn", "the base branch is newest");
        assert_eq!(record.meta["description"], "a painting");
        for word in ["Dawn", "Aurora", "Sunrise"] {
            assert!(record.text.iter().any(|t| t == word), "{word}");
        }
        assert_eq!(record.creators, BTreeSet::from([creator]));
        assert!(derive(by, standing, |c| store.get(c).cloned()).is_none());
    }
}
