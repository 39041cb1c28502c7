//! Messaging's part of the kit's `IntegrationService`. A connection names its `channel`:
//! `email`: the tenant's SMTP server (host, port, `starttls` / `tls` / `none`, the username
//! and the sender), its password in Vault; the test logs in (EHLO, TLS, AUTH) without
//! sending anything. `teams` / `google_chat`: an incoming webhook's URL in Vault. `slack`: a
//! workspace's bot token and the app's signing secret in Vault, given by hand or through
//! OAuth v2 (the kit's flow, `client_id` in the settings); the test is `auth.test`, and
//! Slack's requests to the connection's webhook URL are verified and read in [`crate::slack`].
//! `teams_bot`: a bot's Microsoft App ID (and, single-tenant, its Entra tenant), its client
//! secret as `app_password`; the test mints the bot's token; activities are verified and read
//! in [`crate::teams_bot`].
use std::collections::HashMap;

use bac_connector::{
    oauth::{Authorization, OAuthFlow},
    AccessToken, Checked, Connector, Webhook, WebhookInput,
};
use bac_runtime::{connections::ConnectionRecord, ErrorCode, ServiceError};
use serde_json::{Map, Value};

use crate::{
    bad,
    smtp::{self, Security, Server},
};

/// The channels a connection may name: `email` (SMTP, with IMAP for bounces), the chat
/// channels reached through an incoming webhook (`teams`, `google_chat`), and `slack`.
pub const CHANNELS: &[&str] = &[
    "email",
    "teams",
    "google_chat",
    "slack",
    "teams_bot",
    "google_chat_app",
];

/// A Microsoft id (App ID, tenant id): a GUID.
fn guid(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn teams_bot_settings(obj: &Map<String, Value>) -> Result<(), ServiceError> {
    for key in obj.keys() {
        if !["channel", "app_id", "app_tenant_id"].contains(&key.as_str()) {
            return Err(bad(format!("config.{key} is not a teams_bot setting")));
        }
    }
    match obj.get("app_id") {
        Some(Value::String(v)) if guid(v) => {}
        _ => {
            return Err(bad(
                "config.app_id is required: the bot's Microsoft App ID (a GUID)",
            ))
        }
    }
    match obj.get("app_tenant_id") {
        None => Ok(()),
        Some(Value::String(v)) if guid(v) => Ok(()),
        Some(_) => Err(bad(
            "config.app_tenant_id must be the Entra tenant id (a GUID) of a single-tenant bot",
        )),
    }
}

/// A Slack connection's settings: the workspace (learnt on authorisation), the OAuth client,
/// the scopes asked for; `granted_scopes`, `authorized_at`, `team_name` and `bot_user_id`
/// are written by the OAuth flow.
const SLACK_SETTINGS: &[&str] = &[
    "channel",
    "team_id",
    "team_name",
    "bot_user_id",
    "client_id",
    "scopes",
    "granted_scopes",
    "authorized_at",
];

/// What a Slack app asks for by default: post, answer commands, hear mentions and messages.
pub const SLACK_SCOPES: &[&str] = &[
    "chat:write",
    "commands",
    "app_mentions:read",
    "channels:history",
];

fn slack_settings(obj: &Map<String, Value>) -> Result<(), ServiceError> {
    for key in obj.keys() {
        if !SLACK_SETTINGS.contains(&key.as_str()) {
            return Err(bad(format!("config.{key} is not a slack setting")));
        }
    }
    let word = |key: &str, ok: &dyn Fn(&str) -> bool, what: &str| match obj.get(key) {
        None => Ok(()),
        Some(Value::String(v)) if ok(v) => Ok(()),
        Some(_) => Err(bad(format!("config.{key} must be {what}"))),
    };
    word(
        "team_id",
        &|v| {
            (3..=20).contains(&v.len())
                // events and commands name the workspace (T...), also under Enterprise Grid
                && v.starts_with('T')
                && v.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        },
        "a Slack workspace id such as T0123ABCD",
    )?;
    // which workspace's requests to believe: given, or learnt by the OAuth install
    if !obj.contains_key("team_id") && !obj.contains_key("client_id") {
        return Err(bad(
            "config.team_id is required (the workspace id, T0123ABCD: Slack's requests from any other are refused), or client_id to install the app through OAuth v2",
        ));
    }
    word(
        "client_id",
        &|v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit() || b == b'.'),
        "the Slack app's client id (digits and dots)",
    )?;
    match obj.get("scopes") {
        None => Ok(()),
        Some(Value::Array(a))
            if !a.is_empty()
                && a.len() <= 50
                && a.iter().all(|s| {
                    s.as_str().is_some_and(|s| {
                        (1..=64).contains(&s.len())
                            && s.bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b":._-".contains(&b))
                    })
                }) =>
        {
            Ok(())
        }
        Some(_) => Err(bad(
            "config.scopes must be a list of Slack scopes such as [\"chat:write\", \"commands\"]",
        )),
    }
}

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
    if channel == "slack" {
        slack_settings(&obj)?;
        return Ok(Value::Object(obj));
    }
    if channel == "teams_bot" {
        teams_bot_settings(&obj)?;
        return Ok(Value::Object(obj));
    }
    if channel == "google_chat_app" {
        if let Some(key) = obj
            .keys()
            .find(|k| *k != "channel" && *k != "project_number")
        {
            return Err(bad(format!(
                "config.{key} is not a google_chat_app setting"
            )));
        }
        match obj.get("project_number") {
            Some(Value::String(n))
                if (1..=20).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_digit()) => {}
            _ => {
                return Err(bad(
                    "config.project_number is required: the Google Cloud project number of the Chat app (digits), the audience of Chat's tokens",
                ))
            }
        }
        return Ok(Value::Object(obj));
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
    store: bac_runtime::connections::ConnectionStore,
    egress: bac_runtime::upstream::egress::EgressPolicy,
    send: crate::deliveries::Senders,
    inbound: crate::slack::Inbound,
    tokens: bac_connector::TokenSource,
    chat_app: crate::chat_app::ChatApp,
}

