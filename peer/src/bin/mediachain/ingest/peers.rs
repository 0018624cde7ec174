//! Which peer the next transaction goes to: round-robin over the peers given, passing over a
//! peer whose transactions go unconfirmed past the timeout (cut off from the others, or too far
//! behind to commit), so that it does not hold the run's in-flight slots while the rest could
//! commit. A peer is passed over for one timeout after it was last seen lagging, then tried
//! again; when every peer lags, the plain round-robin goes on. Pure: the caller gives the time.

use std::time::{Duration, Instant};

/// The peers' rotation and when each was last seen lagging.
#[derive(Debug)]
pub struct Rotation {
    lagging: Vec<Option<Instant>>,
    next: usize,
    timeout: Duration,
}

impl Rotation {
    /// A rotation over `peers` peers (at least one), passing over a lagging peer for `timeout`.
    pub fn new(peers: usize, timeout: Duration) -> Self {
        Self {
            lagging: vec![None; peers.max(1)],
            next: 0,
            timeout,
        }
    }

    /// Peer `peer` had a transaction unconfirmed past the timeout at `now`.
    pub fn lagging(&mut self, peer: usize, now: Instant) {
        if let Some(at) = self.lagging.get_mut(peer) {
            *at = Some(now);
        }
    }

    /// A transaction sent to `peer` was confirmed: it commits again.
    pub fn confirmed(&mut self, peer: usize) {
        if let Some(at) = self.lagging.get_mut(peer) {
            *at = None;
        }
    }

    fn lags(&self, peer: usize, now: Instant) -> bool {
        self.lagging[peer].is_some_and(|at| now.saturating_duration_since(at) < self.timeout)
    }

    /// The peer the next transaction goes to at `now`.
    pub fn next(&mut self, now: Instant) -> usize {
        let n = self.lagging.len();
        let peer = (0..n)
            .map(|i| (self.next + i) % n)
            .find(|&p| !self.lags(p, now))
            .unwrap_or(self.next % n);
        self.next = (peer + 1) % n;
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_take_turns_while_none_lags() {
        let mut r = Rotation::new(3, Duration::from_secs(60));
        let now = Instant::now();
        let turns: Vec<usize> = (0..7).map(|_| r.next(now)).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn a_lagging_peer_is_passed_over_until_a_confirmation_or_one_timeout() {
        let timeout = Duration::from_secs(60);
        let mut r = Rotation::new(3, timeout);
        let t0 = Instant::now();
        r.lagging(1, t0);
        let turns: Vec<usize> = (0..4).map(|_| r.next(t0)).collect();
        assert_eq!(turns, [0, 2, 0, 2]);
        // One timeout later it is tried again.
        let later = t0 + timeout;
        let turns: Vec<usize> = (0..3).map(|_| r.next(later)).collect();
        assert_eq!(turns, [0, 1, 2]);
        // A confirmation ends the lag at once.
        r.lagging(2, later);
        r.confirmed(2);
        let turns: Vec<usize> = (0..3).map(|_| r.next(later)).collect();
        assert_eq!(turns, [0, 1, 2]);
    }

    #[test]
    fn when_every_peer_lags_the_rotation_goes_on() {
        let mut r = Rotation::new(2, Duration::from_secs(60));
        let now = Instant::now();
        r.lagging(0, now);
        r.lagging(1, now);
        let turns: Vec<usize> = (0..4).map(|_| r.next(now)).collect();
        assert_eq!(turns, [0, 1, 0, 1]);
    }
}
