//! Writing a block: traces handed over in trace-id order, streamed into a Parquet file row group by
//! row group, with the trace-id index and the meta built on the way.
//!
//! Memory stays at one batch of Arrow builders and the row group being encoded, whatever the size of
//! the block: the callers put traces in order first (a cut sorts the log's spans by reference, see
//! [`super::logged`]; a compaction merges blocks that are sorted already, see [`super::merge`]).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::{ArrayRef, RecordBatch, StructArray};
use parquet::arrow::ArrowWriter;
use parquet::errors::ParquetError;
use prost::Message;

use osprey_model::attributes::service_name;
use osprey_model::otlp::{InstrumentationScope, Resource, Span};
use osprey_model::TraceId;

use super::columns::{DedicatedBuilder, KeyValueBuilder, ListOffsets};
use super::meta::{BlockMeta, Operation, WalSource, FORMAT_VERSION};
use super::schema::{col, event_fields, link_fields, RESOURCE_DEDICATED, SCHEMA, SPAN_DEDICATED};
use super::trace_index::{RowGroupRange, TraceIndex};

/// Rows per row group (more when the last trace runs on): a lookup by id reads within one row group,
/// a scan prunes by their statistics.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// Rows gathered in Arrow builders before they go to the Parquet writer (which keeps the row group
/// encoded and compressed until it ends).
const BATCH_ROWS: usize = 8 * 1024;

/// A finished block, ready to upload.
pub struct BuiltBlock {
    pub data: Vec<u8>,
    /// The trace-id index, encoded for `trace-index`…
    pub index: Vec<u8>,
    /// …and as the block keeps it in memory once written.
    pub trace_index: TraceIndex,
    pub meta: BlockMeta,
}

/// One span with the resource and scope it was sent under.
#[derive(Clone, Copy)]
pub struct SpanRow<'a> {
    pub resource: Option<&'a Resource>,
    pub resource_schema_url: &'a str,
    pub scope: Option<&'a InstrumentationScope>,
    pub scope_schema_url: &'a str,
    pub span: &'a Span,
}

impl SpanRow<'_> {
    /// The order of rows within a trace, and what makes two rows one span sent twice (a client
    /// retry, or the same span in two blocks being compacted): start, span id and, only between rows
    /// that agree on those, a fingerprint of everything else. A copy that differs in content keeps
    /// both rows, as the head shows both.
    fn order(&self, other: &SpanRow) -> std::cmp::Ordering {
        (self.span.start_time_unix_nano, &self.span.span_id)
            .cmp(&(other.span.start_time_unix_nano, &other.span.span_id))
            .then_with(|| self.fingerprint().cmp(&other.fingerprint()))
    }

    /// A cheap fingerprint of what else the span (and its resource and scope) carries: encoded
    /// sizes and the end time.
    fn fingerprint(&self) -> u64 {
        let mut h = self.span.encoded_len() as u64;
        for part in [
            self.span.end_time_unix_nano,
            self.resource.map_or(0, |r| r.encoded_len() as u64),
            self.scope.map_or(0, |s| s.encoded_len() as u64),
            self.resource_schema_url.len() as u64,
            self.scope_schema_url.len() as u64,
        ] {
            h = (h ^ part).wrapping_mul(0x100000001b3).rotate_left(17);
        }
        h
    }
}

/// What every row of a trace repeats: the trace-level columns.
struct TraceLevel<'a> {
    root_service: &'a str,
    root_name: &'a str,
    start: u64,
    duration: u64,
}

struct EventsBuilder {
    offsets: ListOffsets,
    len: usize,
    time: UInt64Builder,
    name: StringBuilder,
    attributes: KeyValueBuilder,
    dropped: UInt32Builder,
}

struct LinksBuilder {
    offsets: ListOffsets,
    len: usize,
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attributes: KeyValueBuilder,
    dropped: UInt32Builder,
}

