//! Blocks: immutable Parquet files of spans (one row per span, sorted by trace id then start time),
//! each with a trace-id index and a meta beside it. docs/format.md gives every byte and column.
//!
//! - [`write::BlockWriter`] writes a block from traces in order: [`logged::LoggedSpans`] puts a cut's
//!   log records in order, [`merge`] the blocks being compacted;
//! - [`Block`] opens one from the object store and is a [`SpanSource`](crate::SpanSource).

mod caches;
mod columns;
mod encoding;
pub mod logged;
pub(crate) mod merge;
pub mod meta;
mod object_reader;
mod read;
pub mod schema;
mod source;
mod strings;
pub mod trace_index;
mod valueless;
pub mod write;

use std::io;
use std::sync::Arc;

use arrow_array::RecordBatch;
use futures::TryStreamExt;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::ParquetRecordBatchStream;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::schema::types::SchemaDescriptor;

use object_reader::ObjectReader;
use tokio::runtime::Handle;

use osprey_model::TraceId;

use crate::objects::{ObjectStorage, DATA_FILE, INDEX_FILE, META_FILE};
use caches::{Footer, IndexSlot};
pub use caches::{FooterCache, TraceIndexCache};
use columns::{KeyStringReader, KeyValueReader};
pub use meta::BlockMeta;
use schema::{col, SCHEMA};
use strings::{Strings, DICTIONARY_SCHEMA};
use trace_index::TraceIndex;

/// A search's conditions on the span columns of one block, leaving out those that every row of the
/// block meets (a time range that holds the whole block, no duration bounds): their columns are then
/// not read at all, so a search by service alone decodes one dictionary-encoded column.
struct SpanConditions {
    service: Option<String>,
    operation: Option<String>,
    start: Option<(u64, u64)>,
    duration: Option<(u64, u64)>,
}

impl SpanConditions {
    fn new(query: &crate::TraceQuery, meta: &BlockMeta) -> SpanConditions {
        let (start, end) = query.start_range();
        // Every span of the block starts within [meta.start, meta.end].
        let holds_block = start <= meta.start_unix_nano && meta.end_unix_nano <= end;
        let duration = query.duration_range();
        SpanConditions {
            service: query.service.clone(),
            operation: query.operation.clone(),
            start: (!holds_block).then_some((start, end)),
            duration: (duration != (0, u64::MAX)).then_some(duration),
        }
    }

    /// The columns the conditions read; none when every row meets them.
    fn columns(&self) -> Vec<&'static str> {
        [
            (self.service.is_some(), col::SERVICE_NAME),
            (self.operation.is_some(), col::NAME),
            (self.start.is_some(), col::START),
            (self.duration.is_some(), col::DURATION),
        ]
        .into_iter()
        .filter_map(|(wanted, column)| wanted.then_some(column))
        .collect()
    }

    /// Which rows of a batch (of [`Self::columns`]) meet the conditions.
    fn rows(&self, batch: &RecordBatch) -> arrow_array::BooleanArray {
        use arrow_array::cast::AsArray;
        use arrow_array::types::UInt64Type;
        let column = |name: &str| batch.column_by_name(name).expect("projected");
        let service = self
            .service
            .as_deref()
            .map(|s| Strings::new(column(col::SERVICE_NAME)).equal_to(s));
        let operation = self
            .operation
            .as_deref()
            .map(|o| Strings::new(column(col::NAME)).equal_to(o));
        let starts = self
            .start
            .map(|range| (column(col::START).as_primitive::<UInt64Type>(), range));
        let durations = self
            .duration
            .map(|range| (column(col::DURATION).as_primitive::<UInt64Type>(), range));
        let within = |(values, (min, max)): &(&arrow_array::UInt64Array, (u64, u64)), row| {
            (*min..=*max).contains(&values.value(row))
        };
        let rows = arrow_buffer::BooleanBuffer::collect_bool(batch.num_rows(), |row| {
            service.as_ref().is_none_or(|s| s.at(row))
                && operation.as_ref().is_none_or(|o| o.at(row))
                && starts.as_ref().is_none_or(|s| within(s, row))
                && durations.as_ref().is_none_or(|d| within(d, row))
        });
        arrow_array::BooleanArray::new(rows, None)
    }
}

