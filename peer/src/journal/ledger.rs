//! The journal as a state machine: a tree of verified blocks, the canonical chain chosen by fork
//! choice, and the index at its tip.
//!
//! Blocks on the tip are verified and applied at once. Blocks on a side branch are checked
//! statelessly and kept; when a branch becomes heavier, the index rolls back to the common
//! ancestor and the branch is applied block by block with full verification (a failure marks the
//! block invalid and restores the previous chain). Transactions of the abandoned blocks that the
//! new chain lacks are handed back as orphans, to be replayed through verification and merge.
//!
//! This file holds the state and opening it; the steps live beside it: `ledger_add` (blocks
//! received), `ledger_commit` (admission and the committer's blocks), `ledger_reorg` (the chain
//! moving to another branch), `ledger_membership` (members and seats per block) and
//! `ledger_finality` (votes and fork choice under finality).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::block::Block;
use super::evidence::EvidenceBook;
use super::finality::Finality;
use super::fork::{Schedule, TipScore};
use super::index::{delta_of, Index, IndexError};
use super::membership::Membership;
use super::objects::Objects;
use super::transaction::Transaction;
use super::verify::{BlockRejection, ChainCache, Rules};
use crate::model::{Cid, JournalEntry, Object};
use crate::time::UnixMillis;
use crate::trust::PublicKey;

/// What is known of a block that passed stateless checks.
#[derive(Debug, Clone, Copy)]
struct Header {
    parent: Cid,
    height: u64,
    timestamp_ms: UnixMillis,
    weight: u64,
    committer: Option<PublicKey>,
    /// Whether it holds no transaction.
    empty: bool,
}

impl Header {
    /// The header of `block`, whose chain up to it weighs `weight`.
    fn of(block: &Block, weight: u64) -> Self {
        Self {
            parent: block.chain,
            height: block.height,
            timestamp_ms: block.timestamp_ms,
            weight,
            committer: block.committer_key(),
            empty: block.transactions.is_empty(),
        }
    }
}

/// What adding a block did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Added {
    /// Already known.
    Known,
    /// It extends the canonical chain.
    Extended,
    /// It is on a side branch that is not (yet) heavier.
    SideBranch,
    /// Its branch won: the chain reorganised; these transactions left the chain and must be
    /// replayed.
    Reorganized {
        /// The tip before.
        old_tip: Cid,
        /// Height of the last block the old and the new chain share (the blocks above it
        /// changed).
        ancestor: u64,
        /// Transactions of abandoned blocks missing from the new chain.
        orphans: Vec<Transaction>,
    },
}

/// Why the journal failed (as opposed to refusing a block).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The index failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The object store failed.
    #[error("object store: {0}")]
    Objects(String),
    /// A block the chain needs cannot be read.
    #[error("block {0} is missing or corrupt in the datastore")]
    MissingBlock(Cid),
    /// The genesis block does not match the index.
    #[error("{0}")]
    Genesis(String),
}

/// The journal of one node.
pub struct Journal<I, O> {
    rules: Rules,
    schedule: Schedule,
    index: I,
    objects: O,
    genesis: Cid,
    headers: HashMap<Cid, Header>,
    /// The block each committer signed on each parent (equivocation shows up here).
    by_slot: HashMap<(Cid, PublicKey), Cid>,
    evidence: EvidenceBook,
    invalid: HashSet<Cid>,
    cache: Arc<ChainCache>,
    /// Vote accounting, under network parameters (`None`: no finality).
    finality: Option<Finality>,
    /// Under network parameters: the membership after each known block (`None`: the rotation
    /// is `schedule`, each node's view of its peers).
    book: Option<HashMap<Cid, Arc<Membership>>>,
}

/// Block outcome or a refusal.
pub type AddResult = Result<Result<Added, BlockRejection>, JournalError>;

impl<I: Index, O: Objects> Journal<I, O> {
    /// Opens the journal over `index` and `objects`, applying `genesis` if the index is empty and
    /// reloading the headers of the canonical chain otherwise.
    pub fn open(
        rules: Rules,
        schedule: Schedule,
        index: I,
        objects: O,
        genesis: &Block,
    ) -> Result<Self, JournalError> {
        Self::open_inner(rules, schedule, None, index, objects, genesis)
    }

    /// [`Journal::open`] under network parameters: membership is a function of the chain,
    /// starting from `initial` at genesis (docs/consensus.md, "Members and seats").
    pub fn open_with_membership(
        rules: Rules,
        initial: Membership,
        index: I,
        objects: O,
        genesis: &Block,
    ) -> Result<Self, JournalError> {
        let schedule = initial.seats().clone();
        Self::open_inner(rules, schedule, Some(initial), index, objects, genesis)
    }

