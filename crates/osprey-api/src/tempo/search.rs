//! `GET /api/search`: TraceQL (`q`), or the legacy form (`tags` in logfmt, `minDuration`,
//! `maxDuration` on the trace's duration), answered as tempopb.SearchResponse in JSON.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value as Json_};

use osprey_query::traceql::{
    parse, Attribute, CompareOp, FieldExpr, Intrinsic, Root, Scope, SpansetExpr, Value,
};
use osprey_query::{TraceMatch, TraceqlSearch};

use super::{invalid_query, key_values, time_range, Answer};
use crate::params::{self, Params};
use crate::{ApiError, ApiState, ErrorForm};

/// Traces a search returns when it names no limit (Tempo's default).
const DEFAULT_LIMIT: usize = 20;
/// Spans shown per spanset when the search names no `spss` (Tempo's default).
const DEFAULT_SPANS_PER_SPANSET: usize = 3;

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/search", get(search))
}

/// The web UI's TraceQL search on the query port: Tempo's answer with each span's service, the
/// range in microseconds (or a `lookback` before now) as the UI's other searches take it, and
/// errors as `{"error": {"message", "line", "column"}}` so the UI can point at the place.
pub fn native_routes() -> Router<ApiState> {
    Router::new().route("/api/osprey/traceql", get(native_search))
}

/// The web UI's TraceQL errors: `{"error": {"message", "line", "column"}}`, the place given for
/// a query that does not parse.
pub(crate) struct TraceqlUi;

