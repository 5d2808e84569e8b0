//! Trace summaries, from the span columns every source keeps (no attributes or events are read).

use std::collections::HashSet;

use osprey_model::TraceId;
use osprey_store::SpanRef;

use crate::Query;

#[derive(Debug, Clone, PartialEq)]
pub struct TraceSummary {
    pub trace_id: TraceId,
    pub root_service: String,
    pub root_name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub span_count: usize,
    pub error_count: usize,
    /// By span count, largest first.
    pub services: Vec<ServiceCount>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceCount {
    pub name: String,
    pub span_count: usize,
    pub error_count: usize,
}

/// A span as the summary needs it, owned so that spans from several sources can be gathered.
struct SummarySpan {
    service: String,
    name: String,
    error: bool,
    root: bool,
    start_ns: u64,
    end_ns: u64,
}

impl Query {
    /// Summaries of the given traces, in the same order; unknown ids are left out.
    pub fn summaries(&self, ids: &[TraceId]) -> crate::Result<Vec<TraceSummary>> {
        let sources = self.sources();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let mut spans: Vec<SummarySpan> = Vec::new();
            // The same span from two sources (or sent twice) counts once.
            let mut seen: HashSet<(u32, u64, u64)> = HashSet::new();
            for source in &sources {
                source.trace_spans(id, &mut |s: &SpanRef| {
                    if seen.insert((s.id_low, s.start_ns, s.duration_ns)) {
                        spans.push(SummarySpan {
                            service: s.service.to_string(),
                            name: s.name.to_string(),
                            error: s.error,
                            root: s.root,
                            start_ns: s.start_ns,
                            end_ns: s.start_ns + s.duration_ns,
                        });
                    }
                })?;
            }
            if let Some(summary) = summarize(*id, &spans) {
                out.push(summary);
            }
        }
        Ok(out)
    }
}

fn summarize(trace_id: TraceId, spans: &[SummarySpan]) -> Option<TraceSummary> {
    let start_ns = spans.iter().map(|s| s.start_ns).min()?;
    let end_ns = spans.iter().map(|s| s.end_ns).max()?;
    let mut services: Vec<ServiceCount> = Vec::new();
    for span in spans {
        let index = match services.iter().position(|s| s.name == span.service) {
            Some(i) => i,
            None => {
                services.push(ServiceCount {
                    name: span.service.clone(),
                    span_count: 0,
                    error_count: 0,
                });
                services.len() - 1
            }
        };
        services[index].span_count += 1;
        services[index].error_count += span.error as usize;
    }
    services.sort_by(|a, b| b.span_count.cmp(&a.span_count).then(a.name.cmp(&b.name)));
    // The root span, or the earliest span while the root has not arrived.
    let root = spans
        .iter()
        .filter(|s| s.root)
        .min_by_key(|s| s.start_ns)
        .or_else(|| spans.iter().min_by_key(|s| s.start_ns));
    Some(TraceSummary {
        trace_id,
        root_service: root.map_or("", |r| r.service.as_str()).to_string(),
        root_name: root.map_or("", |r| r.name.as_str()).to_string(),
        start_ns,
        end_ns,
        span_count: spans.len(),
        error_count: services.iter().map(|s| s.error_count).sum(),
        services,
    })
}
