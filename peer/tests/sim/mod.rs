//! A deterministic simulator of a Mediachain network: N peers, each a real [`Node`] (journal,
//! sled store, mempool, commit rule) and the daemon's real overlay `Engine` (the peer policy
//! joined to the node), in one process over a simulated clock and network driven by a seed.
//! The network delays (1-80 ms) and so reorders messages, loses and duplicates gossip, and the
//! schedule partitions the peers, crashes peers and restarts them from their stores, then heals
//! everything. A run may add one adversarial member ([`adversary`]).
//!
//! What stands in for libp2p is the transport only ([`net`]): the overlay's wire messages
//! (requests, responses, gossip payloads) are delivered as values over links, a link exists
//! only while one side dialled it (the policy's `Dial`/`DialSeeds` effects) and neither closed
//! it (`Disconnect`/`Block`), a partition or crash breaks it, a request whose link goes down
//! fails back to its sender, and gossip is relayed as gossipsub relays it. So the connections a
//! run ends with are the ones the policy keeps ([`Sim::links`]). Properties
//! checked by [`Sim::check`]: every honest peer converges on one tip after the last heal; no
//! transaction committed anywhere is lost; no transaction appears twice on the chain; no
//! honest peer struck or refused another; every adversary was struck, banned or refused.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod adversary;
pub mod byzantine;
mod check;
mod finality;
mod graph;
mod links;
mod net;
mod peer;
mod plan;
mod seats;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use mediachain::journal::{Rules, Transaction, TxId};
use mediachain::model::{Artefact, JournalEntry, Object};
use mediachain::node::overlay::protocol::Request;
use mediachain::node::overlay::swarm::REQUEST_TIMEOUT;
use mediachain::node::Clock;
use mediachain::trust::{Certificate, Chain, Level, SecretKey};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use net::Msg;
pub use peer::SimPeer;
use plan::Event;
pub use plan::{Plan, SimClock};

/// The network of a simulation.
pub const NETWORK: &str = "sim";

/// One simulated network.
pub struct Sim {
    /// The seed.
    pub seed: u64,
    /// The network's root (it signs revocations: [`seats`]).
    root: SecretKey,
    /// A revocation the run publishes, and how it went ([`seats`]).
    pub revocation: Option<seats::Revocation>,
    rng: StdRng,
    clock: Arc<SimClock>,
    now: u64,
    seq: u64,
    queue: BTreeMap<(u64, u64), Event>,
    /// The peers.
    pub peers: Vec<SimPeer>,
    /// Partition group of each peer (all 0: none).
    group: Vec<u8>,
    /// Peers no partition cuts off (a Byzantine member placed on every side).
    pub bridges: BTreeSet<usize>,
    clients: Vec<(SecretKey, Chain)>,
    /// Every transaction seen committed at any peer at any time.
    pub committed: BTreeSet<TxId>,
    /// Findings that break a property, in order.
    pub violations: Vec<String>,
    /// Messages delivered.
    pub delivered: u64,
    /// The links that stand, (lower index, higher index).
    pub links: BTreeSet<(usize, usize)>,
    plan: Plan,
    _dir: tempfile::TempDir,
}

