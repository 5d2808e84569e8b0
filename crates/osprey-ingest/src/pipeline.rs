//! The protocol-independent part of ingest: limits, decoding, validation and storing.

use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use osprey_model::otlp::{ExportTracePartialSuccess, ExportTraceServiceRequest};
use osprey_model::otlp_json;
use osprey_model::zipkin;
use osprey_store::{validate_tenant, AppendError, Tenants, DEFAULT_TENANT};

use crate::jaeger_thrift;
use crate::metrics::IngestMetrics;
use crate::validate;

/// Bodies above this size are decoded on the blocking pool rather than on an executor thread.
const DECODE_INLINE_MAX: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OTLP protobuf.
    Protobuf,
    /// OTLP JSON.
    Json,
    /// A Zipkin v2 JSON list of spans.
    ZipkinJson,
    /// A Zipkin v2 protobuf `ListOfSpans`.
    ZipkinProto,
    /// A Jaeger thrift `Batch` in the binary protocol (HTTP).
    JaegerBatch,
    /// A Jaeger agent `emitBatch` message (UDP), compact (`true`) or binary protocol.
    JaegerAgent { compact: bool },
}

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request accepted, before and after decompression (OTLP recommends 64 MiB).
    pub max_request_bytes: usize,
    /// Request bytes being decoded and stored at once; past it, requests are refused as overload.
    /// This, with the request cap, bounds ingest's memory whatever the clients do.
    pub max_inflight_bytes: usize,
    /// How long an export may take to arrive, whole: an HTTP body, a gRPC call. A client that
    /// trickles one would otherwise hold a receiving slot (and its in-flight budget) as long as it
    /// likes. At the default a 64 MiB body needs a little over 1 MiB/s.
    pub request_timeout: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_bytes: 64 << 20,
            max_inflight_bytes: 256 << 20,
            request_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// In-flight budget held by one request (see [`Ingester::reserve`]).
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

/// The outcome of an export that was (at least partly) accepted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Exported {
    pub accepted: u64,
    pub rejected: u64,
    /// Why spans were rejected; empty when none were.
    pub message: String,
}

impl Exported {
    /// OTLP's partial-success answer: set only when spans were rejected.
    pub fn partial_success(self) -> Option<ExportTracePartialSuccess> {
        (self.rejected > 0).then_some(ExportTracePartialSuccess {
            rejected_spans: self.rejected as i64,
            error_message: self.message,
        })
    }
}

/// Why a whole export was refused. Each protocol maps these to its own status codes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestError {
    /// The body could not be decoded (HTTP 400, gRPC INVALID_ARGUMENT).
    Malformed(String),
    /// The request exceeds the size limit (HTTP 413, gRPC RESOURCE_EXHAUSTED).
    TooLarge(String),
    /// Too much in flight: retry after a pause (HTTP 429, gRPC UNAVAILABLE + RetryInfo).
    Throttled(String),
    /// The write-ahead log is behind or failing: retry later (HTTP 503, gRPC UNAVAILABLE).
    Unavailable(String),
    /// The body did not arrive within its deadline (HTTP 408, gRPC DEADLINE_EXCEEDED).
    TooSlow(String),
}

impl IngestError {
    pub fn message(&self) -> &str {
        match self {
            IngestError::Malformed(m)
            | IngestError::TooLarge(m)
            | IngestError::Throttled(m)
            | IngestError::Unavailable(m)
            | IngestError::TooSlow(m) => m,
        }
    }

    /// The HTTP status of the error, whatever the protocol's body; the one mapping every HTTP
    /// receiver uses.
    pub fn http_status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
            IngestError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::TooSlow(_) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The gRPC code of the error: OTLP/gRPC's status, and the `code` of OTLP/HTTP's
    /// `google.rpc.Status` body.
    pub fn grpc_code(&self) -> tonic::Code {
        match self {
            IngestError::Malformed(_) => tonic::Code::InvalidArgument,
            IngestError::TooLarge(_) => tonic::Code::ResourceExhausted,
            IngestError::Throttled(_) | IngestError::Unavailable(_) => tonic::Code::Unavailable,
            IngestError::TooSlow(_) => tonic::Code::DeadlineExceeded,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            IngestError::Malformed(_) => "malformed",
            IngestError::TooLarge(_) => "too_large",
            IngestError::Throttled(_) => "throttled",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::TooSlow(_) => "too_slow",
        }
    }
}

