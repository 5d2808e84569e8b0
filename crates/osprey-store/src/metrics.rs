//! The store's own Prometheus metrics.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type ByTenant = Family<[(&'static str, String); 1], Gauge>;

/// Cheap to clone: every field is a shared atomic. Counters add up every tenant; gauges are per tenant.
#[derive(Clone, Default)]
pub struct StoreMetrics {
    pub wal_bytes: Counter,
    pub wal_records: Counter,
    pub wal_fsyncs: Counter,
    pub head_spans: ByTenant,
    pub head_traces: ByTenant,
    pub blocks: ByTenant,
    pub block_bytes: ByTenant,
    pub cuts: Counter,
    pub compactions: Counter,
    pub retention_deletions: Counter,
    pub object_requests: Counter,
    pub parquet_bytes_read: Counter,
}

/// One tenant's gauges (sharing their atomics with the families above).
#[derive(Clone)]
pub struct TenantGauges {
    pub head_spans: Gauge,
    pub head_traces: Gauge,
    pub blocks: Gauge,
    pub block_bytes: Gauge,
}

impl StoreMetrics {
    pub fn tenant(&self, tenant: &str) -> TenantGauges {
        let labels = [("tenant", tenant.to_string())];
        TenantGauges {
            head_spans: self.head_spans.get_or_create(&labels).clone(),
            head_traces: self.head_traces.get_or_create(&labels).clone(),
            blocks: self.blocks.get_or_create(&labels).clone(),
            block_bytes: self.block_bytes.get_or_create(&labels).clone(),
        }
    }

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
            "Spans in the in-memory head (not yet in a block)",
            self.head_spans.clone(),
        );
        registry.register(
            "osprey_head_traces",
            "Traces in the in-memory head (a trace cut across generations counts in each)",
            self.head_traces.clone(),
        );
        registry.register(
            "osprey_blocks",
            "Blocks of the tenant in the store",
            self.blocks.clone(),
        );
        registry.register(
            "osprey_block_bytes",
            "Bytes of the Parquet files of the tenant's blocks",
            self.block_bytes.clone(),
        );
        registry.register(
            "osprey_block_cuts",
            "Head generations written into blocks",
            self.cuts.clone(),
        );
        registry.register(
            "osprey_compactions",
            "Sets of blocks merged into one",
            self.compactions.clone(),
        );
        registry.register(
            "osprey_retention_deleted_blocks",
            "Blocks deleted for being past retention",
            self.retention_deletions.clone(),
        );
        registry.register(
            "osprey_object_store_requests",
            "Requests made to the block store (gets, range reads, puts, lists, deletes)",
            self.object_requests.clone(),
        );
        registry.register(
            "osprey_block_read_bytes",
            "Bytes of blocks' Parquet files read by queries and compaction (footers, indexes, pages)",
            self.parquet_bytes_read.clone(),
        );
    }
}
