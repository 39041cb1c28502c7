//! The Google Workspace sandbox, for bac-google-workspace's tests and a developer's fleet:
//! Google's OAuth 2.0 server on the kit (`POST /token`: the JWT-bearer grant of a service
//! account acting for a user of the domain, refresh tokens; `GET /o/oauth2/v2/auth`,
//! `POST /revoke`) and the APIs that follow the discovery documents shipped with
//! `google-api-python-client`: Gmail's messages ([`gmail`]), Calendar's events with
//! incremental sync ([`calendar`]), Drive's files with multipart and resumable uploads and
//! the changes feed ([`drive`]), the Directory's users ([`admin`]), push channels
//! ([`push`]), Docs, Sheets, Slides and Forms ([`office`]), Chat messages and Tasks
//! ([`collab`]), per-user quota faults ([`quota`]), and Google Chat's signed events to a Chat
//! app ([`chat_app`]). Every API answers
//! Google's error body `{"error": {"code", "message", "errors", "status"}}`, and a token
//! without the method's scope gets `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, as Google says it.
//!
//! One listener serves every host (`oauth2.googleapis.com`, `gmail.googleapis.com`): clients
//! point their root URL at it (`client_options={"api_endpoint": ...}` in Python).
pub mod admin;
pub mod calendar;
pub mod chat_app;
pub mod collab;
pub mod drive;
pub mod gmail;
pub mod office;
pub mod push;
pub mod quota;

use std::net::SocketAddr;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json, Router,
};
use bac_sandbox_kit::{OAuthConfig, OAuthServer, SandboxClock};
use serde_json::{json, Value};

/// What the sandbox serves (settings come with the APIs that need them).
#[derive(Debug, Clone, Default)]
pub struct GoogleSandboxConfig {}

/// Google's error body.
pub fn google_error(status: StatusCode, message: &str, reason: &str, details: Value) -> Response {
    let code = status.as_u16();
    let status_name = match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        409 => "ALREADY_EXISTS",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    };
    let mut error = json!({
        "code": code,
        "message": message,
        "errors": [{"message": message, "domain": "global", "reason": reason}],
        "status": status_name,
    });
    if !details.is_null() {
        error["details"] = details;
    }
    (status, Json(json!({ "error": error }))).into_response()
}

/// A missing, expired or revoked access token.
pub fn unauthenticated() -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        Value::Null,
    )
}

/// A token without the method's scope: Google names `ACCESS_TOKEN_SCOPE_INSUFFICIENT`.
pub fn scope_insufficient(service: &str, method: &str) -> Response {
    google_error(
        StatusCode::FORBIDDEN,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        json!([{
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
            "domain": "googleapis.com",
            "metadata": {"service": service, "method": method},
        }]),
    )
}

/// The user a call's bearer token speaks for, when it carries one of `scopes`; otherwise
/// Google's 401, or 403 `ACCESS_TOKEN_SCOPE_INSUFFICIENT` naming `service` and `method`.
pub fn authorized(
    oauth: &OAuthServer,
    headers: &axum::http::HeaderMap,
    scopes: &[&str],
    service: &str,
    method: &str,
) -> Result<String, Response> {
    let Some(token) = oauth.check_bearer(headers) else {
        return Err(unauthenticated());
    };
    if !has_scope(&token.scope, scopes) {
        return Err(scope_insufficient(service, method));
    }
    Ok(token.subject)
}

/// Whether a token's scopes (space-separated URLs) include one of `any`.
pub fn has_scope(granted: &str, any: &[&str]) -> bool {
    granted.split([' ', ',']).any(|g| any.contains(&g))
}

/// The sandbox's router; `clock` moves token and message times in tests.
pub fn router(_cfg: &GoogleSandboxConfig, clock: SandboxClock) -> Router {
    let oauth = OAuthServer::new(
        OAuthConfig {
            refresh_token_needs_offline: true,
            ..OAuthConfig::default()
        },
        clock.clone(),
    );
    let gmail = gmail::Gmail::new(oauth.clone(), clock.clone());
    let push = push::Channels::new(clock.clone());
    let calendar = calendar::Calendar::new(oauth.clone(), clock.clone(), push.clone());
    let drive = drive::Drive::new(oauth.clone(), clock.clone(), push.clone());
    let directory = admin::Directory::new(oauth.clone(), clock.clone());
    let quota = quota::Quota::new(oauth.clone());
    let office = office::Office::new(oauth.clone(), clock.clone());
    let collab = collab::Collab::new(oauth.clone(), clock.clone());
    oauth
        .router(&["/token"])
        .merge(oauth.authorize_router("/o/oauth2/v2/auth", "/revoke"))
        .merge(gmail::router(gmail))
        .merge(calendar::router(calendar))
        .merge(drive::router(drive))
        .merge(admin::router(directory))
        .merge(office::router(office))
        .merge(collab::router(collab))
        .merge(quota::router(quota.clone()))
        .merge(chat_app::router(clock.clone()))
        .route(
            "/_sandbox/google/channels",
            axum::routing::get(move || {
                let push = push.clone();
                async move { Json(push.report()) }
            }),
        )
        .layer(axum::middleware::from_fn_with_state(quota, quota::check))
}

/// Binds `addr` (port 0 picks one) and serves the sandbox in a background task.
pub async fn spawn_google(
    cfg: GoogleSandboxConfig,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Google sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = router(&cfg, SandboxClock::default());
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "google sandbox server stopped");
        }
    });
    Ok((local, handle))
}
