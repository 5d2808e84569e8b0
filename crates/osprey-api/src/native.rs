//! Osprey's own API for its web UI: a trace together with its analysis, in one answer.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use osprey_model::otlp::ResourceSpans;
use osprey_query::analysis::{analyze, SelfTimeTotal};
use osprey_query::{rate_seconds, Percentiles};

use crate::params::{self, Params};
use crate::{ApiError, ApiState, ErrorForm};

type Answer = Result<Response, ApiError<Native>>;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/osprey/traces/{trace_id}", get(trace))
        .route("/api/osprey/service-graph", get(service_graph))
        .route("/api/osprey/red", get(red))
        .route("/api/osprey/services", get(services_overview))
}

/// The window of an aggregate: `start`/`end` in microseconds (the Jaeger UI's unit), or the `lookback`
/// (a Go duration, default 1h) before `end` (default now).
pub(crate) fn window(params: &Params) -> Result<(u64, u64), String> {
    let micros = |v: &str| params::unsigned(v).map(|us| us.saturating_mul(1000));
    let now = params::now_ns();
    let end = params.parsed(&["end"], micros)?.unwrap_or(now);
    let start = match params.parsed(&["start"], micros)? {
        Some(start) => start,
        None => {
            let lookback = params
                .parsed(&["lookback"], params::go_duration)?
                .unwrap_or(3_600_000_000_000);
            end.saturating_sub(lookback)
        }
    };
    if start >= end {
        return Err("start must be before end".into());
    }
    Ok((start, end))
}

fn percentiles_json(p: &Percentiles) -> serde_json::Value {
    json!({"p50Nanos": p.p50_ns, "p95Nanos": p.p95_ns, "p99Nanos": p.p99_ns})
}

fn merge(mut base: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    if let (Some(base), serde_json::Value::Object(extra)) = (base.as_object_mut(), extra) {
        base.extend(extra);
    }
    base
}

