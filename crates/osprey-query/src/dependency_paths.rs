//! The paths through a service (the Jaeger UI's Deep Dependency Graph): every chain of calls from a
//! trace's root to one of its leaves that passes through the focal service (and operation), each
//! call a (service, operation) where the service changes or a server span begins, as the Jaeger
//! UI derives them from traces. Uber answered these from an analytics pipeline; here they come
//! from the span references of a time range, the columns the service graph reads.

use std::collections::{HashMap, HashSet};

use osprey_model::TraceId;
use osprey_store::SpanRef;

use crate::Query;

/// Traces named as examples of one path at most.
const EXEMPLARS: usize = 10;

/// OTLP's SERVER span kind.
const SERVER: u8 = 2;

#[derive(Debug, Clone, PartialEq)]
pub struct DependencyPath {
    /// (service, operation), from the root down.
    pub path: Vec<(String, String)>,
    /// Some traces the path was seen in.
    pub exemplars: Vec<TraceId>,
}

impl Query {
    /// The distinct root-to-leaf paths through `service` (and `operation`) of the traces in
    /// `[start_ns, end_ns]`, sorted, each with up to [`EXEMPLARS`] of the traces it was seen in.
    pub fn dependency_paths(
        &self,
        service: &str,
        operation: Option<&str>,
        start_ns: u64,
        end_ns: u64,
    ) -> crate::Result<Vec<DependencyPath>> {
        let mut paths: Vec<DependencyPath> = Vec::new();
        let mut by_key: HashMap<Vec<(String, String)>, usize> = HashMap::new();
        self.each_trace(start_ns, end_ns, &mut |id, spans| {
            if !spans.iter().any(|s| s.service == service) {
                return;
            }
            for path in trace_paths(spans) {
                let through = path
                    .iter()
                    .any(|(s, o)| *s == service && operation.is_none_or(|op| *o == op));
                if !through {
                    continue;
                }
                let key: Vec<(String, String)> = path
                    .iter()
                    .map(|(s, o)| (s.to_string(), o.to_string()))
                    .collect();
                let at = *by_key.entry(key.clone()).or_insert_with(|| {
                    paths.push(DependencyPath {
                        path: key,
                        exemplars: Vec::new(),
                    });
                    paths.len() - 1
                });
                let exemplars = &mut paths[at].exemplars;
                if exemplars.len() < EXEMPLARS && !exemplars.contains(id) {
                    exemplars.push(*id);
                }
            }
        })?;
        // Traces come in no set order (pieces joined across sources): the answer has one.
        for path in &mut paths {
            path.exemplars.sort();
        }
        paths.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(paths)
    }
}

/// Each root-to-leaf chain of a trace's spans, reduced to the calls between services (a span is
/// kept where its service differs from the last kept one's, or it is a server span). Walked
/// without recursion: a trace may be thousands of spans deep.
fn trace_paths<'a>(spans: &[SpanRef<'a>]) -> Vec<Vec<(&'a str, &'a str)>> {
    let ids: HashSet<u32> = spans.iter().map(|s| s.id_low).collect();
    let mut children: HashMap<u32, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, span) in spans.iter().enumerate() {
        // A span whose parent is not in the trace starts a path of its own.
        if span.root || !ids.contains(&span.parent_low) || span.parent_low == span.id_low {
            roots.push(i);
        } else {
            children.entry(span.parent_low).or_default().push(i);
        }
    }
    let mut out = Vec::new();
    let mut visited = vec![false; spans.len()];
    let mut path: Vec<(&str, &str)> = Vec::new();
    // (span, length of the path above it).
    let mut stack: Vec<(usize, usize)> = roots.into_iter().rev().map(|r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        // Low id bits can collide: a span is walked once, so a collision cannot loop.
        if std::mem::replace(&mut visited[i], true) {
            continue;
        }
        path.truncate(depth);
        let span = &spans[i];
        if path.last().is_none_or(|(s, _)| *s != span.service) || span.kind == SERVER {
            path.push((span.service, span.name));
        }
        let next: Vec<usize> = children
            .get(&span.id_low)
            .map(|c| c.iter().copied().filter(|&c| !visited[c]).collect())
            .unwrap_or_default();
        if next.is_empty() {
            out.push(path.clone());
        }
        stack.extend(next.into_iter().rev().map(|c| (c, path.len())));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span<'a>(id: u32, parent: u32, service: &'a str, name: &'a str, kind: u8) -> SpanRef<'a> {
        SpanRef {
            id_low: id,
            parent_low: parent,
            service,
            name,
            kind,
            error: false,
            root: parent == 0,
            start_ns: 0,
            duration_ns: 0,
        }
    }

    #[test]
    fn paths_run_root_to_leaf_through_the_calls_between_services() {
        // gateway GET /checkout → (client) payments: POST /pay → db SELECT, and → inventory.
        let spans = [
            span(1, 0, "gateway", "GET /checkout", SERVER),
            span(2, 1, "gateway", "call payments", 3),
            span(3, 2, "payments", "POST /pay", SERVER),
            span(4, 3, "payments", "SELECT", 3),
            span(5, 1, "inventory", "GET /stock", SERVER),
        ];
        let paths = trace_paths(&spans);
        assert_eq!(
            paths,
            [
                vec![("gateway", "GET /checkout"), ("payments", "POST /pay")],
                vec![("gateway", "GET /checkout"), ("inventory", "GET /stock")],
            ]
        );
    }
}