impl MessagingConnector {
    pub fn new(
        store: bac_runtime::connections::ConnectionStore,
        egress: bac_runtime::upstream::egress::EgressPolicy,
        send: crate::deliveries::Senders,
        inbound: crate::slack::Inbound,
        tokens: bac_connector::TokenSource,
        chat_app: crate::chat_app::ChatApp,
    ) -> Self {
        MessagingConnector {
            store,
            egress,
            send,
            inbound,
            tokens,
            chat_app,
        }
    }

    /// A stored secret field, exposed for the one call that needs it.
    async fn secret_field(
        &self,
        rec: &ConnectionRecord,
        field: &str,
    ) -> Result<String, ServiceError> {
        let secret = self.store.secret(rec).await?;
        Ok(secret
            .data
            .get(field)
            .map(|u| secrecy::ExposeSecret::expose_secret(u).to_string())
            .unwrap_or_default())
    }

    async fn check_slack(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        let token = self.secret_field(rec, "bot_token").await?;
        if token.is_empty() {
            return Err(ServiceError::new(
                "messaging",
                ErrorCode::InvalidCredentials,
                "the connection has no bot token yet",
            )
            .suggest("Authorise the connection (OAuth) or store the app's bot token as credentials.bot_token"));
        }
        let team = match rec.setting("team_id") {
            "" => rec.id.as_str(),
            t => t,
        };
        let who = self.send.slack.auth_test(&token, team).await?;
        let got = who["team_id"].as_str().unwrap_or("");
        if !rec.setting("team_id").is_empty() && got != rec.setting("team_id") {
            return Err(bad(format!(
                "the bot token is workspace {got}'s, this connection is for {}",
                rec.setting("team_id")
            )));
        }
        Ok(Checked {
            message: format!(
                "Connected to the Slack workspace {} ({got}) as {}",
                who["team"].as_str().unwrap_or(""),
                who["user"].as_str().unwrap_or("the bot"),
            ),
            server_version: String::new(),
        })
    }
}

impl OAuthFlow for MessagingConnector {
    fn authorization(&self, settings: &Value) -> Result<Authorization, ServiceError> {
        if settings["channel"] != "slack" {
            return Err(bad("only slack connections are authorised through OAuth"));
        }
        let scopes = settings["scopes"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_else(|| SLACK_SCOPES.iter().map(|s| s.to_string()).collect());
        Ok(Authorization {
            authorize_url: format!("{}/oauth/v2/authorize", self.send.slack.base()),
            scopes,
            scope_separator: ",",
            params: Vec::new(),
        })
    }

    fn token_url(
        &self,
        settings: &Value,
        _callback: &HashMap<String, String>,
    ) -> Result<String, ServiceError> {
        if settings["channel"] != "slack" {
            return Err(bad("only slack connections are authorised through OAuth"));
        }
        Ok(format!("{}/api/oauth.v2.access", self.send.slack.base()))
    }

    fn learnt(&self, token: &AccessToken) -> Map<String, Value> {
        [
            ("team.id", "team_id"),
            ("team.name", "team_name"),
            ("bot_user_id", "bot_user_id"),
        ]
        .iter()
        .filter_map(|(from, to)| {
            token
                .extra
                .get(*from)
                .map(|v| (to.to_string(), Value::from(v.clone())))
        })
        .collect()
    }

    fn access_token_field(&self) -> Option<&'static str> {
        // a bot token without token rotation does not expire: it is the credential
        Some("bot_token")
    }
}

/// Messaging's tokens: a Teams bot's from its client credentials; a Slack bot token is the
/// credential itself, never refreshed.
pub struct MessagingGrant {
    pub botframework: crate::teams_bot::BotFrameworkSettings,
}

impl bac_connector::tokens::TokenGrant for MessagingGrant {
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &bac_runtime::vault::Secret,
        _subject: Option<&str>,
    ) -> Result<bac_connector::tokens::Grant, ServiceError> {
        if channel_of(rec) == "teams_bot" {
            return crate::teams_bot::grant(&self.botframework, rec, secret);
        }
        Err(bad(format!(
            "{} connections have no tokens to refresh",
            channel_of(rec)
        )))
    }
}

