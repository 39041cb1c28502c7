//! Odoo's external APIs: JSON-RPC (`POST <url>/jsonrpc`: `common.version`,
//! `common.authenticate` and `object.execute_kw`) and, for Odoo 19+, the External JSON-2 API
//! ([`json2`]: `POST <url>/json/2/<model>/<method>`). Requests are built as values here and
//! sent by the shared upstream client (quota, retries, deadline); the wire types live in
//! [`transformers`].
pub mod json2;
pub mod transformers;

use std::sync::atomic::{AtomicU64, Ordering};

use bac_runtime::{
    error::{ErrorCode, ServiceError},
    upstream::{UpstreamClient, UpstreamError, UpstreamRequest},
};
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use transformers::{OdooFault, OdooJson2Error, OdooRpcParams, OdooRpcRequest, OdooRpcResponse};

/// Where and as whom to call Odoo. The password may be an Odoo API key.
pub struct OdooSession {
    pub url: String,
    pub database: String,
    pub username: String,
    /// What JSON-RPC sends as the password: the API key when there is one, else the password.
    pub password: SecretString,
    /// The connection's API key, the bearer token of JSON-2.
    pub api_key: Option<SecretString>,
}

/// Which of Odoo's external APIs a connection's calls use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `POST /jsonrpc` `object.execute_kw` (every version; deprecated from Odoo 19).
    JsonRpc,
    /// `POST /json/2/<model>/<method>` with a bearer API key (Odoo 19+).
    Json2,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::JsonRpc => "jsonrpc",
            Protocol::Json2 => "json2",
        }
    }
}

/// One model method call through `execute_kw`.
#[derive(Debug)]
pub struct ModelCall<'a> {
    pub model: &'a str,
    pub method: &'a str,
    pub args: Vec<Value>,
    pub kwargs: Value,
    /// Safe to repeat (reads); a `create` is not.
    pub idempotent: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OdooCallError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("odoo fault: {0:?}")]
    Fault(OdooFault),
    #[error("not an Odoo JSON-RPC answer: {0}")]
    Protocol(String),
    /// The server has no JSON-2 API (Odoo before 19, or the database is not served there).
    #[error("no JSON-2 API")]
    NoJson2,
    /// JSON-2 needs an API key and the connection has only a password.
    #[error("JSON-2 needs an API key")]
    NoApiKey,
    /// The call cannot be expressed (e.g. JSON-2 named arguments).
    #[error("invalid call: {0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct OdooClient {
    upstream: UpstreamClient,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The answer to a URL, redirect or DNS name that leads where the egress policy refuses: the
/// class of address, never anything learnt from the target.
pub fn address_not_allowed(refused: &bac_runtime::upstream::EgressRefused) -> ServiceError {
    ServiceError::new(
        "odoo",
        ErrorCode::UpstreamAddressNotAllowed,
        format!(
            "the Odoo URL leads to {}, a {} address; upstream calls may not reach it",
            refused.host, refused.class
        ),
    )
    .suggest(
        "Use the Odoo server's public address; an operator can allow a private network with BAC_UPSTREAM_ALLOW_CIDRS",
    )
}

/// The JSON-RPC request for `service.method(*args)`.
pub fn rpc_request(
    url: &str,
    service: &str,
    method: &str,
    args: Vec<Value>,
    idempotent: bool,
    operation: String,
) -> UpstreamRequest {
    let body = OdooRpcRequest {
        jsonrpc: "2.0",
        method: "call",
        params: OdooRpcParams {
            service,
            method,
            args,
        },
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    };
    UpstreamRequest {
        method: Method::POST,
        url: format!("{}/jsonrpc", url.trim_end_matches('/')),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(&body).ok(),
        idempotent,
        operation,
        // Odoo publishes no quota: the client's own, per server.
        quota: None,
    }
}

impl OdooClient {
    pub fn new(upstream: UpstreamClient) -> Self {
        OdooClient { upstream }
    }

    pub fn egress(&self) -> &bac_runtime::upstream::EgressPolicy {
        self.upstream.egress()
    }

    async fn call(&self, req: UpstreamRequest) -> Result<Value, OdooCallError> {
        let resp = self.upstream.send(&req).await?;
        if !resp.status.is_success() {
            return Err(UpstreamError::Status {
                upstream: "odoo".into(),
                status: resp.status.as_u16(),
            }
            .into());
        }
        let parsed: OdooRpcResponse = serde_json::from_slice(&resp.body)
            .map_err(|e| OdooCallError::Protocol(e.to_string()))?;
        match (parsed.result, parsed.error) {
            (_, Some(err)) => Err(OdooCallError::Fault(err.fault())),
            (Some(result), None) => Ok(result),
            (None, None) => Ok(Value::Null),
        }
    }

