//! Odoo sandbox: a local server speaking Odoo's external APIs (17, 18 and 19).
//!
//! Endpoints:
//!
//! * `POST /jsonrpc` (JSON-RPC 2.0, errors in Odoo's shape with HTTP 200; deprecated
//!   but still served in Odoo 19): services `common` (`version`, `login`,
//!   `authenticate`), `db` (`list`, `db_exist`, `server_version`) and `object`
//!   (`execute`, `execute_kw`). Passwords or API keys are accepted.
//! * `POST /json/2/<model>/<method>` (Odoo 19+ only; 404 on older versions): the
//!   External JSON-2 API, see [`json2`].
//! * `GET|POST /web/webclient/version_info`: the version dict (used by `odoorpc`).
//! * `POST /web/session/authenticate`, `/web/session/get_session_info`,
//!   `/web/session/destroy` and `/web/dataset/call_kw[/...]`: the web client's
//!   cookie-session API (`session_id` cookie).
//! * `GET /healthz`, and the sandbox-only admin helpers
//!   `GET /_sandbox/odoo/records/{model}`, `POST /_sandbox/odoo/seed`
//!   (`{"model": "crm.lead", "count": 100000, "values": {...}, "write_date": "..."}`)
//!   `GET|POST|DELETE /_sandbox/odoo/faults[/{id}]` (see [`faults`]) and
//!   `GET|DELETE /_sandbox/odoo/calls` (calls counted by protocol, model and method).
//!
//! Models: `crm.lead`, `crm.stage`, `res.partner`, `res.users`, `sale.order`
//! (+ lines), `account.move` (+ lines), `product.product`, `stock.location`,
//! `stock.quant`, `hr.employee`, `hr.department` and `ir.model`, with the field
//! differences of the configured version (see [`models`]).
//!
//! State is kept in memory and lost when the process stops.

pub mod actions;
pub mod domain;
pub mod error;
pub mod faults;
pub mod json2;
pub mod models;
pub mod seed;
pub mod service;
pub mod store;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use self::error::{OdooError, OdooResult};
use self::faults::{Call, Decision, Protocol};
use self::service::OdooService;

/// Configuration of the Odoo sandbox.
#[derive(Clone, PartialEq, Eq)]
pub struct OdooSandboxConfig {
    /// The only database served (`db.list` returns it; others do not exist).
    pub database: String,
    /// `(login, password or API key)` pairs; the first user gets uid 2, the next 3, 4...
    pub users: Vec<(String, String)>,
    /// Reported server version, e.g. `"17.0"`; `"19.0"` and later also serve `/json/2`.
    pub server_version: String,
    /// `(API key, login)` pairs: bearer tokens of `/json/2`, also accepted in place of
    /// the password on `/jsonrpc`. Keys of logins not in `users` are ignored.
    pub api_keys: Vec<(String, String)>,
    /// `(model, count)` records seeded at start (`BAC_SANDBOX_ODOO_SEED`).
    pub seed: Vec<(String, u64)>,
    /// The Inventory app (`stock`) is installed: the stock models and, from 18 on, products'
    /// `is_storable` exist (`BAC_SANDBOX_ODOO_STOCK=0`: a database without it).
    pub stock: bool,
    /// `(model, field)` custom Char fields an administrator added (Settings > Technical >
    /// Fields), e.g. `("crm.lead", "x_bac_intent_id")`; names must start with `x_`
    /// (`BAC_SANDBOX_ODOO_CUSTOM_FIELDS=crm.lead:x_bac_intent_id,...`).
    pub custom_fields: Vec<(String, String)>,
}

/// The API key the default configuration gives to `admin`.
pub const DEFAULT_API_KEY: &str = "sandbox-api-key";

