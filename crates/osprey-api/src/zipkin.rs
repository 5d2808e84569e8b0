//! Zipkin's v2 query API (openzipkin/zipkin-api `zipkin2-api.yaml`), what the Zipkin UI (zipkin-lens)
//! calls, on the Zipkin port beside its span intake: services, span names, remote services, trace
//! search, traces by id, dependencies and autocomplete. Spans from every protocol answer, mapped
//! as `osprey_model::zipkin` maps them; errors are Zipkin's: a status with the reason as text.

use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use osprey_model::zipkin::{self, ZipkinSpan};
use osprey_model::TraceId;
use osprey_query::traceql::{
    Attribute, CompareOp, FieldExpr, Intrinsic, Scope, SpansetExpr, Value,
};
use osprey_query::{Query, TraceqlSearch};

use crate::params::{self, Params};
use crate::{ApiError, ApiState, PlainText};

/// Zipkin answers errors as plain text with the status.
type Answer = Result<Response, ApiError<PlainText>>;

/// The API at `/api/v2/…`, and again under `/zipkin/` with the UI's `config.json` and `/health`:
/// the Zipkin UI's container forwards its requests with that prefix.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .merge(api())
        .nest("/zipkin", api())
        .route("/zipkin/config.json", get(ui_config))
        .route("/health", get(health))
}

/// The Zipkin UI's settings: search and dependencies on, Zipkin's defaults otherwise.
async fn ui_config() -> Response {
    Json(json!({
        "environment": "",
        "queryLimit": DEFAULT_LIMIT,
        "defaultLookback": 900_000,
        "searchEnabled": true,
        "dependency": {"enabled": true, "lowErrorRate": 0.5, "highErrorRate": 0.75},
    }))
    .into_response()
}

async fn health() -> Response {
    Json(json!({"status": "UP", "zipkin": {"status": "UP"}})).into_response()
}

fn api() -> Router<ApiState> {
    Router::new()
        .route("/api/v2/services", get(services))
        .route("/api/v2/spans", get(span_names))
        .route("/api/v2/remoteServices", get(remote_services))
        .route("/api/v2/traces", get(traces))
        .route("/api/v2/trace/{trace_id}", get(trace))
        .route("/api/v2/traceMany", get(trace_many))
        .route("/api/v2/dependencies", get(dependencies))
        .route("/api/v2/autocompleteKeys", get(autocomplete_keys))
        .route("/api/v2/autocompleteValues", get(autocomplete_values))
}

/// Zipkin's default number of traces a search returns.
const DEFAULT_LIMIT: usize = 10;

fn attribute(scope: Scope, name: &str) -> FieldExpr {
    FieldExpr::Attribute(Attribute {
        scope,
        parent: false,
        name: name.to_string(),
    })
}

fn equals(field: FieldExpr, value: &str) -> FieldExpr {
    FieldExpr::Compare(
        CompareOp::Eq,
        Box::new(field),
        Box::new(FieldExpr::Static(Value::Str(value.to_string()))),
    )
}

/// A tag condition as Zipkin shows tags, as text: the attribute's text is `value` whatever its
/// type (`http.status_code=500` finds an OTLP span's integer 500 too).
fn tag_is(key: &str, value: &str) -> FieldExpr {
    let field = || attribute(Scope::Any, key);
    let typed = [
        value.parse::<i64>().ok().map(Value::Int),
        value.parse::<f64>().ok().map(Value::Float),
        value.parse::<bool>().ok().map(Value::Bool),
    ];
    typed
        .into_iter()
        .flatten()
        .map(|v| {
            FieldExpr::Compare(
                CompareOp::Eq,
                Box::new(field()),
                Box::new(FieldExpr::Static(v)),
            )
        })
        .fold(equals(field(), value), |a, b| {
            FieldExpr::Or(Box::new(a), Box::new(b))
        })
}

fn service_is(service: &str) -> FieldExpr {
    equals(attribute(Scope::Resource, "service.name"), service)
}

