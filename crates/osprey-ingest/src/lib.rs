//! Osprey's receivers: OTLP over gRPC and HTTP, Zipkin's span intake and Jaeger's thrift (HTTP and
//! UDP), feeding one [`Ingester`] that validates spans, applies
//! the limits that keep memory bounded, and stores what it accepts.

mod http_receive;
pub mod jaeger_receivers;
pub mod jaeger_thrift;
pub mod metrics;
pub mod otlp_grpc;
pub mod otlp_http;
mod pipeline;
mod thrift;
mod validate;
pub mod zipkin_http;

pub use http_receive::gunzip;
pub use metrics::IngestMetrics;
pub use pipeline::{
    decode, tenant_of, Exported, Format, IngestError, Ingester, Limits, Reservation, TENANT_HEADER,
};
pub use validate::Rejected;
