//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, optionally gzip-compressed; responses in the request's
//! encoding, errors as a `google.rpc.Status` body.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{header, HeaderMap, StatusCode};
use prost::Message;

use osprey_model::otlp::ExportTraceServiceResponse;

use crate::http_receive::{receive, with_retry_after};
use crate::pipeline::{Exported, Format, IngestError, Ingester};

/// The router serving `/v1/traces`.
pub fn router(ingester: Arc<Ingester>) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingester)
}

async fn export(State(ingester): State<Arc<Ingester>>, headers: HeaderMap, body: Body) -> Response {
    let format = match request_format(&headers) {
        Ok(format) => format,
        Err(message) => {
            let error = IngestError::Malformed(message);
            ingester.count_refused(&error);
            return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, &error, Format::Json);
        }
    };
    let result = receive(&ingester, &headers, body, format, "http").await;
    match result {
        Ok(exported) => success_response(exported, format),
        Err(error) => ingest_error_response(&error, format),
    }
}

fn request_format(headers: &HeaderMap) -> Result<Format, String> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Format::Protobuf),
        "application/json" => Ok(Format::Json),
        _ => Err(format!(
            "unsupported Content-Type {content_type:?}: use application/x-protobuf or application/json"
        )),
    }
}

fn success_response(exported: Exported, format: Format) -> Response {
    let partial = exported.partial_success();
    match format {
        Format::Protobuf => protobuf_response(
            StatusCode::OK,
            ExportTraceServiceResponse {
                partial_success: partial,
            }
            .encode_to_vec(),
        ),
        _ => {
            let body = match partial {
                Some(p) => serde_json::json!({"partialSuccess": {
                    "rejectedSpans": p.rejected_spans.to_string(),
                    "errorMessage": p.error_message,
                }}),
                None => serde_json::json!({}),
            };
            json_response(StatusCode::OK, &body)
        }
    }
}

fn ingest_error_response(error: &IngestError, format: Format) -> Response {
    error_response(error.http_status(), error, format)
}

/// A `google.rpc.Status` body in the request's encoding; throttling adds `Retry-After`.
fn error_response(status: StatusCode, error: &IngestError, format: Format) -> Response {
    let protobuf = matches!(format, Format::Protobuf);
    let response = status_body(status, error.grpc_code(), error.message(), protobuf);
    with_retry_after(response, error)
}

/// A refusal of `POST /v1/traces` made before the body is read (by a layer in front, such as
/// token checks): a `google.rpc.Status` in the encoding the request's `Content-Type` names,
/// JSON when it names neither.
pub fn refusal(
    headers: &HeaderMap,
    status: StatusCode,
    code: tonic::Code,
    message: &str,
) -> Response {
    let protobuf = matches!(request_format(headers), Ok(Format::Protobuf));
    status_body(status, code, message, protobuf)
}

fn status_body(status: StatusCode, code: tonic::Code, message: &str, protobuf: bool) -> Response {
    let code = code as i32;
    if protobuf {
        let body = tonic_types::Status {
            code,
            message: message.to_string(),
            details: Vec::new(),
        };
        protobuf_response(status, body.encode_to_vec())
    } else {
        json_response(
            status,
            &serde_json::json!({"code": code, "message": message}),
        )
    }
}

fn protobuf_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        body,
    )
        .into_response()
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}
