//! OTLP/HTTP: `POST /v1/traces`, protobuf or JSON, optionally gzip-compressed; responses in the request's
//! encoding, errors as a `google.rpc.Status` body.

use std::io::Read;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, StatusCode};
use http_body_util::{BodyExt, Limited};
use prost::Message;

use osprey_model::otlp::ExportTraceServiceResponse;

use crate::pipeline::{tenant_of, Exported, Format, IngestError, Ingester, TENANT_HEADER};

/// Seconds a throttled client is asked to wait.
const RETRY_AFTER_SECONDS: &str = "1";

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
    let tenant = match tenant_of(headers.get(TENANT_HEADER).map(HeaderValue::as_bytes)) {
        Ok(tenant) => tenant,
        Err(error) => {
            ingester.count_refused(&error);
            return ingest_error_response(&error, format);
        }
    };
    // Reserve in-flight budget before the body is read, when its size is declared.
    let reservation = match declared_length(&headers).map(|length| ingester.reserve(length)) {
        Some(Ok(reservation)) => Some(reservation),
        Some(Err(error)) => {
            ingester.count_refused(&error);
            return ingest_error_response(&error, format);
        }
        None => None,
    };
    let body = match read_body(&ingester, &headers, body).await {
        Ok(body) => body,
        Err(error) => {
            ingester.count_refused(&error);
            return ingest_error_response(&error, format);
        }
    };
    let result = match reservation {
        Some(reservation) => {
            ingester
                .export_reserved(&tenant, reservation, body, format, "http")
                .await
        }
        None => ingester.export(&tenant, body, format, "http").await,
    };
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

fn declared_length(headers: &HeaderMap) -> Option<usize> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
}

/// Reads the body under the size limit, then undoes `Content-Encoding: gzip` under the same limit.
async fn read_body(
    ingester: &Ingester,
    headers: &HeaderMap,
    body: Body,
) -> Result<Bytes, IngestError> {
    let limit = ingester.limits().max_request_bytes;
    let raw = Limited::new(body, limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                IngestError::TooLarge(format!("request body exceeds the limit of {limit} bytes"))
            } else {
                IngestError::Malformed(format!("failed to read the request body: {e}"))
            }
        })?
        .to_bytes();
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match encoding.as_str() {
        "identity" | "" => Ok(raw),
        "gzip" => gunzip(&raw, limit),
        other => Err(IngestError::Malformed(format!(
            "unsupported Content-Encoding {other:?}: use gzip or none"
        ))),
    }
}

fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, IngestError> {
    let mut out = Vec::with_capacity(compressed.len().saturating_mul(4).min(limit));
    flate2::read::GzDecoder::new(compressed)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::Malformed(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(IngestError::TooLarge(format!(
            "request body exceeds the limit of {limit} bytes once decompressed"
        )));
    }
    Ok(Bytes::from(out))
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
        Format::Json => {
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
    let status = match error {
        IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
        IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        IngestError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
        IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error_response(status, error, format)
}

/// A `google.rpc.Status` body in the request's encoding; throttling adds `Retry-After`.
fn error_response(status: StatusCode, error: &IngestError, format: Format) -> Response {
    let code = match error {
        IngestError::Malformed(_) => tonic::Code::InvalidArgument,
        IngestError::TooLarge(_) => tonic::Code::ResourceExhausted,
        IngestError::Throttled(_) | IngestError::Unavailable(_) => tonic::Code::Unavailable,
    } as i32;
    let mut response = match format {
        Format::Protobuf => protobuf_response(
            status,
            tonic_types::Status {
                code,
                message: error.message().to_string(),
                details: Vec::new(),
            }
            .encode_to_vec(),
        ),
        Format::Json => json_response(
            status,
            &serde_json::json!({"code": code, "message": error.message()}),
        ),
    };
    if matches!(
        error,
        IngestError::Throttled(_) | IngestError::Unavailable(_)
    ) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    response
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