    /// The server's version, which needs no credentials (the connection test starts with
    /// it): `GET /web/version` (Odoo 17 and later; no `/jsonrpc`, which Odoo 19 deprecates),
    /// else `common.version` over `/jsonrpc` for a server without that route.
    pub async fn version(&self, url: &str) -> Result<Value, OdooCallError> {
        let probe = UpstreamRequest {
            method: Method::GET,
            url: format!("{}/web/version", url.trim_end_matches('/')),
            headers: vec![("accept".into(), "application/json".into())],
            body: None,
            idempotent: true,
            operation: "web/version".into(),
            quota: None,
        };
        // A server that cannot be reached is that, whatever the route: no second try.
        let resp = self.upstream.send(&probe).await?;
        if resp.status.is_success() {
            if let Ok(v) = serde_json::from_slice::<Value>(&resp.body) {
                if v.get("server_version").is_some() {
                    return Ok(v);
                }
            }
        }
        self.call(rpc_request(
            url,
            "common",
            "version",
            vec![],
            true,
            "common/version".into(),
        ))
        .await
    }

    /// `common.authenticate`: the user's id, or `AccessDenied` when Odoo answers `false`.
    pub async fn authenticate(&self, s: &OdooSession) -> Result<i64, OdooCallError> {
        let args = vec![
            json!(s.database),
            json!(s.username),
            json!(s.password.expose_secret()),
            json!({}),
        ];
        let result = self
            .call(rpc_request(
                &s.url,
                "common",
                "authenticate",
                args,
                true,
                "common/authenticate".into(),
            ))
            .await?;
        result
            .as_i64()
            .ok_or(OdooCallError::Fault(OdooFault::AccessDenied))
    }

    /// `object.execute_kw(db, uid, password, model, method, args, kwargs)`.
    pub async fn execute_kw(
        &self,
        s: &OdooSession,
        uid: i64,
        call: ModelCall<'_>,
    ) -> Result<Value, OdooCallError> {
        let operation = format!("{}/{}", call.model, call.method);
        let params = vec![
            json!(s.database),
            json!(uid),
            json!(s.password.expose_secret()),
            json!(call.model),
            json!(call.method),
            Value::Array(call.args),
            call.kwargs,
        ];
        self.call(rpc_request(
            &s.url,
            "object",
            "execute_kw",
            params,
            call.idempotent,
            operation,
        ))
        .await
    }
}

impl OdooClient {
    /// `model.method(*args, **kwargs)` over JSON-2: the positional arguments become the
    /// method's named arguments ([`json2::named_args`]).
    pub async fn execute_json2(
        &self,
        s: &OdooSession,
        call: ModelCall<'_>,
    ) -> Result<Value, OdooCallError> {
        let key = s.api_key.as_ref().ok_or(OdooCallError::NoApiKey)?;
        let body = json2::named_args(call.method, call.args, call.kwargs)
            .map_err(OdooCallError::Invalid)?;
        let req = json2::request(
            &s.url,
            &s.database,
            key.expose_secret(),
            call.model,
            call.method,
            &body,
            call.idempotent,
        );
        let resp = self.upstream.send(&req).await?;
        let status = resp.status.as_u16();
        if resp.status.is_success() {
            return serde_json::from_slice(&resp.body)
                .map_err(|e| OdooCallError::Protocol(e.to_string()));
        }
        match serde_json::from_slice::<OdooJson2Error>(&resp.body) {
            Ok(err) if !err.name.is_empty() => match err.fault(status) {
                // An unclassified server-side failure (a lost database connection...) may or
                // may not have applied the call: report it as the HTTP failure it is.
                OdooFault::Other(_) if status >= 500 => Err(UpstreamError::Status {
                    upstream: "odoo".into(),
                    status,
                }
                .into()),
                fault => Err(OdooCallError::Fault(fault)),
            },
            // Odoo's HTML 404: no such route (before 19) or no such database.
            _ if status == 404 => Err(OdooCallError::NoJson2),
            _ => Err(UpstreamError::Status {
                upstream: "odoo".into(),
                status,
            }
            .into()),
        }
    }
}

