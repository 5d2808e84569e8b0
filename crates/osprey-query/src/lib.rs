//! Osprey's query engine: finds traces through the head index and assembles them from stored records.
//!
//! Every call here reads files; run it off the async executor (e.g. `spawn_blocking`).

mod aggregate;
pub mod analysis;
mod assemble;
mod search;
mod summary;

use std::sync::Arc;

use osprey_store::Store;

pub use aggregate::{Edge, OperationTotals, Percentiles, Red, RedPoint, ServiceGraph, ServiceNode};
pub use search::TraceQuery;
pub use summary::{ServiceCount, TraceSummary};

/// The read side of a store.
#[derive(Clone)]
pub struct Query {
    store: Arc<Store>,
}

impl Query {
    pub fn new(store: Arc<Store>) -> Query {
        Query { store }
    }

    /// Every service that has sent spans, sorted.
    pub fn services(&self) -> Vec<String> {
        self.store
            .head()
            .services()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The operations (span name, OTLP span kind) of `service`, optionally of one kind only.
    pub fn operations(&self, service: &str, kind: Option<i32>) -> Vec<(String, i32)> {
        let head = self.store.head();
        let Some(service) = head.service_id(service) else {
            return Vec::new();
        };
        head.operations(service)
            .into_iter()
            .map(|(name, k)| (name.to_string(), k as i32))
            .filter(|(_, k)| kind.is_none_or(|kind| kind == *k))
            .collect()
    }
}
