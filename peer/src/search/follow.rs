//! Following the canonical chain: the index is brought to the chain's tip block by block, and
//! a reorganisation is undone down to the last block both chains share before the new branch is
//! applied. What a block does to a canonical is read from the block's entries alone (as the
//! journal's index does: an insert stands at Nil, an update or merge at its new head), and each
//! followed block keeps an undo record (where its canonicals stood before), so the index is a
//! function of the chain it followed — never of when it looked.
//!
//! One [`sync`] step applies the blocks that fit a memory budget (what it holds until it
//! commits: each entry's undo record and standing, [`HELD_PER_ENTRY`] bytes; one block even when
//! it alone is over) and commits once; a chain that changes under a step (a reorganisation while
//! it read) makes the step start again, never commit a mix of two chains. Where the step's
//! canonicals stood in the last commit is read once for the whole step, straight from each
//! segment's term dictionary (no query, no scoring), and a canonical with no record there is
//! written without a delete first.
//! Records are derived and written one at a time, so the tantivy writer's own budget bounds
//! them.

use std::collections::{HashMap, HashSet};

use super::engine::{Engine, Undo};
use super::record::{derive, Standing};
use super::SearchError;
use crate::journal::{Block, Index, Journal, Objects};
use crate::model::{nil_cid, Cid, JournalEntry, Object};

/// What the follower reads of the chain and the datastore.
pub trait ChainSource {
    /// The canonical chain's tip height.
    fn tip_height(&self) -> Result<u64, SearchError>;
    /// The canonical chain's block at `height`.
    fn block_at(&self, height: u64) -> Result<Option<Cid>, SearchError>;
    /// A block.
    fn block(&self, cid: &Cid) -> Result<Block, SearchError>;
    /// An object of the datastore.
    fn object(&self, cid: &Cid) -> Option<Object>;
}

impl<I: Index, O: Objects> ChainSource for Journal<I, O> {
    fn tip_height(&self) -> Result<u64, SearchError> {
        Ok(self.tip().map_err(SearchError::chain)?.1)
    }

    fn block_at(&self, height: u64) -> Result<Option<Cid>, SearchError> {
        self.index().block_at(height).map_err(SearchError::chain)
    }

    fn block(&self, cid: &Cid) -> Result<Block, SearchError> {
        self.load_block(cid).map_err(SearchError::chain)
    }

    fn object(&self, cid: &Cid) -> Option<Object> {
        self.objects().object(cid)
    }
}

/// Memory one entry of a followed block holds until its step commits: its undo record and the
/// standing of its canonical in the step's map (counted twice for the map's overhead).
pub const HELD_PER_ENTRY: usize =
    std::mem::size_of::<Undo>() + 2 * std::mem::size_of::<(Cid, Option<Standing>)>();
// docs/peer-contract.md says it: under 1 KiB an entry.
const _: () = assert!(HELD_PER_ENTRY < 1024);

/// What one [`sync`] step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced {
    /// Followed blocks undone (a reorganisation, or a rebuild).
    pub undone: u64,
    /// Blocks applied.
    pub applied: u64,
    /// The index's tip height after the step.
    pub height: u64,
    /// The chain has more blocks: call again.
    pub behind: bool,
}

/// Where `entry` leaves its canonical.
fn head_after(entry: &JournalEntry) -> Cid {
    match *entry {
        JournalEntry::Insert { .. } => nil_cid(),
        JournalEntry::Update { chain, .. } | JournalEntry::ChainMerge { chain, .. } => chain,
    }
}

/// The highest height at which the index and the chain hold the same block.
fn common_ancestor(
    engine: &Engine,
    source: &impl ChainSource,
    chain_tip: u64,
) -> Result<Option<u64>, SearchError> {
    let Some(mine) = engine.tip()? else {
        return Ok(None);
    };
    let mut height = mine.min(chain_tip);
    loop {
        let followed = engine.followed_at(height)?;
        if followed.is_some() && followed == source.block_at(height)? {
            return Ok(Some(height));
        }
        if height == 0 {
            return Ok(None);
        }
        height -= 1;
    }
}

/// Changes of one step, before they are written.
struct Step {
    /// The index is rebuilt from nothing: what it holds does not count.
    fresh: bool,
    standings: HashMap<Cid, Option<Standing>>,
    /// Canonicals the last commit holds no record of (looked up, none found): writing theirs
    /// deletes nothing first.
    unrecorded: HashSet<Cid>,
}

impl Step {
    /// Reads from the last commit, all at once, where the canonicals of `blocks` stood that
    /// the step does not know yet.
    fn look_up(&mut self, engine: &Engine, blocks: &[Read]) -> Result<(), SearchError> {
        let unknown: Vec<Cid> = blocks
            .iter()
            .flat_map(|read| read.changes.iter().map(|(canonical, _)| *canonical))
            .filter(|canonical| !self.standings.contains_key(canonical))
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let mut committed = match self.fresh {
            true => HashMap::new(),
            false => engine.standings(&unknown)?,
        };
        for canonical in unknown {
            let standing = committed.remove(&canonical);
            if standing.is_none() {
                self.unrecorded.insert(canonical);
            }
            self.standings.insert(canonical, standing);
        }
        Ok(())
    }
}

