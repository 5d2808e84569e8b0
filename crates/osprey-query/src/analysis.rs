//! Trace analysis: where a trace's time went. Self time per span, the critical path, and self time
//! summed by service and by operation, with the bottleneck named.

use std::collections::HashMap;

use osprey_model::attributes::service_name;
use osprey_model::otlp::{status::StatusCode, ResourceSpans};

/// A span's self time: the part of `[start, end)` that none of its children covers. Children are
/// clipped to the parent, and overlapping children (concurrent calls) count once.
pub fn self_time_ns(start: u64, end: u64, children: &[(u64, u64)]) -> u64 {
    let mut intervals: Vec<(u64, u64)> = children
        .iter()
        .map(|&(s, e)| (s.max(start), e.min(end)))
        .filter(|(s, e)| s < e)
        .collect();
    intervals.sort_unstable();
    let mut covered = 0;
    let mut reach = start;
    for (s, e) in intervals {
        let from = s.max(reach);
        if e > from {
            covered += e - from;
            reach = e;
        }
    }
    end.saturating_sub(start) - covered
}

/// One span as analysis sees it.
#[derive(Debug, Clone)]
pub struct SpanTiming {
    pub span_id: Vec<u8>,
    pub service: String,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    /// Index of the parent in the trace's span list, when the parent is in the trace.
    pub parent: Option<usize>,
    pub self_ns: u64,
    /// Status ERROR.
    pub error: bool,
}

/// A stretch of time on the critical path, spent in one span itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CriticalSection {
    pub span: usize,
    pub start_ns: u64,
    pub end_ns: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfTimeTotal {
    pub service: String,
    /// Empty in the by-service totals.
    pub operation: String,
    pub self_ns: u64,
    pub spans: usize,
}

#[derive(Debug, Clone)]
pub struct TraceAnalysis {
    pub spans: Vec<SpanTiming>,
    /// Children of each span, by start time.
    pub children: Vec<Vec<usize>>,
    /// Spans whose parent is not in the trace (the root, and orphans), by start time.
    pub roots: Vec<usize>,
    pub start_ns: u64,
    pub end_ns: u64,
    /// From the trace's end back to its start, latest first.
    pub critical_path: Vec<CriticalSection>,
    /// Largest first.
    pub by_service: Vec<SelfTimeTotal>,
    /// Largest first.
    pub by_operation: Vec<SelfTimeTotal>,
}

impl TraceAnalysis {
    /// The service with the most self time, and its operation with the most.
    pub fn bottleneck(&self) -> Option<(&SelfTimeTotal, &SelfTimeTotal)> {
        let service = self.by_service.first()?;
        let operation = self
            .by_operation
            .iter()
            .find(|o| o.service == service.service)?;
        Some((service, operation))
    }
}

/// Analyses one assembled trace.
pub fn analyze(resource_spans: &[ResourceSpans]) -> TraceAnalysis {
    let mut spans: Vec<SpanTiming> = Vec::new();
    let mut parent_ids: Vec<&[u8]> = Vec::new();
    for rs in resource_spans {
        let service = service_name(rs.resource.as_ref());
        for span in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
            spans.push(SpanTiming {
                span_id: span.span_id.clone(),
                service: service.to_string(),
                name: span.name.clone(),
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano.max(span.start_time_unix_nano),
                parent: None,
                self_ns: 0,
                error: span
                    .status
                    .as_ref()
                    .is_some_and(|s| s.code == StatusCode::Error as i32),
            });
            parent_ids.push(&span.parent_span_id);
        }
    }
    let index: HashMap<&[u8], usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_slice(), i))
        .collect();
    let mut parents: Vec<Option<usize>> = parent_ids
        .iter()
        .enumerate()
        .map(|(i, parent_id)| index.get(parent_id).copied().filter(|p| *p != i))
        .collect();
    drop(index);
    break_cycles(&mut parents);
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
    for (i, parent) in parents.into_iter().enumerate() {
        if let Some(p) = parent {
            spans[i].parent = Some(p);
            children[p].push(i);
        }
    }
    let by_start = |list: &mut Vec<usize>| list.sort_by_key(|&i| (spans[i].start_ns, i));
    for list in &mut children {
        by_start(list);
    }
    let mut roots: Vec<usize> = (0..spans.len())
        .filter(|&i| spans[i].parent.is_none())
        .collect();
    by_start(&mut roots);
    for i in 0..spans.len() {
        let intervals: Vec<(u64, u64)> = children[i]
            .iter()
            .map(|&c| (spans[c].start_ns, spans[c].end_ns))
            .collect();
        spans[i].self_ns = self_time_ns(spans[i].start_ns, spans[i].end_ns, &intervals);
    }
    let start_ns = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let end_ns = spans.iter().map(|s| s.end_ns).max().unwrap_or(0);
    let root = roots.iter().copied().max_by_key(|&i| {
        (
            spans[i].end_ns - spans[i].start_ns,
            std::cmp::Reverse(spans[i].start_ns),
        )
    });
    let critical_path = root.map_or_else(Vec::new, |r| critical_path(&spans, &children, r));
    let by_service = totals(&spans, |s| (s.service.clone(), String::new()));
    let by_operation = totals(&spans, |s| (s.service.clone(), s.name.clone()));
    TraceAnalysis {
        spans,
        children,
        roots,
        start_ns,
        end_ns,
        critical_path,
        by_service,
        by_operation,
    }
}

