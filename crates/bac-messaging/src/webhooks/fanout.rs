//! Where an event becomes webhook messages: a consumer of every topic the fleet publishes
//! (`bac.<source>.<entity>.v1`, found by pattern, so a topic created later is read too;
//! commands topics are inbound and skipped) records each event of a tenant as one message per
//! endpoint of that tenant whose event types take it, with the event's `ce_id` as the message
//! id (`webhook-id`: the same for every endpoint, attempt and replay). The offset is committed
//! once the messages are stored; a message recorded twice (a redelivered event) is kept once.
use std::time::Duration;

use bac_runtime::{config::KafkaConfig, db::Pool, ServiceError};
use chrono::{DateTime, Utc};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    Message,
};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The topics read: every event topic of the fleet (librdkafka's regex subscription).
pub const TOPICS: &str = r"^bac\.[a-z_]+\.[a-z_]+\.v1$";

/// Consumes until `shutdown`; restarts with capped backoff. `sent` wakes the sender.
pub async fn consume(
    db: Pool,
    kafka: KafkaConfig,
    wake: std::sync::Arc<Notify>,
    shutdown: CancellationToken,
) {
    let stop = shutdown.clone();
    bac_runtime::kafka::keep_consuming("the webhooks fan-out", shutdown, || {
        consume_once(&db, &kafka, &wake, &stop)
    })
    .await;
}

async fn consume_once(
    db: &Pool,
    kafka: &KafkaConfig,
    wake: &Notify,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    // the group's first start reads what is retained: an event published while it joins is
    // not missed (endpoints that exist when an event is read get it)
    let consumer = bac_runtime::kafka::GroupConsumer::for_group(
        kafka,
        "bac-messaging-webhooks",
        &[("topic.metadata.refresh.interval.ms", "10000")],
    )?;
    consumer.subscribe(&[TOPICS])?;
    loop {
        let msg = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            m = consumer.recv() => m?,
        };
        if msg.topic().ends_with(".commands.v1") {
            consumer.commit_message(&msg, CommitMode::Async)?;
            continue;
        }
        let header = |k: &str| bac_runtime::kafka::header(&msg, k).unwrap_or_default();
        let (tenant, id, ty) = (header("ce_tenantid"), header("ce_id"), header("ce_type"));
        if !tenant.is_empty() && !id.is_empty() && !ty.is_empty() {
            let time = DateTime::parse_from_rfc3339(&header("ce_time"))
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|_| Utc::now());
            let data: Value = serde_json::from_slice(msg.payload().unwrap_or_default())
                .unwrap_or_else(|_| {
                    Value::String(String::from_utf8_lossy(msg.payload().unwrap_or_default()).into())
                });
            let mut delay = Duration::from_millis(500);
            loop {
                match record(db, &tenant, &id, &ty, time, &data).await {
                    Ok(0) => break,
                    Ok(_) => {
                        wake.notify_one();
                        break;
                    }
                    Err(e) if e.code == bac_runtime::ErrorCode::InvalidRequest => {
                        // an event that cannot be stored never will be: skipped, not retried
                        tracing::error!(topic = %msg.topic(), offset = msg.offset(), error = %e.message, "event skipped by the webhooks fan-out");
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e.message, "webhook messages not stored yet; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        }
        consumer.commit_message(&msg, CommitMode::Async)?;
    }
}

/// Records the event for every endpoint of `tenant` that takes `ty`; how many.
async fn record(
    db: &Pool,
    tenant: &str,
    id: &str,
    ty: &str,
    time: DateTime<Utc>,
    data: &Value,
) -> Result<u64, ServiceError> {
    // Standard Webhooks' payload: the type, when it happened, the event's data
    let payload = serde_json::to_vec(&json!({
        "type": ty,
        "timestamp": time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    }))
    .unwrap_or_default();
    let client = db
        .get()
        .await
        .map_err(|e| ServiceError::internal("messaging", format!("postgres: {e}")))?;
    client
        .execute(
            "INSERT INTO webhook_messages (id, tenant_id, endpoint_id, event_type, payload, occurred_at)
             SELECT $2, e.tenant_id, e.id, $3, $4, $5 FROM webhook_endpoints e
             WHERE e.tenant_id = $1 AND EXISTS (
                 SELECT 1 FROM unnest(e.event_types) p
                 WHERE p = $3 OR (right(p, 1) = '*' AND starts_with($3, left(p, -1))))
             ON CONFLICT (endpoint_id, id) DO NOTHING",
            &[&tenant, &format!("msg_{id}"), &ty, &payload, &time],
        )
        .await
        .map_err(crate::deliveries::pg_err)
}
