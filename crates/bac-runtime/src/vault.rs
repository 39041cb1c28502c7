//! Vault (or OpenBao) KV v2: connection secrets at `<mount>/bac/<tenant>/<integration>/<id>`,
//! written with check-and-set so concurrent replicas refreshing one token never overwrite each
//! other, read through a short cache. Token auth for dev, AppRole or Kubernetes service-account auth for deployments.
//!
//! The KV v2 and AppRole surface we use is four HTTP calls, so this speaks the Vault HTTP API
//! directly over the same reqwest stack as the upstream client, with every secret kept in a
//! `SecretString` (nothing here ever formats a secret value).
use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Map, Value};
use tokio::sync::{Mutex, RwLock};

use crate::config::VaultConfig;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("vault unreachable at {addr}: {reason}")]
    Unreachable { addr: String, reason: String },
    #[error("vault denied access (check BAC_VAULT_TOKEN or the AppRole policy)")]
    Forbidden,
    #[error("vault check-and-set conflict at {path}: the secret changed concurrently")]
    CasConflict { path: String },
    #[error("vault returned HTTP {status} for {path}")]
    Status { status: u16, path: String },
    #[error("vault answered with an unexpected body for {path}")]
    Body { path: String },
    #[error(
        "vault is not configured: set BAC_VAULT_TOKEN or BAC_VAULT_ROLE_ID/BAC_VAULT_SECRET_ID"
    )]
    NoAuth,
}

/// A secret read from KV v2 with its version (for check-and-set).
#[derive(Clone)]
pub struct Secret {
    pub data: HashMap<String, SecretString>,
    pub version: u64,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("fields", &self.data.keys().collect::<Vec<_>>())
            .field("version", &self.version)
            .finish()
    }
}

#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    cfg: VaultConfig,
    token: RwLock<Option<SecretString>>,
    cache: Mutex<Cache>,
    /// Until when reads skip Vault after it failed (answered from the cache meanwhile).
    down_until: std::sync::Mutex<Option<Instant>>,
    /// True while this replica hears about connection changes ([`Vault::listen_for_changes`]):
    /// only then may a cached secret outlive its TTL during an outage.
    listening: std::sync::atomic::AtomicBool,
}

/// Secrets read lately, and what may be trusted of them.
#[derive(Default)]
struct Cache {
    /// path -> (when read, the secret, whether it may serve through an outage).
    entries: HashMap<String, (Instant, Secret, bool)>,
    /// When each path was last dropped: a read that started earlier is not kept.
    invalidated: HashMap<String, Instant>,
    /// When the current LISTEN session started: only reads after it may outlive their TTL.
    listening_since: Option<Instant>,
}

impl Cache {
    fn drop_path(&mut self, path: &str) {
        self.entries.remove(path);
        let now = Instant::now();
        self.invalidated
            .retain(|_, at| now.duration_since(*at) < Duration::from_secs(600));
        self.invalidated.insert(path.to_string(), now);
    }
}

/// After a failed read, how long reads answer from the cache before asking Vault again.
const DOWN_BACKOFF: Duration = Duration::from_secs(2);

impl VaultError {
    /// Vault could not be asked (down, frozen, sealed, overloaded), as opposed to refusing.
    pub fn is_outage(&self) -> bool {
        match self {
            VaultError::Unreachable { .. } => true,
            VaultError::Status { status, .. } => *status >= 500,
            _ => false,
        }
    }
}

