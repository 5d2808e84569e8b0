//! Building a block: spans in (any order, from log records or other blocks), a sorted Parquet file,
//! its trace-id index and its meta out.
//!
//! Spans are appended to Arrow builders as they come (compact, no decoded OTLP kept), then sorted
//! once by trace id and start time with a permutation, so memory stays near the block's Arrow size.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow_array::builder::{
    BinaryBuilder, Int32Builder, StringBuilder, UInt32Builder, UInt64Builder,
};
use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, RecordBatch, StructArray, UInt32Array};
use parquet::arrow::ArrowWriter;
use prost::Message;

use osprey_model::attributes::service_name;
use osprey_model::otlp::{ExportTraceServiceRequest, Resource, ScopeSpans, Span};
use osprey_model::TraceId;

use super::columns::{DedicatedBuilder, KeyValueBuilder, ListOffsets};
use super::meta::{BlockMeta, Operation, WalSource, FORMAT_VERSION};
use super::schema::{col, event_fields, link_fields, RESOURCE_DEDICATED, SCHEMA, SPAN_DEDICATED};
use super::trace_index::TraceIndex;

/// Rows per row group (more when the last trace runs on): a lookup by id reads within one row group,
/// a scan prunes by their statistics.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// A finished block, ready to upload.
pub struct BuiltBlock {
    pub data: Vec<u8>,
    /// The trace-id index, encoded for `trace-index`…
    pub index: Vec<u8>,
    /// …and as the block keeps it in memory once written.
    pub trace_index: TraceIndex,
    pub meta: BlockMeta,
}

struct SortKey {
    trace_id: TraceId,
    start: u64,
    /// The span id as a number: with the trace id and start, what makes two rows the same span…
    span: u64,
    /// …if their content agrees too (a fingerprint of what else the span carries).
    content: u64,
    end: u64,
    root: bool,
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

/// A cheap fingerprint of what else a span (and its resource and scope) carries: its encoded size
/// and end time, and theirs. Two rows are one span sent twice only when this agrees too; a copy that
/// differs in content keeps both rows, as the head shows both.
fn fingerprint(resource: Option<&Resource>, ss: &ScopeSpans, span: &Span) -> u64 {
    let mut h = span.encoded_len() as u64;
    for part in [
        span.end_time_unix_nano,
        resource.map_or(0, |r| r.encoded_len() as u64),
        ss.scope.as_ref().map_or(0, |s| s.encoded_len() as u64),
        ss.schema_url.len() as u64,
    ] {
        h = (h ^ part).wrapping_mul(0x100000001b3).rotate_left(17);
    }
    h
}

/// Accumulates spans for one block.
pub struct BlockBuilder {
    keys: Vec<SortKey>,
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
    /// Service → span name → bit set of span kinds: looked up without allocating for every span.
    operations: HashMap<String, HashMap<String, u8>>,
}

impl Default for BlockBuilder {
    fn default() -> Self {
        BlockBuilder {
            keys: Vec::new(),
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
            operations: HashMap::new(),
        }
    }
}

impl BlockBuilder {
    pub fn span_count(&self) -> usize {
        self.keys.len()
    }

    /// Adds every span of an export. Spans without a valid trace id (ingest lets none through) are
    /// skipped.
    pub fn push_request(&mut self, request: &ExportTraceServiceRequest) {
        for rs in &request.resource_spans {
            for ss in &rs.scope_spans {
                self.push_scope_spans(rs.resource.as_ref(), &rs.schema_url, ss);
            }
        }
    }

    pub fn push_scope_spans(
        &mut self,
        resource: Option<&Resource>,
        resource_schema_url: &str,
        ss: &ScopeSpans,
    ) {
        for span in &ss.spans {
            self.push_span(resource, resource_schema_url, ss, span);
        }
    }

    fn push_span(
        &mut self,
        resource: Option<&Resource>,
        resource_schema_url: &str,
        ss: &ScopeSpans,
        span: &Span,
    ) {
        let Ok(trace_id) = TraceId::from_bytes(&span.trace_id) else {
            return;
        };
        let service = service_name(resource);
        let kind = span.kind.clamp(0, 7) as u8;
        match self.operations.get_mut(service) {
            Some(names) => match names.get_mut(&span.name) {
                Some(kinds) => *kinds |= 1 << kind,
                None => {
                    names.insert(span.name.clone(), 1 << kind);
                }
            },
            None => {
                let names = HashMap::from([(span.name.clone(), 1u8 << kind)]);
                self.operations.insert(service.to_string(), names);
            }
        }
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        self.keys.push(SortKey {
            trace_id,
            start: span.start_time_unix_nano,
            span: span
                .span_id
                .iter()
                .fold(0u64, |n, b| (n << 8) | u64::from(*b)),
            content: fingerprint(resource, ss, span),
            end: span.start_time_unix_nano + duration,
            root: span.parent_span_id.iter().all(|b| *b == 0),
        });
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
        self.duration.append_value(duration);
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
        let empty = Vec::new();
        self.resource_dedicated.push_row(
            resource.map_or(&empty, |r| &r.attributes),
            &mut self.resource_attributes,
        );
        self.resource_dropped
            .append_value(resource.map_or(0, |r| r.dropped_attributes_count));
        self.resource_schema_url.append_value(resource_schema_url);
        self.scope_name
            .append_option(ss.scope.as_ref().map(|s| s.name.as_str()));
        self.scope_version
            .append_value(ss.scope.as_ref().map_or("", |s| s.version.as_str()));
        self.scope_attributes
            .push_row(ss.scope.as_ref().map_or(&empty, |s| &s.attributes));
        self.scope_dropped
            .append_value(ss.scope.as_ref().map_or(0, |s| s.dropped_attributes_count));
        self.scope_schema_url.append_value(&ss.schema_url);
        self.resource_entity_refs.append_option(
            resource.filter(|r| !r.entity_refs.is_empty()).map(|r| {
                Resource {
                    entity_refs: r.entity_refs.clone(),
                    ..Default::default()
                }
                .encode_to_vec()
            }),
        );
    }

