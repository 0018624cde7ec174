//! One simulated peer: a real [`Node`] over a sled store, a real [`Policy`], and the few lines
//! of glue that turn simulated messages into their calls (the job the libp2p driver does in the
//! daemon). Everything it would send goes into an outbox the simulator delivers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use libp2p::PeerId;
use mediachain::journal::{Rules, Transaction, TxId};
use mediachain::model::Cid;
use mediachain::node::overlay::policy::batching::bundle_size;
use mediachain::node::overlay::policy::blame::tx_blame;
use mediachain::node::overlay::policy::blocks::{Parked, Verdict};
use mediachain::node::overlay::policy::{Effect, Input, Policy};
use mediachain::node::{BlockBundle, Clock, Node, NodeEvent, NodeParams, TxBundle};
use mediachain::store::Store;
use mediachain::trust::{Chain, PublicKey, SecretKey};
use tokio::sync::broadcast;

use super::{SimClock, NETWORK};

/// A message between simulated peers.
#[derive(Debug, Clone)]
pub enum Msg {
    /// Admission and periodic record: the sender's tip.
    Hello {
        /// Tip.
        tip: Cid,
        /// Its height.
        height: u64,
    },
    /// A block the sender committed.
    Announce {
        /// The block.
        cid: Cid,
        /// Its height.
        height: u64,
    },
    /// Asks for a block.
    GetBlock(Cid),
    /// A block, if the sender has it.
    Block(Cid, Option<BlockBundle>),
    /// Asks for canonical CIDs from a height.
    GetRange(u64),
    /// Canonical CIDs.
    Range(Vec<Cid>),
    /// Gossiped transactions.
    Txs(Vec<Arc<TxBundle>>),
}

/// Messages to send: (from, to, message).
pub type Outbox = Vec<(usize, usize, Msg)>;

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
    rules: Rules,
    dir: PathBuf,
    clock: Arc<SimClock>,
    node: Option<Arc<Node>>,
    events: Option<broadcast::Receiver<NodeEvent>>,
    /// The canonical chain as a subscriber of the node's events sees it (height -> block):
    /// seeded from the chain when the node opens, then updated by each `ChainExtended`.
    view: BTreeMap<u64, Cid>,
    policy: Policy,
    synced: bool,
    parked: Parked,
    index_of: BTreeMap<PeerId, usize>,
    /// Property violations seen by this peer.
    pub violations: Vec<String>,
}

impl SimPeer {
    /// Opens peer `index`'s node in `dir`.
    pub fn new(
        index: usize,
        key: SecretKey,
        chain: Chain,
        rules: Rules,
        dir: PathBuf,
        clock: Arc<SimClock>,
    ) -> Self {
        let policy = Policy::new(key.public(), 0, 2, clock.instant());
        let mut peer = Self {
            index,
            id: key.public().peer_id(),
            key,
            chain,
            rules,
            dir,
            clock,
            node: None,
            events: None,
            view: BTreeMap::new(),
            policy,
            synced: false,
            parked: Parked::new(512),
            index_of: BTreeMap::new(),
            violations: vec![],
        };
        peer.restart();
        peer
    }

    /// Whether the peer runs.
    pub fn is_up(&self) -> bool {
        self.node.is_some()
    }

    /// The node, while the peer runs.
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// Stops the peer without a flush: what its store holds is what survives.
    pub fn crash(&mut self) {
        self.node = None;
        self.events = None;
    }

