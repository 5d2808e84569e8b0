//! OTLP spans in the Jaeger query API's JSON shape (`/api/traces`), the form the Jaeger UI and Grafana's
//! Jaeger data source read. Mapping follows Jaeger's own OTLP translator: resources become processes,
//! span kind / status / scope become tags, events become logs, the parent becomes a `CHILD_OF` reference
//! and links `FOLLOWS_FROM` references.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::attributes::{service_name, value_json};
pub use crate::derived_tags::span_kind_name;
use crate::derived_tags::{DerivedTag, SpanFields};
use crate::otlp::{any_value::Value, span::SpanKind, KeyValue, ResourceSpans};

#[derive(Debug, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: BTreeMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub flags: u32,
    /// Microseconds since the Unix epoch.
    pub start_time: u64,
    /// Microseconds.
    pub duration: u64,
    pub tags: Vec<Tag>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Tag {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Log {
    pub timestamp: u64,
    pub fields: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<Tag>,
}

fn tag(key: impl Into<String>, value: &Value) -> Tag {
    let (kind, value) = match value {
        Value::StringValue(s) => ("string", serde_json::Value::from(s.as_str())),
        Value::BoolValue(b) => ("bool", (*b).into()),
        Value::IntValue(i) => ("int64", (*i).into()),
        Value::StringValueStrindex(i) => ("int64", (*i).into()),
        Value::DoubleValue(d) => ("float64", (*d).into()),
        Value::BytesValue(_) => ("binary", value_json(value)),
        // Jaeger has no structured tag types: arrays and maps travel as their JSON text.
        Value::ArrayValue(_) | Value::KvlistValue(_) => {
            ("string", value_json(value).to_string().into())
        }
    };
    Tag {
        key: key.into(),
        kind,
        value,
    }
}

fn string_tag(key: &str, value: &str) -> Tag {
    tag(key, &Value::StringValue(value.to_string()))
}

fn tags(attributes: &[KeyValue]) -> impl Iterator<Item = Tag> + '_ {
    attributes.iter().filter_map(|kv| {
        kv.value
            .as_ref()
            .and_then(|v| v.value.as_ref())
            .map(|v| tag(kv.key.as_str(), v))
    })
}

fn hex(bytes: &[u8]) -> String {
    const_hex::encode(bytes)
}

/// The OTLP span kind of a Jaeger kind name (`server`, `client`…, case-insensitive), for filters.
pub fn span_kind_from_name(name: &str) -> Option<i32> {
    let kind = match name.to_ascii_lowercase().as_str() {
        "unspecified" | "" => SpanKind::Unspecified,
        "internal" => SpanKind::Internal,
        "server" => SpanKind::Server,
        "client" => SpanKind::Client,
        "producer" => SpanKind::Producer,
        "consumer" => SpanKind::Consumer,
        _ => return None,
    };
    Some(kind as i32)
}

/// Builds one Jaeger trace from the resource spans of a single trace.
pub fn trace(trace_id: &str, resource_spans: &[ResourceSpans]) -> Trace {
    let mut processes: BTreeMap<String, Process> = BTreeMap::new();
    let mut spans = Vec::new();
    for rs in resource_spans {
        let mut process_tags: Vec<Tag> = rs
            .resource
            .iter()
            .flat_map(|r| tags(&r.attributes))
            .filter(|t| t.key != "service.name")
            .collect();
        process_tags.sort_by(|a, b| a.key.cmp(&b.key));
        let process = Process {
            service_name: service_name(rs.resource.as_ref()).to_string(),
            tags: process_tags,
        };
        let process_id = match processes.iter().find(|(_, p)| **p == process) {
            Some((id, _)) => id.clone(),
            None => {
                let id = format!("p{}", processes.len() + 1);
                processes.insert(id.clone(), process);
                id
            }
        };
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let mut span_tags: Vec<Tag> = tags(&span.attributes).collect();
                // A tag the span also sent as an attribute (`error = true` beside an ERROR
                // status) is shown once: the UI warns of duplicate tags.
                let fields = SpanFields::of(span, ss.scope.as_ref());
                for derived in DerivedTag::ALL {
                    let Some(value) = derived.value(&fields) else {
                        continue;
                    };
                    if span_tags.iter().any(|t| t.key == derived.key()) {
                        continue;
                    }
                    span_tags.push(match derived {
                        DerivedTag::Error => tag(derived.key(), &Value::BoolValue(true)),
                        _ => string_tag(derived.key(), value),
                    });
                }
                let mut references = Vec::new();
                if !span.parent_span_id.is_empty() && span.parent_span_id.iter().any(|b| *b != 0) {
                    references.push(Reference {
                        ref_type: "CHILD_OF",
                        trace_id: hex(&span.trace_id),
                        span_id: hex(&span.parent_span_id),
                    });
                }
                references.extend(span.links.iter().map(|link| Reference {
                    ref_type: "FOLLOWS_FROM",
                    trace_id: hex(&link.trace_id),
                    span_id: hex(&link.span_id),
                }));
                let logs = span
                    .events
                    .iter()
                    .map(|event| Log {
                        timestamp: event.time_unix_nano / 1000,
                        fields: std::iter::once(string_tag("event", &event.name))
                            .chain(tags(&event.attributes))
                            .collect(),
                    })
                    .collect();
                spans.push(Span {
                    trace_id: trace_id.to_string(),
                    span_id: hex(&span.span_id),
                    operation_name: span.name.clone(),
                    references,
                    flags: span.flags & 0xff,
                    start_time: span.start_time_unix_nano / 1000,
                    duration: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano)
                        / 1000,
                    tags: span_tags,
                    logs,
                    process_id: process_id.clone(),
                    warnings: None,
                });
            }
        }
    }
    spans.sort_by_key(|s| s.start_time);
    Trace {
        trace_id: trace_id.to_string(),
        spans,
        processes,
        warnings: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{request, span};
    use crate::otlp::{AnyValue, Status};

    #[test]
    fn a_tag_sent_as_an_attribute_is_not_derived_again() {
        let mut failed = span(1, 1, None, "pay", 0, 1000);
        failed.status = Some(Status {
            code: 2,
            message: String::new(),
        });
        failed.attributes = vec![KeyValue {
            key: "error".into(),
            value: Some(AnyValue {
                value: Some(Value::BoolValue(true)),
            }),
            ..Default::default()
        }];
        let trace = trace("01", &request("payments", vec![failed]).resource_spans);
        let keys: Vec<&str> = trace.spans[0].tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["error", "otel.status_code"]);
    }
}
