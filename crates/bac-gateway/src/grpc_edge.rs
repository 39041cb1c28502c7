//! The gateway's gRPC port for the platform's other services: every public domain service of
//! the descriptor set (`bac.odoo.v1.OdooService`, ...) with `authorization: Bearer <key>`
//! metadata. A call gets what a REST call gets — the same keys, rate limits, access matrix
//! and grants (from the RPC's declared `(bac.api.v1.method)` action), request id and deadline
//! (`grpc-timeout`) — and is then forwarded to the owning service as it came, the protobuf
//! bytes untouched, with the caller's tenant and principal in the metadata the service trusts.
//! Refusals are gRPC statuses with the error details services use (`google.rpc.ErrorInfo`:
//! the error code, the integration, a suggestion). docs/grpc.md is the user's guide.
use std::{collections::HashMap, sync::Arc};

use bac_runtime::ServiceKind;

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
    audit::Origin,
    auth::Principal,
    authz,
    error::ApiError,
    transcode::{EdgeRpc, Transcoder},
    AppState,
};

/// Where a caller names the integration of a contract every service implements
/// (`bac.integration.v1.IntegrationService`).
pub const INTEGRATION_HEADER: &str = "x-bac-integration";

/// `IntegrationService` RPCs that change what the gateway keeps or audits. They are served
/// here, by the code the REST routes run (catalog checks, the connection directory, the audit
/// trail), not forwarded. Connection-scoped ones find their service from the connection id.
const LOCAL: &[&str] = &[
    "CreateConnection",
    "UpdateConnection",
    "DeleteConnection",
    "UpdateSyncSettings",
    "PutMapping",
    "ResolveConflict",
    "RetryParkedEvent",
    "DiscardParkedEvent",
];

const INTEGRATION_SERVICE: &str = "bac.integration.v1.IntegrationService";

/// What the edge does with a call once it is authenticated.
#[derive(Clone)]
enum Target {
    /// Authorised by the RPC's declared action, forwarded as it came.
    Forward(Arc<EdgeRpc>),
    /// One of [`LOCAL`], run here.
    Local(&'static str),
}

/// The edge's routes: `/<service>/<method>` of every RPC that declares its action, and the
/// [`LOCAL`] ones.
pub fn router(state: Arc<AppState>, tc: &Arc<Transcoder>) -> Router {
    let mut router = Router::new();
    let targets = tc
        .rpcs
        .iter()
        .map(|r| (r.grpc_path.clone(), Target::Forward(r.clone())))
        .chain(
            LOCAL
                .iter()
                .map(|m| (format!("/{INTEGRATION_SERVICE}/{m}"), Target::Local(m))),
        );
    for (path, target) in targets {
        router = router.route(
            &path,
            post(move |State(state): State<Arc<AppState>>, req: Request| {
                let target = target.clone();
                async move { handle(&state, target, req).await }
            }),
        );
    }
    router.with_state(state)
}

/// The request id of a call: the caller's when usable, else a new one.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| crate::http::usable_request_id(v))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

/// Authenticates one call, then forwards it or runs it here.
async fn handle(state: &Arc<AppState>, target: Target, req: Request) -> Response {
    let request_id = request_id(&req);
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
            match target {
                Target::Forward(route) => forward(state, &route, principal, parts, body).await,
                Target::Local(method) => {
                    let origin = match Origin::from_request_parts(&mut parts, state).await {
                        Ok(o) => o,
                        Err(never) => match never {},
                    };
                    let named = named_integration(&parts);
                    let req = http::Request::from_parts(parts, body);
                    let local = Local {
                        state: state.clone(),
                        principal,
                        origin,
                    };
                    local.serve(method, named, req).await
                }
            }
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

/// The `x-bac-integration` metadata, as given (empty when absent).
fn named_integration(parts: &http::request::Parts) -> String {
    parts
        .headers
        .get(INTEGRATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The service of the integration a caller named; a clear refusal when it named none.
fn named_service(named: &str) -> Result<ServiceKind, ApiError> {
    ServiceKind::parse(named)
        .filter(|k| *k != ServiceKind::Gateway)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "name the integration in the {INTEGRATION_HEADER} metadata \
                 (google-workspace, odoo, zoho, tally or messaging); got {named:?}"
            ))
        })
}

/// Authorises by the declared action and forwards the call as it came.
async fn forward(
    state: &Arc<AppState>,
    route: &EdgeRpc,
    principal: Principal,
    parts: http::request::Parts,
    body: Body,
) -> Result<Response, ApiError> {
    let (integration, service) = match &route.integration {
        Some(owner) => owner.clone(),
        None => {
            let kind = named_service(&named_integration(&parts))?;
            (kind.key().to_string(), kind)
        }
    };
    authz::require(&state.db, &principal, &integration, route.action).await?;
    let channel = state
        .services
        .channel(service)
        .ok_or_else(|| ApiError::internal(format!("no channel for {integration}")))?;
    let http::request::Parts {
        method,
        uri,
        version,
        mut headers,
        ..
    } = parts;
    // Only what the gateway vouches for reaches the service: its own context headers,
    // signed with the fleet's context key.
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
    for (name, value) in signed.into_parts().0.into_headers() {
        if let Some(name) = name {
            headers.insert(name, value);
        }
    }
    let mut out = http::Request::builder()
        .method(method)
        .uri(uri)
        .version(version)
        .body(tonic::body::boxed(body))
        .map_err(|e| ApiError::internal(format!("forwarded request: {e}")))?;
    *out.headers_mut() = headers;
    let resp = channel.oneshot(out).await.map_err(|e| {
        ApiError::from_status(&tonic::Status::unavailable(e.to_string()), &integration)
    })?;
    Ok(resp.map(Body::new))
}

