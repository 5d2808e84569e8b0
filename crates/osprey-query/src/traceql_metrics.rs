//! TraceQL metrics (`{…} | rate() by (…)` and the other `*_over_time` functions, `compare`,
//! `topk`/`bottomk` and filters): time series computed from the spans a pipeline selects, as Tempo
//! computes them. Intervals are right-closed, `(start + i·step, start + (i+1)·step]`, stamped
//! with their end; durations count in seconds; quantiles and histograms use power-of-two buckets.

use std::collections::{BTreeMap, HashMap};

use crate::traceql::eval::{evaluate, evaluate_field, field_value, span_matches};
use crate::traceql::pushdown::{expr_parts, parts, prefilter};
use crate::traceql::trace::TraceView;
use crate::traceql::{
    Attribute, FieldExpr, Intrinsic, MetricsExpr, MetricsFunction, MetricsQuery, Scope,
    SecondStage, SpansetExpr, Value,
};
use crate::traceql_metrics_math::{apply_scalar, combine};
use crate::Query;
use osprey_model::TraceId;
use osprey_store::{SpanParts, SpanRef};

/// What a metrics query asks.
#[derive(Debug, Clone)]
pub struct MetricsRequest {
    pub query: MetricsExpr,
    /// Unix nanoseconds; aligned to the step for range queries.
    pub start_ns: u64,
    pub end_ns: u64,
    pub step_ns: u64,
    /// One value over the whole range (`/api/metrics/query`).
    pub instant: bool,
    /// Exemplars kept per series at most (spans that link a point to its trace; 0: none).
    pub exemplars: usize,
}

/// A span a series counted, to link a point of it to the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Exemplar {
    pub trace_id: TraceId,
    /// The span's id, when the whole span was read (not from span references).
    pub span_id: Option<Vec<u8>>,
    /// The span's value for the function (seconds for durations), or the series' value at its
    /// interval for counting functions.
    pub value: f64,
    pub timestamp_ns: u64,
    interval: usize,
}

/// The span being counted, as an exemplar would name it.
struct Counted<'a> {
    trace_id: &'a TraceId,
    span_id: Option<&'a [u8]>,
    start_ns: u64,
}

/// One series: its labels (Tempo's: the `by` attributes, or `__name__` with the function; `p`
/// for quantiles, `__bucket` for histograms, `__meta_type` for compare) and a value per interval
/// (NaN: no value).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub labels: Vec<(String, Value)>,
    pub values: Vec<f64>,
    /// At most one a interval, oldest first.
    pub exemplars: Vec<Exemplar>,
}

/// The step Tempo picks when none is given: about 240 points, rounded down to a whole hour,
/// 5 minutes, minute, 15 s, 5 s or second (50 ms steps under a minute).
pub fn default_step(start_ns: u64, end_ns: u64) -> u64 {
    const SECOND: u64 = 1_000_000_000;
    let delta = end_ns.saturating_sub(start_ns);
    let baseline = delta / 240;
    if delta < 60 * SECOND {
        let g = 50_000_000;
        return if baseline > g { baseline / g * g } else { g };
    }
    for g in [
        3600 * SECOND,
        300 * SECOND,
        60 * SECOND,
        15 * SECOND,
        5 * SECOND,
        SECOND,
    ] {
        if baseline > g {
            return baseline / g * g;
        }
    }
    SECOND
}

impl MetricsRequest {
    /// Aligns a range query's bounds to its step, as Tempo does (so refreshes of "the last hour"
    /// give the same intervals), with one more interval before the start.
    pub fn aligned(mut self) -> MetricsRequest {
        if !self.instant {
            let step = self.step_ns.max(1);
            self.start_ns -= self.start_ns % step;
            self.end_ns = self.end_ns.div_ceil(step).saturating_mul(step);
            if self.start_ns > step {
                self.start_ns -= step;
            }
        }
        self
    }

