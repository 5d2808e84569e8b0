//! Aggregates over every span in a time window, from the span columns every source keeps: the
//! service graph (who calls whom, how often, how fast, how often failing) and rate / errors /
//! duration over time.

use std::collections::{BTreeMap, HashMap};

use osprey_model::TraceId;
use osprey_store::head::Interner;
use osprey_store::{overlaps, SpanRef};

use crate::members::Members;
use crate::Query;

/// A map keyed by what a scan counts for every span (aHash: SipHash was a tenth of a service graph).
pub(crate) type FastMap<K, V> = HashMap<K, V, ahash::RandomState>;

/// The spans without repeats (the same span sent twice, or held by two sources).
fn distinct(mut spans: Vec<SpanRef>) -> Vec<SpanRef> {
    // Start first: sources hand spans over in start order, which the sort then only confirms.
    let key = |s: &SpanRef| (s.start_ns, s.id_low, s.duration_ns, s.parent_low);
    spans.sort_by_key(key);
    spans.dedup_by_key(|s| key(s));
    spans
}

/// A span kept past its source's scan, names interned.
struct OwnedSpan {
    id_low: u32,
    parent_low: u32,
    service: u32,
    name: u32,
    kind: u8,
    error: bool,
    root: bool,
    start_ns: u64,
    duration_ns: u64,
}

impl OwnedSpan {
    fn of(s: &SpanRef, names: &mut Interner) -> OwnedSpan {
        OwnedSpan {
            id_low: s.id_low,
            parent_low: s.parent_low,
            service: names.intern(s.service),
            name: names.intern(s.name),
            kind: s.kind,
            error: s.error,
            root: s.root,
            start_ns: s.start_ns,
            duration_ns: s.duration_ns,
        }
    }

    fn as_ref<'a>(&self, names: &'a Interner) -> SpanRef<'a> {
        SpanRef {
            id_low: self.id_low,
            parent_low: self.parent_low,
            service: names.name(self.service),
            name: names.name(self.name),
            kind: self.kind,
            error: self.error,
            root: self.root,
            start_ns: self.start_ns,
            duration_ns: self.duration_ns,
        }
    }
}

/// Duration percentiles of a set of spans.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Percentiles {
    pub p50_ns: u64,
    pub p95_ns: u64,
    pub p99_ns: u64,
}

