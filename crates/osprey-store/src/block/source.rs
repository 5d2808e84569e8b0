//! A block as a span source: prune by meta and by the trace-id index, then read only the columns and
//! row groups a question needs.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};

use osprey_model::derived_tags::{DerivedTag, SpanFields};
use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;

use super::columns::{
    dedicated_readers, DedicatedMatcher, DedicatedReader, EntryMatcher, KeyStringReader,
    KeyValueReader,
};
use super::read::RowReader;
use super::schema::{col, resource_column, span_column, RESOURCE_DEDICATED, SPAN_DEDICATED};
use super::strings::Strings;
use super::{Block, Read};
use crate::head::low_bits;
use crate::source::{overlaps, SpanParts, SpanRef, SpanSource, TraceHit, TraceQuery};

/// What summaries, the service graph and RED read.
const SPAN_REF_COLUMNS: &[&str] = &[
    col::TRACE_ID,
    col::SPAN_ID,
    col::PARENT_SPAN_ID,
    col::SERVICE_NAME,
    col::NAME,
    col::KIND,
    col::STATUS_CODE,
    col::START,
    col::DURATION,
    col::TRACE_START,
    col::TRACE_DURATION,
];

/// Rows a batch when searching.
const SEARCH_BATCH_ROWS: usize = 8 * 1024;

/// Rows a batch when handing out whole traces.
const TRACE_BATCH_ROWS: usize = 4 * 1024;

/// Candidate traces read at once when a prefilter picked them: the first read is small (a caller
/// wanting the newest 20 whose prefilter was exact needs no more, and each candidate costs the pages
/// of its rows), each next one twice the last, up to 256.
const FIRST_CANDIDATES_READ: usize = 24;
const MOST_CANDIDATES_READ: usize = 256;

/// OTLP's `STATUS_CODE_ERROR`.
const STATUS_ERROR: i32 = 2;

/// The span-reference columns of a batch.
struct SpanRefColumns<'a> {
    trace_id: &'a arrow_array::BinaryArray,
    span_id: &'a arrow_array::BinaryArray,
    parent: &'a arrow_array::BinaryArray,
    service: Strings<'a>,
    name: Strings<'a>,
    kind: &'a arrow_array::Int32Array,
    status: &'a arrow_array::Int32Array,
    start: &'a arrow_array::UInt64Array,
    duration: &'a arrow_array::UInt64Array,
    trace_start: &'a arrow_array::UInt64Array,
    trace_duration: &'a arrow_array::UInt64Array,
}

impl<'a> SpanRefColumns<'a> {
    fn new(batch: &'a RecordBatch) -> SpanRefColumns<'a> {
        let c = |name: &str| batch.column_by_name(name).expect(name);
        SpanRefColumns {
            trace_id: c(col::TRACE_ID).as_binary::<i32>(),
            span_id: c(col::SPAN_ID).as_binary::<i32>(),
            parent: c(col::PARENT_SPAN_ID).as_binary::<i32>(),
            service: Strings::new(c(col::SERVICE_NAME)),
            name: Strings::new(c(col::NAME)),
            kind: c(col::KIND).as_primitive::<Int32Type>(),
            status: c(col::STATUS_CODE).as_primitive::<Int32Type>(),
            start: c(col::START).as_primitive::<UInt64Type>(),
            duration: c(col::DURATION).as_primitive::<UInt64Type>(),
            trace_start: c(col::TRACE_START).as_primitive::<UInt64Type>(),
            trace_duration: c(col::TRACE_DURATION).as_primitive::<UInt64Type>(),
        }
    }

    fn span(&self, row: usize) -> SpanRef<'a> {
        let parent = self.parent.value(row);
        SpanRef {
            id_low: low_bits(self.span_id.value(row)),
            parent_low: low_bits(parent),
            service: self.service.value(row),
            name: self.name.value(row),
            kind: self.kind.value(row).clamp(0, 7) as u8,
            error: self.status.is_valid(row) && self.status.value(row) == STATUS_ERROR,
            root: parent.iter().all(|b| *b == 0),
            start_ns: self.start.value(row),
            duration_ns: self.duration.value(row),
        }
    }

