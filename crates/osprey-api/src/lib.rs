//! Osprey's query-side HTTP servers. The query port (16686 by default): the web UI, the
//! Jaeger-compatible query APIs (classic `/api/...` and `/api/v3/...`), Osprey's own API for the
//! UI, health probes and Prometheus metrics. The Tempo port (3200): Grafana Tempo's HTTP API. The
//! Zipkin port (9411): Zipkin's query API. The sampling port (5778): Jaeger remote sampling.

mod error;
mod jaeger_grpc;
mod jaeger_monitor;
mod jaeger_v1;
mod jaeger_v3;
mod native;
mod ops;
mod params;
mod sampling;
mod tempo;
mod ui;
mod zipkin;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use error::{ApiError, ErrorForm, PlainText, QueryFailure};
pub use jaeger_grpc::QueryService as JaegerQueryService;
use osprey_query::Query;
use osprey_store::{validate_tenant, Tenants, DEFAULT_TENANT};
pub use sampling::SamplingStrategies;

tokio::task_local! {
    /// The tenant of the request being answered (from `X-Scope-OrgID`), set by [`tenant_layer`].
    static TENANT: String;
}

/// Takes the tenant from `X-Scope-OrgID` (the default tenant without one) for everything the request
/// asks; a malformed one is refused with 400.
async fn tenant_layer(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::response::IntoResponse;
    let tenant = match request.headers().get("x-scope-orgid") {
        None => DEFAULT_TENANT.to_string(),
        Some(value) => {
            let tenant = value.to_str().unwrap_or_default().trim().to_string();
            if let Err(e) = validate_tenant(&tenant) {
                return (StatusCode::BAD_REQUEST, e).into_response();
            }
            tenant
        }
    };
    TENANT.scope(tenant, next.run(request)).await
}

/// `?prettyPrint=true` (the Jaeger query service's parameter, on every endpoint of its API): the
/// JSON answer indented. Other answers, and JSON without the parameter, pass as they are.
async fn pretty_print_layer(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::response::IntoResponse;
    // Any value but none and `false`, as Jaeger reads the parameter.
    let pretty = request.uri().query().is_some_and(|query| {
        query.split('&').any(|pair| {
            pair.split_once('=')
                .is_some_and(|(key, value)| key == "prettyPrint" && !["", "false"].contains(&value))
        })
    });
    let response = next.run(request).await;
    let json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !pretty || !json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(e) => {
            let message = format!("reading the answer to indent it failed: {e}");
            return ApiError::<PlainText>::new(StatusCode::INTERNAL_SERVER_ERROR, message)
                .into_response();
        }
    };
    let indented = serde_json::from_slice::<serde_json::Value>(&bytes)
        .and_then(|value| serde_json::to_vec_pretty(&value))
        .unwrap_or_else(|_| bytes.to_vec());
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(indented))
}

/// Query latency by endpoint.
#[derive(Clone)]
pub struct ApiMetrics {
    pub query_seconds: Family<[(&'static str, &'static str); 1], Histogram>,
}

impl Default for ApiMetrics {
    fn default() -> Self {
        ApiMetrics {
            query_seconds: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0005, 2.0, 16))
            }),
        }
    }
}

impl ApiMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "osprey_query_duration_seconds",
            "Time to answer query API requests, by endpoint",
            self.query_seconds.clone(),
        );
    }
}

#[derive(Clone)]
pub struct ApiState {
    tenants: Arc<Tenants>,
    registry: Arc<Registry>,
    metrics: ApiMetrics,
    query_timeout: Duration,
}

/// How long a query may take before its caller is answered 503 (`--query-timeout`).
pub const DEFAULT_QUERY_TIMEOUT: Duration = Duration::from_secs(60);

