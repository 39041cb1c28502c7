//! Google Workspace's part of the kit's `IntegrationService`. A connection is either a
//! service account with domain-wide delegation (its JSON key in Vault; an RS256 assertion per
//! user it acts as, exchanged at Google's token endpoint and cached per user by the kit) or a
//! user's own OAuth grant (offline access, PKCE, incremental scopes; the refresh token in
//! Vault). Tested by reading the acting user's Directory entry with a token of the kit.
use std::collections::HashMap;

use bac_connector::{
    oauth::{Authorization, OAuthFlow},
    Checked, Connector, Grant, TokenGrant, Webhook, WebhookInput,
};
use bac_runtime::{connections::ConnectionRecord, vault::Secret, ErrorCode, ServiceError};
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::client::{Api, GoogleCall, GoogleClient, Hosts};

/// What a connection asks for when its settings name no `scopes`: what the fleet's routes
/// and syncs use (docs/google-workspace.md lists them per route). A service account's
/// delegation in the Admin console must grant each.
pub const DEFAULT_SCOPES: &[&str] = &[
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/drive",
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/documents",
    "https://www.googleapis.com/auth/spreadsheets",
    "https://www.googleapis.com/auth/presentations",
    "https://www.googleapis.com/auth/forms.body",
    "https://www.googleapis.com/auth/forms.responses.readonly",
    "https://www.googleapis.com/auth/chat.messages",
    "https://www.googleapis.com/auth/tasks",
];

/// Settings the fleet writes itself after an authorisation.
const LEARNT: &[&str] = &["granted_scopes", "authorized_at"];

fn bad(msg: impl Into<String>) -> ServiceError {
    ServiceError::new("google-workspace", ErrorCode::InvalidRequest, msg)
}

/// An address of the domain (`ada@example.com`), as Google accepts a user key.
pub fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && s.len() <= 320
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "@.-_+'".contains(c))
}

/// How a connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Domain-wide delegation: acts as any user of the domain.
    ServiceAccount,
    /// One user's consent: acts as that user only.
    OAuth,
}

pub fn auth_of(settings: &Value) -> Auth {
    match settings.get("auth").and_then(Value::as_str) {
        Some("oauth") => Auth::OAuth,
        _ => Auth::ServiceAccount,
    }
}

/// The user a connection acts as unless a request names another.
pub fn subject_of(settings: &Value) -> &str {
    settings
        .get("subject")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The users whose mailboxes, calendars and drives are synced: `users`, else the subject.
pub fn synced_users(settings: &Value) -> Vec<String> {
    match settings.get("users").and_then(Value::as_array) {
        Some(a) if !a.is_empty() => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_lowercase)
            .collect(),
        _ => vec![subject_of(settings).to_lowercase()],
    }
}

/// The scopes a connection asks for.
pub fn scopes_of(settings: &Value) -> Vec<String> {
    settings
        .get("scopes")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_else(|| DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect())
}