/// The conditions of one `annotationQuery` term: `key=value` a tag, a bare word a tag's key or an
/// annotation (`error` also an ERROR status, which is how a Zipkin `error` tag is stored).
fn annotation_term(term: &str) -> FieldExpr {
    match term.split_once('=') {
        // Only `error=true` became an ERROR status at ingest; other values stayed as the tag.
        Some(("error", "true")) => {
            FieldExpr::Or(Box::new(tag_is("error", "true")), Box::new(status_error()))
        }
        Some((key, value)) => tag_is(key, value),
        None => {
            let tag = FieldExpr::Exists(Box::new(attribute(Scope::Any, term)));
            let annotation = equals(FieldExpr::Intrinsic(Intrinsic::EventName), term);
            let either = FieldExpr::Or(Box::new(tag), Box::new(annotation));
            if term == "error" {
                FieldExpr::Or(Box::new(either), Box::new(status_error()))
            } else {
                either
            }
        }
    }
}

fn status_error() -> FieldExpr {
    FieldExpr::Compare(
        CompareOp::Eq,
        Box::new(FieldExpr::Intrinsic(Intrinsic::Status)),
        Box::new(FieldExpr::Static(Value::Status(2))),
    )
}

fn duration_bound(op: CompareOp, micros: u64) -> FieldExpr {
    FieldExpr::Compare(
        op,
        Box::new(FieldExpr::Intrinsic(Intrinsic::Duration)),
        Box::new(FieldExpr::Static(Value::Duration(
            i64::try_from(micros.saturating_mul(1000)).unwrap_or(i64::MAX),
        ))),
    )
}

/// A trace search as a TraceQL spanset filter: one span meets every condition.
fn search(p: &Params) -> Result<TraceqlSearch, String> {
    let mut conditions = Vec::new();
    if let Some(service) = p.get(&["serviceName"]).filter(|s| !s.is_empty()) {
        conditions.push(service_is(service));
    }
    if let Some(name) = p
        .get(&["spanName"])
        .filter(|s| !s.is_empty() && *s != "all")
    {
        conditions.push(equals(FieldExpr::Intrinsic(Intrinsic::Name), name));
    }
    if let Some(remote) = p.get(&["remoteServiceName"]).filter(|s| !s.is_empty()) {
        conditions.push(equals(attribute(Scope::Span, "peer.service"), remote));
    }
    if let Some(query) = p.get(&["annotationQuery"]) {
        for term in query
            .split(" and ")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            conditions.push(annotation_term(term));
        }
    }
    if let Some(min) = p.parsed(&["minDuration"], params::unsigned)? {
        conditions.push(duration_bound(CompareOp::Ge, min));
    }
    if let Some(max) = p.parsed(&["maxDuration"], params::unsigned)? {
        conditions.push(duration_bound(CompareOp::Le, max));
    }
    let filter = conditions
        .into_iter()
        .reduce(|a, b| FieldExpr::And(Box::new(a), Box::new(b)))
        .unwrap_or(FieldExpr::Static(Value::Bool(true)));
    let (start_ns, end_ns) = params::end_ts_lookback(p)?;
    Ok(TraceqlSearch {
        expr: SpansetExpr::Filter(filter),
        start_ns,
        end_ns,
        limit: p
            .parsed(&["limit"], params::unsigned)?
            .map_or(DEFAULT_LIMIT, |l| l.max(1) as usize),
        spans_per_spanset: 1,
    })
}

async fn services(State(state): State<ApiState>) -> Answer {
    let services = state.run("zipkin services", |q| Ok(q.services())).await?;
    Ok(Json(services).into_response())
}

fn service_param(query: Option<&str>) -> Result<String, String> {
    Params::parse(query)?
        .get(&["serviceName"])
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "serviceName is required".to_string())
}

async fn span_names(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let service = service_param(query.as_deref())?;
    let operations = state
        .run("zipkin spans", move |q| Ok(q.operations(&service, None)))
        .await?;
    let mut names: Vec<String> = operations.into_iter().map(|(name, _)| name).collect();
    names.sort();
    names.dedup();
    Ok(Json(names).into_response())
}

