//! Zipkin v2 spans (openzipkin/zipkin-api `zipkin2-api.yaml` and `zipkin.proto`) and their mapping
//! to and from OTLP, as the OpenTelemetry Collector's Zipkin translator maps them: the service from
//! `localEndpoint.serviceName`, the `error` tag and `otel.status_code` to the status, annotations
//! to events, endpoints to `net.*`/`peer.service` attributes, `otel.library.*` to the scope.
//!
//! A shared span (`shared: true`, the server half of an RPC that reused the client's span id) gets
//! a span id of its own and the client half as its parent, so every API shows the two as caller and
//! callee (Jaeger's query side does the same); the id it was sent with is kept in the attribute
//! [`SHARED_ID`], and the Zipkin API answers with it again.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A field that may come as `null`: read as its default, as Zipkin's reader skips nulls.
fn or_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

use crate::otlp::{
    any_value::Value, span::Event, span::SpanKind, status::StatusCode, AnyValue,
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, Span,
    Status,
};

/// The attribute holding the span id a shared span was sent with.
pub const SHARED_ID: &str = "zipkin.shared_span_id";
/// The attribute holding the parent id a shared span was sent with (its client half's parent).
pub const SHARED_PARENT_ID: &str = "zipkin.shared_parent_id";

/// A Zipkin v2 span as JSON (`POST /api/v2/spans`, and every query answer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ZipkinSpan {
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<String>,
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Microseconds since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_endpoint: Option<Endpoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_endpoint: Option<Endpoint>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub annotations: Vec<Annotation>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub tags: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub debug: bool,
    #[serde(
        default,
        deserialize_with = "or_default",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub shared: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Annotation {
    /// Microseconds since the epoch.
    pub timestamp: u64,
    pub value: String,
}

/// zipkin.proto's messages (proto3), for `application/x-protobuf` bodies.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(btree_map = "string, string", tag = "11")]
        pub tags: std::collections::BTreeMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

const KINDS: [&str; 4] = ["CLIENT", "SERVER", "PRODUCER", "CONSUMER"];

impl ZipkinSpan {
    /// A protobuf span in the JSON model (ids as hex, addresses as text).
    pub fn from_proto(span: proto::Span) -> ZipkinSpan {
        let endpoint = |e: proto::Endpoint| Endpoint {
            service_name: (!e.service_name.is_empty()).then_some(e.service_name),
            ipv4: <[u8; 4]>::try_from(e.ipv4.as_slice())
                .ok()
                .map(|a| std::net::Ipv4Addr::from(a).to_string()),
            ipv6: <[u8; 16]>::try_from(e.ipv6.as_slice())
                .ok()
                .map(|a| std::net::Ipv6Addr::from(a).to_string()),
            port: u16::try_from(e.port).ok().filter(|p| *p > 0),
        };
        ZipkinSpan {
            trace_id: const_hex::encode(&span.trace_id),
            parent_id: (!span.parent_id.is_empty()).then(|| const_hex::encode(&span.parent_id)),
            id: const_hex::encode(&span.id),
            kind: span
                .kind
                .checked_sub(1)
                .and_then(|k| usize::try_from(k).ok())
                .and_then(|k| KINDS.get(k))
                .map(|k| k.to_string()),
            name: (!span.name.is_empty()).then_some(span.name),
            timestamp: (span.timestamp > 0).then_some(span.timestamp),
            duration: (span.duration > 0).then_some(span.duration),
            local_endpoint: span.local_endpoint.map(endpoint),
            remote_endpoint: span.remote_endpoint.map(endpoint),
            annotations: span
                .annotations
                .into_iter()
                .map(|a| Annotation {
                    timestamp: a.timestamp,
                    value: a.value,
                })
                .collect(),
            tags: span.tags,
            debug: span.debug,
            shared: span.shared,
        }
    }
}

/// A hex id of `bytes` bytes (shorter ones left-padded with zeros, as Zipkin's 64-bit trace ids).
fn id(text: &str, bytes: usize, what: &str) -> Result<Vec<u8>, String> {
    if text.is_empty() || text.len() > bytes * 2 {
        return Err(format!(
            "{what} {text:?} must be 1 to {} hex characters",
            bytes * 2
        ));
    }
    let padded = format!("{text:0>width$}", width = bytes * 2);
    let decoded = const_hex::decode(&padded).map_err(|_| format!("{what} {text:?} is not hex"))?;
    if decoded.iter().all(|b| *b == 0) {
        return Err(format!("{what} {text:?} is all zeros"));
    }
    Ok(decoded)
}

