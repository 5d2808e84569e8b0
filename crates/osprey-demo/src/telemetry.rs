//! OpenTelemetry set-up for a demo service, configured the standard way: `OTEL_SERVICE_NAME`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` are read by the SDK itself.

use opentelemetry::global;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Installs the OTLP/gRPC exporter and the W3C propagators (`traceparent`/`tracestate` and `baggage`).
/// Keep the returned provider and [`shutdown`] it on exit, or the last spans are lost.
pub fn init() -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().build())
        .build();
    global::set_tracer_provider(provider.clone());
    global::set_text_map_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(
        vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ],
    ));
    Ok(provider)
}

/// Flushes and stops the exporter (blocking, so off the async executor).
pub async fn shutdown(provider: SdkTracerProvider) {
    let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
    if let Ok(Err(e)) = result {
        tracing::warn!(error = %e, "flushing spans at shutdown failed");
    }
}
