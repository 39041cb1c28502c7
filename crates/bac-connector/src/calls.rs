//! The call log behind `GetStatus`: every upstream operation made for a connection is one row
//! (`ok`, `error_code`, duration), and the tenant's status is computed from those rows and the
//! connections themselves. Nothing is estimated: a number the log cannot give is left absent.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use bac_proto::integration::v1::{IntegrationStatus, PerformanceMetrics};
use bac_runtime::{
    connections::{timestamp, ConnectionRecord},
    db::{Migration, Pool},
    ServiceError,
};
use chrono::{DateTime, Utc};

/// The `call_log` table; a service lists it among its migrations (under the name it was
/// first applied with, for a service that had it before the kit).
pub const MIGRATION: Migration = Migration {
    name: "connector_0001_call_log",
    sql: CALL_LOG_SQL,
};
pub const CALL_LOG_SQL: &str = include_str!("../migrations/call_log.sql");

/// A failed call's sentence, so the status can say what to do (reconnect, fix a setting)
/// rather than only a code.
pub const MESSAGE_MIGRATION: Migration = Migration {
    name: "connector_0002_call_log_message",
    sql: "ALTER TABLE call_log ADD COLUMN IF NOT EXISTS message text;",
};

/// A tenant's status is reused this long: dashboards poll it, and each answer costs three
/// queries. Any call or connection change on this replica drops it sooner.
const STATUS_TTL: Duration = Duration::from_secs(1);

/// Failures that say nothing about the connection's health: the upstream answered and refused
/// the data itself. They count as errors, but do not make the connection's last call "failed".
const DATA_ERRORS: &[&str] = &["UPSTREAM_REJECTED"];

/// One service's call log and its tenants' cached statuses.
#[derive(Clone)]
pub struct Calls {
    inner: Arc<Inner>,
}

struct Inner {
    db: Pool,
    integration: &'static str,
    name: &'static str,
    statuses: Mutex<HashMap<String, (Instant, IntegrationStatus)>>,
}

