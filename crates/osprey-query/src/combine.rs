//! Combining the pieces of one trace that several sources hold (head generations, blocks): spans
//! grouped under one copy of each resource and scope, and a span sent twice (a client retry, or the
//! same span in a block and in the head after a restart) kept once.

use std::collections::HashMap;

use osprey_model::otlp::{ResourceSpans, ScopeSpans};

/// Merges pieces into one trace, in the order they come.
pub fn combine(pieces: impl IntoIterator<Item = ResourceSpans>) -> Vec<ResourceSpans> {
    let mut out: Vec<ResourceSpans> = Vec::new();
    // (resource index, scope index, span id, start) → span index: finds exact copies in O(1).
    let mut seen: HashMap<(usize, usize, Vec<u8>, u64), usize> = HashMap::new();
    for rs in pieces {
        for ss in rs.scope_spans {
            if ss.spans.is_empty() {
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
            for span in ss.spans {
                let key = (
                    resource_index,
                    scope_index,
                    span.span_id.clone(),
                    span.start_time_unix_nano,
                );
                match seen.get(&key) {
                    Some(&i) if same_span(&target.spans[i], &span) => {}
                    _ => {
                        seen.insert(key, target.spans.len());
                        target.spans.push(span);
                    }
                }
            }
        }
    }
    out
}

/// Equal, except perhaps for the order of attributes (a block keeps well-known attributes in
/// columns of their own and puts them back after the rest).
fn same_span(a: &osprey_model::otlp::Span, b: &osprey_model::otlp::Span) -> bool {
    if a == b {
        return true;
    }
    let sorted = |s: &osprey_model::otlp::Span| {
        let mut s = s.clone();
        s.attributes.sort_by(|x, y| x.key.cmp(&y.key));
        s
    };
    sorted(a) == sorted(b)
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
