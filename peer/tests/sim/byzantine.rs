//! Byzantine members for the finality runs (`tests/simulator_byzantine.rs`; docs/consensus.md,
//! "Safety and liveness"): seated members of the network, each running the honest engine (so it
//! stays admitted and synced) and on top of it a [`Strategy`] that breaks the protocol's rules
//! with its own key and certificate:
//!
//! - [`EquivocatingCommitter`]: two blocks per height. Each block it commits gets an empty twin
//!   on the same parent (both valid: same seat, same slot), and each of its own slots on the tip
//!   gets two empty blocks, one announced to each half of its neighbours.
//! - [`EquivocatingVoter`]: votes for every checkpoint it hears honest members vote for at one
//!   height (the branches of a partition alike, each sent to the members on that branch, with
//!   the source they used), a made-up twin when there is only one, and surround votes from
//!   genesis over its other votes.
//! - a silent member: seated, never running (`Plan::silent`).
//!
//! A Byzantine member is a bridge: no partition cuts it off, so it can feed both sides. The run
//! checks what holds with at most f < N/3 of them (no conflicting finality, finality resumes,
//! nothing confirmed lost) and that each one that equivocated is accused by signed evidence an
//! honest peer keeps ([`Sim::check_evidence`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use mediachain::journal::vote::{Checkpoint, Vote};
use mediachain::journal::Block;
use mediachain::model::codec::dag_cbor_cid;
use mediachain::model::Cid;
use mediachain::node::overlay::engine::Topic;
use mediachain::node::overlay::protocol::{decode, encode, Announce, Request, Response, Votes};
use mediachain::node::BlockBundle;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use rand::Rng;

use super::adversary::{Ctx, Detection, Reply, Strategy};
use super::net::Msg;
use super::plan::Event;
use super::{Plan, Sim, SimPeer, NETWORK};

/// Twins and forks an equivocating committer keeps to serve, at most.
const KEPT_BLOCKS: usize = 64;
/// Checkpoint heights an equivocating voter remembers, at most.
const KEPT_HEIGHTS: usize = 8;

/// What a Byzantine member does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Byzantine {
    /// Seated, never running.
    Silent,
    /// Two blocks per height.
    Committer,
    /// Conflicting votes: double and surround.
    Voter,
    /// Both of the above.
    Equivocator,
}

impl Byzantine {
    /// Every kind.
    pub const ALL: [Byzantine; 4] = [
        Byzantine::Silent,
        Byzantine::Committer,
        Byzantine::Voter,
        Byzantine::Equivocator,
    ];

    /// `f` kinds chosen by `seed` (repeats allowed).
    pub fn pick(seed: u64, f: usize) -> Vec<Byzantine> {
        let mut x = seed;
        (0..f)
            .map(|_| {
                let kind = Self::ALL[(x % 4) as usize];
                x /= 4;
                kind
            })
            .collect()
    }

    fn strategy(self) -> Option<Box<dyn Strategy>> {
        match self {
            Byzantine::Silent => None,
            Byzantine::Committer => Some(Box::new(EquivocatingCommitter::default())),
            Byzantine::Voter => Some(Box::new(EquivocatingVoter::default())),
            Byzantine::Equivocator => Some(Box::new(Both(
                EquivocatingCommitter::default(),
                EquivocatingVoter::default(),
            ))),
        }
    }
}

impl Sim {
    /// A network of `plan.peers` members, `kinds` of them Byzantine (the last ones: silent
    /// members last of all), shaped by `plan` and driven by `seed`.
    pub fn with_byzantine(seed: u64, plan: &Plan, kinds: &[Byzantine]) -> Self {
        let silent = kinds.iter().filter(|k| **k == Byzantine::Silent).count();
        let plan = Plan {
            silent,
            parameters: true,
            partitions: false,
            ..plan.clone()
        };
        let mut sim = Sim::new(seed, plan.clone());
        let active = kinds.iter().filter_map(|k| k.strategy());
        let first = plan.peers - silent - active.clone().count();
        sim.schedule_split(first);
        for (i, strategy) in (first..).zip(active) {
            sim.peers[i].strategy = Some(strategy);
            sim.bridges.insert(i);
        }
        if super::tracing() {
            for p in &sim.peers {
                eprintln!(
                    "peer {} is {} ({})",
                    p.index,
                    p.id,
                    p.strategy.as_ref().map_or("honest", |_| "byzantine")
                );
            }
        }
        sim
    }

