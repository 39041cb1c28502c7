//! The gRPC face of bac-odoo's domain: `bac.odoo.v1.OdooService` (leads, sale orders,
//! invoices, products, stock, employees, `ExecuteKw`). `IntegrationService` is the kit's
//! (`bac_connector::IntegrationApi` with [`crate::connector::OdooConnector`]).
use std::collections::HashMap;

use bac_proto::{
    common::v1::{PageInfo, PageRequest},
    odoo::v1::{
        odoo_service_server::OdooService, CreateInvoiceRequest, CreateLeadRequest,
        CreateSaleOrderRequest, Employee, ExecuteKwRequest, ExecuteKwResponse, GetLeadRequest,
        Invoice, Lead, ListEmployeesRequest, ListEmployeesResponse, ListInvoicesRequest,
        ListInvoicesResponse, ListLeadsRequest, ListLeadsResponse, ListProductsRequest,
        ListProductsResponse, ListSaleOrdersRequest, ListSaleOrdersResponse, ListStockRequest,
        ListStockResponse, PartnerRef, Product, SaleOrder, SaleOrderLine, StockQuant,
        UpdateLeadRequest,
    },
};
use bac_runtime::db::Pool;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

mod domain;

use crate::{
    client::transformers::{
        self as tf, lead_from_record, lead_to_vals, priority_to_odoo, LEAD_FIELDS,
    },
    mirror::{self, Op, LEAD_MODEL},
    remote::{Remote, PROTOCOLS},
};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 200;

#[derive(Clone)]
pub struct OdooApi {
    remote: Remote,
    /// The one write path of synced entities (leads): adapter, then mirror and event.
    engine: bac_sync::SyncEngine,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("odoo", ErrorCode::InvalidRequest, msg)
}

impl OdooApi {
    pub fn new(remote: Remote, engine: bac_sync::SyncEngine) -> Self {
        OdooApi { remote, engine }
    }

    fn db(&self) -> &Pool {
        self.remote.db()
    }

    fn connections(&self) -> &ConnectionStore {
        self.remote.connections()
    }
}

/// `limit`/`offset` of a list request: 20 by default, at most 200.
fn page_of(page: Option<PageRequest>) -> Result<(u32, u32), ServiceError> {
    let page = page.unwrap_or_default();
    let limit = match page.limit {
        0 => DEFAULT_PAGE,
        n if n > MAX_PAGE => return Err(bad(format!("limit must be at most {MAX_PAGE}"))),
        n => n,
    };
    Ok((limit, page.offset))
}

fn page_info(limit: u32, offset: u32, total: u64) -> Option<PageInfo> {
    let next = u64::from(offset) + u64::from(limit);
    Some(PageInfo {
        limit,
        offset,
        total,
        next_offset: (next < total).then(|| u32::try_from(next).unwrap_or(u32::MAX)),
    })
}

/// The intent id of a create (the kit's rules).
fn intent_of(given: &str) -> Result<(String, bool), ServiceError> {
    bac_connector::intent_of("odoo", given)
}

/// The models `ExecuteKw` may reach without an `allowed_models` setting: the synced ones.
pub const DEFAULT_ALLOWED_MODELS: &[&str] = &[
    "crm.lead",
    "res.partner",
    "sale.order",
    "account.move",
    "product.product",
    "stock.quant",
    "hr.employee",
];

/// The methods `ExecuteKw` may call (`unlink` only with `allow_unlink: true`).
pub const EXECUTE_METHODS: &[&str] = &[
    "search",
    "search_read",
    "read",
    "search_count",
    "fields_get",
    "name_search",
    "create",
    "write",
];

