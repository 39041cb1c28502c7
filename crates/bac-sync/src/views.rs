//! Sync runs as the API shows them.
use super::*;

impl SyncEngine {
    /// The newest runs of a connection.
    pub async fn runs(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        limit: u32,
    ) -> Result<Vec<SyncRunView>, ServiceError> {
        self.inner.connections.get(tenant, connection_id).await?;
        let limit = i64::from(match limit {
            0 => 20,
            n => n.min(200),
        });
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS} FROM sync_runs
                     WHERE tenant_id = $1 AND connection_id = $2 AND ($3 = '' OR entity = $3)
                     ORDER BY queued_at DESC, id DESC LIMIT $4"
                ),
                &[&tenant, &connection_id, &entity, &limit],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(SyncRunView::from_row).collect())
    }

    /// The tenant's sync as a status shows it: the frequencies in force over its connections
    /// and entities (unset ones are manual), and its last successful run.
    pub async fn summary(&self, tenant: &str) -> Result<SyncSummary, ServiceError> {
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let connections: Vec<String> = self
            .inner
            .connections
            .list(tenant)
            .await?
            .into_iter()
            .map(|c| c.id)
            .collect();
        let set = client
            .query(
                "SELECT connection_id, entity, frequency FROM sync_settings WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let mut frequencies: Vec<String> = Vec::new();
        for c in &connections {
            for e in self.entities() {
                let f = set
                    .iter()
                    .find(|r| r.get::<_, &str>(0) == c && r.get::<_, &str>(1) == e)
                    .map_or("manual", |r| r.get::<_, &str>(2));
                if !frequencies.iter().any(|x| x == f) {
                    frequencies.push(f.to_string());
                }
            }
        }
        // Scheduled ones first, "manual" last.
        frequencies.sort_by_key(|f| (f == "manual", f.clone()));
        let last = client
            .query_opt(
                "SELECT started_at, (extract(epoch FROM finished_at - started_at) * 1000)::bigint,
                        records_seen
                 FROM sync_runs WHERE tenant_id = $1 AND status = 'succeeded'
                 ORDER BY finished_at DESC LIMIT 1",
                &[&tenant],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(SyncSummary {
            frequency: frequencies.join(", "),
            last_run_started_at: last.as_ref().and_then(|r| r.get(0)),
            last_run_duration_ms: last
                .as_ref()
                .and_then(|r| r.get::<_, Option<i64>>(1))
                .and_then(|v| u64::try_from(v).ok()),
            last_run_records: last
                .as_ref()
                .and_then(|r| u64::try_from(r.get::<_, i64>(2)).ok()),
        })
    }

    /// When the tenant's last run of any connection and entity succeeded.
    pub async fn last_success(&self, tenant: &str) -> Result<Option<DateTime<Utc>>, ServiceError> {
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let row = client
            .query_one(
                "SELECT max(last_success_at) FROM sync_cursors WHERE tenant_id = $1",
                &[&tenant],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(row.get(0))
    }
}

pub(crate) const RUN_COLUMNS: &str =
    "id, tenant_id, connection_id, entity, mode, trigger, status, \
     records_seen, records_created, records_updated, records_deleted, records_failed, errors, \
     error, attempts, queued_at, started_at, finished_at, partition";

/// A `sync_runs` row.
#[derive(Debug, Clone)]
pub struct SyncRunView {
    pub id: Uuid,
    pub tenant_id: String,
    pub connection_id: String,
    pub entity: String,
    pub mode: String,
    pub trigger: String,
    pub status: String,
    pub counts: [i64; 5],
    pub errors: Value,
    pub error: Option<String>,
    pub attempts: i32,
    pub queued_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The partition the run reads ('' for the entity itself).
    pub partition: String,
}

impl SyncRunView {
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> SyncRunView {
        SyncRunView {
            id: r.get(0),
            tenant_id: r.get(1),
            connection_id: r.get(2),
            entity: r.get(3),
            mode: r.get(4),
            trigger: r.get(5),
            status: r.get(6),
            counts: [r.get(7), r.get(8), r.get(9), r.get(10), r.get(11)],
            errors: r.get(12),
            error: r.get(13),
            attempts: r.get(14),
            queued_at: r.get(15),
            started_at: r.get(16),
            finished_at: r.get(17),
            partition: r.get(18),
        }
    }

    pub fn to_proto(&self) -> bac_proto::integration::v1::SyncRun {
        let n = |i: usize| self.counts[i].clamp(0, i64::from(u32::MAX)) as u32;
        bac_proto::integration::v1::SyncRun {
            id: self.id.to_string(),
            connection_id: self.connection_id.clone(),
            entity: self.entity.clone(),
            mode: self.mode.clone(),
            status: self.status.clone(),
            trigger: self.trigger.clone(),
            tenant_id: self.tenant_id.clone(),
            records_seen: n(0),
            records_created: n(1),
            records_updated: n(2),
            records_deleted: n(3),
            records_failed: n(4),
            errors: self
                .errors
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|e| bac_proto::integration::v1::RecordError {
                            record_id: e["record_id"].as_str().unwrap_or("").to_string(),
                            message: e["message"].as_str().unwrap_or("").to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            error: self.error.clone().unwrap_or_default(),
            queued_at: Some(timestamp(self.queued_at)),
            started_at: self.started_at.map(timestamp),
            finished_at: self.finished_at.map(timestamp),
            duration_ms: match (self.started_at, self.finished_at) {
                (Some(s), Some(f)) => {
                    Some((f - s).num_milliseconds().clamp(0, i64::from(u32::MAX)) as u32)
                }
                _ => None,
            },
            attempts: self.attempts.max(0) as u32,
            partition: (!self.partition.is_empty()).then(|| self.partition.clone()),
        }
    }
}

/// A tenant's sync, summed up for its status.
#[derive(Debug, Clone, Default)]
pub struct SyncSummary {
    /// Every frequency in force, scheduled ones first (`"hourly, manual"`); empty without a
    /// connection.
    pub frequency: String,
    pub last_run_started_at: Option<DateTime<Utc>>,
    pub last_run_duration_ms: Option<u64>,
    pub last_run_records: Option<u64>,
}
