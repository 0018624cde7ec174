//! From transactions to journal entries: the index-dependent checks and the merge rules.
//!
//! - Two `insert`s of the same canonical reduce to one (later ones produce no entry).
//! - An `update` whose `chainPrevious` is the current head chains (`update` entry).
//! - An `update` whose `chainPrevious` is not the head conflicts with what was journaled since:
//!   the head stays the base and the orphan head is reconciled by a deterministic `*ChainLink`
//!   cell `{chain: head, ref, chainMerge: orphan}`, journaled as a `chainMerge` entry. The same
//!   happens when the head moved by an earlier `chainMerge`. No client's cell is ever dropped.
//! - An `update` whose cell is already journaled produces nothing (replays are idempotent).
//!
//! Transactions are all-or-nothing: an invalid entry rejects the whole transaction. The result
//! depends only on the index and the transactions, so every replica derives the same entries.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use super::index::{IndexError, IndexRead};
use super::objects::Objects;
use super::transaction::{Transaction, TxId};
use super::verify::{BadCell, StaleHead, TxRejection};
use crate::model::{CellKind, ChainCell, Cid, Encoded, JournalEntry, Object, Subject};

/// How conflicts are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Admission of a new transaction: the DESIGN rules exactly (no duplicate insert, `update`
    /// on the current head).
    Admission,
    /// Building or checking a block: duplicates collapse, conflicts merge.
    Commit,
}

/// What a list of transactions does on top of an index.
#[derive(Debug, Default)]
pub struct Derivation {
    /// The journal entries, in order.
    pub entries: Vec<JournalEntry>,
    /// `*ChainLink` cells written by merges (to be stored).
    pub link_cells: Vec<Encoded>,
    /// The positions (in the list derived) of the transactions that apply, in order.
    pub accepted: Vec<usize>,
    /// Their ids, in the same order.
    pub accepted_ids: Vec<TxId>,
    /// The transactions that do not, with the reason.
    pub rejected: Vec<(TxId, TxRejection)>,
    /// The heads read from the index (before any of these transactions), by canonical: every
    /// canonical an entry names was read, so the block's delta needs no second read.
    pub heads_before: HashMap<Cid, Option<Cid>>,
}

impl Derivation {
    /// The head of `canonical` in the index the derivation read (`None`: not inserted), from
    /// what it read, else from `index`.
    pub fn head_before(
        &self,
        index: &impl IndexRead,
        canonical: &Cid,
    ) -> Result<Option<Cid>, IndexError> {
        match self.heads_before.get(canonical) {
            Some(head) => Ok(*head),
            None => index.head(canonical),
        }
    }
}

/// The index as seen through the entries derived so far.
struct Overlay<'a, I> {
    index: &'a I,
    /// Heads read from the index, remembered.
    read: RefCell<HashMap<Cid, Option<Cid>>>,
    heads: HashMap<Cid, Cid>,
    cells: HashSet<Cid>,
    txs: HashSet<TxId>,
}

impl<I: IndexRead> Overlay<'_, I> {
    fn head(&self, canonical: &Cid) -> Result<Option<Cid>, IndexError> {
        if let Some(head) = self.heads.get(canonical) {
            return Ok(Some(*head));
        }
        if let Some(head) = self.read.borrow().get(canonical) {
            return Ok(*head);
        }
        let head = self.index.head(canonical)?;
        self.read.borrow_mut().insert(*canonical, head);
        Ok(head)
    }

    fn cell_journaled(&self, cell: &Cid) -> Result<bool, IndexError> {
        Ok(self.cells.contains(cell) || self.index.cell_journaled(cell)?)
    }
}

/// The changes of the transaction being derived (kept apart until it is accepted whole).
#[derive(Default)]
struct Staged {
    heads: HashMap<Cid, Cid>,
    cells: HashSet<Cid>,
}