/// Cuts parent loops (a → b → a), which only malformed data has: where a walk up the parents meets
/// itself, that span loses its parent and becomes a root.
fn break_cycles(parents: &mut [Option<usize>]) {
    const NEW: u8 = 0;
    const ON_WALK: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; parents.len()];
    let mut walk = Vec::new();
    for start in 0..parents.len() {
        let mut at = start;
        loop {
            match state[at] {
                DONE => break,
                ON_WALK => {
                    parents[at] = None;
                    break;
                }
                _ => {}
            }
            state[at] = ON_WALK;
            walk.push(at);
            match parents[at] {
                Some(parent) => at = parent,
                None => break,
            }
        }
        for i in walk.drain(..) {
            state[i] = DONE;
        }
    }
}

fn totals(
    spans: &[SpanTiming],
    key: impl Fn(&SpanTiming) -> (String, String),
) -> Vec<SelfTimeTotal> {
    let mut sums: HashMap<(String, String), (u64, usize)> = HashMap::new();
    for span in spans {
        let entry = sums.entry(key(span)).or_default();
        entry.0 += span.self_ns;
        entry.1 += 1;
    }
    let mut out: Vec<SelfTimeTotal> = sums
        .into_iter()
        .map(|((service, operation), (self_ns, spans))| SelfTimeTotal {
            service,
            operation,
            self_ns,
            spans,
        })
        .collect();
    out.sort_by(|a, b| {
        b.self_ns
            .cmp(&a.self_ns)
            .then_with(|| (&a.service, &a.operation).cmp(&(&b.service, &b.operation)))
    });
    out
}

