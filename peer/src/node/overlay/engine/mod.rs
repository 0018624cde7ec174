//! The overlay engine: the policy joined to the node, over any transport. It turns what
//! arrives (requests, responses, gossip, the worker's verdicts, commands, timers) into policy
//! inputs, answers requests from the node, and executes the policy's effects: the node-facing
//! ones itself (rotation, readiness, metrics, object fetches for submissions) and the rest
//! through a [`Transport`]. The libp2p driver (`super::driver`) and the simulator
//! (`peer/tests/sim`) both run it, so a simulated peer runs exactly the daemon's overlay logic
//! with only the sockets replaced.
//!
//! It decides nothing about peers itself (the policy does), reads time only from the node's
//! [`Clock`](crate::node::Clock), and owns no socket, task or timer.

mod gossip;
mod requests;
mod votes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tokio::sync::oneshot;
use tracing::{debug, info, warn};

use super::policy::objects::FetchId;
use super::policy::verifier::Job;
use super::policy::{Acceptance, Effect, Input, Policy, Transfer};
use super::protocol::{Hello, Request, MAX_RANGE};
use crate::model::Cid;
use crate::node::metrics::Metrics;
use crate::node::{Health, Node};
pub use requests::Refusal;

/// Requests awaiting an answer, at most (beyond, the oldest are forgotten and counted: a
/// transport answers or fails every request, so this only bounds a faulty one).
pub const MAX_REQUESTS: usize = 8192;

/// The engine's name for one outgoing request.
pub type RequestId = u64;

/// The gossip topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    /// Transaction batches.
    Txs,
    /// Block announcements.
    Blocks,
    /// Identity records.
    Peers,
    /// Finality votes.
    Votes,
}

/// What the engine needs from the network: the libp2p swarm in the daemon, simulated links in
/// the simulator. Every request sent must come back as [`Engine::on_response`] or
/// [`Engine::on_failure`] with its id.
pub trait Transport {
    /// Sends `request` to `peer`.
    fn request(&mut self, peer: PeerId, id: RequestId, request: Request);
    /// Publishes `data` on `topic` to the gossip network.
    fn publish(&mut self, topic: Topic, data: Vec<u8>);
    /// Reports the verdict on a gossip message.
    fn validate(&mut self, source: PeerId, message: MessageId, accept: Acceptance);
    /// Hands a job to the verification worker (its outcome comes back as
    /// [`Engine::on_outcome`]).
    fn verify(&mut self, job: Job);
    /// Executes an effect on connections: `Disconnect`, `Block`, `DirectGossip`, `Dial`,
    /// `DialSeeds`, and `Struck` (for the log, or a test's eyes).
    fn connection(&mut self, effect: Effect);
}

/// What an outgoing request asked for.
#[derive(Debug, Clone, Copy)]
enum Asked {
    Hello,
    Range,
    /// A block, and when it was asked for (what its answer proves depends on it).
    Block(Cid, Instant),
    Object(FetchId),
}

/// The overlay logic of one peer, between its node and its transport.
pub struct Engine {
    node: Arc<Node>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    policy: Policy,
    next_request: RequestId,
    asked: BTreeMap<RequestId, (PeerId, Asked)>,
    next_token: u64,
    submissions: BTreeMap<u64, oneshot::Sender<bool>>,
    /// Each record author's chain, verified (`gossip.rs`).
    chains: BTreeMap<PeerId, gossip::KnownChain>,
}

impl Engine {
    /// The engine of `node`, for N-cut connectivity `target_connectivity`, reporting into
    /// `metrics` and `health`.
    pub fn new(
        node: Arc<Node>,
        metrics: Arc<Metrics>,
        health: Arc<Health>,
        target_connectivity: usize,
    ) -> Self {
        let height = node.tip().map(|t| t.1).unwrap_or(0);
        let now = node.clock().instant();
        let policy = Policy::new(node.public_key(), height, target_connectivity, now);
        Self {
            node,
            metrics,
            health,
            policy,
            next_request: 0,
            asked: BTreeMap::new(),
            next_token: 0,
            submissions: BTreeMap::new(),
            chains: BTreeMap::new(),
        }
    }

