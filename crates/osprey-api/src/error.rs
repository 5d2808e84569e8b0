//! One error type for the HTTP APIs. Each API family answers errors in its own shape (Jaeger's
//! `{"errors": […]}` envelope, Tempo's plain text, …): [`ErrorForm`] is that shape, and
//! [`ApiError<F>`] an error answered in shape `F`, so handlers return `Result<Response,
//! ApiError<F>>` and use `?` on parameter errors and query failures alike. The status of each
//! failure is decided once, here; every 5xx is logged with its cause.

use std::marker::PhantomData;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use osprey_query::QueryError;

/// How one API family shapes its error responses.
pub(crate) trait ErrorForm {
    fn error(status: StatusCode, message: String) -> Response;
}

/// The status and the message as plain text: how Tempo and Zipkin answer errors.
pub(crate) struct PlainText;

impl ErrorForm for PlainText {
    fn error(status: StatusCode, message: String) -> Response {
        (status, message).into_response()
    }
}

/// Why running a query gave no answer (see [`crate::ApiState::run`]).
#[derive(Debug, thiserror::Error)]
pub(crate) enum QueryFailure {
    #[error(transparent)]
    Query(#[from] QueryError),
    /// The query's thread panicked (a bug, or a library's panic on a damaged file that escaped
    /// the store's guard): this request fails, the server goes on.
    #[error("the query failed unexpectedly: {0}")]
    Panicked(String),
    /// No answer within `--query-timeout`. The read goes on in its thread until it ends; the
    /// caller is answered now.
    #[error("the query took longer than {}: narrow the time range or the selection (--query-timeout)", humantime::format_duration(*.0))]
    TimedOut(Duration),
}

impl QueryFailure {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            QueryFailure::Query(QueryError::Unanswerable(_)) => StatusCode::BAD_REQUEST,
            QueryFailure::Query(QueryError::Storage(_)) | QueryFailure::Panicked(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            QueryFailure::TimedOut(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// An error answered in the shape of API family `F`.
pub(crate) struct ApiError<F> {
    status: StatusCode,
    message: String,
    form: PhantomData<F>,
}

impl<F> ApiError<F> {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            form: PhantomData,
        }
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

/// Parameter parsing answers `String` errors: each is the caller's mistake.
impl<F> From<String> for ApiError<F> {
    fn from(message: String) -> Self {
        Self::bad_request(message)
    }
}

impl<F> From<QueryFailure> for ApiError<F> {
    fn from(failure: QueryFailure) -> Self {
        Self::new(failure.status(), failure.to_string())
    }
}

impl<F: ErrorForm> IntoResponse for ApiError<F> {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                "query API error: {}",
                self.message
            );
        }
        F::error(self.status, self.message)
    }
}