    fn trace_id(&self, row: usize) -> TraceId {
        TraceId::from_bytes(self.trace_id.value(row)).unwrap_or(TraceId([0; 16]))
    }
}

/// The block's columns that hold `parts` of spans, and every other column but the costly ones
/// (attribute lists and dedicated columns, events, links).
fn columns_of(parts: SpanParts) -> Vec<&'static str> {
    let span_dedicated: Vec<String> = SPAN_DEDICATED.iter().map(|(k, _)| span_column(k)).collect();
    let resource_dedicated: Vec<String> = RESOURCE_DEDICATED
        .iter()
        .map(|(k, _)| resource_column(k))
        .collect();
    super::schema::SCHEMA
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .filter(|name| {
            let named = |list: &[String]| list.iter().any(|c| c == name);
            if *name == col::ATTRIBUTES || named(&span_dedicated) {
                parts.span_attributes
            } else if *name == col::RESOURCE_ENTITY_REFS || named(&resource_dedicated) {
                parts.resource_attributes
            } else if *name == col::EVENTS {
                parts.events
            } else if *name == col::LINKS {
                parts.links
            } else if *name == col::SCOPE_ATTRIBUTES {
                parts.scope_attributes
            } else {
                true
            }
        })
        .collect()
}

/// Calls `f` with each run of rows of one trace in `batches` whose trace overlaps `range`, as OTLP;
/// false from `f` stops. Returns whether it ran to the end.
fn each_trace(
    batches: &[RecordBatch],
    range: (u64, u64),
    f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
) -> io::Result<bool> {
    for batch in batches {
        // Columns left out of the read come back as nulls and empty lists.
        let batch = &super::valueless::with_every_column(batch.clone()).map_err(super::io_error)?;
        let rows = RowReader::new(batch);
        let column = |name: &str| batch.column_by_name(name).expect("every column is read");
        let ids = column(col::TRACE_ID).as_binary::<i32>();
        let trace_starts = column(col::TRACE_START).as_primitive::<UInt64Type>();
        let trace_durations = column(col::TRACE_DURATION).as_primitive::<UInt64Type>();
        let mut row = 0;
        while row < batch.num_rows() {
            let raw = ids.value(row);
            let run = (row..batch.num_rows())
                .take_while(|&r| ids.value(r) == raw)
                .count();
            let start = trace_starts.value(row);
            if overlaps((start, start + trace_durations.value(row)), range) {
                let id = TraceId::from_bytes(raw).unwrap_or(TraceId([0; 16]));
                if !f(&id, rows.resource_spans(row..row + run)) {
                    return Ok(false);
                }
            }
            row += run;
        }
    }
    Ok(true)
}

/// A key/value list column as a search reads it: the keys and string values only, finding the rows
/// that may hold an attribute, or whole, deciding.
pub(super) trait AttributeLists<'a> {
    fn read(column: &'a dyn arrow_array::Array) -> Self;
    fn matcher(&self, key: &'a str, text: &'a str) -> EntryMatcher<'a>;
    fn meets(&self, row: usize, condition: &EntryMatcher) -> bool;
}

impl<'a> AttributeLists<'a> for KeyStringReader<'a> {
    fn read(column: &'a dyn arrow_array::Array) -> Self {
        KeyStringReader::new(column)
    }
    fn matcher(&self, key: &'a str, text: &'a str) -> EntryMatcher<'a> {
        KeyStringReader::matcher(self, key, text)
    }
    fn meets(&self, row: usize, condition: &EntryMatcher) -> bool {
        self.may_match(row, condition)
    }
}

impl<'a> AttributeLists<'a> for KeyValueReader<'a> {
    fn read(column: &'a dyn arrow_array::Array) -> Self {
        KeyValueReader::new(column)
    }
    fn matcher(&self, key: &'a str, text: &'a str) -> EntryMatcher<'a> {
        KeyValueReader::matcher(self, key, text)
    }
    fn meets(&self, row: usize, condition: &EntryMatcher) -> bool {
        self.row_matches(row, condition)
    }
}

