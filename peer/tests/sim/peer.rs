//! One simulated peer: a real [`Node`] over a sled store and the daemon's real overlay
//! [`Engine`] (the policy joined to the node), over a [`SimNet`] in place of libp2p. The glue
//! here only delivers messages to the engine's entry points and runs verification jobs in place
//! of the worker thread; an adversarial member also runs its [`Strategy`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use mediachain::journal::vote::Checkpoint;
use mediachain::journal::{Rules, Transaction, TxId};
use mediachain::model::Cid;
use mediachain::network::NetworkParams;
use mediachain::node::metrics::Metrics;
use mediachain::node::overlay::engine::Engine;
use mediachain::node::overlay::policy::Input;
use mediachain::node::overlay::worker;
use mediachain::node::overlay::RECORD_INTERVAL;
use mediachain::node::{Health, Node, NodeEvent, NodeParams};
use mediachain::store::Store;
use mediachain::trust::{Chain, SecretKey};
use tokio::sync::broadcast;

use super::adversary::{Ctx, Reply, Strategy};
use super::net::{Msg, Outbox, SimNet};
use super::{SimClock, NETWORK};

/// A simulated peer.
pub struct SimPeer {
    /// Its position in the simulation.
    pub index: usize,
    /// Its key.
    pub key: SecretKey,
    /// Its Level-1 chain.
    pub chain: Chain,
    /// Its PeerId.
    pub id: PeerId,
    /// Bumped by every restart (messages of an earlier life are never delivered).
    pub incarnation: u64,
    /// Its network side.
    pub net: SimNet,
    /// The hostile strategy it runs, if it is an adversary.
    pub strategy: Option<Box<dyn Strategy>>,
    rules: Rules,
    /// The network's parameters, when the plan runs under them.
    network: Option<NetworkParams>,
    dir: PathBuf,
    clock: Arc<SimClock>,
    engine: Option<Engine>,
    health: Arc<Health>,
    /// The engine's metrics (for `SIM_TRACE`).
    pub metrics: Arc<Metrics>,
    events: Option<broadcast::Receiver<NodeEvent>>,
    /// The canonical chain as a subscriber of the node's events sees it (height -> block):
    /// seeded from the chain when the node opens, then updated by each `ChainExtended`.
    view: BTreeMap<u64, Cid>,
    ticks: u64,
    /// Every checkpoint this peer's node announced final, in order (across restarts).
    pub finals: Vec<Checkpoint>,
}

impl SimPeer {
    /// Opens peer `index`'s node in `dir`.
    pub fn new(
        index: usize,
        (key, chain): (SecretKey, Chain),
        rules: Rules,
        network: Option<NetworkParams>,
        dir: PathBuf,
        clock: Arc<SimClock>,
    ) -> Self {
        let id = key.public().peer_id();
        let mut peer = Self {
            index,
            id,
            key,
            chain,
            incarnation: 0,
            net: SimNet {
                index,
                me: Some(id),
                ..SimNet::default()
            },
            strategy: None,
            rules,
            network,
            dir,
            clock,
            engine: None,
            health: Arc::new(Health::default()),
            metrics: Arc::new(Metrics::new()),
            events: None,
            view: BTreeMap::new(),
            ticks: 0,
            finals: vec![],
        };
        peer.restart();
        peer
    }

    /// Whether the peer runs.
    pub fn is_up(&self) -> bool {
        self.engine.is_some()
    }

    /// Whether its health says it may commit.
    pub fn synced(&self) -> bool {
        self.health.is_synced()
    }

    /// Whether it runs a hostile strategy.
    pub fn is_adversary(&self) -> bool {
        self.strategy.is_some()
    }

