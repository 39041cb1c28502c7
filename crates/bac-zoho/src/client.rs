//! The one way bac-zoho calls Zoho: a connection's token from the kit's token source (401 ->
//! refresh once -> retry), its data centre's API host (the `api_domain` Zoho's token answer
//! named, when it is that data centre's), the organisation's quota key, the call log, and
//! Zoho's error bodies read into the fleet's errors with Zoho's code kept.
use std::num::NonZeroU32;

use bac_connector::{AccessToken, Calls, TokenSource};
use bac_runtime::{
    connections::ConnectionRecord,
    upstream::{QuotaKey, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode, ServiceError,
};
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::dc::{DataCenter, DataCenters};

/// The CRM API version the fleet speaks (the one Zoho's current SDK speaks).
pub const CRM: &str = "/crm/v8";

/// Calls a minute a connection's organisation may make unless its settings say
/// (`calls_per_minute`): Zoho counts credits per organisation per rolling day (50,000 and
/// up on paid editions), about 35 a minute spread evenly; a burst of 100 stays well inside.
pub const DEFAULT_CALLS_PER_MINUTE: u32 = 100;

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("zoho", ErrorCode::InvalidRequest, msg)
}

/// The data centre of a stored connection.
pub fn data_center<'a>(
    dcs: &'a DataCenters,
    settings: &Value,
) -> Result<&'a DataCenter, ServiceError> {
    let key = settings
        .get("data_center")
        .and_then(Value::as_str)
        .unwrap_or("");
    dcs.get(key)
        .ok_or_else(|| bad(format!("connection has no known data centre ('{key}')")))
}

/// One request to Zoho, relative to the connection's API host.
#[derive(Debug, Clone)]
pub struct ZohoCall {
    pub method: http::Method,
    /// `/crm/v8/Leads`, `/crm/v8/Leads/123`.
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Short name for metrics and the call log (`crm/Leads/list`).
    pub operation: String,
}

impl ZohoCall {
    pub fn get(path: impl Into<String>, operation: impl Into<String>) -> ZohoCall {
        ZohoCall {
            method: http::Method::GET,
            path: path.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            operation: operation.into(),
        }
    }

    pub fn with_body(
        method: http::Method,
        path: impl Into<String>,
        body: Value,
        operation: impl Into<String>,
    ) -> ZohoCall {
        ZohoCall {
            body: Some(body),
            method,
            ..ZohoCall::get(path, operation)
        }
    }

    pub fn query(mut self, k: &str, v: impl Into<String>) -> ZohoCall {
        self.query.push((k.to_string(), v.into()));
        self
    }

