//! Zoho's part of the kit's `IntegrationService`: a connection is a data centre, an OAuth
//! client (`client_id` in the settings, `client_secret` in Vault) and, once its user
//! authorised it (or an administrator pasted a self-client's), a refresh token. Tested by
//! reading the CRM organisation with a token from the kit's token source.
use std::collections::HashMap;

use bac_connector::{
    oauth::{Authorization, OAuthFlow},
    AccessToken, Checked, Connector, Grant, TokenGrant, Webhook, WebhookInput,
};
use bac_runtime::{connections::ConnectionRecord, vault::Secret, ErrorCode, ServiceError};
use serde_json::{json, Map, Value};

use crate::{
    client::{data_center, ZohoCall, ZohoClient, CRM},
    dc::{self, DataCenters},
};

/// What a connection asks for when its settings name no `scopes`: the CRM records, the
/// organisation and users a connection test reads, and what the Books, Inventory, Desk,
/// People and Mail routes and syncs use (docs/zoho.md lists them per route).
pub const DEFAULT_SCOPES: &[&str] = &[
    "ZohoCRM.modules.ALL",
    "ZohoCRM.org.READ",
    "ZohoCRM.users.READ",
    "ZohoCRM.notifications.ALL",
    "ZohoBooks.invoices.ALL",
    "ZohoBooks.contacts.ALL",
    "ZohoBooks.settings.READ",
    "ZohoInventory.items.READ",
    "ZohoInventory.settings.READ",
    "Desk.tickets.ALL",
    "Desk.contacts.READ",
    "Desk.basic.READ",
    "Desk.search.READ",
    "ZOHOPEOPLE.forms.READ",
    "ZohoMail.accounts.READ",
    "ZohoMail.messages.CREATE",
];

/// Settings the fleet writes itself after an authorisation.
const LEARNT: &[&str] = &["granted_scopes", "authorized_at", "api_domain"];

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("zoho", ErrorCode::InvalidRequest, msg)
}

/// Checks a connection's settings: the data centre (one of Zoho's), the client id,
/// optionally the Books/Inventory organisation and the scopes; the settings the fleet learnt
/// are kept only as it wrote them (an `api_domain` elsewhere would send the token there).
pub fn validate_settings(dcs: &DataCenters, config: &Value) -> Result<Value, ServiceError> {
    let Some(obj) = config.as_object() else {
        return Err(bad("config must be an object"));
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "data_center"
                | "client_id"
                | "organization_id"
                | "desk_org_id"
                | "desk_department_id"
                | "mail_account_id"
                | "scopes"
                | "calls_per_minute"
                | "intent_field"
                | "notifications"
        ) && !LEARNT.contains(&key.as_str())
        {
            return Err(bad(format!("config.{key} is not a Zoho setting")));
        }
    }
    let dc_key = obj.get("data_center").and_then(Value::as_str).unwrap_or("");
    let Some(dc) = dcs.get(dc_key) else {
        return Err(bad(format!(
            "config.data_center must be one of Zoho's data centres: {} (the end of your Zoho URL: accounts.zoho.eu is eu)",
            dc::keys().join(", ")
        )));
    };
    match obj.get("client_id").and_then(Value::as_str) {
        Some(c) if !c.trim().is_empty() && c.len() <= 200 => {}
        _ => {
            return Err(bad(
                "config.client_id is required (the client id of your app in Zoho's API console)",
            ))
        }
    }
    if let Some(org) = obj.get("organization_id") {
        if !org.as_str().is_some_and(|o| {
            !o.is_empty() && o.len() <= 40 && o.bytes().all(|b| b.is_ascii_digit())
        }) {
            return Err(bad(
                "config.organization_id must be the digits of a Zoho Books organisation id",
            ));
        }
    }
    for (key, what) in [
        (
            "desk_org_id",
            "a Zoho Desk organisation id (Desk: Setup > Developer Space > API)",
        ),
        ("desk_department_id", "a Zoho Desk department id"),
        ("mail_account_id", "a Zoho Mail account id"),
    ] {
        if let Some(v) = obj.get(key) {
            if !v.as_str().is_some_and(|o| {
                !o.is_empty() && o.len() <= 40 && o.bytes().all(|b| b.is_ascii_digit())
            }) {
                return Err(bad(format!("config.{key} must be the digits of {what}")));
            }
        }
    }
    let mut out = config.clone();
    if let Some(n) = obj.get("calls_per_minute") {
        // numbers cross gRPC as doubles: 100 arrives as 100.0
        match n.as_f64().filter(|n| n.fract() == 0.0 && (1.0..=10_000.0).contains(n)) {
            Some(n) => out["calls_per_minute"] = json!(n as u64),
            None => {
                return Err(bad(
                    "config.calls_per_minute must be a whole number from 1 to 10000 (your organisation's API credits a minute)",
                ))
            }
        }
    }
    if obj.get("notifications").is_some_and(|n| !n.is_boolean()) {
        return Err(bad(
            "config.notifications must be true or false (CRM notification channels; default true)",
        ));
    }
    if let Some(f) = obj.get("intent_field") {
        if !f.as_str().is_some_and(crate::sync::valid_field_name) {
            return Err(bad(
                "config.intent_field must be the API name of a custom text field such as BAC_Intent_Id",
            ));
        }
    }
    if let Some(scopes) = obj.get("scopes") {
        let ok = scopes.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 50
                && a.iter().all(|s| {
                    s.as_str().is_some_and(|s| {
                        // ZohoCRM.modules.ALL, Desk.tickets.ALL, ZOHOPEOPLE.forms.READ
                        s.starts_with(|c: char| c.is_ascii_alphabetic())
                            && s.contains('.')
                            && s.len() <= 100
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
                    })
                })
        });
        if !ok {
            return Err(bad(
                "config.scopes must be a list of Zoho scopes such as ZohoCRM.modules.ALL",
            ));
        }
    }
    if let Some(api) = obj.get("api_domain") {
        if !api.as_str().is_some_and(|a| dcs.is_api_of(dc_key, a)) {
            return Err(bad(format!(
                "config.api_domain is set by the fleet from Zoho's token answer; for data centre {} it is {}",
                dc.key, dc.api
            )));
        }
    }
    Ok(out)
}

