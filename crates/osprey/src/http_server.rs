//! Serving an axum router on a listener, connection by connection, with the deadline
//! `axum::serve` does not set: a client that opens a connection and sends its headers slowly, or
//! nothing at all, is cut off after [`HEADER_READ_TIMEOUT`] instead of holding a socket and a task
//! forever; so is a connection left idle that long between requests. HTTP/1.1 only (TLS offers
//! only `http/1.1` by ALPN on these ports): hyper's HTTP/2 has no such deadline, and every client
//! of these ports speaks HTTP/1.1. (A body sent slowly is bounded where it is read: ingest gives an
//! export's body `--request-timeout`.)

use std::time::Duration;

use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;

/// How long a client has to send a request's headers, whether it has sent nothing yet (a new or an
/// idle kept-alive connection) or part of them: hyper's default once a timer is set.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
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
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let connection =
            builder.serve_connection(TokioIo::new(io), TowerToHyperService::new(router.clone()));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(?peer, error = %e, "connection ended with an error");
            }
        });
    }
    // No new connections while the open ones finish.
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after the shutdown grace period are cut off");
    }
    Ok(())
}