impl TraceqlUi {
    fn positioned(status: StatusCode, message: String, at: Option<(usize, usize)>) -> Response {
        let mut error = json!({ "message": message });
        if let Some((line, column)) = at {
            error["line"] = json!(line);
            error["column"] = json!(column);
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

impl ErrorForm for TraceqlUi {
    fn error(status: StatusCode, message: String) -> Response {
        Self::positioned(status, message, None)
    }
}

async fn native_search(
    State(state): State<ApiState>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError<TraceqlUi>> {
    let p = Params::parse(query.as_deref())?;
    let q = p.get(&["q"]).unwrap_or("{ }");
    let expr = match parse(q) {
        Ok(query) => match query.root {
            Root::Spans(expr) => expr,
            Root::Metrics(_) => {
                return Err(ApiError::bad_request(
                    "metrics queries draw series; search with a spanset query such as { status = error }",
                ))
            }
        },
        Err(e) => {
            let at = Some((e.line, e.column));
            return Ok(TraceqlUi::positioned(StatusCode::BAD_REQUEST, e.message, at));
        }
    };
    let (start_ns, end_ns) = crate::native::window(&p)?;
    let limit = p
        .parsed(&["limit"], params::unsigned)?
        .map_or(DEFAULT_LIMIT, |l| l.max(1) as usize);
    let request = TraceqlSearch {
        expr,
        start_ns,
        end_ns,
        limit,
        spans_per_spanset: DEFAULT_SPANS_PER_SPANSET,
    };
    let (matches, _) = state
        .run("traceql", move |q| q.traceql_search(&request))
        .await?;
    Ok(Json(json!({
        // The UI shows which service each matched span belongs to.
        "traces": matches.iter().map(|m| trace_json(m, true)).collect::<Vec<_>>()
    }))
    .into_response())
}

async fn search(State(state): State<ApiState>, RawQuery(query): RawQuery) -> Answer {
    let request = request(&Params::parse(query.as_deref())?)?;
    let (matches, stats) = state
        .run("tempo_search", move |q| q.traceql_search(&request))
        .await?;
    Ok(Json(json!({
        "traces": matches.iter().map(|m| trace_json(m, false)).collect::<Vec<_>>(),
        "metrics": {
            "inspectedTraces": stats.inspected_traces,
            "inspectedBytes": "0",
            "totalBlocks": stats.sources,
            "completedJobs": stats.sources,
            "totalJobs": stats.sources,
        },
    }))
    .into_response())
}

/// The search a request asks for.
fn request(p: &Params) -> Result<TraceqlSearch, String> {
    let (start_ns, end_ns) = time_range(p)?;
    let limit = p
        .parsed(&["limit"], params::unsigned)?
        .map_or(DEFAULT_LIMIT, |l| l as usize);
    if limit == 0 {
        return Err("invalid limit: must be a positive number".into());
    }
    let spans_per_spanset = p
        .parsed(&["spss"], params::unsigned)?
        .map_or(DEFAULT_SPANS_PER_SPANSET, |n| n as usize);
    let expr = match p.get(&["q"]) {
        Some(q) => match parse(q) {
            Ok(query) => match query.root {
                Root::Spans(expr) => expr,
                Root::Metrics(_) => {
                    return Err(
                        "invalid TraceQL query: metrics queries are answered at /api/metrics/query_range"
                            .into(),
                    )
                }
            },
            Err(e) => return Err(invalid_query(e)),
        },
        None => legacy(p)?,
    };
    Ok(TraceqlSearch {
        expr,
        start_ns,
        end_ns,
        limit,
        spans_per_spanset,
    })
}

/// The legacy search as a TraceQL filter: each tag on the span or its resource (`name` is the
/// span name, `status.code` its status), durations on the whole trace.
fn legacy(p: &Params) -> Result<SpansetExpr, String> {
    let mut conditions: Vec<FieldExpr> = Vec::new();
    if let Some(tags) = p.get(&["tags"]) {
        for (key, value) in logfmt(tags).map_err(|e| format!("invalid tags: {e}"))? {
            conditions.push(tag_condition(&key, &value));
        }
    }
    let duration = |key: &str, op| -> Result<Option<FieldExpr>, String> {
        Ok(p.parsed(&[key], params::go_duration)?.map(|ns| {
            FieldExpr::Compare(
                op,
                Box::new(FieldExpr::Intrinsic(Intrinsic::TraceDuration)),
                Box::new(FieldExpr::Static(Value::Duration(ns as i64))),
            )
        }))
    };
    let min = duration("minDuration", CompareOp::Ge)?;
    let max = duration("maxDuration", CompareOp::Le)?;
    if let (Some(FieldExpr::Compare(_, _, a)), Some(FieldExpr::Compare(_, _, b))) = (&min, &max) {
        if let (FieldExpr::Static(a), FieldExpr::Static(b)) = (&**a, &**b) {
            if a.compare(CompareOp::Gt, b) {
                return Err("invalid maxDuration: must be greater than minDuration".into());
            }
        }
    }
    conditions.extend(min.into_iter().chain(max));
    let filter = conditions
        .into_iter()
        .reduce(|a, b| FieldExpr::And(Box::new(a), Box::new(b)))
        .unwrap_or(FieldExpr::Static(Value::Bool(true)));
    Ok(SpansetExpr::Filter(filter))
}

/// A legacy tag: the attribute's value as text equals `value` (numbers and booleans too).
fn tag_condition(key: &str, value: &str) -> FieldExpr {
    let equals = |field: FieldExpr, v: Value| {
        FieldExpr::Compare(
            CompareOp::Eq,
            Box::new(field),
            Box::new(FieldExpr::Static(v)),
        )
    };
    if key == "name" {
        return equals(
            FieldExpr::Intrinsic(Intrinsic::Name),
            Value::Str(value.into()),
        );
    }
    if key == "status.code" {
        let code = ["unset", "ok", "error"]
            .iter()
            .position(|s| *s == value)
            .map_or(-1, |c| c as i32);
        return equals(FieldExpr::Intrinsic(Intrinsic::Status), Value::Status(code));
    }
    let attribute = || {
        FieldExpr::Attribute(Attribute {
            scope: Scope::Any,
            parent: false,
            name: key.into(),
        })
    };
    let mut alternatives = vec![Value::Str(value.into())];
    if let Ok(i) = value.parse::<i64>() {
        alternatives.push(Value::Int(i));
    } else if let Ok(f) = value.parse::<f64>() {
        alternatives.push(Value::Float(f));
    }
    if let Ok(b) = value.parse::<bool>() {
        alternatives.push(Value::Bool(b));
    }
    alternatives
        .into_iter()
        .map(|v| equals(attribute(), v))
        .reduce(|a, b| FieldExpr::Or(Box::new(a), Box::new(b)))
        .expect("at least the string")
}

/// `key=value key2="a value"` pairs (logfmt, as Grafana and Tempo's CLI write tags).
fn logfmt(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let key_end = rest
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        if key.is_empty() {
            return Err(format!("expected a key at {:?}", rest));
        }
        rest = &rest[key_end..];
        let value = if let Some(after) = rest.strip_prefix('=') {
            if let Some(quoted) = after.strip_prefix('"') {
                let mut value = String::new();
                let mut chars = quoted.char_indices();
                let mut end = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some((_, e)) = chars.next() {
                                value.push(e);
                            }
                        }
                        '"' => {
                            end = Some(i + 1);
                            break;
                        }
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| format!("unterminated quoted value of {key}"))?;
                rest = &quoted[end..];
                value
            } else {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                rest = &after[end..];
                after[..end].to_string()
            }
        } else {
            String::new()
        };
        if pairs.iter().any(|(k, _): &(String, String)| k == key) {
            return Err(format!("tag {key} has been set twice"));
        }
        pairs.push((key.to_string(), value));
        rest = rest.trim_start();
    }
    Ok(pairs)
}

/// One trace of tempopb.SearchResponse as jsonpb writes it: 64-bit numbers as strings, zero
/// values left out, the trace id in hex without leading zeros; `with_service` adds each matched
/// span's service (Osprey's UI; Tempo's spans have no such field).
fn trace_json(m: &TraceMatch, with_service: bool) -> Json_ {
    let spansets: Vec<Json_> = m
        .spansets
        .iter()
        .map(|set| {
            let spans: Vec<Json_> = set
                .spans
                .iter()
                .map(|s| {
                    let mut span = json!({
                        "spanID": const_hex::encode(&s.span_id),
                        "name": s.name,
                        "startTimeUnixNano": s.start_ns.to_string(),
                        "durationNanos": s.duration_ns.to_string(),
                    });
                    let attributes = key_values(&s.attributes);
                    if !attributes.is_empty() {
                        span["attributes"] = json!(attributes);
                    }
                    if with_service {
                        span["service"] = json!(s.service);
                    }
                    span
                })
                .collect();
            let mut out = json!({"spans": spans, "matched": set.matched});
            let attributes = key_values(&set.attributes);
            if !attributes.is_empty() {
                out["attributes"] = json!(attributes);
            }
            out
        })
        .collect();
    let hex = m.trace_id.to_hex();
    let trimmed = hex.trim_start_matches('0');
    let mut stats = Map::new();
    for (service, (spans, errors)) in &m.service_stats {
        let mut s = json!({"spanCount": spans});
        if *errors > 0 {
            s["errorCount"] = json!(errors);
        }
        stats.insert(service.clone(), s);
    }
    let mut trace = json!({
        "traceID": if trimmed.is_empty() { "0" } else { trimmed },
        "rootServiceName": m.root_service,
        "rootTraceName": m.root_name,
        "startTimeUnixNano": m.start_ns.to_string(),
        "spanSet": spansets.first().cloned().unwrap_or(json!({})),
        "spanSets": spansets,
        "serviceStats": stats,
    });
    // tempopb declares it uint32.
    let duration_ms = (m.duration_ns / 1_000_000).min(u32::MAX as u64);
    if duration_ms > 0 {
        trace["durationMs"] = json!(duration_ms);
    }
    trace
}

#[cfg(test)]
mod tests {
    use super::logfmt;

    #[test]
    fn logfmt_pairs() {
        assert_eq!(
            logfmt(r#"service.name=api  http.url="/a b" flag name="x\"y""#).unwrap(),
            vec![
                ("service.name".into(), "api".into()),
                ("http.url".into(), "/a b".into()),
                ("flag".into(), "".into()),
                ("name".into(), "x\"y".into()),
            ]
        );
        assert!(logfmt("a=1 a=2").unwrap_err().contains("set twice"));
        assert!(logfmt(r#"a="open"#).unwrap_err().contains("unterminated"));
    }
}
