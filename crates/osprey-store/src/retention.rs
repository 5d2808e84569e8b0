//! Retention and re-listing: the block list changing under a running server.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::block::{self, Block};
use crate::objects::ObjectStorage;
use crate::{now_ns, wait_for_readers, without_replaced, Store};

/// A block is past retention once its newest span ended, and it was written, before `horizon`: so
/// spans received today with old timestamps (a backfill, a replay) are kept for the whole period.
fn past_retention(block: &Block, horizon: u64) -> bool {
    block.meta.end_unix_nano.max(block.meta.created_unix_nano) < horizon
}

/// A block directory without `meta.json` whose last write is this old belongs to a cut or a
/// compaction that died mid-way (a kill during the upload): nothing will finish it. Far longer
/// than any upload takes, so another server's block being written now is never taken for one.
pub const ABANDONED_AFTER: Duration = Duration::from_secs(3600);

/// Deletes those of the incomplete block directories `ids` (no `meta.json`) last written longer
/// than `after` ago; returns the ones deleted. Failures are logged: the next listing tries again.
pub async fn remove_abandoned_blocks(
    storage: &ObjectStorage,
    tenant: &str,
    ids: &[String],
    after: Duration,
) -> Vec<String> {
    let mut removed = Vec::new();
    for id in ids {
        let abandoned = match storage.last_write(tenant, id).await {
            Ok(Some(written)) => SystemTime::now()
                .duration_since(written)
                .is_ok_and(|age| age >= after),
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(tenant, block = %id, error = %e, "could not list an incomplete block");
                false
            }
        };
        if !abandoned {
            continue;
        }
        match storage.delete_block(tenant, id).await {
            Ok(()) => {
                tracing::info!(tenant, block = %id, "deleted an abandoned incomplete block (a cut or compaction that did not finish)");
                removed.push(id.clone());
            }
            Err(e) => {
                tracing::warn!(tenant, block = %id, error = %e, "could not delete an abandoned incomplete block")
            }
        }
    }
    removed
}

impl Store {
    /// Deletes blocks past the retention period (see [`past_retention`]).
    pub async fn apply_retention(&self) -> io::Result<()> {
        let horizon = now_ns().saturating_sub(self.options.retention.as_nanos() as u64);
        if !self
            .sources
            .read()
            .blocks
            .iter()
            .any(|b| past_retention(b, horizon))
        {
            return Ok(());
        }
        let expired: Vec<Arc<Block>> = {
            let _guard = self.maintenance.lock().await;
            let mut sources = self.sources.write();
            let (expired, kept) = sources
                .blocks
                .drain(..)
                .partition(|b| past_retention(b, horizon));
            sources.blocks = kept;
            expired
        };
        self.update_block_gauges();
        for block in &expired {
            wait_for_readers(block).await;
            self.storage
                .delete_block(&self.tenant, block.id())
                .await
                .map_err(block::io_error)?;
            self.metrics.retention_deletions.inc();
            tracing::info!(block = %block.id(), "deleted a block past retention");
        }
        self.update_block_gauges();
        Ok(())
    }

    /// Reads the block list again: picks up blocks other servers wrote, drops ones deleted elsewhere.
    pub async fn reload_blocks(&self) -> io::Result<()> {
        let _guard = self.maintenance.lock().await;
        let ids = self
            .storage
            .list_blocks(&self.tenant)
            .await
            .map_err(block::io_error)?;
        let known: Vec<String> = self
            .sources
            .read()
            .blocks
            .iter()
            .map(|b| b.id().to_string())
            .collect();
        let mut added = Vec::new();
        let mut incomplete = Vec::new();
        for id in ids.iter().filter(|id| !known.contains(id)) {
            match Block::open(self.storage.clone(), &self.tenant, id).await {
                Ok(Some(block)) => added.push(Arc::new(block)),
                Ok(None) => incomplete.push(id.clone()),
                Err(e) => {
                    tracing::warn!(tenant = %self.tenant, block = %id, error = %e, "skipping a block that cannot be read")
                }
            }
        }
        {
            let mut sources = self.sources.write();
            sources.blocks.retain(|b| ids.iter().any(|id| id == b.id()));
            sources.blocks.extend(added);
            without_replaced(&mut sources.blocks);
        }
        self.update_block_gauges();
        remove_abandoned_blocks(&self.storage, &self.tenant, &incomplete, ABANDONED_AFTER).await;
        Ok(())
    }
}
