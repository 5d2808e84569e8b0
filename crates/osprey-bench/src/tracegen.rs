//! Load shaped like Grafana's tracegen: traces of several services, each span with 11 attributes drawn
//! from 97 keys × 1000 values.

use osprey_model::otlp::{
    any_value::Value, span::SpanKind, AnyValue, ExportTraceServiceRequest, InstrumentationScope,
    KeyValue, Resource, ResourceSpans, ScopeSpans, Span,
};

const ATTRIBUTE_KEYS: usize = 97;
const ATTRIBUTE_VALUES: usize = 1000;
const ATTRIBUTES_PER_SPAN: usize = 11;

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub spans_per_request: usize,
    pub spans_per_trace: usize,
    pub services: usize,
}

pub fn string(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value)),
        }),
        ..Default::default()
    }
}

/// Builds one export request of whole traces (the last may be cut short), grouped by service.
pub fn request(shape: Shape, rng: &mut fastrand::Rng, now_ns: u64) -> ExportTraceServiceRequest {
    let services = shape.services.max(1);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); services];
    let mut made = 0;
    while made < shape.spans_per_request {
        let trace_id: Vec<u8> = rng.u128(1..).to_be_bytes().to_vec();
        let trace_start = now_ns - rng.u64(0..60_000_000_000);
        let mut span_ids: Vec<Vec<u8>> = Vec::new();
        for i in 0..shape.spans_per_trace.min(shape.spans_per_request - made) {
            let span_id = rng.u64(1..).to_be_bytes().to_vec();
            let parent = if i == 0 {
                Vec::new()
            } else {
                span_ids[rng.usize(0..span_ids.len())].clone()
            };
            let start = trace_start + rng.u64(0..1_000_000_000);
            let service = if i == 0 { 0 } else { rng.usize(0..services) };
            let attributes = (0..ATTRIBUTES_PER_SPAN)
                .map(|_| {
                    let key = rng.usize(0..ATTRIBUTE_KEYS);
                    string(
                        &format!("attribute.key.{key:02}"),
                        format!("value-{}", rng.usize(0..ATTRIBUTE_VALUES)),
                    )
                })
                .collect();
            by_service[service].push(Span {
                trace_id: trace_id.clone(),
                span_id: span_id.clone(),
                parent_span_id: parent,
                name: format!("operation-{}", rng.usize(0..20)),
                kind: if i == 0 {
                    SpanKind::Server as i32
                } else {
                    SpanKind::Client as i32
                },
                start_time_unix_nano: start,
                end_time_unix_nano: start + rng.u64(1_000..500_000_000),
                attributes,
                flags: 1,
                ..Default::default()
            });
            span_ids.push(span_id);
            made += 1;
        }
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(i, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    string("service.name", format!("service-{i}")),
                    string("host.name", format!("host-{}", i % 3)),
                    string("telemetry.sdk.language", "rust".to_string()),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "osprey-bench".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// An encoded export whose trace ids can be changed without encoding it again: the load generator
/// sends each span once (as real clients do), not the same few requests over and over, which a
/// block would keep once.
pub struct Template {
    bytes: bytes::Bytes,
    /// Where each span's trace id starts in `bytes`.
    trace_ids: Vec<usize>,
}

impl Template {
    pub fn new(request: &ExportTraceServiceRequest) -> Template {
        use prost::Message;
        let bytes = request.encode_to_vec();
        let ids: std::collections::HashSet<&[u8]> = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .flat_map(|ss| &ss.spans)
            .map(|s| s.trace_id.as_slice())
            .collect();
        // A span's trace id is its field 1: tag 0x0a, length 16, then the id.
        let trace_ids = (0..bytes.len().saturating_sub(17))
            .filter(|&i| {
                bytes[i] == 0x0a && bytes[i + 1] == 16 && ids.contains(&bytes[i + 2..i + 18])
            })
            .map(|i| i + 2)
            .collect();
        Template {
            bytes: bytes.into(),
            trace_ids,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// The export with every trace id's high half XORed with `n`: each `n` gives other traces.
    pub fn instance(&self, n: u64) -> bytes::Bytes {
        let mut bytes = self.bytes.to_vec();
        for &at in &self.trace_ids {
            let high = u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) ^ n;
            bytes[at..at + 8].copy_from_slice(&high.to_be_bytes());
        }
        bytes.into()
    }
}