    /// The columns as appended (unsorted), by name, without the trace-level ones.
    fn finish_columns(&mut self) -> Vec<(String, ArrayRef)> {
        let events = &mut self.events;
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
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            (col::TRACE_ID, Arc::new(self.trace_id.finish())),
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
        ];
        let span_columns = SPAN_DEDICATED
            .iter()
            .map(|(k, _)| super::schema::span_column(k))
            .zip(self.span_dedicated.finish());
        let resource_columns = RESOURCE_DEDICATED
            .iter()
            .map(|(k, _)| super::schema::resource_column(k))
            .zip(self.resource_dedicated.finish());
        let mut out: Vec<(String, ArrayRef)> =
            columns.drain(..).map(|(n, a)| (n.to_string(), a)).collect();
        out.extend(span_columns);
        out.extend(resource_columns);
        out
    }

    /// Sorts, encodes and describes the block; a span that came twice (a client retry, or the same
    /// span in two blocks being compacted) is kept once. `wal` names the log segments it holds,
    /// `replaces` the blocks it was compacted from.
    pub fn finish(
        mut self,
        block_id: &str,
        tenant: &str,
        compaction_level: u32,
        wal: Vec<WalSource>,
        replaces: Vec<String>,
    ) -> Result<BuiltBlock, parquet::errors::ParquetError> {
        let mut order: Vec<u32> = (0..self.keys.len() as u32).collect();
        let key = |k: &SortKey| (k.trace_id, k.start, k.span, k.content);
        order.sort_by(|&a, &b| key(&self.keys[a as usize]).cmp(&key(&self.keys[b as usize])));
        order.dedup_by(|a, b| key(&self.keys[*a as usize]) == key(&self.keys[*b as usize]));
        let indices = UInt32Array::from(order.clone());
        let columns = self.finish_columns();
        let mut by_name: BTreeMap<String, ArrayRef> = BTreeMap::new();
        for (name, array) in columns {
            by_name.insert(name, super::take::take(&array, &indices)?);
        }
        let keys: Vec<&SortKey> = order.iter().map(|&i| &self.keys[i as usize]).collect();
        let services = by_name[col::SERVICE_NAME].as_string::<i32>().clone();
        let names = by_name[col::NAME].as_string::<i32>().clone();

        // Trace-level columns: one run of rows per trace (rows are sorted by trace id, then start).
        let mut root_service = StringBuilder::new();
        let mut root_name = StringBuilder::new();
        let mut trace_start = UInt64Builder::new();
        let mut trace_duration = UInt64Builder::new();
        let mut sorted_ids = Vec::with_capacity(keys.len());
        let mut trace_count = 0usize;
        let mut run_start = 0;
        let (mut min_start, mut max_end) = (u64::MAX, 0u64);
        while run_start < keys.len() {
            let id = keys[run_start].trace_id;
            let run_end = run_start
                + keys[run_start..]
                    .iter()
                    .take_while(|k| k.trace_id == id)
                    .count();
            let run = &keys[run_start..run_end];
            // The root span (the earliest of several), or the earliest span while it is missing.
            let root = run_start + run.iter().position(|k| k.root).unwrap_or(0);
            let start = run[0].start;
            let end = run.iter().map(|k| k.end).max().unwrap_or(start);
            min_start = min_start.min(start);
            max_end = max_end.max(end);
            for _ in run {
                root_service.append_value(services.value(root));
                root_name.append_value(names.value(root));
                trace_start.append_value(start);
                trace_duration.append_value(end - start);
                sorted_ids.push(id);
            }
            trace_count += 1;
            run_start = run_end;
        }
        by_name.insert(
            col::ROOT_SERVICE_NAME.into(),
            Arc::new(root_service.finish()),
        );
        by_name.insert(col::ROOT_NAME.into(), Arc::new(root_name.finish()));
        by_name.insert(col::TRACE_START.into(), Arc::new(trace_start.finish()));
        by_name.insert(
            col::TRACE_DURATION.into(),
            Arc::new(trace_duration.finish()),
        );

        let schema = SCHEMA.clone();
        let arrays: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| {
                by_name
                    .remove(f.name())
                    .expect("every schema column is built")
            })
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), arrays)?;
        let properties = super::encoding::writer_properties(&schema);
        let mut writer = ArrowWriter::try_new(Vec::new(), schema, Some(properties))?;
        // A row group ends at the first trace boundary after ROW_GROUP_ROWS rows: a trace is never
        // split between row groups, so a lookup or scan sees it whole within one.
        let mut group_starts = Vec::new();
        let mut first = 0;
        while first < sorted_ids.len() {
            let mut end = (first + ROW_GROUP_ROWS).min(sorted_ids.len());
            while end < sorted_ids.len() && sorted_ids[end] == sorted_ids[end - 1] {
                end += 1;
            }
            writer.write(&batch.slice(first, end - first))?;
            writer.flush()?;
            group_starts.push(first);
            first = end;
        }
        let data = writer.into_inner()?;
        let index = TraceIndex::build(&sorted_ids, trace_count, &group_starts);
        let index_bytes = index.encode();

        let mut services: Vec<String> = self.operations.keys().cloned().collect();
        services.sort();
        let mut operations: Vec<Operation> = std::mem::take(&mut self.operations)
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
            start_unix_nano: if keys.is_empty() { 0 } else { min_start },
            end_unix_nano: max_end,
            span_count: keys.len() as u64,
            trace_count: trace_count as u64,
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
