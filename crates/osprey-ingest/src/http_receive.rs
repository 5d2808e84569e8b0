//! What every HTTP receiver (OTLP/HTTP, Zipkin) does with an export before answering in its own
//! protocol's form: the tenant from `X-Scope-OrgID`, in-flight budget reserved from
//! `Content-Length` before the body is read, the body read under the size limit and un-gzipped
//! under it too, then decoded, validated and stored by the [`Ingester`].

use std::io::Read;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue};
use http_body_util::{BodyExt, Limited};

use crate::pipeline::{tenant_of, Exported, Format, IngestError, Ingester, TENANT_HEADER};

/// Seconds a throttled client is asked to wait.
const RETRY_AFTER_SECONDS: &str = "1";

/// `response` with `Retry-After` when the error asks the client to come back later.
pub(crate) fn with_retry_after(mut response: Response, error: &IngestError) -> Response {
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

/// Receives one export of `format` over HTTP; a refusal is counted before it is returned.
pub(crate) async fn receive(
    ingester: &Ingester,
    headers: &HeaderMap,
    body: Body,
    format: Format,
    protocol: &'static str,
) -> Result<Exported, IngestError> {
    let counted = |error: IngestError| {
        ingester.count_refused(&error);
        error
    };
    let tenant =
        tenant_of(headers.get(TENANT_HEADER).map(HeaderValue::as_bytes)).map_err(counted)?;
    // Reserve in-flight budget before the body is read, when its size is declared.
    let reservation = declared_length(headers)
        .map(|length| ingester.reserve(length))
        .transpose()
        .map_err(counted)?;
    let body = read_body(ingester, headers, body).await.map_err(counted)?;
    match reservation {
        Some(reservation) => {
            ingester
                .export_reserved(&tenant, reservation, body, format, protocol)
                .await
        }
        None => ingester.export(&tenant, body, format, protocol).await,
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
    let deadline = ingester.limits().request_timeout;
    let raw = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            IngestError::TooSlow(format!(
                "the request body did not arrive within {:?} (--request-timeout)",
                deadline
            ))
        })?
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

/// Undoes gzip, refusing (413) output over `limit` bytes without producing more than one byte
/// past it: a small bomb never costs more memory than an honest body of the limit's size.
pub fn gunzip(compressed: &[u8], limit: usize) -> Result<Bytes, IngestError> {
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
