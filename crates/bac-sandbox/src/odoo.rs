//! Odoo sandbox: a local server speaking Odoo 17's external JSON-RPC API.
//!
//! Endpoints (all JSON-RPC 2.0 over HTTP POST, errors in Odoo's shape with HTTP 200):
//!
//! * `POST /jsonrpc`: services `common` (`version`, `login`, `authenticate`),
//!   `db` (`list`, `db_exist`, `server_version`) and `object` (`execute`, `execute_kw`).
//! * `GET|POST /web/webclient/version_info`: the version dict (used by `odoorpc`).
//! * `POST /web/session/authenticate`, `/web/session/get_session_info`,
//!   `/web/session/destroy` and `/web/dataset/call_kw[/...]`: the web client's
//!   cookie-session API (`session_id` cookie).
//! * `GET /healthz`, and the sandbox-only admin helpers
//!   `GET /_sandbox/odoo/records/{model}` and `POST /_sandbox/odoo/seed`.
//!
//! State is kept in memory and lost when the process stops.

pub mod domain;
pub mod error;
pub mod models;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use self::error::{OdooError, OdooResult};
use self::service::OdooService;

/// Configuration of the Odoo sandbox.
#[derive(Clone, PartialEq, Eq)]
pub struct OdooSandboxConfig {
    /// The only database served (`db.list` returns it; others do not exist).
    pub database: String,
    /// `(login, password or API key)` pairs; the first user gets uid 2, the next 3, 4...
    pub users: Vec<(String, String)>,
    /// Reported server version, e.g. `"17.0"`.
    pub server_version: String,
}

impl Default for OdooSandboxConfig {
    fn default() -> Self {
        Self {
            database: "demo".to_owned(),
            users: vec![("admin".to_owned(), "admin".to_owned())],
            server_version: "17.0".to_owned(),
        }
    }
}

impl std::fmt::Debug for OdooSandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let logins: Vec<&str> = self.users.iter().map(|(l, _)| l.as_str()).collect();
        f.debug_struct("OdooSandboxConfig")
            .field("database", &self.database)
            .field("users", &logins)
            .field("server_version", &self.server_version)
            .finish()
    }
}

type AppState = Arc<OdooService>;

/// Builds the axum router serving the Odoo sandbox.
pub fn router(cfg: OdooSandboxConfig) -> Router {
    let state: AppState = Arc::new(OdooService::new(&cfg));
    Router::new()
        .route("/jsonrpc", post(jsonrpc))
        .route(
            "/web/webclient/version_info",
            get(version_info).post(version_info),
        )
        .route("/web/session/authenticate", post(session_authenticate))
        .route("/web/session/get_session_info", post(session_get_info))
        .route("/web/session/destroy", post(session_destroy))
        .route("/web/dataset/call_kw", post(dataset_call_kw))
        .route("/web/dataset/call_kw/*path", post(dataset_call_kw))
        .route("/healthz", get(healthz))
        .route("/_sandbox/odoo/records/:model", get(admin_records))
        .route("/_sandbox/odoo/seed", post(admin_seed))
        .fallback(fallback)
        // Odoo's default request size limit (128 MiB) rather than axum's 2 MiB
        .layer(axum::extract::DefaultBodyLimit::max(128 * 1024 * 1024))
        .with_state(state)
}

/// Binds `addr` (port 0 picks a free port) and serves the sandbox in a background task.
/// Returns the bound address and the server task.
pub async fn spawn_odoo(
    cfg: OdooSandboxConfig,
    addr: SocketAddr,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("binding the Odoo sandbox to {addr}: {e}"))?;
    let local = listener.local_addr()?;
    let app = router(cfg);
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "odoo sandbox server stopped");
        }
    });
    Ok((local, handle))
}

// ------------------------------------------------------------------ JSON-RPC

/// A parsed JSON-RPC request: its id and its `params` object.
struct RpcRequest {
    id: Value,
    params: Map<String, Value>,
}

/// Parses a JSON-RPC 2.0 envelope; errors carry the id to answer with.
fn parse_request(body: &[u8]) -> Result<RpcRequest, (Value, OdooError)> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| (Value::Null, OdooError::parse_error(e)))?;
    let Value::Object(mut obj) = value else {
        return Err((
            Value::Null,
            OdooError::invalid_request("the request must be a JSON object"),
        ));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    if let Some(version) = obj.get("jsonrpc") {
        if version != "2.0" {
            return Err((
                id,
                OdooError::invalid_request("\"jsonrpc\" must be \"2.0\""),
            ));
        }
    }
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Err((
                id,
                OdooError::invalid_request("\"params\" must be a JSON object"),
            ))
        }
    };
    Ok(RpcRequest { id, params })
}