    /// The peer policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    fn now(&self) -> Instant {
        self.node.clock().instant()
    }

    fn height(&self) -> u64 {
        self.node.tip().map(|t| t.1).unwrap_or(0)
    }

    fn knows(&self, cid: &Cid) -> bool {
        self.node.with_journal(|j| j.knows(cid))
    }

    /// Feeds the policy one input and executes what it decides.
    pub fn input(&mut self, input: Input, t: &mut impl Transport) {
        let effects = self.policy.handle(input, self.now());
        for effect in effects {
            self.apply(effect, t);
        }
    }

    /// Maintenance, every second: this peer's height, admitted peers' certificates, then the
    /// policy's tick; `seeds` is how
    /// many seeds other than this peer are configured.
    pub fn tick(&mut self, seeds: usize, t: &mut impl Transport) {
        let height = self.height();
        self.input(Input::Tip(height), t);
        // Admitted peers' certificates against the revocations at the tip, at the clock: a
        // peer revoked on the chain, or whose certificate expired, is cut off, once its seat
        // (under network parameters) ended: until then its votes may be needed to finalise
        // the very block that ends it (docs/consensus.md, "Seat changes wait for finality").
        let seated = match self.node.params().network_params {
            Some(_) => self.node.with_journal(|j| j.schedule().peers().to_vec()),
            None => vec![],
        };
        let certificates = Input::Certificates {
            revocations: self.node.peer_rules().revocations,
            seated,
            unix: self.node.clock().unix(),
        };
        self.input(certificates, t);
        self.input(Input::Tick { seeds }, t);
        self.vote(t);
        self.share_votes(t);
    }

    /// Gossips the batched transactions (every 20 ms).
    pub fn flush(&mut self, t: &mut impl Transport) {
        self.input(Input::Flush, t);
    }

    /// Finds `cid` at other peers for a submission; `reply` says whether it is stored now.
    pub fn fetch_object(&mut self, cid: Cid, reply: oneshot::Sender<bool>, t: &mut impl Transport) {
        self.next_token += 1;
        let token = self.next_token;
        self.submissions.insert(token, reply);
        let fetch = Transfer::FetchObject { object: cid, token };
        self.input(Input::Transfer(fetch), t);
    }

    /// Our hello: network, genesis, certificate and tip.
    pub fn hello(&self) -> Hello {
        let (tip, height) = self.node.tip().unwrap_or_else(|_| (self.node.genesis(), 0));
        Hello {
            network: self.node.params().network.clone(),
            genesis: ByteBuf::from(self.node.genesis().to_bytes()),
            chain: self.node.chain().to_pem(),
            height,
            tip: ByteBuf::from(tip.to_bytes()),
            params: self.params_digests().map(Box::new),
        }
    }

    /// The digests of this network's parameters, if a file defines them.
    fn params_digests(&self) -> Option<crate::network::SectionDigests> {
        let params = self.node.params().network_params.as_ref();
        params.map(|p| p.section_digests())
    }

    fn request(&mut self, peer: PeerId, asked: Asked, request: Request, t: &mut impl Transport) {
        self.next_request += 1;
        let id = self.next_request;
        self.asked.insert(id, (peer, asked));
        while self.asked.len() > MAX_REQUESTS {
            if let Some((old, _)) = self.asked.pop_first() {
                self.metrics.evict("requests");
                self.on_failure(old, false, t);
            }
        }
        t.request(peer, id, request);
    }

    fn apply(&mut self, effect: Effect, t: &mut impl Transport) {
        match effect {
            Effect::SendHello(peer) => {
                let hello = Request::Hello(self.hello());
                self.request(peer, Asked::Hello, hello, t);
            }
            Effect::RequestRange { peer, from } => {
                debug!(%peer, from, "behind: requesting a range");
                let range = Request::Range {
                    from,
                    max: MAX_RANGE,
                };
                self.request(peer, Asked::Range, range, t);
            }
            Effect::FetchBlock { peer, cid, lean } => {
                debug!(%peer, block = %cid, lean, "requesting a block");
                let block = Request::Block {
                    cid: ByteBuf::from(cid.to_bytes()),
                    lean,
                };
                let asked = Asked::Block(cid, self.now());
                self.request(peer, asked, block, t);
            }
            Effect::AskObject {
                fetch,
                peer,
                object,
            } => {
                debug!(%peer, %object, "asking for an object");
                let ask = Request::Object {
                    cid: ByteBuf::from(object.to_bytes()),
                };
                self.request(peer, Asked::Object(fetch), ask, t);
            }
            Effect::ObjectFetched { token, found } => {
                if let Some(reply) = self.submissions.remove(&token) {
                    let _ = reply.send(found); // the submission may have timed out
                }
            }
            Effect::Evicted(structure) => self.metrics.evict(structure),
            Effect::Rotation(keys) => {
                self.metrics.peers_known.set(keys.len() as i64 + 1);
                self.node.set_peers(keys);
            }
            Effect::Count { kind, reason } => self.metrics.reject(kind, reason),
            Effect::Health(health) => self.report(health),
            Effect::GossipTxs(batch) => {
                let bundles: Vec<&crate::node::TxBundle> =
                    batch.iter().map(AsRef::as_ref).collect();
                self.publish(Topic::Txs, super::protocol::encode(&bundles), t);
            }
            Effect::Verify(job) => t.verify(job),
            Effect::Announce { cid, height } => {
                let announce = super::protocol::Announce { cid, height };
                self.publish(Topic::Blocks, super::protocol::encode(&announce), t);
            }
            Effect::Validate {
                source,
                message,
                accept,
            } => t.validate(source, message, accept),
            Effect::Struck {
                peer,
                reason,
                strikes,
                banned,
            } => {
                warn!(%peer, reason, strikes, banned, "peer misbehaved");
                t.connection(effect);
            }
            Effect::Disconnect { .. }
            | Effect::Block { .. }
            | Effect::DirectGossip { .. }
            | Effect::Dial { .. }
            | Effect::DialSeeds => t.connection(effect),
        }
    }

    /// Readiness and the commit gate, with their gauges.
    fn report(&self, health: super::policy::readiness::Health) {
        let height = self.height();
        let best = self.policy.heights().best();
        if health.ready != self.health.is_ready() {
            info!(
                ready = health.ready,
                height,
                best_peer_height = best,
                "readiness changed"
            );
        }
        self.health.set_ready(health.ready);
        self.health.set_synced(health.synced);
        self.metrics.journal_height.set(height as i64);
        self.metrics.sync_target_height.set(best.max(height) as i64);
        self.metrics
            .peers_connected
            .set(self.policy.book().admitted_count() as i64);
    }

    /// Publishes on `topic` (only with admitted peers to hear it).
    fn publish(&mut self, topic: Topic, data: Vec<u8>, t: &mut impl Transport) {
        if self.policy.book().admitted_count() > 0 {
            t.publish(topic, data);
        }
    }
}