/// Whether the connection's allow-list permits `model.method` through `ExecuteKw`.
pub fn check_execute(
    rec: &ConnectionRecord,
    model: &str,
    method: &str,
) -> Result<(), ServiceError> {
    let denied = |msg: String, suggestion: &str| {
        ServiceError::new("odoo", ErrorCode::PermissionDenied, msg).suggest(suggestion)
    };
    let allowed: Vec<String> = match rec.config.get("allowed_models").and_then(Value::as_array) {
        Some(list) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        None => DEFAULT_ALLOWED_MODELS
            .iter()
            .map(|m| m.to_string())
            .collect(),
    };
    if !allowed.iter().any(|m| m == model) {
        return Err(denied(
            format!("model '{model}' is not in this connection's allowed_models ({})", allowed.join(", ")),
            "Add the model to the connection's config.allowed_models (PATCH /api/v1/integrations/connections/{id})",
        ));
    }
    if method == "unlink" {
        if rec.config.get("allow_unlink") == Some(&Value::Bool(true)) {
            return Ok(());
        }
        return Err(denied(
            format!("method 'unlink' on '{model}' needs the connection setting allow_unlink: true"),
            "Set config.allow_unlink to true on the connection if deleting records is intended",
        ));
    }
    if !EXECUTE_METHODS.contains(&method) {
        return Err(denied(
            format!(
                "method '{method}' on '{model}' is not allowed through execute_kw (allowed: {}, and unlink with allow_unlink)",
                EXECUTE_METHODS.join(", ")
            ),
            "Use one of the allowed methods",
        ));
    }
    Ok(())
}

/// An Odoo model name: dotted lowercase identifiers (`res.partner`, `x_custom.model`).
pub fn valid_model_name(m: &str) -> bool {
    !m.is_empty()
        && m.len() <= 128
        && m.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        && m.starts_with(|c: char| c.is_ascii_lowercase())
}

/// An Odoo field name (`ref`, `x_bac_intent_id`).
pub fn valid_field_name(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 64
        && f.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && f.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

fn validate_partner(p: Option<&PartnerRef>) -> Result<PartnerRef, ServiceError> {
    let p = p.cloned().unwrap_or_default();
    if p.id < 0 {
        return Err(bad("partner.id must be a positive Odoo id"));
    }
    if p.id == 0 && p.name.trim().is_empty() {
        return Err(bad(
            "partner is required: give partner.id, or partner.name (and partner.email)",
        ));
    }
    if p.name.len() > 512 {
        return Err(bad("partner.name is longer than 512 characters"));
    }
    if !p.email.is_empty() && !p.email.contains('@') {
        return Err(bad("partner.email is not an email address"));
    }
    Ok(p)
}

/// Lines of an order or invoice: at least one, each with a product or a description, a
/// positive quantity and a finite price.
fn validate_lines<'a>(
    lines: impl ExactSizeIterator<Item = (i64, &'a str, f64, Option<f64>)>,
) -> Result<(), ServiceError> {
    if lines.len() == 0 {
        return Err(bad("lines must hold at least one line"));
    }
    if lines.len() > 500 {
        return Err(bad("lines holds more than 500 lines"));
    }
    for (i, (product_id, description, quantity, price)) in lines.enumerate() {
        if product_id < 0 {
            return Err(bad(format!(
                "lines[{i}].product_id must be a positive Odoo id"
            )));
        }
        if product_id == 0 && description.trim().is_empty() {
            return Err(bad(format!("lines[{i}] needs a product_id or a name")));
        }
        if !quantity.is_finite() || quantity <= 0.0 {
            return Err(bad(format!(
                "lines[{i}].quantity must be a positive number"
            )));
        }
        if price.is_some_and(|p| !p.is_finite()) {
            return Err(bad(format!(
                "lines[{i}].price_unit must be a finite number"
            )));
        }
    }
    Ok(())
}

/// The lines of a sale order: the common checks, then Odoo's rule that every line but a
/// section or a note has a product.
fn validate_order_lines(lines: &[SaleOrderLine]) -> Result<(), ServiceError> {
    validate_lines(lines.iter().map(|l| {
        (
            l.product_id,
            l.description.as_str(),
            l.quantity,
            l.price_unit,
        )
    }))?;
    for (i, l) in lines.iter().enumerate() {
        match l.display_type.as_deref() {
            Some("line_section" | "line_note") => {
                if l.product_id != 0 {
                    return Err(bad(format!(
                        "lines[{i}] is a {} line: it takes no product_id",
                        l.display_type.as_deref().unwrap_or_default()
                    )));
                }
                if l.description.trim().is_empty() {
                    return Err(bad(format!("lines[{i}].name is the text of the line: give it")));
                }
            }
            Some(other) => {
                return Err(bad(format!(
                    "lines[{i}].display_type must be line_section or line_note, not {other:?}"
                )))
            }
            None if l.product_id == 0 => {
                return Err(bad(format!(
                    "lines[{i}] needs a product_id: Odoo requires a product on every sale order line \
                     (\"Missing required fields on accountable sale order line.\"); for a line of text give \
                     display_type \"line_note\" (or \"line_section\" for a section title)"
                )))
            }
            None => {}
        }
    }
    Ok(())
}

/// "YYYY-MM-DD" or empty.
fn validate_date(field: &str, v: &str) -> Result<(), ServiceError> {
    if v.is_empty() || chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        Ok(())
    } else {
        Err(bad(format!("{field} must be a date as YYYY-MM-DD")))
    }
}

