//! Grafana Tempo's HTTP API (port 3200 by default), so Grafana's Tempo data source works against
//! Osprey by URL alone: readiness and echo, build info, trace by id (v1 and v2, JSON or protobuf
//! by `Accept`), TraceQL search (and the legacy tag search), tags and tag values (v1 and v2),
//! TraceQL metrics (range and instant).
//! Errors are plain text with the HTTP status, as Tempo answers them.

mod metrics;
mod search;

pub use search::native_routes;
mod tags;
mod traces;

use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value as Json_};

use osprey_query::traceql::{duration_text, ParseError, Value};

use crate::{ApiError, ApiState, PlainText};

/// Tempo answers errors as plain text with the status.
type Answer = Result<Response, ApiError<PlainText>>;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/echo", get(|| async { "echo" }))
        .route("/api/status/buildinfo", get(buildinfo))
        .merge(traces::routes())
        .merge(search::routes())
        .merge(tags::routes())
        .merge(metrics::routes())
}

async fn buildinfo() -> Json<Json_> {
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}

/// The message of a 400 for a query that does not parse.
fn invalid_query(e: ParseError) -> String {
    format!("invalid TraceQL query: {e}")
}

/// A TraceQL value as an OTLP `AnyValue` in JSON, as Tempo renders matched attributes (durations,
/// statuses and kinds as their text).
fn any_value(value: &Value) -> Option<Json_> {
    Some(match value {
        Value::Nil => return None,
        Value::Str(s) => json!({"stringValue": s}),
        Value::Int(i) => json!({"intValue": i.to_string()}),
        Value::Float(f) => json!({"doubleValue": f}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Duration(ns) => json!({"stringValue": duration_text(*ns)}),
        Value::Status(_) | Value::Kind(_) => json!({"stringValue": value.to_string()}),
        Value::Array(items) => {
            json!({"arrayValue": {"values": items.iter().filter_map(any_value).collect::<Vec<_>>()}})
        }
    })
}

fn key_values(pairs: &[(String, Value)]) -> Vec<Json_> {
    pairs
        .iter()
        .filter_map(|(key, value)| Some(json!({"key": key, "value": any_value(value)?})))
        .collect()
}

/// `start`/`end` in unix seconds (either may be absent), as nanoseconds.
fn time_range(params: &crate::params::Params) -> Result<(u64, u64), String> {
    let seconds = |v: &str| crate::params::unsigned(v).map(|s| s.saturating_mul(1_000_000_000));
    let start = params.parsed(&["start"], seconds)?.unwrap_or(0);
    let end = params
        .parsed(&["end"], seconds)?
        .map_or(u64::MAX, |e| e.saturating_add(999_999_999));
    if start > end {
        return Err("invalid start: it is after end".into());
    }
    Ok((start, end))
}
