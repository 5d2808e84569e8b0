//! The Jaeger query API the Jaeger UI and Grafana's Jaeger data source use: `{"data": …, "errors": …}`
//! envelopes, microsecond times, Go durations.

use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use std::collections::BTreeMap;

use osprey_model::grouping::{push_span, Origin};
use osprey_model::jaeger;
use osprey_model::otlp::ResourceSpans;
use osprey_query::TraceQuery;

use crate::params::{self, Params};
use crate::{operation_json, ApiError, ApiState, ErrorForm};

type Answer = Result<Response, ApiError<V1>>;

/// Traces returned by a search that names no limit (Jaeger's default).
const DEFAULT_LIMIT: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/services", get(services))
        .route(
            "/api/services/{service}/operations",
            get(service_operations),
        )
        .route("/api/operations", get(operations))
        .route("/api/traces", get(search))
        .route("/api/traces/{trace_id}", get(trace))
        .route("/api/dependencies", get(dependencies))
        .route("/analytics/v1/dependencies", get(dependency_paths))
        // An OTLP JSON file (as `osprey trace --json` or a collector's file exporter writes) in
        // Jaeger's shape: the Jaeger UI's "upload a trace" reads it through this.
        .route(
            "/api/transform",
            post(transform).layer(DefaultBodyLimit::max(TRANSFORM_BODY_LIMIT)),
        )
}

/// The largest OTLP JSON document `/api/transform` takes (as OTLP ingest, after decompression).
const TRANSFORM_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// `POST /api/transform`: an OTLP JSON `ExportTraceServiceRequest` in, its traces as Jaeger
/// traces out (one per trace id, in id order), as Jaeger's query service answers.
async fn transform(body: axum::body::Bytes) -> Answer {
    let request = osprey_model::otlp_json::decode_request(&body)
        .map_err(|e| format!("cannot read the body as OTLP JSON: {e}"))?;
    let traces = by_trace(request.resource_spans)
        .into_iter()
        .map(|(id, spans)| jaeger::trace(&const_hex::encode(id), &spans))
        .collect();
    Ok(data(traces))
}

/// Each trace's spans, with the resource and scope they came under.
fn by_trace(resource_spans: Vec<ResourceSpans>) -> BTreeMap<Vec<u8>, Vec<ResourceSpans>> {
    let mut traces: BTreeMap<Vec<u8>, Vec<ResourceSpans>> = BTreeMap::new();
    for rs in resource_spans {
        for ss in rs.scope_spans {
            let origin = Origin {
                resource: &rs.resource,
                resource_schema_url: &rs.schema_url,
                scope: &ss.scope,
                scope_schema_url: &ss.schema_url,
            };
            for span in ss.spans {
                let pieces = traces.entry(span.trace_id.clone()).or_default();
                push_span(pieces, &origin, span);
            }
        }
    }
    traces
}

/// `endTs` and `lookback` in milliseconds (default: now, one day).
async fn dependencies(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let (start, end) = params::end_ts_lookback(&Params::parse(query.as_deref())?)?;
    let graph = state
        .run("dependencies", move |q| q.service_graph(start, end))
        .await?;
    Ok(data(
        graph
            .edges
            .iter()
            .map(|e| json!({"parent": e.parent, "child": e.child, "callCount": e.calls}))
            .collect(),
    ))
}

