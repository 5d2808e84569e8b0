//! Osprey's storage: a durable write-ahead log of accepted exports, the in-memory head that indexes
//! recent spans, and immutable Parquet blocks on an object store (a local directory by default).
//!
//! - [`Store`] takes appends, cuts the head into blocks, applies retention, and hands the query engine
//!   its [`SpanSource`]s;
//! - [`Generation`] is one cut of the head (its index over a run of log segments);
//! - [`Block`] is one block on the object store;
//! - [`SpanSource`] is the seam both implement, and all that queries see.

pub mod block;
mod compaction;
mod cutting;
mod generation;
pub mod head;
pub mod metrics;
pub mod objects;
pub mod retention;
mod source;
mod tenants;
pub mod wal;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::RwLock;

use osprey_model::otlp::ExportTraceServiceRequest;

pub use block::{Block, BlockMeta};
pub use generation::Generation;
pub use head::{Head, SpanEntry, TraceEntry};
pub use metrics::{StoreMetrics, TenantGauges};
pub use objects::ObjectStorage;
pub use source::{overlaps, SpanParts, SpanRef, SpanSource, TraceHit, TraceQuery};
pub use tenants::{validate_tenant, Tenants};
pub use wal::{AppendError, FsyncPolicy, RecordLocation, ReplayReport, WalOptions};

/// Closed head generations (cut, their blocks not yet written) beyond which appends are refused; and
/// while any waits, the active generation may not grow past --max-block-bytes.
const MAX_CLOSED_GENERATIONS: usize = 1;

/// The tenant of requests that name none (Tempo's default too).
pub const DEFAULT_TENANT: &str = "single-tenant";

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub wal: WalOptions,
    /// Where blocks go: a local path or an object-store URL (see [`ObjectStorage::open`]); `None`
    /// for `blocks/` in the data directory.
    pub storage: Option<String>,
    /// The head is cut into a block once its oldest span arrived this long ago…
    pub max_block_duration: Duration,
    /// …or once its log records reach this many bytes, whichever comes first.
    pub max_block_bytes: u64,
    /// Blocks whose newest span ended longer ago than this are deleted.
    pub retention: Duration,
    /// How often the block list is read again from the store (for blocks other servers wrote).
    pub block_list_interval: Duration,
}

impl Default for StoreOptions {
    /// The defaults, written here only: flags and docs refer to them.
    fn default() -> Self {
        StoreOptions {
            wal: WalOptions::default(),
            storage: None,
            max_block_duration: Duration::from_secs(5 * 60),
            max_block_bytes: 64 << 20,
            retention: Duration::from_secs(14 * 24 * 3600),
            block_list_interval: Duration::from_secs(30),
        }
    }
}

/// What queries read: a consistent snapshot of the sources. A generation and the block made from it
/// are never both in one snapshot, so no answer doubles a span.
struct Sources {
    /// Oldest first; the last takes appends.
    generations: Vec<Arc<Generation>>,
    blocks: Vec<Arc<Block>>,
}

pub struct Store {
    wal: Arc<wal::Wal>,
    storage: Arc<ObjectStorage>,
    tenant: String,
    /// This server's id, recorded in the blocks it cuts (see [`WalSource`]).
    node: String,
    options: StoreOptions,
    sources: RwLock<Sources>,
    /// Held by whatever changes the block list (cutting, retention, re-listing), one at a time.
    maintenance: tokio::sync::Mutex<()>,
    /// Held (shared) by an append from its log write until its spans are indexed, and exclusively by
    /// a cut across rotating the log and adding the new generation: so a record in the new segment is
    /// never indexed into the generation being closed.
    rotation: tokio::sync::RwLock<()>,
    /// The spans of the last cut when it was due by size (`--max-block-bytes` before
    /// `--max-block-duration`: ingest is busy), 0 once a generation ages instead: compaction then
    /// leaves blocks of about that size alone (see [`compaction::plan`]).
    full_cut_spans: std::sync::atomic::AtomicU64,
    metrics: StoreMetrics,
    gauges: TenantGauges,
}

/// What the stores of every tenant share.
#[derive(Clone)]
pub struct Shared {
    pub storage: Arc<ObjectStorage>,
    /// This server's id, recorded in the blocks it cuts (see [`WalSource`]).
    pub node: String,
    pub options: StoreOptions,
    pub metrics: StoreMetrics,
}

