//! The services' audit entries, kept beside the gateway's: a change a service makes on its own
//! (the connector kit marking a connection whose grant the provider revoked) is published on
//! `bac.integrations.audit.v1` by that service's outbox; the gateway reads the topic and keeps
//! each entry in `audit_log`, so `GET /api/v1/integrations/audit` lists it with the rest. An
//! entry must name its service as actor (`service:<name>`, the name of its `ce_source`
//! `/bac/<name>`) and its tenant in both the header and the data; anything else is skipped
//! with a warning. The gateway's own events (already rows) are skipped; an entry heard twice
//! is kept once (its id).

use bac_runtime::{config::KafkaConfig, db::Pool};
use chrono::{DateTime, Utc};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    Message,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::audit;

/// One service's audit entry, checked.
#[derive(Debug, PartialEq)]
struct Entry {
    id: String,
    tenant_id: String,
    actor: String,
    action: String,
    target_type: String,
    target_id: String,
    diff: Value,
    request_id: Option<String>,
    time: DateTime<Utc>,
}

/// Reads the topic until `shutdown`; restarts with capped backoff.
pub async fn run(db: Pool, kafka: KafkaConfig, shutdown: CancellationToken) {
    let stop = shutdown.clone();
    bac_runtime::kafka::keep_consuming("the audit feed", shutdown, || consume(&db, &kafka, &stop))
        .await;
}

async fn consume(
    db: &Pool,
    kafka: &KafkaConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let consumer = bac_runtime::kafka::GroupConsumer::for_group(kafka, "bac-gateway-audit", &[])?;
    consumer.subscribe(&[audit::TOPIC])?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        let header = |k: &str| bac_runtime::kafka::header(&msg, k);
        let (source, tenant) = (header("ce_source"), header("ce_tenantid"));
        if source.as_deref() != Some("/bac/gateway") {
            match entry(
                source.as_deref(),
                tenant.as_deref(),
                msg.payload().unwrap_or_default(),
            ) {
                Ok(e) => keep(db, &e).await?,
                Err(reason) => tracing::warn!(
                    partition = msg.partition(),
                    offset = msg.offset(),
                    %reason,
                    "audit entry skipped"
                ),
            }
        }
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}

/// Checks an entry a service published.
fn entry(source: Option<&str>, tenant: Option<&str>, payload: &[u8]) -> Result<Entry, String> {
    let service = source
        .and_then(|s| s.strip_prefix("/bac/"))
        .filter(|s| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_')
        })
        .ok_or("ce_source is not a fleet service (/bac/<name>)")?;
    let data: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    let text = |k: &str, max: usize| -> Result<String, String> {
        match data.get(k).and_then(Value::as_str) {
            Some(s) if !s.is_empty() && s.len() <= max => Ok(s.to_string()),
            _ => Err(format!("{k} is missing, empty or longer than {max}")),
        }
    };
    let e = Entry {
        id: text("id", 64)?,
        tenant_id: text("tenant_id", 128)?,
        actor: text("actor", 128)?,
        action: text("action", 100)?,
        target_type: text("target_type", 64)?,
        target_id: text("target_id", 128)?,
        diff: audit::redact(data.get("diff").unwrap_or(&Value::Null)),
        request_id: data
            .get("request_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        time: data
            .get("time")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc))
            .ok_or("time is not an RFC 3339 time")?,
    };
    if !e.id.starts_with("aud_") {
        return Err("id is not an audit id (aud_...)".into());
    }
    if tenant != Some(e.tenant_id.as_str()) {
        return Err("the tenant of the data is not the event's (ce_tenantid)".into());
    }
    if e.actor != format!("service:{service}") {
        return Err(format!(
            "a service may audit only as itself (service:{service})"
        ));
    }
    Ok(e)
}

async fn keep(db: &Pool, e: &Entry) -> anyhow::Result<()> {
    let client = db.get().await?;
    client
        .execute(
            "INSERT INTO audit_log (id, tenant_id, actor, action, target_type, target_id, diff, request_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING",
            &[
                &e.id,
                &e.tenant_id,
                &e.actor,
                &e.action,
                &e.target_type,
                &e.target_id,
                &e.diff,
                &e.request_id,
                &e.time,
            ],
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_audits_only_as_itself_in_the_tenant_of_the_event() {
        let data = serde_json::json!({"id": "aud_1", "tenant_id": "t1", "actor": "service:zoho",
            "action": "connection.authorization_revoked", "target_type": "connection",
            "target_id": "con_1", "diff": {"reason": "invalid_code", "refresh_token": "x"},
            "time": "2026-12-04T10:00:00.000Z"});
        let bytes = data.to_string().into_bytes();
        let e = entry(Some("/bac/zoho"), Some("t1"), &bytes).unwrap();
        assert_eq!(e.action, "connection.authorization_revoked");
        assert_eq!(e.diff["refresh_token"], "[redacted]", "redacted again");
        assert!(entry(Some("/bac/odoo"), Some("t1"), &bytes)
            .unwrap_err()
            .contains("as itself"));
        assert!(entry(Some("/bac/zoho"), Some("t2"), &bytes)
            .unwrap_err()
            .contains("tenant"));
        assert!(entry(Some("/elsewhere"), Some("t1"), &bytes).is_err());
        assert!(entry(Some("/bac/zoho"), Some("t1"), b"{").is_err());
        let mut bad = data.clone();
        bad["id"] = "x".into();
        assert!(entry(Some("/bac/zoho"), Some("t1"), bad.to_string().as_bytes()).is_err());
    }
}
