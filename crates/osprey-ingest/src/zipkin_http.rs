//! Zipkin's span intake: `POST /api/v2/spans`, a JSON list (no or `application/json` content type)
//! or a protobuf `ListOfSpans` (`application/x-protobuf`), optionally gzip-compressed; 202 with no
//! body once stored, and Zipkin's error form otherwise (a status with the reason as text).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http::{header, HeaderMap, StatusCode};

use crate::http_receive::{receive, with_retry_after};
use crate::pipeline::{Format, Ingester};

/// The router serving `/api/v2/spans`.
pub fn router(ingester: Arc<Ingester>) -> Router {
    Router::new()
        .route("/api/v2/spans", post(spans))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingester)
}

async fn spans(State(ingester): State<Arc<Ingester>>, headers: HeaderMap, body: Body) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let format = match essence.to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Format::ZipkinProto,
        _ => Format::ZipkinJson,
    };
    match receive(&ingester, &headers, body, format, "zipkin").await {
        // A list whose spans all had invalid ids is refused, not half-accepted.
        Ok(exported) if exported.accepted == 0 && exported.rejected > 0 => (
            StatusCode::BAD_REQUEST,
            format!("no span could be stored: {}", exported.message),
        )
            .into_response(),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => with_retry_after(
            (error.http_status(), error.message().to_string()).into_response(),
            &error,
        ),
    }
}
