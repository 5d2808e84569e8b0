//! Jaeger's Service Performance Monitoring (the Monitor tab) computed from stored spans, not from a
//! metrics store: per service (and operation), at each step, the calls a second, the share of them
//! that failed, and a latency quantile, each over the `rate_per` window ending at that step, as
//! Jaeger's Prometheus queries (`rate(…[ratePer])`, `histogram_quantile`) compute them from span
//! metrics.

use std::collections::BTreeMap;

use crate::Query;

/// What the Monitor tab asks.
#[derive(Debug, Clone)]
pub struct SpanMetricsRequest {
    pub services: Vec<String>,
    /// OTLP span kinds counted (Jaeger's default: server).
    pub span_kinds: Vec<u8>,
    pub group_by_operation: bool,
    /// Unix nanoseconds of the last point.
    pub end_ns: u64,
    /// Points from `end_ns - lookback_ns` to `end_ns`, every `step_ns`.
    pub lookback_ns: u64,
    pub step_ns: u64,
    /// Each point counts the spans starting in `(t - rate_per_ns, t]`.
    pub rate_per_ns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpanMetric {
    /// Calls a second.
    Calls,
    /// Failed calls as a fraction of calls.
    Errors,
    /// The quantile (0–1] of call durations, in milliseconds.
    Latencies(f64),
}

/// One series: a service (and operation), a value at each point that has one.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanMetricSeries {
    pub service: String,
    pub operation: Option<String>,
    /// (unix nanoseconds, value).
    pub points: Vec<(u64, f64)>,
}

/// A counted span: its start (unix nanoseconds), duration (nanoseconds) and whether it failed.
type Call = (u64, u64, bool);

/// Points a request may ask for.
pub const MAX_POINTS: u64 = 11_000;

/// Latency buckets a power of two: each about 9 % wide.
const SUB_BUCKETS: u32 = 8;

/// The latency bucket of a duration: `SUB_BUCKETS` per power of two of nanoseconds.
fn bucket(duration_ns: u64) -> usize {
    let d = duration_ns.max(1) as f64;
    (d.log2() * SUB_BUCKETS as f64).floor() as usize
}

/// The lower bound of a latency bucket, in nanoseconds.
fn bucket_floor(b: usize) -> f64 {
    (b as f64 / SUB_BUCKETS as f64).exp2()
}

/// The spans of one series in a window: calls, errors, and durations by bucket.
#[derive(Default)]
struct Window {
    calls: u64,
    errors: u64,
    buckets: Vec<u64>,
}

impl Window {
    fn change(&mut self, span: &Call, sign: i64) {
        let add = |n: &mut u64| *n = n.wrapping_add_signed(sign);
        add(&mut self.calls);
        if span.2 {
            add(&mut self.errors);
        }
        let b = bucket(span.1);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        add(&mut self.buckets[b]);
    }

    /// The `q` quantile of the window's durations in milliseconds, interpolated within its bucket
    /// as `histogram_quantile` does.
    fn quantile_ms(&self, q: f64) -> f64 {
        let rank = q * self.calls as f64;
        let mut below = 0.0;
        for (b, &n) in self.buckets.iter().enumerate() {
            let n = n as f64;
            if n > 0.0 && below + n >= rank {
                let (low, high) = (bucket_floor(b), bucket_floor(b + 1));
                return (low + (high - low) * ((rank - below) / n).clamp(0.0, 1.0)) / 1e6;
            }
            below += n;
        }
        0.0
    }
}

impl Query {
    /// The series of `metric` for the request's services, newest point last.
    pub fn span_metrics(
        &self,
        request: &SpanMetricsRequest,
        metric: SpanMetric,
    ) -> crate::Result<Vec<SpanMetricSeries>> {
        let step = request.step_ns.max(1);
        let first = request.end_ns.saturating_sub(request.lookback_ns);
        let from = first.saturating_sub(request.rate_per_ns);
        // Per series (service, operation): the calls counted.
        let mut spans: BTreeMap<(String, Option<String>), Vec<Call>> = BTreeMap::new();
        self.each_trace(from, request.end_ns, &mut |_, trace| {
            for span in trace {
                if span.start_ns <= from
                    || span.start_ns > request.end_ns
                    || !request.span_kinds.contains(&span.kind)
                    || !request.services.iter().any(|s| s == span.service)
                {
                    continue;
                }
                let operation = request.group_by_operation.then(|| span.name.to_string());
                spans
                    .entry((span.service.to_string(), operation))
                    .or_default()
                    .push((span.start_ns, span.duration_ns, span.error));
            }
        })?;
        let rate_per_s = request.rate_per_ns.max(1) as f64 / 1e9;
        let mut out = Vec::new();
        for ((service, operation), mut series) in spans {
            series.sort_unstable_by_key(|s| s.0);
            let (mut entered, mut left) = (0, 0);
            let mut window = Window::default();
            let mut points = Vec::new();
            let mut t = first;
            while t <= request.end_ns {
                while entered < series.len() && series[entered].0 <= t {
                    window.change(&series[entered], 1);
                    entered += 1;
                }
                while left < entered && series[left].0 <= t.saturating_sub(request.rate_per_ns) {
                    window.change(&series[left], -1);
                    left += 1;
                }
                let value = match metric {
                    SpanMetric::Calls => Some(window.calls as f64 / rate_per_s),
                    _ if window.calls == 0 => None,
                    SpanMetric::Errors => Some(window.errors as f64 / window.calls as f64),
                    SpanMetric::Latencies(q) => Some(window.quantile_ms(q)),
                };
                points.extend(value.map(|v| (t, v)));
                match t.checked_add(step) {
                    Some(next) => t = next,
                    None => break,
                }
            }
            out.push(SpanMetricSeries {
                service,
                operation,
                points,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_fine_buckets() {
        let mut window = Window::default();
        for ms in 1..=100u64 {
            window.change(&(0, ms * 1_000_000, ms % 10 == 0), 1);
        }
        assert_eq!((window.calls, window.errors), (100, 10));
        for (q, exact) in [(0.5, 50.0), (0.95, 95.0), (0.99, 99.0)] {
            let got = window.quantile_ms(q);
            assert!((got - exact).abs() / exact < 0.1, "p{q}: {got} vs {exact}");
        }
        window.change(&(0, 100_000_000, true), -1);
        assert_eq!((window.calls, window.errors), (99, 9));
    }
}
