//! Messaging's part of the kit's `IntegrationService`. A connection names its `channel`;
//! today `email`: the tenant's SMTP server (host, port, `starttls` / `tls` / `none`, the
//! username and the sender), its password in Vault. The test logs in (EHLO, TLS, AUTH)
//! without sending anything.
use std::collections::HashMap;

use bac_connector::{Checked, Connector, Webhook, WebhookInput};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use serde_json::{Map, Value};

use crate::{
    bad,
    smtp::{self, Security, Server, Smtp},
};

/// The channels a connection may name: `email` (SMTP, with IMAP for bounces), and the chat
/// channels reached through an incoming webhook (`teams`, `google_chat`).
pub const CHANNELS: &[&str] = &["email", "teams", "google_chat"];

const EMAIL_SETTINGS: &[&str] = &[
    "channel",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "username",
    "from_address",
    "from_name",
    "imap_host",
    "imap_port",
    "imap_security",
];

/// The channel a stored connection serves.
pub fn channel_of(rec: &ConnectionRecord) -> &str {
    rec.setting("channel")
}

fn host(obj: &Map<String, Value>, key: &str, required: bool) -> Result<(), ServiceError> {
    match obj.get(key) {
        None if !required => Ok(()),
        None => Err(bad(format!("config.{key} is required"))),
        Some(Value::String(h))
            if !h.is_empty()
                && h.len() <= 253
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b)) =>
        {
            Ok(())
        }
        Some(_) => Err(bad(format!(
            "config.{key} must be a host name such as smtp.example.com"
        ))),
    }
}

fn port(obj: &mut Map<String, Value>, key: &str, default: Option<u64>) -> Result<(), ServiceError> {
    match obj.get(key) {
        None => {
            if let Some(d) = default {
                obj.insert(key.into(), Value::from(d));
            }
            Ok(())
        }
        Some(v) => match v.as_f64() {
            Some(n) if n.fract() == 0.0 && (1.0..=65535.0).contains(&n) => {
                obj.insert(key.into(), Value::from(n as u64));
                Ok(())
            }
            _ => Err(bad(format!("config.{key} must be a port, 1 to 65535"))),
        },
    }
}

/// Checks a connection's settings and returns them as stored.
pub fn validate_settings(config: &Value) -> Result<Value, ServiceError> {
    let Some(obj) = config.as_object() else {
        return Err(bad("config must be an object"));
    };
    let mut obj = obj.clone();
    let channel = obj.get("channel").and_then(Value::as_str).unwrap_or("");
    if !CHANNELS.contains(&channel) {
        return Err(bad(format!(
            "config.channel must be one of: {}",
            CHANNELS.join(", ")
        )));
    }
    if crate::chat::CHANNELS.contains(&channel) {
        // where it posts is the webhook URL, a credential: nothing else to set
        if let Some(key) = obj.keys().find(|k| *k != "channel") {
            return Err(bad(format!(
                "config.{key} is not a {channel} setting (its incoming webhook URL goes in credentials.webhook_url)"
            )));
        }
        return Ok(Value::Object(obj));
    }
    for key in obj.keys() {
        if !EMAIL_SETTINGS.contains(&key.as_str()) {
            return Err(bad(format!("config.{key} is not an email setting")));
        }
    }
    host(&obj, "smtp_host", true)?;
    host(&obj, "imap_host", false)?;
    port(&mut obj, "smtp_port", Some(587))?;
    port(&mut obj, "imap_port", None)?;
    match obj.get("smtp_security") {
        None => {
            obj.insert("smtp_security".into(), Value::from("starttls"));
        }
        Some(Value::String(s)) if Security::parse(s).is_some() => {}
        Some(_) => {
            return Err(bad(
                "config.smtp_security must be starttls (port 587), tls (port 465) or none",
            ))
        }
    }
    match obj.get("username") {
        Some(Value::String(u)) if !u.is_empty() && u.len() <= 320 && !u.contains(['\r', '\n']) => {}
        _ => return Err(bad("config.username is required: the SMTP login")),
    }
    match obj.get("from_address").and_then(Value::as_str) {
        Some(a) => {
            smtp::mailbox("config.from_address", a)?;
        }
        None => return Err(bad("config.from_address is required: the sender's address")),
    }
    match obj.get("from_name") {
        None => {}
        Some(Value::String(n)) if n.len() <= 200 && !n.contains(['\r', '\n']) => {}
        Some(_) => {
            return Err(bad(
                "config.from_name must be one line of at most 200 characters",
            ))
        }
    }
    match obj.get("imap_security") {
        None => {}
        Some(Value::String(s)) if s == "tls" || s == "none" => {}
        Some(_) => return Err(bad("config.imap_security must be tls (port 993) or none")),
    }
    Ok(Value::Object(obj))
}