/// The Arrow builders of one batch of rows, a builder per column of the schema.
struct Columns {
    trace_id: BinaryBuilder,
    span_id: BinaryBuilder,
    parent_span_id: BinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    service_name: StringBuilder,
    name: StringBuilder,
    kind: Int32Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    start: UInt64Builder,
    end: UInt64Builder,
    duration: UInt64Builder,
    attributes: KeyValueBuilder,
    dropped_attributes: UInt32Builder,
    events: EventsBuilder,
    dropped_events: UInt32Builder,
    links: LinksBuilder,
    dropped_links: UInt32Builder,
    resource_attributes: KeyValueBuilder,
    resource_dropped: UInt32Builder,
    resource_schema_url: StringBuilder,
    scope_name: StringBuilder,
    scope_version: StringBuilder,
    scope_attributes: KeyValueBuilder,
    scope_dropped: UInt32Builder,
    scope_schema_url: StringBuilder,
    resource_entity_refs: BinaryBuilder,
    span_dedicated: DedicatedBuilder,
    resource_dedicated: DedicatedBuilder,
    root_service_name: StringBuilder,
    root_name: StringBuilder,
    trace_start: UInt64Builder,
    trace_duration: UInt64Builder,
}

impl Columns {
    fn new() -> Columns {
        Columns {
            trace_id: BinaryBuilder::new(),
            span_id: BinaryBuilder::new(),
            parent_span_id: BinaryBuilder::new(),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::new(),
            service_name: StringBuilder::new(),
            name: StringBuilder::new(),
            kind: Int32Builder::new(),
            status_code: Int32Builder::new(),
            status_message: StringBuilder::new(),
            start: UInt64Builder::new(),
            end: UInt64Builder::new(),
            duration: UInt64Builder::new(),
            attributes: KeyValueBuilder::new(),
            dropped_attributes: UInt32Builder::new(),
            events: EventsBuilder {
                offsets: ListOffsets::new(),
                len: 0,
                time: UInt64Builder::new(),
                name: StringBuilder::new(),
                attributes: KeyValueBuilder::new(),
                dropped: UInt32Builder::new(),
            },
            dropped_events: UInt32Builder::new(),
            links: LinksBuilder {
                offsets: ListOffsets::new(),
                len: 0,
                trace_id: BinaryBuilder::new(),
                span_id: BinaryBuilder::new(),
                trace_state: StringBuilder::new(),
                flags: UInt32Builder::new(),
                attributes: KeyValueBuilder::new(),
                dropped: UInt32Builder::new(),
            },
            dropped_links: UInt32Builder::new(),
            resource_attributes: KeyValueBuilder::new(),
            resource_dropped: UInt32Builder::new(),
            resource_schema_url: StringBuilder::new(),
            scope_name: StringBuilder::new(),
            scope_version: StringBuilder::new(),
            scope_attributes: KeyValueBuilder::new(),
            scope_dropped: UInt32Builder::new(),
            scope_schema_url: StringBuilder::new(),
            resource_entity_refs: BinaryBuilder::new(),
            span_dedicated: DedicatedBuilder::new(SPAN_DEDICATED),
            resource_dedicated: DedicatedBuilder::new(RESOURCE_DEDICATED),
            root_service_name: StringBuilder::new(),
            root_name: StringBuilder::new(),
            trace_start: UInt64Builder::new(),
            trace_duration: UInt64Builder::new(),
        }
    }

