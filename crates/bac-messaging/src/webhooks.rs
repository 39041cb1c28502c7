//! Signed webhooks to subscribers (Standard Webhooks): a tenant registers endpoints with the
//! event types they want; [`fanout`] reads the fleet's topics and records each matching event
//! as a message per endpoint; [`sender`] posts them, signed ([`signature`]), in order per
//! endpoint, retrying with backoff and disabling an endpoint that keeps failing. This module
//! is the endpoints' store: settings in Postgres, signing secrets in Vault
//! (`bac/<tenant>/messaging/webhook-<id>`), never in a row, a log or an answer other than the
//! one that creates or rotates them.
pub mod fanout;
pub mod sender;
pub mod signature;

use std::collections::HashMap;

use bac_runtime::{
    connections::timestamp, db::Pool, upstream::egress::EgressPolicy, vault::Vault, ErrorCode,
    ServiceError,
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};

use crate::bad;

/// The integrations whose events an endpoint may ask for (the second part of a type).
const SOURCES: &[&str] = &[
    "odoo",
    "zoho",
    "google_workspace",
    "tally",
    "messaging",
    "integrations",
];

/// Endpoints a tenant may have.
pub const MAX_ENDPOINTS: i64 = 50;

/// An endpoint as stored.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: String,
    pub tenant_id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub description: String,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub pending: u32,
}

impl Endpoint {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        Endpoint {
            id: r.get("id"),
            tenant_id: r.get("tenant_id"),
            url: r.get("url"),
            event_types: r.get("event_types"),
            description: r.get("description"),
            enabled: r.get("enabled"),
            disabled_reason: r.get("disabled_reason"),
            failing_since: r.get("failing_since"),
            created_at: r.get("created_at"),
            updated_at: r.get("updated_at"),
            pending: r
                .try_get::<_, i64>("pending")
                .map(|n| n as u32)
                .unwrap_or(0),
        }
    }

    pub fn to_proto(&self, secret: Option<String>) -> bac_proto::messaging::v1::WebhookEndpoint {
        bac_proto::messaging::v1::WebhookEndpoint {
            id: self.id.clone(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            description: self.description.clone(),
            enabled: self.enabled,
            disabled_reason: self.disabled_reason.clone(),
            secret: secret.unwrap_or_default(),
            created_at: Some(timestamp(self.created_at)),
            updated_at: Some(timestamp(self.updated_at)),
            failing_since: self.failing_since.map(timestamp),
            pending: self.pending,
        }
    }
}

/// Whether `pattern` (a type, or a prefix ending in `.*`) takes events of type `ty`.
pub fn matches(pattern: &str, ty: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => ty.starts_with(prefix),
        None => pattern == ty,
    }
}