/// The leaves of `columns` a search reads first: all of a dedicated column, and only the `key`,
/// `value_type` and `string` leaves of a key/value list ([`columns::KeyStringReader`]).
fn key_string_leaves(schema: &SchemaDescriptor, columns: &[String]) -> ProjectionMask {
    let leaves = (0..schema.num_columns()).filter(|&i| {
        let path = schema.column(i).path().parts().to_vec();
        columns.contains(&path[0])
            && (path.len() == 1
                || ["key", "value_type", "string"].contains(&path[path.len() - 1].as_str()))
    });
    ProjectionMask::leaves(schema, leaves)
}

/// The rows of the pages of `groups` (in that order) whose trace-id range holds one of `ids`
/// (sorted), by the page index: rows are sorted by trace id, so a trace lies in one or two pages of
/// each column, and a lookup decodes those instead of every page of the row group. `None` without
/// a page index.
fn pages_of_traces(
    metadata: &ParquetMetaData,
    groups: &[usize],
    ids: &[TraceId],
) -> Option<RowSelection> {
    let page_index = metadata.page_index()?;
    let mut selectors = Vec::new();
    for &group in groups {
        let ColumnIndexMetaData::BYTE_ARRAY(page_ids) = page_index.column_index(group, 0)? else {
            return None;
        };
        let pages = page_index.offset_index(group, 0)?.page_locations();
        let rows = metadata.row_group(group).num_rows() as usize;
        for (page, location) in pages.iter().enumerate() {
            let first = location.first_row_index as usize;
            let end = pages
                .get(page + 1)
                .map_or(rows, |next| next.first_row_index as usize);
            let holds = match (page_ids.min_value(page), page_ids.max_value(page)) {
                (Some(min), Some(max)) => {
                    // The first wanted id at or above the page's smallest.
                    let at = ids.partition_point(|id| &id.0[..] < min);
                    ids.get(at).is_some_and(|id| &id.0[..] <= max)
                }
                _ => false,
            };
            selectors.push(if holds {
                RowSelector::select(end - first)
            } else {
                RowSelector::skip(end - first)
            });
        }
    }
    Some(RowSelection::from(selectors))
}

/// Cores to decode on, asked once: on Linux the answer reads cgroup files, too slow for every read.
static CORES: std::sync::LazyLock<usize> =
    std::sync::LazyLock::new(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

/// `read` split into one read a core, each of its share of `groups` (in order).
fn shares<'a>(read: &Read<'a>, groups: &[usize]) -> Vec<Read<'a>> {
    groups
        .chunks(groups.len().div_ceil(*CORES).max(1))
        .map(|chunk| Read {
            row_groups: Some(chunk.to_vec()),
            ..read.clone()
        })
        .collect()
}

pub(crate) fn io_error(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A complete block, opened: its meta in memory; its trace-id index and Parquet footer (with the
/// page index) loaded on first use and kept within the store's budgets (`caches`).
pub struct Block {
    pub meta: BlockMeta,
    index: Arc<IndexSlot>,
    storage: Arc<ObjectStorage>,
    runtime: Handle,
}

/// What a read asks of a block's Parquet file.
#[derive(Default, Clone)]
struct Read<'a> {
    /// Top-level columns to read; `None` for all.
    columns: Option<&'a [&'a str]>,
    row_groups: Option<Vec<usize>>,
    /// Only the rows of these traces (sorted).
    traces: Option<Arc<[TraceId]>>,
    /// Only the spans that meet the query's service, operation, start and duration conditions
    /// (checked on those columns first; the others are then decoded for matching rows only).
    spans: Option<crate::TraceQuery>,
    /// Rows a batch at most (default: a row group's worth).
    batch_rows: Option<usize>,
    /// String columns as dictionaries (ids into each row group's distinct values): for searches
    /// and scans, which compare and count strings rather than hand them out.
    dictionaries: bool,
}

