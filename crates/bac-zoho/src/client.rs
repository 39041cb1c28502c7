//! The one way bac-zoho calls Zoho: a connection's token from the kit's token source (401 ->
//! refresh once -> retry), its data centre's API host (the `api_domain` Zoho's token answer
//! named, when it is that data centre's), the organisation's quota key, the call log, and
//! Zoho's error bodies read into the fleet's errors with Zoho's code kept.
use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, Mutex},
};

use bac_connector::{AccessToken, Calls, TokenSource};
use bac_runtime::{
    connections::ConnectionRecord,
    upstream::{QuotaKey, UpstreamClient, UpstreamError, UpstreamRequest},
    ErrorCode, ServiceError,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

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

/// The Zoho product a call is for: it picks the host, the organisation parameter each
/// product wants, and whose credits the call spends (Zoho counts them per product).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Product {
    #[default]
    Crm,
    /// Books: `organization_id` on every call.
    Books,
    /// Inventory: the same organisations as Books.
    Inventory,
    /// Desk: its own host, the `orgId` header.
    Desk,
    /// People: its own host.
    People,
    /// Mail: its own host, paths under the account id.
    Mail,
}

impl Product {
    pub fn name(self) -> &'static str {
        match self {
            Product::Crm => "crm",
            Product::Books => "books",
            Product::Inventory => "inventory",
            Product::Desk => "desk",
            Product::People => "people",
            Product::Mail => "mail",
        }
    }
}

/// One request to Zoho, relative to its product's host.
#[derive(Debug, Clone)]
pub struct ZohoCall {
    pub product: Product,
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
            product: Product::Crm,
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

