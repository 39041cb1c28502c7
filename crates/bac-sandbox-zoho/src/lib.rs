//! The Zoho sandbox: for each data centre it serves, Zoho Accounts (the authorisation-code
//! grant with PKCE, refresh, revocation, Zoho's error dialect: HTTP 200 with `error`,
//! `invalid_code`; a refresh token only with `access_type=offline`; at most ten refreshes of
//! one refresh token in ten minutes), the CRM API, and Books, Inventory, Desk, People and
//! Mail, under `/<data centre>/...` of one listener. Each data centre is its own
//! authorisation server: a token from one is refused by the others, as Zoho's are, and the
//! token answer's `api_domain` points at that data centre's prefix.
//!
//! Routes per data centre `dc` (`com`, `eu`, `in`, ...): `GET /dc/oauth/v2/auth`,
//! `POST /dc/oauth/v2/token`, `POST /dc/oauth/v2/token/revoke`; the CRM ([`crm`],
//! [`records`]) under `/dc/crm/<version>/`; Books under `/dc/books/v3/` and Inventory under
//! `/dc/inventory/v1/` ([`finance`]); Desk under `/dc/desk/api/v1/` ([`desk`]); People under
//! `/dc/people/people/api/` ([`people`]); Mail under `/dc/mail/api/` ([`mail`]); the kit's
//! admin routes under `/dc/_sandbox/oauth/` (register a client:
//! `POST /dc/_sandbox/oauth/clients`), the CRM's under `/dc/_sandbox/zoho/records/` and
//! `/dc/_sandbox/zoho/credits`, the other products' under `/dc/_sandbox/zoho/apps/` and
//! `/dc/_sandbox/zoho/mail/sent` ([`apps`]); and `GET /_sandbox/zoho/calls` (requests per
//! data centre).
pub mod apps;
pub mod crm;
pub mod desk;
pub mod faults;
pub mod finance;
pub mod mail;
pub mod notifications;
pub mod people;
pub mod records;

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
    /// Custom text fields every CRM module has (`BAC_Intent_Id`), as an administrator adds
    /// them.
    pub custom_fields: Vec<String>,
    /// API credits of each data centre's organisation per window (`None`: unlimited); a
    /// call past them is answered 429 until the window resets.
    pub credits_per_window: Option<u64>,
    /// The credit window in seconds (Zoho's is a rolling day).
    pub credit_window_secs: i64,
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
            custom_fields: Vec::new(),
            credits_per_window: None,
            credit_window_secs: 86_400,
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
    pub org: records::SharedOrg,
    /// Books', Inventory's, Desk's, People's and Mail's records.
    pub apps: apps::SharedApps,
    /// CRM notification channels and their deliveries.
    pub watch: notifications::SharedWatch,
    /// The data centre's URL (`api_domain`, the notifications' `resource_uri`).
    pub root: String,
    credits: Arc<Mutex<Credits>>,
    clock: SandboxClock,
}

/// An organisation's API credits in the current window.
#[derive(Debug, Default)]
struct Credits {
    limit: Option<u64>,
    window_secs: i64,
    window_start: i64,
    used: u64,
    /// Calls refused for want of credits (tests read it).
    refused: u64,
}

impl DataCenter {
    /// Spends one credit of the organisation, or answers Zoho's 429 with when the window
    /// resets.
    pub fn spend_credit(&self) -> Result<(), axum::response::Response> {
        use axum::response::IntoResponse;
        let now = self.clock.now();
        let Ok(mut c) = self.credits.lock() else {
            return Ok(());
        };
        if now >= c.window_start + c.window_secs {
            c.window_start = now;
            c.used = 0;
        }
        let Some(limit) = c.limit else {
            c.used += 1;
            return Ok(());
        };
        if c.used >= limit {
            c.refused += 1;
            let reset = c.window_start + c.window_secs;
            let wait = (reset - now).max(1);
            return Err((
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                [
                    ("retry-after", wait.to_string()),
                    ("x-ratelimit-limit", limit.to_string()),
                    ("x-ratelimit-remaining", "0".to_string()),
                    ("x-ratelimit-reset", (reset * 1000).to_string()),
                ],
                Json(json!({"code": "TOO_MANY_REQUESTS", "details": {"limit": limit, "reset_time": records::zoho_time(reset)},
                            "message": "API credits of the organisation are exhausted", "status": "error"})),
            )
                .into_response());
        }
        c.used += 1;
        Ok(())
    }

    fn credit_report(&self) -> Value {
        let c = self
            .credits
            .lock()
            .map(|c| (c.limit, c.used, c.refused, c.window_start + c.window_secs));
        match c {
            Ok((limit, used, refused, reset)) => {
                json!({"limit": limit, "used": used, "refused": refused, "reset_at": reset})
            }
            Err(_) => json!({}),
        }
    }
}

