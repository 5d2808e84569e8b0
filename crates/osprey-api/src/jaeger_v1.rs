//! The Jaeger query API the Jaeger UI and Grafana's Jaeger data source use: `{"data": …, "errors": …}`
//! envelopes, microsecond times, Go durations.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use osprey_model::jaeger::{self, span_kind_from_name, span_kind_name};
use osprey_query::TraceQuery;

use crate::params::{self, Params};
use crate::ApiState;

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
}

fn data<T: Serialize>(items: Vec<T>) -> Response {
    Json(json!({"data": items, "total": items.len(), "limit": 0, "offset": 0, "errors": null}))
        .into_response()
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"data": null, "total": 0, "limit": 0, "offset": 0,
                      "errors": [{"code": status.as_u16(), "msg": message.into()}]});
    (status, Json(body)).into_response()
}

fn bad_request(message: String) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

fn internal(e: std::io::Error) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("reading stored spans failed: {e}"),
    )
}

async fn services(State(state): State<ApiState>) -> Response {
    data(state.run("services", |q| q.services()).await)
}

async fn service_operations(
    State(state): State<ApiState>,
    Path(service): Path<String>,
) -> Response {
    let operations = state
        .run("operations", move |q| q.operations(&service, None))
        .await;
    let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
    names.dedup();
    data(names)
}

async fn operations(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    let params = match Params::parse(query.as_deref()) {
        Ok(p) => p,
        Err(e) => return bad_request(e),
    };
    let Some(service) = params.get(&["service"]).map(str::to_string) else {
        return bad_request("parameter 'service' is required".into());
    };
    let kind = match params.get(&["spanKind"]) {
        None => None,
        Some(name) => match span_kind_from_name(name) {
            Some(kind) => Some(kind),
            None => return bad_request(format!("unknown spanKind {name:?}")),
        },
    };
    let operations = state
        .run("operations", move |q| q.operations(&service, kind))
        .await;
    data(
        operations
            .into_iter()
            .map(|(name, kind)| json!({"name": name, "spanKind": span_kind_name(kind).unwrap_or("")}))
            .collect(),
    )
}

async fn trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Response {
    let id = match params::trace_id(&trace_id) {
        Ok(id) => id,
        Err(e) => return bad_request(e),
    };
    match state.run("trace", move |q| q.trace(&id)).await {
        Ok(Some(spans)) => data(vec![jaeger::trace(&id.to_hex(), &spans)]),
        Ok(None) => error(StatusCode::NOT_FOUND, "trace not found"),
        Err(e) => internal(e),
    }
}

fn search_query(params: &Params) -> Result<TraceQuery, String> {
    let mut attributes: Vec<(String, String)> = Vec::new();
    if let Some(tags) = params.get(&["tags"]) {
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(tags)
            .map_err(|e| format!("invalid tags: expected a JSON object of strings: {e}"))?;
        for (key, value) in map {
            let value = match value {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            attributes.push((key, value));
        }
    }
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

async fn search(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Response {
    let query = match Params::parse(query.as_deref()).and_then(|p| search_query(&p)) {
        Ok(q) => q,
        Err(e) => return bad_request(e),
    };
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
        .await;
    match traces {
        Ok(traces) => data(traces),
        Err(e) => internal(e),
    }
}