    /// Appends one row; `service` is the row's `service.name` (looked up once by the caller).
    fn push(&mut self, row: &SpanRow, service: &str, trace: &TraceLevel) {
        let SpanRow {
            resource,
            resource_schema_url,
            scope,
            scope_schema_url,
            span,
        } = *row;
        self.trace_id.append_value(&span.trace_id);
        self.span_id.append_value(&span.span_id);
        self.parent_span_id.append_value(&span.parent_span_id);
        self.trace_state.append_value(&span.trace_state);
        self.flags.append_value(span.flags);
        self.service_name.append_value(service);
        self.name.append_value(&span.name);
        self.kind.append_value(span.kind);
        self.status_code
            .append_option(span.status.as_ref().map(|s| s.code));
        self.status_message
            .append_option(span.status.as_ref().map(|s| s.message.as_str()));
        self.start.append_value(span.start_time_unix_nano);
        self.end.append_value(span.end_time_unix_nano);
        self.duration.append_value(
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano),
        );
        self.span_dedicated
            .push_row(&span.attributes, &mut self.attributes);
        self.dropped_attributes
            .append_value(span.dropped_attributes_count);
        let events = &mut self.events;
        for event in &span.events {
            events.len += 1;
            events.time.append_value(event.time_unix_nano);
            events.name.append_value(&event.name);
            events.attributes.push_row(&event.attributes);
            events.dropped.append_value(event.dropped_attributes_count);
        }
        events.offsets.close(events.len);
        self.dropped_events.append_value(span.dropped_events_count);
        let links = &mut self.links;
        for link in &span.links {
            links.len += 1;
            links.trace_id.append_value(&link.trace_id);
            links.span_id.append_value(&link.span_id);
            links.trace_state.append_value(&link.trace_state);
            links.flags.append_value(link.flags);
            links.attributes.push_row(&link.attributes);
            links.dropped.append_value(link.dropped_attributes_count);
        }
        links.offsets.close(links.len);
        self.dropped_links.append_value(span.dropped_links_count);
        self.resource_dedicated.push_row(
            resource.map_or(&[][..], |r| r.attributes.as_slice()),
            &mut self.resource_attributes,
        );
        self.resource_dropped
            .append_value(resource.map_or(0, |r| r.dropped_attributes_count));
        self.resource_schema_url.append_value(resource_schema_url);
        self.scope_name
            .append_option(scope.map(|s| s.name.as_str()));
        self.scope_version
            .append_value(scope.map_or("", |s| s.version.as_str()));
        self.scope_attributes
            .push_row(scope.map_or(&[][..], |s| s.attributes.as_slice()));
        self.scope_dropped
            .append_value(scope.map_or(0, |s| s.dropped_attributes_count));
        self.scope_schema_url.append_value(scope_schema_url);
        self.resource_entity_refs.append_option(
            resource.filter(|r| !r.entity_refs.is_empty()).map(|r| {
                Resource {
                    entity_refs: r.entity_refs.clone(),
                    ..Default::default()
                }
                .encode_to_vec()
            }),
        );
        self.root_service_name.append_value(trace.root_service);
        self.root_name.append_value(trace.root_name);
        self.trace_start.append_value(trace.start);
        self.trace_duration.append_value(trace.duration);
    }

    /// The rows appended since the last call, as a batch of the block's schema; the builders start
    /// empty again.
    fn finish(&mut self) -> Result<RecordBatch, ParquetError> {
        let events = &mut self.events;
        events.len = 0;
        let events_values = StructArray::new(
            event_fields(),
            vec![
                Arc::new(events.time.finish()),
                Arc::new(events.name.finish()),
                Arc::new(events.attributes.finish()),
                Arc::new(events.dropped.finish()),
            ],
            None,
        );
        let links = &mut self.links;
        links.len = 0;
        let links_values = StructArray::new(
            link_fields(),
            vec![
                Arc::new(links.trace_id.finish()),
                Arc::new(links.span_id.finish()),
                Arc::new(links.trace_state.finish()),
                Arc::new(links.flags.finish()),
                Arc::new(links.attributes.finish()),
                Arc::new(links.dropped.finish()),
            ],
            None,
        );
        let mut by_name: HashMap<String, ArrayRef> = [
            (col::TRACE_ID, Arc::new(self.trace_id.finish()) as ArrayRef),
            (col::SPAN_ID, Arc::new(self.span_id.finish())),
            (col::PARENT_SPAN_ID, Arc::new(self.parent_span_id.finish())),
            (col::TRACE_STATE, Arc::new(self.trace_state.finish())),
            (col::FLAGS, Arc::new(self.flags.finish())),
            (col::SERVICE_NAME, Arc::new(self.service_name.finish())),
            (col::NAME, Arc::new(self.name.finish())),
            (col::KIND, Arc::new(self.kind.finish())),
            (col::STATUS_CODE, Arc::new(self.status_code.finish())),
            (col::STATUS_MESSAGE, Arc::new(self.status_message.finish())),
            (col::START, Arc::new(self.start.finish())),
            (col::END, Arc::new(self.end.finish())),
            (col::DURATION, Arc::new(self.duration.finish())),
            (col::ATTRIBUTES, Arc::new(self.attributes.finish())),
            (
                col::DROPPED_ATTRIBUTES,
                Arc::new(self.dropped_attributes.finish()),
            ),
            (col::EVENTS, Arc::new(events.offsets.finish(events_values))),
            (col::DROPPED_EVENTS, Arc::new(self.dropped_events.finish())),
            (col::LINKS, Arc::new(links.offsets.finish(links_values))),
            (col::DROPPED_LINKS, Arc::new(self.dropped_links.finish())),
            (
                col::RESOURCE_ATTRIBUTES,
                Arc::new(self.resource_attributes.finish()),
            ),
            (
                col::RESOURCE_DROPPED_ATTRIBUTES,
                Arc::new(self.resource_dropped.finish()),
            ),
            (
                col::RESOURCE_SCHEMA_URL,
                Arc::new(self.resource_schema_url.finish()),
            ),
            (col::SCOPE_NAME, Arc::new(self.scope_name.finish())),
            (col::SCOPE_VERSION, Arc::new(self.scope_version.finish())),
            (
                col::SCOPE_ATTRIBUTES,
                Arc::new(self.scope_attributes.finish()),
            ),
            (
                col::SCOPE_DROPPED_ATTRIBUTES,
                Arc::new(self.scope_dropped.finish()),
            ),
            (
                col::SCOPE_SCHEMA_URL,
                Arc::new(self.scope_schema_url.finish()),
            ),
            (
                col::RESOURCE_ENTITY_REFS,
                Arc::new(self.resource_entity_refs.finish()),
            ),
            (
                col::ROOT_SERVICE_NAME,
                Arc::new(self.root_service_name.finish()),
            ),
            (col::ROOT_NAME, Arc::new(self.root_name.finish())),
            (col::TRACE_START, Arc::new(self.trace_start.finish())),
            (col::TRACE_DURATION, Arc::new(self.trace_duration.finish())),
        ]
        .into_iter()
        .map(|(name, array)| (name.to_string(), array))
        .collect();
        let span_columns = SPAN_DEDICATED
            .iter()
            .map(|(k, _)| super::schema::span_column(k))
            .zip(self.span_dedicated.finish());
        let resource_columns = RESOURCE_DEDICATED
            .iter()
            .map(|(k, _)| super::schema::resource_column(k))
            .zip(self.resource_dedicated.finish());
        by_name.extend(span_columns);
        by_name.extend(resource_columns);
        let arrays: Vec<ArrayRef> = SCHEMA
            .fields()
            .iter()
            .map(|f| {
                by_name
                    .remove(f.name())
                    .expect("every schema column is built")
            })
            .collect();
        Ok(RecordBatch::try_new(SCHEMA.clone(), arrays)?)
    }
}

