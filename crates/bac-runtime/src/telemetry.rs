//! Logging and tracing in one place: JSON logs (request id, tenant and route come from the
//! request span), OTLP trace export when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace
//! context propagation so a REST call, its gRPC hops and its Kafka event share one trace.
use std::collections::HashMap;

use opentelemetry::{propagation::Extractor, trace::TracerProvider as _, KeyValue};
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::TracerProvider, Resource};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt, EnvFilter, Layer};

use crate::config::{Config, LogFormat};

/// Flushes pending spans when dropped at the end of `main`.
pub struct TelemetryGuard {
    provider: Option<TracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "flushing traces failed");
            }
        }
    }
}

/// Installs the global subscriber. Call once, first thing in `main`.
pub fn init(config: &Config) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_new(&config.log_filter)
        .map_err(|e| anyhow::anyhow!("invalid BAC_LOG filter {:?}: {e}", config.log_filter))?;
    let fmt = match config.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .flatten_event(true)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
    };
    let (otel, provider) = match &config.otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.clone())
                .build()?;
            let provider = TracerProvider::builder()
                .with_batch_exporter(exporter, opentelemetry_sdk::runtime::Tokio)
                .with_resource(Resource::new(vec![KeyValue::new(
                    "service.name",
                    config.service.binary(),
                )]))
                .build();
            let tracer = provider.tracer(config.service.binary());
            opentelemetry::global::set_tracer_provider(provider.clone());
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

/// The current span's W3C `traceparent`, if tracing is exporting (otherwise `None`).
pub fn current_traceparent() -> Option<String> {
    let cx = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&cx, &mut carrier));
    carrier.remove("traceparent")
}

/// Makes `span` a child of the trace named by a W3C `traceparent` header value.
pub fn set_parent_from_traceparent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(tp) = traceparent {
        let mut carrier = HashMap::new();
        carrier.insert("traceparent".to_string(), tp.to_string());
        let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Carrier(&carrier)));
        span.set_parent(cx);
    }
}

struct Carrier<'a>(&'a HashMap<String, String>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}
