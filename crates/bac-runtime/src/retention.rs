//! Retention: what the fleet keeps only for a while (published outbox rows and batches,
//! finished sync runs, dead letters, rejected commands, the call log) is deleted once older
//! than `BAC_RETENTION_DAYS` (default 7). One replica of a service purges at a time (an
//! advisory lock), every `BAC_RETENTION_INTERVAL_SECS`, in batches of a few thousand rows with
//! a pause between them, so the relay and the API never wait behind one long delete.
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::db;

/// How long rows are kept, how often and in what batches they are purged.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub keep: Duration,
    pub every: Duration,
    pub batch: i64,
    /// Pause between two batches: room for the relay's and the API's statements.
    pub pause: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            keep: Duration::from_secs(7 * 86_400),
            every: Duration::from_secs(600),
            batch: 5_000,
            pause: Duration::from_millis(20),
        }
    }
}

/// Each purged table and the condition that makes one of its rows old enough. Tables a
/// service does not have are skipped. Unpublished outbox rows and parked ones are never
/// purged (`published_at` is null for both).
const RULES: &[(&str, &str)] = &[
    ("outbox", "published_at < $1"),
    ("outbox_batches", "published_at < $1"),
    ("sync_runs", "finished_at < $1"),
    ("sync_dead_letters", "at < $1"),
    ("sync_command_rejects", "received_at < $1"),
    ("call_log", "at < $1"),
];

/// Runs [`purge_once`] every `retention.every` until `shutdown`.
pub async fn run(db: Pool, schema: String, retention: Retention, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retention.every) => {}
        }
        match purge_once(&db, &schema, retention).await {
            Ok(n) if n > 0 => tracing::info!(schema, rows = n, "retention purge done"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(schema, error = %e, "retention purge failed; next round retries")
            }
        }
    }
}

/// Deletes every row older than the retention, table by table, in batches; returns how many.
/// Another replica already purging makes this a no-op.
pub async fn purge_once(
    db: &Pool,
    schema: &str,
    retention: Retention,
) -> Result<u64, tokio_postgres::Error> {
    let Ok(client) = db.get().await else {
        return Ok(0);
    };
    let key = db::lock_key(&format!("bac-retention:{schema}"));
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await?
        .get(0);
    if !locked {
        return Ok(0);
    }
    let result = purge_tables(&client, retention).await;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&key])
        .await?;
    result
}

async fn purge_tables(
    client: &tokio_postgres::Client,
    retention: Retention,
) -> Result<u64, tokio_postgres::Error> {
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(retention.keep).unwrap_or(chrono::Duration::days(7));
    let mut total = 0u64;
    for (table, old) in RULES {
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[table])
            .await?
            .get(0);
        if !exists {
            continue;
        }
        // A bounded batch found without sorting (the oldest rows come first in the heap).
        let sql = format!(
            "DELETE FROM {table} WHERE ctid = ANY(ARRAY(
               SELECT ctid FROM {table} WHERE {old} LIMIT $2))"
        );
        loop {
            let n = client.execute(&sql, &[&cutoff, &retention.batch]).await?;
            total += n;
            if n > 0 {
                metrics::counter!("bac_retention_purged_total", "table" => *table).increment(n);
            }
            if n < retention.batch as u64 {
                break;
            }
            tokio::time::sleep(retention.pause).await;
        }
    }
    Ok(total)
}
