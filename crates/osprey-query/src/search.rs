//! Search: the traces that have one span matching every condition, newest first.

use std::collections::HashMap;
use std::io;

use osprey_model::attributes;
use osprey_model::otlp::{ExportTraceServiceRequest, Resource, Span};
use osprey_model::TraceId;
use osprey_store::{Head, RecordLocation, SpanEntry};

use crate::Query;

/// What to look for. As in Jaeger, one span must satisfy every condition at once.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub service: Option<String>,
    pub operation: Option<String>,
    /// Attribute key and expected value (as text); matched against the span's attributes, then its
    /// resource's.
    pub attributes: Vec<(String, String)>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// The matching span starts at or after this time.
    pub start_ns: Option<u64>,
    /// The matching span starts at or before this time.
    pub end_ns: Option<u64>,
    pub limit: usize,
}

/// Traces examined per hold of the head's lock, so ingest never waits long behind a search.
const CHUNK: usize = 4096;
/// Decoded records kept while checking attributes, before the cache is dropped and refilled.
const RECORD_CACHE: usize = 128;

struct Candidate {
    trace: TraceId,
    /// Where the spans that passed the index conditions are; their attributes are still to check.
    spans: Vec<(RecordLocation, u32)>,
}

impl Query {
    pub fn search(&self, query: &TraceQuery) -> io::Result<Vec<TraceId>> {
        let mut found = Vec::new();
        let mut records: HashMap<RecordLocation, ExportTraceServiceRequest> = HashMap::new();
        let mut before = usize::MAX;
        while found.len() < query.limit {
            let (candidates, exhausted) = {
                let head = self.store.head();
                let Some(filter) = IndexFilter::new(&head, query) else {
                    return Ok(found);
                };
                let mut candidates = Vec::new();
                let mut scanned = 0;
                for trace in head.traces_newest_first(before).take(CHUNK) {
                    scanned += 1;
                    if !filter.overlaps(trace.start_ns, trace.end_ns) {
                        continue;
                    }
                    let spans: Vec<_> = head
                        .spans(trace)
                        .filter(|s| filter.matches(s))
                        .map(|s| (head.record(s.record), s.position))
                        .collect();
                    if !spans.is_empty() {
                        candidates.push(Candidate {
                            trace: trace.id,
                            spans,
                        });
                    }
                    if query.attributes.is_empty() && found.len() + candidates.len() >= query.limit
                    {
                        break;
                    }
                }
                before = before.min(head.trace_count()) - scanned;
                (candidates, scanned < CHUNK)
            };
            for candidate in candidates {
                if found.len() >= query.limit {
                    break;
                }
                if query.attributes.is_empty()
                    || self.any_has_attributes(&candidate.spans, &query.attributes, &mut records)?
                {
                    found.push(candidate.trace);
                }
            }
            if exhausted {
                break;
            }
        }
        Ok(found)
    }

    fn any_has_attributes(
        &self,
        spans: &[(RecordLocation, u32)],
        wanted: &[(String, String)],
        records: &mut HashMap<RecordLocation, ExportTraceServiceRequest>,
    ) -> io::Result<bool> {
        for &(location, position) in spans {
            if !records.contains_key(&location) {
                if records.len() >= RECORD_CACHE {
                    records.clear();
                }
                records.insert(location, self.store.read_record(location)?);
            }
            if let Some((resource, span)) = span_at(&records[&location], position) {
                let has = |key: &str, value: &str| {
                    attributes::matches(&span.attributes, key, value)
                        || resource.is_some_and(|r| attributes::matches(&r.attributes, key, value))
                };
                if wanted.iter().all(|(k, v)| has(k, v)) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// The span at `position` in resource → scope → span order, with its resource.
fn span_at(
    request: &ExportTraceServiceRequest,
    position: u32,
) -> Option<(Option<&Resource>, &Span)> {
    let mut remaining = position as usize;
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            if remaining < ss.spans.len() {
                return Some((rs.resource.as_ref(), &ss.spans[remaining]));
            }
            remaining -= ss.spans.len();
        }
    }
    None
}

/// The conditions the index can answer, resolved to interned ids.
struct IndexFilter {
    service: Option<u32>,
    name: Option<u32>,
    min_duration: u64,
    max_duration: u64,
    start: u64,
    end: u64,
}

impl IndexFilter {
    /// `None` when a named service or operation was never seen, so nothing can match.
    fn new(head: &Head, query: &TraceQuery) -> Option<IndexFilter> {
        Some(IndexFilter {
            service: match &query.service {
                Some(s) => Some(head.service_id(s)?),
                None => None,
            },
            name: match &query.operation {
                Some(n) => Some(head.name_id(n)?),
                None => None,
            },
            min_duration: query.min_duration_ns.unwrap_or(0),
            max_duration: query.max_duration_ns.unwrap_or(u64::MAX),
            start: query.start_ns.unwrap_or(0),
            end: query.end_ns.unwrap_or(u64::MAX),
        })
    }

    fn overlaps(&self, trace_start: u64, trace_end: u64) -> bool {
        trace_end >= self.start && trace_start <= self.end
    }

    fn matches(&self, span: &SpanEntry) -> bool {
        self.service.is_none_or(|s| s == span.service)
            && self.name.is_none_or(|n| n == span.name)
            && (self.min_duration..=self.max_duration).contains(&span.duration_ns)
            && (self.start..=self.end).contains(&span.start_ns)
    }
}
