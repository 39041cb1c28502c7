//! An entity's sync settings (frequency, conflict strategy, field owners) and its field
//! mapping in force: saved as versions, validated on save, previewed on samples.
use super::*;

impl SyncEngine {
    /// The mapping in force for a connection's entity: its newest saved version, or the
    /// adapter's default (version 0).
    pub async fn mapping(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
    ) -> Result<(u32, Mapping, Option<DateTime<Utc>>), ServiceError> {
        let adapter = self.adapter(entity)?;
        mapping_in_force(
            &self.inner.db,
            self.inner.integration,
            tenant,
            connection_id,
            entity,
            adapter.default_mapping(),
        )
        .await
    }

    /// Validates and stores a new mapping version.
    pub async fn put_mapping(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        rules: &Value,
        by: &str,
    ) -> Result<(u32, Mapping, DateTime<Utc>), ServiceError> {
        self.adapter(entity)?;
        self.inner.connections.get(tenant, connection_id).await?;
        let mapping = Mapping::parse(rules).map_err(|errs| {
            self.err(
                ErrorCode::InvalidRequest,
                format!("invalid mapping: {}", errs.join("; ")),
            )
        })?;
        let stored = serde_json::to_value(&mapping).map_err(|e| self.db_err(e))?;
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let row = client
            .query_one(
                "INSERT INTO sync_mappings (tenant_id, connection_id, entity, version, rules, created_by)
                 SELECT $1, $2, $3, COALESCE(MAX(version), 0) + 1, $4, $5 FROM sync_mappings
                 WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3
                 RETURNING version, created_at",
                &[&tenant, &connection_id, &entity, &stored, &by],
            )
            .await
            .map_err(|e| {
                if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                    self.err(ErrorCode::AlreadyExists, "the mapping changed meanwhile; retry")
                } else {
                    self.db_err(e)
                }
            })?;
        // The mirror holds records mapped the old way: a full run re-maps them (an `updated`
        // event where the canonical record changed), and conflict detection compares like
        // with like again.
        run::enqueue(
            self,
            tenant,
            connection_id,
            entity,
            "",
            Mode::Full,
            "mapping",
        )
        .await?;
        self.inner.wake.notify_one();
        Ok((row.get::<_, i32>(0) as u32, mapping, row.get(1)))
    }

    /// Applies `mapping` to samples, or to the first records upstream when none are given.
    pub async fn preview(
        &self,
        conn: &ConnectionRecord,
        entity: &str,
        mapping: &Mapping,
        samples: Vec<Value>,
    ) -> Result<Vec<(Value, Result<Value, String>)>, ServiceError> {
        let adapter = self.adapter(entity)?;
        let samples = if samples.is_empty() {
            // A partitioned entity's samples come from its first partition.
            let partition = adapter
                .partitions(conn)
                .await
                .map_err(|e| e.service_error().clone())?
                .and_then(|p| p.into_iter().next())
                .unwrap_or_default();
            let page = adapter
                .pull(
                    conn,
                    &PullRequest {
                        mode: Mode::Full,
                        cursor: None,
                        position: None,
                        page_size: 5,
                        run_started_at: Utc::now(),
                        partition,
                    },
                )
                .await
                .map_err(|e| e.service_error().clone())?;
            page.records.into_iter().map(|r| r.raw).collect()
        } else {
            samples
        };
        Ok(samples
            .into_iter()
            .map(|s| {
                let out = mapping.apply(&s).map_err(|e| e.to_string());
                (s, out)
            })
            .collect())
    }

    /// Settings of every entity of a connection (defaults where none are stored).
    pub async fn settings(
        &self,
        tenant: &str,
        connection_id: &str,
    ) -> Result<Vec<EntitySettings>, ServiceError> {
        self.inner.connections.get(tenant, connection_id).await?;
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                "SELECT s.entity, s.frequency, s.conflict_strategy, s.field_owners, s.next_due_at
                 FROM sync_settings s WHERE s.tenant_id = $1 AND s.connection_id = $2",
                &[&tenant, &connection_id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let cursors = client
            .query(
                "SELECT entity, max(last_success_at) FROM sync_cursors
                 WHERE tenant_id = $1 AND connection_id = $2 GROUP BY entity",
                &[&tenant, &connection_id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(self
            .entities()
            .into_iter()
            .map(|entity| {
                let row = rows.iter().find(|r| r.get::<_, &str>(0) == entity);
                let last = cursors
                    .iter()
                    .find(|r| r.get::<_, &str>(0) == entity)
                    .map(|r| r.get::<_, DateTime<Utc>>(1));
                EntitySettings {
                    connection_id: connection_id.to_string(),
                    entity: entity.to_string(),
                    frequency: row
                        .map(|r| r.get::<_, String>(1))
                        .unwrap_or_else(|| "manual".into()),
                    conflict_strategy: row
                        .map(|r| r.get::<_, String>(2))
                        .unwrap_or_else(|| "last_write_wins".into()),
                    field_owners: row
                        .map(|r| r.get::<_, Value>(3))
                        .and_then(|v| serde_json::from_value(v).ok())
                        .unwrap_or_default(),
                    next_run_at: row.and_then(|r| r.get(4)),
                    last_success_at: last,
                }
            })
            .collect())
    }

    /// Changes an entity's frequency, conflict strategy and/or field owners.
    pub async fn update_settings(
        &self,
        tenant: &str,
        connection_id: &str,
        entity: &str,
        frequency: Option<&str>,
        strategy: Option<&str>,
        owners: Option<BTreeMap<String, String>>,
    ) -> Result<EntitySettings, ServiceError> {
        self.adapter(entity)?;
        let bad = |m: String| self.err(ErrorCode::InvalidRequest, m);
        let next_due = match frequency {
            Some(f) => Some(
                schedule::Frequency::parse(f)
                    .map_err(bad)?
                    .next_after(Utc::now()),
            ),
            None => None,
        };
        if let Some(s) = strategy {
            if !STRATEGIES.contains(&s) {
                return Err(bad(format!(
                    "conflict_strategy {s:?} is not one of {}",
                    STRATEGIES.join(", ")
                )));
            }
        }
        if let Some(o) = &owners {
            if let Some((f, v)) = o.iter().find(|(_, v)| *v != "platform" && *v != "remote") {
                return Err(bad(format!(
                    "field_owners.{f} is {v:?}; use \"platform\" or \"remote\""
                )));
            }
        }
        self.inner.connections.get(tenant, connection_id).await?;
        let owners_json = owners.map(|o| json!(o));
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        client
            .execute(
                "INSERT INTO sync_settings (tenant_id, connection_id, entity, frequency, next_due_at,
                                            conflict_strategy, field_owners)
                 VALUES ($1, $2, $3, COALESCE($4, 'manual'), $5, COALESCE($6, 'last_write_wins'),
                         COALESCE($7, '{}'::jsonb))
                 ON CONFLICT (tenant_id, connection_id, entity) DO UPDATE SET
                   frequency = COALESCE($4, sync_settings.frequency),
                   next_due_at = CASE WHEN $4 IS NULL THEN sync_settings.next_due_at ELSE $5 END,
                   conflict_strategy = COALESCE($6, sync_settings.conflict_strategy),
                   field_owners = COALESCE($7, sync_settings.field_owners),
                   updated_at = now()",
                &[
                    &tenant,
                    &connection_id,
                    &entity,
                    &frequency,
                    &next_due.flatten(),
                    &strategy,
                    &owners_json,
                ],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        self.settings(tenant, connection_id)
            .await?
            .into_iter()
            .find(|s| s.entity == entity)
            .ok_or_else(|| self.db_err("settings vanished"))
    }
}

/// The newest saved mapping of a connection's entity, or `default` (version 0).
pub async fn mapping_in_force(
    db: &Pool,
    integration: &str,
    tenant: &str,
    connection_id: &str,
    entity: &str,
    default: Mapping,
) -> Result<(u32, Mapping, Option<DateTime<Utc>>), ServiceError> {
    let db_err =
        |e: &dyn std::fmt::Display| ServiceError::internal(integration, format!("sync store: {e}"));
    let client = db.get().await.map_err(|e| db_err(&e))?;
    let row = client
        .query_opt(
            "SELECT version, rules, created_at FROM sync_mappings
             WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3
             ORDER BY version DESC LIMIT 1",
            &[&tenant, &connection_id, &entity],
        )
        .await
        .map_err(|e| db_err(&e))?;
    match row {
        None => Ok((0, default, None)),
        Some(r) => {
            let rules: Value = r.get(1);
            let m = Mapping::parse(&rules)
                .map_err(|errs| db_err(&format!("stored mapping invalid: {}", errs.join("; "))))?;
            Ok((r.get::<_, i32>(0) as u32, m, Some(r.get(2))))
        }
    }
}

/// An entity's sync settings as the API shows them.
#[derive(Debug, Clone)]
pub struct EntitySettings {
    pub connection_id: String,
    pub entity: String,
    pub frequency: String,
    pub conflict_strategy: String,
    pub field_owners: BTreeMap<String, String>,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
}

impl EntitySettings {
    pub fn to_proto(&self) -> bac_proto::integration::v1::SyncSettings {
        bac_proto::integration::v1::SyncSettings {
            connection_id: self.connection_id.clone(),
            entity: self.entity.clone(),
            frequency: self.frequency.clone(),
            conflict_strategy: self.conflict_strategy.clone(),
            field_owners: self.field_owners.clone().into_iter().collect(),
            next_run_at: self.next_run_at.map(timestamp),
            last_success_at: self.last_success_at.map(timestamp),
        }
    }
}