impl Default for OdooSandboxConfig {
    fn default() -> Self {
        Self {
            database: "demo".to_owned(),
            users: vec![("admin".to_owned(), "admin".to_owned())],
            server_version: "17.0".to_owned(),
            api_keys: vec![(DEFAULT_API_KEY.to_owned(), "admin".to_owned())],
            seed: Vec::new(),
            stock: true,
            custom_fields: Vec::new(),
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
            .field("api_keys", &self.api_keys.len())
            .field("seed", &self.seed)
            .field("stock", &self.stock)
            .field("custom_fields", &self.custom_fields)
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
        .route("/web/version", get(web_version))
        .route("/web/session/authenticate", post(session_authenticate))
        .route("/web/session/get_session_info", post(session_get_info))
        .route("/web/session/destroy", post(session_destroy))
        .route("/web/dataset/call_kw", post(dataset_call_kw))
        .route("/web/dataset/call_kw/*path", post(dataset_call_kw))
        .route("/json/2", any(json2_root))
        .route("/json/2/*rest", any(json2_route))
        .route("/healthz", get(healthz))
        .route("/_sandbox/odoo/records/:model", get(admin_records))
        .route("/_sandbox/odoo/seed", post(admin_seed))
        .fallback(fallback)
        // Odoo's default request size limit (128 MiB) rather than axum's 2 MiB
        .layer(axum::extract::DefaultBodyLimit::max(128 * 1024 * 1024))
        .with_state(state.clone())
        .merge(bac_sandbox_kit::faults::routes(
            "/_sandbox/odoo",
            state.faults.clone(),
        ))
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

/// Parses a JSON-RPC envelope as Odoo's `JsonRPCDispatcher.dispatch` does (17, 18 and 19
/// alike): a body that is not JSON, or JSON that is not an object, is refused with a bare
/// HTTP 400 text answer that bypasses the JSON-RPC error handler; the `jsonrpc` member is
/// never checked; `params` other than an object fails in `dict(params, **args)`, an
/// ordinary server error (code 200) answered with the request's id.
fn parse_request(body: &[u8]) -> Result<RpcRequest, Response> {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Err(bare_bad_request("Invalid JSON data"));
    };
    let Value::Object(mut obj) = value else {
        return Err(bare_bad_request("Invalid JSON-RPC data"));
    };
    let id = obj.remove("id").unwrap_or(Value::Null);
    let params = match obj.remove("params") {
        None => Map::new(),
        Some(Value::Object(p)) => p,
        Some(Value::Array(a)) if a.is_empty() => Map::new(),
        Some(Value::String(t)) if t.is_empty() => Map::new(),
        Some(other) => return Err(rpc_response(id, Err(dict_error(&other)))),
    };
    Ok(RpcRequest { id, params })
}

/// What Python's `dict(v)` raises for a decoded JSON value that is not an object (a list of
/// pairs, which Python would accept, is refused too: no client sends one).
fn dict_error(v: &Value) -> OdooError {
    match v {
        // iterating a str gives one-character strings
        Value::String(_) => OdooError::value_error(
            "dictionary update sequence element #0 has length 1; 2 is required",
        ),
        Value::Array(_) => OdooError::type_error(
            "cannot convert dictionary update sequence element #0 to a sequence",
        ),
        other => OdooError::type_error(format!(
            "'{}' object is not iterable",
            error::py_type_name(other)
        )),
    }
}

/// werkzeug's `abort(Response(text, status=400))`: plain text, no JSON-RPC envelope.
fn bare_bad_request(text: &'static str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(axum::http::header::CONTENT_TYPE, "text/html; charset=utf-8")],
        text,
    )
        .into_response()
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
        Err(resp) => return resp,
    };
    let RpcRequest { id, mut params } = req;
    let parsed = take_params("jsonrpc", &mut params, &["service", "method", "args"], &[]);
    let p = match parsed {
        Ok(p) => p,
        Err(e) => return rpc_response(id, Err(e)),
    };
    let service = p[0].as_str().unwrap_or_default().to_owned();
    let method = p[1].as_str().unwrap_or_default().to_owned();
    let args = match &p[2] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    // never log args: they carry passwords
    let (model, call_method) = if service == "object" {
        (
            args.get(3).and_then(Value::as_str),
            args.get(4).and_then(Value::as_str),
        )
    } else {
        (None, Some(method.as_str()))
    };
    tracing::debug!(%service, %method, model = model.unwrap_or_default(), "odoo sandbox /jsonrpc");
    let call = Call {
        protocol: Protocol::Jsonrpc.as_str(),
        model,
        method: call_method,
    };
    let decision = match fault_before(&svc, &call).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    // an expired credential: refused like a bad password
    let result = match (decision.session_expired, service.as_str(), method.as_str()) {
        _ if decision.error.is_some() => Err(error::injected(
            decision.error.as_deref().unwrap_or_default(),
            call.model,
            call.method,
        )),
        (true, "object", _) => Err(OdooError::access_denied()),
        (true, "common", "login" | "authenticate") => Ok(json!(false)),
        _ => svc.dispatch_rpc(&service, &method, &args),
    };
    fault_after(&decision, Protocol::Jsonrpc, rpc_response(id, result)).await
}