impl Sim {
    /// A network shaped by `plan`, everything derived from `seed`.
    pub fn new(seed: u64, plan: Plan) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut key = || SecretKey::from_seed(&rng.gen::<[u8; 32]>());
        let (root, principal) = (key(), key());
        let l0 = Chain(vec![Certificate::issue(
            &root,
            principal.public(),
            Level::Principal,
            0,
            u64::MAX / 2,
        )]);
        let keys: Vec<SecretKey> = (0..plan.peers).map(|_| key()).collect();
        let client_keys: Vec<SecretKey> = (0..3).map(|_| key()).collect();
        let (hostile_key, foreign_root, foreign_principal) = (key(), key(), key());
        let clock = Arc::new(SimClock {
            base: Instant::now(),
            micros: AtomicU64::new(0),
        });
        let dir = tempfile::tempdir_in(shm()).unwrap();
        let rules = Rules::new(NETWORK, root.public(), 0);
        let identities: Vec<(SecretKey, Chain)> = keys
            .into_iter()
            .map(|k| {
                let cert = Certificate::issue(&principal, k.public(), Level::Peer, 0, u64::MAX / 2);
                let chain = Chain::extend(cert, &l0);
                (k, chain)
            })
            .collect();
        let members = identities.iter().map(|(_, c)| c.clone()).collect();
        let network = plan.network(root.public(), members);
        let mut peers: Vec<SimPeer> = identities
            .into_iter()
            .enumerate()
            .map(|(i, identity)| {
                let dir = dir.path().join(format!("peer{i}"));
                SimPeer::new(
                    i,
                    identity,
                    rules.clone(),
                    network.clone(),
                    dir,
                    clock.clone(),
                )
            })
            .collect();
        let clients = client_keys
            .into_iter()
            .map(|c| {
                let chain = Chain::extend(
                    Certificate::issue(&peers[0].key, c.public(), Level::Client, 0, u64::MAX / 2),
                    &peers[0].chain,
                );
                (c, chain)
            })
            .collect();
        if let Some(hostile) = plan.hostile {
            // A member certified by the network's principal, or a stranger of a foreign tower.
            let (issuer, l0) = if hostile.certified() {
                (&principal, l0.clone())
            } else {
                let foreign = Certificate::issue(
                    &foreign_root,
                    foreign_principal.public(),
                    Level::Principal,
                    0,
                    u64::MAX / 2,
                );
                (&foreign_principal, Chain(vec![foreign]))
            };
            let chain = Chain::extend(
                Certificate::issue(issuer, hostile_key.public(), Level::Peer, 0, u64::MAX / 2),
                &l0,
            );
            let i = peers.len();
            let dir = dir.path().join(format!("peer{i}"));
            let identity = (hostile_key, chain);
            let mut adversary = SimPeer::new(
                i,
                identity,
                rules.clone(),
                network.clone(),
                dir,
                clock.clone(),
            );
            adversary.strategy = Some(hostile.strategy());
            peers.push(adversary);
        }
        let ids: BTreeMap<_, usize> = peers.iter().map(|p| (p.id, p.index)).collect();
        let all = peers.len();
        for peer in &mut peers {
            peer.net.index_of = ids.clone();
            let seeds = plan.seeds.unwrap_or(all).min(all);
            peer.net.seeds = (0..seeds).filter(|s| *s != peer.index).collect();
        }
        for silent in &mut peers[plan.peers - plan.silent..plan.peers] {
            silent.crash();
        }
        let group = vec![0; peers.len()];
        let mut sim = Self {
            seed,
            root,
            revocation: None,
            rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            clock,
            now: 0,
            seq: 0,
            queue: BTreeMap::new(),
            peers,
            group,
            bridges: BTreeSet::new(),
            clients,
            committed: BTreeSet::new(),
            violations: vec![],
            delivered: 0,
            links: BTreeSet::new(),
            plan,
            _dir: dir,
        };
        sim.schedule_run();
        sim
    }

    fn at(&mut self, micros: u64, event: Event) {
        self.seq += 1;
        self.queue.insert((micros, self.seq), event);
    }

    /// The chaos of a run: submissions, a partition and its heal, a crash and its restart.
    fn schedule_run(&mut self) {
        let n = self.plan.peers - self.plan.silent;
        let all = self.peers.len();
        let chaos = self.plan.chaos.as_micros() as u64;
        for i in 0..all {
            let jitter = self.rng.gen_range(0..50_000);
            self.at(jitter, Event::Tick(i));
            self.at(jitter + 10_000, Event::Commit(i));
        }
        for _ in 0..self.plan.txs {
            let when = self.rng.gen_range(500_000..chaos * 3 / 4);
            let peer = self.rng.gen_range(0..n);
            self.at(when, Event::Submit(peer));
        }
        if self.rng.gen_bool(0.7) && self.plan.partitions {
            let groups: Vec<u8> = (0..all).map(|_| self.rng.gen_range(0..2)).collect();
            let from = self.rng.gen_range(chaos / 8..chaos / 2);
            let until = self.rng.gen_range(from + 1_000_000..chaos);
            self.at(from, Event::Partition(groups));
            self.at(until, Event::Heal);
        }
        if self.rng.gen_bool(0.5) && self.plan.crashes {
            let peer = self.rng.gen_range(0..n);
            let from = self.rng.gen_range(chaos / 8..chaos / 2);
            let until = self.rng.gen_range(from + 500_000..chaos);
            self.at(from, Event::Crash(peer));
            self.at(until, Event::Restart(peer));
        }
        self.at(chaos, Event::Heal);
    }

    /// Sends `msg` from `from` to `to`. Gossip may be lost or duplicated; requests and
    /// responses ride a connection's reliable stream: they are lost only with the link, and
    /// then the request fails back to its sender. Every message takes its own delay, so any
    /// may overtake another.
    fn send(&mut self, from: usize, to: usize, msg: Msg) {
        let stranger = self.plan.hostile.is_some_and(|h| !h.certified());
        if stranger && to == self.peers.len() - 1 && !self.peers[from].is_adversary() {
            if let Msg::Request { request, .. } = &msg {
                if !matches!(request, Request::Hello(_)) {
                    self.violations.push(format!(
                        "peer {from} asked the unadmitted stranger for {request:?}"
                    ));
                }
            }
        }
        let traced = match &msg {
            Msg::Gossip { id, .. } => self.peers[from].net.traced.contains(id),
            _ => false,
        };
        if !self.has_link(from, to) {
            if traced {
                eprintln!("{:>9}us copy from {from} to {to}: no link", self.now);
            }
            self.bounce(from, to, &msg);
            return;
        }
        let gossip = msg.is_gossip();
        if gossip && self.rng.gen_bool(self.plan.loss) {
            if traced {
                eprintln!("{:>9}us copy from {from} to {to} lost", self.now);
            }
            return;
        }
        let copies = if gossip && self.rng.gen_bool(self.plan.duplicate) {
            2
        } else {
            1
        };
        let lives = (self.peers[from].incarnation, self.peers[to].incarnation);
        let timeout = REQUEST_TIMEOUT.as_micros() as u64;
        if let Msg::Request { id, request } = &msg {
            let sync = !matches!(request, Request::Hello(_));
            if sync && self.plan.slow > 0.0 && self.rng.gen_bool(self.plan.slow) {
                // Queued at a busy receiver: answered late, or after its sender gave up.
                let delay = self.rng.gen_range(500_000..2 * timeout);
                if delay >= timeout {
                    let failed = Event::Failed {
                        peer: from,
                        life: lives.0,
                        id: *id,
                        timed_out: true,
                    };
                    self.at(self.now + timeout, failed);
                }
                let msg = msg.clone();
                self.at(
                    self.now + delay,
                    Event::Deliver {
                        from,
                        to,
                        lives,
                        msg,
                    },
                );
                return;
            }
        }
        for _ in 0..copies {
            let delay = self.rng.gen_range(1_000..80_000);
            let msg = msg.clone();
            self.at(
                self.now + delay,
                Event::Deliver {
                    from,
                    to,
                    lives,
                    msg,
                },
            );
        }
    }

    /// A request or response from `from` to `to` that cannot be delivered: the request fails
    /// at its sender (as libp2p reports an outbound failure).
    fn bounce(&mut self, from: usize, to: usize, msg: &Msg) {
        let (peer, id) = match msg {
            Msg::Request { id, .. } => (from, *id),
            Msg::Response { id, .. } => (to, *id),
            _ => return,
        };
        let life = self.peers[peer].incarnation;
        let failed = Event::Failed {
            peer,
            life,
            id,
            timed_out: false,
        };
        self.at(self.now + 1, failed);
    }

    /// Runs the plan to its end.
    pub fn run(&mut self) {
        self.run_until(self.plan.chaos + self.plan.quiet);
    }

    /// Runs the events due up to simulated time `end`.
    pub fn run_until(&mut self, end: std::time::Duration) {
        let end = end.as_micros() as u64;
        while self
            .queue
            .first_key_value()
            .is_some_and(|((when, _), _)| *when <= end)
        {
            let Some(((when, _), event)) = self.queue.pop_first() else {
                break;
            };
            self.now = when;
            self.clock.set(when);
            let touched = self.step(event);
            self.record_commits(touched);
        }
    }

    /// Runs `event`; returns the one peer it touched (`None`: it may have touched any).
    fn step(&mut self, event: Event) -> Option<usize> {
        let touched = match &event {
            Event::Deliver { to: i, .. }
            | Event::Failed { peer: i, .. }
            | Event::Tick(i)
            | Event::Commit(i)
            | Event::Submit(i) => Some(*i),
            _ => None,
        };
        let schedule_event = !matches!(
            event,
            Event::Deliver { .. } | Event::Failed { .. } | Event::Tick(_) | Event::Commit(_)
        );
        if schedule_event && tracing() {
            eprintln!("{:>9}us {event:?}", self.now);
        }
        let outbox = match event {
            Event::Deliver {
                from,
                to,
                lives,
                msg,
            } => {
                if lives != (self.peers[from].incarnation, self.peers[to].incarnation) {
                    return touched; // a message of an earlier life: its connection is gone
                }
                if !self.has_link(from, to) {
                    self.bounce(from, to, &msg);
                    return touched;
                }
                self.delivered += 1;
                let from_id = self.peers[from].id;
                self.peers[to].deliver(from, from_id, msg)
            }
            Event::Failed {
                peer,
                life,
                id,
                timed_out,
            } if life == self.peers[peer].incarnation => self.peers[peer].failed(id, timed_out),
            Event::Failed { .. } => vec![],
            Event::Tick(i) => {
                self.at(self.now + 1_000_000, Event::Tick(i));
                self.peers[i].tick()
            }
            Event::Commit(i) => {
                self.at(self.now + 50_000, Event::Commit(i));
                self.peers[i].commit()
            }
            Event::Submit(i) => self.submit(i),
            Event::Partition(groups) => {
                self.group = groups;
                self.relink()
            }
            Event::Heal => {
                self.check_seats_during_run();
                self.group = vec![0; self.peers.len()];
                self.relink()
            }
            Event::Revoke { at, victim } => self.revoke(&at, victim),
            Event::Crash(i) => {
                self.peers[i].crash();
                self.relink()
            }
            Event::Restart(i) => {
                self.peers[i].restart();
                self.relink()
            }
        };
        let mut outbox = outbox;
        outbox.extend(self.connections(touched));
        for (from, to, msg) in outbox {
            self.send(from, to, msg);
        }
        // Requests a peer left unanswered fail at their sender when they time out.
        let all: Vec<usize> = touched.map_or_else(|| (0..self.peers.len()).collect(), |i| vec![i]);
        for i in all {
            for (peer, id) in std::mem::take(&mut self.peers[i].net.dropped) {
                let life = self.peers[peer].incarnation;
                let timeout = REQUEST_TIMEOUT.as_micros() as u64;
                let failed = Event::Failed {
                    peer,
                    life,
                    id,
                    timed_out: true,
                };
                self.at(self.now + timeout, failed);
            }
        }
        touched
    }

    /// Crashes peer `i` now, for good (its links break).
    pub fn kill(&mut self, i: usize) {
        self.at(self.now, Event::Crash(i));
    }

    /// A client's transaction submitted at peer `i` after `delay`.
    pub fn submit_after(&mut self, i: usize, delay: std::time::Duration) {
        self.at(self.now + delay.as_micros() as u64, Event::Submit(i));
    }

    fn submit(&mut self, i: usize) -> Vec<(usize, usize, Msg)> {
        if !self.peers[i].is_up() {
            return vec![];
        }
        let c = self.rng.gen_range(0..self.clients.len());
        let name = format!("sim {} {}", self.seed, self.seq);
        let artefact = Object::Artefact(Artefact::named(&name));
        let Some(node) = self.peers[i].node() else {
            return vec![];
        };
        let reference = node.store().put_object(&artefact).unwrap();
        let (key, chain) = &self.clients[c];
        let tx = Transaction::create(
            key,
            chain,
            vec![JournalEntry::Insert {
                reference,
                timestamp: self.clock.unix(),
            }],
            self.clock.unix(),
            0,
        )
        .unwrap();
        self.peers[i].submit(tx)
    }
}

/// Whether `SIM_TRACE` asks for the run's events on stderr.
fn tracing() -> bool {
    std::env::var("SIM_TRACE").is_ok()
}

/// Where the simulated peers' stores live: memory when the system has it.
fn shm() -> std::path::PathBuf {
    let shm = std::path::PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}
