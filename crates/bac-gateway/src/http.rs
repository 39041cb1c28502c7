//! Edge middleware: request ids (accepted from `X-Request-Id` or generated, returned, logged
//! and passed on to the services), a span and metrics per request, and a safety net that puts
//! any non-JSON error (405, 413, timeouts) into the one error shape.
use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request},
    http::{header::CONTENT_TYPE, HeaderValue, StatusCode},
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument;

use crate::error::{too_large, ApiError, REQUEST_ID};

/// The client's address: the socket's peer, or, when the peer is a trusted proxy
/// (`BAC_TRUSTED_PROXIES`), the nearest `X-Forwarded-For` hop that is not one. From anyone
/// else the header is ignored: a client cannot choose its own audit source or rate-limit key.
pub fn client_ip(
    parts: &axum::http::request::Parts,
    trusted: &[ipnet::IpNet],
) -> Option<std::net::IpAddr> {
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()?
        .0
        .ip();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let hops: Vec<&str> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    // From the right: the hops our proxies added, then the first they did not vouch for. An
    // entry that does not parse ends the walk: what lies left of it is the client's to say.
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(&ip) => client = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(client)
}

/// The client's address ([`client_ip`]) as an extractor.
pub struct Source(pub Option<std::net::IpAddr>);

#[axum::async_trait]
impl axum::extract::FromRequestParts<std::sync::Arc<crate::AppState>> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &std::sync::Arc<crate::AppState>,
    ) -> Result<Self, Self::Rejection> {
        Ok(Source(client_ip(parts, &state.settings.trusted_proxies)))
    }
}

/// A caller's request id is kept when it is 1-128 visible ASCII characters (it goes into
/// logs, headers and events).
pub(crate) fn usable_request_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic())
}

pub async fn request_context(req: Request, next: Next) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| usable_request_id(s))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let span = tracing::info_span!(
        "http",
        otel.name = %format!("{method} {route}"),
        request_id = %request_id,
        method = %method,
        route = %route,
        tenant = tracing::field::Empty,
    );
    let started = Instant::now();
    let rid = request_id.clone();
    let mut resp = REQUEST_ID
        .scope(rid, async move { normalize_error(next.run(req).await) })
        .instrument(span.clone())
        .await;
    let status = resp.status().as_u16();
    let took = started.elapsed();
    span.in_scope(|| {
        tracing::info!(status, elapsed_ms = took.as_millis() as u64, "request");
    });
    let labels = [
        ("method", method.to_string()),
        ("route", route),
        ("status", status.to_string()),
    ];
    metrics::counter!("bac_http_requests_total", &labels).increment(1);
    metrics::histogram!("bac_http_request_duration_seconds", &labels[..2])
        .record(took.as_secs_f64());
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Errors produced below our handlers (axum, tower-http) become the one error shape.
fn normalize_error(resp: Response) -> Response {
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let e = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "invalid_request",
            "METHOD_NOT_ALLOWED",
            "this route does not accept that method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "REQUEST_TIMEOUT",
            "the request took too long",
        ),
        StatusCode::NOT_FOUND => ApiError::not_found("no such route"),
        s if s.is_client_error() => {
            ApiError::new(s, "invalid_request", "INVALID_REQUEST", "invalid request")
        }
        _ => ApiError::internal(format!("unshaped {status} response")),
    };
    let mut out = e.into_response();
    // Keep headers such as Allow or Retry-After.
    for (k, v) in resp.headers() {
        if k != CONTENT_TYPE && k != axum::http::header::CONTENT_LENGTH {
            out.headers_mut().insert(k.clone(), v.clone());
        }
    }
    out
}
