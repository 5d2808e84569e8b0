//! Operational endpoints: liveness, readiness, Prometheus metrics.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::ApiState;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        // The server binds its ports only after the write-ahead log is replayed, so serving means ready.
        .route("/ready", get(|| async { "ready" }))
        .route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>) -> impl IntoResponse {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &state.registry)
        .expect("writing to a String cannot fail");
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
}
