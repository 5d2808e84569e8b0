//! Jaeger's api_v3 over gRPC (`jaeger.api_v3.QueryService`, jaeger-idl
//! `proto/api_v3/query_service.proto`), what Jaeger's own tools and Grafana's Jaeger data source
//! call on port 16685: the same answers as api_v3 over HTTP, traces streamed as OTLP `TracesData`
//! one trace a message. The tenant comes from the `x-scope-orgid` metadata.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::{self, BoxStream};
use futures::{FutureExt, StreamExt};
use tonic::body::Body as GrpcBody;
use tonic::server::{Grpc, NamedService, ServerStreamingService, UnaryService};
use tonic::{Request, Response, Status};

use osprey_model::otlp::TracesData;
use osprey_query::{TraceQuery, TraceSummary};
use osprey_store::validate_tenant;

use crate::{ApiState, QueryFailure, TENANT};

/// The jaeger-idl api_v3 messages this service reads and writes (google.protobuf's Timestamp and
/// Duration written out: same fields, same wire form).
pub mod messages {
    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }

    /// google.protobuf.Duration: the same two fields.
    pub type Duration = Timestamp;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetTraceRequest {
        #[prost(string, tag = "1")]
        pub trace_id: String,
        #[prost(message, optional, tag = "2")]
        pub start_time: Option<Timestamp>,
        #[prost(message, optional, tag = "3")]
        pub end_time: Option<Timestamp>,
        #[prost(bool, tag = "4")]
        pub raw_traces: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TraceQueryParameters {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(string, tag = "2")]
        pub operation_name: String,
        #[prost(btree_map = "string, string", tag = "3")]
        pub attributes: std::collections::BTreeMap<String, String>,
        #[prost(message, optional, tag = "4")]
        pub start_time_min: Option<Timestamp>,
        #[prost(message, optional, tag = "5")]
        pub start_time_max: Option<Timestamp>,
        #[prost(message, optional, tag = "6")]
        pub duration_min: Option<Duration>,
        #[prost(message, optional, tag = "7")]
        pub duration_max: Option<Duration>,
        #[prost(int32, tag = "8")]
        pub search_depth: i32,
        #[prost(bool, tag = "9")]
        pub raw_traces: bool,
        /// A filter expression (`jaeger.expression.v1.Call`), kept as bytes: refused when present.
        #[prost(bytes = "vec", optional, tag = "10")]
        pub filter: Option<Vec<u8>>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FindTracesRequest {
        #[prost(message, optional, tag = "1")]
        pub query: Option<TraceQueryParameters>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetServicesRequest {}

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetServicesResponse {
        #[prost(string, repeated, tag = "1")]
        pub services: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetOperationsRequest {
        #[prost(string, tag = "1")]
        pub service: String,
        #[prost(string, tag = "2")]
        pub span_kind: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub span_kind: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetOperationsResponse {
        #[prost(message, repeated, tag = "1")]
        pub operations: Vec<Operation>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GetDependenciesRequest {
        #[prost(message, optional, tag = "1")]
        pub start_time: Option<Timestamp>,
        #[prost(message, optional, tag = "2")]
        pub end_time: Option<Timestamp>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dependency {
        #[prost(string, tag = "1")]
        pub parent: String,
        #[prost(string, tag = "2")]
        pub child: String,
        #[prost(uint64, tag = "3")]
        pub call_count: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct DependenciesResponse {
        #[prost(message, repeated, tag = "1")]
        pub dependencies: Vec<Dependency>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ServiceSummary {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(int32, tag = "2")]
        pub span_count: i32,
        #[prost(int32, tag = "3")]
        pub error_span_count: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TraceSummary {
        #[prost(string, tag = "1")]
        pub trace_id: String,
        #[prost(string, tag = "2")]
        pub root_service_name: String,
        #[prost(string, tag = "3")]
        pub root_operation_name: String,
        #[prost(fixed64, tag = "4")]
        pub min_start_time_unix_nano: u64,
        #[prost(fixed64, tag = "5")]
        pub max_end_time_unix_nano: u64,
        #[prost(int32, tag = "6")]
        pub span_count: i32,
        #[prost(int32, tag = "7")]
        pub error_span_count: i32,
        #[prost(int32, tag = "8")]
        pub orphan_span_count: i32,
        #[prost(message, repeated, tag = "9")]
        pub services: Vec<ServiceSummary>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FindTraceSummariesRequest {
        #[prost(message, optional, tag = "1")]
        pub query: Option<TraceQueryParameters>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FindTraceSummariesResponse {
        #[prost(message, repeated, tag = "1")]
        pub summaries: Vec<TraceSummary>,
    }
}

use messages::*;

/// Traces a search returns when `search_depth` is not given (as over HTTP).
const DEFAULT_DEPTH: usize = 100;

fn nanos(t: &Timestamp) -> u64 {
    (t.seconds.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.nanos.max(0) as u64)
}

fn search_query(query: Option<TraceQueryParameters>) -> Result<TraceQuery, Status> {
    let q = query.ok_or_else(|| Status::invalid_argument("missing query"))?;
    if q.filter.is_some() {
        return Err(Status::unimplemented(
            "filter expressions are not supported: search by service, operation, attributes and durations",
        ));
    }
    let start = q
        .start_time_min
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("start_time_min is required"))?;
    let end = q
        .start_time_max
        .as_ref()
        .ok_or_else(|| Status::invalid_argument("start_time_max is required"))?;
    let non_empty = |s: String| (!s.is_empty()).then_some(s);
    Ok(TraceQuery {
        service: non_empty(q.service_name),
        operation: non_empty(q.operation_name),
        attributes: q.attributes.into_iter().collect(),
        min_duration_ns: q.duration_min.as_ref().map(nanos),
        max_duration_ns: q.duration_max.as_ref().map(nanos),
        start_ns: Some(nanos(start)),
        end_ns: Some(nanos(end)),
        limit: usize::try_from(q.search_depth)
            .ok()
            .filter(|d| *d > 0)
            .unwrap_or(DEFAULT_DEPTH),
    })
}

/// The gRPC status of a failed query: the HTTP APIs' decision ([`QueryFailure::status`]) in gRPC
/// codes, logged when it is the server's fault.
fn status(failure: impl Into<QueryFailure>) -> Status {
    let failure = failure.into();
    let (status, message) = (failure.status(), failure.to_string());
    if status.is_server_error() {
        tracing::error!("query API error: {message}");
    }
    match status {
        axum::http::StatusCode::BAD_REQUEST => Status::invalid_argument(message),
        axum::http::StatusCode::SERVICE_UNAVAILABLE => Status::deadline_exceeded(message),
        _ => Status::internal(message),
    }
}

fn summary(s: &TraceSummary) -> messages::TraceSummary {
    messages::TraceSummary {
        trace_id: s.trace_id.to_hex(),
        root_service_name: s.root_service.clone(),
        root_operation_name: s.root_name.clone(),
        min_start_time_unix_nano: s.start_ns,
        max_end_time_unix_nano: s.end_ns,
        span_count: s.span_count as i32,
        error_span_count: s.error_count as i32,
        orphan_span_count: 0,
        services: s
            .services
            .iter()
            .map(|c| ServiceSummary {
                name: c.name.clone(),
                span_count: c.span_count as i32,
                error_span_count: c.error_count as i32,
            })
            .collect(),
    }
}

/// The service: each call runs on the query engine of the request's tenant.
#[derive(Clone)]
pub struct QueryService {
    state: ApiState,
}

type Stream<T> = BoxStream<'static, Result<T, Status>>;
type Answer<T> = Pin<Box<dyn Future<Output = Result<Response<T>, Status>> + Send>>;

impl QueryService {
    pub fn new(state: ApiState) -> QueryService {
        QueryService { state }
    }

    /// Runs `work` for the tenant of `request`'s `x-scope-orgid` (the default one without it).
    fn answer<Req, T: Send + 'static>(
        &self,
        request: &Request<Req>,
        endpoint: &'static str,
        work: impl FnOnce(&osprey_query::Query) -> Result<T, Status> + Send + 'static,
    ) -> Answer<T> {
        let tenant = match request.metadata().get("x-scope-orgid") {
            None => Ok(osprey_store::DEFAULT_TENANT.to_string()),
            Some(v) => {
                let t = v.to_str().unwrap_or_default().trim().to_string();
                validate_tenant(&t)
                    .map(|_| t)
                    .map_err(Status::invalid_argument)
            }
        };
        let state = self.state.clone();
        Box::pin(async move {
            let tenant = tenant?;
            TENANT
                .scope(tenant, state.run(endpoint, move |q| Ok(work(q))))
                .await
                .map_err(status)?
                .map(Response::new)
        })
    }

    fn get_trace(self, request: Request<GetTraceRequest>) -> Answer<Stream<TracesData>> {
        let id = crate::params::trace_id(&request.get_ref().trace_id);
        let answer = self.answer(&request, "grpc_get_trace", move |q| {
            let id = id.map_err(Status::invalid_argument)?;
            match q.trace(&id).map_err(status)? {
                Some(spans) => Ok(vec![TracesData {
                    resource_spans: spans,
                }]),
                None => Err(Status::not_found("trace not found")),
            }
        });
        streamed(answer)
    }

    fn find_traces(self, request: Request<FindTracesRequest>) -> Answer<Stream<TracesData>> {
        let query = search_query(request.get_ref().query.clone());
        let answer = self.answer(&request, "grpc_find_traces", move |q| {
            let query = query?;
            let mut traces = Vec::new();
            for id in q.search(&query).map_err(status)? {
                if let Some(spans) = q.trace(&id).map_err(status)? {
                    traces.push(TracesData {
                        resource_spans: spans,
                    });
                }
            }
            Ok(traces)
        });
        streamed(answer)
    }

    fn find_trace_summaries(
        self,
        request: Request<FindTraceSummariesRequest>,
    ) -> Answer<Stream<FindTraceSummariesResponse>> {
        let query = search_query(request.get_ref().query.clone());
        let answer = self.answer(&request, "grpc_find_trace_summaries", move |q| {
            let query = query?;
            let ids = q.search(&query).map_err(status)?;
            let summaries = q.summaries(&ids).map_err(status)?;
            Ok(vec![FindTraceSummariesResponse {
                summaries: summaries.iter().map(summary).collect(),
            }])
        });
        streamed(answer)
    }

    fn get_services(self, request: Request<GetServicesRequest>) -> Answer<GetServicesResponse> {
        self.answer(&request, "grpc_services", |q| {
            Ok(GetServicesResponse {
                services: q.services(),
            })
        })
    }

    fn get_operations(
        self,
        request: Request<GetOperationsRequest>,
    ) -> Answer<GetOperationsResponse> {
        let GetOperationsRequest { service, span_kind } = request.get_ref().clone();
        self.answer(&request, "grpc_operations", move |q| {
            let kind =
                match span_kind.as_str() {
                    "" => None,
                    name => Some(osprey_model::jaeger::span_kind_from_name(name).ok_or_else(
                        || Status::invalid_argument(format!("unknown span_kind {name:?}")),
                    )?),
                };
            Ok(GetOperationsResponse {
                operations: q
                    .operations(&service, kind)
                    .into_iter()
                    .map(|(name, kind)| Operation {
                        name,
                        span_kind: osprey_model::jaeger::span_kind_name(kind)
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect(),
            })
        })
    }

    fn get_dependencies(
        self,
        request: Request<GetDependenciesRequest>,
    ) -> Answer<DependenciesResponse> {
        let GetDependenciesRequest {
            start_time,
            end_time,
        } = request.get_ref().clone();
        self.answer(&request, "grpc_dependencies", move |q| {
            let end = end_time.as_ref().map_or(crate::params::now_ns(), nanos);
            let start = start_time
                .as_ref()
                .map_or(end.saturating_sub(crate::params::DAY_NS), nanos);
            let graph = q.service_graph(start, end).map_err(status)?;
            Ok(DependenciesResponse {
                dependencies: graph
                    .edges
                    .iter()
                    .map(|e| Dependency {
                        parent: e.parent.clone(),
                        child: e.child.clone(),
                        call_count: e.calls,
                    })
                    .collect(),
            })
        })
    }
}

/// The messages of an answer streamed one by one.
fn streamed<T: Send + 'static>(answer: Answer<Vec<T>>) -> Answer<Stream<T>> {
    Box::pin(
        answer.map(|r| r.map(|r| r.map(|items| stream::iter(items.into_iter().map(Ok)).boxed()))),
    )
}

/// A unary method as tonic's server expects it.
struct Unary<Req, Res>(QueryService, fn(QueryService, Request<Req>) -> Answer<Res>);

impl<Req, Res> UnaryService<Req> for Unary<Req, Res> {
    type Response = Res;
    type Future = Answer<Res>;
    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.1)(self.0.clone(), request)
    }
}

/// A server-streaming method as tonic's server expects it.
struct Streaming<Req, Res>(
    QueryService,
    fn(QueryService, Request<Req>) -> Answer<Stream<Res>>,
);

impl<Req, Res: Send + 'static> ServerStreamingService<Req> for Streaming<Req, Res> {
    type Response = Res;
    type ResponseStream = Stream<Res>;
    type Future = Answer<Stream<Res>>;
    fn call(&mut self, request: Request<Req>) -> Self::Future {
        (self.1)(self.0.clone(), request)
    }
}

impl NamedService for QueryService {
    const NAME: &'static str = "jaeger.api_v3.QueryService";
}

impl<B> tower::Service<http::Request<B>> for QueryService
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<GrpcBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        // A codec per method: its message types are the method's.
        fn grpc<E, D>() -> Grpc<tonic_prost::ProstCodec<E, D>>
        where
            E: prost::Message + Send + 'static,
            D: prost::Message + Default + Send + 'static,
        {
            Grpc::new(tonic_prost::ProstCodec::default())
        }
        Box::pin(async move {
            let s = service;
            Ok(match request.uri().path() {
                "/jaeger.api_v3.QueryService/GetTrace" => {
                    grpc()
                        .server_streaming(Streaming(s, QueryService::get_trace), request)
                        .await
                }
                "/jaeger.api_v3.QueryService/FindTraces" => {
                    grpc()
                        .server_streaming(Streaming(s, QueryService::find_traces), request)
                        .await
                }
                "/jaeger.api_v3.QueryService/FindTraceSummaries" => {
                    grpc()
                        .server_streaming(Streaming(s, QueryService::find_trace_summaries), request)
                        .await
                }
                "/jaeger.api_v3.QueryService/GetServices" => {
                    grpc()
                        .unary(Unary(s, QueryService::get_services), request)
                        .await
                }
                "/jaeger.api_v3.QueryService/GetOperations" => {
                    grpc()
                        .unary(Unary(s, QueryService::get_operations), request)
                        .await
                }
                "/jaeger.api_v3.QueryService/GetDependencies" => {
                    grpc()
                        .unary(Unary(s, QueryService::get_dependencies), request)
                        .await
                }
                other => Status::unimplemented(format!("unknown method {other}")).into_http(),
            })
        })
    }
}