    /// A partition in every run, with honest members on both sides and transactions submitted
    /// on both during it, so that each island commits and, with the Byzantine members' votes,
    /// tries to finalise: from a random time in the first half of the chaos for 4 s or more;
    /// 1.5 s into it, the root revokes the last Byzantine member on one side. The running
    /// honest peers are `0..honest`.
    fn schedule_split(&mut self, honest: usize) {
        let chaos = self.plan.chaos.as_micros() as u64;
        let mut groups: Vec<u8> = (0..self.peers.len())
            .map(|_| self.rng.gen_range(0..2))
            .collect();
        // Peers 0 and 1 on different sides.
        groups[0] = 0;
        groups[1] = 1;
        let from = self.rng.gen_range(chaos / 8..chaos / 2);
        let until = self.rng.gen_range(from + 4_000_000..chaos);
        for side in [0, 1] {
            let on_side: Vec<usize> = (0..honest).filter(|i| groups[*i] == side).collect();
            for k in 0..2 {
                let peer = on_side[self.rng.gen_range(0..on_side.len())];
                self.at(from + 500_000 + k * 1_000_000, Event::Submit(peer));
            }
        }
        self.at(from, Event::Partition(groups.clone()));
        self.at(until, Event::Heal);
        // The root revokes the last Byzantine member during the split, through the honest
        // peers of one side: its seat change waits for finality (`super::seats`).
        let side: Vec<usize> = (0..honest).filter(|i| groups[*i] == 0).collect();
        let victim = self.peers.len() - 1;
        self.at(from + 1_500_000, Event::Revoke { at: side, victim });
    }

    /// For an adversary that equivocated: the violation if no running honest peer keeps
    /// evidence against it (in its store, so across restarts).
    pub(super) fn check_evidence(
        &self,
        adversary: &SimPeer,
        detection: Option<Detection>,
    ) -> Option<String> {
        if detection != Some(Detection::Evidence) {
            return None;
        }
        let pairs = adversary.strategy.as_ref()?.conflicting_blocks();
        if pairs.is_some_and(|pairs| !pairs.iter().any(|pair| self.delivered(pair))) {
            return None;
        }
        let culprit = adversary.key.public();
        let accused = self.peers.iter().filter(|p| !p.is_adversary()).any(|p| {
            p.node().is_some_and(|node| {
                let kept = node.store().evidence().unwrap();
                kept.iter().any(|e| e.culprit() == culprit)
            })
        });
        (!accused).then(|| {
            format!(
                "adversary {} equivocated, but no honest peer keeps evidence against it",
                adversary.index
            )
        })
    }
}

impl Sim {
    /// Whether both blocks of `pair` are in honest journals (one peer's or two).
    fn delivered(&self, pair: &[Cid; 2]) -> bool {
        pair.iter().all(|cid| {
            self.peers.iter().filter(|p| !p.is_adversary()).any(|p| {
                p.node()
                    .is_some_and(|node| node.with_journal(|j| j.load_block(cid)).is_ok())
            })
        })
    }

    /// One line about the Byzantine members: for each, how it must be found out and how many
    /// running honest peers keep evidence against it.
    pub fn byzantine_summary(&self) -> String {
        let accusers = |culprit| {
            let honest = self.peers.iter().filter(|p| !p.is_adversary());
            let nodes = honest.filter_map(SimPeer::node);
            nodes
                .filter(|n| {
                    n.store()
                        .evidence()
                        .unwrap()
                        .iter()
                        .any(|e| e.culprit() == culprit)
                })
                .count()
        };
        let each: Vec<String> = self
            .peers
            .iter()
            .filter_map(|p| {
                let strategy = p.strategy.as_ref()?;
                let detection = strategy.detection();
                let delivered = match strategy.conflicting_blocks() {
                    Some(pairs) => {
                        let held = pairs.iter().filter(|pair| self.delivered(pair)).count();
                        format!(" ({held} of {} block pairs delivered)", pairs.len())
                    }
                    None => String::new(),
                };
                Some(format!(
                    "{}: {detection:?}{delivered}, accused by {}",
                    p.index,
                    accusers(p.key.public())
                ))
            })
            .collect();
        format!("byzantine [{}]", each.join("; "))
    }
}

/// A gossip message on `topic` to the peers `to`, named by its content (as gossipsub names
/// the driver's messages).
fn gossip(ctx: &Ctx, to: &[usize], topic: Topic, data: Vec<u8>) -> Vec<(usize, Msg)> {
    let id = MessageId::new(&Sha256::digest(&data));
    let author = ctx.key.public().peer_id();
    to.iter()
        .map(|to| {
            let msg = Msg::Gossip {
                topic,
                author,
                id: id.clone(),
                data: data.clone(),
            };
            (*to, msg)
        })
        .collect()
}

