//! The block's Parquet schema: one row per span. docs/format.md describes every column.

use std::sync::{Arc, LazyLock};

use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef};

/// The type a dedicated attribute column holds. A value of another type stays in the generic list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dedicated {
    Str,
    Int,
}

/// Span attributes with columns of their own (OpenTelemetry semantic conventions, current and older
/// names): what users filter by most, so a filter reads one small dictionary-encoded column.
pub const SPAN_DEDICATED: &[(&str, Dedicated)] = &[
    ("http.request.method", Dedicated::Str),
    ("http.response.status_code", Dedicated::Int),
    ("http.route", Dedicated::Str),
    ("url.full", Dedicated::Str),
    ("url.path", Dedicated::Str),
    ("server.address", Dedicated::Str),
    ("server.port", Dedicated::Int),
    ("http.method", Dedicated::Str),
    ("http.status_code", Dedicated::Int),
    ("http.url", Dedicated::Str),
    ("db.system.name", Dedicated::Str),
    ("db.system", Dedicated::Str),
    ("db.namespace", Dedicated::Str),
    ("db.operation.name", Dedicated::Str),
    ("db.query.text", Dedicated::Str),
    ("db.statement", Dedicated::Str),
    ("rpc.system", Dedicated::Str),
    ("rpc.service", Dedicated::Str),
    ("rpc.method", Dedicated::Str),
    ("rpc.grpc.status_code", Dedicated::Int),
    ("messaging.system", Dedicated::Str),
    ("messaging.destination.name", Dedicated::Str),
    ("peer.service", Dedicated::Str),
    ("error.type", Dedicated::Str),
];

/// Resource attributes with columns of their own (`resource_` + the key with `.` as `_`).
pub const RESOURCE_DEDICATED: &[(&str, Dedicated)] = &[
    ("service.namespace", Dedicated::Str),
    ("service.version", Dedicated::Str),
    ("service.instance.id", Dedicated::Str),
    ("deployment.environment.name", Dedicated::Str),
    ("host.name", Dedicated::Str),
    ("k8s.cluster.name", Dedicated::Str),
    ("k8s.namespace.name", Dedicated::Str),
    ("k8s.node.name", Dedicated::Str),
    ("k8s.pod.name", Dedicated::Str),
    ("k8s.deployment.name", Dedicated::Str),
    ("k8s.container.name", Dedicated::Str),
    ("cloud.region", Dedicated::Str),
];

/// The column name of a span attribute's dedicated column: the key with `.` as `_`.
pub fn span_column(key: &str) -> String {
    key.replace('.', "_")
}

pub fn resource_column(key: &str) -> String {
    format!("resource_{}", key.replace('.', "_"))
}

/// A key/value list entry: the value's type and one typed field set (see docs/format.md).
pub fn key_value_fields() -> Fields {
    Fields::from(vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value_type", DataType::UInt8, false),
        Field::new("string", DataType::Utf8, true),
        Field::new("int", DataType::Int64, true),
        Field::new("double", DataType::Float64, true),
        Field::new("bool", DataType::Boolean, true),
        Field::new("bytes", DataType::Binary, true),
    ])
}

pub fn key_value_list() -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(key_value_fields()),
        false,
    )))
}