impl ApiState {
    /// `registry` is what `/metrics` exposes; register `metrics` in it before passing it here.
    pub fn new(tenants: Arc<Tenants>, registry: Arc<Registry>, metrics: ApiMetrics) -> ApiState {
        ApiState {
            tenants,
            registry,
            metrics,
            query_timeout: DEFAULT_QUERY_TIMEOUT,
        }
    }

    /// Answers a query that runs longer than `timeout` with 503 (gRPC DEADLINE_EXCEEDED).
    pub fn with_query_timeout(self, query_timeout: Duration) -> ApiState {
        ApiState {
            query_timeout,
            ..self
        }
    }

    /// Runs blocking query work off the executor for the request's tenant and records its latency
    /// under `endpoint`. A panic in the work fails this request only; past the query timeout the
    /// caller gets its answer (the work runs on in its thread: reads cannot be interrupted).
    async fn run<T: Send + 'static>(
        &self,
        endpoint: &'static str,
        work: impl FnOnce(&Query) -> osprey_query::Result<T> + Send + 'static,
    ) -> Result<T, QueryFailure> {
        let tenant = TENANT
            .try_with(String::clone)
            .unwrap_or_else(|_| DEFAULT_TENANT.to_string());
        let query = self
            .tenants
            .get(&tenant)
            .map_or_else(Query::empty, Query::new);
        let started = Instant::now();
        let task = tokio::task::spawn_blocking(move || work(&query));
        let result = match tokio::time::timeout(self.query_timeout, task).await {
            Ok(Ok(answer)) => answer.map_err(QueryFailure::Query),
            Ok(Err(join)) => Err(QueryFailure::Panicked(panic_message(join))),
            Err(_) => Err(QueryFailure::TimedOut(self.query_timeout)),
        };
        self.metrics
            .query_seconds
            .get_or_create(&[("endpoint", endpoint)])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// What a panicked query task said, for the log and the answer.
fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string()),
        Err(join) => join.to_string(),
    }
}

/// An operation as both Jaeger APIs list it.
fn operation_json(name: String, kind: i32) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "spanKind": osprey_model::jaeger::span_kind_name(kind).unwrap_or(""),
    })
}

/// Whether a request for `path` answers without a token when tokens are required: health checks,
/// and the UI's pages and static files, which hold no trace data (the UI then asks for a token).
pub fn answers_without_token(path: &str) -> bool {
    matches!(path, "/healthz" | "/ready" | "/health") || ui::is_page_or_file(path)
}

/// Every route of the Tempo port (3200): Grafana's Tempo data source, health and metrics.
pub fn tempo_router(state: ApiState) -> Router {
    Router::new()
        .merge(tempo::routes())
        .merge(ops::routes())
        .layer(axum::middleware::from_fn(tenant_layer))
        .with_state(state)
}

/// The Zipkin query API (the Zipkin port, 9411, beside the span intake).
pub fn zipkin_router(state: ApiState) -> Router {
    Router::new()
        .merge(zipkin::routes())
        .layer(axum::middleware::from_fn(tenant_layer))
        .with_state(state)
}

/// The Jaeger remote sampling port (5778): `/sampling` and `/api/sampling`.
pub fn sampling_router(strategies: Arc<SamplingStrategies>) -> Router {
    sampling::routes(strategies)
}

