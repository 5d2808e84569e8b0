//! Jaeger clients' span batches (jaeger-idl `jaeger.thrift` `Batch`): over HTTP as a bare binary
//! `Batch` (`POST /api/traces`), over UDP as the agent's `emitBatch` call (compact on 6831, binary
//! on 6832). Each becomes one OTLP export, as the OpenTelemetry Collector's Jaeger receiver maps it:
//! the process to the resource, tags to typed attributes (`span.kind`, `error`, `otel.status_code`,
//! `otel.status_description`, `otel.scope.*`/`otel.library.*` and `w3c.tracestate` to span
//! fields), logs to events (the `event` field names them), a `CHILD_OF` reference to the parent
//! when `parentSpanId` is 0, `FOLLOWS_FROM` references to links.

use osprey_model::otlp::{
    any_value::Value, span::Event, span::Link, span::SpanKind, status::StatusCode, AnyValue,
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, Span,
    Status,
};

use crate::thrift::{Reader, Result, Type};

/// A Jaeger tag: key and typed value.
fn tag(r: &mut Reader) -> Result<KeyValue> {
    let (mut key, mut kind) = (String::new(), 0);
    let mut values: [Option<Value>; 5] = Default::default();
    r.struct_begin()?;
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, Type::Binary) => key = r.string()?,
            (2, Type::I32) => kind = r.i32()?,
            (3, Type::Binary) => values[0] = Some(Value::StringValue(r.string()?)),
            (4, Type::Double) => values[1] = Some(Value::DoubleValue(r.double()?)),
            (5, Type::Bool) => values[2] = Some(Value::BoolValue(r.bool()?)),
            (6, Type::I64) => values[3] = Some(Value::IntValue(r.i64()?)),
            (7, Type::Binary) => values[4] = Some(Value::BytesValue(r.binary()?.to_vec())),
            _ => r.skip(t)?,
        }
    }
    r.struct_end();
    // vType: 0 string, 1 double, 2 bool, 3 long, 4 binary.
    let value = usize::try_from(kind)
        .ok()
        .and_then(|k| values.get_mut(k))
        .and_then(Option::take)
        .unwrap_or(Value::StringValue(String::new()));
    Ok(KeyValue {
        key,
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    })
}

/// A span reference: (type, trace id, span id); type 0 CHILD_OF, 1 FOLLOWS_FROM.
fn reference(r: &mut Reader) -> Result<(i32, Vec<u8>, Vec<u8>)> {
    let (mut kind, mut low, mut high, mut span) = (0, 0i64, 0i64, 0i64);
    r.struct_begin()?;
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, Type::I32) => kind = r.i32()?,
            (2, Type::I64) => low = r.i64()?,
            (3, Type::I64) => high = r.i64()?,
            (4, Type::I64) => span = r.i64()?,
            _ => r.skip(t)?,
        }
    }
    r.struct_end();
    Ok((kind, trace_id(high, low), span.to_be_bytes().to_vec()))
}

fn trace_id(high: i64, low: i64) -> Vec<u8> {
    let mut id = high.to_be_bytes().to_vec();
    id.extend(low.to_be_bytes());
    id
}

fn log(r: &mut Reader) -> Result<Event> {
    let (mut time_us, mut fields) = (0i64, Vec::new());
    r.struct_begin()?;
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, Type::I64) => time_us = r.i64()?,
            (2, Type::List) => fields = list_of(r, tag)?,
            _ => r.skip(t)?,
        }
    }
    r.struct_end();
    let name = fields
        .iter()
        .position(|kv| kv.key == "event")
        .map(|i| fields.remove(i))
        .and_then(|kv| kv.value?.value)
        .map(|v| osprey_model::attributes::value_text(&v))
        .unwrap_or_default();
    Ok(Event {
        time_unix_nano: (time_us.max(0) as u64).saturating_mul(1000),
        name,
        attributes: fields,
        ..Default::default()
    })
}

fn list_of<T>(r: &mut Reader, item: impl Fn(&mut Reader) -> Result<T>) -> Result<Vec<T>> {
    let (element, size) = r.list()?;
    if element != Type::Struct {
        return Err("expected a list of structs".into());
    }
    (0..size).map(|_| item(r)).collect()
}

fn text(kv: &KeyValue) -> String {
    kv.value
        .as_ref()
        .and_then(|v| v.value.as_ref())
        .map(osprey_model::attributes::value_text)
        .unwrap_or_default()
}

