//! Liveness and readiness flags, set by the overlay's policy and read by the probes and the
//! commit loop.

/// Liveness and readiness, as the probes see them.
#[derive(Debug, Default)]
pub struct Health {
    ready: std::sync::atomic::AtomicBool,
    synced: std::sync::atomic::AtomicBool,
}

impl Health {
    /// Marks the peer ready (admitted to the overlay and in sync) or not.
    pub fn set_ready(&self, ready: bool) {
        self.ready
            .store(ready, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the peer is ready to serve clients.
    pub fn is_ready(&self) -> bool {
        self.ready.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Marks the peer at the best height its peers report (or not).
    pub fn set_synced(&self, synced: bool) {
        self.synced
            .store(synced, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether the peer is at the best height its peers report: only then may it commit (a
    /// block on an old tip would fork the chain).
    pub fn is_synced(&self) -> bool {
        self.synced.load(std::sync::atomic::Ordering::Relaxed)
    }
}
