//! Metrics of the HTTP edge: open connections and streams, and everything the edge dropped or
//! refused, by reason. Registered in the peer's registry by `node::metrics::Metrics::new`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a drop counter: a fixed reason slug (never a value a client chose).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DropLabel {
    /// Why.
    pub reason: &'static str,
}

/// Metrics of the HTTP edge.
#[derive(Default)]
pub struct EdgeMetrics {
    /// Open HTTP connections.
    pub connections_open: Gauge,
    /// Connections closed or refused by the edge: `header-timeout`, `body-timeout`, `stalled`,
    /// `keepalive-expired`, `over-capacity`, `client-over-capacity`.
    pub connections_dropped: Family<DropLabel, Counter>,
    /// Open event streams.
    pub streams_open: Gauge,
    /// Event streams refused or ended by the edge: `over-capacity`, `client-over-capacity`,
    /// `slow-subscriber`.
    pub streams_dropped: Family<DropLabel, Counter>,
}

impl EdgeMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "http_connections_open",
            "Open HTTP connections",
            self.connections_open.clone(),
        );
        registry.register(
            "http_connections_dropped",
            "HTTP connections closed or refused by the edge, by reason",
            self.connections_dropped.clone(),
        );
        registry.register(
            "event_streams_open",
            "Open event streams",
            self.streams_open.clone(),
        );
        registry.register(
            "event_streams_dropped",
            "Event streams refused or ended by the edge, by reason",
            self.streams_dropped.clone(),
        );
    }

    /// Counts a dropped connection.
    pub fn drop_connection(&self, reason: &'static str) {
        self.connections_dropped
            .get_or_create(&DropLabel { reason })
            .inc();
    }

    /// Counts a dropped or refused stream.
    pub fn drop_stream(&self, reason: &'static str) {
        self.streams_dropped
            .get_or_create(&DropLabel { reason })
            .inc();
    }
}