    pub fn intervals(&self) -> usize {
        if self.instant {
            1
        } else {
            ((self.end_ns - self.start_ns) / self.step_ns.max(1)) as usize
        }
    }

    /// The interval a span starting at `ts` counts in, if any: `[start, end]` for an instant
    /// query, right-closed steps for a range.
    fn interval(&self, ts: u64) -> Option<usize> {
        if self.instant {
            return (self.start_ns..=self.end_ns).contains(&ts).then_some(0);
        }
        if ts <= self.start_ns || ts > self.end_ns {
            return None;
        }
        Some(((ts - self.start_ns - 1) / self.step_ns.max(1)) as usize)
    }

    /// The time (unix milliseconds) a value of interval `i` is stamped with: its end.
    pub fn timestamp_ms(&self, i: usize) -> i64 {
        let end = if self.instant {
            self.end_ns
        } else {
            self.start_ns + (i as u64 + 1) * self.step_ns
        };
        (end / 1_000_000) as i64
    }
}

/// Series a metrics query may make: each holds a value (or more) per interval.
pub const MAX_SERIES: usize = 1_000;

/// Per series key: a count per interval, and a sum, min and max, or a histogram, per interval
/// when the function needs them (allocated on first use).
#[derive(Default)]
struct Cells {
    counts: Vec<f64>,
    sums: Vec<f64>,
    mins: Vec<f64>,
    maxes: Vec<f64>,
    /// Power-of-two bucket (its upper bound) → count, per interval.
    buckets: Vec<BTreeMap<u64, u64>>,
    exemplars: Vec<Exemplar>,
    /// Which intervals have an exemplar (allocated with the first).
    exemplified: Vec<bool>,
}

impl Cells {
    /// Keeps `counted` as an exemplar if the series has fewer than `limit` and none in its interval.
    fn exemplar(&mut self, limit: usize, interval: usize, counted: &Counted, value: f64) {
        if self.exemplars.len() >= limit {
            return;
        }
        if self.exemplified.is_empty() {
            self.exemplified = vec![false; self.counts.len()];
        }
        if !std::mem::replace(&mut self.exemplified[interval], true) {
            self.exemplars.push(Exemplar {
                trace_id: *counted.trace_id,
                span_id: counted.span_id.map(<[u8]>::to_vec),
                value,
                timestamp_ns: counted.start_ns,
                interval,
            });
        }
    }

    fn new(n: usize) -> Cells {
        Cells {
            counts: vec![0.0; n],
            ..Default::default()
        }
    }

    fn count(&mut self, i: usize) {
        self.counts[i] += 1.0;
    }

    fn add(&mut self, i: usize, value: f64) {
        let n = self.counts.len();
        if self.sums.is_empty() {
            self.sums = vec![0.0; n];
            self.mins = vec![f64::NAN; n];
            self.maxes = vec![f64::NAN; n];
        }
        self.count(i);
        self.sums[i] += value;
        // NaN (no value yet) gives way to any value.
        self.mins[i] = self.mins[i].min(value);
        self.maxes[i] = self.maxes[i].max(value);
    }

    fn bucket(&mut self, i: usize, bound: u64) {
        if self.buckets.is_empty() {
            self.buckets = vec![BTreeMap::new(); self.counts.len()];
        }
        *self.buckets[i].entry(bound).or_default() += 1;
    }
}

/// Series by their labels. Values hold floats (no `Hash`), so series are found by a hash of the
/// labels and compared: no key is built for every span counted.
#[derive(Default)]
struct SeriesCells {
    /// Keyed by a hash already: hashed again with ahash, not `HashMap`'s default SipHash.
    by_hash: HashMap<u64, Vec<(Labels, Cells)>, ahash::RandomState>,
    len: usize,
}

/// A series' labels: names and values.
type Labels = Vec<(String, Value)>;

