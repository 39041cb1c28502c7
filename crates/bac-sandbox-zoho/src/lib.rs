//! The Zoho sandbox: for each data centre it serves, Zoho Accounts (the authorisation-code
//! grant with PKCE, refresh, revocation, Zoho's error dialect: HTTP 200 with `error`,
//! `invalid_code`; a refresh token only with `access_type=offline`; at most ten refreshes of
//! one refresh token in ten minutes) and the CRM API's organisation and current-user
//! resources, under `/<data centre>/...` of one listener. Each data centre is its own
//! authorisation server: a token from one is refused by the others, as Zoho's are, and the
//! token answer's `api_domain` points at that data centre's prefix.
//!
//! Routes per data centre `dc` (`com`, `eu`, `in`, ...): `GET /dc/oauth/v2/auth`,
//! `POST /dc/oauth/v2/token`, `POST /dc/oauth/v2/token/revoke`, `GET /dc/crm/v6/org`,
//! `GET /dc/crm/v6/users?type=CurrentUser`, the kit's admin routes under `/dc/_sandbox/oauth/`
//! (register a client: `POST /dc/_sandbox/oauth/clients`), and `GET /_sandbox/zoho/calls`
//! (requests per data centre).
pub mod crm;

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    extract::{Request, State},
    middleware::{self, Next},
    routing::get,
    Json, Router,
};
use bac_sandbox_kit::{OAuthConfig, OAuthServer, SandboxClock};
use serde_json::{json, Value};

/// The data centres the sandbox serves (Zoho's keys: `com`, `eu`, `in`, `com.au`, `jp`,
/// `com.cn`, `ca`, `sa`, `uk`, `ae`) and its one organisation.
#[derive(Debug, Clone)]
pub struct ZohoSandboxConfig {
    pub data_centers: Vec<String>,
    pub company_name: String,
    /// The user every authorisation consents as.
    pub user_email: String,
}

impl Default for ZohoSandboxConfig {
    fn default() -> Self {
        ZohoSandboxConfig {
            data_centers: [
                "com", "eu", "in", "com.au", "jp", "com.cn", "ca", "sa", "uk", "ae",
            ]
            .map(String::from)
            .to_vec(),
            company_name: "Sandbox Org".into(),
            user_email: "admin@sandbox.zoho".into(),
        }
    }
}

/// The `location` Zoho's callback names a data centre by.
pub fn location(dc: &str) -> &str {
    match dc {
        "com" => "us",
        "com.au" => "au",
        "com.cn" => "cn",
        other => other,
    }
}

/// One data centre: its authorisation server and the organisation it holds.
#[derive(Clone)]
pub struct DataCenter {
    pub key: String,
    pub oauth: OAuthServer,
    pub company_name: String,
    pub user_email: String,
}

/// Requests per data centre, for tests that prove where a connection's calls went.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

/// The sandbox's router for `cfg`, its data centres under `base` (the URL it is reached at,
/// which token answers give as `accounts-server` and `api_domain`).
pub fn router(cfg: &ZohoSandboxConfig, base: &str, clock: SandboxClock) -> Router {
    let calls = Calls::default();
    let mut app = Router::new().route(
        "/_sandbox/zoho/calls",
        get(call_counts).with_state(calls.clone()),
    );
    for key in &cfg.data_centers {
        let root = format!("{}/{key}", base.trim_end_matches('/'));
        let oauth = OAuthServer::new(
            OAuthConfig {
                errors_with_http_200: true,
                invalid_grant_error: "invalid_code".into(),
                refresh_limit: Some((10, 600)),
                refresh_token_needs_offline: true,
                redirect_extra: vec![
                    ("location".into(), location(key).into()),
                    ("accounts-server".into(), root.clone()),
                ],
                extra: serde_json::Map::from_iter([("api_domain".into(), json!(root))]),
                ..OAuthConfig::default()
            },
            clock.clone(),
        );
        let dc = DataCenter {
            key: key.clone(),
            oauth: oauth.clone(),
            company_name: cfg.company_name.clone(),
            user_email: cfg.user_email.clone(),
        };
        let counted = calls.clone();
        let counted_key = key.clone();
        let inner = oauth
            .router(&["/oauth/v2/token"])
            .merge(oauth.authorize_router("/oauth/v2/auth", "/oauth/v2/token/revoke"))
            .merge(crm::router(dc))
            .layer(middleware::from_fn(move |req: Request, next: Next| {
                let counted = counted.clone();
                let key = counted_key.clone();
                async move {
                    if let Ok(mut m) = counted.0.lock() {
                        *m.entry(key).or_default() += 1;
                    }
                    next.run(req).await
                }
            }));
        app = app.nest(&format!("/{key}"), inner);
    }
    app
}

async fn call_counts(State(calls): State<Calls>) -> Json<Value> {
    let m = calls.0.lock().map(|m| m.clone()).unwrap_or_default();
    Json(json!(m))
}

/// Binds `addr` (port 0 picks one) and serves the sandbox in a background task. `public` is
/// the URL clients reach it at (token answers name it); by default the bound address, with
/// `127.0.0.1` for an unspecified one.
pub async fn spawn_zoho(
    cfg: ZohoSandboxConfig,
    addr: SocketAddr,
    public: Option<String>,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Zoho sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let base = public.unwrap_or_else(|| {
        let mut shown = local;
        if shown.ip().is_unspecified() {
            shown.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("http://{shown}")
    });
    let app = router(&cfg, &base, SandboxClock::default());
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "zoho sandbox server stopped");
        }
    });
    Ok((local, handle))
}