/// The row group being written.
struct OpenGroup {
    first_row: u64,
    rows: u64,
    min: TraceId,
    max: TraceId,
}

/// What the encoding thread is asked to do.
enum ToEncoder {
    Rows(RecordBatch),
    EndRowGroup,
}

/// Parquet encoding on a thread of its own: the caller decodes and appends the next batch while the
/// last one is encoded and compressed, so a cut uses two cores.
struct Encoder {
    /// Bounded: at most two batches wait, so memory stays bounded when encoding is the slower half.
    sender: std::sync::mpsc::SyncSender<ToEncoder>,
    thread: std::thread::JoinHandle<Result<Vec<u8>, ParquetError>>,
}

impl Encoder {
    fn spawn() -> Result<Encoder, ParquetError> {
        let properties = super::encoding::writer_properties(&SCHEMA);
        let mut writer = ArrowWriter::try_new(Vec::new(), SCHEMA.clone(), Some(properties))?;
        let (sender, receiver) = std::sync::mpsc::sync_channel(2);
        let thread = std::thread::Builder::new()
            .name("block-encoder".into())
            .spawn(move || {
                for message in receiver {
                    match message {
                        ToEncoder::Rows(batch) => writer.write(&batch)?,
                        ToEncoder::EndRowGroup => writer.flush()?,
                    }
                }
                writer.into_inner()
            })
            .map_err(|e| ParquetError::External(Box::new(e)))?;
        Ok(Encoder { sender, thread })
    }