/// Two blocks per height (see the module comment).
#[derive(Default)]
pub struct EquivocatingCommitter {
    /// Blocks made, to serve when asked.
    made: VecDeque<Block>,
    /// Its own blocks twinned already (the latest).
    twinned: VecDeque<Cid>,
    /// Heights of its slots forked already.
    forked: BTreeSet<u64>,
    /// The pairs of blocks on one parent it sent (the latest [`MAX_PAIRS`]; none: it has not
    /// equivocated).
    pairs: VecDeque<[Cid; 2]>,
}

/// Pairs of conflicting blocks an equivocating committer remembers, at most (a run makes a
/// few dozen).
const MAX_PAIRS: usize = 1024;

impl EquivocatingCommitter {
    fn offer(&mut self, ctx: &Ctx, block: Block, to: &[usize]) -> Vec<(usize, Msg)> {
        if to.is_empty() {
            return vec![];
        }
        let announce = Announce {
            cid: block.cid(),
            height: block.height,
        };
        self.made.push_back(block);
        if self.made.len() > KEPT_BLOCKS {
            self.made.pop_front();
        }
        gossip(ctx, to, Topic::Blocks, encode(&announce))
    }

    /// Two blocks on one parent went out.
    fn sent_pair(&mut self, pair: [Cid; 2]) {
        self.pairs.push_back(pair);
        if self.pairs.len() > MAX_PAIRS {
            self.pairs.pop_front();
        }
    }

    fn empty(ctx: &Ctx, parent: (Cid, u64), timestamp_ms: u64) -> Block {
        let identity = (ctx.key, ctx.chain);
        Block::commit(parent, NETWORK, timestamp_ms, identity, vec![], vec![])
    }
}

impl Strategy for EquivocatingCommitter {
    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)> {
        let me = ctx.key.public();
        let (tip, height) = ctx.tip();
        let mut out = vec![];
        // An empty twin of each of its recent blocks on its chain.
        let recent = ctx.node.canonical_range(height.saturating_sub(3).max(1), 4);
        for cid in recent.unwrap() {
            let block = ctx.node.with_journal(|j| j.load_block(&cid)).unwrap();
            if block.committer_key() != Some(me) || self.twinned.contains(&cid) {
                continue;
            }
            self.twinned.push_back(cid);
            let parent = (block.chain, block.height - 1);
            let twin = Self::empty(ctx, parent, block.timestamp_ms + 1);
            let pair = [cid, twin.cid()];
            let sent = self.offer(ctx, twin, &ctx.peers.clone());
            // Its own block went to every neighbour already.
            if !sent.is_empty() {
                self.sent_pair(pair);
            }
            out.extend(sent);
        }
        // Its own slot on the tip: two empty blocks, one to each half of its neighbours.
        let next = height + 1;
        let in_turn = ctx.node.with_journal(|j| j.schedule().rank(next, &me)) == Some(0);
        let due = ctx.node.with_journal(|j| j.earliest_commit(&me)).unwrap();
        // Once its chain revokes it, its blocks are refused unseen (no evidence): it stops.
        let revoked = ctx
            .node
            .with_journal(|j| j.revoked_after(&tip, &ctx.chain.0));
        let slot = in_turn && !revoked && due.is_some_and(|at| at <= ctx.unix_ms);
        if slot && self.forked.insert(next) {
            let half = |parity: usize| -> Vec<usize> {
                let peers = ctx.peers.iter().enumerate();
                peers
                    .filter(|(k, _)| k % 2 == parity)
                    .map(|(_, p)| *p)
                    .collect()
            };
            let halves = [half(0), half(1)];
            let blocks =
                [ctx.unix_ms, ctx.unix_ms + 1].map(|at| Self::empty(ctx, (tip, height), at));
            let pair = [blocks[0].cid(), blocks[1].cid()];
            for (half, block) in halves.iter().zip(blocks) {
                out.extend(self.offer(ctx, block, half));
            }
            if halves.iter().all(|h| !h.is_empty()) {
                self.sent_pair(pair);
            }
        }
        while self.twinned.len() > KEPT_BLOCKS {
            self.twinned.pop_front();
        }
        self.forked = self
            .forked
            .split_off(&height.saturating_sub(KEPT_BLOCKS as u64));
        out
    }

    fn answer(&mut self, _ctx: &mut Ctx, request: &Request) -> Option<Reply> {
        let Request::Block { cid, .. } = request else {
            return None;
        };
        let block = self
            .made
            .iter()
            .find(|b| b.cid().to_bytes().as_slice() == cid.as_ref())?;
        let bundle = BlockBundle {
            block: block.to_bytes(),
            objects: vec![],
        };
        let response = Response::Block(Some(ByteBuf::from(encode(&bundle))));
        Some(Reply::Respond(response))
    }

    fn detection(&self) -> Detection {
        if !self.pairs.is_empty() {
            Detection::Evidence
        } else {
            Detection::Nothing
        }
    }

    fn conflicting_blocks(&self) -> Option<Vec<[Cid; 2]>> {
        Some(self.pairs.iter().copied().collect())
    }
}

