//! Span-level validation: spans whose ids are invalid are dropped one by one (OTLP partial success).

use osprey_model::otlp::{ExportTraceServiceRequest, Span};
use osprey_model::{SpanId, TraceId};

/// What validation took out of a request.
#[derive(Debug, Default)]
pub struct Rejected {
    pub spans: u64,
    /// Why the first rejected span was rejected (OTLP asks for one human-readable message).
    pub first_reason: Option<String>,
}

fn problem(span: &Span) -> Option<String> {
    let name = &span.name;
    if let Err(e) = TraceId::from_bytes(&span.trace_id) {
        return Some(format!("span {name:?}: trace id {e}"));
    }
    if let Err(e) = SpanId::from_bytes(&span.span_id) {
        return Some(format!("span {name:?}: span id {e}"));
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!(
            "span {name:?}: parent span id must be empty or 8 bytes, found {}",
            span.parent_span_id.len()
        ));
    }
    for link in &span.links {
        if let Err(e) = TraceId::from_bytes(&link.trace_id) {
            return Some(format!("span {name:?}: link trace id {e}"));
        }
        if let Err(e) = SpanId::from_bytes(&link.span_id) {
            return Some(format!("span {name:?}: link span id {e}"));
        }
    }
    None
}

/// Removes invalid spans (and the scopes and resources left empty by that) from `request`.
pub fn retain_valid(request: &mut ExportTraceServiceRequest) -> Rejected {
    let mut rejected = Rejected::default();
    for rs in &mut request.resource_spans {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|span| match problem(span) {
                None => true,
                Some(reason) => {
                    rejected.spans += 1;
                    rejected.first_reason.get_or_insert(reason);
                    false
                }
            });
        }
    }
    if rejected.spans > 0 {
        for rs in &mut request.resource_spans {
            rs.scope_spans.retain(|ss| !ss.spans.is_empty());
        }
        request
            .resource_spans
            .retain(|rs| !rs.scope_spans.is_empty());
    }
    rejected
}

pub fn span_count(request: &ExportTraceServiceRequest) -> u64 {
    request
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len() as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_model::otlp::{ResourceSpans, ScopeSpans};

    fn span(trace_id: Vec<u8>, span_id: Vec<u8>) -> Span {
        Span {
            trace_id,
            span_id,
            name: "op".into(),
            ..Default::default()
        }
    }

    #[test]
    fn drops_only_the_invalid_spans_and_says_why() {
        let mut request = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![
                            span(vec![1; 16], vec![1; 8]),
                            span(vec![0; 16], vec![2; 8]),
                            span(vec![1; 15], vec![3; 8]),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span(vec![1; 16], vec![0; 8])],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let rejected = retain_valid(&mut request);
        assert_eq!(rejected.spans, 3);
        assert_eq!(
            rejected.first_reason.unwrap(),
            "span \"op\": trace id must not be all zero"
        );
        assert_eq!(span_count(&request), 1);
        assert_eq!(request.resource_spans.len(), 1);
    }
}
