//! Readiness and the commit gate, from this peer's height, the best height its peers have shown
//! and whether it is connected. Pure.
//!
//! - **Synced** (the commit gate): connected and at the best height. A peer behind must not
//!   commit: its block would fork the chain from an old height.
//! - **Ready** (`/readyz`): connected, synced at least once since start (the latch), and at most
//!   [`READY_LAG`] blocks behind, the time a new block takes to arrive, so probes do not flap
//!   with every block.
//!
//! "Connected" means holding an admitted peer, or having no other peer to reach at all (a
//! network of one is ready by itself).

/// Blocks a ready peer may fall behind its best peer before it reports not ready.
pub const READY_LAG: u64 = 2;

/// What the probes and the commit loop see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Health {
    /// `/readyz` answers 200.
    pub ready: bool,
    /// The commit loop may commit.
    pub synced: bool,
}

/// The readiness latch.
#[derive(Debug, Default)]
pub struct Readiness {
    synced_once: bool,
    last: Health,
}

impl Readiness {
    /// Re-evaluates readiness: this peer is at `height`, the best height shown is `best`, and
    /// `connected` says whether it holds an admitted peer or has none to reach.
    pub fn update(&mut self, height: u64, best: u64, connected: bool) -> Health {
        let synced = connected && height >= best;
        self.synced_once |= synced;
        let ready = connected && self.synced_once && best.saturating_sub(height) <= READY_LAG;
        self.last = Health { ready, synced };
        self.last
    }

    /// The last evaluation.
    pub fn health(&self) -> Health {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_behind_is_not_ready_until_it_has_synced_once() {
        let mut readiness = Readiness::default();
        assert_eq!(
            readiness.update(0, 1, true),
            Health {
                ready: false,
                synced: false
            },
            "one block behind at start: not ready (the latch is not set yet)"
        );
        assert_eq!(
            readiness.update(1, 1, true),
            Health {
                ready: true,
                synced: true
            }
        );
    }

    #[test]
    fn once_synced_a_lag_up_to_ready_lag_keeps_the_peer_ready_but_stops_commits() {
        let mut readiness = Readiness::default();
        let _ = readiness.update(5, 5, true);
        let lagging = readiness.update(5, 5 + READY_LAG, true);
        assert!(
            lagging.ready,
            "a lag of READY_LAG blocks keeps the peer ready"
        );
        assert!(!lagging.synced, "a peer behind must not commit");
        let far = readiness.update(5, 6 + READY_LAG, true);
        assert!(!far.ready, "more than READY_LAG behind: not ready");
        assert!(!far.synced);
        assert!(readiness.update(6 + READY_LAG, 6 + READY_LAG, true).ready);
    }

    #[test]
    fn a_disconnected_peer_is_neither_ready_nor_synced() {
        let mut readiness = Readiness::default();
        let _ = readiness.update(3, 3, true);
        assert_eq!(readiness.update(3, 3, false), Health::default());
        assert_eq!(readiness.health(), Health::default());
    }
}
