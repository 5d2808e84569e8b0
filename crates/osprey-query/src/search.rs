//! Search and trace lookup across every source: each answers alone, the engine merges.

use std::collections::HashMap;
use std::io;

use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;
use osprey_store::{overlaps, TraceQuery};

use crate::combine::combine;
use crate::Query;

impl Query {
    /// Up to `query.limit` traces with a span matching every condition, newest first (by the
    /// trace's start).
    pub fn search(&self, query: &TraceQuery) -> io::Result<Vec<TraceId>> {
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        for source in self.sources() {
            if !source
                .time_range()
                .is_some_and(|range| overlaps(range, query.start_range()))
            {
                continue;
            }
            for hit in source.search(query)? {
                let start = hits.entry(hit.trace_id).or_insert(hit.start_ns);
                *start = (*start).min(hit.start_ns);
            }
        }
        let mut hits: Vec<(TraceId, u64)> = hits.into_iter().collect();
        hits.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        Ok(hits
            .into_iter()
            .take(query.limit)
            .map(|(id, _)| id)
            .collect())
    }

    /// The whole trace, spans grouped by resource and scope, or `None` when no span of it is stored.
    pub fn trace(&self, id: &TraceId) -> io::Result<Option<Vec<ResourceSpans>>> {
        let mut pieces = Vec::new();
        for source in self.sources() {
            pieces.extend(source.trace(id)?);
        }
        if pieces.is_empty() {
            return Ok(None);
        }
        Ok(Some(combine(pieces)))
    }
}
