//! Adversarial members: the extension point for hostile strategies. A [`SimPeer`](super::SimPeer)
//! given a [`Strategy`] still runs the honest engine (it stays admitted and synced unless the
//! others ban it), and on top of it the strategy acts every simulated second ([`Strategy::tick`])
//! and may answer any request itself ([`Strategy::answer`]), with the overlay's real wire types
//! built from the member's own node, key and certificate. A new attack is one more
//! implementation of [`Strategy`] and one more [`Hostile`] case (`tests/simulator.rs` runs
//! every case over its seeds); the properties checked for every case are in
//! [`Sim::check_adversaries`](super::Sim::check_adversaries).

use libp2p::gossipsub::MessageId;
use mediachain::journal::Block;
use mediachain::model::codec::dag_cbor_cid;
use mediachain::model::Cid;
use mediachain::node::overlay::engine::Topic;
use mediachain::node::overlay::protocol::{encode, Announce, Request, Response};
use mediachain::node::{BlockBundle, Node};
use mediachain::trust::{Chain, SecretKey};
use serde_bytes::ByteBuf;

use super::net::Msg;
use super::NETWORK;

/// What a strategy may use: the member's node, identity, and the peers it knows.
pub struct Ctx<'a> {
    /// The member's own (real) node.
    pub node: &'a Node,
    /// Its key.
    pub key: &'a SecretKey,
    /// Its Level-1 chain (certified by the network, or by a foreign tower for a stranger).
    pub chain: &'a Chain,
    /// The simulated peers it knows of (indices).
    pub peers: Vec<usize>,
    /// Now, in Unix milliseconds (block timestamps).
    pub unix_ms: u64,
    /// Where each PeerId it heard of is (simulated peer indices).
    pub index_of: &'a std::collections::BTreeMap<libp2p::PeerId, usize>,
}

impl Ctx<'_> {
    /// A gossip message on `topic` to every known peer.
    pub fn gossip(&self, topic: Topic, data: Vec<u8>, tag: u64) -> Vec<(usize, Msg)> {
        let id = MessageId::new(format!("hostile/{tag}").as_bytes());
        self.peers
            .iter()
            .map(|to| {
                let msg = Msg::Gossip {
                    topic,
                    author: self.key.public().peer_id(),
                    id: id.clone(),
                    data: data.clone(),
                };
                (*to, msg)
            })
            .collect()
    }

    /// A block signed by this member on `parent` (CID, height).
    pub fn block(&self, parent: (Cid, u64)) -> Block {
        Block::commit(
            parent,
            NETWORK,
            self.unix_ms,
            (self.key, self.chain),
            vec![],
            vec![],
        )
    }

    /// This member's tip.
    pub fn tip(&self) -> (Cid, u64) {
        self.node.tip().unwrap()
    }
}

/// How a strategy takes a request instead of the honest engine.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Answer with this.
    Respond(Response),
    /// Never answer (the request times out at its sender).
    Drop,
}

/// How the honest peers must have found an adversary out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// Struck, banned or refused by some honest peer.
    Punished,
    /// Signed evidence against it kept by some honest peer (it broke a rule at least once).
    Evidence,
    /// Nothing yet: it has not misbehaved in this run (e.g. it never held a slot).
    Nothing,
}

/// A hostile strategy a simulated member runs beside its honest engine.
pub trait Strategy {
    /// Every simulated second: messages to send (to peer indices).
    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)>;
    /// A request arrived: how to take it instead of the honest engine, if at all.
    fn answer(&mut self, _ctx: &mut Ctx, _request: &Request) -> Option<Reply> {
        None
    }
    /// A message arrived from peer `from` (before the honest engine takes it): what the
    /// member learns from the network.
    fn observe(&mut self, _from: usize, _msg: &Msg) {}
    /// How the honest peers must have found it out by the end of the run.
    fn detection(&self) -> Detection {
        Detection::Punished
    }
    /// When its [`Detection::Evidence`] is about blocks: the pairs of blocks on one parent it
    /// signed and sent. Evidence is owed only once both blocks of a pair reached honest
    /// journals: an announcement no honest peer took (sent before its sender was admitted, or
    /// after it was revoked) shows no one two blocks. `None`: owed whatever was delivered.
    fn conflicting_blocks(&self) -> Option<Vec<[Cid; 2]>> {
        None
    }
}

