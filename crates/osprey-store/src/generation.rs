//! A head generation: the in-memory index of the spans in a run of write-ahead log segments, and the
//! span source over it (bodies are read back from the log on demand).
//!
//! The head is cut into generations so that it can be released: the newest generation takes appends;
//! an older one is being written into a block, and is dropped, with its segments, once that block is
//! durable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{RwLock, RwLockReadGuard};
use prost::Message;

use osprey_model::attributes;
use osprey_model::derived_tags::{self, SpanFields};
use osprey_model::otlp::{
    ExportTraceServiceRequest, InstrumentationScope, Resource, ResourceSpans, ScopeSpans, Span,
};
use osprey_model::TraceId;

use crate::head::{Head, SpanEntry, TraceEntry};
use crate::source::{overlaps, SpanParts, SpanRef, SpanSource, TraceHit, TraceQuery};
use crate::wal::{RecordLocation, Wal};

/// Traces examined per hold of the head's lock, so ingest never waits long behind a query.
const CHUNK: usize = 4096;
/// Decoded records kept while checking attributes, before the cache is dropped and refilled.
const RECORD_CACHE: usize = 128;

pub struct Generation {
    /// The first write-ahead log segment indexed here. A generation owns every segment from this one
    /// up to the next generation's first.
    pub first_segment: u64,
    pub created: Instant,
    head: RwLock<Head>,
    wal: Arc<Wal>,
}

impl Generation {
    pub fn new(first_segment: u64, head: Head, wal: Arc<Wal>) -> Generation {
        Generation {
            first_segment,
            created: Instant::now(),
            head: RwLock::new(head),
            wal,
        }
    }

    /// Indexes a record; returns how many spans and how many new traces it added.
    pub fn insert(
        &self,
        location: RecordLocation,
        request: &ExportTraceServiceRequest,
    ) -> (u64, usize) {
        let mut head = self.head.write();
        let (spans, traces) = (head.span_count(), head.trace_count());
        head.insert(location, request);
        (head.span_count() - spans, head.trace_count() - traces)
    }

    /// A read view of the index. Hold it briefly: ingest waits while it is held.
    pub fn head(&self) -> RwLockReadGuard<'_, Head> {
        self.head.read()
    }

    fn read_record(&self, location: RecordLocation) -> io::Result<ExportTraceServiceRequest> {
        let payload = self.wal.read(location)?;
        ExportTraceServiceRequest::decode(payload.as_slice())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// Calls `f` for every indexed trace overlapping `[start_ns, end_ns]`, a chunk per hold of the lock.
    fn each_trace(&self, start_ns: u64, end_ns: u64, mut f: impl FnMut(&Head, &TraceEntry)) {
        let mut before = usize::MAX;
        loop {
            let head = self.head.read();
            let mut scanned = 0;
            for trace in head.traces_newest_first(before).take(CHUNK) {
                scanned += 1;
                if overlaps((trace.start_ns, trace.end_ns), (start_ns, end_ns)) {
                    f(&head, trace);
                }
            }
            before = before.min(head.trace_count()) - scanned;
            if scanned < CHUNK {
                return;
            }
        }
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
                records.insert(location, self.read_record(location)?);
            }
            if let Some((resource, scope, span)) = span_at(&records[&location], position) {
                if has_attributes(span, scope, resource, wanted) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }
}

/// Whether every wanted attribute is on the span or, failing that, on its resource, or is a tag
/// derived from the span's fields (`error=true` for an ERROR status).
fn has_attributes(
    span: &Span,
    scope: Option<&InstrumentationScope>,
    resource: Option<&Resource>,
    wanted: &[(String, String)],
) -> bool {
    wanted.iter().all(|(key, value)| {
        attributes::matches(&span.attributes, key, value)
            || resource.is_some_and(|r| attributes::matches(&r.attributes, key, value))
            || derived_tags::reads_as(key, value, &SpanFields::of(span, scope))
    })
}

fn span_ref<'a>(head: &'a Head, span: &SpanEntry) -> SpanRef<'a> {
    SpanRef {
        id_low: span.id_low,
        parent_low: span.parent_low,
        service: head.service_name(span.service),
        name: head.span_name(span.name),
        kind: span.kind,
        error: span.error,
        root: span.root,
        start_ns: span.start_ns,
        duration_ns: span.duration_ns,
    }
}