/// What the caller is told about a failed Odoo call.
pub fn service_error(e: OdooCallError, url: &str) -> ServiceError {
    let err = |code, msg: String| ServiceError::new("odoo", code, msg);
    match e {
        OdooCallError::Fault(OdooFault::AccessDenied) => err(
            ErrorCode::InvalidCredentials,
            "Odoo refused the connection's credentials".into(),
        )
        .suggest("Check the Odoo username and password (or API key) of this connection"),
        OdooCallError::Fault(OdooFault::ApiKeyRefused) => err(
            ErrorCode::InvalidCredentials,
            "Odoo refused the connection's API key: it is wrong, revoked or expired (Odoo 19 API keys expire, three months after they are made at most)".into(),
        )
        .suggest("Make a new API key in Odoo (Preferences > Account Security > New API Key) and PATCH the connection's credentials.api_key"),
        OdooCallError::Fault(OdooFault::Forbidden(m)) => err(
            ErrorCode::PermissionDenied,
            format!("Odoo does not let the connection's user do this: {m}"),
        )
        .suggest("Give the connection's Odoo user the rights this needs (Sales, Invoicing, Inventory or Employees), or connect as a user who has them"),
        OdooCallError::Fault(OdooFault::Transient(m)) => {
            tracing::warn!(odoo_error = %m, "odoo reported a transient database failure");
            err(
                ErrorCode::UpstreamUnavailable,
                "Odoo could not complete the request for now (a database failure it rolled back)"
                    .into(),
            )
            .suggest("Retry; if it persists, check the Odoo server's database")
        }
        OdooCallError::Fault(OdooFault::UnknownModel(m)) => err(
            ErrorCode::UpstreamRejected,
            format!("Odoo has no model '{m}'"),
        )
        .suggest("Install the Odoo app that provides it (CRM for crm.lead)"),
        OdooCallError::Fault(OdooFault::UnknownDatabase(m)) => {
            err(ErrorCode::UpstreamRejected, format!("Odoo: {m}"))
                .suggest("Check the connection's database name")
        }
        OdooCallError::Fault(OdooFault::Missing(m)) => {
            err(ErrorCode::NotFound, format!("Odoo: {m}"))
        }
        OdooCallError::Fault(OdooFault::Rejected(m)) => err(
            ErrorCode::UpstreamRejected,
            format!("Odoo rejected the request: {m}"),
        )
        .suggest("Correct the fields Odoo named and retry"),
        OdooCallError::Fault(OdooFault::Other(m)) => {
            tracing::warn!(odoo_error = %m, "unclassified odoo error");
            err(ErrorCode::UpstreamRejected, "Odoo reported an error".into())
                .suggest("See the Odoo server log for details")
        }
        OdooCallError::Upstream(UpstreamError::Connect { .. }) => err(
            ErrorCode::UpstreamUnavailable,
            format!("cannot reach Odoo at {url}"),
        )
        .suggest("Check the connection's URL and that the Odoo server is running"),
        OdooCallError::Upstream(UpstreamError::Timeout { after, .. }) => err(
            ErrorCode::ConnectionTimeout,
            format!("Odoo at {url} did not answer within {}s", after.as_secs()),
        )
        .suggest("Check that the Odoo server is running and reachable; retry later"),
        OdooCallError::Upstream(UpstreamError::RateLimited { retry_after, .. }) => err(
            ErrorCode::UpstreamRateLimited,
            "Odoo is rate limiting requests".into(),
        )
        .suggest("Retry later")
        .retry_after(retry_after),
        OdooCallError::Upstream(UpstreamError::Status { status, .. }) if status >= 500 => err(
            ErrorCode::UpstreamUnavailable,
            format!("Odoo at {url} answered HTTP {status}"),
        )
        .suggest("Retry later; check the Odoo server's health"),
        OdooCallError::Upstream(UpstreamError::Status { status, .. }) => err(
            ErrorCode::UpstreamRejected,
            format!("Odoo at {url} answered HTTP {status}; is this an Odoo server?"),
        )
        .suggest("Check the connection's URL (the server root, without /web or /jsonrpc)"),
        OdooCallError::Upstream(UpstreamError::TooLarge { limit, .. }) => err(
            ErrorCode::UpstreamRejected,
            format!("Odoo at {url} answered more than {} MiB", limit >> 20),
        )
        .suggest("Ask for fewer records at once (a smaller limit or page size)"),
        OdooCallError::Upstream(UpstreamError::AddressNotAllowed(refused)) => {
            address_not_allowed(&refused)
        }
        OdooCallError::Upstream(UpstreamError::Request(m)) => {
            err(ErrorCode::InvalidRequest, format!("invalid Odoo URL: {m}"))
        }
        OdooCallError::Protocol(_) => err(
            ErrorCode::UpstreamRejected,
            format!("{url} did not answer like an Odoo JSON-RPC server"),
        )
        .suggest("Check the connection's URL"),
        OdooCallError::NoJson2 => err(
            ErrorCode::UpstreamRejected,
            format!(
                "Odoo at {url} has no JSON-2 API for this database (it needs Odoo 19 or later)"
            ),
        )
        .suggest(
            "Check the connection's URL and database, or set its protocol setting to \"jsonrpc\"",
        ),
        OdooCallError::NoApiKey => err(
            ErrorCode::InvalidCredentials,
            "Odoo's JSON-2 API needs an API key and the connection has only a password".into(),
        )
        .suggest(
            "Add credentials.api_key to the connection, or set its protocol setting to \"jsonrpc\"",
        ),
        OdooCallError::Invalid(m) => err(ErrorCode::InvalidRequest, m),
    }
}