/// The critical path from `root`: walking back from the root's end, time belongs to the child that
/// finished last before that point (recursively), and to the span itself where no child was running.
/// The same walk as the Jaeger UI's critical path, so both tools agree.
fn critical_path(
    spans: &[SpanTiming],
    children: &[Vec<usize>],
    root: usize,
) -> Vec<CriticalSection> {
    let clipped = |child: usize, parent: usize| {
        (
            spans[child].start_ns.max(spans[parent].start_ns),
            spans[child].end_ns.min(spans[parent].end_ns),
        )
    };
    let mut out = Vec::new();
    let mut current = root;
    let mut limit = spans[root].end_ns;
    loop {
        let last_finishing = children[current]
            .iter()
            .map(|&c| (c, clipped(c, current)))
            .filter(|&(_, (start, end))| end <= limit && start < end)
            .max_by_key(|&(_, (_, end))| end);
        match last_finishing {
            Some((child, (_, end))) => {
                if end < limit {
                    out.push(CriticalSection {
                        span: current,
                        start_ns: end,
                        end_ns: limit,
                    });
                }
                current = child;
                limit = end;
            }
            None => {
                let (start, _) = match spans[current].parent {
                    Some(p) if current != root => clipped(current, p),
                    _ => (spans[current].start_ns, spans[current].end_ns),
                };
                if start < limit {
                    out.push(CriticalSection {
                        span: current,
                        start_ns: start,
                        end_ns: limit,
                    });
                }
                if current == root {
                    break;
                }
                let parent = spans[current]
                    .parent
                    .expect("non-root spans on the path have a parent");
                limit = start;
                current = parent;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::fixtures::{self, service_spans as service};
    use osprey_model::otlp::Span;

    #[test]
    fn children_are_subtracted_once_and_clipped() {
        assert_eq!(self_time_ns(0, 100, &[]), 100);
        assert_eq!(self_time_ns(0, 100, &[(10, 30), (50, 60)]), 70);
        // Concurrent children overlap: covered 10..40 once.
        assert_eq!(self_time_ns(0, 100, &[(10, 30), (20, 40)]), 70);
        // A child running past its parent only covers the parent's part.
        assert_eq!(self_time_ns(0, 100, &[(90, 150), (0, 5)]), 85);
        assert_eq!(self_time_ns(0, 100, &[(0, 100), (10, 20)]), 0);
    }

    fn span(id: u8, parent: Option<u8>, name: &str, start: u64, end: u64) -> Span {
        fixtures::span(1, id, parent, name, start, end)
    }

    #[test]
    fn critical_path_follows_the_last_finishing_child() {
        // checkout 0..2000 calls auth 10..40 and, in parallel, stock 20..60 and pay 50..1950;
        // pay's query runs 100..1900.
        let trace = vec![
            service("gateway", vec![span(1, None, "checkout", 0, 2000)]),
            service("auth", vec![span(2, Some(1), "verify", 10, 40)]),
            service("inventory", vec![span(3, Some(1), "stock", 20, 60)]),
            service("payments", vec![span(4, Some(1), "pay", 50, 1950)]),
            service(
                "database",
                vec![span(5, Some(4), "SELECT payments", 100, 1900)],
            ),
        ];
        let analysis = analyze(&trace);
        let path: Vec<(&str, u64, u64)> = analysis
            .critical_path
            .iter()
            .map(|s| (analysis.spans[s.span].name.as_str(), s.start_ns, s.end_ns))
            .collect();
        assert_eq!(
            path,
            [
                ("checkout", 1950, 2000),
                ("pay", 1900, 1950),
                ("SELECT payments", 100, 1900),
                ("pay", 50, 100),
                // stock ends at 60, after pay started: only checkout's own time before pay counts,
                // then auth, the last child to finish before 50.
                ("checkout", 40, 50),
                ("verify", 10, 40),
                ("checkout", 0, 10),
            ]
        );
        let covered: u64 = analysis
            .critical_path
            .iter()
            .map(|s| s.end_ns - s.start_ns)
            .sum();
        assert_eq!(covered, 2000);
        let (service, operation) = analysis.bottleneck().unwrap();
        assert_eq!(
            (service.service.as_str(), service.self_ns),
            ("database", 1800)
        );
        assert_eq!(operation.operation, "SELECT payments");
        let totals: Vec<(&str, u64)> = analysis
            .by_service
            .iter()
            .map(|t| (t.service.as_str(), t.self_ns))
            .collect();
        // gateway: 2000 minus its children's union 10..1950.
        assert_eq!(
            totals,
            [
                ("database", 1800),
                ("payments", 100),
                ("gateway", 60),
                ("inventory", 40),
                ("auth", 30)
            ]
        );
    }

    #[test]
    fn parent_loops_are_cut() {
        let trace = vec![service(
            "a",
            vec![
                span(1, Some(2), "x", 0, 10),
                span(2, Some(1), "y", 2, 8),
                span(3, Some(2), "z", 3, 4),
            ],
        )];
        let analysis = analyze(&trace);
        assert_eq!(analysis.roots.len(), 1);
        let path: Vec<(&str, u64, u64)> = analysis
            .critical_path
            .iter()
            .map(|s| (analysis.spans[s.span].name.as_str(), s.start_ns, s.end_ns))
            .collect();
        // The loop is cut above x (it starts first): x → y → z, the whole 0..10 on the path,
        // listed from the end back.
        assert_eq!(
            path,
            [
                ("x", 8, 10),
                ("y", 4, 8),
                ("z", 3, 4),
                ("y", 2, 3),
                ("x", 0, 2)
            ]
        );
    }

    #[test]
    fn orphans_and_empty_traces_do_not_break_it() {
        let analysis = analyze(&[]);
        assert!(analysis.critical_path.is_empty() && analysis.bottleneck().is_none());
        let trace = vec![service("a", vec![span(2, Some(9), "orphan", 5, 10)])];
        let analysis = analyze(&trace);
        assert_eq!(analysis.critical_path.len(), 1);
        assert_eq!(analysis.spans[0].self_ns, 5);
    }
}
