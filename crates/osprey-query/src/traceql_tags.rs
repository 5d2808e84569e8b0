//! The attribute names and values a TraceQL editor offers (Tempo's tags and tag values APIs),
//! read from the stored spans of a time range, optionally only from the spans a query matches.
//! The scan stops after [`TAGS_SPAN_BUDGET`] spans, newest sources first, so an autocomplete
//! over weeks of traces answers quickly; what it lists comes from those spans.

use std::collections::{BTreeMap, BTreeSet};

use osprey_model::otlp::KeyValue;
use osprey_store::SpanParts;

use crate::traceql::eval::{evaluate, field_value};
use crate::traceql::trace::TraceView;
use crate::traceql::{FieldExpr, SpansetExpr, Value};
use crate::Query;

/// Spans read at most to list tags or values.
pub const TAGS_SPAN_BUDGET: u64 = 200_000;
/// Values listed at most for one tag.
pub const MAX_TAG_VALUES: usize = 5_000;

/// Attribute scopes as Tempo names them.
pub const ATTRIBUTE_SCOPES: [&str; 5] = ["span", "resource", "event", "link", "instrumentation"];

/// Every intrinsic a query can name, as Tempo lists them under the `intrinsic` scope.
pub const INTRINSIC_TAGS: &[&str] = &[
    "duration",
    "event:name",
    "event:timeSinceStart",
    "instrumentation:name",
    "instrumentation:version",
    "kind",
    "link:spanID",
    "link:traceID",
    "name",
    "rootName",
    "rootServiceName",
    "span:childCount",
    "span:duration",
    "span:id",
    "span:kind",
    "span:name",
    "span:parentID",
    "span:status",
    "span:statusMessage",
    "status",
    "statusMessage",
    "trace:duration",
    "trace:id",
    "trace:rootName",
    "trace:rootService",
    "traceDuration",
];

impl Query {
    /// Attribute names by scope (`span`, `resource`, `event`, `link`, `instrumentation`) of the
    /// spans in `range` (those `filter` matches, when given).
    pub fn tag_names(
        &self,
        range: (u64, u64),
        filter: Option<&SpansetExpr>,
    ) -> crate::Result<BTreeMap<&'static str, BTreeSet<String>>> {
        let mut names: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        let keys = |attributes: &[KeyValue]| -> Vec<String> {
            attributes.iter().map(|kv| kv.key.clone()).collect()
        };
        self.each_span(range, filter, SpanParts::ALL, |view, i| {
            let s = &view.spans[i];
            let mut add = |scope: &'static str, found: Vec<String>| {
                names.entry(scope).or_default().extend(found);
            };
            add("span", keys(&s.span.attributes));
            if let Some(r) = s.resource {
                add("resource", keys(&r.attributes));
            }
            for e in &s.span.events {
                add("event", keys(&e.attributes));
            }
            for l in &s.span.links {
                add("link", keys(&l.attributes));
            }
            if let Some(scope) = s.scope {
                add("instrumentation", keys(&scope.attributes));
            }
        })?;
        Ok(names)
    }

    /// The distinct values `field` takes on the spans in `range` (those `filter` matches), with
    /// their types; at most [`MAX_TAG_VALUES`].
    pub fn tag_values(
        &self,
        range: (u64, u64),
        field: &FieldExpr,
        filter: Option<&SpansetExpr>,
    ) -> crate::Result<Vec<Value>> {
        let mut values: Vec<Value> = Vec::new();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut parts = crate::traceql::pushdown::parts([field]);
        if let Some(expr) = filter {
            parts = parts.union(crate::traceql::pushdown::expr_parts(expr));
        }
        self.each_span(range, filter, parts, |view, i| {
            let mut add = |v: Value| {
                if values.len() < MAX_TAG_VALUES
                    && !v.is_nil()
                    && seen.insert(format!("{}\u{0}{v}", v.type_name()))
                {
                    values.push(v);
                }
            };
            match field_value(field, view, i) {
                Value::Array(items) => items.into_iter().for_each(&mut add),
                v => add(v),
            }
        })?;
        Ok(values)
    }

    /// Calls `f` with every span of the traces in `range` (only the spans `filter` selects, when
    /// given), until [`TAGS_SPAN_BUDGET`] spans were looked at.
    fn each_span(
        &self,
        range: (u64, u64),
        filter: Option<&SpansetExpr>,
        parts: SpanParts,
        mut f: impl FnMut(&TraceView, usize),
    ) -> crate::Result<()> {
        let prefilter = filter.and_then(crate::traceql::pushdown::prefilter);
        let mut spans_seen = 0u64;
        self.whole_traces(
            range,
            prefilter.as_ref(),
            parts,
            |seen: &u64, _| *seen >= TAGS_SPAN_BUDGET,
            &mut spans_seen,
            |seen, _, _, _, trace| {
                let view = TraceView::new(trace);
                *seen += view.spans.len() as u64;
                match filter {
                    Some(expr) => {
                        let mut selected: Vec<usize> = evaluate(expr, &view)
                            .into_iter()
                            .flat_map(|set| set.spans)
                            .collect();
                        selected.sort_unstable();
                        selected.dedup();
                        selected.into_iter().for_each(|i| f(&view, i));
                    }
                    None => (0..view.spans.len()).for_each(|i| f(&view, i)),
                }
                *seen < TAGS_SPAN_BUDGET
            },
        )?;
        Ok(())
    }
}
