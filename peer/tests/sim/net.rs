//! A simulated peer's network: the engine's [`Transport`] over simulated links. What the
//! engine sends goes into an outbox the simulator delivers; connection effects (blocks,
//! disconnects) change which links the simulator keeps up; verification jobs wait for the
//! peer to run them in place of the worker thread.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use mediachain::node::overlay::engine::{RequestId, Topic, Transport};
use mediachain::node::overlay::policy::verifier::Job;
use mediachain::node::overlay::policy::{Acceptance, Effect};
use mediachain::node::overlay::protocol::{Request, Response};

/// A message between simulated peers: the overlay's real wire types.
#[derive(Debug, Clone)]
pub enum Msg {
    /// A request-response request.
    Request {
        /// The requester's id for it.
        id: RequestId,
        /// The request.
        request: Request,
    },
    /// The answer to request `id`.
    Response {
        /// The requester's id.
        id: RequestId,
        /// The response.
        response: Response,
    },
    /// A gossip message (published to every direct gossip peer).
    Gossip {
        /// Its topic.
        topic: Topic,
        /// Its gossip id.
        id: MessageId,
        /// Its payload (DAG-CBOR, as on the wire).
        data: Vec<u8>,
    },
    /// The sender closed the connection.
    Closed,
}

impl Msg {
    /// Gossip may be lost or duplicated; requests and responses ride reliable streams.
    pub fn is_gossip(&self) -> bool {
        matches!(self, Msg::Gossip { .. })
    }
}

/// Messages to send: (from, to, message).
pub type Outbox = Vec<(usize, usize, Msg)>;

/// One peer's side of the simulated network.
#[derive(Debug, Default)]
pub struct SimNet {
    /// The peer's position in the simulation.
    pub index: usize,
    /// Where each known PeerId is.
    pub index_of: BTreeMap<PeerId, usize>,
    /// Direct gossip peers (the admitted ones).
    pub direct: BTreeSet<PeerId>,
    /// Peers whose connections are denied (refused or banned).
    pub blocked: BTreeSet<PeerId>,
    /// Every peer this one ever struck or refused, and whether it banned it.
    pub punished: BTreeMap<PeerId, bool>,
    /// Messages to send.
    pub outbox: Outbox,
    /// Verification jobs to run.
    pub jobs: VecDeque<Job>,
    /// Requests that failed locally (no link to the peer).
    pub failed: VecDeque<RequestId>,
    /// Connections this peer closed (the engine hears it as a disconnection).
    pub closed: VecDeque<PeerId>,
    /// Requests of other peers (index, id) this peer left unanswered (they time out).
    pub dropped: Vec<(usize, RequestId)>,
    /// Gossip messages published (their ids).
    pub gossip_seq: u64,
}

impl SimNet {
    /// Forgets everything a crash loses (the block list and the queues live in memory).
    pub fn reset(&mut self) {
        let index_of = std::mem::take(&mut self.index_of);
        *self = Self {
            index: self.index,
            index_of,
            punished: std::mem::take(&mut self.punished),
            ..Self::default()
        };
    }

    fn close(&mut self, peer: PeerId) {
        if let Some(to) = self.index_of.get(&peer) {
            self.outbox.push((self.index, *to, Msg::Closed));
        }
        self.closed.push_back(peer);
    }
}

impl Transport for SimNet {
    fn request(&mut self, peer: PeerId, id: RequestId, request: Request) {
        match self.index_of.get(&peer) {
            Some(to) => self
                .outbox
                .push((self.index, *to, Msg::Request { id, request })),
            None => self.failed.push_back(id),
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        self.gossip_seq += 1;
        let id = MessageId::new(format!("{}/{}", self.index, self.gossip_seq).as_bytes());
        for peer in &self.direct {
            if let Some(to) = self.index_of.get(peer) {
                let msg = Msg::Gossip {
                    topic,
                    id: id.clone(),
                    data: data.clone(),
                };
                self.outbox.push((self.index, *to, msg));
            }
        }
    }

    fn validate(&mut self, _source: PeerId, _message: MessageId, _accept: Acceptance) {
        // Gossip is not forwarded in the simulation: every peer publishes to its direct peers.
    }

    fn verify(&mut self, job: Job) {
        self.jobs.push_back(job);
    }

    fn connection(&mut self, effect: Effect) {
        match effect {
            Effect::Disconnect { peer, .. } => self.close(peer),
            Effect::Block { peer, on: true } => {
                self.blocked.insert(peer);
                self.punished.entry(peer).or_insert(false);
                self.close(peer);
            }
            Effect::Block { peer, on: false } => {
                self.blocked.remove(&peer);
            }
            Effect::DirectGossip { peer, on: true } => {
                self.direct.insert(peer);
            }
            Effect::DirectGossip { peer, on: false } => {
                self.direct.remove(&peer);
            }
            Effect::Struck {
                peer,
                reason,
                banned,
                ..
            } => {
                if std::env::var("SIM_TRACE").is_ok() {
                    eprintln!("peer {} struck {peer}: {reason}", self.index);
                }
                let was = self.punished.get(&peer).copied().unwrap_or(false);
                self.punished.insert(peer, was || banned);
            }
            // Links come up whenever two peers can reach each other (the simulator redials).
            _ => {}
        }
    }
}
