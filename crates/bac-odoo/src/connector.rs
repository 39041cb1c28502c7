//! Odoo's part of the kit's `IntegrationService`: which settings and secrets a connection
//! takes, how a connection is tested (log in, read the server's version), which entity an
//! Odoo webhook's model is, and what is cached per connection.
use std::collections::HashMap;

use bac_connector::{Checked, Connector, Webhook, WebhookInput};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use serde_json::Value;

use crate::{api, client::service_error, remote::Remote};

pub struct OdooConnector {
    remote: Remote,
}

impl OdooConnector {
    pub fn new(remote: Remote) -> Self {
        OdooConnector { remote }
    }
}

#[tonic::async_trait]
impl Connector for OdooConnector {
    const KEY: &'static str = "odoo";
    const NAME: &'static str = "Odoo";

    fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
        api::validate_settings(config)
    }

    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
        api::validate_secrets(secrets)
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        api::validate_settings(&rec.config).is_ok()
            && rec
                .secret_fields
                .iter()
                .any(|f| f == "password" || f == "api_key")
    }

    /// A connection's URL must lead where the egress policy allows; checked when it is saved
    /// (and again on every call, since names resolve anew).
    async fn admit(&self, settings: &Value) -> Result<(), ServiceError> {
        let Some(url) = settings
            .get("url")
            .and_then(Value::as_str)
            .and_then(|u| url::Url::parse(u).ok())
        else {
            return Ok(());
        };
        self.remote
            .client()
            .egress()
            .check_url(&url)
            .await
            .map_err(|r| crate::client::address_not_allowed(&r))
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        let s = self.remote.session(rec).await?;
        let version = self
            .remote
            .client()
            .version(&s.url)
            .await
            .map_err(|e| service_error(e, &s.url))?;
        // A test logs in anew: nothing cached may answer for it.
        self.remote.forget_connection(&rec.id).await;
        self.remote.uid(rec, &s).await?;
        let server_version = version["server_version"].as_str().unwrap_or("").to_string();
        Ok(Checked {
            message: format!(
                "logged in to Odoo {server_version} database {} as {}",
                s.database, s.username
            ),
            server_version,
        })
    }

    /// Odoo's webhooks name the model (`_model`: `crm.lead`); the entity's own name works too.
    fn webhook_entity(&self, name: &str) -> Option<&'static str> {
        crate::sync::ENTITIES
            .iter()
            .find(|e| e.model == name || e.entity == name)
            .map(|e| e.entity)
    }

    /// Odoo's "Send Webhook Notification" automation posts the record as JSON with `_model`
    /// and `_id`; a script may post `{"entity" | "model", "ids": [...]}`. Odoo does not sign
    /// its webhooks: the gateway's connection token is the check. The records are fetched
    /// again (the body is what the automation chose to send, not the synced fields).
    async fn webhook(
        &self,
        _rec: &ConnectionRecord,
        webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        let bad = |m: &str| ServiceError::new("odoo", ErrorCode::InvalidRequest, m);
        let body: Value = serde_json::from_slice(&webhook.body)
            .map_err(|_| bad("the webhook body is not JSON"))?;
        let id_text = |v: &Value| match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let named = ["_model", "entity", "model"]
            .iter()
            .find_map(|k| body.get(*k).and_then(Value::as_str))
            .ok_or_else(|| bad("the webhook body names no _model or entity"))?;
        let entity = self
            .webhook_entity(named)
            .ok_or_else(|| bad(&format!("the odoo service does not sync '{named}'")))?;
        let ids: Vec<String> = match (body.get("_id"), body.get("ids")) {
            (Some(id), _) => id_text(id).into_iter().collect(),
            (None, Some(Value::Array(ids))) => ids.iter().filter_map(id_text).collect(),
            _ => Vec::new(),
        };
        if ids.is_empty() || ids.len() > 100 {
            return Err(bad("the webhook body needs _id or ids (1 to 100)"));
        }
        Ok(WebhookInput::Ids { entity, ids })
    }

    async fn forget(&self, connection_id: &str) {
        self.remote.forget_connection(connection_id).await;
    }

    /// An Odoo 19+ connection with only a password speaks `/jsonrpc`, which Odoo deprecates
    /// from 19 (removal announced for 22); the version is the last probe's.
    async fn advice(&self, rec: &ConnectionRecord) -> Option<String> {
        let server = self.remote.known_server(&rec.id).await?;
        let has_key = rec.secret_fields.iter().any(|f| f == "api_key");
        (server.major >= 19 && !has_key).then(|| {
            format!(
                "connection {} ({}) reaches Odoo {} with a password over /jsonrpc, which Odoo deprecates from 19 (removal announced for 22): add credentials.api_key to use JSON-2",
                rec.id, rec.name, server.major
            )
        })
    }
}