pub fn event_fields() -> Fields {
    Fields::from(vec![
        Field::new("time_unix_nano", DataType::UInt64, false),
        Field::new("name", DataType::Utf8, false),
        Field::new("attributes", key_value_list(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

pub fn link_fields() -> Fields {
    Fields::from(vec![
        Field::new("trace_id", DataType::Binary, false),
        Field::new("span_id", DataType::Binary, false),
        Field::new("trace_state", DataType::Utf8, false),
        Field::new("flags", DataType::UInt32, false),
        Field::new("attributes", key_value_list(), false),
        Field::new("dropped_attributes_count", DataType::UInt32, false),
    ])
}

fn list_of(fields: Fields) -> DataType {
    DataType::List(Arc::new(Field::new(
        "item",
        DataType::Struct(fields),
        false,
    )))
}

fn dedicated_type(kind: Dedicated) -> DataType {
    match kind {
        Dedicated::Str => DataType::Utf8,
        Dedicated::Int => DataType::Int64,
    }
}

/// Column names, in schema order up to the dedicated columns.
pub mod col {
    pub const TRACE_ID: &str = "trace_id";
    pub const SPAN_ID: &str = "span_id";
    pub const PARENT_SPAN_ID: &str = "parent_span_id";
    pub const TRACE_STATE: &str = "trace_state";
    pub const FLAGS: &str = "flags";
    pub const SERVICE_NAME: &str = "service_name";
    pub const NAME: &str = "name";
    pub const KIND: &str = "kind";
    pub const STATUS_CODE: &str = "status_code";
    pub const STATUS_MESSAGE: &str = "status_message";
    pub const START: &str = "start_time_unix_nano";
    pub const END: &str = "end_time_unix_nano";
    pub const DURATION: &str = "duration_nano";
    pub const ROOT_SERVICE_NAME: &str = "root_service_name";
    pub const ROOT_NAME: &str = "root_name";
    pub const TRACE_START: &str = "trace_start_unix_nano";
    pub const TRACE_DURATION: &str = "trace_duration_nano";
    pub const ATTRIBUTES: &str = "attributes";
    pub const DROPPED_ATTRIBUTES: &str = "dropped_attributes_count";
    pub const EVENTS: &str = "events";
    pub const DROPPED_EVENTS: &str = "dropped_events_count";
    pub const LINKS: &str = "links";
    pub const DROPPED_LINKS: &str = "dropped_links_count";
    pub const RESOURCE_ATTRIBUTES: &str = "resource_attributes";
    pub const RESOURCE_DROPPED_ATTRIBUTES: &str = "resource_dropped_attributes_count";
    pub const RESOURCE_SCHEMA_URL: &str = "resource_schema_url";
    pub const SCOPE_NAME: &str = "scope_name";
    pub const SCOPE_VERSION: &str = "scope_version";
    pub const SCOPE_ATTRIBUTES: &str = "scope_attributes";
    pub const SCOPE_DROPPED_ATTRIBUTES: &str = "scope_dropped_attributes_count";
    pub const SCOPE_SCHEMA_URL: &str = "scope_schema_url";
    pub const RESOURCE_ENTITY_REFS: &str = "resource_entity_refs";
}

/// The whole schema, built once.
pub static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    use col::*;
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::Binary, false),
        Field::new(SPAN_ID, DataType::Binary, false),
        Field::new(PARENT_SPAN_ID, DataType::Binary, false),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(SERVICE_NAME, DataType::Utf8, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(KIND, DataType::Int32, false),
        // Null when the span carried no status at all.
        Field::new(STATUS_CODE, DataType::Int32, true),
        Field::new(STATUS_MESSAGE, DataType::Utf8, true),
        Field::new(START, DataType::UInt64, false),
        Field::new(END, DataType::UInt64, false),
        Field::new(DURATION, DataType::UInt64, false),
        Field::new(ROOT_SERVICE_NAME, DataType::Utf8, false),
        Field::new(ROOT_NAME, DataType::Utf8, false),
        Field::new(TRACE_START, DataType::UInt64, false),
        Field::new(TRACE_DURATION, DataType::UInt64, false),
        Field::new(ATTRIBUTES, key_value_list(), false),
        Field::new(DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(EVENTS, list_of(event_fields()), false),
        Field::new(DROPPED_EVENTS, DataType::UInt32, false),
        Field::new(LINKS, list_of(link_fields()), false),
        Field::new(DROPPED_LINKS, DataType::UInt32, false),
        Field::new(RESOURCE_ATTRIBUTES, key_value_list(), false),
        Field::new(RESOURCE_DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(RESOURCE_SCHEMA_URL, DataType::Utf8, false),
        // Null when the spans came without an instrumentation scope.
        Field::new(SCOPE_NAME, DataType::Utf8, true),
        Field::new(SCOPE_VERSION, DataType::Utf8, false),
        Field::new(SCOPE_ATTRIBUTES, key_value_list(), false),
        Field::new(SCOPE_DROPPED_ATTRIBUTES, DataType::UInt32, false),
        Field::new(SCOPE_SCHEMA_URL, DataType::Utf8, false),
        // The resource's entity references, as the protobuf of a `Resource` holding only them; null
        // when there are none.
        Field::new(RESOURCE_ENTITY_REFS, DataType::Binary, true),
    ];
    for (key, kind) in SPAN_DEDICATED {
        fields.push(Field::new(span_column(key), dedicated_type(*kind), true));
    }
    for (key, kind) in RESOURCE_DEDICATED {
        fields.push(Field::new(
            resource_column(key),
            dedicated_type(*kind),
            true,
        ));
    }
    Arc::new(Schema::new(fields))
});