impl Percentiles {
    /// By selection, not a sort: an edge of a busy service graph has millions of durations.
    pub(crate) fn of(mut durations: Vec<u64>) -> Percentiles {
        if durations.is_empty() {
            return Percentiles::default();
        }
        let last = durations.len() - 1;
        let mut at = |p: f64| {
            *durations
                .select_nth_unstable((last as f64 * p).round() as usize)
                .1
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
    /// The first and last span start in the window (0, 0 when none): rates are per second of
    /// this stretch, not of the whole window, which may reach far past the data.
    pub data_range: (u64, u64),
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

/// The first and last of a set of times.
#[derive(Default)]
pub(crate) struct DataRange(Option<(u64, u64)>);

impl DataRange {
    pub(crate) fn add(&mut self, t: u64) {
        self.0 = Some(self.0.map_or((t, t), |(a, b)| (a.min(t), b.max(t))));
    }

    pub(crate) fn range(&self) -> (u64, u64) {
        self.0.unwrap_or((0, 0))
    }
}

/// Seconds to divide counts by for a rate over `range`: its length, at least a second.
pub fn rate_seconds(range: (u64, u64)) -> f64 {
    (range.1.saturating_sub(range.0) as f64 / 1e9).max(1.0)
}

/// Which spans count as a service's requests: its entry points (server and consumer spans), or every
/// span of the service when it has none (a service that only starts traces internally).
pub(crate) const SERVER: u8 = 2;
pub(crate) const CONSUMER: u8 = 5;

impl Query {
    /// Calls `f` with the spans of every trace overlapping `[start_ns, end_ns]`, each span once.
    /// A trace that other sources may also hold (cut across the head and a block) is gathered from
    /// all of them first; the rest go straight through.
    pub(crate) fn each_trace(
        &self,
        start_ns: u64,
        end_ns: u64,
        f: &mut dyn FnMut(&TraceId, &[SpanRef]),
    ) -> crate::Result<()> {
        let sources: Vec<_> = self
            .sources()
            .into_iter()
            .filter(|s| {
                s.time_range()
                    .is_some_and(|range| overlaps(range, (start_ns, end_ns)))
            })
            .collect();
        let mut names = Interner::default();
        let mut deferred: HashMap<TraceId, Vec<OwnedSpan>> = HashMap::new();
        let members = Members::new(&sources);
        for (i, source) in sources.iter().enumerate() {
            source.scan(start_ns, end_ns, &mut |id, spans| {
                let elsewhere = members.elsewhere(i, id);
                if elsewhere {
                    let owned = deferred.entry(*id).or_default();
                    owned.extend(spans.iter().map(|s| OwnedSpan::of(s, &mut names)));
                } else {
                    f(id, &distinct(spans.to_vec()));
                }
            })?;
        }
        for (id, spans) in deferred {
            let refs: Vec<SpanRef> = spans.iter().map(|s| s.as_ref(&names)).collect();
            f(&id, &distinct(refs));
        }
        Ok(())
    }

    /// The service graph of spans starting in `[start_ns, end_ns]`.
    pub fn service_graph(&self, start_ns: u64, end_ns: u64) -> crate::Result<ServiceGraph> {
        // Counted by interned service ids: a string key made for every span was most of the cost.
        let mut services = Interner::default();
        let mut nodes: FastMap<u32, (u64, u64)> = FastMap::default();
        let mut edges: FastMap<(u32, u32), (u64, u64, Vec<u64>)> = FastMap::default();
        let mut data = DataRange::default();
        self.each_trace(start_ns, end_ns, &mut |_, spans| {
            // Most traces have a few dozen spans at most: a look along them beats building a map.
            let map: Option<FastMap<u32, &str>> =
                (spans.len() > 32).then(|| spans.iter().map(|s| (s.id_low, s.service)).collect());
            let service_of = |id: u32| match &map {
                Some(map) => map.get(&id).copied(),
                None => spans.iter().find(|s| s.id_low == id).map(|s| s.service),
            };
            for span in spans
                .iter()
                .filter(|s| (start_ns..=end_ns).contains(&s.start_ns))
            {
                data.add(span.start_ns);
                let service = services.intern(span.service);
                let node = nodes.entry(service).or_default();
                node.0 += 1;
                node.1 += span.error as u64;
                let Some(parent) = service_of(span.parent_low).filter(|_| !span.root) else {
                    continue;
                };
                if parent != span.service {
                    let edge = edges.entry((services.intern(parent), service)).or_default();
                    edge.0 += 1;
                    edge.1 += span.error as u64;
                    edge.2.push(span.duration_ns);
                }
            }
        })?;
        let name = |id: u32| services.name(id).to_string();
        let mut nodes: Vec<ServiceNode> = nodes
            .into_iter()
            .map(|(id, (spans, errors))| ServiceNode {
                name: name(id),
                spans,
                errors,
            })
            .collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut edges: Vec<Edge> = edges
            .into_iter()
            .map(|((parent, child), (calls, errors, durations))| Edge {
                parent: name(parent),
                child: name(child),
                calls,
                errors,
                latency: Percentiles::of(durations),
            })
            .collect();
        edges.sort_by(|a, b| (&a.parent, &a.child).cmp(&(&b.parent, &b.child)));
        Ok(ServiceGraph {
            nodes,
            edges,
            data_range: data.range(),
        })
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
    ) -> crate::Result<Red> {
        let step_ns = step_ns.max(1);
        let buckets = (end_ns.saturating_sub(start_ns))
            .div_ceil(step_ns)
            .min(10_000) as usize;
        let mut entry: Vec<(u64, bool, u64, u32, bool)> = Vec::new();
        // Operation names interned to small ids while scanning.
        let mut names = Interner::default();
        let mut has_entry_spans = false;
        self.each_trace(start_ns, end_ns, &mut |_, spans| {
            for span in spans {
                if span.service != service || !(start_ns..end_ns).contains(&span.start_ns) {
                    continue;
                }
                let is_entry = span.kind == SERVER || span.kind == CONSUMER;
                has_entry_spans |= is_entry;
                let name = names.intern(span.name);
                entry.push((span.start_ns, span.error, span.duration_ns, name, is_entry));
            }
        })?;
        let requests = entry
            .into_iter()
            .filter(|s| s.4 || !has_entry_spans)
            .filter(|s| operation.is_none_or(|op| names.name(s.3) == op));
        let mut series: Vec<(u64, u64, Vec<u64>)> = vec![(0, 0, Vec::new()); buckets];
        let mut by_operation: BTreeMap<&str, (u64, u64, Vec<u64>)> = BTreeMap::new();
        for (start, error, duration, name, _) in requests {
            let bucket = ((start - start_ns) / step_ns) as usize;
            if let Some(b) = series.get_mut(bucket) {
                b.0 += 1;
                b.1 += error as u64;
                b.2.push(duration);
            }
            let op = by_operation.entry(names.name(name)).or_default();
            op.0 += 1;
            op.1 += error as u64;
            op.2.push(duration);
        }
        Ok(Red {
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Percentiles;

    #[test]
    fn percentiles_are_those_of_the_sorted_durations() {
        // A permutation of 0..=1000 (7919 and 1001 share no factor).
        let durations: Vec<u64> = (0..1001).map(|i| (i * 7919) % 1001).collect();
        let p = Percentiles::of(durations);
        assert_eq!((p.p50_ns, p.p95_ns, p.p99_ns), (500, 950, 990));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
        assert_eq!(Percentiles::of(vec![5]).p99_ns, 5);
    }
}