impl Staged {
    fn head<I: IndexRead>(
        &self,
        committed: &Overlay<'_, I>,
        canonical: &Cid,
    ) -> Result<Option<Cid>, IndexError> {
        match self.heads.get(canonical) {
            Some(head) => Ok(Some(*head)),
            None => committed.head(canonical),
        }
    }
}

/// The objects as a derivation reads them, remembering what it learnt: objects are named by
/// their hash, so a canonical's kind and an object's presence never change (a row's `insert`
/// and `update` of one artefact, and every cell linking one creator, read it once).
struct Lookups<'a, O> {
    objects: &'a O,
    subjects: HashMap<Cid, Subject>,
    present: HashSet<Cid>,
}

impl<'a, O: Objects> Lookups<'a, O> {
    fn new(objects: &'a O) -> Self {
        Self {
            objects,
            subjects: HashMap::new(),
            present: HashSet::new(),
        }
    }

    /// Whether `cid` is an entity or an artefact (a principal), and which.
    fn principal_subject(&mut self, cid: &Cid) -> Result<Subject, TxRejection> {
        if let Some(subject) = self.subjects.get(cid) {
            return Ok(*subject);
        }
        let subject = match self.objects.object(cid) {
            Some(Object::Entity(_)) => Subject::Entity,
            Some(Object::Artefact(_)) => Subject::Artefact,
            Some(_) => return Err(TxRejection::NotAPrincipal(*cid)),
            None if self.objects.contains(cid) => return Err(TxRejection::NotAPrincipal(*cid)),
            None => return Err(TxRejection::UnknownObject(*cid)),
        };
        self.subjects.insert(*cid, subject);
        Ok(subject)
    }

    /// Whether the store holds `cid`.
    fn contains(&mut self, cid: &Cid) -> bool {
        if self.present.contains(cid) || self.subjects.contains_key(cid) {
            return true;
        }
        let present = self.objects.contains(cid);
        if present {
            self.present.insert(*cid);
        }
        present
    }
}

fn update_cell(
    objects: &mut Lookups<'_, impl Objects>,
    reference: Cid,
    cell_cid: Cid,
    previous: Cid,
    subject: Subject,
) -> Result<ChainCell, TxRejection> {
    let bad = |detail: String| {
        TxRejection::BadCell(Box::new(BadCell {
            cell: cell_cid,
            reference,
            previous,
            detail,
        }))
    };
    let cell = match objects.objects.object(&cell_cid) {
        Some(Object::Cell(cell)) => cell,
        Some(_) => return Err(bad("not a chain cell".into())),
        None => return Err(TxRejection::UnknownObject(cell_cid)),
    };
    if cell.reference != reference {
        return Err(bad(format!("its `ref` is {}", cell.reference)));
    }
    if cell.chain != previous {
        return Err(bad(format!("its `chain` is {}", cell.chain)));
    }
    if cell.kind.subject() != subject {
        return Err(bad(format!(
            "a {} cell cannot extend a {subject:?}",
            cell.kind.type_name()
        )));
    }
    if matches!(
        cell.kind,
        CellKind::EntityChainLink { .. } | CellKind::ArtefactChainLink { .. }
    ) {
        return Err(bad("clients may not write chain-link cells".into()));
    }
    if let Some(link) = cell.kind.links() {
        if !objects.contains(&link) {
            return Err(TxRejection::UnknownObject(link));
        }
    }
    Ok(cell)
}