/// The attacks the simulator runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hostile {
    /// Announces blocks it does not have, far above the network's height.
    LyingHeights,
    /// Announces signed blocks on parents that do not exist, and serves them.
    OrphanFlood,
    /// As `OrphanFlood`, but never answers a request for a parent (it times out).
    SilentOrphans,
    /// Announces and serves blocks with a broken signature on the real tip.
    InvalidBlocks,
    /// A stranger certified by a foreign tower: its hello is refused, and it answers requests
    /// with blocks and gossips announcements anyway.
    Unadmitted,
}

impl Hostile {
    /// Every attack.
    pub const ALL: [Hostile; 5] = [
        Hostile::LyingHeights,
        Hostile::OrphanFlood,
        Hostile::SilentOrphans,
        Hostile::InvalidBlocks,
        Hostile::Unadmitted,
    ];

    /// Whether the member holds a certificate of the network.
    pub fn certified(self) -> bool {
        self != Hostile::Unadmitted
    }

    /// The strategy.
    pub fn strategy(self) -> Box<dyn Strategy> {
        match self {
            Hostile::LyingHeights => Box::new(LyingHeights::default()),
            Hostile::OrphanFlood => Box::new(Served::orphans()),
            Hostile::SilentOrphans => Box::new(Served {
                silent: true,
                ..Served::orphans()
            }),
            Hostile::InvalidBlocks => Box::new(Served::invalid()),
            Hostile::Unadmitted => Box::new(Served::stranger()),
        }
    }
}

/// Announces a block that does not exist, 1,000 above its tip, every second.
#[derive(Default)]
pub struct LyingHeights {
    n: u64,
}

impl Strategy for LyingHeights {
    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)> {
        self.n += 1;
        let announce = Announce {
            cid: dag_cbor_cid(format!("no such block {}", self.n).as_bytes()),
            height: ctx.tip().1 + 1000,
        };
        ctx.gossip(Topic::Blocks, encode(&announce), self.n)
    }
}

/// Makes a hostile block every second, announces it, and serves it to whoever asks for any
/// block.
pub struct Served {
    make: fn(&Ctx, u64) -> Block,
    n: u64,
    latest: Option<Block>,
    /// Answer every request but a hello with it (else only requests for it).
    any: bool,
    /// Drop every other block request.
    silent: bool,
}

impl Served {
    /// Signed blocks whose parent does not exist.
    pub fn orphans() -> Self {
        Self {
            make: |ctx, n| {
                let parent = dag_cbor_cid(format!("no such parent {n}").as_bytes());
                ctx.block((parent, ctx.tip().1))
            },
            n: 0,
            latest: None,
            any: false,
            silent: false,
        }
    }

    /// Blocks on the real tip whose signature is broken.
    pub fn invalid() -> Self {
        Self {
            make: |ctx, _| {
                let mut block = ctx.block(ctx.tip());
                block.signature[0] ^= 1;
                block
            },
            n: 0,
            latest: None,
            any: false,
            silent: false,
        }
    }

    /// A stranger's blocks: validly signed by a key no one admits, on the genesis block.
    pub fn stranger() -> Self {
        Self {
            make: |ctx, _| ctx.block((ctx.node.genesis(), 0)),
            n: 0,
            latest: None,
            any: true,
            silent: false,
        }
    }
}

impl Strategy for Served {
    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)> {
        self.n += 1;
        let block = (self.make)(ctx, self.n);
        let announce = Announce {
            cid: block.cid(),
            height: block.height,
        };
        self.latest = Some(block);
        let mut out = ctx.gossip(Topic::Blocks, encode(&announce), self.n);
        // Unsolicited responses too: an answer to nothing that was asked.
        if let Some(Reply::Respond(response)) =
            self.answer(ctx, &Request::Range { from: 0, max: 1 })
        {
            out.extend(ctx.peers.iter().map(|to| {
                let msg = Msg::Response {
                    id: self.n,
                    response: response.clone(),
                };
                (*to, msg)
            }));
        }
        out
    }

    fn answer(&mut self, _ctx: &mut Ctx, request: &Request) -> Option<Reply> {
        let block = self.latest.as_ref()?;
        let asked = match request {
            Request::Hello(_) => false,
            Request::Block { cid, .. } if cid.as_ref() == block.cid().to_bytes().as_slice() => true,
            Request::Block { .. } if self.silent => return Some(Reply::Drop),
            _ => self.any,
        };
        if !asked {
            return None;
        }
        let bundle = BlockBundle {
            block: block.to_bytes(),
            objects: vec![],
        };
        Some(Reply::Respond(Response::Block(Some(ByteBuf::from(
            encode(&bundle),
        )))))
    }
}
