//! The Jaeger UI's Monitor tab (Service Performance Monitoring): `/api/metrics/latencies`, `calls`
//! and `errors`, answered from stored spans (Jaeger needs a Prometheus fed by span metrics for
//! these) in Jaeger's shape, an OpenMetrics `MetricFamily` as protobuf JSON.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use osprey_model::jaeger::span_kind_from_name;
use osprey_query::{SpanMetric, SpanMetricSeries, SpanMetricsRequest, MAX_POINTS};

use crate::jaeger_v1::V1;
use crate::params::{self, Params};
use crate::{ApiError, ApiState};

type Answer = Result<Response, ApiError<V1>>;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/metrics/latencies", get(latencies))
        .route("/api/metrics/calls", get(calls))
        .route("/api/metrics/errors", get(errors))
}

const MS: u64 = 1_000_000;

/// The parameter's value read as Go's `strconv.ParseBool` reads it.
fn go_bool(text: &str) -> Result<bool, String> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("{text:?} is not a boolean")),
    }
}

/// Jaeger's parameters and defaults: `service` (one or more, required), `spanKind` (one or more,
/// default server), `groupByOperation`, `endTs` (default now), `lookback` (1 h), `step` (5 s),
/// `ratePer` (10 min), all times in milliseconds.
fn request(p: &Params) -> Result<SpanMetricsRequest, String> {
    let services: Vec<String> = p
        .all("service")
        .chain(p.all("services").flat_map(|s| s.split(',')))
        .map(str::to_string)
        .collect();
    if services.is_empty() {
        return Err(
            "unable to parse param 'service': please provide at least one service name".into(),
        );
    }
    let mut span_kinds = Vec::new();
    for name in p.all("spanKind") {
        let short = name.strip_prefix("SPAN_KIND_").unwrap_or(name);
        let kind = span_kind_from_name(short).ok_or_else(|| {
            format!("unable to parse param 'spanKind': unsupported span kind: '{name}'")
        })?;
        span_kinds.push(kind as u8);
    }
    if span_kinds.is_empty() {
        span_kinds.push(span_kind_from_name("server").expect("a kind") as u8);
    }
    let request = SpanMetricsRequest {
        services,
        span_kinds,
        group_by_operation: p.parsed(&["groupByOperation"], go_bool)?.unwrap_or(false),
        end_ns: p
            .parsed(&["endTs"], params::millis)?
            .unwrap_or(params::now_ns()),
        lookback_ns: p
            .parsed(&["lookback"], params::millis)?
            .unwrap_or(3_600_000 * MS),
        step_ns: p.parsed(&["step"], params::millis)?.unwrap_or(5_000 * MS),
        rate_per_ns: p
            .parsed(&["ratePer"], params::millis)?
            .unwrap_or(600_000 * MS),
    };
    if request.step_ns == 0 || request.rate_per_ns == 0 {
        return Err("invalid step and ratePer: they must be positive".into());
    }
    if request.lookback_ns / request.step_ns > MAX_POINTS {
        return Err(format!(
            "invalid step: lookback / step makes more than {MAX_POINTS} points"
        ));
    }
    Ok(request)
}

async fn answer(
    state: ApiState,
    query: Option<String>,
    metric: impl FnOnce(&Params) -> Result<SpanMetric, String>,
) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let (request, metric) = (request(&p)?, metric(&p)?);
    let group_by_operation = request.group_by_operation;
    let series = state
        .run("metrics", move |q| q.span_metrics(&request, metric))
        .await?;
    Ok(Json(metric_family(metric, group_by_operation, &series)).into_response())
}

async fn latencies(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    answer(state, query, |p| {
        let q = p
            .get(&["quantile"])
            .ok_or("unable to parse param 'quantile': it is required")?;
        match q.parse::<f64>() {
            Ok(q) if q > 0.0 && q <= 1.0 => Ok(SpanMetric::Latencies(q)),
            _ => Err(format!(
                "unable to parse param 'quantile': {q:?} is not a number in (0, 1]"
            )),
        }
    })
    .await
}

async fn calls(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    answer(state, query, |_| Ok(SpanMetric::Calls)).await
}

async fn errors(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    answer(state, query, |_| Ok(SpanMetric::Errors)).await
}

/// A point's time as protobuf JSON writes a `Timestamp`: RFC 3339 in UTC.
fn timestamp(ns: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ns as i128)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The series as Jaeger's metrics reader names and describes them.
fn metric_family(
    metric: SpanMetric,
    group_by_operation: bool,
    series: &[SpanMetricSeries],
) -> serde_json::Value {
    let grouping = if group_by_operation {
        "grouped by service & operation"
    } else {
        "grouped by service"
    };
    let (name, help) = match metric {
        SpanMetric::Latencies(q) => (
            "service_latencies",
            format!("{:.2}th quantile latency, {grouping}", q),
        ),
        SpanMetric::Calls => ("service_call_rate", format!("calls/sec, {grouping}")),
        SpanMetric::Errors => (
            "service_error_rate",
            format!("error rate, computed as a fraction of errors/sec over calls/sec, {grouping}"),
        ),
    };
    let metrics: Vec<_> = series
        .iter()
        .map(|s| {
            let mut labels = Vec::new();
            if let Some(operation) = &s.operation {
                labels.push(json!({"name": "operation", "value": operation}));
            }
            labels.push(json!({"name": "service_name", "value": s.service}));
            let points: Vec<_> = s
                .points
                .iter()
                .map(|(t, v)| json!({"gaugeValue": {"doubleValue": v}, "timestamp": timestamp(*t)}))
                .collect();
            json!({"labels": labels, "metricPoints": points})
        })
        .collect();
    json!({"name": name, "type": "GAUGE", "help": help, "metrics": metrics})
}
