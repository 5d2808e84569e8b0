//! Osprey's query-side HTTP servers. The query port (16686 by default): the web UI, the
//! Jaeger-compatible query APIs (classic `/api/...` and `/api/v3/...`), Osprey's own API for the
//! UI, health probes and Prometheus metrics. The Tempo port (3200): Grafana Tempo's HTTP API. The
//! Zipkin port (9411): Zipkin's query API. The sampling port (5778): Jaeger remote sampling.

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
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

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
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the answer failed",
        )
            .into_response();
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
}

impl ApiState {
    /// `registry` is what `/metrics` exposes; register `metrics` in it before passing it here.
    pub fn new(tenants: Arc<Tenants>, registry: Arc<Registry>, metrics: ApiMetrics) -> ApiState {
        ApiState {
            tenants,
            registry,
            metrics,
        }
    }

    /// Runs blocking query work off the executor and records its latency under `endpoint`.
    async fn run<T: Send + 'static>(
        &self,
        endpoint: &'static str,
        work: impl FnOnce(&Query) -> T + Send + 'static,
    ) -> T {
        let tenant = TENANT
            .try_with(String::clone)
            .unwrap_or_else(|_| DEFAULT_TENANT.to_string());
        let query = self
            .tenants
            .get(&tenant)
            .map_or_else(Query::empty, Query::new);
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || work(&query))
            .await
            .expect("query tasks do not panic");
        self.metrics
            .query_seconds
            .get_or_create(&[("endpoint", endpoint)])
            .observe(started.elapsed().as_secs_f64());
        result
    }
}

/// How one API family shapes its error responses.
trait ErrorForm {
    fn error(status: StatusCode, message: String) -> Response;

    fn bad_request(message: String) -> Response {
        Self::error(StatusCode::BAD_REQUEST, message)
    }

    fn not_found(message: &str) -> Response {
        Self::error(StatusCode::NOT_FOUND, message.to_string())
    }

    fn internal(e: std::io::Error) -> Response {
        Self::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading stored spans failed: {e}"),
        )
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