impl SeriesCells {
    /// The cells of a series; with `capped`, an error once the query would make more than
    /// [`MAX_SERIES`].
    ///
    /// The labels are borrowed: a span counted into an existing series (almost every span) costs
    /// a hash and a comparison, no copy of its labels.
    fn get<K: AsRef<str>>(
        &mut self,
        labels: &[(K, Value)],
        n: usize,
        capped: bool,
    ) -> crate::Result<&mut Cells> {
        let hash = {
            use std::hash::{BuildHasher, Hash, Hasher};
            let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
            for (key, value) in labels {
                key.as_ref().hash(&mut h);
                hash_value(value, &mut h);
            }
            h.finish()
        };
        let bucket = self.by_hash.entry(hash).or_default();
        let same = |l: &Labels| {
            l.len() == labels.len()
                && l.iter()
                    .zip(labels)
                    .all(|((k, v), (key, value))| k == key.as_ref() && v == value)
        };
        let at = match bucket.iter().position(|(l, _)| same(l)) {
            Some(at) => at,
            None => {
                if capped && self.len >= MAX_SERIES {
                    return Err(crate::QueryError::Unanswerable(format!(
                        "the query makes more than {MAX_SERIES} series: group by fewer attributes, or filter first"
                    )));
                }
                self.len += 1;
                let owned = labels
                    .iter()
                    .map(|(k, v)| (k.as_ref().to_string(), v.clone()))
                    .collect();
                bucket.push((owned, Cells::new(n)));
                bucket.len() - 1
            }
        };
        Ok(&mut bucket[at].1)
    }

    fn into_series(self) -> impl Iterator<Item = (Labels, Cells)> {
        self.by_hash.into_values().flatten()
    }
}

fn hash_value(value: &Value, h: &mut impl std::hash::Hasher) {
    use std::hash::Hash;
    value.type_name().hash(h);
    match value {
        Value::Nil => {}
        Value::Bool(b) => b.hash(h),
        Value::Int(i) | Value::Duration(i) => i.hash(h),
        Value::Float(f) => f.to_bits().hash(h),
        Value::Str(s) => s.hash(h),
        Value::Status(c) | Value::Kind(c) => c.hash(h),
        Value::Array(items) => items.iter().for_each(|v| hash_value(v, h)),
    }
}

/// The cells of a series; an error once a query would make more than [`MAX_SERIES`].
fn cell<'a, K: AsRef<str>>(
    cells: &'a mut SeriesCells,
    labels: &[(K, Value)],
    n: usize,
) -> crate::Result<&'a mut Cells> {
    cells.get(labels, n, true)
}

/// The power-of-two bucket of a value (durations in nanoseconds).
fn bucket_of(value: &Value) -> Option<u64> {
    let raw = match value {
        Value::Duration(ns) => (*ns).max(0) as u64,
        other => other.as_f64()?.max(0.0) as u64,
    };
    Some(log2_bucket(raw))
}

/// A value as a metrics number: durations in seconds.
fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Duration(ns) => Some(*ns as f64 / 1e9),
        other => other.as_f64(),
    }
}

/// The power-of-two bucket of a value (durations in nanoseconds), as Tempo's `Log2Bucketize`.
fn log2_bucket(v: u64) -> u64 {
    if v < 2 {
        return 1;
    }
    1u64 << (64 - (v - 1).leading_zeros()).min(63)
}

/// The `p` quantile of power-of-two buckets, interpolated exponentially within a bucket.
fn log2_quantile(p: f64, buckets: &BTreeMap<u64, u64>) -> f64 {
    let total: u64 = buckets.values().sum();
    if total == 0 {
        return f64::NAN;
    }
    let wanted = ((p * total as f64).ceil() as u64).max(1);
    let bounds: Vec<(u64, u64)> = buckets.iter().map(|(b, c)| (*b, *c)).collect();
    let mut seen = 0;
    for (i, &(bound, count)) in bounds.iter().enumerate() {
        if seen + count >= wanted {
            if seen + count == wanted {
                return bound as f64;
            }
            let fraction = (wanted - seen) as f64 / count as f64;
            let max = (bound as f64).log2();
            let min = if i > 0 {
                (bounds[i - 1].0 as f64).log2()
            } else {
                max - 1.0
            };
            return 2f64.powf(min + (max - min) * fraction);
        }
        seen += count;
    }
    bounds.last().map_or(f64::NAN, |b| b.0 as f64)
}