fn validate_lead(lead: &Lead) -> Result<(), ServiceError> {
    if lead.name.trim().is_empty() {
        return Err(bad("name is required"));
    }
    if lead.name.len() > 512 {
        return Err(bad("name is longer than 512 characters"));
    }
    if priority_to_odoo(&lead.priority).is_none() {
        return Err(bad(format!(
            "priority {:?} is not one of low, medium, high, very_high",
            lead.priority
        )));
    }
    if !lead.expected_revenue.is_finite() || lead.expected_revenue < 0.0 {
        return Err(bad("expected_revenue must be a non-negative number"));
    }
    if !lead.email.is_empty() && !lead.email.contains('@') {
        return Err(bad("email is not an email address"));
    }
    Ok(())
}

/// Checks a connection's settings and credentials; returns the settings as stored. The
/// gateway's catalog publishes the same rules as a JSON Schema (an e2e test keeps the two
/// in agreement).
pub fn validate_connection(
    config: &Value,
    secrets: &HashMap<String, String>,
) -> Result<Value, ServiceError> {
    let settings = validate_settings(config)?;
    validate_secrets(secrets)?;
    Ok(settings)
}

/// The settings an Odoo connection takes.
pub const SETTINGS: &[&str] = &[
    "url",
    "database",
    "username",
    "protocol",
    "allowed_models",
    "allow_unlink",
    "intent_fields",
    "sync_lookback_seconds",
];