/// Which rows of a batch (holding the attribute lists, read as `L`, and any dedicated columns of
/// the wanted keys) have every wanted attribute, on the span or else on its resource.
pub(super) fn attribute_conditions<'a, L: AttributeLists<'a>>(
    batch: &'a RecordBatch,
    wanted: &'a [(String, String)],
) -> arrow_array::BooleanArray {
    let span_generic = L::read(batch.column_by_name(col::ATTRIBUTES).expect("projected"));
    let resource_generic = L::read(
        batch
            .column_by_name(col::RESOURCE_ATTRIBUTES)
            .expect("projected"),
    );
    let span_dedicated = dedicated_readers(batch, SPAN_DEDICATED, span_column);
    let resource_dedicated = dedicated_readers(batch, RESOURCE_DEDICATED, resource_column);
    // Each condition prepared once a batch (a dictionary's values compared once, not every row's).
    fn dedicated<'a>(
        readers: &[DedicatedReader<'a>],
        key: &str,
        value: &'a str,
    ) -> Option<DedicatedMatcher<'a>> {
        readers
            .iter()
            .find(|d| d.key() == key)
            .map(|d| d.matcher(value))
    }
    let span_fields = DerivedColumns::new(batch);
    let conditions: Vec<_> = wanted
        .iter()
        .map(|(key, value)| {
            (
                dedicated(&span_dedicated, key, value),
                span_generic.matcher(key, value),
                dedicated(&resource_dedicated, key, value),
                resource_generic.matcher(key, value),
                DerivedTag::of_key(key).map(|tag| (tag, value.as_str())),
            )
        })
        .collect();
    let rows = arrow_buffer::BooleanBuffer::collect_bool(batch.num_rows(), |row| {
        conditions
            .iter()
            .all(|(span_d, span_g, resource_d, resource_g, derived)| {
                span_d.as_ref().is_some_and(|d| d.at(row))
                    || span_generic.meets(row, span_g)
                    || resource_d.as_ref().is_some_and(|d| d.at(row))
                    || resource_generic.meets(row, resource_g)
                    || derived.is_some_and(|(tag, value)| {
                        span_fields
                            .as_ref()
                            .is_some_and(|f| tag.value(&f.at(row)) == Some(value))
                    })
            })
    });
    arrow_array::BooleanArray::new(rows, None)
}

/// The span columns the tags derived from a span's fields read (`span.kind`, `error`, …).
const DERIVED_TAG_COLUMNS: [&str; 6] = [
    col::KIND,
    col::STATUS_CODE,
    col::STATUS_MESSAGE,
    col::SCOPE_NAME,
    col::SCOPE_VERSION,
    col::TRACE_STATE,
];

/// A batch's [`DERIVED_TAG_COLUMNS`], when it holds them.
struct DerivedColumns<'a> {
    kind: &'a arrow_array::Int32Array,
    status_code: &'a arrow_array::Int32Array,
    status_message: Strings<'a>,
    scope_name: Strings<'a>,
    scope_version: Strings<'a>,
    trace_state: Strings<'a>,
}

impl<'a> DerivedColumns<'a> {
    fn new(batch: &'a RecordBatch) -> Option<DerivedColumns<'a>> {
        let column = |name: &str| batch.column_by_name(name);
        Some(DerivedColumns {
            kind: column(col::KIND)?.as_primitive::<Int32Type>(),
            status_code: column(col::STATUS_CODE)?.as_primitive::<Int32Type>(),
            status_message: Strings::new(column(col::STATUS_MESSAGE)?),
            scope_name: Strings::new(column(col::SCOPE_NAME)?),
            scope_version: Strings::new(column(col::SCOPE_VERSION)?),
            trace_state: Strings::new(column(col::TRACE_STATE)?),
        })
    }

    fn at(&self, row: usize) -> SpanFields<'a> {
        SpanFields {
            kind: self.kind.value(row),
            status_code: self
                .status_code
                .is_valid(row)
                .then(|| self.status_code.value(row)),
            status_message: self.status_message.value(row),
            scope_name: self.scope_name.value(row),
            scope_version: self.scope_version.value(row),
            trace_state: self.trace_state.value(row),
        }
    }
}