/// Checks a connection's settings. `subject` is the user the connection acts as by default
/// (a service account's administrator, or the user who consents); `domain` the Workspace
/// domain every acted-as user must belong to.
pub fn validate_settings(config: &Value) -> Result<Value, ServiceError> {
    let Some(obj) = config.as_object() else {
        return Err(bad("config must be an object"));
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "auth"
                | "domain"
                | "subject"
                | "users"
                | "scopes"
                | "client_id"
                | "calls_per_minute"
                | "push"
        ) && !LEARNT.contains(&key.as_str())
        {
            return Err(bad(format!(
                "config.{key} is not a Google Workspace setting"
            )));
        }
    }
    let auth = match obj.get("auth") {
        None => Auth::ServiceAccount,
        Some(v) => match v.as_str() {
            Some("service_account") => Auth::ServiceAccount,
            Some("oauth") => Auth::OAuth,
            _ => {
                return Err(bad(
                    "config.auth must be \"service_account\" (domain-wide delegation) or \"oauth\" (a user's consent)",
                ))
            }
        },
    };
    let domain = obj.get("domain").and_then(Value::as_str).unwrap_or("");
    if domain.is_empty()
        || domain.len() > 253
        || !domain.contains('.')
        || !domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return Err(bad(
            "config.domain is required: the Workspace domain (yourcompany.com)",
        ));
    }
    let in_domain = |email: &str| {
        email
            .rsplit_once('@')
            .is_some_and(|(_, d)| d.eq_ignore_ascii_case(domain))
    };
    let subject = obj.get("subject").and_then(Value::as_str).unwrap_or("");
    if !valid_email(subject) || !in_domain(subject) {
        return Err(bad(format!(
            "config.subject is required: the address of a user of {domain} the connection acts as (an administrator, for the Directory)"
        )));
    }
    if let Some(users) = obj.get("users") {
        let ok = users.as_array().is_some_and(|a| {
            a.len() <= 500
                && a.iter()
                    .all(|u| u.as_str().is_some_and(|u| valid_email(u) && in_domain(u)))
        });
        if !ok {
            return Err(bad(format!(
                "config.users must be a list of at most 500 addresses of {domain} (whose mail, calendars and files are synced)"
            )));
        }
        if auth == Auth::OAuth
            && users
                .as_array()
                .is_some_and(|a| a.iter().any(|u| u.as_str() != Some(subject)))
        {
            return Err(bad(
                "config.users: a user's OAuth connection reads that user's data only; use a service account with domain-wide delegation for several users",
            ));
        }
    }
    match (auth, obj.get("client_id").and_then(Value::as_str)) {
        (Auth::OAuth, Some(c))
            if !c.trim().is_empty() && c.len() <= 200 => {}
        (Auth::OAuth, _) => {
            return Err(bad(
                "config.client_id is required for auth \"oauth\" (the OAuth client id of your Google Cloud project)",
            ))
        }
        (Auth::ServiceAccount, Some(_)) => {
            return Err(bad(
                "config.client_id belongs to auth \"oauth\"; a service account's client is in its key file",
            ))
        }
        (Auth::ServiceAccount, None) => {}
    }
    if let Some(scopes) = obj.get("scopes") {
        let ok = scopes.as_array().is_some_and(|a| {
            !a.is_empty()
                && a.len() <= 50
                && a.iter().all(|s| {
                    s.as_str().is_some_and(|s| {
                        s.starts_with("https://www.googleapis.com/auth/")
                            && s.len() <= 200
                            && s.bytes().all(|b| b.is_ascii_graphic())
                    })
                })
        });
        if !ok {
            return Err(bad(
                "config.scopes must be a list of Google scopes such as https://www.googleapis.com/auth/gmail.send",
            ));
        }
    }
    if obj.get("push").is_some_and(|p| !p.is_boolean()) {
        return Err(bad(
            "config.push must be true or false (Calendar push channels; default true, needs BAC_PUBLIC_URL)",
        ));
    }
    let mut out = config.clone();
    if let Some(n) = obj.get("calls_per_minute") {
        // numbers cross gRPC as doubles: 600 arrives as 600.0
        match n
            .as_f64()
            .filter(|n| n.fract() == 0.0 && (1.0..=100_000.0).contains(n))
        {
            Some(n) => out["calls_per_minute"] = json!(n as u64),
            None => {
                return Err(bad(
                    "config.calls_per_minute must be a whole number from 1 to 100000 (calls a minute per user)",
                ))
            }
        }
    }
    out["domain"] = json!(domain.to_lowercase());
    out["subject"] = json!(subject.to_lowercase());
    Ok(out)
}

/// What a service account's key file holds that the fleet uses.
#[derive(Debug, Clone)]
pub struct ServiceAccountKey {
    pub client_email: String,
    pub private_key_id: Option<String>,
    pub private_key: SecretString,
}

/// Reads a key file (`"type": "service_account"`); the error never repeats its content.
pub fn read_key(text: &str) -> Result<ServiceAccountKey, ServiceError> {
    let v: Value = serde_json::from_str(text).map_err(|_| {
        bad("credentials.service_account_json is not JSON: paste the whole key file Google gave you")
    })?;
    if v.get("type").and_then(Value::as_str) != Some("service_account") {
        return Err(bad(
            "credentials.service_account_json is not a service account key (its \"type\" must be \"service_account\")",
        ));
    }
    let email = v.get("client_email").and_then(Value::as_str).unwrap_or("");
    if !valid_email(email) {
        return Err(bad("credentials.service_account_json has no client_email"));
    }
    let key = v.get("private_key").and_then(Value::as_str).unwrap_or("");
    if !key.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(bad(
            "credentials.service_account_json has no private_key in PEM form",
        ));
    }
    Ok(ServiceAccountKey {
        client_email: email.to_string(),
        private_key_id: v
            .get("private_key_id")
            .and_then(Value::as_str)
            .map(String::from),
        private_key: SecretString::from(key.to_string()),
    })
}