/// Requests per data centre, for tests that prove where a connection's calls went.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<BTreeMap<String, u64>>>);

/// The sandbox's router for `cfg`, its data centres under `base` (the URL it is reached at,
/// which token answers give as `accounts-server` and `api_domain`).
pub fn router(cfg: &ZohoSandboxConfig, base: &str, clock: SandboxClock) -> Router {
    let calls = Calls::default();
    let mut app = Router::new()
        .route(
            "/_sandbox/zoho/calls",
            get(call_counts).with_state(calls.clone()),
        )
        .merge(clock.router());
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
        let digit = cfg.data_centers.iter().position(|k| k == key).unwrap_or(0) as u64 + 1;
        let dc = DataCenter {
            key: key.clone(),
            oauth: oauth.clone(),
            company_name: cfg.company_name.clone(),
            user_email: cfg.user_email.clone(),
            org: Arc::new(Mutex::new(records::Org::new(
                clock.clone(),
                digit,
                &cfg.custom_fields,
                &cfg.user_email,
            ))),
            apps: apps::SharedApps::new(apps::Apps::new(
                clock.clone(),
                digit,
                key,
                &cfg.user_email,
            )),
            watch: notifications::SharedWatch::new(clock.clone()),
            root: root.clone(),
            credits: Arc::new(Mutex::new(Credits {
                limit: cfg.credits_per_window,
                window_secs: cfg.credit_window_secs.max(1),
                window_start: clock.now(),
                ..Credits::default()
            })),
            clock: clock.clone(),
        };
        let counted = calls.clone();
        let counted_key = key.clone();
        let fault_rules = faults::new();
        let inner = oauth
            .router(&["/oauth/v2/token"])
            .merge(oauth.authorize_router("/oauth/v2/auth", "/oauth/v2/token/revoke"))
            .merge(crm::router(dc.clone()))
            .merge(notifications::router(dc.clone()))
            .merge(finance::router(dc.clone()))
            .nest("/desk", desk::router(dc.clone()))
            .nest("/people", people::router(dc.clone()))
            .nest("/mail", mail::router(dc.clone()))
            .merge(apps::admin_router(dc.clone()))
            .merge(admin_router(dc))
            .merge(faults::routes(fault_rules.clone()))
            .layer(middleware::from_fn_with_state(fault_rules, faults::apply))
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

/// Admin routes of one data centre: `POST /<dc>/_sandbox/zoho/records/<Module>` seeds
/// `{"count": n, "fields": {...}}` generated records (or `{"records": [...]}`) without
/// spending credits; `GET /<dc>/_sandbox/zoho/credits` reports the organisation's credits.
fn admin_router(dc: DataCenter) -> Router {
    Router::new()
        .route("/_sandbox/zoho/credits", get(credits))
        .route(
            "/_sandbox/zoho/records/:module",
            axum::routing::post(seed).get(count),
        )
        .with_state(dc)
}

async fn credits(State(dc): State<DataCenter>) -> Json<Value> {
    Json(dc.credit_report())
}

async fn count(
    State(dc): State<DataCenter>,
    axum::extract::Path(module): axum::extract::Path<String>,
) -> Json<Value> {
    let n = dc.org.lock().map(|o| o.count(&module)).unwrap_or(0);
    Json(json!({"module": module, "count": n}))
}

async fn seed(
    State(dc): State<DataCenter>,
    axum::extract::Path(module): axum::extract::Path<String>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(m) = records::module(&module) else {
        return (axum::http::StatusCode::NOT_FOUND, "no such module").into_response();
    };
    let mut list: Vec<serde_json::Map<String, Value>> = body["records"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r.as_object().cloned()).collect())
        .unwrap_or_default();
    let n = body["count"].as_u64().unwrap_or(0).min(1_000_000);
    let base = body["fields"].as_object().cloned().unwrap_or_default();
    for i in 0..n {
        let mut r = base.clone();
        r.insert(
            m.name_field.into(),
            json!(format!("Seeded {} {i}", m.singular)),
        );
        list.push(r);
    }
    let Ok(mut org) = dc.org.lock() else {
        return axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let now = dc.clock.now();
    for r in &mut list {
        r.insert("$created".into(), json!(now));
    }
    let ids = org.seed(m.api_name, list);
    drop(org);
    let answer = json!({"created": ids.len(), "first": ids.first(), "last": ids.last()});
    // a fixture of a big sync is not announced, as a data import is not in Zoho
    if ids.len() <= 1000 {
        notifications::announce(&dc, m.api_name, "insert", ids);
    }
    Json(answer).into_response()
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
