//! The overlay's driver: the only owner of the swarm. Its event loop selects over swarm events,
//! commands, verification outcomes and timers, turns each into [`Input`]s for the peer policy
//! and executes the [`Effect`]s the policy returns. It decides nothing about peers itself.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ListenError, SwarmEvent};
use libp2p::{gossipsub, identify, ping, Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::handle::{Command, OverlayHandle};
use super::objects::{ObjectFetch, ObjectRequests};
use super::policy::blocks::Parked;
use super::policy::{Effect, Input, Policy};
use super::protocol::{Request, MAX_RANGE};
use super::swarm::{self, Behaviour, BehaviourEvent, Topics};
use super::worker::{self, Job, Outcome};
use super::{OverlayConfig, OverlayError, RECORD_INTERVAL};
use crate::model::Cid;
use crate::node::config::read_seeds;
use crate::node::metrics::Metrics;
use crate::node::{Health, Node};

/// The overlay's state and event loop.
pub struct Overlay {
    pub(super) swarm: Swarm<Behaviour>,
    pub(super) node: Arc<Node>,
    pub(super) metrics: Arc<Metrics>,
    health: Arc<Health>,
    config: OverlayConfig,
    pub(super) policy: Policy,
    pub(super) topics: Topics,
    /// Blocks whose parent is being fetched (bounded: [`super::MAX_WAITING_BLOCKS`] parents).
    pub(super) parked: Parked,
    pub(super) requested: HashMap<Cid, Instant>,
    /// Outstanding block requests, to retry elsewhere at once when one fails or finds nothing.
    pub(super) block_requests: HashMap<OutboundRequestId, Cid>,
    /// Object requests in flight (for submissions and for blocks).
    pub(super) objects: ObjectRequests,
    commands: Option<mpsc::Receiver<Command>>,
    /// The verification worker's queue, and blocks waiting for room in it.
    pub(super) jobs: mpsc::Sender<Job>,
    pub(super) backlog: VecDeque<Job>,
    outcomes: Option<mpsc::UnboundedReceiver<Outcome>>,
}

impl Overlay {
    /// Builds the swarm and starts listening; returns the overlay (run it with
    /// [`Overlay::run`]) and the handle that sends it commands. Readiness is set at once (a
    /// peer without seeds is ready by itself).
    pub fn new(
        node: Arc<Node>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        config: OverlayConfig,
    ) -> Result<(Self, OverlayHandle), OverlayError> {
        let topics = Topics::of(&node.params().network);
        let swarm = swarm::build(&node.key, &config, &topics)?;
        let (jobs, outcomes) =
            worker::spawn(node.clone()).map_err(|e| OverlayError::Setup(e.to_string()))?;
        let (handle, commands) = OverlayHandle::channel();
        let height = node.tip().map(|t| t.1).unwrap_or(0);
        let policy = Policy::new(
            node.public_key(),
            height,
            config.target_connectivity,
            Instant::now(),
        );
        let mut overlay = Self {
            swarm,
            node,
            metrics,
            health,
            config,
            policy,
            topics,
            parked: Parked::new(super::MAX_WAITING_BLOCKS),
            requested: HashMap::new(),
            block_requests: HashMap::new(),
            objects: ObjectRequests::default(),
            commands: Some(commands),
            jobs,
            backlog: VecDeque::new(),
            outcomes: Some(outcomes),
        };
        overlay.tick();
        Ok((overlay, handle))
    }

    /// This peer's tip height.
    pub(super) fn height(&self) -> u64 {
        self.node.tip().map(|t| t.1).unwrap_or(0)
    }

    /// Feeds the policy one input and executes what it decides.
    pub(super) fn input(&mut self, input: Input) {
        let effects = self.policy.handle(input, Instant::now());
        for effect in effects {
            self.apply(effect);
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::SendHello(peer) => {
                let hello = self.hello();
                self.swarm
                    .behaviour_mut()
                    .sync
                    .send_request(&peer, Request::Hello(hello));
            }
            Effect::Disconnect { peer, reason } => {
                info!(%peer, reason, "closing the connection");
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Effect::Block { peer, on } => {
                let blocked = &mut self.swarm.behaviour_mut().blocked;
                if on {
                    info!(%peer, "blocking the peer (refused or banned)");
                    blocked.block_peer(peer);
                } else {
                    debug!(%peer, "unblocking the peer");
                    blocked.unblock_peer(peer);
                }
            }
            Effect::Evicted(structure) => self.metrics.evict(structure),
            Effect::DirectGossip { peer, on } => {
                // Admitted peers are direct gossip peers: in a permissioned network every
                // message reaches every connected peer without waiting for the mesh.
                let gossip = &mut self.swarm.behaviour_mut().gossipsub;
                if on {
                    info!(%peer, "peer admitted");
                    gossip.add_explicit_peer(&peer);
                } else {
                    gossip.remove_explicit_peer(&peer);
                }
            }
            Effect::Dial { peer, addrs } => {
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %e, "redial failed");
                }
            }
            Effect::DialSeeds => {
                for seed in self.other_seeds() {
                    if let Err(e) = self.swarm.dial(seed.clone()) {
                        debug!(%seed, error = %e, "seed dial failed");
                    }
                }
            }
            Effect::RequestRange { peer, from } => {
                debug!(%peer, from, "behind: requesting a range");
                self.swarm.behaviour_mut().sync.send_request(
                    &peer,
                    Request::Range {
                        from,
                        max: MAX_RANGE,
                    },
                );
            }
            Effect::FetchBlock { peer, cid } => self.request_block(peer, cid),
            Effect::Rotation(keys) => {
                self.metrics.peers_known.set(keys.len() as i64 + 1);
                self.node.set_peers(keys);
            }
            Effect::Count { kind, reason } => self.metrics.reject(kind, reason),
            Effect::Struck {
                peer,
                strikes,
                banned,
            } => {
                warn!(%peer, strikes, banned, "peer misbehaved");
            }
            Effect::Health(health) => {
                let height = self.height();
                if health.ready != self.health.is_ready() {
                    info!(
                        ready = health.ready,
                        height,
                        best_peer_height = self.policy.heights().best(),
                        "readiness changed"
                    );
                }
                self.health.set_ready(health.ready);
                self.health.set_synced(health.synced);
                self.metrics.journal_height.set(height as i64);
                self.metrics
                    .sync_target_height
                    .set(self.policy.heights().best().max(height) as i64);
                self.metrics
                    .peers_connected
                    .set(self.policy.book().admitted_count() as i64);
            }
            Effect::GossipTxs(batch) => {
                let bundles: Vec<&crate::node::TxBundle> =
                    batch.iter().map(AsRef::as_ref).collect();
                let topic = self.topics.txs.clone();
                self.publish(topic, super::protocol::encode(&bundles));
            }
        }
    }

    /// The configured seeds (the file re-read) other than this peer itself.
    fn other_seeds(&self) -> Vec<Multiaddr> {
        let me = *self.swarm.local_peer_id();
        let own: HashSet<Multiaddr> = self
            .swarm
            .external_addresses()
            .chain(self.swarm.listeners())
            .cloned()
            .chain(self.config.external_address.clone())
            .collect();
        self.config
            .seeds
            .iter()
            .filter(|seed| !is_self(seed, &me, &own))
            .cloned()
            .collect()
    }

    fn tick(&mut self) {
        if let Some(path) = &self.config.seeds_file {
            if let Ok(seeds) = read_seeds(path) {
                self.config.seeds = seeds;
            }
        }
        let height = self.height();
        self.input(Input::Tip(height));
        let seeds = self.other_seeds().len();
        self.input(Input::Tick { seeds });
    }

    /// Runs until `shutdown` resolves (or every handle is dropped), then leaves the overlay.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        let mut maintenance = tokio::time::interval(Duration::from_secs(1));
        let mut records = tokio::time::interval(RECORD_INTERVAL);
        let mut batching = tokio::time::interval(Duration::from_millis(20));
        let (Some(mut outcomes), Some(mut commands)) = (self.outcomes.take(), self.commands.take())
        else {
            warn!("the overlay runs only once");
            return;
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(outcome) = outcomes.recv() => self.on_outcome(outcome),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = batching.tick() => self.input(Input::Flush),
                _ = records.tick() => self.publish_record(),
                _ = maintenance.tick() => self.tick(),
            }
        }
        info!("leaving the overlay");
        self.input(Input::Flush);
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishTx(bundle) => {
                self.metrics.transactions_admitted.inc();
                let size = super::policy::batching::bundle_size(&bundle);
                self.input(Input::TxAdmitted(bundle, size));
            }
            Command::FetchObject { cid, reply } => {
                self.on_object_fetch(ObjectFetch { cid, reply });
            }
            Command::Announce(block) => {
                self.announce(&block);
                self.input(Input::Tip(block.height));
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "overlay listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } if num_established.get() == 1 => self.input(Input::Connected(peer_id)),
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                if self.policy.is_admitted(&peer_id) {
                    info!(peer = %peer_id, "peer disconnected");
                }
                self.input(Input::Disconnected(peer_id));
            }
            SwarmEvent::IncomingConnectionError {
                error: ListenError::Denied { cause },
                ..
            } => self.metrics.reject("connection", swarm::denial(&cause)),
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => match event {
                request_response::Event::Message { peer, message, .. } => match message {
                    request_response::Message::Request {
                        request, channel, ..
                    } => self.on_request(peer, request, channel),
                    request_response::Message::Response {
                        request_id,
                        response,
                    } => self.on_response(peer, request_id, response),
                },
                request_response::Event::OutboundFailure {
                    peer,
                    error,
                    request_id,
                    ..
                } => {
                    debug!(%peer, %error, "sync request failed");
                    self.block_request_failed(request_id);
                    if let Some((object, waiter, rest)) = self.objects.take(&request_id) {
                        self.ask_for_object(object, waiter, rest);
                    }
                }
                request_response::Event::InboundFailure { peer, error, .. } => {
                    debug!(%peer, %error, "sync response failed")
                }
                request_response::Event::ResponseSent { .. } => {}
            },
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => self.on_gossip(propagation_source, message_id, message),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) if self.policy.is_admitted(&peer_id) => {
                for addr in info.listen_addrs {
                    self.swarm.add_peer_address(peer_id, addr);
                }
            }
            // Heartbeats: a failed ping means the peer is gone (ping itself keeps the connection).
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event {
                peer,
                connection,
                result: Err(error),
            })) => {
                warn!(%peer, %error, "heartbeat failed: closing the connection");
                self.swarm.close_connection(connection);
            }
            _ => {}
        }
    }
}

/// Whether `seed` names this peer: its `/p2p/` PeerId is ours, or it is one of our addresses.
fn is_self(seed: &Multiaddr, me: &PeerId, own: &HashSet<Multiaddr>) -> bool {
    use libp2p::multiaddr::Protocol;
    let mut bare = Multiaddr::empty();
    for part in seed.iter() {
        match part {
            Protocol::P2p(peer) if peer == *me => return true,
            Protocol::P2p(_) => {}
            other => bare.push(other),
        }
    }
    own.contains(&bare) || own.contains(seed)
}
