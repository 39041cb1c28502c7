//! Tally's part of the kit's `IntegrationService`: a connection is the configuration the
//! integration-management document describes (`tally_server_host`, `tally_server_port`,
//! `company_name_in_tally`, `is_enabled`, `sync_frequency`, `auto_sync_enabled`); Tally's XML
//! server has no credentials. The test asks Tally for the companies it has open and says
//! whether the configured one is among them.
use std::collections::HashMap;

use bac_connector::{Checked, Connector, Webhook, WebhookInput};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use serde_json::{Map, Value};

use crate::client::TallyClient;

const SETTINGS: &[&str] = &[
    "tally_server_host",
    "tally_server_port",
    "company_name_in_tally",
    "is_enabled",
    "sync_frequency",
    "auto_sync_enabled",
    "connection_mode",
];

/// How the fleet reaches Tally: `direct` (HTTP to `tally_server_host:tally_server_port`) or
/// `agent` (through `bac-tally-agent`, which runs beside Tally and dials out).
pub const MODES: &[&str] = &["direct", "agent"];

/// How often a configuration asks to be synced.
pub const FREQUENCIES: &[&str] = &["manual", "hourly", "daily", "weekly"];

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("tally", ErrorCode::InvalidRequest, msg)
}

/// Checks a configuration and returns it as stored, with the document's defaults.
pub fn validate_settings(config: &Value) -> Result<Value, ServiceError> {
    let Some(obj) = config.as_object() else {
        return Err(bad("config must be an object"));
    };
    let mut obj: Map<String, Value> = obj.clone();
    if let Some(key) = obj.keys().find(|k| !SETTINGS.contains(&k.as_str())) {
        return Err(bad(format!(
            "config.{key} is not a Tally setting (known: {})",
            SETTINGS.join(", ")
        )));
    }
    match obj.get("tally_server_host") {
        Some(Value::String(h))
            if !h.is_empty()
                && h.len() <= 253
                && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) => {}
        _ => {
            return Err(bad(
                "config.tally_server_host is required: the host name or IP address of the computer running Tally",
            ))
        }
    }
    match obj.get("tally_server_port").map(|v| v.as_f64()) {
        None => {
            obj.insert("tally_server_port".into(), Value::from(9000));
        }
        Some(Some(n)) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => {
            obj.insert("tally_server_port".into(), Value::from(n as u64));
        }
        Some(_) => {
            return Err(bad(
                "config.tally_server_port must be a port, 1 to 65535 (Tally's default is 9000)",
            ))
        }
    }
    match obj.get("company_name_in_tally").and_then(Value::as_str).map(str::trim) {
        Some(c) if !c.is_empty() && c.chars().count() <= 200 && !c.chars().any(char::is_control) => {
            // as Tally shows it: without the spaces a form may add around it
            let c = c.to_string();
            obj.insert("company_name_in_tally".into(), Value::from(c));
        }
        _ => {
            return Err(bad(
                "config.company_name_in_tally is required: the company's name as Tally shows it (at most 200 characters)",
            ))
        }
    }
    for (key, default) in [("is_enabled", true), ("auto_sync_enabled", false)] {
        match obj.get(key) {
            None => {
                obj.insert(key.into(), Value::Bool(default));
            }
            Some(Value::Bool(_)) => {}
            Some(_) => return Err(bad(format!("config.{key} must be true or false"))),
        }
    }
    match obj.get("connection_mode") {
        None => {
            obj.insert("connection_mode".into(), Value::from("direct"));
        }
        Some(Value::String(m)) if MODES.contains(&m.as_str()) => {}
        Some(_) => {
            return Err(bad(
                "config.connection_mode must be \"direct\" (the fleet reaches Tally's port) or \"agent\" (bac-tally-agent runs beside Tally)",
            ))
        }
    }
    match obj.get("sync_frequency") {
        None => {
            obj.insert("sync_frequency".into(), Value::from("manual"));
        }
        Some(Value::String(f)) if FREQUENCIES.contains(&f.as_str()) => {}
        Some(_) => {
            return Err(bad(format!(
                "config.sync_frequency must be one of: {}",
                FREQUENCIES.join(", ")
            )))
        }
    }
    Ok(Value::Object(obj))
}

/// Whether two company names are one (Tally's names are case-insensitive).
pub fn same_company(a: &str, b: &str) -> bool {
    a.trim().to_lowercase() == b.trim().to_lowercase()
}

