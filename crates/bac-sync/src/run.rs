//! The worker every replica runs: it queues scheduled runs that are due, leases queued runs
//! (and runs whose lease expired: their replica died) with `FOR UPDATE SKIP LOCKED`, and
//! executes them page by page. Each page's mirror rows, events and checkpoint commit in one
//! transaction that also extends the lease, so a run continues where its last page ended
//! and a replica that lost its lease stops at its next page without writing.
use std::{collections::HashSet, sync::Arc, time::Instant};

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use super::{
    mirror::Scope, schedule::Frequency, Mode, PullRequest, SyncEngine, SyncError, SyncRunView,
    RUN_COLUMNS, SYNC_RUN_TOPIC,
};
use bac_runtime::{db::Transaction, error::ServiceError, events::CloudEvent, outbox};

/// A run held by this replica.
#[derive(Debug, Clone)]
pub(crate) struct Leased {
    pub run: SyncRunView,
    pub checkpoint: Option<Value>,
    /// This lease's fence: every write of the run checks it.
    pub token: Uuid,
}

/// What a run came to.
/// Why a run stopped short.
#[derive(Debug)]
enum RunError {
    Failed(String),
    /// The provider rate-limited the run: it waits in line, checkpoint kept, until then.
    Parked {
        until: DateTime<Utc>,
        why: String,
    },
}

impl From<String> for RunError {
    fn from(s: String) -> Self {
        RunError::Failed(s)
    }
}

impl From<&str> for RunError {
    fn from(s: &str) -> Self {
        RunError::Failed(s.to_string())
    }
}

/// A rate limit parks the run until the provider's window resets; anything else fails it.
fn parked_or_failed(e: SyncError) -> RunError {
    let e = e.service_error();
    if e.code != bac_runtime::ErrorCode::UpstreamRateLimited {
        return RunError::Failed(e.to_string());
    }
    let wait = e.retry_after.unwrap_or(PARK_DEFAULT);
    RunError::Parked {
        until: Utc::now()
            + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::minutes(1)),
        why: e.message.clone(),
    }
}

/// How long a run rate-limited without a `Retry-After` waits.
const PARK_DEFAULT: std::time::Duration = std::time::Duration::from_secs(60);

enum Pulled {
    /// Every page read: the cursor the next incremental run starts from.
    Done(Value),
    /// The entity is partitioned: this many partition runs were queued.
    FannedOut(usize),
}

/// Queues a run unless one of this connection, entity and partition is already queued or
/// running.
pub(crate) async fn enqueue(
    engine: &SyncEngine,
    tenant: &str,
    connection_id: &str,
    entity: &str,
    partition: &str,
    mode: Mode,
    trigger: &str,
) -> Result<Uuid, ServiceError> {
    let client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
    let id = Uuid::now_v7();
    let inserted = client
        .query_opt(
            "INSERT INTO sync_runs (id, tenant_id, connection_id, entity, partition, mode, trigger, status)
             VALUES ($1, $2, $3, $4, $7, $5, $6, 'queued')
             ON CONFLICT (tenant_id, connection_id, entity, partition)
               WHERE status IN ('queued', 'running')
             DO NOTHING RETURNING id",
            &[
                &id,
                &tenant,
                &connection_id,
                &entity,
                &mode.as_str(),
                &trigger,
                &partition,
            ],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    if let Some(r) = inserted {
        return Ok(r.get(0));
    }
    // A full run asked for while an incremental one is still queued makes that one full.
    if mode == Mode::Full {
        client
            .execute(
                "UPDATE sync_runs SET mode = 'full'
                 WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3 AND partition = $4
                   AND status = 'queued'",
                &[&tenant, &connection_id, &entity, &partition],
            )
            .await
            .map_err(|e| engine.db_err(e))?;
    }
    let row = client
        .query_opt(
            "SELECT id FROM sync_runs WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3
               AND partition = $4 AND status IN ('queued', 'running')",
            &[&tenant, &connection_id, &entity, &partition],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    match row {
        Some(r) => Ok(r.get(0)),
        // It finished between the two statements: queue a fresh one.
        None => {
            Box::pin(enqueue(
                engine,
                tenant,
                connection_id,
                entity,
                partition,
                mode,
                trigger,
            ))
            .await
        }
    }
}

pub(crate) async fn worker(engine: SyncEngine, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(engine.inner.options.concurrency.max(1)));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(engine.inner.options.tick) => {}
            _ = engine.inner.wake.notified() => {}
        }
        if let Err(e) = queue_due(&engine).await {
            tracing::warn!(error = %e, "sync scheduler: could not queue due runs");
        }

        while let Ok(slot) = slots.clone().try_acquire_owned() {
            match lease_next(&engine).await {
                Ok(Some(leased)) => {
                    let engine = engine.clone();
                    let shutdown = shutdown.clone();
                    let span = tracing::info_span!("sync_run", run_id = %leased.run.id,
                        tenant = %leased.run.tenant_id, connection = %leased.run.connection_id,
                        entity = %leased.run.entity, mode = %leased.run.mode);
                    tokio::spawn(
                        async move {
                            execute(&engine, leased, &shutdown).await;
                            drop(slot);
                            engine.inner.wake.notify_one();
                        }
                        .instrument(span),
                    );
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "sync worker: could not lease a run");
                    break;
                }
            }
        }
    }
}