/// A Jaeger span as OTLP, with the scope its tags name.
fn span(r: &mut Reader) -> Result<(InstrumentationScope, Span)> {
    let (mut low, mut high, mut id, mut parent) = (0i64, 0i64, 0i64, 0i64);
    let (mut name, mut flags, mut start_us, mut duration_us) = (String::new(), 0i32, 0i64, 0i64);
    let (mut references, mut attributes, mut events) = (Vec::new(), Vec::new(), Vec::new());
    r.struct_begin()?;
    while let Some((t, field)) = r.field()? {
        match (field, t) {
            (1, Type::I64) => low = r.i64()?,
            (2, Type::I64) => high = r.i64()?,
            (3, Type::I64) => id = r.i64()?,
            (4, Type::I64) => parent = r.i64()?,
            (5, Type::Binary) => name = r.string()?,
            (6, Type::List) => references = list_of(r, reference)?,
            (7, Type::I32) => flags = r.i32()?,
            (8, Type::I64) => start_us = r.i64()?,
            (9, Type::I64) => duration_us = r.i64()?,
            (10, Type::List) => attributes = list_of(r, tag)?,
            (11, Type::List) => events = list_of(r, log)?,
            _ => r.skip(t)?,
        }
    }
    r.struct_end();
    let own_trace = trace_id(high, low);
    let mut parent_span_id = if parent != 0 {
        parent.to_be_bytes().to_vec()
    } else {
        Vec::new()
    };
    let mut links = Vec::new();
    for (kind, trace, span) in references {
        let child_of = kind == 0;
        // jaeger-client-go sends the parent twice, as `parentSpanId` and as a CHILD_OF reference.
        if child_of && span == parent_span_id && trace == own_trace {
            continue;
        }
        // A CHILD_OF reference is the parent when none was given, if it is in this trace.
        if child_of && parent_span_id.is_empty() && trace == own_trace && span != [0; 8] {
            parent_span_id = span;
        } else if kind == 0 || kind == 1 {
            links.push(Link {
                trace_id: trace,
                span_id: span,
                ..Default::default()
            });
        }
    }
    let mut take = |key: &str| {
        attributes
            .iter()
            .position(|kv: &KeyValue| kv.key == key)
            .map(|i| text(&attributes.remove(i)))
    };
    let kind = match take("span.kind").as_deref() {
        Some("client") => SpanKind::Client,
        Some("server") => SpanKind::Server,
        Some("producer") => SpanKind::Producer,
        Some("consumer") => SpanKind::Consumer,
        Some("internal") => SpanKind::Internal,
        _ => SpanKind::Unspecified,
    };
    let mut status = take("otel.status_code").map(|code| Status {
        code: match code.as_str() {
            "ERROR" => StatusCode::Error as i32,
            "OK" => StatusCode::Ok as i32,
            _ => StatusCode::Unset as i32,
        },
        message: take("otel.status_description").unwrap_or_default(),
    });
    let trace_state = take("w3c.tracestate").unwrap_or_default();
    let scope = InstrumentationScope {
        name: take("otel.scope.name")
            .or_else(|| take("otel.library.name"))
            .unwrap_or_default(),
        version: take("otel.scope.version")
            .or_else(|| take("otel.library.version"))
            .unwrap_or_default(),
        ..Default::default()
    };
    // `error=true` sets the status (and goes); another value of `error` stays beside it.
    let error = attributes
        .iter()
        .position(|kv| kv.key == "error")
        .map(|i| (i, text(&attributes[i])));
    if let Some((i, value)) = error {
        if value != "false" {
            let message = status.take().map(|s| s.message).unwrap_or_default();
            status = Some(Status {
                code: StatusCode::Error as i32,
                message,
            });
        }
        if value == "true" || value == "false" {
            attributes.remove(i);
        }
    }
    let start = (start_us.max(0) as u64).saturating_mul(1000);
    Ok((
        scope,
        Span {
            trace_id: own_trace,
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id,
            trace_state,
            flags: flags as u32 & 0xff,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start
                .saturating_add((duration_us.max(0) as u64).saturating_mul(1000)),
            attributes,
            events,
            links,
            status,
            ..Default::default()
        },
    ))
}

/// A `Batch`: the process (service name and tags) and its spans, as one OTLP resource.
fn batch(r: &mut Reader) -> Result<ExportTraceServiceRequest> {
    let (mut service, mut process_tags, mut spans) = (String::new(), Vec::new(), Vec::new());
    r.struct_begin()?;
    while let Some((t, id)) = r.field()? {
        match (id, t) {
            (1, Type::Struct) => {
                r.struct_begin()?;
                while let Some((t, id)) = r.field()? {
                    match (id, t) {
                        (1, Type::Binary) => service = r.string()?,
                        (2, Type::List) => process_tags = list_of(r, tag)?,
                        _ => r.skip(t)?,
                    }
                }
                r.struct_end();
            }
            (2, Type::List) => spans = list_of(r, span)?,
            _ => r.skip(t)?,
        }
    }
    r.struct_end();
    let mut attributes = vec![KeyValue {
        key: "service.name".into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(service)),
        }),
        ..Default::default()
    }];
    attributes.extend(process_tags);
    let scope_spans = osprey_model::grouping::by_scope(spans);
    Ok(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans,
            ..Default::default()
        }],
    })
}

/// A bare binary-protocol `Batch`, as jaeger-client libraries POST to `/api/traces`.
pub fn decode_batch(body: &[u8]) -> std::result::Result<ExportTraceServiceRequest, String> {
    batch(&mut Reader::new(body, false)).map_err(|e| format!("invalid Jaeger thrift batch: {e}"))
}

/// An agent `emitBatch` call (a one-way message whose argument 1 is the `Batch`), as clients send
/// it over UDP in the compact or binary protocol.
pub fn decode_agent_message(
    packet: &[u8],
    compact: bool,
) -> std::result::Result<ExportTraceServiceRequest, String> {
    let mut r = Reader::new(packet, compact);
    let read = |r: &mut Reader| -> Result<ExportTraceServiceRequest> {
        let method = r.message_begin()?;
        if method != "emitBatch" {
            return Err(format!(
                "unknown agent method {method:?}: expected emitBatch"
            ));
        }
        let mut found = None;
        r.struct_begin()?;
        while let Some((t, id)) = r.field()? {
            match (id, t) {
                (1, Type::Struct) => found = Some(batch(r)?),
                _ => r.skip(t)?,
            }
        }
        r.struct_end();
        found.ok_or_else(|| "emitBatch without a batch".to_string())
    };
    read(&mut r).map_err(|e| format!("invalid Jaeger agent message: {e}"))
}