fn string(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

/// The id a shared span gets: its sent id with the top bit of each half flipped, so the same span
/// sent twice gets the same id, and its low 32 bits (what aggregates link parents by) differ from
/// its client half's.
fn shared_span_id(sent: &[u8]) -> Vec<u8> {
    let mut id = sent.to_vec();
    id[0] ^= 0x80;
    id[4] ^= 0x80;
    if id.iter().all(|b| *b == 0) {
        id[7] = 1;
    }
    id
}

fn status_code(text: &str) -> Option<i32> {
    Some(match text {
        "ERROR" | "Error" | "STATUS_CODE_ERROR" => StatusCode::Error as i32,
        "OK" | "Ok" | "STATUS_CODE_OK" => StatusCode::Ok as i32,
        "UNSET" | "Unset" | "STATUS_CODE_UNSET" => StatusCode::Unset as i32,
        _ => return None,
    })
}

/// One Zipkin span as an OTLP span, with its service and scope.
fn to_otlp(z: ZipkinSpan) -> Result<(String, InstrumentationScope, Span), String> {
    let trace_id = id(&z.trace_id, 16, "traceId")?;
    let sent_id = id(&z.id, 8, "id")?;
    let mut tags = z.tags;
    // An all-zero parent id is no parent, as Zipkin reads it.
    let mut parent = match z.parent_id.as_deref() {
        Some(p) if !p.is_empty() && p.bytes().any(|c| c != b'0') => id(p, 8, "parentId")?,
        _ => Vec::new(),
    };
    let mut span_id = sent_id.clone();
    let mut attributes = Vec::new();
    if z.shared && z.kind.as_deref() == Some("SERVER") {
        if !parent.is_empty() {
            attributes.push(string(SHARED_PARENT_ID, const_hex::encode(&parent)));
        }
        parent = sent_id.clone();
        span_id = shared_span_id(&sent_id);
        attributes.push(string(SHARED_ID, const_hex::encode(&sent_id)));
    }
    let kind = match z.kind.as_deref() {
        Some("CLIENT") => SpanKind::Client,
        Some("SERVER") => SpanKind::Server,
        Some("PRODUCER") => SpanKind::Producer,
        Some("CONSUMER") => SpanKind::Consumer,
        Some(other) => {
            return Err(format!(
                "kind {other:?} is not CLIENT, SERVER, PRODUCER or CONSUMER"
            ))
        }
        None if tags.get("span.kind").map(String::as_str) == Some("internal") => {
            tags.remove("span.kind");
            SpanKind::Internal
        }
        None => SpanKind::Unspecified,
    };
    let mut status = None;
    if let Some(code) = tags.remove("otel.status_code") {
        status = Some(Status {
            code: status_code(&code).unwrap_or(0),
            message: tags.remove("otel.status_description").unwrap_or_default(),
        });
    }
    if let Some(error) = tags.get("error").cloned() {
        let message = status.take().map(|s| s.message).unwrap_or_default();
        status = Some(Status {
            code: StatusCode::Error as i32,
            message,
        });
        if error == "true" {
            tags.remove("error");
        }
    }
    let trace_state = tags.remove("w3c.tracestate").unwrap_or_default();
    let scope = InstrumentationScope {
        name: tags
            .remove("otel.scope.name")
            .or_else(|| tags.remove("otel.library.name"))
            .unwrap_or_default(),
        version: tags
            .remove("otel.scope.version")
            .or_else(|| tags.remove("otel.library.version"))
            .unwrap_or_default(),
        ..Default::default()
    };
    attributes.extend(tags.into_iter().map(|(k, v)| string(&k, v)));
    let local = z.local_endpoint.unwrap_or_default();
    if let Some(ip) = local.ipv4.or(local.ipv6) {
        attributes.push(string("net.host.ip", ip));
    }
    if let Some(port) = local.port.filter(|p| *p > 0) {
        attributes.push(int("net.host.port", port.into()));
    }
    if let Some(remote) = z.remote_endpoint {
        if let Some(service) = remote.service_name.filter(|s| !s.is_empty()) {
            attributes.push(string("peer.service", service));
        }
        if let Some(ip) = remote.ipv4.or(remote.ipv6) {
            attributes.push(string("net.peer.ip", ip));
        }
        if let Some(port) = remote.port.filter(|p| *p > 0) {
            attributes.push(int("net.peer.port", port.into()));
        }
    }
    let start = z
        .timestamp
        .unwrap_or(0)
        .checked_mul(1000)
        .ok_or("timestamp is past the year 2554")?;
    let span = Span {
        trace_id,
        span_id,
        parent_span_id: parent,
        trace_state,
        name: z.name.unwrap_or_default(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: start.saturating_add(z.duration.unwrap_or(0).saturating_mul(1000)),
        attributes,
        events: z
            .annotations
            .into_iter()
            .map(|a| Event {
                time_unix_nano: a.timestamp.saturating_mul(1000),
                name: a.value,
                ..Default::default()
            })
            .collect(),
        status,
        ..Default::default()
    };
    let service = local
        .service_name
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown_service".to_string());
    Ok((service, scope, span))
}

/// Zipkin spans as one OTLP export: a resource per service, a scope per instrumentation library.
/// The first span that cannot be mapped (a bad id, an unknown kind) refuses the whole list, with
/// its position, as Zipkin's own decoder does.
pub fn to_request(spans: Vec<ZipkinSpan>) -> Result<ExportTraceServiceRequest, String> {
    let mut mapped = Vec::with_capacity(spans.len());
    for (i, span) in spans.into_iter().enumerate() {
        mapped.push(to_otlp(span).map_err(|e| format!("span {i}: {e}"))?);
    }
    // The server's own children of a shared span name the id it shared with its client half:
    // they move under the server half's new id, as the server sent them (same trace, same
    // service), wherever they sit in this list.
    // (service, the server half) of each shared span.
    let shared: Vec<(String, Span)> = mapped
        .iter()
        .filter(|(_, _, span)| span.attributes.iter().any(|kv| kv.key == SHARED_ID))
        .map(|(service, _, span)| (service.clone(), span.clone()))
        .collect();
    for (service, _, span) in &mut mapped {
        let server = shared.iter().find(|(server_service, server)| {
            server.trace_id == span.trace_id
                // The server half's parent is the id it shared.
                && server.parent_span_id == span.parent_span_id
                && server_service == service
                && server.span_id != span.span_id
        });
        if let Some((_, server)) = server {
            span.parent_span_id = server.span_id.clone();
        }
    }
    let mut by_service: BTreeMap<String, Vec<(InstrumentationScope, Span)>> = BTreeMap::new();
    for (service, scope, span) in mapped {
        by_service.entry(service).or_default().push((scope, span));
    }
    let resource_spans = by_service
        .into_iter()
        .map(|(service, spans)| {
            let scopes = crate::grouping::by_scope(spans);
            ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![string("service.name", service)],
                    ..Default::default()
                }),
                scope_spans: scopes,
                ..Default::default()
            }
        })
        .collect();
    Ok(ExportTraceServiceRequest { resource_spans })
}