/// A block of the chain as a step reads it: where each entry leaves its canonical.
struct Read {
    height: u64,
    cid: Cid,
    time_ms: u64,
    changes: Vec<(Cid, Cid)>,
}

/// Brings the index closer to `source`'s canonical chain by the blocks whose entries fit in
/// `max_bytes` together ([`HELD_PER_ENTRY`] each; one block even when it alone is over) and
/// commits.
pub fn sync(
    engine: &Engine,
    source: &impl ChainSource,
    max_bytes: usize,
) -> Result<Synced, SearchError> {
    for _ in 0..8 {
        match step(engine, source, max_bytes)? {
            Some(synced) => return Ok(synced),
            // The chain moved under the step: nothing was written; read it again.
            None => engine.rollback()?,
        }
    }
    Err(SearchError::Unstable)
}

fn step(
    engine: &Engine,
    source: &impl ChainSource,
    max_bytes: usize,
) -> Result<Option<Synced>, SearchError> {
    let chain_tip = source.tip_height()?;
    let ancestor = common_ancestor(engine, source, chain_tip)?;
    let mine = engine.tip()?;
    // Nothing in common with the chain (another genesis): start again from nothing.
    let fresh = ancestor.is_none();
    let mut step = Step {
        fresh,
        standings: HashMap::new(),
        unrecorded: HashSet::new(),
    };
    // Undo the followed blocks above the ancestor, newest first.
    let mut undone = vec![];
    if let (Some(top), Some(ancestor)) = (mine, ancestor) {
        for height in (ancestor + 1..=top).rev() {
            if let Some((_, undo)) = engine.block_at(height)? {
                for change in undo.iter().rev() {
                    step.standings.insert(change.canonical, change.before);
                }
            }
            undone.push(height);
        }
    }
    // Read the chain's blocks above the ancestor, while they fit the budget.
    let first = ancestor.map_or(0, |a| a + 1);
    let mut parent = match ancestor {
        Some(a) => source.block_at(a)?,
        None => None,
    };
    let mut read = vec![];
    let mut held = 0usize;
    for height in first..=chain_tip {
        let Some(cid) = source.block_at(height)? else {
            return Ok(None);
        };
        let block = source.block(&cid)?;
        if height > 0 && Some(block.chain) != parent {
            return Ok(None);
        }
        let cost = block.entries.len().saturating_mul(HELD_PER_ENTRY);
        if !read.is_empty() && held.saturating_add(cost) > max_bytes {
            break;
        }
        held = held.saturating_add(cost);
        let changes = block
            .entries
            .iter()
            .map(|entry| (entry.reference(), head_after(entry)))
            .collect();
        read.push(Read {
            height,
            cid,
            time_ms: block.timestamp_ms,
            changes,
        });
        parent = Some(cid);
    }
    // Apply them: where each canonical stood before (its undo record) and after.
    step.look_up(engine, &read)?;
    let mut applied = Vec::with_capacity(read.len());
    for block in read {
        let mut undo = Vec::with_capacity(block.changes.len());
        for (canonical, head) in block.changes {
            let before = step.standings.get(&canonical).copied().flatten();
            undo.push(Undo { canonical, before });
            let after = Standing {
                head,
                height: block.height,
                block: block.cid,
                time_ms: block.time_ms,
            };
            step.standings.insert(canonical, Some(after));
        }
        applied.push((block.height, block.cid, undo));
    }
    let last = applied.last().map_or(chain_tip, |(h, _, _)| *h);
    // The chain must still hold what was read before anything is written.
    if let Some((height, cid, _)) = applied.last() {
        if source.block_at(*height)? != Some(*cid) {
            return Ok(None);
        }
    }
    if undone.is_empty() && applied.is_empty() {
        return Ok(Some(Synced {
            undone: 0,
            applied: 0,
            height: chain_tip,
            behind: false,
        }));
    }
    // Nothing in common with what the index followed: forget it all.
    let cleared = fresh && mine.is_some();
    if cleared {
        engine.clear()?;
    }
    for height in &undone {
        engine.delete_block(*height)?;
    }
    for (canonical, standing) in std::mem::take(&mut step.standings) {
        let record = standing.and_then(|s| derive(canonical, s, |c| source.object(c)));
        // A rebuild's clear and a canonical the last commit has no record of leave nothing
        // to replace (a delete costs a term look-up in every segment at the commit).
        let recorded = !cleared && !step.unrecorded.contains(&canonical);
        engine.put(&canonical, record.as_ref(), recorded)?;
    }
    for (height, cid, undo) in &applied {
        engine.add_block(*height, cid, undo)?;
    }
    engine.commit()?;
    let undone = match fresh {
        true => mine.map_or(0, |top| top + 1),
        false => undone.len() as u64,
    };
    Ok(Some(Synced {
        undone,
        applied: applied.len() as u64,
        height: last,
        behind: last < chain_tip,
    }))
}
