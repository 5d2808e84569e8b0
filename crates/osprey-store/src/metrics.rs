//! The store's own Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Cheap to clone: every field is a shared atomic.
#[derive(Clone, Default)]
pub struct StoreMetrics {
    pub wal_bytes: Counter,
    pub wal_records: Counter,
    pub wal_fsyncs: Counter,
    pub head_spans: Gauge,
    pub head_traces: Gauge,
}

impl StoreMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "osprey_wal_written_bytes",
            "Bytes appended to the write-ahead log",
            self.wal_bytes.clone(),
        );
        registry.register(
            "osprey_wal_records",
            "Records appended to the write-ahead log",
            self.wal_records.clone(),
        );
        registry.register(
            "osprey_wal_fsyncs",
            "fsync calls made by the write-ahead log",
            self.wal_fsyncs.clone(),
        );
        registry.register(
            "osprey_head_spans",
            "Spans indexed in the in-memory head",
            self.head_spans.clone(),
        );
        registry.register(
            "osprey_head_traces",
            "Traces indexed in the in-memory head",
            self.head_traces.clone(),
        );
    }
}
