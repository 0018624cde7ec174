//! The journal as a state machine: a tree of verified blocks, the canonical chain chosen by fork
//! choice, and the index at its tip.
//!
//! Blocks on the tip are verified and applied at once. Blocks on a side branch are checked
//! statelessly and kept; when a branch becomes heavier, the index rolls back to the common
//! ancestor and the branch is applied block by block with full verification (a failure marks the
//! block invalid and restores the previous chain). Transactions of the abandoned blocks that the
//! new chain lacks are handed back as orphans, to be replayed through verification and merge.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tracing::{debug, info, info_span, warn};

use super::block::Block;
use super::evidence::{Equivocation, EvidenceBook};
use super::finality::Finality;
use super::fork::{Schedule, TipScore};
use super::index::{delta_of, Index, IndexError};
use super::membership::{Membership, Record};
use super::merge::{derive, Derivation, Mode};
use super::objects::Objects;
use super::timing::check_not_ahead;
use super::transaction::{Transaction, TxId};
use super::verify::{
    check_block, check_transaction, BlockRejection, ChainCache, Rules, TxRejection,
};
use crate::model::{Cid, JournalEntry, Object};
use crate::time::{UnixMillis, UnixSeconds};
use crate::trust::{Chain, PublicKey, SecretKey};

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
            self.headers.insert(
                cid,
                Header {
                    parent: block.chain,
                    height: block.height,
                    timestamp_ms: block.timestamp_ms,
                    weight,
                    committer: block.committer_key(),
                    empty: block.transactions.is_empty(),
                },
            );
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

    /// Replaces the committer schedule (membership changed).
    ///
    /// Every known header is weighed again under the new rotation (fork choice must not depend
    /// on the rotation a peer happened to hold when each block arrived, or peers that learnt of
    /// each other in another order never agree), and the chain moves to the heaviest tip if that
    /// changed.
    pub fn set_schedule(&mut self, schedule: Schedule) -> AddResult {
        self.schedule = schedule;
        let mut order: Vec<(u64, Cid)> = self.headers.iter().map(|(c, h)| (h.height, *c)).collect();
        order.sort_by_key(|(height, cid)| (*height, cid.to_bytes()));
        for (height, cid) in order {
            if height == 0 {
                continue;
            }
            let Some(header) = self.headers.get(&cid).copied() else {
                continue;
            };
            let parent = self.headers.get(&header.parent).map_or(0, |p| p.weight);
            let weight = parent + self.schedule.weight(height, header.committer);
            if let Some(h) = self.headers.get_mut(&cid) {
                h.weight = weight;
            }
        }
        let (tip, _) = self.tip()?;
        let best = self
            .headers
            .keys()
            .filter_map(|cid| self.score(*cid))
            .max_by(|a, b| a.compare(b))
            .map(|score| score.cid);
        match best {
            Some(best) if best != tip => self.reorganize(best),
            _ => Ok(Ok(Added::Known)),
        }
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
        Block::from_bytes(&bytes).map_err(|_| JournalError::MissingBlock(*cid))
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

    /// Checks a transaction for admission: stateless rules at `now`, then the DESIGN entry rules
    /// against the current index (no merging).
    pub fn admit(
        &mut self,
        tx: &Transaction,
        now: UnixSeconds,
    ) -> Result<Result<(), TxRejection>, JournalError> {
        if let Err(reason) = check_transaction(tx, &self.rules, &self.cache, now) {
            return Ok(Err(reason));
        }
        self.admit_checked(tx)
    }

    /// The index-dependent half of [`Journal::admit`], for a transaction whose stateless checks
    /// (`verify::check_transaction`) the caller already ran.
    pub fn admit_checked(&self, tx: &Transaction) -> Result<Result<(), TxRejection>, JournalError> {
        if let Some(revoked) = self.revoked_on_tip(&tx.certificate)? {
            return Ok(Err(TxRejection::Certificate(revoked)));
        }
        let derivation = derive(
            &self.index,
            &self.objects,
            vec![tx.clone()],
            Mode::Admission,
        )?;
        Ok(match derivation.rejected.into_iter().next() {
            Some((_, reason)) => Err(reason),
            None => Ok(()),
        })
    }

    /// The earliest timestamp (ms) `committer` may give the next block on the tip: under the
    /// network's commit timing its slot after the tip's timestamp (`None`: it holds no seat),
    /// otherwise just after the tip's.
    pub fn earliest_commit(
        &self,
        committer: &PublicKey,
    ) -> Result<Option<UnixMillis>, JournalError> {
        let (tip, height) = self.tip()?;
        let parent_ms = self.headers.get(&tip).map_or(0, |h| h.timestamp_ms);
        Ok(match &self.rules.timing {
            Some(timing) => timing.earliest(&self.schedule(), height + 1, committer, parent_ms),
            None => Some(parent_ms + 1),
        })
    }

    /// Builds and signs the next block from `candidates` (invalid or duplicate ones are left
    /// out and returned with their reason; those that do not fit the block size are neither
    /// included nor rejected: the caller keeps them for the next block), applies it, and
    /// returns it. The block is timestamped `timestamp_ms`, or just after its parent if that is
    /// later.
    pub fn commit(
        &mut self,
        committer: (&SecretKey, &Chain),
        candidates: Vec<Transaction>,
        timestamp_ms: UnixMillis,
    ) -> Result<(Block, Vec<(TxId, TxRejection)>), JournalError> {
        self.commit_with_records(committer, candidates, vec![], timestamp_ms)
    }

    /// [`Journal::commit`] of a block that also carries those of the membership `records`
    /// that hold on the tip (the others are left out).
    pub fn commit_with_records(
        &mut self,
        committer: (&SecretKey, &Chain),
        candidates: Vec<Transaction>,
        records: Vec<Record>,
        timestamp_ms: UnixMillis,
    ) -> Result<(Block, Vec<(TxId, TxRejection)>), JournalError> {
        let (tip, height) = self.tip()?;
        let parent_ms = self.headers.get(&tip).map_or(0, |h| h.timestamp_ms);
        let timestamp_ms = timestamp_ms.max(parent_ms + 1);
        let timestamp: UnixSeconds = timestamp_ms / 1000;
        let records = self.records_for(&tip, height + 1, timestamp, records);
        let rules = self.rules_after(&tip);
        let mut rejected = vec![];
        let mut valid = Vec::with_capacity(candidates.len());
        let budget = self.rules.tx_budget();
        let mut used = 0;
        for tx in candidates.into_iter().take(self.rules.max_txs_per_block) {
            let size = tx.to_bytes().len();
            if used + size > budget {
                break; // the rest waits for the next block
            }
            match check_transaction(&tx, &rules, &self.cache, timestamp) {
                Ok(()) => {
                    used += size;
                    valid.push(tx);
                }
                Err(reason) => rejected.push((tx.id(), reason)),
            }
        }
        let (block, derivation) = loop {
            let derivation = derive(&self.index, &self.objects, valid.clone(), Mode::Commit)?;
            let block = Block::commit_with_records(
                (tip, height),
                &self.rules.network,
                timestamp_ms,
                committer,
                records.clone(),
                derivation.accepted.clone(),
                derivation.entries.clone(),
            );
            if block.to_bytes().len() <= self.rules.max_block_bytes || valid.len() <= 1 {
                break (block, derivation);
            }
            valid.truncate(valid.len() / 2);
        };
        rejected.extend(derivation.rejected.iter().cloned());
        let cid = self.store_block(&block)?;
        if let Some(Ok(membership)) = self.child_membership(&tip, &block) {
            self.remember_membership(cid, membership);
        }
        self.apply_derived(cid, &block, derivation)?;
        Ok((block, rejected))
    }

    /// Adds a block received from anywhere at `now_ms` on the receiver's clock: verifies it and
    /// updates the chain.
    pub fn add_block(&mut self, block: &Block, now_ms: UnixMillis) -> AddResult {
        self.add_encoded_block(block, &block.to_bytes(), now_ms)
    }

    /// [`Journal::add_block`] for a block whose canonical encoding is at hand (`bytes`, e.g.
    /// what [`Block::from_bytes`] decoded, which accepts only canonical encodings).
    pub fn add_encoded_block(
        &mut self,
        block: &Block,
        bytes: &[u8],
        now_ms: UnixMillis,
    ) -> AddResult {
        let cid = crate::model::codec::dag_cbor_cid(bytes);
        let _span = info_span!("add_block", %cid, height = block.height).entered();
        if self.headers.contains_key(&cid) {
            return Ok(Ok(Added::Known));
        }
        if block.is_genesis() {
            return Ok(Err(BlockRejection::WrongGenesis(cid)));
        }
        if self.invalid.contains(&cid) || self.invalid.contains(&block.chain) {
            return Ok(Err(BlockRejection::InvalidParent(block.chain)));
        }
        // Not stored, not marked invalid: the same block may be taken once the clock caught up.
        let skew = Duration::from_secs(self.rules.max_clock_skew);
        if let Err(reason) = check_not_ahead(block, now_ms, skew) {
            return Ok(Err(reason));
        }
        let Some(parent) = self.headers.get(&block.chain).copied() else {
            return Ok(Err(BlockRejection::UnknownParent(block.chain)));
        };
        let membership = match self.child_membership(&block.chain, block) {
            Some(Err(reason)) => {
                warn!(%reason, "block refused");
                return Ok(Err(reason));
            }
            Some(Ok(membership)) => Some(membership),
            None => None,
        };
        let schedule = membership
            .as_ref()
            .map_or_else(|| self.schedule.clone(), |m| m.seats().clone());
        if let Err(reason) = check_block(
            block,
            bytes.len(),
            (parent.height, parent.timestamp_ms),
            &self.rules_after(&block.chain),
            &self.cache,
            &schedule,
        ) {
            warn!(%reason, "block refused");
            return Ok(Err(reason));
        }
        let (tip, _) = self.tip()?;
        self.store_block_bytes(&cid, bytes)?;
        if let Some(membership) = membership {
            self.remember_membership(cid, membership);
        }
        if block.chain == tip {
            if let Err(reason) = self.apply_verified(cid, block)? {
                // A block refused for an object this store lacks may be taken once it arrives.
                if reason.missing_object().is_none() {
                    self.invalid.insert(cid);
                }
                self.forget_membership(&cid);
                return Ok(Err(reason));
            }
            return Ok(Ok(Added::Extended));
        }
        self.insert_header(cid, block, parent);
        if !self.prefer(cid, tip) {
            debug!("kept on a side branch");
            return Ok(Ok(Added::SideBranch));
        }
        self.reorganize(cid)
    }

    fn insert_header(&mut self, cid: Cid, block: &Block, parent: Header) {
        if let Some(committer) = block.committer_key() {
            let first = *self.by_slot.entry((block.chain, committer)).or_insert(cid);
            if first != cid {
                let found = Equivocation {
                    culprit: committer,
                    height: block.height,
                    parent: block.chain,
                    blocks: [first, cid],
                };
                if self.evidence.record(found) {
                    warn!(culprit = %committer, height = block.height, first = %first, second = %cid,
                        "evidence: the committer signed two blocks on one parent");
                }
            }
        }
        let weight = parent.weight + self.weigh(&cid, block.height, block.committer_key());
        self.headers.insert(
            cid,
            Header {
                parent: block.chain,
                height: block.height,
                timestamp_ms: block.timestamp_ms,
                weight,
                committer: block.committer_key(),
                empty: block.transactions.is_empty(),
            },
        );
    }

    /// Verifies `block` (whose parent is the tip) against the index and applies it.
    fn apply_verified(
        &mut self,
        cid: Cid,
        block: &Block,
    ) -> Result<Result<(), BlockRejection>, JournalError> {
        let derivation = derive(
            &self.index,
            &self.objects,
            block.transactions.clone(),
            Mode::Commit,
        )?;
        if let Some((id, reason)) = derivation.rejected.first() {
            let index = block
                .transactions
                .iter()
                .position(|t| t.id() == *id)
                .unwrap_or(0);
            return Ok(Err(BlockRejection::Transaction {
                index,
                id: *id,
                reason: Box::new(reason.clone()),
            }));
        }
        if derivation.entries != block.entries {
            let at = derivation
                .entries
                .iter()
                .zip(&block.entries)
                .position(|(a, b)| a != b)
                .unwrap_or(derivation.entries.len().min(block.entries.len()));
            return Ok(Err(BlockRejection::WrongEntries { at }));
        }
        self.apply_derived(cid, block, derivation)?;
        Ok(Ok(()))
    }

    /// Applies a derived block whose bytes are already stored.
    fn apply_derived(
        &mut self,
        cid: Cid,
        block: &Block,
        derivation: Derivation,
    ) -> Result<(), JournalError> {
        for link in &derivation.link_cells {
            self.objects
                .put_encoded(&link.cid, &link.bytes)
                .map_err(JournalError::Objects)?;
        }
        let txs = derivation.accepted_ids;
        let delta = delta_of(&self.index, cid, block.height, &block.entries, txs)?;
        self.index.apply(&delta)?;
        if !self.headers.contains_key(&cid) {
            if let Some(parent) = self.headers.get(&block.chain).copied() {
                self.insert_header(cid, block, parent);
            }
        }
        Ok(())
    }

    /// Branch from the canonical chain to `tip`: the blocks not on the canonical chain, oldest
    /// first, and the height of the common ancestor.
    fn branch_to(&self, tip: Cid) -> Result<(Vec<Cid>, u64), JournalError> {
        let mut branch = vec![];
        let mut cursor = tip;
        loop {
            let header = self
                .headers
                .get(&cursor)
                .ok_or(JournalError::MissingBlock(cursor))?;
            if self.index.block_at(header.height)? == Some(cursor) {
                branch.reverse();
                return Ok((branch, header.height));
            }
            branch.push(cursor);
            cursor = header.parent;
        }
    }

    fn reorganize(&mut self, new_tip: Cid) -> AddResult {
        let (old_tip, old_height) = self.tip()?;
        let (branch, ancestor) = self.branch_to(new_tip)?;
        let _span = info_span!("reorganize", %old_tip, %new_tip, ancestor).entered();
        let mut abandoned = vec![];
        for _ in ancestor..old_height {
            let delta = self.index.revert_tip()?;
            abandoned.push(delta.block);
        }
        abandoned.reverse();
        for (i, cid) in branch.iter().enumerate() {
            let block = self.load_block(cid)?;
            if let Err(reason) = self.apply_verified(*cid, &block)? {
                warn!(block = %cid, %reason, "branch holds an invalid block: staying on the old chain");
                for bad in &branch[i..] {
                    if reason.missing_object().is_none() {
                        self.invalid.insert(*bad);
                    }
                    self.headers.remove(bad);
                    self.forget_membership(bad);
                }
                for _ in 0..i {
                    self.index.revert_tip()?;
                }
                for old in &abandoned {
                    let block = self.load_block(old)?;
                    if let Err(reason) = self.apply_verified(*old, &block)? {
                        return Err(JournalError::Genesis(format!(
                            "cannot restore block {old}: {reason}"
                        )));
                    }
                }
                return Ok(Err(reason));
            }
        }
        let mut orphans = vec![];
        for cid in &abandoned {
            for tx in self.load_block(cid)?.transactions {
                if self.index.tx_height(&tx.id())?.is_none() {
                    orphans.push(tx);
                }
            }
        }
        info!(
            abandoned = abandoned.len(),
            applied = branch.len(),
            orphans = orphans.len(),
            "chain reorganised"
        );
        Ok(Ok(Added::Reorganized {
            old_tip,
            ancestor,
            orphans,
        }))
    }

    /// Transactions in known blocks off the canonical chain that the chain has not committed,
    /// oldest first (by timestamp, then id): what partition healing replays.
    pub fn side_transactions(&self) -> Result<Vec<Transaction>, JournalError> {
        let mut seen = HashSet::new();
        let mut out = vec![];
        for (cid, header) in &self.headers {
            if self.index.block_at(header.height)? == Some(*cid) {
                continue;
            }
            for tx in self.load_block(cid)?.transactions {
                let id = tx.id();
                if self.index.tx_height(&id)?.is_none() && seen.insert(id) {
                    out.push(tx);
                }
            }
        }
        out.sort_by_key(|tx| (tx.body.timestamp, tx.id()));
        Ok(out)
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

#[path = "ledger_finality.rs"]
mod ledger_finality;
#[path = "ledger_membership.rs"]
mod ledger_membership;
pub use ledger_finality::VoteAdded;
