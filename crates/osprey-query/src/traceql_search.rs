//! TraceQL search across every source: the query's necessary conditions go to each source (its
//! index, columns and statistics pick the candidate traces), each candidate is evaluated whole,
//! and the matches are merged newest first.

use std::collections::{BTreeMap, HashSet};

use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;
use osprey_store::{overlaps, SpanParts, TraceQuery};

use crate::combine::combine;
use crate::members::Members;
use crate::traceql::eval::{evaluate, field_value};
use crate::traceql::pushdown::{expr_parts, prefilter};
use crate::traceql::trace::TraceView;
use crate::traceql::{FieldExpr, Intrinsic, SpansetExpr, Value};
use crate::Query;

/// Traces a search returns at most, whatever it asks.
pub const MAX_LIMIT: usize = 100_000;

/// What a TraceQL search asks.
#[derive(Debug, Clone)]
pub struct TraceqlSearch {
    pub expr: SpansetExpr,
    /// Traces that overlap this range (unix nanoseconds).
    pub start_ns: u64,
    pub end_ns: u64,
    pub limit: usize,
    /// Spans shown per spanset (`spss`); `matched` still counts them all.
    pub spans_per_spanset: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TraceMatch {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub spansets: Vec<MatchedSpanset>,
    /// Spans and error spans by service.
    pub service_stats: BTreeMap<String, (u32, u32)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpanset {
    pub spans: Vec<MatchedSpan>,
    pub matched: usize,
    /// Labels of the spanset (`by(…)` groups).
    pub attributes: Vec<(String, Value)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MatchedSpan {
    pub span_id: Vec<u8>,
    pub name: String,
    pub service: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    /// The attributes and intrinsics the query reads or selects, as Tempo names them.
    pub attributes: Vec<(String, Value)>,
}

/// What the search read, for Tempo's `metrics` block.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub inspected_traces: u64,
    pub sources: u64,
}

impl Query {
    /// The newest `limit` traces overlapping the range that the expression matches.
    pub fn traceql_search(
        &self,
        search: &TraceqlSearch,
    ) -> crate::Result<(Vec<TraceMatch>, SearchStats)> {
        let filter = prefilter(&search.expr);
        let parts = expr_parts(&search.expr);
        let shown = shown_fields(&search.expr);
        let mut matches: Vec<TraceMatch> = Vec::new();
        let mut inspected = 0;
        // With a prefilter each source hands out traces newest first by the start of its piece;
        // a trace's whole start is at most that. So once `limit` matches start at or after the
        // piece just read, nothing left in the source can be newer than them.
        let limit = search.limit.clamp(1, MAX_LIMIT);
        let sources = self.whole_traces(
            (search.start_ns, search.end_ns),
            filter.as_ref(),
            parts,
            // Older sources cannot change the answer once `limit` matches start after they end.
            |matches: &Vec<TraceMatch>, source_end| {
                matches.iter().filter(|m| m.start_ns > source_end).count() >= limit
            },
            &mut matches,
            |matches, _, piece_start, id, trace| {
                inspected += 1;
                if let Some(found) = evaluate_trace(search, &shown, *id, trace) {
                    matches.push(found);
                    // Only the newest `limit` are kept as a source is read.
                    if matches.len() >= 4 * limit {
                        newest_first(matches, limit);
                    }
                }
                !(filter.is_some()
                    && matches.iter().filter(|m| m.start_ns >= piece_start).count() >= limit)
            },
        )?;
        let stats = SearchStats {
            inspected_traces: inspected,
            sources,
        };
        newest_first(&mut matches, limit);
        Ok((matches, stats))
    }
}

impl Query {
    /// Hands `f` every trace overlapping `range` (with a span meeting `filter`, when given),
    /// whole even when cut across sources, each once, with the index of the source it comes from
    /// and the start of that source's piece of it;
    /// sources newest first (and, with a filter, each source's traces newest first), and no older
    /// source is read once `done(state, its end)` says so. `f` returns false to read no more of
    /// the current source. Returns the number of sources read.
    pub(crate) fn whole_traces<S>(
        &self,
        range: (u64, u64),
        filter: Option<&TraceQuery>,
        parts: SpanParts,
        done: impl Fn(&S, u64) -> bool,
        state: &mut S,
        mut f: impl FnMut(&mut S, usize, u64, &TraceId, &[ResourceSpans]) -> bool,
    ) -> crate::Result<u64> {
        let mut sources: Vec<_> = self
            .sources()
            .into_iter()
            .filter_map(|s| {
                let r = s.time_range()?;
                overlaps(r, range).then_some((r, s))
            })
            .collect();
        sources.sort_by_key(|(r, _)| std::cmp::Reverse(r.1));
        // A trace's other pieces are looked for in the sources of the range only: asking every
        // source's Bloom filter (a hundred blocks a day) about every trace read cost more false
        // positives, each a lookup, than the rare trace with a piece only outside the range.
        let in_range: Vec<_> = sources.iter().map(|(_, s)| s.clone()).collect();
        let members = Members::new(&in_range);
        let mut seen: HashSet<TraceId> = HashSet::new();
        let mut read = 0;
        for (index, ((_, end), source)) in sources.iter().enumerate() {
            if done(state, *end) {
                break;
            }
            read += 1;
            let mut failure = None;
            source.traces(range.0, range.1, filter, parts, &mut |id, pieces| {
                if !seen.insert(*id) {
                    return true;
                }
                let piece_start = pieces
                    .iter()
                    .flat_map(|rs| &rs.scope_spans)
                    .flat_map(|ss| &ss.spans)
                    .map(|s| s.start_time_unix_nano)
                    .min()
                    .unwrap_or(0);
                // A trace cut across sources is evaluated whole.
                let split = members.elsewhere(index, id);
                let trace = if split {
                    match self.trace(id) {
                        Ok(Some(trace)) => trace,
                        Ok(None) => return true,
                        Err(e) => {
                            failure = Some(e);
                            return false;
                        }
                    }
                } else {
                    combine(pieces)
                };
                f(state, index, piece_start, id, &trace)
            })?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        Ok(read)
    }
}

fn newest_first(matches: &mut Vec<TraceMatch>, limit: usize) {
    matches.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    matches.truncate(limit);
}

fn evaluate_trace(
    search: &TraceqlSearch,
    shown: &[FieldExpr],
    id: TraceId,
    trace: &[ResourceSpans],
) -> Option<TraceMatch> {
    let view = TraceView::new(trace);
    let spansets = evaluate(&search.expr, &view);
    if spansets.is_empty() {
        return None;
    }
    let mut service_stats: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for span in &view.spans {
        let stats = service_stats.entry(span.service.to_string()).or_default();
        stats.0 += 1;
        stats.1 += span.span.status.as_ref().is_some_and(|s| s.code == 2) as u32;
    }
    let spansets = spansets
        .into_iter()
        .map(|set| MatchedSpanset {
            matched: set.spans.len(),
            spans: set
                .spans
                .iter()
                .take(search.spans_per_spanset)
                .map(|&i| {
                    let s = &view.spans[i];
                    MatchedSpan {
                        span_id: s.span.span_id.clone(),
                        name: s.span.name.clone(),
                        service: s.service.to_string(),
                        start_ns: s.span.start_time_unix_nano,
                        duration_ns: s.duration_ns(),
                        attributes: shown
                            .iter()
                            .filter_map(|field| {
                                let value = field_value(field, &view, i);
                                (!value.is_nil()).then(|| (field_name(field), value))
                            })
                            .collect(),
                    }
                })
                .collect(),
            attributes: set.attributes,
        })
        .collect();
    Some(TraceMatch {
        trace_id: id,
        root_service: view.root_service.to_string(),
        root_name: view.root_name.to_string(),
        start_ns: view.start_ns,
        duration_ns: view.duration_ns,
        spansets,
        service_stats,
    })
}

/// The name Tempo gives a field in answers: an attribute's name without its scope, an
/// intrinsic's name.
fn field_name(field: &FieldExpr) -> String {
    match field {
        FieldExpr::Attribute(a) => a.name.clone(),
        FieldExpr::Intrinsic(i) => i.name().to_string(),
        _ => String::new(),
    }
}

/// The fields shown with each matched span: those the query's filters read and those it selects,
/// once each, except what every span shows anyway (name, duration, ids, trace-level facts).
fn shown_fields(expr: &SpansetExpr) -> Vec<FieldExpr> {
    let mut fields: Vec<FieldExpr> = Vec::new();
    let mut add = |f: &FieldExpr| {
        let skip = matches!(
            f,
            FieldExpr::Intrinsic(
                Intrinsic::Name
                    | Intrinsic::Duration
                    | Intrinsic::TraceDuration
                    | Intrinsic::TraceRootService
                    | Intrinsic::TraceRootName
                    | Intrinsic::TraceId
                    | Intrinsic::SpanId
            )
        );
        let name = field_name(f);
        if !skip && !fields.iter().any(|g| field_name(g) == name) {
            fields.push(f.clone());
        }
    };
    expr.visit_shown_fields(&mut add);
    fields
}
