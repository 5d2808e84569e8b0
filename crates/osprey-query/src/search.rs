//! Search and trace lookup across every source: each answers alone, the engine merges.

use std::collections::HashMap;

use osprey_model::otlp::ResourceSpans;
use osprey_model::TraceId;
use osprey_store::{overlaps, TraceQuery};

use crate::combine::combine;
use crate::Query;

impl Query {
    /// Up to `query.limit` traces with a span matching every condition, newest first (by the
    /// trace's start).
    pub fn search(&self, query: &TraceQuery) -> crate::Result<Vec<TraceId>> {
        // Newest sources first: once `limit` traces are found that start after everything an older
        // source holds ends, the older sources cannot change the answer and are not read.
        let mut sources: Vec<_> = self
            .sources()
            .into_iter()
            .filter_map(|s| {
                let range = s.time_range()?;
                overlaps(range, query.start_range()).then_some((range, s))
            })
            .collect();
        sources.sort_by_key(|(range, _)| std::cmp::Reverse(range.1));
        let mut hits: HashMap<TraceId, u64> = HashMap::new();
        for ((_, end), source) in &sources {
            if query.limit > 0 && hits.len() >= query.limit {
                let mut starts: Vec<u64> = hits.values().copied().collect();
                starts.sort_unstable_by(|a, b| b.cmp(a));
                if starts[query.limit - 1] > *end {
                    break;
                }
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
    pub fn trace(&self, id: &TraceId) -> crate::Result<Option<Vec<ResourceSpans>>> {
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
