//! The record mirror and where an Odoo change becomes an event: the mirror row and the outbox
//! row commit in one transaction, so a change the API reported has its event in Kafka
//! eventually, even across crashes and broker outages.
use bac_proto::{events::v1::RecordChanged, odoo::v1::Lead};
use bac_runtime::{connections::ConnectionRecord, db::Pool};
use bac_runtime::{
    db::ToSql,
    events::{self, CloudEvent},
    outbox, RequestContext, ServiceError,
};
use chrono::{DateTime, Utc};

pub const LEAD_ENTITY: &str = "crm_lead";
pub const LEAD_MODEL: &str = "crm.lead";

/// Every topic bac-odoo publishes to (declared at start).
pub fn topics() -> Vec<String> {
    ENTITIES
        .iter()
        .map(|e| events::topic("odoo", e))
        .collect()
}

/// The canonical entities bac-odoo reads, writes and syncs (topic `bac.odoo.<entity>.v1`).
pub const ENTITIES: &[&str] = &[
    "crm_lead",
    "partner",
    "sale_order",
    "invoice",
    "product",
    "stock_quant",
    "employee",
];

/// "created" | "updated" | "deleted", as the event type's last segment.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Created,
    Updated,
    Deleted,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Created => "created",
            Op::Updated => "updated",
            Op::Deleted => "deleted",
        }
    }
}

/// Stores the lead in the mirror and its `bac.odoo.crm_lead.<op>` event in the outbox.
pub async fn record_lead(
    db: &Pool,
    ctx: &RequestContext,
    lead: &Lead,
    op: Op,
    origin: &str,
) -> Result<(), ServiceError> {
    let internal =
        |e: &dyn std::fmt::Display| ServiceError::internal("odoo", format!("mirror: {e}"));
    let after = serde_json::to_value(lead).map_err(|e| internal(&e))?;
    let write_date: Option<DateTime<Utc>> = lead
        .write_date
        .as_ref()
        .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
    let payload = RecordChanged {
        op: op.as_str().into(),
        integration: "odoo".into(),
        entity: LEAD_ENTITY.into(),
        record_id: lead.id.to_string(),
        tenant_id: ctx.tenant_id.clone(),
        connection_id: lead.connection_id.clone(),
        before: None,
        after: serde_json::from_value(after.clone()).ok(),
        remote_time: lead.write_date,
        origin: origin.into(),
        sync_run_id: String::new(),
    };
    let event = CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/odoo".into(),
        ty: format!("bac.odoo.{LEAD_ENTITY}.{}", op.as_str()),
        subject: Some(format!("{LEAD_ENTITY}/{}", lead.id)),
        time: Utc::now(),
        tenant_id: ctx.tenant_id.clone(),
        connection_id: Some(lead.connection_id.clone()),
        traceparent: ctx
            .traceparent
            .clone()
            .or_else(bac_runtime::telemetry::current_traceparent),
        data: serde_json::to_vec(&payload).map_err(|e| internal(&e))?,
        topic: events::topic("odoo", LEAD_ENTITY),
        key: format!("{}/{LEAD_ENTITY}/{}", ctx.tenant_id, lead.id),
    };
    let mut client = db.get().await.map_err(|e| internal(&e))?;
    let tx = client.transaction().await.map_err(|e| internal(&e))?;
    let hash = events::content_hash(&after);
    let params: [&(dyn ToSql + Sync); 8] = [
        &ctx.tenant_id,
        &lead.connection_id,
        &LEAD_MODEL,
        &lead.id,
        &after,
        &hash,
        &write_date,
        &origin,
    ];
    tx.execute(
        "INSERT INTO records (tenant_id, connection_id, model, remote_id, data, content_hash, write_date, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, connection_id, model, remote_id) DO UPDATE
         SET data = EXCLUDED.data, content_hash = EXCLUDED.content_hash,
             write_date = EXCLUDED.write_date, origin = EXCLUDED.origin, updated_at = now()",
        &params,
    )
    .await
    .map_err(|e| internal(&e))?;
    outbox::enqueue(&tx, &event)
        .await
        .map_err(|e| internal(&e))?;
    tx.commit().await.map_err(|e| internal(&e))?;
    Ok(())
}

/// Records a write the fleet itself made upstream (`raw` is the Odoo row as read back after
/// the write): the mirror row and its `bac.odoo.<entity>.<op>` event with origin `platform`,
/// in one transaction. Because the mirror now holds what Odoo holds, the next sync pull does
/// not report the same change again (echo suppression).
pub async fn record_write(
    db: &Pool,
    ctx: &RequestContext,
    rec: &ConnectionRecord,
    entity: &str,
    raw: &serde_json::Value,
    op: Op,
) -> Result<(), ServiceError> {
    let internal =
        |e: &dyn std::fmt::Display| ServiceError::internal("odoo", format!("mirror: {e}"));
    let remote_id = raw
        .get("id")
        .and_then(serde_json::Value::as_i64)
        .ok_or_else(|| internal(&"record without id"))?;
    let write_date: Option<DateTime<Utc>> = raw
        .get("write_date")
        .and_then(serde_json::Value::as_str)
        .and_then(|s| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").ok())
        .map(|n| n.and_utc());
    let payload = RecordChanged {
        op: op.as_str().into(),
        integration: "odoo".into(),
        entity: entity.into(),
        record_id: remote_id.to_string(),
        tenant_id: ctx.tenant_id.clone(),
        connection_id: rec.id.clone(),
        before: None,
        after: serde_json::from_value(raw.clone()).ok(),
        remote_time: write_date.map(|t| pbjson_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }),
        origin: "platform".into(),
        sync_run_id: String::new(),
    };
    let event = CloudEvent {
        id: uuid::Uuid::now_v7(),
        source: "/bac/odoo".into(),
        ty: format!("bac.odoo.{entity}.{}", op.as_str()),
        subject: Some(format!("{entity}/{remote_id}")),
        time: Utc::now(),
        tenant_id: ctx.tenant_id.clone(),
        connection_id: Some(rec.id.clone()),
        traceparent: ctx
            .traceparent
            .clone()
            .or_else(bac_runtime::telemetry::current_traceparent),
        data: serde_json::to_vec(&payload).map_err(|e| internal(&e))?,
        topic: events::topic("odoo", entity),
        key: format!("{}/{entity}/{remote_id}", ctx.tenant_id),
    };
    let mut client = db.get().await.map_err(|e| internal(&e))?;
    let tx = client.transaction().await.map_err(|e| internal(&e))?;
    let hash = events::content_hash(raw);
    let origin = "platform";
    let params: [&(dyn ToSql + Sync); 8] = [
        &ctx.tenant_id,
        &rec.id,
        &entity,
        &remote_id,
        raw,
        &hash,
        &write_date,
        &origin,
    ];
    tx.execute(
        "INSERT INTO records (tenant_id, connection_id, model, remote_id, data, content_hash, write_date, origin)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (tenant_id, connection_id, model, remote_id) DO UPDATE
         SET data = EXCLUDED.data, content_hash = EXCLUDED.content_hash,
             write_date = EXCLUDED.write_date, origin = EXCLUDED.origin, updated_at = now()",
        &params,
    )
    .await
    .map_err(|e| internal(&e))?;
    outbox::enqueue(&tx, &event)
        .await
        .map_err(|e| internal(&e))?;
    tx.commit().await.map_err(|e| internal(&e))?;
    Ok(())
}