impl Query {
    /// The series of a metrics query over the request's range.
    pub fn traceql_metrics(&self, request: &MetricsRequest) -> crate::Result<Vec<Series>> {
        self.expr_series(&request.query, request)
    }

    /// The series of one metrics query, or of queries combined (each over the same intervals).
    fn expr_series(
        &self,
        expr: &MetricsExpr,
        request: &MetricsRequest,
    ) -> crate::Result<Vec<Series>> {
        match expr {
            MetricsExpr::Query(query) => self.query_series(query, request),
            MetricsExpr::Math {
                op,
                lhs,
                rhs,
                second_stage,
            } => {
                let lhs = self.expr_series(lhs, request)?;
                let rhs = self.expr_series(rhs, request)?;
                Ok(staged(
                    combine(*op, lhs, rhs),
                    second_stage,
                    request.intervals(),
                ))
            }
        }
    }

    fn query_series(
        &self,
        query: &MetricsQuery,
        request: &MetricsRequest,
    ) -> crate::Result<Vec<Series>> {
        let n = request.intervals();
        let filter = prefilter(&query.pipeline);
        let parts = match &query.function {
            // compare counts every attribute of every span.
            MetricsFunction::Compare { .. } => SpanParts::ALL,
            function => {
                let mut fields = query.by.clone();
                fields.extend(function_field(function).cloned());
                parts(&fields).union(expr_parts(&query.pipeline))
            }
        };
        let mut cells = SeriesCells::default();
        let by_labels: Vec<String> = query.by.iter().map(field_text).collect();
        let compare = match &query.function {
            MetricsFunction::Compare {
                selection,
                start_ns,
                end_ns,
                ..
            } => Some((selection, *start_ns, *end_ns)),
            _ => None,
        };
        let mut failure = None;
        if let Some(filter) = span_ref_filter(query) {
            self.each_trace(request.start_ns, request.end_ns, &mut |trace_id, spans| {
                for span in spans {
                    if failure.is_some() {
                        return;
                    }
                    let Some(interval) = request.interval(span.start_ns) else {
                        continue;
                    };
                    let value_of = |f: &FieldExpr| span_ref_value(f, span).unwrap_or(Value::Nil);
                    if evaluate_field(filter, &value_of) != Value::Bool(true) {
                        continue;
                    }
                    let counted = Counted {
                        trace_id,
                        span_id: None,
                        start_ns: span.start_ns,
                    };
                    let observed = observe(
                        &mut cells, query, request, &by_labels, interval, &counted, &value_of,
                    );
                    if let Err(e) = observed {
                        failure = Some(e);
                    }
                }
            })?;
            return finish_series(cells, failure, query, request);
        }
        // Spans may start before a trace that overlaps the range: read traces that overlap it.
        let range = (request.start_ns, request.end_ns);
        self.whole_traces(
            range,
            filter.as_ref(),
            parts,
            |_: &(), _| false,
            &mut (),
            |_, _, _, id, trace| {
                let view = TraceView::new(trace);
                let mut selected: Vec<usize> = evaluate(&query.pipeline, &view)
                    .into_iter()
                    .flat_map(|set| set.spans)
                    .collect();
                selected.sort_unstable();
                selected.dedup();
                for i in selected {
                    let Some(interval) = request.interval(view.spans[i].span.start_time_unix_nano)
                    else {
                        continue;
                    };
                    if let Some((selection, window_start, window_end)) = compare {
                        let counted = compare_span(
                            &mut cells,
                            n,
                            &view,
                            i,
                            interval,
                            selection,
                            (window_start, window_end),
                        );
                        if let Err(e) = counted {
                            failure = Some(e);
                            return false;
                        }
                        continue;
                    }
                    let value_of = |f: &FieldExpr| field_value(f, &view, i);
                    let span = view.spans[i].span;
                    let counted = Counted {
                        trace_id: id,
                        span_id: Some(&span.span_id),
                        start_ns: span.start_time_unix_nano,
                    };
                    let observed = observe(
                        &mut cells, query, request, &by_labels, interval, &counted, &value_of,
                    );
                    if let Err(e) = observed {
                        failure = Some(e);
                        return false;
                    }
                }
                true
            },
        )?;
        finish_series(cells, failure, query, request)
    }
}

