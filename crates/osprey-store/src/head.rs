//! The head index: an in-memory index of the spans of one head generation, small enough to keep
//! millions of spans.
//!
//! It holds no span bodies, only what search and trace lookup need to find them (trace id, service,
//! name, kind, times, status) plus the WAL location of the record that carries each span. Bodies are
//! read back from the log on demand.
//!
//! Memory is what limits how much the head can hold, so the layout is tight: span entries (48 bytes)
//! live in fixed-size chunks, never reallocated, and the spans of a trace are chained through them
//! (`previous`) instead of each trace owning a `Vec`.

use std::collections::{BTreeMap, HashMap};

use osprey_model::attributes::service_name;
use osprey_model::otlp::{status::StatusCode, ExportTraceServiceRequest};
use osprey_model::TraceId;
use prost::Message;

use crate::wal::RecordLocation;

/// One span's index entry.
#[derive(Debug, Clone, Copy)]
pub struct SpanEntry {
    /// The trace's span indexed before this one, or [`NO_SPAN`].
    previous: u32,
    /// Index into [`Head::record`] of the record that holds the span.
    pub record: u32,
    /// The span's position among all spans of its record, in resource → scope → span order.
    pub position: u32,
    /// The low 32 bits of the span id and of the parent span id (0: none): enough to link parents and
    /// children within one trace, for the service graph.
    pub id_low: u32,
    pub parent_low: u32,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub service: u32,
    pub name: u32,
    /// OTLP span kind (0–5).
    pub kind: u8,
    pub error: bool,
    /// No (or an all-zero) parent span id.
    pub root: bool,
}

const NO_SPAN: u32 = u32::MAX;
const CHUNK_BITS: u32 = 16;
const CHUNK_LEN: usize = 1 << CHUNK_BITS;

#[derive(Debug)]
pub struct TraceEntry {
    pub id: TraceId,
    pub start_ns: u64,
    pub end_ns: u64,
    pub span_count: u32,
    /// The trace's most recently indexed span.
    last_span: u32,
}

/// Span entries in chunks of fixed capacity: growing never copies (or doubles) what is there.
#[derive(Default)]
struct SpanEntries {
    chunks: Vec<Vec<SpanEntry>>,
    len: u32,
}

impl SpanEntries {
    fn push(&mut self, entry: SpanEntry) -> u32 {
        if (self.len as usize).is_multiple_of(CHUNK_LEN) {
            self.chunks.push(Vec::with_capacity(CHUNK_LEN));
        }
        self.chunks
            .last_mut()
            .expect("a chunk was just ensured")
            .push(entry);
        self.len += 1;
        self.len - 1
    }

    fn get(&self, index: u32) -> &SpanEntry {
        &self.chunks[(index >> CHUNK_BITS) as usize][index as usize & (CHUNK_LEN - 1)]
    }
}

/// The low 32 bits of a span id (0 for none): what the head and blocks link parents by.
pub(crate) fn low_bits(id: &[u8]) -> u32 {
    id.get(id.len().saturating_sub(4)..)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_be_bytes)
}

/// Strings interned to small ids, so each span entry stays a few dozen bytes (and aggregates keep
/// names once, not per span).
#[derive(Default)]
pub struct Interner {
    names: Vec<String>,
    /// aHash: queries intern every span's names, and SipHash was a tenth of a service graph.
    ids: HashMap<String, u32, ahash::RandomState>,
}

impl Interner {
    /// The id of `name`, given it on first sight.
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }

    pub fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }
}

#[derive(Default)]
pub struct Head {
    services: Interner,
    names: Interner,
    records: Vec<RecordLocation>,
    spans: SpanEntries,
    traces: Vec<TraceEntry>,
    by_id: HashMap<TraceId, u32>,
    /// (service, span name) → bit set of the span kinds seen.
    operations: BTreeMap<(u32, u32), u8>,
    span_count: u64,
    /// Earliest span start and latest span end.
    time_range: Option<(u64, u64)>,
    /// Bytes of the log records indexed.
    record_bytes: u64,
}

