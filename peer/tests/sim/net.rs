//! A simulated peer's network: the engine's [`Transport`] over simulated links. What the
//! engine sends goes into an outbox the simulator delivers; connection effects are what make
//! and break links: a link exists only while one side dialled it and neither closed it (dials
//! and closes wait here for the simulator). Gossip is relayed as gossipsub relays it among
//! direct peers: a message id is handled once (later copies are dropped by the seen cache) and
//! forwarded to the other direct peers once the engine accepts it. Verification jobs wait for
//! the peer to run them in place of the worker thread.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use mediachain::node::overlay::engine::{RequestId, Topic, Transport};
use mediachain::node::overlay::policy::verifier::Job;
use mediachain::node::overlay::policy::{Acceptance, Effect};
use mediachain::node::overlay::protocol::{Request, Response};
use sha2::{Digest, Sha256};

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
        /// Who signed it (gossipsub's message source; the relay that sent it is the sender).
        author: PeerId,
        /// Its gossip id.
        id: MessageId,
        /// Its payload (DAG-CBOR, as on the wire).
        data: Vec<u8>,
    },
}

impl Msg {
    /// Gossip may be lost or duplicated; requests and responses ride reliable streams.
    pub fn is_gossip(&self) -> bool {
        matches!(self, Msg::Gossip { .. })
    }
}

/// How long gossipsub remembers a message id (its default duplicate cache time), in µs.
pub const SEEN_FOR: u64 = 60_000_000;

/// Messages to send: (from, to, message).
pub type Outbox = Vec<(usize, usize, Msg)>;

/// One peer's side of the simulated network.
#[derive(Debug, Default)]
pub struct SimNet {
    /// The peer's position in the simulation.
    pub index: usize,
    /// The peer's own PeerId (the author of what it publishes), once set.
    pub me: Option<PeerId>,
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
    /// The peers this one dials for its seeds.
    pub seeds: Vec<usize>,
    /// The peers it holds a link with (kept by the simulator).
    pub links: BTreeSet<usize>,
    /// Dials asked for, for the simulator to make into links.
    pub dials: Vec<usize>,
    /// Links this peer closed, for the simulator to break.
    pub closes: Vec<usize>,
    /// Gossip ids handled and when, in simulated µs (gossipsub's seen cache: a copy within
    /// [`SEEN_FOR`] of the first is dropped).
    pub seen: BTreeMap<MessageId, u64>,
    /// The simulated time, in µs (set by the peer before the engine runs).
    pub now: u64,
    /// Gossip waiting for the engine's verdict to be relayed: (topic, author, data, sender).
    pub relay: BTreeMap<MessageId, (Topic, PeerId, Vec<u8>, PeerId)>,
    /// The last identity record handed to the engine from each author: when (µs), its tip and
    /// height (for `SIM_TRACE`).
    pub records: BTreeMap<PeerId, (u64, mediachain::model::Cid, u64)>,
    /// First copies of gossip taken from a sender not admitted here, by topic (for
    /// `SIM_TRACE`: they are ignored, and their ids stay in the seen cache).
    pub unadmitted: BTreeMap<String, u64>,
    /// Messages this peer published, over all its lives (the sequence number in their ids).
    pub published: u64,
    /// Gossip and requests about the block `SIM_TRACE_BLOCK` names (a CID prefix), traced
    /// hop by hop: its announcements' ids and its block requests' ids.
    pub traced: BTreeSet<MessageId>,
    /// Block requests for the traced block.
    pub traced_requests: BTreeSet<RequestId>,
}

/// The CID prefix `SIM_TRACE_BLOCK` names, if any.
fn traced_block() -> Option<String> {
    std::env::var("SIM_TRACE_BLOCK").ok()
}

/// Whether `cid` is the block `SIM_TRACE_BLOCK` names.
pub fn is_traced(cid: &mediachain::model::Cid) -> bool {
    traced_block().is_some_and(|prefix| cid.to_string().starts_with(&prefix))
}

impl SimNet {
    /// Forgets everything a crash loses (the block list and the queues live in memory).
    pub fn reset(&mut self) {
        let index_of = std::mem::take(&mut self.index_of);
        *self = Self {
            index: self.index,
            me: self.me,
            index_of,
            seeds: std::mem::take(&mut self.seeds),
            punished: std::mem::take(&mut self.punished),
            published: self.published,
            ..Self::default()
        };
    }

    fn close(&mut self, peer: PeerId) {
        if let Some(to) = self.index_of.get(&peer) {
            self.closes.push(*to);
        }
        self.closed.push_back(peer);
    }