/// Runs a read of Parquet data to its end on `runtime`, from a thread that may block. The
/// parquet crate can panic on some damaged files (an out-of-range slice, found by fuzzing): that
/// is this read's error, not the query thread's end.
fn decoding<T>(
    runtime: &Handle,
    read: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runtime.block_on(read)))
        .unwrap_or_else(|_| {
            Err(io_error(
                "the Parquet decoder failed on damaged block data (it panicked)",
            ))
        })
}

/// A block's rows as a blocking iterator of batches, for a thread that may block.
pub(crate) struct Batches<'a> {
    /// `None` once the decoder failed: nothing more comes.
    stream: Option<ParquetRecordBatchStream<ObjectReader>>,
    runtime: &'a Handle,
}

impl Iterator for Batches<'_> {
    type Item = io::Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let stream = self.stream.as_mut()?;
        let next = decoding(self.runtime, async {
            stream.try_next().await.map_err(io_error)
        });
        if next.is_err() {
            self.stream = None;
        }
        next.transpose()
    }
}

impl Block {
    /// Opens block `id` of `tenant`; `Ok(None)` when it has no meta (incomplete, or being deleted).
    pub async fn open(
        storage: Arc<ObjectStorage>,
        tenant: &str,
        id: &str,
    ) -> io::Result<Option<Block>> {
        let file = |name| storage.block_file(tenant, id, name);
        let Some(meta) = storage
            .get_if_exists(&file(META_FILE))
            .await
            .map_err(io_error)?
        else {
            return Ok(None);
        };
        let meta: BlockMeta = serde_json::from_slice(&meta)
            .map_err(|e| io_error(format!("block {id}: meta.json: {e}")))?;
        if meta.block_id != id || meta.tenant != tenant {
            return Err(io_error(format!(
                "block {id} of tenant {tenant}: meta.json names block {} of tenant {}",
                meta.block_id, meta.tenant
            )));
        }
        if meta.format_version != meta::FORMAT_VERSION {
            return Err(io_error(format!(
                "block {id}: format version {} is not supported (this build reads {})",
                meta.format_version,
                meta::FORMAT_VERSION
            )));
        }
        // The trace-id index is read when a query first needs it.
        Ok(Some(Block {
            meta,
            index: Arc::default(),
            storage,
            runtime: Handle::current(),
        }))
    }

    /// A block just written, from what was uploaded (no need to read it back).
    pub fn from_parts(meta: BlockMeta, index: TraceIndex, storage: Arc<ObjectStorage>) -> Block {
        let slot = Arc::default();
        storage.trace_indexes.admit(&slot, Arc::new(index));
        Block {
            index: slot,
            meta,
            storage,
            runtime: Handle::current(),
        }
    }

    /// The trace-id index, read from the store unless it is in memory; `None` when it is gone (the
    /// block is being deleted by compaction or retention, which delete the meta first). From a
    /// thread that may block.
    fn trace_index(&self) -> io::Result<Option<Arc<TraceIndex>>> {
        if let Some(index) = self.storage.trace_indexes.get(&self.index) {
            return Ok(Some(index));
        }
        if self.index.is_gone() {
            return Ok(None);
        }
        let path = self
            .storage
            .block_file(&self.meta.tenant, &self.meta.block_id, INDEX_FILE);
        let Some(bytes) = self
            .runtime
            .block_on(self.storage.get_if_exists(&path))
            .map_err(io_error)?
        else {
            // Asked again for every trace of a scan otherwise: it will not come back.
            self.index.mark_gone();
            return Ok(None);
        };
        let index = Arc::new(
            TraceIndex::decode(&bytes)
                .map_err(|e| io_error(format!("block {}: {e}", self.id())))?,
        );
        self.storage.trace_indexes.admit(&self.index, index.clone());
        Ok(Some(index))
    }

