//! The audit trail: every change to tenants, users, keys, grants, connections and credentials
//! is a row in `audit_log` and an event on `bac.integrations.audit.v1`, written in one
//! transaction through the outbox. Diffs are redacted before they are stored.
use bac_runtime::{db::Transaction, events::CloudEvent, outbox};
use serde_json::{json, Value};

use crate::{auth::Principal, error::ApiError};

pub const TOPIC: &str = "bac.integrations.audit.v1";

/// Where a change came from (the HTTP caller).
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[axum::async_trait]
impl axum::extract::FromRequestParts<std::sync::Arc<crate::AppState>> for Origin {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &std::sync::Arc<crate::AppState>,
    ) -> Result<Self, Self::Rejection> {
        let user_agent = parts
            .headers
            .get("user-agent")
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(256).collect::<String>());
        // X-Forwarded-For counts only from a trusted proxy (BAC_TRUSTED_PROXIES).
        Ok(Origin {
            source_ip: crate::http::client_ip(parts, &state.settings.trusted_proxies)
                .map(|ip| ip.to_string()),
            user_agent,
        })
    }
}

/// One audited change.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// e.g. `connection.created`, `grant.revoked`, `api_key.rotated`.
    pub action: &'a str,
    pub target_type: &'a str,
    pub target_id: &'a str,
    pub diff: Value,
}

const SECRET_KEYS: &[&str] = &[
    "password",
    "api_key",
    "secret",
    "token",
    "refresh_token",
    "access_token",
    "client_secret",
    "key",
    "credentials",
    "private_key",
];

/// Replaces the value of every secret-looking field with `"[redacted]"`, at any depth.
pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, val)| {
                    let lower = k.to_ascii_lowercase();
                    if SECRET_KEYS
                        .iter()
                        .any(|s| lower == *s || lower.ends_with(&format!("_{s}")))
                    {
                        (k.clone(), json!("[redacted]"))
                    } else {
                        (k.clone(), redact(val))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// Records `change` in the caller's transaction.
pub async fn record(
    tx: &Transaction<'_>,
    actor: &Principal,
    origin: &Origin,
    change: Change<'_>,
) -> Result<(), ApiError> {
    record_as(
        tx,
        &actor.tenant_id,
        &format!("user:{}", actor.user_id),
        &actor.request_id,
        origin,
        change,
    )
    .await
}

/// Records a change made by `actor` (a user, or `operator`) in `tenant`.
pub async fn record_as(
    tx: &Transaction<'_>,
    tenant: &str,
    actor: &str,
    request_id: &str,
    origin: &Origin,
    change: Change<'_>,
) -> Result<(), ApiError> {
    let id = format!("aud_{}", uuid::Uuid::now_v7().simple());
    let diff = redact(&change.diff);
    let now = chrono::Utc::now();
    tx.execute(
        "INSERT INTO audit_log (id, tenant_id, actor, action, target_type, target_id, diff, source_ip, user_agent, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &id,
            &tenant,
            &actor,
            &change.action,
            &change.target_type,
            &change.target_id,
            &diff,
            &origin.source_ip,
            &origin.user_agent,
            &request_id,
            &now,
        ],
    )
    .await
    .map_err(ApiError::internal)?;
    let data = json!({
        "id": id,
        "tenant_id": tenant,
        "actor": actor,
        "action": change.action,
        "target_type": change.target_type,
        "target_id": change.target_id,
        "diff": diff,
        "source_ip": origin.source_ip,
        "user_agent": origin.user_agent,
        "request_id": request_id,
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let event = CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/gateway".into(),
        ty: format!("bac.integrations.audit.{}", change.action),
        subject: Some(format!("{}/{}", change.target_type, change.target_id)),
        time: now,
        tenant_id: tenant.to_string(),
        connection_id: None,
        traceparent: bac_runtime::telemetry::current_traceparent(),
        data: serde_json::to_vec(&data).map_err(ApiError::internal)?,
        topic: TOPIC.to_string(),
        key: format!("{tenant}/audit/{id}"),
    };
    outbox::enqueue(tx, &event)
        .await
        .map_err(ApiError::internal)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_at_any_depth() {
        let v = json!({"name": "x", "credentials": {"password": "p"}, "config": {"api_key": "k", "url": "u"},
            "list": [{"client_secret": "s"}]});
        let r = redact(&v).to_string();
        assert!(
            !r.contains("\"p\"") && !r.contains("\"k\"") && !r.contains("\"s\""),
            "{r}"
        );
        assert!(r.contains("\"u\""));
    }
}