/// The series of the counted cells, after the second stage, sorted by labels.
fn finish_series(
    cells: SeriesCells,
    failure: Option<crate::QueryError>,
    query: &MetricsQuery,
    request: &MetricsRequest,
) -> crate::Result<Vec<Series>> {
    if let Some(e) = failure {
        return Err(e);
    }
    let series = match &query.function {
        MetricsFunction::Compare { top, .. } => compare_series(cells, *top),
        function => finish(function, cells, request),
    };
    Ok(staged(series, &query.second_stage, request.intervals()))
}

/// `series` after `stages`, without those left with no value, sorted by labels.
fn staged(mut series: Vec<Series>, stages: &[SecondStage], n: usize) -> Vec<Series> {
    for stage in stages {
        apply_second_stage(stage, &mut series, n);
    }
    series.retain(|s| s.values.iter().any(|v| !v.is_nan()));
    series.sort_by(|a, b| format!("{:?}", a.labels).cmp(&format!("{:?}", b.labels)));
    series
}

/// Counts one selected span starting in interval `interval` into its series, reading the `by`
/// attributes and the function's attribute through `value_of`.
fn observe(
    cells: &mut SeriesCells,
    query: &MetricsQuery,
    request: &MetricsRequest,
    by_labels: &[String],
    interval: usize,
    counted: &Counted,
    value_of: &dyn Fn(&FieldExpr) -> Value,
) -> crate::Result<()> {
    let (n, limit) = (request.intervals(), request.exemplars);
    // A span without a `by` attribute counts under a nil label, as in Tempo.
    let mut labels: Vec<(&str, Value)> = query
        .by
        .iter()
        .zip(by_labels)
        .map(|(f, label)| (label.as_str(), value_of(f)))
        .collect();
    if query.by.is_empty() {
        labels.push((
            "__name__",
            Value::Str(function_name(&query.function).into()),
        ));
    }
    let labels = labels.as_slice();
    match &query.function {
        MetricsFunction::Rate | MetricsFunction::CountOverTime => cell(cells, labels, n).map(|c| {
            c.count(interval);
            c.exemplar(limit, interval, counted, f64::NAN);
        }),
        MetricsFunction::QuantileOverTime(f, _) | MetricsFunction::HistogramOverTime(f) => {
            let value = value_of(f);
            match bucket_of(&value) {
                Some(bound) => cell(cells, labels, n).map(|c| {
                    c.bucket(interval, bound);
                    let v = number(&value).unwrap_or(f64::NAN);
                    c.exemplar(limit, interval, counted, v);
                }),
                None => Ok(()),
            }
        }
        MetricsFunction::MinOverTime(f)
        | MetricsFunction::MaxOverTime(f)
        | MetricsFunction::SumOverTime(f)
        | MetricsFunction::AvgOverTime(f) => match number(&value_of(f)) {
            Some(v) => cell(cells, labels, n).map(|c| {
                c.add(interval, v);
                c.exemplar(limit, interval, counted, v);
            }),
            None => Ok(()),
        },
        MetricsFunction::Compare { .. } => unreachable!("compare counts attribute values"),
    }
}

