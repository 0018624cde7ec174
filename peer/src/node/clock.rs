//! Where a node reads the time: the system clock in the daemon, a simulated one in the
//! simulator.

use std::time::Instant;

use crate::time::{UnixMillis, UnixSeconds};

/// Where a node reads the time: the system clock, or a simulated one (so a simulation of many
/// nodes is deterministic).
pub trait Clock: Send + Sync {
    /// Now, for durations (block intervals, commit timeouts).
    fn instant(&self) -> Instant;
    /// Now, as Unix milliseconds (block timestamps).
    fn unix_ms(&self) -> UnixMillis;
    /// Now, as Unix seconds (certificate validity).
    fn unix(&self) -> UnixSeconds {
        self.unix_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn instant(&self) -> Instant {
        Instant::now()
    }
    fn unix_ms(&self) -> UnixMillis {
        crate::time::now_ms()
    }
}
