//! Osprey's receivers: OTLP over gRPC and HTTP, and Zipkin's span intake, feeding one [`Ingester`] that validates spans, applies
//! the limits that keep memory bounded, and stores what it accepts.

mod http_receive;
pub mod metrics;
pub mod otlp_grpc;
pub mod otlp_http;
mod pipeline;
mod validate;
pub mod zipkin_http;

pub use metrics::IngestMetrics;
pub use pipeline::{
    tenant_of, Exported, Format, IngestError, Ingester, Limits, Reservation, TENANT_HEADER,
};