/// `{"windowNanos", "nodes": [{name, spans, errors}], "edges": [{parent, child, calls, errors, p50Nanos, p95Nanos, p99Nanos}]}`.
async fn service_graph(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let (start, end) = window(&Params::parse(query.as_deref())?)?;
    let graph = state
        .run("service-graph", move |q| q.service_graph(start, end))
        .await?;
    Ok(Json(json!({
        "windowNanos": end - start,
        "dataStartNanos": graph.data_range.0.to_string(),
        "dataEndNanos": graph.data_range.1.to_string(),
        "rateWindowNanos": (rate_seconds(graph.data_range) * 1e9) as u64,
        "nodes": graph.nodes.iter().map(|n| json!({"name": n.name, "spans": n.spans, "errors": n.errors})).collect::<Vec<_>>(),
        "edges": graph.edges.iter().map(|e| merge(
            json!({"parent": e.parent, "child": e.child, "calls": e.calls, "errors": e.errors}),
            percentiles_json(&e.latency),
        )).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `{"stepNanos", "series": [{startTimeUnixNano, requests, errors, p50Nanos, p95Nanos, p99Nanos}],
/// "operations": [{name, requests, errors, p50Nanos, …}]}` for `service` (required), optionally one
/// `operation`, with `step` a Go duration (default: the window in 60 steps).
async fn red(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let (start, end) = window(&p)?;
    let service = p
        .get(&["service"])
        .ok_or("parameter 'service' is required".to_string())?
        .to_string();
    let operation = p.get(&["operation"]).map(str::to_string);
    let step = p
        .parsed(&["step"], params::go_duration)?
        .unwrap_or(((end - start) / 60).max(1_000_000_000));
    let red = state
        .run("red", move |q| {
            q.red(&service, operation.as_deref(), start, end, step)
        })
        .await?;
    Ok(Json(json!({
        "stepNanos": red.step_ns,
        "series": red.series.iter().map(|p| merge(
            json!({"startTimeUnixNano": p.start_ns.to_string(), "requests": p.requests, "errors": p.errors}),
            percentiles_json(&p.latency),
        )).collect::<Vec<_>>(),
        "operations": red.operations.iter().map(|o| merge(
            json!({"name": o.name, "requests": o.requests, "errors": o.errors}),
            percentiles_json(&o.latency),
        )).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `{"windowNanos", "stepNanos", "dataStartNanos", "dataEndNanos", "rateWindowNanos", "services":
/// [{name, requests, errors, p50Nanos, p95Nanos, p99Nanos, requestsPerStep}]}`: every service over
/// the window (`lookback` or `start`/`end`), in `steps` steps (default 30). Rates are meant per
/// `rateWindowNanos`: the stretch of the window that holds spans (at least a second).
async fn services_overview(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let (start, end) = window(&p)?;
    let steps = p.parsed(&["steps"], params::unsigned)?.unwrap_or(30) as usize;
    let overview = state
        .run("services", move |q| q.services_overview(start, end, steps))
        .await?;
    Ok(Json(json!({
        "windowNanos": end - start,
        "stepNanos": overview.step_ns,
        "dataStartNanos": overview.data_range.0.to_string(),
        "dataEndNanos": overview.data_range.1.to_string(),
        "rateWindowNanos": (rate_seconds(overview.data_range) * 1e9) as u64,
        "services": overview.services.iter().map(|s| merge(
            json!({"name": s.name, "requests": s.requests, "errors": s.errors, "requestsPerStep": s.requests_per_step}),
            percentiles_json(&s.latency),
        )).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// Errors as `{"error": "message"}`.
pub(crate) struct Native;

impl ErrorForm for Native {
    fn error(status: StatusCode, message: String) -> Response {
        (status, Json(json!({"error": message}))).into_response()
    }
}

fn total_json(t: &SelfTimeTotal) -> serde_json::Value {
    json!({"service": t.service, "operation": t.operation, "selfNanos": t.self_ns, "spans": t.spans})
}

/// `{"traceId", "resourceSpans": [OTLP/JSON], "analysis": {...}}`. Span-indexed analysis arrays follow
/// the spans in resource → scope → span order of `resourceSpans`; times in the analysis are
/// nanoseconds from the trace's start.
async fn trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Answer {
    let id = params::trace_id(&trace_id)?;
    let found = state
        .run("native-trace", move |q| {
            q.trace(&id).map(|spans| {
                spans.map(|spans| {
                    let analysis = analyze(&spans);
                    (spans, analysis)
                })
            })
        })
        .await?;
    let Some((spans, analysis)) = found else {
        return Err(ApiError::not_found("trace not found"));
    };
    let start = analysis.start_ns;
    let bottleneck = analysis.bottleneck().map(|(service, operation)| {
        json!({"service": total_json(service), "operation": total_json(operation)})
    });
    let analysis = json!({
        "startTimeUnixNano": start.to_string(),
        "durationNanos": analysis.end_ns - start,
        "selfNanos": analysis.spans.iter().map(|s| s.self_ns).collect::<Vec<_>>(),
        "parents": analysis.spans.iter().map(|s| s.parent).collect::<Vec<_>>(),
        "criticalPath": analysis.critical_path.iter().map(|c| json!({
            "span": c.span, "startNanos": c.start_ns - start, "endNanos": c.end_ns - start,
        })).collect::<Vec<_>>(),
        "byService": analysis.by_service.iter().map(total_json).collect::<Vec<_>>(),
        "byOperation": analysis.by_operation.iter().map(total_json).collect::<Vec<_>>(),
        "bottleneck": bottleneck,
    });
    Ok(Json(TraceAnswer {
        trace_id: id.to_hex(),
        resource_spans: &spans,
        analysis,
    })
    .into_response())
}

/// Serialised straight from the OTLP messages: a 50,000-span trace is 20 MB of JSON, and going
/// through a `serde_json::Value` first doubled the time to write it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TraceAnswer<'a> {
    trace_id: String,
    resource_spans: &'a [ResourceSpans],
    analysis: serde_json::Value,
}