impl Shared {
    /// Opens the block store (`options.storage`, or `blocks/` in `data_dir`) and reads (or makes)
    /// this server's id.
    pub fn open(data_dir: &Path, options: StoreOptions) -> io::Result<Shared> {
        std::fs::create_dir_all(data_dir)?;
        let node = node_id(data_dir)?;
        let storage_spec = options
            .storage
            .clone()
            .unwrap_or_else(|| data_dir.join("blocks").to_string_lossy().into_owned());
        let metrics = StoreMetrics::default();
        let mut storage = ObjectStorage::open(&storage_spec).map_err(io::Error::other)?;
        storage.requests = metrics.object_requests.clone();
        storage.parquet_bytes_read = metrics.parquet_bytes_read.clone();
        Ok(Shared {
            storage: Arc::new(storage),
            node,
            options,
            metrics,
        })
    }
}

/// What opening found, for the start-up log.
#[derive(Debug, Default)]
pub struct OpenReport {
    pub replay: ReplayReport,
    pub blocks: usize,
    /// Block directories without a meta: a cut or compaction that did not finish (deleted once
    /// [`retention::ABANDONED_AFTER`] old), or a block another server is writing now.
    pub incomplete_blocks: Vec<String>,
    /// Blocks whose meta or index could not be read (damaged, or a newer format); skipped.
    pub unreadable_blocks: Vec<String>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A new block id: the creation time in milliseconds (12 hex digits, so ids sort by age) and 20
/// random hex digits.
pub(crate) fn new_block_id() -> String {
    let ms = now_ns() / 1_000_000;
    format!(
        "{:012x}{:08x}{:012x}",
        ms & 0xffff_ffff_ffff,
        fastrand::u32(..),
        fastrand::u64(..) & 0xffff_ffff_ffff
    )
}

/// Waits (up to a minute) until no query holds `source` any more: queries take a snapshot of the
/// sources, and a source's files are deleted only once the snapshots that hold it are gone.
pub(crate) async fn wait_for_readers<T>(source: &Arc<T>) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Arc::strong_count(source) > 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops blocks that a compacted block replaces (both exist after a crash mid-compaction); returns
/// their ids.
fn without_replaced(blocks: &mut Vec<Arc<Block>>) -> Vec<String> {
    let replaced: std::collections::HashSet<String> = blocks
        .iter()
        .flat_map(|b| b.meta.replaces.iter().cloned())
        .collect();
    let (gone, kept): (Vec<_>, Vec<_>) = blocks.drain(..).partition(|b| replaced.contains(b.id()));
    *blocks = kept;
    gone.iter().map(|b| b.id().to_string()).collect()
}

/// This server's id, made once and kept in the data directory.
fn node_id(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => Ok(id.trim().to_string()),
        _ => {
            let id = format!("{:016x}", fastrand::u64(..));
            std::fs::write(&path, format!("{id}\n"))?;
            std::fs::File::open(&path)?.sync_all()?;
            Ok(id)
        }
    }
}

impl Store {
    /// Opens the store under `data_dir`: lists the blocks, then replays the write-ahead log segments
    /// no block holds yet into a fresh head.
    pub async fn open(data_dir: &Path, options: StoreOptions) -> io::Result<(Store, OpenReport)> {
        let shared = Shared::open(data_dir, options)?;
        Store::open_tenant(&shared, &data_dir.join("wal"), DEFAULT_TENANT).await
    }

    /// Opens one tenant's store: its blocks in the shared block store, its log in `wal_dir`.
    pub async fn open_tenant(
        shared: &Shared,
        wal_dir: &Path,
        tenant: &str,
    ) -> io::Result<(Store, OpenReport)> {
        let (storage, node, options) = (
            shared.storage.clone(),
            shared.node.clone(),
            shared.options.clone(),
        );
        let metrics = shared.metrics.clone();
        let gauges = metrics.tenant(tenant);
        let tenant = tenant.to_string();
        let mut report = OpenReport::default();
        let mut blocks = Vec::new();
        for id in storage
            .list_blocks(&tenant)
            .await
            .map_err(block::io_error)?
        {
            match Block::open(storage.clone(), &tenant, &id).await {
                Ok(Some(b)) => blocks.push(Arc::new(b)),
                Ok(None) => report.incomplete_blocks.push(id),
                // One unreadable block must not keep the server (and every other block) down.
                Err(e) => {
                    tracing::error!(tenant, block = %id, error = %e, "skipping a block that cannot be read");
                    report.unreadable_blocks.push(id);
                }
            }
        }
        let abandoned = retention::remove_abandoned_blocks(
            &storage,
            &tenant,
            &report.incomplete_blocks,
            retention::ABANDONED_AFTER,
        )
        .await;
        report
            .incomplete_blocks
            .retain(|id| !abandoned.contains(id));
        let replaced = without_replaced(&mut blocks);
        for id in &replaced {
            // Left behind by a compaction that stopped before deleting its inputs.
            if let Err(e) = storage.delete_block(&tenant, id).await {
                tracing::warn!(block = %id, error = %e, "could not delete a compacted block's input");
            }
        }
        report.blocks = blocks.len();
        let in_blocks_through = blocks
            .iter()
            .flat_map(|b| &b.meta.wal)
            .filter(|w| w.node == node)
            .map(|w| w.last_segment)
            .max()
            .unwrap_or(0);

        let mut head = Head::default();
        let mut undecodable = 0u64;
        let mut first_segment = None;
        let (wal, replay) = wal::Wal::open(
            wal_dir,
            options.wal.clone(),
            metrics.clone(),
            in_blocks_through,
            |location, payload| {
                first_segment.get_or_insert(location.segment);
                if !head.insert_record(location, payload) {
                    undecodable += 1;
                }
            },
        )?;
        if undecodable > 0 {
            tracing::warn!(
                records = undecodable,
                "write-ahead log records with intact checksums did not decode and were skipped"
            );
        }
        report.replay = replay;
        let wal = Arc::new(wal);
        let first_segment = first_segment.unwrap_or(in_blocks_through + 1);
        gauges.head_spans.set(head.span_count() as i64);
        gauges.head_traces.set(head.trace_count() as i64);
        let generation = Arc::new(Generation::new(first_segment, head, wal.clone()));
        let store = Store {
            wal,
            storage,
            tenant,
            node,
            options,
            sources: RwLock::new(Sources {
                generations: vec![generation],
                blocks,
            }),
            maintenance: tokio::sync::Mutex::new(()),
            rotation: tokio::sync::RwLock::new(()),
            full_cut_spans: Default::default(),
            metrics,
            gauges,
        };
        store.update_block_gauges();
        Ok((store, report))
    }