/// Conflicting votes (see the module comment).
#[derive(Default)]
pub struct EquivocatingVoter {
    /// The checkpoints honest members voted for, by height: each with a source they used and
    /// who voted for it.
    heard: BTreeMap<u64, BTreeMap<Checkpoint, (Checkpoint, BTreeSet<PeerId>)>>,
    /// The links it signed.
    signed: BTreeSet<(Checkpoint, Checkpoint)>,
    /// Whether it signed two votes that break a rule together.
    equivocated: bool,
}

impl EquivocatingVoter {
    /// Signs `source -> target` once, for the peers `to`.
    fn sign(
        &mut self,
        ctx: &Ctx,
        source: Checkpoint,
        target: Checkpoint,
        to: &[usize],
    ) -> Vec<(usize, Msg)> {
        if to.is_empty() || !self.signed.insert((source, target)) {
            return vec![];
        }
        let vote = Vote::sign(ctx.key, NETWORK, source, target);
        gossip(ctx, to, Topic::Votes, encode(&Votes { votes: vec![vote] }))
    }
}

impl Strategy for EquivocatingVoter {
    fn observe(&mut self, _from: usize, msg: &Msg) {
        let Msg::Gossip {
            topic: Topic::Votes,
            author,
            data,
            ..
        } = msg
        else {
            return;
        };
        let Ok(Votes { votes }) = decode::<Votes>(data) else {
            return;
        };
        // A member's own votes show which branch it is on.
        for vote in votes.iter().filter(|v| v.voter.peer_id() == *author) {
            let at = self.heard.entry(vote.target.height).or_default();
            let (_, voters) = at
                .entry(vote.target)
                .or_insert_with(|| (vote.source, BTreeSet::new()));
            voters.insert(*author);
        }
        while self.heard.len() > KEPT_HEIGHTS {
            self.heard.pop_first();
        }
    }

    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)> {
        let linked = ctx.peers.clone();
        let genesis = Checkpoint {
            height: 0,
            cid: ctx.node.genesis(),
        };
        let mut out = vec![];
        let heard = self.heard.clone();
        for (height, targets) in &heard {
            // Every branch, each voted for towards the members on it.
            for (target, (source, voters)) in targets {
                let on_it: Vec<usize> = voters
                    .iter()
                    .filter_map(|v| ctx.index_of.get(v).copied())
                    .filter(|i| linked.contains(i))
                    .collect();
                let sent = self.sign(ctx, *source, *target, &on_it);
                self.equivocated |= targets.len() > 1 && !sent.is_empty();
                out.extend(sent);
            }
            let (first, (source, _)) = targets.iter().next().expect("heard holds no empty height");
            let mut rule_breakers = vec![];
            // One branch only: a made-up twin at the same height (a double vote), to everyone.
            if targets.len() == 1 {
                let twin = Checkpoint {
                    height: *height,
                    cid: dag_cbor_cid(format!("twin of {}", first.cid).as_bytes()),
                };
                rule_breakers.extend(self.sign(ctx, *source, twin, &linked));
            }
            // A surround vote: from genesis over every vote of its own below this height.
            if source.height > 0 {
                rule_breakers.extend(self.sign(ctx, genesis, *first, &linked));
            }
            self.equivocated |= !rule_breakers.is_empty();
            out.extend(rule_breakers);
        }
        out
    }

    fn detection(&self) -> Detection {
        if self.equivocated {
            Detection::Evidence
        } else {
            Detection::Nothing
        }
    }
}

/// An equivocating committer that also equivocates as a voter.
struct Both(EquivocatingCommitter, EquivocatingVoter);

impl Strategy for Both {
    fn tick(&mut self, ctx: &mut Ctx) -> Vec<(usize, Msg)> {
        let mut out = self.0.tick(ctx);
        out.extend(self.1.tick(ctx));
        out
    }

    fn answer(&mut self, ctx: &mut Ctx, request: &Request) -> Option<Reply> {
        self.0.answer(ctx, request)
    }

    fn observe(&mut self, from: usize, msg: &Msg) {
        self.1.observe(from, msg);
    }

    fn detection(&self) -> Detection {
        match (self.0.detection(), self.1.detection()) {
            (Detection::Nothing, Detection::Nothing) => Detection::Nothing,
            _ => Detection::Evidence,
        }
    }

    fn conflicting_blocks(&self) -> Option<Vec<[Cid; 2]>> {
        // Conflicting votes reach every peer they are sent to: owed whatever blocks did.
        match self.1.detection() {
            Detection::Evidence => None,
            _ => self.0.conflicting_blocks(),
        }
    }
}