    /// Starts the peer from its store, with a fresh policy (as the daemon starts).
    pub fn restart(&mut self) {
        let store = Store::open(&self.dir, 1 << 20).unwrap();
        let params = NodeParams {
            network: NETWORK.into(),
            block_interval: Duration::from_millis(300),
            commit_timeout: Duration::from_secs(2),
            registration_pow_bits: 0,
            transaction_pow_bits: 0,
            client_cert_validity: 3600,
            mempool_capacity: 10_000,
            network_params: None,
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
        let height = node.tip().unwrap().1;
        self.policy = Policy::new(self.key.public(), height, 2, self.clock.instant());
        self.parked = Parked::new(512);
        self.synced = false;
        self.events = Some(node.subscribe());
        self.view = chain_of(&node);
        self.node = Some(node);
    }

    fn tip(&self) -> (Cid, u64) {
        self.node
            .as_ref()
            .and_then(|n| n.tip().ok())
            .unwrap_or_default()
    }

    fn knows(&self, cid: &Cid) -> bool {
        self.node
            .as_ref()
            .is_some_and(|n| n.with_journal(|j| j.knows(cid)))
    }

    /// The link to peer `other` (`id`) is now up or down.
    pub fn link(&mut self, other: usize, id: PeerId, up: bool) -> Outbox {
        self.index_of.insert(id, other);
        let connected = self.policy.book().is_connected(&id);
        match (up, connected) {
            (true, false) => self.handle(Input::Connected(id)),
            (false, true) => self.handle(Input::Disconnected(id)),
            _ => vec![],
        }
    }

    /// Maintenance: the policy's tick, gossip of batched transactions, and this peer's record
    /// (its tip) to every admitted peer.
    pub fn tick(&mut self, seeds: usize) -> Outbox {
        if !self.is_up() {
            return vec![];
        }
        let (tip, height) = self.tip();
        let mut out = self.handle(Input::Tip(height));
        out.extend(self.handle(Input::Tick { seeds }));
        out.extend(self.handle(Input::Flush));
        out.extend(self.to_admitted(Msg::Hello { tip, height }));
        out
    }

    /// The daemon's commit loop step: commit if synced and a block is due, and announce it.
    pub fn commit(&mut self) -> Outbox {
        let Some(node) = self.node.clone() else {
            return vec![];
        };
        if !self.synced {
            return vec![];
        }
        match node.try_commit().unwrap() {
            Some(block) => {
                let mut out = self.handle(Input::Tip(block.height));
                out.extend(self.to_admitted(Msg::Announce {
                    cid: block.cid(),
                    height: block.height,
                }));
                out
            }
            None => vec![],
        }
    }

    /// A client's transaction submitted here.
    pub fn submit(&mut self, tx: Transaction) -> Outbox {
        let Some(node) = self.node.clone() else {
            return vec![];
        };
        match node.submit(tx).unwrap() {
            Ok(bundle) => {
                let size = bundle_size(&bundle);
                self.handle(Input::TxAdmitted(bundle, size))
            }
            Err(_) => vec![],
        }
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
                Err(broadcast::error::TryRecvError::Lagged(_)) => {
                    // As the API's stream does: catch up from the chain.
                    if let Some(node) = &self.node {
                        self.view = chain_of(node);
                    }
                }
                Err(_) => break,
            }
        }
        out
    }

    /// Where the chain its events showed differs from the node's canonical chain, if anywhere.
    pub fn view_mismatch(&self) -> Option<String> {
        let node = self.node.as_ref()?;
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

    fn to_admitted(&self, msg: Msg) -> Outbox {
        self.policy
            .book()
            .admitted()
            .filter_map(|id| self.index_of.get(id))
            .map(|to| (self.index, *to, msg.clone()))
            .collect()
    }

    fn to_peer(&self, id: &PeerId, msg: Msg) -> Outbox {
        self.index_of
            .get(id)
            .map(|to| vec![(self.index, *to, msg)])
            .unwrap_or_default()
    }

    /// A message from peer `from` (`from_id`, `from_key`).
    pub fn deliver(
        &mut self,
        from: usize,
        from_id: PeerId,
        from_key: PublicKey,
        msg: Msg,
    ) -> Outbox {
        let Some(node) = self.node.clone() else {
            return vec![];
        };
        self.index_of.insert(from_id, from);
        let reply = |msg| vec![(self.index, from, msg)];
        match msg {
            Msg::Hello { tip, height } => {
                let tip_known = self.knows(&tip);
                self.handle(Input::Admitted {
                    peer: from_id,
                    key: from_key,
                    tip,
                    height,
                    tip_known,
                })
            }
            _ if !self.policy.is_admitted(&from_id) => vec![],
            Msg::Announce { cid, height } => {
                let tip_known = self.knows(&cid);
                self.handle(Input::Announced {
                    origin: from_id,
                    via: from_id,
                    tip: cid,
                    height,
                    tip_known,
                })
            }
            Msg::GetBlock(cid) => reply(Msg::Block(cid, node.block_bundle(&cid).unwrap())),
            Msg::Block(cid, None) => {
                let claimed = self
                    .policy
                    .heights()
                    .get(&from_id)
                    .is_some_and(|c| c.tip == cid);
                if claimed {
                    self.handle(Input::Unverifiable { cid, blame: true })
                } else {
                    vec![]
                }
            }
            Msg::Block(_, Some(bundle)) => self.receive(from_id, bundle),
            Msg::GetRange(start) => reply(Msg::Range(node.canonical_range(start, 256).unwrap())),
            Msg::Range(cids) => cids
                .into_iter()
                .filter(|cid| !self.knows(cid))
                .map(|cid| (self.index, from, Msg::GetBlock(cid)))
                .collect(),
            Msg::Txs(bundles) => {
                let bundles = bundles.iter().map(|b| (**b).clone()).collect();
                for result in node.receive_txs(bundles) {
                    if let Ok(Err(reason)) = result {
                        if tx_blame(&reason) {
                            self.violations.push(format!(
                                "peer {}: an honest transaction blamed: {reason}",
                                self.index
                            ));
                        }
                    }
                }
                vec![]
            }
        }
    }

    /// A block bundle from `from_id`, and the children it releases.
    fn receive(&mut self, from_id: PeerId, bundle: BlockBundle) -> Outbox {
        let Some(node) = self.node.clone() else {
            return vec![];
        };
        let mut out = vec![];
        let mut work = vec![(from_id, bundle)];
        while let Some((sender, bundle)) = work.pop() {
            let received = node.receive_block(&bundle).unwrap();
            let verdict = Verdict::of(&received);
            match &verdict {
                Verdict::Taken { cid, .. } => work.extend(self.parked.children(cid)),
                Verdict::Orphan { parent, .. } => {
                    let _ = self.parked.park(*parent, sender, bundle);
                    out.extend(self.to_peer(&sender, Msg::GetBlock(*parent)));
                }
                Verdict::MissingObject { object, .. } => self.violations.push(format!(
                    "peer {}: a block arrived without object {object}",
                    self.index
                )),
                Verdict::Invalid {
                    blame: true, label, ..
                } => self.violations.push(format!(
                    "peer {}: an honest block blamed ({label})",
                    self.index
                )),
                Verdict::Invalid { .. } | Verdict::Malformed => {}
            }
            for input in verdict.inputs(sender) {
                out.extend(self.handle(input));
            }
        }
        let height = self.tip().1;
        out.extend(self.handle(Input::Tip(height)));
        out
    }

    /// Feeds the policy and executes its effects.
    fn handle(&mut self, input: Input) -> Outbox {
        let effects = self.policy.handle(input, self.clock.instant());
        let mut out = vec![];
        for effect in effects {
            match effect {
                Effect::SendHello(peer) => {
                    let (tip, height) = self.tip();
                    out.extend(self.to_peer(&peer, Msg::Hello { tip, height }));
                }
                Effect::FetchBlock { peer, cid } => {
                    out.extend(self.to_peer(&peer, Msg::GetBlock(cid)));
                }
                Effect::RequestRange { peer, from } => {
                    out.extend(self.to_peer(&peer, Msg::GetRange(from)));
                }
                Effect::Health(health) => self.synced = health.synced,
                Effect::Rotation(keys) => {
                    if let Some(node) = &self.node {
                        node.set_peers(keys);
                    }
                }
                Effect::GossipTxs(batch) => out.extend(self.to_admitted(Msg::Txs(batch))),
                Effect::Struck { peer, .. } => self
                    .violations
                    .push(format!("peer {}: struck honest peer {peer}", self.index)),
                _ => {}
            }
        }
        out
    }
}

/// The node's canonical chain, height -> block.
fn chain_of(node: &Node) -> BTreeMap<u64, Cid> {
    let height = node.tip().map(|t| t.1).unwrap_or(0);
    let blocks = node.canonical_range(1, height).unwrap_or_default();
    (1..).zip(blocks).collect()
}