/// The values of span attribute `key` among the spans of `filter` in the last day.
async fn span_attribute_values(
    state: &ApiState,
    key: String,
    filter: Option<FieldExpr>,
) -> Result<Vec<String>, ApiError<PlainText>> {
    let now = params::now_ns();
    let values = state
        .run("zipkin values", move |q| {
            q.tag_values(
                (now.saturating_sub(params::DAY_NS), now),
                &attribute(Scope::Span, &key),
                filter.map(SpansetExpr::Filter).as_ref(),
            )
        })
        .await?;
    let mut texts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    texts.sort();
    texts.dedup();
    Ok(texts)
}

async fn remote_services(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let service = service_param(query.as_deref())?;
    let values =
        span_attribute_values(&state, "peer.service".into(), Some(service_is(&service))).await?;
    Ok(Json(values).into_response())
}

/// Traces as Zipkin lists them: each a list of spans.
fn zipkin_traces(q: &Query, ids: Vec<TraceId>) -> osprey_query::Result<Vec<Vec<ZipkinSpan>>> {
    let mut traces = Vec::new();
    for id in ids {
        if let Some(spans) = q.trace(&id)? {
            traces.push(zipkin::trace(&spans));
        }
    }
    Ok(traces)
}

async fn traces_of(
    state: &ApiState,
    ids: Vec<TraceId>,
) -> Result<Vec<Vec<ZipkinSpan>>, ApiError<PlainText>> {
    Ok(state
        .run("zipkin traces", move |q| zipkin_traces(q, ids))
        .await?)
}

/// The search and the assembly of what it found in one query, so one `--query-timeout` bounds both.
async fn traces(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let request = search(&Params::parse(query.as_deref())?)?;
    let traces = state
        .run("zipkin search", move |q| {
            let (matches, _) = q.traceql_search(&request)?;
            zipkin_traces(q, matches.into_iter().map(|m| m.trace_id).collect())
        })
        .await?;
    Ok(Json(traces).into_response())
}

async fn trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Answer {
    let id = params::trace_id(&trace_id)?;
    let mut traces = traces_of(&state, vec![id]).await?;
    if traces.is_empty() {
        return Err(ApiError::not_found(format!("{} not found", id.to_hex())));
    }
    Ok(Json(traces.remove(0)).into_response())
}

async fn trace_many(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    let list = p.get(&["traceIds"]).unwrap_or_default();
    let ids = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(params::trace_id)
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(ApiError::bad_request("traceIds parameter is empty"));
    }
    Ok(Json(traces_of(&state, ids).await?).into_response())
}

async fn dependencies(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let p = Params::parse(query.as_deref())?;
    p.get(&["endTs"]).ok_or("endTs is required".to_string())?;
    let (start, end) = params::end_ts_lookback(&p)?;
    let graph = state
        .run("zipkin dependencies", move |q| q.service_graph(start, end))
        .await?;
    Ok(Json(
        graph
            .edges
            .iter()
            .map(|e| {
                json!({"parent": e.parent, "child": e.child, "callCount": e.calls,
                       "errorCount": e.errors})
            })
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn autocomplete_keys(State(state): State<ApiState>) -> Answer {
    let now = params::now_ns();
    let names = state
        .run("zipkin keys", move |q| {
            q.tag_names((now.saturating_sub(params::DAY_NS), now), None)
        })
        .await?;
    // Osprey's own bookkeeping of shared spans is not a tag users search by.
    Ok(Json(
        names
            .get("span")
            .into_iter()
            .flatten()
            .filter(|k| !k.starts_with("zipkin.shared_"))
            .collect::<Vec<_>>(),
    )
    .into_response())
}

async fn autocomplete_values(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let key = Params::parse(query.as_deref())?
        .get(&["key"])
        .filter(|k| !k.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "key is required".to_string())?;
    Ok(Json(span_attribute_values(&state, key, None).await?).into_response())
}
