//! Where a write bac-odoo makes on request becomes an event: the record mirror row and the
//! `bac.odoo.<entity>.<op>` event commit in one transaction (through the sync engine's
//! mirror), so a change the API reported has its event in Kafka eventually, and the next
//! sync pull does not report the fleet's own write again.
use bac_runtime::{connections::ConnectionRecord, db::Pool, events, RequestContext, ServiceError};
use bac_sync::{
    self as sync,
    mirror::{self as engine_mirror, Scope},
};
use serde_json::Value;

pub use bac_sync::mirror::Op;

/// Every topic bac-odoo publishes to (declared at start).
pub fn topics() -> Vec<String> {
    let mut t: Vec<String> = ENTITIES.iter().map(|e| events::topic("odoo", e)).collect();
    t.push(sync::SYNC_RUN_TOPIC.into());
    t.push(sync::CONFLICT_TOPIC.into());
    t.push(COMMANDS_TOPIC.into());
    t
}

/// Inbound create/update/delete commands of two-way sync.
pub const COMMANDS_TOPIC: &str = "bac.odoo.commands.v1";

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

/// Records a write the fleet itself made upstream. `raw` is the Odoo row as read back after
/// the write, with at least the fields of [`crate::sync::read_fields`] for the entity (what a
/// sync pull reads), so the mirror's hash matches the next pull and no echo is reported.
pub async fn record_write(
    db: &Pool,
    ctx: &RequestContext,
    rec: &ConnectionRecord,
    entity: &str,
    raw: &Value,
    op: Op,
) -> Result<(), ServiceError> {
    let default = crate::sync::default_mapping(entity)
        .ok_or_else(|| ServiceError::internal("odoo", format!("mirror: no entity {entity}")))?;
    let (_, mapping, _) =
        sync::mapping_in_force(db, "odoo", &ctx.tenant_id, &rec.id, entity, default).await?;
    let mut record = crate::sync::remote_record(raw.clone())
        .ok_or_else(|| ServiceError::internal("odoo", "mirror: record without id"))?;
    record.deleted = op == Op::Deleted;
    let scope = Scope {
        tenant: &ctx.tenant_id,
        connection_id: &rec.id,
        entity,
    };
    engine_mirror::write_platform(db, "odoo", &scope, &mapping, &record).await?;
    Ok(())
}

pub const LEAD_MODEL: &str = "crm.lead";
