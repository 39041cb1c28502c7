//! Metrics registry (Prometheus text at `/metrics`) and the per-request span and metrics of
//! gRPC servers: every log line inside a call carries its request id, tenant and method.
use std::{
    sync::OnceLock,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::future::BoxFuture;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::context::{REQUEST_ID_HEADER, TENANT_HEADER, TRACEPARENT_HEADER};

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide Prometheus recorder (installed once, shared by every server in it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new();
            let builder = match builder.set_buckets(LATENCY_BUCKETS) {
                Ok(b) => b,
                Err(_) => PrometheusBuilder::new(),
            };
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed");
            }
            handle
        })
        .clone()
}

/// Tower layer for tonic servers: span per call (parented on `traceparent`) and
/// `bac_grpc_requests_total` / `bac_grpc_request_duration_seconds`.
#[derive(Clone)]
pub struct GrpcObserveLayer {
    pub service: &'static str,
}

impl<S> tower::Layer<S> for GrpcObserveLayer {
    type Service = GrpcObserve<S>;
    fn layer(&self, inner: S) -> Self::Service {
        GrpcObserve {
            inner,
            service: self.service,
        }
    }
}

#[derive(Clone)]
pub struct GrpcObserve<S> {
    inner: S,
    service: &'static str,
}

impl<S, B, RB> tower::Service<http::Request<B>> for GrpcObserve<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().to_string();
        let header = |k: &str| {
            req.headers()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let span = tracing::info_span!(
            "grpc",
            otel.name = %method,
            rpc.method = %method,
            request_id = %header(REQUEST_ID_HEADER),
            tenant = %header(TENANT_HEADER),
        );
        let tp = header(TRACEPARENT_HEADER);
        crate::telemetry::set_parent_from_traceparent(&span, (!tp.is_empty()).then_some(&tp));
        let service = self.service;
        let fut = self.inner.call(req);
        Box::pin(
            async move {
                let started = Instant::now();
                let result = fut.await;
                let code = match &result {
                    Ok(resp) => resp
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_string(),
                    Err(_) => "transport".to_string(),
                };
                record_grpc(service, &method, &code, started.elapsed());
                if !method.starts_with("/grpc.") {
                    tracing::info!(grpc_status = %code, elapsed_ms = started.elapsed().as_millis() as u64, "grpc call");
                }
                result
            }
            .instrument(span),
        )
    }
}

fn record_grpc(service: &'static str, method: &str, code: &str, took: Duration) {
    metrics::counter!("bac_grpc_requests_total", "service" => service, "method" => method.to_string(), "code" => code.to_string()).increment(1);
    metrics::histogram!("bac_grpc_request_duration_seconds", "service" => service, "method" => method.to_string())
        .record(took.as_secs_f64());
}
