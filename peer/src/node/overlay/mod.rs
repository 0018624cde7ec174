//! The overlay: rust-libp2p (TCP + Noise + Yamux, identify, ping heartbeats, gossipsub,
//! request-response) around a [`Node`].
//!
//! - **Admission**: on every new connection both sides exchange `Hello` with their Level-1
//!   chain; a peer whose chain does not verify for its PeerId (no certificate, wrong level,
//!   expired, revoked, unknown root) or whose genesis differs is refused, logged, counted and
//!   disconnected. Nothing from an unadmitted peer is accepted; unadmitted connections are closed
//!   after [`ADMISSION_TIMEOUT`].
//! - **Membership**: peers gossip signed identity records; every peer learns every peer, and the
//!   known, fresh set is the committer rotation.
//! - **Connectivity**: fully connected while the network has at most N+1 peers, then at least
//!   N+1 connections each (N-cut); lost connections are redialled from records and seeds.
//! - **Sync**: a peer behind fetches canonical ranges, a block whose parent is unknown makes it
//!   fetch the parent (walking back to the fork point), and every block comes with the objects
//!   its transactions reference. Gossip is only a fast path; sync repairs what it drops.
//! - **Object fetch**: a submission referencing an object a client stored at another peer makes
//!   this peer ask its admitted peers for it, one after the other ([`OverlayHandle::fetch_object`]).
//! - **Verification** of what peers send runs on the [`worker`] thread, not on this event loop.
//! - **Misbehaviour**: invalid blocks or transactions and garbage earn strikes; at
//!   [`MAX_STRIKES`] the peer is disconnected and banned for [`BAN_TIME`].

pub mod handle;
pub mod protocol;
pub mod worker;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, ping, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn};

use super::config::{read_seeds, Config};
use super::metrics::Metrics;
use super::{BlockBundle, Health, Node, ReceivedBlock, TxBundle};
use crate::journal::{Added, BlockRejection};
use crate::model::Cid;
use crate::time;
use crate::trust::{Chain, Level, PublicKey};
pub use handle::{Command, OverlayHandle};
use protocol::{Announce, Hello, PeerRecord, Request, Response, MAX_RANGE, SYNC_PROTOCOL};
use worker::{Job, Outcome};

/// Blocks a ready peer may fall behind its best peer before it reports not ready.
pub const READY_LAG: u64 = 2;
/// How long a connection may stay unadmitted.
pub const ADMISSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Strikes before a peer is disconnected and banned.
pub const MAX_STRIKES: u32 = 3;
/// How long a misbehaving peer stays banned.
pub const BAN_TIME: Duration = Duration::from_secs(300);
/// How often a peer gossips its identity record.
pub const RECORD_INTERVAL: Duration = Duration::from_secs(5);
/// A peer whose record is older than this (and is not connected) leaves the rotation.
pub const RECORD_TTL: Duration = Duration::from_secs(30);

/// The composed libp2p behaviour.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    gossipsub: gossipsub::Behaviour,
    sync: request_response::cbor::Behaviour<Request, Response>,
}

/// Why the overlay could not start.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// libp2p refused the setup.
    #[error("overlay setup: {0}")]
    Setup(String),
}

struct KnownPeer {
    key: PublicKey,
    addrs: Vec<Multiaddr>,
    seen: Instant,
}

/// The overlay's state and event loop.
pub struct Overlay {
    swarm: Swarm<Behaviour>,
    node: Arc<Node>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    config: OverlayConfig,
    admitted: HashMap<PeerId, PublicKey>,
    unadmitted: HashMap<PeerId, Instant>,
    known: HashMap<PeerId, KnownPeer>,
    strikes: HashMap<PeerId, u32>,
    banned: HashMap<PeerId, Instant>,
    heights: HashMap<PeerId, u64>,
    waiting_for_parent: HashMap<Cid, Vec<(PeerId, BlockBundle)>>,
    requested: HashMap<Cid, Instant>,
    /// Outstanding block requests, to retry elsewhere at once when one fails or finds nothing.
    block_requests: HashMap<request_response::OutboundRequestId, Cid>,
    /// Object fetches for submissions, and the peers not asked yet.
    object_requests: HashMap<request_response::OutboundRequestId, (ObjectFetch, Vec<PeerId>)>,
    commands: Option<mpsc::Receiver<Command>>,
    tx_batch: Vec<TxBundle>,
    last_seed_dial: Option<Instant>,
    topics: Topics,
    /// Whether the peer has been fully synced since it started (readiness needs it once).
    synced_once: bool,
    /// The verification worker's queue, and blocks waiting for room in it.
    jobs: mpsc::Sender<Job>,
    backlog: VecDeque<Job>,
    outcomes: Option<mpsc::UnboundedReceiver<Outcome>>,
}