/// A `POST /api/v2/spans` JSON body as one OTLP export.
pub fn decode_json(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let spans: Vec<ZipkinSpan> =
        serde_json::from_slice(body).map_err(|e| format!("invalid Zipkin JSON: {e}"))?;
    to_request(spans)
}

/// A `POST /api/v2/spans` protobuf (`ListOfSpans`) body as one OTLP export.
pub fn decode_proto(body: &[u8]) -> Result<ExportTraceServiceRequest, String> {
    let list = <proto::ListOfSpans as prost::Message>::decode(body)
        .map_err(|e| format!("invalid Zipkin protobuf: {e}"))?;
    to_request(list.spans.into_iter().map(ZipkinSpan::from_proto).collect())
}

fn text(value: &Value) -> String {
    crate::attributes::value_text(value)
}

/// A stored span as Zipkin shows it: the inverse of the ingest mapping, for spans from any
/// protocol (an OTLP span's attributes become tags, its status `otel.status_code` and `error`).
pub fn from_otlp(
    resource: Option<&Resource>,
    scope: Option<&InstrumentationScope>,
    span: &Span,
) -> ZipkinSpan {
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    let (mut local, mut remote) = (Endpoint::default(), Endpoint::default());
    let mut id = const_hex::encode(&span.span_id);
    let mut parent = (!span.parent_span_id.is_empty()
        && span.parent_span_id.iter().any(|b| *b != 0))
    .then(|| const_hex::encode(&span.parent_span_id));
    let mut shared = false;
    let mut shared_parent = None;
    for kv in &span.attributes {
        let Some(value) = kv.value.as_ref().and_then(|v| v.value.as_ref()) else {
            continue;
        };
        let value = text(value);
        match kv.key.as_str() {
            // The server half of a shared span: the id and parent it was sent with again.
            SHARED_ID => {
                shared = true;
                id = value;
            }
            SHARED_PARENT_ID => shared_parent = Some(value),
            "net.host.ip" if value.contains(':') => local.ipv6 = Some(value),
            "net.host.ip" => local.ipv4 = Some(value),
            "net.host.port" => local.port = value.parse().ok(),
            "peer.service" => remote.service_name = Some(value),
            "net.peer.ip" if value.contains(':') => remote.ipv6 = Some(value),
            "net.peer.ip" => remote.ipv4 = Some(value),
            "net.peer.port" => remote.port = value.parse().ok(),
            key => {
                tags.insert(key.to_string(), value);
            }
        }
    }
    if shared {
        parent = shared_parent;
    }
    if let Some(status) = &span.status {
        match StatusCode::try_from(status.code) {
            Ok(StatusCode::Error) => {
                tags.insert("otel.status_code".into(), "ERROR".into());
                tags.entry("error".into())
                    .or_insert_with(|| status.message.clone());
            }
            Ok(StatusCode::Ok) => {
                tags.insert("otel.status_code".into(), "OK".into());
            }
            _ => {}
        }
        if !status.message.is_empty() {
            tags.insert("otel.status_description".into(), status.message.clone());
        }
    }
    if let Some(scope) = scope.filter(|s| !s.name.is_empty()) {
        tags.insert("otel.scope.name".into(), scope.name.clone());
        if !scope.version.is_empty() {
            tags.insert("otel.scope.version".into(), scope.version.clone());
        }
    }
    if !span.trace_state.is_empty() {
        tags.insert("w3c.tracestate".into(), span.trace_state.clone());
    }
    local.service_name = Some(crate::attributes::service_name(resource).to_string());
    let kind = match SpanKind::try_from(span.kind) {
        Ok(SpanKind::Client) => Some("CLIENT"),
        Ok(SpanKind::Server) => Some("SERVER"),
        Ok(SpanKind::Producer) => Some("PRODUCER"),
        Ok(SpanKind::Consumer) => Some("CONSUMER"),
        _ => None,
    };
    let micros = |ns: u64| ns / 1000;
    // A trace id with an all-zero high half was sent as 64 bits: Zipkin writes it so.
    let trace_id = match span.trace_id.split_at_checked(8) {
        Some((high, low)) if high.iter().all(|b| *b == 0) => const_hex::encode(low),
        _ => const_hex::encode(&span.trace_id),
    };
    ZipkinSpan {
        trace_id,
        parent_id: parent,
        id,
        kind: kind.map(str::to_string),
        name: (!span.name.is_empty()).then(|| span.name.clone()),
        timestamp: (span.start_time_unix_nano > 0).then(|| micros(span.start_time_unix_nano)),
        duration: Some(
            micros(
                span.end_time_unix_nano
                    .saturating_sub(span.start_time_unix_nano),
            )
            .max(1),
        ),
        local_endpoint: Some(local),
        remote_endpoint: (remote != Endpoint::default()).then_some(remote),
        annotations: span
            .events
            .iter()
            .map(|e| Annotation {
                timestamp: micros(e.time_unix_nano),
                value: e.name.clone(),
            })
            .collect(),
        tags,
        debug: false,
        shared,
    }
}

