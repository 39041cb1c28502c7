//! The gateway's gRPC port for the platform's other services: every public domain service of
//! the descriptor set (`bac.odoo.v1.OdooService`, ...) with `authorization: Bearer <key>`
//! metadata. A call gets what a REST call gets — the same keys, rate limits, access matrix
//! and grants (from the RPC's declared `(bac.api.v1.method)` action), request id and deadline
//! (`grpc-timeout`) — and is then forwarded to the owning service as it came, the protobuf
//! bytes untouched, with the caller's tenant and principal in the metadata the service trusts.
//! Refusals are gRPC statuses with the error details services use (`google.rpc.ErrorInfo`:
//! the error code, the integration, a suggestion). docs/grpc.md is the user's guide.
use std::{collections::HashMap, sync::Arc};

use axum::{
    body::Body,
    extract::{FromRequestParts, Request, State},
    http::{HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
    Router,
};
use bac_runtime::context::{
    PRINCIPAL_HEADER, REQUEST_ID_HEADER, SIGNATURE_HEADER, TENANT_HEADER, TRACEPARENT_HEADER,
};
use tonic::Code;
use tower::ServiceExt;

use crate::{
    auth::Principal,
    authz,
    error::ApiError,
    transcode::{service_of, EdgeRpc, Transcoder},
    AppState,
};

/// Where a caller names the integration of a contract every service implements
/// (`bac.integration.v1.IntegrationService`).
pub const INTEGRATION_HEADER: &str = "x-bac-integration";

/// The edge's routes: `/<service>/<method>` of every RPC that declares its action.
pub fn router(state: Arc<AppState>, tc: &Arc<Transcoder>) -> Router {
    let mut by_path: HashMap<String, Arc<EdgeRpc>> = HashMap::new();
    for r in &tc.rpcs {
        by_path.insert(r.grpc_path.clone(), r.clone());
    }
    let mut router = Router::new();
    for (path, route) in by_path {
        router = router.route(
            &path,
            post(move |State(state): State<Arc<AppState>>, req: Request| {
                let route = route.clone();
                async move { forward(&state, &route, req).await }
            }),
        );
    }
    router.with_state(state)
}

/// Authenticates, authorises and forwards one call.
async fn forward(state: &Arc<AppState>, route: &EdgeRpc, req: Request) -> Response {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.is_ascii())
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let answer = crate::error::REQUEST_ID
        .scope(request_id.clone(), async move {
            let (mut parts, body) = req.into_parts();
            // The peer address, where the REST stack's extractors look for it.
            if let Some(addr) = parts
                .extensions
                .get::<tonic::transport::server::TcpConnectInfo>()
                .and_then(|c| c.remote_addr())
            {
                parts.extensions.insert(axum::extract::ConnectInfo(addr));
            }
            let principal = Principal::from_request_parts(&mut parts, state).await?;
            let (integration, service) = match &route.integration {
                Some(owner) => owner.clone(),
                None => {
                    let named = parts
                        .headers
                        .get(INTEGRATION_HEADER)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let kind = service_of(&route.grpc_path, named).map_err(|_| {
                        ApiError::bad_request(format!(
                            "name the integration in the {INTEGRATION_HEADER} metadata \
                             (google-workspace, odoo, zoho, tally or messaging); got {named:?}"
                        ))
                    })?;
                    (named.to_string(), kind)
                }
            };
            authz::require(&state.db, &principal, &integration, route.action).await?;
            let channel = state
                .services
                .channel(service)
                .ok_or_else(|| ApiError::internal(format!("no channel for {integration}")))?;
            let mut headers = parts.headers.clone();
            // Only what the gateway vouches for reaches the service: its own context
            // headers, signed with the fleet's context key.
            for h in [
                "authorization",
                "x-api-key",
                TENANT_HEADER,
                PRINCIPAL_HEADER,
                REQUEST_ID_HEADER,
                TRACEPARENT_HEADER,
                SIGNATURE_HEADER,
                INTEGRATION_HEADER,
            ] {
                headers.remove(h);
            }
            let signed = principal.context().request(());
            for (name, value) in signed.metadata().clone().into_headers() {
                if let Some(name) = name {
                    headers.insert(name, value);
                }
            }
            let mut out = http::Request::builder()
                .method(parts.method.clone())
                .uri(parts.uri.clone())
                .version(parts.version)
                .body(tonic::body::boxed(body))
                .map_err(|e| ApiError::internal(format!("forwarded request: {e}")))?;
            *out.headers_mut() = headers;
            tracing::Span::current().record("tenant", principal.tenant_id.as_str());
            let resp = channel.oneshot(out).await.map_err(|e| {
                ApiError::from_status(&tonic::Status::unavailable(e.to_string()), &integration)
            })?;
            Ok::<Response, ApiError>(resp.map(Body::new))
        })
        .await;
    let mut resp = match answer {
        Ok(resp) => resp,
        Err(e) => status_of(&e).into_http().map(Body::new).into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The gRPC status of an edge refusal, with the REST error's code, integration and suggestion
/// as `google.rpc.ErrorInfo` (as services send theirs).
pub fn status_of(e: &ApiError) -> tonic::Status {
    use tonic_types::{ErrorDetails, StatusExt};
    let code = match e.status {
        StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT => Code::Aborted,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::UNPROCESSABLE_ENTITY => Code::FailedPrecondition,
        StatusCode::NOT_IMPLEMENTED => Code::Unimplemented,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        _ => Code::Internal,
    };
    let mut meta = HashMap::new();
    if let Some(i) = &e.integration {
        meta.insert("integration".to_string(), i.clone());
    }
    if let Some(s) = &e.suggestion {
        meta.insert("suggestion".to_string(), s.clone());
    }
    let details = ErrorDetails::with_error_info(e.error_code.clone(), "gateway.bac", meta);
    tonic::Status::with_error_details(code, e.message.clone(), details)
}
