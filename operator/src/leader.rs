//! Leader election over a coordination.k8s.io Lease (crate `kube-leader-election`): only the
//! holder runs the controller; a replica that loses the Lease must stop at once.

use std::time::{Duration, Instant};

use kube::Client;
use kube_leader_election::{LeaseLock, LeaseLockParams};
use tracing::warn;

/// Leader election over a coordination.k8s.io Lease.
pub struct Leadership {
    lock: LeaseLock,
    renew_every: Duration,
}

impl Leadership {
    /// A candidate `holder` for Lease `name` in `namespace`, with time-to-live `ttl`.
    pub fn new(client: Client, namespace: &str, name: &str, holder: &str, ttl: Duration) -> Self {
        Self {
            lock: LeaseLock::new(
                client,
                namespace,
                LeaseLockParams {
                    lease_name: name.into(),
                    holder_id: holder.into(),
                    lease_ttl: ttl,
                },
            ),
            renew_every: ttl / 3,
        }
    }

    /// One attempt to take (or renew) the Lease: whether this replica holds it now.
    pub async fn try_acquire(&self) -> bool {
        match self.lock.try_acquire_or_renew().await {
            Ok(result) => result.acquired_lease,
            Err(e) => {
                warn!(error = %e, "leader election: could not read or take the Lease");
                false
            }
        }
    }

    /// Waits until this replica holds the Lease.
    pub async fn acquire(&self) {
        while !self.try_acquire().await {
            tokio::time::sleep(self.renew_every).await;
        }
    }

    /// Renews the Lease until it is lost (another holder, or renewals failing for a whole
    /// TTL); returns then. The caller must stop acting as leader at once.
    pub async fn hold(&self) {
        let mut last_ok = Instant::now();
        loop {
            tokio::time::sleep(self.renew_every).await;
            match self.lock.try_acquire_or_renew().await {
                Ok(result) if result.acquired_lease => last_ok = Instant::now(),
                Ok(_) => return,
                Err(e) => {
                    warn!(error = %e, "leader election: renewal failed");
                    if last_ok.elapsed() > self.renew_every * 3 {
                        return;
                    }
                }
            }
        }
    }

    /// Releases the Lease so that another replica takes over without waiting for the TTL.
    pub async fn step_down(&self) {
        if let Err(e) = self.lock.step_down().await {
            warn!(error = %e, "leader election: could not release the Lease");
        }
    }
}
