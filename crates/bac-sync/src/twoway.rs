//! The push half of two-way sync. Other platform services send create/update/delete
//! commands as CloudEvents on `bac.<integration>.commands.v1`; each is applied upstream at
//! most once (its `ce_id` is claimed in `sync_commands` first, and a create carries it as its
//! intent id so a retry finds the first create). An update meets a conflict when upstream
//! changed the record since the mirror last saw it; the entity's strategy settles it
//! (last-write-wins, per-field merge, prefer remote/local) or queues it for a person. Every
//! conflict and its resolution is an event on `bac.integrations.conflict.v1`.
use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use rdkafka::{
    consumer::{CommitMode, Consumer},
    message::{Headers, Message},
};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

mod conflicts;
mod consumer;

pub use conflicts::ConflictView;
use conflicts::{decide, Decision};
pub(crate) use consumer::consume;
use consumer::pg_message;

use super::{mirror::Scope, RemoteRecord, SyncEngine, SyncError, CONFLICT_TOPIC};
use bac_runtime::{
    config::KafkaConfig,
    connections::{timestamp, ConnectionRecord},
    error::{ErrorCode, ServiceError},
    events::{self, CloudEvent},
    outbox,
};

/// One inbound command.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Command {
    /// The CloudEvent's `ce_id`: applied at most once.
    pub id: String,
    pub tenant: String,
    /// Empty: the tenant's only connection.
    pub connection_id: String,
    pub entity: String,
    /// create | update | delete
    pub op: String,
    pub record_id: Option<String>,
    /// Canonical field values.
    pub values: Value,
    /// When the platform made the change (`ce_time`): last-write-wins compares it.
    pub time: DateTime<Utc>,
}

impl Command {
    /// From a Kafka message in CloudEvents binary mode: headers `ce_id`, `ce_tenantid`,
    /// optional `ce_connectionid`, `ce_time`, `ce_type` (`bac.<integration>.<entity>.<op>`),
    /// payload `{"entity", "op", "record_id", "values"}` (payload fields win over the type).
    pub fn parse(headers: &[(String, String)], payload: &[u8]) -> Result<Command, String> {
        let h = |k: &str| {
            headers
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let id = h("ce_id").ok_or("no ce_id header")?;
        let tenant = h("ce_tenantid").ok_or("no ce_tenantid header")?;
        if !bac_runtime::context::valid_tenant_id(&tenant) {
            return Err(format!("ce_tenantid {tenant:?} is not a tenant id"));
        }
        let body: Value =
            serde_json::from_slice(payload).map_err(|e| format!("payload is not JSON: {e}"))?;
        let ty = h("ce_type").unwrap_or_default();
        let mut parts = ty.rsplitn(3, '.');
        let (ty_op, ty_entity) = (parts.next(), parts.next());
        let entity = body["entity"]
            .as_str()
            .map(str::to_string)
            .or(ty_entity.map(str::to_string))
            .ok_or("no entity (payload.entity or ce_type)")?;
        let op = body["op"]
            .as_str()
            .map(str::to_string)
            .or(ty_op.map(str::to_string))
            .ok_or("no op (payload.op or ce_type)")?;
        if !["create", "update", "delete"].contains(&op.as_str()) {
            return Err(format!("op {op:?} is not create, update or delete"));
        }
        let record_id = match &body["record_id"] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        if op != "create" && record_id.is_none() {
            return Err(format!("{op} needs payload.record_id"));
        }
        let values = match &body["values"] {
            Value::Object(_) => body["values"].clone(),
            Value::Null if op == "delete" => json!({}),
            _ => return Err(format!("{op} needs payload.values (an object)")),
        };
        let time = h("ce_time")
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(Utc::now);
        Ok(Command {
            id,
            tenant,
            connection_id: h("ce_connectionid").unwrap_or_default(),
            entity,
            op,
            record_id,
            values,
            time,
        })
    }
}

/// What became of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Applied {
        remote_id: String,
    },
    /// Seen before (same `ce_id`): nothing done.
    Duplicate,
    /// Waiting in the manual review queue.
    Queued {
        conflict_id: String,
    },
    /// A conflict the strategy settled for the remote side: nothing written.
    KeptRemote {
        conflict_id: String,
    },
    /// Upstream failed for now: stored, and retried later by the worker (the consumer moves on).
    Parked {
        attempts: i32,
    },
    /// Another replica is applying it right now.
    Busy,
    /// Refused for good before it was stored (its connection is not the named tenant's, or
    /// Postgres cannot hold its values); kept in `sync_command_rejects` with the reason.
    Rejected {
        reason: String,
    },
}