/// A connection's credentials are its client secret and, for a self-client, its refresh
/// token (otherwise the user's authorisation brings one).
pub fn validate_secrets(secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
    if secrets.get("client_secret").is_none_or(|s| s.is_empty()) {
        return Err(bad(
            "credentials.client_secret is required (the client secret of your app in Zoho's API console)",
        ));
    }
    for (k, v) in secrets {
        if !matches!(k.as_str(), "client_secret" | "refresh_token") {
            return Err(bad(format!("credentials.{k} is not a Zoho credential")));
        }
        if v.len() > 4096 {
            return Err(bad(format!("credentials.{k} is too long")));
        }
    }
    Ok(())
}

/// Zoho's refresh grant: the data centre's accounts server, the connection's client.
#[derive(Clone)]
pub struct ZohoGrant {
    pub dcs: DataCenters,
}

impl TokenGrant for ZohoGrant {
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &Secret,
        _subject: Option<&str>,
    ) -> Result<Grant, ServiceError> {
        let dc = data_center(&self.dcs, &rec.config)?;
        let refresh_token = secret.data.get("refresh_token").cloned().ok_or_else(|| {
            ServiceError::new(
                "zoho",
                ErrorCode::NotConnected,
                format!("connection {} is not authorised yet", rec.id),
            )
            .suggest(format!(
                "Open the authorization_url of POST /api/v1/integrations/connections/{}/authorize, or send credentials.refresh_token of a self-client",
                rec.id
            ))
        })?;
        Ok(Grant::RefreshToken {
            token_url: format!("{}/oauth/v2/token", dc.accounts),
            client_id: rec.setting("client_id").to_string(),
            client_secret: secret.data.get("client_secret").cloned(),
            refresh_token,
            scope: None,
        })
    }
}

pub struct ZohoConnector {
    client: ZohoClient,
    push: Option<bac_connector::channels::ChannelKeeper>,
}

impl ZohoConnector {
    pub fn new(client: ZohoClient) -> Self {
        ZohoConnector { client, push: None }
    }

    /// The keeper of the connections' notification channels (checks what they send).
    pub fn with_push(mut self, keeper: bac_connector::channels::ChannelKeeper) -> Self {
        self.push = Some(keeper);
        self
    }

    fn dcs(&self) -> &DataCenters {
        self.client.data_centers()
    }
}

