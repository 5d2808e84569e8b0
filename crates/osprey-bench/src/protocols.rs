//! The ingest benchmark's other protocols: the same generated spans as Zipkin JSON
//! (`POST /api/v2/spans`) or as Jaeger thrift (`POST /api/traces`, a binary `Batch`), sent over
//! HTTP, so their rates stand beside OTLP's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes};
use clap::ValueEnum;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tonic::Status;

use osprey_model::otlp::{any_value::Value, ExportTraceServiceRequest, KeyValue};

use super::ingest::ClientStats;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Protocol {
    /// OTLP/gRPC.
    Otlp,
    /// Zipkin v2 JSON over HTTP.
    Zipkin,
    /// Jaeger thrift (binary `Batch`) over HTTP.
    Jaeger,
}

impl Protocol {
    /// The path and content type an export of this protocol is posted with.
    pub fn http_target(self) -> (&'static str, &'static str) {
        match self {
            Protocol::Zipkin => ("/api/v2/spans", "application/json"),
            Protocol::Jaeger | Protocol::Otlp => ("/api/traces", "application/x-thrift"),
        }
    }

    /// One request as this protocol's body.
    pub fn encode(self, request: &ExportTraceServiceRequest) -> Bytes {
        match self {
            Protocol::Otlp => Bytes::from(prost::Message::encode_to_vec(request)),
            Protocol::Zipkin => {
                let spans: Vec<_> = request
                    .resource_spans
                    .iter()
                    .flat_map(|rs| {
                        rs.scope_spans.iter().flat_map(move |ss| {
                            ss.spans.iter().map(move |s| {
                                osprey_model::zipkin::from_otlp(
                                    rs.resource.as_ref(),
                                    ss.scope.as_ref(),
                                    s,
                                )
                            })
                        })
                    })
                    .collect();
                Bytes::from(serde_json::to_vec(&spans).expect("spans serialize"))
            }
            Protocol::Jaeger => jaeger_batch(request),
        }
    }

    /// Decodes (and maps to OTLP) a body of this protocol: the receiver's work before storing.
    pub fn decode(self, body: &Bytes) -> usize {
        let request = match self {
            Protocol::Otlp => {
                <ExportTraceServiceRequest as prost::Message>::decode(body.clone()).ok()
            }
            Protocol::Zipkin => osprey_model::zipkin::decode_json(body).ok(),
            Protocol::Jaeger => osprey_ingest::jaeger_thrift::decode_batch(body).ok(),
        };
        request.map_or(0, |r| {
            r.resource_spans
                .iter()
                .flat_map(|rs| &rs.scope_spans)
                .map(|ss| ss.spans.len())
                .sum()
        })
    }
}

/// A binary-protocol field header.
fn field(out: &mut Vec<u8>, kind: u8, id: i16) {
    out.put_u8(kind);
    out.put_i16(id);
}

fn string_field(out: &mut Vec<u8>, id: i16, text: &str) {
    field(out, 11, id);
    out.put_i32(text.len() as i32);
    out.put_slice(text.as_bytes());
}

fn i64_field(out: &mut Vec<u8>, id: i16, value: i64) {
    field(out, 10, id);
    out.put_i64(value);
}

fn id64(bytes: &[u8]) -> i64 {
    let mut id = [0u8; 8];
    let n = bytes.len().min(8);
    id[8 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    i64::from_be_bytes(id)
}

/// String tags as a list of `Tag` structs (field `id`).
fn tags_field(out: &mut Vec<u8>, id: i16, tags: &[KeyValue]) {
    field(out, 15, id);
    out.put_u8(12);
    out.put_i32(tags.len() as i32);
    for kv in tags {
        let text = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(other) => osprey_model::attributes::value_text(other),
            None => String::new(),
        };
        string_field(out, 1, &kv.key);
        field(out, 8, 2);
        out.put_i32(0);
        string_field(out, 3, &text);
        out.put_u8(0);
    }
}

/// Every span of the request as one Jaeger `Batch`, under the first resource's service (the
/// benchmark sends one service a request for this protocol, as a jaeger-client process does).
fn jaeger_batch(request: &ExportTraceServiceRequest) -> Bytes {
    let mut out = Vec::new();
    let first = request.resource_spans.first();
    let service = osprey_model::attributes::service_name(first.and_then(|rs| rs.resource.as_ref()));
    field(&mut out, 12, 1);
    string_field(&mut out, 1, service);
    out.put_u8(0);
    let spans: Vec<_> = request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .collect();
    field(&mut out, 15, 2);
    out.put_u8(12);
    out.put_i32(spans.len() as i32);
    for span in spans {
        let (high, low) = span.trace_id.split_at(span.trace_id.len().min(16) / 2);
        i64_field(&mut out, 1, id64(low));
        i64_field(&mut out, 2, id64(high));
        i64_field(&mut out, 3, id64(&span.span_id));
        i64_field(&mut out, 4, id64(&span.parent_span_id));
        string_field(&mut out, 5, &span.name);
        field(&mut out, 8, 7);
        out.put_i32(1);
        i64_field(&mut out, 8, (span.start_time_unix_nano / 1000) as i64);
        let duration = span
            .end_time_unix_nano
            .saturating_sub(span.start_time_unix_nano);
        i64_field(&mut out, 9, (duration / 1000) as i64);
        tags_field(&mut out, 10, &span.attributes);
        out.put_u8(0);
    }
    out.put_u8(0);
    Bytes::from(out)
}

/// Posts `bodies` round-robin from `clients` concurrent clients for `seconds`.
pub async fn http_load(
    protocol: Protocol,
    base_url: &str,
    bodies: Arc<Vec<(Bytes, u64)>>,
    clients: usize,
    seconds: u64,
    accepted_so_far: &Arc<AtomicU64>,
) -> anyhow::Result<(Vec<ClientStats>, Duration)> {
    let (path, content_type) = protocol.http_target();
    let uri: hyper::Uri = format!("{base_url}{path}").parse()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for client in 0..clients.max(1) {
        let (uri, bodies, accepted_so_far) = (uri.clone(), bodies.clone(), accepted_so_far.clone());
        tasks.push(tokio::spawn(async move {
            let http = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
            let mut stats = ClientStats::default();
            let mut sent = 0usize;
            while Instant::now() < deadline {
                let (body, spans) = &bodies[(client + sent) % bodies.len()];
                sent += 1;
                let request = hyper::Request::post(uri.clone())
                    .header("content-type", content_type)
                    .body(Full::new(body.clone()))
                    .expect("a valid request");
                let at = Instant::now();
                let response = http.request(request).await;
                stats.latencies.push(at.elapsed());
                match response {
                    Ok(r) if r.status().is_success() => {
                        stats.accepted_spans += spans;
                        accepted_so_far.fetch_add(*spans, Ordering::Relaxed);
                    }
                    Ok(r) if r.status() == 429 || r.status() == 503 => {
                        stats.throttled += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.into_body().collect().await.map(|b| b.to_bytes());
                        stats.failed += 1;
                        stats.last_error = Some(Status::unknown(format!(
                            "{status}: {}",
                            text.map(|t| String::from_utf8_lossy(&t).into_owned())
                                .unwrap_or_default()
                        )));
                    }
                    Err(e) => {
                        stats.failed += 1;
                        stats.last_error = Some(Status::unavailable(e.to_string()));
                    }
                }
            }
            stats
        }));
    }
    let mut stats = Vec::new();
    for task in tasks {
        stats.push(task.await?);
    }
    Ok((stats, started.elapsed()))
}
