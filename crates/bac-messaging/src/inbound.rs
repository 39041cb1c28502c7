//! What every channel that hears from its upstream shares (Slack's events, the Bot
//! Framework's activities, Google Chat's events): text made storable, the request kept as
//! a `google.protobuf.Struct`, and each upstream id published once however often the upstream
//! retries it.
use bac_runtime::{db::Transaction, events::CloudEvent, outbox, ServiceError};
use serde_json::Value;

/// Postgres cannot keep a NUL; an upstream's text may carry one.
pub(crate) fn clean(s: &str) -> String {
    s.replace('\0', "")
}

/// A JSON string of an upstream's request as storable text ('' when it is not a string).
pub(crate) fn text(v: &Value) -> String {
    clean(v.as_str().unwrap_or(""))
}

/// A JSON value as a `Struct` field, NULs dropped.
pub(crate) fn as_struct(v: &Value) -> Option<pbjson_types::Struct> {
    fn strip(v: Value) -> Value {
        match v {
            Value::String(s) => Value::String(clean(&s)),
            Value::Array(a) => Value::Array(a.into_iter().map(strip).collect()),
            Value::Object(m) => {
                Value::Object(m.into_iter().map(|(k, v)| (clean(&k), strip(v))).collect())
            }
            other => other,
        }
    }
    serde_json::from_value(strip(v.clone())).ok()
}

/// Enqueues `event` in `tx` unless `id` (the upstream's id of what it sent) was seen for the
/// connection already; whether it was new. Ids are kept a day (Slack retries for about an
/// hour).
pub(crate) async fn publish_once(
    tx: &Transaction<'_>,
    connection_id: &str,
    id: &str,
    event: &CloudEvent,
) -> Result<bool, ServiceError> {
    let fresh = tx
        .execute(
            "INSERT INTO inbound_events (connection_id, event_id) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            &[&connection_id, &id],
        )
        .await
        .map_err(crate::deliveries::pg_err)?;
    tx.execute(
        "DELETE FROM inbound_events WHERE connection_id = $1 AND received_at < now() - interval '1 day'",
        &[&connection_id],
    )
    .await
    .map_err(crate::db_err)?;
    if fresh == 1 {
        outbox::enqueue(tx, event)
            .await
            .map_err(crate::deliveries::pg_err)?;
    }
    Ok(fresh == 1)
}