impl OAuthFlow for ZohoConnector {
    fn authorization(&self, settings: &Value) -> Result<Authorization, ServiceError> {
        let dc = data_center(self.dcs(), settings)?;
        let scopes = settings
            .get("scopes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect());
        Ok(Authorization {
            authorize_url: format!("{}/oauth/v2/auth", dc.accounts),
            scopes,
            scope_separator: ",",
            // a refresh token is given only for offline access; consent again on a reconnect
            params: vec![
                ("access_type".into(), "offline".into()),
                ("prompt".into(), "consent".into()),
            ],
        })
    }

    fn token_url(
        &self,
        settings: &Value,
        callback: &HashMap<String, String>,
    ) -> Result<String, ServiceError> {
        let dc = data_center(self.dcs(), settings)?;
        if let Some(location) = callback.get("location") {
            if location != dc.location {
                let theirs = self
                    .dcs()
                    .by_location(location)
                    .map_or(location.as_str(), |d| d.key);
                return Err(bad(format!(
                    "the Zoho account that signed in is in data centre {theirs}, this connection is for {}",
                    dc.key
                ))
                .suggest(format!("Create the connection with config.data_center \"{theirs}\"")));
            }
        }
        // the browser says where the accounts server is; only this data centre's is believed
        if let Some(server) = callback.get("accounts-server") {
            if server.trim_end_matches('/') != dc.accounts {
                return Err(bad(format!(
                    "the callback names accounts server {server}, not data centre {}'s",
                    dc.key
                )));
            }
        }
        Ok(format!("{}/oauth/v2/token", dc.accounts))
    }

    fn learnt(&self, token: &AccessToken) -> Map<String, Value> {
        token
            .extra
            .get("api_domain")
            .map(|d| Map::from_iter([("api_domain".to_string(), json!(d))]))
            .unwrap_or_default()
    }
}

#[tonic::async_trait]
impl Connector for ZohoConnector {
    const KEY: &'static str = "zoho";
    const NAME: &'static str = "Zoho";

    fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
        validate_settings(self.dcs(), config)
    }

    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
        validate_secrets(secrets)
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        validate_settings(self.dcs(), &rec.config).is_ok()
            && ["client_secret", "refresh_token"]
                .iter()
                .all(|f| rec.secret_fields.iter().any(|s| s == f))
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        let dc = data_center(self.dcs(), &rec.config)?.clone();
        let answer = self
            .client
            .send(rec, &ZohoCall::get(format!("{CRM}/org"), "crm/org"))
            .await?;
        let org = answer.body["org"][0]["company_name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        Ok(Checked {
            message: format!(
                "Connected to Zoho CRM organisation '{org}' in data centre {} ({})",
                dc.key, dc.name
            ),
            server_version: CRM.trim_start_matches('/').into(),
        })
    }

    fn webhook_entity(&self, name: &str) -> Option<&'static str> {
        crate::channels::entity_of_module(name).or_else(|| {
            crate::sync::ENTITIES
                .iter()
                .map(|e| e.entity)
                .chain(crate::apps::ENTITIES.iter().map(|e| e.entity))
                .find(|e| *e == name)
        })
    }

    /// A CRM notification (from a channel the keeper opened, or a webhook of a Zoho
    /// workflow rule posting the same body with the gateway's token).
    async fn webhook(
        &self,
        _rec: &ConnectionRecord,
        w: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        crate::channels::read_notification(&w.body)
    }

    fn push(&self) -> Option<&bac_connector::channels::ChannelKeeper> {
        self.push.as_ref()
    }

    async fn forget(&self, _connection_id: &str) {}

    fn oauth(&self) -> Option<&dyn OAuthFlow> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_name_a_known_data_centre_and_keep_learnt_hosts_true() {
        let dcs = DataCenters::default();
        let ok = json!({"data_center": "eu", "client_id": "1000.X"});
        assert!(validate_settings(&dcs, &ok).is_ok());
        let e =
            validate_settings(&dcs, &json!({"data_center": "de", "client_id": "x"})).unwrap_err();
        assert!(e.message.contains("com, eu, in"), "{}", e.message);
        assert!(validate_settings(&dcs, &json!({"data_center": "eu"})).is_err());
        let per_minute = json!({"data_center": "eu", "client_id": "x", "calls_per_minute": 600.0});
        assert_eq!(
            validate_settings(&dcs, &per_minute).unwrap()["calls_per_minute"],
            json!(600)
        );
        let fraction = json!({"data_center": "eu", "client_id": "x", "calls_per_minute": 1.5});
        assert!(validate_settings(&dcs, &fraction).is_err());
        let learnt = json!({"data_center": "eu", "client_id": "x", "api_domain": "https://www.zohoapis.eu", "granted_scopes": ["a"]});
        assert!(validate_settings(&dcs, &learnt).is_ok());
        let forged =
            json!({"data_center": "eu", "client_id": "x", "api_domain": "https://evil.example"});
        assert!(validate_settings(&dcs, &forged).is_err());
        assert!(validate_settings(
            &dcs,
            &json!({"data_center": "eu", "client_id": "x", "url": "y"})
        )
        .is_err());
    }

    #[test]
    fn credentials_are_a_client_secret_and_maybe_a_refresh_token() {
        let s = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_secrets(&s(&[("client_secret", "x")])).is_ok());
        assert!(validate_secrets(&s(&[("client_secret", "x"), ("refresh_token", "r")])).is_ok());
        assert!(validate_secrets(&s(&[])).is_err());
        assert!(validate_secrets(&s(&[("refresh_token", "r")])).is_err());
        assert!(validate_secrets(&s(&[("client_secret", "x"), ("password", "p")])).is_err());
    }
}