    /// Stores one validated export. `payload` is the request's protobuf encoding; it is durable (per
    /// the fsync policy) and indexed when this returns `Ok`.
    pub async fn append(
        &self,
        request: &ExportTraceServiceRequest,
        payload: Bytes,
    ) -> Result<(), AppendError> {
        // Back-pressure: when blocks are written more slowly than spans arrive, the head would grow
        // without bound (closed generations waiting, and the active one filling meanwhile). While a
        // closed generation waits, the active one may fill only up to --max-block-bytes; refusing
        // (clients retry) keeps memory bounded instead.
        if self.blocks_behind() {
            return Err(AppendError::BlocksBehind);
        }
        let _rotation = self.rotation.read().await;
        let location = self.wal.append(payload).await?;
        // The generation that owns the record's segment. If that generation was already released,
        // its block holds the record (the block was read from the segment after the write).
        let generation = self
            .sources
            .read()
            .generations
            .iter()
            .rev()
            .find(|g| g.first_segment <= location.segment)
            .cloned();
        if let Some(generation) = generation {
            let (spans, traces) = generation.insert(location, request);
            self.gauges.head_spans.inc_by(spans as i64);
            self.gauges.head_traces.inc_by(traces as i64);
        }
        Ok(())
    }

    /// Whether appends are refused now because blocks are behind: ingest asks before it decodes a
    /// request, so refusing one costs next to nothing.
    pub fn blocks_behind(&self) -> bool {
        let sources = self.sources.read();
        let closed = sources.generations.len() - 1;
        closed > MAX_CLOSED_GENERATIONS
            || (closed > 0
                && sources.generations.last().is_some_and(|active| {
                    active.head().record_bytes() >= self.options.max_block_bytes
                }))
    }

    /// Every source, for one query, oldest first: the blocks by time, then the head's generations.
    /// Pieces of a trace then combine in the order they arrived.
    pub fn sources(&self) -> Vec<Arc<dyn SpanSource>> {
        let sources = self.sources.read();
        let mut blocks = sources.blocks.clone();
        blocks.sort_by_key(|b| (b.meta.start_unix_nano, b.meta.created_unix_nano));
        let mut out: Vec<Arc<dyn SpanSource>> = Vec::new();
        for b in blocks {
            out.push(b);
        }
        for g in &sources.generations {
            out.push(g.clone());
        }
        out
    }

    /// The blocks, oldest first.
    pub fn blocks(&self) -> Vec<Arc<Block>> {
        let mut blocks = self.sources.read().blocks.clone();
        blocks.sort_by_key(|b| b.meta.start_unix_nano);
        blocks
    }

    /// Spans in the head (every generation not yet a block).
    pub fn head_span_count(&self) -> u64 {
        self.sources
            .read()
            .generations
            .iter()
            .map(|g| g.head().span_count())
            .sum()
    }

    pub fn metrics(&self) -> &StoreMetrics {
        &self.metrics
    }

    pub(crate) fn update_block_gauges(&self) {
        let sources = self.sources.read();
        self.gauges.blocks.set(sources.blocks.len() as i64);
        self.gauges.block_bytes.set(
            sources
                .blocks
                .iter()
                .map(|b| b.meta.data_bytes as i64)
                .sum(),
        );
    }
}