/// Postgres refused the data itself (SQLSTATE class 22 data exception, 23 integrity
/// violation): storing it again cannot succeed.
fn refused_data(e: &tokio_postgres::Error) -> bool {
    e.code()
        .is_some_and(|c| c.code().starts_with("22") || c.code().starts_with("23"))
}

/// Where a rejected command came from and what it said, kept as it arrived.
pub struct Received<'a> {
    pub source: String,
    pub headers: &'a [(String, String)],
    pub payload: &'a [u8],
}

/// How long a resolution may hold its conflict: the upstream write's deadline with retries,
/// with room to spare. Past it, the conflict is open again.
pub(crate) const RESOLUTION_LEASE: Duration = Duration::from_secs(120);

/// Tries a parked command gets before it is marked failed.
const MAX_COMMAND_ATTEMPTS: i32 = 10;

/// The canonical fields of `values` whose value differs from `base`.
fn changed_fields(values: &Map<String, Value>, base: &Value) -> Vec<String> {
    values
        .iter()
        .filter(|(k, v)| base.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

impl SyncEngine {
    /// Applies one command upstream, at most once per `ce_id`. `Err(Transient)`: try again
    /// later (the claim stays `pending`, so a retry continues it); `Err(Permanent)`: the
    /// command is recorded as failed.
    pub async fn apply_command(&self, cmd: &Command) -> Result<Outcome, SyncError> {
        let transient = |e: tokio_postgres::Error| SyncError::Transient(self.db_err(e));
        // A command acts only on a connection of the tenant it names; one naming another
        // tenant's (or no existing) connection is refused before anything is stored.
        if !cmd.connection_id.is_empty() {
            match self
                .inner
                .connections
                .get(&cmd.tenant, &cmd.connection_id)
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == ErrorCode::NotFound => {
                    return Ok(Outcome::Rejected {
                        reason: format!(
                            "connection {} is not a connection of tenant {}",
                            cmd.connection_id, cmd.tenant
                        ),
                    });
                }
                Err(e) => return Err(SyncError::Transient(e)),
            }
        }
        let client = self
            .inner
            .db
            .get()
            .await
            .map_err(|e| SyncError::Transient(self.db_err(e)))?;
        // The claim: a new command, or a pending one nobody holds. Stored whole, so a parked
        // command can be retried without Kafka.
        let stored = serde_json::to_value(cmd).map_err(|e| SyncError::Transient(self.db_err(e)))?;
        let claimed = client
            .query_opt(
                "INSERT INTO sync_commands (tenant_id, command_id, connection_id, entity, op,
                                            remote_id, status, command, claimed_until, attempts)
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, now() + interval '5 minutes', 1)
                 ON CONFLICT (tenant_id, command_id) DO UPDATE
                   SET claimed_until = now() + interval '5 minutes',
                       attempts = sync_commands.attempts + 1
                   WHERE sync_commands.status = 'pending'
                     AND (sync_commands.claimed_until IS NULL OR sync_commands.claimed_until < now())
                 RETURNING attempts",
                &[&cmd.tenant, &cmd.id, &cmd.connection_id, &cmd.entity, &cmd.op, &cmd.record_id, &stored],
            )
            .await;
        let claimed = match claimed {
            Err(e) if refused_data(&e) => {
                return Ok(Outcome::Rejected {
                    reason: format!("the command cannot be stored: {}", pg_message(&e)),
                })
            }
            other => other.map_err(transient)?,
        };
        let Some(claimed) = claimed else {
            let status: Option<String> = client
                .query_opt(
                    "SELECT status FROM sync_commands WHERE tenant_id = $1 AND command_id = $2",
                    &[&cmd.tenant, &cmd.id],
                )
                .await
                .map_err(transient)?
                .map(|r| r.get(0));
            return Ok(match status.as_deref() {
                Some("pending") => Outcome::Busy,
                _ => Outcome::Duplicate,
            });
        };
        let attempts: i32 = claimed.get(0);
        drop(client);
        let result = self.apply_claimed(cmd).await;
        let (status, remote_id, error) = match &result {
            Ok(Outcome::Applied { remote_id }) => ("applied", Some(remote_id.clone()), None),
            Ok(Outcome::Queued { .. }) => ("conflict", cmd.record_id.clone(), None),
            Ok(Outcome::KeptRemote { .. }) => ("skipped", cmd.record_id.clone(), None),
            Ok(_) => return result,
            Err(SyncError::Transient(e)) if attempts < MAX_COMMAND_ATTEMPTS => {
                // Park it: retried with backoff by the worker; other commands go on meanwhile.
                let client = self
                    .inner
                    .db
                    .get()
                    .await
                    .map_err(|e| SyncError::Transient(self.db_err(e)))?;
                let delay = 2f64.powi(attempts.min(10)).min(600.0);
                client
                    .execute(
                        "UPDATE sync_commands SET claimed_until = NULL, error = $3,
                           retry_at = now() + make_interval(secs => $4)
                         WHERE tenant_id = $1 AND command_id = $2",
                        &[&cmd.tenant, &cmd.id, &e.to_string(), &delay],
                    )
                    .await
                    .map_err(transient)?;
                metrics::counter!("bac_sync_commands_total",
                    "integration" => self.inner.integration, "entity" => cmd.entity.clone(), "status" => "parked")
                .increment(1);
                return Ok(Outcome::Parked { attempts });
            }
            Err(SyncError::Transient(e)) => (
                "failed",
                cmd.record_id.clone(),
                Some(format!("gave up after {attempts} attempts: {e}")),
            ),
            Err(SyncError::Permanent(e)) => ("failed", cmd.record_id.clone(), Some(e.to_string())),
        };
        let client = self
            .inner
            .db
            .get()
            .await
            .map_err(|e| SyncError::Transient(self.db_err(e)))?;
        client
            .execute(
                "UPDATE sync_commands SET status = $3, remote_id = $4, error = $5, finished_at = now(),
                   claimed_until = NULL, retry_at = NULL
                 WHERE tenant_id = $1 AND command_id = $2",
                &[&cmd.tenant, &cmd.id, &status, &remote_id, &error],
            )
            .await
            .map_err(transient)?;
        metrics::counter!("bac_sync_commands_total",
            "integration" => self.inner.integration, "entity" => cmd.entity.clone(), "status" => status)
        .increment(1);
        match result {
            Err(SyncError::Transient(e)) => Err(SyncError::Permanent(e)),
            other => other,
        }
    }

    /// Keeps a command refused before it was stored, with the reason (see [`Outcome::Rejected`]).
    pub(crate) async fn record_reject(
        &self,
        tenant: &str,
        command_id: &str,
        received: &Received<'_>,
        reason: &str,
    ) -> Result<(), ServiceError> {
        // jsonb cannot hold NUL; the payload is kept byte for byte.
        let headers: Value = received
            .headers
            .iter()
            .map(|(k, v)| json!([k.replace('\0', "\u{fffd}"), v.replace('\0', "\u{fffd}")]))
            .collect();
        let clean = |s: &str| s.replace('\0', "\u{fffd}");
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        client
            .execute(
                "INSERT INTO sync_command_rejects (tenant_id, command_id, source, headers, payload, reason)
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &clean(tenant),
                    &clean(command_id),
                    &received.source,
                    &headers,
                    &received.payload,
                    &clean(reason),
                ],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        metrics::counter!("bac_sync_commands_total",
            "integration" => self.inner.integration, "entity" => "", "status" => "rejected")
        .increment(1);
        tracing::warn!(tenant, command_id, source = %received.source, reason, "command rejected");
        Ok(())
    }

    /// Reopens conflicts whose resolution was cut off (its lease ran out). Called by the
    /// worker every tick.
    pub(crate) async fn reopen_abandoned_resolutions(&self) -> Result<u64, ServiceError> {
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let n = client
            .execute(
                "UPDATE sync_conflicts SET status = 'open', resolving_until = NULL,
                   resolving_token = NULL
                 WHERE status = 'resolving' AND resolving_until < now()",
                &[],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "conflict resolutions cut off; conflicts open again"
            );
        }
        Ok(n)
    }

    /// Retries parked commands that are due (and ones whose claim expired: their replica
    /// stopped mid-way). Called by the worker every tick.
    pub(crate) async fn retry_commands(&self) -> Result<(), ServiceError> {
        let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
        let rows = client
            .query(
                "SELECT command FROM sync_commands
                 WHERE status = 'pending' AND COALESCE(retry_at, claimed_until) <= now()
                   AND (claimed_until IS NULL OR claimed_until < now())
                 ORDER BY received_at LIMIT 20",
                &[],
            )
            .await
            .map_err(|e| self.db_err(e))?;
        drop(client);
        for row in rows {
            let Ok(cmd) = serde_json::from_value::<Command>(row.get(0)) else {
                continue;
            };
            match self.apply_command(&cmd).await {
                // Its connection went away while it waited: it can never apply.
                Ok(Outcome::Rejected { reason }) => {
                    let client = self.inner.db.get().await.map_err(|e| self.db_err(e))?;
                    client
                        .execute(
                            "UPDATE sync_commands SET status = 'failed', error = $3, finished_at = now(),
                               claimed_until = NULL, retry_at = NULL
                             WHERE tenant_id = $1 AND command_id = $2 AND status = 'pending'",
                            &[&cmd.tenant, &cmd.id, &reason],
                        )
                        .await
                        .map_err(|e| self.db_err(e))?;
                }
                Ok(outcome) => {
                    tracing::info!(command_id = %cmd.id, tenant = %cmd.tenant, ?outcome, "parked command retried")
                }
                Err(e) => {
                    tracing::warn!(command_id = %cmd.id, tenant = %cmd.tenant, error = %e, "parked command failed")
                }
            }
        }
        Ok(())
    }

    async fn apply_claimed(&self, cmd: &Command) -> Result<Outcome, SyncError> {
        let perm = SyncError::Permanent;
        let adapter = self.adapter(&cmd.entity).map_err(perm)?;
        let conn = self
            .inner
            .connections
            .resolve(&cmd.tenant, &cmd.connection_id)
            .await
            .map_err(SyncError::from_service)?;
        let scope = Scope {
            tenant: &cmd.tenant,
            connection_id: &conn.id,
            entity: &cmd.entity,
        };
        match cmd.op.as_str() {
            "create" => {
                let rec = self
                    .create(&conn, adapter.entity(), &cmd.values, &cmd.id)
                    .await?;
                Ok(Outcome::Applied { remote_id: rec.id })
            }
            "delete" => {
                let id = cmd.record_id.clone().unwrap_or_default();
                match adapter.delete(&conn, &id).await {
                    Ok(()) => {}
                    Err(SyncError::Permanent(e)) if e.code == ErrorCode::NotFound => {}
                    Err(e) => return Err(e),
                }
                self.record_platform_write(
                    &scope,
                    &RemoteRecord {
                        id: id.clone(),
                        version: Some(super::Version::Time(Utc::now())),
                        raw: Value::Null,
                        deleted: true,
                    },
                )
                .await
                .map_err(SyncError::Transient)?;
                Ok(Outcome::Applied { remote_id: id })
            }
            _ => self.apply_update(cmd, &conn, &scope).await,
        }
    }

    async fn apply_update(
        &self,
        cmd: &Command,
        conn: &ConnectionRecord,
        scope: &Scope<'_>,
    ) -> Result<Outcome, SyncError> {
        let perm = SyncError::Permanent;
        let adapter = self.adapter(&cmd.entity).map_err(perm)?;
        let id = cmd.record_id.clone().unwrap_or_default();
        let values = cmd.values.as_object().cloned().unwrap_or_default();
        let base = self
            .mirrored(scope, &id)
            .await
            .map_err(SyncError::Transient)?;
        let remote = adapter.fetch(conn, &id).await?.ok_or_else(|| {
            perm(self.err(
                ErrorCode::NotFound,
                format!("{} {id} no longer exists upstream", cmd.entity),
            ))
        })?;
        let (_, mapping, _) = self
            .mapping(scope.tenant, scope.connection_id, scope.entity)
            .await
            .map_err(SyncError::Transient)?;
        let remote_canon = mapping
            .apply(&remote.raw)
            .map_err(|e| perm(self.err(ErrorCode::UpstreamRejected, format!("mapping: {e}"))))?;
        let remote_changed = base
            .as_ref()
            .is_some_and(|(_, hash, _)| *hash != events::content_hash(&remote_canon));
        if !remote_changed {
            return self.push(conn, scope, &id, &Value::Object(values)).await;
        }
        // Upstream already holds exactly these values (this command's own earlier attempt
        // wrote them, then recording it failed): applied, not a conflict.
        if values
            .iter()
            .all(|(k, v)| remote_canon.get(k.as_str()) == Some(v))
        {
            self.record_platform_write(scope, &remote)
                .await
                .map_err(SyncError::Transient)?;
            return Ok(Outcome::Applied { remote_id: id });
        }
        // Both sides changed since the last synced version.
        let settings = self
            .settings(scope.tenant, scope.connection_id)
            .await
            .map_err(SyncError::Transient)?
            .into_iter()
            .find(|s| s.entity == scope.entity);
        let strategy = settings
            .as_ref()
            .map(|s| s.conflict_strategy.clone())
            .unwrap_or_else(|| "last_write_wins".into());
        let owners = settings.map(|s| s.field_owners).unwrap_or_default();
        let base_data = base.map(|b| b.0).unwrap_or(Value::Null);
        let decision = decide(
            &strategy,
            &values,
            &base_data,
            &remote_canon,
            cmd.time,
            remote.version.as_ref().and_then(super::Version::time),
            &owners,
        );
        let conflict_id = self
            .store_conflict(
                &format!("cfl_{}", Uuid::now_v7().simple()),
                cmd,
                scope,
                &strategy,
                &base_data,
                &Value::Object(values.clone()),
                &remote_canon,
            )
            .await
            .map_err(SyncError::Transient)?;
        match decision {
            Decision::Manual => Ok(Outcome::Queued { conflict_id }),
            Decision::Remote => {
                // The mirror catches up with upstream (the remote change is not lost).
                let mut client = self
                    .inner
                    .db
                    .get()
                    .await
                    .map_err(|e| SyncError::Transient(self.db_err(e)))?;
                let tx = client
                    .transaction()
                    .await
                    .map_err(|e| SyncError::Transient(self.db_err(e)))?;
                self.write_in(&tx, scope, &mapping, &remote, "remote", None)
                    .await
                    .map_err(SyncError::Transient)?;
                self.close_conflict(
                    &tx,
                    scope.tenant,
                    &conflict_id,
                    "remote",
                    None,
                    "strategy",
                    None,
                )
                .await
                .map_err(SyncError::Transient)?;
                tx.commit()
                    .await
                    .map_err(|e| SyncError::Transient(self.db_err(e)))?;
                Ok(Outcome::KeptRemote { conflict_id })
            }
            Decision::Write(resolution, to_write) => {
                let out = self.push(conn, scope, &id, &to_write).await?;
                self.close_conflict_now(
                    scope.tenant,
                    &conflict_id,
                    resolution,
                    Some(&to_write),
                    "strategy",
                    None,
                )
                .await
                .map_err(SyncError::Transient)?;
                Ok(out)
            }
        }
    }

    /// Writes canonical values upstream and records the read-back.
    async fn push(
        &self,
        conn: &ConnectionRecord,
        scope: &Scope<'_>,
        id: &str,
        values: &Value,
    ) -> Result<Outcome, SyncError> {
        let rec = self.update(conn, scope.entity, id, values).await?;
        Ok(Outcome::Applied { remote_id: rec.id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn strategies_decide() {
        let base = json!({"name": "A", "phone": "1", "email": "a@x"});
        let remote = json!({"name": "B", "phone": "1", "email": "a@x"});
        let local = json!({"name": "C", "phone": "2"})
            .as_object()
            .unwrap()
            .clone();
        let (lt, rt) = (t("2026-01-01T10:00:00Z"), t("2026-01-01T09:00:00Z"));
        let none = BTreeMap::new();
        assert_eq!(
            decide("prefer_remote", &local, &base, &remote, lt, Some(rt), &none),
            Decision::Remote
        );
        assert_eq!(
            decide("manual", &local, &base, &remote, lt, Some(rt), &none),
            Decision::Manual
        );
        assert_eq!(
            decide("prefer_local", &local, &base, &remote, lt, Some(rt), &none),
            Decision::Write("local", Value::Object(local.clone()))
        );
        // last-write-wins: local newer, then remote newer
        assert!(matches!(
            decide(
                "last_write_wins",
                &local,
                &base,
                &remote,
                lt,
                Some(rt),
                &none
            ),
            Decision::Write("local", _)
        ));
        assert_eq!(
            decide(
                "last_write_wins",
                &local,
                &base,
                &remote,
                rt,
                Some(lt),
                &none
            ),
            Decision::Remote
        );
        // merge: phone only changed locally is taken; name changed on both sides goes to remote
        assert_eq!(
            decide("merge", &local, &base, &remote, lt, Some(rt), &none),
            Decision::Write("merged", json!({"phone": "2"}))
        );
        let owners: BTreeMap<String, String> =
            [("name".to_string(), "platform".to_string())].into();
        assert_eq!(
            decide("merge", &local, &base, &remote, lt, Some(rt), &owners),
            Decision::Write("merged", json!({"name": "C", "phone": "2"}))
        );
    }

    #[test]
    fn commands_parse_from_headers_and_payload() {
        let h = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let cmd = Command::parse(
            &h(&[
                ("ce_id", "c1"),
                ("ce_tenantid", "demo"),
                ("ce_type", "bac.odoo.crm_lead.update"),
            ]),
            br#"{"record_id": 42, "values": {"name": "x"}}"#,
        )
        .unwrap();
        assert_eq!(
            (cmd.entity.as_str(), cmd.op.as_str()),
            ("crm_lead", "update")
        );
        assert_eq!(cmd.record_id.as_deref(), Some("42"));
        assert!(Command::parse(&h(&[("ce_tenantid", "demo")]), b"{}").is_err());
        assert!(
            Command::parse(&h(&[("ce_id", "c"), ("ce_tenantid", "demo")]), b"not json").is_err()
        );
        assert!(Command::parse(
            &h(&[("ce_id", "c"), ("ce_tenantid", "demo")]),
            br#"{"entity": "crm_lead", "op": "update", "values": {}}"#
        )
        .unwrap_err()
        .contains("record_id"));
    }
}