    /// The node, while the peer runs.
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.engine.as_ref().map(Engine::node)
    }

    /// Whether its policy holds a connection with `peer`.
    pub fn is_connected(&self, peer: &PeerId) -> bool {
        self.engine
            .as_ref()
            .is_some_and(|e| e.policy().book().is_connected(peer))
    }

    /// Its policy's claim of `peer`'s tip, while it runs.
    pub fn claim_of(
        &self,
        peer: &PeerId,
    ) -> Option<mediachain::node::overlay::policy::heights::Claim> {
        self.engine
            .as_ref()
            .and_then(|e| e.policy().heights().get(peer).cloned())
    }

    /// Stops the peer without a flush: what its store holds is what survives.
    pub fn crash(&mut self) {
        self.engine = None;
        self.events = None;
        self.net.reset();
    }

    /// Starts the peer from its store, with a fresh engine (as the daemon starts).
    pub fn restart(&mut self) {
        // The crashed node's sled flusher thread lets go of the store's lock on its own time
        // (real time, unrelated to the simulated clock): wait for it, bounded.
        let mut tries = 0;
        let store = loop {
            match Store::open(&self.dir, 1 << 20) {
                Ok(store) => break store,
                Err(e) if tries < 200 => {
                    tries += 1;
                    if tries == 1 && super::tracing() {
                        eprintln!("peer {}: store still locked ({e}), waiting", self.index);
                    }
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => panic!("peer {}: restart: {e}", self.index),
            }
        };
        let params = NodeParams {
            network: NETWORK.into(),
            block_interval: Duration::from_millis(300),
            commit_timeout: Duration::from_secs(2),
            registration_pow_bits: 0,
            transaction_pow_bits: 0,
            client_cert_validity: 3600,
            mempool_capacity: 10_000,
            mempool_bytes: usize::MAX,
            network_params: self.network.clone(),
        };
        let node = Node::open_with_clock(
            params,
            self.key.clone(),
            self.chain.clone(),
            self.rules.clone(),
            store,
            self.clock.clone(),
        )
        .unwrap();
        self.incarnation += 1;
        self.net.reset();
        self.health = Arc::new(Health::default());
        self.events = Some(node.subscribe());
        self.view = chain_of(&node);
        self.metrics = Arc::new(Metrics::new());
        self.engine = Some(Engine::new(
            node,
            self.metrics.clone(),
            self.health.clone(),
            2,
        ));
    }

    /// Runs `f` on the engine and the network, then the verification jobs and local
    /// failures it caused; returns what to send.
    fn with_engine(&mut self, f: impl FnOnce(&mut Engine, &mut SimNet)) -> Outbox {
        let Some(engine) = self.engine.as_mut() else {
            return vec![];
        };
        self.net.now = self.clock.micros.load(std::sync::atomic::Ordering::SeqCst);
        f(engine, &mut self.net);
        loop {
            if let Some(id) = self.net.failed.pop_front() {
                engine.on_failure(id, false, &mut self.net);
            } else if let Some(peer) = self.net.closed.pop_front() {
                engine.input(Input::Disconnected(peer), &mut self.net);
            } else if let Some(job) = self.net.jobs.pop_front() {
                let outcome = worker::verify(engine.node(), job);
                engine.on_outcome(outcome, &mut self.net);
            } else {
                break;
            }
        }
        std::mem::take(&mut self.net.outbox)
    }

    /// The link to peer `other` (`id`) is now up or down.
    pub fn link(&mut self, other: usize, id: PeerId, up: bool) -> Outbox {
        self.net.index_of.insert(id, other);
        if up {
            self.net.links.insert(other);
        } else {
            self.net.links.remove(&other);
        }
        let connected = self.is_connected(&id);
        match (up, connected) {
            (true, false) => self.with_engine(|e, t| e.input(Input::Connected(id), t)),
            (false, true) => self.with_engine(|e, t| e.input(Input::Disconnected(id), t)),
            _ => vec![],
        }
    }

    /// The driver's timers, one second's worth: the engine's tick and batch flush, and this
    /// peer's identity record every [`RECORD_INTERVAL`]; an adversary's strategy acts too.
    pub fn tick(&mut self) -> Outbox {
        let seeds = self.net.seeds.len();
        self.ticks += 1;
        let record = self.ticks % RECORD_INTERVAL.as_secs() == 1;
        let mut out = self.with_engine(|e, t| {
            e.tick(seeds, t);
            e.flush(t);
            if record {
                e.publish_record(vec![], t);
            }
        });
        let index = self.index;
        let hostile = self.act(|strategy, ctx| strategy.tick(ctx));
        out.extend(
            hostile
                .into_iter()
                .flatten()
                .map(|(to, msg)| (index, to, msg)),
        );
        out
    }

    /// Lets the strategy act with this peer's node and identity (`None` for an honest peer).
    fn act<T>(&mut self, f: impl FnOnce(&mut dyn Strategy, &mut Ctx) -> T) -> Option<T> {
        let (Some(strategy), Some(engine)) = (self.strategy.as_mut(), self.engine.as_ref()) else {
            return None;
        };
        let mut ctx = Ctx {
            node: engine.node(),
            key: &self.key,
            chain: &self.chain,
            peers: self.net.links.iter().copied().collect(),
            unix_ms: mediachain::node::Clock::unix_ms(self.clock.as_ref()),
            index_of: &self.net.index_of,
        };
        Some(f(strategy.as_mut(), &mut ctx))
    }

    /// The daemon's commit loop step: commit if synced and a block is due, and announce it.
    pub fn commit(&mut self) -> Outbox {
        if !self.health.is_synced() {
            return vec![];
        }
        self.with_engine(|e, t| {
            if let Some(block) = e.node().try_commit().unwrap() {
                e.announce(&block, t);
            }
        })
    }

    /// A client's transaction submitted here (the API's path: the node, then gossip).
    pub fn submit(&mut self, tx: Transaction) -> Outbox {
        self.with_engine(|e, t| {
            if let Ok(bundle) = e.node().submit(tx).unwrap() {
                e.publish_tx(bundle, t);
            }
        })
    }

    /// A request of this peer's failed without an answer (its link went down, or it timed
    /// out).
    pub fn failed(&mut self, id: u64, timed_out: bool) -> Outbox {
        if self.net.traced_requests.remove(&id) {
            eprintln!(
                "{:>9}us peer {} block request failed timed_out={timed_out}",
                self.net.now, self.index
            );
        }
        self.with_engine(|e, t| e.on_failure(id, timed_out, t))
    }

    /// A message from peer `from` (`from_id`).
    pub fn deliver(&mut self, from: usize, from_id: PeerId, msg: Msg) -> Outbox {
        self.net.index_of.insert(from_id, from);
        if let Some(strategy) = self.strategy.as_mut() {
            strategy.observe(from, &msg);
        }
        if let Msg::Request { id, request } = &msg {
            let reply = self
                .act(|strategy, ctx| strategy.answer(ctx, request))
                .flatten();
            match reply {
                Some(Reply::Respond(response)) => {
                    return vec![(self.index, from, Msg::Response { id: *id, response })];
                }
                Some(Reply::Drop) => {
                    self.net.dropped.push((from, *id));
                    return vec![];
                }
                None => {}
            }
        }
        let index = self.index;
        self.with_engine(|e, t| match msg {
            Msg::Request { id, request } => {
                let (response, refusal) = e.on_request(from_id, request, t);
                t.outbox.push((index, from, Msg::Response { id, response }));
                if let Some(refusal) = refusal {
                    e.refuse(refusal, t);
                }
            }
            Msg::Response { id, response } => {
                if t.traced_requests.remove(&id) {
                    let found = matches!(
                        &response,
                        mediachain::node::overlay::protocol::Response::Block(Some(_))
                    );
                    eprintln!(
                        "{:>9}us peer {index} block answer from {from} found={found}",
                        t.now
                    );
                }
                e.on_response(from_id, id, response, t)
            }
            Msg::Gossip {
                topic,
                author,
                id,
                data,
            } => {
                if t.receive(from_id, topic, author, &id, &data) {
                    if !e.policy().book().is_admitted(&from_id) {
                        *t.unadmitted.entry(format!("{topic:?}")).or_default() += 1;
                    }
                    let _ = e.on_gossip(from_id, author, topic, id, data, t);
                }
            }
        })
    }

    /// Transactions that joined this peer's chain since the last call.
    pub fn drain_committed(&mut self) -> Vec<TxId> {
        let mut out = vec![];
        let Some(events) = &mut self.events else {
            return out;
        };
        loop {
            match events.try_recv() {
                Ok(NodeEvent::ChainExtended { cid, block }) => {
                    out.extend(block.transactions.iter().map(Transaction::id));
                    // As a view-update subscriber reads it: this block at its height, nothing
                    // above it until the next events.
                    self.view.split_off(&block.height);
                    self.view.insert(block.height, cid);
                }
                Ok(NodeEvent::Finalized { checkpoint }) => self.finals.push(checkpoint),
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    // As the API's stream does: catch up from the chain.
                    if let Some(engine) = &self.engine {
                        self.view = chain_of(engine.node());
                    }
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Where the chain its events showed differs from the node's canonical chain, if anywhere.
    pub fn view_mismatch(&self) -> Option<String> {
        let node = self.node()?;
        let chain = chain_of(node);
        if chain == self.view {
            return None;
        }
        let at = chain
            .keys()
            .chain(self.view.keys())
            .copied()
            .filter(|h| self.view.get(h) != chain.get(h))
            .min()?;
        Some(format!(
            "peer {}: its events show {:?} at height {at}, its chain holds {:?}",
            self.index,
            self.view.get(&at),
            chain.get(&at)
        ))
    }
}

/// The node's canonical chain, height -> block.
fn chain_of(node: &Node) -> BTreeMap<u64, Cid> {
    let height = node.tip().map(|t| t.1).unwrap_or(0);
    let blocks = node.canonical_range(1, height).unwrap_or_default();
    (1..).zip(blocks).collect()
}
