//! What a query can fail with. The API layer maps each kind to its protocol's status once
//! (`osprey_api`'s `ApiError`, the Jaeger gRPC service's `Status`), so no handler decides it.

use std::io;

/// A query that could not be answered.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Reading spans from the head's log, a block file or the object store failed: the server's
    /// fault (HTTP 500, gRPC INTERNAL), logged with this cause.
    #[error("reading stored spans failed: {0}")]
    Storage(#[from] io::Error),
    /// The question cannot be answered as asked (say, a metrics query that makes more series
    /// than allowed): the caller's to change (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    Unanswerable(String),
}

pub type Result<T> = std::result::Result<T, QueryError>;