/// Odoo's JSON-RPC response: `result` is omitted when it is None (null).
fn rpc_response(id: Value, result: OdooResult<Value>) -> Response {
    let mut body = Map::new();
    body.insert("jsonrpc".into(), json!("2.0"));
    body.insert("id".into(), id);
    match result {
        Ok(Value::Null) => {}
        Ok(v) => {
            body.insert("result".into(), v);
        }
        Err(e) => {
            tracing::debug!(error = %e.name, code = e.code, "odoo sandbox rpc error");
            body.insert("error".into(), e.to_json());
        }
    }
    (StatusCode::OK, Json(Value::Object(body))).into_response()
}

/// Removes the named params, failing like Python on missing/unexpected ones.
fn take_params(
    func: &str,
    params: &mut Map<String, Value>,
    required: &[&str],
    optional: &[&str],
) -> OdooResult<Vec<Value>> {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| !params.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        return Err(OdooError::type_error(format!(
            "{func}() missing {} required positional argument{}: {}",
            missing.len(),
            if missing.len() == 1 { "" } else { "s" },
            service::py_name_list(&missing)
        )));
    }
    Ok(required
        .iter()
        .chain(optional)
        .map(|name| params.remove(*name).unwrap_or(Value::Null))
        .collect())
}

async fn jsonrpc(State(svc): State<AppState>, body: Bytes) -> Response {
    let req = match parse_request(&body) {
        Ok(r) => r,
        Err((id, e)) => return rpc_response(id, Err(e)),
    };
    let RpcRequest { id, mut params } = req;
    let result = (|| {
        let p = take_params("jsonrpc", &mut params, &["service", "method", "args"], &[])?;
        let service = p[0].as_str().unwrap_or_default().to_owned();
        let method = p[1].as_str().unwrap_or_default().to_owned();
        let args = match &p[2] {
            Value::Array(a) => a.clone(),
            Value::Null => Vec::new(),
            other => vec![other.clone()],
        };
        // never log args: they carry passwords
        let model = if service == "object" {
            args.get(3)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        } else {
            String::new()
        };
        tracing::debug!(%service, %method, %model, "odoo sandbox /jsonrpc");
        svc.dispatch_rpc(&service, &method, &args)
    })();
    rpc_response(id, result)
}

async fn version_info(State(svc): State<AppState>, body: Bytes) -> Response {
    let id = if body.is_empty() {
        Value::Null
    } else {
        match parse_request(&body) {
            Ok(r) => r.id,
            Err((id, e)) => return rpc_response(id, Err(e)),
        }
    };
    rpc_response(id, Ok(svc.version_info()))
}

/// The value of the `session_id` cookie, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "session_id")
        .map(|(_, value)| value.trim().to_owned())
}

fn with_session_cookie(mut resp: Response, sid: &str) -> Response {
    let cookie = format!("session_id={sid}; Max-Age=604800; HttpOnly; Path=/; SameSite=Lax");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    resp
}

async fn session_authenticate(State(svc): State<AppState>, body: Bytes) -> Response {
    let RpcRequest { id, mut params } = match parse_request(&body) {
        Ok(r) => r,
        Err((id, e)) => return rpc_response(id, Err(e)),
    };
    let result = (|| {
        let p = take_params(
            "authenticate",
            &mut params,
            &["db", "login", "password"],
            &["base_location"],
        )?;
        if p[0].as_str() != Some(svc.database()) {
            return Err(OdooError::access_error("Database not found."));
        }
        let user = svc
            .authenticate_user(&p[1], &p[2])
            .ok_or_else(OdooError::access_denied)?;
        let (uid, login) = (user.uid, user.login.clone());
        let sid = svc.open_session(uid, &login);
        let session = svc.session(&sid).ok_or_else(OdooError::session_expired)?;
        Ok((sid.clone(), svc.session_info(&session, &sid)))
    })();
    match result {
        Ok((sid, info)) => with_session_cookie(rpc_response(id, Ok(info)), &sid),
        Err(e) => rpc_response(id, Err(e)),
    }
}

