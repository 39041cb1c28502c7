//! Conflicts of two-way sync: how a strategy settles one (last-write-wins, per-field merge,
//! prefer remote/local, or a person), the review queue, a resolution by hand, and the
//! `bac.integrations.conflict.v1` events.
use super::*;

/// A stored conflict.
#[derive(Debug, Clone)]
pub struct ConflictView {
    pub id: String,
    pub tenant_id: String,
    pub connection_id: String,
    pub entity: String,
    pub remote_id: String,
    pub command_id: String,
    pub strategy: String,
    pub status: String,
    pub base: Option<Value>,
    pub local: Value,
    pub remote: Value,
    pub resolution: Option<String>,
    pub resolved: Option<Value>,
    pub resolved_by: Option<String>,
    pub detected_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const CONFLICT_COLUMNS: &str = "id, tenant_id, connection_id, entity, remote_id, command_id, \
    strategy, status, base, local, remote, resolution, resolved, resolved_by, detected_at, resolved_at";

fn to_struct(v: &Value) -> Option<pbjson_types::Struct> {
    serde_json::from_value(v.clone()).ok()
}

impl ConflictView {
    fn from_row(r: &tokio_postgres::Row) -> ConflictView {
        ConflictView {
            id: r.get(0),
            tenant_id: r.get(1),
            connection_id: r.get(2),
            entity: r.get(3),
            remote_id: r.get(4),
            command_id: r.get(5),
            strategy: r.get(6),
            status: r.get(7),
            base: r.get(8),
            local: r.get(9),
            remote: r.get(10),
            resolution: r.get(11),
            resolved: r.get(12),
            resolved_by: r.get(13),
            detected_at: r.get(14),
            resolved_at: r.get(15),
        }
    }

