//! The shape of a run ([`Plan`]), the events the simulator schedules, and its clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mediachain::network::NetworkParams;
use mediachain::node::Clock;
use mediachain::trust::{Chain, PublicKey};

use super::adversary::Hostile;
use super::net::Msg;
use super::NETWORK;

/// A clock the simulation moves.
#[derive(Debug)]
pub struct SimClock {
    pub(super) base: Instant,
    pub(super) micros: AtomicU64,
}

impl SimClock {
    pub(super) fn set(&self, micros: u64) {
        self.micros.store(micros, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn instant(&self) -> Instant {
        self.base + Duration::from_micros(self.micros.load(Ordering::SeqCst))
    }
    fn unix_ms(&self) -> u64 {
        1_800_000_000_000 + self.micros.load(Ordering::SeqCst) / 1_000
    }
}

/// Something that happens at a simulated time.
#[derive(Debug)]
pub(super) enum Event {
    Deliver {
        from: usize,
        to: usize,
        /// The incarnations of sender and receiver when it was sent.
        lives: (u64, u64),
        msg: Msg,
    },
    /// A request of `peer` (in incarnation `life`) failed: its link went down, or it went
    /// unanswered (`timed_out`).
    Failed {
        peer: usize,
        life: u64,
        id: u64,
        timed_out: bool,
    },
    Tick(usize),
    Commit(usize),
    Submit(usize),
    Partition(Vec<u8>),
    Heal,
    Crash(usize),
    Restart(usize),
    /// The root revokes peer `victim`, the list offered to the peers `at`.
    Revoke {
        at: Vec<usize>,
        victim: usize,
    },
}

/// How a run is shaped.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Peers.
    pub peers: usize,
    /// Transactions submitted (at random peers, over the first part of the run).
    pub txs: usize,
    /// Probability a message is lost.
    pub loss: f64,
    /// Probability a message is delivered twice.
    pub duplicate: f64,
    /// Simulated run time before the final heal.
    pub chaos: Duration,
    /// Simulated quiet time after it.
    pub quiet: Duration,
    /// Whether a peer may crash and restart from its store.
    pub crashes: bool,
    /// Whether the peers may be partitioned.
    pub partitions: bool,
    /// An adversarial member added to the honest peers.
    pub hostile: Option<Hostile>,
    /// Whether the network runs under parameters (the honest peers its initial members): seats
    /// and the out-of-turn back-off are enforced by every receiver.
    pub parameters: bool,
    /// Members that never run (the last of the honest peers): seated, silent, Byzantine.
    pub silent: usize,
    /// How many of the first peers every peer's seed list names (`None`: all of them).
    pub seeds: Option<usize>,
    /// Blocks per finality epoch, under parameters.
    pub epoch_length: u64,
    /// Probability a sync request (block, range, object; not a hello) waits at a busy
    /// receiver (heavy load, big bundles queued before it): it is delivered after
    /// 0.5 s up to twice the request timeout, and past the timeout it fails at its sender
    /// (`timed_out`) while the receiver still answers, too late.
    pub slow: f64,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            peers: 4,
            txs: 12,
            loss: 0.05,
            duplicate: 0.02,
            chaos: Duration::from_secs(12),
            quiet: Duration::from_secs(25),
            crashes: true,
            partitions: true,
            hostile: None,
            parameters: false,
            silent: 0,
            seeds: None,
            epoch_length: 4,
            slow: 0.0,
        }
    }
}

impl Plan {
    /// The network's parameters when the plan runs under them: `members` the initial members,
    /// the simulation's timing.
    pub fn network(&self, root: PublicKey, members: Vec<Chain>) -> Option<NetworkParams> {
        self.parameters.then(|| {
            let mut network = NetworkParams::new(NETWORK, root, members);
            let c = &mut network.consensus;
            c.block_interval = Duration::from_millis(300);
            c.commit_timeout = Duration::from_secs(2);
            c.commit_backoff = Duration::from_millis(300);
            c.transaction_pow_bits = 0;
            c.max_weight_per_principal = self.peers as u32;
            c.epoch_length = self.epoch_length;
            network
        })
    }
}