async fn session_get_info(
    State(svc): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match parse_request(&body) {
        Ok(r) => r.id,
        Err((id, e)) => return rpc_response(id, Err(e)),
    };
    let result = session_cookie(&headers)
        .and_then(|sid| svc.session(&sid).map(|s| svc.session_info(&s, &sid)))
        .ok_or_else(OdooError::session_expired);
    rpc_response(id, result)
}

async fn session_destroy(State(svc): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let id = match parse_request(&body) {
        Ok(r) => r.id,
        Err((id, e)) => return rpc_response(id, Err(e)),
    };
    let result = match session_cookie(&headers).filter(|sid| svc.session(sid).is_some()) {
        Some(sid) => {
            svc.close_session(&sid);
            Ok(Value::Null)
        }
        None => Err(OdooError::session_expired()),
    };
    rpc_response(id, result)
}

async fn dataset_call_kw(State(svc): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let RpcRequest { id, mut params } = match parse_request(&body) {
        Ok(r) => r,
        Err((id, e)) => return rpc_response(id, Err(e)),
    };
    let Some(session) = session_cookie(&headers).and_then(|sid| svc.session(&sid)) else {
        return rpc_response(id, Err(OdooError::session_expired()));
    };
    let result = (|| {
        let p = take_params(
            "call_kw",
            &mut params,
            &["model", "method", "args", "kwargs"],
            &[],
        )?;
        let model = p[0].as_str().unwrap_or_default();
        let method = p[1].as_str().unwrap_or_default();
        let args = match &p[2] {
            Value::Array(a) => a.clone(),
            _ => return Err(OdooError::type_error("args must be a list")),
        };
        let kwargs = match &p[3] {
            Value::Object(m) => m.clone(),
            Value::Null => Map::new(),
            _ => return Err(OdooError::type_error("kwargs must be a dict")),
        };
        tracing::debug!(%model, %method, "odoo sandbox /web/dataset/call_kw");
        svc.call_kw(session.uid, model, method, &args, &kwargs)
    })();
    rpc_response(id, result)
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn fallback(headers: HeaderMap, body: Bytes) -> Response {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json") || ct.starts_with("application/json-rpc")
        });
    if is_json {
        let id = parse_request(&body).map(|r| r.id).unwrap_or(Value::Null);
        return rpc_response(id, Err(OdooError::not_found()));
    }
    (StatusCode::NOT_FOUND, "404 Not Found").into_response()
}

// ------------------------------------------------------------- admin helpers

async fn admin_records(State(svc): State<AppState>, Path(model): Path<String>) -> Response {
    match svc.store().dump(&model) {
        Some(records) => Json(Value::Array(records)).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("unknown model '{model}'")})),
        )
            .into_response(),
    }
}

/// Maximum number of records one seed call may create.
const MAX_SEED: u64 = 100_000;

async fn admin_seed(State(svc): State<AppState>, body: Bytes) -> Response {
    let bad = |msg: String| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let req: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return bad(format!("invalid JSON: {e}")),
    };
    let model = req["model"].as_str().unwrap_or("crm.lead").to_owned();
    let Some(count) = req["count"].as_u64().filter(|c| *c <= MAX_SEED) else {
        return bad(format!(
            "\"count\" must be an integer between 0 and {MAX_SEED}"
        ));
    };
    let mut store = svc.store();
    let Some(def) = store.model(&model) else {
        return bad(format!("unknown model '{model}'"));
    };
    if def.field("name").is_none() {
        return bad(format!("model '{model}' has no name field"));
    }
    let vals: Vec<Value> = (1..=count)
        .map(|k| {
            if model == "crm.lead" {
                json!({
                    "name": format!("Seed lead {k}"),
                    "partner_name": format!("Seed Company {k}"),
                    "contact_name": format!("Seed Contact {k}"),
                    "email_from": format!("seed{k}@example.com"),
                    "phone": format!("+1 555 {:04}", k % 10_000),
                    "expected_revenue": (k * 100) as f64,
                    "priority": ((k % 4).to_string()),
                })
            } else {
                json!({"name": format!("Seed {model} {k}")})
            }
        })
        .collect();
    let created = store.create(&model, &vals, 2, &Map::new());
    match created {
        Ok(ids) => Json(json!({"model": model, "created": ids.len(), "ids": ids})).into_response(),
        Err(e) => bad(e.to_string()),
    }
}
