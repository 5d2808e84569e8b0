//! Jaeger's api_v3 over HTTP: OTLP/JSON traces, RFC 3339 time bounds, `{"error": {...}}` errors.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

use osprey_model::otlp::ResourceSpans;
use osprey_query::{TraceQuery, TraceSummary};

use crate::params::{self, Params};
use crate::{operation_json, ApiError, ApiState, ErrorForm};

type Answer = Result<Response, ApiError<V3>>;

/// Traces returned when `query.search_depth` is not given.
const DEFAULT_DEPTH: usize = 100;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v3/services", get(services))
        .route("/api/v3/operations", get(operations))
        .route("/api/v3/traces", get(search))
        .route("/api/v3/traces/{trace_id}", get(trace))
        .route("/api/v3/trace-summaries", get(summaries))
        .route("/api/v3/dependencies", get(dependencies))
}

/// `start_time` and `end_time` (RFC 3339; default: the day before now), answered as the
/// gateway writes `DependenciesResponse` (`callCount` a uint64, so a string).
async fn dependencies(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let end = p
        .parsed(&keys("end_time", "endTime"), params::rfc3339)?
        .unwrap_or(params::now_ns());
    let start = p
        .parsed(&keys("start_time", "startTime"), params::rfc3339)?
        .unwrap_or(end.saturating_sub(params::DAY_NS));
    let graph = state
        .run("dependencies", move |q| q.service_graph(start, end))
        .await?;
    let dependencies: Vec<_> = graph
        .edges
        .iter()
        .map(|e| json!({"parent": e.parent, "child": e.child, "callCount": e.calls.to_string()}))
        .collect();
    Ok(Json(json!({ "dependencies": dependencies })).into_response())
}

/// `{"result": {"resourceSpans": [...]}}`, serialised straight from the OTLP messages.
fn otlp_result(spans: &[ResourceSpans]) -> Response {
    #[derive(Serialize)]
    struct Answer<'a> {
        result: Body<'a>,
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        resource_spans: &'a [ResourceSpans],
    }
    Json(Answer {
        result: Body {
            resource_spans: spans,
        },
    })
    .into_response()
}

/// Errors as `{"error": {"httpCode", "message"}}`.
pub(crate) struct V3;

impl ErrorForm for V3 {
    fn error(status: StatusCode, message: String) -> Response {
        let body = json!({"error": {"httpCode": status.as_u16(), "message": message}});
        (status, Json(body)).into_response()
    }
}

async fn services(State(state): State<ApiState>) -> Answer {
    let services = state.run("services", |q| Ok(q.services())).await?;
    Ok(Json(json!({ "services": services })).into_response())
}

async fn operations(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let (service, kind) = params::operations_filter(&Params::parse(query.as_deref())?)?;
    let operations = state
        .run("operations", move |q| Ok(q.operations(&service, kind)))
        .await?;
    let operations: Vec<_> = operations
        .into_iter()
        .map(|(name, kind)| operation_json(name, kind))
        .collect();
    Ok(Json(json!({ "operations": operations })).into_response())
}

/// `start_time` and `end_time` (RFC 3339) only say where the trace is likely to be, and
/// `raw_traces` asks for spans as stored: Osprey finds a trace by its id index wherever it is and
/// never adjusts spans, so they are checked and change nothing.
fn trace_hints(query: Option<&str>) -> Result<(), String> {
    let p = Params::parse(query)?;
    p.parsed(&keys("start_time", "startTime"), params::rfc3339)?;
    p.parsed(&keys("end_time", "endTime"), params::rfc3339)?;
    p.parsed(&keys("raw_traces", "rawTraces"), |v| match v {
        "true" | "false" => Ok(()),
        other => Err(format!("{other:?} is not true or false")),
    })?;
    Ok(())
}

async fn trace(
    State(state): State<ApiState>,
    Path(trace_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Answer {
    let id = params::trace_id(&trace_id)?;
    trace_hints(query.as_deref())?;
    match state.run("trace", move |q| q.trace(&id)).await? {
        Some(spans) => Ok(otlp_result(&spans)),
        None => Err(ApiError::not_found("trace not found")),
    }
}

/// `query.x_y` in the proto's spelling or `query.xY` in JSON's; both reach Jaeger.
fn keys(snake: &'static str, camel: &'static str) -> [&'static str; 2] {
    [snake, camel]
}

fn search_query(params: &Params) -> Result<TraceQuery, String> {
    let start = params
        .parsed(
            &keys("query.start_time_min", "query.startTimeMin"),
            params::rfc3339,
        )?
        .ok_or("query.start_time_min is required")?;
    let end = params
        .parsed(
            &keys("query.start_time_max", "query.startTimeMax"),
            params::rfc3339,
        )?
        .ok_or("query.start_time_max is required")?;
    let attributes = match params.get(&["query.attributes"]) {
        Some(json) => params::attribute_map(json, "query.attributes")?,
        None => Vec::new(),
    };
    Ok(TraceQuery {
        service: params
            .get(&keys("query.service_name", "query.serviceName"))
            .map(str::to_string),
        operation: params
            .get(&keys("query.operation_name", "query.operationName"))
            .map(str::to_string),
        attributes,
        min_duration_ns: params.parsed(
            &keys("query.duration_min", "query.durationMin"),
            params::go_duration,
        )?,
        max_duration_ns: params.parsed(
            &keys("query.duration_max", "query.durationMax"),
            params::go_duration,
        )?,
        start_ns: Some(start),
        end_ns: Some(end),
        limit: params
            .parsed(
                &[
                    "query.search_depth",
                    "query.searchDepth",
                    "query.num_traces",
                ],
                params::unsigned,
            )?
            .map_or(DEFAULT_DEPTH, |d| d as usize),
    })
}

/// Parses the search parameters, also `query.attributes[key]=value` pairs.
fn parse_search(query: Option<&str>) -> Result<TraceQuery, String> {
    let params = Params::parse(query)?;
    let mut search = search_query(&params)?;
    for (key, value) in params.pairs() {
        if let Some(attribute) = key
            .strip_prefix("query.attributes[")
            .and_then(|k| k.strip_suffix(']'))
        {
            search
                .attributes
                .push((attribute.to_string(), value.to_string()));
        }
    }
    Ok(search)
}

async fn search(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let query = parse_search(query.as_deref())?;
    let found = state
        .run("search", move |q| {
            let mut spans = Vec::new();
            for id in q.search(&query)? {
                spans.extend(q.trace(&id)?.unwrap_or_default());
            }
            Ok(spans)
        })
        .await?;
    if found.is_empty() {
        return Err(ApiError::not_found("No traces found"));
    }
    Ok(otlp_result(&found))
}

fn summary_json(s: &TraceSummary) -> serde_json::Value {
    json!({
        "traceId": s.trace_id.to_hex(),
        "rootServiceName": s.root_service,
        "rootOperationName": s.root_name,
        "minStartTimeUnixNano": s.start_ns.to_string(),
        "maxEndTimeUnixNano": s.end_ns.to_string(),
        "spanCount": s.span_count,
        "errorSpanCount": s.error_count,
        "services": s.services.iter().map(|c| json!({
            "name": c.name, "spanCount": c.span_count, "errorSpanCount": c.error_count,
        })).collect::<Vec<_>>(),
    })
}

async fn summaries(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let query = parse_search(query.as_deref())?;
    let found = state
        .run("trace-summaries", move |q| {
            q.search(&query).and_then(|ids| q.summaries(&ids))
        })
        .await?;
    let summaries: Vec<_> = found.iter().map(summary_json).collect();
    Ok(Json(json!({ "summaries": summaries })).into_response())
}