/// A field a span reference holds (what the service graph reads of every span): the service, the
/// span's name, kind and duration; `None` for the rest.
fn span_ref_value(field: &FieldExpr, span: &SpanRef) -> Option<Value> {
    Some(match field {
        FieldExpr::Intrinsic(Intrinsic::Name) => Value::Str(span.name.to_string()),
        FieldExpr::Intrinsic(Intrinsic::Kind) => Value::Kind(span.kind as i32),
        FieldExpr::Intrinsic(Intrinsic::Duration) => Value::Duration(span.duration_ns as i64),
        FieldExpr::Attribute(Attribute {
            scope: Scope::Resource,
            parent: false,
            name,
        }) if name == "service.name" => Value::Str(span.service.to_string()),
        _ => return None,
    })
}

/// The filter of a metrics query that span references can answer: one spanset filter (no
/// structural operator, no pipeline) whose every field, and every `by` and function field, a
/// span reference holds. Such a query counts spans from the sources' span columns without
/// assembling a trace: the cost of the service graph, not of a search.
fn span_ref_filter(query: &MetricsQuery) -> Option<&FieldExpr> {
    let SpansetExpr::Filter(filter) = &query.pipeline else {
        return None;
    };
    if matches!(query.function, MetricsFunction::Compare { .. }) {
        return None;
    }
    let probe = SpanRef {
        id_low: 0,
        parent_low: 0,
        service: "",
        name: "",
        kind: 0,
        error: false,
        root: true,
        start_ns: 0,
        duration_ns: 0,
    };
    let mut held = true;
    let mut check = |f: &FieldExpr| held &= span_ref_value(f, &probe).is_some();
    filter.visit_fields(&mut check);
    for f in query.by.iter().chain(function_field(&query.function)) {
        f.visit_fields(&mut check);
    }
    held.then_some(filter)
}

/// The attribute a function aggregates, if any.
fn function_field(function: &MetricsFunction) -> Option<&FieldExpr> {
    match function {
        MetricsFunction::MinOverTime(f)
        | MetricsFunction::MaxOverTime(f)
        | MetricsFunction::SumOverTime(f)
        | MetricsFunction::AvgOverTime(f)
        | MetricsFunction::QuantileOverTime(f, _)
        | MetricsFunction::HistogramOverTime(f) => Some(f),
        MetricsFunction::Rate
        | MetricsFunction::CountOverTime
        | MetricsFunction::Compare { .. } => None,
    }
}

fn function_name(function: &MetricsFunction) -> &'static str {
    match function {
        MetricsFunction::Rate => "rate",
        MetricsFunction::CountOverTime => "count_over_time",
        MetricsFunction::MinOverTime(_) => "min_over_time",
        MetricsFunction::MaxOverTime(_) => "max_over_time",
        MetricsFunction::SumOverTime(_) => "sum_over_time",
        MetricsFunction::AvgOverTime(_) => "avg_over_time",
        MetricsFunction::QuantileOverTime(..) => "quantile_over_time",
        MetricsFunction::HistogramOverTime(_) => "histogram_over_time",
        MetricsFunction::Compare { .. } => "compare",
    }
}

/// An attribute or intrinsic as a query writes it (`resource.service.name`, `span:name`).
fn field_text(field: &FieldExpr) -> String {
    match field {
        FieldExpr::Attribute(a) => a.to_string(),
        FieldExpr::Intrinsic(i) => i.name().to_string(),
        _ => String::new(),
    }
}

