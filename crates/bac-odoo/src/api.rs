//! The gRPC face of bac-odoo: `bac.odoo.v1.OdooService` (leads) and the shared
//! `bac.integration.v1.IntegrationService` (connections and their test).
use std::{collections::HashMap, time::Instant};

use bac_proto::{
    common::v1::PageInfo,
    integration::v1::{
        integration_service_server::IntegrationService, Conflict, Connection,
        CreateConnectionRequest, DeleteConnectionRequest, DeleteConnectionResponse,
        GetConnectionRequest, GetStatusRequest, IntegrationStatus, ListConflictsRequest,
        ListConflictsResponse, ListConnectionsRequest, ListConnectionsResponse,
        ListSyncRunsRequest, ListSyncRunsResponse, ResolveConflictRequest, TestConnectionRequest,
        TestConnectionResponse, TriggerSyncRequest, TriggerSyncResponse, UpdateConnectionRequest,
        UpdateConnectionResponse,
    },
    odoo::v1::{
        odoo_service_server::OdooService, CreateLeadRequest, Lead, ListLeadsRequest,
        ListLeadsResponse,
    },
};
use bac_runtime::db::Pool;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    ErrorCode, RequestContext, ServiceError,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use tonic::{Request, Response, Status};

mod domain;
mod integration;

use crate::{
    calls,
    client::{
        service_error,
        transformers::{lead_from_record, lead_to_vals, priority_to_odoo, LEAD_FIELDS},
    },
    mirror::{self, Op, LEAD_MODEL},
    remote::Remote,
};

const DEFAULT_PAGE: u32 = 20;
const MAX_PAGE: u32 = 200;

#[derive(Clone)]
pub struct OdooApi {
    remote: Remote,
}

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("odoo", ErrorCode::InvalidRequest, msg)
}

impl OdooApi {
    pub fn new(remote: Remote) -> Self {
        OdooApi { remote }
    }

    fn db(&self) -> &Pool {
        self.remote.db()
    }

    fn connections(&self) -> &ConnectionStore {
        self.remote.connections()
    }

    async fn execute(
        &self,
        rec: &ConnectionRecord,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
        idempotent: bool,
    ) -> Result<Value, ServiceError> {
        self.remote
            .execute(rec, LEAD_MODEL, method, args, kwargs, idempotent)
            .await
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

fn validate_config(req: &CreateConnectionRequest) -> Result<Value, ServiceError> {
    let config = req
        .config
        .as_ref()
        .and_then(|c| serde_json::to_value(c).ok())
        .unwrap_or_else(|| json!({}));
    validate_connection(&config, &req.secrets)
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

/// `url` (http or https, no credentials in it), `database` and `username`, nothing else.
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
    if let Some(extra) = config.as_object().and_then(|o| {
        o.keys()
            .find(|k| !["url", "database", "username"].contains(&k.as_str()))
    }) {
        return Err(bad(format!(
            "config.{extra} is not an Odoo setting (url, database, username); secrets go in credentials"
        )));
    }
    Ok(json!({ "url": url.trim_end_matches('/'), "database": database, "username": username }))
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

/// The stored settings and secret fields of a connection are complete.
fn stored_valid(rec: &ConnectionRecord) -> bool {
    validate_settings(&rec.config).is_ok()
        && rec
            .secret_fields
            .iter()
            .any(|f| f == "password" || f == "api_key")
}

fn non_empty_secrets(secrets: HashMap<String, String>) -> HashMap<String, SecretString> {
    secrets
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k, SecretString::from(v)))
        .collect()
}

fn ctx<T>(req: &Request<T>) -> Result<RequestContext, Status> {
    RequestContext::from_metadata(req.metadata())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::OdooSession;

    fn conn_req(config: Value, secrets: &[(&str, &str)]) -> CreateConnectionRequest {
        CreateConnectionRequest {
            id: "con_1".into(),
            name: "x".into(),
            config: serde_json::from_value(config).ok(),
            secrets: secrets
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn connection_settings_are_validated() {
        let ok = json!({"url": "http://odoo:8069/", "database": "db", "username": "u"});
        assert_eq!(
            validate_config(&conn_req(ok.clone(), &[("password", "p")])).unwrap()["url"],
            "http://odoo:8069"
        );
        assert!(validate_config(&conn_req(ok.clone(), &[])).is_err());
        assert!(validate_config(&conn_req(ok.clone(), &[("token", "p")])).is_err());
        let no_db = json!({"url": "http://odoo:8069", "username": "u"});
        let e = validate_config(&conn_req(no_db, &[("password", "p")])).unwrap_err();
        assert!(e.message.contains("config.database"));
        let ftp = json!({"url": "ftp://odoo", "database": "d", "username": "u"});
        assert!(validate_config(&conn_req(ftp, &[("password", "p")])).is_err());
        let secret_in_config =
            json!({"url": "http://o", "database": "d", "username": "u", "password": "p"});
        assert!(validate_config(&conn_req(secret_in_config, &[("password", "p")])).is_err());
    }

    #[test]
    fn a_uid_is_bound_to_url_database_user_and_password() {
        let s = |url: &str, db: &str, user: &str, pw: &str| OdooSession {
            url: url.into(),
            database: db.into(),
            username: user.into(),
            password: SecretString::from(pw.to_string()),
        };
        let base = crate::remote::session_fingerprint(&s("http://o", "d", "u", "p"));
        assert_eq!(base, crate::remote::session_fingerprint(&s("http://o", "d", "u", "p")));
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