struct Candidate {
    hit: TraceHit,
    /// Where the spans that passed the index conditions are; their attributes are still to check.
    spans: Vec<(RecordLocation, u32)>,
}

impl SpanSource for Generation {
    fn time_range(&self) -> Option<(u64, u64)> {
        self.head.read().time_range()
    }

    fn trace(&self, id: &TraceId) -> io::Result<Vec<ResourceSpans>> {
        let locations: Vec<_> = {
            let head = self.head.read();
            let Some(trace) = head.trace(id) else {
                return Ok(Vec::new());
            };
            let records: BTreeSet<u32> = head.spans(trace).map(|s| s.record).collect();
            records.into_iter().map(|r| head.record(r)).collect()
        };
        let mut out = Vec::new();
        for location in locations {
            for rs in self.read_record(location)?.resource_spans {
                let scope_spans: Vec<ScopeSpans> = rs
                    .scope_spans
                    .into_iter()
                    .filter_map(|mut ss| {
                        ss.spans.retain(|s| s.trace_id == id.0);
                        (!ss.spans.is_empty()).then_some(ss)
                    })
                    .collect();
                if !scope_spans.is_empty() {
                    out.push(ResourceSpans { scope_spans, ..rs });
                }
            }
        }
        Ok(out)
    }

    fn trace_spans(&self, id: &TraceId, f: &mut dyn FnMut(&SpanRef)) -> io::Result<()> {
        let head = self.head.read();
        if let Some(trace) = head.trace(id) {
            for span in head.spans(trace) {
                f(&span_ref(&head, span));
            }
        }
        Ok(())
    }

    fn search(&self, query: &TraceQuery) -> io::Result<Vec<TraceHit>> {
        // Every trace with a span meeting the index's conditions, then the newest `limit` of them
        // (by trace start, as blocks rank them) whose attributes match too.
        let mut candidates = Vec::new();
        let mut before = usize::MAX;
        loop {
            let head = self.head.read();
            let Some(filter) = IndexFilter::new(&head, query) else {
                return Ok(Vec::new());
            };
            let mut scanned = 0;
            for trace in head.traces_newest_first(before).take(CHUNK) {
                scanned += 1;
                if !overlaps((trace.start_ns, trace.end_ns), (filter.start, filter.end)) {
                    continue;
                }
                let mut spans = head.spans(trace).filter(|s| filter.matches(s)).peekable();
                if spans.peek().is_none() {
                    continue;
                }
                candidates.push(Candidate {
                    hit: TraceHit {
                        trace_id: trace.id,
                        start_ns: trace.start_ns,
                    },
                    spans: if query.attributes.is_empty() {
                        Vec::new()
                    } else {
                        spans.map(|s| (head.record(s.record), s.position)).collect()
                    },
                });
            }
            before = before.min(head.trace_count()) - scanned;
            if scanned < CHUNK {
                break;
            }
        }
        candidates.sort_unstable_by(|a, b| {
            b.hit
                .start_ns
                .cmp(&a.hit.start_ns)
                .then(a.hit.trace_id.cmp(&b.hit.trace_id))
        });
        let mut found = Vec::new();
        let mut records: HashMap<RecordLocation, ExportTraceServiceRequest> = HashMap::new();
        for candidate in candidates {
            if found.len() >= query.limit {
                break;
            }
            if query.attributes.is_empty()
                || self.any_has_attributes(&candidate.spans, &query.attributes, &mut records)?
            {
                found.push(candidate.hit);
            }
        }
        Ok(found)
    }

    fn scan(
        &self,
        start_ns: u64,
        end_ns: u64,
        f: &mut dyn FnMut(&TraceId, &[SpanRef]),
    ) -> io::Result<()> {
        self.each_trace(start_ns, end_ns, |head, trace| {
            let spans: Vec<SpanRef> = head.spans(trace).map(|s| span_ref(head, s)).collect();
            f(&trace.id, &spans);
        });
        Ok(())
    }