/// Derives the entries of `txs` on top of `index`.
pub fn derive(
    index: &impl IndexRead,
    objects: &impl Objects,
    txs: &[Transaction],
    mode: Mode,
) -> Result<Derivation, IndexError> {
    let mut overlay = Overlay {
        index,
        read: RefCell::new(HashMap::new()),
        heads: HashMap::new(),
        cells: HashSet::new(),
        txs: HashSet::new(),
    };
    let mut out = Derivation::default();
    let mut objects = Lookups::new(objects);
    for (at, tx) in txs.iter().enumerate() {
        let id = tx.id();
        if overlay.txs.contains(&id) || index.tx_height(&id)?.is_some() {
            out.rejected.push((id, TxRejection::Duplicate(id)));
            continue;
        }
        let mut staged = Staged::default();
        let mut entries = Vec::new();
        let mut links = Vec::new();
        let mut failure = None;
        for entry in &tx.body.entries {
            match apply_entry(
                &mut staged,
                &overlay,
                &mut objects,
                *entry,
                mode,
                &mut entries,
                &mut links,
            ) {
                Ok(()) => {}
                Err(ApplyError::Index(e)) => return Err(e),
                Err(ApplyError::Rejected(reason)) => {
                    failure = Some(reason);
                    break;
                }
            }
        }
        match failure {
            Some(reason) => out.rejected.push((id, reason)),
            None => {
                overlay.heads.extend(staged.heads);
                overlay.cells.extend(staged.cells);
                overlay.txs.insert(id);
                out.entries.extend(entries);
                out.link_cells.extend(links);
                out.accepted.push(at);
                out.accepted_ids.push(id);
            }
        }
    }
    out.heads_before = overlay.read.into_inner();
    Ok(out)
}

enum ApplyError {
    Index(IndexError),
    Rejected(TxRejection),
}

impl From<IndexError> for ApplyError {
    fn from(e: IndexError) -> Self {
        ApplyError::Index(e)
    }
}

impl From<TxRejection> for ApplyError {
    fn from(e: TxRejection) -> Self {
        ApplyError::Rejected(e)
    }
}

fn apply_entry<I: IndexRead>(
    staged: &mut Staged,
    committed: &Overlay<'_, I>,
    objects: &mut Lookups<'_, impl Objects>,
    entry: JournalEntry,
    mode: Mode,
    entries: &mut Vec<JournalEntry>,
    links: &mut Vec<Encoded>,
) -> Result<(), ApplyError> {
    match entry {
        JournalEntry::Insert { reference, .. } => {
            objects.principal_subject(&reference)?;
            if staged.head(committed, &reference)?.is_some() {
                if mode == Mode::Admission {
                    return Err(TxRejection::AlreadyInserted(reference).into());
                }
                return Ok(()); // duplicate inserts collapse
            }
            staged.heads.insert(reference, crate::model::nil_cid());
            entries.push(entry);
        }
        JournalEntry::Update {
            reference,
            chain,
            chain_previous,
            timestamp,
        } => {
            let subject = objects.principal_subject(&reference)?;
            let head = staged
                .head(committed, &reference)?
                .ok_or(TxRejection::NotInserted(reference))?;
            update_cell(objects, reference, chain, chain_previous, subject)?;
            if staged.cells.contains(&chain) || committed.cell_journaled(&chain)? {
                return Ok(()); // already journaled: replay is a no-op
            }
            if head == chain_previous {
                staged.heads.insert(reference, chain);
                staged.cells.insert(chain);
                entries.push(entry);
                return Ok(());
            }
            if mode == Mode::Admission {
                let stale = StaleHead {
                    reference,
                    previous: chain_previous,
                    head,
                };
                return Err(TxRejection::StaleHead(Box::new(stale)).into());
            }
            let link = Object::Cell(ChainCell::new(
                CellKind::chain_link(subject, chain),
                reference,
                head,
            ));
            let encoded = link.encode().map_err(|e| {
                ApplyError::Index(IndexError::Inconsistent(format!(
                    "cannot encode link cell: {e}"
                )))
            })?;
            staged.heads.insert(reference, encoded.cid);
            staged.cells.insert(chain);
            staged.cells.insert(encoded.cid);
            entries.push(JournalEntry::ChainMerge {
                reference,
                chain: encoded.cid,
                chain_previous: head,
                chain_merge: chain,
                timestamp,
            });
            links.push(encoded);
        }
        JournalEntry::ChainMerge { .. } => return Err(TxRejection::ClientMerge.into()),
    }
    Ok(())
}
