//! Aggregates over every span in a time window, computed from the index alone: the service graph
//! (who calls whom, how often, how fast, how often failing) and rate / errors / duration over time.

use std::collections::{BTreeMap, HashMap};

use osprey_store::{Head, SpanEntry, TraceEntry};

use crate::Query;

/// Traces examined per hold of the head's lock.
const CHUNK: usize = 4096;

/// Duration percentiles of a set of spans.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
}

impl Percentiles {
    fn of(mut durations: Vec<u64>) -> Percentiles {
        durations.sort_unstable();
        let at = |p: f64| {
            durations
                .get(((durations.len().max(1) - 1) as f64 * p).round() as usize)
                .copied()
                .unwrap_or(0)
        };
        Percentiles {
            p50_ns: at(0.5),
            p95_ns: at(0.95),
            p99_ns: at(0.99),
        }
    }
}

/// Calls from one service to another: a span whose parent span belongs to another service.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub parent: String,
    pub child: String,
    pub calls: u64,
    pub errors: u64,
    /// Of the child's spans on this edge.
    pub latency: Percentiles,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceNode {
    pub name: String,
    pub spans: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceGraph {
    pub nodes: Vec<ServiceNode>,
    pub edges: Vec<Edge>,
}

/// One time bucket of a rate / errors / duration series.
#[derive(Debug, Clone, PartialEq)]
pub struct RedPoint {
    pub start_ns: u64,
    pub requests: u64,
    pub errors: u64,
    pub latency: Percentiles,
}

/// Totals for one operation over the whole window.
#[derive(Debug, Clone, PartialEq)]
pub struct OperationTotals {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub latency: Percentiles,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Red {
    pub step_ns: u64,
    pub series: Vec<RedPoint>,
    pub operations: Vec<OperationTotals>,
}

/// Which spans count as a service's requests: its entry points (server and consumer spans), or every
/// span of the service when it has none (a service that only starts traces internally).
const SERVER: u8 = 2;
const CONSUMER: u8 = 5;

impl Query {
    /// Calls `f` for every indexed trace overlapping `[start_ns, end_ns]`, a chunk per hold of the lock.
    fn each_trace(&self, start_ns: u64, end_ns: u64, mut f: impl FnMut(&Head, &TraceEntry)) {
        let mut before = usize::MAX;
        loop {
            let head = self.store.head();
            let mut scanned = 0;
            for trace in head.traces_newest_first(before).take(CHUNK) {
                scanned += 1;
                if trace.end_ns >= start_ns && trace.start_ns <= end_ns {
                    f(&head, trace);
                }
            }
            before = before.min(head.trace_count()) - scanned;
            if scanned < CHUNK {
                return;
            }
        }
    }

    /// The service graph of spans starting in `[start_ns, end_ns]`.
    pub fn service_graph(&self, start_ns: u64, end_ns: u64) -> ServiceGraph {
        let mut nodes: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut edges: BTreeMap<(String, String), (u64, u64, Vec<u64>)> = BTreeMap::new();
        self.each_trace(start_ns, end_ns, |head, trace| {
            let spans: Vec<&SpanEntry> = head.spans(trace).collect();
            let service_of: HashMap<u32, u32> =
                spans.iter().map(|s| (s.id_low, s.service)).collect();
            for span in spans
                .iter()
                .filter(|s| (start_ns..=end_ns).contains(&s.start_ns))
            {
                let node = nodes
                    .entry(head.service_name(span.service).to_string())
                    .or_default();
                node.0 += 1;
                node.1 += span.error as u64;
                let Some(&parent) = service_of.get(&span.parent_low).filter(|_| !span.root) else {
                    continue;
                };
                if parent != span.service {
                    let edge = edges
                        .entry((
                            head.service_name(parent).to_string(),
                            head.service_name(span.service).to_string(),
                        ))
                        .or_default();
                    edge.0 += 1;
                    edge.1 += span.error as u64;
                    edge.2.push(span.duration_ns);
                }
            }
        });
        ServiceGraph {
            nodes: nodes
                .into_iter()
                .map(|(name, (spans, errors))| ServiceNode {
                    name,
                    spans,
                    errors,
                })
                .collect(),
            edges: edges
                .into_iter()
                .map(|((parent, child), (calls, errors, durations))| Edge {
                    parent,
                    child,
                    calls,
                    errors,
                    latency: Percentiles::of(durations),
                })
                .collect(),
        }
    }

    /// Rate, errors and duration percentiles of `service`'s requests (optionally one operation) in
    /// buckets of `step_ns` over `[start_ns, end_ns)`, and totals per operation.
    pub fn red(
        &self,
        service: &str,
        operation: Option<&str>,
        start_ns: u64,
        end_ns: u64,
        step_ns: u64,
    ) -> Red {
        let step_ns = step_ns.max(1);
        let buckets = (end_ns.saturating_sub(start_ns))
            .div_ceil(step_ns)
            .min(10_000) as usize;
        let mut entry: Vec<(u64, bool, u64, u32, bool)> = Vec::new();
        let mut names: HashMap<u32, String> = HashMap::new();
        let mut has_entry_spans = false;
        self.each_trace(start_ns, end_ns, |head, trace| {
            let Some(service) = head.service_id(service) else {
                return;
            };
            for span in head.spans(trace) {
                if span.service != service || !(start_ns..end_ns).contains(&span.start_ns) {
                    continue;
                }
                let is_entry = span.kind == SERVER || span.kind == CONSUMER;
                has_entry_spans |= is_entry;
                names
                    .entry(span.name)
                    .or_insert_with(|| head.span_name(span.name).to_string());
                entry.push((
                    span.start_ns,
                    span.error,
                    span.duration_ns,
                    span.name,
                    is_entry,
                ));
            }
        });
        let requests = entry
            .into_iter()
            .filter(|s| s.4 || !has_entry_spans)
            .filter(|s| operation.is_none_or(|op| names[&s.3] == op));
        let mut series: Vec<(u64, u64, Vec<u64>)> = vec![(0, 0, Vec::new()); buckets];
        let mut by_operation: BTreeMap<&str, (u64, u64, Vec<u64>)> = BTreeMap::new();
        for (start, error, duration, name, _) in requests {
            let bucket = ((start - start_ns) / step_ns) as usize;
            if let Some(b) = series.get_mut(bucket) {
                b.0 += 1;
                b.1 += error as u64;
                b.2.push(duration);
            }
            let op = by_operation.entry(names[&name].as_str()).or_default();
            op.0 += 1;
            op.1 += error as u64;
            op.2.push(duration);
        }
        Red {
            step_ns,
            series: series
                .into_iter()
                .enumerate()
                .map(|(i, (requests, errors, durations))| RedPoint {
                    start_ns: start_ns + i as u64 * step_ns,
                    requests,
                    errors,
                    latency: Percentiles::of(durations),
                })
                .collect(),
            operations: by_operation
                .into_iter()
                .map(|(name, (requests, errors, durations))| OperationTotals {
                    name: name.to_string(),
                    requests,
                    errors,
                    latency: Percentiles::of(durations),
                })
                .collect(),
        }
    }
}
