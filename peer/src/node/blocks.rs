//! Blocks at a node: committing one in this peer's turn, taking one from a peer (with the
//! objects it references), and serving blocks and ranges to syncing peers. Never touches the
//! network.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use tracing::{info, info_span, warn};

use super::{BlockBundle, Node, NodeError, NodeEvent, ReceivedBlock, State};
use crate::journal::verify::check_transaction;
use crate::journal::{Added, Block, BlockRejection, IndexRead, Transaction, TxId, TxRejection};
use crate::model::Cid;
use crate::trust::Level;

/// Bytes of objects sent with a block (the rest are fetched one by one): with the block itself
/// (at most `Rules::max_block_bytes`) a bundle stays under the 10 MiB response limit.
pub const BUNDLE_OBJECT_BUDGET: usize = 6 * 1024 * 1024;

/// The canonical blocks from height `since` up to the tip, oldest first: those that joined the
/// chain when it grew from a tip at `since - 1` or reorganised above a common ancestor at
/// `since - 1` (`known`: one of them already in memory).
pub(super) fn joined(
    state: &State,
    since: u64,
    known: Option<(Cid, Arc<Block>)>,
) -> Result<Vec<(Cid, Arc<Block>)>, NodeError> {
    let (_, tip) = state.journal.tip()?;
    let mut out = vec![];
    for h in since..=tip {
        let Some(cid) = state.journal.index().block_at(h)? else {
            continue;
        };
        match &known {
            Some((known_cid, block)) if *known_cid == cid => out.push((cid, block.clone())),
            _ => {
                if let Ok(block) = state.journal.load_block(&cid) {
                    out.push((cid, Arc::new(block)));
                }
            }
        }
    }
    Ok(out)
}

impl Node {
    /// Commits a block if this node may: something is pending and its slot in the rotation
    /// has come (in turn after the block interval, out of turn after the commit timeout plus its
    /// rank). Returns the block.
    pub fn try_commit(&self) -> Result<Option<Arc<Block>>, NodeError> {
        let mut state = self.state();
        // Under finality, blocks (empty if need be) are due while a transaction is not final:
        // the epochs that make it final must come.
        let awaiting = state.journal.awaits_finality()?;
        // Membership records waiting are a reason for a block too.
        let records = self.records_due(&mut state);
        let Some(oldest) = state
            .mempool
            .oldest()
            .or((awaiting || !records.is_empty()).then_some(state.last_block_at))
        else {
            return Ok(None);
        };
        let (tip, height) = state.journal.tip()?;
        let me = self.key.public();
        // A peer revoked on the chain commits nothing more (its blocks would be refused).
        if state.journal.revoked_after(&tip, &self.chain.0) {
            return Ok(None);
        }
        let schedule = state.journal.schedule();
        // Under network parameters out-of-turn slots step by the network's back-off, and no
        // block is made before the slot its receivers will check.
        let timing = state.journal.rules().timing;
        let step = timing.map_or(self.params.block_interval, |t| t.commit_backoff);
        let Some(delay) = schedule.commit_delay(
            height + 1,
            &me,
            self.params.block_interval,
            self.params.commit_timeout,
            step,
        ) else {
            return Ok(None);
        };
        let Some(earliest_ms) = state.journal.earliest_commit(&me)? else {
            return Ok(None);
        };
        let now_ms = self.clock.unix_ms();
        if now_ms < earliest_ms {
            return Ok(None);
        }
        let since = oldest.max(state.last_block_at);
        // Waiting collects transactions into a block; with a full block pending, the in-turn
        // committer has nothing to wait for.
        let full = state.mempool.bytes() >= state.journal.rules().tx_budget();
        let in_turn = schedule.in_turn(height + 1) == Some(me);
        let now = self.clock.instant();
        if now.saturating_duration_since(since) < delay && !(in_turn && full) {
            return Ok(None);
        }
        let rules = state.journal.rules();
        let (max, budget) = (rules.max_txs_per_block, rules.tx_budget());
        let mut candidates = state.mempool.candidates(max, budget);
        // Transactions another peer's block already committed leave the pool; if nothing else is
        // pending there is no block to make (no empty blocks).
        let mut done = vec![];
        for tx in &candidates {
            let id = tx.id();
            if state.journal.index().tx_height(&id)?.is_some() {
                done.push(id);
            }
        }
        if !done.is_empty() {
            state.mempool.remove(done.iter());
            self.settle_orphans(&mut state, done.iter())?;
            let done: HashSet<TxId> = done.into_iter().collect();
            candidates.retain(|tx| !done.contains(&tx.id()));
        }
        if candidates.is_empty() && !awaiting && records.is_empty() {
            return Ok(None);
        }
        let _span =
            info_span!("commit", height = height + 1, candidates = candidates.len()).entered();
        let started = Instant::now();
        let (block, rejected) = state.journal.commit_with_records(
            (&self.key, &self.chain),
            candidates,
            records,
            now_ms,
        )?;
        let committed: Vec<TxId> = block.transactions.iter().map(Transaction::id).collect();
        state.mempool.remove(committed.iter());
        self.settle_orphans(&mut state, committed.iter())?;
        for (id, reason) in &rejected {
            if !matches!(reason, TxRejection::Duplicate(_)) {
                state.rejected.insert(*id, reason.to_string());
            }
        }
        state.mempool.remove(rejected.iter().map(|(id, _)| id));
        // Refused (a conflict, or out of the transaction window): no longer kept.
        self.settle_orphans(&mut state, rejected.iter().map(|(id, _)| id))?;
        state.last_block_at = now;
        drop(state);
        info!(
            txs = committed.len(),
            entries = block.entries.len(),
            records = block.records.len(),
            in_turn,
            took_ms = started.elapsed().as_millis() as u64,
            "committed block"
        );
        let block = Arc::new(block);
        let cid = block.cid();
        self.emit(NodeEvent::ChainExtended {
            cid,
            block: block.clone(),
        });
        Ok(Some(block))
    }

