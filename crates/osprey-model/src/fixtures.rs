//! Small OTLP builders for tests across the workspace (feature `fixtures`, for dev-dependencies).

use crate::otlp::{
    any_value::Value, AnyValue, ExportTraceServiceRequest, KeyValue, Resource, ResourceSpans,
    ScopeSpans, Span,
};

pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// A span of trace `[trace; 16]` with id `[id; 8]` and parent `[parent; 8]`, times in nanoseconds.
pub fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, start_ns: u64, end_ns: u64) -> Span {
    Span {
        trace_id: vec![trace; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        start_time_unix_nano: start_ns,
        end_time_unix_nano: end_ns,
        ..Default::default()
    }
}

/// Spans of one service (the `service.name` resource attribute), in one scope.
pub fn service_spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
    ResourceSpans {
        resource: Some(Resource {
            attributes: vec![string_attribute("service.name", service)],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            spans,
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An export request of one service's spans.
pub fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![service_spans(service, spans)],
    }
}
