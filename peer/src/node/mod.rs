//! The tier-1 peer: the journal, the datastore, the mempool and client registration behind one
//! thread-safe handle ([`Node`]; transactions in `txs`, blocks in `blocks`), plus its
//! configuration, metrics and libp2p [`overlay`].
//!
//! [`Node`] holds the state and the protocol decisions; it never touches the network and holds
//! no handle to the overlay. The overlay feeds it what peers send; the HTTP API calls it for
//! clients; the API and the daemon's commit loop pass what they admit and commit to the overlay's
//! command handle ([`overlay::OverlayHandle`]). Blocks joining the canonical chain are
//! broadcast as [`NodeEvent`]s for clients' view updates (a lagging subscriber re-reads the
//! index).

mod blocks;
mod clock;
mod finality;
mod health;
mod interface;
mod membership;
pub use blocks::BUNDLE_OBJECT_BUDGET;
pub use clock::{Clock, SystemClock};
pub use finality::{VotesVerdict, MAX_VOTES_PER_MESSAGE};
pub use health::Health;
pub use membership::MAX_PENDING_RECORDS;
pub mod config;
pub mod mempool;
pub mod metrics;
mod orphans;
pub mod overlay;
pub mod registration;
mod txs;
pub mod uploads;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::journal::verify::ChainCache;
use crate::journal::{Added, Journal, Rules, Schedule, TxId, TxRejection};
use crate::model::Cid;
use crate::store::{SledIndex, Store};
use crate::trust::{Chain, PublicKey, SecretKey};
pub use interface::{
    BlockBundle, NodeError, NodeEvent, NodeParams, ReceivedBlock, TxBundle, TxStatus,
};
use mempool::Mempool;
use registration::Registrar;

/// The persistent journal of a node.
pub type NodeJournal = Journal<SledIndex, Store>;

/// The node's state behind its lock.
pub(crate) struct State {
    journal: NodeJournal,
    mempool: Mempool,
    rejected: HashMap<TxId, String>,
    peers: HashSet<PublicKey>,
    last_block_at: Instant,
    /// This peer's last finality vote (kept in the store too).
    last_vote: Option<crate::journal::vote::Vote>,
    /// Evidence items found so far that are kept in the store.
    evidence_kept: usize,
    /// Membership records waiting for a block (bounded by [`MAX_PENDING_RECORDS`]).
    records: Vec<crate::journal::membership::Record>,
    /// Orphaned transactions kept in the store until committed or refused.
    orphans: HashSet<TxId>,
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
    clock: Arc<dyn Clock>,
}

