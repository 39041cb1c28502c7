//! Parked events, for the administrators of the tenant they belong to: the list, a retry
//! (back in line, ahead of newer events since ids order the relay) and a discard (kept, marked
//! discarded, never published). Every service's `IntegrationService` serves these three.
use bac_proto::integration::v1::ParkedEvent;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;

use crate::{
    connections::timestamp,
    error::{ErrorCode, ServiceError},
};

const COLUMNS: &str =
    "id, topic, key, event_count, bytes, last_error, attempts, created_at, parked_at";

/// Both outbox tables as one relation of parked-event rows.
fn rows_sql(filter: &str) -> String {
    format!(
        "SELECT {COLUMNS} FROM (
           SELECT id, tenant_id, topic, key, 1 AS event_count,
                  octet_length(payload)::bigint AS bytes, last_error, attempts, created_at, parked_at
             FROM outbox WHERE {filter}
           UNION ALL
           SELECT id, tenant_id, topic, '' AS key, event_count,
                  octet_length(events)::bigint AS bytes, last_error, attempts, created_at, parked_at
             FROM outbox_batches WHERE {filter}
         ) parked"
    )
}

fn to_proto(row: &tokio_postgres::Row, status: &str) -> ParkedEvent {
    let created: DateTime<Utc> = row.get(7);
    let parked: Option<DateTime<Utc>> = row.get(8);
    ParkedEvent {
        id: format!("out_{}", row.get::<_, i64>(0)),
        topic: row.get(1),
        key: row.get(2),
        event_count: u32::try_from(row.get::<_, i32>(3)).unwrap_or(0),
        bytes: u64::try_from(row.get::<_, i64>(4)).unwrap_or(0),
        reason: row.get::<_, Option<String>>(5).unwrap_or_default(),
        attempts: u32::try_from(row.get::<_, i32>(6)).unwrap_or(0),
        created_at: Some(timestamp(created)),
        parked_at: parked.map(timestamp),
        status: status.to_string(),
    }
}

fn not_found(integration: &str, id: &str) -> ServiceError {
    ServiceError::new(
        integration,
        ErrorCode::NotFound,
        format!("no parked event {id}"),
    )
}

fn db_err(integration: &str, e: impl std::fmt::Display) -> ServiceError {
    ServiceError::internal(integration, format!("postgres: {e}"))
}

/// The tenant's parked events, oldest first.
pub async fn list(
    db: &Pool,
    integration: &str,
    tenant: &str,
    limit: u32,
) -> Result<Vec<ParkedEvent>, ServiceError> {
    if limit > 500 {
        return Err(ServiceError::new(
            integration,
            ErrorCode::InvalidRequest,
            "limit must be at most 500",
        ));
    }
    let limit = i64::from(if limit == 0 { 50 } else { limit });
    let client = db.get().await.map_err(|e| db_err(integration, e))?;
    let sql = format!(
        "{} ORDER BY id LIMIT $2",
        rows_sql("tenant_id = $1 AND parked_at IS NOT NULL")
    );
    let rows = client
        .query(&sql, &[&tenant, &limit])
        .await
        .map_err(|e| db_err(integration, e))?;
    Ok(rows.iter().map(|r| to_proto(r, "parked")).collect())
}

/// What to do with a parked event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Back in line for the relay.
    Retry,
    /// Never published; the row stays, marked discarded.
    Discard,
}

/// Applies `decision` to the tenant's parked event `id` (`out_<n>`).
pub async fn decide(
    db: &Pool,
    integration: &str,
    tenant: &str,
    id: &str,
    decision: Decision,
) -> Result<ParkedEvent, ServiceError> {
    let n: i64 = id
        .strip_prefix("out_")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| not_found(integration, id))?;
    let (set, status) = match decision {
        Decision::Retry => ("parked_at = NULL", "queued"),
        Decision::Discard => (
            "parked_at = NULL, published_at = now(), discarded_at = now()",
            "discarded",
        ),
    };
    let mut client = db.get().await.map_err(|e| db_err(integration, e))?;
    let tx = client
        .transaction()
        .await
        .map_err(|e| db_err(integration, e))?;
    let mut found = None;
    for table in ["outbox", "outbox_batches"] {
        let key = if table == "outbox" { "key" } else { "''" };
        let count = if table == "outbox" {
            "1"
        } else {
            "event_count"
        };
        let blob = if table == "outbox" {
            "payload"
        } else {
            "events"
        };
        let sql = format!(
            "UPDATE {table} SET {set}
              WHERE tenant_id = $1 AND id = $2 AND parked_at IS NOT NULL
              RETURNING id, topic, {key}, {count}, octet_length({blob})::bigint, last_error,
                        attempts, created_at, NULL::timestamptz"
        );
        if let Some(row) = tx
            .query_opt(&sql, &[&tenant, &n])
            .await
            .map_err(|e| db_err(integration, e))?
        {
            found = Some(to_proto(&row, status));
            break;
        }
    }
    let event = found.ok_or_else(|| not_found(integration, id))?;
    if decision == Decision::Retry {
        // The insert trigger is what wakes the relay; a retry is an update.
        tx.execute("SELECT pg_notify(current_schema() || '_outbox', '')", &[])
            .await
            .map_err(|e| db_err(integration, e))?;
    }
    tx.commit().await.map_err(|e| db_err(integration, e))?;
    tracing::info!(
        integration,
        tenant,
        outbox_id = n,
        ?decision,
        "parked event decided"
    );
    Ok(event)
}
