//! Odoo's external JSON-RPC API (`POST <url>/jsonrpc`): `common.version`,
//! `common.authenticate` and `object.execute_kw`. Requests are built as values here and sent by
//! the shared upstream client (quota, retries, deadline); the wire types live in
//! [`transformers`].
pub mod transformers;

use std::sync::atomic::{AtomicU64, Ordering};

use bac_runtime::{
    error::{ErrorCode, ServiceError},
    upstream::{UpstreamClient, UpstreamError, UpstreamRequest},
};
use http::Method;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use transformers::{OdooFault, OdooRpcParams, OdooRpcRequest, OdooRpcResponse};

/// Where and as whom to call Odoo. The password may be an Odoo API key.
pub struct OdooSession {
    pub url: String,
    pub database: String,
    pub username: String,
    pub password: SecretString,
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
}

#[derive(Clone)]
pub struct OdooClient {
    upstream: UpstreamClient,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

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
    }
}

impl OdooClient {
    pub fn new(upstream: UpstreamClient) -> Self {
        OdooClient { upstream }
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

    /// `common.version`: needs no credentials; the connection test starts with it.
    pub async fn version(&self, url: &str) -> Result<Value, OdooCallError> {
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

/// What the caller is told about a failed Odoo call.
pub fn service_error(e: OdooCallError, url: &str) -> ServiceError {
    let err = |code, msg: String| ServiceError::new("odoo", code, msg);
    match e {
        OdooCallError::Fault(OdooFault::AccessDenied) => err(
            ErrorCode::InvalidCredentials,
            "Odoo refused the connection's credentials".into(),
        )
        .suggest("Check the Odoo username and password (or API key) of this connection"),
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
        OdooCallError::Upstream(UpstreamError::RateLimited { .. }) => err(
            ErrorCode::UpstreamRateLimited,
            "Odoo is rate limiting requests".into(),
        )
        .suggest("Retry later"),
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
        OdooCallError::Upstream(UpstreamError::Request(m)) => {
            err(ErrorCode::InvalidRequest, format!("invalid Odoo URL: {m}"))
        }
        OdooCallError::Protocol(_) => err(
            ErrorCode::UpstreamRejected,
            format!("{url} did not answer like an Odoo JSON-RPC server"),
        )
        .suggest("Check the connection's URL"),
    }
}
