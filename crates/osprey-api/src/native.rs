//! Osprey's own API for its web UI: a trace together with its analysis, in one answer.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use osprey_model::otlp_json::encode_resource_spans;
use osprey_query::analysis::{analyze, SelfTimeTotal};

use crate::params;
use crate::{ApiState, ErrorForm};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/api/osprey/traces/{trace_id}", get(trace))
}

/// Errors as `{"error": "message"}`.
struct Native;

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
async fn trace(State(state): State<ApiState>, Path(trace_id): Path<String>) -> Response {
    let id = match params::trace_id(&trace_id) {
        Ok(id) => id,
        Err(e) => return Native::bad_request(e),
    };
    let found = state
        .run("native-trace", move |q| {
            q.trace(&id).map(|spans| {
                spans.map(|spans| {
                    let analysis = analyze(&spans);
                    (spans, analysis)
                })
            })
        })
        .await;
    let (spans, analysis) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Native::not_found("trace not found"),
        Err(e) => return Native::internal(e),
    };
    let start = analysis.start_ns;
    let bottleneck = analysis.bottleneck().map(|(service, operation)| {
        json!({"service": total_json(service), "operation": total_json(operation)})
    });
    let body = json!({
        "traceId": id.to_hex(),
        "resourceSpans": encode_resource_spans(&spans),
        "analysis": {
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
        },
    });
    Json(body).into_response()
}
