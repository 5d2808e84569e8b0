//! Trace summaries, computed from the index alone (no span bodies are read).

use osprey_model::TraceId;

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

impl Query {
    /// Summaries of the given traces, in the same order; unknown ids are left out.
    pub fn summaries(&self, ids: &[TraceId]) -> Vec<TraceSummary> {
        let head = self.store.head();
        ids.iter()
            .filter_map(|id| head.trace(id))
            .map(|trace| {
                let mut services: Vec<ServiceCount> = Vec::new();
                for span in head.spans(trace) {
                    let name = head.service_name(span.service);
                    let index = match services.iter().position(|s| s.name == name) {
                        Some(i) => i,
                        None => {
                            services.push(ServiceCount {
                                name: name.to_string(),
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
                let root = head.root(trace);
                TraceSummary {
                    trace_id: trace.id,
                    root_service: root
                        .map_or("", |r| head.service_name(r.service))
                        .to_string(),
                    root_name: root.map_or("", |r| head.span_name(r.name)).to_string(),
                    start_ns: trace.start_ns,
                    end_ns: trace.end_ns,
                    span_count: trace.span_count as usize,
                    error_count: services.iter().map(|s| s.error_count).sum(),
                    services,
                }
            })
            .collect()
    }
}