/// `url` (http or https, no credentials in it), `database` and `username`; optional
/// `protocol` ("auto" | "jsonrpc" | "json2"), `allowed_models` (model names `ExecuteKw` may
/// reach), `allow_unlink` (boolean), `intent_fields` (model -> field holding intent ids) and
/// `sync_lookback_seconds` (how far before the newest change seen an incremental sync reads
/// again, 60 to 86,400; default [`crate::sync::DEFAULT_LOOKBACK_SECS`]).
pub fn validate_settings(config: &Value) -> Result<Value, ServiceError> {
    let field = |k: &str| -> Result<String, ServiceError> {
        match config.get(k) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Value::String(_)) | None => Err(bad(format!("config.{k} is required"))),
            Some(_) => Err(bad(format!("config.{k} must be a string"))),
        }
    };
    let url = field("url")?;
    let parsed = url::Url::parse(&url).map_err(|_| bad("config.url is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(bad(
            "config.url must be an http(s) URL such as https://mycompany.odoo.com",
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "config.url must not contain credentials; use credentials.password",
        ));
    }
    let database = field("database")?;
    let username = field("username")?;
    if let Some(extra) = config
        .as_object()
        .and_then(|o| o.keys().find(|k| !SETTINGS.contains(&k.as_str())))
    {
        return Err(bad(format!(
            "config.{extra} is not an Odoo setting ({}); secrets go in credentials",
            SETTINGS.join(", ")
        )));
    }
    let mut out =
        json!({ "url": url.trim_end_matches('/'), "database": database, "username": username });
    match config.get("protocol") {
        None => {}
        Some(Value::String(p)) if PROTOCOLS.contains(&p.as_str()) => out["protocol"] = json!(p),
        Some(_) => {
            return Err(bad(format!(
                "config.protocol must be one of: {}",
                PROTOCOLS.join(", ")
            )))
        }
    }
    match config.get("allowed_models") {
        None => {}
        Some(Value::Array(models)) => {
            if models.len() > 500 {
                return Err(bad("config.allowed_models holds more than 500 models"));
            }
            for (i, m) in models.iter().enumerate() {
                if !m.as_str().is_some_and(valid_model_name) {
                    return Err(bad(format!(
                        "config.allowed_models[{i}] is not an Odoo model name such as res.partner"
                    )));
                }
            }
            out["allowed_models"] = Value::Array(models.clone());
        }
        Some(_) => {
            return Err(bad(
                "config.allowed_models must be an array of Odoo model names",
            ))
        }
    }
    match config.get("allow_unlink") {
        None => {}
        Some(Value::Bool(b)) => out["allow_unlink"] = json!(b),
        Some(_) => return Err(bad("config.allow_unlink must be a boolean")),
    }
    match config.get("sync_lookback_seconds") {
        None => {}
        Some(v) if v.as_i64().is_some_and(|n| (60..=86_400).contains(&n)) => {
            out["sync_lookback_seconds"] = v.clone()
        }
        Some(_) => {
            return Err(bad(
                "config.sync_lookback_seconds must be a whole number of seconds from 60 to 86400",
            ))
        }
    }
    match config.get("intent_fields") {
        None => {}
        Some(Value::Object(map)) => {
            for (model, f) in map {
                if !valid_model_name(model) {
                    return Err(bad(format!(
                        "config.intent_fields.{model} is not an Odoo model name"
                    )));
                }
                if !f.as_str().is_some_and(valid_field_name) {
                    return Err(bad(format!(
                        "config.intent_fields.{model} must be an Odoo field name such as x_bac_intent_id"
                    )));
                }
            }
            out["intent_fields"] = Value::Object(map.clone());
        }
        Some(_) => {
            return Err(bad(
                "config.intent_fields must be an object of model name -> field name",
            ))
        }
    }
    Ok(out)
}