async fn version_info(State(svc): State<AppState>, body: Bytes) -> Response {
    let id = if body.is_empty() {
        Value::Null
    } else {
        match parse_request(&body) {
            Ok(r) => r.id,
            Err(resp) => return resp,
        }
    };
    let decision = match fault_before(&svc, &web_call(None, "version_info")).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    fault_after(
        &decision,
        Protocol::Web,
        rpc_response(id, Ok(svc.version_info())),
    )
    .await
}

/// `GET /web/version` (Odoo 17+): `common.version()`'s answer as plain JSON, no credentials.
async fn web_version(State(svc): State<AppState>) -> Response {
    let decision = match fault_before(&svc, &web_call(None, "version")).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    fault_after(
        &decision,
        Protocol::Web,
        Json(svc.version_info()).into_response(),
    )
    .await
}

fn web_call<'a>(model: Option<&'a str>, method: &'a str) -> Call<'a> {
    Call {
        protocol: Protocol::Web.as_str(),
        model,
        method: Some(method),
    }
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
        Err(resp) => return resp,
    };
    let decision = match fault_before(&svc, &web_call(None, "authenticate")).await {
        Ok(d) => d,
        Err(resp) => return resp,
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
    let resp = match result {
        Ok((sid, info)) => with_session_cookie(rpc_response(id, Ok(info)), &sid),
        Err(e) => rpc_response(id, Err(e)),
    };
    fault_after(&decision, Protocol::Web, resp).await
}

/// Applies the `session_expired` fault to a web call: the session is dropped.
fn expire_session(svc: &OdooService, decision: &Decision, headers: &HeaderMap) {
    if decision.session_expired {
        if let Some(sid) = session_cookie(headers) {
            svc.close_session(&sid);
        }
    }
}

async fn session_get_info(
    State(svc): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match parse_request(&body) {
        Ok(r) => r.id,
        Err(resp) => return resp,
    };
    let decision = match fault_before(&svc, &web_call(None, "get_session_info")).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    expire_session(&svc, &decision, &headers);
    let result = session_cookie(&headers)
        .and_then(|sid| svc.session(&sid).map(|s| svc.session_info(&s, &sid)))
        .ok_or_else(OdooError::session_expired);
    fault_after(&decision, Protocol::Web, rpc_response(id, result)).await
}

async fn session_destroy(State(svc): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let id = match parse_request(&body) {
        Ok(r) => r.id,
        Err(resp) => return resp,
    };
    let decision = match fault_before(&svc, &web_call(None, "destroy")).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    expire_session(&svc, &decision, &headers);
    let result = match session_cookie(&headers).filter(|sid| svc.session(sid).is_some()) {
        Some(sid) => {
            svc.close_session(&sid);
            Ok(Value::Null)
        }
        None => Err(OdooError::session_expired()),
    };
    fault_after(&decision, Protocol::Web, rpc_response(id, result)).await
}