    pub fn id(&self) -> &str {
        &self.meta.block_id
    }

    fn data_reader(&self) -> ObjectReader {
        ObjectReader {
            store: self.storage.store(),
            path: self
                .storage
                .block_file(&self.meta.tenant, &self.meta.block_id, DATA_FILE),
            size: self.meta.data_bytes,
            requests: self.storage.requests.clone(),
            bytes_read: self.storage.parquet_bytes_read.clone(),
        }
    }

    async fn reader_metadata(&self) -> io::Result<Footer> {
        let key = (self.meta.tenant.clone(), self.meta.block_id.clone());
        if let Some(m) = self.storage.footers.get(&key) {
            return Ok(m);
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let plain = ArrowReaderMetadata::load_async(&mut self.data_reader(), options)
            .await
            .map_err(io_error)?;
        // Readers take each column as the type the block schema gives it: a footer whose schema
        // says otherwise (damage, found by fuzzing) is refused here rather than panicking there.
        let file_schema = plain.schema();
        let mismatched = schema::SCHEMA.fields().iter().find(|expected| {
            file_schema
                .field_with_name(expected.name())
                .map_or(true, |found| found.data_type() != expected.data_type())
        });
        if let Some(field) = mismatched {
            return Err(io_error(format!(
                "block {} is damaged: its column {} is missing or not of the block format's type",
                self.meta.block_id,
                field.name()
            )));
        }
        // A damaged footer can claim any number of rows, and decoding them all takes as long as it
        // claims (minutes, found by fuzzing): rows must add up to the spans meta.json counts.
        let file = plain.metadata();
        let groups: i64 = file.row_groups().iter().map(|g| g.num_rows()).sum();
        let rows = file.file_metadata().num_rows();
        if rows != groups || u64::try_from(rows).ok() != Some(self.meta.span_count) {
            return Err(io_error(format!(
                "block {} is damaged: its Parquet footer counts {rows} rows ({groups} in its row \
                 groups), its meta.json {} spans",
                self.meta.block_id, self.meta.span_count
            )));
        }
        // Made once per footer read: it converts and checks the whole schema. Should a file not
        // take it, searches read plain strings ([`Strings`] reads both) rather than fail.
        let options = ArrowReaderOptions::new().with_schema(DICTIONARY_SCHEMA.clone());
        let dictionaries = ArrowReaderMetadata::try_new(plain.metadata().clone(), options)
            .unwrap_or_else(|e| {
                tracing::warn!(block = %self.meta.block_id, error = %e,
                    "strings of this block are read plain");
                plain.clone()
            });
        let footer = Footer {
            plain,
            dictionaries,
        };
        self.storage.footers.insert(key, footer.clone());
        Ok(footer)
    }

    async fn read_async(&self, read: Read<'_>) -> io::Result<Vec<RecordBatch>> {
        // Rows of traces as OTLP: columns with no value in their row groups are not read but put
        // back (as every column the block has).
        let with_values = match (&read.traces, &read.row_groups) {
            (Some(_), Some(groups)) if !read.dictionaries => {
                let footer = self.reader_metadata().await?;
                valueless::columns_with_values(footer.plain.metadata(), groups, read.columns)
            }
            _ => None,
        };
        let read = match &with_values {
            Some(columns) => Read {
                columns: Some(columns.as_slice()),
                ..read
            },
            None => read,
        };
        let batches: Vec<RecordBatch> = self
            .stream(read)
            .await?
            .try_collect()
            .await
            .map_err(io_error)?;
        if with_values.is_none() {
            return Ok(batches);
        }
        batches
            .into_iter()
            .map(|b| valueless::with_every_column(b).map_err(io_error))
            .collect()
    }

    async fn stream(&self, read: Read<'_>) -> io::Result<ParquetRecordBatchStream<ObjectReader>> {
        let footer = self.reader_metadata().await?;
        let metadata = if read.dictionaries {
            footer.dictionaries
        } else {
            footer.plain
        };
        let parquet_schema = metadata.metadata().file_metadata().schema_descr_ptr();
        // By default a batch holds a whole row group (they end on trace boundaries, past
        // ROW_GROUP_ROWS when the last trace runs on), so no trace reaches a caller in two pieces.
        let largest_group = metadata
            .metadata()
            .row_groups()
            .iter()
            .map(|g| g.num_rows() as usize)
            .max()
            .unwrap_or(1);
        let mut builder =
            ParquetRecordBatchStreamBuilder::new_with_metadata(self.data_reader(), metadata)
                .with_batch_size(read.batch_rows.unwrap_or(largest_group.max(1)));
        if let Some(columns) = read.columns {
            let roots = columns
                .iter()
                .map(|c| SCHEMA.index_of(c).map_err(io_error))
                .collect::<io::Result<Vec<_>>>()?;
            builder = builder.with_projection(ProjectionMask::roots(&parquet_schema, roots));
        }
        if let Some(groups) = read.row_groups.clone() {
            if let Some(selection) = read
                .traces
                .as_ref()
                .and_then(|ids| pages_of_traces(builder.metadata(), &groups, ids))
            {
                builder = builder.with_row_selection(selection);
            }
            builder = builder.with_row_groups(groups);
        }
        if let Some(query) = read.spans {
            let mut predicates: Vec<Box<dyn parquet::arrow::arrow_reader::ArrowPredicate>> =
                Vec::new();
            let conditions = SpanConditions::new(&query, &self.meta);
            let columns = conditions.columns();
            if !columns.is_empty() {
                let roots = columns
                    .iter()
                    .map(|c| SCHEMA.index_of(c).map_err(io_error))
                    .collect::<io::Result<Vec<_>>>()?;
                predicates.push(Box::new(ArrowPredicateFn::new(
                    ProjectionMask::roots(&parquet_schema, roots),
                    move |batch: RecordBatch| Ok(conditions.rows(&batch)),
                )));
            }
            if !query.attributes.is_empty() {
                let columns = source::attribute_columns(&query.attributes);
                let roots = columns
                    .iter()
                    .map(|c| SCHEMA.index_of(c).map_err(io_error))
                    .collect::<io::Result<Vec<_>>>()?;
                // First the rows that may match, from the keys and string values of the lists
                // (and the dedicated columns); then, on those rows only, every leaf.
                let wanted = query.attributes.clone();
                predicates.push(Box::new(ArrowPredicateFn::new(
                    key_string_leaves(&parquet_schema, &columns),
                    move |batch: RecordBatch| {
                        Ok(source::attribute_conditions::<KeyStringReader>(
                            &batch, &wanted,
                        ))
                    },
                )));
                // Only where a value of another type may match too: those (int, double, bool,
                // bytes) are rare, and the row groups' statistics say where there are none.
                let groups = read.row_groups.as_deref();
                if !valueless::only_strings(builder.metadata(), groups, &columns) {
                    let wanted = query.attributes.clone();
                    predicates.push(Box::new(ArrowPredicateFn::new(
                        ProjectionMask::roots(&parquet_schema, roots),
                        move |batch: RecordBatch| {
                            Ok(source::attribute_conditions::<KeyValueReader>(
                                &batch, &wanted,
                            ))
                        },
                    )));
                }
            }
            if !predicates.is_empty() {
                builder = builder.with_row_filter(RowFilter::new(predicates));
            }
        }
        if let Some(traces) = read.traces {
            let id_column = SCHEMA.index_of(col::TRACE_ID).map_err(io_error)?;
            let predicate = ArrowPredicateFn::new(
                ProjectionMask::roots(&parquet_schema, [id_column]),
                move |batch: RecordBatch| {
                    use arrow_array::cast::AsArray;
                    let ids = batch.column(0).as_binary::<i32>();
                    Ok(ids
                        .iter()
                        .map(|id| {
                            Some(id.is_some_and(|id| {
                                traces.binary_search_by(|t| t.0[..].cmp(id)).is_ok()
                            }))
                        })
                        .collect())
                },
            );
            builder = builder.with_row_filter(RowFilter::new(vec![Box::new(predicate)]));
        }
        builder.build().map_err(io_error)
    }

    /// Every row of `row_groups` (all: `None`, for compaction), of `columns` (all: `None`), in
    /// order, `rows` at a time, from a thread that may block.
    pub(crate) fn batches(
        &self,
        row_groups: Option<Vec<usize>>,
        columns: Option<&[&str]>,
        rows: usize,
    ) -> io::Result<Batches<'_>> {
        let stream = decoding(
            &self.runtime,
            self.stream(Read {
                row_groups,
                columns,
                batch_rows: Some(rows),
                ..Default::default()
            }),
        )?;
        Ok(Batches {
            stream: Some(stream),
            runtime: &self.runtime,
        })
    }

