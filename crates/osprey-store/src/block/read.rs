//! Reading a block's rows back into OTLP: the inverse of `write`, column for column.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, UInt32Type, UInt64Type};
use arrow_array::{
    Array, BinaryArray, Int32Array, RecordBatch, StringArray, StructArray, UInt32Array, UInt64Array,
};

use prost::Message;

use osprey_model::grouping::{push_span, Origin};
use osprey_model::otlp::{
    span::{Event, Link},
    InstrumentationScope, KeyValue, Resource, ResourceSpans, Span, Status,
};

use super::columns::{dedicated_readers, DedicatedReader, KeyValueReader};
use super::schema::{col, resource_column, span_column, RESOURCE_DEDICATED, SPAN_DEDICATED};

fn strings<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch.column_by_name(name).expect(name).as_string::<i32>()
}

fn binaries<'a>(batch: &'a RecordBatch, name: &str) -> &'a BinaryArray {
    batch.column_by_name(name).expect(name).as_binary::<i32>()
}

fn u64s<'a>(batch: &'a RecordBatch, name: &str) -> &'a UInt64Array {
    batch
        .column_by_name(name)
        .expect(name)
        .as_primitive::<UInt64Type>()
}

fn u32s<'a>(batch: &'a RecordBatch, name: &str) -> &'a UInt32Array {
    batch
        .column_by_name(name)
        .expect(name)
        .as_primitive::<UInt32Type>()
}

fn i32s<'a>(batch: &'a RecordBatch, name: &str) -> &'a Int32Array {
    batch
        .column_by_name(name)
        .expect(name)
        .as_primitive::<Int32Type>()
}

fn with_dedicated(
    mut generic: Vec<KeyValue>,
    dedicated: &[DedicatedReader],
    row: usize,
) -> Vec<KeyValue> {
    generic.extend(dedicated.iter().filter_map(|d| d.attribute(row)));
    generic
}

/// One row as OTLP, owned: a span with the resource and scope it was sent under.
pub struct OwnedRow {
    pub resource: Option<Resource>,
    pub resource_schema_url: String,
    pub scope: Option<InstrumentationScope>,
    pub scope_schema_url: String,
    pub span: Span,
}

impl OwnedRow {
    pub fn as_row(&self) -> super::write::SpanRow<'_> {
        super::write::SpanRow {
            resource: self.resource.as_ref(),
            resource_schema_url: &self.resource_schema_url,
            scope: self.scope.as_ref(),
            scope_schema_url: &self.scope_schema_url,
            span: &self.span,
        }
    }
}

/// Every column of a full (unprojected) batch, ready to rebuild rows.
pub struct RowReader<'a> {
    trace_id: &'a BinaryArray,
    span_id: &'a BinaryArray,
    parent_span_id: &'a BinaryArray,
    trace_state: &'a StringArray,
    flags: &'a UInt32Array,
    name: &'a StringArray,
    kind: &'a Int32Array,
    status_code: &'a Int32Array,
    status_message: &'a StringArray,
    start: &'a UInt64Array,
    end: &'a UInt64Array,
    attributes: KeyValueReader<'a>,
    dropped_attributes: &'a UInt32Array,
    events: &'a arrow_array::ListArray,
    event_reader: EventReader<'a>,
    dropped_events: &'a UInt32Array,
    links: &'a arrow_array::ListArray,
    link_reader: LinkReader<'a>,
    dropped_links: &'a UInt32Array,
    resource_attributes: KeyValueReader<'a>,
    resource_dropped: &'a UInt32Array,
    resource_schema_url: &'a StringArray,
    scope_name: &'a StringArray,
    scope_version: &'a StringArray,
    scope_attributes: KeyValueReader<'a>,
    scope_dropped: &'a UInt32Array,
    scope_schema_url: &'a StringArray,
    resource_entity_refs: &'a BinaryArray,
    span_dedicated: Vec<DedicatedReader<'a>>,
    resource_dedicated: Vec<DedicatedReader<'a>>,
}

