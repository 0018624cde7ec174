//! Prometheus metrics of the operator (prometheus-client), served on `/metrics`.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Labels of the failure counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    /// The error category (see `Error::category`).
    pub category: String,
}

/// Labels of per-peer gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    /// Namespace of the MediachainPeer.
    pub namespace: String,
    /// Name of the MediachainPeer.
    pub name: String,
    /// Pod name of the peer.
    pub peer: String,
}

/// Labels of per-resource gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabels {
    /// Namespace of the MediachainPeer.
    pub namespace: String,
    /// Name of the MediachainPeer.
    pub name: String,
}

/// All metrics of the operator.
pub struct Metrics {
    /// The registry they are exported from.
    pub registry: Registry,
    /// Reconcile passes.
    pub reconciles: Counter,
    /// Failed passes, by category.
    pub failures: Family<FailureLabels, Counter>,
    /// Duration of reconcile passes.
    pub duration: Histogram,
    /// End of validity of each peer's certificate (Unix seconds): alert when it nears.
    pub certificate_expiry: Family<PeerLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// End of validity of the principal's certificate each resource uses (Unix seconds).
    pub principal_expiry: Family<ResourceLabels, Gauge<i64, std::sync::atomic::AtomicI64>>,
    /// 1 while this replica holds the leader Lease.
    pub leader: Gauge<i64, std::sync::atomic::AtomicI64>,
    /// Identities issued or renewed.
    pub identities_issued: Counter<u64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mediachain_operator");
        let reconciles = Counter::default();
        let failures = Family::<FailureLabels, Counter>::default();
        let duration = Histogram::new([0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]);
        let certificate_expiry = Family::default();
        let principal_expiry = Family::default();
        let leader = Gauge::default();
        let identities_issued = Counter::default();
        registry.register("reconciles", "Reconcile passes", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Failed reconcile passes by error category",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            duration.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "End of validity of each peer's Level-1 certificate (Unix seconds)",
            certificate_expiry.clone(),
        );
        registry.register(
            "principal_expiry_timestamp_seconds",
            "End of validity of the principal's Level-0 certificate (Unix seconds); the operator warns 30 days before",
            principal_expiry.clone(),
        );
        registry.register(
            "leader",
            "1 while this operator replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "identities_issued",
            "Peer certificates issued, renewed or re-issued",
            identities_issued.clone(),
        );
        Self {
            registry,
            reconciles,
            failures,
            duration,
            certificate_expiry,
            principal_expiry,
            leader,
            identities_issued,
        }
    }
}

impl Metrics {
    /// Records one pass.
    pub fn observe(&self, elapsed: Duration, failure: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(category) = failure {
            self.failures
                .get_or_create(&FailureLabels {
                    category: category.into(),
                })
                .inc();
        }
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
