//! Rows grouped into transactions: each row's artefact `insert` and its `artefactCreatedBy` cell
//! `update`, and the `insert` of each creator the first time the run meets its name (an entity
//! already in the peers' index, or committed by an earlier run, is only linked). A batch holds
//! every object its peer must have: the new objects, and the entities its cells link to.

use std::collections::HashMap;

use mediachain::model::{nil_cid, CellKind, ChainCell, Cid, JournalEntry, Object};

use super::journal::Sent;
use super::mapping::Record;

/// One transaction's worth of rows.
#[derive(Debug, Default)]
pub struct Batch {
    /// Input lines of its rows.
    pub lines: Vec<u64>,
    /// Its entries.
    pub entries: Vec<JournalEntry>,
    /// Its new objects (artefacts and cells): (CID, DAG-CBOR bytes).
    pub objects: Vec<(Cid, Vec<u8>)>,
    /// The creators its cells link to that its peer may lack (each peer needs them once).
    pub creators: Vec<(Cid, Vec<u8>)>,
    /// Entities it inserts: (name, CID).
    pub entities: Vec<(String, Cid)>,
    /// Its cells.
    pub cells: usize,
}

impl Batch {
    /// What the journal records when it is sent as transaction `id` to peer `peer`.
    pub fn sent(&self, id: String, peer: usize) -> Sent {
        Sent {
            sent: id,
            peer,
            lines: self.lines.clone(),
            entities: self
                .entities
                .iter()
                .map(|(name, cid)| (name.clone(), cid.to_string()))
                .collect(),
            artefacts: self.lines.len(),
            cells: self.cells,
        }
    }
}

/// What a creator's name stands for in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// Committed (by an earlier run or anyone): link it only.
    Committed(Cid),
    /// Inserted by a transaction of this run.
    Inserted(Cid),
}

impl Known {
    fn cid(self) -> Cid {
        match self {
            Known::Committed(cid) | Known::Inserted(cid) => cid,
        }
    }
}

/// Turns records into batches of at most `max_entries` entries and `max_rows` rows.
pub struct Batcher {
    /// Creators by name.
    known: HashMap<String, Known>,
    max_entries: usize,
    max_rows: usize,
    current: Batch,
    nil: Cid,
    /// The objects of the entities this run inserts.
    inserted: HashMap<Cid, Vec<u8>>,
}

impl Batcher {
    /// A batcher knowing `known` creators.
    pub fn new(known: HashMap<String, Known>, max_entries: usize, max_rows: usize) -> Self {
        Self {
            known,
            max_entries: max_entries.max(3),
            max_rows: max_rows.max(1),
            current: Batch::default(),
            nil: nil_cid(),
            inserted: HashMap::new(),
        }
    }

    /// Whether the run has not met creator `name` yet (the caller then asks the index and
    /// tells [`Batcher::committed`] when it is there).
    pub fn is_new(&self, name: &str) -> bool {
        !self.known.contains_key(name)
    }

    /// Creator `name` is committed already as `cid`: link it, never insert it.
    pub fn committed(&mut self, name: &str, cid: Cid) {
        self.known.insert(name.to_string(), Known::Committed(cid));
    }

    /// Adds the row of `line`, timestamped `now`. Returns the batch it closed when the row did
    /// not fit in it (the row starts the next one).
    pub fn push(&mut self, line: u64, record: &Record, now: u64) -> Result<Option<Batch>, String> {
        let artefact = Object::Artefact(record.artefact.clone()).encode();
        let artefact = artefact.map_err(|e| format!("artefact: {e}"))?;
        let mut entries = vec![JournalEntry::Insert {
            reference: artefact.cid,
            timestamp: now,
        }];
        let mut objects = vec![];
        let mut creator_objects = vec![];
        let mut inserted = None;
        if let Some(creator) = &record.creator {
            let name = creator.meta.name().unwrap_or_default().to_string();
            let entity = Object::Entity(creator.clone()).encode();
            let entity = entity.map_err(|e| format!("creator: {e}"))?;
            let entity_cid = match self.known.get(&name).copied() {
                Some(known) => {
                    if let Known::Inserted(cid) = known {
                        // Inserted by another batch, maybe at another peer: this one's peer
                        // needs the object too (the sender uploads it once per peer).
                        if let Some(bytes) = self.inserted.get(&cid) {
                            creator_objects.push((cid, bytes.clone()));
                        }
                    }
                    known.cid()
                }
                None => {
                    entries.push(JournalEntry::Insert {
                        reference: entity.cid,
                        timestamp: now,
                    });
                    inserted = Some((name, entity.cid));
                    self.inserted.insert(entity.cid, entity.bytes.clone());
                    creator_objects.push((entity.cid, entity.bytes));
                    entity.cid
                }
            };
            let cell = Object::Cell(ChainCell::new(
                CellKind::ArtefactCreatedBy { entity: entity_cid },
                artefact.cid,
                self.nil,
            ))
            .encode()
            .map_err(|e| format!("artefactCreatedBy cell: {e}"))?;
            entries.push(JournalEntry::Update {
                reference: artefact.cid,
                chain: cell.cid,
                chain_previous: self.nil,
                timestamp: now,
            });
            objects.push((cell.cid, cell.bytes));
        }
        objects.insert(0, (artefact.cid, artefact.bytes));
        let full = if self.current.entries.len() + entries.len() > self.max_entries
            || self.current.lines.len() >= self.max_rows
        {
            self.take()
        } else {
            None
        };
        if let Some((name, cid)) = &inserted {
            self.known.insert(name.clone(), Known::Inserted(*cid));
        }
        let batch = &mut self.current;
        batch.lines.push(line);
        batch.cells += usize::from(record.creator.is_some());
        batch.entries.extend(entries);
        batch.objects.extend(objects);
        batch.creators.extend(creator_objects);
        batch.entities.extend(inserted);
        Ok(full)
    }

    /// The batch being filled, if it holds a row.
    pub fn take(&mut self) -> Option<Batch> {
        let batch = std::mem::take(&mut self.current);
        (!batch.lines.is_empty()).then_some(batch)
    }
}
