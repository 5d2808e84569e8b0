//! `GET /api/metrics/query_range` and `/api/metrics/query` (instant): TraceQL metrics as
//! tempopb.QueryRangeResponse / QueryInstantResponse in JSON.

use axum::extract::{RawQuery, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value as Json_};

use osprey_query::traceql::{parse, Root};
use osprey_query::{default_step, MetricsRequest, Series};

use super::{any_value, invalid_query, Answer};
use crate::params::{self, Params};
use crate::ApiState;

/// Exemplars a series carries when the request names no `exemplars`, and at most.
const DEFAULT_EXEMPLARS: usize = 100;
const MAX_EXEMPLARS: usize = 1_000;

/// The range a query without `start` covers, back from `end`.
const DEFAULT_RANGE_NS: u64 = 3_600_000_000_000;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/metrics/query_range", get(query_range))
        .route("/api/metrics/query", get(query_instant))
}

async fn query_range(state: State<ApiState>, query: RawQuery) -> Answer {
    run(state, query, false).await
}

async fn query_instant(state: State<ApiState>, query: RawQuery) -> Answer {
    run(state, query, true).await
}

async fn run(State(state): State<ApiState>, RawQuery(query): RawQuery, instant: bool) -> Answer {
    let request = request(&Params::parse(query.as_deref())?, instant)?;
    let endpoint = if instant {
        "tempo_metrics_instant"
    } else {
        "tempo_metrics_range"
    };
    let series = {
        let request = request.clone();
        state
            .run(endpoint, move |q| q.traceql_metrics(&request))
            .await?
    };
    let metrics = json!({"completedJobs": 1, "totalJobs": 1});
    if instant {
        let series: Vec<Json_> = series
            .iter()
            .filter(|s| !s.values[0].is_nan())
            .map(|s| json!({"labels": labels(s), "value": s.values[0]}))
            .collect();
        return Ok(Json(json!({"series": series, "metrics": metrics})).into_response());
    }
    let series: Vec<Json_> = series
        .iter()
        .map(|s| {
            let samples: Vec<Json_> = s
                .values
                .iter()
                .enumerate()
                .filter(|(_, v)| !v.is_nan())
                .map(|(i, v)| json!({"timestampMs": request.timestamp_ms(i).to_string(), "value": v}))
                .collect();
            let exemplars: Vec<Json_> = s.exemplars.iter().map(exemplar).collect();
            json!({"labels": labels(s), "samples": samples, "exemplars": exemplars})
        })
        .collect();
    Ok(Json(json!({"series": series, "metrics": metrics})).into_response())
}

/// An exemplar as tempopb writes it: the trace (and span) it links to, its value and time.
fn exemplar(e: &osprey_query::Exemplar) -> Json_ {
    let mut labels =
        vec![json!({"key": "trace:id", "value": {"stringValue": e.trace_id.to_hex()}})];
    if let Some(span_id) = &e.span_id {
        labels
            .push(json!({"key": "span:id", "value": {"stringValue": const_hex::encode(span_id)}}));
    }
    json!({
        "labels": labels,
        "value": e.value,
        "timestampMs": (e.timestamp_ns / 1_000_000).to_string(),
    })
}

/// Series labels as OTLP key/values; a label without a value (a span without a `by` attribute,
/// compare's totals) reads `nil`, as Tempo writes it.
fn labels(series: &Series) -> Vec<Json_> {
    series
        .labels
        .iter()
        .map(|(key, value)| {
            json!({"key": key, "value": any_value(value).unwrap_or(json!({"stringValue": "nil"}))})
        })
        .collect()
}

fn request(p: &Params, instant: bool) -> Result<MetricsRequest, String> {
    let q = p.get(&["q", "query"]).ok_or("parameter 'q' is required")?;
    let query = match parse(q).map_err(invalid_query)?.root {
        Root::Metrics(m) => m,
        Root::Spans(_) => {
            return Err("invalid TraceQL query: a metrics query ends in a function such as `| rate()`; searches are answered at /api/search".into())
        }
    };
    let now = params::now_ns();
    let end = p.parsed(&["end"], time)?.unwrap_or(now);
    let start = p
        .parsed(&["start"], time)?
        .unwrap_or(end.saturating_sub(DEFAULT_RANGE_NS));
    if start >= end {
        return Err("invalid start: it must be before end".into());
    }
    let step = match p.get(&["step"]) {
        Some(text) => step(text)?,
        None => default_step(start, end),
    };
    if step == 0 {
        return Err("invalid step: must be positive".into());
    }
    if !instant && (end - start) / step > 11_000 {
        return Err(format!(
            "invalid step: {} intervals in the range; use a step of at least {}s",
            (end - start) / step,
            (end - start).div_ceil(11_000).div_ceil(1_000_000_000)
        ));
    }
    // Exemplars per series (Tempo's default: 100).
    let exemplars = p
        .parsed(&["exemplars"], params::unsigned)?
        .map_or(DEFAULT_EXEMPLARS, |n| (n as usize).min(MAX_EXEMPLARS));
    Ok(MetricsRequest {
        query,
        start_ns: start,
        end_ns: end,
        step_ns: step,
        instant,
        exemplars,
    }
    .aligned())
}

/// Unix seconds (possibly fractional), unix nanoseconds, or RFC 3339.
fn time(text: &str) -> Result<u64, String> {
    if let Ok(n) = text.parse::<u64>() {
        // Seconds now are about 1.7e9, nanoseconds about 1.7e18.
        return Ok(if n > 100_000_000_000_000 {
            n
        } else {
            n.saturating_mul(1_000_000_000)
        });
    }
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds >= 0.0 {
            return Ok((seconds * 1e9) as u64);
        }
    }
    params::rfc3339(text)
}

/// A duration (`30s`, `1m`) or a number of seconds.
fn step(text: &str) -> Result<u64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds > 0.0 {
            return Ok((seconds * 1e9) as u64);
        }
    }
    params::go_duration(text).map_err(|e| format!("invalid step: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps_in_every_form_tempo_takes() {
        assert_eq!(time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(
            time("1700000000000000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(time("1700000000.5").unwrap(), 1_700_000_000_500_000_000);
        assert_eq!(
            time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(time("yesterday").is_err());
        assert_eq!(step("30s").unwrap(), 30_000_000_000);
        assert_eq!(step("15").unwrap(), 15_000_000_000);
        assert!(step("soon").is_err());
    }
}