/// An object fetch in progress: the object and who waits for it.
#[derive(Debug)]
struct ObjectFetch {
    cid: Cid,
    reply: oneshot::Sender<bool>,
}

struct Topics {
    txs: IdentTopic,
    blocks: IdentTopic,
    peers: IdentTopic,
}

/// What the overlay needs from the configuration.
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    /// Listen address.
    pub listen: Multiaddr,
    /// Advertised address.
    pub external_address: Option<Multiaddr>,
    /// Seeds.
    pub seeds: Vec<Multiaddr>,
    /// Seeds file (re-read).
    pub seeds_file: Option<std::path::PathBuf>,
    /// N of N-cut.
    pub target_connectivity: usize,
}

impl OverlayConfig {
    /// The overlay part of a peer's configuration.
    pub fn from_config(config: &Config) -> Self {
        Self {
            listen: config.listen.clone(),
            external_address: config.external_address.clone(),
            seeds: config.seeds.clone(),
            seeds_file: config.seeds_file.clone(),
            target_connectivity: config.target_connectivity,
        }
    }
}

fn gossip_id(message: &gossipsub::Message) -> gossipsub::MessageId {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(message.data.as_slice());
    if let Some(source) = &message.source {
        h.update(source.to_bytes());
    }
    if let Some(seq) = message.sequence_number {
        h.update(seq.to_be_bytes());
    }
    gossipsub::MessageId::from(h.finalize().to_vec())
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
        let keypair = node.key.to_libp2p();
        let setup = |e: &dyn std::fmt::Display| OverlayError::Setup(e.to_string());
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| setup(&e))?
            .with_dns()
            .map_err(|e| setup(&e))?
            .with_behaviour(|key| {
                let gossip_config = gossipsub::ConfigBuilder::default()
                    .validation_mode(gossipsub::ValidationMode::Strict)
                    .validate_messages()
                    .max_transmit_size(2 * 1024 * 1024)
                    .heartbeat_interval(Duration::from_millis(500))
                    .message_id_fn(gossip_id)
                    .build()
                    .map_err(|e| e.to_string())?;
                let gossipsub = gossipsub::Behaviour::new(
                    gossipsub::MessageAuthenticity::Signed(key.clone()),
                    gossip_config,
                )?;
                Ok(Behaviour {
                    identify: identify::Behaviour::new(identify::Config::new(
                        "/mediachain/1".into(),
                        key.public(),
                    )),
                    ping: ping::Behaviour::new(
                        ping::Config::new()
                            .with_interval(Duration::from_secs(2))
                            .with_timeout(Duration::from_secs(5)),
                    ),
                    gossipsub,
                    sync: request_response::cbor::Behaviour::new(
                        [(StreamProtocol::new(SYNC_PROTOCOL), ProtocolSupport::Full)],
                        request_response::Config::default()
                            .with_request_timeout(Duration::from_secs(20)),
                    ),
                })
            })
            .map_err(|e| setup(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
            .build();
        let network = node.params().network.clone();
        let topics = Topics {
            txs: IdentTopic::new(format!("/mediachain/{network}/txs")),
            blocks: IdentTopic::new(format!("/mediachain/{network}/blocks")),
            peers: IdentTopic::new(format!("/mediachain/{network}/peers")),
        };
        for topic in [&topics.txs, &topics.blocks, &topics.peers] {
            swarm
                .behaviour_mut()
                .gossipsub
                .subscribe(topic)
                .map_err(|e| setup(&e))?;
        }
        swarm
            .listen_on(config.listen.clone())
            .map_err(|e| setup(&e))?;
        if let Some(addr) = &config.external_address {
            swarm.add_external_address(addr.clone());
        }
        let (jobs, outcomes) = worker::spawn(node.clone()).map_err(|e| setup(&e))?;
        let (handle, commands) = OverlayHandle::channel();
        let mut overlay = Self {
            swarm,
            node,
            metrics,
            health,
            config,
            admitted: HashMap::new(),
            unadmitted: HashMap::new(),
            known: HashMap::new(),
            strikes: HashMap::new(),
            banned: HashMap::new(),
            heights: HashMap::new(),
            waiting_for_parent: HashMap::new(),
            requested: HashMap::new(),
            block_requests: HashMap::new(),
            object_requests: HashMap::new(),
            commands: Some(commands),
            tx_batch: vec![],
            last_seed_dial: None,
            topics,
            synced_once: false,
            jobs,
            backlog: VecDeque::new(),
            outcomes: Some(outcomes),
        };
        overlay.update_health();
        Ok((overlay, handle))
    }

    fn hello(&self) -> Hello {
        Hello {
            network: self.node.params().network.clone(),
            genesis: ByteBuf::from(self.node.genesis().to_bytes()),
            chain: self.node.chain().to_pem(),
            height: self.node.tip().map(|t| t.1).unwrap_or(0),
            tip: ByteBuf::from(self.node.tip().map(|t| t.0.to_bytes()).unwrap_or_default()),
        }
    }

    /// A peer's tip we do not know means a branch we have not seen: fetch it (and, through
    /// its parents, everything back to the common ancestor).
    fn note_tip(&mut self, peer: PeerId, tip: Cid) {
        let known = self.node.with_journal(|j| j.knows(&tip));
        if !known {
            debug!(%peer, %tip, "peer is on a branch we lack");
            self.request_block(peer, tip);
        }
    }

    fn height(&self) -> u64 {
        self.node.tip().map(|t| t.1).unwrap_or(0)
    }

    /// Verifies a peer's chain for its PeerId; returns its key.
    fn verify_peer_chain(&self, peer: &PeerId, chain_pem: &str) -> Result<PublicKey, String> {
        let chain =
            Chain::from_pem(chain_pem).map_err(|e| format!("unreadable certificate: {e}"))?;
        let rules = self.node.rules();
        let key = chain
            .verify(&rules.root, &rules.revocations, time::now(), Level::Peer)
            .map_err(|e| e.to_string())?;
        if key.peer_id() != *peer {
            return Err(format!(
                "certificate is for {key}, not for the connecting peer {peer}"
            ));
        }
        Ok(key)
    }

    fn check_hello(&self, peer: &PeerId, hello: &Hello) -> Result<PublicKey, String> {
        if hello.network != self.node.params().network {
            return Err(format!("peer is on network `{}`", hello.network));
        }
        if hello.genesis.as_ref() != self.node.genesis().to_bytes().as_slice() {
            return Err("peer has another genesis block".into());
        }
        self.verify_peer_chain(peer, &hello.chain)
    }

    fn refuse(&mut self, peer: PeerId, reason: &str) {
        warn!(%peer, %reason, "peer refused admission");
        self.metrics.reject("peer", "admission");
        self.unadmitted.remove(&peer);
        let _ = self.swarm.disconnect_peer_id(peer);
    }

    fn admit(&mut self, peer: PeerId, key: PublicKey, height: u64) {
        self.unadmitted.remove(&peer);
        if self.admitted.insert(peer, key).is_none() {
            info!(%peer, height, "peer admitted");
            // Admitted peers are direct gossip peers: in a permissioned network of tens of
            // peers every message reaches every connected peer without waiting for the mesh.
            self.swarm
                .behaviour_mut()
                .gossipsub
                .add_explicit_peer(&peer);
        }
        self.known
            .entry(peer)
            .or_insert(KnownPeer {
                key,
                addrs: vec![],
                seen: Instant::now(),
            })
            .seen = Instant::now();
        self.metrics.peers_connected.set(self.admitted.len() as i64);
        self.note_height(peer, height);
        self.update_rotation();
    }

    fn note_height(&mut self, peer: PeerId, height: u64) {
        let known = self.heights.entry(peer).or_default();
        *known = (*known).max(height);
        self.metrics
            .sync_target_height
            .set(self.best_height() as i64);
        let ours = self.height();
        if height > ours {
            let from = ours + 1;
            debug!(%peer, from, height, "behind: requesting a range");
            self.swarm.behaviour_mut().sync.send_request(
                &peer,
                Request::Range {
                    from,
                    max: MAX_RANGE,
                },
            );
        }
        self.update_health();
    }

    /// The highest tip any connected, admitted peer claims. Claims die with the connection,
    /// so a banned liar cannot keep this peer unready.
    fn best_height(&self) -> u64 {
        self.heights
            .iter()
            .filter(|(peer, _)| self.admitted.contains_key(peer))
            .map(|(_, h)| *h)
            .max()
            .unwrap_or(0)
    }

    /// Readiness: admitted, and synced once since start; afterwards a lag of up to
    /// [`READY_LAG`] blocks (the time a new block takes to arrive) keeps the peer ready, so
    /// probes do not flap with every block. Committing needs the peer fully synced.
    fn update_health(&mut self) {
        let (height, best) = (self.height(), self.best_height());
        let connected = !self.admitted.is_empty() || self.config.seeds.is_empty();
        let synced = connected && height >= best;
        self.synced_once |= synced;
        let ready = connected && self.synced_once && best.saturating_sub(height) <= READY_LAG;
        if ready != self.health.is_ready() {
            info!(
                ready,
                height,
                best_peer_height = best,
                connected,
                "readiness changed"
            );
        }
        self.health.set_ready(ready);
        self.health.set_synced(synced);
        self.metrics.journal_height.set(height as i64);
    }

    fn update_rotation(&mut self) {
        let fresh: Vec<PublicKey> = self
            .known
            .iter()
            .filter(|(peer, k)| self.admitted.contains_key(peer) || k.seen.elapsed() < RECORD_TTL)
            .map(|(_, k)| k.key)
            .collect();
        self.metrics.peers_known.set(fresh.len() as i64 + 1);
        self.node.set_peers(fresh);
    }

    fn strike(&mut self, peer: PeerId, kind: &str, reason: &str) {
        self.metrics.reject(kind, reason);
        let strikes = self.strikes.entry(peer).or_default();
        *strikes += 1;
        warn!(%peer, kind, reason, strikes = *strikes, "peer misbehaved");
        if *strikes >= MAX_STRIKES {
            warn!(%peer, "disconnecting and banning a misbehaving peer");
            self.metrics.reject("peer", "banned");
            self.banned.insert(peer, Instant::now());
            self.admitted.remove(&peer);
            self.known.remove(&peer);
            self.heights.remove(&peer);
            let _ = self.swarm.disconnect_peer_id(peer);
            self.update_rotation();
        }
    }

    fn is_banned(&mut self, peer: &PeerId) -> bool {
        match self.banned.get(peer) {
            Some(since) if since.elapsed() < BAN_TIME => true,
            Some(_) => {
                self.banned.remove(peer);
                self.strikes.remove(peer);
                false
            }
            None => false,
        }
    }

    fn request_block(&mut self, peer: PeerId, cid: Cid) {
        if let Some(at) = self.requested.get(&cid) {
            if at.elapsed() < Duration::from_secs(10) {
                return;
            }
        }
        self.requested.insert(cid, Instant::now());
        debug!(%peer, block = %cid, "requesting a block");
        let request = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            Request::Block {
                cid: ByteBuf::from(cid.to_bytes()),
            },
        );
        self.block_requests.insert(request, cid);
    }

    /// Hands a block to the verification worker (or to the backlog while its queue is full).
    fn handle_bundle(&mut self, peer: PeerId, bundle: BlockBundle) {
        let job = Job::Block { peer, bundle };
        if self.backlog.is_empty() {
            if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
                self.backlog.push_back(job);
            }
        } else {
            self.backlog.push_back(job);
        }
    }

    /// Moves backlogged blocks into the worker's queue while there is room.
    fn drain_backlog(&mut self) {
        while let Some(job) = self.backlog.pop_front() {
            if let Err(mpsc::error::TrySendError::Full(job)) = self.jobs.try_send(job) {
                self.backlog.push_front(job);
                return;
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Txs {
                source,
                message,
                results,
            } => self.on_txs_verified(source, &message, results),
            Outcome::Block {
                peer,
                bundle,
                received,
            } => {
                // A storage failure was logged by the worker.
                if let Ok(received) = *received {
                    self.on_block_verified(peer, bundle, received);
                }
            }
        }
        self.drain_backlog();
    }

    fn on_block_verified(&mut self, peer: PeerId, bundle: BlockBundle, received: ReceivedBlock) {
        let Some((cid, height)) = received.header else {
            self.strike(peer, "block", "malformed");
            return;
        };
        self.requested.remove(&cid);
        let verdict = match &received.outcome {
            Ok(Added::Extended) => "extended",
            Ok(Added::Reorganized { .. }) => "reorganized",
            Ok(Added::SideBranch) => "side branch",
            Ok(Added::Known) => "known",
            Err(reason) => reason.label(),
        };
        debug!(%peer, block = %cid, height, verdict, "block verified");
        match received.outcome {
            Ok(added) => {
                match &added {
                    Added::Extended => self.metrics.blocks_received.inc(),
                    Added::Reorganized { orphans, .. } => {
                        info!(
                            orphans = orphans.len(),
                            "fork healed: switched to a heavier branch"
                        );
                        self.metrics.forks_healed.inc();
                        self.metrics.blocks_received.inc()
                    }
                    Added::SideBranch | Added::Known => 0,
                };
                // Children that waited for this block.
                if let Some(children) = self.waiting_for_parent.remove(&cid) {
                    for (from, child) in children {
                        self.handle_bundle(from, child);
                    }
                }
                if height >= self.best_height() {
                    self.note_height(peer, height);
                }
            }
            Err(BlockRejection::UnknownParent(parent)) => {
                self.waiting_for_parent
                    .entry(parent)
                    .or_default()
                    .push((peer, bundle));
                self.request_block(peer, parent);
            }
            Err(reason) => {
                let label = reason.label();
                warn!(%peer, block = %cid, %reason, "peer sent an invalid block");
                self.strike(peer, "block", label);
            }
        }
        self.update_health();
        self.metrics.mempool_size.set(self.node.pending() as i64);
    }

    fn on_request(
        &mut self,
        peer: PeerId,
        request: Request,
        channel: request_response::ResponseChannel<Response>,
    ) {
        let _span = info_span!("sync_request", %peer).entered();
        let response = match request {
            Request::Hello(hello) => {
                if self.is_banned(&peer) {
                    Response::Refused("banned for misbehaviour".into())
                } else {
                    match self.check_hello(&peer, &hello) {
                        Ok(key) => {
                            self.admit(peer, key, hello.height);
                            if let Ok(tip) = Cid::try_from(hello.tip.as_ref()) {
                                self.note_tip(peer, tip);
                            }
                            Response::Hello(self.hello())
                        }
                        Err(reason) => {
                            let _ = self
                                .swarm
                                .behaviour_mut()
                                .sync
                                .send_response(channel, Response::Refused(reason.clone()));
                            self.refuse(peer, &reason);
                            return;
                        }
                    }
                }
            }
            _ if !self.admitted.contains_key(&peer) => Response::Refused("not admitted".into()),
            Request::Range { from, max } => {
                let cids = self
                    .node
                    .canonical_range(from, max.min(MAX_RANGE))
                    .unwrap_or_default();
                Response::Range(
                    cids.into_iter()
                        .map(|c| ByteBuf::from(c.to_bytes()))
                        .collect(),
                )
            }
            Request::Object { cid } => Response::Object(
                Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.store().get(&cid).ok().flatten())
                    .map(ByteBuf::from),
            ),
            Request::Block { cid } => {
                let bundle = Cid::try_from(cid.as_ref())
                    .ok()
                    .and_then(|cid| self.node.block_bundle(&cid).ok().flatten())
                    .map(|b| ByteBuf::from(protocol::encode(&b)));
                Response::Block(bundle)
            }
        };
        let _ = self
            .swarm
            .behaviour_mut()
            .sync
            .send_response(channel, response);
    }

    /// Asks the next peer in `rest` for the object, or answers that nobody has it.
    fn ask_for_object(&mut self, fetch: ObjectFetch, mut rest: Vec<PeerId>) {
        let Some(peer) = rest.pop() else {
            debug!(object = %fetch.cid, "no peer holds the object");
            let _ = fetch.reply.send(false);
            return;
        };
        let request = self.swarm.behaviour_mut().sync.send_request(
            &peer,
            Request::Object {
                cid: ByteBuf::from(fetch.cid.to_bytes()),
            },
        );
        self.object_requests.insert(request, (fetch, rest));
    }

    fn on_object_fetch(&mut self, fetch: ObjectFetch) {
        let _span = info_span!("object_fetch", object = %fetch.cid).entered();
        let peers: Vec<PeerId> = self.admitted.keys().copied().collect();
        self.ask_for_object(fetch, peers);
    }

    /// A peer's answer to an object fetch: stored (the hash checked) or ask the next peer.
    fn on_object(
        &mut self,
        peer: PeerId,
        request: request_response::OutboundRequestId,
        bytes: Option<ByteBuf>,
    ) {
        let Some((fetch, rest)) = self.object_requests.remove(&request) else {
            return;
        };
        if let Some(bytes) = bytes {
            match self.node.store().put(&fetch.cid, &bytes) {
                Ok(_) => {
                    debug!(%peer, object = %fetch.cid, "object fetched");
                    let _ = fetch.reply.send(true);
                    return;
                }
                Err(e) => {
                    warn!(%peer, object = %fetch.cid, error = %e, "peer sent a wrong object");
                    self.strike(peer, "object", "invalid");
                }
            }
        }
        self.ask_for_object(fetch, rest);
    }

    /// A block request ended without a block: it may be asked of anyone again at once.
    fn block_request_failed(&mut self, request: request_response::OutboundRequestId) {
        if let Some(cid) = self.block_requests.remove(&request) {
            self.requested.remove(&cid);
        }
    }

    fn on_response(
        &mut self,
        peer: PeerId,
        request: request_response::OutboundRequestId,
        response: Response,
    ) {
        if !matches!(response, Response::Block(None)) {
            self.block_requests.remove(&request);
        }
        match response {
            Response::Hello(hello) => match self.check_hello(&peer, &hello) {
                Ok(key) => {
                    self.admit(peer, key, hello.height);
                    if let Ok(tip) = Cid::try_from(hello.tip.as_ref()) {
                        self.note_tip(peer, tip);
                    }
                }
                Err(reason) => self.refuse(peer, &reason),
            },
            Response::Refused(reason) => {
                warn!(%peer, %reason, "a peer refused us");
            }
            Response::Range(cids) => {
                for cid in cids.iter().filter_map(|c| Cid::try_from(c.as_ref()).ok()) {
                    let known = self.node.with_journal(|j| j.knows(&cid));
                    if !known {
                        self.request_block(peer, cid);
                    }
                }
            }
            Response::Block(Some(bytes)) => match protocol::decode::<BlockBundle>(&bytes) {
                Ok(bundle) => self.handle_bundle(peer, bundle),
                Err(_) => self.strike(peer, "message", "garbage"),
            },
            Response::Block(None) => {
                debug!(%peer, "peer lacks the block we asked for");
                self.block_request_failed(request);
            }
            Response::Object(bytes) => self.on_object(peer, request, bytes),
        }
    }

    fn on_gossip(&mut self, source: PeerId, id: gossipsub::MessageId, message: gossipsub::Message) {
        let author = message.source.unwrap_or(source);
        let accept = if !self.admitted.contains_key(&source) {
            MessageAcceptance::Ignore
        } else if message.topic == self.topics.txs.hash() {
            let job = Job::Txs {
                source,
                message: id.clone(),
                data: message.data,
            };
            match self.jobs.try_send(job) {
                // The verdict is reported when the worker is done.
                Ok(()) => return,
                Err(_) => {
                    debug!("verification queue full: transaction gossip dropped");
                    self.metrics.reject("transaction", "busy");
                    MessageAcceptance::Ignore
                }
            }
        } else if message.topic == self.topics.blocks.hash() {
            match protocol::decode::<Announce>(&message.data) {
                Ok(announce) => {
                    let known = self.node.with_journal(|j| j.knows(&announce.cid));
                    if !known {
                        // The committer has the block; a forwarding peer may not have it yet.
                        let from = if self.admitted.contains_key(&author) {
                            author
                        } else {
                            source
                        };
                        self.request_block(from, announce.cid);
                    }
                    let entry = self.heights.entry(source).or_default();
                    *entry = (*entry).max(announce.height);
                    self.metrics
                        .sync_target_height
                        .set(self.best_height() as i64);
                    MessageAcceptance::Accept
                }
                Err(_) => {
                    self.strike(source, "message", "garbage");
                    MessageAcceptance::Reject
                }
            }
        } else if message.topic == self.topics.peers.hash() {
            match protocol::decode::<PeerRecord>(&message.data) {
                Ok(record) => match self.verify_peer_chain(&author, &record.chain) {
                    Ok(key) => {
                        let addrs: Vec<Multiaddr> =
                            record.addrs.iter().filter_map(|a| a.parse().ok()).collect();
                        for addr in &addrs {
                            self.swarm.add_peer_address(author, addr.clone());
                        }
                        self.known.insert(
                            author,
                            KnownPeer {
                                key,
                                addrs,
                                seen: Instant::now(),
                            },
                        );
                        self.update_rotation();
                        if self.admitted.contains_key(&author) {
                            self.note_height(author, record.height);
                            self.note_tip(author, record.tip);
                        }
                        MessageAcceptance::Accept
                    }
                    Err(reason) => {
                        self.metrics.reject("peer", "record");
                        debug!(%author, %reason, "invalid peer record");
                        MessageAcceptance::Reject
                    }
                },
                Err(_) => {
                    self.strike(source, "message", "garbage");
                    MessageAcceptance::Reject
                }
            }
        } else {
            MessageAcceptance::Ignore
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(&id, &source, accept);
    }

    fn on_txs_verified(
        &mut self,
        source: PeerId,
        message: &gossipsub::MessageId,
        results: Option<Vec<worker::TxResult>>,
    ) {
        let accept = match results {
            None => {
                self.strike(source, "message", "garbage");
                MessageAcceptance::Reject
            }
            Some(results) => {
                let mut invalid = false;
                for result in results {
                    match result {
                        Ok(Ok(_)) => {
                            self.metrics.transactions_admitted.inc();
                        }
                        Ok(Err(reason)) => {
                            let label = reason.label();
                            // Duplicates and stale heads are normal under concurrency; the rest
                            // is not.
                            if !matches!(label, "duplicate" | "invalid_entry" | "busy") {
                                invalid = true;
                                self.strike(source, "transaction", label);
                            } else {
                                self.metrics.reject("transaction", label);
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "storage failure while admitting a transaction")
                        }
                    }
                }
                self.metrics.mempool_size.set(self.node.pending() as i64);
                if invalid {
                    MessageAcceptance::Reject
                } else {
                    MessageAcceptance::Accept
                }
            }
        };
        self.swarm
            .behaviour_mut()
            .gossipsub
            .report_message_validation_result(message, &source, accept);
    }

    fn publish(&mut self, topic: IdentTopic, data: Vec<u8>) {
        if let Err(e) = self.swarm.behaviour_mut().gossipsub.publish(topic, data) {
            debug!(error = %e, "gossip publish failed (sync will repair)");
        }
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::PublishTx(bundle) => {
                self.metrics.transactions_admitted.inc();
                self.tx_batch.push((*bundle).clone());
            }
            Command::FetchObject { cid, reply } => {
                self.on_object_fetch(ObjectFetch { cid, reply });
            }
            Command::Announce(block) => {
                let announce = Announce {
                    cid: block.cid(),
                    height: block.height,
                };
                let data = protocol::encode(&announce);
                let topic = self.topics.blocks.clone();
                self.publish(topic, data);
                self.update_health();
            }
        }
    }

    fn flush_txs(&mut self) {
        if self.tx_batch.is_empty() {
            return;
        }
        // Many transactions per message (one per message caps throughput), under 1 MiB each.
        let mut batch = vec![];
        let mut size = 0;
        for bundle in std::mem::take(&mut self.tx_batch) {
            let s = bundle.tx.to_bytes().len()
                + bundle
                    .objects
                    .iter()
                    .map(|(_, b)| b.len() + 40)
                    .sum::<usize>();
            if size + s > 1024 * 1024 && !batch.is_empty() {
                let data = protocol::encode(&batch);
                let topic = self.topics.txs.clone();
                self.publish(topic, data);
                batch.clear();
                size = 0;
            }
            size += s;
            batch.push(bundle);
        }
        let data = protocol::encode(&batch);
        let topic = self.topics.txs.clone();
        self.publish(topic, data);
    }

    fn publish_record(&mut self) {
        let mut addrs: Vec<String> = self
            .swarm
            .external_addresses()
            .map(|a| a.to_string())
            .collect();
        if addrs.is_empty() {
            addrs = self.swarm.listeners().map(|a| a.to_string()).collect();
        }
        let record = PeerRecord {
            chain: self.node.chain().to_pem(),
            addrs,
            height: self.height(),
            tip: self
                .node
                .tip()
                .map(|t| t.0)
                .unwrap_or_else(|_| self.node.genesis()),
            timestamp: time::now(),
        };
        let topic = self.topics.peers.clone();
        self.publish(topic, protocol::encode(&record));
    }

    fn maintain_connectivity(&mut self) {
        // Admission deadline.
        let late: Vec<PeerId> = self
            .unadmitted
            .iter()
            .filter(|(_, at)| at.elapsed() > ADMISSION_TIMEOUT)
            .map(|(p, _)| *p)
            .collect();
        for peer in late {
            self.refuse(peer, "no valid certificate within the admission timeout");
        }
        // Forget stale records (the rotation follows).
        let before = self.known.len();
        let admitted = &self.admitted;
        self.known
            .retain(|peer, k| admitted.contains_key(peer) || k.seen.elapsed() < RECORD_TTL * 4);
        if self.known.len() != before {
            self.update_rotation();
        }
        // N-cut: fully connected while small, else at least N+1 admitted connections.
        let me = *self.swarm.local_peer_id();
        let target = self.config.target_connectivity + 1;
        let want_all = self.known.len() <= target;
        if want_all || self.admitted.len() < target {
            let missing: Vec<(PeerId, Vec<Multiaddr>)> = self
                .known
                .iter()
                .filter(|(p, _)| **p != me && !self.swarm.is_connected(p))
                .map(|(p, k)| (*p, k.addrs.clone()))
                .collect();
            let needed = if want_all {
                missing.len()
            } else {
                target - self.admitted.len()
            };
            for (peer, addrs) in missing.into_iter().take(needed) {
                if self.is_banned(&peer) {
                    continue;
                }
                let opts = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                    .addresses(addrs)
                    .build();
                if let Err(e) = self.swarm.dial(opts) {
                    debug!(%peer, error = %e, "redial failed");
                }
            }
        }
        // Repair: gossip may drop announcements; ask the highest admitted peer for what we lack.
        let ours = self.height();
        let ahead = self
            .heights
            .iter()
            .filter(|(p, h)| self.admitted.contains_key(p) && **h > ours)
            .max_by_key(|(_, h)| **h)
            .map(|(p, _)| *p);
        if let Some(peer) = ahead {
            self.swarm.behaviour_mut().sync.send_request(
                &peer,
                Request::Range {
                    from: ours + 1,
                    max: MAX_RANGE,
                },
            );
        }
        // Seeds: dialled while we have fewer admitted peers than wanted.
        if let Some(path) = &self.config.seeds_file {
            if let Ok(seeds) = read_seeds(path) {
                self.config.seeds = seeds;
            }
        }
        let due = self
            .last_seed_dial
            .is_none_or(|t| t.elapsed() > Duration::from_secs(5));
        if due && self.admitted.len() < target.min(self.config.seeds.len()) {
            self.last_seed_dial = Some(Instant::now());
            let own: HashSet<Multiaddr> = self
                .swarm
                .external_addresses()
                .chain(self.swarm.listeners())
                .cloned()
                .collect();
            for seed in self.config.seeds.clone() {
                if own.contains(&seed) {
                    continue;
                }
                if let Err(e) = self.swarm.dial(seed.clone()) {
                    debug!(%seed, error = %e, "seed dial failed");
                }
            }
        }
        self.update_health();
    }

    /// Runs until `shutdown` resolves, then leaves the overlay.
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
        self.update_health();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(outcome) = outcomes.recv() => self.on_outcome(outcome),
                command = commands.recv() => match command {
                    Some(command) => self.on_command(command),
                    None => break,
                },
                _ = batching.tick() => self.flush_txs(),
                _ = records.tick() => self.publish_record(),
                _ = maintenance.tick() => self.maintain_connectivity(),
            }
        }
        info!("leaving the overlay");
        self.flush_txs();
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        for peer in peers {
            let _ = self.swarm.disconnect_peer_id(peer);
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => info!(%address, "overlay listening"),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                num_established,
                ..
            } => {
                if self.is_banned(&peer_id) {
                    let _ = self.swarm.disconnect_peer_id(peer_id);
                    return;
                }
                if num_established.get() == 1 && !self.admitted.contains_key(&peer_id) {
                    self.unadmitted.insert(peer_id, Instant::now());
                    let hello = self.hello();
                    self.swarm
                        .behaviour_mut()
                        .sync
                        .send_request(&peer_id, Request::Hello(hello));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => {
                self.unadmitted.remove(&peer_id);
                if self.admitted.remove(&peer_id).is_some() {
                    info!(peer = %peer_id, "peer disconnected");
                    self.swarm
                        .behaviour_mut()
                        .gossipsub
                        .remove_explicit_peer(&peer_id);
                    self.metrics.peers_connected.set(self.admitted.len() as i64);
                }
            }
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
                    if let Some((fetch, rest)) = self.object_requests.remove(&request_id) {
                        self.ask_for_object(fetch, rest);
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
            })) if self.admitted.contains_key(&peer_id) => {
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