    fn send(&self, message: ToEncoder) -> Result<(), ParquetError> {
        // The thread only stops listening when it failed: its error is what `finish` reports.
        self.sender
            .send(message)
            .map_err(|_| ParquetError::General("the block encoder stopped".into()))
    }

    fn finish(self) -> Result<Vec<u8>, ParquetError> {
        drop(self.sender);
        self.thread
            .join()
            .map_err(|_| ParquetError::General("the block encoder panicked".into()))?
    }
}

/// Writes one block from traces handed over in increasing trace-id order.
pub struct BlockWriter {
    columns: Columns,
    batch_rows: usize,
    encoder: Encoder,
    group: Option<OpenGroup>,
    groups: Vec<RowGroupRange>,
    /// Every trace id written, in order (for the Bloom filter, sized once the count is known).
    trace_ids: Vec<TraceId>,
    spans: u64,
    min_start: u64,
    max_end: u64,
    /// Service → span name → bit set of span kinds: looked up without allocating for every span.
    operations: HashMap<String, HashMap<String, u8>>,
}

impl BlockWriter {
    pub fn new() -> Result<BlockWriter, ParquetError> {
        Ok(BlockWriter {
            columns: Columns::new(),
            batch_rows: 0,
            encoder: Encoder::spawn()?,
            group: None,
            groups: Vec::new(),
            trace_ids: Vec::new(),
            spans: 0,
            min_start: u64::MAX,
            max_end: 0,
            operations: HashMap::new(),
        })
    }

    /// Spans written so far (duplicates dropped).
    pub fn span_count(&self) -> u64 {
        self.spans
    }

    /// Writes the spans of one trace, in any order; a span sent twice is written once. Traces must
    /// come in increasing trace-id order; spans without a valid trace id (ingest lets none through)
    /// are skipped.
    pub fn push_trace(&mut self, rows: &mut Vec<SpanRow<'_>>) -> Result<(), ParquetError> {
        let Some(trace_id) = rows
            .first()
            .and_then(|r| TraceId::from_bytes(&r.span.trace_id).ok())
        else {
            return Ok(());
        };
        // A trace written in two pieces would break the block's promises (whole traces in one row
        // group, one trace-level value): refused rather than written.
        if self.trace_ids.last().is_some_and(|last| *last >= trace_id)
            || rows.iter().any(|r| r.span.trace_id != trace_id.0)
        {
            return Err(ParquetError::General(format!(
                "trace {} handed to the block writer out of order or mixed with another",
                trace_id.to_hex()
            )));
        }
        rows.sort_by(SpanRow::order);
        rows.dedup_by(|a, b| a.order(b).is_eq());

        let start = rows[0].span.start_time_unix_nano;
        let end = rows
            .iter()
            .map(|r| r.span.end_time_unix_nano.max(r.span.start_time_unix_nano))
            .max()
            .unwrap_or(start);
        // The root span (the earliest of several), or the earliest span while it is missing.
        let root = rows
            .iter()
            .find(|r| r.span.parent_span_id.iter().all(|b| *b == 0))
            .unwrap_or(&rows[0]);
        let trace = TraceLevel {
            root_service: service_name(root.resource),
            root_name: &root.span.name,
            start,
            duration: end - start,
        };
        for row in rows.iter() {
            let service = service_name(row.resource);
            self.note_operation(service, row);
            self.columns.push(row, service, &trace);
        }
        self.min_start = self.min_start.min(start);
        self.max_end = self.max_end.max(end);
        self.trace_ids.push(trace_id);
        let count = rows.len() as u64;
        let group = self.group.get_or_insert(OpenGroup {
            first_row: self.spans,
            rows: 0,
            min: trace_id,
            max: trace_id,
        });
        group.rows += count;
        group.max = trace_id;
        self.spans += count;
        self.batch_rows += rows.len();
        // A row group ends at the first trace boundary after ROW_GROUP_ROWS rows: a trace is never
        // split between row groups, so a lookup or scan sees it whole within one.
        if group.rows >= ROW_GROUP_ROWS as u64 {
            self.end_group()?;
        } else if self.batch_rows >= BATCH_ROWS {
            self.write_batch()?;
        }
        Ok(())
    }

