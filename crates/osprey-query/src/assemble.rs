//! Trace assembly: gathering a trace's spans out of the records that carry them.

use std::collections::{BTreeSet, HashMap};
use std::io;

use osprey_model::otlp::{ResourceSpans, ScopeSpans};
use osprey_model::TraceId;

use crate::Query;

impl Query {
    /// The whole trace, spans grouped by resource and scope, or `None` when no span of it is stored.
    pub fn trace(&self, id: &TraceId) -> io::Result<Option<Vec<ResourceSpans>>> {
        let locations: Vec<_> = {
            let head = self.store.head();
            let Some(trace) = head.trace(id) else {
                return Ok(None);
            };
            let records: BTreeSet<u32> = head.spans(trace).map(|s| s.record).collect();
            records.into_iter().map(|r| head.record(r)).collect()
        };
        let mut out: Vec<ResourceSpans> = Vec::new();
        // (resource index, scope index, span id, start) → span index: finds exact copies in O(1).
        let mut seen: HashMap<(usize, usize, Vec<u8>, u64), usize> = HashMap::new();
        for location in locations {
            let request = self.store.read_record(location)?;
            for rs in request.resource_spans {
                for ss in rs.scope_spans {
                    let spans: Vec<_> = ss
                        .spans
                        .into_iter()
                        .filter(|s| s.trace_id == id.0)
                        .collect();
                    if spans.is_empty() {
                        continue;
                    }
                    let (resource_index, resource) = find_or_push(
                        &mut out,
                        |o| o.resource == rs.resource && o.schema_url == rs.schema_url,
                        || ResourceSpans {
                            resource: rs.resource.clone(),
                            scope_spans: Vec::new(),
                            schema_url: rs.schema_url.clone(),
                        },
                    );
                    let (scope_index, target) = find_or_push(
                        &mut resource.scope_spans,
                        |o| o.scope == ss.scope && o.schema_url == ss.schema_url,
                        || ScopeSpans {
                            scope: ss.scope.clone(),
                            spans: Vec::new(),
                            schema_url: ss.schema_url.clone(),
                        },
                    );
                    // A client that retried an export it never saw acknowledged sends the same span
                    // twice; an exact copy adds nothing.
                    for span in spans {
                        let key = (
                            resource_index,
                            scope_index,
                            span.span_id.clone(),
                            span.start_time_unix_nano,
                        );
                        match seen.get(&key) {
                            Some(&i) if target.spans[i] == span => {}
                            _ => {
                                seen.insert(key, target.spans.len());
                                target.spans.push(span);
                            }
                        }
                    }
                }
            }
        }
        Ok(Some(out))
    }
}

fn find_or_push<T>(
    items: &mut Vec<T>,
    is_it: impl Fn(&T) -> bool,
    make: impl FnOnce() -> T,
) -> (usize, &mut T) {
    let index = match items.iter().position(is_it) {
        Some(i) => i,
        None => {
            items.push(make());
            items.len() - 1
        }
    };
    (index, &mut items[index])
}