/// The columns an attribute search reads: the generic lists, the dedicated columns of the keys,
/// and the span columns of derived tags when one is wanted.
pub(super) fn attribute_columns(wanted: &[(String, String)]) -> Vec<String> {
    let mut columns = vec![
        col::ATTRIBUTES.to_string(),
        col::RESOURCE_ATTRIBUTES.to_string(),
    ];
    if wanted
        .iter()
        .any(|(key, _)| DerivedTag::of_key(key).is_some())
    {
        columns.extend(DERIVED_TAG_COLUMNS.iter().map(|c| c.to_string()));
    }
    for (key, _) in wanted {
        if SPAN_DEDICATED.iter().any(|(k, _)| k == key) {
            columns.push(span_column(key));
        }
        if RESOURCE_DEDICATED.iter().any(|(k, _)| k == key) {
            columns.push(resource_column(key));
        }
    }
    columns.sort();
    columns.dedup();
    columns
}

impl Block {
    /// The row groups that may hold trace `id`, by the trace-id index (none when its Bloom filter
    /// rules the trace out, or the index is gone).
    fn row_groups_of_trace(&self, id: &TraceId) -> io::Result<Vec<usize>> {
        Ok(self
            .trace_index()?
            .filter(|i| i.may_contain(id))
            .map_or_else(Vec::new, |i| i.row_groups_for(id)))
    }

    /// Row groups whose span start times can overlap `[start, end]`, from the footer's statistics.
    fn row_groups_starting_in(&self, start: u64, end: u64) -> io::Result<Vec<usize>> {
        self.row_groups_where(|range| range(col::START).is_none_or(|r| overlaps(r, (start, end))))
    }

    /// Row groups that can hold a span overlapping `[start, end]`: one starting by `end` and one
    /// ending from `start` on.
    fn row_groups_overlapping(&self, start: u64, end: u64) -> io::Result<Vec<usize>> {
        self.row_groups_where(|range| {
            range(col::START).is_none_or(|(first, _)| first <= end)
                && range(col::END).is_none_or(|(_, last)| last >= start)
        })
    }

    /// The row groups for which `keep` holds, given each column's (min, max) in the row group from
    /// the footer's statistics (`None`: unknown).
    fn row_groups_where(
        &self,
        keep: impl Fn(&dyn Fn(&str) -> Option<(u64, u64)>) -> bool,
    ) -> io::Result<Vec<usize>> {
        let footer = super::decoding(&self.runtime, self.reader_metadata())?;
        Ok(footer
            .plain
            .metadata()
            .row_groups()
            .iter()
            .enumerate()
            .filter(|(_, group)| {
                let range = |name: &str| {
                    group
                        .columns()
                        .iter()
                        .find(|c| c.column_path().string() == name)
                        .and_then(|c| c.statistics())
                        .and_then(|s| match s {
                            // Unsigned 64-bit values are stored as INT64; times fit in 63 bits.
                            parquet::file::statistics::Statistics::Int64(s) => {
                                Some((*s.min_opt()? as u64, *s.max_opt()? as u64))
                            }
                            _ => None,
                        })
                };
                keep(&range)
            })
            .map(|(i, _)| i)
            .collect())
    }