/// The Deep Dependency Graph's paths: `service` (required), `operation` (none or `*`: any), `start`
/// and `end` in unix milliseconds (0 or none, as the Jaeger UI sends them: the last day). Answered
/// as `{"dependencies": [{"path": [{service, operation}], "attributes": [{"key":
/// "exemplar_trace_id", "value"}]}]}`, the payload the UI reads.
async fn dependency_paths(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let service = p
        .get(&["service"])
        .ok_or("parameter 'service' is required".to_string())?
        .to_string();
    let operation = p
        .get(&["operation"])
        .filter(|o| !o.is_empty() && *o != "*")
        .map(str::to_string);
    let end = p
        .parsed(&["end"], params::millis)?
        .filter(|e| *e > 0)
        .unwrap_or(params::now_ns());
    let start = p
        .parsed(&["start"], params::millis)?
        .filter(|s| *s > 0)
        .unwrap_or(end.saturating_sub(params::DAY_NS));
    let paths = state
        .run("dependency paths", move |q| {
            q.dependency_paths(&service, operation.as_deref(), start, end)
        })
        .await?;
    let dependencies: Vec<_> = paths
        .iter()
        .map(|p| {
            let path: Vec<_> = p
                .path
                .iter()
                .map(|(service, operation)| json!({"service": service, "operation": operation}))
                .collect();
            let attributes: Vec<_> = p
                .exemplars
                .iter()
                .map(|id| json!({"key": "exemplar_trace_id", "value": id.to_hex()}))
                .collect();
            json!({"path": path, "attributes": attributes})
        })
        .collect();
    Ok(Json(json!({ "dependencies": dependencies })).into_response())
}

/// Errors in the `errors` list of the classic envelope.
pub(crate) struct V1;

impl ErrorForm for V1 {
    fn error(status: StatusCode, message: String) -> Response {
        let body = json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                          "errors": [{"code": status.as_u16(), "msg": message}]});
        (status, Json(body)).into_response()
    }
}

fn data<T: Serialize>(items: Vec<T>) -> Response {
    Json(json!({"data": items, "total": items.len(), "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

async fn services(State(state): State<ApiState>) -> Answer {
    Ok(data(state.run("services", |q| Ok(q.services())).await?))
}

async fn service_operations(State(state): State<ApiState>, Path(service): Path<String>) -> Answer {
    let operations = state
        .run("operations", move |q| Ok(q.operations(&service, None)))
        .await?;
    let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
    names.dedup();
    Ok(data(names))
}

async fn operations(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let (service, kind) = params::operations_filter(&Params::parse(query.as_deref())?)?;
    let operations = state
        .run("operations", move |q| Ok(q.operations(&service, kind)))
        .await?;
    Ok(data(
        operations
            .into_iter()
            .map(|(name, kind)| operation_json(name, kind))
            .collect(),
    ))
}

async fn trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Answer {
    let id = params::trace_id(&trace_id)?;
    match state.run("trace", move |q| q.trace(&id)).await? {
        Some(spans) => Ok(data(vec![jaeger::trace(&id.to_hex(), &spans)])),
        None => Err(ApiError::not_found("trace not found")),
    }
}

fn search_query(params: &Params) -> Result<TraceQuery, String> {
    let mut attributes = match params.get(&["tags"]) {
        Some(tags) => params::attribute_map(tags, "tags")?,
        None => Vec::new(),
    };
    for tag in params.all("tag") {
        let (key, value) = tag
            .split_once(':')
            .ok_or_else(|| format!("invalid tag {tag:?}: expected key:value"))?;
        attributes.push((key.to_string(), value.to_string()));
    }
    let micros = |v: &str| params::unsigned(v).map(|us| us.saturating_mul(1000));
    Ok(TraceQuery {
        service: params.get(&["service"]).map(str::to_string),
        operation: params.get(&["operation"]).map(str::to_string),
        attributes,
        min_duration_ns: params.parsed(&["minDuration"], params::go_duration)?,
        max_duration_ns: params.parsed(&["maxDuration"], params::go_duration)?,
        start_ns: params.parsed(&["start"], micros)?,
        end_ns: params.parsed(&["end"], micros)?,
        limit: params
            .parsed(&["limit"], params::unsigned)?
            .map_or(DEFAULT_LIMIT, |l| l as usize),
    })
}

async fn search(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let query = search_query(&Params::parse(query.as_deref())?)?;
    let traces = state
        .run("search", move |q| {
            let mut traces = Vec::new();
            for id in q.search(&query)? {
                if let Some(spans) = q.trace(&id)? {
                    traces.push(jaeger::trace(&id.to_hex(), &spans));
                }
            }
            Ok(traces)
        })
        .await?;
    Ok(data(traces))
}