    /// A gossip message received from `from`: whether to hand it to the engine (its first
    /// copy), which then waits for the engine's verdict to be relayed.
    pub fn receive(
        &mut self,
        from: PeerId,
        topic: Topic,
        author: PeerId,
        id: &MessageId,
        data: &[u8],
    ) -> bool {
        let fresh = self.seen.get(id).is_none_or(|at| self.now >= at + SEEN_FOR);
        if topic == Topic::Blocks && traced_block().is_some() {
            use mediachain::node::overlay::protocol::{decode, Announce};
            if let Ok(announce) = decode::<Announce>(data) {
                if is_traced(&announce.cid) {
                    let direct = self.direct.contains(&from);
                    let from = self.index_of.get(&from).copied();
                    let by = self.index_of.get(&author).copied();
                    eprintln!(
                        "{:>9}us peer {} announce from {from:?} by {by:?} fresh={fresh} direct={direct}",
                        self.now, self.index,
                    );
                    self.traced.insert(id.clone());
                }
            }
        }
        if !fresh {
            return false;
        }
        self.seen.insert(id.clone(), self.now);
        if topic == Topic::Peers {
            if let Ok(record) = mediachain::node::overlay::protocol::decode::<
                mediachain::node::overlay::protocol::PeerRecord,
            >(data)
            {
                self.records
                    .insert(author, (self.now, record.tip, record.height));
            }
        }
        self.relay
            .insert(id.clone(), (topic, author, data.to_vec(), from));
        true
    }

    fn send_gossip(
        &mut self,
        topic: Topic,
        author: PeerId,
        id: &MessageId,
        data: &[u8],
        skip: &[PeerId],
    ) {
        for peer in self.direct.iter().filter(|p| !skip.contains(p)) {
            if let Some(to) = self.index_of.get(peer) {
                let msg = Msg::Gossip {
                    topic,
                    author,
                    id: id.clone(),
                    data: data.to_vec(),
                };
                self.outbox.push((self.index, *to, msg));
            }
        }
    }
}

impl Transport for SimNet {
    fn request(&mut self, peer: PeerId, id: RequestId, request: Request) {
        if let Request::Block { cid, .. } = &request {
            if mediachain::model::Cid::try_from(cid.as_ref()).is_ok_and(|c| is_traced(&c)) {
                eprintln!(
                    "{:>9}us peer {} asks {:?} for the block",
                    self.now,
                    self.index,
                    self.index_of.get(&peer)
                );
                self.traced_requests.insert(id);
            }
        }
        match self.index_of.get(&peer) {
            Some(to) => self
                .outbox
                .push((self.index, *to, Msg::Request { id, request })),
            None => self.failed.push_back(id),
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        // As the driver's gossipsub names a message: by a hash of its content, author and
        // sequence number (which goes on over restarts, as gossipsub's starts from the clock),
        // so the same content published twice, or by two peers, makes two messages.
        let Some(me) = self.me else { return };
        self.published += 1;
        let mut hash = Sha256::new();
        hash.update(&data);
        hash.update(me.to_bytes());
        hash.update(self.published.to_be_bytes());
        let id = MessageId::new(&hash.finalize());
        self.seen.insert(id.clone(), self.now);
        self.send_gossip(topic, me, &id, &data, &[]);
    }

    fn validate(&mut self, _source: PeerId, message: MessageId, accept: Acceptance) {
        if self.traced.contains(&message) {
            let direct: Vec<_> = self
                .direct
                .iter()
                .filter_map(|p| self.index_of.get(p))
                .collect();
            eprintln!(
                "{:>9}us peer {} verdict {accept:?}, direct {direct:?}",
                self.now, self.index
            );
        }
        let Some((topic, author, data, from)) = self.relay.remove(&message) else {
            return;
        };
        if accept == Acceptance::Accept {
            self.send_gossip(topic, author, &message, &data, &[from, author]);
        }
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
            Effect::Dial { peer, .. } => {
                if let Some(to) = self.index_of.get(&peer) {
                    self.dials.push(*to);
                }
            }
            Effect::DialSeeds => self.dials.extend(self.seeds.iter().copied()),
            Effect::Struck {
                peer,
                reason,
                banned,
                ..
            } => {
                if std::env::var("SIM_TRACE").is_ok() {
                    eprintln!(
                        "{:>9}us peer {} struck {peer}: {reason}",
                        self.now, self.index
                    );
                }
                let was = self.punished.get(&peer).copied().unwrap_or(false);
                self.punished.insert(peer, was || banned);
            }
            _ => {}
        }
    }
}
