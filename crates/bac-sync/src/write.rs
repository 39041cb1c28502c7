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
    pub async fn create(
        &self,
        conn: &ConnectionRecord,
        entity: &str,
        values: &Value,
        intent_id: &str,
    ) -> Result<RemoteRecord, SyncError> {
        let adapter = self.adapter(entity).map_err(SyncError::Permanent)?;
        let rec = adapter.create(conn, values, intent_id).await?;
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