    fn open_inner(
        rules: Rules,
        schedule: Schedule,
        initial: Option<Membership>,
        index: I,
        objects: O,
        genesis: &Block,
    ) -> Result<Self, JournalError> {
        let genesis_cid = genesis.cid();
        let book = initial.map(|m| HashMap::from([(genesis_cid, Arc::new(m))]));
        let mut journal = Self {
            rules,
            schedule,
            index,
            objects,
            genesis: genesis_cid,
            headers: HashMap::new(),
            by_slot: HashMap::new(),
            evidence: EvidenceBook::default(),
            invalid: HashSet::new(),
            cache: Arc::default(),
            finality: None,
            book,
        };
        match journal.index.block_at(0)? {
            Some(existing) if existing != genesis_cid => {
                return Err(JournalError::Genesis(format!(
                    "the index holds genesis {existing}, but this network's genesis is {genesis_cid}"
                )))
            }
            Some(_) => journal.load_headers()?,
            None => {
                for entry in &genesis.entries {
                    if let JournalEntry::Insert { reference, .. } | JournalEntry::Update { reference, .. } = entry {
                        if !journal.objects.contains(reference) {
                            return Err(JournalError::Genesis(format!("bootstrap object {reference} is not in the datastore")));
                        }
                    }
                }
                journal.store_block(genesis)?;
                let delta = delta_of(&journal.index, genesis_cid, 0, &genesis.entries, vec![])?;
                journal.index.apply(&delta)?;
                journal.headers.insert(
                    genesis_cid,
                    Header { parent: genesis.chain, height: 0, timestamp_ms: genesis.timestamp_ms, weight: 0, committer: None, empty: true },
                );
            }
        }
        Ok(journal)
    }

    fn load_headers(&mut self) -> Result<(), JournalError> {
        let Some((_, tip_height)) = self.index.tip()? else {
            return Ok(());
        };
        let mut weight = 0;
        for height in 0..=tip_height {
            let cid = self
                .index
                .block_at(height)?
                .ok_or(JournalError::MissingBlock(self.genesis))?;
            let block = self.load_block(&cid)?;
            if height > 0 {
                // Verified when it was taken: replayed without checks.
                self.replay_membership(cid, &block);
            }
            weight += self.weigh(&cid, block.height, block.committer_key());
            if let Some(committer) = block.committer_key() {
                self.by_slot.insert((block.chain, committer), cid);
            }
            self.headers.insert(cid, Header::of(&block, weight));
        }
        Ok(())
    }

    /// The verification rules.
    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Replaces the revocations (and forgets cached checks).
    pub fn set_rules(&mut self, rules: Rules) {
        self.rules = rules;
        self.cache.clear();
    }

    /// The cache of verification results, to share with checks made outside the journal.
    pub fn cache(&self) -> Arc<ChainCache> {
        self.cache.clone()
    }

    /// The evidence of misbehaviour found in the blocks this journal was given.
    pub fn evidence(&self) -> &EvidenceBook {
        &self.evidence
    }

    /// The index at the tip.
    pub fn index(&self) -> &I {
        &self.index
    }

    /// The object store.
    pub fn objects(&self) -> &O {
        &self.objects
    }

    /// The genesis block's CID.
    pub fn genesis(&self) -> Cid {
        self.genesis
    }

    /// The tip of the canonical chain.
    pub fn tip(&self) -> Result<(Cid, u64), JournalError> {
        self.index
            .tip()?
            .ok_or_else(|| JournalError::Genesis("the journal has no genesis".into()))
    }

    /// Whether the block is known (valid so far).
    pub fn knows(&self, cid: &Cid) -> bool {
        self.headers.contains_key(cid)
    }

    /// Reads a stored block.
    pub fn load_block(&self, cid: &Cid) -> Result<Block, JournalError> {
        let bytes = self
            .objects
            .get_bytes(cid)
            .ok_or(JournalError::MissingBlock(*cid))?;
        Block::from_stored(&bytes).map_err(|_| JournalError::MissingBlock(*cid))
    }

    fn store_block(&self, block: &Block) -> Result<Cid, JournalError> {
        let bytes = block.to_bytes();
        let cid = crate::model::codec::dag_cbor_cid(&bytes);
        self.store_block_bytes(&cid, &bytes)?;
        Ok(cid)
    }

    fn store_block_bytes(&self, cid: &Cid, bytes: &[u8]) -> Result<(), JournalError> {
        self.objects
            .put_encoded(cid, bytes)
            .map_err(JournalError::Objects)
    }

    /// The tip's fork-choice score (its chain's weight, height and CID).
    pub fn tip_score(&self) -> Option<TipScore> {
        let (tip, _) = self.tip().ok()?;
        self.score(tip)
    }

    fn score(&self, cid: Cid) -> Option<TipScore> {
        self.headers.get(&cid).map(|h| TipScore {
            weight: h.weight,
            height: h.height,
            cid,
        })
    }

    /// The history of a canonical: its chain of cells from the head back to Nil.
    pub fn history(
        &self,
        canonical: &Cid,
        limit: usize,
    ) -> Result<Vec<(Cid, Object)>, JournalError> {
        let mut out = vec![];
        let Some(mut cursor) = self.index.head(canonical)? else {
            return Ok(out);
        };
        let nil = crate::model::nil_cid();
        while cursor != nil && out.len() < limit {
            let object = self
                .objects
                .object(&cursor)
                .ok_or(JournalError::MissingBlock(cursor))?;
            let next = match &object {
                Object::Cell(cell) => cell.chain,
                _ => nil,
            };
            out.push((cursor, object));
            cursor = next;
        }
        Ok(out)
    }
}

#[path = "ledger_add.rs"]
mod ledger_add;
#[path = "ledger_commit.rs"]
mod ledger_commit;
#[path = "ledger_finality.rs"]
mod ledger_finality;
#[path = "ledger_membership.rs"]
mod ledger_membership;
#[path = "ledger_reorg.rs"]
mod ledger_reorg;
pub use ledger_finality::VoteAdded;
