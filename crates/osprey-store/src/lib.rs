//! Osprey's storage: a durable write-ahead log of accepted exports and the in-memory head that indexes
//! them for search and trace lookup.

pub mod head;
pub mod metrics;
pub mod wal;

use std::io;
use std::path::Path;

use bytes::Bytes;
use parking_lot::{RwLock, RwLockReadGuard};
use prost::Message;

use osprey_model::otlp::ExportTraceServiceRequest;

pub use head::{Head, SpanEntry, TraceEntry};
pub use metrics::StoreMetrics;
pub use wal::{AppendError, FsyncPolicy, RecordLocation, ReplayReport, WalOptions};

/// The store: spans go in through [`Store::append`], and are found through [`Store::head`] and read back
/// with [`Store::read_record`].
pub struct Store {
    wal: wal::Wal,
    head: RwLock<Head>,
    metrics: StoreMetrics,
}

impl Store {
    /// Opens the store under `data_dir`, replaying the write-ahead log into a fresh head.
    pub fn open(data_dir: &Path, options: WalOptions) -> io::Result<(Store, ReplayReport)> {
        let metrics = StoreMetrics::default();
        let mut head = Head::default();
        let mut undecodable = 0u64;
        let (wal, report) = wal::Wal::open(
            &data_dir.join("wal"),
            options,
            metrics.clone(),
            |location, payload| match ExportTraceServiceRequest::decode(payload) {
                Ok(request) => head.insert(location, &request),
                Err(_) => undecodable += 1,
            },
        )?;
        if undecodable > 0 {
            tracing::warn!(
                records = undecodable,
                "write-ahead log records with intact checksums did not decode and were skipped"
            );
        }
        let store = Store {
            wal,
            head: RwLock::new(head),
            metrics,
        };
        store.update_gauges(&store.head.read());
        Ok((store, report))
    }

    /// Stores one validated export. `payload` is the request's protobuf encoding; it is durable (per
    /// the fsync policy) and indexed when this returns `Ok`.
    pub async fn append(
        &self,
        request: &ExportTraceServiceRequest,
        payload: Bytes,
    ) -> Result<(), AppendError> {
        let location = self.wal.append(payload).await?;
        let mut head = self.head.write();
        head.insert(location, request);
        self.update_gauges(&head);
        Ok(())
    }

    /// A read view of the index. Hold it briefly: ingest waits while it is held.
    pub fn head(&self) -> RwLockReadGuard<'_, Head> {
        self.head.read()
    }

    /// Reads back and decodes the record stored at `location`.
    pub fn read_record(&self, location: RecordLocation) -> io::Result<ExportTraceServiceRequest> {
        let payload = self.wal.read(location)?;
        ExportTraceServiceRequest::decode(payload.as_slice())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    fn update_gauges(&self, head: &Head) {
        self.metrics.head_spans.set(head.span_count() as i64);
        self.metrics.head_traces.set(head.trace_count() as i64);
    }
}
