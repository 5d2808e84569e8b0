//! Ingest's Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

pub type Labels = [(&'static str, &'static str); 1];

/// Cheap to clone: shared atomics.
#[derive(Clone, Default)]
pub struct IngestMetrics {
    /// Spans decoded from requests, by protocol.
    pub spans_received: Family<Labels, Counter>,
    /// Spans stored, by protocol.
    pub spans_accepted: Family<Labels, Counter>,
    /// Spans refused one by one (partial success), by reason.
    pub spans_rejected: Family<Labels, Counter>,
    /// Whole requests refused, by reason.
    pub requests_rejected: Family<Labels, Counter>,
}

impl IngestMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "osprey_spans_received",
            "Spans received, by protocol",
            self.spans_received.clone(),
        );
        registry.register(
            "osprey_spans_accepted",
            "Spans stored durably, by protocol",
            self.spans_accepted.clone(),
        );
        registry.register(
            "osprey_spans_rejected",
            "Spans refused individually, by reason",
            self.spans_rejected.clone(),
        );
        registry.register(
            "osprey_requests_rejected",
            "Export requests refused whole, by reason",
            self.requests_rejected.clone(),
        );
    }
}