fn finish(function: &MetricsFunction, cells: SeriesCells, request: &MetricsRequest) -> Vec<Series> {
    let step_s = if request.instant {
        (request.end_ns - request.start_ns) as f64 / 1e9
    } else {
        request.step_ns as f64 / 1e9
    };
    let duration_scale = |f: &FieldExpr| {
        // Buckets of durations hold nanoseconds; answers are in seconds.
        if matches!(
            f,
            FieldExpr::Intrinsic(
                Intrinsic::Duration | Intrinsic::TraceDuration | Intrinsic::EventTimeSinceStart
            )
        ) {
            1e-9
        } else {
            1.0
        }
    };
    let n = request.intervals();
    // A series whose function kept no value anywhere has its vectors unallocated.
    let sized = |v: &Vec<f64>| {
        if v.is_empty() {
            vec![f64::NAN; n]
        } else {
            v.clone()
        }
    };
    let mut out = Vec::new();
    for (labels, c) in cells.into_series() {
        // Exemplars of a counting function stand at their interval's value.
        let with_exemplars = |values: Vec<f64>, labels: Vec<(String, Value)>| {
            let exemplars = c
                .exemplars
                .iter()
                .map(|e| Exemplar {
                    value: if e.value.is_nan() {
                        values.get(e.interval).copied().unwrap_or(0.0)
                    } else {
                        e.value
                    },
                    ..e.clone()
                })
                .collect();
            let mut exemplars: Vec<Exemplar> = exemplars;
            exemplars.sort_by_key(|e| e.timestamp_ns);
            Series {
                labels,
                values,
                exemplars,
            }
        };
        let series = |values: Vec<f64>| with_exemplars(values, labels.clone());
        match function {
            MetricsFunction::Rate => {
                out.push(series(c.counts.iter().map(|n| n / step_s).collect()))
            }
            MetricsFunction::CountOverTime => out.push(series(c.counts.clone())),
            MetricsFunction::SumOverTime(_) => out.push(series(
                c.counts
                    .iter()
                    .zip(&c.sums)
                    .map(|(n, s)| if *n > 0.0 { *s } else { f64::NAN })
                    .collect(),
            )),
            MetricsFunction::AvgOverTime(_) => out.push(series(
                c.counts
                    .iter()
                    .zip(&c.sums)
                    .map(|(n, s)| if *n > 0.0 { s / n } else { f64::NAN })
                    .collect(),
            )),
            MetricsFunction::MinOverTime(_) => out.push(series(sized(&c.mins))),
            MetricsFunction::MaxOverTime(_) => out.push(series(sized(&c.maxes))),
            MetricsFunction::QuantileOverTime(f, quantiles) => {
                let scale = duration_scale(f);
                for q in quantiles {
                    let mut labels = labels.clone();
                    labels.push(("p".into(), Value::Float(*q)));
                    let values = c
                        .buckets
                        .iter()
                        .map(|b| log2_quantile(*q, b) * scale)
                        .collect();
                    out.push(with_exemplars(values, labels));
                }
            }
            MetricsFunction::HistogramOverTime(f) => {
                let scale = duration_scale(f);
                let bounds: std::collections::BTreeSet<u64> =
                    c.buckets.iter().flat_map(|b| b.keys().copied()).collect();
                for bound in bounds {
                    let mut labels = labels.clone();
                    labels.push(("__bucket".into(), Value::Float(bound as f64 * scale)));
                    // Counts of a bucket: its exemplars would stand for every bucket; none.
                    out.push(Series {
                        labels,
                        values: c
                            .buckets
                            .iter()
                            .map(|b| b.get(&bound).map_or(0.0, |n| *n as f64))
                            .collect(),
                        exemplars: Vec::new(),
                    });
                }
            }
            MetricsFunction::Compare { .. } => unreachable!("compare has its own series"),
        }
    }
    out
}

