//! A cut's spans: the log records of a head generation, put in trace-id order without decoding them
//! whole first.
//!
//! Each record (an OTLP export, as it was received) is kept as its bytes. A first pass walks them
//! with messages that stop at the span: per span, its trace id and start time and a slice of the
//! record; resources and scopes are decoded once per export, not once per span. The references are
//! sorted, and then each trace's spans are decoded and written, one trace at a time. Memory is the
//! log's bytes and about 70 bytes a span (plus what the writer holds: a batch of rows and the encoded
//! file), instead of every span decoded or in Arrow builders at once.

use bytes::Bytes;
use parquet::errors::ParquetError;
use prost::Message;

use osprey_model::otlp::{InstrumentationScope, Resource, Span};
use osprey_model::TraceId;

use super::write::{BlockWriter, SpanRow};

/// `ExportTraceServiceRequest` with each `ResourceSpans` left encoded.
#[derive(Clone, PartialEq, Message)]
struct Export {
    #[prost(bytes = "bytes", repeated, tag = "1")]
    resource_spans: Vec<Bytes>,
}

/// `ResourceSpans`, its resource decoded and each `ScopeSpans` left encoded.
#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    scope_spans: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// `ScopeSpans`, its scope decoded and each `Span` left encoded.
#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    #[prost(message, optional, tag = "1")]
    scope: Option<InstrumentationScope>,
    #[prost(bytes = "bytes", repeated, tag = "2")]
    spans: Vec<Bytes>,
    #[prost(string, tag = "3")]
    schema_url: String,
}

/// The fields of a `Span` that order it; prost skips the rest without decoding it.
#[derive(Clone, PartialEq, Message)]
struct SpanOrder {
    #[prost(bytes = "bytes", tag = "1")]
    trace_id: Bytes,
    #[prost(fixed64, tag = "7")]
    start_time_unix_nano: u64,
}

/// The resource and scope a run of spans was sent under.
struct Context {
    resource: usize,
    scope: Option<InstrumentationScope>,
    schema_url: String,
}

struct SpanRef {
    trace_id: TraceId,
    start: u64,
    context: u32,
    bytes: Bytes,
}

/// The spans of log records, collected for one block.
#[derive(Default)]
pub struct LoggedSpans {
    resources: Vec<(Option<Resource>, String)>,
    contexts: Vec<Context>,
    spans: Vec<SpanRef>,
}

impl LoggedSpans {
    pub fn span_count(&self) -> usize {
        self.spans.len()
    }

    /// Adds the spans of one record (an encoded export). A record that does not decode (ingest
    /// validated it before logging it, so only damage does that) is skipped, as replay skips it.
    pub fn push_record(&mut self, record: Bytes) {
        let Ok(export) = Export::decode(record) else {
            return;
        };
        for rs in export.resource_spans {
            let Ok(rs) = ResourceSpans::decode(rs) else {
                continue;
            };
            self.resources.push((rs.resource, rs.schema_url));
            for ss in rs.scope_spans {
                let Ok(ss) = ScopeSpans::decode(ss) else {
                    continue;
                };
                let context = self.contexts.len() as u32;
                self.contexts.push(Context {
                    resource: self.resources.len() - 1,
                    scope: ss.scope,
                    schema_url: ss.schema_url,
                });
                for bytes in ss.spans {
                    let Ok(order) = SpanOrder::decode(bytes.clone()) else {
                        continue;
                    };
                    let Ok(trace_id) = TraceId::from_bytes(&order.trace_id) else {
                        continue;
                    };
                    self.spans.push(SpanRef {
                        trace_id,
                        start: order.start_time_unix_nano,
                        context,
                        bytes,
                    });
                }
            }
        }
    }

    /// Sorts the spans by trace and writes them, trace by trace.
    pub fn write(mut self, writer: &mut BlockWriter) -> Result<(), ParquetError> {
        self.spans.sort_unstable_by_key(|s| (s.trace_id, s.start));
        let mut decoded: Vec<(u32, Span)> = Vec::new();
        for trace in self.spans.chunk_by(|a, b| a.trace_id == b.trace_id) {
            decoded.clear();
            for span in trace {
                match Span::decode(span.bytes.clone()) {
                    Ok(whole) => decoded.push((span.context, whole)),
                    // Its order decoded, so only damage inside the span does this: skipped, as
                    // replay skips a damaged record.
                    Err(e) => tracing::warn!(error = %e, "a logged span does not decode; skipped"),
                }
            }
            let mut rows: Vec<SpanRow> = Vec::with_capacity(decoded.len());
            rows.extend(decoded.iter().map(|(context, span)| {
                let context = &self.contexts[*context as usize];
                let (resource, resource_schema_url) = &self.resources[context.resource];
                SpanRow {
                    resource: resource.as_ref(),
                    resource_schema_url,
                    scope: context.scope.as_ref(),
                    scope_schema_url: &context.schema_url,
                    span,
                }
            }));
            writer.push_trace(&mut rows)?;
        }
        Ok(())
    }
}
