//! One trace as TraceQL sees it: its spans in a flat list, each with its resource, scope, parent
//! and children, and the trace-level facts (root, start, duration) every span can be asked about.

use std::collections::HashMap;

use osprey_model::attributes::service_name;
use osprey_model::otlp::{InstrumentationScope, Resource, ResourceSpans, Span};

pub struct TraceView<'a> {
    pub spans: Vec<SpanView<'a>>,
    pub trace_id: &'a [u8],
    pub root_name: &'a str,
    pub root_service: &'a str,
    pub start_ns: u64,
    pub duration_ns: u64,
}

pub struct SpanView<'a> {
    pub span: &'a Span,
    pub resource: Option<&'a Resource>,
    pub scope: Option<&'a InstrumentationScope>,
    pub service: &'a str,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Nested-set numbers of a depth-first walk from the roots (Tempo's `nestedSetLeft` …).
    pub left: i64,
    pub right: i64,
}

impl SpanView<'_> {
    pub fn duration_ns(&self) -> u64 {
        self.span
            .end_time_unix_nano
            .saturating_sub(self.span.start_time_unix_nano)
    }

    pub fn is_root(&self) -> bool {
        self.span.parent_span_id.iter().all(|b| *b == 0)
    }
}

/// What Tempo shows when a trace's root span has not arrived.
pub const ROOT_NOT_RECEIVED: &str = "<root span not yet received>";

impl<'a> TraceView<'a> {
    pub fn new(trace: &'a [ResourceSpans]) -> TraceView<'a> {
        let mut spans = Vec::new();
        for rs in trace {
            let service = service_name(rs.resource.as_ref());
            for ss in &rs.scope_spans {
                for span in &ss.spans {
                    spans.push(SpanView {
                        span,
                        resource: rs.resource.as_ref(),
                        scope: ss.scope.as_ref(),
                        service,
                        parent: None,
                        children: Vec::new(),
                        left: 0,
                        right: 0,
                    });
                }
            }
        }
        // Sorted by start, so that answers list spans in time order.
        spans.sort_by_key(|s| (s.span.start_time_unix_nano, s.span.end_time_unix_nano));
        let by_id: HashMap<&[u8], usize> = spans
            .iter()
            .enumerate()
            .rev()
            .map(|(i, s)| (s.span.span_id.as_slice(), i))
            .collect();
        for i in 0..spans.len() {
            if spans[i].is_root() {
                continue;
            }
            if let Some(&p) = by_id.get(spans[i].span.parent_span_id.as_slice()) {
                if p != i {
                    spans[i].parent = Some(p);
                    spans[p].children.push(i);
                }
            }
        }
        number_nested_sets(&mut spans);
        let start_ns = spans
            .iter()
            .map(|s| s.span.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let end_ns = spans
            .iter()
            .map(|s| s.span.end_time_unix_nano)
            .max()
            .unwrap_or(0);
        let root = spans.iter().find(|s| s.is_root());
        TraceView {
            trace_id: spans
                .first()
                .map_or(&[][..], |s| s.span.trace_id.as_slice()),
            root_name: root.map_or(ROOT_NOT_RECEIVED, |r| r.span.name.as_str()),
            root_service: root.map_or(ROOT_NOT_RECEIVED, |r| r.service),
            start_ns,
            duration_ns: end_ns.saturating_sub(start_ns),
            spans,
        }
    }
}

/// Numbers every span by a depth-first walk (iterative: traces can be deep). Spans whose parent is
/// missing start walks of their own.
fn number_nested_sets(spans: &mut [SpanView]) {
    let mut counter = 0i64;
    let starts: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].parent.is_none())
        .collect();
    for start in starts {
        // (span, whether its children were pushed)
        let mut stack = vec![(start, false)];
        while let Some((i, expanded)) = stack.pop() {
            counter += 1;
            if expanded {
                spans[i].right = counter;
                continue;
            }
            spans[i].left = counter;
            stack.push((i, true));
            for &c in spans[i].children.iter().rev() {
                stack.push((c, false));
            }
        }
    }
}
