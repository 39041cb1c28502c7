//! Edge hygiene around the router: CORS (configured origins only), gzip, and a deadline per
//! route family (data routes `/api/v1/<integration>/...` and connection tests vs. management
//! routes).
//! Request ids, spans and metrics are in [`crate::http`]; the body limit in [`crate::app`].
use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::{header, HeaderName, HeaderValue, Method, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{error::ApiError, settings::GatewaySettings};

/// Path segments after `/api/v1/` that are not an integration's data routes.
const MANAGEMENT: &[&str] = &[
    "integrations",
    "tenants",
    "users",
    "api-keys",
    "openapi.json",
    "docs",
];

/// True for `/api/v1/<integration>/...` (data forwarded to a service).
pub fn is_data_route(path: &str) -> bool {
    path.strip_prefix("/api/v1/")
        .and_then(|rest| rest.split('/').next())
        .is_some_and(|first| !first.is_empty() && !MANAGEMENT.contains(&first))
}

/// True for management routes that wait for an upstream (a connection test, a conflict
/// resolution that writes upstream, a webhook that fetches the changed records), which get the
/// data routes' deadline so the service's own timeout (`BAC_UPSTREAM_TIMEOUT_MS`) answers first.
pub fn reaches_upstream(path: &str) -> bool {
    path.starts_with("/api/v1/integrations/")
        && ["/test", "/test-connection", "/resolve", "/webhook", "/push"]
            .iter()
            .any(|end| path.ends_with(end))
}

pub fn route_timeout(settings: &GatewaySettings, path: &str) -> Duration {
    if is_data_route(path) || reaches_upstream(path) {
        settings.data_timeout
    } else {
        settings.management_timeout
    }
}

/// Middleware: the request's deadline (a handler that overruns it is dropped, which also
/// cancels its gRPC call); the caller gets 504 `REQUEST_TIMEOUT` in the one error shape.
pub async fn timeouts(
    State(settings): State<Arc<GatewaySettings>>,
    req: Request,
    next: Next,
) -> Response {
    let limit = route_timeout(&settings, req.uri().path());
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "REQUEST_TIMEOUT",
            format!("the request took longer than {} s", limit.as_secs()),
        )
        .suggest("Retry later, or with a smaller page")
        .into_response(),
    }
}

/// The CORS layer for the configured origins; `None` when none are configured (no CORS
/// headers at all, browsers then refuse cross-origin calls).
pub fn cors(settings: &GatewaySettings) -> Option<CorsLayer> {
    if settings.cors_allowed_origins.is_empty() {
        return None;
    }
    let origin = if settings.cors_allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            settings
                .cors_allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("x-api-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                HeaderName::from_static("ratelimit-limit"),
                HeaderName::from_static("ratelimit-remaining"),
                HeaderName::from_static("ratelimit-reset"),
                header::RETRY_AFTER,
            ])
            .max_age(Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_and_management_routes() {
        assert!(is_data_route("/api/v1/odoo/crm/leads"));
        assert!(is_data_route("/api/v1/google-workspace/calendar/events"));
        assert!(!is_data_route("/api/v1/integrations/connections"));
        assert!(!is_data_route("/api/v1/integrations/odoo/status"));
        assert!(!is_data_route("/api/v1/api-keys/key_1"));
        assert!(!is_data_route("/api/v1/openapi.json"));
        assert!(!is_data_route("/healthz"));
        let s = GatewaySettings::default();
        assert_eq!(
            route_timeout(&s, "/api/v1/odoo/crm/leads"),
            Duration::from_secs(30)
        );
        assert_eq!(
            route_timeout(&s, "/api/v1/tenants"),
            Duration::from_secs(10)
        );
        assert_eq!(
            route_timeout(&s, "/api/v1/integrations/connections/con_1/test"),
            Duration::from_secs(30)
        );
        // A resolution writes upstream: longer than the upstream's own 15 s deadline.
        assert_eq!(
            route_timeout(&s, "/api/v1/integrations/conflicts/cfl_1/resolve"),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn no_origins_no_cors() {
        assert!(cors(&GatewaySettings::default()).is_none());
    }
}