    /// Takes a block from a peer (after storing the objects that came with it).
    pub fn receive_block(&self, bundle: &BlockBundle) -> Result<ReceivedBlock, NodeError> {
        let block = match Block::from_bytes(&bundle.block) {
            Ok(block) => block,
            Err(detail) => {
                warn!(%detail, "peer sent a malformed block");
                return Ok(ReceivedBlock {
                    header: None,
                    header_valid: false,
                    outcome: Err(BlockRejection::Malformed(detail)),
                });
            }
        };
        // Strict decoding accepts only the canonical encoding: the bytes name the block.
        let cid = crate::model::codec::dag_cbor_cid(&bundle.block);
        let _span = info_span!("receive_block", %cid, height = block.height).entered();
        // Objects are stored only with a block signed by a certified peer; durable with the
        // block itself (storing it flushes). Most came with gossip already.
        let header_valid = self.header_verifies(&block);
        if header_valid {
            for (cid, bytes) in &bundle.objects {
                if self.store.has(cid).unwrap_or(false) {
                    continue;
                }
                if let Err(e) = self.store.put_unflushed(cid, bytes) {
                    warn!(%cid, error = %e, "peer sent an invalid object with a block");
                }
            }
        }
        self.preverify(&block);
        let block = Arc::new(block);
        let mut received = self.add_block(cid, block.clone(), &bundle.block)?;
        received.header_valid = match &received.outcome {
            Ok(_) => true,
            Err(BlockRejection::UnknownParent(_)) => header_valid,
            Err(_) => false,
        };
        Ok(received)
    }

    /// Whether `block`'s header holds on its own: this network, a committer certified as a
    /// peer at the block's time, a valid signature (its parent and contents unchecked).
    fn header_verifies(&self, block: &Block) -> bool {
        let Ok(rules) = self.admission.read() else {
            return false;
        };
        block.network == rules.network
            && self
                .admission_cache
                .verify(&rules, &block.committer, Level::Peer, block.time())
                .is_ok()
            && block.signature_valid()
    }

    /// Verifies the transactions of `block` outside the state lock, filling the verification
    /// cache so the journal's own checks under the lock are cheap (their verdict is the
    /// journal's: this only warms the cache).
    fn preverify(&self, block: &Block) {
        self.preverify_signatures(&block.transactions);
        let Ok(rules) = self.admission.read() else {
            return;
        };
        for tx in &block.transactions {
            let _ = check_transaction(tx, &rules, &self.admission_cache, block.time());
        }
    }

