//! The integration catalog: every integration the platform names (the fleet's services plus
//! email, calendar and payments), what it is, whether a fleet service serves it today, and the
//! JSON Schema (draft 2020-12) of its connection `config` and `credentials`.
//!
//! The gateway validates connection bodies against these schemas with [`validate`], a small
//! validator for the subset of JSON Schema the catalog uses (`type`, `properties`, `required`,
//! `additionalProperties: false`, `minProperties`, `enum`, `minLength`, `maxLength`,
//! `pattern`, `format` `uri`/`email`/`hostname`, `minimum`, `maximum`); annotations such as
//! `title`, `description`, `default`, `examples` and `writeOnly` are ignored. A unit test
//! fails if a schema uses any other keyword, so nothing is silently left unchecked. The owning
//! service validates again (bac-odoo's `validate_connection`; an e2e test keeps both in step).
mod schema;

use std::sync::LazyLock;

use bac_runtime::ServiceKind;
pub use schema::{merge_patch, validate, Violation, ANNOTATIONS, SUPPORTED_KEYWORDS};
use serde_json::{json, Map, Value};

/// How an integration is served today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// A fleet service with a real domain.
    Domain(ServiceKind),
    /// A real process whose domain is not built: it answers `UNIMPLEMENTED` (and reports
    /// `disabled` from `GetStatus`).
    NotBuilt(ServiceKind),
    /// A fleet service that serves connections (the kit: settings, credentials, OAuth, the
    /// connection test, status) while its domain is not built yet.
    Connections(ServiceKind),
    /// No fleet service exists for it yet.
    NoService,
}

#[derive(Debug, Clone)]
pub struct Definition {
    pub key: &'static str,
    pub name: &'static str,
    pub category: &'static str,
    pub description: &'static str,
    pub auth_type: &'static str,
    /// What works today.
    pub capabilities: &'static [&'static str],
    /// What the product documents promise and is not built.
    pub planned_capabilities: &'static [&'static str],
    pub serving: Serving,
    pub config_schema: Value,
    pub credentials_schema: Value,
}

impl Definition {
    /// The service that answers for it (built or not).
    pub fn service(&self) -> Option<ServiceKind> {
        match self.serving {
            Serving::Domain(k) | Serving::NotBuilt(k) | Serving::Connections(k) => Some(k),
            Serving::NoService => None,
        }
    }

    /// Its service keeps connections: their bodies are checked against the schemas here.
    pub fn keeps_connections(&self) -> bool {
        matches!(self.serving, Serving::Domain(_) | Serving::Connections(_))
    }

    /// Whether a new connection with these settings and credentials is authorised next in
    /// the user's browser: an OAuth integration (or one whose settings choose OAuth, such as
    /// Google Workspace's `auth: "oauth"`) without a pasted refresh token.
    pub fn needs_authorization(
        &self,
        config: &Map<String, Value>,
        credentials: &Map<String, Value>,
    ) -> bool {
        let oauth = self.auth_type == "oauth2" || config.get("auth") == Some(&json!("oauth"));
        oauth && !credentials.contains_key("refresh_token")
    }

    /// A fleet service serves it with a real domain.
    pub fn served(&self) -> bool {
        matches!(self.serving, Serving::Domain(_))
    }

    pub fn to_json(&self) -> Value {
        json!({
            "key": self.key,
            "name": self.name,
            "category": self.category,
            "description": self.description,
            "auth_type": self.auth_type,
            "capabilities": self.capabilities,
            "planned_capabilities": self.planned_capabilities,
            "served": self.served(),
            "service": self.service().map(ServiceKind::binary),
            "service_state": match self.serving {
                Serving::Domain(_) => "built",
                Serving::NotBuilt(_) => "not_built",
                Serving::Connections(_) => "connections",
                Serving::NoService => "no_service",
            },
            "config_schema": self.config_schema,
            "credentials_schema": self.credentials_schema,
        })
    }
}

const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