/// An authenticated caller of a [`LOCAL`] RPC.
#[derive(Clone)]
struct Local {
    state: Arc<AppState>,
    principal: Principal,
    origin: Origin,
}

impl Local {
    async fn serve(
        self,
        method: &str,
        named: String,
        req: http::Request<Body>,
    ) -> Result<Response, ApiError> {
        use bac_proto::integration::v1 as pb;

        use crate::routes::{connections, parked, sync};
        Ok(match method {
            "CreateConnection" => {
                let kind = named_service(&named)?;
                unary(req, move |r: pb::CreateConnectionRequest| async move {
                    if !r.id.is_empty() {
                        return Err(ApiError::bad_request(
                            "leave id empty: the gateway chooses connection ids",
                        ));
                    }
                    let config = struct_map(r.config)?;
                    let credentials = r
                        .secrets
                        .into_iter()
                        .map(|(k, v)| (k, serde_json::Value::String(v)))
                        .collect();
                    let s = &self;
                    connections::create_connection(
                        &s.state,
                        &s.principal,
                        &s.origin,
                        kind.key(),
                        &r.name,
                        config,
                        credentials,
                    )
                    .await
                })
                .await
            }
            "UpdateConnection" => {
                unary(req, move |r: pb::UpdateConnectionRequest| async move {
                    let change = connections::ConnectionChange {
                        name: r.name,
                        config: match r.config {
                            Some(c) => {
                                Some(connections::ConfigChange::Replace(struct_map(Some(c))?))
                            }
                            None => None,
                        },
                        credentials: r.secrets.map(|s| {
                            s.fields
                                .into_iter()
                                .map(|(k, v)| (k, serde_json::Value::String(v)))
                                .collect()
                        }),
                        if_unmodified_since: r.if_unmodified_since,
                    };
                    let s = &self;
                    let (after, changed) = connections::update_connection(
                        &s.state,
                        &s.principal,
                        &s.origin,
                        &r.id,
                        change,
                    )
                    .await?;
                    Ok(pb::UpdateConnectionResponse {
                        connection: Some(after),
                        changed_secret_fields: changed,
                    })
                })
                .await
            }
            "DeleteConnection" => {
                unary(req, move |r: pb::DeleteConnectionRequest| async move {
                    let s = &self;
                    connections::delete_connection(&s.state, &s.principal, &s.origin, &r.id)
                        .await?;
                    Ok(pb::DeleteConnectionResponse {})
                })
                .await
            }
            "UpdateSyncSettings" => {
                unary(req, move |r: pb::UpdateSyncSettingsRequest| async move {
                    sync::update_sync_settings(&self.state, &self.principal, &self.origin, r).await
                })
                .await
            }
            "PutMapping" => {
                unary(req, move |r: pb::PutMappingRequest| async move {
                    sync::save_mapping(&self.state, &self.principal, &self.origin, r).await
                })
                .await
            }
            "ResolveConflict" => {
                unary(req, move |r: pb::ResolveConflictRequest| async move {
                    sync::resolve_conflict(&self.state, &self.principal, &self.origin, r).await
                })
                .await
            }
            "RetryParkedEvent" | "DiscardParkedEvent" => {
                let kind = named_service(&named)?;
                let retry = method == "RetryParkedEvent";
                unary(req, move |r: pb::ParkedEventRequest| async move {
                    let s = &self;
                    parked::decide(&s.state, &s.principal, &s.origin, kind, &r.id, retry).await
                })
                .await
            }
            other => return Err(ApiError::internal(format!("no local RPC {other}"))),
        })
    }
}

/// `google.protobuf.Struct` settings as the JSON object the catalog schemas check.
fn struct_map(
    s: Option<pbjson_types::Struct>,
) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
    match s.map(serde_json::to_value).transpose() {
        Ok(Some(serde_json::Value::Object(m))) => Ok(m),
        Ok(_) => Ok(serde_json::Map::new()),
        Err(e) => Err(ApiError::bad_request(format!("config: {e}"))),
    }
}

/// Decodes one request message, runs `f`, answers its result (or its error as a status with
/// details), with tonic's own framing, compression and size limits.
async fn unary<Req, Resp, F, Fut>(req: http::Request<Body>, f: F) -> Response
where
    Req: prost::Message + Default + Send + 'static,
    Resp: prost::Message + Send + 'static,
    F: FnOnce(Req) -> Fut + Send,
    Fut: std::future::Future<Output = Result<Resp, ApiError>> + Send,
{
    let mut f = Some(f);
    let svc = tower::service_fn(move |r: tonic::Request<Req>| {
        let f = f.take();
        async move {
            let f = f.ok_or_else(|| tonic::Status::internal("called twice"))?;
            f(r.into_inner())
                .await
                .map(tonic::Response::new)
                .map_err(|e| status_of(&e))
        }
    });
    let mut grpc = tonic::server::Grpc::new(tonic::codec::ProstCodec::<Resp, Req>::default());
    grpc.unary(svc, req).await.map(Body::new)
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