/// A connection's credentials: the key file for a service account; the client secret and
/// (once the user consented, or pasted) the refresh token for OAuth.
pub fn validate_secrets(secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
    for (k, v) in secrets {
        if !matches!(
            k.as_str(),
            "service_account_json" | "client_secret" | "refresh_token"
        ) {
            return Err(bad(format!(
                "credentials.{k} is not a Google Workspace credential"
            )));
        }
        if v.len() > 16_384 {
            return Err(bad(format!("credentials.{k} is too long")));
        }
    }
    match (
        secrets.get("service_account_json"),
        secrets.get("client_secret"),
    ) {
        (Some(key), None) => read_key(key).map(|_| ()),
        (None, Some(s)) if !s.is_empty() => Ok(()),
        (Some(_), Some(_)) => Err(bad(
            "give credentials.service_account_json (a service account) or credentials.client_secret (a user's OAuth), not both",
        )),
        _ => Err(bad(
            "credentials.service_account_json is required (the service account's JSON key file, as text); for a user's OAuth connection, credentials.client_secret",
        )),
    }
}

/// How a connection gets its tokens: a JWT assertion per acted-as user, or the user's
/// refresh token.
#[derive(Clone)]
pub struct GoogleGrant {
    pub hosts: Hosts,
}

impl TokenGrant for GoogleGrant {
    fn grant(
        &self,
        rec: &ConnectionRecord,
        secret: &Secret,
        subject: Option<&str>,
    ) -> Result<Grant, ServiceError> {
        let scopes = scopes_of(&rec.config);
        match auth_of(&rec.config) {
            Auth::ServiceAccount => {
                let text = secret
                    .data
                    .get("service_account_json")
                    .map(secrecy::ExposeSecret::expose_secret)
                    .ok_or_else(|| {
                        ServiceError::new(
                            "google-workspace",
                            ErrorCode::NotConnected,
                            format!("connection {} has no service account key", rec.id),
                        )
                        .suggest("Update the connection with credentials.service_account_json")
                    })?;
                let key = read_key(text)?;
                Ok(Grant::JwtBearer {
                    token_url: self.hosts.token_url(),
                    issuer: key.client_email,
                    key_id: key.private_key_id,
                    private_key: key.private_key,
                    scopes,
                    subject: Some(
                        subject
                            .filter(|s| !s.is_empty())
                            .unwrap_or(subject_of(&rec.config))
                            .to_string(),
                    ),
                })
            }
            Auth::OAuth => {
                let refresh_token = secret.data.get("refresh_token").cloned().ok_or_else(|| {
                    ServiceError::new(
                        "google-workspace",
                        ErrorCode::NotConnected,
                        format!("connection {} is not authorised yet", rec.id),
                    )
                    .suggest(format!(
                        "Open the authorization_url of POST /api/v1/integrations/connections/{}/authorize",
                        rec.id
                    ))
                })?;
                Ok(Grant::RefreshToken {
                    token_url: self.hosts.token_url(),
                    client_id: rec.setting("client_id").to_string(),
                    client_secret: secret.data.get("client_secret").cloned(),
                    refresh_token,
                    scope: None,
                })
            }
        }
    }
}

pub struct GoogleConnector {
    client: GoogleClient,
    push: Option<bac_connector::channels::ChannelKeeper>,
}

impl GoogleConnector {
    pub fn new(client: GoogleClient) -> Self {
        GoogleConnector { client, push: None }
    }

    /// The keeper of the connections' Calendar push channels.
    pub fn with_push(mut self, keeper: bac_connector::channels::ChannelKeeper) -> Self {
        self.push = Some(keeper);
        self
    }
}

impl OAuthFlow for GoogleConnector {
    fn authorization(&self, settings: &Value) -> Result<Authorization, ServiceError> {
        if auth_of(settings) != Auth::OAuth {
            return Err(bad(
                "a service account connection is not authorised in a browser: its key file and the domain-wide delegation in the Admin console authorise it",
            ));
        }
        Ok(Authorization {
            authorize_url: self.client.hosts().authorize_url(),
            scopes: scopes_of(settings),
            scope_separator: " ",
            // a refresh token comes with offline access; scopes granted before are kept
            params: vec![
                ("access_type".into(), "offline".into()),
                ("include_granted_scopes".into(), "true".into()),
                ("prompt".into(), "consent".into()),
                ("login_hint".into(), subject_of(settings).to_string()),
            ],
        })
    }

    fn token_url(
        &self,
        _settings: &Value,
        _callback: &HashMap<String, String>,
    ) -> Result<String, ServiceError> {
        Ok(self.client.hosts().token_url())
    }
}

#[tonic::async_trait]
impl Connector for GoogleConnector {
    const KEY: &'static str = "google-workspace";
    const NAME: &'static str = "Google Workspace";