struct EventReader<'a> {
    time: &'a UInt64Array,
    name: &'a StringArray,
    attributes: KeyValueReader<'a>,
    dropped: &'a UInt32Array,
}

struct LinkReader<'a> {
    trace_id: &'a BinaryArray,
    span_id: &'a BinaryArray,
    trace_state: &'a StringArray,
    flags: &'a UInt32Array,
    attributes: KeyValueReader<'a>,
    dropped: &'a UInt32Array,
}

fn struct_values<'a>(
    batch: &'a RecordBatch,
    name: &str,
) -> (&'a arrow_array::ListArray, &'a StructArray) {
    let list = batch.column_by_name(name).expect(name).as_list::<i32>();
    (list, list.values().as_struct())
}

impl<'a> RowReader<'a> {
    pub fn new(batch: &'a RecordBatch) -> RowReader<'a> {
        let (events, e) = struct_values(batch, col::EVENTS);
        let (links, l) = struct_values(batch, col::LINKS);
        RowReader {
            trace_id: binaries(batch, col::TRACE_ID),
            span_id: binaries(batch, col::SPAN_ID),
            parent_span_id: binaries(batch, col::PARENT_SPAN_ID),
            trace_state: strings(batch, col::TRACE_STATE),
            flags: u32s(batch, col::FLAGS),
            name: strings(batch, col::NAME),
            kind: i32s(batch, col::KIND),
            status_code: i32s(batch, col::STATUS_CODE),
            status_message: strings(batch, col::STATUS_MESSAGE),
            start: u64s(batch, col::START),
            end: u64s(batch, col::END),
            attributes: KeyValueReader::new(
                batch.column_by_name(col::ATTRIBUTES).expect("attributes"),
            ),
            dropped_attributes: u32s(batch, col::DROPPED_ATTRIBUTES),
            events,
            event_reader: EventReader {
                time: e.column(0).as_primitive::<UInt64Type>(),
                name: e.column(1).as_string::<i32>(),
                attributes: KeyValueReader::new(e.column(2)),
                dropped: e.column(3).as_primitive::<UInt32Type>(),
            },
            dropped_events: u32s(batch, col::DROPPED_EVENTS),
            links,
            link_reader: LinkReader {
                trace_id: l.column(0).as_binary::<i32>(),
                span_id: l.column(1).as_binary::<i32>(),
                trace_state: l.column(2).as_string::<i32>(),
                flags: l.column(3).as_primitive::<UInt32Type>(),
                attributes: KeyValueReader::new(l.column(4)),
                dropped: l.column(5).as_primitive::<UInt32Type>(),
            },
            dropped_links: u32s(batch, col::DROPPED_LINKS),
            resource_attributes: KeyValueReader::new(
                batch
                    .column_by_name(col::RESOURCE_ATTRIBUTES)
                    .expect("resource attributes"),
            ),
            resource_dropped: u32s(batch, col::RESOURCE_DROPPED_ATTRIBUTES),
            resource_schema_url: strings(batch, col::RESOURCE_SCHEMA_URL),
            scope_name: strings(batch, col::SCOPE_NAME),
            scope_version: strings(batch, col::SCOPE_VERSION),
            scope_attributes: KeyValueReader::new(
                batch
                    .column_by_name(col::SCOPE_ATTRIBUTES)
                    .expect("scope attributes"),
            ),
            scope_dropped: u32s(batch, col::SCOPE_DROPPED_ATTRIBUTES),
            scope_schema_url: strings(batch, col::SCOPE_SCHEMA_URL),
            resource_entity_refs: binaries(batch, col::RESOURCE_ENTITY_REFS),
            span_dedicated: dedicated_readers(batch, SPAN_DEDICATED, span_column),
            resource_dedicated: dedicated_readers(batch, RESOURCE_DEDICATED, resource_column),
        }
    }

    pub fn span(&self, row: usize) -> Span {
        let event_offsets = self.events.value_offsets();
        let events = (event_offsets[row] as usize..event_offsets[row + 1] as usize)
            .map(|i| {
                let e = &self.event_reader;
                Event {
                    time_unix_nano: e.time.value(i),
                    name: e.name.value(i).to_string(),
                    attributes: e.attributes.row(i),
                    dropped_attributes_count: e.dropped.value(i),
                }
            })
            .collect();
        let link_offsets = self.links.value_offsets();
        let links = (link_offsets[row] as usize..link_offsets[row + 1] as usize)
            .map(|i| {
                let l = &self.link_reader;
                Link {
                    trace_id: l.trace_id.value(i).to_vec(),
                    span_id: l.span_id.value(i).to_vec(),
                    trace_state: l.trace_state.value(i).to_string(),
                    flags: l.flags.value(i),
                    attributes: l.attributes.row(i),
                    dropped_attributes_count: l.dropped.value(i),
                }
            })
            .collect();
        Span {
            trace_id: self.trace_id.value(row).to_vec(),
            span_id: self.span_id.value(row).to_vec(),
            trace_state: self.trace_state.value(row).to_string(),
            parent_span_id: self.parent_span_id.value(row).to_vec(),
            flags: self.flags.value(row),
            name: self.name.value(row).to_string(),
            kind: self.kind.value(row),
            start_time_unix_nano: self.start.value(row),
            end_time_unix_nano: self.end.value(row),
            attributes: with_dedicated(self.attributes.row(row), &self.span_dedicated, row),
            dropped_attributes_count: self.dropped_attributes.value(row),
            events,
            dropped_events_count: self.dropped_events.value(row),
            links,
            dropped_links_count: self.dropped_links.value(row),
            status: self.status_code.is_valid(row).then(|| Status {
                code: self.status_code.value(row),
                message: self.status_message.value(row).to_string(),
            }),
        }
    }

    /// The row's resource (an export without one reads back with an empty one).
    pub fn resource(&self, row: usize) -> Option<Resource> {
        Some(Resource {
            attributes: with_dedicated(
                self.resource_attributes.row(row),
                &self.resource_dedicated,
                row,
            ),
            dropped_attributes_count: self.resource_dropped.value(row),
            entity_refs: if self.resource_entity_refs.is_valid(row) {
                // Written by us from a decoded resource, so it decodes; a damaged file reads as none.
                Resource::decode(self.resource_entity_refs.value(row))
                    .map(|r| r.entity_refs)
                    .unwrap_or_default()
            } else {
                Vec::new()
            },
        })
    }

    pub fn scope(&self, row: usize) -> Option<InstrumentationScope> {
        self.scope_name.is_valid(row).then(|| InstrumentationScope {
            name: self.scope_name.value(row).to_string(),
            version: self.scope_version.value(row).to_string(),
            attributes: self.scope_attributes.row(row),
            dropped_attributes_count: self.scope_dropped.value(row),
        })
    }

    pub fn owned(&self, row: usize) -> OwnedRow {
        OwnedRow {
            resource: self.resource(row),
            resource_schema_url: self.resource_schema_url.value(row).to_string(),
            scope: self.scope(row),
            scope_schema_url: self.scope_schema_url.value(row).to_string(),
            span: self.span(row),
        }
    }

    /// The rows as OTLP, consecutive rows of the same resource and scope grouped together.
    pub fn resource_spans(&self, rows: impl IntoIterator<Item = usize>) -> Vec<ResourceSpans> {
        let mut out: Vec<ResourceSpans> = Vec::new();
        for row in rows {
            let OwnedRow {
                resource,
                resource_schema_url,
                scope,
                scope_schema_url,
                span,
            } = self.owned(row);
            let origin = Origin {
                resource: &resource,
                resource_schema_url: &resource_schema_url,
                scope: &scope,
                scope_schema_url: &scope_schema_url,
            };
            push_span(&mut out, &origin, span);
        }
        out
    }
}