/// The header (HTTP) or metadata key (gRPC) naming the tenant, as Tempo, Loki and Mimir use it.
pub const TENANT_HEADER: &str = "x-scope-orgid";

/// The refusal while blocks are behind (the store's back-pressure).
fn blocks_behind() -> IngestError {
    IngestError::Throttled(
        "blocks are being written more slowly than spans arrive; retry after a pause".to_string(),
    )
}

/// The tenant a request names (checked), or the default tenant when it names none.
pub fn tenant_of(value: Option<&[u8]>) -> Result<String, IngestError> {
    let Some(value) = value else {
        return Ok(DEFAULT_TENANT.to_string());
    };
    let tenant = std::str::from_utf8(value)
        .map_err(|_| IngestError::Malformed("X-Scope-OrgID is not UTF-8".to_string()))?
        .trim();
    validate_tenant(tenant).map_err(IngestError::Malformed)?;
    Ok(tenant.to_string())
}

pub struct Ingester {
    tenants: Arc<Tenants>,
    limits: Limits,
    inflight: Arc<Semaphore>,
    metrics: IngestMetrics,
}

impl Ingester {
    pub fn new(tenants: Arc<Tenants>, limits: Limits) -> Ingester {
        Ingester {
            tenants,
            limits,
            inflight: Arc::new(Semaphore::new(limits.max_inflight_bytes)),
            metrics: IngestMetrics::default(),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn metrics(&self) -> &IngestMetrics {
        &self.metrics
    }

    /// Counts a request refused before it reached [`Ingester::export`] (e.g. by a size check while reading).
    pub fn count_refused(&self, error: &IngestError) {
        self.metrics
            .requests_rejected
            .get_or_create(&[("reason", error.reason())])
            .inc();
    }

    /// Decodes, validates and durably stores one export request body (already decompressed).
    /// `protocol` labels the metrics (`grpc`, `http`).
    pub async fn export(
        &self,
        tenant: &str,
        body: Bytes,
        format: Format,
        protocol: &'static str,
    ) -> Result<Exported, IngestError> {
        match self.reserve(body.len()) {
            Ok(reservation) => {
                self.export_reserved(tenant, reservation, body, format, protocol)
                    .await
            }
            Err(e) => {
                self.count_refused(&e);
                Err(e)
            }
        }
    }

    /// Like [`Ingester::export`] with in-flight budget reserved beforehand (see [`Ingester::reserve`]),
    /// as OTLP/HTTP does from `Content-Length` before it reads the body.
    pub async fn export_reserved(
        &self,
        tenant: &str,
        reservation: Reservation,
        body: Bytes,
        format: Format,
        protocol: &'static str,
    ) -> Result<Exported, IngestError> {
        let result = self
            .export_inner(tenant, reservation, body, format, protocol)
            .await;
        if let Err(e) = &result {
            self.count_refused(e);
        }
        result
    }

    /// Reserves in-flight budget for a request of `bytes`, or refuses at once (throttling) when the
    /// budget is spent. The reservation is held until the request's spans are stored or refused.
    pub fn reserve(&self, bytes: usize) -> Result<Reservation, IngestError> {
        if bytes > self.limits.max_request_bytes {
            return Err(too_large(bytes, self.limits.max_request_bytes));
        }
        let cost = bytes.clamp(1, self.limits.max_inflight_bytes) as u32;
        self.inflight
            .clone()
            .try_acquire_many_owned(cost)
            .map(|permit| Reservation { _permit: permit })
            .map_err(|_| {
                IngestError::Throttled(
                    "ingest is at its in-flight memory limit; retry after a pause".to_string(),
                )
            })
    }

    async fn export_inner(
        &self,
        tenant: &str,
        reservation: Reservation,
        body: Bytes,
        format: Format,
        protocol: &'static str,
    ) -> Result<Exported, IngestError> {
        if body.len() > self.limits.max_request_bytes {
            return Err(too_large(body.len(), self.limits.max_request_bytes));
        }
        if self
            .tenants
            .get(tenant)
            .is_some_and(|store| store.blocks_behind())
        {
            return Err(blocks_behind());
        }

        let (request, rejected, payload) = if body.len() > DECODE_INLINE_MAX {
            tokio::task::spawn_blocking(move || decode(body, format))
                .await
                .map_err(|e| IngestError::Unavailable(format!("decoding task failed: {e}")))??
        } else {
            decode(body, format)?
        };
        let accepted = validate::span_count(&request);
        self.metrics
            .spans_received
            .get_or_create(&[("protocol", protocol)])
            .inc_by(accepted + rejected.spans);
        if rejected.spans > 0 {
            self.metrics
                .spans_rejected
                .get_or_create(&[("reason", "invalid_id")])
                .inc_by(rejected.spans);
        }
        if accepted > 0 {
            // Stored in a task of its own: once the log has the record, the index must get it too,
            // even if the client gives up and this future is dropped mid-way.
            let store = self.tenants.get_or_open(tenant).await.map_err(|e| {
                IngestError::Unavailable(format!("the tenant's store could not be opened: {e}"))
            })?;
            let stored = tokio::spawn(async move {
                let result = store.append(&request, payload).await;
                drop(reservation);
                result
            });
            stored
                .await
                .map_err(|e| IngestError::Unavailable(format!("storing task failed: {e}")))?
                .map_err(|e| match e {
                    AppendError::Full => IngestError::Throttled(
                        "the write-ahead log is behind; retry after a pause".to_string(),
                    ),
                    AppendError::BlocksBehind => blocks_behind(),
                    AppendError::TooLarge(n) => too_large(n, self.limits.max_request_bytes),
                    AppendError::Io(_) | AppendError::Closed | AppendError::Empty => {
                        IngestError::Unavailable(format!("spans could not be stored: {e}"))
                    }
                })?;
            self.metrics
                .spans_accepted
                .get_or_create(&[("protocol", protocol)])
                .inc_by(accepted);
        }
        Ok(Exported {
            accepted,
            rejected: rejected.spans,
            message: match rejected.first_reason {
                Some(reason) if rejected.spans > 1 => format!(
                    "{} spans rejected for invalid ids; first: {reason}",
                    rejected.spans
                ),
                Some(reason) => format!("1 span rejected: {reason}"),
                None => String::new(),
            },
        })
    }
}

fn too_large(size: usize, limit: usize) -> IngestError {
    IngestError::TooLarge(format!(
        "request of {size} bytes exceeds the limit of {limit} bytes"
    ))
}

/// Decodes and validates; returns the request, what was rejected, and the protobuf payload to store
/// (the body itself when it is protobuf and nothing was taken out). Every receiver's body comes
/// through here, and so does the fuzzing of them (fuzz/).
pub fn decode(
    body: Bytes,
    format: Format,
) -> Result<(ExportTraceServiceRequest, validate::Rejected, Bytes), IngestError> {
    let mut request = match format {
        Format::Protobuf => ExportTraceServiceRequest::decode(body.clone())
            .map_err(|e| IngestError::Malformed(format!("invalid OTLP protobuf: {e}")))?,
        Format::Json => otlp_json::decode_request(&body).map_err(IngestError::Malformed)?,
        Format::ZipkinJson => zipkin::decode_json(&body).map_err(IngestError::Malformed)?,
        Format::JaegerBatch => {
            jaeger_thrift::decode_batch(&body).map_err(IngestError::Malformed)?
        }
        Format::JaegerAgent { compact } => {
            jaeger_thrift::decode_agent_message(&body, compact).map_err(IngestError::Malformed)?
        }
        Format::ZipkinProto => zipkin::decode_proto(&body).map_err(IngestError::Malformed)?,
    };
    let rejected = validate::retain_valid(&mut request);
    let payload = if format == Format::Protobuf && rejected.spans == 0 {
        body
    } else {
        Bytes::from(request.encode_to_vec())
    };
    Ok((request, rejected, payload))
}