/// Every span of a trace (OTLP) as Zipkin spans, ordered by start.
pub fn trace(resource_spans: &[ResourceSpans]) -> Vec<ZipkinSpan> {
    let mut spans: Vec<ZipkinSpan> = resource_spans
        .iter()
        .flat_map(|rs| {
            rs.scope_spans.iter().flat_map(move |ss| {
                ss.spans
                    .iter()
                    .map(move |s| from_otlp(rs.resource.as_ref(), ss.scope.as_ref(), s))
            })
        })
        .collect();
    spans.sort_by_key(|s| s.timestamp);
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zipkin(json: &str) -> Vec<ZipkinSpan> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn zipkin_spans_map_to_otlp_and_back() {
        let sent = zipkin(
            r#"[{"traceId": "463ac35c9f6413ad", "id": "a2fb4a1d1a96d312", "parentId": "0020000000000001",
                 "kind": "CLIENT", "name": "get /api", "timestamp": 1700000000000000, "duration": 1500,
                 "localEndpoint": {"serviceName": "frontend", "ipv4": "10.0.0.1", "port": 8080},
                 "remoteEndpoint": {"serviceName": "backend", "ipv4": "10.0.0.2", "port": 9000},
                 "annotations": [{"timestamp": 1700000000000100, "value": "ws"}],
                 "tags": {"http.method": "GET", "error": "timeout", "otel.library.name": "lib"}}]"#,
        );
        let request = to_request(sent.clone()).unwrap();
        let rs = &request.resource_spans[0];
        assert_eq!(
            crate::attributes::service_name(rs.resource.as_ref()),
            "frontend"
        );
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "lib");
        let span = &ss.spans[0];
        assert_eq!(span.trace_id.len(), 16, "64-bit trace ids are left-padded");
        assert_eq!(span.kind, SpanKind::Client as i32);
        assert_eq!(
            span.end_time_unix_nano - span.start_time_unix_nano,
            1_500_000
        );
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        assert_eq!(span.events[0].name, "ws");
        let back = from_otlp(rs.resource.as_ref(), ss.scope.as_ref(), span);
        assert_eq!(
            back.trace_id, "463ac35c9f6413ad",
            "64-bit ids come back as sent"
        );
        assert_eq!(back.remote_endpoint, sent[0].remote_endpoint);
        assert_eq!(back.local_endpoint, sent[0].local_endpoint);
        assert_eq!(back.tags["http.method"], "GET");
        assert_eq!(back.tags["error"], "timeout");
        assert_eq!(back.annotations, sent[0].annotations);
    }

    #[test]
    fn a_shared_server_half_becomes_the_client_halfs_child() {
        let request = to_request(zipkin(
            r#"[{"traceId": "1", "id": "2", "kind": "CLIENT", "name": "call", "timestamp": 1, "duration": 10,
                 "localEndpoint": {"serviceName": "a"}},
                {"traceId": "1", "id": "2", "kind": "SERVER", "shared": true, "name": "serve",
                 "timestamp": 2, "duration": 5, "localEndpoint": {"serviceName": "b"}}]"#,
        ))
        .unwrap();
        let spans: Vec<&Span> = request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans[0].spans)
            .collect();
        let (client, server) = (spans[0], spans[1]);
        assert_eq!(server.parent_span_id, client.span_id);
        assert_ne!(server.span_id, client.span_id);
        let back = from_otlp(request.resource_spans[1].resource.as_ref(), None, server);
        assert!(back.shared);
        assert_eq!(back.id, "0000000000000002");
    }

    #[test]
    fn a_shared_spans_children_follow_it_and_its_low_bits_differ() {
        let request = to_request(zipkin(
            r#"[{"traceId": "1", "id": "2", "kind": "CLIENT", "name": "call", "timestamp": 1, "duration": 10,
                 "localEndpoint": {"serviceName": "a"}},
                {"traceId": "1", "id": "3", "parentId": "2", "name": "query", "timestamp": 3, "duration": 1,
                 "localEndpoint": {"serviceName": "b"}},
                {"traceId": "1", "id": "2", "kind": "SERVER", "shared": true, "name": "serve",
                 "timestamp": 2, "duration": 5, "localEndpoint": {"serviceName": "b"}}]"#,
        ))
        .unwrap();
        let b = &request.resource_spans[1].scope_spans[0].spans;
        let (child, server) = (&b[0], &b[1]);
        assert_eq!(child.parent_span_id, server.span_id);
        let client = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_ne!(
            client.span_id[4..],
            server.span_id[4..],
            "the low bits aggregates link by"
        );
        assert_eq!(server.parent_span_id, client.span_id);
    }

    #[test]
    fn nulls_and_zero_parents_read_as_absent() {
        let request = to_request(zipkin(
            r#"[{"traceId": "1", "id": "2", "parentId": "0000000000000000", "tags": null,
                 "annotations": null, "shared": null, "debug": null}]"#,
        ))
        .unwrap();
        assert!(request.resource_spans[0].scope_spans[0].spans[0]
            .parent_span_id
            .is_empty());
        let huge = to_request(zipkin(
            r#"[{"traceId": "1", "id": "2", "timestamp": 18446744073709551615}]"#,
        ));
        assert!(huge.unwrap_err().contains("timestamp"));
    }

    #[test]
    fn bad_spans_are_refused_with_their_position() {
        for (json, reason) in [
            (
                r#"[{"traceId": "xyz", "id": "1"}]"#,
                "span 0: traceId \"xyz\" is not hex",
            ),
            (r#"[{"traceId": "1", "id": "0"}]"#, "all zeros"),
            (
                r#"[{"traceId": "1", "id": "1", "kind": "SIDEWAYS"}]"#,
                "kind \"SIDEWAYS\"",
            ),
        ] {
            let error = to_request(zipkin(json)).unwrap_err();
            assert!(error.contains(reason), "{json}: {error}");
        }
    }
}