/// Queues the scheduled runs that are due and moves their next due time forward; rows
/// another replica is queueing are skipped.
async fn queue_due(engine: &SyncEngine) -> Result<(), ServiceError> {
    let mut client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
    let tx = client.transaction().await.map_err(|e| engine.db_err(e))?;
    let due = tx
        .query(
            "SELECT tenant_id, connection_id, entity, frequency FROM sync_settings
             WHERE next_due_at <= now() ORDER BY next_due_at LIMIT 100 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    for row in &due {
        let (tenant, conn, entity, freq): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let next = Frequency::parse(&freq)
            .ok()
            .and_then(|f| f.next_after(Utc::now()));
        tx.execute(
            "INSERT INTO sync_runs (id, tenant_id, connection_id, entity, mode, trigger, status)
             VALUES ($1, $2, $3, $4, 'incremental', 'schedule', 'queued')
             ON CONFLICT (tenant_id, connection_id, entity, partition)
               WHERE status IN ('queued', 'running')
             DO NOTHING",
            &[&Uuid::now_v7(), &tenant, &conn, &entity],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
        tx.execute(
            "UPDATE sync_settings SET next_due_at = $4
             WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3",
            &[&tenant, &conn, &entity, &next],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    }
    tx.commit().await.map_err(|e| engine.db_err(e))
}

/// Takes the oldest queued run, or a running one whose lease expired.
async fn lease_next(engine: &SyncEngine) -> Result<Option<Leased>, ServiceError> {
    let client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
    let lease = engine.inner.options.lease.as_secs_f64();
    let adapters: Vec<&str> = engine.entities();
    let token = Uuid::new_v4();
    let row = client
        .query_opt(
            &format!(
                "UPDATE sync_runs SET status = 'running', lease_owner = $1, lease_token = $4,
                   lease_until = now() + make_interval(secs => $2), last_leased_at = clock_timestamp(),
                   started_at = COALESCE(started_at, now()), attempts = attempts + 1
                 WHERE id = (
                   SELECT q.id FROM sync_runs q
                   WHERE ((q.status = 'queued' AND (q.not_before IS NULL OR q.not_before <= now()))
                          OR (q.status = 'running' AND q.lease_until < now()))
                     AND q.entity = ANY($3)
                   -- Fair shares: the tenant holding the fewest slots (fleet-wide) goes first,
                   -- then the one served least recently, then the oldest in line.
                   ORDER BY (SELECT count(*) FROM sync_runs r
                              WHERE r.tenant_id = q.tenant_id AND r.status = 'running'
                                AND r.lease_until >= now()),
                            (SELECT max(r.last_leased_at) FROM sync_runs r
                              WHERE r.tenant_id = q.tenant_id) NULLS FIRST,
                            q.queued_at
                   LIMIT 1 FOR UPDATE OF q SKIP LOCKED)
                 RETURNING {RUN_COLUMNS}, checkpoint"
            ),
            &[&engine.inner.owner, &lease, &adapters, &token],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    Ok(row.map(|r| Leased {
        run: SyncRunView::from_row(&r),
        checkpoint: r.get(19),
        token,
    }))
}

/// Most leases a run gets before it is given up (a run that kills its replica every time).
const MAX_ATTEMPTS: i32 = 10;

async fn execute(engine: &SyncEngine, leased: Leased, shutdown: &CancellationToken) {
    let run = &leased.run;
    let started = Instant::now();
    let outcome = if run.attempts > MAX_ATTEMPTS {
        Err(RunError::Failed(format!(
            "given up after {MAX_ATTEMPTS} attempts (the replicas running it stopped each time)"
        )))
    } else {
        // A run back from its slice (checkpoint set) has started already.
        if run.attempts == 1 && leased.checkpoint.is_none() {
            publish_run_event(engine, run.id, "started").await;
        } else {
            tracing::info!(run_id = %run.id, attempts = run.attempts, "sync run taken over");
        }
        // Keeps the lease while a slow page or the id listing is read (pages extend it too).
        let beat = {
            let (engine, id, token) = (engine.clone(), run.id, leased.token);
            tokio::spawn(async move {
                let every = engine.inner.options.lease / 3;
                loop {
                    tokio::time::sleep(every).await;
                    let Ok(client) = engine.inner.db.get().await else {
                        continue;
                    };
                    let _ = client
                        .execute(
                            "UPDATE sync_runs SET lease_until = now() + make_interval(secs => $3)
                             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
                            &[&id, &token, &engine.inner.options.lease.as_secs_f64()],
                        )
                        .await;
                }
            })
        };
        let outcome = pull_all(engine, &leased, shutdown).await;
        beat.abort();
        outcome
    };
    let labels = [
        ("integration", engine.inner.integration.to_string()),
        ("entity", run.entity.clone()),
    ];
    match outcome {
        Ok(Some(pulled)) => {
            let cursor = match pulled {
                Pulled::Done(cursor) => Some(cursor),
                Pulled::FannedOut(n) => {
                    tracing::info!(run_id = %run.id, partitions = n, "partition runs queued");
                    None
                }
            };
            match finish(engine, run, leased.token, "succeeded", None, cursor).await {
                Ok(true) => {
                    let mut l = labels.to_vec();
                    l.push(("status", "succeeded".into()));
                    metrics::counter!("bac_sync_runs_total", &l).increment(1);
                    metrics::histogram!("bac_sync_run_duration_seconds", &labels)
                        .record(started.elapsed().as_secs_f64());
                    if let Some(s) = run.started_at {
                        metrics::gauge!("bac_sync_last_success_timestamp_seconds", &labels)
                            .set(s.timestamp() as f64);
                    }
                    tracing::info!(run_id = %run.id, "sync run succeeded");
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(run_id = %run.id, error = %e, "sync run: could not finish")
                }
            }
        }
        Ok(None) => {} // lease lost or shutting down: another replica continues
        Err(RunError::Parked { until, why }) => {
            park(engine, run.id, leased.token, until, &why).await;
            let mut l = labels.to_vec();
            l.push(("status", "parked".into()));
            metrics::counter!("bac_sync_runs_total", &l).increment(1);
        }
        Err(RunError::Failed(message)) => {
            tracing::warn!(run_id = %run.id, error = %message, "sync run failed");
            if let Ok(true) =
                finish(engine, run, leased.token, "failed", Some(&message), None).await
            {
                let mut l = labels.to_vec();
                l.push(("status", "failed".into()));
                metrics::counter!("bac_sync_runs_total", &l).increment(1);
            }
        }
    }
}

/// Pulls and commits every page, then reconciles deletions; for a partitioned entity's own
/// run, queues a run per partition instead. `Ok(None)`: the lease was lost or the process is
/// stopping.
async fn pull_all(
    engine: &SyncEngine,
    leased: &Leased,
    shutdown: &CancellationToken,
) -> Result<Option<Pulled>, RunError> {
    let run = &leased.run;
    let adapter = engine.adapter(&run.entity).map_err(|e| e.message)?;
    let conn = match engine
        .inner
        .connections
        .get(&run.tenant_id, &run.connection_id)
        .await
    {
        Ok(c) => c,
        Err(e) => return Err(format!("connection: {}", e.message).into()),
    };
    let mode = Mode::parse(&run.mode).unwrap_or(Mode::Incremental);
    if run.partition.is_empty() {
        let partitions = adapter
            .partitions(&conn)
            .await
            .map_err(|e| e.service_error().message.clone())?;
        if let Some(partitions) = partitions {
            for p in partitions.iter().filter(|p| !p.is_empty()) {
                enqueue(
                    engine,
                    &run.tenant_id,
                    &run.connection_id,
                    &run.entity,
                    p,
                    mode,
                    &run.trigger,
                )
                .await
                .map_err(|e| e.message)?;
            }
            engine.inner.wake.notify_one();
            return Ok(Some(Pulled::FannedOut(partitions.len())));
        }
    }
    let scope = Scope {
        tenant: &run.tenant_id,
        connection_id: &run.connection_id,
        entity: &run.entity,
    };
    let (_, mapping, _) = engine
        .mapping(&run.tenant_id, &run.connection_id, &run.entity)
        .await
        .map_err(|e| e.message)?;
    let stored_cursor = stored_cursor(engine, &scope, &run.partition)
        .await
        .map_err(|e| e.message)?;
    let position = leased.checkpoint.clone();
    let run_started_at = run.started_at.unwrap_or_else(Utc::now);
    let labels = [
        ("integration", engine.inner.integration.to_string()),
        ("entity", run.entity.clone()),
    ];
    let request = |position: Option<Value>| PullRequest {
        mode,
        cursor: if mode == Mode::Incremental {
            stored_cursor.clone()
        } else {
            None
        },
        position,
        page_size: engine.inner.options.page_size,
        run_started_at,
        partition: run.partition.clone(),
    };
    let mapping = Arc::new(mapping);
    let slice_started = Instant::now();
    let mut next = Some(read_page(&*adapter, &conn, &request(position.clone()), &mapping).await?);
    loop {
        if shutdown.is_cancelled() {
            release(engine, run.id, leased.token).await;
            return Ok(None);
        }
        let Some((page, prepared)) = next.take() else {
            return Err("no page".into());
        };
        // While this page commits, the next one is read from upstream (the two overlap; the
        // checkpoint still advances only with a committed page).
        let prefetch = (!page.done).then(|| {
            let position = Some(json!({"position": page.position, "cursor": page.cursor}));
            let (adapter, conn, req) = (adapter.clone(), conn.clone(), request(position));
            let mapping = mapping.clone();
            tokio::spawn(async move { read_page(&*adapter, &conn, &req, &mapping).await })
        });
        let mut client = engine
            .inner
            .db
            .get()
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        // A page lost to a Postgres crash right after its commit is harmless: its rows,
        // events and checkpoint go together and the run reads the page again from upstream.
        // So the page does not wait for its WAL flush.
        tx.batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        if !extend_lease(engine, &tx, run.id, leased.token).await? {
            return Ok(None);
        }
        let counts = engine
            .apply_page(&tx, &scope, &prepared, run.id)
            .await
            .map_err(|e| e.message)?;
        let errors: Value = counts
            .errors
            .iter()
            .map(|(id, m)| json!({"record_id": id, "message": m}))
            .collect();
        tx.execute(
            "UPDATE sync_runs SET checkpoint = $2,
               records_seen = records_seen + $3, records_created = records_created + $4,
               records_updated = records_updated + $5, records_deleted = records_deleted + $6,
               records_failed = records_failed + $7,
               errors = (SELECT COALESCE(jsonb_agg(e), '[]'::jsonb)
                         FROM (SELECT e FROM jsonb_array_elements(errors || $8) e LIMIT 20) x)
             WHERE id = $1",
            &[
                &run.id,
                &json!({"position": page.position, "cursor": page.cursor}),
                &counts.seen,
                &counts.created,
                &counts.updated,
                &counts.deleted,
                &counts.failed,
                &errors,
            ],
        )
        .await
        .map_err(|e| format!("postgres: {e}"))?;
        tx.commit().await.map_err(|e| format!("postgres: {e}"))?;
        for (op, n) in [
            ("created", counts.created),
            ("updated", counts.updated),
            ("deleted", counts.deleted),
            ("failed", counts.failed),
            (
                "unchanged",
                counts.seen - counts.created - counts.updated - counts.deleted - counts.failed,
            ),
        ] {
            if n > 0 {
                let mut l = labels.to_vec();
                l.push(("op", op.into()));
                metrics::counter!("bac_sync_records_total", &l).increment(n as u64);
            }
        }
        if let Some(newest) = prepared
            .iter()
            .filter_map(|p| p.record.version.as_ref().and_then(super::Version::time))
            .max()
        {
            metrics::gauge!("bac_sync_lag_seconds", &labels)
                .set((Utc::now() - newest).num_milliseconds().max(0) as f64 / 1000.0);
        }
        // Its slice is over: back in line, so another tenant's run gets the slot.
        if !page.done && slice_started.elapsed() >= engine.inner.options.slice {
            if let Some(handle) = prefetch {
                handle.abort();
            }
            requeue(engine, run.id, leased.token).await;
            return Ok(None);
        }
        if let Some(handle) = prefetch {
            next = Some(handle.await.map_err(|e| format!("page read: {e}"))??);
        }
        if page.done {
            let whole = run.partition.is_empty();
            if whole && !reconcile(engine, &*adapter, &conn, &scope, run.id, leased.token).await? {
                return Ok(None);
            }
            return Ok(Some(Pulled::Done(page.cursor)));
        }
    }
}

/// The adapter sees only its own position; the engine stores it with the cursor so a
/// taken-over run can also finish after its last page.
fn adapter_position(stored: &Option<Value>) -> Option<Value> {
    stored.as_ref().and_then(|v| v.get("position")).cloned()
}

/// One page read from upstream and mapped (the CPU part of a page, off its transaction).
async fn read_page(
    adapter: &dyn super::EntityAdapter,
    conn: &bac_runtime::connections::ConnectionRecord,
    req: &PullRequest,
    mapping: &super::Mapping,
) -> Result<(super::Page, Vec<super::mirror::Prepared>), RunError> {
    let mut page = pull_with_retry(adapter, conn, req).await?;
    let records = std::mem::take(&mut page.records);
    Ok((page, super::mirror::prepare(mapping, records)))
}

async fn pull_with_retry(
    adapter: &dyn super::EntityAdapter,
    conn: &bac_runtime::connections::ConnectionRecord,
    req: &PullRequest,
) -> Result<super::Page, RunError> {
    let req = PullRequest {
        position: adapter_position(&req.position),
        ..req.clone()
    };
    let mut delay = std::time::Duration::from_millis(500);
    for attempt in 1..=4 {
        match adapter.pull(conn, &req).await {
            Ok(p) => return Ok(p),
            // a provider's rate limit is not a failure: the run waits for its window
            Err(e) if e.service_error().code == bac_runtime::ErrorCode::UpstreamRateLimited => {
                return Err(parked_or_failed(e))
            }
            Err(SyncError::Transient(e)) if attempt < 4 => {
                tracing::warn!(error = %e, attempt, "sync pull failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(e.service_error().to_string().into()),
        }
    }
    Err("upstream kept failing".into())
}

/// Upstream has no tombstones: the ids it lists now, against the mirror.
async fn reconcile(
    engine: &SyncEngine,
    adapter: &dyn super::EntityAdapter,
    conn: &bac_runtime::connections::ConnectionRecord,
    scope: &Scope<'_>,
    run_id: Uuid,
    token: Uuid,
) -> Result<bool, RunError> {
    let client = engine
        .inner
        .db
        .get()
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    let listed_at: DateTime<Utc> = client
        .query_one("SELECT now()", &[])
        .await
        .map_err(|e| format!("postgres: {e}"))?
        .get(0);
    // No pool connection is held across the upstream call.
    drop(client);
    let Some(ids) = adapter.remote_ids(conn).await.map_err(parked_or_failed)? else {
        return Ok(true);
    };
    let upstream: HashSet<String> = ids.into_iter().collect();
    let client = engine
        .inner
        .db
        .get()
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    let mirrored = client
        .query(
            "SELECT remote_id FROM sync_records
             WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3 AND NOT deleted",
            &[&scope.tenant, &scope.connection_id, &scope.entity],
        )
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    drop(client);
    let gone: Vec<String> = mirrored
        .iter()
        .map(|r| r.get::<_, String>(0))
        .filter(|id| !upstream.contains(id))
        .collect();
    for chunk in gone.chunks(1000) {
        let mut client = engine
            .inner
            .db
            .get()
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| format!("postgres: {e}"))?;
        if !extend_lease(engine, &tx, run_id, token).await? {
            return Ok(false);
        }
        let n = engine
            .delete_missing(&tx, scope, chunk, listed_at, run_id)
            .await
            .map_err(|e| e.message)?;
        tx.execute(
            "UPDATE sync_runs SET records_deleted = records_deleted + $2 WHERE id = $1",
            &[&run_id, &n],
        )
        .await
        .map_err(|e| format!("postgres: {e}"))?;
        tx.commit().await.map_err(|e| format!("postgres: {e}"))?;
        if n > 0 {
            metrics::counter!("bac_sync_records_total",
                "integration" => engine.inner.integration, "entity" => scope.entity.to_string(),
                "op" => "deleted")
            .increment(n as u64);
        }
    }
    Ok(true)
}

async fn stored_cursor(
    engine: &SyncEngine,
    scope: &Scope<'_>,
    partition: &str,
) -> Result<Option<Value>, ServiceError> {
    let client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
    let row = client
        .query_opt(
            "SELECT cursor FROM sync_cursors
             WHERE tenant_id = $1 AND connection_id = $2 AND entity = $3 AND partition = $4",
            &[
                &scope.tenant,
                &scope.connection_id,
                &scope.entity,
                &partition,
            ],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    Ok(row.map(|r| r.get(0)))
}

/// Extends this replica's lease inside a page transaction; false when it is no longer ours.
async fn extend_lease(
    engine: &SyncEngine,
    tx: &Transaction<'_>,
    run_id: Uuid,
    token: Uuid,
) -> Result<bool, String> {
    let n = tx
        .execute(
            "UPDATE sync_runs SET lease_until = now() + make_interval(secs => $3)
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            &[&run_id, &token, &engine.inner.options.lease.as_secs_f64()],
        )
        .await
        .map_err(|e| format!("postgres: {e}"))?;
    if n == 0 {
        tracing::warn!(run_id = %run_id, "sync run lease lost; another replica continues it");
    }
    Ok(n == 1)
}

/// On shutdown: let another replica take the run at once instead of after the lease.
/// Puts a running run back in line at the end of its slice; its checkpoint stays, so the next
/// lease (on any replica) continues with the next page.
async fn requeue(engine: &SyncEngine, run_id: Uuid, token: Uuid) {
    let Ok(client) = engine.inner.db.get().await else {
        // The lease runs out and the run is taken over from its checkpoint instead.
        return;
    };
    let moved = client
        .execute(
            "UPDATE sync_runs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
               lease_until = NULL, queued_at = now(), attempts = attempts - 1
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            &[&run_id, &token],
        )
        .await;
    match moved {
        Ok(_) => {
            metrics::counter!("bac_sync_run_slices_total", "integration" => engine.inner.integration)
                .increment(1);
            tracing::debug!(run_id = %run_id, "sync run slice over; back in line");
        }
        Err(e) => {
            tracing::warn!(run_id = %run_id, error = %e, "sync run could not go back in line")
        }
    }
}

/// Puts a rate-limited run back in line, not to be leased before `until`; its checkpoint
/// stays and the wait does not count as an attempt. Other runs take its slot meanwhile.
async fn park(engine: &SyncEngine, run_id: Uuid, token: Uuid, until: DateTime<Utc>, why: &str) {
    let Ok(client) = engine.inner.db.get().await else {
        return;
    };
    let parked = client
        .execute(
            "UPDATE sync_runs SET status = 'queued', lease_owner = NULL, lease_token = NULL,
               lease_until = NULL, not_before = $3, attempts = attempts - 1,
               error = 'waiting for the provider''s rate limit to reset: ' || $4
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            &[&run_id, &token, &until, &why],
        )
        .await;
    match parked {
        Ok(_) => tracing::info!(run_id = %run_id, until = %until, reason = %why,
            "sync run parked until the provider's rate limit resets"),
        Err(e) => tracing::warn!(run_id = %run_id, error = %e, "sync run could not be parked"),
    }
}

async fn release(engine: &SyncEngine, run_id: Uuid, token: Uuid) {
    if let Ok(client) = engine.inner.db.get().await {
        let _ = client
            .execute(
                // A graceful hand-over does not count toward MAX_ATTEMPTS.
                "UPDATE sync_runs SET lease_until = now(), attempts = attempts - 1
                 WHERE id = $1 AND lease_token = $2",
                &[&run_id, &token],
            )
            .await;
    }
}

/// Ends the run, stores the next cursor and publishes the end event, in one transaction.
/// False when the run is no longer ours.
async fn finish(
    engine: &SyncEngine,
    run: &SyncRunView,
    token: Uuid,
    status: &str,
    error: Option<&str>,
    cursor: Option<Value>,
) -> Result<bool, ServiceError> {
    let mut client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
    let tx = client.transaction().await.map_err(|e| engine.db_err(e))?;
    let n = tx
        .execute(
            "UPDATE sync_runs SET status = $3, error = $4, finished_at = now(),
               lease_owner = NULL, lease_until = NULL, lease_token = NULL
             WHERE id = $1 AND lease_token = $2 AND status = 'running'",
            &[&run.id, &token, &status, &error],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    if n == 0 {
        return Ok(false);
    }
    if let Some(cursor) = cursor {
        tx.execute(
            "INSERT INTO sync_cursors (tenant_id, connection_id, entity, partition, cursor,
                                       last_success_at, last_run_id)
             VALUES ($1, $2, $3, $6, $4, now(), $5)
             ON CONFLICT (tenant_id, connection_id, entity, partition) DO UPDATE SET
               cursor = EXCLUDED.cursor, last_success_at = now(), last_run_id = EXCLUDED.last_run_id",
            &[
                &run.tenant_id,
                &run.connection_id,
                &run.entity,
                &cursor,
                &run.id,
                &run.partition,
            ],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    }
    let event = run_event(engine, &tx, run.id, status).await?;
    outbox::enqueue(&tx, &event)
        .await
        .map_err(|e| engine.db_err(e))?;
    tx.commit().await.map_err(|e| engine.db_err(e))?;
    Ok(true)
}

async fn publish_run_event(engine: &SyncEngine, run_id: Uuid, what: &str) {
    let result: Result<(), ServiceError> = async {
        let mut client = engine.inner.db.get().await.map_err(|e| engine.db_err(e))?;
        let tx = client.transaction().await.map_err(|e| engine.db_err(e))?;
        let event = run_event(engine, &tx, run_id, what).await?;
        outbox::enqueue(&tx, &event)
            .await
            .map_err(|e| engine.db_err(e))?;
        tx.commit().await.map_err(|e| engine.db_err(e))
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(run_id = %run_id, error = %e, "sync run event not recorded");
    }
}

/// `bac.integrations.sync_run.<started|succeeded|failed>` with the run as it is in `tx`.
async fn run_event(
    engine: &SyncEngine,
    tx: &Transaction<'_>,
    run_id: Uuid,
    what: &str,
) -> Result<CloudEvent, ServiceError> {
    let row = tx
        .query_one(
            &format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1"),
            &[&run_id],
        )
        .await
        .map_err(|e| engine.db_err(e))?;
    let view = SyncRunView::from_row(&row);
    let data = serde_json::to_value(view.to_proto()).map_err(|e| engine.db_err(e))?;
    Ok(CloudEvent {
        id: Uuid::now_v7(),
        source: format!("/bac/{}", engine.inner.integration),
        ty: format!("bac.integrations.sync_run.{what}"),
        subject: Some(format!("sync_run/{run_id}")),
        time: Utc::now(),
        tenant_id: view.tenant_id.clone(),
        connection_id: Some(view.connection_id.clone()),
        traceparent: bac_runtime::telemetry::current_traceparent(),
        data: serde_json::to_vec(&data).map_err(|e| engine.db_err(e))?,
        topic: SYNC_RUN_TOPIC.into(),
        key: format!("{}/sync_run/{run_id}", view.tenant_id),
    })
}