/// Every route of the query port; `strategies` answer `/api/sampling`.
pub fn router(state: ApiState, strategies: Arc<SamplingStrategies>) -> Router {
    let jaeger = Router::new()
        .merge(jaeger_v1::routes())
        .merge(jaeger_v3::routes())
        .merge(jaeger_monitor::routes())
        .merge(sampling::routes(strategies))
        .layer(axum::middleware::from_fn(pretty_print_layer));
    Router::new()
        .merge(jaeger)
        .merge(native::routes())
        .merge(tempo::native_routes())
        .merge(ui::routes())
        .merge(ops::routes())
        .layer(axum::middleware::from_fn(tenant_layer))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_query::QueryError;

    /// An empty store's API state; the directory lives as long as the returned guard.
    async fn state(query_timeout: Duration) -> (ApiState, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let (tenants, _) = Tenants::open(dir.path(), Default::default())
            .await
            .expect("opening a store");
        let state = ApiState::new(Arc::new(tenants), Arc::default(), ApiMetrics::default())
            .with_query_timeout(query_timeout);
        (state, dir)
    }

    async fn answer(failure: QueryFailure) -> (StatusCode, String) {
        let response =
            axum::response::IntoResponse::into_response(ApiError::<jaeger_v1::V1>::from(failure));
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn a_query_past_the_timeout_is_answered_503_while_it_runs_on() {
        let (state, _dir) = state(Duration::from_millis(50)).await;
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (finished, on_finish) = std::sync::mpsc::channel();
        // The work cannot end before the answer is in: no race with the clock. Without a query
        // timeout the answer would never come: the outer bound turns that hang into a failure.
        let run = state.run("test", move |_| {
            released.recv().ok();
            finished.send(()).ok();
            Ok(())
        });
        let failure = tokio::time::timeout(Duration::from_secs(60), run)
            .await
            .expect("an answer before the work ends")
            .expect_err("the work waits for the answer");
        assert!(matches!(failure, QueryFailure::TimedOut(t) if t == Duration::from_millis(50)));
        release.send(()).expect("the work still runs");
        on_finish.recv().expect("the work ran on to its end");
        let (status, body) = answer(failure).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(body.contains("the query took longer than 50ms"), "{body}");
    }

    #[tokio::test]
    async fn a_panicking_query_fails_its_request_only() {
        let (state, _dir) = state(DEFAULT_QUERY_TIMEOUT).await;
        let failure = state
            .run("test", |_| -> osprey_query::Result<()> {
                panic!("a damaged page")
            })
            .await
            .expect_err("a panic is a failure");
        let (status, body) = answer(failure).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("the query failed unexpectedly: a damaged page"),
            "{body}"
        );
        let services = state.run("test", |q| Ok(q.services())).await;
        assert!(services.is_ok(), "the next query is answered");
    }

    /// The query port's one POST route, in process: an OTLP JSON file in, Jaeger traces out.
    #[tokio::test]
    async fn transform_turns_otlp_json_into_jaeger_traces_and_refuses_other_bodies() {
        use tower::ServiceExt;
        let (state, _dir) = state(DEFAULT_QUERY_TIMEOUT).await;
        let app = router(state, Arc::default());
        let post = |body: &'static str| {
            axum::http::Request::post("/api/transform")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .expect("a request")
        };
        let file = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"shop"}}]},"scopeSpans":[{"spans":[{"traceId":"0af7651916cd43dd8448eb211c80319c","spanId":"b7ad6b7169203331","name":"checkout","startTimeUnixNano":"1000","endTimeUnixNano":"5000"}]}]}]}"#;
        let response = app.clone().oneshot(post(file)).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        let trace = &answer["data"][0];
        assert_eq!(trace["traceID"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(trace["spans"][0]["operationName"], "checkout");

        let response = app.oneshot(post("{not json")).await.expect("an answer");
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("a body");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("Jaeger's envelope");
        let message = answer["errors"][0]["msg"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("cannot read the body as OTLP JSON"),
            "{answer}"
        );
    }

    #[tokio::test]
    async fn each_query_error_has_one_status_and_keeps_its_cause() {
        let storage = QueryError::Storage(std::io::Error::other("block 0193 is 64 bytes long"));
        let (status, body) = answer(storage.into()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        let body: serde_json::Value = serde_json::from_str(&body).expect("Jaeger's envelope");
        assert_eq!(
            body["errors"][0]["msg"],
            "reading stored spans failed: block 0193 is 64 bytes long"
        );
        let unanswerable = QueryError::Unanswerable("too many series".into());
        let (status, body) = answer(unanswerable.into()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("too many series"), "{body}");
    }
}