    fn note_operation(&mut self, service: &str, row: &SpanRow) {
        let name = &row.span.name;
        let kind = 1u8 << row.span.kind.clamp(0, 7);
        match self.operations.get_mut(service) {
            Some(names) => match names.get_mut(name) {
                Some(kinds) => *kinds |= kind,
                None => {
                    names.insert(name.clone(), kind);
                }
            },
            None => {
                let names = HashMap::from([(name.clone(), kind)]);
                self.operations.insert(service.to_string(), names);
            }
        }
    }

    fn write_batch(&mut self) -> Result<(), ParquetError> {
        if self.batch_rows > 0 {
            self.batch_rows = 0;
            let batch = self.columns.finish()?;
            self.encoder.send(ToEncoder::Rows(batch))?;
        }
        Ok(())
    }

    fn end_group(&mut self) -> Result<(), ParquetError> {
        self.write_batch()?;
        if let Some(group) = self.group.take() {
            self.encoder.send(ToEncoder::EndRowGroup)?;
            self.groups.push(RowGroupRange {
                min: group.min,
                max: group.max,
                first_row: group.first_row,
                rows: group.rows,
            });
        }
        Ok(())
    }

    /// Ends the file and describes the block: `wal` names the log segments it holds, `replaces` the
    /// blocks it was compacted from.
    pub fn finish(
        mut self,
        block_id: &str,
        tenant: &str,
        compaction_level: u32,
        wal: Vec<WalSource>,
        replaces: Vec<String>,
    ) -> Result<BuiltBlock, ParquetError> {
        if let Err(e) = self.end_group() {
            // The encoder's own error, if it stopped, says more.
            self.encoder.finish()?;
            return Err(e);
        }
        let data = self.encoder.finish()?;
        let index = TraceIndex::new(self.groups, &self.trace_ids);
        let index_bytes = index.encode();

        let mut services: Vec<String> = self.operations.keys().cloned().collect();
        services.sort();
        let mut operations: Vec<Operation> = self
            .operations
            .into_iter()
            .flat_map(|(service, names)| {
                names.into_iter().flat_map(move |(name, kinds)| {
                    let service = service.clone();
                    (0..8u8)
                        .filter(move |k| kinds & (1 << k) != 0)
                        .map(move |kind| Operation {
                            service: service.clone(),
                            name: name.clone(),
                            kind,
                        })
                })
            })
            .collect();
        operations
            .sort_by(|a, b| (&a.service, &a.name, a.kind).cmp(&(&b.service, &b.name, b.kind)));
        let meta = BlockMeta {
            format_version: FORMAT_VERSION,
            block_id: block_id.to_string(),
            tenant: tenant.to_string(),
            start_unix_nano: if self.spans == 0 { 0 } else { self.min_start },
            end_unix_nano: self.max_end,
            span_count: self.spans,
            trace_count: self.trace_ids.len() as u64,
            services,
            operations,
            data_bytes: data.len() as u64,
            index_bytes: index_bytes.len() as u64,
            row_groups: index.row_groups.len() as u32,
            created_unix_nano: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            compaction_level,
            wal,
            replaces,
        };
        Ok(BuiltBlock {
            data,
            index: index_bytes,
            trace_index: index,
            meta,
        })
    }
}