async fn dataset_call_kw(State(svc): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let RpcRequest { id, mut params } = match parse_request(&body) {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let call = web_call(
        params.get("model").and_then(Value::as_str),
        params
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or("call_kw"),
    );
    let decision = match fault_before(&svc, &call).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    expire_session(&svc, &decision, &headers);
    let Some(session) = session_cookie(&headers).and_then(|sid| svc.session(&sid)) else {
        return rpc_response(id, Err(OdooError::session_expired()));
    };
    if let Some(name) = &decision.error {
        let e = error::injected(name, call.model, call.method);
        return fault_after(&decision, Protocol::Web, rpc_response(id, Err(e))).await;
    }
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
    fault_after(&decision, Protocol::Web, rpc_response(id, result)).await
}

// ---------------------------------------------------------------- JSON-2

async fn json2_root(
    State(svc): State<AppState>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    json2_serve(svc, method, None, headers, body).await
}

async fn json2_route(
    State(svc): State<AppState>,
    method: Method,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    json2_serve(svc, method, Some(rest), headers, body).await
}

async fn json2_serve(
    svc: AppState,
    method: Method,
    rest: Option<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if svc.major() < 19 {
        return json2::html_not_found();
    }
    let target = rest.as_deref().and_then(json2::split_path);
    let call = Call {
        protocol: Protocol::Json2.as_str(),
        model: target.map(|(m, _)| m),
        method: target.map(|(_, m)| m),
    };
    let decision = match fault_before(&svc, &call).await {
        Ok(d) => d,
        Err(resp) => return resp,
    };
    let resp = if decision.session_expired {
        json2::Json2Error::http(StatusCode::UNAUTHORIZED, "Invalid apikey").into_response()
    } else if let Some(name) = &decision.error {
        let mut e = json2::Json2Error::from_odoo(&error::injected(name, call.model, call.method));
        if let Some(status) = decision
            .failure
            .and_then(|f| StatusCode::from_u16(f.status).ok())
        {
            e.status = status;
        }
        e.into_response()
    } else {
        json2::serve(&svc, &method, rest.as_deref(), &headers, &body)
    };
    fault_after(&decision, Protocol::Json2, resp).await
}

// ------------------------------------------------------------------ faults

/// Runs the fault rules for a call: waits and/or answers with the failure.
/// With `lose_response` the call runs first ([`fault_after`] fails it).
async fn fault_before(svc: &OdooService, call: &Call<'_>) -> Result<Decision, Response> {
    let decision = svc.faults.decide(call);
    if decision.lose_response {
        return Ok(decision);
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    match decision.failure {
        // A named error is the call's own answer (the handler raises it), not a proxy's page.
        Some(f) if decision.error.is_none() => Err(failure_response(call.protocol, f)),
        _ => Ok(decision),
    }
}

/// Replaces the answer of a call whose response is lost.
async fn fault_after(decision: &Decision, protocol: Protocol, resp: Response) -> Response {
    if !decision.lose_response {
        return resp;
    }
    if !decision.delay.is_zero() {
        tokio::time::sleep(decision.delay).await;
    }
    let failure = decision.failure.unwrap_or(faults::Failure {
        status: 502,
        retry_after: None,
    });
    failure_response(protocol.as_str(), failure)
}

/// The answer of an injected HTTP failure: the HTML page of the nginx in front of
/// Odoo, or for a 500 the page (or, on `/json/2`, the JSON error) of Odoo itself.
fn failure_response(protocol: &str, f: faults::Failure) -> Response {
    let status = StatusCode::from_u16(f.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut resp = if f.status == 500 && protocol == Protocol::Json2.as_str() {
        json2::Json2Error {
            status,
            name: "psycopg2.OperationalError".into(),
            message: "server closed the connection unexpectedly\n\tThis probably means the \
                      server terminated abnormally\n\tbefore or while processing the request.\n"
                .into(),
            arguments: vec![json!(
                "server closed the connection unexpectedly\n\tThis probably means the server \
                 terminated abnormally\n\tbefore or while processing the request.\n"
            )],
        }
        .into_response()
    } else {
        let body = if f.status == 500 {
            "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n\
             <h1>Internal Server Error</h1>\n<p>The server encountered an internal error and was \
             unable to complete your request. Either the server is overloaded or there is an \
             error in the application.</p>\n"
                .to_owned()
        } else {
            let title = format!(
                "{} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("Error")
            );
            format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}\
                 </h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            )
        };
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        resp
    };
    if let Some(secs) = f.retry_after {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    resp
}

async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// No such route: werkzeug's HTML 404, whatever the request's content type (Odoo answers a
/// JSON-RPC request to an unknown path with the page, not with a JSON-RPC error).
async fn fallback() -> Response {
    json2::html_not_found()
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
const MAX_SEED: u64 = 1_000_000;

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
    let values = match &req["values"] {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => return bad("\"values\" must be an object".into()),
    };
    let write_date = match &req["write_date"] {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        _ => return bad("\"write_date\" must be a 'YYYY-MM-DD HH:MM:SS' string".into()),
    };
    let seed_req = seed::SeedRequest {
        model: model.clone(),
        count: usize::try_from(count).unwrap_or(usize::MAX),
        values,
        write_date,
    };
    let started = std::time::Instant::now();
    let created = {
        let mut store = svc.store();
        if store.model(&model).is_none() {
            return bad(format!("unknown model '{model}'"));
        }
        seed::seed(&mut store, &seed_req, 2)
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    match created {
        Ok(ids) => {
            tracing::info!(%model, created = ids.len(), elapsed_ms, "odoo sandbox: seeded");
            Json(
                json!({"model": model, "created": ids.len(), "ids": ids, "elapsed_ms": elapsed_ms}),
            )
            .into_response()
        }
        Err(e) => bad(e.to_string()),
    }
}
