//! What blocks keep in memory between queries, each within a fixed budget so that memory does not
//! grow with weeks of blocks: Parquet footers (with their page indexes) and trace-id indexes. Both
//! are loaded on first use and dropped least recently used first; a block's meta is all that stays.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, RwLock};
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::trace_index::TraceIndex;

/// Memory for Parquet footers: about 2 MiB for a block of a million spans (a column chunk's metadata
/// for each of the 106 leaf columns in each row group, and the offset index: an entry per page of
/// every column), so those of about a hundred and twenty such blocks.
pub const FOOTER_BUDGET: usize = 256 << 20;
/// Memory for trace-id indexes: 2.5 to 5 bytes a trace, so some 50 to 100 million traces.
pub const TRACE_INDEX_BUDGET: usize = 256 << 20;

/// A block's Parquet footer, ready for both ways of reading it (they share the footer itself).
#[derive(Clone)]
pub(crate) struct Footer {
    /// Columns as the block's schema gives them.
    pub plain: ArrowReaderMetadata,
    /// String columns as dictionaries ([`super::strings::DICTIONARY_SCHEMA`]).
    pub dictionaries: ArrowReaderMetadata,
}

/// A footer kept: its (tenant, block), the footer, and its size in memory.
type Entry = ((String, String), Footer, usize);

/// Parquet footers by (tenant, block), most recently used last.
#[derive(Default)]
pub struct FooterCache {
    entries: Mutex<VecDeque<Entry>>,
}

impl FooterCache {
    pub(crate) fn get(&self, key: &(String, String)) -> Option<Footer> {
        let mut entries = self.entries.lock();
        let at = entries.iter().position(|(k, _, _)| k == key)?;
        let entry = entries.remove(at)?;
        let metadata = entry.1.clone();
        entries.push_back(entry);
        Some(metadata)
    }

    pub(crate) fn insert(&self, key: (String, String), metadata: Footer) {
        let bytes = metadata.plain.metadata().memory_size();
        let mut entries = self.entries.lock();
        entries.retain(|(k, _, _)| *k != key);
        entries.push_back((key, metadata, bytes));
        let mut total: usize = entries.iter().map(|e| e.2).sum();
        // The footer just read stays, even alone over the budget: the query needs it now.
        while total > FOOTER_BUDGET && entries.len() > 1 {
            total -= entries.pop_front().map_or(0, |e| e.2);
        }
    }
}

/// Where a block's trace-id index is when it is loaded.
#[derive(Default)]
pub struct IndexSlot {
    index: RwLock<Option<Arc<TraceIndex>>>,
    last_used: AtomicU64,
    /// The index file is gone (the block is being deleted): not asked for again.
    gone: AtomicBool,
}

impl IndexSlot {
    pub(crate) fn is_gone(&self) -> bool {
        self.gone.load(Ordering::Relaxed)
    }

    pub(crate) fn mark_gone(&self) {
        self.gone.store(true, Ordering::Relaxed);
    }
}

/// The trace-id indexes loaded, within a budget ([`TRACE_INDEX_BUDGET`] by default).
pub struct TraceIndexCache {
    budget: usize,
    clock: AtomicU64,
    loaded: Mutex<Vec<(Weak<IndexSlot>, usize)>>,
}

impl Default for TraceIndexCache {
    fn default() -> Self {
        TraceIndexCache::with_budget(TRACE_INDEX_BUDGET)
    }
}

impl TraceIndexCache {
    pub fn with_budget(budget: usize) -> TraceIndexCache {
        TraceIndexCache {
            budget,
            clock: AtomicU64::new(0),
            loaded: Mutex::new(Vec::new()),
        }
    }

    /// The slot's index if it is loaded (and marks it used).
    pub(crate) fn get(&self, slot: &IndexSlot) -> Option<Arc<TraceIndex>> {
        let index = slot.index.read().clone()?;
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        Some(index)
    }

    /// Puts a loaded index in its slot, dropping the least recently used others over the budget.
    pub(crate) fn admit(&self, slot: &Arc<IndexSlot>, index: Arc<TraceIndex>) {
        let bytes = index.memory_bytes();
        *slot.index.write() = Some(index);
        slot.last_used.store(
            self.clock.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
        let mut loaded = self.loaded.lock();
        // Blocks that are gone took their index with them; a slot loaded twice counts once.
        loaded.retain(|(weak, _)| weak.strong_count() > 0 && !std::ptr::eq(weak.as_ptr(), &**slot));
        loaded.push((Arc::downgrade(slot), bytes));
        let mut total: usize = loaded.iter().map(|e| e.1).sum();
        while total > self.budget && loaded.len() > 1 {
            let oldest = loaded[..loaded.len() - 1]
                .iter()
                .enumerate()
                .min_by_key(|(_, (weak, _))| {
                    weak.upgrade()
                        .map_or(0, |s| s.last_used.load(Ordering::Relaxed))
                })
                .map(|(at, _)| at)
                .expect("more than one loaded");
            let (weak, bytes) = loaded.remove(oldest);
            if let Some(evicted) = weak.upgrade() {
                *evicted.index.write() = None;
            }
            total -= bytes;
        }
    }

    /// Bytes of the indexes loaded now.
    #[cfg(test)]
    fn loaded_bytes(&self) -> usize {
        let loaded = self.loaded.lock();
        loaded
            .iter()
            .filter(|(weak, _)| weak.strong_count() > 0)
            .map(|e| e.1)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::trace_index::RowGroupRange;
    use osprey_model::TraceId;

    fn index(traces: usize) -> Arc<TraceIndex> {
        let ids: Vec<TraceId> = (0..traces as u128)
            .map(|n| TraceId(n.to_be_bytes()))
            .collect();
        let range = RowGroupRange {
            min: ids[0],
            max: ids[ids.len() - 1],
            first_row: 0,
            rows: ids.len() as u64,
        };
        Arc::new(TraceIndex::new(vec![range], &ids))
    }

    #[test]
    fn the_least_recently_used_index_goes_when_the_budget_is_passed() {
        // Room for three: the fourth pushes out the least recently used.
        let one = index(2000).memory_bytes();
        let cache = TraceIndexCache::with_budget(one * 3 + one / 2);
        let slots: Vec<Arc<IndexSlot>> = (0..4).map(|_| Arc::default()).collect();
        for slot in &slots[..3] {
            cache.admit(slot, index(2000));
        }
        assert!(
            cache.get(&slots[0]).is_some(),
            "slot 0 is now the most recent"
        );
        cache.admit(&slots[3], index(2000));
        assert!(
            cache.get(&slots[1]).is_none(),
            "slot 1 was used least recently"
        );
        for slot in [&slots[0], &slots[2], &slots[3]] {
            assert!(cache.get(slot).is_some());
        }
        assert!(cache.loaded_bytes() <= one * 3 + one / 2);
        drop(slots);
        assert_eq!(cache.loaded_bytes(), 0, "dropped blocks free their index");
    }
}
