//! The services page's overview: every service's request rate, error rate and latency
//! percentiles over a window, with a sparkline of its requests. Requests are a service's entry
//! spans (server and consumer), or all its spans when it has none, as for RED. Rates are per
//! second of the stretch of the window that holds spans, not of the whole window: a demo running
//! for 4 minutes shows its 4 checkouts a second under "last 1 h", not 0.07.

use osprey_store::head::Interner;

use crate::aggregate::{DataRange, FastMap, Percentiles, CONSUMER, SERVER};
use crate::Query;

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceOverview {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub latency: Percentiles,
    /// Requests in each of the window's steps, oldest first.
    pub requests_per_step: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Overview {
    pub step_ns: u64,
    /// The first and last span start in the window (0, 0 when none).
    pub data_range: (u64, u64),
    pub services: Vec<ServiceOverview>,
}

/// A service's requests so far: entry spans, and all spans in case it has none.
#[derive(Default)]
struct Requests {
    entry: Counts,
    all: Counts,
}

#[derive(Default)]
struct Counts {
    errors: u64,
    durations: Vec<u64>,
    per_step: Vec<u64>,
}

impl Counts {
    fn add(&mut self, step: usize, steps: usize, error: bool, duration_ns: u64) {
        if self.per_step.is_empty() {
            self.per_step = vec![0; steps];
        }
        self.per_step[step] += 1;
        self.errors += error as u64;
        self.durations.push(duration_ns);
    }
}

impl Query {
    /// Every service's requests, errors and latency over `[start_ns, end_ns)`, in `steps` steps.
    pub fn services_overview(
        &self,
        start_ns: u64,
        end_ns: u64,
        steps: usize,
    ) -> crate::Result<Overview> {
        let steps = steps.clamp(1, 1_000);
        let step_ns = (end_ns.saturating_sub(start_ns) / steps as u64).max(1);
        let mut names = Interner::default();
        let mut services: FastMap<u32, Requests> = FastMap::default();
        let mut data = DataRange::default();
        self.each_trace(start_ns, end_ns, &mut |_, spans| {
            for span in spans
                .iter()
                .filter(|s| (start_ns..end_ns).contains(&s.start_ns))
            {
                data.add(span.start_ns);
                let step = (((span.start_ns - start_ns) / step_ns) as usize).min(steps - 1);
                let requests = services.entry(names.intern(span.service)).or_default();
                let counts = if span.kind == SERVER || span.kind == CONSUMER {
                    &mut requests.entry
                } else {
                    &mut requests.all
                };
                counts.add(step, steps, span.error, span.duration_ns);
            }
        })?;
        let mut services: Vec<ServiceOverview> = services
            .into_iter()
            .map(|(id, mut r)| {
                // Without entry spans, every span is a request.
                let counts = if r.entry.durations.is_empty() {
                    r.all
                } else {
                    std::mem::take(&mut r.entry)
                };
                ServiceOverview {
                    name: names.name(id).to_string(),
                    requests: counts.durations.len() as u64,
                    errors: counts.errors,
                    requests_per_step: counts.per_step,
                    latency: Percentiles::of(counts.durations),
                }
            })
            .collect();
        services.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Overview {
            step_ns,
            data_range: data.range(),
            services,
        })
    }
}