    /// Hands the batches of `read` to `f` as they are decoded, from a thread that may block: the
    /// row groups split among the cores, each share decoded in order on a thread of its own, while
    /// this thread runs `f` (in no set order between shares). Decoding the next batches overlaps
    /// with what `f` does with the last, and only a few batches are held at once, not the block.
    fn each_batch(
        &self,
        read: Read<'_>,
        f: &mut dyn FnMut(RecordBatch) -> io::Result<()>,
    ) -> io::Result<()> {
        let groups = match &read.row_groups {
            Some(groups) => groups.clone(),
            None => (0..decoding(&self.runtime, self.reader_metadata())?
                .plain
                .metadata()
                .num_row_groups())
                .collect(),
        };
        if groups.is_empty() {
            return Ok(());
        }
        let cores = *CORES;
        std::thread::scope(|scope| {
            let (sender, batches) = std::sync::mpsc::sync_channel::<io::Result<RecordBatch>>(cores);
            let mut decoders = Vec::new();
            for part in shares(&read, &groups) {
                let sender = sender.clone();
                decoders.push(scope.spawn(move || {
                    let stream = match decoding(&self.runtime, self.stream(part)) {
                        Ok(stream) => stream,
                        Err(e) => return drop(sender.send(Err(e))),
                    };
                    let batches = Batches {
                        stream: Some(stream),
                        runtime: &self.runtime,
                    };
                    for batch in batches {
                        // The receiver is gone when `f` failed: stop decoding.
                        if sender.send(batch).is_err() {
                            return;
                        }
                    }
                }));
            }
            drop(sender);
            let consumed = batches.into_iter().try_for_each(|batch| f(batch?));
            // Every share's thread ends once the receiver is gone (dropped by `try_for_each`),
            // whatever happened; a panic in one is this read's error, as in `read`.
            for decoder in decoders {
                decoder
                    .join()
                    .map_err(|_| io_error("reading a block's row groups panicked"))?;
            }
            consumed
        })
    }

    /// Reads from a thread that may block (the query engine's), on the runtime that opened the block.
    /// Several row groups are read and decoded on several threads at once (a row group per core's
    /// share, in order), since decoding, not fetching, is what a local read waits for.
    fn read(&self, read: Read<'_>) -> io::Result<Vec<RecordBatch>> {
        let cores = *CORES;
        let groups = match &read.row_groups {
            Some(groups) if groups.len() > 1 && cores > 1 => groups.clone(),
            _ => return decoding(&self.runtime, self.read_async(read)),
        };
        std::thread::scope(|scope| {
            let parts: Vec<_> = shares(&read, &groups)
                .into_iter()
                .map(|part| scope.spawn(move || decoding(&self.runtime, self.read_async(part))))
                .collect();
            let mut batches = Vec::new();
            for part in parts {
                batches.extend(
                    part.join()
                        .map_err(|_| io_error("reading a block's row groups panicked"))??,
                );
            }
            Ok(batches)
        })
    }
}
