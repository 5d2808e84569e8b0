//! Cutting: the maintenance loop, and turning closed head generations into blocks.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::block::logged::LoggedSpans;
use crate::block::meta::WalSource;
use crate::block::write::BlockWriter;
use crate::block::{self, Block};
use crate::objects::{DATA_FILE, INDEX_FILE, META_FILE};
use crate::{new_block_id, wait_for_readers, wal, Generation, Head, Store};

impl Store {
    /// Runs cutting, compaction, retention and block re-listing until the process ends.
    pub async fn run_maintenance(self: Arc<Self>) {
        // Compaction takes seconds; it runs beside cutting, which must keep up with ingest.
        let compactor = self.clone();
        tokio::spawn(async move {
            loop {
                match compactor.compact_once().await {
                    Ok(true) => {}
                    Ok(false) => tokio::time::sleep(Duration::from_secs(5)).await,
                    Err(e) => {
                        tracing::error!(error = %e, "compacting blocks failed; will retry");
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                }
            }
        });
        let mut last_listing = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Err(e) = self.cut_if_due().await {
                tracing::error!(error = %e, "cutting the head into a block failed; will retry");
            }
            // Cheap: it looks at the metas in memory and touches the store only for expired blocks.
            if let Err(e) = self.apply_retention().await {
                tracing::error!(error = %e, "applying retention failed; will retry");
            }
            if last_listing.elapsed() >= self.options.block_list_interval {
                last_listing = Instant::now();
                if let Err(e) = self.reload_blocks().await {
                    tracing::warn!(error = %e, "re-reading the block list failed");
                }
            }
        }
    }

    /// Cuts the active generation if it is old or large enough, then writes every closed generation
    /// into a block.
    pub async fn cut_if_due(&self) -> io::Result<()> {
        let (spans, full, old) = {
            let active = self.active_generation();
            let head = active.head();
            (
                head.span_count(),
                head.record_bytes() >= self.options.max_block_bytes,
                active.created.elapsed() >= self.options.max_block_duration,
            )
        };
        if full || old {
            // Ingest is busy while generations fill up before they age; quiet again when one ages
            // (with spans or without).
            let busy = if full { spans } else { 0 };
            self.full_cut_spans
                .store(busy, std::sync::atomic::Ordering::Relaxed);
        }
        if spans > 0 && (full || old) {
            self.close_active().await?;
        }
        self.flush_closed().await
    }

    /// Cuts now, whatever the size: every span in the head goes into blocks (for tests and shutdown).
    pub async fn flush(&self) -> io::Result<()> {
        if self.active_generation().head().span_count() > 0 {
            self.close_active().await?;
        }
        self.flush_closed().await
    }

    fn active_generation(&self) -> Arc<Generation> {
        self.sources
            .read()
            .generations
            .last()
            .expect("there is always an active generation")
            .clone()
    }

    /// Rotates the log and starts a new active generation; the old one is closed (no more appends).
    async fn close_active(&self) -> io::Result<()> {
        let _guard = self.maintenance.lock().await;
        let _rotation = self.rotation.write().await;
        let next = self.wal.rotate().await?;
        let generation = Arc::new(Generation::new(next, Head::default(), self.wal.clone()));
        self.sources.write().generations.push(generation);
        Ok(())
    }

    /// Writes each closed generation into a block, oldest first, and releases it.
    async fn flush_closed(&self) -> io::Result<()> {
        loop {
            let _guard = self.maintenance.lock().await;
            let (closed, end_segment) = {
                let sources = self.sources.read();
                if sources.generations.len() < 2 {
                    return Ok(());
                }
                (
                    sources.generations[0].clone(),
                    sources.generations[1].first_segment,
                )
            };
            self.write_block(&closed, end_segment).await?;
        }
    }

    async fn write_block(&self, closed: &Arc<Generation>, end_segment: u64) -> io::Result<()> {
        let started = Instant::now();
        let first = closed.first_segment;
        let last = end_segment - 1;
        let block_id = new_block_id();
        let source = WalSource {
            node: self.node.clone(),
            first_segment: first,
            last_segment: last,
        };
        let (dir, tenant, id) = (
            self.wal.dir().to_path_buf(),
            self.tenant.clone(),
            block_id.clone(),
        );
        let built = tokio::task::spawn_blocking(move || -> io::Result<_> {
            let mut spans = LoggedSpans::default();
            wal::read_segments(&dir, first, last, |_, payload| {
                spans.push_record(Bytes::from(payload));
            })?;
            if spans.span_count() == 0 {
                return Ok(None);
            }
            let mut writer = BlockWriter::new().map_err(block::io_error)?;
            spans.write(&mut writer).map_err(block::io_error)?;
            // Every span failed to decode (damage): no block, as for an empty generation.
            if writer.span_count() == 0 {
                return Ok(None);
            }
            writer
                .finish(&id, &tenant, 0, vec![source], Vec::new())
                .map(Some)
                .map_err(block::io_error)
        })
        .await
        .map_err(block::io_error)??;

        let block = match built {
            Some(built) => Some(self.upload(&block_id, built).await?),
            None => None,
        };
        let (spans, traces) = {
            let head = closed.head();
            (head.span_count(), head.trace_count())
        };
        {
            let mut sources = self.sources.write();
            if let Some(block) = &block {
                sources.blocks.push(block.clone());
            }
            sources.generations.retain(|g| !Arc::ptr_eq(g, closed));
        }
        self.gauges.head_spans.dec_by(spans as i64);
        self.gauges.head_traces.dec_by(traces as i64);
        // Queries that took the generation before the swap may still read its segments.
        wait_for_readers(closed).await;
        self.wal.remove_segments(first, end_segment)?;
        self.metrics.cuts.inc();
        self.update_block_gauges();
        if let Some(block) = block {
            tracing::info!(
                block = %block.id(),
                spans = block.meta.span_count,
                traces = block.meta.trace_count,
                bytes = block.meta.data_bytes,
                segments = format!("{first}..={last}"),
                seconds = started.elapsed().as_secs_f64(),
                "cut a block from the head"
            );
        }
        Ok(())
    }

    /// Writes a built block to the store, meta last (from then on it is complete and durable).
    pub(crate) async fn upload(
        &self,
        block_id: &str,
        built: block::write::BuiltBlock,
    ) -> io::Result<Arc<Block>> {
        let path = |file| self.storage.block_file(&self.tenant, block_id, file);
        self.storage
            .put(&path(DATA_FILE), built.data)
            .await
            .map_err(block::io_error)?;
        self.storage
            .put(&path(INDEX_FILE), built.index)
            .await
            .map_err(block::io_error)?;
        let meta = serde_json::to_vec_pretty(&built.meta).map_err(block::io_error)?;
        self.storage
            .put(&path(META_FILE), meta)
            .await
            .map_err(block::io_error)?;
        Ok(Arc::new(Block::from_parts(
            built.meta,
            built.trace_index,
            self.storage.clone(),
        )))
    }
}