    fn add_block(
        &self,
        cid: Cid,
        block: Arc<Block>,
        bytes: &[u8],
    ) -> Result<ReceivedBlock, NodeError> {
        let header = Some((cid, block.height));
        let header_valid = false;
        let now = self.clock.instant();
        let mut state = self.state();
        let before = state.journal.tip()?;
        let outcome = state
            .journal
            .add_encoded_block(&block, bytes, self.clock.unix_ms())?;
        match &outcome {
            Ok(Added::Extended) | Ok(Added::Reorganized { .. }) => {
                state.last_block_at = now;
                let ids: Vec<TxId> = block.transactions.iter().map(Transaction::id).collect();
                state.mempool.remove(ids.iter());
                self.settle_orphans(&mut state, ids.iter())?;
                if let Ok(Added::Reorganized {
                    orphans,
                    old_tip,
                    ancestor,
                }) = &outcome
                {
                    self.keep_orphans(&mut state, orphans.clone(), now)?;
                    let unix = self.clock.unix();
                    super::membership::requeue_abandoned(
                        &mut state,
                        &self.store,
                        (*old_tip, *ancestor),
                        unix,
                    );
                }
                // Above the old tip, or above the common ancestor of a reorganisation.
                let since = match &outcome {
                    Ok(Added::Reorganized { ancestor, .. }) => ancestor + 1,
                    _ => before.1 + 1,
                };
                let blocks = joined(&state, since, Some((cid, block.clone())))?;
                drop(state);
                for (cid, block) in blocks {
                    self.emit(NodeEvent::ChainExtended { cid, block });
                }
            }
            Ok(Added::SideBranch) => {
                // Transactions of a competing branch are replayed on ours (healing). Not kept
                // like orphans: anyone seated can make side branches, so they stay bounded by
                // the mempool's capacity.
                for tx in &block.transactions {
                    let id = tx.id();
                    if state.journal.index().tx_height(&id)?.is_none() {
                        state.mempool.insert(id, tx.clone(), now);
                    }
                }
                drop(state);
            }
            Ok(Added::Known) | Err(_) => {
                return Ok(ReceivedBlock {
                    header,
                    header_valid,
                    outcome,
                })
            }
        }
        // Votes may name the block.
        self.recount(self.state())?;
        Ok(ReceivedBlock {
            header,
            header_valid,
            outcome,
        })
    }

    /// A block with (`with_objects`) the objects its transactions reference, for a syncing
    /// peer, or alone for a peer in sync (which holds them: reading them back would cost a
    /// datastore look-up per object, each a cache miss once the store outgrows sled's cache).
    /// The objects travel with the block up to [`BUNDLE_OBJECT_BUDGET`] bytes (de-duplicated);
    /// a receiver fetches the rest one object per request, so no message exceeds the codec's
    /// limit whatever the block references.
    pub fn block_bundle(
        &self,
        cid: &Cid,
        with_objects: bool,
    ) -> Result<Option<BlockBundle>, NodeError> {
        let Some(bytes) = self.store.get(cid)? else {
            return Ok(None);
        };
        if !with_objects {
            return Ok(Some(BlockBundle {
                block: bytes,
                objects: vec![],
            }));
        }
        let Ok(block) = Block::from_stored(&bytes) else {
            return Ok(None);
        };
        let mut objects = vec![];
        let mut seen = HashSet::new();
        let mut size = 0;
        'txs: for tx in &block.transactions {
            for (cid, object) in self.referenced_objects(tx) {
                if !seen.insert(cid) {
                    continue;
                }
                if size + object.len() > BUNDLE_OBJECT_BUDGET {
                    break 'txs;
                }
                size += object.len();
                objects.push((cid, object));
            }
        }
        Ok(Some(BlockBundle {
            block: bytes,
            objects,
        }))
    }

    /// CIDs of the canonical blocks from `from` (inclusive), at most `max`.
    pub fn canonical_range(&self, from: u64, max: u64) -> Result<Vec<Cid>, NodeError> {
        let state = self.state();
        let mut out = vec![];
        for h in from..from.saturating_add(max) {
            match state.journal.index().block_at(h)? {
                Some(cid) => out.push(cid),
                None => break,
            }
        }
        Ok(out)
    }
}
