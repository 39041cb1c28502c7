//! The one write path: what the platform writes to a connection's upstream goes through the
//! entity's adapter (the provider's create, at most once per intent id, or update, read back)
//! and then the mirror, which records the row and its event (origin `platform`) so the next
//! pull does not report it again. A service's REST and gRPC routes and the Kafka commands
//! of two-way sync all call these, so the three cannot disagree on what a create sends.
use bac_runtime::connections::ConnectionRecord;
use serde_json::Value;

use crate::{mirror::Scope, RemoteRecord, SyncEngine, SyncError};

impl SyncEngine {
    /// Creates a record of `entity` upstream from canonical `values`; a retry with the same
    /// `intent_id` finds the first record instead of making a second. Returns the record as
    /// read back.
    ///
    /// Two guards, because either alone leaves a gap: the ledger (`sync_intents`) remembers
    /// which record an intent made, with creates of one intent serialised by an advisory
    /// lock, so concurrent and later retries return that record on every provider; the
    /// adapter keeps the intent upstream where the provider has a field for it (Odoo's
    /// `x_bac_intent_id`, a Zoho custom field), which covers a crash between the provider's
    /// answer and the ledger's commit.
    pub async fn create(
        &self,
        conn: &ConnectionRecord,
        entity: &str,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let adapter = self.adapter(entity).map_err(SyncError::Permanent)?;
        let db_err = |e: &dyn std::fmt::Display| SyncError::Transient(self.db_err(e));
        let mut client = self.inner.db.get().await.map_err(|e| db_err(&e))?;
        let tx = client.transaction().await.map_err(|e| db_err(&e))?;
        let key = format!("{}/{}/{}", conn.id, adapter.entity(), intent_id);
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 7))",
            &[&key],
        )
        .await
        .map_err(|e| db_err(&e))?;
        let known = tx
            .query_opt(
                "SELECT remote_id, answer FROM sync_intents
                  WHERE connection_id = $1 AND entity = $2 AND intent_id = $3",
                &[&conn.id, &adapter.entity(), &intent_id],
            )
            .await
            .map_err(|e| db_err(&e))?;
        if let Some(row) = known {
            let remote_id: String = row.get(0);
            let answer: Option<Value> = row.get(1);
            drop(tx);
            if let Some(raw) = answer.filter(|_| !adapter.refetchable()) {
                return Ok(RemoteRecord {
                    id: remote_id,
                    version: None,
                    raw,
                    deleted: false,
                });
            }
            return match adapter.fetch(conn, &remote_id).await? {
                Some(rec) => self.recorded(conn, adapter.entity(), rec).await,
                None => Err(SyncError::Permanent(self.err(
                    bac_runtime::ErrorCode::AlreadyExists,
                    format!(
                        "the record created for this idempotency key ({remote_id}) no longer exists upstream"
                    ),
                ))),
            };
        }
        let rec = adapter.create(conn, values, intent_id).await?;
        let answer = (!adapter.refetchable()).then(|| rec.raw.clone());
        tx.execute(
            "INSERT INTO sync_intents (connection_id, entity, intent_id, tenant_id, remote_id, answer)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &[
                &conn.id,
                &adapter.entity(),
                &intent_id,
                &conn.tenant_id,
                &rec.id,
                &answer,
            ],
        )
        .await
        .map_err(|e| db_err(&e))?;
        tx.commit().await.map_err(|e| db_err(&e))?;
        self.recorded(conn, adapter.entity(), rec).await
    }

    /// Writes canonical `values` to record `id` upstream (no conflict check: the caller's
    /// values are the change). Returns the record as read back.
    pub async fn update(
        &self,
        conn: &ConnectionRecord,
        entity: &str,
        id: &str,
        values: &Value,
    ) -> Result<RemoteRecord, SyncError> {
        let adapter = self.adapter(entity).map_err(SyncError::Permanent)?;
        let rec = adapter.update(conn, id, values).await?;
        self.recorded(conn, adapter.entity(), rec).await
    }

    async fn recorded(
        &self,
        conn: &ConnectionRecord,
        entity: &str,
        rec: RemoteRecord,
    ) -> Result<RemoteRecord, SyncError> {
        let scope = Scope {
            tenant: &conn.tenant_id,
            connection_id: &conn.id,
            entity,
        };
        self.record_platform_write(&scope, &rec)
            .await
            .map_err(SyncError::Transient)?;
        Ok(rec)
    }
}