    pub fn on(mut self, product: Product) -> ZohoCall {
        self.product = product;
        self
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

/// Organisation and account ids a connection's settings leave out, learnt from Zoho once
/// per connection (Books' default organisation, Desk's, the Mail account).
type Learnt = Arc<Mutex<HashMap<(String, Product), String>>>;

#[derive(Clone)]
pub struct ZohoClient {
    dcs: DataCenters,
    tokens: TokenSource,
    http: UpstreamClient,
    calls: Calls,
    learnt: Learnt,
}

impl ZohoClient {
    pub fn new(dcs: DataCenters, tokens: TokenSource, http: UpstreamClient, calls: Calls) -> Self {
        ZohoClient {
            dcs,
            tokens,
            http,
            calls,
            learnt: Learnt::default(),
        }
    }

    /// The organisation (Books, Inventory, Desk) or account (Mail) a call of `product`
    /// names: the connection's setting, else the one Zoho lists as the default (or the only
    /// one), asked once per connection.
    pub async fn org_of(
        &self,
        rec: &ConnectionRecord,
        product: Product,
    ) -> Result<String, ServiceError> {
        let (setting, call, list_key, id_key, default_key) = match product {
            Product::Books | Product::Inventory => (
                "organization_id",
                ZohoCall::get(
                    if product == Product::Books {
                        "/books/v3/organizations"
                    } else {
                        "/inventory/v1/organizations"
                    },
                    format!("{}/organizations", product.name()),
                ),
                "organizations",
                "organization_id",
                "is_default_org",
            ),
            Product::Desk => (
                "desk_org_id",
                ZohoCall::get("/api/v1/organizations", "desk/organizations"),
                "data",
                "id",
                "isDefault",
            ),
            Product::Mail => (
                "mail_account_id",
                ZohoCall::get("/api/accounts", "mail/accounts"),
                "data",
                "accountId",
                "",
            ),
            Product::Crm | Product::People => return Ok(String::new()),
        };
        if !rec.setting(setting).is_empty() {
            return Ok(rec.setting(setting).to_string());
        }
        let key = (rec.id.clone(), product);
        if let Some(v) = self.learnt.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(v);
        }
        let answer = self.call(rec, &call.on(product)).await?;
        let list = answer.body[list_key]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let chosen = list
            .iter()
            .find(|o| !default_key.is_empty() && o[default_key] == Value::Bool(true))
            .or(list
                .first()
                .filter(|_| list.len() == 1 || default_key.is_empty()));
        let id = chosen
            .and_then(|o| match &o[id_key] {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .ok_or_else(|| {
                bad(format!(
                    "Zoho {} lists no default organisation for this user; set config.{setting}",
                    product.name()
                ))
                .suggest(format!(
                    "PATCH the connection with config.{setting} (one of: {})",
                    list.iter()
                        .map(|o| o[id_key].to_string().trim_matches('"').to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
        if let Ok(mut m) = self.learnt.lock() {
            m.insert(key, id.clone());
        }
        Ok(id)
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

    /// The base URL a call of `product` goes to.
    fn base(
        &self,
        rec: &ConnectionRecord,
        token: &AccessToken,
        product: Product,
    ) -> Result<String, ServiceError> {
        let dc = data_center(&self.dcs, &rec.config)?;
        Ok(match product {
            Product::Crm | Product::Books | Product::Inventory => self.api(rec, token)?,
            Product::Desk => dc.desk.clone(),
            Product::People => dc.people.clone(),
            Product::Mail => dc.mail.clone(),
        })
    }

    /// Whose credits a connection's calls spend: its organisation's, per product, as Zoho
    /// counts them (CRM's bucket keeps its name `zoho/<dc>/<org>`).
    fn quota(rec: &ConnectionRecord, product: Product) -> QuotaKey {
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
        let key = match product {
            Product::Crm => format!("zoho/{dc}/{org}"),
            p => format!("zoho/{dc}/{org}/{}", p.name()),
        };
        QuotaKey { key, per_minute }
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
                let api = self.base(rec, &token, call.product)?;
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
                        quota: Some(Self::quota(rec, call.product)),
                    })
                    .await
                    .map_err(upstream_error)?;
                let status = resp.status.as_u16();
                let body: Value = if resp.body.is_empty() {
                    Value::Null
                } else {
                    serde_json::from_slice(&resp.body).unwrap_or(Value::Null)
                };
                if !resp.status.is_success() || people_failed(&body) {
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
        })
        .retry_after(retry_after),
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

/// Whether a People answer (HTTP 200 whatever happened) reports a failure other than an
/// empty result.
fn people_failed(body: &Value) -> bool {
    let r = &body["response"];
    r["status"] == json!(1) && r["errors"]["code"] != json!(7024)
}

/// What a Zoho error body says, whichever product's dialect: `(code, message, field)`.
/// CRM: `{"code", "message", "details": {"api_name"}}` at the top or as `data[0]`; Books and
/// Inventory: `{"code": 1002, "message"}`; Desk: `{"errorCode", "message", "errors":
/// [{"fieldName"}]}`; People: `{"response": {"errors": {"code", "message"}}}`; Mail:
/// `{"status": {"description"}, "data": {"errorCode", "moreInfo"}}`.
fn error_parts(body: &Value) -> (String, String, String) {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if let Some(code) = body.get("errorCode") {
        let field = body["errors"][0]["fieldName"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches('/')
            .to_string();
        return (text(code), text(&body["message"]), field);
    }
    if let Some(errors) = body["response"].get("errors") {
        return (
            text(&errors["code"]),
            text(&errors["message"]),
            String::new(),
        );
    }
    if body["status"].is_object() && body["data"].is_object() {
        let d = &body["data"];
        let message = [text(&d["moreInfo"]), text(&body["status"]["description"])]
            .into_iter()
            .find(|m| !m.is_empty())
            .unwrap_or_default();
        return (text(&d["errorCode"]), message, String::new());
    }
    let e = if body.get("code").is_some() {
        body
    } else {
        body.get("data")
            .and_then(|d| d.get(0))
            .unwrap_or(&Value::Null)
    };
    let details = &e["details"];
    let field = match (details["api_name"].as_str(), details["param_name"].as_str()) {
        (Some(f), _) => {
            let mut f = f.to_string();
            if let Some(t) = details["expected_data_type"].as_str() {
                f.push_str(&format!(", expected {t}"));
            }
            f
        }
        (None, Some(p)) => format!("parameter {p}"),
        _ => String::new(),
    };
    (text(&e["code"]), text(&e["message"]), field)
}

/// Zoho's error body, in any product's dialect, as the fleet's error: Zoho's code kept as
/// `upstream_code` and the field it names in the message.
pub fn zoho_error(status: u16, body: &Value) -> ServiceError {
    let (code, message, field) = error_parts(body);
    let mut said = if code.is_empty() && message.is_empty() {
        format!("HTTP {status}")
    } else if code.is_empty() {
        message
    } else {
        format!("{code}: {message}")
    };
    if !field.is_empty() {
        said.push_str(&format!(" (field {field})"));
    }
    let scope = matches!(
        code.as_str(),
        "OAUTH_SCOPE_MISMATCH" | "SCOPE_MISMATCH" | "INVALID_OAUTHSCOPE" | "7219"
    );
    let err = match status {
        401 | 200 if scope => ServiceError::new(
            "zoho",
            ErrorCode::PermissionDenied,
            format!("Zoho refused the call for a missing scope ({said})"),
        )
        .suggest("Authorise the connection again with the scopes it needs (config.scopes)"),
        401 => ServiceError::new(
            "zoho",
            ErrorCode::InvalidCredentials,
            format!("Zoho refused the access token ({said})"),
        ),
        403 => ServiceError::new("zoho", ErrorCode::PermissionDenied, format!("Zoho: {said}"))
            .suggest("The Zoho user who authorised the connection lacks this permission in Zoho"),
        404 => ServiceError::new("zoho", ErrorCode::NotFound, format!("Zoho: {said}")),
        429 => ServiceError::new(
            "zoho",
            ErrorCode::UpstreamRateLimited,
            format!("Zoho: {said}"),
        )
        .suggest("Retry after Zoho's window resets"),
        s if s >= 500 => ServiceError::new(
            "zoho",
            ErrorCode::UpstreamUnavailable,
            format!("Zoho: {said}"),
        ),
        _ => ServiceError::new("zoho", ErrorCode::UpstreamRejected, format!("Zoho: {said}")),
    };
    err.upstream_code(&code)
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
        let e = zoho_error(
            404,
            &json!({"code": 1002, "message": "Invoice does not exist."}),
        );
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(e.upstream_code.as_deref(), Some("1002"));
        let e = zoho_error(
            422,
            &json!({"errorCode": "INVALID_DATA", "message": "An invalid value has been passed in the input.",
                    "errors": [{"fieldName": "/departmentId", "errorType": "invalid"}]}),
        );
        assert!(e.message.contains("departmentId"), "{}", e.message);
        assert_eq!(e.upstream_code.as_deref(), Some("INVALID_DATA"));
        let people = json!({"response": {"errors": {"code": 7016, "message": "Invalid limit"}, "status": 1}});
        assert!(people_failed(&people));
        assert_eq!(
            zoho_error(200, &people).upstream_code.as_deref(),
            Some("7016")
        );
        assert!(!people_failed(
            &json!({"response": {"errors": {"code": 7024}, "status": 1}})
        ));
        let mail = json!({"status": {"code": 401, "description": "Invalid Input"},
                          "data": {"errorCode": "INVALID_OAUTHSCOPE", "moreInfo": "scope"}});
        assert_eq!(zoho_error(401, &mail).code, ErrorCode::PermissionDenied);
    }
}