    fn traces(
        &self,
        start_ns: u64,
        end_ns: u64,
        filter: Option<&TraceQuery>,
        // Log records are decoded whole: every part comes.
        _parts: SpanParts,
        f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
    ) -> io::Result<()> {
        let ids: Vec<TraceId> = match filter {
            Some(query) => self
                .search(&query.unbounded())?
                .into_iter()
                .map(|hit| hit.trace_id)
                .collect(),
            None => {
                let mut ids = Vec::new();
                self.each_trace(start_ns, end_ns, |_, trace| ids.push(trace.id));
                ids
            }
        };
        // A chunk of traces at a time: each of their log records decoded once, its spans handed
        // to the traces they belong to.
        for chunk in ids.chunks(CHUNK) {
            let (wanted, locations) = {
                let head = self.head.read();
                let mut wanted = HashSet::new();
                let mut records = BTreeSet::new();
                for id in chunk {
                    if let Some(trace) = head.trace(id) {
                        if overlaps((trace.start_ns, trace.end_ns), (start_ns, end_ns)) {
                            wanted.insert(*id);
                            records.extend(head.spans(trace).map(|s| s.record));
                        }
                    }
                }
                let locations: Vec<RecordLocation> =
                    records.into_iter().map(|r| head.record(r)).collect();
                (wanted, locations)
            };
            let mut pieces: HashMap<TraceId, Vec<ResourceSpans>> = HashMap::new();
            for location in locations {
                for rs in self.read_record(location)?.resource_spans {
                    for ss in &rs.scope_spans {
                        let mut by_trace: HashMap<TraceId, Vec<Span>> = HashMap::new();
                        for span in &ss.spans {
                            if let Ok(id) = TraceId::from_bytes(&span.trace_id) {
                                if wanted.contains(&id) {
                                    by_trace.entry(id).or_default().push(span.clone());
                                }
                            }
                        }
                        for (id, spans) in by_trace {
                            pieces.entry(id).or_default().push(ResourceSpans {
                                resource: rs.resource.clone(),
                                scope_spans: vec![ScopeSpans {
                                    scope: ss.scope.clone(),
                                    spans,
                                    schema_url: ss.schema_url.clone(),
                                }],
                                schema_url: rs.schema_url.clone(),
                            });
                        }
                    }
                }
            }
            for id in chunk {
                if let Some(trace) = pieces.remove(id) {
                    if !f(id, trace) {
                        return Ok(());
                    }
                }
            }
        }
        Ok(())
    }

    fn membership(&self) -> Box<dyn Fn(&TraceId) -> bool + '_> {
        // The lock is taken for each trace: held for a whole query, it would stall ingest.
        Box::new(|id| self.head.read().trace(id).is_some())
    }

    fn services(&self) -> Vec<String> {
        self.head
            .read()
            .services()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    fn operations(&self, service: &str) -> Vec<(String, u8)> {
        let head = self.head.read();
        let Some(service) = head.service_id(service) else {
            return Vec::new();
        };
        head.operations(service)
            .into_iter()
            .map(|(name, kind)| (name.to_string(), kind))
            .collect()
    }
}

/// The span at `position` in resource → scope → span order, with its resource.
fn span_at(
    request: &ExportTraceServiceRequest,
    position: u32,
) -> Option<(Option<&Resource>, Option<&InstrumentationScope>, &Span)> {
    let mut remaining = position as usize;
    for rs in &request.resource_spans {
        for ss in &rs.scope_spans {
            if remaining < ss.spans.len() {
                return Some((
                    rs.resource.as_ref(),
                    ss.scope.as_ref(),
                    &ss.spans[remaining],
                ));
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
        let (start, end) = query.start_range();
        let (min_duration, max_duration) = query.duration_range();
        Some(IndexFilter {
            service: match &query.service {
                Some(s) => Some(head.service_id(s)?),
                None => None,
            },
            name: match &query.operation {
                Some(n) => Some(head.name_id(n)?),
                None => None,
            },
            min_duration,
            max_duration,
            start,
            end,
        })
    }

    fn matches(&self, span: &SpanEntry) -> bool {
        self.service.is_none_or(|s| s == span.service)
            && self.name.is_none_or(|n| n == span.name)
            && (self.min_duration..=self.max_duration).contains(&span.duration_ns)
            && (self.start..=self.end).contains(&span.start_ns)
    }
}
