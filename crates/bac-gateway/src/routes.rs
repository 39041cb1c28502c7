//! The gateway's hand-written REST routes: its own resources (tenants, users, keys, grants,
//! audit) and the integration-management routes under `/api/v1/integrations/...`. The
//! integrations' domain routes (`/api/v1/odoo/...`) are not here: `crate::transcode` serves
//! them from the annotated protos.
pub mod access;
pub mod connections;
pub mod oauth;
pub mod parked;
pub mod permissions;
pub mod status;
pub mod sync;
pub mod tally;

use std::sync::Arc;

use axum::{
    async_trait,
    extract::{FromRequest, FromRequestParts, Request},
    http::request::Parts,
    routing::{delete, get, patch, post},
    Router,
};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, AppState};

pub fn router() -> Router<Arc<AppState>> {
    parked::routes(status::routes(Router::new()))
        .route(
            "/api/v1/integrations/connections",
            post(connections::create).get(connections::list),
        )
        .route(
            "/api/v1/integrations/connections/:id/test",
            post(connections::test),
        )
        .route(
            "/api/v1/integrations/connections/:id/sync",
            post(sync::trigger),
        )
        .route(
            "/api/v1/integrations/connections/:id/sync-runs",
            get(sync::runs),
        )
        .route(
            "/api/v1/integrations/connections/:id/sync-settings",
            get(sync::settings),
        )
        .route(
            "/api/v1/integrations/connections/:id/sync-settings/:entity",
            patch(sync::update_settings),
        )
        .route(
            "/api/v1/integrations/connections/:id/mappings/:entity",
            get(sync::get_mapping).put(sync::put_mapping),
        )
        .route(
            "/api/v1/integrations/connections/:id/mappings/:entity/preview",
            post(sync::preview_mapping),
        )
        .route(
            "/api/v1/integrations/connections/:id/conflicts",
            get(sync::conflicts),
        )
        .route(
            "/api/v1/integrations/conflicts/:id/resolve",
            post(sync::resolve),
        )
        .route(
            "/api/v1/integrations/connections/:id/webhook-token",
            post(sync::create_webhook_token),
        )
        .route(
            "/api/v1/integrations/connections/:id/webhook",
            post(sync::webhook),
        )
        .route(
            "/api/v1/integrations/connections/:id/push",
            post(sync::push),
        )
        .route(
            "/api/v1/integrations/connections/:id/authorize",
            post(oauth::authorize),
        )
        .route(oauth::CALLBACK_PATH, get(oauth::callback))
        .route(
            "/api/v1/tenants",
            post(access::create_tenant).get(access::list_tenants),
        )
        .route(
            "/api/v1/users",
            post(access::create_user).get(access::list_users),
        )
        .route(
            "/api/v1/users/:id",
            patch(access::update_user).delete(access::delete_user),
        )
        .route(
            "/api/v1/api-keys",
            post(access::create_key).get(access::list_keys),
        )
        .route("/api/v1/api-keys/:id", delete(access::revoke_key))
        .route("/api/v1/api-keys/:id/rotate", post(access::rotate_key))
        .route(
            "/api/v1/integrations/permissions",
            get(permissions::effective),
        )
        .route(
            "/api/v1/integrations/permissions/grant",
            post(permissions::grant),
        )
        .route(
            "/api/v1/integrations/permissions/revoke",
            delete(permissions::revoke),
        )
        .route("/api/v1/integrations/audit", get(access::list_audit))
        .route("/api/v1/openapi.json", get(crate::openapi::openapi_json))
        .route("/api/v1/docs", get(crate::openapi::docs_page))
        .route(
            "/api/v1/docs/redoc.standalone.js",
            get(crate::openapi::redoc_js),
        )
        .route(
            "/api/v1/integrations/definitions",
            get(connections::definitions),
        )
        .route(
            "/api/v1/integrations/connections/:id",
            get(connections::get)
                .patch(connections::update)
                .delete(connections::delete),
        )
        .route("/api/v1/integrations/dashboard", get(status::dashboard))
        .route(
            "/api/v1/integrations/tally/test-connection",
            post(tally::test_connection),
        )
        .route(
            "/api/v1/integrations/tally/agent-key",
            post(tally::issue_agent_key),
        )
        .route(
            "/api/v1/integrations/tally/configuration",
            get(tally::get_configuration)
                .post(tally::create_configuration)
                .put(tally::update_configuration)
                .delete(tally::delete_configuration),
        )
}

/// `Json<T>` whose rejections use the one error shape.
pub struct ApiJson<T>(pub T);

#[async_trait]
impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            // axum's own rejection (415 in the one error shape).
            let axum::Json(v) = axum::Json::<T>::from_request(req, state).await?;
            return Ok(ApiJson(v));
        }
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::from(axum::extract::rejection::JsonRejection::from(e)))?;
        if has_nul(&bytes) {
            return Err(nul_refused());
        }
        object_body(&bytes)?;
        let axum::Json(v) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(ApiJson(v))
    }
}

/// Every body of the API is a JSON object. (A derived struct would also take an array of its
/// fields in order, `[null, null]`, which no document promises.)
pub(crate) fn object_body(bytes: &[u8]) -> Result<(), ApiError> {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | None => Ok(()),
        Some(_) => Err(ApiError::bad_request("the body must be a JSON object")),
    }
}

/// `application/json` or `application/<x>+json`, as axum's `Json` accepts.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// PostgreSQL text cannot hold a NUL character: a body string carrying one would fail deep
/// in a query (a 500), so every JSON body and query string is refused with a 400 up front.
fn has_nul(body: &[u8]) -> bool {
    fn walk(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(walk),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || walk(v)),
            _ => false,
        }
    }
    // In JSON a NUL can only be written as the escape \u0000.
    if !body.windows(6).any(|w| w == b"\\u0000") {
        return false;
    }
    serde_json::from_slice::<serde_json::Value>(body).is_ok_and(|v| walk(&v))
}

/// Whether a raw query string carries a NUL (`%00`), refused like one in a body.
pub(crate) fn query_has_nul(q: &str) -> bool {
    q.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

pub(crate) fn nul_refused() -> ApiError {
    ApiError::bad_request("text must not contain NUL (\\u0000) characters")
}

/// `Query<T>` whose rejections use the one error shape.
pub struct ApiQuery<T>(pub T);

#[async_trait]
impl<T, S> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        if parts.uri.query().is_some_and(query_has_nul) {
            return Err(nul_refused());
        }
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(ApiQuery(v))
    }
}