/// Checks event types: `bac.<source>.<entity>.<op>` or a prefix of one ending in `.*`.
pub fn check_event_types(types: &[String]) -> Result<Vec<String>, ServiceError> {
    if types.is_empty() {
        return Err(bad("event_types is required: the event types the endpoint receives (bac.odoo.crm_lead.created, bac.odoo.*)"));
    }
    if types.len() > 50 {
        return Err(bad("at most 50 event_types"));
    }
    let mut out = Vec::new();
    for t in types {
        let t = t.trim();
        let ok_chars = t
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._*".contains(&b));
        let star_ok = !t.contains('*') || (t.ends_with(".*") && t.matches('*').count() == 1);
        let parts: Vec<&str> = t.split('.').collect();
        let source_ok = t == "bac.*"
            || (parts.len() >= 2
                && parts[0] == "bac"
                && (SOURCES.contains(&parts[1]) || parts.get(1) == Some(&"*")));
        let shape_ok = t.ends_with(".*") || parts.len() == 4;
        if !(ok_chars && star_ok && source_ok && shape_ok) || parts.iter().any(|p| p.is_empty()) {
            return Err(bad(format!(
                "event type {t:?} is not one the fleet publishes: give bac.<source>.<entity>.<op> or a prefix ending in .* (sources: {})",
                SOURCES.join(", ")
            )));
        }
        if !out.iter().any(|o: &String| o == t) {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

use crate::db_err;

fn not_found(id: &str) -> ServiceError {
    ServiceError::new(
        "messaging",
        ErrorCode::NotFound,
        format!("webhook endpoint {id} does not exist"),
    )
}

fn new_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

const ENDPOINT_COLUMNS: &str = "e.*, (SELECT count(*) FROM webhook_messages m
     WHERE m.endpoint_id = e.id AND m.status = 'pending') AS pending";

/// The endpoints' store.
#[derive(Clone)]
pub struct Endpoints {
    db: Pool,
    vault: Vault,
    egress: EgressPolicy,
}

impl Endpoints {
    pub fn new(db: Pool, vault: Vault, egress: EgressPolicy) -> Self {
        Endpoints { db, vault, egress }
    }

    fn path(tenant: &str, id: &str) -> String {
        Vault::connection_path(tenant, "messaging", &format!("webhook-{id}"))
    }

    fn vault_err(e: impl std::fmt::Display) -> ServiceError {
        tracing::warn!(error = %e, "vault call failed");
        ServiceError::new(
            "messaging",
            ErrorCode::SecretStoreUnavailable,
            "the secret store is unavailable",
        )
        .suggest("Retry shortly")
    }

    async fn check_url(&self, url: &str) -> Result<String, ServiceError> {
        let parsed = url::Url::parse(url.trim())
            .map_err(|_| bad(format!("url {url:?} is not an absolute URL")))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return Err(bad("url must be an http or https URL with a host"));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(bad(
                "url must not carry credentials: the signature authenticates the messages",
            ));
        }
        self.egress.check_url(&parsed).await.map_err(|r| {
            ServiceError::new(
                "messaging",
                ErrorCode::UpstreamAddressNotAllowed,
                r.to_string(),
            )
            .suggest("Give a public address; the deployment's BAC_UPSTREAM_ALLOW_CIDRS opens private ranges")
        })?;
        Ok(parsed.to_string())
    }

    /// Registers an endpoint; it and its secret (shown this once).
    pub async fn create(
        &self,
        tenant: &str,
        url: &str,
        types: &[String],
        description: &str,
    ) -> Result<(Endpoint, String), ServiceError> {
        let url = self.check_url(url).await?;
        let types = check_event_types(types)?;
        let count: i64 = self
            .db
            .get()
            .await
            .map_err(db_err)?
            .query_one(
                "SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .map_err(db_err)?
            .get(0);
        if count >= MAX_ENDPOINTS {
            return Err(bad(format!(
                "a tenant has at most {MAX_ENDPOINTS} webhook endpoints; delete one first"
            )));
        }
        let id = format!("ep_{}", uuid::Uuid::now_v7().simple());
        let secret = new_secret();
        self.vault
            .write(
                &Self::path(tenant, &id),
                &HashMap::from([("secret".to_string(), SecretString::from(secret.clone()))]),
                Some(0),
            )
            .await
            .map_err(Self::vault_err)?;
        let client = self.db.get().await.map_err(db_err)?;
        client
            .execute(
                "INSERT INTO webhook_endpoints (id, tenant_id, url, event_types, description)
                 VALUES ($1, $2, $3, $4, $5)",
                &[&id, &tenant, &url, &types, &description],
            )
            .await
            .map_err(db_err)?;
        Ok((self.get(tenant, &id).await?, secret))
    }

    pub async fn get(&self, tenant: &str, id: &str) -> Result<Endpoint, ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        client
            .query_opt(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e
                     WHERE e.tenant_id = $1 AND e.id = $2"
                ),
                &[&tenant, &id],
            )
            .await
            .map_err(db_err)?
            .map(|r| Endpoint::from_row(&r))
            .ok_or_else(|| not_found(id))
    }

    pub async fn list(&self, tenant: &str) -> Result<Vec<Endpoint>, ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                &format!(
                    "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints e
                     WHERE e.tenant_id = $1 ORDER BY e.created_at, e.id"
                ),
                &[&tenant],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(Endpoint::from_row).collect())
    }

    /// Changes what is given; `enabled: true` clears a disabling and its failure count.
    pub async fn update(
        &self,
        tenant: &str,
        id: &str,
        url: Option<&str>,
        types: Option<&[String]>,
        description: Option<&str>,
        enabled: Option<bool>,
    ) -> Result<Endpoint, ServiceError> {
        let url = match url {
            Some(u) => Some(self.check_url(u).await?),
            None => None,
        };
        let types = match types {
            Some(t) => Some(check_event_types(t)?),
            None => None,
        };
        let client = self.db.get().await.map_err(db_err)?;
        let n = client
            .execute(
                "UPDATE webhook_endpoints SET
                    url = coalesce($3, url),
                    event_types = coalesce($4, event_types),
                    description = coalesce($5, description),
                    enabled = coalesce($6, enabled),
                    disabled_reason = CASE WHEN $6 THEN '' ELSE disabled_reason END,
                    failures = CASE WHEN $6 THEN 0 ELSE failures END,
                    failing_since = CASE WHEN $6 THEN NULL ELSE failing_since END,
                    updated_at = now()
                 WHERE tenant_id = $1 AND id = $2",
                &[&tenant, &id, &url, &types, &description, &enabled],
            )
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(not_found(id));
        }
        if enabled == Some(true) {
            // what waited while it was disabled is due now, in order
            client
                .execute(
                    "UPDATE webhook_messages SET next_attempt_at = now()
                     WHERE endpoint_id = $1 AND status = 'pending'",
                    &[&id],
                )
                .await
                .map_err(db_err)?;
        }
        self.get(tenant, id).await
    }

    pub async fn delete(&self, tenant: &str, id: &str) -> Result<(), ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        let n = client
            .execute(
                "DELETE FROM webhook_endpoints WHERE tenant_id = $1 AND id = $2",
                &[&tenant, &id],
            )
            .await
            .map_err(db_err)?;
        if n == 0 {
            return Err(not_found(id));
        }
        if let Err(e) = self.vault.delete(&Self::path(tenant, id)).await {
            tracing::warn!(endpoint = %id, error = %e, "the deleted endpoint's secret stays in Vault");
        }
        Ok(())
    }

    /// A new secret; the old one keeps signing beside it for `overlap`.
    pub async fn rotate(
        &self,
        tenant: &str,
        id: &str,
        overlap: std::time::Duration,
    ) -> Result<(Endpoint, String), ServiceError> {
        let endpoint = self.get(tenant, id).await?;
        let path = Self::path(tenant, id);
        let current = self
            .vault
            .read(&path)
            .await
            .map_err(Self::vault_err)?
            .ok_or_else(|| ServiceError::internal("messaging", "an endpoint without its secret"))?;
        let old = current
            .data
            .get("secret")
            .map(|s| s.expose_secret().to_string())
            .unwrap_or_default();
        let secret = new_secret();
        let until = Utc::now()
            + chrono::Duration::from_std(overlap).unwrap_or_else(|_| chrono::Duration::days(1));
        self.vault
            .write(
                &path,
                &HashMap::from([
                    ("secret".to_string(), SecretString::from(secret.clone())),
                    ("previous".to_string(), SecretString::from(old)),
                    (
                        "previous_until".to_string(),
                        SecretString::from(until.to_rfc3339()),
                    ),
                ]),
                Some(current.version),
            )
            .await
            .map_err(Self::vault_err)?;
        Ok((endpoint, secret))
    }

    /// The secrets messages are signed with now: the current one, and the previous one while
    /// its overlap lasts. Read from Vault each time (once per endpoint lease, not per message):
    /// a cache on another replica would sign with the old secret alone after a rotation.
    pub async fn signing_secrets(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<Vec<String>, ServiceError> {
        let s = self
            .vault
            .read(&Self::path(tenant, id))
            .await
            .map_err(Self::vault_err)?
            .ok_or_else(|| ServiceError::internal("messaging", "an endpoint without its secret"))?;
        let field = |k: &str| s.data.get(k).map(|v| v.expose_secret().to_string());
        let mut out: Vec<String> = field("secret").into_iter().collect();
        if let (Some(prev), Some(until)) = (field("previous"), field("previous_until")) {
            if DateTime::parse_from_rfc3339(&until).is_ok_and(|u| u > Utc::now()) {
                out.push(prev);
            }
        }
        Ok(out)
    }

    /// The endpoint's messages, newest first, with their attempts.
    pub async fn messages(
        &self,
        tenant: &str,
        id: &str,
        status: &str,
        limit: u32,
    ) -> Result<Vec<bac_proto::messaging::v1::WebhookMessage>, ServiceError> {
        self.get(tenant, id).await?;
        let client = self.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "SELECT m.seq, m.id, m.event_type, m.status, m.occurred_at, m.next_attempt_at,
                        coalesce(json_agg(json_build_object(
                            'at', a.at, 'status_code', a.status_code, 'response', a.response,
                            'duration_ms', a.duration_ms) ORDER BY a.id)
                          FILTER (WHERE a.id IS NOT NULL), '[]') AS attempts
                 FROM webhook_messages m LEFT JOIN webhook_attempts a ON a.message_seq = m.seq
                 WHERE m.tenant_id = $1 AND m.endpoint_id = $2 AND ($3 = '' OR m.status = $3)
                 GROUP BY m.seq ORDER BY m.seq DESC LIMIT $4",
                &[&tenant, &id, &status, &i64::from(limit)],
            )
            .await
            .map_err(db_err)?;
        Ok(rows
            .iter()
            .map(|r| {
                let status: String = r.get("status");
                let attempts: serde_json::Value = r.get("attempts");
                bac_proto::messaging::v1::WebhookMessage {
                    id: r.get("id"),
                    event_type: r.get("event_type"),
                    next_attempt_at: (status == "pending")
                        .then(|| timestamp(r.get("next_attempt_at"))),
                    status,
                    occurred_at: Some(timestamp(r.get("occurred_at"))),
                    attempts: attempts
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|a| bac_proto::messaging::v1::WebhookAttempt {
                            at: a["at"]
                                .as_str()
                                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                                .map(|t| timestamp(t.with_timezone(&Utc))),
                            status_code: a["status_code"].as_u64().unwrap_or(0) as u32,
                            response: a["response"].as_str().unwrap_or("").to_string(),
                            duration_ms: a["duration_ms"].as_u64().unwrap_or(0) as u32,
                        })
                        .collect(),
                }
            })
            .collect())
    }

    /// Makes messages pending again: one by id, or those that occurred in [since, until).
    pub async fn replay(
        &self,
        tenant: &str,
        id: &str,
        message_id: &str,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
    ) -> Result<u32, ServiceError> {
        self.get(tenant, id).await?;
        if message_id.is_empty() && since.is_none() {
            return Err(bad(
                "give message_id, or since (and until) for a time range",
            ));
        }
        let client = self.db.get().await.map_err(db_err)?;
        let n = client
            .execute(
                "UPDATE webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = now()
                 WHERE tenant_id = $1 AND endpoint_id = $2
                   AND ($3 = '' OR id = $3)
                   AND ($4::timestamptz IS NULL OR occurred_at >= $4)
                   AND ($5::timestamptz IS NULL OR occurred_at < $5)",
                &[&tenant, &id, &message_id, &since, &until],
            )
            .await
            .map_err(db_err)?;
        if n == 0 && !message_id.is_empty() {
            return Err(ServiceError::new(
                "messaging",
                ErrorCode::NotFound,
                format!("endpoint {id} has no message {message_id}"),
            ));
        }
        Ok(n as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_prefixes_match_as_documented() {
        assert!(matches("bac.odoo.*", "bac.odoo.crm_lead.created"));
        assert!(matches("bac.*", "bac.messaging.delivery.sent"));
        assert!(matches(
            "bac.odoo.crm_lead.created",
            "bac.odoo.crm_lead.created"
        ));
        assert!(!matches(
            "bac.odoo.crm_lead.created",
            "bac.odoo.crm_lead.updated"
        ));
        assert!(!matches("bac.odoo.*", "bac.zoho.crm_lead.created"));
    }

    #[test]
    fn event_types_must_be_the_fleets() {
        let ok =
            |t: &[&str]| check_event_types(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(ok(&["bac.odoo.crm_lead.created", "bac.messaging.*", "bac.*"]).is_ok());
        for bad in [
            &[][..],
            &["odoo.crm_lead.created"],
            &["bac.stripe.*"],
            &["bac.odoo.*.created"],
            &["bac.odoo.crm_lead"],
            &["bac..x.y"],
            &["BAC.odoo.*"],
        ] {
            assert!(ok(bad).is_err(), "{bad:?}");
        }
    }
}