    pub fn header(mut self, k: &str, v: impl Into<String>) -> ZohoCall {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

/// Zoho's answer: its status and JSON body (`Null` for a 204).
#[derive(Debug, Clone)]
pub struct ZohoAnswer {
    pub status: u16,
    pub body: Value,
}

#[derive(Clone)]
pub struct ZohoClient {
    dcs: DataCenters,
    tokens: TokenSource,
    http: UpstreamClient,
    calls: Calls,
}

impl ZohoClient {
    pub fn new(dcs: DataCenters, tokens: TokenSource, http: UpstreamClient, calls: Calls) -> Self {
        ZohoClient {
            dcs,
            tokens,
            http,
            calls,
        }
    }

    pub fn data_centers(&self) -> &DataCenters {
        &self.dcs
    }

    /// The API host a connection's calls go to: what Zoho's token answer said, if it is that
    /// data centre's, else the data centre's documented one.
    pub fn api(&self, rec: &ConnectionRecord, token: &AccessToken) -> Result<String, ServiceError> {
        let dc = data_center(&self.dcs, &rec.config)?;
        Ok(token
            .extra
            .get("api_domain")
            .filter(|d| self.dcs.is_api_of(dc.key, d))
            .cloned()
            .unwrap_or_else(|| dc.api.clone()))
    }

    /// Whose credits a connection's calls spend: its organisation, as Zoho counts them.
    fn quota(rec: &ConnectionRecord) -> QuotaKey {
        let dc = rec.setting("data_center");
        let org = match rec.setting("organization_id") {
            "" => rec.id.as_str(),
            org => org,
        };
        let per_minute = rec
            .config
            .get("calls_per_minute")
            .and_then(Value::as_f64)
            .map(|n| n as u64)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .unwrap_or(NonZeroU32::MIN.saturating_add(DEFAULT_CALLS_PER_MINUTE - 1));
        QuotaKey {
            key: format!("zoho/{dc}/{org}"),
            per_minute,
        }
    }

    /// Sends `call` for `rec` without writing the call log (the caller logs a larger
    /// operation, or the connection test does).
    pub async fn send(
        &self,
        rec: &ConnectionRecord,
        call: &ZohoCall,
    ) -> Result<ZohoAnswer, ServiceError> {
        self.tokens
            .authorized(rec, None, |token| async move {
                let api = self.api(rec, &token)?;
                let mut url = url::Url::parse(&format!("{api}{}", call.path))
                    .map_err(|e| ServiceError::internal("zoho", format!("url: {e}")))?;
                if !call.query.is_empty() {
                    url.query_pairs_mut().extend_pairs(call.query.iter());
                }
                let mut headers = vec![(
                    "authorization".to_string(),
                    format!("Zoho-oauthtoken {}", token.value.expose_secret()),
                )];
                headers.extend(call.headers.iter().cloned());
                let body = match &call.body {
                    Some(b) => {
                        headers.push(("content-type".into(), "application/json".into()));
                        Some(serde_json::to_vec(b).map_err(|e| ServiceError::internal("zoho", e))?)
                    }
                    None => None,
                };
                let resp = self
                    .http
                    .send(&UpstreamRequest {
                        method: call.method.clone(),
                        url: url.to_string(),
                        headers,
                        body,
                        idempotent: call.method == http::Method::GET,
                        operation: call.operation.clone(),
                        quota: Some(Self::quota(rec)),
                    })
                    .await
                    .map_err(upstream_error)?;
                let status = resp.status.as_u16();
                let body: Value = if resp.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
                };
                if !resp.status.is_success() {
                    return Err(zoho_error(status, &body));
                }
                Ok(ZohoAnswer { status, body })
            })
            .await
    }

    /// [`ZohoClient::send`] recorded in the call log as `operation`.
    pub async fn call(
        &self,
        rec: &ConnectionRecord,
        call: &ZohoCall,
    ) -> Result<ZohoAnswer, ServiceError> {
        let op = call.operation.clone();
        self.calls.tracked(rec, &op, self.send(rec, call)).await
    }
}

/// The upstream client's failures as the fleet's errors.
pub fn upstream_error(e: UpstreamError) -> ServiceError {
    match e {
        UpstreamError::RateLimited { retry_after, .. } => ServiceError::new(
            "zoho",
            ErrorCode::UpstreamRateLimited,
            "Zoho is limiting this organisation's API calls (its API credits or concurrency)",
        )
        .suggest(match retry_after {
            Some(d) => format!(
                "Retry after {} seconds, when Zoho's window resets",
                d.as_secs().max(1)
            ),
            None => "Retry after Zoho's window resets".to_string(),
        }),
        UpstreamError::Timeout { .. } => ServiceError::new(
            "zoho",
            ErrorCode::ConnectionTimeout,
            "Zoho did not answer in time",
        ),
        UpstreamError::AddressNotAllowed(r) => {
            ServiceError::new("zoho", ErrorCode::UpstreamAddressNotAllowed, r.to_string())
        }
        other => ServiceError::new("zoho", ErrorCode::UpstreamUnavailable, other.to_string()),
    }
}

/// Zoho's error body (`{"code", "message", "details", "status": "error"}`, at the top or as
/// the first entry of `data`) as the fleet's error, Zoho's code kept as `upstream_code` and
/// the field it names in the message.
pub fn zoho_error(status: u16, body: &Value) -> ServiceError {
    let e = if body.get("code").is_some() {
        body
    } else {
        body.get("data")
            .and_then(|d| d.get(0))
            .unwrap_or(&Value::Null)
    };
    let code = e["code"].as_str().unwrap_or("");
    let message = e["message"].as_str().unwrap_or("");
    let mut said = if code.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("{code}: {message}")
    };
    let details = &e["details"];
    if let Some(field) = details["api_name"].as_str() {
        said.push_str(&format!(" (field {field}"));
        if let Some(t) = details["expected_data_type"].as_str() {
            said.push_str(&format!(", expected {t}"));
        }
        said.push(')');
    } else if let Some(param) = details["param_name"].as_str() {
        said.push_str(&format!(" (parameter {param})"));
    }
    let err = match (status, code) {
        (401, "OAUTH_SCOPE_MISMATCH") => ServiceError::new(
            "zoho",
            ErrorCode::PermissionDenied,
            format!("Zoho refused the call for a missing scope ({said})"),
        )
        .suggest("Authorise the connection again with the scopes it needs (config.scopes)"),
        (401, _) => ServiceError::new(
            "zoho",
            ErrorCode::InvalidCredentials,
            format!("Zoho refused the access token ({said})"),
        ),
        (403, _) => ServiceError::new("zoho", ErrorCode::PermissionDenied, format!("Zoho: {said}"))
            .suggest("The Zoho user who authorised the connection lacks this permission in Zoho"),
        (429, _) => ServiceError::new(
            "zoho",
            ErrorCode::UpstreamRateLimited,
            format!("Zoho: {said}"),
        )
        .suggest("Retry after Zoho's window resets"),
        (s, _) if s >= 500 => ServiceError::new(
            "zoho",
            ErrorCode::UpstreamUnavailable,
            format!("Zoho: {said}"),
        ),
        _ => ServiceError::new("zoho", ErrorCode::UpstreamRejected, format!("Zoho: {said}")),
    };
    err.upstream_code(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zoho_errors_keep_their_code_and_field() {
        let body = json!({"data": [{"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "Last_Name"},
                                    "message": "required field not found", "status": "error"}]});
        let e = zoho_error(400, &body);
        assert_eq!(e.code, ErrorCode::UpstreamRejected);
        assert_eq!(e.upstream_code.as_deref(), Some("MANDATORY_NOT_FOUND"));
        assert!(e.message.contains("Last_Name"), "{}", e.message);
        let e = zoho_error(
            401,
            &json!({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token", "status": "error"}),
        );
        assert_eq!(e.code, ErrorCode::InvalidCredentials);
        let e = zoho_error(
            429,
            &json!({"code": "TOO_MANY_REQUESTS", "details": {}, "message": "x", "status": "error"}),
        );
        assert_eq!(e.code, ErrorCode::UpstreamRateLimited);
        assert_eq!(
            zoho_error(502, &Value::Null).code,
            ErrorCode::UpstreamUnavailable
        );
    }
}
