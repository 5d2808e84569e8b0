//! Where old jaeger-client libraries report: thrift over HTTP (`POST /api/traces` on 14268, a
//! binary `Batch`; 202 once stored, 400 with the reason as text otherwise, as Jaeger's collector
//! answers) and the agent's UDP ports (an `emitBatch` message a datagram: compact protocol on
//! 6831, binary on 6832; nothing is answered over UDP, so refusals are counted in the ingest
//! metrics and logged at debug level).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::net::UdpSocket;

use osprey_store::DEFAULT_TENANT;

use crate::http_receive::{receive, with_retry_after};
use crate::pipeline::{Format, Ingester};

/// The largest datagram: what the agent protocol allows (Jaeger clients keep below 65,000 bytes).
const MAX_DATAGRAM: usize = 65_535;

/// The router serving `POST /api/traces` (thrift over HTTP).
pub fn http_router(ingester: Arc<Ingester>) -> Router {
    Router::new()
        .route("/api/traces", post(traces))
        .layer(DefaultBodyLimit::disable())
        .with_state(ingester)
}

async fn traces(State(ingester): State<Arc<Ingester>>, headers: HeaderMap, body: Body) -> Response {
    match receive(
        &ingester,
        &headers,
        body,
        Format::JaegerBatch,
        "jaeger_http",
    )
    .await
    {
        Ok(exported) if exported.accepted == 0 && exported.rejected > 0 => (
            StatusCode::BAD_REQUEST,
            format!("Unable to process request body: {}", exported.message),
        )
            .into_response(),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
        Err(error) => with_retry_after(
            (
                error.http_status(),
                format!("Unable to process request body: {}", error.message()),
            )
                .into_response(),
            &error,
        ),
    }
}

/// Receives agent datagrams on `socket` until the task is dropped, each stored on a task of its
/// own (as a fire-and-forget client expects, the next datagram is read at once).
pub async fn serve_udp(socket: UdpSocket, ingester: Arc<Ingester>, compact: bool) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(e) => {
                tracing::warn!(error = %e, "receiving a Jaeger agent datagram failed");
                // A lasting error would otherwise spin.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let packet = Bytes::copy_from_slice(&buf[..len]);
        let ingester = ingester.clone();
        tokio::spawn(async move {
            let format = Format::JaegerAgent { compact };
            if let Err(e) = ingester
                .export(DEFAULT_TENANT, packet, format, "jaeger_udp")
                .await
            {
                tracing::debug!(%from, error = e.message(), "Jaeger agent datagram refused");
            }
        });
    }
}
