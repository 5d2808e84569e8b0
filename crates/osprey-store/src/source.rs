//! The seam between queries and storage: every place spans live (a head generation, a block) is a
//! [`SpanSource`] and answers the same questions. The query engine (`osprey-query`) holds a list of
//! sources, prunes them by time range, asks each and merges the answers; it never knows whether a span
//! lives in memory or in Parquet.

use std::io;

use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;

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

impl TraceQuery {
    /// The same conditions, every match wanted, anywhere in time.
    pub fn unbounded(&self) -> TraceQuery {
        TraceQuery {
            start_ns: None,
            end_ns: None,
            limit: usize::MAX,
            ..self.clone()
        }
    }

    /// The span start times a matching span can have.
    pub fn start_range(&self) -> (u64, u64) {
        (self.start_ns.unwrap_or(0), self.end_ns.unwrap_or(u64::MAX))
    }

    pub fn duration_range(&self) -> (u64, u64) {
        (
            self.min_duration_ns.unwrap_or(0),
            self.max_duration_ns.unwrap_or(u64::MAX),
        )
    }
}

/// The parts of its spans a caller of [`SpanSource::traces`] reads. A source may leave the others
/// out (empty), and a block then does not read their columns: a span's attribute lists and
/// dedicated columns are most of a block's bytes. Ids, names, kinds, times, status, the resource's
/// generic attributes (`service.name` among them) and the scope's name and version always come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanParts {
    pub span_attributes: bool,
    /// The resource attributes kept in dedicated columns, and entity references.
    pub resource_attributes: bool,
    pub events: bool,
    pub links: bool,
    pub scope_attributes: bool,
}

impl SpanParts {
    pub const ALL: SpanParts = SpanParts {
        span_attributes: true,
        resource_attributes: true,
        events: true,
        links: true,
        scope_attributes: true,
    };
    pub const LEAST: SpanParts = SpanParts {
        span_attributes: false,
        resource_attributes: false,
        events: false,
        links: false,
        scope_attributes: false,
    };

    /// Every part either asks for.
    pub fn union(self, other: SpanParts) -> SpanParts {
        SpanParts {
            span_attributes: self.span_attributes || other.span_attributes,
            resource_attributes: self.resource_attributes || other.resource_attributes,
            events: self.events || other.events,
            links: self.links || other.links,
            scope_attributes: self.scope_attributes || other.scope_attributes,
        }
    }
}

/// A trace that has a matching span, with the start of the trace as this source knows it, so that
/// answers from several sources merge newest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHit {
    pub trace_id: TraceId,
    pub start_ns: u64,
}

/// What summaries, the service graph and RED need of a span, without its attributes or events.
#[derive(Debug, Clone, Copy)]
pub struct SpanRef<'a> {
    /// The low 32 bits of the span id and of the parent span id (0: none): enough to link parents
    /// and children within one trace, and what every source keeps.
    pub id_low: u32,
    pub parent_low: u32,
    pub service: &'a str,
    pub name: &'a str,
    /// OTLP span kind (0–5).
    pub kind: u8,
    pub error: bool,
    /// No (or an all-zero) parent span id.
    pub root: bool,
    pub start_ns: u64,
    pub duration_ns: u64,
}

/// One place spans are kept. Every method answers from this source alone; combining sources
/// (duplicates, traces cut across sources) is the query engine's job.
pub trait SpanSource: Send + Sync {
    /// The earliest span start and the latest span end held here; `None` when empty.
    fn time_range(&self) -> Option<(u64, u64)>;

    /// The spans of one trace held here, grouped by resource and scope (empty when none).
    fn trace(&self, id: &TraceId) -> io::Result<Vec<ResourceSpans>>;

    /// Calls `f` with every span of one trace held here.
    fn trace_spans(&self, id: &TraceId, f: &mut dyn FnMut(&SpanRef)) -> io::Result<()>;

    /// Up to `query.limit` traces with a span matching every condition, newest first.
    fn search(&self, query: &TraceQuery) -> io::Result<Vec<TraceHit>>;

    /// Calls `f` with the spans (as held here) of every trace that overlaps `[start_ns, end_ns]`.
    fn scan(
        &self,
        start_ns: u64,
        end_ns: u64,
        f: &mut dyn FnMut(&TraceId, &[SpanRef]),
    ) -> io::Result<()>;

    /// Calls `f` with every trace held here that overlaps `[start_ns, end_ns]` and, when `filter`
    /// is given, has a span meeting its conditions (its limit and time bounds are ignored): the
    /// trace's spans held here, whole (with at least the `parts` asked for), grouped by resource
    /// and scope. With a filter, traces come newest first (by the trace's start as held here), so
    /// a caller that wants the newest few stops early. Stops when `f` returns false. For TraceQL,
    /// which evaluates whole traces.
    fn traces(
        &self,
        start_ns: u64,
        end_ns: u64,
        filter: Option<&TraceQuery>,
        parts: SpanParts,
        f: &mut dyn FnMut(&TraceId, Vec<ResourceSpans>) -> bool,
    ) -> io::Result<()>;

    /// Which traces may have spans here: false only when no span of the trace is held here (a
    /// cheap check: an index or a filter). Asked once a query, then for each trace it reads, so
    /// what the check needs (a block's trace-id index) is fetched once, not for every trace.
    fn membership(&self) -> Box<dyn Fn(&TraceId) -> bool + '_>;

    /// Every service name held here.
    fn services(&self) -> Vec<String>;

    /// The (span name, OTLP span kind) pairs of one service.
    fn operations(&self, service: &str) -> Vec<(String, u8)>;
}

/// Whether `[a_start, a_end]` and `[b_start, b_end]` share a moment.
pub fn overlaps(a: (u64, u64), b: (u64, u64)) -> bool {
    a.1 >= b.0 && a.0 <= b.1
}