/// Keeps a rejection for status queries (bounded: the oldest are forgotten in bulk).
fn remember_rejection(state: &mut State, id: TxId, reason: &TxRejection) {
    if state.rejected.len() > 100_000 {
        state.rejected.clear();
    }
    state.rejected.insert(id, reason.to_string());
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
        Self::open_with_clock(params, key, chain, rules, store, Arc::new(SystemClock))
    }

    /// [`Node::open`] reading the time from `clock` (a simulation's).
    pub fn open_with_clock(
        params: NodeParams,
        key: SecretKey,
        chain: Chain,
        rules: Rules,
        store: Store,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, NodeError> {
        let index = store.index()?;
        let me = key.public();
        // Under network parameters the rotation is the seats the chain defines, the same on
        // every node and after every restart; otherwise each node's view of its peers, which
        // the overlay sets (this node alone until then).
        let genesis = params.genesis();
        let journal = match &params.network_params {
            Some(network) => {
                let mut rules = rules;
                rules.timing = network.rules().timing;
                let initial = crate::journal::membership::Membership::initial(network);
                Journal::open_with_membership(rules, initial, index, store.clone(), &genesis)?
            }
            None => Journal::open(
                rules,
                Schedule::new(vec![me]),
                index,
                store.clone(),
                &genesis,
            )?,
        };
        let (events, _) = broadcast::channel(4096);
        let registrar = Registrar::new(
            key.clone(),
            chain.clone(),
            params.registration_pow_bits,
            params.client_cert_validity,
        );
        let state = State {
            journal,
            mempool: Mempool::new(params.mempool_capacity, params.mempool_bytes),
            rejected: HashMap::new(),
            peers: HashSet::from([me]),
            last_block_at: clock.instant(),
            last_vote: None,
            evidence_kept: 0,
            records: vec![],
            orphans: HashSet::new(),
        };
        let mut state = state;
        if let Some(network) = &params.network_params {
            finality::restore(&mut state, &store, network.consensus.epoch_length)?;
            membership::queue_start_lists(&mut state, clock.unix());
            membership::restore(&mut state, &store, clock.unix());
        }
        orphans::restore(&mut state, &store, clock.instant())?;
        let admission = std::sync::RwLock::new(state.journal.rules().clone());
        let admission_cache = state.journal.cache();
        let node = Arc::new(Self {
            params,
            key,
            chain,
            store,
            registrar,
            state: Mutex::new(state),
            events,
            admission,
            admission_cache,
            clock,
        });
        node.release_since_restart()?;
        Ok(node)
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

    /// Publishes a change of the canonical chain (after releasing the uploads its block
    /// references: every block joining the chain passes here, in height order).
    fn emit(&self, event: NodeEvent) {
        if let NodeEvent::ChainExtended { block, .. } = &event {
            self.release_uploads(block);
        }
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

    /// Where this node reads the time (the overlay reads it there too).
    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
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

    /// Tip height and pending transactions if the state is free right now (for `/metrics`,
    /// which must never wait on the node).
    pub fn try_height_and_pending(&self) -> Option<(u64, usize)> {
        let state = self.state.try_lock().ok()?;
        let (_, height) = state.journal.tip().ok()?;
        Some((height, state.mempool.len()))
    }

    /// The final height (0 without finality), if the state is free right now (for `/metrics`).
    pub fn try_finalized_height(&self) -> Option<u64> {
        let state = self.state.try_lock().ok()?;
        Some(state.journal.finalized().map_or(0, |c| c.height))
    }

    /// The evidence this node keeps against members (two blocks on one parent, conflicting
    /// votes): counts and the newest item, read from the store (for `/metrics` and
    /// `GET /v1/evidence/summary`; never waits on the node).
    pub fn evidence_summary(&self) -> Option<crate::store::EvidenceSummary> {
        self.store.evidence_summary().ok()
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

    /// The cache of verified certificate chains and signatures (shared with the journal): peer
    /// records and hellos repeat the same chains.
    pub fn chain_cache(&self) -> &ChainCache {
        &self.admission_cache
    }

    /// Sets the admitted peers (whose registration challenges this node accepts). Without
    /// network parameters they are also the committer rotation: fork choice weighs every known
    /// block again under it, which may move the chain to another branch. Under parameters the
    /// rotation comes from the chain and does not change here.
    pub fn set_peers(&self, peers: impl IntoIterator<Item = PublicKey>) {
        let mut state = self.state();
        let mut set: HashSet<PublicKey> = peers.into_iter().collect();
        set.insert(self.key.public());
        if set == state.peers {
            return;
        }
        if self.params.network_params.is_some() {
            state.peers = set;
            return;
        }
        info!(peers = set.len(), "committer rotation changed");
        let outcome = state
            .journal
            .set_schedule(Schedule::new(set.iter().copied().collect()));
        state.peers = set;
        match outcome {
            Ok(Ok(Added::Reorganized {
                orphans, ancestor, ..
            })) => {
                info!(
                    orphans = orphans.len(),
                    "rotation changed: switched to a heavier branch"
                );
                let now = self.clock.instant();
                state.last_block_at = now;
                if let Err(error) = self.keep_orphans(&mut state, orphans, now) {
                    warn!(%error, "keeping orphaned transactions failed");
                }
                let blocks = blocks::joined(&state, ancestor + 1, None).unwrap_or_default();
                drop(state);
                for (cid, block) in blocks {
                    self.emit(NodeEvent::ChainExtended { cid, block });
                }
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "reweighing the chain failed"),
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

    /// The rules peers' certificates are checked under on the overlay (admission, identity
    /// records): those in force with the revocations recorded on the chain at the tip.
    pub fn peer_rules(&self) -> Rules {
        self.state().journal.rules_at_tip()
    }
}

#[cfg(test)]
#[path = "bundle_tests.rs"]
mod bundle_tests;
#[cfg(test)]
#[path = "membership_tests.rs"]
mod membership_tests;
#[cfg(test)]
#[path = "open_tests.rs"]
mod open_tests;
#[cfg(test)]
#[path = "orphans_tests.rs"]
mod orphans_tests;