    pub fn to_proto(&self) -> bac_proto::integration::v1::Conflict {
        bac_proto::integration::v1::Conflict {
            id: self.id.clone(),
            connection_id: self.connection_id.clone(),
            entity: self.entity.clone(),
            record_id: self.remote_id.clone(),
            tenant_id: self.tenant_id.clone(),
            status: self.status.clone(),
            strategy: self.strategy.clone(),
            base: self.base.as_ref().and_then(to_struct),
            local: to_struct(&self.local),
            remote: to_struct(&self.remote),
            resolution: self.resolution.clone().unwrap_or_default(),
            resolved: self.resolved.as_ref().and_then(to_struct),
            command_id: self.command_id.clone(),
            detected_at: Some(timestamp(self.detected_at)),
            resolved_at: self.resolved_at.map(timestamp),
            resolved_by: self.resolved_by.clone().unwrap_or_default(),
        }
    }
}

impl SyncEngine {
    /// Records the conflict of a command (once: a retried command gets its first conflict
    /// back) and publishes `conflict.detected`; returns the conflict's id.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn store_conflict(
        &self,
        id: &str,
        cmd: &Command,
        scope: &Scope<'_>,
        strategy: &str,
        base: &Value,
        local: &Value,
        remote: &Value,
    ) -> Result<String, ServiceError> {
        let mut client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let tx = client.transaction().await.map_err(|e| self.db_err(e))?;
        let base = (!base.is_null()).then_some(base);
        tx.execute(
            "INSERT INTO sync_conflicts (id, tenant_id, connection_id, entity, remote_id, command_id,
                                         strategy, status, base, local, remote)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10)
             ON CONFLICT (tenant_id, command_id) DO NOTHING",
            &[
                &id,
                &scope.tenant,
                &scope.connection_id,
                &scope.entity,
                &cmd.record_id,
                &cmd.id,
                &strategy,
                &base,
                local,
                remote,
            ],
        )
        .await
        .map_err(|e| self.db_err(e))?;
        let row = tx
            .query_one(
                "SELECT id, (id = $3) FROM sync_conflicts WHERE tenant_id = $1 AND command_id = $2",
                &[&scope.tenant, &cmd.id, &id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let (id, new): (String, bool) = (row.get(0), row.get(1));
        if new {
            let event = self
                .conflict_event(&tx, scope.tenant, &id, "detected")
                .await?;
            outbox::enqueue(&tx, &event)
                .await
                .map_err(|e| self.db_err(e))?;
        }
        tx.commit().await.map_err(|e| self.db_err(e))?;
        Ok(id)
    }

    pub(super) async fn close_conflict_now(
        &self,
        tenant: &str,
        id: &str,
        resolution: &str,
        resolved: Option<&Value>,
        by: &str,
        claim: Option<Uuid>,
    ) -> Result<(), ServiceError> {
        let mut client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let tx = client.transaction().await.map_err(|e| self.db_err(e))?;
        self.close_conflict(&tx, tenant, id, resolution, resolved, by, claim)
            .await?;
        tx.commit().await.map_err(|e| self.db_err(e))
    }

    /// Closes a conflict; `claim`: the token of the resolution holding it (a resolution that
    /// lost its claim to another one closes nothing).
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn close_conflict(
        &self,
        tx: &bac_runtime::db::Transaction<'_>,
        tenant: &str,
        id: &str,
        resolution: &str,
        resolved: Option<&Value>,
        by: &str,
        claim: Option<Uuid>,
    ) -> Result<(), ServiceError> {
        let closed = tx
            .execute(
                "UPDATE sync_conflicts SET status = 'resolved', resolution = $3, resolved = $4,
                   resolved_by = $5, resolved_at = now(), resolving_until = NULL,
                   resolving_token = NULL
                 WHERE tenant_id = $1 AND id = $2
                   AND ($6::uuid IS NULL OR (status = 'resolving' AND resolving_token = $6))",
                &[&tenant, &id, &resolution, &resolved, &by, &claim],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if closed == 0 {
            return Err(self.err(
                ErrorCode::AlreadyExists,
                format!("conflict {id} was taken over by another resolution"),
            ));
        }
        let event = self.conflict_event(tx, tenant, id, "resolved").await?;
        outbox::enqueue(tx, &event)
            .await
            .map_err(|e| self.db_err(e))
    }

    pub(super) async fn conflict_event(
        &self,
        tx: &bac_runtime::db::Transaction<'_>,
        tenant: &str,
        id: &str,
        what: &str,
    ) -> Result<CloudEvent, ServiceError> {
        let row = tx
            .query_one(
                &format!("SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE tenant_id = $1 AND id = $2"),
                &[&tenant, &id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        let c = ConflictView::from_row(&row);
        Ok(CloudEvent {
            id: Uuid::now_v7(),
            source: format!("/bac/{}", self.inner.integration),
            ty: format!("bac.integrations.conflict.{what}"),
            subject: Some(format!("{}/{}", c.entity, c.remote_id)),
            time: Utc::now(),
            tenant_id: c.tenant_id.clone(),
            connection_id: Some(c.connection_id.clone()),
            traceparent: bac_runtime::telemetry::current_traceparent(),
            data: serde_json::to_vec(&c.to_proto()).map_err(|e| self.db_err(e))?,
            topic: CONFLICT_TOPIC.into(),
            key: format!("{}/{}/{}", c.tenant_id, c.entity, c.remote_id),
        })
    }

    pub async fn conflicts(
        &self,
        tenant: &str,
        connection_id: &str,
        status: &str,
    ) -> Result<Vec<ConflictView>, ServiceError> {
        let status = match status {
            "" | "open" => "open",
            "resolved" => "resolved",
            "all" => "",
            other => {
                return Err(self.err(
                    ErrorCode::InvalidRequest,
                    format!("status {other:?} is not open, resolved or all"),
                ))
            }
        };
        self.inner.connections.get(tenant, connection_id).await?;
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                &format!(
                    "SELECT {CONFLICT_COLUMNS} FROM sync_conflicts
                     WHERE tenant_id = $1 AND connection_id = $2 AND ($3 = '' OR status = $3)
                     ORDER BY detected_at DESC LIMIT 200"
                ),
                &[&tenant, &connection_id, &status],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(rows.iter().map(ConflictView::from_row).collect())
    }

    /// One conflict of the tenant's, by id.
    pub async fn conflict(&self, tenant: &str, id: &str) -> Result<ConflictView, ServiceError> {
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let row = client
            .query_opt(
                &format!("SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE tenant_id = $1 AND id = $2"),
                &[&tenant, &id],
            )
            .await
            .map_err(|e| self.db_err(e))?
            .ok_or_else(|| self.err(ErrorCode::NotFound, format!("no conflict {id}")))?;
        Ok(ConflictView::from_row(&row))
    }

    /// Settles an open conflict by hand: keep upstream's record, write the platform's values,
    /// or write merged values.
    pub async fn resolve_conflict(
        &self,
        tenant: &str,
        id: &str,
        resolution: &str,
        merged: Option<Value>,
        by: &str,
    ) -> Result<ConflictView, ServiceError> {
        let c = self.conflict(tenant, id).await?;
        if c.status != "open" && c.status != "resolving" {
            return Err(self.err(
                ErrorCode::AlreadyExists,
                format!(
                    "conflict {id} was already resolved ({})",
                    c.resolution.unwrap_or_default()
                ),
            ));
        }
        let to_write = match resolution {
            "remote" => None,
            "local" => Some(c.local.clone()),
            "merged" => match merged {
                Some(Value::Object(m)) if !m.is_empty() => Some(Value::Object(m)),
                _ => {
                    return Err(self.err(
                        ErrorCode::InvalidRequest,
                        "resolution \"merged\" needs merged: the field values to write",
                    ))
                }
            },
            other => {
                return Err(self.err(
                    ErrorCode::InvalidRequest,
                    format!("resolution {other:?} is not remote, local or merged"),
                ))
            }
        };
        let conn = self.inner.connections.get(tenant, &c.connection_id).await?;
        let scope = Scope {
            tenant,
            connection_id: &c.connection_id,
            entity: &c.entity,
        };
        // Claim it, so two people (or a retried request) cannot resolve it twice.
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        // The claim is a lease: a resolution cut off gives the conflict back when it ends.
        let token = Uuid::new_v4();
        let claimed = client
            .execute(
                "UPDATE sync_conflicts SET status = 'resolving', resolving_token = $4,
                   resolving_until = now() + make_interval(secs => $3)
                 WHERE tenant_id = $1 AND id = $2
                   AND (status = 'open' OR (status = 'resolving' AND resolving_until < now()))",
                &[&tenant, &id, &RESOLUTION_LEASE.as_secs_f64(), &token],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        drop(client);
        if claimed == 0 {
            return Err(self.err(
                ErrorCode::AlreadyExists,
                format!("conflict {id} is being or was already resolved"),
            ));
        }
        if let Some(values) = &to_write {
            if let Err(e) = self.push(&conn, &scope, &c.remote_id, values).await {
                if let Ok(client) = self.inner.db.get().await {
                    let _ = client
                        .execute(
                            "UPDATE sync_conflicts SET status = 'open', resolving_until = NULL,
                               resolving_token = NULL
                             WHERE tenant_id = $1 AND id = $2 AND status = 'resolving'
                               AND resolving_token = $3",
                            &[&tenant, &id, &token],
                        )
                        .await;
                }
                return Err(e.service_error().clone());
            }
        }
        self.close_conflict_now(tenant, id, resolution, to_write.as_ref(), by, Some(token))
            .await?;
        {
            let cmd = &c.command_id;
            let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
            client
                .execute(
                    "UPDATE sync_commands SET status = 'applied', finished_at = now()
                     WHERE tenant_id = $1 AND command_id = $2 AND status = 'conflict'",
                    &[&tenant, cmd],
                )
                .await
                .map_err(|e| self.db_err(e))?;
        }
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let row = client
            .query_one(
                &format!("SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE tenant_id = $1 AND id = $2"),
                &[&tenant, &id],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        Ok(ConflictView::from_row(&row))
    }
}

/// How a conflict is settled.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Decision {
    /// Write these values upstream (resolution: local or merged).
    Write(&'static str, Value),
    /// Keep upstream's record.
    Remote,
    /// Queue for a person.
    Manual,
}

pub(super) fn decide(
    strategy: &str,
    local: &Map<String, Value>,
    base: &Value,
    remote: &Value,
    local_time: DateTime<Utc>,
    remote_time: Option<DateTime<Utc>>,
    owners: &BTreeMap<String, String>,
) -> Decision {
    match strategy {
        "prefer_local" => Decision::Write("local", Value::Object(local.clone())),
        "prefer_remote" => Decision::Remote,
        "manual" => Decision::Manual,
        "merge" => {
            // A field only the platform changed is taken; a field both changed goes to its
            // owner (remote unless the field is owned by the platform).
            let remote_changed = changed_fields(remote.as_object().unwrap_or(&Map::new()), base);
            let merged: Map<String, Value> = local
                .iter()
                .filter(|(k, _)| {
                    !remote_changed.contains(k)
                        || owners.get(k.as_str()).map(String::as_str) == Some("platform")
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if merged.is_empty() {
                Decision::Remote
            } else {
                Decision::Write("merged", Value::Object(merged))
            }
        }
        // last_write_wins: the newer change wins; upstream without a version loses.
        _ => match remote_time {
            Some(r) if r >= local_time => Decision::Remote,
            _ => Decision::Write("local", Value::Object(local.clone())),
        },
    }
}
