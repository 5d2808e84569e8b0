//! Trace by id, as Grafana asks for it: v2 first (`TraceByIDResponse`, 200 with an empty trace
//! when unknown), then v1 (`Trace`, 404 when unknown); protobuf when `Accept` asks for it, else
//! JSON in Tempo's rendering of OTLP (base64 ids, enum names).

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prost::Message;
use serde_json::{json, Value as Json_};

use osprey_model::otlp::ResourceSpans;

use super::Answer;
use crate::params;
use crate::{ApiError, ApiState, PlainText};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/traces/{trace_id}", get(v1))
        .route("/api/v2/traces/{trace_id}", get(v2))
}

/// tempopb.Trace: `repeated ResourceSpans resourceSpans = 1`.
#[derive(Clone, PartialEq, Message)]
struct TraceMessage {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

/// tempopb.TraceByIDResponse (its metrics, status and message left at their defaults).
#[derive(Clone, PartialEq, Message)]
struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    trace: Option<TraceMessage>,
}

const PROTOBUF: &str = "application/protobuf";

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains(PROTOBUF) || v.contains("application/x-protobuf"))
}

async fn find(
    state: &ApiState,
    text: &str,
) -> Result<Option<Vec<ResourceSpans>>, ApiError<PlainText>> {
    let id = params::trace_id(text)?;
    Ok(state.run("tempo_trace", move |q| q.trace(&id)).await?)
}

async fn v1(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let spans = find(&state, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("trace not found"))?;
    if wants_protobuf(&headers) {
        let body = TraceMessage {
            resource_spans: spans,
        }
        .encode_to_vec();
        return Ok(([(header::CONTENT_TYPE, PROTOBUF)], body).into_response());
    }
    Ok(axum::Json(json!({"resourceSpans": tempo_json(&spans)})).into_response())
}

async fn v2(State(state): State<ApiState>, headers: HeaderMap, Path(id): Path<String>) -> Answer {
    let spans = find(&state, &id).await?.unwrap_or_default();
    if wants_protobuf(&headers) {
        let body = TraceByIdResponse {
            trace: Some(TraceMessage {
                resource_spans: spans,
            }),
        }
        .encode_to_vec();
        return Ok(([(header::CONTENT_TYPE, PROTOBUF)], body).into_response());
    }
    let trace = if spans.is_empty() {
        json!({})
    } else {
        json!({"resourceSpans": tempo_json(&spans)})
    };
    Ok((
        StatusCode::OK,
        axum::Json(json!({"trace": trace, "metrics": {}})),
    )
        .into_response())
}

/// OTLP JSON as Tempo writes it (gogo jsonpb): ids in base64 rather than hex, span kinds and
/// status codes by name.
fn tempo_json(spans: &[ResourceSpans]) -> Json_ {
    let mut json = serde_json::to_value(spans).expect("OTLP messages serialise");
    for rs in json.as_array_mut().into_iter().flatten() {
        for ss in rs["scopeSpans"].as_array_mut().into_iter().flatten() {
            for span in ss["spans"].as_array_mut().into_iter().flatten() {
                for key in ["traceId", "spanId", "parentSpanId"] {
                    base64_id(span, key);
                }
                if let Some(kind) = span.get("kind").and_then(Json_::as_i64) {
                    span["kind"] = json!(KIND_NAMES.get(kind as usize).unwrap_or(&KIND_NAMES[0]));
                }
                if let Some(code) = span.pointer("/status/code").and_then(Json_::as_i64) {
                    span["status"]["code"] =
                        json!(STATUS_NAMES.get(code as usize).unwrap_or(&STATUS_NAMES[0]));
                }
                for link in span["links"].as_array_mut().into_iter().flatten() {
                    base64_id(link, "traceId");
                    base64_id(link, "spanId");
                }
            }
        }
    }
    json
}

const KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_NAMES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

/// Rewrites a hex id field as base64; an empty one is dropped (jsonpb leaves empty bytes out).
fn base64_id(object: &mut Json_, key: &str) {
    use base64::Engine;
    let Some(hex) = object.get(key).and_then(Json_::as_str) else {
        return;
    };
    let bytes = const_hex::decode(hex).unwrap_or_default();
    if bytes.is_empty() {
        if let Some(map) = object.as_object_mut() {
            map.remove(key);
        }
        return;
    }
    object[key] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
}
