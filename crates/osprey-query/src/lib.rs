//! Osprey's query engine: asks every span source of the store (head generations, blocks), merges
//! their answers newest first and combines duplicate spans, so no API knows where a span lives.
//!
//! Main types: [`Query`] (search, trace assembly, summaries, service graph, RED) and
//! [`TraceQuery`] (what a search asks). Every call may read files or an object store; run it off the
//! async executor (e.g. `spawn_blocking`).

mod aggregate;
pub mod analysis;
mod combine;
mod dependency_paths;
mod error;
mod members;
mod overview;
mod search;
mod span_metrics;
mod summary;
pub mod traceql;
mod traceql_metrics;
mod traceql_metrics_math;
mod traceql_search;
pub mod traceql_tags;

use std::collections::BTreeSet;
use std::sync::Arc;

use osprey_store::{SpanSource, Store};

pub use aggregate::{
    rate_seconds, Edge, OperationTotals, Percentiles, Red, RedPoint, ServiceGraph, ServiceNode,
};
pub use dependency_paths::DependencyPath;
pub use error::{QueryError, Result};
pub use osprey_store::TraceQuery;
pub use overview::{Overview, ServiceOverview};
pub use span_metrics::{SpanMetric, SpanMetricSeries, SpanMetricsRequest, MAX_POINTS};
pub use summary::{ServiceCount, TraceSummary};
pub use traceql_metrics::{default_step, Exemplar, MetricsRequest, Series};
pub use traceql_search::{MatchedSpan, MatchedSpanset, SearchStats, TraceMatch, TraceqlSearch};

/// The read side of one tenant's store.
#[derive(Clone)]
pub struct Query {
    store: Option<Arc<Store>>,
}

impl Query {
    pub fn new(store: Arc<Store>) -> Query {
        Query { store: Some(store) }
    }

    /// A tenant that has stored nothing: every answer is empty.
    pub fn empty() -> Query {
        Query { store: None }
    }

    fn sources(&self) -> Vec<Arc<dyn SpanSource>> {
        self.store.as_ref().map(|s| s.sources()).unwrap_or_default()
    }

    /// Every service that has sent spans, sorted.
    pub fn services(&self) -> Vec<String> {
        let names: BTreeSet<String> = self.sources().iter().flat_map(|s| s.services()).collect();
        names.into_iter().collect()
    }

    /// The operations (span name, OTLP span kind) of `service`, optionally of one kind only, sorted.
    pub fn operations(&self, service: &str, kind: Option<i32>) -> Vec<(String, i32)> {
        let operations: BTreeSet<(String, i32)> = self
            .sources()
            .iter()
            .flat_map(|s| s.operations(service))
            .map(|(name, k)| (name, k as i32))
            .filter(|(_, k)| kind.is_none_or(|kind| kind == *k))
            .collect();
        operations.into_iter().collect()
    }
}
