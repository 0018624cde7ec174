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
    /// Event streams whose subscriber is behind: its queue is full and the stream waits (at
    /// most the send timeout) for it to take an event.
    pub streams_behind: Gauge,
    /// Event streams refused or ended by the edge: `over-capacity`, `client-over-capacity`,
    /// `slow-subscriber`.
    pub streams_dropped: Family<DropLabel, Counter>,
    /// Client writes refused for storage: `quota-exceeded`, `uploads-full`, `low-disk-space`;
    /// uploads refused an upload slot: `too-many-uploads`.
    pub writes_refused: Family<DropLabel, Counter>,
    /// Bytes of uploads no committed transaction references.
    pub upload_bytes: Gauge,
    /// Uploads collected because no transaction referenced them within the grace period.
    pub uploads_collected: Counter,
    /// Uploads holding an upload slot (being received or stored).
    pub uploads_in_progress: Gauge,
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
            "storage_writes_refused",
            "Client writes refused for storage (quota, total of uploads, free space), by reason",
            self.writes_refused.clone(),
        );
        registry.register(
            "upload_bytes_unreferenced",
            "Bytes of client uploads no committed transaction references",
            self.upload_bytes.clone(),
        );
        registry.register(
            "uploads_collected",
            "Uploads deleted because no transaction referenced them within the grace period",
            self.uploads_collected.clone(),
        );
        registry.register(
            "uploads_in_progress",
            "Uploads being received or stored (each holding an upload slot)",
            self.uploads_in_progress.clone(),
        );
        registry.register(
            "event_streams_behind",
            "Event streams waiting for a subscriber whose queue is full",
            self.streams_behind.clone(),
        );
        registry.register(
            "event_streams_dropped",
            "Event streams refused or ended by the edge, by reason",
            self.streams_dropped.clone(),
        );
    }

    /// Counts a client write refused for storage.
    pub fn refuse_write(&self, reason: &'static str) {
        self.writes_refused
            .get_or_create(&DropLabel { reason })
            .inc();
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