impl Head {
    /// Indexes the spans of a log record as replay reads it back (`payload`: the export's
    /// protobuf encoding); false when it does not decode (then nothing is indexed).
    pub fn insert_record(&mut self, location: RecordLocation, payload: &[u8]) -> bool {
        match ExportTraceServiceRequest::decode(payload) {
            Ok(request) => {
                self.insert(location, &request);
                true
            }
            Err(_) => false,
        }
    }

    /// Indexes every span of a record that the WAL stored at `location`. Spans with invalid trace ids
    /// (which ingest never lets through) are skipped.
    pub fn insert(&mut self, location: RecordLocation, request: &ExportTraceServiceRequest) {
        let record = self.records.len() as u32;
        self.records.push(location);
        self.record_bytes += u64::from(location.len);
        let mut position = 0u32;
        for rs in &request.resource_spans {
            let service = self.services.intern(service_name(rs.resource.as_ref()));
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    let this_position = position;
                    position += 1;
                    let Ok(trace_id) = TraceId::from_bytes(&span.trace_id) else {
                        continue;
                    };
                    let name = self.names.intern(&span.name);
                    let kind = span.kind.clamp(0, 7) as u8;
                    *self.operations.entry((service, name)).or_default() |= 1 << kind;
                    let mut entry = SpanEntry {
                        previous: NO_SPAN,
                        record,
                        position: this_position,
                        id_low: low_bits(&span.span_id),
                        parent_low: low_bits(&span.parent_span_id),
                        start_ns: span.start_time_unix_nano,
                        duration_ns: span
                            .end_time_unix_nano
                            .saturating_sub(span.start_time_unix_nano),
                        service,
                        name,
                        kind,
                        error: span
                            .status
                            .as_ref()
                            .is_some_and(|s| s.code == StatusCode::Error as i32),
                        root: span.parent_span_id.iter().all(|b| *b == 0),
                    };
                    let end_ns = entry.start_ns + entry.duration_ns;
                    self.time_range = Some(match self.time_range {
                        Some((start, end)) => (start.min(entry.start_ns), end.max(end_ns)),
                        None => (entry.start_ns, end_ns),
                    });
                    let index = *self.by_id.entry(trace_id).or_insert_with(|| {
                        self.traces.push(TraceEntry {
                            id: trace_id,
                            start_ns: entry.start_ns,
                            end_ns,
                            span_count: 0,
                            last_span: NO_SPAN,
                        });
                        self.traces.len() as u32 - 1
                    });
                    let trace = &mut self.traces[index as usize];
                    trace.start_ns = trace.start_ns.min(entry.start_ns);
                    trace.end_ns = trace.end_ns.max(end_ns);
                    entry.previous = trace.last_span;
                    trace.last_span = self.spans.push(entry);
                    trace.span_count += 1;
                    self.span_count += 1;
                }
            }
        }
    }

    pub fn trace(&self, id: &TraceId) -> Option<&TraceEntry> {
        self.by_id.get(id).map(|i| &self.traces[*i as usize])
    }

    /// Traces by the order their first span arrived, newest first, from just before position `before`
    /// (`trace_count()` to start from the newest). Positions never change, so a scan that releases the
    /// lock between chunks resumes exactly where it stopped, whatever arrived meanwhile.
    pub fn traces_newest_first(&self, before: usize) -> impl Iterator<Item = &TraceEntry> {
        self.traces[..before.min(self.traces.len())].iter().rev()
    }

    /// The spans of a trace, newest first.
    pub fn spans<'a>(&'a self, trace: &TraceEntry) -> impl Iterator<Item = &'a SpanEntry> + 'a {
        let mut next = trace.last_span;
        std::iter::from_fn(move || {
            (next != NO_SPAN).then(|| {
                let span = self.spans.get(next);
                next = span.previous;
                span
            })
        })
    }

    /// The root span, or the earliest span while the root has not arrived.
    pub fn root(&self, trace: &TraceEntry) -> Option<&SpanEntry> {
        self.spans(trace)
            .filter(|s| s.root)
            .min_by_key(|s| s.start_ns)
            .or_else(|| self.spans(trace).min_by_key(|s| s.start_ns))
    }

    pub fn record(&self, record: u32) -> RecordLocation {
        self.records[record as usize]
    }

    pub fn service_id(&self, name: &str) -> Option<u32> {
        self.services.ids.get(name).copied()
    }

    pub fn name_id(&self, name: &str) -> Option<u32> {
        self.names.ids.get(name).copied()
    }

    pub fn service_name(&self, id: u32) -> &str {
        self.services.name(id)
    }

    pub fn span_name(&self, id: u32) -> &str {
        self.names.name(id)
    }

    /// Every service name, sorted.
    pub fn services(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.services.names.iter().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The operations of one service: (span name, OTLP span kind) pairs, sorted by name.
    pub fn operations(&self, service: u32) -> Vec<(&str, u8)> {
        let mut out: Vec<(&str, u8)> = self
            .operations
            .range((service, 0)..=(service, u32::MAX))
            .flat_map(|(&(_, name), &kinds)| {
                (0..8u8)
                    .filter(move |k| kinds & (1 << k) != 0)
                    .map(move |k| (self.span_name(name), k))
            })
            .collect();
        out.sort_unstable();
        out
    }

    pub fn span_count(&self) -> u64 {
        self.span_count
    }

    pub fn time_range(&self) -> Option<(u64, u64)> {
        self.time_range
    }

    pub fn record_bytes(&self) -> u64 {
        self.record_bytes
    }

    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::fixtures::{request, service_spans, span};
    use osprey_model::otlp::{status, Status};

    fn at(segment: u64, len: u32) -> RecordLocation {
        RecordLocation {
            segment,
            offset: 0,
            len,
        }
    }

    fn ids(head: &Head, trace: u8) -> Vec<(u32, u32)> {
        let entry = head.trace(&TraceId([trace; 16])).expect("the trace");
        head.spans(entry).map(|s| (s.record, s.position)).collect()
    }

    #[test]
    fn a_trace_sent_in_pieces_is_one_entry_with_every_span_and_its_extent() {
        let mut head = Head::default();
        head.insert(
            at(1, 100),
            &request("cart", vec![span(7, 2, Some(1), "load", 2_000, 3_000)]),
        );
        head.insert(
            at(1, 50),
            &request("web", vec![span(7, 1, None, "GET /", 1_000, 9_000)]),
        );
        head.insert(
            at(2, 10),
            &request("web", vec![span(8, 1, None, "GET /", 5_000, 6_000)]),
        );

        assert_eq!(head.trace_count(), 2);
        assert_eq!(head.span_count(), 3);
        assert_eq!(head.record_bytes(), 160);
        assert_eq!(head.time_range(), Some((1_000, 9_000)));
        let trace = head.trace(&TraceId([7; 16])).expect("trace 7");
        assert_eq!(
            (trace.start_ns, trace.end_ns, trace.span_count),
            (1_000, 9_000, 2)
        );
        // Newest first, each pointing at its record and place in it.
        assert_eq!(ids(&head, 7), vec![(1, 0), (0, 0)]);
        assert_eq!(head.record(1).len, 50);
        let root = head.root(trace).expect("a root");
        assert_eq!(head.service_name(root.service), "web");
        assert_eq!(head.span_name(root.name), "GET /");
        // Arrival order, newest first, from any position.
        let order: Vec<u8> = head
            .traces_newest_first(head.trace_count())
            .map(|t| t.id.0[0])
            .collect();
        assert_eq!(order, vec![8, 7]);
        let oldest: Vec<u8> = head.traces_newest_first(1).map(|t| t.id.0[0]).collect();
        assert_eq!(oldest, vec![7]);
    }

    #[test]
    fn the_earliest_span_stands_in_for_a_root_that_has_not_arrived() {
        let mut head = Head::default();
        head.insert(
            at(1, 1),
            &request("db", vec![span(3, 5, Some(4), "SELECT", 4_000, 5_000)]),
        );
        head.insert(
            at(1, 1),
            &request("api", vec![span(3, 4, Some(1), "charge", 2_000, 6_000)]),
        );
        let trace = head.trace(&TraceId([3; 16])).expect("trace 3");
        let stand_in = head.root(trace).expect("a stand-in");
        assert!(!stand_in.root);
        assert_eq!(head.span_name(stand_in.name), "charge");
        // Once it comes, the root is the root, even with a child that started earlier (clock skew).
        head.insert(
            at(1, 1),
            &request("web", vec![span(3, 1, None, "GET /", 3_000, 7_000)]),
        );
        let trace = head.trace(&TraceId([3; 16])).expect("trace 3");
        let root = head.root(trace).expect("the root");
        assert!(root.root);
        assert_eq!(head.span_name(root.name), "GET /");
    }

    #[test]
    fn services_operations_kinds_and_errors_are_indexed() {
        let mut head = Head::default();
        let mut failed = span(1, 1, None, "POST /pay", 0, 10);
        failed.kind = 2;
        failed.status = Some(Status {
            code: status::StatusCode::Error as i32,
            ..Default::default()
        });
        let mut client = span(1, 2, Some(1), "POST /pay", 1, 5);
        client.kind = 3;
        let mut request = request("payments", vec![failed, client]);
        request.resource_spans.push(service_spans(
            "bank",
            vec![span(1, 3, Some(2), "authorize", 2, 4)],
        ));
        head.insert(at(1, 1), &request);

        assert_eq!(head.services(), vec!["bank", "payments"]);
        let payments = head.service_id("payments").expect("payments");
        assert_eq!(
            head.operations(payments),
            vec![("POST /pay", 2), ("POST /pay", 3)]
        );
        assert_eq!(head.service_id("nobody"), None);
        let trace = head.trace(&TraceId([1; 16])).expect("the trace");
        let errors: Vec<bool> = head.spans(trace).map(|s| s.error).collect();
        assert_eq!(errors, vec![false, false, true]);
        // Positions count every span of the record, across resources.
        assert_eq!(ids(&head, 1), vec![(0, 2), (0, 1), (0, 0)]);
        let bank = head.spans(trace).next().expect("the bank's span");
        assert_eq!(bank.parent_low, 0x0202_0202);
    }

    #[test]
    fn spans_with_invalid_trace_ids_are_skipped_but_keep_their_places() {
        let mut head = Head::default();
        let mut bad = span(0, 1, None, "zero trace id", 0, 1);
        bad.trace_id = vec![0; 16];
        let mut short = span(0, 2, None, "short trace id", 0, 1);
        short.trace_id = vec![1; 3];
        head.insert(
            at(1, 1),
            &request("svc", vec![bad, short, span(9, 3, None, "ok", 0, 1)]),
        );
        assert_eq!(head.span_count(), 1);
        assert_eq!(ids(&head, 9), vec![(0, 2)]);
        assert!(!head.insert_record(at(1, 1), b"\xff\xff not a request"));
        assert_eq!(
            head.span_count(),
            1,
            "an undecodable record indexes nothing"
        );
    }

    #[test]
    fn span_entries_cross_chunk_boundaries() {
        let mut head = Head::default();
        let spans: Vec<_> = (0..CHUNK_LEN as u64 + 5)
            .map(|i| {
                let mut s = span(4, 0, None, "many", i, i + 1);
                s.span_id = (i + 1).to_be_bytes().to_vec();
                s
            })
            .collect();
        head.insert(at(1, 1), &request("svc", spans));
        let trace = head.trace(&TraceId([4; 16])).expect("the trace");
        assert_eq!(trace.span_count as usize, CHUNK_LEN + 5);
        let starts: Vec<u64> = head.spans(trace).map(|s| s.start_ns).collect();
        assert_eq!(starts.len(), CHUNK_LEN + 5);
        assert!(
            starts.windows(2).all(|w| w[0] == w[1] + 1),
            "newest first, none lost"
        );
    }
}
