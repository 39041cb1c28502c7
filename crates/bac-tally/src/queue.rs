//! Vouchers waiting for an agent: a voucher created for a configuration in agent mode while
//! its agent is offline is kept here (`queued`, with the create's intent), and posted through
//! the engine's write path, oldest first, once the agent is back. The intent makes the post
//! at most once even if two replicas drain the same configuration, or a replica dies between
//! Tally's answer and marking the row posted.
use std::time::Duration;

use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Pool,
    ServiceError,
};
use bac_sync::{SyncEngine, SyncError};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::Agents;

use crate::db_err;

/// One queued voucher as listed.
#[derive(Debug, Clone)]
pub struct Queued {
    pub intent_id: String,
    pub voucher: Value,
    pub status: String,
    pub voucher_id: Option<String>,
    pub error: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Clone)]
pub struct Queue {
    db: Pool,
    store: ConnectionStore,
    engine: SyncEngine,
    agents: Agents,
}

impl Queue {
    pub fn new(db: Pool, store: ConnectionStore, engine: SyncEngine, agents: Agents) -> Queue {
        Queue {
            db,
            store,
            engine,
            agents,
        }
    }

    /// Keeps a voucher for later; the same intent again is the voucher already kept.
    pub async fn put(
        &self,
        rec: &ConnectionRecord,
        intent_id: &str,
        voucher: &Value,
    ) -> Result<Queued, ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        client
            .execute(
                "INSERT INTO tally_queued_vouchers (id, tenant_id, connection_id, intent_id, voucher)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (connection_id, intent_id) DO NOTHING",
                &[
                    &uuid::Uuid::now_v7().to_string(),
                    &rec.tenant_id,
                    &rec.id,
                    &intent_id,
                    voucher,
                ],
            )
            .await
            .map_err(db_err)?;
        tracing::info!(connection = %rec.id, intent = intent_id, "voucher queued: the Tally agent is offline");
        self.get(rec, intent_id)
            .await?
            .ok_or_else(|| ServiceError::internal("tally", "a queued voucher vanished"))
    }

    /// The voucher kept for an intent, if one is.
    pub async fn get(
        &self,
        rec: &ConnectionRecord,
        intent_id: &str,
    ) -> Result<Option<Queued>, ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        let row = client
            .query_opt(
                "SELECT intent_id, voucher, status, voucher_id, error, created_at
                 FROM tally_queued_vouchers WHERE connection_id = $1 AND intent_id = $2",
                &[&rec.id, &intent_id],
            )
            .await
            .map_err(db_err)?;
        Ok(row.map(|r| queued(&r)))
    }

    /// A page of the configuration's queue, oldest first, after `after` (an intent id's
    /// creation order: the row id).
    pub async fn list(
        &self,
        rec: &ConnectionRecord,
        after: &str,
        limit: i64,
    ) -> Result<Vec<(String, Queued)>, ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        let rows = client
            .query(
                "SELECT intent_id, voucher, status, voucher_id, error, created_at, id
                 FROM tally_queued_vouchers WHERE connection_id = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&rec.id, &after, &limit],
            )
            .await
            .map_err(db_err)?;
        Ok(rows.iter().map(|r| (r.get(6), queued(r))).collect())
    }

    /// Posts what waits for configurations whose agent's stream this replica holds, each time
    /// an agent joins here and every few seconds (should two replicas drain one configuration
    /// during a handover, each voucher is still posted once, by its intent).
    pub fn spawn(self, shutdown: CancellationToken) {
        let mut connected = self.agents.connections();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = connected.changed() => {}
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
                if let Err(e) = self.drain_all().await {
                    tracing::warn!(error = %e, "the voucher queue could not be drained");
                }
            }
        });
    }

    async fn drain_all(&self) -> Result<(), ServiceError> {
        let waiting: Vec<(String, String)> = {
            let client = self.db.get().await.map_err(db_err)?;
            client
                .query(
                    "SELECT DISTINCT tenant_id, connection_id FROM tally_queued_vouchers
                     WHERE status = 'queued'",
                    &[],
                )
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        };
        for (tenant, connection) in waiting {
            // the replica holding the agent's stream posts its queue
            if !self.agents.holds(&connection) {
                continue;
            }
            let rec = match self.store.get(&tenant, &connection).await {
                Ok(r) => r,
                Err(e) if e.code == bac_runtime::ErrorCode::NotFound => {
                    self.orphaned(&connection).await?;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(connection = %connection, error = %e, "queued vouchers wait");
                    continue;
                }
            };
            // one configuration's trouble does not hold up the others
            if let Err(e) = self.drain(&rec).await {
                tracing::warn!(connection = %connection, error = %e, "queued vouchers wait");
            }
        }
        Ok(())
    }

    /// The configuration was deleted: what waited for it will not be posted.
    async fn orphaned(&self, connection: &str) -> Result<(), ServiceError> {
        let client = self.db.get().await.map_err(db_err)?;
        client
            .execute(
                "UPDATE tally_queued_vouchers
                 SET status = 'failed', error = 'the Tally configuration was deleted'
                 WHERE connection_id = $1 AND status = 'queued'",
                &[&connection],
            )
            .await
            .map_err(db_err)?;
        Ok(())
    }

    /// Posts the configuration's queued vouchers in order; stops at the first that cannot be
    /// posted now (the agent went again).
    async fn drain(&self, rec: &ConnectionRecord) -> Result<(), ServiceError> {
        loop {
            let next = {
                let client = self.db.get().await.map_err(db_err)?;
                client
                    .query_opt(
                        "SELECT id, intent_id, voucher FROM tally_queued_vouchers
                         WHERE connection_id = $1 AND status = 'queued'
                         ORDER BY created_at, id LIMIT 1",
                        &[&rec.id],
                    )
                    .await
                    .map_err(db_err)?
            };
            let Some(row) = next else { return Ok(()) };
            let (id, intent, voucher): (String, String, Value) =
                (row.get(0), row.get(1), row.get(2));
            let (status, voucher_id, error) = match self
                .engine
                .create(rec, "voucher", &voucher, &intent)
                .await
            {
                Ok(created) => ("posted", Some(created.id), None),
                Err(SyncError::Permanent(e)) => ("failed", None, Some(e.message)),
                Err(SyncError::Transient(e)) => {
                    tracing::info!(connection = %rec.id, error = %e, "queued vouchers wait: Tally is not reachable");
                    return Ok(());
                }
            };
            let client = self.db.get().await.map_err(db_err)?;
            client
                .execute(
                    "UPDATE tally_queued_vouchers
                     SET status = $2, voucher_id = $3, error = $4, posted_at = now()
                     WHERE id = $1 AND status = 'queued'",
                    &[&id, &status, &voucher_id, &error],
                )
                .await
                .map_err(db_err)?;
            tracing::info!(connection = %rec.id, intent = %intent, status, "queued voucher sent to Tally");
        }
    }
}

fn queued(r: &tokio_postgres::Row) -> Queued {
    Queued {
        intent_id: r.get(0),
        voucher: r.get(1),
        status: r.get(2),
        voucher_id: r.get(3),
        error: r.get(4),
        created_at: r.get(5),
    }
}
