//! Compaction: the blocks of one time window, cut one by one from the head, merged into larger ones
//! (a span held twice kept once), so queries open fewer files and the store holds fewer objects.
//!
//! Crash-safe without coordination: the merged block is written completely (meta last) and names the
//! blocks it replaces; readers ignore replaced blocks from then on, and only after that are the inputs
//! deleted. A server compacts only blocks it wrote itself, so a second server reading the same bucket
//! never competes with it.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use crate::block::write::BlockWriter;
use crate::block::{self, Block};
use crate::Store;

/// Blocks whose first span falls in the same window of this length are merged together.
pub const WINDOW_NS: u64 = 3600 * 1_000_000_000;
/// A merged block holds at most this many spans.
pub const MAX_SPANS: u64 = 500_000;
/// While ingest is busy (cuts due by size), only blocks under this share of a full cut's spans are
/// merged: full-sized blocks would cost about as much CPU to merge as they did to cut, on the cores
/// ingest and cuts need, to save queries opening two or three files instead of one. They are merged
/// once cuts are due by time again. Measured in spans of the last full cut, since a cut is
/// `--max-block-bytes` of log whatever the size of a span (about 150,000 tracegen spans).
const BUSY_SHARE: u64 = 2;
/// Blocks merged at once at most.
const MAX_INPUTS: usize = 8;

/// The next blocks to merge: the smallest blocks of the window with most of them, as many as fit.
/// `full_cut_spans` is the size of the last cut when ingest is busy (cuts due by size), else 0.
pub(crate) fn plan(
    blocks: &[Arc<Block>],
    node: &str,
    full_cut_spans: u64,
) -> Option<Vec<Arc<Block>>> {
    let largest = match full_cut_spans {
        0 => MAX_SPANS,
        full => (full / BUSY_SHARE).min(MAX_SPANS),
    };
    let mut windows: BTreeMap<u64, Vec<Arc<Block>>> = BTreeMap::new();
    for b in blocks {
        let own = !b.meta.wal.is_empty() && b.meta.wal.iter().all(|w| w.node == node);
        if own && b.meta.span_count < largest {
            windows
                .entry(b.meta.start_unix_nano / WINDOW_NS)
                .or_default()
                .push(b.clone());
        }
    }
    windows
        .into_values()
        .filter_map(|mut candidates| {
            candidates.sort_by_key(|b| b.meta.span_count);
            let mut chosen = Vec::new();
            let mut spans = 0;
            for b in candidates {
                if chosen.len() == MAX_INPUTS || spans + b.meta.span_count > MAX_SPANS {
                    break;
                }
                spans += b.meta.span_count;
                chosen.push(b);
            }
            (chosen.len() >= 2).then_some(chosen)
        })
        .max_by_key(|chosen| chosen.len())
}

impl Store {
    /// Merges one set of blocks if there is one to merge; returns whether it did.
    ///
    /// The merge itself runs without the maintenance lock (cuts go on meanwhile); the swap takes it.
    pub async fn compact_once(&self) -> io::Result<bool> {
        let inputs = {
            let sources = self.sources.read();
            // Cutting keeps ingest flowing (appends are refused while it is behind); compaction only
            // saves queries work. While a closed generation waits for its cut, the cut gets the CPU.
            if sources.generations.len() > 1 {
                return Ok(false);
            }
            let full_cut_spans = self
                .full_cut_spans
                .load(std::sync::atomic::Ordering::Relaxed);
            plan(&sources.blocks, &self.node, full_cut_spans)
        };
        let Some(inputs) = inputs else {
            return Ok(false);
        };
        let started = Instant::now();
        let block_id = crate::new_block_id();
        let level = inputs
            .iter()
            .map(|b| b.meta.compaction_level)
            .max()
            .unwrap_or(0)
            + 1;
        let wal = inputs.iter().flat_map(|b| b.meta.wal.clone()).collect();
        // Transitively: if an input of an input was never deleted (a failed delete), this block still
        // hides it.
        let mut replaces: Vec<String> = inputs
            .iter()
            .flat_map(|b| std::iter::once(b.id().to_string()).chain(b.meta.replaces.clone()))
            .collect();
        replaces.sort();
        replaces.dedup();
        let (tenant, id, to_read) = (self.tenant.clone(), block_id.clone(), inputs.clone());
        let built = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let mut writer = BlockWriter::new().map_err(block::io_error)?;
            block::merge::merge(&to_read, &mut writer)?;
            writer
                .finish(&id, &tenant, level, wal, replaces)
                .map_err(block::io_error)
        })
        .await
        .map_err(block::io_error)??;
        let merged = self.upload(&block_id, built).await?;
        {
            let _guard = self.maintenance.lock().await;
            let mut sources = self.sources.write();
            sources
                .blocks
                .retain(|b| !inputs.iter().any(|i| Arc::ptr_eq(i, b)));
            // A re-listing may have found the merged block already.
            if !sources.blocks.iter().any(|b| b.id() == merged.id()) {
                sources.blocks.push(merged.clone());
            }
        }
        self.update_block_gauges();
        for input in &inputs {
            crate::wait_for_readers(input).await;
            self.storage
                .delete_block(&self.tenant, input.id())
                .await
                .map_err(block::io_error)?;
        }
        self.metrics.compactions.inc();
        self.update_block_gauges();
        tracing::info!(
            block = %merged.id(),
            inputs = inputs.len(),
            spans = merged.meta.span_count,
            bytes = merged.meta.data_bytes,
            level,
            seconds = started.elapsed().as_secs_f64(),
            "compacted blocks"
        );
        Ok(true)
    }
}