impl Calls {
    /// `integration` is the catalog key (`odoo`), `name` the one people know (`Odoo`).
    pub fn new(db: Pool, integration: &'static str, name: &'static str) -> Calls {
        Calls {
            inner: Arc::new(Inner {
                db,
                integration,
                name,
                statuses: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Runs one upstream operation for `rec` and records it in the call log (what the
    /// dashboard's error count, response times and health come from).
    pub async fn tracked<T>(
        &self,
        rec: &ConnectionRecord,
        operation: &str,
        op: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        let result = op.await;
        record(
            &self.inner.db,
            &rec.tenant_id,
            &rec.id,
            operation,
            result.as_ref().err(),
            started.elapsed(),
        )
        .await;
        self.forget_statuses();
        result
    }

    /// Every cached status is stale (a call was made, a connection changed).
    pub fn forget_statuses(&self) {
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.clear();
        }
    }

    /// The tenant's status from its connections and their calls, cached for [`STATUS_TTL`]
    /// (ask [`Calls::cached`] first: its inputs cost queries too). `configured` says whether a
    /// connection's stored settings and secret fields are complete; `last_sync_at` is the
    /// engine's last successful run.
    pub async fn status(
        &self,
        tenant: &str,
        connections: &[ConnectionRecord],
        configured: impl Fn(&ConnectionRecord) -> bool,
        sync: SyncFacts,
        advice: &[String],
    ) -> Result<IntegrationStatus, ServiceError> {
        if let Some(s) = self.cached(tenant) {
            return Ok(s);
        }
        let ids: Vec<String> = connections.iter().map(|c| c.id.clone()).collect();
        let last = last_calls(&self.inner.db, self.inner.integration, tenant, &ids).await?;
        let window = window_24h(&self.inner.db, self.inner.integration, tenant).await?;
        let mut s = status(
            self.inner.integration,
            self.inner.name,
            connections,
            &last,
            &window,
            configured,
        );
        s.last_sync_at = sync.last_sync_at.map(timestamp);
        s.sync_frequency = sync.frequency;
        if let Some(p) = s.performance.as_mut() {
            p.last_sync_duration_ms = sync.last_run_duration_ms;
            p.last_sync_records = sync.last_run_records;
        }
        // The connector's advice: a working connection that should change is a warning.
        if !advice.is_empty() {
            let said = advice.join("; ");
            match s.status.as_str() {
                "healthy" => {
                    s.status = "warning".into();
                    s.reason = said;
                }
                "warning" => s.reason = format!("{}; {said}", s.reason),
                _ => {}
            }
        }
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.insert(tenant.to_string(), (Instant::now(), s.clone()));
        }
        Ok(s)
    }

    /// The tenant's status if one younger than [`STATUS_TTL`] is cached.
    pub fn cached(&self, tenant: &str) -> Option<IntegrationStatus> {
        let m = self.inner.statuses.lock().ok()?;
        let (at, status) = m.get(tenant)?;
        (at.elapsed() < STATUS_TTL).then(|| status.clone())
    }
}

/// The frequency of a tenant whose syncs the status was not told of.
pub const SYNC_FREQUENCY: &str = "manual";

/// What the sync engine says of a tenant's syncs, for its status.
#[derive(Debug, Clone, Default)]
pub struct SyncFacts {
    /// When the last successful run started.
    pub last_sync_at: Option<DateTime<Utc>>,
    /// Every frequency in force (`"hourly, manual"`); empty without a connection.
    pub frequency: String,
    pub last_run_duration_ms: Option<u64>,
    pub last_run_records: Option<u64>,
}

/// Records one operation; a failure to record is logged, never the caller's problem.
pub async fn record(
    db: &Pool,
    tenant: &str,
    connection: &str,
    operation: &str,
    error: Option<&ServiceError>,
    took: Duration,
) {
    let ms = i32::try_from(took.as_millis()).unwrap_or(i32::MAX);
    let code = error.map(|e| e.code.as_str());
    // What a person reads in the status; the fleet's messages never hold a secret.
    let message = error.map(|e| match &e.suggestion {
        Some(s) => format!("{}. {s}", e.message.trim_end_matches('.')),
        None => e.message.clone(),
    });
    let result = async {
        let client = db.get().await.map_err(|e| e.to_string())?;
        client
            .execute(
                "INSERT INTO call_log (tenant_id, connection_id, operation, ok, error_code, duration_ms, message)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[&tenant, &connection, &operation, &error.is_none(), &code, &ms, &message],
            )
            .await
            .map_err(|e| e.to_string())?;
        if rand::random::<u8>() == 0 {
            client
                .execute(
                    "DELETE FROM call_log WHERE at < now() - interval '7 days'",
                    &[],
                )
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok::<_, String>(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record the call in call_log");
    }
}

/// The last call on one connection.
#[derive(Debug, Clone)]
pub struct LastCall {
    pub connection_id: String,
    pub ok: bool,
    pub error_code: Option<String>,
    /// The failure's sentence (absent for calls recorded before it was kept).
    pub message: Option<String>,
    pub at: DateTime<Utc>,
}

impl LastCall {
    /// Failed in a way that says the connection does not work.
    pub fn failed(&self) -> bool {
        !self.ok
            && !self
                .error_code
                .as_deref()
                .is_some_and(|c| DATA_ERRORS.contains(&c))
    }
}

/// Calls of the last 24 hours.
#[derive(Debug, Clone, Default)]
pub struct Window {
    pub calls: i64,
    pub failed: i64,
    pub avg_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

fn db_err<E: std::fmt::Display>(integration: &str) -> impl Fn(E) -> ServiceError + '_ {
    move |e| ServiceError::internal(integration, format!("postgres: {e}"))
}

pub async fn last_calls(
    db: &Pool,
    integration: &str,
    tenant: &str,
    connections: &[String],
) -> Result<Vec<LastCall>, ServiceError> {
    let client = db.get().await.map_err(db_err(integration))?;
    let stmt = client
        .prepare_cached(
            "SELECT DISTINCT ON (connection_id) connection_id, ok, error_code, at, message
             FROM call_log WHERE tenant_id = $1 AND connection_id = ANY($2)
             ORDER BY connection_id, at DESC, id DESC",
        )
        .await
        .map_err(db_err(integration))?;
    let rows = client
        .query(&stmt, &[&tenant, &connections])
        .await
        .map_err(db_err(integration))?;
    Ok(rows
        .iter()
        .map(|r| LastCall {
            connection_id: r.get(0),
            ok: r.get(1),
            error_code: r.get(2),
            at: r.get(3),
            message: r.get(4),
        })
        .collect())
}

pub async fn window_24h(
    db: &Pool,
    integration: &str,
    tenant: &str,
) -> Result<Window, ServiceError> {
    let client = db.get().await.map_err(db_err(integration))?;
    let stmt = client
        .prepare_cached(
            "SELECT count(*), count(*) FILTER (WHERE NOT ok),
                    avg(duration_ms)::float8,
                    percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
             FROM call_log WHERE tenant_id = $1 AND at > now() - interval '24 hours'",
        )
        .await
        .map_err(db_err(integration))?;
    let r = client
        .query_one(&stmt, &[&tenant])
        .await
        .map_err(db_err(integration))?;
    Ok(Window {
        calls: r.get(0),
        failed: r.get(1),
        avg_ms: r.get(2),
        p95_ms: r.get(3),
    })
}

/// The status of the tenant's `integration` (`name` in sentences) from its connections and
/// their calls.
/// `settings_valid` says whether one connection's stored settings and secret fields are complete.
pub fn status(
    integration: &str,
    name: &str,
    connections: &[ConnectionRecord],
    last: &[LastCall],
    window: &Window,
    settings_valid: impl Fn(&ConnectionRecord) -> bool,
) -> IntegrationStatus {
    let last_of = |id: &str| last.iter().find(|l| l.connection_id == id);
    let refused = |c: &ConnectionRecord| {
        last_of(&c.id).is_some_and(|l| l.error_code.as_deref() == Some("INVALID_CREDENTIALS"))
    };
    let failing: Vec<(&ConnectionRecord, &LastCall)> = connections
        .iter()
        .filter_map(|c| last_of(&c.id).filter(|l| l.failed()).map(|l| (c, l)))
        .collect();
    let any_ok = connections
        .iter()
        .any(|c| last_of(&c.id).is_some_and(|l| !l.failed()));
    let failed_24h = u32::try_from(window.failed).unwrap_or(u32::MAX);
    let (status, reason) = if connections.is_empty() {
        (
            "disabled",
            format!("no {name} connection is configured for this tenant"),
        )
    } else if let Some((c, l)) = failing.first() {
        let more = match failing.len() {
            1 => String::new(),
            n => format!(" (and on {} more connections)", n - 1),
        };
        (
            "error",
            format!(
                "the last call on connection {} ({}) failed: {}{}{more}",
                c.id,
                c.name,
                l.error_code.as_deref().unwrap_or("unknown error"),
                l.message
                    .as_deref()
                    .map(|m| format!(" ({m})"))
                    .unwrap_or_default()
            ),
        )
    } else if failed_24h > 0 {
        (
            "warning",
            format!("{failed_24h} failed calls in the last 24 hours; the last call on every connection succeeded"),
        )
    } else if any_ok {
        ("healthy", String::new())
    } else {
        (
            "warning",
            "no call has been made on any connection yet; test one with POST /api/v1/integrations/connections/{id}/test"
                .to_string(),
        )
    };
    let calls = u64::try_from(window.calls).unwrap_or(0);
    IntegrationStatus {
        integration: integration.into(),
        status: status.into(),
        reason,
        last_sync_at: None,
        error_count_24h: Some(failed_24h),
        sync_frequency: SYNC_FREQUENCY.into(),
        configuration_valid: Some(
            !connections.is_empty() && connections.iter().all(|c| settings_valid(c) && !refused(c)),
        ),
        connection_count: Some(u32::try_from(connections.len()).unwrap_or(u32::MAX)),
        performance: Some(PerformanceMetrics {
            calls_24h: calls,
            avg_response_time_ms: window.avg_ms.filter(|_| calls > 0),
            p95_response_time_ms: window.p95_ms.filter(|_| calls > 0),
            success_rate: (calls > 0)
                .then(|| (window.calls - window.failed) as f64 / window.calls as f64),
            last_sync_duration_ms: None,
            last_sync_records: None,
        }),
        last_call_at: last.iter().map(|l| l.at).max().map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: &str) -> ConnectionRecord {
        ConnectionRecord {
            id: id.into(),
            tenant_id: "t".into(),
            name: id.into(),
            config: serde_json::json!({}),
            secret_fields: vec!["password".into()],
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn call(id: &str, code: Option<&str>) -> LastCall {
        LastCall {
            connection_id: id.into(),
            ok: code.is_none(),
            error_code: code.map(Into::into),
            message: code.map(|c| format!("{c} happened. Reconnect")),
            at: Utc::now(),
        }
    }

    #[test]
    fn status_follows_the_connections_and_their_calls() {
        let w = Window::default();
        let s = status("odoo", "Odoo", &[], &[], &w, |_| true);
        assert_eq!(s.status, "disabled");
        assert_eq!(s.configuration_valid, Some(false));
        let s = status("odoo", "Odoo", &[conn("a")], &[], &w, |_| true);
        assert_eq!(s.status, "warning", "never used");
        assert_eq!(s.performance.unwrap().success_rate, None);
        let s = status("odoo", "Odoo", &[conn("a")], &[call("a", None)], &w, |_| {
            true
        });
        assert_eq!((s.status.as_str(), s.reason.as_str()), ("healthy", ""));
        let w1 = Window {
            calls: 4,
            failed: 1,
            avg_ms: Some(10.0),
            p95_ms: Some(20.0),
        };
        let s = status(
            "odoo",
            "Odoo",
            &[conn("a")],
            &[call("a", None)],
            &w1,
            |_| true,
        );
        assert_eq!(s.status, "warning");
        assert_eq!(s.error_count_24h, Some(1));
        assert_eq!(s.performance.unwrap().success_rate, Some(0.75));
        let s = status(
            "odoo",
            "Odoo",
            &[conn("a"), conn("b")],
            &[call("a", None), call("b", Some("INVALID_CREDENTIALS"))],
            &w1,
            |_| true,
        );
        assert_eq!(s.status, "error");
        assert!(s.reason.contains("INVALID_CREDENTIALS"), "{}", s.reason);
        assert!(s.reason.contains("happened. Reconnect"), "{}", s.reason);
        assert_eq!(s.configuration_valid, Some(false));
        // Odoo refusing the data is an error in the count, not a broken connection.
        let s = status(
            "odoo",
            "Odoo",
            &[conn("a")],
            &[call("a", Some("UPSTREAM_REJECTED"))],
            &w1,
            |_| true,
        );
        assert_eq!(s.status, "warning");
        let s = status("odoo", "Odoo", &[conn("a")], &[call("a", None)], &w, |_| {
            false
        });
        assert_eq!(s.configuration_valid, Some(false));
    }
}
