//! The tier-1 peer: the journal, the datastore, the mempool and client registration behind one
//! thread-safe handle, plus the daemon around it (configuration, overlay, commit loop, HTTP API).
//!
//! [`Node`] holds the state and the protocol decisions; it never touches the network and holds
//! no handle to the overlay. The overlay feeds it what peers send; the HTTP API calls it for
//! clients; the daemon (`crate::daemon`) passes what it admits and commits to the overlay's
//! command handle ([`overlay::OverlayHandle`]). Blocks joining the canonical chain are
//! broadcast as [`NodeEvent`]s for clients' view updates (a lagging subscriber re-reads the
//! index).

pub mod config;
pub mod mempool;
pub mod metrics;
pub mod overlay;
pub mod registration;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;
use tokio::sync::broadcast;
use tracing::{info, info_span, warn};

use crate::journal::verify::{check_transaction, ChainCache};
use crate::journal::{
    Added, Block, BlockRejection, IndexRead, Journal, JournalError, Rules, Schedule, Transaction,
    TxId, TxRejection,
};
use crate::model::{Cid, JournalEntry, Object};
use crate::store::{SledIndex, Store, StoreError};
use crate::time::{self, UnixSeconds};
use crate::trust::{Chain, PublicKey, SecretKey};
use mempool::Mempool;
use registration::Registrar;