/// An incoming webhook's URL: absolute, http(s), no credentials in it.
pub fn webhook_url(s: &str) -> Result<url::Url, ServiceError> {
    let u = url::Url::parse(s.trim())
        .map_err(|_| bad("credentials.webhook_url is not an absolute URL"))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || s.len() > 2000 {
        return Err(bad(
            "credentials.webhook_url must be the https URL the incoming webhook gave (at most 2000 characters)",
        ));
    }
    Ok(u)
}

/// Messaging's connector.
pub struct MessagingConnector {
    smtp: Smtp,
    store: bac_runtime::connections::ConnectionStore,
    egress: bac_runtime::upstream::egress::EgressPolicy,
}

impl MessagingConnector {
    pub fn new(
        smtp: Smtp,
        store: bac_runtime::connections::ConnectionStore,
        egress: bac_runtime::upstream::egress::EgressPolicy,
    ) -> Self {
        MessagingConnector {
            smtp,
            store,
            egress,
        }
    }
}

#[tonic::async_trait]
impl Connector for MessagingConnector {
    const KEY: &'static str = "messaging";
    const NAME: &'static str = "Messaging";

    fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
        validate_settings(config)
    }

    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
        for (k, v) in secrets {
            match k.as_str() {
                "password" if !v.is_empty() && v.len() <= 1024 => {}
                "password" => return Err(bad("credentials.password must be 1 to 1024 characters")),
                "webhook_url" => webhook_url(v).map(|_| ())?,
                _ => {
                    return Err(bad(format!(
                        "credentials.{k} is not a messaging credential (password for email, webhook_url for teams and google_chat)"
                    )))
                }
            }
        }
        Ok(())
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        let needs = if channel_of(rec) == "email" {
            "password"
        } else {
            "webhook_url"
        };
        validate_settings(&rec.config).is_ok() && rec.secret_fields.iter().any(|f| f == needs)
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        if channel_of(rec) != "email" {
            // an incoming webhook cannot be tested without posting: its URL is checked
            let secret = self.store.secret(rec).await?;
            let url = secret
                .data
                .get("webhook_url")
                .map(|u| secrecy::ExposeSecret::expose_secret(u).to_string())
                .unwrap_or_default();
            let parsed = webhook_url(&url)?;
            self.egress.check_url(&parsed).await.map_err(|r| {
                ServiceError::new(
                    "messaging",
                    ErrorCode::UpstreamAddressNotAllowed,
                    r.to_string(),
                )
            })?;
            return Ok(Checked {
                message: format!(
                    "The incoming webhook of {} is allowed (nothing is posted by a test)",
                    parsed.host_str().unwrap_or("")
                ),
                server_version: String::new(),
            });
        }
        let server = Server::of(rec)?;
        let secret = self.store.secret(rec).await?;
        let message = self.smtp.check(&server, &secret).await?;
        Ok(Checked {
            message,
            server_version: String::new(),
        })
    }

    fn webhook_entity(&self, _name: &str) -> Option<&'static str> {
        None
    }

    async fn webhook(
        &self,
        _rec: &ConnectionRecord,
        _webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        Err(ServiceError::new(
            "messaging",
            ErrorCode::InvalidRequest,
            "email connections take no webhooks",
        ))
    }

    async fn forget(&self, _connection_id: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn email_settings_get_their_defaults_and_refuse_strangers() {
        let ok = validate_settings(&json!({
            "channel": "email", "smtp_host": "smtp.example.com", "username": "billing",
            "from_address": "billing@example.com"
        }))
        .unwrap();
        assert_eq!(ok["smtp_port"], json!(587));
        assert_eq!(ok["smtp_security"], json!("starttls"));
        for bad in [
            json!({"channel": "fax"}),
            json!({"channel": "email", "smtp_host": "smtp.example.com/x", "username": "u", "from_address": "a@b.c"}),
            json!({"channel": "email", "smtp_host": "h", "username": "u", "from_address": "not an address"}),
            json!({"channel": "email", "smtp_host": "h", "username": "u", "from_address": "a@b.c", "smtp_security": "ssl"}),
            json!({"channel": "email", "smtp_host": "h", "username": "u", "from_address": "a@b.c", "relay": true}),
            json!({"channel": "email", "smtp_host": "h", "username": "u", "from_address": "a@b.c", "smtp_port": 0}),
        ] {
            assert!(validate_settings(&bad).is_err(), "{bad}");
        }
    }
}
