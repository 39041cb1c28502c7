//! The tenant's Odoo as one handle: the session from the connection (secret from Vault), the
//! uid cache, the call log and the status cache. Every upstream call of bac-odoo (API
//! requests, sync runs, commands) goes through [`Remote::execute`], so they share one quota,
//! one uid per connection and one error mapping.
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use bac_proto::integration::v1::IntegrationStatus;
use bac_runtime::{
    connections::{ConnectionRecord, ConnectionStore},
    db::Pool,
    upstream::{RetryPolicy, UpstreamClient},
    ErrorCode, ServiceError,
};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::{
    calls,
    client::{service_error, ModelCall, OdooClient, OdooSession},
};

/// How long an Odoo uid from `authenticate` is reused.
const UID_TTL: Duration = Duration::from_secs(300);
pub const STATUS_TTL: Duration = Duration::from_secs(1);

#[derive(Clone)]
pub struct Remote {
    inner: Arc<Inner>,
}

struct Inner {
    db: Pool,
    connections: ConnectionStore,
    client: OdooClient,
    /// connection id -> (uid, session fingerprint, when).
    uids: Mutex<HashMap<String, (i64, String, Instant)>>,
    /// tenant -> its status, reused for STATUS_TTL: dashboards poll it, and each answer costs
    /// three queries. Any call or connection change on this replica drops the cache.
    statuses: std::sync::Mutex<HashMap<String, (Instant, IntegrationStatus)>>,
}

impl Remote {
    pub fn new(db: Pool, connections: ConnectionStore, upstream_deadline: Duration) -> Self {
        let policy = RetryPolicy {
            deadline: upstream_deadline,
            ..RetryPolicy::default()
        };
        Remote {
            inner: Arc::new(Inner {
                db,
                connections,
                // Odoo publishes no quota; 20 calls/s keeps a small self-hosted server healthy.
                client: OdooClient::new(UpstreamClient::new("odoo", Some(20), policy)),
                uids: Mutex::new(HashMap::new()),
                statuses: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn db(&self) -> &Pool {
        &self.inner.db
    }

    pub fn connections(&self) -> &ConnectionStore {
        &self.inner.connections
    }

    pub fn client(&self) -> &OdooClient {
        &self.inner.client
    }

    pub async fn session(&self, rec: &ConnectionRecord) -> Result<OdooSession, ServiceError> {
        let secret = self.inner.connections.secret(rec).await?;
        let password = secret
            .data
            .get("api_key")
            .or_else(|| secret.data.get("password"))
            .cloned()
            .ok_or_else(|| {
                ServiceError::new(
                    "odoo",
                    ErrorCode::InvalidCredentials,
                    "the connection has no password or api_key",
                )
            })?;
        Ok(OdooSession {
            url: rec.setting("url").to_string(),
            database: rec.setting("database").to_string(),
            username: rec.setting("username").to_string(),
            password,
        })
    }

    /// A connection changed or failed: its cached uid and every cached status are stale.
    pub async fn forget_connection(&self, id: &str) {
        self.inner.uids.lock().await.remove(id);
        self.forget_statuses();
    }

    pub fn forget_statuses(&self) {
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.clear();
        }
    }

    pub fn cached_status(&self, tenant: &str) -> Option<IntegrationStatus> {
        let m = self.inner.statuses.lock().ok()?;
        let (at, status) = m.get(tenant)?;
        (at.elapsed() < STATUS_TTL).then(|| status.clone())
    }

    pub fn cache_status(&self, tenant: &str, status: &IntegrationStatus) {
        if let Ok(mut m) = self.inner.statuses.lock() {
            m.insert(tenant.to_string(), (Instant::now(), status.clone()));
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
        calls::record(
            &self.inner.db,
            &rec.tenant_id,
            &rec.id,
            operation,
            result.as_ref().err().map(|e| e.code),
            started.elapsed(),
        )
        .await;
        self.forget_statuses();
        result
    }

    /// The uid for this connection, from cache or a fresh `authenticate`.
    pub async fn uid(&self, rec: &ConnectionRecord, s: &OdooSession) -> Result<i64, ServiceError> {
        let fp = session_fingerprint(s);
        if let Some((uid, f, at)) = self.inner.uids.lock().await.get(&rec.id) {
            if *f == fp && at.elapsed() < UID_TTL {
                return Ok(*uid);
            }
        }
        let uid = self
            .inner
            .client
            .authenticate(s)
            .await
            .map_err(|e| service_error(e, &s.url))?;
        self.inner
            .uids
            .lock()
            .await
            .insert(rec.id.clone(), (uid, fp, Instant::now()));
        Ok(uid)
    }

    /// `model.method(*args, **kwargs)` on the connection's Odoo.
    pub async fn execute(
        &self,
        rec: &ConnectionRecord,
        model: &str,
        method: &str,
        args: Vec<Value>,
        kwargs: Value,
        idempotent: bool,
    ) -> Result<Value, ServiceError> {
        let s = self.session(rec).await?;
        let uid = self.uid(rec, &s).await?;
        let result = self
            .inner
            .client
            .execute_kw(
                &s,
                uid,
                ModelCall {
                    model,
                    method,
                    args,
                    kwargs,
                    idempotent,
                },
            )
            .await;
        if result.is_err() {
            // A changed password or a revoked key must not stay cached.
            self.forget_connection(&rec.id).await;
        }
        result.map_err(|e| service_error(e, &s.url))
    }
}

/// Any change of where or as whom we log in invalidates a cached uid, not only the password
/// (another replica may have changed the url, database or username).
pub fn session_fingerprint(s: &OdooSession) -> String {
    bac_runtime::events::content_hash(&json!([
        s.url,
        s.database,
        s.username,
        s.password.expose_secret()
    ]))
}
