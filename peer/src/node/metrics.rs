//! Prometheus metrics of a peer, served at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a rejection counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// What was rejected: `transaction`, `block`, `peer`, `message`.
    pub kind: String,
    /// Short reason.
    pub reason: String,
}

/// Label of an eviction counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StructureLabel {
    /// The bounded structure that evicted something (`waiting_for_parent`, ...).
    pub structure: String,
}

/// Every metric the peer exports.
pub struct Metrics {
    registry: Registry,
    /// Admitted peers currently connected.
    pub peers_connected: Gauge,
    /// Peers known through membership records.
    pub peers_known: Gauge,
    /// Height of the canonical chain's tip.
    pub journal_height: Gauge,
    /// Blocks this peer committed.
    pub blocks_committed: Counter,
    /// Blocks received that joined the chain.
    pub blocks_received: Counter,
    /// Chain reorganisations (forks healed).
    pub forks_healed: Counter,
    /// Transactions admitted (from clients or peers).
    pub transactions_admitted: Counter,
    /// Pending transactions.
    pub mempool_size: Gauge,
    /// Rejections by kind and reason.
    pub rejected: Family<ReasonLabel, Counter>,
    /// Height the peer is syncing towards (equals the journal height when in sync).
    pub sync_target_height: Gauge,
    /// Committers against which this peer holds evidence of equivocation (two signed blocks
    /// on one parent: docs/consensus.md).
    pub evidence_culprits: Gauge,
    /// Items of evidence kept (one per culprit and kind).
    pub evidence_items: Gauge,
    /// When the newest item of evidence was found (Unix seconds; 0: none).
    pub evidence_newest: Gauge,
    /// Height of the highest final checkpoint (0 without finality: docs/consensus.md).
    pub finalized_height: Gauge,
    /// Expiry of this peer's certificate chain (earliest `notAfter`), Unix seconds.
    pub certificate_expiry: Gauge,
    /// HTTP requests served.
    pub http_requests: Family<ReasonLabel, Counter>,
    /// Entries evicted from bounded structures fed by the network.
    pub evicted: Family<StructureLabel, Counter>,
    /// The HTTP edge: connections, streams, drops.
    pub edge: crate::api::metrics::EdgeMetrics,
}

impl Metrics {
    /// Registers every metric under the `mediachain` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("mediachain");
        let m = Self {
            peers_connected: Gauge::default(),
            peers_known: Gauge::default(),
            journal_height: Gauge::default(),
            blocks_committed: Counter::default(),
            blocks_received: Counter::default(),
            forks_healed: Counter::default(),
            transactions_admitted: Counter::default(),
            mempool_size: Gauge::default(),
            rejected: Family::default(),
            sync_target_height: Gauge::default(),
            evidence_culprits: Gauge::default(),
            evidence_items: Gauge::default(),
            evidence_newest: Gauge::default(),
            finalized_height: Gauge::default(),
            certificate_expiry: Gauge::default(),
            http_requests: Family::default(),
            evicted: Family::default(),
            edge: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "peers_connected",
            "Admitted peers currently connected",
            m.peers_connected.clone(),
        );
        registry.register(
            "peers_known",
            "Peers known through membership records",
            m.peers_known.clone(),
        );
        registry.register(
            "journal_height",
            "Height of the canonical chain's tip",
            m.journal_height.clone(),
        );
        registry.register(
            "blocks_committed",
            "Blocks this peer committed",
            m.blocks_committed.clone(),
        );
        registry.register(
            "blocks_received",
            "Blocks from peers that joined the chain",
            m.blocks_received.clone(),
        );
        registry.register(
            "forks_healed",
            "Chain reorganisations",
            m.forks_healed.clone(),
        );
        registry.register(
            "transactions_admitted",
            "Transactions admitted",
            m.transactions_admitted.clone(),
        );
        registry.register(
            "mempool_size",
            "Pending transactions",
            m.mempool_size.clone(),
        );
        registry.register(
            "rejected",
            "Rejected inputs by kind and reason",
            m.rejected.clone(),
        );
        registry.register(
            "sync_target_height",
            "Height the peer is syncing towards",
            m.sync_target_height.clone(),
        );
        registry.register(
            "evidence_culprits",
            "Committers this peer holds evidence of equivocation against",
            m.evidence_culprits.clone(),
        );
        registry.register(
            "evidence_items",
            "Items of evidence this peer keeps (one per culprit and kind)",
            m.evidence_items.clone(),
        );
        registry.register(
            "evidence_newest_timestamp_seconds",
            "When this peer found its newest item of evidence (0: none)",
            m.evidence_newest.clone(),
        );
        registry.register(
            "finalized_height",
            "Height of the highest final checkpoint: it and every block below never revert",
            m.finalized_height.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Earliest notAfter of this peer's certificate chain",
            m.certificate_expiry.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.http_requests.clone(),
        );
        registry.register(
            "evicted",
            "Entries evicted from bounded structures fed by the network",
            m.evicted.clone(),
        );
        m.edge.register(&mut registry);
        Self { registry, ..m }
    }

    /// Counts a rejection.
    pub fn reject(&self, kind: &str, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts an eviction from `structure`.
    pub fn evict(&self, structure: &str) {
        self.evicted
            .get_or_create(&StructureLabel {
                structure: structure.into(),
            })
            .inc();
    }

    /// The metrics in Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