/// Liveness and readiness, as the probes see them.
#[derive(Debug, Default)]
pub struct Health {
    ready: std::sync::atomic::AtomicBool,
    synced: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Marks the peer ready (admitted to the overlay and in sync) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready
            .store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the peer is ready to serve clients.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the peer at the best height its peers report (or not).
    pub fn set_synced(&self, synced: bool) {
        self.synced
            .store(synced, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the peer is at the best height its peers report: only then may it commit (a
    /// block on an old tip would fork the chain).
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The persistent journal of a node.
pub type NodeJournal = Journal<SledIndex, Store>;

/// Protocol parameters of a node.
#[derive(Debug, Clone)]
pub struct NodeParams {
    /// Network name (the genesis is derived from it).
    pub network: String,
    /// Wait that collects transactions into a block.
    pub block_interval: Duration,
    /// After this, out-of-turn committers may commit.
    pub commit_timeout: Duration,
    /// Proof-of-work bits for client registration.
    pub registration_pow_bits: u8,
    /// Proof-of-work bits per transaction.
    pub transaction_pow_bits: u8,
    /// Validity of issued client certificates, in seconds.
    pub client_cert_validity: UnixSeconds,
    /// Most pending transactions.
    pub mempool_capacity: usize,
}

/// A transaction with the objects it references, as gossiped between peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxBundle {
    /// The transaction.
    pub tx: Transaction,
    /// `(cid, bytes)` of every object its entries reference.
    pub objects: Vec<(Cid, ByteBuf)>,
}

/// A block with the objects its transactions reference, as fetched during sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockBundle {
    /// The block's canonical DAG-CBOR.
    #[serde(with = "serde_bytes")]
    pub block: Vec<u8>,
    /// `(cid, bytes)` of every object its transactions reference.
    pub objects: Vec<(Cid, ByteBuf)>,
}

/// A change of the canonical chain, for clients' view updates.
#[derive(Debug, Clone)]
pub enum NodeEvent {
    /// The canonical chain gained a block (clients' view updates).
    ChainExtended {
        /// The block's CID.
        cid: Cid,
        /// The block.
        block: Arc<Block>,
    },
}

/// Where a transaction stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum TxStatus {
    /// Waiting for a block.
    Pending,
    /// In the canonical chain.
    Committed {
        /// Block height.
        height: u64,
        /// Block CID.
        block: String,
    },
    /// Refused (reason given).
    Rejected {
        /// Why.
        reason: String,
    },
    /// Never seen here.
    Unknown,
}

/// Why the node failed an operation.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The datastore failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index failed.
    #[error(transparent)]
    Index(#[from] crate::journal::index::IndexError),
}

struct State {
    journal: NodeJournal,
    mempool: Mempool,
    rejected: HashMap<TxId, String>,
    peers: HashSet<PublicKey>,
    last_block_at: Instant,
}

/// The node: shared by the overlay, the commit loop and the API.
pub struct Node {
    params: NodeParams,
    key: SecretKey,
    chain: Chain,
    store: Store,
    registrar: Registrar,
    state: Mutex<State>,
    events: broadcast::Sender<NodeEvent>,
    /// Admission runs its stateless checks (signature, proof of work, certificates) outside the
    /// state lock, against this snapshot of the rules and the journal's verification cache (so
    /// a block's transactions admitted before are not verified again).
    admission: std::sync::RwLock<Rules>,
    admission_cache: Arc<ChainCache>,
}

/// A peer's block as [`Node::receive_block`] took it.
#[derive(Debug)]
pub struct ReceivedBlock {
    /// Its CID and height (`None` when it did not decode).
    pub header: Option<(Cid, u64)>,
    /// What the journal made of it.
    pub outcome: Result<Added, BlockRejection>,
}

/// Keeps a rejection for status queries (bounded: the oldest are forgotten in bulk).
fn remember_rejection(state: &mut State, id: TxId, reason: &TxRejection) {
    if state.rejected.len() > 100_000 {
        state.rejected.clear();
    }
    state.rejected.insert(id, reason.to_string());
}

fn genesis(network: &str) -> Block {
    Block::genesis(network, vec![])
}

impl Node {
    /// Opens the node's journal in `store` (creating the network's genesis on first start).
    pub fn open(
        params: NodeParams,
        key: SecretKey,
        chain: Chain,
        rules: Rules,
        store: Store,
    ) -> Result<Arc<Self>, NodeError> {
        let index = store.index()?;
        let me = key.public();
        let journal = Journal::open(
            rules,
            Schedule::new(vec![me]),
            index,
            store.clone(),
            &genesis(&params.network),
        )?;
        let (events, _) = broadcast::channel(4096);
        let registrar = Registrar::new(
            key.clone(),
            chain.clone(),
            params.registration_pow_bits,
            params.client_cert_validity,
        );
        let state = State {
            journal,
            mempool: Mempool::new(params.mempool_capacity),
            rejected: HashMap::new(),
            peers: HashSet::from([me]),
            last_block_at: Instant::now(),
        };
        let admission = std::sync::RwLock::new(state.journal.rules().clone());
        let admission_cache = state.journal.cache();
        Ok(Arc::new(Self {
            params,
            key,
            chain,
            store,
            registrar,
            state: Mutex::new(state),
            events,
            admission,
            admission_cache,
        }))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock is a bug; the state itself stays consistent (every
        // change is applied atomically by the journal), so keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Subscribes to the node's events.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeEvent> {
        self.events.subscribe()
    }

    fn emit(&self, event: NodeEvent) {
        let _ = self.events.send(event); // no subscriber is fine
    }

    /// This peer's key.
    pub fn public_key(&self) -> PublicKey {
        self.key.public()
    }

    /// This peer's Level-1 chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The protocol parameters.
    pub fn params(&self) -> &NodeParams {
        &self.params
    }

    /// The datastore.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The client registrar.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// The genesis block's CID.
    pub fn genesis(&self) -> Cid {
        self.state().journal.genesis()
    }

    /// Tip CID and height.
    pub fn tip(&self) -> Result<(Cid, u64), NodeError> {
        Ok(self.state().journal.tip()?)
    }

    /// Pending transactions.
    pub fn pending(&self) -> usize {
        self.state().mempool.len()
    }

    /// Runs `f` with read access to the journal.
    pub fn with_journal<T>(&self, f: impl FnOnce(&NodeJournal) -> T) -> T {
        f(&self.state().journal)
    }

    /// Whether `key` is a peer of the rotation (this node included).
    pub fn is_peer(&self, key: &PublicKey) -> bool {
        self.state().peers.contains(key)
    }

    /// Sets the admitted peers (the committer rotation).
    pub fn set_peers(&self, peers: impl IntoIterator<Item = PublicKey>) {
        let mut state = self.state();
        let mut set: HashSet<PublicKey> = peers.into_iter().collect();
        set.insert(self.key.public());
        if set != state.peers {
            info!(peers = set.len(), "committer rotation changed");
            state
                .journal
                .set_schedule(Schedule::new(set.iter().copied().collect()));
            state.peers = set;
        }
    }

    /// Replaces the verification rules (new revocations).
    pub fn set_rules(&self, rules: Rules) {
        if let Ok(mut admission) = self.admission.write() {
            *admission = rules.clone();
        }
        self.state().journal.set_rules(rules);
    }

    /// The verification rules in force.
    pub fn rules(&self) -> Rules {
        self.state().journal.rules().clone()
    }

    /// Objects the entries of `tx` reference that are in the store.
    pub fn referenced_objects(&self, tx: &Transaction) -> Vec<(Cid, ByteBuf)> {
        let mut cids = vec![];
        for entry in &tx.body.entries {
            match *entry {
                JournalEntry::Insert { reference, .. } => cids.push(reference),
                JournalEntry::Update {
                    reference, chain, ..
                }
                | JournalEntry::ChainMerge {
                    reference, chain, ..
                } => {
                    cids.push(reference);
                    cids.push(chain);
                    if let Some(Object::Cell(cell)) = self.store.get_object(&chain).ok().flatten() {
                        cids.extend(cell.kind.links());
                    }
                }
            }
        }
        cids.sort_by_key(|c| c.to_bytes());
        cids.dedup();
        cids.into_iter()
            .filter_map(|c| {
                self.store
                    .get(&c)
                    .ok()
                    .flatten()
                    .map(|b| (c, ByteBuf::from(b)))
            })
            .collect()
    }

    /// Admits a client's transaction: verifies it and queues it. Returns it with the objects
    /// it references, for the overlay to gossip.
    pub fn submit(&self, tx: Transaction) -> Result<Result<Arc<TxBundle>, TxRejection>, NodeError> {
        let id = tx.id();
        let _span = info_span!("submit", tx = %id).entered();
        Ok(match self.admit(tx.clone())? {
            Ok(_) => {
                let objects = self.referenced_objects(&tx);
                Ok(Arc::new(TxBundle { tx, objects }))
            }
            Err(reason) => Err(reason),
        })
    }

    /// Takes transactions gossiped by a peer (with their objects, stored with one flush).
    pub fn receive_txs(
        &self,
        bundles: Vec<TxBundle>,
    ) -> Vec<Result<Result<TxId, TxRejection>, NodeError>> {
        let mut stored = Vec::with_capacity(bundles.len());
        for bundle in bundles {
            let invalid = bundle.objects.iter().find_map(|(cid, bytes)| {
                let outcome = self.store.put_unflushed(cid, bytes);
                outcome.err().map(|e| (*cid, e))
            });
            stored.push((bundle.tx, invalid));
        }
        if let Err(e) = self.store.flush() {
            return vec![Err(NodeError::from(e))];
        }
        stored
            .into_iter()
            .map(|(tx, invalid)| match invalid {
                Some((cid, e)) => {
                    warn!(%cid, error = %e, "peer sent an invalid object");
                    Ok(Err(TxRejection::UnknownObject(cid)))
                }
                None => self.admit(tx),
            })
            .collect()
    }

    fn admit(&self, tx: Transaction) -> Result<Result<TxId, TxRejection>, NodeError> {
        let id = tx.id();
        // The expensive, stateless checks run concurrently, outside the state lock.
        let stateless = match self.admission.read() {
            Ok(rules) => check_transaction(&tx, &rules, &self.admission_cache, time::now()),
            Err(_) => Ok(()), // a poisoned snapshot: the journal's own check below still runs
        };
        let mut state = self.state();
        if let Err(reason) = stateless {
            remember_rejection(&mut state, id, &reason);
            return Ok(Err(reason));
        }
        if state.mempool.contains(&id) {
            return Ok(Ok(id));
        }
        if state.journal.index().tx_height(&id)?.is_some() {
            return Ok(Err(TxRejection::Duplicate(id)));
        }
        let outcome = match self.admission.read() {
            Ok(_) => state.journal.admit_checked(&tx)?,
            Err(_) => state.journal.admit(&tx, time::now())?,
        };
        match outcome {
            Ok(()) => {
                if !state.mempool.insert(id, tx) {
                    return Ok(Err(TxRejection::Busy));
                }
                Ok(Ok(id))
            }
            Err(reason) => {
                remember_rejection(&mut state, id, &reason);
                Ok(Err(reason))
            }
        }
    }

    /// Where a transaction stands.
    pub fn tx_status(&self, id: &TxId) -> Result<TxStatus, NodeError> {
        let state = self.state();
        if let Some(height) = state.journal.index().tx_height(id)? {
            let block = state
                .journal
                .index()
                .block_at(height)?
                .map(|c| c.to_string())
                .unwrap_or_default();
            return Ok(TxStatus::Committed { height, block });
        }
        if state.mempool.contains(id) {
            return Ok(TxStatus::Pending);
        }
        Ok(match state.rejected.get(id) {
            Some(reason) => TxStatus::Rejected {
                reason: reason.clone(),
            },
            None => TxStatus::Unknown,
        })
    }

    /// Commits a block if this node may: something is pending and its slot in the rotation
    /// has come (in turn after the block interval, out of turn after the commit timeout plus its
    /// rank). Returns the block.
    pub fn try_commit(&self) -> Result<Option<Arc<Block>>, NodeError> {
        let mut state = self.state();
        let Some(oldest) = state.mempool.oldest() else {
            return Ok(None);
        };
        let (_, height) = state.journal.tip()?;
        let me = self.key.public();
        let Some(delay) = state.journal.schedule().commit_delay(
            height + 1,
            &me,
            self.params.block_interval,
            self.params.commit_timeout,
        ) else {
            return Ok(None);
        };
        let since = oldest.max(state.last_block_at);
        // Waiting collects transactions into a block; with a full block pending, the in-turn
        // committer has nothing to wait for.
        let full = state.mempool.bytes() >= state.journal.rules().tx_budget();
        let in_turn = state.journal.schedule().in_turn(height + 1) == Some(me);
        if since.elapsed() < delay && !(in_turn && full) {
            return Ok(None);
        }
        let mut candidates = state
            .mempool
            .candidates(state.journal.rules().max_txs_per_block);
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
            let done: HashSet<TxId> = done.into_iter().collect();
            candidates.retain(|tx| !done.contains(&tx.id()));
        }
        if candidates.is_empty() {
            return Ok(None);
        }
        let _span =
            info_span!("commit", height = height + 1, candidates = candidates.len()).entered();
        let started = Instant::now();
        let (block, rejected) =
            state
                .journal
                .commit((&self.key, &self.chain), candidates, time::now())?;
        let committed: Vec<TxId> = block.transactions.iter().map(Transaction::id).collect();
        state.mempool.remove(committed.iter());
        for (id, reason) in &rejected {
            if !matches!(reason, TxRejection::Duplicate(_)) {
                state.rejected.insert(*id, reason.to_string());
            }
        }
        state.mempool.remove(rejected.iter().map(|(id, _)| id));
        state.last_block_at = Instant::now();
        drop(state);
        info!(
            txs = committed.len(),
            entries = block.entries.len(),
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
        // Durable with the block itself (storing it flushes). Most came with gossip already.
        for (cid, bytes) in &bundle.objects {
            if self.store.has(cid).unwrap_or(false) {
                continue;
            }
            if let Err(e) = self.store.put_unflushed(cid, bytes) {
                warn!(%cid, error = %e, "peer sent an invalid object with a block");
            }
        }
        let block = match Block::from_bytes(&bundle.block) {
            Ok(block) => block,
            Err(detail) => {
                warn!(%detail, "peer sent a malformed block");
                return Ok(ReceivedBlock {
                    header: None,
                    outcome: Err(BlockRejection::Malformed(detail)),
                });
            }
        };
        // Strict decoding accepts only the canonical encoding: the bytes name the block.
        let cid = crate::model::codec::dag_cbor_cid(&bundle.block);
        let _span = info_span!("receive_block", %cid, height = block.height).entered();
        self.preverify(&block);
        let outcome = self.add_block(cid, Arc::new(block), &bundle.block)?;
        Ok(outcome)
    }

    /// Verifies the transactions of `block` outside the state lock, filling the verification
    /// cache so the journal's own checks under the lock are cheap (their verdict is the
    /// journal's: this only warms the cache).
    fn preverify(&self, block: &Block) {
        let Ok(rules) = self.admission.read() else {
            return;
        };
        for tx in &block.transactions {
            let _ = check_transaction(tx, &rules, &self.admission_cache, block.timestamp);
        }
    }

    fn add_block(
        &self,
        cid: Cid,
        block: Arc<Block>,
        bytes: &[u8],
    ) -> Result<ReceivedBlock, NodeError> {
        let header = Some((cid, block.height));
        let mut state = self.state();
        let before = state.journal.tip()?;
        let outcome = state.journal.add_encoded_block(&block, bytes)?;
        match &outcome {
            Ok(Added::Extended) | Ok(Added::Reorganized { .. }) => {
                state.last_block_at = Instant::now();
                let ids: Vec<TxId> = block.transactions.iter().map(Transaction::id).collect();
                state.mempool.remove(ids.iter());
                if let Ok(Added::Reorganized { orphans, .. }) = &outcome {
                    for tx in orphans.clone() {
                        state.mempool.insert(tx.id(), tx);
                    }
                }
                let after = state.journal.tip()?;
                // Every block that joined the canonical chain, oldest first.
                let mut joined = vec![];
                for h in (before.1.min(after.1.saturating_sub(1)))..=after.1 {
                    if let Some(joined_cid) = state.journal.index().block_at(h)? {
                        if h > before.1 || joined_cid != before.0 {
                            joined.push(joined_cid);
                        }
                    }
                }
                let blocks: Vec<(Cid, Arc<Block>)> = joined
                    .into_iter()
                    .filter_map(|c| {
                        if c == cid {
                            Some((c, block.clone()))
                        } else {
                            state.journal.load_block(&c).ok().map(|b| (c, Arc::new(b)))
                        }
                    })
                    .collect();
                drop(state);
                for (cid, block) in blocks {
                    self.emit(NodeEvent::ChainExtended { cid, block });
                }
            }
            Ok(Added::SideBranch) => {
                // Transactions of a competing branch are replayed on ours (healing).
                for tx in &block.transactions {
                    let id = tx.id();
                    if state.journal.index().tx_height(&id)?.is_none() {
                        state.mempool.insert(id, tx.clone());
                    }
                }
            }
            Ok(Added::Known) | Err(_) => {}
        }
        Ok(ReceivedBlock { header, outcome })
    }

    /// A block with the objects its transactions reference, for a syncing peer.
    pub fn block_bundle(&self, cid: &Cid) -> Result<Option<BlockBundle>, NodeError> {
        let Some(bytes) = self.store.get(cid)? else {
            return Ok(None);
        };
        let Ok(block) = Block::from_bytes(&bytes) else {
            return Ok(None);
        };
        let mut objects = vec![];
        for tx in &block.transactions {
            objects.extend(self.referenced_objects(tx));
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