/// A Slack bot token (`xoxb-...`).
fn slack_token(v: &str) -> bool {
    // a bot token; rotating ones (`xoxe.xoxb-`) expire in 12 hours with nothing to renew them
    (10..=512).contains(&v.len())
        && v.starts_with("xoxb-")
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
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
                "bot_token" if slack_token(v) => {}
                "bot_token" => return Err(bad("credentials.bot_token must be the Slack app's bot token (xoxb-...)")),
                "signing_secret" | "client_secret" | "app_password"
                    if (8..=256).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()) => {}
                "app_password" => {
                    return Err(bad("credentials.app_password must be the bot's client secret (8 to 256 characters)"))
                }
                "signing_secret" | "client_secret" => {
                    return Err(bad(format!("credentials.{k} must be the Slack app's {k}, as its Basic Information page shows it")))
                }
                _ => {
                    return Err(bad(format!(
                        "credentials.{k} is not a messaging credential (password for email, webhook_url for teams and google_chat, bot_token, signing_secret and client_secret for slack, app_password for teams_bot)"
                    )))
                }
            }
        }
        Ok(())
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        let needs: &[&str] = match channel_of(rec) {
            "email" => &["password"],
            "slack" => &["bot_token", "signing_secret"],
            "teams_bot" => &["app_password"],
            "google_chat_app" => &[],
            _ => &["webhook_url"],
        };
        validate_settings(&rec.config).is_ok()
            && needs
                .iter()
                .all(|n| rec.secret_fields.iter().any(|f| f == n))
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        if channel_of(rec) == "slack" {
            return self.check_slack(rec).await;
        }
        if channel_of(rec) == "google_chat_app" {
            let n = self.chat_app.check().await?;
            return Ok(Checked {
                message: format!(
                    "Google publishes {n} key(s) for Chat's tokens; events for project {} are verified with them",
                    rec.setting("project_number")
                ),
                server_version: String::new(),
            });
        }
        if channel_of(rec) == "teams_bot" {
            self.tokens.forget(&rec.tenant_id, &rec.id);
            self.tokens.token(rec, None).await?;
            return Ok(Checked {
                message: format!(
                    "The Bot Framework gave bot {} a token",
                    rec.setting("app_id")
                ),
                server_version: String::new(),
            });
        }
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
        let message = self.send.smtp.check(&server, &secret).await?;
        Ok(Checked {
            message,
            server_version: String::new(),
        })
    }

    fn webhook_entity(&self, _name: &str) -> Option<&'static str> {
        None
    }

    /// Slack's requests (Events API, slash commands) to the connection's webhook URL; the
    /// other channels take none.
    async fn webhook(
        &self,
        rec: &ConnectionRecord,
        webhook: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        if channel_of(rec) == "teams_bot" {
            return self.send.bot.inbound(rec, webhook).await;
        }
        if channel_of(rec) == "google_chat_app" {
            return self.chat_app.inbound(rec, webhook).await;
        }
        if channel_of(rec) != "slack" {
            return Err(bad(format!(
                "{} connections take no webhooks",
                channel_of(rec)
            )));
        }
        let secret = self.secret_field(rec, "signing_secret").await?;
        if secret.is_empty() {
            return Err(ServiceError::new(
                "messaging",
                ErrorCode::Unauthenticated,
                "the connection has no signing secret to check Slack's requests with",
            ));
        }
        crate::slack::verify(&secret, webhook, chrono::Utc::now().timestamp())?;
        let request = crate::slack::parse(webhook)?;
        self.inbound.handle(rec, request).await
    }

    async fn forget(&self, _connection_id: &str) {}

    fn oauth(&self) -> Option<&dyn OAuthFlow> {
        Some(self)
    }
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

    #[test]
    fn slack_settings_name_a_workspace_and_an_oauth_client() {
        assert!(validate_settings(&json!({"channel": "slack", "team_id": "T0123ABCD"})).is_ok());
        assert!(validate_settings(&json!({"channel": "slack", "client_id": "1111.2222"})).is_ok());
        assert!(
            validate_settings(&json!({"channel": "slack", "team_id": "T0123ABCD",
            "client_id": "1111.2222", "scopes": ["chat:write", "commands"]}))
            .is_ok()
        );
        for bad in [
            json!({"channel": "slack", "team_id": "acme"}),
            json!({"channel": "slack"}),
            json!({"channel": "slack", "team_id": "E0123ABCD"}),
            json!({"channel": "slack", "client_id": "x y"}),
            json!({"channel": "slack", "scopes": []}),
            json!({"channel": "slack", "scopes": ["chat write"]}),
            json!({"channel": "slack", "smtp_host": "smtp.example.com"}),
        ] {
            assert!(validate_settings(&bad).is_err(), "{bad}");
        }
        assert!(slack_token("xoxb-1-2-abc"));
        assert!(!slack_token("Bearer xoxb-1"));
        assert!(!slack_token("xoxb-1\nX-Injected: 1"));
    }
}