/// `compare`: counts every attribute value of the selected spans (`selection`) and of the rest
/// (`baseline`), and the totals of each attribute, per interval.
fn compare_span(
    cells: &mut SeriesCells,
    n: usize,
    view: &TraceView,
    i: usize,
    interval: usize,
    selection: &FieldExpr,
    window: (i64, i64),
) -> crate::Result<()> {
    let s = &view.spans[i];
    // The selection's own window (unix nanoseconds, `(start, end]`), when both bounds are given.
    let start = s.span.start_time_unix_nano as i64;
    let in_window = window.0 <= 0 || window.1 <= 0 || (start > window.0 && start <= window.1);
    let selected = in_window && span_matches(selection, view, i);
    let (kind, total) = if selected {
        ("selection", "selection_total")
    } else {
        ("baseline", "baseline_total")
    };
    let mut attributes: Vec<(String, Value)> = Vec::new();
    for kv in &s.span.attributes {
        attributes.push((
            format!("span.{}", kv.key),
            Value::from_any(kv.value.as_ref().and_then(|v| v.value.as_ref())),
        ));
    }
    for kv in s
        .resource
        .map(|r| r.attributes.as_slice())
        .unwrap_or_default()
    {
        attributes.push((
            format!("resource.{}", kv.key),
            Value::from_any(kv.value.as_ref().and_then(|v| v.value.as_ref())),
        ));
    }
    for intrinsic in [
        Intrinsic::Name,
        Intrinsic::Status,
        Intrinsic::Kind,
        Intrinsic::StatusMessage,
    ] {
        let value = field_value(&FieldExpr::Intrinsic(intrinsic), view, i);
        attributes.push((intrinsic.name().to_string(), value));
    }
    for (key, value) in attributes {
        if value.is_nil() || matches!(value, Value::Array(_)) {
            continue;
        }
        let meta = |t: &str| ("__meta_type".to_string(), Value::Str(t.into()));
        // Past the series budget, further values are not counted (the totals always are): the
        // most frequent values, which compare shows, come first in any window worth comparing.
        if let Ok(c) = cell(cells, &[meta(kind), (key.clone(), value)], n) {
            c.count(interval);
        }
        cells
            .get(&[meta(total), (key, Value::Nil)], n, false)?
            .count(interval);
    }
    Ok(())
}

/// The `top` most frequent values of each attribute, for selection and baseline, and the totals.
fn compare_series(cells: SeriesCells, top: usize) -> Vec<Series> {
    let mut by_attribute: BTreeMap<(String, String), Vec<(f64, Series)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (labels, c) in cells.into_series() {
        let kind = labels[0].1.to_string();
        let key = labels[1].0.clone();
        // Totals keep the attribute's key with no value, as Tempo labels them.
        let series = Series {
            labels,
            values: c
                .counts
                .iter()
                .map(|n| if *n > 0.0 { *n } else { f64::NAN })
                .collect(),
            exemplars: Vec::new(),
        };
        if kind.ends_with("_total") {
            out.push(series);
        } else {
            let total: f64 = c.counts.iter().sum();
            by_attribute
                .entry((kind, key))
                .or_default()
                .push((total, series));
        }
    }
    for (_, mut values) in by_attribute {
        values.sort_by(|a, b| b.0.total_cmp(&a.0));
        out.extend(values.into_iter().take(top).map(|(_, s)| s));
    }
    out
}

fn apply_second_stage(stage: &SecondStage, series: &mut [Series], n: usize) {
    match stage {
        SecondStage::Scalar {
            op,
            value,
            number_first,
        } => apply_scalar(*op, *value, *number_first, series),
        SecondStage::Filter(op, threshold) => {
            let threshold = Value::Float(*threshold);
            for s in series.iter_mut() {
                for v in s.values.iter_mut() {
                    if !v.is_nan() && !Value::Float(*v).compare(*op, &threshold) {
                        *v = f64::NAN;
                    }
                }
            }
        }
        SecondStage::TopK(k) | SecondStage::BottomK(k) => {
            let top = matches!(stage, SecondStage::TopK(_));
            // At each interval only the k highest (lowest) values stay, as Prometheus's topk.
            for i in 0..n {
                let mut ranked: Vec<(f64, usize)> = series
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| !s.values[i].is_nan())
                    .map(|(j, s)| (s.values[i], j))
                    .collect();
                ranked.sort_by(|a, b| {
                    if top {
                        b.0.total_cmp(&a.0)
                    } else {
                        a.0.total_cmp(&b.0)
                    }
                });
                for &(_, j) in ranked.iter().skip(*k) {
                    series[j].values[i] = f64::NAN;
                }
            }
        }
    }
}