    /// The traces with a span meeting `query`, newest first, read a few at a time (the pages of
    /// their rows only): a caller that wants the newest few stops after reading those.
    fn candidate_traces(
        &self,
        start_ns: u64,
        end_ns: u64,
        query: &TraceQuery,
        columns: &[&str],
        f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
    ) -> io::Result<()> {
        let hits = self.search(&query.unbounded())?;
        let Some(index) = self.trace_index()? else {
            return Ok(());
        };
        let mut read = 0;
        let mut size = FIRST_CANDIDATES_READ;
        while read < hits.len() {
            let chunk = &hits[read..(read + size).min(hits.len())];
            read += chunk.len();
            size = (size * 2).min(MOST_CANDIDATES_READ);
            let mut ids: Vec<TraceId> = chunk.iter().map(|h| h.trace_id).collect();
            ids.sort_unstable();
            let groups: BTreeSet<usize> =
                ids.iter().flat_map(|id| index.row_groups_for(id)).collect();
            let batches = self.read(Read {
                columns: Some(columns),
                row_groups: Some(groups.into_iter().collect()),
                traces: Some(Arc::from(ids)),
                ..Default::default()
            })?;
            let mut found = HashMap::new();
            each_trace(&batches, (start_ns, end_ns), &mut |id, spans| {
                found.entry(*id).or_insert_with(Vec::new).extend(spans);
                true
            })?;
            for hit in chunk {
                if let Some(spans) = found.remove(&hit.trace_id) {
                    if !f(&hit.trace_id, spans) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    /// Every trace of the row groups that hold a span overlapping the range, in trace-id order,
    /// streamed.
    fn traces_starting_in(
        &self,
        start_ns: u64,
        end_ns: u64,
        columns: &[&str],
        f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
    ) -> io::Result<()> {
        let row_groups = self.row_groups_overlapping(start_ns, end_ns)?;
        if row_groups.is_empty() {
            return Ok(());
        }
        // A trace's rows are consecutive, but may run across batches: its spans are handed on
        // when the next trace begins.
        let mut current: Option<(TraceId, Vec<ResourceSpans>)> = None;
        for batch in self.batches(Some(row_groups), Some(columns), TRACE_BATCH_ROWS)? {
            let more = each_trace(
                &[batch?],
                (start_ns, end_ns),
                &mut |id, spans| match &mut current {
                    Some((current_id, pieces)) if current_id == id => {
                        pieces.extend(spans);
                        true
                    }
                    _ => match current.replace((*id, spans)) {
                        Some((done, pieces)) => f(&done, pieces),
                        None => true,
                    },
                },
            )?;
            if !more {
                return Ok(());
            }
        }
        if let Some((done, pieces)) = current {
            f(&done, pieces);
        }
        Ok(())
    }

    fn could_match(&self, query: &TraceQuery) -> bool {
        let meta = &self.meta;
        overlaps(
            (meta.start_unix_nano, meta.end_unix_nano),
            query.start_range(),
        ) && query
            .service
            .as_ref()
            .is_none_or(|s| meta.services.iter().any(|m| m == s))
            && query.operation.as_ref().is_none_or(|o| {
                meta.operations.iter().any(|op| {
                    &op.name == o && query.service.as_ref().is_none_or(|s| &op.service == s)
                })
            })
    }
}

impl SpanSource for Block {
    fn time_range(&self) -> Option<(u64, u64)> {
        (self.meta.span_count > 0).then_some((self.meta.start_unix_nano, self.meta.end_unix_nano))
    }

    fn trace(&self, id: &TraceId) -> io::Result<Vec<ResourceSpans>> {
        let row_groups = self.row_groups_of_trace(id)?;
        if row_groups.is_empty() {
            return Ok(Vec::new());
        }
        let batches = self.read(Read {
            row_groups: Some(row_groups),
            traces: Some(Arc::from([*id])),
            ..Default::default()
        })?;
        let mut out = Vec::new();
        for batch in &batches {
            out.extend(RowReader::new(batch).resource_spans(0..batch.num_rows()));
        }
        Ok(out)
    }

    fn trace_spans(&self, id: &TraceId, f: &mut dyn FnMut(&SpanRef)) -> io::Result<()> {
        let row_groups = self.row_groups_of_trace(id)?;
        if row_groups.is_empty() {
            return Ok(());
        }
        let batches = self.read(Read {
            columns: Some(SPAN_REF_COLUMNS),
            row_groups: Some(row_groups),
            traces: Some(Arc::from([*id])),
            dictionaries: true,
            ..Default::default()
        })?;
        for batch in &batches {
            let columns = SpanRefColumns::new(batch);
            for row in 0..batch.num_rows() {
                f(&columns.span(row));
            }
        }
        Ok(())
    }

    fn search(&self, query: &TraceQuery) -> io::Result<Vec<TraceHit>> {
        if query.limit == 0 || !self.could_match(query) {
            return Ok(Vec::new());
        }
        let (start, end) = query.start_range();
        // Conditions are checked inside the reader (span columns first, then attributes), so only
        // the ids and trace starts of matching rows are decoded.
        let batches = self.read(Read {
            columns: Some(&[col::TRACE_ID, col::TRACE_START]),
            row_groups: Some(self.row_groups_starting_in(start, end)?),
            spans: Some(query.clone()),
            dictionaries: true,
            // Hits are rows, not whole traces: small batches keep the reader's buffers small (a
            // row group's worth of attribute lists is reallocated over and over as it grows).
            batch_rows: Some(SEARCH_BATCH_ROWS),
            ..Default::default()
        })?;
        // Newest first by trace start; one hit per trace.
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        for batch in &batches {
            let ids = batch
                .column_by_name(col::TRACE_ID)
                .expect("projected")
                .as_binary::<i32>();
            let starts = batch
                .column_by_name(col::TRACE_START)
                .expect("projected")
                .as_primitive::<UInt64Type>();
            for row in 0..batch.num_rows() {
                if let Ok(id) = TraceId::from_bytes(ids.value(row)) {
                    hits.entry(id).or_insert(starts.value(row));
                }
            }
        }
        let mut hits: Vec<TraceHit> = hits
            .into_iter()
            .map(|(trace_id, start_ns)| TraceHit { trace_id, start_ns })
            .collect();
        hits.sort_unstable_by(|a, b| {
            b.start_ns
                .cmp(&a.start_ns)
                .then(a.trace_id.cmp(&b.trace_id))
        });
        hits.truncate(query.limit);
        Ok(hits)
    }

    fn scan(
        &self,
        start_ns: u64,
        end_ns: u64,
        f: &mut dyn FnMut(&TraceId, &[SpanRef]),
    ) -> io::Result<()> {
        if !overlaps(
            (self.meta.start_unix_nano, self.meta.end_unix_nano),
            (start_ns, end_ns),
        ) {
            return Ok(());
        }
        let read = Read {
            columns: Some(SPAN_REF_COLUMNS),
            row_groups: Some(self.row_groups_starting_in(start_ns, end_ns)?),
            dictionaries: true,
            ..Default::default()
        };
        // A batch is a whole row group (the default), and no trace runs across row groups.
        self.each_batch(read, &mut |batch| {
            let refs = SpanRefColumns::new(&batch);
            let mut spans: Vec<SpanRef> = Vec::new();
            let mut row = 0;
            while row < batch.num_rows() {
                let id = refs.trace_id.value(row);
                let run = (row..batch.num_rows())
                    .take_while(|&r| refs.trace_id.value(r) == id)
                    .count();
                let trace_start = refs.trace_start.value(row);
                let trace_end = trace_start + refs.trace_duration.value(row);
                if overlaps((trace_start, trace_end), (start_ns, end_ns)) {
                    spans.clear();
                    spans.extend((row..row + run).map(|r| refs.span(r)));
                    f(&refs.trace_id(row), &spans);
                }
                row += run;
            }
            Ok(())
        })
    }

    fn traces(
        &self,
        start_ns: u64,
        end_ns: u64,
        filter: Option<&TraceQuery>,
        parts: SpanParts,
        f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
    ) -> io::Result<()> {
        if !overlaps(
            (self.meta.start_unix_nano, self.meta.end_unix_nano),
            (start_ns, end_ns),
        ) {
            return Ok(());
        }
        let columns = columns_of(parts);
        match filter {
            Some(query) => self.candidate_traces(start_ns, end_ns, query, &columns, f),
            None => self.traces_starting_in(start_ns, end_ns, &columns, f),
        }
    }

    fn membership(&self) -> Box<dyn Fn(&TraceId) -> bool + '_> {
        match self.trace_index() {
            Ok(Some(index)) => Box::new(move |id| index.may_contain(id)),
            Ok(None) => Box::new(|_| false),
            // Unreadable now: it may hold the trace (a caller then asks it, and learns the error).
            Err(_) => Box::new(|_| true),
        }
    }

    fn services(&self) -> Vec<String> {
        self.meta.services.clone()
    }

    fn operations(&self, service: &str) -> Vec<(String, u8)> {
        self.meta
            .operations
            .iter()
            .filter(|o| o.service == service)
            .map(|o| (o.name.clone(), o.kind))
            .collect()
    }
}