fn object(title: &str, properties: Value, required: &[&str]) -> Value {
    json!({
        "$schema": DRAFT,
        "title": title,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

fn secret(description: &str) -> Value {
    json!({"type": "string", "minLength": 1, "writeOnly": true, "description": description})
}

fn port(default: u16) -> Value {
    json!({"type": "integer", "minimum": 1, "maximum": 65535, "default": default})
}

/// Every integration, in the order the dashboard lists them.
pub static CATALOG: LazyLock<Vec<Definition>> = LazyLock::new(|| {
    vec![
        Definition {
            key: "email",
            name: "Email",
            category: "communication",
            description: "Send automated emails, notifications and reports over SMTP; read over IMAP.",
            auth_type: "basic",
            capabilities: &[],
            planned_capabilities: &["email.send", "templates", "delivery_tracking", "imap.read"],
            serving: Serving::NoService,
            config_schema: object(
                "Email (SMTP/IMAP) settings",
                json!({
                    "smtp_host": {"type": "string", "format": "hostname", "minLength": 1},
                    "smtp_port": port(587),
                    "smtp_security": {"enum": ["starttls", "tls", "none"], "default": "starttls"},
                    "username": {"type": "string", "minLength": 1},
                    "from_address": {"type": "string", "format": "email"},
                    "from_name": {"type": "string", "maxLength": 200},
                    "imap_host": {"type": "string", "format": "hostname", "minLength": 1},
                    "imap_port": port(993),
                }),
                &["smtp_host", "smtp_port", "smtp_security", "username", "from_address"],
            ),
            credentials_schema: object(
                "Email credentials",
                json!({"password": secret("SMTP (and IMAP) password")}),
                &["password"],
            ),
        },
        Definition {
            key: "calendar",
            name: "Calendar",
            category: "productivity",
            description: "Sync appointments, meetings and schedules with Google Calendar or Outlook.",
            auth_type: "oauth2",
            capabilities: &[],
            planned_capabilities: &["events.sync", "events.create", "invitations"],
            serving: Serving::NoService,
            config_schema: object(
                "Calendar settings",
                json!({
                    "provider": {"enum": ["google", "outlook"]},
                    "account_email": {"type": "string", "format": "email"},
                    "calendar_id": {"type": "string", "minLength": 1, "default": "primary"},
                    "client_id": {"type": "string", "minLength": 1, "description": "OAuth client id"},
                    "sync_frequency": {"enum": ["real-time", "hourly", "daily", "manual"], "default": "real-time"},
                }),
                &["provider", "account_email", "client_id"],
            ),
            credentials_schema: object(
                "Calendar OAuth credentials",
                json!({
                    "client_secret": secret("OAuth client secret"),
                    "refresh_token": secret("OAuth refresh token"),
                }),
                &["client_secret", "refresh_token"],
            ),
        },
        Definition {
            key: "tally",
            name: "Tally",
            category: "accounting",
            description: "Sync ledgers and vouchers with TallyPrime / Tally.ERP 9 over its XML HTTP interface, directly or through bac-tally-agent beside Tally: groups, ledgers, cost centres, stock items and vouchers synced on ALTERID, ledgers and vouchers written back.",
            auth_type: "none",
            capabilities: &["configuration", "test_connection", "ledgers.sync", "vouchers.sync", "stock_items.sync", "office_agent"],
            planned_capabilities: &[],
            serving: Serving::Connections(ServiceKind::Tally),
            config_schema: object(
                "Tally settings",
                json!({
                    "tally_server_host": {"type": "string", "format": "hostname", "minLength": 1},
                    "tally_server_port": port(9000),
                    "company_name_in_tally": {"type": "string", "minLength": 1},
                    "is_enabled": {"type": "boolean", "default": true},
                    "sync_frequency": {"enum": ["manual", "hourly", "daily", "weekly"], "default": "manual"},
                    "auto_sync_enabled": {"type": "boolean", "default": false},
                    "connection_mode": {"enum": ["direct", "agent"], "default": "direct"},
                }),
                &["tally_server_host", "company_name_in_tally"],
            ),
            // Tally's XML server has no authentication of its own.
            credentials_schema: object("Tally credentials (none)", json!({}), &[]),
        },
        Definition {
            key: "payments",
            name: "Payments",
            category: "payments",
            description: "Process online payments and reconcile transactions (Razorpay, Stripe, PayPal).",
            auth_type: "api_key",
            capabilities: &[],
            planned_capabilities: &["payments.create", "reconciliation", "webhooks"],
            serving: Serving::NoService,
            config_schema: object(
                "Payment gateway settings",
                json!({
                    "provider": {"enum": ["razorpay", "stripe", "paypal"]},
                    "mode": {"enum": ["test", "live"]},
                    "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
                    "account_id": {"type": "string", "minLength": 1},
                }),
                &["provider", "mode"],
            ),
            credentials_schema: object(
                "Payment gateway credentials",
                json!({
                    "api_key": secret("Key id / secret key / client id of the gateway"),
                    "api_secret": secret("Key secret / client secret, where the gateway has one"),
                    "webhook_secret": secret("Signing secret of the gateway's webhooks"),
                }),
                &["api_key"],
            ),
        },
        Definition {
            key: "zoho",
            name: "Zoho",
            category: "business_suite",
            description: "Sync data with Zoho CRM, Books, Desk, People and Inventory.",
            auth_type: "oauth2",
            capabilities: &["crm.leads", "crm.contacts", "crm.deals", "books.invoices", "books.customers", "desk.tickets", "people.employees", "inventory.items", "mail.send", "crm.notifications", "sync"],
            planned_capabilities: &[],
            serving: Serving::Domain(ServiceKind::Zoho),
            config_schema: object(
                "Zoho settings",
                json!({
                    // bac_zoho::dc: the domain suffix of the account's Zoho URL
                    "data_center": {"enum": ["com", "eu", "in", "com.au", "jp", "com.cn", "ca", "sa", "uk", "ae"]},
                    "client_id": {"type": "string", "minLength": 1, "description": "OAuth client id"},
                    "organization_id": {"type": "string", "pattern": "^[0-9]{1,40}$", "description": "Zoho Books/Inventory organization_id (default: the user's default organisation)"},
                    "desk_org_id": {"type": "string", "pattern": "^[0-9]{1,40}$", "description": "Zoho Desk orgId (default: the user's default Desk organisation)"},
                    "desk_department_id": {"type": "string", "pattern": "^[0-9]{1,40}$", "description": "Zoho Desk department new tickets go to (default: the default department)"},
                    "mail_account_id": {"type": "string", "pattern": "^[0-9]{1,40}$", "description": "Zoho Mail account mail is sent from (default: the user's first account)"},
                    "scopes": {"type": "array", "description": "Zoho scopes to ask for (default: every scope the fleet's Zoho routes use; docs/zoho.md)"},
                    "calls_per_minute": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "API calls a minute the organisation's credits allow (default 100)"},
                    "intent_field": {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,99}$", "description": "API name of a custom text field that keeps each create's idempotency key (e.g. BAC_Intent_Id)"},
                    "notifications": {"type": "boolean", "description": "Keep a Zoho CRM notification channel to the gateway (default true; needs BAC_PUBLIC_URL and ZohoCRM.notifications.ALL)"},
                    "granted_scopes": {"type": "array", "readOnly": true, "description": "Set by the fleet from the authorisation"},
                    "authorized_at": {"type": "string", "readOnly": true, "description": "Set by the fleet from the authorisation"},
                    "api_domain": {"type": "string", "readOnly": true, "description": "Set by the fleet from Zoho's token answer"},
                }),
                &["data_center", "client_id"],
            ),
            credentials_schema: object(
                "Zoho OAuth credentials",
                json!({
                    "client_secret": secret("OAuth client secret"),
                    "refresh_token": secret("OAuth refresh token of a self-client; absent: the create answers an authorization_url"),
                }),
                &["client_secret"],
            ),
        },
        Definition {
            key: "odoo",
            name: "Odoo",
            category: "erp",
            description: "Odoo ERP (16-19) over its external JSON-RPC API, or the JSON-2 API of Odoo 19+.",
            auth_type: "basic",
            capabilities: &[
                "connection.test",
                "crm_lead.create",
                "crm_lead.list",
                "crm_lead.get",
                "crm_lead.update",
                "sale_order.create",
                "sale_order.list",
                "invoice.create",
                "invoice.list",
                "product.list",
                "stock.list",
                "employee.list",
                "execute_kw",
                "events.crm_lead",
                "events.partner",
                "events.sale_order",
                "events.invoice",
            ],
            planned_capabilities: &["sync"],
            serving: Serving::Domain(ServiceKind::Odoo),
            // Must accept exactly what bac-odoo's `validate_settings` accepts.
            config_schema: object(
                "Odoo settings",
                json!({
                    "url": {
                        "type": "string",
                        "format": "uri",
                        "pattern": "^https?://[^/?#@\\s]+([/?#]\\S*)?$",
                        "description": "Base URL of the Odoo server, http or https, without credentials",
                        "examples": ["https://mycompany.odoo.com"],
                    },
                    "database": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "Odoo database name"},
                    "username": {"type": "string", "minLength": 1, "pattern": "\\S", "description": "Login of the integration user"},
                    "protocol": {
                        "type": "string",
                        "enum": ["auto", "jsonrpc", "json2"],
                        "default": "auto",
                        "description": "Odoo API to use: auto picks JSON-2 for Odoo 19+ when credentials.api_key is set, JSON-RPC otherwise",
                    },
                    "allowed_models": {
                        "type": "array",
                        "description": "Odoo model names (e.g. res.partner) that POST /api/v1/odoo/execute_kw may call; default: crm.lead, res.partner, sale.order, account.move, product.product, stock.quant, hr.employee",
                        "examples": [["res.partner", "crm.lead", "project.task"]],
                    },
                    "allow_unlink": {
                        "type": "boolean",
                        "default": false,
                        "description": "Let execute_kw call unlink (delete records) on the allowed models",
                    },
                    "sync_lookback_seconds": {
                        "type": "integer",
                        "minimum": 60,
                        "maximum": 86400,
                        "default": 300,
                        "description": "How far before the newest write_date it saw an incremental sync reads again (Odoo stamps write_date when a transaction starts and a long one commits later)",
                    },
                    "intent_fields": {
                        "type": "object",
                        "description": "Model name -> char field that carries the platform's intent id on creates (defaults: crm.lead referred, res.partner ref, sale.order client_order_ref, account.move ref, product.product default_code, hr.employee identification_id)",
                        "examples": [{"hr.employee": "x_bac_intent_id"}],
                    },
                }),
                &["url", "database", "username"],
            ),
            credentials_schema: json!({
                "$schema": DRAFT,
                "title": "Odoo credentials: password or API key",
                "type": "object",
                "properties": {
                    "password": secret("The user's password"),
                    "api_key": secret("An Odoo API key (used instead of the password when both are set)"),
                },
                "minProperties": 1,
                "additionalProperties": false,
            }),
        },
        Definition {
            key: "google-workspace",
            name: "Google Workspace",
            category: "productivity",
            description: "Gmail, Calendar, Drive and the Admin Directory, as a service account with domain-wide delegation or a user's OAuth grant.",
            auth_type: "service_account",
            capabilities: &["gmail.send", "gmail.messages", "calendar.events", "drive.files", "admin.users", "docs", "sheets", "slides", "forms", "chat", "tasks", "calendar.push", "drive.push", "sync"],
            planned_capabilities: &["gmail.pubsub"],
            serving: Serving::Domain(ServiceKind::GoogleWorkspace),
            // Must accept what bac-google-workspace's `validate_settings` accepts.
            config_schema: object(
                "Google Workspace settings",
                json!({
                    "auth": {"enum": ["service_account", "oauth"], "description": "service_account (domain-wide delegation, default) or oauth (a user's consent)"},
                    "domain": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": "^[A-Za-z0-9.-]+\\.[A-Za-z0-9-]+$", "description": "The Workspace domain (yourcompany.com)"},
                    "subject": {"type": "string", "format": "email", "description": "The user the connection acts as unless a request names one (an administrator, for the Directory)"},
                    "users": {"type": "array", "description": "Up to 500 addresses of the domain whose calendars and files are synced (default: the subject)"},
                    "scopes": {"type": "array", "description": "Google scopes to ask for (default: every scope the fleet's routes use; docs/google-workspace.md)"},
                    "client_id": {"type": "string", "minLength": 1, "description": "OAuth client id (auth oauth only)"},
                    "calls_per_minute": {"type": "integer", "minimum": 1, "maximum": 100000, "description": "Calls a minute per user (default 600)"},
                    "push": {"type": "boolean", "description": "Keep Calendar push channels to the gateway (default true; needs BAC_PUBLIC_URL)"},
                    "granted_scopes": {"type": "array", "readOnly": true, "description": "Set by the fleet from the authorisation"},
                    "authorized_at": {"type": "string", "readOnly": true, "description": "Set by the fleet from the authorisation"},
                }),
                &["domain", "subject"],
            ),
            credentials_schema: object(
                "Google Workspace credentials",
                json!({
                    "service_account_json": secret("The service account's JSON key file, as text (auth service_account)"),
                    "client_secret": secret("OAuth client secret (auth oauth)"),
                    "refresh_token": secret("A user's refresh token (auth oauth; absent: the create answers an authorization_url)"),
                }),
                &[],
            ),
        },
        Definition {
            key: "messaging",
            name: "Messaging",
            category: "communication",
            description: "Email over the tenant's SMTP server with templates, delivery tracking and bounces; Microsoft Teams messages (incoming webhooks, and a bot through the Bot Framework) and Google Chat messages and a Chat app's events; Slack (bot token or OAuth v2, Block Kit and threads, the Events API and slash commands); signed webhooks to subscribers.",
            auth_type: "basic",
            capabilities: &["email.send", "templates", "delivery_tracking", "imap.bounces", "teams.send", "teams.bot", "google_chat.send", "google_chat.app", "slack.send", "slack.events", "slack.commands", "webhooks"],
            planned_capabilities: &[],
            serving: Serving::Domain(ServiceKind::Messaging),
            config_schema: object(
                "Messaging connection settings: channel email (an SMTP server, and the IMAP mailbox bounces come back to) takes the smtp_* / imap_* settings; teams and google_chat take none (their incoming webhook URL is a credential); slack takes the workspace (team_id, learnt on authorisation), and for OAuth v2 the app's client_id and the scopes to ask for; teams_bot takes the bot's app_id (and app_tenant_id for a single-tenant bot); google_chat_app takes the app's project_number",
                json!({
                    "channel": {"enum": ["email", "teams", "google_chat", "slack", "teams_bot", "google_chat_app"], "description": "What the connection sends through"},
                    "project_number": {"type": "string", "pattern": "^[0-9]{1,20}$", "description": "google_chat_app: the Google Cloud project number of the Chat app (the audience of Chat's tokens)"},
                    "app_id": {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "description": "teams_bot: the bot's Microsoft App ID"},
                    "app_tenant_id": {"type": "string", "pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", "description": "teams_bot: the Entra tenant of a single-tenant bot"},
                    "team_id": {"type": "string", "pattern": "^[TE][A-Z0-9]{2,19}$", "description": "Slack: the workspace; events and commands from another are refused"},
                    "client_id": {"type": "string", "pattern": "^[0-9.]{1,64}$", "description": "Slack: the app's client id, to install it through OAuth v2"},
                    "scopes": {"type": "array", "description": "Slack: bot scopes asked for, at most 50 (default chat:write, commands, app_mentions:read, channels:history)"},
                    "smtp_host": {"type": "string", "format": "hostname", "minLength": 1},
                    "smtp_port": port(587),
                    "smtp_security": {"enum": ["starttls", "tls", "none"], "default": "starttls", "description": "starttls on 587, tls (implicit) on 465; none only for a relay on a trusted network"},
                    "username": {"type": "string", "minLength": 1, "maxLength": 320, "description": "The SMTP login"},
                    "from_address": {"type": "string", "format": "email", "description": "The sender of every email"},
                    "from_name": {"type": "string", "maxLength": 200},
                    "imap_host": {"type": "string", "format": "hostname", "minLength": 1},
                    "imap_port": port(993),
                    "imap_security": {"enum": ["tls", "none"], "default": "tls", "description": "The mailbox bounces are read from: tls (implicit, port 993) or none"},
                }),
                &["channel"],
            ),
            credentials_schema: json!({
                "$schema": DRAFT,
                "title": "Messaging credentials: the SMTP password (email), the incoming webhook URL (teams, google_chat), the Slack app's bot token, signing secret and client secret (slack), the bot's app_password (teams_bot); none for google_chat_app",
                "type": "object",
                "properties": {
                    "password": secret("The SMTP (and IMAP) password"),
                    "webhook_url": secret("The incoming webhook's URL (Teams, Google Chat): whoever has it can post"),
                    "bot_token": secret("Slack: the bot token (xoxb-...) of an app installed by hand; OAuth installs store their own"),
                    "signing_secret": secret("Slack: the app's signing secret, which Slack's requests are checked with"),
                    "client_secret": secret("Slack: the app's client secret, for OAuth v2"),
                    "app_password": secret("teams_bot: the bot's client secret (Azure Bot's Microsoft App password)"),
                },
                "additionalProperties": false,
            }),
        },
    ]
});

/// The definition of `key` (`google-workspace`; `google_workspace` is accepted too).
pub fn get(key: &str) -> Option<&'static Definition> {
    CATALOG
        .iter()
        .find(|d| d.key == key || d.key.replace('-', "_") == key)
}