/// Where a connection's Tally is.
pub(crate) fn server(rec: &ConnectionRecord) -> (String, u16) {
    let port = rec.config["tally_server_port"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(9000);
    (rec.setting("tally_server_host").to_string(), port)
}

/// Tally's connector.
pub struct TallyConnector {
    client: TallyClient,
}

impl TallyConnector {
    pub fn new(client: TallyClient) -> Self {
        TallyConnector { client }
    }
}

#[tonic::async_trait]
impl Connector for TallyConnector {
    const KEY: &'static str = "tally";
    const NAME: &'static str = "Tally";

    fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
        validate_settings(config)
    }

    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
        match secrets.keys().next() {
            None => Ok(()),
            Some(k) => Err(bad(format!(
                "credentials.{k}: Tally's XML server takes no credentials"
            ))),
        }
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        validate_settings(&rec.config).is_ok()
    }

    /// Where the configuration leads must be an address the egress policy allows (in agent
    /// mode the fleet does not connect: the agent does, from the office).
    async fn admit(&self, settings: &Value) -> Result<(), ServiceError> {
        if settings["connection_mode"].as_str() == Some("agent") {
            return Ok(());
        }
        let host = settings["tally_server_host"].as_str().unwrap_or("");
        let port = settings["tally_server_port"].as_u64().unwrap_or(9000);
        let Ok(url) = url::Url::parse(&format!("http://{host}:{port}/")) else {
            return Err(bad("config.tally_server_host is not a host name"));
        };
        self.client.egress().check_url(&url).await.map_err(|r| {
            ServiceError::new("tally", ErrorCode::UpstreamAddressNotAllowed, r.to_string())
        })
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        let (host, port) = server(rec);
        let companies = self.client.companies(rec).await?;
        let at = if crate::agent::via_agent(rec) {
            format!("{host}:{port} (through the agent)")
        } else {
            format!("{host}:{port}")
        };
        let wanted = rec.setting("company_name_in_tally");
        let names: Vec<&str> = companies.iter().map(|c| c.name.as_str()).collect();
        let listed = if names.is_empty() {
            "no company".to_string()
        } else {
            names.join(", ")
        };
        if !names.iter().any(|n| same_company(n, wanted)) {
            return Err(ServiceError::new(
                "tally",
                ErrorCode::UpstreamRejected,
                format!("Tally at {at} has {listed} open; '{wanted}' is not among them"),
            )
            .suggest("Open the company in Tally, or set company_name_in_tally to its name as Tally shows it"));
        }
        Ok(Checked {
            message: format!(
                "Tally at {at} has {} compan{} open ({listed}); '{wanted}' is among them",
                names.len(),
                if names.len() == 1 { "y" } else { "ies" }
            ),
            server_version: String::new(),
        })
    }

    /// The configuration's `sync_frequency` when `auto_sync_enabled` (and `is_enabled`);
    /// otherwise syncs run when asked for.
    fn sync_frequency(&self, rec: &ConnectionRecord) -> Option<String> {
        let on = |k: &str| rec.config[k].as_bool().unwrap_or(false);
        Some(if on("auto_sync_enabled") && on("is_enabled") {
            rec.config["sync_frequency"]
                .as_str()
                .unwrap_or("manual")
                .to_string()
        } else {
            "manual".to_string()
        })
    }

    /// A configuration in agent mode whose agent is not connected: the status says so.
    async fn advice(&self, rec: &ConnectionRecord) -> Option<String> {
        if !crate::agent::via_agent(rec) {
            return None;
        }
        match self.client.agents()?.state(&rec.id).await {
            Ok(Some(s)) if s.online => None,
            Ok(Some(s)) => Some(format!(
                "the Tally agent of '{}' is offline (last seen {} on {}): start bac-tally-agent beside Tally",
                rec.setting("company_name_in_tally"),
                s.last_seen_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                if s.hostname.is_empty() { "an unnamed computer" } else { &s.hostname }
            )),
            Ok(None) => Some(format!(
                "the Tally agent of '{}' has never connected: issue its key (POST /api/v1/integrations/tally/agent-key) and start bac-tally-agent beside Tally",
                rec.setting("company_name_in_tally")
            )),
            Err(_) => None,
        }
    }

    fn webhook_entity(&self, _name: &str) -> Option<&'static str> {
        None
    }

    async fn webhook(
        &self,
        _rec: &ConnectionRecord,
        _webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        Err(bad("Tally sends no webhooks: the fleet asks it"))
    }

    async fn forget(&self, _connection_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_documents_body_is_a_configuration_and_gets_its_defaults() {
        let body = json!({"tally_server_host": "localhost", "tally_server_port": 9000,
            "company_name_in_tally": "Demo Company", "is_enabled": true,
            "sync_frequency": "manual", "auto_sync_enabled": false});
        let mut stored = body.clone();
        stored["connection_mode"] = json!("direct");
        assert_eq!(validate_settings(&body).unwrap(), stored);
        let short = validate_settings(
            &json!({"tally_server_host": "10.0.0.5", "company_name_in_tally": "Acme"}),
        )
        .unwrap();
        assert_eq!(short["tally_server_port"], 9000);
        assert_eq!(short["sync_frequency"], "manual");
        for bad in [
            json!({"tally_server_host": "http://x", "company_name_in_tally": "A"}),
            json!({"tally_server_host": "h", "tally_server_port": 70000, "company_name_in_tally": "A"}),
            json!({"tally_server_host": "h"}),
            json!({"tally_server_host": "h", "company_name_in_tally": "A", "sync_frequency": "often"}),
            json!({"tally_server_host": "h", "company_name_in_tally": "A", "is_enabled": "yes"}),
            json!({"tally_server_host": "h", "company_name_in_tally": "A", "password": "x"}),
            json!({"tally_server_host": "h", "company_name_in_tally": "A", "connection_mode": "vpn"}),
        ] {
            assert!(validate_settings(&bad).is_err(), "{bad}");
        }
    }
}