    fn settings(&self, config: &Value) -> Result<Value, ServiceError> {
        validate_settings(config)
    }

    fn secrets(&self, secrets: &HashMap<String, String>) -> Result<(), ServiceError> {
        validate_secrets(secrets)
    }

    fn configured(&self, rec: &ConnectionRecord) -> bool {
        let has = |f: &str| rec.secret_fields.iter().any(|s| s == f);
        validate_settings(&rec.config).is_ok()
            && match auth_of(&rec.config) {
                Auth::ServiceAccount => has("service_account_json"),
                Auth::OAuth => has("client_secret") && has("refresh_token"),
            }
    }

    async fn check(&self, rec: &ConnectionRecord) -> Result<Checked, ServiceError> {
        let subject = subject_of(&rec.config).to_string();
        let answer = self
            .client
            .send(
                rec,
                &subject,
                &GoogleCall::get(
                    Api::Calendar,
                    "/calendar/v3/calendars/primary/events",
                    "calendar/events.list",
                )
                .query("maxResults", "1"),
            )
            .await?;
        let tz = answer.body["timeZone"]
            .as_str()
            .unwrap_or("UTC")
            .to_string();
        Ok(Checked {
            message: format!(
                "Connected to Google Workspace as {subject} (calendar time zone {tz})"
            ),
            server_version: "calendar/v3".into(),
        })
    }

    fn webhook_entity(&self, name: &str) -> Option<&'static str> {
        crate::sync::ENTITIES.iter().copied().find(|e| *e == name)
    }

    /// A Calendar push notification from a channel the keeper opened: it names no changes,
    /// only that the channel's calendar changed, so the partition resyncs incrementally.
    async fn webhook(
        &self,
        _rec: &ConnectionRecord,
        w: &Webhook,
    ) -> Result<WebhookInput, ServiceError> {
        crate::channels::read_notification(w)
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
    fn settings_need_a_domain_and_a_subject_of_it() {
        let ok = json!({"domain": "Example.com", "subject": "Admin@example.com"});
        let out = validate_settings(&ok).unwrap();
        assert_eq!(out["subject"], "admin@example.com");
        assert_eq!(out["domain"], "example.com");
        assert!(validate_settings(&json!({"domain": "example.com"})).is_err());
        assert!(
            validate_settings(&json!({"domain": "example.com", "subject": "a@other.com"})).is_err()
        );
        let users = json!({"domain": "example.com", "subject": "a@example.com", "users": ["b@example.com", "c@example.com"]});
        assert!(validate_settings(&users).is_ok());
        let stranger =
            json!({"domain": "example.com", "subject": "a@example.com", "users": ["b@evil.com"]});
        assert!(validate_settings(&stranger).is_err());
        let oauth = json!({"auth": "oauth", "domain": "example.com", "subject": "a@example.com"});
        assert!(validate_settings(&oauth)
            .unwrap_err()
            .message
            .contains("client_id"));
        let oauth_users = json!({"auth": "oauth", "client_id": "x", "domain": "example.com", "subject": "a@example.com", "users": ["b@example.com"]});
        assert!(validate_settings(&oauth_users).is_err());
        let scopes =
            json!({"domain": "example.com", "subject": "a@example.com", "scopes": ["gmail"]});
        assert!(validate_settings(&scopes).is_err());
        let extra = json!({"domain": "example.com", "subject": "a@example.com", "url": "x"});
        assert!(validate_settings(&extra).is_err());
    }

    #[test]
    fn credentials_are_a_key_file_or_an_oauth_client() {
        let s = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let key =
            json!({"type": "service_account", "client_email": "sync@p.iam.gserviceaccount.com",
            "private_key": "-----BEGIN PRIVATE KEY-----\nMII\n-----END PRIVATE KEY-----\n"})
            .to_string();
        assert!(validate_secrets(&s(&[("service_account_json", &key)])).is_ok());
        assert!(validate_secrets(&s(&[("client_secret", "x")])).is_ok());
        assert!(validate_secrets(&s(&[])).is_err());
        let e = validate_secrets(&s(&[(
            "service_account_json",
            "{\"private_key\": \"sekrit\"}",
        )]))
        .unwrap_err();
        assert!(!e.message.contains("sekrit"), "{}", e.message);
        assert!(validate_secrets(&s(&[
            ("service_account_json", &key),
            ("client_secret", "x")
        ]))
        .is_err());
        assert!(validate_secrets(&s(&[("password", "p")])).is_err());
    }
}
