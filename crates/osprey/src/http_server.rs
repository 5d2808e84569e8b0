//! Serving an axum router on a listener, connection by connection, with the deadlines
//! `axum::serve` does not set: a client that opens a connection and sends headers slowly (or
//! never) is cut off after [`HEADER_READ_TIMEOUT`] instead of holding a socket and a task forever.
//! (A body sent slowly is bounded where it is read: ingest gives a body `BODY_READ_TIMEOUT`.)

use std::time::Duration;

use anyhow::Context;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// How long a client has to send a request's headers (HTTP/1), from the first byte.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long requests already being answered get to finish once shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` resolves, then lets the requests in progress
/// finish (up to [`SHUTDOWN_GRACE`]).
pub async fn serve<L>(
    mut listener: L,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(io),
                TowerToHyperService::new(router.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(?peer, error = %e, "connection ended with an error");
            }
        });
    }
    tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .context("requests still running after the shutdown grace period")
        .or_else(|e| {
            tracing::warn!("{e}");
            anyhow::Ok(())
        })
}
