//! OTLP/gRPC: `opentelemetry.proto.collector.trace.v1.TraceService/Export`.
//!
//! A hand-written service instead of the generated `TraceServiceServer`, for one reason: it receives the
//! request as raw bytes, so the ingest pipeline decodes it once and stores those same bytes in the WAL
//! instead of decoding and re-encoding every export.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use prost::Message;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use osprey_model::otlp::ExportTraceServiceResponse;

use crate::pipeline::{tenant_of, Format, IngestError, Ingester, TENANT_HEADER};

const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// How long clients are asked to wait before retrying an overloaded export.
const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The TraceService as a tower service, ready for `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct TraceService {
    ingester: Arc<Ingester>,
}

impl TraceService {
    pub fn new(ingester: Arc<Ingester>) -> TraceService {
        TraceService { ingester }
    }
}

impl NamedService for TraceService {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
}

type BoxFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

impl<B> tower::Service<http::Request<B>> for TraceService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            let status = Status::unimplemented(format!(
                "unknown method {}; this server implements {EXPORT_PATH}",
                request.uri().path()
            ));
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let export = Export(self.ingester.clone());
        let limit = self.ingester.limits().max_request_bytes;
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawRequestCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(limit), None);
            Ok(size_errors_as_resource_exhausted(
                grpc.unary(export, request).await,
            ))
        })
    }
}

/// tonic refuses an uncompressed message over the size limit with OUT_OF_RANGE (and a decompressed one
/// with RESOURCE_EXHAUSTED); OTLP asks for RESOURCE_EXHAUSTED in both cases. Our own handler never
/// answers OUT_OF_RANGE, so any such status here is tonic's size check.
fn size_errors_as_resource_exhausted(
    mut response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    let headers = response.headers_mut();
    if headers
        .get(Status::GRPC_STATUS)
        .and_then(|v| v.to_str().ok())
        == Some(&(Code::OutOfRange as i32).to_string())
    {
        headers.insert(Status::GRPC_STATUS, (Code::ResourceExhausted as i32).into());
    }
    response
}

struct Export(Arc<Ingester>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<tonic::Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: tonic::Request<Bytes>) -> Self::Future {
        let ingester = self.0.clone();
        Box::pin(async move {
            let tenant = tenant_of(request.metadata().get(TENANT_HEADER).map(|v| v.as_bytes()))
                .map_err(|e| {
                    ingester.count_refused(&e);
                    status(e)
                })?;
            let exported = ingester
                .export(&tenant, request.into_inner(), Format::Protobuf, "grpc")
                .await
                .map_err(status)?;
            Ok(tonic::Response::new(ExportTraceServiceResponse {
                partial_success: exported.partial_success(),
            }))
        })
    }
}

/// The error's status, with a retry hint when it asks the client to come back later.
fn status(error: IngestError) -> Status {
    match &error {
        IngestError::Throttled(m) => Status::with_error_details(
            error.grpc_code(),
            m.clone(),
            ErrorDetails::with_retry_info(Some(RETRY_DELAY)),
        ),
        _ => Status::new(error.grpc_code(), error.message()),
    }
}

/// Decodes a request to its raw bytes and encodes responses with prost.
struct RawRequestCodec;

impl Codec for RawRequestCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

struct ResponseEncoder;

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the response failed: {e}")))
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