/// All keys, for error messages.
pub fn keys() -> String {
    CATALOG.iter().map(|d| d.key).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keywords_of(schema: &Value, at: &str, found: &mut Vec<String>) {
        let Some(s) = schema.as_object() else { return };
        for (k, v) in s {
            if !SUPPORTED_KEYWORDS.contains(&k.as_str()) && !ANNOTATIONS.contains(&k.as_str()) {
                found.push(format!("{at}: {k}"));
            }
            if k == "pattern" {
                assert!(regex::Regex::new(v.as_str().unwrap_or("(")).is_ok(), "{at}");
            }
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (name, sub) in props {
                keywords_of(sub, &format!("{at}.{name}"), found);
            }
        }
    }

    #[test]
    fn every_schema_uses_only_what_the_validator_checks() {
        let mut found = Vec::new();
        for d in CATALOG.iter() {
            assert_eq!(d.config_schema["$schema"], DRAFT);
            assert_eq!(d.credentials_schema["$schema"], DRAFT);
            keywords_of(&d.config_schema, &format!("{}.config", d.key), &mut found);
            keywords_of(
                &d.credentials_schema,
                &format!("{}.credentials", d.key),
                &mut found,
            );
        }
        assert!(found.is_empty(), "unsupported keywords: {found:?}");
        let mut keys: Vec<_> = CATALOG.iter().map(|d| d.key).collect();
        let mut matrix = crate::authz::INTEGRATIONS.to_vec();
        keys.sort_unstable();
        matrix.sort_unstable();
        assert_eq!(
            keys, matrix,
            "the catalog and the access matrix name the same integrations"
        );
    }

    #[test]
    fn violations_name_the_field() {
        let odoo = get("odoo").unwrap();
        let ok = json!({"url": "https://odoo.example.com", "database": "db", "username": "u"});
        assert_eq!(validate(&odoo.config_schema, &ok, "config"), Ok(()));
        let cases = [
            (
                json!({"url": "https://o", "username": "u"}),
                "config.database",
                "is required",
            ),
            (
                json!({"url": "ftp://o", "database": "d", "username": "u"}),
                "config.url",
                "pattern",
            ),
            (
                json!({"url": "not a url", "database": "d", "username": "u"}),
                "config.url",
                "uri",
            ),
            (
                json!({"url": "http://u:p@o", "database": "d", "username": "u"}),
                "config.url",
                "pattern",
            ),
            (
                json!({"url": "http://o", "database": " ", "username": "u"}),
                "config.database",
                "pattern",
            ),
            (
                json!({"url": "http://o", "database": "d", "username": 7}),
                "config.username",
                "must be a string",
            ),
            (
                json!({"url": "http://o", "database": "d", "username": "u", "password": "p"}),
                "config.password",
                "not a known field",
            ),
        ];
        for (value, path, says) in cases {
            let v = validate(&odoo.config_schema, &value, "config").unwrap_err();
            assert_eq!(v.path, path, "{value}");
            assert!(v.message.contains(says), "{value}: {v}");
        }
        let creds = &odoo.credentials_schema;
        assert!(validate(creds, &json!({"password": "p"}), "credentials").is_ok());
        assert!(validate(creds, &json!({"api_key": "k"}), "credentials").is_ok());
        assert_eq!(
            validate(creds, &json!({}), "credentials").unwrap_err().path,
            "credentials"
        );
        assert_eq!(
            validate(creds, &json!({"token": "t"}), "credentials")
                .unwrap_err()
                .path,
            "credentials.token"
        );
        let tally = get("tally").unwrap();
        let v = validate(
            &tally.config_schema,
            &json!({"tally_server_host": "localhost", "tally_server_port": 70000, "company_name_in_tally": "Demo"}),
            "config",
        )
        .unwrap_err();
        assert_eq!(v.path, "config.tally_server_port");
        let v = validate(
            &tally.config_schema,
            &json!({"tally_server_host": "localhost", "tally_server_port": 9000, "company_name_in_tally": "Demo", "sync_frequency": "often"}),
            "config",
        )
        .unwrap_err();
        assert!(v.message.contains("manual, hourly"), "{v}");
        assert!(get("google_workspace").is_some() && get("sap").is_none());
    }

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "n": 1}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "n": 1}));
    }
}