impl Vault {
    pub fn new(cfg: VaultConfig) -> Result<Self, VaultError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| VaultError::Unreachable {
                addr: cfg.addr.clone(),
                reason: e.to_string(),
            })?;
        Ok(Vault {
            inner: Arc::new(Inner {
                http,
                token: RwLock::new(cfg.token.clone()),
                cfg,
                cache: Mutex::new(Cache::default()),
                down_until: std::sync::Mutex::new(None),
                listening: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// The KV path of one connection's credentials.
    pub fn connection_path(tenant: &str, integration: &str, connection: &str) -> String {
        format!("bac/{tenant}/{integration}/{connection}")
    }

    fn url(&self, api: &str) -> String {
        format!("{}/v1/{api}", self.inner.cfg.addr.trim_end_matches('/'))
    }

    fn unreachable(&self, e: reqwest::Error) -> VaultError {
        VaultError::Unreachable {
            addr: self.inner.cfg.addr.clone(),
            reason: e.without_url().to_string(),
        }
    }

    async fn token(&self) -> Result<SecretString, VaultError> {
        if let Some(t) = self.inner.token.read().await.clone() {
            return Ok(t);
        }
        self.login().await
    }

    /// Logs in with AppRole, or with the pod's Kubernetes service-account token, or falls
    /// back to the configured token; the token is kept for later calls.
    async fn login(&self) -> Result<SecretString, VaultError> {
        let cfg = &self.inner.cfg;
        let (api, body) = if let (Some(role), Some(secret)) = (&cfg.role_id, &cfg.secret_id) {
            (
                format!("auth/{}/login", cfg.approle_mount),
                json!({"role_id": role, "secret_id": secret.expose_secret()}),
            )
        } else if let Some(role) = &cfg.kubernetes_role {
            let jwt = tokio::fs::read_to_string(&cfg.kubernetes_token_path)
                .await
                .map_err(|e| VaultError::Unreachable {
                    addr: cfg.kubernetes_token_path.clone(),
                    reason: format!("reading the service-account token: {e}"),
                })?;
            (
                format!("auth/{}/login", cfg.kubernetes_mount),
                json!({"role": role, "jwt": jwt.trim()}),
            )
        } else {
            return cfg.token.clone().ok_or(VaultError::NoAuth);
        };
        let resp = self
            .inner
            .http
            .post(self.url(&api))
            .json(&body)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(VaultError::Forbidden);
        }
        let body: Value = resp.json().await.map_err(|e| self.unreachable(e))?;
        let token = body["auth"]["client_token"]
            .as_str()
            .ok_or(VaultError::Body { path: api.clone() })?;
        let token = SecretString::from(token.to_string());
        *self.inner.token.write().await = Some(token.clone());
        Ok(token)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        api: &str,
        body: Option<&Value>,
    ) -> Result<reqwest::Response, VaultError> {
        for attempt in 0..2 {
            let token = self.token().await?;
            let mut req = self
                .inner
                .http
                .request(method.clone(), self.url(api))
                .header("X-Vault-Token", token.expose_secret());
            if let Some(b) = body {
                req = req.json(b);
            }
            let resp = req.send().await.map_err(|e| self.unreachable(e))?;
            // An expired AppRole token: log in again once.
            let renewable =
                self.inner.cfg.role_id.is_some() || self.inner.cfg.kubernetes_role.is_some();
            if resp.status() == reqwest::StatusCode::FORBIDDEN && attempt == 0 && renewable {
                *self.inner.token.write().await = None;
                continue;
            }
            return Ok(resp);
        }
        Err(VaultError::Forbidden)
    }

    /// Reads a KV v2 secret; `None` when it does not exist.
    pub async fn read(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let api = format!("{}/data/{path}", self.inner.cfg.mount);
        let resp = self.call(reqwest::Method::GET, &api, None).await?;
        match resp.status().as_u16() {
            404 => return Ok(None),
            403 => return Err(VaultError::Forbidden),
            s if !(200..300).contains(&s) => {
                return Err(VaultError::Status {
                    status: s,
                    path: path.into(),
                })
            }
            _ => {}
        }
        let body: Value = resp.json().await.map_err(|e| self.unreachable(e))?;
        let bad = || VaultError::Body { path: path.into() };
        let version = body["data"]["metadata"]["version"]
            .as_u64()
            .ok_or_else(bad)?;
        let data = body["data"]["data"]
            .as_object()
            .ok_or_else(bad)?
            .iter()
            .map(|(k, v)| {
                let s = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                (k.clone(), SecretString::from(s))
            })
            .collect();
        Ok(Some(Secret { data, version }))
    }

    /// Like [`Vault::read`], reusing a value read within the configured TTL
    /// (`BAC_VAULT_CACHE_TTL_SECS`). During a Vault outage a cached value stays usable up to
    /// `BAC_VAULT_CACHE_MAX_STALE_SECS` after it was read, but only while this replica hears
    /// about connection changes (a changed connection drops its entry on every replica, so a
    /// stale value is never one that was replaced); after that the outage is the answer.
    pub async fn read_cached(&self, path: &str) -> Result<Option<Secret>, VaultError> {
        let cfg = &self.inner.cfg;
        let cached = self.inner.cache.lock().await.entries.get(path).cloned();
        if let Some((at, s, _)) = &cached {
            if at.elapsed() < cfg.cache_ttl {
                return Ok(Some(s.clone()));
            }
        }
        let stale = || {
            let usable = self
                .inner
                .listening
                .load(std::sync::atomic::Ordering::Acquire);
            cached
                .as_ref()
                .filter(|(at, _, trusted)| usable && *trusted && at.elapsed() < cfg.cache_max_stale)
                .map(|(_, s, _)| s.clone())
        };
        let started = Instant::now();
        let down = self
            .inner
            .down_until
            .lock()
            .ok()
            .and_then(|d| *d)
            .is_some_and(|until| until > Instant::now());
        if down {
            if let Some(s) = stale() {
                metrics::counter!("bac_vault_stale_reads_total").increment(1);
                return Ok(Some(s));
            }
        }
        match self.read(path).await {
            Ok(fresh) => {
                if let Ok(mut d) = self.inner.down_until.lock() {
                    *d = None;
                }
                if let Some(s) = &fresh {
                    let mut cache = self.inner.cache.lock().await;
                    // Dropped while we read: what we read may be the old secret.
                    let raced = cache.invalidated.get(path).is_some_and(|at| *at >= started);
                    if !raced {
                        // Only a read made while changes are heard may serve through an outage.
                        let trusted = cache.listening_since.is_some_and(|since| since <= started);
                        cache
                            .entries
                            .insert(path.to_string(), (Instant::now(), s.clone(), trusted));
                    }
                }
                Ok(fresh)
            }
            Err(e) if e.is_outage() => {
                if let Ok(mut d) = self.inner.down_until.lock() {
                    *d = Some(Instant::now() + DOWN_BACKOFF);
                }
                match stale() {
                    Some(s) => {
                        tracing::warn!(error = %e, "vault unavailable; using the cached secret");
                        metrics::counter!("bac_vault_stale_reads_total").increment(1);
                        Ok(Some(s))
                    }
                    None => Err(e),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Drops the cached copy of `path` (its connection changed, here or on another replica).
    pub async fn forget(&self, path: &str) {
        self.inner.cache.lock().await.drop_path(path);
    }

    /// Keeps a `LISTEN <schema>_connections` session open until `shutdown`: every change of a
    /// connection (a trigger on the schema's `connections` table sends `<tenant>/<id>`) drops
    /// its cached secret on this replica. While the session is down, cached secrets are not
    /// used past their TTL.
    pub async fn listen_for_changes(
        self,
        database_url: String,
        schema: String,
        integration: String,
        shutdown: tokio_util::sync::CancellationToken,
    ) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let session = self.listen_once(&database_url, &schema, &integration);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = session => {
                    self.set_listening(false).await;
                    if let Err(e) = r {
                        tracing::warn!(error = %e, "connection change listener lost; cached secrets expire on time only");
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    async fn set_listening(&self, on: bool) {
        let mut cache = self.inner.cache.lock().await;
        // Changes may have been missed while no session listened: nothing read before may
        // outlive its TTL.
        cache.entries.clear();
        cache.listening_since = on.then(Instant::now);
        self.inner
            .listening
            .store(on, std::sync::atomic::Ordering::Release);
    }

    async fn listen_once(
        &self,
        database_url: &str,
        schema: &str,
        integration: &str,
    ) -> anyhow::Result<()> {
        use futures::StreamExt;
        let cfg = crate::db::pg_config(database_url, schema)?;
        let (client, mut conn) = cfg.connect(tokio_postgres::NoTls).await?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let pump = tokio::spawn(async move {
            let mut stream = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                        let _ = tx.send(Some(n.payload().to_string()));
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send(None);
        });
        client
            .batch_execute(&format!("LISTEN \"{schema}_connections\""))
            .await?;
        self.set_listening(true).await;
        let mut heartbeat = tokio::time::interval(Duration::from_secs(5));
        let result = loop {
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Some(changed)) => {
                        if let Some((tenant, id)) = changed.split_once('/') {
                            self.forget(&Vault::connection_path(tenant, integration, id)).await;
                        }
                    }
                    _ => break Ok(()),
                },
                _ = heartbeat.tick() => {
                    let probe = tokio::time::timeout(Duration::from_secs(3), client.simple_query("SELECT 1"));
                    if !matches!(probe.await, Ok(Ok(_))) {
                        break Ok(());
                    }
                }
            }
        };
        pump.abort();
        result.and(Err(anyhow::anyhow!(
            "listener connection closed or unresponsive"
        )))
    }

    /// Writes a secret. `cas: Some(0)` creates only if absent; `Some(v)` updates only version v.
    pub async fn write(
        &self,
        path: &str,
        data: &HashMap<String, SecretString>,
        cas: Option<u64>,
    ) -> Result<u64, VaultError> {
        let api = format!("{}/data/{path}", self.inner.cfg.mount);
        let fields: Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.expose_secret().to_string())))
            .collect();
        let mut body = json!({ "data": fields });
        if let Some(v) = cas {
            body["options"] = json!({ "cas": v });
        }
        let resp = self.call(reqwest::Method::POST, &api, Some(&body)).await?;
        self.inner.cache.lock().await.drop_path(path);
        match resp.status().as_u16() {
            200..=299 => {}
            403 => return Err(VaultError::Forbidden),
            400 if cas.is_some() => return Err(VaultError::CasConflict { path: path.into() }),
            s => {
                return Err(VaultError::Status {
                    status: s,
                    path: path.into(),
                })
            }
        }
        let body: Value = resp.json().await.map_err(|e| self.unreachable(e))?;
        body["data"]["version"]
            .as_u64()
            .ok_or(VaultError::Body { path: path.into() })
    }

    /// Deletes every version and the metadata of a secret.
    pub async fn delete(&self, path: &str) -> Result<(), VaultError> {
        let api = format!("{}/metadata/{path}", self.inner.cfg.mount);
        let resp = self.call(reqwest::Method::DELETE, &api, None).await?;
        self.inner.cache.lock().await.drop_path(path);
        match resp.status().as_u16() {
            200..=299 | 404 => Ok(()),
            403 => Err(VaultError::Forbidden),
            s => Err(VaultError::Status {
                status: s,
                path: path.into(),
            }),
        }
    }

    /// `sys/health`: initialized, unsealed and active (or a standby) answers OK.
    pub async fn ping(&self) -> Result<(), String> {
        let resp = self
            .inner
            .http
            .get(self.url("sys/health?standbyok=true"))
            .send()
            .await
            .map_err(|e| self.unreachable(e).to_string())?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(format!(
                "vault health answered HTTP {}",
                resp.status().as_u16()
            ))
        }
    }
}