/// `password` or `api_key`, at least one of them non-empty.
pub fn validate_secrets(secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
    if secrets.keys().any(|k| k != "password" && k != "api_key") {
        return Err(bad("credentials accept password or api_key"));
    }
    if !secrets.values().any(|v| !v.is_empty()) {
        return Err(bad(
            "credentials.password or credentials.api_key is required",
        ));
    }
    Ok(())
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OdooSession;
    use secrecy::SecretString;

    fn validate_config(
        (config, secrets): (Value, HashMap<String, String>),
    ) -> Result<Value, ServiceError> {
        validate_connection(&config, &secrets)
    }

    fn conn_req(config: Value, secrets: &[(&str, &str)]) -> (Value, HashMap<String, String>) {
        (
            config,
            secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn connection_settings_are_validated() {
        let ok = json!({"url": "http://odoo:8069/", "database": "db", "username": "u"});
        assert_eq!(
            validate_config(conn_req(ok.clone(), &[("password", "p")])).unwrap()["url"],
            "http://odoo:8069"
        );
        assert!(validate_config(conn_req(ok.clone(), &[])).is_err());
        assert!(validate_config(conn_req(ok.clone(), &[("token", "p")])).is_err());
        let no_db = json!({"url": "http://odoo:8069", "username": "u"});
        let e = validate_config(conn_req(no_db, &[("password", "p")])).unwrap_err();
        assert!(e.message.contains("config.database"));
        let ftp = json!({"url": "ftp://odoo", "database": "d", "username": "u"});
        assert!(validate_config(conn_req(ftp, &[("password", "p")])).is_err());
        let secret_in_config =
            json!({"url": "http://o", "database": "d", "username": "u", "password": "p"});
        assert!(validate_config(conn_req(secret_in_config, &[("password", "p")])).is_err());
    }

    #[test]
    fn optional_settings_are_validated() {
        let base = || json!({"url": "http://o", "database": "d", "username": "u"});
        let with = |k: &str, v: Value| {
            let mut c = base();
            c[k] = v;
            validate_settings(&c)
        };
        assert_eq!(
            with("protocol", json!("json2")).unwrap()["protocol"],
            "json2"
        );
        assert!(with("protocol", json!("xmlrpc")).is_err());
        assert!(with("allowed_models", json!(["res.partner", "x_thing.line"])).is_ok());
        assert!(with("allowed_models", json!(["Res.Partner"])).is_err());
        assert!(with("allowed_models", json!("res.partner")).is_err());
        assert!(with("allow_unlink", json!(true)).is_ok());
        assert!(with("allow_unlink", json!("yes")).is_err());
        assert!(with("intent_fields", json!({"hr.employee": "x_bac_intent_id"})).is_ok());
        assert!(with("intent_fields", json!({"hr.employee": "bad field"})).is_err());
        assert!(with("intent_fields", json!(["ref"])).is_err());
        assert!(validate_settings(&base())
            .unwrap()
            .get("protocol")
            .is_none());
    }

    #[test]
    fn execute_kw_respects_the_allow_list() {
        let rec = |config: Value| ConnectionRecord {
            id: "con_1".into(),
            tenant_id: "t".into(),
            name: "x".into(),
            config,
            secret_fields: vec![],
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        };
        let default = rec(json!({}));
        assert!(check_execute(&default, "res.partner", "search_read").is_ok());
        let e = check_execute(&default, "res.users", "read").unwrap_err();
        assert_eq!(e.code, ErrorCode::PermissionDenied);
        assert!(e.message.contains("res.users") && e.message.contains("allowed_models"));
        let e = check_execute(&default, "crm.lead", "unlink").unwrap_err();
        assert!(e.message.contains("allow_unlink"));
        assert!(check_execute(&default, "crm.lead", "sudo").is_err());
        let custom = rec(json!({"allowed_models": ["res.users"], "allow_unlink": true}));
        assert!(check_execute(&custom, "res.users", "unlink").is_ok());
        assert!(check_execute(&custom, "crm.lead", "read").is_err());
    }

    #[test]
    fn a_uid_is_bound_to_url_database_user_and_password() {
        let s = |url: &str, db: &str, user: &str, pw: &str| OdooSession {
            url: url.into(),
            database: db.into(),
            username: user.into(),
            password: SecretString::from(pw.to_string()),
            api_key: None,
        };
        let base = crate::remote::session_fingerprint(&s("http://o", "d", "u", "p"));
        assert_eq!(
            base,
            crate::remote::session_fingerprint(&s("http://o", "d", "u", "p"))
        );
        for other in [
            s("http://x", "d", "u", "p"),
            s("http://o", "x", "u", "p"),
            s("http://o", "d", "x", "p"),
            s("http://o", "d", "u", "x"),
        ] {
            assert_ne!(base, crate::remote::session_fingerprint(&other));
        }
    }

    #[test]
    fn leads_are_validated_before_odoo_sees_them() {
        let mut lead = Lead {
            name: "Deal".into(),
            priority: "high".into(),
            ..Default::default()
        };
        assert!(validate_lead(&lead).is_ok());
        lead.priority = "urgent".into();
        assert!(validate_lead(&lead).is_err());
        lead.priority = String::new();
        lead.name = "  ".into();
        assert!(validate_lead(&lead).is_err());
    }
}
