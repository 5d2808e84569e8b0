//! Which other sources of a query may hold a piece of a trace. Each source's check (a block's
//! trace-id index) is fetched when first needed and kept for the query: a query that never asks a
//! source loads nothing of it, and one that asks about every trace fetches it once.

use std::cell::OnceCell;
use std::sync::Arc;

use osprey_model::TraceId;
use osprey_store::SpanSource;

type Check<'a> = Box<dyn Fn(&TraceId) -> bool + 'a>;

pub(crate) struct Members<'a> {
    sources: &'a [Arc<dyn SpanSource>],
    checks: Vec<OnceCell<Check<'a>>>,
}

impl<'a> Members<'a> {
    pub(crate) fn new(sources: &'a [Arc<dyn SpanSource>]) -> Members<'a> {
        Members {
            sources,
            checks: sources.iter().map(|_| OnceCell::new()).collect(),
        }
    }

    /// Whether a source other than the `i`th may hold a span of trace `id`.
    pub(crate) fn elsewhere(&self, i: usize, id: &TraceId) -> bool {
        (0..self.sources.len())
            .any(|j| j != i && self.checks[j].get_or_init(|| self.sources[j].membership())(id))
    }
}
